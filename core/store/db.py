"""The store: one SQLite database in the data home (WAL, foreign keys), its schema migrations
(per component, see migrations.py), and transactions.

The standard library's sqlite3 is used directly: the store needs connect, migrate and
``BEGIN IMMEDIATE``; sqlite-utils would add 70 ms of import (and click) to every event command.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator

from tessera.core.errors import EXIT_TIMEOUT, TesseraError


class StoreError(TesseraError):
    """The database cannot be used (newer schema, unwritable...)."""


class StoreFull(StoreError):
    """The disk holding the store is full (SQLITE_FULL); the failed write was rolled back."""


class StoreLocked(StoreError):
    """Another process held the store's write lock for longer than store_lock_timeout (exit 4)."""

    exit_code = EXIT_TIMEOUT


class StoreDamaged(StoreError):
    """The database file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB) or empty (0 bytes)."""


# ``PRAGMA user_version``: 0 to 3 in stores of one global schema, COMPONENTS_SCHEMA (4) since
# versions are kept per component (core/store/migrations.py).
SCHEMA_VERSION = 4


def db_path() -> Path:
    """``<data home>/tessera.db``."""
    from tessera.core.config import database_path

    return database_path()


def connect(path: Path | str | None = None, *, migrate_to: int | None = None,
            on_wait: Callable[[str], None] | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the store and bring its schema up to date.

    A new store is built in a private temporary file and linked into place, so ``tessera.db``
    (and the -wal/-shm files SQLite gives the same mode) is 0600 whatever the umask, and a
    0-byte ``tessera.db`` can only mean damage: it is refused, never silently re-created.

    Args:
        path: the database file (default: db_path(); the data home is created 0700).
        migrate_to: stop at this schema version (tests build every earlier schema with it).
        on_wait: called with one line when a write has to wait for another process's lock
            (the CLI prints it on stderr); the wait lasts up to config.store_lock_timeout().
    Returns:
        a connection in autocommit mode; group writes with ``transaction(conn)``. Every
        SQLite failure it meets later is a StoreError too (see ``store_error``).
    Raises:
        StoreDamaged for a damaged or empty file; StoreLocked when another process holds the
        lock too long; StoreFull; StoreError for a newer schema or an unwritable data home.
    """
    from tessera.core.config import store_lock_timeout

    path = Path(path) if path is not None else db_path()
    timeout = store_lock_timeout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            _create(path, SCHEMA_VERSION if migrate_to is None else migrate_to)
        elif path.stat().st_size == 0:
            raise StoreDamaged(
                f"the store {path} is empty (0 bytes): its content was lost outside Tessera, so it is not re-created over it",
                hint="restore it from a backup, or remove the file to start a new, empty store")
        _make_private(path)
    except OSError as exc:
        raise StoreError(f"cannot create the store in {path.parent}: {exc.strerror}", hint="set TESSERA_HOME") from None
    conn = _open(path, timeout, on_wait)
    try:
        migrate(conn, SCHEMA_VERSION if migrate_to is None else migrate_to)
    except BaseException:
        conn.close()
        raise
    return conn


def _open(path: Path, timeout: float, on_wait: Callable[[str], None] | None) -> StoreConnection:
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False,
                               factory=StoreConnection)
    except sqlite3.Error as exc:
        raise store_error(exc, path, timeout) or StoreError(f"cannot open the store {path}: {exc}") from None
    conn.path, conn.lock_timeout, conn.on_wait, conn.memo = path, timeout, on_wait, {}
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _create(path: Path, version: int) -> None:
    """Build a new store in a temporary file (mode 0600) and link it in as ``path``, unless
    another process got there first (then theirs is used)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.new-")
    os.close(fd)
    try:
        conn = _open(Path(tmp), 30.0, None)
        try:
            migrate(conn, version)
            # fold the WAL back into the file now, where a failure is seen: close() would swallow
            # it (a full disk), and the file linked in below would lack the schema's pages
            if conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] != 0 or os.path.getsize(tmp + "-wal"):
                raise sqlite3.OperationalError("the new store's write-ahead log could not be folded into it")
        except sqlite3.Error as exc:
            raise store_error(exc, path) or StoreFull(
                f"cannot create the store {path}: {exc}; nothing was written",
                hint="free some space and run the command again, or set TESSERA_HOME to a disk with room") from None
        finally:
            conn.close()
        try:
            os.link(tmp, path)  # never replaces: a store another process made meanwhile wins
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.rename(tmp, path)
    finally:
        for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _make_private(path: Path) -> None:
    """Stores made by older versions (or copied in) may be readable by others: make them 0600."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)


# extended result codes keep the primary code in their low byte
_FULL, _BUSY, _LOCKED, _CORRUPT, _NOTADB = (sqlite3.SQLITE_FULL, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
                                            sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_UNWRITABLE = (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PERM,
               sqlite3.SQLITE_NOMEM)
_LOW_SPACE = 1 << 20  # an I/O error with less free space than this is reported as a full disk


def store_error(exc: sqlite3.Error, path: Path, timeout: float | None = None) -> StoreError | None:
    """The one-line StoreError for a failure of the store's environment (disk full, locked,
    damaged, unwritable), or None for anything else (a bug, which stays what it is)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    primary = code & 0xFF
    if primary == _FULL or (primary == sqlite3.SQLITE_IOERR and _free_space(path) < _LOW_SPACE):
        return StoreFull(
            f"the disk holding the data home {path.parent} is full: nothing was written, and everything stored before is intact",
            hint="free some space and run the command again, or set TESSERA_HOME to a disk with room")
    if primary in (_BUSY, _LOCKED):
        from tessera.core.store.holders import holder_text

        waited = f"waited {timeout:g} s" if timeout is not None else "gave up waiting"
        return StoreLocked(
            f"the store {path} is locked by {holder_text(path)}; {waited} for it",
            hint="let it finish or end it; to wait longer, set store_lock_timeout = SECONDS in config.toml "
                 "or TESSERA_LOCK_TIMEOUT")
    if primary in (_CORRUPT, _NOTADB):
        return StoreDamaged(
            f"the store {path} is damaged: {exc}",
            hint="`tessera events verify` says what is damaged; to start a new store, move the file away and keep it for recovery")
    if primary in _UNWRITABLE:
        return StoreError(f"cannot use the store {path}: {exc}",
                          hint="check the file and its directory are yours and writable, or set TESSERA_HOME")
    return None


def _free_space(path: Path) -> int:
    import shutil

    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return 1 << 62


def _translating(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a cursor method so SQLite's failures of the store's environment become StoreErrors."""
    import functools

    @functools.wraps(method)
    def call(self: StoreCursor, *args: Any) -> Any:
        try:
            return method(self, *args)
        except sqlite3.Error as exc:
            conn = self.connection
            error = store_error(exc, conn.path, conn.lock_timeout)
            if error is None:
                raise
            raise error from None

    return call


class StoreCursor(sqlite3.Cursor):
    """A cursor of the store whose failures (disk full, locked, damaged) are StoreErrors, as they
    happen: when a statement runs, and while its rows are read."""

    execute = _translating(sqlite3.Cursor.execute)
    executemany = _translating(sqlite3.Cursor.executemany)
    fetchone = _translating(sqlite3.Cursor.fetchone)
    fetchmany = _translating(sqlite3.Cursor.fetchmany)
    fetchall = _translating(sqlite3.Cursor.fetchall)
    __next__ = _translating(sqlite3.Cursor.__next__)


class StoreConnection(sqlite3.Connection):
    """A connection to the store: its statements run on StoreCursors.

    Attributes (set by connect): path, lock_timeout (seconds), on_wait (or None), memo (facts
    about this store that never change once read, such as its node id and key, kept by the
    module that reads them so a hot path does not read them again).
    """

    path: Path
    lock_timeout: float
    on_wait: Callable[[str], None] | None
    memo: dict[str, Any]

    def cursor(self, factory: Any = None) -> Any:  # type: ignore[override]
        return super().cursor(factory or StoreCursor)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:  # type: ignore[override]
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:  # type: ignore[override]
        return self.cursor().executemany(sql, parameters)


def quick_check(conn: sqlite3.Connection, *, limit: int = 20) -> list[str]:
    """SQLite's ``PRAGMA quick_check``: the problems it finds in the file's structure (at most
    ``limit``), [] when the database is sound."""
    try:  # a plain cursor: the damage is the answer here, not an error
        rows = [r[0] for r in conn.cursor(sqlite3.Cursor).execute(f"PRAGMA quick_check({int(limit)})")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    if rows == ["ok"]:
        return []
    # a row may hold several lines, under a "*** in database main ***" heading
    return [line.strip() for row in rows for line in str(row).splitlines() if line.strip() and not line.startswith("***")]


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version`` (SCHEMA_VERSION: versions kept per component)."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def component_versions(conn: sqlite3.Connection) -> dict[str, int]:
    """Each component's schema version in this store (e.g. ``{"store": 1, "events": 2, ...}``)."""
    from tessera.core.store.migrations import stored_versions

    return stored_versions(conn, schema_version(conn))


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> None:
    """Apply every component's missing migrations, all in one transaction (a crash leaves the old
    schema). ``target`` below SCHEMA_VERSION builds that older global schema (for upgrade tests)."""
    from tessera.core.store import migrations

    if schema_version(conn) == target and (target < SCHEMA_VERSION or _up_to_date(conn)):
        return  # no write lock taken when there is nothing to do
    with transaction(conn):
        current = schema_version(conn)
        if current > SCHEMA_VERSION or current < 0:
            raise StoreError(
                f"the store has schema version {current}, newer than this Tessera understands ({SCHEMA_VERSION})",
                hint="upgrade Tessera",
            )
        if target < current:
            raise StoreError(f"cannot take the store back from schema version {current} to {target}")
        have = migrations.stored_versions(conn, current)
        if target < SCHEMA_VERSION:
            want = migrations.LEGACY_VERSIONS[target]
        else:
            want = migrations.latest_versions()
            _refuse_newer(have, want)
        for component in migrations.components():
            for statement in migrations.statements(component, have.get(component.name, 0),
                                                   want.get(component.name, 0)):
                conn.execute(statement)
        if target >= SCHEMA_VERSION:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_components "
                         "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            conn.executemany("INSERT INTO schema_components(component, version) VALUES (?, ?) "
                             "ON CONFLICT(component) DO UPDATE SET version = excluded.version", list(want.items()))
        conn.execute(f"PRAGMA user_version = {int(target)}")


def _up_to_date(conn: sqlite3.Connection) -> bool:
    from tessera.core.store.migrations import latest_versions, stored_versions

    have, want = stored_versions(conn, SCHEMA_VERSION), latest_versions()
    _refuse_newer(have, want)
    return all(have.get(name, 0) == version for name, version in want.items())


def _refuse_newer(have: dict[str, int], want: dict[str, int]) -> None:
    """A component at a version this Tessera does not know was upgraded by a newer one. (A
    component it does not know at all is left alone: its tables are not ours to use.)"""
    for name, version in have.items():
        if name in want and version > want[name]:
            raise StoreError(
                f"the store's {name} schema is at version {version}, newer than this Tessera understands ({want[name]})",
                hint="upgrade Tessera")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception (Ctrl-C included, and
    a COMMIT that fails, e.g. on a full disk): a change is stored whole or not at all.

    IMMEDIATE takes the write lock at the start, so two processes never interleave a
    read-then-write (the event chain's last hash, a notebook's updates). While another process
    holds it, we wait up to the connection's lock timeout (saying so through ``on_wait``).
    """
    if conn.in_transaction:
        yield conn  # nested: the outer transaction commits
        return
    _begin(conn)
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(StoreError, sqlite3.Error):
                conn.execute("ROLLBACK")  # the error being raised says more than a failed rollback
        raise


_FIRST_TRY = 1.0  # seconds to wait for the lock before telling the user we are waiting


def _begin(conn: sqlite3.Connection) -> None:
    timeout = getattr(conn, "lock_timeout", None)
    on_wait = getattr(conn, "on_wait", None)
    if on_wait is None or timeout is None or timeout <= _FIRST_TRY:
        conn.execute("BEGIN IMMEDIATE")
        return
    conn.execute(f"PRAGMA busy_timeout = {int(_FIRST_TRY * 1000)}")
    try:
        conn.execute("BEGIN IMMEDIATE")
        return
    except StoreLocked:
        from tessera.core.store.holders import holder_text

        on_wait(f"the store is locked by {holder_text(conn.path)}; waiting up to {timeout:g} s for it "
                "(store_lock_timeout in config.toml)")
        conn.execute(f"PRAGMA busy_timeout = {int((timeout - _FIRST_TRY) * 1000)}")
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")


def connect_read_only(path: Path | str | None = None, *, timeout: float = 1.0,
                      store: bool = False) -> sqlite3.Connection | None:
    """Open the store for reading only, creating and migrating nothing (for shell completion,
    which must not make a data home appear or wait long on a writer).

    Args:
        path: the database file (default: db_path()).
        timeout: how long to wait on a lock, in seconds.
        store: return a StoreConnection (its failures are one-line StoreErrors, it has ``path``)
            rather than a plain connection.
    Returns:
        the connection, or None when there is no store yet or it cannot be opened.
    """
    path = Path(path) if path is not None else db_path()
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                               check_same_thread=False, **({"factory": StoreConnection} if store else {}))
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    except (sqlite3.Error, StoreError):
        return None
    if store:
        conn.path, conn.lock_timeout, conn.on_wait, conn.memo = path, timeout, None, {}
    return conn
