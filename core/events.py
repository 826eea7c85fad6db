"""The event log (DESIGN §8): one append-only table, each entry chained to the one before by hash.

An entry: seq, id, time (RFC 3339 UTC, ms), subject (dot-separated tokens), type, actor (this
store's node id), correlation id, data (JSON), prev_hash, hash. ``hash`` is the SHA-256 of the
previous hash and the entry's canonical JSON (seq included), so ``verify`` finds a changed,
removed, inserted or reordered entry and names its seq. ``prune`` removes old entries and records
the last removed hash as the chain's anchor, so what remains still verifies.

Subjects follow NATS: ``*`` matches one token, ``>`` one or more trailing tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator

from tessera.core.errors import InputError, UsageError
from tessera.core.times import format_time, now

GENESIS = "0" * 64
_TOKEN = re.compile(r"^[A-Za-z0-9_\-:@$%+=~]+$")
# a context variable, not a process global: each thread and asyncio task of a daemon serving many
# requests has its own (a new thread starts empty; a task starts with its creator's)
_correlation: ContextVar[str | None] = ContextVar("tessera_correlation", default=None)
_process_correlation: str | None = None


@dataclass
class Event:
    """One log entry (see the module docstring)."""

    seq: int
    id: str
    time: str
    subject: str
    type: str
    actor: str
    correlation: str
    data: Any
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON-able data (the shape ``events tail`` prints)."""
        return {"seq": self.seq, "id": self.id, "time": self.time, "subject": self.subject, "type": self.type,
                "actor": self.actor, "correlation": self.correlation, "data": self.data,
                "prev_hash": self.prev_hash, "hash": self.hash}


# --- identity of a run ---------------------------------------------------------------------


def correlation_id() -> str:
    """The current correlation id: set_correlation()'s in this context, else
    ``$TESSERA_CORRELATION``, else one made once per process (one CLI invocation = one correlation
    id on every event it emits)."""
    global _process_correlation
    value = _correlation.get()
    if value is not None:
        return value
    if _process_correlation is None:
        _process_correlation = os.environ.get("TESSERA_CORRELATION") or uuid.uuid4().hex
    return _process_correlation


def set_correlation(value: str) -> None:
    """Use ``value`` as the correlation id of the current context (``--correlation``; a daemon
    sets one per request, in the thread or task serving it)."""
    if not value or len(value) > 200:
        raise UsageError("--correlation needs 1 to 200 characters")
    _correlation.set(value)


def node_id(conn: sqlite3.Connection) -> str:
    """This store's actor id, made once and kept in the meta table."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()
    if row:
        return row[0]
    value = uuid.uuid4().hex
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('node_id', ?)", (value,))
    return conn.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()[0]


# --- subjects and times ----------------------------------------------------------------------


def check_subject(subject: str, *, pattern: bool = False) -> str:
    """Validate a subject (or, with ``pattern``, a subject pattern with ``*`` and ``>``).

    Raises:
        UsageError naming the bad token.
    """
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if pattern and token == "*":
            continue
        if pattern and token == ">" and i == len(tokens) - 1:
            continue
        if not _TOKEN.match(token):
            what = "subject pattern" if pattern else "subject"
            raise UsageError(
                f"bad {what} '{subject}': token {i + 1} ('{token}') must be letters, digits or _-:@$%+=~",
                hint="tokens are separated by dots; patterns may use * for one token and > at the end",
            )
    return subject


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS matching: ``*`` is one token, a final ``>`` one or more tokens."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(s) == len(p)


def _like_prefix(pattern: str) -> str | None:
    literal = []
    for token in pattern.split("."):
        if token in ("*", ">"):
            break
        literal.append(token)
    if not literal:
        return None
    prefix = ".".join(literal)
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def parse_when(text: str, *, flag: str) -> str:
    """A ``--since``/``--until`` value: a duration back from now (``90s``, ``15m``, ``2h``, ``7d``,
    ``1h30m``) or an RFC 3339 time; returned as the stored time format.

    Raises:
        UsageError naming the flag and the accepted forms.
    """
    m = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if m and any(m.groups()):
        d, h, mi, s = (int(g or 0) for g in m.groups())
        try:
            when = datetime.now(timezone.utc) - timedelta(days=d, hours=h, minutes=mi, seconds=s)
        except OverflowError:  # 99999999999d: before year 1
            raise UsageError(f"{flag} '{text}' reaches back past year 1", hint="e.g. 15m, 2h, 7d, or 2026-11-23T10:00:00Z") from None
    else:
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"{flag} '{text}' is neither a duration nor an RFC 3339 time",
                hint="e.g. 15m, 2h, 7d, or 2026-11-23T10:00:00Z",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    return format_time(when)


# --- the chain ------------------------------------------------------------------------------


def entry_hash(prev_hash: str, seq: int, id: str, time: str, subject: str, type: str, actor: str,
               correlation: str, data_json: str) -> str:
    """SHA-256 over the previous hash and the entry's canonical JSON."""
    body = json.dumps([seq, id, time, subject, type, actor, correlation, data_json], separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _canonical(data: Any) -> str:
    """The stored form of an event's data, refused when it is not JSON, not valid Unicode (a lone
    surrogate such as ``"\\ud800"``) or nested deeper than Python can follow.

    No size limit here: a notebook's row changes may be large; ``events publish`` refuses data
    over ``TESSERA_MAX_EVENT_BYTES`` before it is parsed (docs/limits.md)."""
    try:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"event data is not JSON: {exc}") from None
    except RecursionError:
        raise InputError("event data is nested too deep to store") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"event data holds {text[exc.start]!r}, half of a surrogate pair, which is not text",
                         hint="send the whole character, or its UTF-8 bytes") from None
    return text


def _head(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    if row:
        return row[0], row[1]
    anchor = conn.execute("SELECT value FROM meta WHERE key = 'chain_anchor'").fetchone()
    if anchor:
        seq, h = json.loads(anchor[0])
        return seq, h
    return 0, GENESIS


def append_many(conn: sqlite3.Connection, entries: Iterable[tuple[str, Any] | tuple[str, Any, str]], *,
                correlation: str | None = None) -> list[Event]:
    """Append entries in one transaction: each is (subject, data) or (subject, data, type).

    Returns:
        the stored events, in order.
    Raises:
        UsageError for a bad subject; InputError for data that is not JSON.
    """
    from tessera.core.store.db import transaction

    corr = correlation or correlation_id()
    prepared = []
    for entry in entries:
        subject, data = entry[0], entry[1]
        etype = entry[2] if len(entry) > 2 else "event"
        prepared.append((check_subject(subject), _canonical(data), etype, data))
    out: list[Event] = []
    with transaction(conn):
        actor = node_id(conn)
        seq, prev = _head(conn)
        rows = []
        for subject, data_json, etype, data in prepared:
            seq += 1
            eid, when = uuid.uuid4().hex, now()
            h = entry_hash(prev, seq, eid, when, subject, etype, actor, corr, data_json)
            rows.append((seq, eid, when, subject, etype, actor, corr, data_json, prev, h))
            out.append(Event(seq, eid, when, subject, etype, actor, corr, data, prev, h))
            prev = h
        conn.executemany("INSERT INTO events(seq, id, time, subject, type, actor, correlation, data, prev_hash, hash)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return out


def append(conn: sqlite3.Connection, subject: str, data: Any, *, type: str = "event",
           correlation: str | None = None) -> Event:
    """Append one event in its own transaction (or the caller's, when one is open)."""
    return append_many(conn, [(subject, data, type)], correlation=correlation)[0]


def _row(r: tuple) -> Event:
    return Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9])


_COLUMNS = "seq, id, time, subject, type, actor, correlation, data, prev_hash, hash"


def read(conn: sqlite3.Connection, *, pattern: str | None = None, since: str | None = None,
         until: str | None = None, after_seq: int | None = None, correlation: str | None = None,
         limit: int | None = None, data_equals: dict[str, Any] | None = None) -> list[Event]:
    """Events in seq order matching every filter given (pattern with ``*``/``>``; since and
    until as stored times, inclusive; after_seq exclusive; data_equals: top-level data fields
    with these values, compared in SQL)."""
    where, args = [], []
    for key, value in (data_equals or {}).items():
        where.append("json_extract(data, ?) = ?")
        args += [f'$."{key}"', value]
    if pattern:
        check_subject(pattern, pattern=True)
        prefix = _like_prefix(pattern)
        if prefix is not None:
            where.append("subject LIKE ? ESCAPE '\\'")
            args.append(prefix + "%")
    if since:
        where.append("time >= ?")
        args.append(since)
    if until:
        where.append("time <= ?")
        args.append(until)
    if after_seq is not None:
        where.append("seq > ?")
        args.append(after_seq)
    if correlation:
        where.append("correlation = ?")
        args.append(correlation)
    sql = f"SELECT {_COLUMNS} FROM events" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq"
    out = []
    for r in conn.execute(sql, args):
        if pattern and not subject_matches(pattern, r[3]):
            continue
        out.append(_row(r))
        if limit is not None and len(out) >= limit:
            break
    return out


def follow(conn: sqlite3.Connection, *, after_seq: int, poll: float = 0.02, stop: Any = None,
           **filters: Any) -> Iterator[Event]:
    """Yield new events after ``after_seq`` as they are committed (by any process), forever or
    until ``stop`` (a threading.Event) is set. ``PRAGMA data_version`` tells cheaply when
    another connection wrote, so an idle follower costs almost nothing."""
    import time

    last = after_seq
    version = None
    while stop is None or not stop.is_set():
        current = conn.execute("PRAGMA data_version").fetchone()[0]
        if current != version:
            version = current
            for event in read(conn, after_seq=last, **filters):
                last = event.seq
                yield event
            # events filtered out still move the cursor on
            top = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
            last = max(last, top or 0)
        time.sleep(poll)


def last_seq(conn: sqlite3.Connection) -> int:
    """The highest seq stored (0 when empty)."""
    return conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]


@dataclass
class Verdict:
    """The result of ``verify``: ok, how many entries were checked, and the first problem."""

    ok: bool
    checked: int
    seq: int | None = None
    problem: str | None = None


def verify(conn: sqlite3.Connection) -> Verdict:
    """Walk the chain in seq order from its anchor; the first broken link is named by seq.

    Detects: a modified entry (its hash does not recompute), a deleted one (a gap in seq, or the
    next entry's prev_hash no longer matches), an inserted one and a reordering (prev_hash or
    seq out of line).
    """
    anchor = conn.execute("SELECT value FROM meta WHERE key = 'chain_anchor'").fetchone()
    prev_seq, prev_hash = json.loads(anchor[0]) if anchor else (0, GENESIS)
    checked = 0
    for r in conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq"):
        seq, eid, when, subject, etype, actor, corr, data_json, p, h = r
        if seq != prev_seq + 1:
            return Verdict(False, checked, seq, f"seq {seq} follows seq {prev_seq}: entries between them are missing or were inserted")
        if p != prev_hash:
            return Verdict(False, checked, seq, f"seq {seq} does not link to the entry before it (prev_hash differs): an entry was removed, inserted or moved")
        if entry_hash(p, seq, eid, when, subject, etype, actor, corr, data_json) != h:
            return Verdict(False, checked, seq, f"seq {seq} was modified (its hash does not match its content)")
        prev_seq, prev_hash = seq, h
        checked += 1
    return Verdict(True, checked)


def prune(conn: sqlite3.Connection, *, older_than: str) -> int:
    """Delete events with time before ``older_than`` (a stored time), keeping the chain verifiable.

    Only a prefix of the chain is removed (up to the first entry that is not old enough), and the
    last removed entry's (seq, hash) becomes the anchor ``verify`` starts from.

    Returns:
        how many entries were removed.
    """
    from tessera.core.store.db import transaction

    with transaction(conn):
        first_young = conn.execute("SELECT min(seq) FROM events WHERE time >= ?", (older_than,)).fetchone()[0]
        if first_young is None:
            first_young = (conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0) + 1
        last = conn.execute("SELECT seq, hash FROM events WHERE seq < ? ORDER BY seq DESC LIMIT 1",
                            (first_young,)).fetchone()
        if last is None:
            return 0
        removed = conn.execute("DELETE FROM events WHERE seq < ?", (first_young,)).rowcount
        conn.execute("INSERT INTO meta(key, value) VALUES ('chain_anchor', ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (json.dumps([last[0], last[1]]),))
    return removed
