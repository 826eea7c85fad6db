"""The backup file's container: what is around the compressed payload.

::

    MAGIC                  b"TESSERA-BACKUP\\n"
    header length          4 bytes, big-endian (at most HEADER_MAX)
    header                 JSON: {"format": 1, "compression": "gzip", "encryption": null | {...}}
    body                   the payload (a tar stream, core/backup/backup_payload.py), gzip-compressed, then
                             plain:  the compressed bytes, then a 32-byte SHA-256 of everything before it
                             sealed: frames of core/backup/sealing.py, each binding SHA-256(magic..header)

Either way every byte of the file is checked: a plain file by its trailing digest (read once,
while the payload is unpacked into a staging folder), a sealed one by its chunks' tags. gzip
(zlib, level 6): in the standard library, streams, and compresses SQLite pages 3-5x at tens of
MB/s; lzma packs a little tighter at a fraction of the speed, and zstandard would be a new
dependency for a gain a backup rarely needs.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import struct
import zlib
from typing import Any, BinaryIO, Callable, Iterator

from tessera.core.backup import sealing
from tessera.core.errors import TesseraError, printable

MAGIC = b"TESSERA-BACKUP\n"
FORMAT = 1
COMPRESSION = "gzip"
HEADER_MAX = 64 * 1024
_LENGTH = struct.Struct(">I")
_DIGEST_BYTES = 32


class BackupUnreadable(TesseraError):
    """A file that is not a whole, unchanged Tessera backup (exit 1)."""


def _unreadable(where: str, what: str) -> BackupUnreadable:
    return BackupUnreadable(f"{where}: {what}; nothing was restored", hint="use another copy of the backup")


class _HashingWriter:
    """Writes through to ``out``, hashing everything (the prefix included); ``close`` appends the digest."""

    def __init__(self, out: BinaryIO, prefix: bytes):
        self._out, self._digest = out, hashlib.sha256(prefix)
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        self._out.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self._out.write(self._digest.digest())
            self.closed = True


class _HashingReader:
    """Reads the ``length`` body bytes of ``source`` hashing them; at their end, compares the
    digest with the trailer."""

    def __init__(self, source: BinaryIO, length: int, prefix: bytes, *, where: str):
        self._source, self._left, self._digest, self._where = source, length, hashlib.sha256(prefix), where
        self._checked = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._left:
            size = self._left
        data = self._source.read(size)
        if len(data) < size:
            raise _unreadable(self._where, "the file is cut short")
        self._left -= len(data)
        self._digest.update(data)
        if self._left == 0 and not self._checked:
            trailer = self._source.read(_DIGEST_BYTES + 1)
            if trailer != self._digest.digest():
                raise _unreadable(self._where, "its checksum does not match its content (the file was changed or cut short)")
            self._checked = True
        return data


def _prefix(header: dict[str, Any]) -> bytes:
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return MAGIC + _LENGTH.pack(len(text)) + text


@contextlib.contextmanager
def writing(out: BinaryIO, *, passphrase: bytes | None) -> Iterator[BinaryIO]:
    """A binary stream for the payload, compressed (and sealed with ``passphrase``) into ``out``.
    The stream is finished (the FINAL chunk or the digest written) when the block ends without an
    exception; ``out`` is left open."""
    header: dict[str, Any] = {"format": FORMAT, "compression": COMPRESSION, "encryption": None}
    if passphrase is not None:
        parameters = sealing.new_parameters()
        state, stream_header = sealing.start(sealing.derive_key(passphrase, parameters, where="the new backup"))
        header["encryption"] = {**parameters, "stream_header": stream_header.hex()}
        prefix = _prefix(header)
        body: Any = sealing.SealedWriter(out, state, hashlib.sha256(prefix).digest())
    else:
        prefix = _prefix(header)
        body = _HashingWriter(out, prefix)
    out.write(prefix)
    compressed = gzip.GzipFile(fileobj=body, mode="wb", compresslevel=6, mtime=0)
    yield compressed
    compressed.close()
    body.close()


def read_header(source: BinaryIO, *, where: str) -> tuple[dict[str, Any], bytes]:
    """(the header, the prefix bytes it was read from), ``source`` left at the body.

    Raises:
        BackupUnreadable when the file is not a backup of this format.
    """
    magic = source.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupUnreadable(f"{where} is not a Tessera backup (it does not start with {MAGIC.strip().decode()})",
                               hint="give a file `tessera backup` wrote")
    raw = source.read(_LENGTH.size)
    (length,) = _LENGTH.unpack(raw) if len(raw) == _LENGTH.size else (HEADER_MAX + 1,)
    if length > HEADER_MAX:
        raise _unreadable(where, "its header is cut short or damaged")
    text = source.read(length)
    try:
        header = json.loads(text)
        known = (isinstance(header, dict) and set(header) == {"format", "compression", "encryption"}
                 and type(header["format"]) is int and header["compression"] == COMPRESSION
                 and isinstance(header["encryption"], (dict, type(None))))
    except (ValueError, UnicodeDecodeError):
        known = False
    if not known or len(text) < length:
        raise _unreadable(where, "its header is damaged")
    if header["format"] > FORMAT:
        raise BackupUnreadable(f"{where} is in backup format {header['format']}, newer than this Tessera reads ({FORMAT})",
                               hint="restore it with a newer Tessera")
    if header["format"] < 1:
        raise _unreadable(where, "its header is damaged")
    return header, MAGIC + raw + text


class _Payload:
    """The decompressed payload as a readable binary stream; ``finish`` reads to the end, so
    every byte of the file has been checked."""

    def __init__(self, compressed: gzip.GzipFile, where: str):
        self._compressed, self._where = compressed, where

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._compressed.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            if isinstance(exc, OSError) and exc.filename is not None:
                raise
            raise _unreadable(self._where, "its compressed content is damaged (the file was changed or cut short)") from None

    def finish(self) -> None:
        while self.read(1 << 20):
            pass


@contextlib.contextmanager
def reading(path: str | os.PathLike, passphrase: Callable[[], bytes]) -> Iterator[_Payload]:
    """The payload of the backup at ``path``, decompressed (and opened, with ``passphrase()``
    asked only when it is sealed) as it is read.

    Raises (here or while reading):
        BackupUnreadable / sealing.SealBroken for a file that is not a whole, unchanged backup
        or a wrong passphrase; OSError when it cannot be read.
    """
    where = printable(str(path))
    with open(path, "rb") as source:
        header, prefix = read_header(source, where=where)
        sealed = header["encryption"]
        if sealed is None:
            size = os.fstat(source.fileno()).st_size
            body_length = size - len(prefix) - _DIGEST_BYTES
            if body_length < 0:
                raise _unreadable(where, "the file is cut short")
            body: Any = _HashingReader(source, body_length, prefix, where=where)
        else:
            key = sealing.derive_key(passphrase(), sealed, where=where)
            try:
                stream_header = bytes.fromhex(sealed.get("stream_header", ""))
            except (TypeError, ValueError):
                raise _unreadable(where, "its header is damaged") from None
            body = sealing.SealedReader(source, key, stream_header, hashlib.sha256(prefix).digest(), where=where)
        yield _Payload(gzip.GzipFile(fileobj=body, mode="rb"), where)
