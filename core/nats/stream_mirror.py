"""``tessera nats pull``: other members' events read from a JetStream stream into their own
verified chains here.

An ordered consumer (ephemeral, in memory on the server, flow-controlled) reads the stream from
the pull cursor (``nats_pull_cursors.stream_seq``) on. This node's own events (the actor in the
subject is this node's id) are skipped. Every other message must be one of ours: its subject
names the actor and subject its body holds, and ``events.ingest`` checks the body recomputes to
its hash and links to its actor's chain here. A batch of messages (what has arrived, up to
INGEST_BATCH) is ingested in one transaction with the cursor moved past it, so a pull killed at
any moment has stored a batch whole with its cursor, or neither; an event stored already (the
same hash: a resend) is skipped.

A message that fails (malformed, a bad hash, a fork, not linking) is refused: nothing of it is
stored, it is reported (a log line; once, a line per actor at the end and exit 1) and the
cursor moves past it, so one bad message does not hold up the other actors. Its actor's later
events cannot link while it is missing, so they are refused too, until the missing event
arrives again in the stream (a resend) or the chain is pulled again from the start
(``--from-start``) after the stream was fixed (docs/nats.md).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tessera.core.errors import InputError, SourceTimeout, TesseraError
from tessera.core.nats import broker
from tessera.core.nats.nats_runner import ConnectionLost, Stop
from tessera.core.times import now as time_now

INGEST_BATCH = 1000
IDLE_TIMEOUT_S = 30.0  # once: the stream stopped delivering before its end
_STORE_CURSOR = ("INSERT INTO nats_pull_cursors(server, stream, stream_seq, pulled_at, last_error) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT(server, stream) DO UPDATE SET stream_seq = excluded.stream_seq, "
                 "pulled_at = excluded.pulled_at, last_error = excluded.last_error")


class PullRefusals(TesseraError):
    """Some messages were refused (exit 1); the rest were ingested."""


@dataclass
class Refused:
    count: int = 0
    first_seq: int | None = None  # the first refused event's seq in its actor's chain
    reason: str = ""


@dataclass
class PullSummary:
    ingested: int = 0
    already: int = 0  # events this node had (a resend, or pulled before from a peer)
    own: int = 0  # this node's own events, skipped
    refused: dict[str, Refused] = field(default_factory=dict)  # actor -> what was refused
    cursor: int = 0


def decode(data: bytes) -> Any:
    """A message body as JSON (the json module for what orjson refuses: integers past 64 bits)."""
    import orjson

    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None


class Mirror:
    """One pull: its cursor row and what this run did."""

    def __init__(self, conn: Any, server: str, stream: str, log: Any):
        from tessera.core import events

        self.conn, self.server, self.stream, self.log = conn, server, stream, log
        self.local = events.node_id(conn)
        self.summary = PullSummary(cursor=self.stored_cursor())

    def stored_cursor(self) -> int:
        row = self.conn.execute("SELECT stream_seq FROM nats_pull_cursors WHERE server = ? AND stream = ?",
                                (self.server, self.stream)).fetchone()
        return row[0] if row else 0

    def store_cursor(self, stream_seq: int, error: str | None = None) -> None:
        self.conn.execute(_STORE_CURSOR, (self.server, self.stream, stream_seq, time_now(), error))
        self.summary.cursor = stream_seq

    def reset(self) -> None:
        """--from-start: read the stream again from its first message (events held already are
        skipped by their hash)."""
        from tessera.core.store.db import transaction

        with transaction(self.conn):
            self.store_cursor(0)

    def record_error(self, text: str) -> None:
        from tessera.core.store.db import transaction

        with transaction(self.conn):
            self.store_cursor(self.summary.cursor, text[:500])

    # -- one batch ---------------------------------------------------------------------------

    def apply(self, batch: list[Any]) -> None:
        """Ingest a batch of messages with the cursor moved past it, in one transaction; when
        the batch is refused, message by message, refusing the bad ones."""
        from tessera.core import events
        from tessera.core.store.db import transaction

        candidates, last = [], self.summary.cursor
        refusals: list[tuple[int, str, Any, str]] = []  # (stream seq, actor, seq, reason) found before ingest
        for msg in batch:
            stream_seq = msg.metadata.sequence.stream
            if stream_seq <= last:
                continue  # delivered again (a consumer recreated): applied already
            last = stream_seq
            event, actor, problem = self._event_of(msg)
            if problem is not None:
                refusals.append((stream_seq, actor, event.get("seq") if isinstance(event, dict) else None, problem))
            elif actor == self.local:
                self.summary.own += 1
            else:
                candidates.append((stream_seq, event))
        if last == self.summary.cursor and not candidates:
            return
        try:
            with transaction(self.conn):
                stored = events.ingest(self.conn, [e for _, e in candidates]) if candidates else []
                self.store_cursor(last, self._error_text(refusals))
            self.summary.ingested += len(stored)
            self.summary.already += len(candidates) - len(stored)
        except InputError:
            self._apply_one_by_one(candidates, last, refusals)
            return
        finally:
            self.summary.cursor = self.stored_cursor()
        for refusal in refusals:
            self._refuse(*refusal)

    def _apply_one_by_one(self, candidates: list, last: int, refusals: list) -> None:
        from tessera.core import events
        from tessera.core.store.db import transaction

        for stream_seq, event in candidates:
            try:
                with transaction(self.conn):
                    stored = events.ingest(self.conn, [event])
                    self.store_cursor(stream_seq)
                self.summary.ingested += len(stored)
                self.summary.already += 1 - len(stored)
            except InputError as exc:
                refusals.append((stream_seq, event.get("actor"), event.get("seq"), exc.one_line()))
        with transaction(self.conn):
            self.store_cursor(last, self._error_text(refusals))
        for refusal in sorted(refusals, key=lambda r: r[0]):
            self._refuse(*refusal)

    def _event_of(self, msg: Any) -> tuple[Any, str | None, str | None]:
        """(event fields, actor, None), or (what there is, actor, the reason to refuse it)."""
        parts = broker.subject_parts(self.stream, msg.subject)
        if parts is None:
            return {}, None, f"subject {msg.subject[:200]} is not tessera.{self.stream}.ACTOR.SUBJECT"
        actor, subject = parts
        if actor == self.local:
            return {}, actor, None
        event = decode(msg.data)
        if not isinstance(event, dict):
            return {}, actor, "its body is not a JSON object"
        if event.get("actor") != actor or event.get("subject") != subject:
            return event, actor, "its subject names another actor or subject than its body"
        return event, actor, None

    @staticmethod
    def _error_text(refusals: list) -> str | None:
        if not refusals:
            return None
        stream_seq, actor, seq, reason = refusals[-1]
        return f"stream seq {stream_seq} (actor {actor}, seq {seq}) refused: {reason}"[:500]

    def _refuse(self, stream_seq: int, actor: str | None, seq: Any, reason: str) -> None:
        entry = self.summary.refused.setdefault(str(actor), Refused())
        entry.count += 1
        if entry.first_seq is None:
            entry.first_seq, entry.reason = seq, reason
        self.log("warning", "refused", stream_seq=stream_seq, actor=actor, seq=seq, reason=reason[:300])

    # -- a session ---------------------------------------------------------------------------

    async def session(self, nc: Any, lost: asyncio.Event, stop: Stop, *, follow: bool) -> None:
        """Read the stream from the cursor over one connection: to the end it has now (once), or
        until ``stop`` (follow).

        Raises:
            ConnectionLost when the connection goes; SourceTimeout when, once, the stream stops
            delivering before its end.
        """
        from nats.js import api

        js = nc.jetstream()
        await broker.ensure_stream(js, self.server, self.stream)
        start = self.stored_cursor()
        self.summary.cursor = start
        end = None
        if not follow:
            info = await js.stream_info(self.stream)
            end = info.state.last_seq
            if end <= start:
                return
        arrived: deque = deque()
        wake = asyncio.Event()

        async def on_message(msg: Any) -> None:
            arrived.append(msg)
            wake.set()

        config = (api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start + 1)
                  if start else api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL))
        sub = await js.subscribe(broker.stream_subjects(self.stream), stream=self.stream, cb=on_message,
                                 ordered_consumer=True, idle_heartbeat=5.0, config=config)
        lost_wait = asyncio.ensure_future(lost.wait())
        stop_wait = asyncio.ensure_future(stop.event.wait())
        try:
            while True:
                if not arrived:
                    if stop.is_set():
                        return
                    if lost.is_set():
                        raise ConnectionLost(f"lost the connection to {self.server}")
                    wake.clear()
                    wake_wait = asyncio.ensure_future(wake.wait())
                    done, _ = await asyncio.wait({wake_wait, lost_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED,
                                                 timeout=None if follow else IDLE_TIMEOUT_S)
                    wake_wait.cancel()
                    if not done:
                        raise SourceTimeout(f"stream {self.stream} on {self.server} delivered nothing for {IDLE_TIMEOUT_S:g} s "
                                            f"before its end (seq {end}); the cursor is at stream seq {self.summary.cursor}",
                                            hint="run the pull again")
                    continue
                batch = [arrived.popleft() for _ in range(min(len(arrived), INGEST_BATCH))]
                self.apply(batch)
                if end is not None and (self.summary.cursor >= end or batch[-1].metadata.num_pending == 0):
                    return
                if stop.is_set():
                    return
        finally:
            lost_wait.cancel()
            stop_wait.cancel()
            try:
                await sub.unsubscribe()
            except Exception:  # the connection is gone: the server drops the consumer itself
                pass


async def pull(conn: Any, server: str, stream: str, creds: broker.Credentials, stop: Stop, *, follow: bool,
               from_start: bool, log: Any) -> PullSummary:
    """Run a pull once (to the stream's end now) or, with ``follow``, until ``stop``,
    reconnecting with backoff.

    Raises (once): SourceUnavailable / ConnectionLost (exit 3), NotAuthorized (5),
    SourceTimeout (4).
    """
    from tessera.core.errors import SourceUnavailable
    from tessera.core.nats.nats_runner import reconnecting

    mirror = Mirror(conn, server, stream, log)
    if from_start:
        mirror.reset()

    async def session(connected) -> None:
        lost = asyncio.Event()
        try:
            nc = await broker.connect(server, creds, on_closed=lost.set, name="tessera nats pull")
            try:
                connected()
                if follow:
                    log("info", "pulling", server=server, stream=stream, cursor=mirror.stored_cursor())
                await mirror.session(nc, lost, stop, follow=follow)
            except broker.nats_errors() as exc:  # a request timed out, the connection closed under a request
                raise broker.lost(server, exc) from None
            finally:
                await broker.close(nc)
        except (SourceUnavailable, SourceTimeout) as exc:
            mirror.record_error(exc.one_line())
            raise

    if follow:
        await reconnecting(session, stop, log, "pull")
    else:
        await session(lambda: None)
    return mirror.summary
