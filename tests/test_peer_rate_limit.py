"""Per-peer rate limiting (core/peers/rate_limit.py), driven by a fake clock."""

from __future__ import annotations

import pytest

from tessera.core.peers.rate_limit import PeerRateLimiter, TokenBucket


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_one_request_per_refill():
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token comes back in 1 / rate seconds
    clock.now += 0.25
    assert bucket.take() == pytest.approx(0.25)  # a refused request takes nothing
    clock.now += 0.25
    assert bucket.take() == 0.0 and bucket.take() == pytest.approx(0.5)


def test_a_bucket_never_holds_more_than_its_burst_and_a_clock_stepping_back_adds_nothing():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=2, clock=clock)
    clock.now += 3600
    assert [bucket.take() for _ in range(3)][2] > 0
    clock.now -= 100
    assert bucket.take() > 0


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 5), (1, 0.5)])
def test_nonsense_limits_are_refused(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)
    with pytest.raises(ValueError):
        PeerRateLimiter(rate, burst)


def test_each_peer_has_its_own_bucket():
    clock = FakeClock()
    limiter = PeerRateLimiter(rate=1, burst=1, clock=clock)
    assert limiter.take("a" * 64) == 0.0 and limiter.take("a" * 64) > 0
    assert limiter.take("b" * 64) == 0.0  # a's flood does not starve b
    clock.now += 1
    assert limiter.take("a" * 64) == 0.0


def test_the_number_of_buckets_is_bounded_dropping_the_least_recently_used():
    clock = FakeClock()
    limiter = PeerRateLimiter(rate=1, burst=1, max_peers=3, clock=clock)
    for i in range(1000):
        limiter.take(f"{i:064x}")
    assert len(limiter) == 3
    limiter = PeerRateLimiter(rate=1, burst=1, max_peers=2, clock=clock)
    limiter.take("a")
    limiter.take("b")
    limiter.take("a")  # a is now the most recent
    limiter.take("c")  # drops b
    assert limiter.take("a") > 0  # a kept its (empty) bucket
