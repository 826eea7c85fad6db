"""Which peers may fetch which blob: the store's ``blob_grants`` table. A node serves a blob it
holds only to a peer it publishes to AND to which the blob is granted here (``blob share``, or
``blob put --share-with``); core/blobs/serving.py asks on every request."""

from __future__ import annotations

import sqlite3


def grant(conn: sqlite3.Connection, blob_id: str, node_ids: list[str]) -> int:
    """Grant the blob to each node id; how many grants are new."""
    from tessera.core.times import now

    when = now()
    return conn.executemany("INSERT OR IGNORE INTO blob_grants(blob_id, node_id, added_at) VALUES (?, ?, ?)",
                            [(blob_id, node_id, when) for node_id in node_ids]).rowcount


def revoke(conn: sqlite3.Connection, blob_id: str, node_ids: list[str]) -> int:
    return conn.executemany("DELETE FROM blob_grants WHERE blob_id = ? AND node_id = ?",
                            [(blob_id, node_id) for node_id in node_ids]).rowcount


def is_granted(conn: sqlite3.Connection, blob_id: str, node_id: str) -> bool:
    return conn.execute("SELECT 1 FROM blob_grants WHERE blob_id = ? AND node_id = ?",
                        (blob_id, node_id)).fetchone() is not None


def grantees(conn: sqlite3.Connection, blob_id: str) -> list[str]:
    """The node ids the blob is granted to, sorted."""
    return [r[0] for r in conn.execute("SELECT node_id FROM blob_grants WHERE blob_id = ? ORDER BY node_id", (blob_id,))]
