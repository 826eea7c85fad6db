"""``tessera serve``: this node's long-running peer process.

It holds the data home's serve lock (a second serve refuses, exit 3), binds the node's endpoint
on its stable port, and answers every connection (core/peers/server.py). It keeps one live
subscription per peer this node subscribes to (``peer add --subscribe``, or a pairing), applying
each pushed page to that peer's replica (reconnecting after a failure with exponential backoff,
1 s doubling to 5 min, one log line per failure). With ``--sync`` it also pulls from every
subscribed peer without a live subscription every ``sync_interval`` seconds, under the sync lock.

SIGTERM or SIGINT: stop accepting, let each connection finish the frame in flight, close, exit 0.

Logs are one JSON object a line on stderr when it is not a terminal (time, level, event, peer,
...), readable lines on a terminal; never a key, a PIN or shared data.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

from tessera.core.daemon_log import DaemonLog
from tessera.core.errors import TesseraError
from tessera.core.private_files import open_private
from tessera.core.peers import identity, locks, node_endpoint, peer_list, transport
from tessera.core.times import now as time_now

BACKOFF_FIRST = 1.0
BACKOFF_MOST = 300.0
DEFAULT_SYNC_INTERVAL = 30 * 60.0
CLOSE_SECONDS = 5.0  # for the endpoint to close on the way out
TICKET_FILE = "serve.ticket"  # the running serve's endpoint ticket (an address, not a secret)


def backoff_delays(first: float = BACKOFF_FIRST, most: float = BACKOFF_MOST):
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, most)


class Daemon:
    def __init__(self, conn: sqlite3.Connection, *, port: int | None, sync: bool, sync_interval: float,
                 log: DaemonLog):
        self.conn, self.port, self.sync, self.sync_interval, self.log = conn, port, sync, sync_interval, log
        self.data_home = Path(conn.path).parent
        self.live: set[str] = set()  # node ids with a subscription receiving pages now
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        from tessera.core.peers.server import Server

        endpoint = await node_endpoint.bind(self.conn, port=self.port, listen=True)
        self._forget_peers_present()
        me = identity.local_identity(self.conn)
        ticket = endpoint.ticket()
        server = Server(self.conn, endpoint, signing_key=node_endpoint.signing_key(self.conn), local_ticket=ticket,
                        log=self.log)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        ticket_file = self.data_home / TICKET_FILE
        with open_private(ticket_file, "w") as out:  # for `peer invite` while this serve holds the port
            out.write(ticket + "\n")
        self.log("info", "listening", node_id=me.node_id, name=me.name, port=peer_list.stored_port(self.conn),
                 ticket=ticket, sync=self.sync)
        # Subscriptions are not behind --sync: subscribing to a peer is the user's ask to receive
        # its items as they are written, and serve running on both sides is what delivers them.
        tasks = [asyncio.create_task(server.run()), asyncio.create_task(self._subscriptions(endpoint))]
        if self.sync:
            tasks.append(asyncio.create_task(self._timed_pulls(endpoint)))
        await self.stopping.wait()
        self.log("info", "stopping")
        await server.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(endpoint.close(), CLOSE_SECONDS)
        except asyncio.TimeoutError:  # exiting anyway: the OS frees the socket
            self.log("warning", "close_timeout")
        ticket_file.unlink(missing_ok=True)
        self.log("info", "stopped")

    def _forget_peers_present(self) -> None:
        """The peers a previous serve had in its collaboration rooms left with it (a killed
        serve could not withdraw them); their rows would only expire by their TTL."""
        from tessera.core.collab import presence
        from tessera.core.store.db import StoreError

        try:
            presence.withdraw_all(self.conn, "peer")
        except StoreError as exc:  # the store busy: they expire within the TTL anyway
            self.log("warning", "presence_failed", reason=exc.one_line()[:300])

    # -- subscriptions -------------------------------------------------------------------------

    async def _subscriptions(self, endpoint: transport.Endpoint) -> None:
        """One task per subscribed peer with an address, started as peers appear."""
        running: dict[str, asyncio.Task] = {}
        try:
            while True:
                wanted = {p.node_id: p for p in peer_list.all_peers(self.conn) if p.subscribe and p.address}
                for node_id, task in list(running.items()):
                    if node_id not in wanted or task.done():
                        task.cancel()
                        del running[node_id]
                for node_id in wanted.keys() - running.keys():
                    running[node_id] = asyncio.create_task(self._subscribe(endpoint, node_id))
                await asyncio.sleep(5.0)  # picks up peers added by `peer add`/pairing meanwhile
        finally:
            for task in running.values():
                task.cancel()

    async def _subscribe(self, endpoint: transport.Endpoint, node_id: str) -> None:
        from tessera.core.peers import channel as channels
        from tessera.core.peers import message_types, replica
        from tessera.core.peers.frames import ProtocolError
        from tessera.core.store.db import transaction

        delays = backoff_delays()
        while True:
            peer = peer_list.get(self.conn, node_id)
            if peer is None or not peer.subscribe:
                return
            target, established = None, False
            try:
                channel = await channels.open_channel(self.conn, endpoint, peer)
                try:
                    await channel.send(message_types.make("shares"))
                    listing = await channel.recv()
                    if listing["type"] != "share_list":
                        raise ProtocolError("unexpected", f"expected a share_list, got {listing['type']}")
                    target = replica.open_for_write(node_id, Path(self.conn.path))
                    stored = replica.cursors(target)
                    cursors = {s["item"]: stored.get(s["item"], 0) for s in listing["shares"]
                               if isinstance(s, dict) and isinstance(s.get("item"), str)}
                    await channel.send(message_types.make("subscribe", cursors=cursors))
                    self.log("info", "subscription", peer=identity.short_id(node_id), shares=len(cursors))
                    self.live.add(node_id)
                    established = True
                    delays = backoff_delays()
                    while True:
                        page = await channel.recv()
                        if page["type"] != "page":
                            raise ProtocolError("unexpected", f"a {page['type']} message on a subscription")
                        count = replica.apply(target, node_id, page, overlap=True)  # a peer sync may have filed it
                        with transaction(self.conn):
                            peer_list.record_sync(self.conn, node_id, when=time_now())
                        self.log("info", "page", peer=identity.short_id(node_id), items=count)
                finally:
                    self.live.discard(node_id)
                    channel.close()
                    if target is not None:
                        target.close()
            except asyncio.CancelledError:
                raise
            except TesseraError as exc:
                if established and getattr(exc, "code", None) == "closed":  # the peer ended it cleanly
                    self.log("info", "subscription_ended", peer=identity.short_id(node_id))  # (a new share)
                    delays = backoff_delays()
                    await asyncio.sleep(BACKOFF_FIRST)
                    continue
                delay = next(delays)
                with transaction(self.conn):
                    peer_list.record_sync(self.conn, node_id, when=time_now(), error=exc.one_line())
                self.log("warning", "subscription_failed", peer=identity.short_id(node_id),
                         reason=exc.one_line()[:300], retry_s=delay)
            except Exception as exc:
                delay = next(delays)
                self.log("error", "subscription_failed", peer=identity.short_id(node_id),
                         reason=f"{type(exc).__name__}: {str(exc)[:200]}", retry_s=delay)
            await asyncio.sleep(delay)

    # -- timed pulls ---------------------------------------------------------------------------

    async def _timed_pulls(self, endpoint: transport.Endpoint) -> None:
        from tessera.core.peers import sync_dial

        while True:
            await asyncio.sleep(self.sync_interval)
            try:
                lock = await asyncio.to_thread(locks.sync_lock, self.data_home)
            except locks.SyncBusy as exc:
                self.log("warning", "sync_skipped", reason=exc.one_line())
                continue
            try:
                for peer in peer_list.all_peers(self.conn):
                    if not peer.subscribe or not peer.address or peer.node_id in self.live:
                        continue
                    try:
                        await sync_dial.pull_from(self.conn, endpoint, peer)
                        self.log("info", "synced", peer=identity.short_id(peer.node_id))
                    except TesseraError as exc:
                        self.log("warning", "sync_failed", peer=identity.short_id(peer.node_id),
                                 reason=exc.one_line()[:300])
            finally:
                lock.release()


def serve(*, port: int | None = None, sync: bool = False, sync_interval: float = DEFAULT_SYNC_INTERVAL,
          log: DaemonLog | None = None) -> None:
    """Run ``tessera serve`` until SIGTERM/SIGINT.

    Raises:
        locks.ServeRunning (exit 3), transport.TransportError (the port is taken: exit 3).
    """
    from tessera.core.config import data_home
    from tessera.core.store.db import connect

    lock = locks.serve_lock(data_home())
    try:
        conn = connect()
        asyncio.run(Daemon(conn, port=port, sync=sync, sync_interval=sync_interval, log=log or DaemonLog()).run())
    finally:
        lock.release()
