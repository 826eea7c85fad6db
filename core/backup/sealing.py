"""Sealing a backup with a passphrase (PyNaCl, libsodium).

The key is made from the passphrase by argon2id (``nacl.pwhash.argon2id``) with a random salt;
the salt and the cost (opslimit, memlimit) are stored in the backup's header so restore can make
the same key. The body is sealed with libsodium's secretstream (XChaCha20-Poly1305), chunk by
chunk, so a home of any size is sealed and opened in constant memory: each chunk authenticates
its place in the stream (a chunk removed, repeated or moved fails), the last one carries the FINAL
tag (a truncated file has none), and every chunk binds the header's digest as additional data (a
changed header fails). A wrong passphrase and a changed file look the same: a chunk that does not
open.

On disk each chunk is a frame: 4 bytes big-endian length, then the sealed chunk (at most
CHUNK_BYTES + ABYTES, checked before it is read).
"""

from __future__ import annotations

import os
import struct
from typing import Any, BinaryIO

from tessera.core.errors import TesseraError

KDF = "argon2id"
CIPHER = "xchacha20poly1305-secretstream"
CHUNK_BYTES = 1 << 20
_LENGTH = struct.Struct(">I")


class SealBroken(TesseraError):
    """A sealed backup that does not open: wrong passphrase, or changed or cut short (exit 1)."""


def _argon2id() -> Any:
    import nacl.pwhash.argon2id as argon2id

    return argon2id


def new_parameters() -> dict[str, Any]:
    """Fresh KDF parameters for a new backup: a random salt and libsodium's MODERATE cost
    (256 MiB, 3 passes: a backup file is exposed to offline guessing, so more than INTERACTIVE)."""
    argon2id = _argon2id()
    return {"kdf": KDF, "salt": os.urandom(argon2id.SALTBYTES).hex(), "opslimit": argon2id.OPSLIMIT_MODERATE,
            "memlimit": argon2id.MEMLIMIT_MODERATE, "cipher": CIPHER, "chunk_bytes": CHUNK_BYTES}


def derive_key(passphrase: bytes, parameters: dict[str, Any], *, where: str) -> bytes:
    """The stream key for ``passphrase`` under a header's KDF parameters, checked first: a
    header asking for more than libsodium's SENSITIVE cost (1 GiB, 4 passes) or another algorithm
    is refused before any work is done.

    Raises:
        SealBroken naming ``where`` for parameters that are not ours.
    """
    from nacl.bindings import crypto_secretstream_xchacha20poly1305_KEYBYTES as key_bytes

    argon2id = _argon2id()
    try:
        salt = bytes.fromhex(parameters["salt"])
        ops, mem, chunk = parameters["opslimit"], parameters["memlimit"], parameters["chunk_bytes"]
        fine = (parameters["kdf"] == KDF and parameters["cipher"] == CIPHER and len(salt) == argon2id.SALTBYTES
                and all(type(v) is int for v in (ops, mem, chunk))
                and argon2id.OPSLIMIT_MIN <= ops <= argon2id.OPSLIMIT_SENSITIVE
                and argon2id.MEMLIMIT_MIN <= mem <= argon2id.MEMLIMIT_SENSITIVE and chunk == CHUNK_BYTES)
    except (KeyError, TypeError, ValueError, AttributeError):
        fine = False
    if not fine:
        raise SealBroken(f"{where}: the header's encryption parameters are not ones Tessera writes (the file was changed)",
                         hint="use another copy of the backup")
    return argon2id.kdf(key_bytes, passphrase, salt, opslimit=ops, memlimit=mem)


def start(key: bytes) -> tuple[Any, bytes]:
    """(push state, the 24-byte stream header to store in the backup's header)."""
    from nacl.bindings import crypto_secretstream_xchacha20poly1305_init_push, crypto_secretstream_xchacha20poly1305_state

    state = crypto_secretstream_xchacha20poly1305_state()
    return state, crypto_secretstream_xchacha20poly1305_init_push(state, key)


class SealedWriter:
    """A write-only binary stream that seals what is written to it, CHUNK_BYTES at a time, into
    ``out``; ``close`` seals the rest as the FINAL chunk (it does not close ``out``)."""

    def __init__(self, out: BinaryIO, state: Any, associated: bytes):
        self._out, self._state, self._ad = out, state, associated
        self._buffer = bytearray()
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) >= CHUNK_BYTES:
            chunk = bytes(self._buffer[:CHUNK_BYTES])
            del self._buffer[:CHUNK_BYTES]
            self._push(chunk, final=False)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self._push(bytes(self._buffer), final=True)
            self._buffer.clear()
            self.closed = True

    def _push(self, chunk: bytes, *, final: bool) -> None:
        from nacl.bindings import (crypto_secretstream_xchacha20poly1305_push,
                                   crypto_secretstream_xchacha20poly1305_TAG_FINAL,
                                   crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)

        tag = crypto_secretstream_xchacha20poly1305_TAG_FINAL if final else crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
        sealed = crypto_secretstream_xchacha20poly1305_push(self._state, chunk, self._ad, tag)
        self._out.write(_LENGTH.pack(len(sealed)) + sealed)


class SealedReader:
    """A read-only binary stream of what ``SealedWriter`` sealed, opened chunk by chunk from
    ``source`` (positioned at the first frame). Reading past the FINAL chunk gives b"" after
    checking that nothing follows it.

    Raises (from read):
        SealBroken naming ``where``: the first chunk does not open (wrong passphrase or a changed
        file), a later one does not (changed), the file ends before the FINAL chunk (cut short) or
        goes on after it.
    """

    def __init__(self, source: BinaryIO, key: bytes, stream_header: bytes, associated: bytes, *, where: str):
        from nacl.bindings import crypto_secretstream_xchacha20poly1305_init_pull, crypto_secretstream_xchacha20poly1305_state

        self._source, self._ad, self._where = source, associated, where
        self._state = crypto_secretstream_xchacha20poly1305_state()
        from nacl.exceptions import CryptoError

        try:
            crypto_secretstream_xchacha20poly1305_init_pull(self._state, stream_header, key)
        except (CryptoError, ValueError, TypeError):  # a stream header of the wrong size
            raise self._broken("its stream header is damaged") from None
        self._buffer = b""
        self._chunks = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or len(self._buffer) < size):
            self._buffer += self._pull()
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def _broken(self, what: str) -> SealBroken:
        return SealBroken(f"{self._where}: {what}; nothing was restored", hint="use another copy of the backup")

    def _pull(self) -> bytes:
        from nacl.bindings import (crypto_secretstream_xchacha20poly1305_ABYTES, crypto_secretstream_xchacha20poly1305_pull,
                                   crypto_secretstream_xchacha20poly1305_TAG_FINAL)
        from nacl.exceptions import CryptoError

        head = self._source.read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            raise self._broken("the file is cut short (its sealed end is missing)")
        (length,) = _LENGTH.unpack(head)
        if not crypto_secretstream_xchacha20poly1305_ABYTES <= length <= CHUNK_BYTES + crypto_secretstream_xchacha20poly1305_ABYTES:
            raise self._broken(f"sealed chunk {self._chunks + 1} has an impossible length (the file was changed)")
        sealed = self._source.read(length)
        if len(sealed) < length:
            raise self._broken("the file is cut short (its sealed end is missing)")
        try:
            chunk, tag = crypto_secretstream_xchacha20poly1305_pull(self._state, sealed, self._ad)
        except (CryptoError, ValueError, RuntimeError):
            if self._chunks == 0:
                raise SealBroken(f"{self._where}: cannot open it: wrong passphrase, or the file was changed; nothing was restored",
                                 hint="give the passphrase it was made with") from None
            raise self._broken(f"sealed chunk {self._chunks + 1} does not authenticate (the file was changed)") from None
        self._chunks += 1
        if tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL:
            if self._source.read(1):
                raise self._broken("data follows its sealed end (the file was changed)")
            self._ended = True
        return chunk
