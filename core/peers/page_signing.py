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


_CONTAINERS = (dict, list, tuple)


def _sorted(value: Any) -> Any:
    """``value`` with every map's keys in sorted order (scalars are not visited one call each: a
    page holds up to 1000 events of several fields)."""
    if type(value) is dict:
        return {k: (_sorted(v) if type(v) in _CONTAINERS else v) for k in sorted(value) for v in (value[k],)}
    return [(_sorted(v) if type(v) in _CONTAINERS else v) for v in value]


def canonical(message: dict, *, tag: bytes = PAGE_TAG, inner_sorted: bool = False) -> bytes:
    """The bytes a signature covers: ``tag`` + msgpack of ``message`` without ``signature``,
    every map's keys sorted (msgpack keeps a dict's order).

    Args:
        inner_sorted: the caller built every map below the top level with its keys in order
            already (pages.build does: it is most of the cost of signing a page of events), so
            only the top level is sorted here.
    """
    import msgpack

    body = {k: message[k] for k in sorted(message) if k != "signature"}
    return tag + msgpack.packb(body if inner_sorted else _sorted(body), use_bin_type=True)


def sign(message: dict, signing_key: Any, *, tag: bytes = PAGE_TAG, inner_sorted: bool = False) -> bytes:
    """The 64-byte detached signature of ``message`` by ``signing_key`` (a PyNaCl SigningKey)."""
    return signing_key.sign(canonical(message, tag=tag, inner_sorted=inner_sorted)).signature


def signed(message: dict, signing_key: Any, *, tag: bytes = PAGE_TAG, inner_sorted: bool = False) -> dict:
    """``message`` with its ``signature``."""
    return {**message, "signature": sign(message, signing_key, tag=tag, inner_sorted=inner_sorted)}


def valid(message: dict, node_id: str, *, tag: bytes = PAGE_TAG) -> bool:
    """Whether ``message['signature']`` is ``node_id``'s signature of the message. False for a
    missing or malformed signature, never an exception."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    signature = message.get("signature")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        key = VerifyKey(bytes.fromhex(node_id))
    except (ValueError, TypeError):
        return False
    # A sender that built its maps in key order (ours do) is checked without re-sorting them: the
    # bytes as received, top level sorted, are then the canonical bytes. Only when that fails is
    # every map sorted, so a sender that kept its keys in another order is checked too.
    for inner_sorted in (True, False):
        try:
            key.verify(canonical(message, tag=tag, inner_sorted=inner_sorted), signature)
            return True
        except (BadSignatureError, ValueError, TypeError):
            continue
    return False
