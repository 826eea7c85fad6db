"""Events published to JetStream in batches, their PubAcks collected by event seq.

What nats-py's ``publish_async`` does (a reply inbox per message under one wildcard
subscription, the PubAck on it), with less work per message: a batch of events goes to the
connection as one buffer of ``HPUB`` commands with their headers written directly (no header
dict checked key by key, no NUID, future, done-callback or semaphore per message), and each
message's reply subject ends in its event's seq, so an ack is filed under its seq as it comes
and read only when the outbox moves its cursor (docs/nats.md, "Throughput").

It writes through nats-py's ``Client._send_command`` and ``Client._flush_pending`` (what
``Client.publish`` itself calls), the only way to hand nats-py bytes it does not re-encode;
nats-py is pinned exactly (pyproject.toml) and tests/test_nats_push.py drives this against a
real nats-server, so a nats-py whose internals differ fails there, not in the field.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Iterable

from tessera.core.errors import TesseraError
from tessera.core.nats import broker
from tessera.core.nats.nats_runner import ConnectionLost

_NO_RESPONDERS = "503"  # the Status header when nothing serves the subject (no such stream)
_UNSAFE = re.compile(r"[\s]")  # whitespace in a subject or header value would break the protocol line
_SUBJECTS_KEPT = 4096  # message subjects encoded once and kept (event subjects repeat)


@dataclass(frozen=True)
class Ack:
    """The server's answer to one published event."""

    duplicate: bool = False  # the stream had it already (a resend after a crash): dropped by Nats-Msg-Id
    refused: str | None = None  # the server's description when it did not store the event (a stream limit)
    lost: str | None = None  # why no stream answered at all (the reply was not a PubAck)


_STORED, _DUPLICATE = Ack(), Ack(duplicate=True)  # made once: one ack per event


class JetStreamPublisher:
    """One connection's publishing of one actor's events to one stream."""

    def __init__(self, nc: Any, server: str, stream: str, actor: str):
        self.nc, self.server, self.stream, self.actor = nc, server, stream, actor
        self.arrived = asyncio.Event()  # set whenever an ack comes in
        self._replies: dict[int, Any] = {}  # event seq -> its reply message, until taken
        self._prefix, self._reply_prefix = "", b""
        self._subjects: dict[str, bytes] = {}

    async def start(self) -> None:
        """Subscribe to this session's reply inbox (one wildcard subscription for every ack)."""
        self._prefix = self.nc.new_inbox() + "."
        self._reply_prefix = self._prefix.encode()
        await self.nc.subscribe(self._prefix + "*", cb=self._on_reply)

    async def _on_reply(self, msg: Any) -> None:
        token = msg.subject[len(self._prefix):]
        if token.isdigit():
            self._replies[int(token)] = msg
            self.arrived.set()

    async def send(self, rows: Iterable[tuple], payload: Any) -> None:
        """Publish event rows (``seq, id, ...`` as outbox reads them, ``subject`` fourth), each
        with ``Nats-Msg-Id`` = its event id and its seq in ``Tessera-Seq``, as one write;
        ``payload(row)`` gives a message body.

        Raises:
            ConnectionLost when the connection is closed or not connected; TesseraError for an
            event whose id or subject would break the protocol line (a damaged log); nats-py's
            MaxPayloadError for an event larger than the server takes (what ``publish`` raises).
        """
        nc = self.nc
        if nc.is_closed or not nc.is_connected:
            raise ConnectionLost(f"lost the connection to {self.server}")
        max_payload = nc.max_payload
        reply_prefix = self._reply_prefix
        parts: list[bytes] = []
        for row in rows:
            seq, event_id = row[0], row[1]
            if not (event_id.isascii() and event_id.isalnum()):  # hex as core/events.py makes them
                raise TesseraError(f"event seq {seq} has an id unfit for a NATS header: {event_id!r}",
                                   hint="the event log is damaged: check it with tessera events verify")
            body = payload(row)
            headers = f"NATS/1.0\r\n{broker.MSG_ID}: {event_id}\r\n{broker.SEQ_HEADER}: {seq}\r\n\r\n".encode()
            if len(body) + len(headers) > max_payload:
                from nats import errors as nats_errors

                raise nats_errors.MaxPayloadError
            parts.append(b"HPUB %s %s%d %d %d\r\n" % (self._subject(row[3]), reply_prefix, seq, len(headers),
                                                      len(headers) + len(body)))
            parts.append(headers)
            parts.append(body)
            parts.append(b"\r\n")
        if not parts:
            return
        await nc._send_command(b"".join(parts))
        if nc._flush_queue is not None and nc._flush_queue.empty():
            await nc._flush_pending()

    def _subject(self, subject: str) -> bytes:
        encoded = self._subjects.get(subject)
        if encoded is None:
            if not subject or _UNSAFE.search(subject):
                raise TesseraError(f"event subject {subject!r} is unfit for a NATS subject",
                                   hint="the event log is damaged: check it with tessera events verify")
            if len(self._subjects) >= _SUBJECTS_KEPT:
                self._subjects.clear()
            encoded = self._subjects[subject] = broker.message_subject(self.stream, self.actor, subject).encode()
        return encoded

    def take(self, seq: int) -> Ack | None:
        """The ack for the event ``seq`` once it is in (then forgotten), else None."""
        msg = self._replies.pop(seq, None)
        if msg is None:
            return None
        if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS:
            return Ack(lost="NoStreamResponseError")
        import orjson

        try:
            answer = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            return Ack(lost="an unreadable PubAck")
        if not isinstance(answer, dict):
            return Ack(lost="an unreadable PubAck")
        if "error" in answer:
            from nats.js import errors as js_errors

            try:  # nats-py raises the APIError subclass the code names
                js_errors.APIError.from_error(answer["error"])
            except js_errors.APIError as exc:
                return Ack(refused=exc.description or type(exc).__name__)
            except (KeyError, TypeError):
                pass
            return Ack(lost="an unreadable PubAck error")
        return _DUPLICATE if answer.get("duplicate") else _STORED
