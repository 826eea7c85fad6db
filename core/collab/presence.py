"""Who has a notebook of this node open now: the store's ``collab_presence`` table
(core/collab_schema.py).

Two kinds of rows, one per client (a front end, or a peer's connection):

- ``local``: this node's own front ends (dashboard, shell) announce themselves every
  ANNOUNCE_SECONDS and on a change of cell, and withdraw on exit;
- ``peer``: the room in ``tessera serve`` mirrors each connected peer's awareness state.

A row counts while it was announced within PRESENCE_TTL seconds, so a front end that dies
without withdrawing is gone within that; ``present`` sweeps rows long past it. The clock is
passed in (``now``) so the TTL rule is tested without waiting.
"""

from __future__ import annotations

import sqlite3
import time

PRESENCE_TTL = 7.0
ANNOUNCE_SECONDS = 2.0  # how often a local front end announces itself (well within the TTL)
SWEEP_AFTER = 10 * PRESENCE_TTL  # rows older than this are deleted when someone reads
LOCATIONS = ("local", "peer")


def announce(conn: sqlite3.Connection, notebook_id: str, client: str, *, name: str, node: str,
             cell: str | None, where: str, now: float | None = None) -> None:
    """Say (again) that ``client`` is in the notebook, in ``cell`` (None: in none)."""
    from tessera.core.store.db import transaction

    if where not in LOCATIONS:
        raise ValueError(f"where is one of {LOCATIONS}, not {where!r}")
    with transaction(conn):
        conn.execute(
            "INSERT INTO collab_presence(notebook_id, client, name, node, cell, location, seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(notebook_id, client) DO UPDATE SET name = excluded.name, "
            "node = excluded.node, cell = excluded.cell, location = excluded.location, seen = excluded.seen",
            (notebook_id, client, name, node, cell, where, time.time() if now is None else now))


def withdraw(conn: sqlite3.Connection, notebook_id: str, client: str) -> None:
    """``client`` left the notebook."""
    from tessera.core.store.db import transaction

    with transaction(conn):
        conn.execute("DELETE FROM collab_presence WHERE notebook_id = ? AND client = ?", (notebook_id, client))


def present(conn: sqlite3.Connection, notebook_id: str, *, now: float | None = None) -> list[dict]:
    """Everyone announced within PRESENCE_TTL: [{client, name, node, cell, where}], by name then
    client. ``where`` is 'local' for a front end at this node, 'peer' for a peer's."""
    now = time.time() if now is None else now
    rows = conn.execute(
        "SELECT client, name, node, cell, location FROM collab_presence WHERE notebook_id = ? AND seen >= ? "
        "AND seen <= ? ORDER BY name, client", (notebook_id, now - PRESENCE_TTL, now + PRESENCE_TTL)).fetchall()
    if conn.execute("SELECT 1 FROM collab_presence WHERE seen < ? LIMIT 1", (now - SWEEP_AFTER,)).fetchone():
        _sweep(conn, now)
    return [{"client": c, "name": n, "node": node, "cell": cell, "where": w} for c, n, node, cell, w in rows]


def withdraw_all(conn: sqlite3.Connection, where: str) -> None:
    """Drop every row of one kind (serve starting: the peers of its previous run are gone)."""
    from tessera.core.store.db import transaction

    with transaction(conn):
        conn.execute("DELETE FROM collab_presence WHERE location = ?", (where,))


def _sweep(conn: sqlite3.Connection, now: float) -> None:
    from tessera.core.store.db import StoreError, transaction

    try:
        with transaction(conn):
            conn.execute("DELETE FROM collab_presence WHERE seen < ?", (now - SWEEP_AFTER,))
    except StoreError:  # a reader on a read-only or busy store: sweeping is a nicety
        pass
