"""The peer protocol's messages, as one explicit table: each type's name and its fields (type,
bounds). A frame's map names its type in ``type``; ``check`` refuses a map whose type is not in
the table or whose fields are missing, of the wrong type or out of bounds, so the code past it
only ever sees well-formed messages. Fields not in the table are dropped (a newer peer may add
some within the same protocol version).

A new message type is one more entry in MESSAGE_TYPES.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tessera.core.peers.frames import ProtocolError

PROTOCOL_VERSION = 1
NODE_ID = re.compile(r"[0-9a-f]{64}")  # the node's Ed25519 public key, lowercase hex (core/peers/identity.py)
MAX_NAME_CHARS = 64
MAX_TICKET_CHARS = 600  # an iroh EndpointTicket with a few addresses and a relay URL
MAX_SHARE_CHARS = 300  # "notebook:NAME" or "events:PATTERN"
BLOB_ID = re.compile(r"[0-9a-f]{64}")  # a blob's id: the SHA-256 of its chunk list, lowercase hex (core/blobs/manifest.py)
NOTEBOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # core/notebook/repository.NAME_RE
COLLAB_RUN = re.compile(r"owner|local|none")
COLLAB_ROLE = re.compile(r"viewer|editor")


@dataclass(frozen=True)
class Field:
    """One field: its Python type once decoded, and for text its length bounds and pattern."""

    kind: type
    min_chars: int = 0
    max_chars: int = 1000
    pattern: re.Pattern | None = None


@dataclass(frozen=True)
class MessageType:
    name: str
    fields: dict[str, Field]
    doc: str


MESSAGE_TYPES: dict[str, MessageType] = {t.name: t for t in (
    MessageType("hello", {
        "version": Field(int),
        "node_id": Field(str, pattern=NODE_ID),
        "name": Field(str, min_chars=1, max_chars=MAX_NAME_CHARS),
        "ticket": Field(str, max_chars=MAX_TICKET_CHARS),
    }, "first frame each way: the protocol version, the sender's node id, the name it shows and its "
       "current ticket ('' when it has none; the acceptor keeps it as the peer's address)"),
    MessageType("error", {
        "code": Field(str, min_chars=1, max_chars=64),
        "message": Field(str, max_chars=1000),
        "fix": Field(str, max_chars=300),
    }, "the last frame before the sender closes: what was wrong and how to fix it"),
    MessageType("ping", {"nonce": Field(int)}, "are you there? (answered by pong, counted by the rate limit)"),
    MessageType("pong", {"nonce": Field(int)}, "the answer to a ping, with its nonce"),
    MessageType("shares", {}, "which shares may I pull? (answered by share_list)"),
    MessageType("share_list", {"shares": Field(list)},
                "what the sender shares with the requester: [{item, kind, items}]"),
    MessageType("pull", {
        "share": Field(str, min_chars=1, max_chars=MAX_SHARE_CHARS),
        "cursor": Field(int),
        "limit": Field(int),
    }, "the next page of a share after the cursor (at most limit items, 1 to 5000: core/peers/pages.MAX_LIMIT)"),
    MessageType("page", {
        "share": Field(str, min_chars=1, max_chars=MAX_SHARE_CHARS),
        "cursor_from": Field(int),
        "cursor_to": Field(int),
        "more": Field(bool),
        "items": Field(bytes),  # the msgpack array of the items, as signed (core/peers/pages.py)
        "signature": Field(bytes),
    }, "a signed page of a share's items, from cursor_from (exclusive) to cursor_to (inclusive)"),
    MessageType("subscribe", {"cursors": Field(dict)},
                "push pages of these shares past these cursors as items are written"),
    # blobs (issue 15, core/blobs/): content-addressed, fetched chunk by chunk
    MessageType("blob_manifest_request", {"blob": Field(str, pattern=BLOB_ID)},
                "what is this blob? (answered by blob_manifest, or one not_shared error)"),
    MessageType("blob_manifest", {
        "blob": Field(str, pattern=BLOB_ID),
        "size": Field(int),
        "chunk_size": Field(int),
        "chunks": Field(bytes),  # each chunk's SHA-256, 32 bytes each, concatenated
    }, "a blob's manifest: its size, chunk size and chunk hashes (checked against the id before any chunk)"),
    MessageType("blob_get", {"blob": Field(str, pattern=BLOB_ID), "index": Field(int)},
                "one chunk of a blob, by its index from 0 (answered by blob_chunk)"),
    MessageType("blob_chunk", {
        "blob": Field(str, pattern=BLOB_ID),
        "index": Field(int),
        "data": Field(bytes),
    }, "one chunk of a blob (checked against the manifest's hash before it is written)"),
    # live collaboration (issue 15, core/collab/): each on a connection of its own, after the hello
    MessageType("collab_join", {
        "notebook": Field(str, min_chars=1, max_chars=64, pattern=NOTEBOOK_NAME),
        "run": Field(str, pattern=COLLAB_RUN),
    }, "dialer -> owner: open the notebook live (run: where its cells run for us: owner, local, none); "
       "answered by collab_welcome, or one error frame (not_shared, not_authorized)"),
    MessageType("collab_welcome", {
        "notebook": Field(str, min_chars=1, max_chars=64),
        "notebook_id": Field(str, min_chars=1, max_chars=64),
        "role": Field(str, pattern=COLLAB_ROLE),
        "owner": Field(str, min_chars=1, max_chars=MAX_NAME_CHARS),
    }, "owner -> dialer: joined; from now on the connection carries collab messages only"),
    MessageType("collab", {"data": Field(bytes)},
                "one y-protocol message (SYNC step1/step2/update or AWARENESS) as pycrdt makes them, "
                "at most core/collab/y_messages.MAX_DATA_BYTES"),
    MessageType("collab_refused", {
        "code": Field(str, min_chars=1, max_chars=64),
        "message": Field(str, max_chars=1000),
        "fix": Field(str, max_chars=300),
    }, "owner -> client: an update was not applied (read_only, too_large, malformed); the connection "
       "stays and the client goes back to the owner's state"),
    MessageType("collab_pane", {
        "cell": Field(str, min_chars=1, max_chars=64),
        "data": Field(bytes),
    }, "owner -> client: one pane's state (core/collab/pane_wire.py), at most PANE_INLINE_LIMIT"),
    MessageType("collab_run", {"cell": Field(str, min_chars=1, max_chars=64)},
                "client -> owner: run that cell again now"),
    MessageType("collab_part", {"data": Field(bytes)},
                "owner -> client: the next piece of a y-protocol message too large for one frame (a "
                "notebook's whole state); the collab frame after the pieces holds the last one"),
    MessageType("collab_role", {"role": Field(str, pattern=COLLAB_ROLE)},
                "owner -> client: your role in this notebook changed (tessera peer role); edits are "
                "checked against the new one from now on"),
)}


def check(message: dict) -> dict:
    """``message`` as a well-formed message: ``type`` plus exactly its table's fields.

    Raises:
        ProtocolError: unknown_type (no or an unknown ``type``), malformed (a field missing, of
        the wrong type, or out of bounds).
    """
    name = message.get("type")
    spec = MESSAGE_TYPES.get(name) if isinstance(name, str) else None
    if spec is None:
        shown = repr(name)[:40] if name is not None else "none"
        raise ProtocolError("unknown_type", f"unknown message type {shown}",
                            fix=f"this node speaks protocol version {PROTOCOL_VERSION}: {', '.join(MESSAGE_TYPES)}")
    out = {"type": name}
    for field_name, field in spec.fields.items():
        if field_name not in message:
            raise ProtocolError("malformed", f"a {name} message without its {field_name} field")
        value = message[field_name]
        if type(value) is not field.kind:  # not isinstance: True is an int to Python, not to us
            raise ProtocolError("malformed", f"the {name} message's {field_name} is {type(value).__name__}, "
                                             f"not {field.kind.__name__}")
        if field.kind is str:
            if not field.min_chars <= len(value) <= field.max_chars:
                raise ProtocolError("malformed", f"the {name} message's {field_name} has {len(value)} characters "
                                                 f"(allowed {field.min_chars} to {field.max_chars})")
            if field.pattern is not None and not field.pattern.fullmatch(value):
                raise ProtocolError("malformed", f"the {name} message's {field_name} is not in its format")
        out[field_name] = value
    return out


def make(message_type: str, /, **fields: object) -> dict:
    """A message of type ``message_type`` (checked like one received, so we never send a bad one)."""
    return check({"type": message_type, **fields})
