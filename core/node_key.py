"""This node's Ed25519 key (PyNaCl): it signs the heads of the node's event chain, and will be its
identity among peers. One key per store, in the file ``<store>.key`` beside it (``tessera.db.key``
in the data home), created 0600 and never printed or logged: only its public half is shown.

nacl is imported here only, when a head is signed or checked (start-up stays light).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from tessera.core.errors import TesseraError

_SEED_BYTES = 32
_loaded: dict[Path, Any] = {}


def key_path(store_path: Path) -> Path:
    """Where the key of the store at ``store_path`` is kept."""
    return store_path.with_name(store_path.name + ".key")


def exists(store_path: Path) -> bool:
    return key_path(store_path).exists()


def signing_key(store_path: Path, *, create: bool = True) -> Any:
    """The store's nacl SigningKey, made (0600, written whole before it is used) when missing and
    ``create``; None when missing and not ``create``.

    Raises:
        TesseraError when the file cannot be read or is not a key (its content is not shown).
    """
    path = key_path(Path(store_path))
    if path in _loaded:
        return _loaded[path]
    from nacl.signing import SigningKey

    try:
        seed = path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
        seed = _create(path, SigningKey.generate())
    except OSError as exc:
        raise TesseraError(f"cannot read the node key {path}: {exc.strerror}",
                           hint="check the file is yours and readable (mode 0600)") from None
    if len(seed) != _SEED_BYTES:
        raise TesseraError(f"the node key {path} is not a key ({len(seed)} bytes, not {_SEED_BYTES})",
                           hint="restore it from a backup; without it this node's chain heads cannot be signed")
    key = _loaded[path] = SigningKey(seed)
    return key


def _create(path: Path, key: Any) -> bytes:
    """Write the key to a private temporary file and link it in, so no one ever reads half a
    key; when another process made one first, theirs is used."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.new-")  # mkstemp: 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(bytes(key))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes()
    finally:
        os.unlink(tmp)
    return bytes(key)


def public_key_hex(key: Any) -> str:
    return bytes(key.verify_key).hex()


def sign(key: Any, message: bytes) -> str:
    """The detached signature of ``message``, hex."""
    return key.sign(message).signature.hex()


def signer(key: Any) -> Callable[[bytes], str]:
    """``sign`` for one key, made once and called often (the event log signs its head in every
    append): it calls libsodium through PyNaCl's bindings with the expanded secret key, skipping
    the ~10 µs SigningKey.sign spends building a SignedMessage. Same signatures as ``sign``."""
    from nacl.bindings import crypto_sign, crypto_sign_seed_keypair

    secret = crypto_sign_seed_keypair(bytes(key))[1]
    size = 64  # crypto_sign returns the signature followed by the message

    def sign_message(message: bytes) -> str:
        return crypto_sign(message, secret)[:size].hex()

    return sign_message


def signature_valid(public_key_hex: str, message: bytes, signature_hex: str) -> bool:
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    try:
        VerifyKey(bytes.fromhex(public_key_hex)).verify(message, bytes.fromhex(signature_hex))
        return True
    except (BadSignatureError, ValueError, TypeError):
        return False
