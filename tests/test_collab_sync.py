"""Live co-editing over real `tessera serve` processes (issue 15, wire): clients are real
subprocesses (tests/collab_driver.py) holding a CollabClient; the owner's store is read directly.
Two and three nodes on 127.0.0.1; every wait polls a condition with a generous deadline."""

from __future__ import annotations

import pytest

from tests.collab_helpers import (befriend, init_node, layout, notebook_with_cell, owner_notebook, point_at, share,
                                  sources, start_driver, wait_owner)
from tests.test_peer_serve import procs, start_serve, wait_until  # noqa: F401  (procs is a fixture)


@pytest.fixture
def started():
    running = []
    yield running
    for proc in running:
        if proc.poll() is None:
            proc.kill()
        proc.wait(60)


@pytest.fixture
def trio(tmp_path, procs):
    """alice serving notebook ops (one cell) shared with bob and carol, both editors."""
    alice, bob, carol = tmp_path / "alice", tmp_path / "bob", tmp_path / "carol"
    for home, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        init_node(home, name)
    befriend(alice, bob)
    befriend(alice, carol)
    cell = notebook_with_cell(alice, "ops", "MATCH (p:Pod) RETURN p")
    share(alice, "ops", "bob", "carol")
    serve, listening = start_serve(procs, alice)
    point_at(bob, alice, listening["ticket"])
    point_at(carol, alice, listening["ticket"])
    return {"alice": alice, "bob": bob, "carol": carol, "cell": cell, "serve": serve}


def test_typed_text_reaches_the_owners_store_and_a_second_client(trio, started):
    bob = start_driver(started, trio["bob"], "alice", "ops")
    carol = start_driver(started, trio["carol"], "alice", "ops")
    bob.wait_synced()
    carol.wait_synced()
    cell = trio["cell"]
    assert sources(bob.show()["notebook"])[cell] == "MATCH (p:Pod) RETURN p"
    for ch in " LIMIT 5":
        bob.send("type", cell=cell, text=ch)
    want = "MATCH (p:Pod) RETURN p LIMIT 5"
    wait_owner(trio["alice"], "ops", lambda nb: sources(nb)[cell] == want, "bob's typing at alice")
    carol.wait_show(lambda s: sources(s["notebook"])[cell] == want, "bob's typing at carol")
    bob.stop()
    carol.stop()


def test_concurrent_typing_in_one_cell_merges_everywhere(trio, started):
    bob = start_driver(started, trio["bob"], "alice", "ops")
    carol = start_driver(started, trio["carol"], "alice", "ops")
    bob.wait_synced()
    carol.wait_synced()
    cell = trio["cell"]
    for b, c in zip("bbbbb", "ccccc"):
        bob.send("type", cell=cell, text=b, at=0)  # bob types at the start, carol at the end
        carol.send("type", cell=cell, text=c)
    want = "bbbbbMATCH (p:Pod) RETURN pccccc"
    wait_owner(trio["alice"], "ops", lambda nb: sources(nb)[cell] == want, "both typings at alice")
    for driver in (bob, carol):
        driver.wait_show(lambda s: sources(s["notebook"])[cell] == want, "both typings at each client")
