"""The start of a peer connection and the rules every frame after it obeys, as one small
explicit state machine (sans I/O, as Syncthing's and magic-wormhole's are specified):

    awaiting_hello --hello (right version, node id = the transport's, authorized)--> open
    awaiting_hello --anything else--> closed, after one error frame
    open --ping--> open, answered by pong; --a known request--> open, handed to the caller
    open --malformed, unknown type, a second hello, over the rate limit--> closed, after one error frame
    any --the peer's error frame--> closed, nothing sent back

The dialing side says hello first; the accepting side answers with its own hello only once it
has accepted the dialer's. The node id a hello claims must be the one the transport
authenticated (iroh's TLS proves the remote holds that key); the accepting side then looks the
node up in the peer list, and an unknown or unauthorized node gets one error naming the fix
(``tessera peer add <id> --publish``) and nothing else: not even this node's name. Every error frame is the last
frame its sender writes: the connection closes after it, so a misbehaving peer gets one answer.
"""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import dataclass, field
from typing import Callable

from tessera.core.errors import EXIT_UNAUTHORIZED
from tessera.core.peers import frames, message_types, peer_list
from tessera.core.peers.frames import ProtocolError
from tessera.core.peers.message_types import PROTOCOL_VERSION
from tessera.core.peers.rate_limit import PeerRateLimiter

UNAUTHORIZED_CODES = ("unknown_peer", "not_authorized")


class PeerRefused(ProtocolError):
    """The peer sent an error frame (and closed): its code, message and fix."""

    def __init__(self, code: str, message: str, *, fix: str = ""):
        super().__init__(code, f"the peer refused: {message}", fix=fix)
        if code in UNAUTHORIZED_CODES:
            self.exit_code = EXIT_UNAUTHORIZED


class Phase(enum.Enum):
    AWAITING_HELLO = "awaiting_hello"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class RemoteNode:
    node_id: str
    name: str
    ticket: str = ""  # the ticket its hello carried ('' when it has none): where it can be dialed


@dataclass
class Step:
    """What the caller does after feeding the machine one frame: send these frames in order,
    hand ``request`` to the layer above, then close the connection when ``close`` (with
    ``error`` saying why: ours, a ProtocolError, or the peer's, a PeerRefused)."""

    send: list[dict] = field(default_factory=list)
    request: dict | None = None
    close: bool = False
    error: ProtocolError | None = None


# node id -> None when it may use this connection, else (code, what is wrong)
Authorizer = Callable[[str], "tuple[str, str] | None"]


def store_authorizer(conn: sqlite3.Connection) -> Authorizer:
    """Authorization from the peer list: a node we publish to may connect."""

    def authorize(node_id: str) -> tuple[str, str] | None:
        peer = peer_list.get(conn, node_id)
        if peer is None:
            return "unknown_peer", "is not in this node's peer list"
        if not peer.publish:
            return "not_authorized", f"({peer.name}) is a peer this node does not publish to"
        return None

    return authorize


class ConnectionStart:
    """One connection's protocol state (see the module's doc).

    Args:
        local_node_id, local_name: what our hello says.
        remote_node_id: the node id the transport authenticated (None only where there is no
            transport, in unit tests); a hello claiming another is refused.
        authorize: on the accepting side, who may connect. None makes this the dialing side,
            which dialed the node it wanted (its transport checked that) and says hello first.
        limiter: requests allowed per remote node after the hello (None: no limit).
        local_ticket: the ticket our hello carries (where this node's ``tessera serve`` listens;
            '' when we have none), so the other side can keep our current address.
    """

    def __init__(self, local_node_id: str, local_name: str, *, remote_node_id: str | None,
                 authorize: Authorizer | None = None, limiter: PeerRateLimiter | None = None,
                 local_ticket: str = ""):
        self.hello_message = message_types.make("hello", version=PROTOCOL_VERSION, node_id=local_node_id,
                                                name=local_name, ticket=local_ticket)
        self.local_name = local_name
        self.remote_node_id = remote_node_id
        self.authorize = authorize
        self.limiter = limiter
        self.phase = Phase.AWAITING_HELLO
        self.remote: RemoteNode | None = None
        self._pings_out: set[int] = set()  # nonces of our pings not yet answered
        self._next_nonce = 0

    @property
    def accepting(self) -> bool:
        return self.authorize is not None

    def opening(self) -> list[dict]:
        """The frames to send as soon as the connection is up: the hello, on the dialing side."""
        return [] if self.accepting else [self.hello_message]

    def fail(self, error: ProtocolError) -> Step:
        """We refuse the connection: one error frame, then closed."""
        if self.phase is Phase.CLOSED:
            return Step(close=True, error=error)
        self.phase = Phase.CLOSED
        frame = message_types.make("error", code=error.code[:64], message=error.message[:1000], fix=error.fix[:300])
        return Step(send=[frame], close=True, error=error)

    def receive(self, raw: dict) -> Step:
        """Feed one decoded frame (a map, as frames.read_frame gives it)."""
        if self.phase is Phase.CLOSED:
            return Step(close=True, error=ProtocolError("closed", "a frame after the connection closed"))
        try:
            message = message_types.check(raw)
        except ProtocolError as error:
            return self.fail(error)
        if message["type"] == "error":
            self.phase = Phase.CLOSED
            return Step(close=True, error=PeerRefused(message["code"], message["message"], fix=message["fix"]))
        if self.phase is Phase.AWAITING_HELLO:
            return self._hello(message)
        return self._request(message)

    def _hello(self, message: dict) -> Step:
        if message["type"] != "hello":
            return self.fail(ProtocolError("expected_hello", f"a {message['type']} message before the hello",
                                           fix="send hello first"))
        if message["version"] != PROTOCOL_VERSION:
            return self.fail(ProtocolError(
                "version", f"the peer speaks protocol version {message['version']}, this node {PROTOCOL_VERSION}",
                fix="run the same Tessera release on both nodes"))
        node_id = message["node_id"]
        if self.remote_node_id is not None and node_id != self.remote_node_id:
            return self.fail(ProtocolError(
                "identity_mismatch", f"the hello claims node {node_id[:10]} but the connection is from "
                                     f"{self.remote_node_id[:10]}", fix="a node says hello with its own id"))
        if self.accepting:
            refusal = self.authorize(node_id)
            if refusal is not None:
                code, why = refusal
                return self.fail(ProtocolError(
                    code, f"node {node_id[:10]} {why} ({self.local_name})",
                    fix=f"on {self.local_name}: tessera peer add {node_id} --publish"))
        self.phase = Phase.OPEN
        self.remote = RemoteNode(node_id, message["name"], message["ticket"])
        return Step(send=[self.hello_message] if self.accepting else [])

    def _request(self, message: dict) -> Step:
        if message["type"] == "hello":
            return self.fail(ProtocolError("unexpected", "a second hello", fix="send hello once, first"))
        if self.limiter is not None:
            wait = self.limiter.take(self.remote.node_id)
            if wait > 0:
                return self.fail(ProtocolError("rate_limited", "too many requests from this node",
                                               fix=f"wait {wait:.1f} s and connect again"))
        if message["type"] == "ping":
            return Step(send=[message_types.make("pong", nonce=message["nonce"])])
        if message["type"] == "pong":
            if message["nonce"] not in self._pings_out:
                return self.fail(ProtocolError("unexpected", "a pong no ping asked for"))
            self._pings_out.discard(message["nonce"])
            return Step()
        return Step(request=message)

    def ping(self) -> dict:
        """A ping to send (an idle subscription's keep-alive); its pong is then expected, once."""
        self._next_nonce += 1
        self._pings_out.add(self._next_nonce)
        if len(self._pings_out) > 16:  # a peer that never answers: forget the oldest
            self._pings_out.discard(min(self._pings_out))
        return message_types.make("ping", nonce=self._next_nonce)


async def say_hello(stream: frames.ByteStream, machine: ConnectionStart, *,
                    limit: int = frames.MAX_FRAME_BYTES) -> RemoteNode:
    """Exchange hellos over ``stream`` (the dialer's first); the remote node once open.

    Raises:
        ProtocolError when we refused the peer (it was sent one error frame); PeerRefused when it
        refused us. Either way the caller closes the stream.
    """
    for frame in machine.opening():
        await frames.write_frame(stream, frame, limit=limit)
    while machine.phase is Phase.AWAITING_HELLO:
        step = await receive_one(stream, machine, limit=limit)
        if step.close:
            raise step.error
    return machine.remote


async def receive_one(stream: frames.ByteStream, machine: ConnectionStart, *,
                      limit: int = frames.MAX_FRAME_BYTES) -> Step:
    """Read one frame, feed it to the machine and send what it answers. A frame that cannot be
    decoded (too large, truncated, not a map) gets its one error frame; a stream that ends
    closes the connection."""
    try:
        raw = await frames.read_frame(stream, limit=limit)
    except ProtocolError as error:
        step = machine.fail(error)
    else:
        if raw is None:
            machine.phase = Phase.CLOSED
            return Step(close=True, error=ProtocolError("closed", "the peer closed the connection"))
        step = machine.receive(raw)
    for frame in step.send:
        try:
            await frames.write_frame(stream, frame, limit=limit)
        except (OSError, EOFError):  # the peer is gone: the error frame was for it; closing anyway
            if not step.close:
                raise
    return step
