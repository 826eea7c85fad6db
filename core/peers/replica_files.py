"""Where each peer's replica lives: one SQLite file per peer, ``<data home>/peers/<node id>/replica.db``
(DESIGN §11). The file has the store's schema (its events and notebooks tables hold the peer's
events and notebooks as received), is written only by sync and import (core/peers/), and is
opened read-only by queries. The directory is 0700 and the file 0600: it may hold cluster data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tessera.core.peers.message_types import NODE_ID

REPLICA_FILE = "replica.db"


def peers_dir(store_path: Path | None = None) -> Path:
    """``<data home>/peers`` (beside the store file ``store_path``, default the data home's)."""
    if store_path is None:
        from tessera.core.store.db import db_path

        store_path = db_path()
    return Path(store_path).parent / "peers"


def replica_path(node_id: str, store_path: Path | None = None) -> Path:
    if not NODE_ID.fullmatch(node_id):  # a path component: never anything but 64 hex digits
        raise ValueError(f"not a node id: {node_id[:80]!r}")
    return peers_dir(store_path) / node_id / REPLICA_FILE


def open_read_only(node_id: str, store_path: Path | None = None) -> sqlite3.Connection | None:
    """The peer's replica opened read-only (queries, listings); None when nothing was received yet."""
    path = replica_path(node_id, store_path)
    if not path.exists():
        return None
    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
