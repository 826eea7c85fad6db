"""``tessera restore``: a backup verified whole, then swapped in for the data home.

1. The backup is unpacked into a hidden staging folder beside the home (``.<home>.restoring-<pid>``,
   0700, marked by a ``.tessera-restore-staging`` file): the container checks every byte (the
   digest of a plain file, every sealed chunk of an encrypted one), each file its SHA-256; the
   manifest's schema versions are checked before any file is written, and the free space.
2. Each SQLite file passes ``PRAGMA integrity_check`` and has no component newer than this
   Tessera's; the store's event chains verify (core/events.verify) under the restored key.
3. With the home's lock files held (core/backup/home_locks.py), the staging folder and the home
   are exchanged in one step (Linux renameat2 RENAME_EXCHANGE), then the old home is renamed
   ``<home>.before-restore-<time>`` and kept. Where the exchange is not supported, two renames
   (old home aside, new home in) leave a moment with no home at all; a kill then leaves both
   folders whole beside it.

A restore killed before step 3 leaves the home as it was; killed during it, the old or the new
home is in place. The next restore cleans up: a staging folder still marked is removed, one
without its mark is an old home that was swapped out, and gets its before-restore name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tessera.core.backup import backup_container, backup_manifest, backup_payload, home_locks, home_snapshot, leftovers
from tessera.core.backup.backup_manifest import STORE_FILE, Manifest
from tessera.core.errors import TesseraError, printable
from tessera.core.store.db import SCHEMA_VERSION

STAGING_MARK = ".tessera-restore-staging"
OnProgress = Callable[[int, int], None]


@dataclass
class RestoreReport:
    home: str
    previous: str | None
    files: int
    bytes: int
    created_at: str
    tessera_version: str
    cleaned: list[str]

    def as_dict(self) -> dict:
        return {"home": self.home, "previous": self.previous, "files": self.files, "bytes": self.bytes,
                "backup_created_at": self.created_at, "backup_tessera_version": self.tessera_version}


class RestoreRefused(TesseraError):
    """A backup that unpacked but does not hold a sound home (exit 1)."""


def _staging_prefix(home: Path) -> str:
    return f".{home.name}.restoring-"


def _aside_path(home: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    candidate = home.with_name(f"{home.name}.before-restore-{stamp}")
    n = 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = home.with_name(f"{home.name}.before-restore-{stamp}-{n}")
    return candidate


def clean_leftovers(home: Path) -> list[str]:
    """Tidy what killed restores of ``home`` left: a staging folder still marked is removed; an
    unmarked one holds the old home swapped out just before the kill, and is named as a restore
    names it. Returns the old homes so named."""
    named = []
    prefix = _staging_prefix(home)
    for leftover in sorted(home.parent.glob(prefix + "*")):
        if not leftovers.abandoned(leftover.name, prefix) or leftover.is_symlink() or not leftover.is_dir():
            continue
        if (leftover / STAGING_MARK).exists():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            aside = _aside_path(home)
            os.rename(leftover, aside)
            named.append(str(aside))
    with contextlib.suppress(FileNotFoundError):
        (home / STAGING_MARK).unlink()  # a restore killed right after its exchange
    return named


def _check_databases(staging: Path, manifest: Manifest, where: str) -> None:
    for entry in manifest.files:
        if not entry.sqlite:
            continue
        path = staging / entry.path
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                rows = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
                version, versions = home_snapshot.database_versions(conn)
                if not 0 <= version <= SCHEMA_VERSION:
                    raise backup_manifest.NewerSchema(
                        f"the backup's {entry.path} has schema version {version}, newer than this Tessera understands "
                        f"({SCHEMA_VERSION}); nothing was restored", hint="restore it with a newer Tessera")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise RestoreRefused(f"{where}: {entry.path} is not a sound database ({exc}); nothing was restored",
                                 hint="use another copy of the backup") from None
        if rows != ["ok"]:
            raise RestoreRefused(f"{where}: {entry.path} fails SQLite's integrity check ({rows[0]}); nothing was restored",
                                 hint="use another copy of the backup")
        backup_manifest.refuse_newer(versions, what=entry.path, made_by=manifest.tessera_version)


def _check_events(staging: Path, where: str) -> None:
    from tessera.core import events
    from tessera.core.store.db import StoreError, connect

    try:
        conn = connect(staging / STORE_FILE)
    except StoreError as exc:
        raise RestoreRefused(f"{where}: its store cannot be opened ({exc.message}); nothing was restored",
                             hint="use another copy of the backup") from None
    try:
        verdict = events.verify(conn, sign=False)  # the store comes back as it was backed up
    finally:
        conn.close()
    if not verdict.ok:
        raise RestoreRefused(f"{where}: {events.verdict_error(verdict).message}; nothing was restored",
                             hint="use another copy of the backup")


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` in one step (Linux renameat2 RENAME_EXCHANGE); False
    where that is not supported."""
    import ctypes
    import errno

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def restore(home: Path, file: str, passphrase: Callable[[], bytes], *, replace: bool = False, on_progress: OnProgress | None = None,
            on_stage: Callable[[str], None] | None = None) -> RestoreReport:
    """Replace ``home`` with the backup in ``file``, verified whole first; the old home is kept.

    Args:
        passphrase: asked (called) only when the backup is sealed.
        replace: replace a home that holds a store (it is kept aside); without it such a home is
            refused before any work.
        on_progress: (bytes unpacked, bytes to unpack) as files are unpacked.
        on_stage: told each step ("unpacking", "checking", "replacing").
    Raises:
        BackupUnreadable / SealBroken (damaged, cut short, changed, wrong passphrase), NewerSchema,
        RestoreRefused (a database or an event chain that does not hold), HomeBusy (exit 3);
        in every case nothing in ``home`` was changed.
    """
    from tessera.core.errors import UsageError

    where = printable(file)
    if not Path(file).is_file():
        raise UsageError(f"{where} is not a file", hint="give the backup file `tessera backup` wrote")
    if home.is_symlink():
        home = home.resolve()
    if (home / STORE_FILE).exists() and not replace:
        raise UsageError(f"the data home {printable(str(home))} holds a store; nothing was restored",
                         hint="add --force to replace it; the old home is kept beside it as <home>.before-restore-<time>")
    with home_locks.holding(home):
        pass  # in use now: refused before the work (and checked again, held, for the swap)
    home.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cleaned = clean_leftovers(home)
    staging = home.with_name(f"{_staging_prefix(home)}{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    try:
        (staging / STAGING_MARK).touch(mode=0o600)
        total, done = 0, 0

        def on_manifest(manifest: Manifest) -> None:
            nonlocal total
            backup_manifest.refuse_newer(manifest.components, what="store", made_by=manifest.tessera_version)
            for entry in manifest.files:
                backup_manifest.refuse_newer(entry.components, what=entry.path, made_by=manifest.tessera_version)
            total = manifest.total_bytes
            free = shutil.disk_usage(staging).free
            if total > free:
                from tessera.core.config import format_bytes

                raise TesseraError(f"restoring {where} needs {format_bytes(total)} in {home.parent}, which has "
                                   f"{format_bytes(free)} free; nothing was restored", hint="free some space first")

        def on_bytes(n: int) -> None:
            nonlocal done
            done += n
            if on_progress is not None:
                on_progress(done, total)

        if on_stage is not None:
            on_stage("unpacking")
        with backup_container.reading(file, passphrase) as payload:
            manifest = backup_payload.unpack(payload, staging, where=where, on_manifest=on_manifest, on_bytes=on_bytes)
            payload.finish()
        if on_stage is not None:
            on_stage("checking")
        _check_databases(staging, manifest, where)
        _check_events(staging, where)
        for side in ("-wal", "-shm"):  # the check's connection folded its log back on close
            with contextlib.suppress(FileNotFoundError):
                (staging / (STORE_FILE + side)).unlink()
        if on_stage is not None:
            on_stage("replacing")
        previous = None
        with home_locks.holding(home):
            if home.exists():
                previous = _aside_path(home)
                if _exchange(staging, home):
                    with contextlib.suppress(FileNotFoundError):
                        (home / STAGING_MARK).unlink()
                    os.rename(staging, previous)
                else:
                    os.rename(home, previous)
                    os.rename(staging, home)
                    (home / STAGING_MARK).unlink()
            else:
                os.rename(staging, home)
                (home / STAGING_MARK).unlink()
        leftovers.fsync_dir(home.parent)
        return RestoreReport(str(home), str(previous) if previous else None, len(manifest.files), manifest.total_bytes,
                             manifest.created_at, manifest.tessera_version, cleaned)
    finally:
        if staging.exists() and (staging / STAGING_MARK).exists():
            shutil.rmtree(staging, ignore_errors=True)
