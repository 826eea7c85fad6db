"""This node's identity among peers: its node id is the public half of the node key
(core/node_key.py), written as iroh writes an endpoint id, and its name is what peers see.

The text is iroh's own (PyPI ``iroh`` 1.2.0, ``EndpointId.__str__`` and ``fmt_short``): the full
id is the 32-byte Ed25519 public key in lowercase hex (64 characters), the short form its first
5 bytes (10 characters), so ``tessera peer id`` is the same string as the node's iroh endpoint
id. iroh also parses the key in base32 (52 letters), which ``parse_node_id`` accepts too.

The secret half of the key is never read into anything that is printed or logged here: only
``verify_key`` is used.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from tessera.core import node_key
from tessera.core.errors import UsageError, printable
from tessera.core.peers import peer_list
from tessera.core.peers.message_types import MAX_NAME_CHARS, NODE_ID

PUBLIC_KEY_BYTES = 32
SHORT_BYTES = 5  # iroh's fmt_short


@dataclass(frozen=True)
class Identity:
    node_id: str  # 64 lowercase hex characters
    short_id: str
    name: str

    def as_dict(self) -> dict:
        return {"node_id": self.node_id, "short_id": self.short_id, "name": self.name}


def node_id_of(public_key: bytes) -> str:
    """The node id of an Ed25519 public key (iroh's text for the endpoint id)."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has {PUBLIC_KEY_BYTES} bytes, not {len(public_key)}")
    return public_key.hex()


def short_id(node_id: str) -> str:
    """The short form people read and say (iroh's fmt_short): the first 5 bytes, hex."""
    return node_id[: 2 * SHORT_BYTES]


def parse_node_id(text: str, *, where: str = "node id") -> str:
    """A node id as given by a user (hex in any case, or iroh's base32), in its one form.

    Raises:
        UsageError naming what was wrong.
    """
    value = text.strip()
    if NODE_ID.fullmatch(value.lower()):
        return value.lower()
    if len(value) == 52:
        try:
            return node_id_of(base64.b32decode(value.upper() + "====", casefold=False))
        except (binascii.Error, ValueError):
            pass
    raise UsageError(f"{where} '{printable(value[:80])}' is not a node id",
                     hint="a node id is 64 hex characters, as `tessera peer id` prints it")


def default_name() -> str:
    """user@host, what a node is called until ``tessera peer init --name`` says otherwise."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, no USER: a container
        user = "tessera"
    host = socket.gethostname().split(".")[0] or "localhost"
    return check_name(f"{user}@{host}"[:MAX_NAME_CHARS])


def check_name(name: str) -> str:
    """``name`` when peers may be shown it: 1 to 64 characters, no control characters.

    Raises:
        UsageError saying what is wrong with it.
    """
    stripped = name.strip()
    if not 1 <= len(stripped) <= MAX_NAME_CHARS:
        raise UsageError(f"a node name has 1 to {MAX_NAME_CHARS} characters, not {len(stripped)}",
                         hint="pass --name with one that fits, e.g. --name alice@laptop")
    if printable(stripped) != stripped:
        raise UsageError(f"the node name '{printable(stripped)}' holds control characters",
                         hint="use letters, digits, spaces and punctuation")
    return stripped


def node_id_of_store(store_path: Path, *, create: bool = True) -> str | None:
    """This node's id: the public half of the store's key (made when missing and ``create``)."""
    key = node_key.signing_key(store_path, create=create)
    return None if key is None else node_id_of(bytes(key.verify_key))


def local_identity(conn: sqlite3.Connection) -> Identity:
    """This node's identity (its key made on first use); the name is user@host until set."""
    node_id = node_id_of_store(Path(conn.path))
    return Identity(node_id, short_id(node_id), peer_list.stored_name(conn) or default_name())




def init(conn: sqlite3.Connection, name: str | None = None) -> Identity:
    """``tessera peer init``: make the node key when missing, and store ``name`` as the name
    peers see (checked before anything is written); without ``name`` a name set before is kept,
    else user@host is stored. In one transaction."""
    from tessera.core.store.db import transaction

    if name is not None:
        name = check_name(name)
    with transaction(conn):
        node_id = node_id_of_store(Path(conn.path))
        if name is not None or peer_list.stored_name(conn) is None:
            peer_list.store_name(conn, name if name is not None else default_name())
        return Identity(node_id, short_id(node_id), peer_list.stored_name(conn))


def describe(store_path: Path) -> dict:
    """This node's identity for ``tessera info``, made nowhere: the node id when the key exists
    (else None), the name stored when the store exists (else what it would be)."""
    node_id = node_id_of_store(store_path, create=False)
    name = None
    if store_path.exists():
        from tessera.core.store.db import connect

        conn = connect(store_path)
        try:
            name = peer_list.stored_name(conn)
        finally:
            conn.close()
    return {"node_id": node_id, "short_id": short_id(node_id) if node_id else None,
            "name": name or default_name(), "key_file": str(node_key.key_path(store_path))}
