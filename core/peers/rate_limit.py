"""Per-peer rate limiting: a token bucket for each node id. A bucket holds at most ``burst``
tokens and gains ``rate`` a second; each request takes one, and a request finding none is
refused with the time until one is back. The clock is passed in (time.monotonic by default), so
tests drive it by hand.

The number of buckets is bounded (``max_peers``): past it, the one used least recently is
dropped, so node ids made up by the thousand cannot grow memory (a dropped peer comes back with
a full bucket, which only an authorized peer could use, as unknown nodes are refused at hello).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic):
        if not (rate > 0 and burst >= 1):
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, not rate={rate}, burst={burst}")
        self.rate, self.burst, self._clock = float(rate), float(burst), clock
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._at:  # a clock that steps back adds nothing
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)

    def take(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` when there are: returns 0.0; else takes none and returns the seconds
        until there would be."""
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return 0.0
        return (tokens - self._tokens) / self.rate


# What ``tessera serve`` allows each peer (requests a second, and in a burst); our own puller
# paces itself below it (core/peers/sync.py).
DEFAULT_RATE = 20.0
DEFAULT_BURST = 40.0


class PeerRateLimiter:
    """One TokenBucket per node id, at most ``max_peers`` of them."""

    def __init__(self, rate: float = DEFAULT_RATE, burst: float = DEFAULT_BURST, *, max_peers: int = 1024,
                 clock: Callable[[], float] = time.monotonic):
        TokenBucket(rate, burst, clock=clock)  # checks the numbers once, here
        self.rate, self.burst, self.max_peers, self._clock = rate, burst, max_peers, clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, node_id: str) -> float:
        """0.0 when ``node_id`` may make a request now, else the seconds to wait."""
        bucket = self._buckets.get(node_id)
        if bucket is None:
            bucket = self._buckets[node_id] = TokenBucket(self.rate, self.burst, clock=self._clock)
            while len(self._buckets) > self.max_peers:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(node_id)
        return bucket.take()

    def __len__(self) -> int:
        return len(self._buckets)
