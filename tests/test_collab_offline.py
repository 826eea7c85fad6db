"""Offline and back (issue 15, wire), with real processes: the owner's serve killed while a
client edits and restarted (the client reconnects by itself and everything typed on both sides
is everywhere); a client killed with SIGKILL while offline and restarted (it starts from its
local copy and its unsent edits reach the owner); the owner's events say whose edit was whose."""

from __future__ import annotations

import signal

from tests.collab_helpers import owner_notebook, sources, start_driver, wait_owner
from tests.test_collab_sync import started, trio  # noqa: F401  (fixtures)
from tests.test_peer_serve import DEADLINE, node_id, procs, start_serve, store, tessera  # noqa: F401


def _pending(home, peer_home) -> int:
    conn = store(home)
    try:
        return conn.execute("SELECT count(*) FROM collab_copy_updates WHERE peer = ? AND pending = 1",
                            (node_id(peer_home),)).fetchone()[0]
    finally:
        conn.close()


def _edits_by(home, name: str) -> set[str]:
    from tessera.core.notebook import repository

    conn = store(home)
    try:
        return {e.data["by"]["name"] for e in repository.history(conn, name) if e.subject.endswith(".cell_edited")}
    finally:
        conn.close()


def test_the_owners_serve_killed_while_a_client_edits_then_restarted_merges_both_sides(trio, procs, started):
    alice, cell = trio["alice"], trio["cell"]
    bob = start_driver(started, trio["bob"], "alice", "ops")
    bob.wait_synced()
    bob.send("type", cell=cell, text=" /*b1*/")
    wait_owner(alice, "ops", lambda nb: "/*b1*/" in sources(nb)[cell], "bob's first edit at alice")
    trio["serve"].send_signal(signal.SIGKILL)
    trio["serve"].wait(DEADLINE)
    for ch in " /*b2*/":  # typed while the owner is down
        bob.send("type", cell=cell, text=ch)
    bob.next(lambda l: l.get("event") == "status" and l["status"] == "offline", "bob's client offline")
    assert tessera(alice, "cell", "edit", "ops/1", "/*a*/ " + sources(owner_notebook(alice, "ops"))[cell]).returncode == 0
    assert _pending(trio["bob"], alice) > 0
    start_serve(procs, alice)  # the same port (the node's stored port): bob's client finds it again
    want = "/*a*/ MATCH (p:Pod) RETURN p /*b1*/ /*b2*/"
    wait_owner(alice, "ops", lambda nb: sources(nb)[cell] == want, "both sides' edits at alice")
    bob.wait_show(lambda s: sources(s["notebook"])[cell] == want and s["status"] == "live", "both sides at bob")
    bob.wait_show(lambda s: _pending(trio["bob"], alice) == 0, "bob's offline edits confirmed")
    assert {"bob", "alice"} <= _edits_by(alice, "ops")


def test_a_client_killed_with_unsent_edits_sends_them_when_restarted(trio, procs, started):
    alice, cell = trio["alice"], trio["cell"]
    bob = start_driver(started, trio["bob"], "alice", "ops")
    carol = start_driver(started, trio["carol"], "alice", "ops")
    bob.wait_synced()
    carol.wait_synced()
    carol.send("type", cell=cell, text=" /*c*/")
    wait_owner(alice, "ops", lambda nb: "/*c*/" in sources(nb)[cell], "carol's edit at alice")
    bob.wait_show(lambda s: "/*c*/" in sources(s["notebook"])[cell], "carol's edit at bob")
    trio["serve"].send_signal(signal.SIGTERM)  # the owner goes away: bob's next edits cannot be sent
    assert trio["serve"].wait(DEADLINE) == 0
    bob.next(lambda l: l.get("event") == "status" and l["status"] == "offline", "bob's client offline")
    bob.send("type", cell=cell, text=" /*unsent*/")
    assert _pending(trio["bob"], alice) > 0
    bob.proc.send_signal(signal.SIGKILL)
    bob.proc.wait(DEADLINE)
    start_serve(procs, alice)
    again = start_driver(started, trio["bob"], "alice", "ops")
    # from its local copy at once, before any connection
    assert sources(again.show()["notebook"])[cell].endswith("/*c*/ /*unsent*/")
    want = "MATCH (p:Pod) RETURN p /*c*/ /*unsent*/"
    wait_owner(alice, "ops", lambda nb: sources(nb)[cell] == want, "bob's unsent edit at alice")
    carol.wait_show(lambda s: sources(s["notebook"])[cell] == want, "bob's unsent edit at carol (reconnected)")
    again.wait_show(lambda s: _pending(trio["bob"], alice) == 0, "bob's edit confirmed")
    assert {"bob", "carol"} <= _edits_by(alice, "ops")


def test_an_edit_the_owner_cannot_store_now_is_kept_and_arrives_once_the_store_is_free(tmp_path, procs, started):
    from tests.collab_helpers import befriend, init_node, notebook_with_cell, point_at, share

    alice, bob = tmp_path / "alice", tmp_path / "bob"
    init_node(alice, "alice")
    init_node(bob, "bob")
    befriend(alice, bob)
    cell = notebook_with_cell(alice, "ops", "MATCH (p:Pod) RETURN p")
    share(alice, "ops", "bob")
    (alice / "config").mkdir(parents=True, exist_ok=True)
    (alice / "config" / "config.toml").write_text("store_lock_timeout = 0.5\n")  # serve gives up on a lock soon
    serve, listening = start_serve(procs, alice)
    point_at(bob, alice, listening["ticket"])
    client = start_driver(started, bob, "alice", "ops")
    client.wait_synced()
    holder = store(alice)
    holder.execute("BEGIN IMMEDIATE")  # another process holds alice's store
    try:
        client.send("type", cell=cell, text=" LIMIT 4")
        offline = client.next(lambda l: l.get("event") == "status" and l["status"] == "offline", "the busy refusal")
        assert "alice's node could not store the edit now" in offline["reason"], offline
        assert "sent again when the connection is back" in offline["reason"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_owner(alice, "ops", lambda nb: sources(nb)[cell] == "MATCH (p:Pod) RETURN p LIMIT 4", "the kept edit at alice")
    assert serve.poll() is None
