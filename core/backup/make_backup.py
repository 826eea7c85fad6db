"""``tessera backup``: the data home into one file, written whole or not at all.

The copy is staged in a hidden folder beside FILE (SQLite files through the online backup API),
packed (core/backup/backup_payload.py) through the container (core/backup/backup_container.py)
into a hidden temporary file beside FILE (0600), fsynced, and only then linked in as FILE (or,
with ``force``, renamed over it). A backup killed on the way leaves no FILE, only its hidden
leftovers, which the next backup beside the same FILE removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tessera.core.backup import backup_container, backup_payload, home_snapshot, leftovers
from tessera.core.backup.backup_manifest import Manifest
from tessera.core.errors import TesseraError, UsageError, printable

OnProgress = Callable[[int, int], None]


@dataclass
class BackupReport:
    path: str
    bytes: int
    files: int
    home_bytes: int
    encrypted: bool
    replicas: bool
    skipped: list[str]

    def as_dict(self) -> dict:
        return {"file": self.path, "bytes": self.bytes, "files": self.files, "home_bytes": self.home_bytes,
                "encrypted": self.encrypted, "replicas": self.replicas, "skipped": self.skipped}


def _leftover_prefix(target: Path) -> str:
    return f".{target.name}.backup-"


def _sweep(target: Path) -> None:
    """Remove what a backup to ``target`` killed on the way left (its pid is gone)."""
    prefix = _leftover_prefix(target)
    for leftover in target.parent.glob(prefix + "*"):
        if not leftovers.abandoned(leftover.name, prefix):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                leftover.unlink()


def check_target(file: str, *, force: bool) -> Path:
    """The path to write, refused before any work when it exists (without ``force``), is a
    folder, or its folder does not exist.

    Raises:
        UsageError.
    """
    target = Path(file)
    shown = printable(file)
    if target.is_dir():
        raise UsageError(f"{shown} is a folder", hint="give the path of the backup file to write, e.g. home.tsrbak")
    if not target.parent.is_dir():
        raise UsageError(f"cannot write {shown}: {printable(str(target.parent))} is not a folder",
                         hint="give a path in an existing folder")
    if (target.exists() or target.is_symlink()) and not force:
        raise UsageError(f"{shown} exists; nothing was written", hint="add --force to replace it, or give another path")
    return target


def backup(home: Path, file: str, *, passphrase: bytes | None, replicas: bool, force: bool,
           on_progress: OnProgress | None = None, on_file: Callable[[str], None] | None = None) -> BackupReport:
    """Write a backup of ``home`` to ``file``.

    Args:
        passphrase: seal it with this (None: plain).
        replicas: include peers' replicas (peers/).
        force: replace ``file`` when it exists.
        on_progress: called with (bytes packed, bytes to pack) as files are packed.
        on_file: called with each file's path as it is copied.
    Raises:
        UsageError for a FILE that cannot be written; StoreError for a store that cannot be copied;
        TesseraError for a disk that fills up (nothing is left at FILE).
    """
    from tessera.core.config import store_lock_timeout
    from tessera.core.times import now

    target = check_target(file, force=force)
    _sweep(target)
    prefix = f"{_leftover_prefix(target)}{os.getpid()}."
    staging = Path(tempfile.mkdtemp(prefix=prefix, suffix=".staging", dir=target.parent))  # 0700
    fd, temporary = tempfile.mkstemp(prefix=prefix, suffix=".partial", dir=target.parent)  # 0600
    try:
        try:
            snapshot = home_snapshot.take(home, staging, replicas=replicas, timeout=store_lock_timeout(),
                                          leave_out=target.resolve(), on_file=on_file)
            manifest = Manifest(_version(), now(), snapshot.components, replicas, tuple(snapshot.files))
            total, done = manifest.total_bytes, 0

            def on_bytes(n: int) -> None:
                nonlocal done
                done += n
                if on_progress is not None:
                    on_progress(done, total)

            with os.fdopen(fd, "wb") as out:
                fd = -1
                with backup_container.writing(out, passphrase=passphrase) as payload:
                    backup_payload.write(payload, manifest, staging, on_bytes=on_bytes)
                out.flush()
                os.fsync(out.fileno())
            size = os.path.getsize(temporary)
            if force:
                os.replace(temporary, target)
            else:
                try:
                    os.link(temporary, target)  # never replaces a FILE that appeared meanwhile
                except FileExistsError:
                    raise UsageError(f"{printable(file)} appeared while the backup was written; nothing was written",
                                     hint="add --force to replace it, or give another path") from None
        except OSError as exc:
            if exc.filename is None and exc.errno is not None:
                import errno

                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise TesseraError(f"the disk holding {printable(str(target.parent))} is full; no backup was written",
                                       hint="free some space, or write the backup to another disk") from None
            raise
        leftovers.fsync_dir(target.parent)
        return BackupReport(str(target), size, len(manifest.files), total, passphrase is not None, replicas, snapshot.skipped)
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        shutil.rmtree(staging, ignore_errors=True)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tessera")
    except PackageNotFoundError:
        return "unknown"

