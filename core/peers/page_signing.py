"""Signed pages: the canonical bytes of a page (or a bundle's manifest), its Ed25519 signature
by the node key, and the check against the sender's node id (which IS its Ed25519 public key).

Canonical bytes: msgpack (``use_bin_type=True``) of the map without ``signature``, with the keys
of every map sorted, prefixed by a domain tag (``tessera-page/1\\0`` for pages), so a signature
made for one kind of message can never pass as another's.
"""

from __future__ import annotations

from typing import Any

PAGE_TAG = b"tessera-page/1\0"
SIGNATURE_BYTES = 64


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_sorted(v) for v in value]
    return value


def canonical(message: dict, *, tag: bytes = PAGE_TAG) -> bytes:
    """The bytes a signature covers: ``tag`` + msgpack of ``message`` without ``signature``."""
    import msgpack

    body = {k: v for k, v in message.items() if k != "signature"}
    return tag + msgpack.packb(_sorted(body), use_bin_type=True)


def sign(message: dict, signing_key: Any, *, tag: bytes = PAGE_TAG) -> bytes:
    """The 64-byte detached signature of ``message`` by ``signing_key`` (a PyNaCl SigningKey)."""
    return signing_key.sign(canonical(message, tag=tag)).signature


def signed(message: dict, signing_key: Any, *, tag: bytes = PAGE_TAG) -> dict:
    """``message`` with its ``signature``."""
    return {**message, "signature": sign(message, signing_key, tag=tag)}


def valid(message: dict, node_id: str, *, tag: bytes = PAGE_TAG) -> bool:
    """Whether ``message['signature']`` is ``node_id``'s signature of the message. False for a
    missing or malformed signature, never an exception."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    signature = message.get("signature")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        VerifyKey(bytes.fromhex(node_id)).verify(canonical(message, tag=tag), signature)
        return True
    except (BadSignatureError, ValueError, TypeError):
        return False
