"""The client side of a live notebook: ``CollabClient`` keeps a local Doc in sync with the
owner's room in its ``tessera serve`` (core/collab/host.py) over one peer connection.

It runs a thread with its own asyncio loop, so threaded front ends and Textual's loop both use
it. Reading ``client.notebook`` is done under ``client.lock`` (the loop thread applies the
owner's updates under it); ``edit(fn)`` runs ``fn`` on the notebook under the lock, stores the
resulting update in the local copy (core/collab/local_copy.py) and only then sends it.

The connection (one ``collab_join``, then ``collab`` messages both ways):

- on connecting we send SYNC step1 (our state vector) and our awareness; the owner answers with
  step2 (what we lack: the first one is "synced") and sends its own step1, which we answer with
  step2 (what it lacks: our offline edits). Then updates flow both ways as they are made.
- confirmation: the owner handles a connection's messages in order, so its step2 answering a
  step1 we sent after some edits means it has handled them: those rows stop being pending.
- a role changed at the owner (``collab_role``): ``role`` is the new one, and ``on_status`` is
  called again so the screen says so;
- a refusal (``collab_refused``, e.g. a viewer's edit): ``on_refused`` gets its one line, and
  the document goes back to the owner's state (a fresh Doc from the owner's full step2).
- renewals: our awareness every RENEW_SECONDS; the owner renews its own as often, so nothing
  heard for SILENCE_SECONDS means the owner is gone: we reconnect (backoff 0.5 s doubling to
  10 s) and work offline meanwhile, every edit kept in the local copy.

Frames we send are paced under serve's per-peer rate limit (core/peers/rate_limit.py): updates
waiting meanwhile are merged into one.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

from tessera.core.collab import local_copy, y_messages
from tessera.core.collab.awareness import AwarenessView

T = TypeVar("T")

RENEW_SECONDS = 2.0  # our awareness renewal (the owner drops a state not renewed for 6 s)
SILENCE_SECONDS = 9.0  # nothing from the owner for this long (it renews every 2 s): it is gone
BACKOFF_FIRST = 0.5
BACKOFF_MOST = 10.0
PROBE_DELAY = 0.3  # after the last update sent, ask for the confirmation (a step1) this much later
SEND_RATE = 15.0  # frames a second we send at most (serve allows 20, burst 40)
SEND_BURST = 30.0
STOP_SECONDS = 5.0
STATUSES = ("connecting", "live", "offline")


class CollabClient:
    """A live copy of ``notebook`` at ``peer`` (its name or id, peer_list.resolve).

    Args:
        db_path: this node's store (its identity, the peer list, the local copies).
        run: where the notebook's cells run for us: owner (we get its panes), local, none.
        on_change: called with "remote", "local" or "reset" after the document changed.
        on_presence: called with the people in the notebook but us when that changes.
        on_pane: called with (cell id, pane_wire data) for each pane message of the owner.
        on_refused: called with the one-line message (and fix) of an edit the owner refused.
        on_status: called with ("connecting" | "live" | "offline", reason or None).
    Callbacks run on the client's thread: keep them short, never block in them.
    """

    def __init__(self, db_path: str, peer: str, notebook: str, *, run: str = "owner",
                 on_change: Callable[[str], None] | None = None,
                 on_presence: Callable[[list[dict]], None] | None = None,
                 on_pane: Callable[[str, bytes], None] | None = None,
                 on_refused: Callable[[str], None] | None = None,
                 on_status: Callable[[str, str | None], None] | None = None):
        from tessera.core.errors import UsageError
        from tessera.core.notebook.repository import check_name

        if run not in ("owner", "local", "none"):
            raise UsageError(f"--run '{run}' is not a place to run cells", hint="use owner, local or none")
        check_name(notebook)
        self.db_path = str(db_path)
        self.peer_text = peer
        self.notebook_name = notebook
        self.run = run
        self.on_change, self.on_presence, self.on_pane = on_change, on_presence, on_pane
        self.on_refused, self.on_status = on_refused, on_status
        self.lock = threading.RLock()
        self.notebook: Any = None  # a Notebook, set by start(); REPLACED on reset: never cache it
        self.role: str | None = None
        self.owner: str | None = None
        self.notebook_id: str | None = None
        self.status = "connecting"
        self.reason: str | None = None
        self.peer_id: str | None = None
        self._cell: str | None = None
        self._awareness_id = secrets.randbits(52)  # our awareness client id (y-protocols: a uint)
        self._awareness_clock = 0
        self._view = AwarenessView()
        self._people: list[dict] = []
        self._synced = threading.Event()
        self._threads = threading.local()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._outbox: _Outbox | None = None  # of the current connection
        self._endpoint: Any = None  # bound by the loop thread: dials the owner (the collab connection, blob fetches)
        self._fetches: set[asyncio.Task] = set()  # blob fetches under way (the loop thread's)
        self._last_local_row = 0  # the newest local edit's row in the local copy

    # --- the front end's side ------------------------------------------------------------------

    def start(self) -> "CollabClient":
        """Resolve the peer, load the local copy (work can start offline) and connect in the
        background.

        Raises:
            UsageError for an unknown peer; StoreError.
        """
        from tessera.core.notebook.model import Notebook
        from tessera.core.peers import peer_list

        conn = self._conn()
        self.peer_id = peer_list.resolve(conn, self.peer_text).node_id
        kept = local_copy.info(conn, self.peer_id, self.notebook_name) or {}
        self.notebook_id, self.role, self.owner = kept.get("notebook_id"), kept.get("role"), kept.get("owner")
        with self.lock:
            self.notebook = Notebook.from_updates(local_copy.updates(conn, self.peer_id, self.notebook_name),
                                                  name=self.notebook_name)
            self.notebook.id = self.notebook_id  # type: ignore[attr-defined]
            self._last_local_row = local_copy.last_row(conn, self.peer_id, self.notebook_name)
        ready = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, args=(ready,), name=f"collab-{self.notebook_name}",
                                        daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def stop(self) -> None:
        """Leave (our awareness state withdrawn), close the connection, end the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop ended meanwhile
                pass
        if self._thread is not None:
            self._thread.join(STOP_SECONDS + 5)

    def wait_synced(self, timeout: float) -> bool:
        """Whether the first full sync with the owner is done (waiting up to ``timeout`` s)."""
        return self._synced.wait(timeout)

    def edit(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(notebook)`` under the lock; the update it made is stored in the local copy,
        then sent to the owner (now, or when the connection is back)."""
        with self.lock:
            notebook = self.notebook
            before = notebook.state()
            result = fn(notebook)
            update = notebook.update_since(before)
            if update == y_messages.EMPTY_UPDATE:
                return result
            if len(update) > y_messages.MAX_DATA_BYTES - 64:  # the owner would refuse it: not kept, not sent
                self._undo_edit(len(update))
                return result
            row = local_copy.add(self._conn(), self.peer_id, self.notebook_name, update, pending=True)
            self._last_local_row = row
        self._post(("update", update, row))
        self._changed("local")
        return result

    def _undo_edit(self, size: int) -> None:
        """Drop an edit too large to send: the document goes back to the local copy (under the
        lock), as after the owner's refusal."""
        from tessera.core.notebook.model import Notebook

        fresh = Notebook.from_updates(local_copy.updates(self._conn(), self.peer_id, self.notebook_name),
                                      name=self.notebook_name)
        fresh.id = self.notebook_id  # type: ignore[attr-defined]
        self.notebook = fresh
        if self.on_refused is not None:
            self.on_refused(f"the edit was not made: it is {size} bytes, over the "
                            f"{y_messages.MAX_DATA_BYTES // (1024 * 1024)} MiB one live edit may be "
                            "(paste a large text in parts)")
        self._changed("reset")

    def set_cell(self, cell_id: str | None) -> None:
        """Our awareness: the cell we are in (None: none)."""
        if cell_id == self._cell:
            return
        self._cell = cell_id
        self._post(("awareness",))

    def people(self) -> list[dict]:
        """Who is in the notebook but us: [{client, name, node, cell, where}]."""
        return list(self._people)

    def fetch_blob(self, blob_id: str, done: Callable[[bytes | None, str | None], None]) -> Any:
        """Fetch blob ``blob_id`` from the owner (core/blobs/fetch.py: verified chunk by chunk) on
        the client's loop, with its endpoint; ``done(data, None)`` with its bytes, or
        ``done(None, one-line reason)``, on a worker thread (never the caller's nor the loop's).
        The blob is not kept in this node's store unless it was there before. Returns a
        concurrent.futures.Future: cancel() it when the blob is superseded (done is then not
        called), or None when the client is stopped (done is called with the reason)."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._stopping is None or self._stopping.is_set():
            done(None, "the connection to the owner is closed")
            return None
        try:
            return asyncio.run_coroutine_threadsafe(self._fetch_blob(blob_id, done), loop)
        except RuntimeError:  # the loop ended meanwhile
            done(None, "the connection to the owner is closed")
            return None

    async def _fetch_blob(self, blob_id: str, done: Callable[[bytes | None, str | None], None]) -> None:
        from tessera.core.blobs import blob_store
        from tessera.core.errors import TesseraError
        from tessera.core.peers import peer_list

        task = asyncio.current_task()
        self._fetches.add(task)
        conn = self._conn()
        data, reason = None, None
        kept_before = blob_store.info(conn, blob_id) is not None
        try:
            peer = peer_list.get(conn, self.peer_id)
            if self._endpoint is None or peer is None:
                raise TesseraError("not connected to the owner's node")
            data = await _fetch_pane_blob(conn, self._endpoint, blob_id, peer)
        except TesseraError as exc:
            reason = exc.one_line()[:300]
        except OSError as exc:  # this node's data home (its blobs/ unwritable, in the way)
            where = f" ({exc.filename})" if exc.filename else ""
            reason = f"this node cannot store it: {exc.strerror or type(exc).__name__}{where}"[:300]
        finally:
            if not kept_before:  # a pane's snapshot, not this node's blob: the pane holds its rows
                try:
                    blob_store.remove(conn, blob_id)
                except TesseraError:
                    pass
            self._fetches.discard(task)
        await asyncio.to_thread(done, data, reason)

    def run_cell(self, cell_id: str) -> None:
        """Ask the owner to run that cell again now."""
        from tessera.core.peers import message_types

        self._post(("frame", message_types.make("collab_run", cell=cell_id)))

    # --- plumbing shared by both threads ------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection to the store (sqlite3 connections stay in their thread)."""
        conn = getattr(self._threads, "conn", None)
        if conn is None:
            from tessera.core.store.db import connect

            conn = self._threads.conn = connect(Path(self.db_path))
        return conn

    def _post(self, item: tuple) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._enqueue, item)
        except RuntimeError:  # stopped meanwhile: an edit is in the local copy already
            pass

    def _enqueue(self, item: tuple) -> None:
        if self._outbox is not None:
            self._outbox.put(item)

    def _changed(self, how: str) -> None:
        if self.on_change is not None:
            self.on_change(how)

    def _set_status(self, status: str, reason: str | None = None) -> None:
        if (status, reason) == (self.status, self.reason):
            return
        self.status, self.reason = status, reason
        if self.on_status is not None:
            self.on_status(status, reason)

    def _set_people(self) -> None:
        people = self._view.people()
        if people != self._people:
            self._people = people
            if self.on_presence is not None:
                self.on_presence(list(people))

    # --- the loop thread ------------------------------------------------------------------------

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stopping = asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(self._run())
        finally:
            loop.close()
            conn = getattr(self._threads, "conn", None)
            if conn is not None:
                conn.close()

    async def _run(self) -> None:
        from tessera.core.errors import TesseraError
        from tessera.core.peers import node_endpoint

        conn = self._conn()
        endpoint = None
        delay = BACKOFF_FIRST
        try:
            while not self._stopping.is_set():
                self._set_status("connecting", self.reason)
                live = False
                try:
                    if endpoint is None:
                        endpoint = self._endpoint = await node_endpoint.bind(conn, listen=False)
                    live = await self._until_stopped(self._connection(conn, endpoint))
                    reason = "the owner's node closed the connection"
                except TesseraError as exc:
                    reason = exc.one_line()[:300]
                except OSError as exc:
                    reason = f"{type(exc).__name__}: {str(exc)[:200]}"
                if self._stopping.is_set():
                    break
                self._view.clear()
                self._set_people()
                self._set_status("offline", reason)
                if live:
                    delay = BACKOFF_FIRST
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(delay * 2, BACKOFF_MOST)
        finally:
            self._set_status("offline", "stopped")
            for task in list(self._fetches):
                task.cancel()
            await asyncio.gather(*self._fetches, return_exceptions=True)
            self._endpoint = None
            if endpoint is not None:
                try:
                    await asyncio.wait_for(endpoint.close(), STOP_SECONDS)
                except (asyncio.TimeoutError, TesseraError):
                    pass

    async def _until_stopped(self, work: Any) -> bool:
        """``work``'s result, or False once stop() was called (a live connection then leaves by
        itself: it is given a moment for that; a dial in progress is cancelled)."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait({task}, timeout=STOP_SECONDS / 2)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return False
            return task.result()
        finally:
            stop.cancel()

    async def _connection(self, conn: sqlite3.Connection, endpoint: Any) -> bool:
        """One connection to the owner, until it ends or we stop; whether it got live.

        Raises:
            TesseraError (transport, the owner's refusal, a protocol error).
        """
        from tessera.core.peers import channel as channels
        from tessera.core.peers import message_types, peer_list

        peer = peer_list.get(conn, self.peer_id)
        if peer is None:
            from tessera.core.errors import UsageError

            raise UsageError(f"{self.peer_text} is no longer in this node's peer list")
        channel = await channels.open_channel(conn, endpoint, peer)
        session = _Session(self, conn, channel)
        try:
            await channel.send(message_types.make("collab_join", notebook=self.notebook_name, run=self.run))
            welcome = await asyncio.wait_for(channel.recv(), SILENCE_SECONDS * 2)
            if welcome["type"] != "collab_welcome":
                from tessera.core.peers.frames import ProtocolError

                raise ProtocolError("unexpected", f"a {welcome['type']} message instead of collab_welcome")
            self.role, self.owner, self.notebook_id = welcome["role"], welcome["owner"], welcome["notebook_id"]
            with self.lock:
                self.notebook.id = self.notebook_id  # type: ignore[attr-defined]
            local_copy.set_info(conn, self.peer_id, self.notebook_name, notebook_id=self.notebook_id,
                                role=self.role, owner=self.owner)
            await session.run()
            return True
        finally:
            self._outbox = None
            channel.close()


class _Session:
    """One live connection: a reader, a paced writer, renewals and confirmation probes."""

    def __init__(self, client: CollabClient, conn: sqlite3.Connection, channel: Any):
        from tessera.core.peers.rate_limit import TokenBucket

        self.client, self.conn, self.channel = client, conn, channel
        self.outbox = _Outbox()
        self.bucket = TokenBucket(SEND_RATE, SEND_BURST)
        self.probes: collections.deque = collections.deque()  # per step1 sent: the row it confirms, or "reset"
        self.sent_upto = 0  # local rows whose content has gone out on this connection
        self.probe_at: float | None = None
        self.first_step2 = True
        self.parts = y_messages.Reassembly()  # of a message the owner sent in parts

    async def run(self) -> None:
        client = self.client
        client._outbox = self.outbox
        self.outbox.put(("probe",))  # our step1: the owner's step2 is the first sync
        self.outbox.put(("awareness",))
        tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write()),
                 asyncio.create_task(self._renew()), asyncio.create_task(client._stopping.wait())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if client._stopping.is_set():
            await self._leave()
            return
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()

    async def _leave(self) -> None:
        """Withdraw our awareness state (so we are gone from the others' lists at once)."""
        from tessera.core.errors import TesseraError

        client = self.client
        client._awareness_clock += 1
        try:
            await asyncio.wait_for(self._send(y_messages.awareness_message(
                [(client._awareness_id, client._awareness_clock, None)])), 2.0)
            await asyncio.wait_for(self.channel.stream.finish(), 2.0)
        except (asyncio.TimeoutError, TesseraError, OSError):
            pass

    async def _send(self, data: bytes) -> None:
        from tessera.core.peers import message_types

        await self.channel.send(message_types.make("collab", data=data))

    # --- writing ------------------------------------------------------------------------------

    async def _pace(self) -> None:
        while (wait := self.bucket.take()) > 0:
            await asyncio.sleep(wait)

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            timeout = None if self.probe_at is None else max(0.0, self.probe_at - loop.time())
            item = await self.outbox.get(timeout)
            if item is None:
                self.probe_at = None
                item = ("probe",)
            await self._pace()
            kind = item[0]
            if kind == "update":
                updates, upto = [item[1]], item[2]
                for _, more, row in self.outbox.take_while(lambda queued: queued[0] == "update"):
                    updates.append(more)
                    upto = max(upto, row)
                for data in _merged(updates):
                    await self._send(y_messages.update_message(data))
                self.sent_upto = max(self.sent_upto, upto)
                self.probe_at = loop.time() + PROBE_DELAY
            elif kind == "probe":
                if len(item) > 1:  # "reset": as a document that has nothing, to get everything
                    from pycrdt import Doc

                    message, marker = y_messages.step1(Doc()), item[1]
                else:
                    with self.client.lock:
                        message = y_messages.step1(self.client.notebook.doc)
                    marker = self.sent_upto
                self.probes.append(marker)
                await self._send(message)
            elif kind == "step2":
                await self._send(item[1])
                self.sent_upto = max(self.sent_upto, item[2])
                self.probe_at = loop.time() + PROBE_DELAY
            elif kind == "awareness":
                client = self.client
                client._awareness_clock += 1
                me = _me(self.conn)
                state = {"name": me[1], "node": me[0], "cell": client._cell, "run": client.run}
                await self._send(y_messages.awareness_message([(client._awareness_id, client._awareness_clock, state)]))
            elif kind == "frame":
                await self.channel.send(item[1])

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            self.outbox.put(("awareness",))

    # --- reading ------------------------------------------------------------------------------

    async def _read(self) -> None:
        from tessera.core.peers.frames import ProtocolError

        client = self.client
        while True:
            try:
                message = await asyncio.wait_for(self.channel.recv(), SILENCE_SECONDS)
            except asyncio.TimeoutError:
                raise ProtocolError("silent", f"nothing from the owner's node for {SILENCE_SECONDS:g} s") from None
            kind = message["type"]
            if kind == "collab_part":
                self.parts.add(message["data"])
            elif kind == "collab":
                # the owner's messages are bounded by the parts, not by the 1 MiB of an edit
                self._collab(y_messages.parse(self.parts.finish(message["data"]), limit=None))
            elif kind == "collab_refused":
                text = message["message"] + (f" ({message['fix']})" if message["fix"] else "")
                if client.on_refused is not None:
                    client.on_refused(text)
                self._reset()
            elif kind == "collab_role":  # `peer role` at the owner: our screen says the new role at once
                client.role = message["role"]
                local_copy.set_info(self.conn, client.peer_id, client.notebook_name, notebook_id=client.notebook_id,
                                    role=client.role, owner=client.owner)
                if client.on_status is not None:
                    client.on_status(client.status, client.reason)
            elif kind == "collab_pane":
                if client.on_pane is not None:
                    client.on_pane(message["cell"], message["data"])
            # anything else the owner may send in a later version is skipped

    def _collab(self, message: y_messages.YMessage) -> None:
        client = self.client
        if message.kind == "step1":
            with client.lock:
                reply = y_messages.step2_for(client.notebook.doc, message.payload)
                upto = client._last_local_row
            self.outbox.put(("step2", reply, upto))
        elif message.kind in ("step2", "update"):
            probe = self.probes.popleft() if message.kind == "step2" and self.probes else None
            if probe == "reset":
                self._replace(message.payload)
                return
            self._apply(message.payload)
            if isinstance(probe, int) and probe > 0:
                local_copy.confirm(self.conn, client.peer_id, client.notebook_name, probe)
            if message.kind == "step2" and self.first_step2:
                self.first_step2 = False
                client._synced.set()
                client._set_status("live")
        elif message.kind == "awareness":
            if client._view.apply(y_messages.awareness_entries(message.payload), own=client._awareness_id):
                client._set_people()

    def _apply(self, update: bytes) -> None:
        client = self.client
        if update == y_messages.EMPTY_UPDATE:
            return
        with client.lock:
            try:
                changed = y_messages.apply_update(client.notebook.doc, update)
            except ValueError as exc:
                from tessera.core.peers.frames import ProtocolError

                raise ProtocolError("malformed", f"the owner sent an update that cannot be read ({str(exc)[:100]})") from None
            if changed:
                local_copy.add(self.conn, client.peer_id, client.notebook_name, update, pending=False)
                local_copy.compact_if_long(self.conn, client.peer_id, client.notebook_name, client.notebook.full_update())
        if changed:
            client._changed("remote")

    def _reset(self) -> None:
        """Back to the owner's state: ask for all of it (a step1 of an empty document); its
        step2 replaces our document. The step2s still due for earlier probes confirm nothing."""
        for i in range(len(self.probes)):
            if self.probes[i] != "reset":
                self.probes[i] = 0
        self.outbox.put(("probe", "reset"))

    def _replace(self, full_update: bytes) -> None:
        from tessera.core.notebook.model import Notebook

        client = self.client
        try:
            fresh = Notebook.from_updates([full_update], name=client.notebook_name)
        except ValueError as exc:
            from tessera.core.peers.frames import ProtocolError

            raise ProtocolError("malformed", f"the owner sent a state that cannot be read ({str(exc)[:100]})") from None
        fresh.id = client.notebook_id  # type: ignore[attr-defined]
        with client.lock:
            client.notebook = fresh
            local_copy.replace(self.conn, client.peer_id, client.notebook_name, fresh.full_update())
        client._changed("reset")


FETCH_TRIES = 50  # another front end of this node fetching the same pane blob: wait for it, then read or fetch again
FETCH_RETRY_SECONDS = 0.2


async def _fetch_pane_blob(conn: sqlite3.Connection, endpoint: Any, blob_id: str, peer: Any) -> bytes:
    """The blob's bytes, fetched from ``peer``. Two front ends of one node (a dashboard and
    ``notebook run``) get the same pane blob at once: the second finds the first's fetch under
    way (its file lock), waits, then reads the blob, or fetches it again when the first has
    removed it already.

    Raises:
        TesseraError from core/blobs/fetch.py and blob_store.read_bytes.
    """
    from tessera.core.blobs import blob_store, fetch
    from tessera.core.errors import UsageError

    for attempt in range(FETCH_TRIES):
        try:
            await fetch.fetch(conn, endpoint, blob_id, [peer])
            return blob_store.read_bytes(conn, blob_id)
        except blob_store.BlobError as exc:
            if "under way" not in exc.message or attempt == FETCH_TRIES - 1:  # fetch's lock held by another process
                raise
        except UsageError:  # removed by the other front end between its fetch and our read
            if attempt == FETCH_TRIES - 1:
                raise
        await asyncio.sleep(FETCH_RETRY_SECONDS)
    raise AssertionError("unreachable")


class _Outbox:
    """What a connection's writer sends next, in order; consecutive updates are taken together
    (to be merged into one frame while sending is paced)."""

    def __init__(self) -> None:
        self.items: collections.deque = collections.deque()
        self.ready = asyncio.Event()

    def put(self, item: tuple) -> None:
        self.items.append(item)
        self.ready.set()

    async def get(self, timeout: float | None) -> tuple | None:
        """The next item, or None after ``timeout`` s without one."""
        if not self.items:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        return self.items.popleft()

    def take_while(self, wanted: Callable[[tuple], bool]) -> list[tuple]:
        taken = []
        while self.items and wanted(self.items[0]):
            taken.append(self.items.popleft())
        return taken


def _merged(updates: list[bytes]) -> list[bytes]:
    """The updates as one (pycrdt.merge_updates) when that fits a collab message, else as they are."""
    if len(updates) == 1:
        return updates
    from pycrdt import merge_updates

    merged = merge_updates(*updates)
    return [merged] if len(merged) <= y_messages.MAX_DATA_BYTES - 16 else updates


def _me(conn: sqlite3.Connection) -> tuple[str, str]:
    from tessera.core.peers import identity

    me = identity.local_identity(conn)
    return me.node_id, me.name


def probe_people(db_path: str, peer: str, notebook: str, timeout: float = 5.0) -> list[dict]:
    """Who is in ``peer``'s notebook now (for ``notebook show alice:ops``): join with run=none
    and no awareness of our own (so we are not listed), read the owner's first awareness
    message, leave.

    Raises:
        UsageError (unknown peer), the owner's refusal (hello.PeerRefused: not_shared...),
        transport errors, ConnectTimeout when nothing arrives within ``timeout``.
    """
    from tessera.core.peers import peer_list
    from tessera.core.store.db import connect

    conn = connect(Path(db_path))
    try:
        found = peer_list.resolve(conn, peer)
        return asyncio.run(_probe(conn, found, notebook, timeout))
    finally:
        conn.close()


async def _probe(conn: sqlite3.Connection, peer: Any, notebook: str, timeout: float) -> list[dict]:
    from tessera.core.peers import channel as channels
    from tessera.core.peers import message_types, node_endpoint, transport

    endpoint = await node_endpoint.bind(conn, listen=False)
    try:
        channel = await channels.open_channel(conn, endpoint, peer, timeout=timeout)
        try:
            await channel.send(message_types.make("collab_join", notebook=notebook, run="none"))
            view = AwarenessView()

            async def first_awareness() -> list[dict]:
                parts = y_messages.Reassembly()
                while True:
                    message = await channel.recv()
                    if message["type"] == "collab_part":
                        parts.add(message["data"])
                    elif message["type"] == "collab":
                        parsed = y_messages.parse(parts.finish(message["data"]), limit=None)
                        if parsed.kind == "awareness":
                            view.apply(y_messages.awareness_entries(parsed.payload))
                            return view.people()

            try:
                return await asyncio.wait_for(first_awareness(), timeout)
            except asyncio.TimeoutError:
                raise transport.ConnectTimeout(f"{peer.name} did not say who is in {notebook} within {timeout:g} s",
                                               hint="check it runs a current `tessera serve`") from None
        finally:
            channel.close()
    finally:
        await endpoint.close()
