"""Roles (issue 15, wire) over a real `tessera serve`: a viewer's edit is refused by the owner's
node (collab_refused with the message and fix, nothing stored, no event) and the viewer's
document goes back to the owner's; `tessera peer role bob editor` then lets the same edit in
without reconnecting, and the owner's events carry `by` for it."""

from __future__ import annotations

from tests.collab_helpers import (befriend, init_node, notebook_with_cell, owner_notebook, point_at, share, sources,
                                  start_driver, wait_owner)
from tests.test_collab_sync import started  # noqa: F401  (fixture)
from tests.test_peer_serve import node_id, procs, start_serve, store, tessera  # noqa: F401


def _events(home, name: str) -> list:
    from tessera.core.notebook import repository

    conn = store(home)
    try:
        return repository.history(conn, name)
    finally:
        conn.close()


def test_a_viewers_edit_is_refused_then_accepted_once_made_editor_without_reconnecting(tmp_path, procs, started):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    init_node(alice, "alice")
    init_node(bob, "bob")
    befriend(alice, bob, role="viewer")
    cell = notebook_with_cell(alice, "ops", "MATCH (p:Pod) RETURN p")
    share(alice, "ops", "bob")
    serve, listening = start_serve(procs, alice)
    point_at(bob, alice, listening["ticket"])
    client = start_driver(started, bob, "alice", "ops")
    client.wait_synced()
    assert client.show()["role"] == "viewer"
    stored_before, events_before = owner_notebook(alice, "ops"), len(_events(alice, "ops"))

    client.send("type", cell=cell, text=" LIMIT 1")
    refused = client.next(lambda l: l.get("event") == "refused", "the owner's refusal")
    assert refused["message"] == ("alice's node refused the edit: you are a viewer of ops "
                                  "(ask alice: tessera peer role bob editor)")
    client.next(lambda l: l.get("event") == "change" and l["how"] == "reset", "the reset to the owner's state")
    assert sources(client.show()["notebook"])[cell] == "MATCH (p:Pod) RETURN p"
    assert owner_notebook(alice, "ops") == stored_before
    assert len(_events(alice, "ops")) == events_before

    made = tessera(alice, "peer", "role", "bob", "editor")
    assert made.returncode == 0 and "bob" in made.stdout and "now editor (was viewer)" in made.stdout, made
    client.wait_show(lambda s: s["role"] == "editor", "the new role told to bob's client (collab_role)")
    client.send("type", cell=cell, text=" LIMIT 1")
    wait_owner(alice, "ops", lambda nb: sources(nb)[cell] == "MATCH (p:Pod) RETURN p LIMIT 1", "the edit at alice")
    edited = [e for e in _events(alice, "ops")[events_before:] if e.subject.endswith(".cell_edited")]
    assert edited and all(e.data["by"] == {"node": node_id(bob), "name": "bob"} for e in edited), edited
    assert client.show()["status"] == "live"
    assert not any(l.get("event") == "status" and l["status"] == "offline" for l in client.seen)  # no reconnect


def test_peer_role_refuses_an_unknown_role_before_looking_at_the_peers(tmp_path):
    alice = tmp_path / "alice"
    init_node(alice, "alice")
    bad = tessera(alice, "peer", "role", "nobody", "owner")
    assert bad.returncode == 2 and bad.stderr.strip() == "tessera: 'owner' is not a role (use viewer or editor)"
    unknown = tessera(alice, "peer", "role", "nobody", "editor")
    assert unknown.returncode == 2 and "no peer 'nobody'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_unsharing_the_notebook_closes_the_peers_live_connection_with_the_reason(tmp_path, procs, started):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    init_node(alice, "alice")
    init_node(bob, "bob")
    befriend(alice, bob)
    cell = notebook_with_cell(alice, "ops", "MATCH (p:Pod) RETURN p")
    share(alice, "ops", "bob")
    serve, listening = start_serve(procs, alice)
    point_at(bob, alice, listening["ticket"])
    client = start_driver(started, bob, "alice", "ops")
    client.wait_synced()
    assert tessera(alice, "peer", "unshare", "ops", "--with", "bob").returncode == 0
    offline = client.next(lambda l: l.get("event") == "status" and l["status"] == "offline"
                          and "not shared" in (l["reason"] or ""), "the connection closed as not shared")
    assert "ask alice: tessera peer share ops --with bob" in offline["reason"]
    before = owner_notebook(alice, "ops")
    client.send("type", cell=cell, text=" LIMIT 1")  # kept in bob's copy, never reaching alice
    assert sources(client.show()["notebook"])[cell].endswith(" LIMIT 1")
    client.next(lambda l: l.get("event") == "status" and l["status"] == "connecting", "the client dialing again")
    client.next(lambda l: l.get("event") == "status" and l["status"] == "offline"
                and "not shared" in (l["reason"] or ""), "the new join refused too")
    assert owner_notebook(alice, "ops") == before
    assert serve.poll() is None
