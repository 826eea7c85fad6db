"""Pairing over a peer connection: core/peers/pairing.py's state machines and their driver
``pairing.run`` (synchronous, over a MessageChannel) bridged to the asynchronous frames channel
(core/peers/channel.py), and what a pairing leaves behind on each side.

The driver runs in a worker thread; each send and receive is handed to the event loop that owns
the connection (``asyncio.run_coroutine_threadsafe``), so the exchange, its deadlines and its
failures stay exactly the ones pairing.run implements. The worker opens its own store
connection: the inviter claims and cancels invites there.

After a successful pairing each side adds the other with publish=1 and subscribe=1 (DESIGN §11,
"two-way trust"); the inviter adds the joiner with the invite's role and grants it the invite's
shares in peer_shares, for that joiner only. Nothing else is shared.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from pathlib import Path

from tessera.core.peers import pairing, peer_list, shares
from tessera.core.peers.channel import Channel
from tessera.core.times import now as time_now

SEND_TIMEOUT = 30.0  # seconds for one frame to leave (the exchange's own deadline bounds the rest)


class _ThreadBridge:
    """pairing.MessageChannel over an async Channel, used from a worker thread."""

    def __init__(self, channel: Channel, loop: asyncio.AbstractEventLoop, first: dict | None = None):
        self.channel, self.loop = channel, loop
        self.pending = [first] if first is not None else []

    def send(self, message: dict) -> None:
        asyncio.run_coroutine_threadsafe(self.channel.send(message), self.loop).result(SEND_TIMEOUT)

    def recv(self, timeout: float) -> dict:
        if self.pending:
            return self.pending.pop(0)
        future = asyncio.run_coroutine_threadsafe(self.channel.recv_raw(), self.loop)
        try:
            message = future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None
        if message is None:
            raise pairing.PairingAborted("the other node closed the connection during the pairing",
                                         hint="pair again: `tessera peer invite` on the other node")
        return message


def _connect(store_path: Path) -> sqlite3.Connection:
    from tessera.core.store.db import connect

    return connect(store_path)


def _welcome_inviter(store_path: Path, result: pairing.PairingResult) -> None:
    from tessera.core.store.db import transaction

    conn = _connect(store_path)
    try:
        with transaction(conn):
            when = time_now()
            peer_list.add(conn, result.peer_id, result.peer_name, role=result.role, publish=True, subscribe=True,
                          added_at=when)
            for item in result.shares:  # checked by `peer invite` (shares.parse_item) when it was made
                shares.add(conn, item, [result.peer_id], added_at=when)
    finally:
        conn.close()


def _invite_side(store_path: Path, bridge: _ThreadBridge, *, local_id: str, local_name: str, remote_id: str,
                 remote_address: str, timeout: float) -> pairing.PairingResult:
    conn = _connect(store_path)
    try:
        side = pairing.Inviter(conn, local_id=local_id, local_name=local_name, remote_id=remote_id,
                               remote_address=remote_address)
        result = pairing.run(side, bridge, timeout=timeout)
    finally:
        conn.close()
    _welcome_inviter(store_path, result)
    return result


async def answer_invite(store_path: Path, channel: Channel, first: dict, *, local_id: str, local_name: str,
                        timeout: float = pairing.DEFAULT_TIMEOUT) -> pairing.PairingResult:
    """The inviting side of one connection whose first frame was ``first`` (a pair_start): runs
    the exchange and, once paired, adds the joiner (role and shares of the invite).

    Raises:
        what pairing.run raises (the invite is cancelled on any failure after its claim).
    """
    bridge = _ThreadBridge(channel, asyncio.get_running_loop(), first)
    return await asyncio.to_thread(_invite_side, Path(store_path), bridge, local_id=local_id, local_name=local_name,
                                   remote_id=channel.connection.remote_node_id,
                                   remote_address=channel.connection.remote_address(), timeout=timeout)


async def join(conn: sqlite3.Connection, channel: Channel, *, pin: str, invite_id: str, local_id: str,
               local_name: str, inviter_ticket: str, name: str | None = None,
               timeout: float = pairing.DEFAULT_TIMEOUT) -> tuple[pairing.PairingResult, str]:
    """The joining side: runs the exchange and, once paired, adds the inviter (under ``name``
    when given, else the name it announced) with its ticket as its address. Returns the result
    and the name it was added under."""
    from tessera.core.store.db import transaction

    side = pairing.Joiner(pin=pin, invite_id=invite_id, local_id=local_id, remote_id=channel.connection.remote_node_id,
                          local_name=local_name)
    bridge = _ThreadBridge(channel, asyncio.get_running_loop())
    result = await asyncio.to_thread(pairing.run, side, bridge, timeout=timeout)
    shown = name or result.peer_name
    with transaction(conn):
        peer_list.add(conn, result.peer_id, shown, role="viewer", publish=True, subscribe=True, added_at=time_now(),
                      address=inviter_ticket)
    return result, shown
