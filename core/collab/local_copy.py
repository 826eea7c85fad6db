"""This node's copy of a peer's notebook opened live (the client side of core/collab/): the
store's ``collab_copies`` and ``collab_copy_updates`` tables (core/collab_schema.py).

Every update the client's document takes is stored here before anything else happens with it:
local edits with ``pending`` = 1 (the owner has not confirmed them yet), the owner's with 0. So
a client killed at any moment starts again from its copy, and what was typed offline reaches the
owner on the next connection (the sync exchange sends what the owner lacks; pending updates are
re-sent, which is idempotent). Like every store file the store is 0600 (core/store/db.py).
"""

from __future__ import annotations

import sqlite3

from tessera.core.store.db import transaction

COMPACT_AFTER = 500  # confirmed updates of one copy before they are merged into one


def _ensure(conn: sqlite3.Connection, peer: str, notebook: str) -> None:
    from tessera.core.times import now

    conn.execute("INSERT INTO collab_copies(peer, notebook, updated) VALUES (?, ?, ?) "
                 "ON CONFLICT(peer, notebook) DO UPDATE SET updated = excluded.updated", (peer, notebook, now()))


def updates(conn: sqlite3.Connection, peer: str, notebook: str) -> list[bytes]:
    """The copy's updates in the order stored ([] when there is no copy)."""
    return [r[0] for r in conn.execute("SELECT data FROM collab_copy_updates WHERE peer = ? AND notebook = ? "
                                       "ORDER BY id", (peer, notebook))]


def info(conn: sqlite3.Connection, peer: str, notebook: str) -> dict | None:
    """{notebook_id, role, owner} as the owner last said (None: never opened)."""
    row = conn.execute("SELECT notebook_id, role, owner FROM collab_copies WHERE peer = ? AND notebook = ?",
                       (peer, notebook)).fetchone()
    return None if row is None else {"notebook_id": row[0], "role": row[1], "owner": row[2]}


def set_info(conn: sqlite3.Connection, peer: str, notebook: str, *, notebook_id: str, role: str, owner: str) -> None:
    with transaction(conn):
        _ensure(conn, peer, notebook)
        conn.execute("UPDATE collab_copies SET notebook_id = ?, role = ?, owner = ? WHERE peer = ? AND notebook = ?",
                     (notebook_id, role, owner, peer, notebook))


def add(conn: sqlite3.Connection, peer: str, notebook: str, update: bytes, *, pending: bool) -> int:
    """Store one update of the copy; returns its row id (increasing)."""
    with transaction(conn):
        _ensure(conn, peer, notebook)
        return conn.execute("INSERT INTO collab_copy_updates(peer, notebook, data, pending) VALUES (?, ?, ?, ?)",
                            (peer, notebook, update, int(pending))).lastrowid


def last_row(conn: sqlite3.Connection, peer: str, notebook: str) -> int:
    """The newest row of the copy (0: none): what a step2 made from the document now holds."""
    row = conn.execute("SELECT max(id) FROM collab_copy_updates WHERE peer = ? AND notebook = ?",
                       (peer, notebook)).fetchone()
    return row[0] or 0


def pending(conn: sqlite3.Connection, peer: str, notebook: str) -> list[tuple[int, bytes]]:
    """The local edits the owner has not confirmed, oldest first: (row id, update)."""
    return list(conn.execute("SELECT id, data FROM collab_copy_updates WHERE peer = ? AND notebook = ? AND pending = 1 "
                             "ORDER BY id", (peer, notebook)))


def confirm(conn: sqlite3.Connection, peer: str, notebook: str, upto: int) -> int:
    """The owner has every local edit up to row ``upto``: no longer pending. Returns how many."""
    with transaction(conn):
        return conn.execute("UPDATE collab_copy_updates SET pending = 0 WHERE peer = ? AND notebook = ? "
                            "AND pending = 1 AND id <= ?", (peer, notebook, upto)).rowcount


def replace(conn: sqlite3.Connection, peer: str, notebook: str, full_update: bytes) -> None:
    """The copy becomes this one state, confirmed (after the owner refused an edit: its
    document is the truth, and the refused edits are dropped)."""
    with transaction(conn):
        _ensure(conn, peer, notebook)
        conn.execute("DELETE FROM collab_copy_updates WHERE peer = ? AND notebook = ?", (peer, notebook))
        conn.execute("INSERT INTO collab_copy_updates(peer, notebook, data, pending) VALUES (?, ?, ?, 0)",
                     (peer, notebook, full_update))


def compact_if_long(conn: sqlite3.Connection, peer: str, notebook: str, full_update: bytes) -> bool:
    """Merge the confirmed updates into ``full_update`` (the document now) once there are more
    than COMPACT_AFTER; pending ones stay as they are, to be re-sent."""
    with transaction(conn):
        count = conn.execute("SELECT count(*) FROM collab_copy_updates WHERE peer = ? AND notebook = ? AND pending = 0",
                             (peer, notebook)).fetchone()[0]
        if count <= COMPACT_AFTER:
            return False
        conn.execute("DELETE FROM collab_copy_updates WHERE peer = ? AND notebook = ? AND pending = 0",
                     (peer, notebook))
        conn.execute("INSERT INTO collab_copy_updates(peer, notebook, data, pending) VALUES (?, ?, ?, 0)",
                     (peer, notebook, full_update))
    return True
