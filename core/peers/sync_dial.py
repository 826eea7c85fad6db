"""Pulling from one peer over the network: dial it at its stored address, exchange hellos, run
core/peers/sync.pull on the channel, and record how it ended in the peer list (last_sync on
success, last_error's one line on failure) and, after a success, the bytes the peer sent and the
seconds the pull took (the status cell's transfer rate). Used by ``tessera peer sync`` and the daemon's timed
pulls (both under the sync lock, core/peers/locks.py)."""

from __future__ import annotations

import sqlite3
import time

from tessera.core.errors import TesseraError
from tessera.core.peers import channel as channels
from tessera.core.peers import peer_list, transport
from tessera.core.times import now as time_now


def record(conn: sqlite3.Connection, peer: peer_list.Peer, error: str | None) -> None:
    from tessera.core.store.db import transaction

    with transaction(conn):
        peer_list.record_sync(conn, peer.node_id, when=time_now(), error=error)


async def pull_from(conn: sqlite3.Connection, endpoint: transport.Endpoint, peer: peer_list.Peer, *,
                    full: bool = False, on_page=None):
    """Pull what ``peer`` shares with us into its replica; its SyncReport (sync.pull records the
    outcome of the pull itself, and reports a failure in it rather than raising).

    Raises:
        the TesseraError that kept us from talking to it (transport: 2/3/4, refused at hello: 5),
        after recording it as the peer's last_error.
    """
    try:
        channel = await channels.open_channel(conn, endpoint, peer)
    except TesseraError as exc:
        record(conn, peer, exc.one_line())
        raise
    from tessera.core.peers import sync

    counted = channel.stream = _CountedStream(channel.stream)
    started = time.monotonic()
    try:
        report = await sync.pull(channel, conn, peer, full=full, on_page=on_page)
    finally:
        channel.close()
    if report.ok:
        from tessera.core.store.db import transaction

        with transaction(conn):  # the transfer rate the status cell shows (peers migration 3)
            peer_list.record_transfer(conn, peer.node_id, received_bytes=counted.received,
                                      seconds=time.monotonic() - started)
    return report


class _CountedStream:
    """A channel's stream counting the bytes read from it: what the peer sent in the pull."""

    def __init__(self, stream: transport.Stream):
        self._stream = stream
        self.received = 0

    async def read(self, max_bytes: int) -> bytes:
        data = await self._stream.read(max_bytes)
        self.received += len(data)
        return data

    async def read_exact(self, size: int) -> bytes:
        data = await self._stream.read_exact(size)
        self.received += len(data)
        return data

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
