"""Encrypted, mutually authenticated connections between nodes, over iroh (DESIGN §11).

iroh (QUIC, TLS 1.3 with raw Ed25519 public keys) does all the cryptography: an endpoint is bound
with this node's Ed25519 key (core/node_key.py), so iroh's endpoint id IS our node id, and a
connection to a node id succeeds only when the other side proves it holds that id's secret key;
the accepting side learns the connecting node's id the same way. Nothing here composes a
handshake or cipher of its own.

One interface, three objects, all asyncio:

- ``Endpoint.bind(signing_key, loopback=...)``: ``node_id``, ``address()`` / ``ticket()`` (the
  string ``peer invite`` prints), ``connect(ticket or NodeAddress)``, ``accept()``, ``close()``;
- ``Connection``: ``remote_node_id`` (checked), ``open_stream()`` / ``accept_stream()``, ``close()``;
- ``Stream``: one bidirectional QUIC stream, ``write(b)``, ``read_exact(n)``, ``read(max)``,
  ``finish()``.

Importing this module imports iroh and applies core/peers/iroh_shim.py (which refuses any iroh
but the pinned one); only peer commands import it, never start-up.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from tessera.core.errors import EXIT_TIMEOUT, EXIT_UNAVAILABLE, EXIT_USAGE, TesseraError
from tessera.core.peers import iroh_shim

iroh = iroh_shim.load()

ALPN = b"tessera/1"
CONNECT_TIMEOUT = 15.0  # seconds; iroh's own QUIC handshake gives up at 30 s
CLOSE_OK = 0
NODE_ID_HEX_LENGTH = 64


class TransportError(TesseraError):
    """A connection could not be made or broke (the other node is unreachable or went away)."""

    exit_code = EXIT_UNAVAILABLE


class WrongNode(TransportError):
    """Something answered at the address but could not prove it is the node id we asked for."""


class ConnectTimeout(TransportError):
    exit_code = EXIT_TIMEOUT


class StreamClosed(TransportError):
    """The other side finished or reset the stream before the bytes we needed arrived."""


class BadTicket(TesseraError):
    exit_code = EXIT_USAGE


def _reason(exc: Any) -> str:
    """The last line of an iroh error (its cause, without Rust source paths)."""
    text = exc.message() if isinstance(exc, iroh.IrohError) else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else type(exc).__name__
    if "ApplicationClosed" in last:  # a peer that closed on purpose: say so, not in Rust's Debug text
        said = _CLOSE_REASON.search(last)
        return f"the peer closed the connection ({said.group(1)})" if said else "the peer closed the connection"
    return last.split(" (/")[0]


_CLOSE_REASON = re.compile(r'reason: b"([^"\\]{0,80})"')


def _short(node_id: str) -> str:
    return node_id[:10]


@dataclass(frozen=True)
class NodeAddress:
    """Where a node can be reached: its id (64 hex digits, its Ed25519 public key) plus direct
    socket addresses and an optional relay URL. ``ticket()`` is the same as one string."""

    node_id: str
    addresses: tuple[str, ...] = ()
    relay_url: str | None = None

    def ticket(self) -> str:
        return str(iroh.EndpointTicket.from_addr(self._to_iroh()))

    @classmethod
    def from_ticket(cls, ticket: str) -> NodeAddress:
        text = ticket.strip()
        try:
            addr = iroh.EndpointTicket.from_string(text).endpoint_addr()
        except iroh.IrohError:
            shown = text if len(text) <= 24 else text[:24] + "..."
            raise BadTicket(f"{shown!r} is not a node ticket",
                            hint="copy the whole ticket `tessera peer invite` printed, starting with 'endpoint'") from None
        return cls._from_iroh(addr)

    @classmethod
    def _from_iroh(cls, addr: Any) -> NodeAddress:
        return cls(str(addr.id()), tuple(addr.direct_addresses()), addr.relay_url())

    def _to_iroh(self) -> Any:
        try:
            node = iroh.EndpointId.from_string(self.node_id)
        except iroh.IrohError:
            raise BadTicket(f"{self.node_id!r} is not a node id",
                            hint=f"a node id is {NODE_ID_HEX_LENGTH} hex digits, as `tessera peer id` prints it") from None
        return iroh.EndpointAddr(node, self.relay_url, list(self.addresses))


class Stream:
    """One bidirectional QUIC stream of a Connection (ordered, reliable, encrypted)."""

    def __init__(self, bi: Any, remote_node_id: str):
        self._send = bi.send()
        self._recv = bi.recv()
        self.remote_node_id = remote_node_id

    async def write(self, data: bytes) -> None:
        try:
            await self._send.write_all(data)
        except iroh.IrohError as exc:
            raise StreamClosed(f"cannot send to node {_short(self.remote_node_id)}: {_reason(exc)}") from None

    async def read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes; StreamClosed when the stream ends first."""
        if size == 0:
            return b""
        try:
            return await self._recv.read_exact(size)
        except iroh.IrohError as exc:
            raise StreamClosed(f"node {_short(self.remote_node_id)} closed the stream before sending "
                               f"{size} bytes: {_reason(exc)}") from None

    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` bytes as they arrive; b"" once the other side has finished."""
        try:
            return await self._recv.read(max_bytes)
        except iroh.IrohError as exc:
            raise StreamClosed(f"cannot read from node {_short(self.remote_node_id)}: {_reason(exc)}") from None

    async def finish(self) -> None:
        """No more bytes from this side (the other side's ``read`` then returns b"")."""
        try:
            await self._send.finish()
        except iroh.IrohError as exc:
            raise StreamClosed(f"cannot finish the stream to node {_short(self.remote_node_id)}: "
                               f"{_reason(exc)}") from None


class Connection:
    """A QUIC connection to one authenticated node: ``remote_node_id`` is proven by TLS."""

    def __init__(self, conn: Any):
        self._conn = conn
        self.remote_node_id = str(conn.remote_id())

    async def open_stream(self) -> Stream:
        try:
            return Stream(await self._conn.open_bi(), self.remote_node_id)
        except iroh.IrohError as exc:
            raise TransportError(f"cannot open a stream to node {_short(self.remote_node_id)}: {_reason(exc)}") from None

    async def accept_stream(self) -> Stream:
        """The next stream the other side opens (it must write before this side sees it)."""
        try:
            return Stream(await self._conn.accept_bi(), self.remote_node_id)
        except iroh.IrohError as exc:
            raise TransportError(f"node {_short(self.remote_node_id)} closed the connection: {_reason(exc)}") from None

    def close(self, reason: str = "done") -> None:
        """Close now (unsent bytes are dropped: finish streams and read the answer first)."""
        self._conn.close(CLOSE_OK, reason.encode())

    async def closed(self) -> str:
        """Wait until the connection is closed (by either side); why, as iroh says it."""
        return await self._conn.closed()

    def remote_address(self) -> str:
        """The socket address (or relay) the other node's packets come from now: iroh's selected
        path; '' when iroh reports none. For messages and records, never for authorization."""
        try:
            paths = self._conn.paths()
        except iroh.IrohError:
            return ""
        chosen = [p for p in paths if p.is_selected] or paths
        return chosen[0].remote_addr if chosen else ""

    def rtt_ms(self) -> float | None:
        rtt = self._conn.rtt()
        return None if rtt is None else rtt / 1000


class _LoopbackOnly(iroh.Preset):
    """iroh's minimal preset (crypto provider only: no relays, no discovery) bound to 127.0.0.1
    and ::1 alone. ``EndpointOptions.bind_addr`` would set the IPv4 socket only and leave iroh's
    default IPv6 socket listening on every interface ([::]); two ``bind_addr`` calls on the
    builder replace both."""

    def __init__(self, port: int):
        self._port = port

    def apply(self, builder: Any) -> None:
        builder.apply_minimal()
        builder.bind_addr(f"127.0.0.1:{self._port}")
        builder.bind_addr(f"[::1]:{self._port}")


class Endpoint:
    """This node's iroh endpoint: bound with its key, speaking our ALPN only."""

    def __init__(self, endpoint: Any):
        self._endpoint = endpoint
        self.node_id = str(endpoint.id())

    @classmethod
    async def bind(cls, signing_key: Any, *, loopback: bool = False, port: int = 0) -> Endpoint:
        """Bind with ``signing_key`` (a nacl SigningKey: its 32-byte seed is iroh's secret key).

        ``loopback``: 127.0.0.1 only, relays and discovery off (tests, bench): a peer is reached
        only at the direct addresses in its ticket. Otherwise iroh's n0 preset: every interface,
        hole punching, and n0's public relays when there is no direct path (they forward
        end-to-end encrypted QUIC packets and cannot read them; docs/peers.md)."""
        if loopback:
            options = iroh.EndpointOptions(preset=_LoopbackOnly(port), secret_key=bytes(signing_key),
                                           alpns=[ALPN], relay_mode=iroh.RelayMode.disabled())
        else:
            options = iroh.EndpointOptions(preset=iroh.preset_n0(), secret_key=bytes(signing_key),
                                           bind_addr=f"0.0.0.0:{port}" if port else None, alpns=[ALPN])
        try:
            endpoint = await iroh.Endpoint.bind(options)
        except iroh.IrohError as exc:
            where = f"loopback port {port}" if loopback else f"port {port}" if port else "a UDP port"
            raise TransportError(f"cannot bind {where}: {_reason(exc)}",
                                 hint="choose another port, or 0 for any free one") from None
        return cls(endpoint)

    def address(self) -> NodeAddress:
        return NodeAddress._from_iroh(self._endpoint.addr())

    def bound_sockets(self) -> list[str]:
        """The local UDP sockets this endpoint listens on."""
        return list(self._endpoint.bound_sockets())

    async def online(self, timeout: float) -> bool:
        """Whether the endpoint found a home relay within ``timeout`` s (its ticket then names the
        relay, so the ticket works when there is no direct path); False with relays off."""
        try:
            await asyncio.wait_for(self._endpoint.online(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def ticket(self) -> str:
        """This node's address as one string (id, direct addresses, relay): what ``peer invite``
        prints and ``connect`` takes."""
        return self.address().ticket()

    async def connect(self, target: NodeAddress | str, *, timeout: float = CONNECT_TIMEOUT) -> Connection:
        """Connect to ``target`` (a NodeAddress or a ticket); the other side must prove it is
        ``target.node_id``.

        Raises:
            BadTicket (exit 2), WrongNode (3: the address answered with another key),
            TransportError (3: refused or unreachable), ConnectTimeout (4: no answer in ``timeout``).
        """
        node = NodeAddress.from_ticket(target) if isinstance(target, str) else target
        where = ", ".join(node.addresses) or node.relay_url or "no known address"
        try:
            conn = await asyncio.wait_for(self._endpoint.connect(node._to_iroh(), ALPN), timeout)
        except asyncio.TimeoutError:
            raise ConnectTimeout(f"node {_short(node.node_id)} did not answer at {where} within {timeout:g} s",
                                 hint="check it runs `tessera serve` and is reachable from here") from None
        except iroh.IrohError as exc:
            reason = _reason(exc)
            if "invalid peer certificate" in reason:
                raise WrongNode(f"the node at {where} is not {_short(node.node_id)}: it could not prove that id",
                                hint="ask the peer for a fresh ticket: `tessera peer invite`") from None
            raise TransportError(f"cannot connect to node {_short(node.node_id)} at {where}: {reason}",
                                 hint="check it runs `tessera serve` and the ticket is current") from None
        connection = Connection(conn)
        if connection.remote_node_id != node.node_id:  # TLS already proved it; a cheap second look
            connection.close("wrong node")
            raise WrongNode(f"the node at {where} is {_short(connection.remote_node_id)}, not {_short(node.node_id)}")
        return connection

    async def accept(self) -> Connection | None:
        """The next authenticated incoming connection; None once the endpoint is closed.
        Attempts that fail their handshake (wrong ALPN, bad certificate) are skipped."""
        while True:
            incoming = await self._endpoint.accept_next()
            if incoming is None:
                return None
            try:
                return Connection(await (await incoming.accept()).connect())
            except iroh.IrohError:
                continue

    async def close(self) -> None:
        await self._endpoint.close()

    async def __aenter__(self) -> Endpoint:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
