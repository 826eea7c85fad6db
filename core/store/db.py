"""The store: one SQLite database in the data home (WAL, foreign keys), its schema migrations
keyed on ``PRAGMA user_version``, and transactions.

The standard library's sqlite3 is used directly: the store needs connect, migrate and
``BEGIN IMMEDIATE``; sqlite-utils would add 70 ms of import (and click) to every event command.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator

from tessera.core.errors import TesseraError


class StoreError(TesseraError):
    """The database cannot be used (newer schema, corrupt, unwritable)."""


# Each entry migrates from version i to i + 1; never edit one that has shipped, add a new one.
MIGRATIONS: list[str] = [
    # 1: the event log (DESIGN §8), a hash chain ordered by seq
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        time TEXT NOT NULL,
        subject TEXT NOT NULL,
        type TEXT NOT NULL,
        actor TEXT NOT NULL,
        correlation TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX events_time ON events(time);
    CREATE INDEX events_correlation ON events(correlation);
    """,
    # 2: notebooks, each a CRDT document kept as its binary updates (compacted now and then)
    """
    CREATE TABLE notebooks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE TABLE notebook_updates (
        id INTEGER PRIMARY KEY,
        notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
        data BLOB NOT NULL,
        time TEXT NOT NULL
    );
    CREATE INDEX notebook_updates_notebook ON notebook_updates(notebook_id, id);
    """,
    # 3: key/value facts about the store (the event chain's anchor after a prune) and the last
    # result of each cell, to report what changed between runs
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE cell_results (
        notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
        cell_id TEXT NOT NULL,
        rows TEXT NOT NULL,
        time TEXT NOT NULL,
        PRIMARY KEY (notebook_id, cell_id)
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def db_path() -> Path:
    """``<data home>/tessera.db``."""
    from tessera.core.config import database_path

    return database_path()


def connect(path: Path | str | None = None, *, migrate_to: int | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the store and bring its schema up to date.

    Args:
        path: the database file (default: db_path(); the data home is created 0700).
        migrate_to: stop at this schema version (tests build every earlier schema with it).
    Returns:
        a connection in autocommit mode; group writes with ``transaction(conn)``.
    Raises:
        StoreError when the file is not a database, is from a newer Tessera, or cannot be written.
    """
    path = Path(path) if path is not None else db_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, SCHEMA_VERSION if migrate_to is None else migrate_to)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot use the store {path}: {exc}", hint="check the file, or move it away to start afresh") from None
    except OSError as exc:
        raise StoreError(f"cannot create the data home {path.parent}: {exc.strerror}", hint="set TESSERA_HOME") from None
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version``."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> None:
    """Apply the missing migrations, all in one transaction (a crash leaves the old schema)."""
    if schema_version(conn) == target:
        return
    with transaction(conn):
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the store has schema version {current}, newer than this Tessera understands ({SCHEMA_VERSION})",
                hint="upgrade Tessera",
            )
        for version in range(current, target):
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {int(target)}")


def _statements(script: str) -> list[str]:
    # executescript would COMMIT the open transaction; run the statements one by one instead
    return [s.strip() for s in script.split(";") if s.strip()]


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception (Ctrl-C included).

    IMMEDIATE takes the write lock at the start, so two processes never interleave a
    read-then-write (the event chain's last hash, a notebook's updates).
    """
    if conn.in_transaction:
        yield conn  # nested: the outer transaction commits
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def connect_read_only(path: Path | str | None = None, *, timeout: float = 1.0) -> sqlite3.Connection | None:
    """Open the store for reading only, creating and migrating nothing (for shell completion,
    which must not make a data home appear or wait long on a writer).

    Args:
        path: the database file (default: db_path()).
        timeout: how long to wait on a lock, in seconds.
    Returns:
        the connection, or None when there is no store yet or it cannot be opened.
    """
    path = Path(path) if path is not None else db_path()
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    except sqlite3.Error:
        return None
    return conn
