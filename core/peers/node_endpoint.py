"""This node's endpoint as the peer commands bind it: with the node key, on the node's stable
port (``node_profile.port``, chosen once, so the tickets peers keep stay valid), and in loopback
mode when ``TESSERA_PEER_LOOPBACK=1`` (tests, bench, air-gapped LANs: 127.0.0.1 and ::1 only,
relays and discovery off). Also the ticket a hello carries: where this node's ``tessera serve``
listens, even when the dialing endpoint itself is bound elsewhere."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tessera.core import node_key
from tessera.core.peers import identity, peer_list, transport

LOOPBACK_ENV = "TESSERA_PEER_LOOPBACK"
_FIRST_PORT_TRIES = 5


def loopback() -> bool:
    return os.environ.get(LOOPBACK_ENV) == "1"


def signing_key(conn: sqlite3.Connection):
    return node_key.signing_key(Path(conn.path))


def _port_of(socket_address: str) -> int:
    return int(socket_address.rsplit(":", 1)[1])


async def bind(conn: sqlite3.Connection, *, port: int | None = None, listen: bool = True) -> transport.Endpoint:
    """The node's endpoint.

    ``listen`` (serve, invite): on ``port`` when given (and stored as the node's port), else on
    the stored port, else on a free port chosen now and stored. Not ``listen`` (a dialer while
    ``tessera serve`` may hold the port: peer sync, join): the stored port when it is free, else
    any free port.

    Raises:
        TransportError (exit 3) when the port is taken.
    """
    key = signing_key(conn)
    want = port if port is not None else peer_list.stored_port(conn)
    if not listen:
        if want is not None:
            try:
                return await transport.Endpoint.bind(key, loopback=loopback(), port=want)
            except transport.TransportError:
                pass
        return await transport.Endpoint.bind(key, loopback=loopback())
    if want is not None:
        endpoint = await transport.Endpoint.bind(key, loopback=loopback(), port=want)
        if port is not None and port != peer_list.stored_port(conn):
            _store_port(conn, port)
        return endpoint
    error: transport.TransportError | None = None
    for _ in range(_FIRST_PORT_TRIES):  # the first time: a port free on every address, then kept
        chosen = _free_udp_port()
        try:
            endpoint = await transport.Endpoint.bind(key, loopback=loopback(), port=chosen)
        except transport.TransportError as exc:  # taken meanwhile
            error = exc
            continue
        _store_port(conn, chosen)
        return endpoint
    raise error


def _free_udp_port() -> int:
    """A UDP port free on the IPv4 and the IPv6 address the endpoint binds (asked of the kernel
    with plain sockets, closed at once: iroh releases a closed endpoint's sockets lazily)."""
    import socket

    v4_host, v6_host = ("127.0.0.1", "::1") if loopback() else ("0.0.0.0", "::")
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((v4_host, 0))
            port = probe.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe6:
                probe6.bind((v6_host, port))
        except OSError:
            continue
        return port


def _store_port(conn: sqlite3.Connection, port: int) -> None:
    from tessera.core.store.db import transaction

    with transaction(conn):
        peer_list.store_port(conn, port, default_name=identity.default_name())


def advertised_ticket(conn: sqlite3.Connection, endpoint: transport.Endpoint) -> str:
    """The ticket our hello carries: the endpoint's addresses with the node's stored port (where
    ``tessera serve`` listens), so a dialer bound on a passing port still tells its peer where to
    reach it; the endpoint's own ticket when no port is stored."""
    port = peer_list.stored_port(conn)
    address = endpoint.address()
    if port is None:
        return address.ticket()
    moved = tuple(f"{a.rsplit(':', 1)[0]}:{port}" for a in address.addresses)
    return transport.NodeAddress(address.node_id, moved, address.relay_url).ticket()
