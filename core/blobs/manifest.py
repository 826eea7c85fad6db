"""A blob's manifest and its id: what makes a blob content-addressed and verifiable chunk by chunk.

A blob is cut into chunks of ``chunk_size`` bytes (the last one shorter). Its manifest is its
size, its chunk size and each chunk's SHA-256; its id is the SHA-256 of the manifest's canonical
bytes (``ID_PREFIX``, the chunk size and the size as 8-byte big-endian numbers, then the chunk
hashes). So the same content with the same chunk size has the same id on every node, a manifest
received from a peer is checked against the id before any chunk is asked for, and each chunk is
checked against the manifest before it is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tessera.core.errors import UsageError, printable

ID_PREFIX = b"tessera-blob-v1\x00"
HASH_BYTES = 32
MIN_CHUNK_SIZE = 16 * 1024
MAX_CHUNK_SIZE = 2 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 1024 * 1024
# A manifest travels in one frame (core/peers/frames.MAX_FRAME_BYTES, 4 MiB); what is not chunk
# hashes (the map, its keys, the id, the numbers) is far under the room kept here.
_MANIFEST_ROOM = 4 * 1024 * 1024 - 4096
MAX_CHUNKS = _MANIFEST_ROOM // HASH_BYTES  # 130 944 chunks: 127 GiB at 1 MiB a chunk


class ManifestMismatch(Exception):
    """A manifest or chunk that does not match what it must (the message says what)."""


@dataclass(frozen=True)
class Manifest:
    size: int
    chunk_size: int
    chunks: bytes  # each chunk's SHA-256, concatenated

    @property
    def chunk_count(self) -> int:
        return len(self.chunks) // HASH_BYTES

    def chunk_hash(self, index: int) -> bytes:
        return self.chunks[index * HASH_BYTES:(index + 1) * HASH_BYTES]

    def chunk_span(self, index: int) -> tuple[int, int]:
        """(offset, length) of chunk ``index`` in the blob."""
        offset = index * self.chunk_size
        return offset, min(self.chunk_size, self.size - offset)

    @property
    def blob_id(self) -> str:
        return blob_id(self.size, self.chunk_size, self.chunks)


def blob_id(size: int, chunk_size: int, chunks: bytes) -> str:
    """The id of the blob with this manifest (lowercase hex SHA-256)."""
    digest = hashlib.sha256(ID_PREFIX)
    digest.update(chunk_size.to_bytes(8, "big"))
    digest.update(size.to_bytes(8, "big"))
    digest.update(chunks)
    return digest.hexdigest()


def chunk_count(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


def check_chunk_size(chunk_size: int) -> int:
    """``chunk_size`` when it is allowed.

    Raises:
        UsageError naming the bounds.
    """
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise UsageError(f"a chunk size of {chunk_size} bytes is out of bounds",
                         hint=f"use {MIN_CHUNK_SIZE // 1024} KiB to {MAX_CHUNK_SIZE // 1024 // 1024} MiB, e.g. --chunk-size 1MiB")
    return chunk_size


def check_fits(size: int, chunk_size: int, what: str) -> None:
    """Refuse a blob whose manifest would not fit in one frame, before any byte is read.

    Raises:
        UsageError saying how many chunks fit and which chunk size would do.
    """
    count = chunk_count(size, chunk_size)
    if count <= MAX_CHUNKS:
        return
    needed = -(-size // MAX_CHUNKS)
    better = next((s for s in (2 ** n * 1024 for n in range(4, 12)) if s >= needed and s > chunk_size), None)
    hint = (f"use --chunk-size {better // 1024}KiB or more" if better is not None
            else f"split it: at {MAX_CHUNK_SIZE // 1024 // 1024} MiB a chunk a blob holds at most "
                 f"{MAX_CHUNKS * MAX_CHUNK_SIZE // 1024 ** 3} GiB")
    raise UsageError(f"{printable(what)} is {size} bytes: {count} chunks of {chunk_size} bytes, but a manifest holds "
                     f"at most {MAX_CHUNKS} chunks (one frame)", hint=hint)


def verify(expected_id: str, size: int, chunk_size: int, chunks: bytes) -> Manifest:
    """The manifest, once it matches ``expected_id`` and is consistent.

    Raises:
        ManifestMismatch: the hashes do not give the id, or size, chunk size and chunk count
        disagree.
    """
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE or size < 0:
        raise ManifestMismatch(f"a manifest with chunk size {chunk_size} and size {size} is not one Tessera makes")
    if len(chunks) % HASH_BYTES or len(chunks) // HASH_BYTES != chunk_count(size, chunk_size):
        raise ManifestMismatch(f"a manifest of {size} bytes in chunks of {chunk_size} lists "
                               f"{len(chunks) / HASH_BYTES:g} chunk hashes, not {chunk_count(size, chunk_size)}")
    if blob_id(size, chunk_size, chunks) != expected_id:
        raise ManifestMismatch(f"the manifest does not hash to the blob id {expected_id[:16]}…")
    return Manifest(size, chunk_size, chunks)


def check_chunk(manifest: Manifest, index: int, data: bytes) -> None:
    """Raises ManifestMismatch unless ``data`` is chunk ``index`` of the manifest's blob."""
    if not 0 <= index < manifest.chunk_count:
        raise ManifestMismatch(f"chunk {index} is not in a blob of {manifest.chunk_count} chunks")
    if len(data) != manifest.chunk_span(index)[1]:
        raise ManifestMismatch(f"chunk {index} is {len(data)} bytes, not {manifest.chunk_span(index)[1]}")
    if hashlib.sha256(data).digest() != manifest.chunk_hash(index):
        raise ManifestMismatch(f"chunk {index}'s SHA-256 does not match the manifest")


class Chunker:
    """Hashes a stream chunk by chunk as it is written: ``feed(data)`` any number of times, then
    ``manifest()``."""

    def __init__(self, chunk_size: int):
        self.chunk_size = chunk_size
        self.size = 0
        self._hashes = bytearray()
        self._current = hashlib.sha256()
        self._filled = 0

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self.chunk_size - self._filled)
            self._current.update(view[:take])
            self._filled += take
            self.size += take
            view = view[take:]
            if self._filled == self.chunk_size:
                self._hashes += self._current.digest()
                self._current, self._filled = hashlib.sha256(), 0

    def manifest(self) -> Manifest:
        hashes = bytes(self._hashes) + (self._current.digest() if self._filled else b"")
        return Manifest(self.size, self.chunk_size, hashes)


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024 ** 2, "mb": 1024 ** 2, "mib": 1024 ** 2}


def parse_chunk_size(text: str) -> int:
    """A chunk size written as bytes or with a binary unit (``65536``, ``64KiB``, ``1MiB``, ``2M``),
    within bounds.

    Raises:
        UsageError naming ``text`` (escaped).
    """
    import re

    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise UsageError(f"'{printable(text)}' is not a chunk size", hint="write bytes or KiB/MiB, e.g. 256KiB or 1MiB")
    return check_chunk_size(int(match.group(1)) * _UNITS[unit])
