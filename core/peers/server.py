"""The accepting side of this node's peer connections (``tessera serve``, ``peer invite``).

Each connection runs in its own task. Its first frame decides what it is:

- ``pair_start``: a pairing exchange for an open invite (core/peers/pairing_session.py), the
  only thing a node that is not a peer may do;
- anything else goes to the hello machine (core/peers/channel.py): an unknown or unauthorized
  node gets one error frame naming the fix and nothing else.

After the hello each request is answered in order: ``shares`` and ``pull`` by
core/peers/requests.answer, ``subscribe`` by pushing pages (core/peers/pages.build) for each
subscribed share as items are written, found by polling the store's ``PRAGMA data_version``;
``collab_join`` hands the connection to the notebook's room (core/collab/host.py).
Before every request and every push the peer is looked up again: a peer removed, or no longer
published to, is refused there and its subscription ends.

``stop()`` stops accepting, lets each connection finish the frame it is sending, and closes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Callable

from tessera.core.peers import channel as channels
from tessera.core.peers import hello, identity, peer_list, transport
from tessera.core.peers.frames import ProtocolError
from tessera.core.peers.rate_limit import PeerRateLimiter

POLL_SECONDS = 0.05  # how often a subscription looks for new items (PRAGMA data_version: cheap)
REVOKE_POLL_SECONDS = 0.25  # how often an idle connection checks its peer still has access
PING_SECONDS = 15.0  # an idle subscription's keep-alive
FIRST_FRAME_SECONDS = 30.0  # a dialer that opens no stream or sends nothing is dropped

Log = Callable[..., None]  # log(level, event, **fields)


def _no_log(level: str, event: str, **fields) -> None:
    pass


def _refusal(code: str, message: str, fix: str = "") -> ProtocolError:
    return ProtocolError(code, message, fix=fix)


class Server:
    """Answers the connections ``endpoint`` accepts, for the store at ``conn``."""

    def __init__(self, conn: sqlite3.Connection, endpoint: transport.Endpoint, *, signing_key,
                 local_ticket: str = "", limiter: PeerRateLimiter | None = None, log: Log = _no_log):
        self.conn, self.endpoint, self.signing_key = conn, endpoint, signing_key
        self.local_ticket = local_ticket
        self.limiter = limiter or PeerRateLimiter()
        self.log = log
        self.stopping = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._accepting: asyncio.Task | None = None
        self._collab = None  # core/collab/host.CollabHost, made at the first collab_join

    async def run(self) -> None:
        """Accept until ``stop()`` (or the endpoint closes)."""
        self._accepting = asyncio.current_task()
        try:
            while not self.stopping.is_set():
                connection = await self.endpoint.accept()
                if connection is None:
                    break
                task = asyncio.create_task(self._serve_connection(connection))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except asyncio.CancelledError:
            if not self.stopping.is_set():
                raise

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; each connection ends after the frame in flight (within ``grace`` s)."""
        self.stopping.set()
        if self._accepting is not None and not self._accepting.done():
            self._accepting.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        if self._collab is not None:
            await self._collab.close()

    def _collab_host(self):
        if self._collab is None:
            from tessera.core.collab.host import CollabHost

            self._collab = CollabHost(self.conn, log=self.log, stopping=self.stopping)
        return self._collab

    # -- one connection ------------------------------------------------------------------------

    async def _serve_connection(self, connection: transport.Connection) -> None:
        remote_id = connection.remote_node_id
        try:
            stream = await asyncio.wait_for(connection.accept_stream(), FIRST_FRAME_SECONDS)
            channel = channels.acceptor(self.conn, connection, stream, limiter=self.limiter,
                                        local_ticket=self.local_ticket)
            try:
                first = await asyncio.wait_for(channel.recv_raw(), FIRST_FRAME_SECONDS)
            except ProtocolError as error:
                await self._refuse(channel, error)
                return
            if first is None:
                connection.close()
                return
            if first.get("type") == "pair_start":
                await self._pair(channel, first)
                return
            try:
                remote = await channels.accept_hello(self.conn, channel, first)
            except hello.PeerRefused:
                connection.close()
                return
            except ProtocolError as error:  # the machine already sent its one error frame
                self.log("warning", "refused", peer=identity.short_id(remote_id), code=error.code,
                         address=connection.remote_address())
                await channel.finish()
                return
            self.log("info", "connected", peer=identity.short_id(remote.node_id), name=remote.name)
            await self._requests(channel)
        except (asyncio.TimeoutError, transport.TransportError) as exc:
            self.log("info", "disconnected", peer=identity.short_id(remote_id), reason=str(exc)[:200] or "timeout")
            connection.close()
        except asyncio.CancelledError:
            connection.close("stopping")
            raise
        except Exception as exc:  # one connection's failure never stops the server
            self.log("error", "connection_failed", peer=identity.short_id(remote_id),
                     reason=f"{type(exc).__name__}: {str(exc)[:200]}")
            connection.close("error")

    async def _refuse(self, channel: channels.Channel, error: ProtocolError) -> None:
        self.log("warning", "refused", peer=identity.short_id(channel.connection.remote_node_id), code=error.code)
        await channel.refuse(error)
        await channel.finish()

    def _authorization(self, node_id: str) -> ProtocolError | None:
        """Why ``node_id`` may no longer be served (None: it may)."""
        me = identity.local_identity(self.conn)
        peer = peer_list.get(self.conn, node_id)
        if peer is None or not peer.publish:
            return _refusal("not_authorized", f"node {identity.short_id(node_id)} is no longer a peer this node "
                                              f"publishes to ({me.name})",
                            fix=f"on {me.name}: tessera peer add {node_id} --publish")
        return None

    async def _requests(self, channel: channels.Channel) -> None:
        node_id = channel.remote.node_id
        while not self.stopping.is_set():
            try:
                request = await self._next_request(channel)
                if request is None:  # stopping: the connection is idle between requests
                    break
                if isinstance(request, ProtocolError):  # the peer lost access while idle
                    await self._refuse(channel, request)
                    return
            except hello.PeerRefused:
                channel.close()
                return
            except ProtocolError as error:
                if error.code != "closed":
                    self.log("warning", "refused", peer=identity.short_id(node_id), code=error.code)
                await channel.finish()
                return
            refusal = self._authorization(node_id)
            if refusal is not None:
                await self._refuse(channel, refusal)
                return
            if request["type"] == "subscribe":
                await self._subscribe(channel, request)
                return
            if request["type"] == "collab_join":  # the connection becomes a live notebook's (core/collab/)
                await self._collab_host().join(channel, request)
                return
            from tessera.core.peers import requests

            answer = requests.answer(self.conn, node_id, request, self.signing_key)
            await channel.send(answer)
            if answer.get("type") == "error":
                self.log("warning", "refused", peer=identity.short_id(node_id), code=answer.get("code"))
                channel.machine.phase = hello.Phase.CLOSED
                await channel.finish()
                return
        await channel.finish()

    async def _next_request(self, channel: channels.Channel) -> dict | ProtocolError | None:
        """The peer's next request; None once ``stop()`` is called while we wait for it; or the
        refusal to send when the peer loses access meanwhile (``peer remove``, or publishing
        stopped: a change seen through ``PRAGMA data_version``), so an idle connection of a
        removed peer is closed at once rather than at its next request."""
        receiving = asyncio.create_task(channel.recv())
        stopping = asyncio.create_task(self.stopping.wait())
        seen_version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        try:
            while True:
                done, _ = await asyncio.wait({receiving, stopping}, timeout=REVOKE_POLL_SECONDS,
                                             return_when=asyncio.FIRST_COMPLETED)
                if done:
                    break
                version = self.conn.execute("PRAGMA data_version").fetchone()[0]
                if version != seen_version:
                    seen_version = version
                    refusal = self._authorization(channel.remote.node_id)
                    if refusal is not None:
                        receiving.cancel()
                        return refusal
        finally:
            stopping.cancel()
        if receiving.done():
            return receiving.result()
        receiving.cancel()
        return None

    # -- subscriptions -------------------------------------------------------------------------

    async def _subscribe(self, channel: channels.Channel, request: dict) -> None:
        """Push a page for each subscribed share whenever it has items past its cursor (first the
        backlog, then live), a ping when idle; until either side closes or the peer loses access
        (one error frame). A share granted to the peer meanwhile ends the stream cleanly, so the
        subscriber asks ``shares`` again and subscribes to it too."""
        from tessera.core.peers import pages, shares

        node_id = channel.remote.node_id
        cursors = dict(request["cursors"])
        if not all(type(cursor) is int and cursor >= 0 for cursor in cursors.values()):
            await self._refuse(channel, _refusal("malformed", "a subscribe's cursors are whole numbers from 0",
                                                 fix="send the cursors of the pages stored"))
            return
        granted = set(shares.granted(self.conn, node_id))
        for item in cursors:
            if item not in granted:
                await self._refuse(channel, self._not_shared(item, node_id))
                return
        reader = asyncio.create_task(self._read_during_subscription(channel))
        self.log("info", "subscribed", peer=identity.short_id(node_id), shares=len(cursors))
        seen_version = None
        idle_since = asyncio.get_running_loop().time()
        try:
            while not self.stopping.is_set() and not reader.done():
                version = self.conn.execute("PRAGMA data_version").fetchone()[0]
                if version != seen_version:
                    seen_version = version
                    refusal = self._authorization(node_id)
                    if refusal is None:
                        granted = set(shares.granted(self.conn, node_id))
                        missing = [item for item in cursors if item not in granted]
                        if missing:
                            refusal = self._not_shared(missing[0], node_id)
                    if refusal is not None:
                        reader.cancel()
                        await self._refuse(channel, refusal)
                        return
                    if granted - cursors.keys():  # a share granted since: the subscriber lists and subscribes again
                        self.log("info", "subscription_renewed", peer=identity.short_id(node_id),
                                 shares=len(granted))
                        break
                    pushed = True
                    while pushed and not self.stopping.is_set():  # drain the backlog, page by page
                        pushed = False
                        for item, cursor in cursors.items():
                            if pages.latest_cursor(self.conn, item) > cursor:
                                page = pages.build(self.conn, item, cursor, limit=pages.MAX_LIMIT,
                                                   signing_key=self.signing_key)
                                await channel.send(page)
                                cursors[item] = page["cursor_to"]
                                pushed = True
                                idle_since = asyncio.get_running_loop().time()
                now = asyncio.get_running_loop().time()
                if now - idle_since >= PING_SECONDS:
                    await channel.ping()
                    idle_since = now
                await asyncio.wait({reader}, timeout=POLL_SECONDS)
        finally:
            if not reader.done():
                reader.cancel()
        await channel.finish()

    async def _read_during_subscription(self, channel: channels.Channel) -> None:
        """A subscription is push-only: the subscriber sends nothing but pongs (taken by the
        machine); anything else is refused, and the end of its stream ends the subscription."""
        try:
            request = await channel.recv()
        except (ProtocolError, transport.TransportError):
            return
        await channel.refuse(_refusal("unexpected", f"a {request['type']} request on a subscription",
                                      fix="a subscription only receives pages: open another connection"))

    def _not_shared(self, item: str, node_id: str) -> ProtocolError:
        me = identity.local_identity(self.conn)
        return _refusal("not_shared", f"{item[:200]} is not shared with this node",
                        fix=f"on {me.name}: tessera peer share {item[:200]} --with {identity.short_id(node_id)}")

    # -- pairing -------------------------------------------------------------------------------

    async def _pair(self, channel: channels.Channel, first: dict) -> None:
        from tessera.core.errors import TesseraError
        from tessera.core.peers import pairing_session

        me = identity.local_identity(self.conn)
        connection = channel.connection
        where = dict(peer=identity.short_id(connection.remote_node_id), address=connection.remote_address())
        self.log("info", "pairing", **where)
        try:
            result = await pairing_session.answer_invite(Path(self.conn.path), channel, first, local_id=me.node_id,
                                                         local_name=me.name)
        except TesseraError as exc:
            self.log("warning", "pairing_failed", reason=exc.message[:200], **where)
            if getattr(exc, "from_peer", False):
                channel.close()
            else:
                await channel.finish()
            return
        self.log("info", "paired", name=result.peer_name, role=result.role, **where)
        channel.close()
