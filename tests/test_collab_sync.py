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
    return {"alice": alice, "bob": bob, "carol": carol, "cell": cell, "serve": serve, "ticket": listening["ticket"]}


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
    for b, c in zip("bbbbb", "ccccc", strict=True):
        bob.send("type", cell=cell, text=b, at=0)  # bob types at the start, carol at the end
        carol.send("type", cell=cell, text=c)
    want = "bbbbbMATCH (p:Pod) RETURN pccccc"
    wait_owner(trio["alice"], "ops", lambda nb: sources(nb)[cell] == want, "both typings at alice")
    for driver in (bob, carol):
        driver.wait_show(lambda s: sources(s["notebook"])[cell] == want, "both typings at each client")


def test_edits_made_at_the_owner_reach_the_clients(trio, started):
    from tests.test_peer_serve import tessera

    bob = start_driver(started, trio["bob"], "alice", "ops")
    bob.wait_synced()
    cell = trio["cell"]
    assert tessera(trio["alice"], "cell", "edit", "ops/1", "MATCH (d:Deployment) RETURN d").returncode == 0
    added = tessera(trio["alice"], "cell", "add", "ops", "MATCH (s:Service) RETURN s")
    assert added.returncode == 0, added.stderr
    shown = bob.wait_show(lambda s: len(sources(s["notebook"])) == 2, "alice's new cell at bob")
    assert sources(shown["notebook"])[cell] == "MATCH (d:Deployment) RETURN d"
    assert "MATCH (s:Service) RETURN s" in sources(shown["notebook"]).values()


def test_add_move_split_and_remove_from_two_clients_merge(trio, started):
    bob = start_driver(started, trio["bob"], "alice", "ops")
    carol = start_driver(started, trio["carol"], "alice", "ops")
    bob.wait_synced()
    carol.wait_synced()
    first = trio["cell"]
    b1 = bob.send("add", source="bob one")
    c1 = carol.send("add", source="carol one")
    for driver in (bob, carol):
        driver.wait_show(lambda s: len(sources(s["notebook"])) == 3, "both added cells everywhere")
    bob.send("merge", cell=first)  # first + the next row -> one row of 2
    carol.send("move", cell=c1, to=1)
    want = lambda nb: (len(sources(nb)) == 3 and layout(nb) == layout(owner_notebook(trio["alice"], "ops")))
    bob.wait_show(lambda s: want(s["notebook"]) and s["notebook"] == carol.show()["notebook"], "one layout everywhere")
    bob.send("remove", cell=b1)
    carol.send("type", cell=first, text=" LIMIT 1")
    final = wait_owner(trio["alice"], "ops", lambda nb: b1 not in sources(nb) and sources(nb)[first].endswith("LIMIT 1"),
                       "the remove and the typing at alice")
    for driver in (bob, carol):
        driver.wait_show(lambda s: s["notebook"] == owner_notebook(trio["alice"], "ops"), "the owner's state everywhere")
    assert sorted(sources(final)) == sorted([first, c1])


def test_a_move_while_another_client_types_in_that_cell_keeps_the_text(trio, started):
    bob = start_driver(started, trio["bob"], "alice", "ops")
    carol = start_driver(started, trio["carol"], "alice", "ops")
    bob.wait_synced()
    carol.wait_synced()
    cell = trio["cell"]
    other = bob.send("add", source="second")
    carol.wait_show(lambda s: other in sources(s["notebook"]), "the second cell at carol")
    for i, ch in enumerate("abcdefgh"):
        carol.send("type", cell=cell, text=ch)
        if i == 3:
            bob.send("move", cell=cell, to=2)
    want = "MATCH (p:Pod) RETURN pabcdefgh"
    final = wait_owner(trio["alice"], "ops", lambda nb: sources(nb).get(cell) == want and layout(nb)[-1] == [cell],
                       "the moved cell with all of carol's typing at alice")
    for driver in (bob, carol):
        driver.wait_show(lambda s: s["notebook"] == final, "the same everywhere")


def test_typing_faster_than_the_rate_limit_is_paced_not_refused(trio, started):
    bob = start_driver(started, trio["bob"], "alice", "ops")
    bob.wait_synced()
    cell = trio["cell"]
    typed = "".join(chr(ord("a") + i % 26) for i in range(200))  # far over serve's 20 frames/s, burst 40
    for ch in typed:
        bob.send("type", cell=cell, text=ch)
    want = "MATCH (p:Pod) RETURN p" + typed
    wait_owner(trio["alice"], "ops", lambda nb: sources(nb)[cell] == want, "every keystroke at alice")
    assert not [l for l in bob.seen if l.get("event") == "status" and l["status"] == "offline"], bob.seen


def test_three_typists_in_one_cell_at_once_every_character_everywhere(trio, started):
    from tests.collab_helpers import befriend, init_node, point_at, share

    dave = trio["alice"].parent / "dave"
    init_node(dave, "dave")
    befriend(trio["alice"], dave)
    share(trio["alice"], "ops", "dave")
    point_at(dave, trio["alice"], trio["ticket"])
    cell = trio["cell"]
    typists = {name: start_driver(started, trio[name] if name in trio else dave, "alice", "ops")
               for name in ("bob", "carol", "dave")}
    for driver in typists.values():
        driver.wait_synced()
    runs = {"bob": "b" * 40, "carol": "c" * 40, "dave": "d" * 40}
    for name, driver in typists.items():
        driver.begin("type_run", cell=cell, text=runs[name], every=0.05)  # 20 characters a second each
    for driver in typists.values():
        driver.done("type_run")
    start = "MATCH (p:Pod) RETURN p"
    typed = lambda text: text[len(start):] if text.startswith(start) else ""
    final = wait_owner(trio["alice"], "ops", lambda nb: all(typed(sources(nb)[cell]).count(ch) == 40 for ch in "bcd"),
                       "every character at alice")
    text = sources(final)[cell]
    assert len(typed(text)) == 120
    for driver in typists.values():
        driver.wait_show(lambda s: sources(s["notebook"])[cell] == text, "the same text at every typist")

