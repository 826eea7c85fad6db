"""The store (or a replica) opened for reading only, as a StoreConnection (core/store/db.py
connect_read_only with store=True): doctor writes nothing, and what it calls sees SQLite's
failures as one-line StoreErrors."""

from __future__ import annotations

from pathlib import Path

from tessera.core.store.db import StoreConnection, StoreError, connect_read_only

LOCK_WAIT_S = 5.0  # a writer holding the store briefly is waited for; a long one is reported


def open_read_only(path: Path) -> StoreConnection:
    """``path`` opened with SQLite's ``mode=ro`` (no schema made, no migration run).

    Raises:
        StoreError when the file is missing or cannot be opened.
    """
    conn = connect_read_only(path, timeout=LOCK_WAIT_S, store=True)
    if conn is None:
        raise StoreError(f"cannot open {path} for reading", hint="check the file is yours and readable (mode 0600)")
    return conn
