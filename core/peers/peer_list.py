"""The peer list and this node's own name: the lookups over the tables of the store's ``peers``
component (core/peers_schema.py).

A peer is a node id (its Ed25519 public key, hex) with the name we show for it, a role (what it
may do with what we share: viewer or editor), whether we publish to it (it may pull our shares)
and whether we subscribe to it (we pull its shares), and when it was added.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

ROLES = ("viewer", "editor")


@dataclass(frozen=True)
class Peer:
    node_id: str
    name: str
    role: str
    publish: bool
    subscribe: bool
    added_at: str


def get(conn: sqlite3.Connection, node_id: str) -> Peer | None:
    row = conn.execute("SELECT node_id, name, role, publish, subscribe, added_at FROM peers WHERE node_id = ?",
                       (node_id,)).fetchone()
    return None if row is None else Peer(row[0], row[1], row[2], bool(row[3]), bool(row[4]), row[5])


def add(conn: sqlite3.Connection, node_id: str, name: str, *, role: str = "viewer", publish: bool = False,
        subscribe: bool = False, added_at: str) -> None:
    """Add or update a peer (its added_at kept when it was there already)."""
    conn.execute(
        "INSERT INTO peers(node_id, name, role, publish, subscribe, added_at) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(node_id) DO UPDATE SET name = excluded.name, role = excluded.role, "
        "publish = excluded.publish, subscribe = excluded.subscribe",
        (node_id, name, role, int(publish), int(subscribe), added_at))


def stored_name(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT name FROM node_profile WHERE id = 1").fetchone()
    return row[0] if row else None


def store_name(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("INSERT INTO node_profile(id, name) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name",
                 (name,))
