"""The content-addressed blob store: files under the data home's ``blobs/`` (0700; each file 0600),
described by the store's ``blobs`` table (core/blobs_schema.py).

- ``blobs/<id>``: a whole blob, verified, written atomically (a temporary file in the same
  directory, fsync, rename, fsync of the directory): a blob file is whole or absent;
- ``blobs/partial/<id>.part``: a fetch under way (core/blobs/fetch.py), its verified chunks
  recorded in ``blob_progress``.

Library API: ``put_bytes``/``put_file`` (the id), ``read_bytes`` (verified), ``has``, ``info``,
``all_blobs``, ``remove``; grants are core/blobs/grants.py.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

from tessera.core.blobs import manifest as manifests
from tessera.core.blobs.manifest import DEFAULT_CHUNK_SIZE, Manifest
from tessera.core.errors import TesseraError, UsageError, printable

DIRECTORY = "blobs"
PARTIAL_DIRECTORY = "partial"
_COPY_BYTES = 1024 * 1024


class BlobError(TesseraError):
    """A blob that cannot be stored or read here (disk full, a damaged file): exit 1."""


@dataclass(frozen=True)
class BlobInfo:
    blob_id: str
    size: int
    chunk_size: int
    complete: bool
    name: str
    added_at: str
    manifest: Manifest


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (path.stat().st_mode & 0o777) != 0o700:
        os.chmod(path, 0o700)
    return path


def blobs_dir(conn: sqlite3.Connection) -> Path:
    """The data home's ``blobs/`` (made 0700 when missing)."""
    return _private_dir(Path(conn.path).parent / DIRECTORY)


def blob_path(conn: sqlite3.Connection, blob_id: str) -> Path:
    return blobs_dir(conn) / blob_id


def partial_path(conn: sqlite3.Connection, blob_id: str) -> Path:
    return _private_dir(blobs_dir(conn) / PARTIAL_DIRECTORY) / f"{blob_id}.part"


def _mib(n: int) -> str:
    return f"{n / 1024 ** 2:.1f} MiB"


def disk_full(exc: OSError, where: Path, need: int | None = None, *,
              hint: str = "free some space and run again; nothing stored before is lost") -> BlobError:
    """The one-line error for a full disk (``exc`` ENOSPC/EDQUOT/EFBIG) while writing in ``where``."""
    free = shutil.disk_usage(where).free if where.exists() else 0
    want = f" (writing {_mib(need)}, {_mib(free)} free)" if need is not None else f" ({_mib(free)} free)"
    return BlobError(f"the disk holding {where} is full{want}", hint=hint)


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def check_room(where: Path, need: int) -> None:
    """Refuse before writing when the disk holding ``where`` has less than ``need`` bytes free.

    Raises:
        BlobError.
    """
    free = shutil.disk_usage(where).free
    if free < need:
        raise BlobError(f"the disk holding {where} has {_mib(free)} free, and this needs {_mib(need)}",
                        hint="free some space and run again")


def _row(conn: sqlite3.Connection, blob_id: str) -> tuple | None:
    return conn.execute("SELECT id, size, chunk_size, complete, name, added_at, chunks FROM blobs WHERE id = ?",
                        (blob_id,)).fetchone()


def info(conn: sqlite3.Connection, blob_id: str) -> BlobInfo | None:
    """What the store knows of ``blob_id`` (held or being fetched), or None."""
    row = _row(conn, blob_id)
    if row is None:
        return None
    return BlobInfo(row[0], row[1], row[2], bool(row[3]), row[4], row[5], Manifest(row[1], row[2], bytes(row[6])))


def all_blobs(conn: sqlite3.Connection) -> list[BlobInfo]:
    """Every blob held or being fetched, newest first."""
    return [info(conn, r[0]) for r in conn.execute("SELECT id FROM blobs ORDER BY added_at DESC, id")]


def has(conn: sqlite3.Connection, blob_id: str) -> bool:
    """Whether this node holds the whole blob (its row complete and its file there)."""
    row = conn.execute("SELECT complete FROM blobs WHERE id = ?", (blob_id,)).fetchone()
    return bool(row and row[0]) and (Path(conn.path).parent / DIRECTORY / blob_id).is_file()


def resolve(conn: sqlite3.Connection, text: str) -> str:
    """The id of the blob ``text`` names: its id or a unique start of it (10+ characters).

    Raises:
        UsageError naming ``text`` (escaped).
    """
    lowered = text.strip().lower()
    if len(lowered) >= 10 and all(c in "0123456789abcdef" for c in lowered):
        found = [r[0] for r in conn.execute("SELECT id FROM blobs WHERE id >= ? AND id < ? ORDER BY id",
                                            (lowered, lowered + "g"))]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise UsageError(f"'{printable(text)}' is the start of several blobs' ids", hint="give more of the id")
    raise UsageError(f"no blob '{printable(text)}' in this node's store", hint="see `tessera blob list`")


def put_bytes(conn: sqlite3.Connection, data: bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
              grant_to: Iterable[str] = (), name: str = "") -> str:
    """Store ``data`` as a blob (granted to these node ids); its id."""
    import io

    manifests.check_chunk_size(chunk_size)
    manifests.check_fits(len(data), chunk_size, "the data")
    return _put(conn, io.BytesIO(data), len(data), chunk_size=chunk_size, grant_to=grant_to, name=name)


def put_file(conn: sqlite3.Connection, path: Path, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
             grant_to: Iterable[str] = ()) -> str:
    """Store the file at ``path`` as a blob (read once: copied and hashed in one pass); its id.

    Raises:
        UsageError (not a readable regular file, chunk size out of bounds, a manifest over one
        frame: checked before a byte is read), BlobError (the disk is full).
    """
    import stat

    manifests.check_chunk_size(chunk_size)
    try:
        kind = os.stat(path).st_mode
        if not stat.S_ISREG(kind):  # checked before opening: opening a FIFO would wait for a writer
            raise UsageError(f"{printable(str(path))} is not a regular file", hint="give a file (a recording, an export)")
        source = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UsageError(f"cannot read {printable(str(path))}: {exc.strerror}", hint="give a readable file") from None
    with source:
        st = os.fstat(source.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{printable(str(path))} is not a regular file", hint="give a file (a recording, an export)")
        manifests.check_fits(st.st_size, chunk_size, str(path))
        return _put(conn, source, st.st_size, chunk_size=chunk_size, grant_to=grant_to, name=Path(path).name)


def _put(conn: sqlite3.Connection, source: BinaryIO, size: int, *, chunk_size: int, grant_to: Iterable[str],
         name: str) -> str:
    import tempfile

    from tessera.core.blobs import grants
    from tessera.core.store.db import transaction
    from tessera.core.times import now

    directory = blobs_dir(conn)
    check_room(directory, size)
    chunker = manifests.Chunker(chunk_size)
    fd, temporary = tempfile.mkstemp(prefix=".put-", dir=directory)  # 0600
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                while piece := source.read(_COPY_BYTES):
                    chunker.feed(piece)
                    out.write(piece)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(exc, directory, size, hint="free some space and put it again; nothing was stored") from None
            raise BlobError(f"cannot write the blob into {directory}: {exc.strerror}",
                            hint="check the data home's permissions and space") from None
        made = chunker.manifest()
        if made.chunk_count > manifests.MAX_CHUNKS:  # the file grew while we read it
            raise UsageError(f"{printable(name or 'the data')} grew to {made.size} bytes while it was read",
                             hint="put it again once it is written")
        blob_id = made.blob_id
        final = directory / blob_id
        os.replace(temporary, final)
        _sync_directory(directory)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    with transaction(conn):
        conn.execute("INSERT INTO blobs(id, size, chunk_size, chunks, complete, name, added_at) VALUES (?, ?, ?, ?, 1, ?, ?) "
                     "ON CONFLICT(id) DO UPDATE SET complete = 1, name = CASE WHEN blobs.name = '' THEN excluded.name "
                     "ELSE blobs.name END",
                     (blob_id, made.size, chunk_size, made.chunks, name, now()))
        conn.execute("DELETE FROM blob_progress WHERE blob_id = ?", (blob_id,))
        grants.grant(conn, blob_id, list(grant_to))
    _drop_partial(conn, blob_id)
    return blob_id


def _sync_directory(directory: Path) -> None:
    """fsync a directory, so a rename into it survives a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_partial(conn: sqlite3.Connection, blob_id: str) -> None:
    part = Path(conn.path).parent / DIRECTORY / PARTIAL_DIRECTORY / f"{blob_id}.part"
    if part.exists():
        part.unlink()


def install(conn: sqlite3.Connection, blob_id: str, part: Path) -> Path:
    """Move a fetched and verified partial file into place and mark the blob complete (the
    rename first: a kill between the two leaves a whole file that ``fetch`` finds and verifies)."""
    from tessera.core.store.db import transaction

    final = blobs_dir(conn) / blob_id
    os.replace(part, final)
    _sync_directory(final.parent)
    with transaction(conn):
        conn.execute("UPDATE blobs SET complete = 1 WHERE id = ?", (blob_id,))
        conn.execute("DELETE FROM blob_progress WHERE blob_id = ?", (blob_id,))
    return final


def install_existing(conn: sqlite3.Connection, blob_id: str) -> Path:
    """Mark complete a blob whose whole file is in place already (a fetch killed between the
    rename and the row's update; the caller verified the file)."""
    from tessera.core.store.db import transaction

    with transaction(conn):
        conn.execute("UPDATE blobs SET complete = 1 WHERE id = ?", (blob_id,))
        conn.execute("DELETE FROM blob_progress WHERE blob_id = ?", (blob_id,))
    _drop_partial(conn, blob_id)
    return blobs_dir(conn) / blob_id


def verify_file(path: Path, manifest: Manifest) -> list[int]:
    """The indices of the chunks of the file at ``path`` that do not match ``manifest`` (those
    missing or short included); [] when the file is the blob, byte for byte."""
    import hashlib

    bad = []
    with open(path, "rb") as source:
        for index in range(manifest.chunk_count):
            offset, length = manifest.chunk_span(index)
            source.seek(offset)
            data = source.read(length)
            if len(data) != length or hashlib.sha256(data).digest() != manifest.chunk_hash(index):
                bad.append(index)
    return bad


def read_bytes(conn: sqlite3.Connection, blob_id: str) -> bytes:
    """The whole blob, every chunk checked against its manifest.

    Raises:
        UsageError (not held here), BlobError (its file is damaged: the message says which chunk).
    """
    found = info(conn, blob_id)
    if found is None or not found.complete:
        raise UsageError(f"this node does not hold blob {printable(blob_id[:16])}",
                         hint="fetch it: tessera blob get ID --from PEER")
    path = Path(conn.path).parent / DIRECTORY / blob_id
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BlobError(f"cannot read blob {blob_id[:16]} at {path}: {exc.strerror}",
                        hint="remove it (tessera blob rm ID) and fetch it again") from None
    for index in range(found.manifest.chunk_count):
        offset, length = found.manifest.chunk_span(index)
        try:
            manifests.check_chunk(found.manifest, index, data[offset:offset + length])
        except manifests.ManifestMismatch as exc:
            raise BlobError(f"blob {blob_id[:16]} at {path} is damaged: {exc}",
                            hint="remove it (tessera blob rm ID) and fetch it again from a peer") from None
    if len(data) != found.size:
        raise BlobError(f"blob {blob_id[:16]} at {path} is {len(data)} bytes, not {found.size}",
                        hint="remove it (tessera blob rm ID) and fetch it again from a peer")
    return data


def remove(conn: sqlite3.Connection, blob_id: str) -> bool:
    """Forget the blob (its grants and progress too) and delete its files; False when unknown."""
    from tessera.core.store.db import transaction

    with transaction(conn):
        removed = conn.execute("DELETE FROM blobs WHERE id = ?", (blob_id,)).rowcount > 0
    for path in (Path(conn.path).parent / DIRECTORY / blob_id,):
        if path.exists():
            path.unlink()
    _drop_partial(conn, blob_id)
    return removed
