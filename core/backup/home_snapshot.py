"""What a backup takes from the data home, copied into a staging folder while writers run.

In: the store (``tessera.db``) and every other SQLite file, each copied with SQLite's online
backup API (``sqlite3.Connection.backup``: one step under one read transaction, so the copy is
the database as of one moment while writers go on in WAL mode); the node key ``tessera.db.key``;
the blobs the copied store lists as complete (``blobs/<id>``); and every other regular file
(relationships.yaml, macros.txt, shell_history, conflicts/...).

Optional (``replicas``): ``peers/``, the replicas of what peers shared (sync fetches them again).

Never: the cache folder (``cache/``), lock files (``*.lock``), the running serve's ticket
(``serve.ticket``), SQLite's ``-wal``/``-shm``/``-journal`` files (the copy holds their content),
fetches under way (``blobs/partial/``), hidden files (temporary files of a write under way), and
symbolic links or other non-regular files (reported, not followed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tessera.core.backup.backup_manifest import STORE_FILE, FileEntry
from tessera.core.private_files import open_private

SQLITE_MAGIC = b"SQLite format 3\x00"
NEVER_TOP = frozenset({"cache", "serve.ticket"})
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
BLOBS, PARTIAL, PEERS = "blobs", "partial", "peers"
_READ_BYTES = 1 << 20


@dataclass
class Snapshot:
    files: list[FileEntry]
    skipped: list[str]  # paths left out that a user may have expected in (links, special files)
    components: dict[str, int]


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _private_dirs(root: Path, relative: str) -> Path:
    target = root / relative
    for parent in reversed(target.relative_to(root).parents[:-1]):
        (root / parent).mkdir(mode=0o700, exist_ok=True)
    return target


def database_versions(conn: sqlite3.Connection) -> tuple[int, dict[str, int]]:
    """(``PRAGMA user_version``, each component's schema version) of an SQLite file; no
    components for one that is not a Tessera store (or from a user_version this one never wrote)."""
    from tessera.core.store.migrations import COMPONENTS_SCHEMA, LEGACY_VERSIONS, stored_versions

    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version in LEGACY_VERSIONS:
        return version, stored_versions(conn, version)
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_components'").fetchone()
    return version, stored_versions(conn, COMPONENTS_SCHEMA) if version >= COMPONENTS_SCHEMA and has_table else {}


def copy_database(source: Path, target: Path, *, timeout: float) -> dict[str, int]:
    """Copy the SQLite database ``source`` to the new file ``target`` (0600) with the online
    backup API, and return its component versions.

    Raises:
        StoreError (locked, damaged, unreadable) naming ``source``.
    """
    from tessera.core.store import db

    open_private(target, "wb").close()  # SQLite keeps the mode of a file that exists
    try:
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)  # pages=-1: the whole database in one step, under one read transaction
                problems = db.quick_check(dst)
                if problems:
                    raise db.StoreDamaged(f"the database {source} is damaged: {problems[0]}",
                                          hint="`tessera events verify` and `tessera doctor` say more; nothing was backed up")
                versions = database_versions(dst)[1]
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise db.store_error(exc, source, timeout) or db.StoreError(f"cannot copy the database {source}: {exc}") from None
    return versions


def _link_or_copy(source: Path, target: Path) -> None:
    """Blob files never change once written (content-addressed, replaced whole): a hard link
    costs no space; another file system gets a copy."""
    try:
        os.link(source, target)
    except OSError:
        with open(source, "rb") as src, open_private(target, "wb") as dst:
            shutil.copyfileobj(src, dst, _READ_BYTES)


def _copy(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open_private(target, "wb") as dst:
        shutil.copyfileobj(src, dst, _READ_BYTES)


def _excluded(parts: tuple[str, ...], *, replicas: bool) -> bool:
    name = parts[-1]
    if any(p.startswith(".") for p in parts) or name.endswith(".lock") or name.endswith(SQLITE_SIDE_FILES):
        return True
    if parts[0] in NEVER_TOP and len(parts) >= 1:
        return True
    if parts[0] == BLOBS and len(parts) > 1 and parts[1] == PARTIAL:
        return True
    return parts[0] == PEERS and not replicas


def _complete_blobs(store_copy: Path) -> set[str]:
    conn = sqlite3.connect(store_copy)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM blobs WHERE complete = 1")}
    except sqlite3.Error:  # a store from before blobs
        return set()
    finally:
        conn.close()


def take(home: Path, staging: Path, *, replicas: bool, timeout: float, leave_out: Path | None = None,
         on_file: Callable[[str], None] | None = None) -> Snapshot:
    """Copy what a backup holds from ``home`` into ``staging`` (an empty 0700 folder) and
    describe each file (size, SHA-256, and for SQLite files their schema versions). The store is
    copied first, so the blobs taken are those it lists. ``leave_out``: the backup file being
    written, when it is inside the home (an older one it replaces is not taken into the new).

    Raises:
        StoreError when the store is missing or cannot be copied; OSError for a file that cannot be read.
    """
    from tessera.core.store.db import StoreError

    store = home / STORE_FILE
    if not store.is_file():
        raise StoreError(f"there is no store to back up in {home} (no {STORE_FILE})",
                         hint="set TESSERA_HOME to the data home to back up (`tessera info` shows it)")
    files: list[FileEntry] = []
    skipped: list[str] = []

    def add(relative: str, source: Path, sqlite: bool) -> None:
        if on_file is not None:
            on_file(relative)
        target = _private_dirs(staging, relative)
        components: dict[str, int] = {}
        if sqlite:
            components = copy_database(source, target, timeout=timeout)
        elif relative.startswith(BLOBS + "/"):
            _link_or_copy(source, target)
        else:
            _copy(source, target)
        files.append(FileEntry(relative, target.stat().st_size, sha256_of(target), sqlite, components))

    add(STORE_FILE, store, True)
    blobs = _complete_blobs(staging / STORE_FILE)
    for directory, dirnames, filenames in os.walk(home):
        dirnames.sort()
        here = Path(directory)
        for name in sorted(filenames) + [d for d in dirnames if (here / d).is_symlink()]:
            path = here / name
            parts = path.relative_to(home).parts
            relative = "/".join(parts)
            if relative == STORE_FILE or _excluded(parts, replicas=replicas) or (leave_out is not None and path.resolve() == leave_out):
                continue
            if path.is_symlink() or not path.is_file():
                skipped.append(relative)
                continue
            if parts[0] == BLOBS and (len(parts) != 2 or name not in blobs):
                continue  # not (yet) a complete blob of the copied store
            add(relative, path, is_sqlite(path))
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()
                       and not _excluded((here / d).relative_to(home).parts, replicas=replicas)]
    return Snapshot(files, skipped, files[0].components)
