"""``tessera nats push``: this node's own chain sent to a JetStream stream through an outbox.

The outbox is every event of this node's chain past the push cursor (``nats_push_cursors.seq``
for this server, stream and pattern) whose subject matches the pattern. Events are published in
seq order, up to MAX_IN_FLIGHT at a time without waiting, in writes of SEND_BATCH
(core/nats/jetstream_publisher.py), each with ``Nats-Msg-Id`` = the event id; the cursor advances, in order, only over events whose PubAck came
back (never past the first one still unacked), and is written every CURSOR_WRITE_S or on the way
out. A push killed (or a server lost) after the server stored an event but before its cursor
moved sends that event again on the next run; within the stream's duplicate window the server
drops it (the PubAck says ``duplicate``), so the stream holds each event once (docs/nats.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from tessera.core.errors import SourceUnavailable, TesseraError
from tessera.core.nats import broker
from tessera.core.nats.nats_runner import ConnectionLost, Stop
from tessera.core.times import now as time_now

MAX_IN_FLIGHT = 2000  # publishes awaiting their ack
READ_BATCH = 2000  # events read from the store at a time
CURSOR_WRITE_S = 0.05  # the cursor is stored at most this often while acks come in
ACK_WAIT_S = 15.0  # an ack not back by then: the connection is taken as lost
SEND_BATCH = 500  # events handed to the connection as one write, the event loop turned between writes
# --follow looks for new events (PRAGMA data_version) soon after the last ones, then less and
# less often while the log is idle: a 5 ms poll for ever cost an idle push 4% of a core
POLL_FIRST_S, POLL_MOST_S = 0.002, 0.025

_OWN_EVENTS = ("SELECT seq, id, time, subject, type, actor, correlation, data, prev_hash, hash FROM events "
               "WHERE actor = ? AND seq > ? ORDER BY seq LIMIT ?")
_STORE_CURSOR = ("INSERT INTO nats_push_cursors(server, stream, pattern, seq, acked_at, last_error) VALUES (?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT(server, stream, pattern) DO UPDATE SET seq = excluded.seq, "
                 "acked_at = coalesce(excluded.acked_at, nats_push_cursors.acked_at), last_error = excluded.last_error")


class PushRefused(TesseraError):
    """The server refused an event (a stream limit, a wrong stream): exit 1, the cursor left
    before it."""


@dataclass
class PushSummary:
    published: int = 0  # messages sent and acked in this run
    duplicates: int = 0  # of those, acks saying the stream had it already (a resend after a crash)
    skipped: int = 0  # own events the pattern left out (the cursor moves past them)
    cursor: int = 0  # the cursor at the end


def payload(row: tuple) -> bytes:
    """An event row as the message body: its fields as ``Event.as_dict`` gives them, the data
    spliced in as stored (canonical JSON, not parsed and dumped again)."""
    import orjson

    seq, eid, when, subject, etype, actor, corr, data_json, prev, h = row
    return orjson.dumps({"seq": seq, "id": eid, "time": when, "subject": subject, "type": etype, "actor": actor,
                         "correlation": corr, "data": orjson.Fragment(data_json), "prev_hash": prev, "hash": h})


class Outbox:
    """One push: its cursor row and how far this run got."""

    def __init__(self, conn: Any, server: str, stream: str, pattern: str, log: Any):
        from tessera.core import events

        self.conn, self.server, self.stream, self.pattern, self.log = conn, server, stream, pattern, log
        self.actor = events.node_id(conn)
        self.match_all = pattern == ">"
        self.summary = PushSummary(cursor=self.stored_cursor())
        self.acked = self.summary.cursor

    def stored_cursor(self) -> int:
        row = self.conn.execute("SELECT seq FROM nats_push_cursors WHERE server = ? AND stream = ? AND pattern = ?",
                                (self.server, self.stream, self.pattern)).fetchone()
        return row[0] if row else 0

    def store_cursor(self, seq: int, *, error: str | None = None) -> None:
        from tessera.core.store.db import transaction

        with transaction(self.conn):
            self.conn.execute(_STORE_CURSOR, (self.server, self.stream, self.pattern, seq,
                                              None if error else time_now(), error))
        self.summary.cursor = seq

    def last_seq(self) -> int:
        from tessera.core import events

        return events.last_seq(self.conn)

    async def session(self, nc: Any, lost: asyncio.Event, stop: Stop, *, until: int | None) -> None:
        """Publish the outbox over one connection: up to seq ``until`` (once), or for ever
        until ``stop`` (``until`` None, --follow). Returns once everything published is acked
        and the cursor stored.

        Raises:
            ConnectionLost when the connection goes or an ack does not come; PushRefused when
            the server refuses an event.
        """
        from tessera.core.nats.jetstream_publisher import JetStreamPublisher

        await broker.ensure_stream(nc.jetstream(), self.server, self.stream)
        publisher = JetStreamPublisher(nc, self.server, self.stream, self.actor)
        await publisher.start()
        self.acked = self.stored_cursor()  # what a previous session left unacked is sent again
        in_flight: deque = deque()  # (seq, published: False for an event the pattern leaves out)
        self.unacked = 0  # published events in in_flight
        read_to, written_at = self.acked, time.monotonic()
        version = None
        lost_wait = asyncio.ensure_future(lost.wait())
        try:
            while not stop.is_set():
                if lost.is_set():
                    raise ConnectionLost(f"lost the connection to {self.server}")
                rows = self.conn.execute(_OWN_EVENTS, (self.actor, read_to, READ_BATCH)).fetchall()
                if until is not None and rows and rows[-1][0] > until:
                    rows = [r for r in rows if r[0] <= until]
                if not rows:
                    await self._settle(publisher, in_flight, lost_wait, wait="all")
                    if self.acked != self.summary.cursor:
                        self.store_cursor(self.acked)
                        written_at = time.monotonic()
                    if until is not None:
                        return
                    version = await self._wait_for_new(version, stop, lost)
                    continue
                for first in range(0, len(rows), SEND_BATCH):
                    batch = rows[first:first + SEND_BATCH]
                    if self.match_all:
                        wanted = batch
                    else:
                        wanted = [row for row in batch if _matches(self.pattern, row[3])]
                        self.summary.skipped += len(batch) - len(wanted)
                    while self.unacked and self.unacked + len(wanted) > MAX_IN_FLIGHT:  # the window is full: the oldest ack first
                        await self._settle(publisher, in_flight, lost_wait, wait="one")
                    await publisher.send(wanted, payload)
                    self.unacked += len(wanted)
                    if len(wanted) == len(batch):
                        in_flight.extend((row[0], True) for row in batch)
                    else:
                        sent = {row[0] for row in wanted}
                        in_flight.extend((row[0], row[0] in sent) for row in batch)
                    read_to = batch[-1][0]
                    await asyncio.sleep(0)  # the flusher writes the batch, acks are read
                    await self._settle(publisher, in_flight, lost_wait, wait="none")
                    if time.monotonic() - written_at >= CURSOR_WRITE_S and self.acked != self.summary.cursor:
                        self.store_cursor(self.acked)
                        written_at = time.monotonic()
            # stopped: what is in flight gets its acks (or the connection is found lost)
            await self._settle(publisher, in_flight, lost_wait, wait="all")
        finally:
            lost_wait.cancel()
            if self.acked != self.summary.cursor:
                self.store_cursor(self.acked)

    async def _settle(self, publisher: Any, in_flight: deque, lost_wait: asyncio.Future, *, wait: str) -> None:
        """Take acked events off the front of ``in_flight``, moving ``self.acked`` over them in
        order: those acked already (``wait`` "none"), waiting for the first unacked one ("one")
        or for all of them ("all")."""
        waited = False
        while in_flight:
            seq, published = in_flight[0]
            if published:
                ack = publisher.take(seq)
                if ack is None:
                    if wait == "none" or (wait == "one" and waited):
                        break
                    waited = True
                    ack = await self._wait_for_ack(publisher, seq, lost_wait)
                if ack.refused is not None:
                    self.store_cursor(self.acked, error=f"seq {seq}: {ack.refused}")
                    raise PushRefused(f"{self.server} refused event seq {seq} for stream {self.stream}: {ack.refused}",
                                      hint="see the stream's limits (nats stream info), or push to another --stream")
                if ack.lost is not None:
                    raise ConnectionLost(f"lost the connection to {self.server} ({ack.lost})")
                self.summary.published += 1
                self.unacked -= 1
                if ack.duplicate:
                    self.summary.duplicates += 1
            in_flight.popleft()
            self.acked = seq

    async def _wait_for_ack(self, publisher: Any, seq: int, lost_wait: asyncio.Future) -> Any:
        """The ack for ``seq``, waited for up to ACK_WAIT_S.

        Raises:
            ConnectionLost when the connection goes first or the ack does not come in time.
        """
        deadline = time.monotonic() + ACK_WAIT_S
        while True:
            publisher.arrived.clear()
            ack = publisher.take(seq)
            if ack is not None:
                return ack
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectionLost(f"{self.server} sent no ack within {ACK_WAIT_S:g} s")
            arrived = asyncio.ensure_future(publisher.arrived.wait())
            try:
                done, _ = await asyncio.wait({arrived, lost_wait}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                arrived.cancel()
            if lost_wait in done:
                ack = publisher.take(seq)
                if ack is None:
                    raise ConnectionLost(f"lost the connection to {self.server}")
                return ack

    async def _wait_for_new(self, version: int | None, stop: Stop, lost: asyncio.Event) -> int:
        """Wait until another connection commits to the store (PRAGMA data_version moves), or
        stop, or the connection goes."""
        delay = POLL_FIRST_S
        while not stop.is_set() and not lost.is_set():
            current = self.conn.execute("PRAGMA data_version").fetchone()[0]
            if current != version:
                return current
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MOST_S)
        return version


def _matches(pattern: str, subject: str) -> bool:
    from tessera.core.events import subject_matches

    return subject_matches(pattern, subject)


async def push(conn: Any, server: str, stream: str, pattern: str, creds: broker.Credentials, stop: Stop, *,
               follow: bool, log: Any) -> PushSummary:
    """Run a push once (up to the last own event there is now) or, with ``follow``, until
    ``stop``, reconnecting with backoff.

    Raises (once): SourceUnavailable / ConnectionLost (exit 3), NotAuthorized (5), PushRefused (1).
    """
    from tessera.core.nats.nats_runner import reconnecting

    outbox = Outbox(conn, server, stream, pattern, log)

    async def session(connected) -> None:
        lost = asyncio.Event()
        try:
            nc = await broker.connect(server, creds, on_closed=lost.set, name="tessera nats push")
            try:
                connected()
                if follow:
                    log("info", "pushing", server=server, stream=stream, pattern=pattern, actor=outbox.actor,
                        cursor=outbox.stored_cursor())
                await outbox.session(nc, lost, stop, until=None if follow else outbox.last_seq())
            except broker.nats_errors() as exc:  # a request timed out, the connection closed under a request
                raise broker.lost(server, exc) from None
            finally:
                await broker.close(nc)
        except SourceUnavailable as exc:  # kept for doctor and the status cell: why the lag grows
            outbox.store_cursor(outbox.acked, error=exc.one_line()[:500])
            raise

    if follow:
        await reconnecting(session, stop, log, "push")
    else:
        await session(lambda: None)
    return outbox.summary

