"""Presence (issue 15, wire): the presence table's TTL rule with an injected clock, and awareness
over a real `tessera serve`: people listed with name and cell, a client that leaves gone at once,
one killed with SIGKILL gone within the expiry, the owner's own front ends listed to peers, and
`notebook show` at the owner listing connected peers."""

from __future__ import annotations

import signal
import time

import pytest

from tessera.core.collab import presence
from tests.collab_helpers import start_driver
from tests.test_collab_sync import started, trio  # noqa: F401  (fixtures)
from tests.test_peer_serve import procs, store  # noqa: F401


def test_a_presence_entry_counts_within_its_ttl_and_not_after(tmp_path):
    from tessera.core.store.db import connect

    conn = connect(tmp_path / "tessera.db")
    ttl = presence.PRESENCE_TTL
    presence.announce(conn, "nb1", "dash-1", name="alice", node="ab" * 32, cell="c1", where="local", now=1000.0)
    presence.announce(conn, "nb1", "bob-7", name="bob", node="cd" * 32, cell=None, where="peer", now=1000.0 + ttl / 2)
    presence.announce(conn, "nb2", "dash-2", name="alice", node="ab" * 32, cell=None, where="local", now=1000.0 + ttl / 2)
    at = lambda now: [(p["client"], p["cell"], p["where"]) for p in presence.present(conn, "nb1", now=now)]
    assert at(1000.0 + ttl / 2 + 0.5) == [("dash-1", "c1", "local"), ("bob-7", None, "peer")]
    assert at(1000.0 + ttl) == [("dash-1", "c1", "local"), ("bob-7", None, "peer")]
    assert at(1000.0 + ttl + 0.5) == [("bob-7", None, "peer")]  # dash-1 not renewed
    presence.announce(conn, "nb1", "dash-1", name="alice", node="ab" * 32, cell="c2", where="local", now=1000.0 + ttl + 1)
    assert at(1000.0 + ttl + 1.5) == [("dash-1", "c2", "local"), ("bob-7", None, "peer")]  # renewed, in another cell
    presence.withdraw(conn, "nb1", "bob-7")
    assert at(1000.0 + ttl + 1.5) == [("dash-1", "c2", "local")]
    with pytest.raises(ValueError):
        presence.announce(conn, "nb1", "x", name="x", node="x", cell=None, where="elsewhere")


def _names(shown: dict) -> list[tuple[str, str | None]]:
    return sorted((p["name"], p["cell"]) for p in shown["people"])


def test_people_are_listed_with_name_and_cell_and_a_client_that_leaves_is_gone_at_once(trio, started):
    bob = start_driver(started, trio["bob"], "alice", "ops")
    carol = start_driver(started, trio["carol"], "alice", "ops")
    bob.wait_synced()
    carol.wait_synced()
    cell = trio["cell"]
    bob.send("set_cell", cell=cell)
    carol.wait_show(lambda s: _names(s) == [("bob", cell)], "bob in his cell, at carol")
    bob.wait_show(lambda s: _names(s) == [("carol", None)], "carol at bob")
    conn = store(trio["alice"])
    try:
        from tessera.core.notebook import repository

        nid = repository.notebook_id(conn, "ops")
        mirrored = sorted((p["name"], p["cell"], p["where"]) for p in presence.present(conn, nid))
        assert mirrored == [("bob", cell, "peer"), ("carol", None, "peer")]
    finally:
        conn.close()
    bob.stop()
    # gone at once: well before the 6 s expiry would drop him (the deadline is generous; the
    # event says he left rather than expired, as the serve's log shows)
    carol.next(lambda l: l.get("event") == "presence" and l["people"] == [], "bob gone at carol")


def test_a_client_killed_with_sigkill_is_gone_within_the_expiry(trio, started):
    bob = start_driver(started, trio["bob"], "alice", "ops")
    carol = start_driver(started, trio["carol"], "alice", "ops")
    bob.wait_synced()
    carol.wait_synced()
    carol.wait_show(lambda s: _names(s) == [("bob", None)], "bob at carol")
    bob.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    carol.next(lambda l: l.get("event") == "presence" and l["people"] == [], "bob gone at carol")
    took = time.monotonic() - killed
    # Not a timing assertion on the machine's speed: the serve drops him when his renewal is 6 s
    # late, or at once when the transport notices the dead connection; record it for the report.
    print(f"bob gone after {took:.1f} s")


def test_the_owners_own_front_ends_are_listed_to_peers_and_expire(trio, started):
    from tessera.core.notebook import repository
    from tessera.core.peers import identity

    bob = start_driver(started, trio["bob"], "alice", "ops")
    bob.wait_synced()
    conn = store(trio["alice"])
    try:
        nid = repository.notebook_id(conn, "ops")
        me = identity.local_identity(conn)
        # alice's dashboard, announced as front ends do (with a clock 3 s behind, so the entry
        # expires before a whole TTL from now)
        presence.announce(conn, nid, "dash-1", name=me.name, node=me.node_id, cell=trio["cell"], where="local",
                          now=time.time() - 3)
        shown = bob.wait_show(lambda s: _names(s) == [("alice", trio["cell"])], "alice's dashboard at bob")
        assert shown["people"][0]["where"] == "local" and shown["people"][0]["node"] == me.node_id
        bob.wait_show(lambda s: s["people"] == [], "alice's dashboard gone at bob once not renewed")
    finally:
        conn.close()


def test_probe_people_lists_who_is_in_a_peers_notebook_without_being_listed_itself(trio, started, monkeypatch):
    from tessera.core.collab.client import probe_people

    bob = start_driver(started, trio["bob"], "alice", "ops")
    bob.wait_synced()
    bob.send("set_cell", cell=trio["cell"])
    carol_db = str(trio["carol"] / "data" / "tessera.db")
    monkeypatch.setenv("TESSERA_PEER_LOOPBACK", "1")  # the probe dials from this process, as the CLI would
    deadline = time.monotonic() + 60
    while True:
        people = probe_people(carol_db, "alice", "ops", timeout=30)
        if [(p["name"], p["cell"], p["where"]) for p in people] == [("bob", trio["cell"], "peer")]:
            break
        assert time.monotonic() < deadline, people
        time.sleep(0.1)
    bob.wait_show(lambda s: s["people"] == [], "the probe is never listed at bob")
    assert not any(l.get("event") == "presence" and any(p["name"] == "carol" for p in l["people"])
                   for l in bob.seen)
