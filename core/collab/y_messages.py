"""The y-protocol messages a ``collab`` frame carries, read strictly, and the awareness codec.

A ``collab`` message's ``data`` is one message of the Yjs sync and awareness protocols exactly as
pycrdt makes them (pycrdt-websocket's protocol, carried over our channel instead of a
WebSocket)::

    SYNC (0): step1 (0) state vector | step2 (1) update | update (2) update, each var-length
    AWARENESS (1): var-length awareness update: count, then (client id, clock, JSON state)

``parse`` refuses anything else (ProtocolError ``malformed``), so the code past it sees one of
four kinds with its payload. Awareness entries are decoded here too (pycrdt's own decoder
trusts its input); a state is a JSON object or null (that client left).

pycrdt is imported lazily.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tessera.core.peers.frames import ProtocolError

MAX_DATA_BYTES = 1024 * 1024  # a collab message's data; the owner refuses a bigger one
MAX_AWARENESS_ENTRIES = 256
MAX_STATE_BYTES = 16 * 1024  # one client's awareness state, as JSON
EMPTY_UPDATE = b"\x00\x00"  # an update holding nothing (no structs, no deletions)

PART_BYTES = 2 * 1024 * 1024  # what the owner sends in one frame of a message split in parts
MAX_ASSEMBLED_BYTES = 9 * 1024 * 1024  # a message in parts: a notebook's whole state (8 MiB) and some

SYNC, AWARENESS = 0, 1
STEP1, STEP2, UPDATE = 0, 1, 2
_SYNC_KINDS = {STEP1: "step1", STEP2: "step2", UPDATE: "update"}


@dataclass(frozen=True)
class YMessage:
    kind: str  # step1 | step2 | update | awareness
    payload: bytes  # the state vector, the update, or the awareness update


def _malformed(why: str) -> ProtocolError:
    return ProtocolError("malformed", f"a collab message {why}", fix="send y-protocol messages as pycrdt makes them")


def _read_uint(data: bytes, at: int) -> tuple[int, int]:
    """(the var-uint at ``at``, the offset after it); at most 10 bytes (64 bits)."""
    value, shift = 0, 0
    for i in range(at, min(len(data), at + 10)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i + 1
    raise _malformed("has a truncated or overlong number")


def _read_bytes(data: bytes, at: int) -> tuple[bytes, int]:
    length, at = _read_uint(data, at)
    if at + length > len(data):
        raise _malformed(f"announces {length} bytes but holds {len(data) - at}")
    return data[at:at + length], at + length


def parse(data: bytes, *, limit: int | None = MAX_DATA_BYTES) -> YMessage:
    """The y-protocol message in ``data``.

    Args:
        limit: the most bytes accepted (the owner's bound on what a client sends); None for what
            the owner sends, bounded by the frame alone (a notebook's whole state, up to 4 MiB).
    Raises:
        ProtocolError ``too_large`` over ``limit``, ``malformed`` for anything but one whole
        SYNC or AWARENESS message.
    """
    if limit is not None and len(data) > limit:
        raise ProtocolError("too_large", f"a collab message of {len(data)} bytes is over the limit of {limit}",
                            fix="make smaller edits (paste a large text in parts)")
    if len(data) < 2:
        raise _malformed("is shorter than a message type and its length")
    if data[0] == SYNC:
        kind = _SYNC_KINDS.get(data[1])
        if kind is None:
            raise _malformed(f"has an unknown sync step {data[1]}")
        payload, end = _read_bytes(data, 2)
    elif data[0] == AWARENESS:
        kind = "awareness"
        payload, end = _read_bytes(data, 1)
    else:
        raise _malformed(f"has an unknown message type {data[0]}")
    if end != len(data):
        raise _malformed(f"has {len(data) - end} bytes after its end")
    return YMessage(kind, payload)


def pieces(data: bytes) -> list[bytes]:
    """``data`` cut for sending: every piece but the last goes in a ``collab_part`` frame, the
    last in the ``collab`` frame (one piece when it fits)."""
    return [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]


class Reassembly:
    """The receiving side of ``pieces``: the parts so far, bounded by MAX_ASSEMBLED_BYTES."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, part: bytes) -> None:
        """Raises ProtocolError too_large past MAX_ASSEMBLED_BYTES."""
        self.size += len(part)
        if self.size > MAX_ASSEMBLED_BYTES:
            self.parts, self.size = [], 0
            raise ProtocolError("too_large", f"a collab message in parts is over {MAX_ASSEMBLED_BYTES} bytes")
        self.parts.append(part)

    def finish(self, last: bytes) -> bytes:
        """The whole message, given its last piece (from the collab frame)."""
        if not self.parts:
            return last
        data = b"".join(self.parts) + last
        self.parts, self.size = [], 0
        return data


def apply_update(doc: Any, update: bytes) -> list[bytes]:
    """Apply ``update`` to ``doc``; the updates of what it changed (its transactions' own, from
    pycrdt's observer: [] when the document held all of it already).

    Raises:
        ValueError (pycrdt's) for bytes that are not an update.
    """
    changed: list[bytes] = []
    subscription = doc.observe(lambda event: changed.append(event.update))
    try:
        doc.apply_update(update)
    finally:
        doc.unobserve(subscription)
    return changed


# --- making messages (pycrdt's own encoders) ----------------------------------------------------


def step1(doc: Any) -> bytes:
    from pycrdt import create_sync_message

    return create_sync_message(doc)


def step2_for(doc: Any, state_vector: bytes) -> bytes:
    """The step2 answering a step1: everything ``doc`` holds that the state vector lacks (what
    pycrdt's handle_sync_message answers).

    Raises:
        ProtocolError malformed when the state vector cannot be read.
    """
    from pycrdt import write_message

    try:
        update = doc.get_update(state_vector)
    except (ValueError, RuntimeError) as exc:
        raise _malformed(f"holds a state vector that cannot be read ({str(exc)[:100]})") from None
    return bytes([SYNC, STEP2]) + write_message(update)


def update_message(update: bytes) -> bytes:
    from pycrdt import create_update_message

    return create_update_message(update)


def awareness_message(entries: list[tuple[int, int, dict | None]]) -> bytes:
    """An AWARENESS message of (client id, clock, state or None for 'left') entries, in the
    encoding of pycrdt's Awareness.encode_awareness_update."""
    from pycrdt import Encoder, create_awareness_message

    encoder = Encoder()
    encoder.write_var_uint(len(entries))
    for client_id, clock, state in entries:
        encoder.write_var_uint(client_id)
        encoder.write_var_uint(clock)
        encoder.write_var_string(json.dumps(state, separators=(",", ":")))
    return create_awareness_message(encoder.to_bytes())


def awareness_entries(payload: bytes) -> list[tuple[int, int, dict | None]]:
    """The (client id, clock, state) entries of an awareness update; a state is a JSON object
    or None.

    Raises:
        ProtocolError malformed.
    """
    count, at = _read_uint(payload, 0)
    if count > MAX_AWARENESS_ENTRIES:
        raise _malformed(f"holds {count} awareness states (at most {MAX_AWARENESS_ENTRIES})")
    entries = []
    for _ in range(count):
        client_id, at = _read_uint(payload, at)
        clock, at = _read_uint(payload, at)
        text, at = _read_bytes(payload, at)
        if len(text) > MAX_STATE_BYTES:
            raise _malformed(f"holds an awareness state of {len(text)} bytes (at most {MAX_STATE_BYTES})")
        try:
            state = json.loads(text.decode("utf-8")) if text else None
        except (UnicodeDecodeError, ValueError):
            raise _malformed("holds an awareness state that is not JSON") from None
        if state is not None and not isinstance(state, dict):
            raise _malformed("holds an awareness state that is not an object")
        entries.append((client_id, clock, state))
    if at != len(payload):
        raise _malformed("has bytes after its awareness states")
    return entries


def short_text(value: Any, limit: int = 64) -> str | None:
    """``value`` when it is a string of at most ``limit`` characters, else None (awareness
    fields come from peers: never trusted beyond that)."""
    return value if isinstance(value, str) and len(value) <= limit else None
