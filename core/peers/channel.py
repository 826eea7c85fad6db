"""A peer connection's message channel: frames (core/peers/frames.py) over one transport Stream,
with the hello state machine (core/peers/hello.py) in front of every frame.

- The dialer: ``open_channel(conn, endpoint, peer_or_ticket)`` connects, opens the stream and
  exchanges hellos (ours carries our ticket, so the acceptor keeps our current address).
- The acceptor: ``accept_channel(...)`` feeds the connection's first frame to the machine
  (authorizing the dialer against the peer list, with the per-peer rate limit), answers with
  our hello and records the ticket the dialer's hello carried as its address.

Then ``send(message)`` writes one frame and ``recv()`` gives the next request or answer: pings
are answered (and our pings' pongs taken) inside, and an error frame from the other side is
raised as hello.PeerRefused; a frame that breaks the protocol is answered with one error frame
and raised as frames.ProtocolError. Either way the connection is over.
"""

from __future__ import annotations

import asyncio
import sqlite3

from tessera.core.peers import frames, hello, identity, node_endpoint, peer_list, transport
from tessera.core.peers.frames import ProtocolError
from tessera.core.peers.hello import ConnectionStart, RemoteNode
from tessera.core.peers.rate_limit import PeerRateLimiter

CLOSE_WAIT = 5.0  # seconds the answering side waits for the other to close after its last frame


class Channel:
    """One stream of one connection, past (or at) the hello."""

    def __init__(self, connection: transport.Connection, stream: transport.Stream, machine: ConnectionStart):
        self.connection = connection
        self.stream = stream
        self.machine = machine

    @property
    def remote(self) -> RemoteNode | None:
        return self.machine.remote

    async def send(self, message: dict) -> None:
        await frames.write_frame(self.stream, message)

    async def recv(self) -> dict:
        """The next request (acceptor) or answer (dialer), checked against the message table.

        Raises:
            hello.PeerRefused (the other side's error frame), ProtocolError (it broke the
            protocol: it was sent one error frame; ``closed`` when it just closed),
            transport.StreamClosed.
        """
        while True:
            step = await hello.receive_one(self.stream, self.machine)
            if step.close:
                raise step.error
            if step.request is not None:
                return step.request

    async def feed(self, raw: dict) -> hello.Step:
        """Give the machine one frame read elsewhere and send what it answers."""
        step = self.machine.receive(raw)
        for frame in step.send:
            await frames.write_frame(self.stream, frame)
        return step

    async def recv_raw(self) -> dict | None:
        """The next frame's map without the machine (pairing, which checks its own messages);
        None when the stream ended."""
        return await frames.read_frame(self.stream)

    async def ping(self) -> None:
        await self.send(self.machine.ping())

    async def refuse(self, error: ProtocolError) -> None:
        """One error frame saying why we stop (the last frame we send), then ``finish``."""
        step = self.machine.fail(error)
        try:
            for frame in step.send:
                await frames.write_frame(self.stream, frame)
            await self.stream.finish()
        except (transport.TransportError, ProtocolError):
            pass

    async def finish(self) -> None:
        """We have sent our last frame: let it arrive, then close (the side that reads the
        answer closes first; we wait up to CLOSE_WAIT s for it)."""
        try:
            await self.stream.finish()
        except transport.TransportError:  # finished already (after refuse), or the peer is gone
            pass
        try:  # closing now would drop what is still in flight: the reader closes first
            await asyncio.wait_for(self.connection.closed(), CLOSE_WAIT)
        except asyncio.TimeoutError:
            pass
        self.connection.close()

    def close(self) -> None:
        self.connection.close()


async def open_channel(conn: sqlite3.Connection, endpoint: transport.Endpoint,
                       target: peer_list.Peer | str, *, timeout: float = transport.CONNECT_TIMEOUT) -> Channel:
    """Dial ``target`` (a peer, at its stored address, or a ticket) and exchange hellos.

    Raises:
        transport errors (BadTicket 2, TransportError 3 also when the peer has no address yet,
        ConnectTimeout 4), hello.PeerRefused (5 when not authorized), ProtocolError.
    """
    if isinstance(target, peer_list.Peer):
        if not target.address:
            raise transport.TransportError(
                f"no address is known for peer {target.name} ({identity.short_id(target.node_id)})",
                hint="pair again, or wait until it connects to this node once (its hello carries its address)")
        node = transport.NodeAddress.from_ticket(target.address)
        if node.node_id != target.node_id:
            raise transport.WrongNode(f"the stored address of {target.name} names another node")
    else:
        node = transport.NodeAddress.from_ticket(target)
    connection = await endpoint.connect(node, timeout=timeout)
    try:
        stream = await connection.open_stream()
        me = identity.local_identity(conn)
        machine = ConnectionStart(me.node_id, me.name, remote_node_id=connection.remote_node_id,
                                  local_ticket=node_endpoint.advertised_ticket(conn, endpoint))
        channel = Channel(connection, stream, machine)
        await asyncio.wait_for(hello.say_hello(stream, machine), timeout)
    except asyncio.TimeoutError:
        connection.close("timeout")
        raise transport.ConnectTimeout(f"node {identity.short_id(node.node_id)} did not say hello within {timeout:g} s",
                                       hint="check it runs a current `tessera serve`") from None
    except BaseException:
        connection.close("refused")
        raise
    return channel


async def dial_for_pairing(endpoint: transport.Endpoint, ticket: str, *,
                           timeout: float = transport.CONNECT_TIMEOUT) -> Channel:
    """A connection and stream to the inviting node, before any hello: pairing is the one thing a
    node that is not a peer may do, and its first frame is ``pair_start``."""
    node = transport.NodeAddress.from_ticket(ticket)
    connection = await endpoint.connect(node, timeout=timeout)
    try:
        stream = await connection.open_stream()
    except BaseException:
        connection.close("no stream")
        raise
    return Channel(connection, stream, ConnectionStart(endpoint.node_id, "joiner", remote_node_id=node.node_id))


def acceptor(conn: sqlite3.Connection, connection: transport.Connection, stream: transport.Stream, *,
             limiter: PeerRateLimiter | None, local_ticket: str = "") -> Channel:
    """The accepting side's channel, awaiting the dialer's hello (authorized from the store)."""
    me = identity.local_identity(conn)
    machine = ConnectionStart(me.node_id, me.name, remote_node_id=connection.remote_node_id,
                              authorize=hello.store_authorizer(conn), limiter=limiter, local_ticket=local_ticket)
    return Channel(connection, stream, machine)


async def accept_hello(conn: sqlite3.Connection, channel: Channel, first: dict) -> RemoteNode:
    """Feed the dialer's first frame; once it is an authorized hello, answer ours and keep the
    ticket it carried as the peer's address (when it names that same node).

    Raises:
        ProtocolError (the dialer was sent one error frame), hello.PeerRefused.
    """
    step = await channel.feed(first)
    if step.close:
        raise step.error
    remote = channel.remote
    if remote.ticket:
        try:
            node = transport.NodeAddress.from_ticket(remote.ticket)
        except transport.BadTicket:
            node = None
        peer = peer_list.get(conn, remote.node_id)
        if node is not None and node.node_id == remote.node_id and peer is not None and peer.address != remote.ticket:
            peer_list.set_address(conn, remote.node_id, remote.ticket)
    return remote
