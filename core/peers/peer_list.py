"""The peer list and this node's own name and port: the lookups over the tables of the store's
``peers`` component (core/peers_schema.py).

A peer is a node id (its Ed25519 public key, hex) with the name we show for it, a role (what it
may do with what we share: viewer or editor), whether we publish to it (it may connect and pull
what we share with it) and whether we subscribe to it (we pull what it shares with us), when it
was added, its last known address (a ticket) and how our last pull from it ended.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from tessera.core.errors import UsageError, printable

ROLES = ("viewer", "editor")
_COLUMNS = "node_id, name, role, publish, subscribe, added_at, address, last_sync, last_error"


@dataclass(frozen=True)
class Peer:
    node_id: str
    name: str
    role: str
    publish: bool
    subscribe: bool
    added_at: str
    address: str = ""
    last_sync: str | None = None
    last_error: str | None = None


def _peer(row: tuple) -> Peer:
    return Peer(row[0], row[1], row[2], bool(row[3]), bool(row[4]), row[5], row[6], row[7], row[8])


def get(conn: sqlite3.Connection, node_id: str) -> Peer | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM peers WHERE node_id = ?", (node_id,)).fetchone()
    return None if row is None else _peer(row)


def all_peers(conn: sqlite3.Connection) -> list[Peer]:
    """Every peer, by name."""
    return [_peer(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM peers ORDER BY name, node_id")]


def resolve(conn: sqlite3.Connection, text: str) -> Peer:
    """The peer ``text`` names: its name, its full node id, or a prefix of its id (at least the
    short id's 10 characters) that only it has.

    Raises:
        UsageError (exit 2) naming ``text`` (escaped) when no peer or several match.
    """
    peers = all_peers(conn)
    for peer in peers:
        if peer.name == text:
            return peer
    lowered = text.lower()
    if len(lowered) >= 10:
        found = [p for p in peers if p.node_id.startswith(lowered)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise UsageError(f"'{printable(text)}' is the start of several peers' ids", hint="give more of the id")
    raise UsageError(f"no peer '{printable(text)}'", hint="see `tessera peer list` for names and ids")


def add(conn: sqlite3.Connection, node_id: str, name: str, *, role: str = "viewer", publish: bool = False,
        subscribe: bool = False, added_at: str, address: str | None = None) -> None:
    """Add or update a peer (its added_at kept when it was there already; its address kept when
    ``address`` is None)."""
    conn.execute(
        "INSERT INTO peers(node_id, name, role, publish, subscribe, added_at, address) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(node_id) DO UPDATE SET name = excluded.name, role = excluded.role, "
        "publish = excluded.publish, subscribe = excluded.subscribe, "
        "address = CASE WHEN ? IS NULL THEN peers.address ELSE excluded.address END",
        (node_id, name, role, int(publish), int(subscribe), added_at, address or "", address))


def remove(conn: sqlite3.Connection, node_id: str) -> bool:
    """Drop the peer and every share given to it alone; False when it was not a peer."""
    conn.execute("DELETE FROM peer_shares WHERE node_id = ?", (node_id,))
    return conn.execute("DELETE FROM peers WHERE node_id = ?", (node_id,)).rowcount > 0


def check_role(role: str) -> str:
    """``role`` when it is one of ROLES.

    Raises:
        UsageError (exit 2) naming it (escaped) and the roles.
    """
    if role not in ROLES:
        raise UsageError(f"'{printable(role)}' is not a role", hint="use viewer or editor")
    return role


def set_role(conn: sqlite3.Connection, node_id: str, role: str) -> str | None:
    """Make the peer a viewer or an editor; returns its role before (None: it is not a peer).
    A collaboration room looks the role up on every update, so the change applies at once.

    Raises:
        UsageError (exit 2) for a role that is not one of ROLES.
    """
    check_role(role)
    before = conn.execute("SELECT role FROM peers WHERE node_id = ?", (node_id,)).fetchone()
    if before is None:
        return None
    conn.execute("UPDATE peers SET role = ? WHERE node_id = ?", (role, node_id))
    return before[0]


def set_address(conn: sqlite3.Connection, node_id: str, address: str) -> None:
    conn.execute("UPDATE peers SET address = ? WHERE node_id = ?", (address, node_id))


def record_sync(conn: sqlite3.Connection, node_id: str, *, when: str, error: str | None = None) -> None:
    """How a pull from the peer ended: last_sync moves only on success; last_error is the
    failure's one line (None after a success)."""
    if error is None:
        conn.execute("UPDATE peers SET last_sync = ?, last_error = NULL WHERE node_id = ?", (when, node_id))
    else:
        conn.execute("UPDATE peers SET last_error = ? WHERE node_id = ?", (error[:300], node_id))


def record_transfer(conn: sqlite3.Connection, node_id: str, *, received_bytes: int, seconds: float) -> None:
    """The figures of a successful pull from the peer (peers migration 3): what it sent us and
    how long the pull took."""
    conn.execute("UPDATE peers SET last_sync_bytes = ?, last_sync_seconds = ? WHERE node_id = ?",
                 (received_bytes, max(0.0, seconds), node_id))


def transfers(conn: sqlite3.Connection) -> dict[str, tuple[int, float]]:
    """node_id -> (bytes, seconds) of our last successful pull from each peer that had one."""
    return {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT node_id, last_sync_bytes, last_sync_seconds FROM peers WHERE last_sync_bytes IS NOT NULL")}


def stored_name(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT name FROM node_profile WHERE id = 1").fetchone()
    return row[0] if row else None


def store_name(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("INSERT INTO node_profile(id, name) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name",
                 (name,))


def stored_port(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT port FROM node_profile WHERE id = 1").fetchone()
    return row[0] if row else None


def store_port(conn: sqlite3.Connection, port: int, *, default_name: str) -> None:
    """Keep ``port`` as this node's endpoint port (the profile row is made with ``default_name``
    when there is none yet)."""
    conn.execute("INSERT INTO node_profile(id, name, port) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET port = excluded.port",
                 (default_name, port))
