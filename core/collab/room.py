"""One notebook's room in ``tessera serve``: every client of it (core/collab/client.py), the
owner's Doc, awareness and the owner-run panes.

- The Doc is loaded from the store (after repository.upgrade) and kept in step with it: a
  client's update is checked (the peer's role and grant looked up again on every update, so
  ``peer role`` and ``peer unshare`` apply at once), stored by repository.apply_update with
  ``by`` = the peer, applied to the Doc and relayed to the room's other clients. Edits made at
  the owner by anything else (its dashboard, ``cell edit``) are found by polling ``PRAGMA
  data_version`` every POLL_SECONDS and the new ``notebook_updates`` rows relayed as updates.
- Awareness: each client's state is kept as the owner makes it (name and node are the peer's
  authenticated identity, whatever the client claimed), relayed to the others and mirrored in
  the presence table; it is dropped when its connection ends or when it is not renewed for
  EXPIRE_SECONDS. The owner's own state lists its local front ends (presence table), renewed
  every RENEW_SECONDS.
- Panes: while at least one client asked run="owner", front's PaneFeed runs the cells here and
  each pane message goes to those clients (a late joiner first gets a snapshot of every pane).
  A snapshot too large for one message is a blob the feed grants to those clients' nodes
  (``pane_viewers``), which they fetch from this serve (core/blobs/serving.py).

Each client has its own outgoing queue and writer task, so a slow client never holds up the
others, and frames on one connection are never interleaved.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Callable

from tessera.core.collab import presence, y_messages
from tessera.core.collab.pane_wire import PANE_INLINE_LIMIT
from tessera.core.peers import identity, message_types
from tessera.core.peers.frames import MAX_FRAME_BYTES, ProtocolError
from tessera.core.store.db import StoreError

POLL_SECONDS = 0.01  # how often an open room looks for edits made at the owner (PRAGMA data_version)
TICK_SECONDS = 0.5  # awareness renewals and expiry
RENEW_SECONDS = 2.0  # the owner's awareness renewal
EXPIRE_SECONDS = 6.0  # a client's awareness state not renewed for this long is dropped
IDLE_SECONDS = 30.0  # a connection that sends nothing for this long is closed (clients renew every 2 s)
MAX_QUEUED = 5000  # frames waiting for one client before it is dropped as too slow

Log = Callable[..., None]


class ClientGone(Exception):
    """This client's connection is over (refused, or it broke the protocol)."""


@dataclass(eq=False)
class RoomClient:
    """One client connection in a room."""

    channel: Any
    node_id: str
    name: str
    run: str
    role: str = "viewer"  # the role it was last told (collab_welcome, then collab_role)
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    awareness_id: int | None = None
    clock: int = 0
    state: dict | None = None
    renewed: float = 0.0
    heard: float = 0.0
    panes_ready: bool = False
    closing: ProtocolError | None = None  # set: the writer sends this error frame and stops

    @property
    def presence_client(self) -> str:
        return f"{self.node_id[:16]}-{self.awareness_id}"

    def post(self, message: dict) -> None:
        if self.outbox.qsize() >= MAX_QUEUED:
            self.close(ProtocolError("too_slow", "this connection fell too far behind the notebook's changes",
                                     fix="reconnect"))
            return
        self.outbox.put_nowait(message)

    def post_data(self, data: bytes) -> None:
        """One y-protocol message; one too large for a frame (a notebook's whole state) goes in
        parts, queued together so nothing comes between them."""
        *parts, last = y_messages.pieces(data)
        for part in parts:
            self.post(message_types.make("collab_part", data=part))
        self.post(message_types.make("collab", data=last))

    def close(self, error: ProtocolError) -> None:
        if self.closing is None:
            self.closing = error
            self.outbox.put_nowait(None)


def _pane_feed_class() -> Any:
    """front's PaneFeed (core/collab/pane_feed.py), or None while it is not there: the room then
    runs without panes."""
    try:
        from tessera.core.collab.pane_feed import PaneFeed
    except ImportError:
        return None
    return PaneFeed


class Room:
    def __init__(self, conn: sqlite3.Connection, notebook_id: str, *, log: Log, on_empty: Callable[["Room"], None]):
        from tessera.core.notebook import repository

        self.conn, self.notebook_id, self.log, self.on_empty = conn, notebook_id, log, on_empty
        self.nb = repository.load_by_id(conn, notebook_id)
        self.doc = self.nb.doc
        self.last_row = repository.update_mark(conn, notebook_id) or 0
        me = identity.local_identity(conn)
        self.me_id, self.me_name = me.node_id, me.name
        self.owner_awareness_id = self.doc.client_id
        self.owner_clock = 0
        self.owner_people: list[dict] = []
        self.owner_renewed = 0.0
        self.clients: set[RoomClient] = set()
        self.feed: Any = None
        self.pane_viewers: tuple[str, ...] = ()  # node ids of the run=owner clients (read by the feed's thread)
        self.closed = False
        self._tasks: list[asyncio.Task] = []

    @property
    def name(self) -> str:
        row = self.conn.execute("SELECT name FROM notebooks WHERE id = ?", (self.notebook_id,)).fetchone()
        return row[0] if row else self.nb.name

    def start(self) -> None:
        self.owner_people = self._local_people()
        self._tasks = [asyncio.create_task(self._poll()), asyncio.create_task(self._tick())]

    async def close(self) -> None:
        """Stop the room (its last client left, or serve stops)."""
        self.closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_feed()

    # --- one client -----------------------------------------------------------------------------

    async def serve(self, client: RoomClient, stopping: asyncio.Event) -> None:
        """Serve ``client`` until its connection ends, it breaks the protocol, or serve stops."""
        loop = asyncio.get_running_loop()
        client.heard = loop.time()
        self.clients.add(client)
        writer = asyncio.create_task(self._write(client))
        try:
            client.post_data(y_messages.step1(self.doc))
            client.post_data(y_messages.awareness_message(self._all_awareness()))
            if client.run == "owner":
                await self._join_feed(client)
            await self._read(client, stopping, writer)
        finally:
            self.clients.discard(client)
            self._set_pane_viewers()
            self._drop_awareness(client)
            if client.closing is None:
                writer.cancel()
            try:
                await asyncio.wait_for(writer, 5.0)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                pass
            if client.run == "owner" and not any(c.run == "owner" for c in self.clients):
                await self._stop_feed()
            if not self.clients:
                self.on_empty(self)

    async def _read(self, client: RoomClient, stopping: asyncio.Event, writer: asyncio.Task) -> None:
        from tessera.core.peers import hello, transport

        channel = client.channel
        stop = asyncio.create_task(stopping.wait())
        try:
            while client.closing is None:
                receiving = asyncio.create_task(channel.recv())
                done, _ = await asyncio.wait({receiving, stop, writer}, timeout=IDLE_SECONDS,
                                             return_when=asyncio.FIRST_COMPLETED)
                if receiving not in done:
                    receiving.cancel()
                    if not done:
                        client.close(ProtocolError("idle", f"nothing received for {IDLE_SECONDS:g} s",
                                                   fix="reconnect"))
                    return
                try:
                    message = receiving.result()
                except (hello.PeerRefused, ProtocolError) as error:  # its error frame, a protocol error (answered), closed
                    if error.code not in ("closed",):
                        self.log("info", "collab_closed", peer=identity.short_id(client.node_id), code=error.code)
                    return
                except transport.TransportError as exc:
                    self.log("info", "collab_closed", peer=identity.short_id(client.node_id), reason=str(exc)[:200])
                    return
                client.heard = asyncio.get_running_loop().time()
                try:
                    await self._handle(client, message)
                except ClientGone:
                    return
        finally:
            stop.cancel()

    async def _write(self, client: RoomClient) -> None:
        from tessera.core.peers import transport

        try:
            while True:
                message = await client.outbox.get()
                if message is None:
                    break
                try:
                    await client.channel.send(message)
                except ProtocolError as error:  # too large for a frame (a notebook's state over 4 MiB)
                    if error.code != "too_large" or client.closing is not None:
                        raise
                    client.closing = ProtocolError(
                        "too_large", f"notebook {self.name} is too large to open live (a frame holds at most "
                                     f"{MAX_FRAME_BYTES // (1024 * 1024)} MiB)",
                        fix=f"ask {self.me_name} to split it into smaller notebooks")
                    break
        except (transport.TransportError, ProtocolError, OSError):
            return
        if client.closing is not None:
            self.log("warning", "collab_refused", peer=identity.short_id(client.node_id), code=client.closing.code)
            await client.channel.refuse(client.closing)
            await client.channel.finish()

    async def _handle(self, client: RoomClient, message: dict) -> None:
        kind = message["type"]
        if kind == "collab":
            try:
                parsed = y_messages.parse(message["data"])
                if parsed.kind == "step1":
                    client.post_data(y_messages.step2_for(self.doc, parsed.payload))
                elif parsed.kind in ("step2", "update"):
                    self._update(client, parsed.payload)
                else:
                    self._awareness(client, y_messages.awareness_entries(parsed.payload))
            except ProtocolError as error:  # bad bytes: refused, the connection stays
                self._refuse(client, error.code, error.message, error.fix)
        elif kind == "collab_run":
            if self.feed is not None and message["cell"] in self.nb.ids():
                await asyncio.to_thread(self.feed.run_now, message["cell"])
        else:
            client.close(ProtocolError("unexpected", f"a {kind} message on a collab connection",
                                       fix="a collab connection carries collab, collab_run and ping only"))
            raise ClientGone

    def _refuse(self, client: RoomClient, code: str, message: str, fix: str = "") -> None:
        self.log("info", "collab_edit_refused", peer=identity.short_id(client.node_id), code=code)
        client.post(message_types.make("collab_refused", code=code[:64], message=message[:1000], fix=fix[:300]))

    # --- updates ------------------------------------------------------------------------------

    def _access(self, client: RoomClient) -> tuple[Any, ProtocolError | None]:
        """The peer now, or why it may no longer use this room (removed, not published to,
        the notebook no longer shared with it)."""
        from tessera.core.peers import peer_list, shares

        peer = peer_list.get(self.conn, client.node_id)
        if peer is None or not peer.publish:
            return None, ProtocolError("not_authorized", f"node {identity.short_id(client.node_id)} is no longer a "
                                                         f"peer {self.me_name} publishes to",
                                       fix=f"ask {self.me_name}: tessera peer add {client.node_id} --publish")
        name = self.name
        if not shares.is_granted(self.conn, client.node_id, f"notebook:{name}"):
            return None, ProtocolError("not_shared", f"notebook {name} is no longer shared with {peer.name}",
                                       fix=f"ask {self.me_name}: tessera peer share {name} --with {peer.name}")
        return peer, None

    def _update(self, client: RoomClient, update: bytes) -> None:
        from tessera.core.errors import InputError, QueryError
        from tessera.core.notebook import repository

        if update == y_messages.EMPTY_UPDATE:
            return
        peer, refusal = self._access(client)
        if refusal is not None:
            client.close(refusal)
            raise ClientGone
        if peer.role != "editor":
            if not self._would_change(client, update):
                return  # e.g. a viewer's step2 with nothing new: not an edit
            name = self.name
            self._refuse(client, "read_only", f"{self.me_name}'s node refused the edit: you are a viewer of {name}",
                         f"ask {self.me_name}: tessera peer role {peer.name} editor")
            return
        try:
            result = repository.apply_update(self.conn, self.notebook_id, update,
                                             by={"node": client.node_id, "name": peer.name})
        except InputError as exc:
            code = "too_large" if isinstance(exc, repository.NotebookTooLarge) else "malformed"
            self._refuse(client, code, f"{self.me_name}'s node refused the edit: {exc.message}", exc.hint or "")
            return
        except StoreError as exc:  # the store locked or full: the client keeps the edit and sends it again
            self.log("warning", "collab_store_failed", peer=identity.short_id(client.node_id),
                     reason=exc.one_line()[:300])  # the owner's paths and processes stay in its own log
            client.close(ProtocolError("busy", f"{self.me_name}'s node could not store the edit now (its store is busy)",
                                       fix="the edit is kept and sent again when the connection is back"))
            raise ClientGone from None
        except QueryError as exc:
            self._close_all(ProtocolError("not_found", f"notebook {self.nb.name} is gone from {self.me_name}",
                                          fix=exc.hint or ""))
            raise ClientGone from None
        if result is not None:
            self.log("info", "collab_edit", peer=identity.short_id(client.node_id), changed=len(result.get("changed", [])))
        self._apply(update, origin=client)

    def _would_change(self, client: RoomClient, update: bytes) -> bool:
        """Whether ``update`` holds anything the owner's document has not (tried on a copy).
        Bytes that are not an update are refused here."""
        from pycrdt import Doc

        scratch = Doc()
        scratch.apply_update(self.doc.get_update())
        try:
            return bool(y_messages.apply_update(scratch, update))
        except ValueError:
            self._refuse(client, "malformed", "the edit is not a document update", "send updates as pycrdt makes them")
            return False

    def _apply(self, update: bytes, *, origin: RoomClient | None) -> None:
        """Apply to the room's Doc; what it changed goes to every client but ``origin``."""
        try:
            changed = y_messages.apply_update(self.doc, update)
        except ValueError as exc:  # a stored row the Doc cannot read: the store's problem, not a client's
            self.log("error", "collab_bad_update", reason=str(exc)[:200])
            return
        for data in changed:
            message = y_messages.update_message(data)
            for other in list(self.clients):
                if other is not origin:
                    other.post_data(message)

    def _close_all(self, error: ProtocolError) -> None:
        for client in list(self.clients):
            client.close(error)

    async def _poll(self) -> None:
        """Follow the store: edits made at the owner, the notebook removed, access taken back."""
        seen = None
        while True:
            version = self.conn.execute("PRAGMA data_version").fetchone()[0]
            if version != seen:
                seen = version
                exists = self.conn.execute("SELECT 1 FROM notebooks WHERE id = ?", (self.notebook_id,)).fetchone()
                if exists is None:
                    self._close_all(ProtocolError("not_found", f"notebook {self.nb.name} was removed at {self.me_name}"))
                    return
                rows = self.conn.execute("SELECT id, data FROM notebook_updates WHERE notebook_id = ? AND id > ? "
                                         "ORDER BY id", (self.notebook_id, self.last_row)).fetchall()
                for row_id, data in rows:
                    self._apply(data, origin=None)
                    self.last_row = row_id
                for client in list(self.clients):
                    peer, refusal = self._access(client)
                    if refusal is not None:
                        client.close(refusal)
                    elif peer.role != client.role:  # `peer role` at the owner: the client's screen says so at once
                        client.role = peer.role
                        client.post(message_types.make("collab_role", role=peer.role))
            await asyncio.sleep(POLL_SECONDS)

    # --- awareness ----------------------------------------------------------------------------

    def _owner_entry(self) -> tuple[int, int, dict]:
        return (self.owner_awareness_id, self.owner_clock,
                {"name": self.me_name, "node": self.me_id, "people": self.owner_people})

    def _all_awareness(self) -> list[tuple[int, int, dict | None]]:
        return [self._owner_entry()] + [(c.awareness_id, c.clock, c.state) for c in self.clients
                                        if c.awareness_id is not None and c.state is not None]

    def _broadcast_awareness(self, entries: list[tuple[int, int, dict | None]], *, origin: RoomClient | None) -> None:
        message = y_messages.awareness_message(entries)
        for client in list(self.clients):
            if client is not origin:
                client.post_data(message)

    def _awareness(self, client: RoomClient, entries: list[tuple[int, int, dict | None]]) -> None:
        """A client's awareness update: only its own entry counts (the first id it used), with
        name and node as the owner knows the peer."""
        for awareness_id, clock, state in entries:
            if awareness_id == self.owner_awareness_id or any(
                    c.awareness_id == awareness_id for c in self.clients if c is not client):
                continue  # another's id: ignored
            if client.awareness_id is None:
                client.awareness_id = awareness_id
            if awareness_id != client.awareness_id or clock < client.clock:
                continue
            client.clock = clock
            if state is None:
                self._drop_awareness(client, announce=True)
                continue
            client.state = {"name": client.name, "node": client.node_id,
                            "cell": y_messages.short_text(state.get("cell")), "run": client.run}
            client.renewed = asyncio.get_running_loop().time()
            self._broadcast_awareness([(awareness_id, clock, client.state)], origin=client)
            try:
                presence.announce(self.conn, self.notebook_id, client.presence_client, name=client.name,
                                  node=client.node_id, cell=client.state["cell"], where="peer")
            except StoreError as exc:  # the mirror is for the owner's own lists: the peers still see it
                self.log("warning", "presence_failed", reason=exc.one_line()[:200])

    def _drop_awareness(self, client: RoomClient, *, announce: bool = True) -> None:
        if client.awareness_id is None or client.state is None:
            return
        client.state = None
        client.clock += 1
        if announce:
            self._broadcast_awareness([(client.awareness_id, client.clock, None)], origin=client)
        try:
            presence.withdraw(self.conn, self.notebook_id, client.presence_client)
        except StoreError as exc:  # the store busy: the row expires by its TTL anyway
            self.log("warning", "presence_failed", reason=exc.one_line()[:200])

    def _local_people(self) -> list[dict]:
        return [{k: p[k] for k in ("client", "name", "node", "cell")}
                for p in presence.present(self.conn, self.notebook_id) if p["where"] == "local"]

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = loop.time()
            for client in list(self.clients):
                if client.state is not None and now - client.renewed > EXPIRE_SECONDS:
                    self.log("info", "collab_presence_expired", peer=identity.short_id(client.node_id))
                    self._drop_awareness(client)
            people = self._local_people()
            if people != self.owner_people or now - self.owner_renewed >= RENEW_SECONDS:
                self.owner_people = people
                self.owner_clock += 1
                self.owner_renewed = now
                self._broadcast_awareness([self._owner_entry()], origin=None)

    # --- owner-run panes ----------------------------------------------------------------------

    def _set_pane_viewers(self) -> None:
        self.pane_viewers = tuple(sorted({c.node_id for c in self.clients if c.run == "owner"}))

    async def _join_feed(self, client: RoomClient) -> None:
        feed_class = _pane_feed_class()
        if feed_class is None:
            return
        self._set_pane_viewers()
        try:
            if self.feed is None:
                loop = asyncio.get_running_loop()

                def send(cell_id: str, data: bytes) -> None:  # the feed's thread
                    try:
                        loop.call_soon_threadsafe(self._pane, cell_id, data)
                    except RuntimeError:  # serve stopping
                        pass

                self.feed = feed_class(self.conn.path, self.name, send, notebook_id=self.notebook_id,
                                       viewers=lambda: self.pane_viewers)
                await asyncio.to_thread(self.feed.start)
            else:
                await asyncio.to_thread(self.feed.grant, client.node_id)
            for cell_id, data in await asyncio.to_thread(self.feed.snapshot):
                self._post_pane(client, cell_id, data)
        except Exception as exc:  # the panes are an extra: the notebook is still served
            self.log("error", "pane_feed_failed", reason=f"{type(exc).__name__}: {str(exc)[:200]}")
        client.panes_ready = True

    def _post_pane(self, client: RoomClient, cell_id: str, data: bytes) -> None:
        if len(data) > PANE_INLINE_LIMIT:
            self.log("warning", "pane_too_large", cell=cell_id, bytes=len(data))
            return
        client.post(message_types.make("collab_pane", cell=cell_id, data=data))

    def _pane(self, cell_id: str, data: bytes) -> None:
        for client in list(self.clients):
            if client.run == "owner" and client.panes_ready:
                self._post_pane(client, cell_id, data)

    async def _stop_feed(self) -> None:
        feed, self.feed = self.feed, None
        if feed is not None:
            try:
                await asyncio.to_thread(feed.stop)
            except Exception as exc:
                self.log("error", "pane_feed_failed", reason=f"{type(exc).__name__}: {str(exc)[:200]}")
