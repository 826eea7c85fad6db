"""The peer list over a real store: resolve by name or id, remove, addresses, sync outcomes,
the node's port, and where replicas live."""

from __future__ import annotations

import pytest

from tessera.core.errors import UsageError
from tessera.core.peers import peer_list, replica_files
from tessera.core.store.db import connect, transaction

ALICE = "a1" * 32
ALBERT = "a1" * 5 + "b2" * 27
BOB = "b0" * 32
WHEN = "2026-12-01T00:00:00.000Z"


@pytest.fixture()
def conn(tmp_path):
    c = connect(tmp_path / "tessera.db")
    with transaction(c):
        peer_list.add(c, ALICE, "alice", publish=True, added_at=WHEN, address="endpointAAA")
        peer_list.add(c, ALBERT, "albert", added_at=WHEN)
        peer_list.add(c, BOB, "bob", subscribe=True, added_at=WHEN)
        c.execute("INSERT INTO peer_shares(item, node_id, added_at) VALUES ('notebook:ops', ?, ?)", (BOB, WHEN))
        c.execute("INSERT INTO peer_shares(item, node_id, added_at) VALUES ('notebook:ops', '*', ?)", (WHEN,))
    yield c
    c.close()


def test_resolve_by_name_full_id_and_unique_prefix(conn):
    assert peer_list.resolve(conn, "bob").node_id == BOB
    assert peer_list.resolve(conn, ALICE.upper()).name == "alice"
    assert peer_list.resolve(conn, BOB[:10]).name == "bob"
    with pytest.raises(UsageError, match="several"):
        peer_list.resolve(conn, ALICE[:10])  # alice and albert share their first 10 characters
    with pytest.raises(UsageError, match=r"no peer 'ev\\x1bil'"):
        peer_list.resolve(conn, "ev\x1bil")  # echoed escaped
    with pytest.raises(UsageError):
        peer_list.resolve(conn, BOB[:6])  # shorter than a short id: never a match


def test_add_keeps_address_unless_given_and_remove_drops_own_shares(conn):
    with transaction(conn):
        peer_list.add(conn, ALICE, "alice2", role="editor", added_at="later")
    alice = peer_list.get(conn, ALICE)
    assert (alice.name, alice.role, alice.address, alice.added_at) == ("alice2", "editor", "endpointAAA", WHEN)
    with transaction(conn):
        assert peer_list.remove(conn, BOB)
        assert not peer_list.remove(conn, BOB)
    assert peer_list.get(conn, BOB) is None
    assert conn.execute("SELECT node_id FROM peer_shares").fetchall() == [("*",)]


def test_sync_outcome_and_port(conn):
    with transaction(conn):
        peer_list.record_sync(conn, BOB, when=WHEN)
        peer_list.record_sync(conn, BOB, when="later", error="unreachable")
    bob = peer_list.get(conn, BOB)
    assert (bob.last_sync, bob.last_error) == (WHEN, "unreachable")
    assert peer_list.stored_port(conn) is None
    with transaction(conn):
        peer_list.store_port(conn, 43210, default_name="me@host")
    assert peer_list.stored_port(conn) == 43210 and peer_list.stored_name(conn) == "me@host"


def test_replica_path_is_per_node_and_refuses_other_text(tmp_path):
    store = tmp_path / "tessera.db"
    assert replica_files.replica_path(BOB, store) == tmp_path / "peers" / BOB / "replica.db"
    for bad in ("../etc", BOB.upper(), BOB[:-1], ""):
        with pytest.raises(ValueError):
            replica_files.replica_path(bad, store)
    assert replica_files.open_read_only(BOB, store) is None
