"""Two or three real stores (each with its node key) and an in-memory channel between a puller
(core/peers/sync.pull) and the server side (core/peers/requests.answer): every message goes
through the frame encoding as on the wire, and every frame the server sends is kept, so tests
can tamper with pages in flight and assert on exactly what left the sender."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tessera.core import node_key
from tessera.core.peers import frames, identity, message_types, peer_list, requests
from tessera.core.peers.frames import ProtocolError
from tessera.core.peers.hello import PeerRefused
from tessera.core.store.db import connect, transaction


@dataclass
class Node:
    name: str
    conn: Any
    key: Any
    node_id: str

    @property
    def path(self) -> Path:
        return Path(self.conn.path)


def make_node(directory: Path, name: str) -> Node:
    conn = connect(directory / name / "tessera.db")
    key = node_key.signing_key(conn.path)
    with transaction(conn):
        peer_list.store_name(conn, name)
    return Node(name, conn, key, identity.node_id_of(bytes(key.verify_key)))


def befriend(a: Node, b: Node) -> None:
    """Pairing's outcome: each adds the other with publish and subscribe."""
    for me, other in ((a, b), (b, a)):
        with transaction(me.conn):
            peer_list.add(me.conn, other.node_id, other.name, publish=True, subscribe=True, added_at="2026-12-01T00:00:00Z")


@dataclass
class Wire:
    """The server's side of one connection, run as a task: reads requests, answers each with
    requests.answer, closes after an error frame. ``tamper(answer, index)`` may replace an answer
    in flight, ``tamper_frame(frame, index)`` its bytes; ``drop_after`` ends the connection after that many answers are delivered."""

    server: Node
    client_id: str
    tamper: Callable[[dict, int], dict | None] | None = None
    tamper_frame: Callable[[bytes, int], bytes] | None = None  # the same, on the encoded frame
    drop_after: int | None = None
    limiter: Any = None  # a rate_limit.PeerRateLimiter refusing as serve's hello machine does
    sent: list[bytes] = field(default_factory=list)  # every frame the server wrote, encoded

    def __post_init__(self) -> None:
        self.to_server: asyncio.Queue = asyncio.Queue()
        self.to_client: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.ensure_future(self._serve())

    async def _serve(self) -> None:
        answered = 0
        while True:
            raw = await self.to_server.get()
            if raw is None:
                return
            request = message_types.check(frames.decode_body(raw))
            if self.limiter is not None and self.limiter.take(self.client_id) > 0:
                reply = requests.refusal("rate_limited", "too many requests from this node", "wait and connect again")
            else:
                reply = requests.answer(self.server.conn, self.client_id, request, self.server.key)
            if self.tamper is not None:
                reply = self.tamper(reply, answered)
            encoded = frames.encode(reply)
            self.sent.append(encoded)
            if self.tamper_frame is not None:
                encoded = self.tamper_frame(encoded, answered)
            answered += 1
            if self.drop_after is not None and answered > self.drop_after:
                await self.to_client.put(None)
                return
            await self.to_client.put(encoded[4:])
            if reply.get("type") == "error":
                await self.to_client.put(None)
                return

    async def send(self, message: dict) -> None:
        await self.to_server.put(frames.encode(message)[4:])

    async def recv(self) -> dict:
        raw = await self.to_client.get()
        if raw is None:
            raise ProtocolError("truncated", "the connection closed")
        message = frames.decode_body(raw)
        if message.get("type") == "error":
            raise PeerRefused(message["code"], message["message"], fix=message["fix"])
        return message

    async def close(self) -> None:
        await self.to_server.put(None)
        await self.task


def pull(puller: Node, sender: Node, **options: Any):
    """Run one sync.pull of ``puller`` from ``sender``; returns (report, wire)."""
    from tessera.core.peers import sync

    wire_options = {k: options.pop(k) for k in ("tamper", "tamper_frame", "drop_after", "limiter") if k in options}

    async def run():
        wire = Wire(sender, puller.node_id, **wire_options)
        report = await sync.pull(wire, puller.conn, peer_list.get(puller.conn, sender.node_id), **options)
        await wire.close()
        return report, wire

    return asyncio.run(run())


def add_peer_with_empty_replica(name: str = "alice", node_id: str = "a1" * 32) -> str:
    """Add a peer to the data home's store (TESSERA_HOME) and make its replica file, empty: the
    smallest setup the store sources (-s local, peer:NAME, peers) read. Returns the node id."""
    from tessera.core.peers import replica_files
    from tessera.core.store import db

    conn = db.connect()
    with db.transaction(conn):
        peer_list.add(conn, node_id, name, added_at="2026-12-01T00:00:00.000Z")
    conn.close()
    db.connect(replica_files.replica_path(node_id, db.db_path())).close()
    return node_id


def refused_pull(sender: Node, puller: Node, item: str) -> tuple[Exception, Wire]:
    """``puller`` asks ``sender`` for ``item`` past cursor 0 and is refused: the error its first
    answer raised (a PeerRefused naming the code) and the wire, whose ``sent`` frames the caller
    checks for bytes that must not leave."""
    import pytest

    async def ask() -> tuple[Exception, Wire]:
        wire = Wire(sender, puller.node_id)
        await wire.send({"type": "pull", "share": item, "cursor": 0, "limit": 1000})
        with pytest.raises(Exception) as refusal:
            await wire.recv()
        await wire.close()
        return refusal.value, wire

    return asyncio.run(ask())
