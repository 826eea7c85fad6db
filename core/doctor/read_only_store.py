"""The store (or a replica) opened for reading only, as a StoreConnection (core/store/db.py
connect_read_only with store=True): doctor writes nothing, and what it calls sees SQLite's
failures as one-line StoreErrors."""

from __future__ import annotations

from pathlib import Path

from tessera.core.doctor.check_result import FAIL, CheckResult
from tessera.core.errors import TesseraError
from tessera.core.store.db import StoreConnection, StoreDamaged, StoreError, connect_read_only

LOCK_WAIT_S = 5.0  # a writer holding the store briefly is waited for; a long one is reported


def open_read_only(path: Path) -> StoreConnection:
    """``path`` opened with SQLite's ``mode=ro`` (no schema made, no migration run).

    Raises:
        StoreDamaged for an empty file (SQLite would read it as a new database; db.connect refuses
        it too), StoreError when the file is missing or cannot be opened.
    """
    try:
        empty = path.stat().st_size == 0
    except OSError as exc:
        raise StoreError(f"cannot open {path} for reading: {exc.strerror}") from None
    if empty:
        raise StoreDamaged(f"{path} is empty (0 bytes): its content was lost outside Tessera",
                           hint="restore it from a backup (tessera restore BACKUP_FILE), or remove it to start afresh")
    conn = connect_read_only(path, timeout=LOCK_WAIT_S, store=True)
    if conn is None:
        raise StoreError(f"cannot open {path} for reading", hint="check the file is yours and readable (mode 0600)")
    return conn


def unreadable(check: str, error: TesseraError) -> CheckResult:
    """The row of a check that could not read the store: the error, and its own fix when it has
    one (a damaged or empty store says how to restore it), else ``tessera events verify``."""
    return CheckResult(check, FAIL, error.message, error.hint or "tessera events verify")
