"""Whether a peer answers now: dial it at its stored address (core/peers/channel.py, the same
dialing and hello as a pull), send one ping and take its pong, all within a short timeout. For
``tessera doctor``; nothing is written (a peer's last_sync / last_error are a pull's to record)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass

from tessera.core.errors import TesseraError
from tessera.core.peers import channel as channels
from tessera.core.peers import node_endpoint, peer_list, transport
from tessera.core.peers.frames import ProtocolError


@dataclass(frozen=True)
class Reachability:
    peer: peer_list.Peer
    rtt_ms: float | None  # hello and ping, from dialing to the pong; None when it did not answer
    error: TesseraError | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None


async def _hello_and_ping(conn: sqlite3.Connection, endpoint: transport.Endpoint, peer: peer_list.Peer,
                          timeout: float) -> None:
    channel = await channels.open_channel(conn, endpoint, peer, timeout=timeout)
    try:
        await channel.ping()
        answer = await channel.recv_raw()
        if answer is None:
            raise ProtocolError("closed", f"{peer.name} closed the connection instead of answering a ping")
        step = await channel.feed(answer)
        if step.close:
            raise step.error
        if answer.get("type") != "pong":
            raise ProtocolError("unexpected", f"{peer.name} answered a ping with {str(answer.get('type'))[:40]!r}")
    finally:
        channel.close()


async def probe(conn: sqlite3.Connection, endpoint: transport.Endpoint, peer: peer_list.Peer, *,
                timeout: float) -> Reachability:
    """Dial ``peer``, exchange hellos and one ping, all within ``timeout`` seconds."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(_hello_and_ping(conn, endpoint, peer, timeout), timeout)
    except asyncio.TimeoutError:
        return Reachability(peer, None, transport.ConnectTimeout(
            f"{peer.name} did not answer a hello and a ping within {timeout:g} s",
            hint="check it runs `tessera serve` and is reachable from here"))
    except TesseraError as exc:  # transport errors, refusals at hello (PeerRefused), protocol errors
        return Reachability(peer, None, exc)
    return Reachability(peer, (time.monotonic() - started) * 1000)


async def probe_all(conn: sqlite3.Connection, peers: list[peer_list.Peer], *, timeout: float) -> list[Reachability]:
    """``probe`` every peer at once from one endpoint (bound as a dialer: beside a running
    ``tessera serve``, on another port); in the peers' order.

    Raises:
        TransportError when no endpoint can be bound.
    """
    endpoint = await node_endpoint.bind(conn, listen=False)
    try:
        return list(await asyncio.gather(*(probe(conn, endpoint, peer, timeout=timeout) for peer in peers)))
    finally:
        await endpoint.close()
