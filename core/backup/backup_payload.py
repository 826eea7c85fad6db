"""The payload inside a backup's container: a tar stream (POSIX pax) whose first member is the
manifest (core/backup/backup_manifest.py), then each file it lists, in its order.

Unpacking trusts nothing in the tar: a member must be a regular file the manifest lists, not seen
before, of the size the manifest says, and its SHA-256 must match; it is written (0600, folders
0700) only under the staging folder, at the path the manifest names.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path
from typing import BinaryIO, Callable

from tessera.core.backup import backup_manifest
from tessera.core.backup.backup_container import BackupUnreadable
from tessera.core.backup.backup_manifest import MANIFEST_NAME, Manifest
from tessera.core.private_files import open_private

_BLOCK = 1 << 20
OnBytes = Callable[[int], None]


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = size, 0o600, 0, tarfile.REGTYPE
    return info


class _Counting:
    def __init__(self, source: BinaryIO, on_bytes: OnBytes | None):
        self._source, self._on_bytes = source, on_bytes

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if self._on_bytes is not None and data:
            self._on_bytes(len(data))
        return data


def write(out: BinaryIO, manifest: Manifest, staging: Path, *, on_bytes: OnBytes | None = None) -> None:
    """Write the payload of ``manifest``'s files (read from ``staging``) to ``out``."""
    import io

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        text = manifest.as_bytes()
        tar.addfile(_info(MANIFEST_NAME, len(text)), io.BytesIO(text))
        for entry in manifest.files:
            with open(staging / entry.path, "rb") as source:
                tar.addfile(_info(entry.path, entry.size), _Counting(source, on_bytes))


def _damaged(where: str, what: str) -> BackupUnreadable:
    return BackupUnreadable(f"{where}: {what}; nothing was restored", hint="use another copy of the backup")


def unpack(payload: BinaryIO, staging: Path, *, where: str, on_manifest: Callable[[Manifest], None],
           on_bytes: OnBytes | None = None) -> Manifest:
    """Unpack the payload into ``staging``, each file checked against the manifest;
    ``on_manifest`` is called once the manifest is read, before any file is written (to refuse a
    newer schema, or a backup too big for the disk, before the work).

    Raises:
        BackupUnreadable for a payload that does not match its manifest, as the container's
        readers do for a damaged file, and whatever ``on_manifest`` raises.
    """
    try:
        tar = tarfile.open(fileobj=payload, mode="r|")
    except tarfile.TarError:
        raise _damaged(where, "its content is not a backup's (the file was changed)") from None
    with tar:
        try:
            members = iter(tar)
            first = next(members, None)
            if first is None or first.name != MANIFEST_NAME or not first.isreg() or first.size > backup_manifest.MANIFEST_MAX:
                raise _damaged(where, "its manifest is missing (the file was changed)")
            manifest = backup_manifest.parse(tar.extractfile(first).read(), where=where)
            on_manifest(manifest)
            expected = {entry.path: entry for entry in manifest.files}
            for member in members:
                entry = expected.pop(member.name, None)
                if entry is None or not member.isreg() or member.size != entry.size:
                    raise _damaged(where, f"it holds {member.name[:80]!r}, which its manifest does not list as such")
                target = staging / entry.path
                for parent in reversed(Path(entry.path).parents[:-1]):
                    (staging / parent).mkdir(mode=0o700, exist_ok=True)
                digest = hashlib.sha256()
                source = tar.extractfile(member)
                with open_private(target, "wb") as out:
                    while block := source.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
                        if on_bytes is not None:
                            on_bytes(len(block))
                if digest.hexdigest() != entry.sha256:
                    raise _damaged(where, f"{entry.path} does not match its SHA-256 in the manifest (the file was changed)")
        except tarfile.TarError:
            raise _damaged(where, "its content is damaged (the file was changed)") from None
    if expected:
        raise _damaged(where, f"it lacks {sorted(expected)[0]}, which its manifest lists (the file was cut short)")
    return manifest

