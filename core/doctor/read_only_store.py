"""The store (or a replica) opened for reading only, as a StoreConnection: doctor writes nothing,
and core code it calls (events.verify) needs the connection's ``path`` and sees SQLite's refusals
as StoreErrors. (core/store/db.connect_read_only gives a plain sqlite3 connection.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tessera.core.store.db import StoreConnection, StoreError

LOCK_WAIT_S = 5.0  # a writer holding the store briefly is waited for; a long one is reported


def open_read_only(path: Path) -> StoreConnection:
    """``path`` opened with SQLite's ``mode=ro`` (no schema made, no migration run).

    Raises:
        StoreError when the file cannot be opened.
    """
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=LOCK_WAIT_S,
                               isolation_level=None, check_same_thread=False, factory=StoreConnection)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path} for reading: {exc}") from None
    conn.path, conn.lock_timeout, conn.on_wait, conn.memo = path, LOCK_WAIT_S, None, {}
    return conn
