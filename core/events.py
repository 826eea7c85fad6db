"""The event log (DESIGN §8): one append-only table holding one hash chain per actor.

An entry: seq, id, time (RFC 3339 UTC, ms), subject (dot-separated tokens), type, actor (the node
that wrote it), correlation id, data (JSON), prev_hash, hash. An entry is keyed by (actor, seq):
each actor's entries form a chain, seq 1, 2, 3... each ``hash`` the SHA-256 of the previous hash
and the entry's canonical JSON (seq included), so ``verify`` finds a changed, removed, inserted or
reordered entry and names its seq. This node appends to its own chain (its actor is the store's
node id); other actors' chains (peers, later) come in through ``ingest``, which checks each link
before storing it.

``event_chains`` keeps, per actor, where its chain starts (the anchor: after a prune, the last
removed entry) and its head: for other actors where the chain must end, for this node the last
point it signed with its Ed25519 key (core/node_key.py), which its chain must pass through. It
signs lazily (every batch, a connection's first append, then at most every SIGN_INTERVAL; verify
and checkpoint sign the end), so ``verify`` notices a cut below the signed head or a history
rewritten with recomputed hashes; ``checkpoint`` hands the signed head out to be kept elsewhere,
and ``check_against`` checks the log still reaches it (which catches an attacker who also holds
the key file and re-signed). docs/events.md says what this does and does not protect against.
The rowid is the local arrival order, which ``read`` and ``follow`` use; seq orders one actor's
chain only.

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
from time import monotonic as _monotonic
from typing import Any, Iterable, Iterator, Mapping

from tessera.core import node_key
from tessera.core.errors import InputError, TesseraError, UsageError
from tessera.core.times import format_time, now, parse_time

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
    position: int | None = None  # the local arrival order (rowid): not part of the entry, not printed

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
    value = _stored_node_id(conn)
    if value is None:
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('node_id', ?)", (uuid.uuid4().hex,))
        value = _stored_node_id(conn)
    return value


def local_actor(conn: sqlite3.Connection) -> str | None:
    """This store's actor id when it has one; reading never makes one (unlike ``node_id``), so a
    replica or a store that never appended has None."""
    return _stored_node_id(conn)


def _stored_node_id(conn: sqlite3.Connection) -> str | None:
    """This store's actor id when it has one (reading never makes one); once read it is kept in
    the connection's memo, as it never changes."""
    memo = getattr(conn, "memo", {})
    if "node_id" not in memo:
        row = conn.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()
        if row is None:
            return None
        memo["node_id"] = row[0]
    return memo["node_id"]


# --- subjects and times ----------------------------------------------------------------------


_checked_subjects: dict[str, None] = {}  # subjects found good: a writer repeats a few subjects many times
_CHECKED_SUBJECTS_KEPT = 4096


def check_subject(subject: str, *, pattern: bool = False) -> str:
    """Validate a subject (or, with ``pattern``, a subject pattern with ``*`` and ``>``).

    Raises:
        UsageError naming the bad token.
    """
    if not pattern and subject in _checked_subjects:
        return subject
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
    if not pattern:
        if len(_checked_subjects) >= _CHECKED_SUBJECTS_KEPT:
            _checked_subjects.clear()
        _checked_subjects[subject] = None
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
            when = parse_time(text)
        except ValueError:
            raise UsageError(
                f"{flag} '{text}' is neither a duration nor an RFC 3339 time",
                hint="e.g. 15m, 2h, 7d, or 2026-11-23T10:00:00Z",
            ) from None
    return format_time(when)


# --- the chain ------------------------------------------------------------------------------

def _json_encoder(*, sort_keys: bool, allow_nan: bool):
    """``JSONEncoder(sort_keys=..., separators=(",", ":"), ensure_ascii=False, allow_nan=...).encode``,
    as the same C encoder built once: ``encode`` builds one on every call, a third of the cost of
    hashing a small event (a peer's page of 1000 events hashes each). No circular-reference
    marks: data decoded from JSON or msgpack cannot be circular, and depth ends in RecursionError
    either way. The output is the same, byte for byte (tests/test_events.py checks it)."""
    from json import encoder as json_encoder

    slow = json.JSONEncoder(sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan)
    if json_encoder.c_make_encoder is None:  # no C accelerator (not CPython)
        return slow.encode
    fast = json_encoder.c_make_encoder(None, slow.default, json_encoder.encode_basestring, None, ":", ",", sort_keys,
                                       False, allow_nan)
    join = "".join

    def encode(value: Any) -> str:
        return join(fast(value, 0))

    return encode


_encode_body = _json_encoder(sort_keys=False, allow_nan=True)
_encode_canonical = _json_encoder(sort_keys=True, allow_nan=False)
_sha256 = hashlib.sha256


def entry_hash(prev_hash: str, seq: int, id: str, time: str, subject: str, type: str, actor: str,
               correlation: str, data_json: str) -> str:
    """SHA-256 over the previous hash and the entry's canonical JSON."""
    body = _encode_body([seq, id, time, subject, type, actor, correlation, data_json])
    return _sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _canonical(data: Any) -> str:
    """The stored form of an event's data, refused when it is not JSON, not valid Unicode (a lone
    surrogate such as ``"\\ud800"``) or nested deeper than Python can follow.

    No size limit here: a notebook's row changes may be large; ``events publish`` refuses data
    over ``TESSERA_MAX_EVENT_BYTES`` before it is parsed (docs/limits.md)."""
    try:
        text = _encode_canonical(data)
    except (TypeError, ValueError) as exc:
        raise InputError(f"event data is not JSON: {exc}") from None
    except RecursionError:
        raise InputError("event data is nested too deep to store") from None
    if not text.isascii():  # only text beyond ASCII can hold half a surrogate pair
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(f"event data holds {text[exc.start]!r}, half of a surrogate pair, which is not text",
                             hint="send the whole character, or its UTF-8 bytes") from None
    return text


def head_message(actor: str, seq: int, hash: str, time: str) -> bytes:
    """The bytes a chain head's signature covers (a versioned tag, so a signature made for
    something else can never pass as a head's)."""
    return _encode_body(["tessera.event-head.v1", actor, seq, hash, time]).encode("utf-8")


@dataclass
class Head:
    """Where one actor's chain starts (its anchor: 0 and 64 zeros, or the last pruned entry) and
    where it must end (its head); for this node's own chain, the head's signature."""

    actor: str
    anchor_seq: int
    anchor_hash: str
    seq: int
    hash: str
    time: str | None = None
    signature: str | None = None
    public_key: str | None = None

    def checkpoint(self) -> dict[str, Any]:
        """The signed head as ``events checkpoint`` prints it (the public key only, never the
        private one)."""
        return {"actor": self.actor, "seq": self.seq, "hash": self.hash, "time": self.time,
                "signature": self.signature, "public_key": self.public_key}


_HEAD_COLUMNS = "actor, anchor_seq, anchor_hash, head_seq, head_hash, head_time, signature, public_key"


def heads(conn: sqlite3.Connection) -> dict[str, Head]:
    """Every actor's recorded chain head."""
    return {r[0]: Head(*r) for r in conn.execute(f"SELECT {_HEAD_COLUMNS} FROM event_chains")}


# A connection appending one event at a time signs its head at most this often (seconds); a
# batch, its first append, verify and checkpoint always sign. See docs/events.md, "Signed heads".
SIGN_INTERVAL = 0.1


def _head_holds(conn: sqlite3.Connection, key: Any, actor: str, row: tuple) -> bool:
    """Whether this node's signed head (row: anchor_seq, anchor_hash, head_seq, head_hash,
    head_time, signature) may be moved on under a new signature. A new signature vouches for
    everything before it, so it is made only over a head this node's key signed and that the
    chain still passes through; a head forged by someone without the key is left as it is, and
    ``verify`` keeps reporting it.

    The head this connection signed last needs no second check of its signature (one check costs
    about 55 µs). An unsigned head is a log from before signed heads, trusted on first use only by
    the connection that made the node's key, before it signs anything."""
    anchor_seq, anchor_hash, seq, h, when, signature = row
    memo = getattr(conn, "memo", {})
    if memo.get("signed_head") != (actor, seq, h, signature):
        if signature is None:
            if not memo.get("node_key_new"):
                return False
        elif not node_key.signature_valid(memo.get("node_public_key") or node_key.public_key_hex(key),
                                          head_message(actor, seq, h, when or ""), signature):
            return False
    if seq > anchor_seq:
        found = conn.execute("SELECT hash FROM events WHERE actor = ? AND seq = ?", (actor, seq)).fetchone()
        return found is not None and found[0] == h
    return seq < anchor_seq or h == anchor_hash  # pruned past the head, or up to it


def _sign_end(conn: sqlite3.Connection, key: Any, actor: str, seq: int, h: str, when: str, *, new_chain: bool) -> bool:
    """Sign (seq, h) as this node's head, in the caller's transaction, when the head it replaces
    holds (``_head_holds``) and is behind it; a chain with no head row yet only when it is new.

    Returns:
        whether it signed.
    """
    memo = getattr(conn, "memo", {})
    memo["signed_at"] = _monotonic()  # also after a refusal: a forged head is not checked again at every append
    row = conn.execute("SELECT anchor_seq, anchor_hash, head_seq, head_hash, head_time, signature FROM event_chains "
                       "WHERE actor = ?", (actor,)).fetchone()
    if row is None:
        if not new_chain:
            return False  # entries whose head row was removed: no signature may cover them
        anchor = (0, GENESIS)
    elif row[2] >= seq and row[5] is not None or not _head_holds(conn, key, actor, row):
        return False
    else:
        anchor = row[:2]
    signature, public_key = _signed_head(conn, key, actor, seq, h, when)
    conn.execute(_STORE_HEAD, (actor, anchor[0], anchor[1], seq, h, when, signature, public_key))
    memo["signed_head"], memo["node_key_new"] = (actor, seq, h, signature), False  # trusted on first use once only
    return True


def _node_key(conn: sqlite3.Connection, *, create: bool = True) -> Any:
    """This store's signing key (made on first use), or None when it has none and not ``create``."""
    memo = getattr(conn, "memo", {})
    key = memo.get("node_key")
    if key is None:
        path = getattr(conn, "path", None)
        if path is None:
            raise TesseraError("this connection is not to a store file, so it has no node key to sign with",
                               hint="open the store with tessera.core.store.db.connect")
        existed = node_key.exists(path)
        key = node_key.signing_key(path, create=create)
        if key is not None:
            memo["node_key"], memo["node_public_key"] = key, node_key.public_key_hex(key)
            memo["node_signer"] = node_key.signer(key)
            memo["node_key_new"] = not existed  # made by this connection: see _head_holds
    return key


def _signed_head(conn: sqlite3.Connection, key: Any, actor: str, seq: int, hash: str, time: str) -> tuple[str, str]:
    """(signature, public key), both hex, of this head."""
    memo = getattr(conn, "memo", {})
    public_key = memo.get("node_public_key") or node_key.public_key_hex(key)
    sign = memo.get("node_signer") or node_key.signer(key)
    return sign(head_message(actor, seq, hash, time)), public_key


_STORE_HEAD = (f"INSERT INTO event_chains({_HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT(actor) DO UPDATE SET head_seq = excluded.head_seq, head_hash = excluded.head_hash, "
               "head_time = excluded.head_time, signature = excluded.signature, public_key = excluded.public_key")
_INGESTED_HEAD = (f"INSERT INTO event_chains({_HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL) "
              "ON CONFLICT(actor) DO UPDATE SET head_seq = excluded.head_seq, head_hash = excluded.head_hash")
_INSERT = ("INSERT INTO events(seq, id, time, subject, type, actor, correlation, data, prev_hash, hash)"
           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def append_many(conn: sqlite3.Connection, entries: Iterable[tuple[str, Any] | tuple[str, Any, str]], *,
                correlation: str | None = None) -> list[Event]:
    """Append entries to this node's chain in one transaction: each is (subject, data) or
    (subject, data, type). The new head is signed once for the whole batch; a single entry signs
    it when it is this connection's first, or SIGN_INTERVAL has passed since its last signature.

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
    if not prepared:
        return []
    key = _node_key(conn)  # outside the transaction: the first use loads nacl and may write the key file
    memo = getattr(conn, "memo", {})
    out: list[Event] = []
    urandom = os.urandom
    with transaction(conn):
        actor = node_id(conn)
        last = conn.execute("SELECT seq, hash FROM events WHERE actor = ? ORDER BY seq DESC LIMIT 1", (actor,)).fetchone()
        if last is None:  # no entries: a new chain, or one pruned whole, which goes on from its anchor
            last = conn.execute("SELECT anchor_seq, anchor_hash FROM event_chains WHERE actor = ?", (actor,)).fetchone()
        seq, prev = last or (0, GENESIS)
        new_chain = seq == 0
        rows = []
        for subject, data_json, etype, data in prepared:
            seq += 1
            eid, when = urandom(16).hex(), now()
            h = _sha256((prev + _encode_body([seq, eid, when, subject, etype, actor, corr, data_json])).encode("utf-8")).hexdigest()
            rows.append((seq, eid, when, subject, etype, actor, corr, data_json, prev, h))
            out.append(Event(seq, eid, when, subject, etype, actor, corr, data, prev, h))
            prev = h
        conn.executemany(_INSERT, rows)
        signed_at = memo.get("signed_at")
        if len(rows) > 1 or signed_at is None or _monotonic() - signed_at >= SIGN_INTERVAL:
            _sign_end(conn, key, actor, seq, prev, when, new_chain=new_chain)
    return out


def append(conn: sqlite3.Connection, subject: str, data: Any, *, type: str = "event",
           correlation: str | None = None) -> Event:
    """Append one event in its own transaction (or the caller's, when one is open)."""
    return append_many(conn, [(subject, data, type)], correlation=correlation)[0]


_FIELD_CHARS = 200  # an id, actor, type, time or correlation id longer than this is not one of ours
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("seq", "id", "time", "subject", "type", "actor", "correlation", "data", "prev_hash", "hash")


def _foreign(event: Event | Mapping[str, Any], index: int) -> tuple[tuple, Event]:
    """A foreign event as a row to store, refused unless it is well formed and its hash is right."""
    fields = event.as_dict() if isinstance(event, Event) else event
    where = f"event {index + 1}"
    if not isinstance(fields, Mapping):
        raise InputError(f"{where} is not an event (a mapping with {', '.join(_FIELDS)})")
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
        raise InputError(f"{where} lacks {', '.join(missing)}")
    seq = fields["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 2**63:
        raise InputError(f"{where}: seq must be a whole number from 1, not {seq!r}")
    for name in ("id", "time", "subject", "type", "actor", "correlation", "prev_hash", "hash"):
        if not isinstance(fields[name], str) or not fields[name]:
            raise InputError(f"{where}: {name} must be a non-empty string")
    for name in ("id", "time", "type", "actor", "correlation"):
        if len(fields[name]) > _FIELD_CHARS:
            raise InputError(f"{where}: its {name} is longer than {_FIELD_CHARS} characters")
    for name in ("prev_hash", "hash"):
        if not _HEX64.fullmatch(fields[name]):
            raise InputError(f"{where}: its {name} is not 64 lowercase hex digits")
    actor = fields["actor"]
    where = f"event {index + 1} (actor {actor}, seq {seq})"
    try:
        check_subject(fields["subject"])
    except UsageError as exc:
        raise InputError(f"{where}: {exc.message}") from None
    data_json = _canonical(fields["data"])
    h = entry_hash(fields["prev_hash"], seq, fields["id"], fields["time"], fields["subject"], fields["type"],
                   actor, fields["correlation"], data_json)
    if h != fields["hash"]:
        raise InputError(f"{where} does not match its hash: it was changed after it was written, or not written by Tessera")
    row = (seq, fields["id"], fields["time"], fields["subject"], fields["type"], actor, fields["correlation"],
           data_json, fields["prev_hash"], h)
    return row, Event(*row[:7], fields["data"], row[8], h)


def foreign_row(event: Event | Mapping[str, Any], index: int = 0) -> tuple:
    """A foreign event (an Event or its ``as_dict`` fields) as the row to store (seq, id, time,
    subject, type, actor, correlation, data as canonical JSON, prev_hash, hash), after checking it
    is well formed and recomputes to its hash (one SHA-256).

    Raises:
        InputError naming the event (``index`` counts from 0) and what is wrong.
    """
    return _foreign(event, index)[0]


def foreign_rows(foreign_events: Iterable[Mapping[str, Any]]) -> list[tuple]:
    """``foreign_row`` of each event, for many at once (a peer's page holds up to 1000): the same
    checks, with the common case (every field of its exact type, a subject seen before) tested
    in one pass; any event that is not that common case goes through ``foreign_row`` itself, so
    what is refused, and the message saying why, are the same.

    Raises:
        InputError naming the first event (counting from 1) that is malformed or does not match
        its hash.
    """
    out: list[tuple] = []
    append, hex64, checked, canonical = out.append, _HEX64.fullmatch, _checked_subjects, _canonical
    limit = _FIELD_CHARS
    for index, fields in enumerate(foreign_events):
        try:
            seq, eid, when, subject, etype = fields["seq"], fields["id"], fields["time"], fields["subject"], fields["type"]
            actor, corr, data, prev, h = fields["actor"], fields["correlation"], fields["data"], fields["prev_hash"], fields["hash"]
        except (KeyError, TypeError, IndexError):
            append(_foreign(fields, index)[0])  # raises, naming what is missing
            continue
        if not (type(seq) is int and 1 <= seq < 2**63 and type(eid) is str and type(when) is str and type(etype) is str
                and type(actor) is str and type(corr) is str and type(prev) is str and type(h) is str
                and type(subject) is str and subject in checked
                and 0 < len(eid) <= limit and 0 < len(when) <= limit and 0 < len(etype) <= limit
                and 0 < len(actor) <= limit and 0 < len(corr) <= limit and hex64(prev) and hex64(h)):
            append(_foreign(fields, index)[0])  # the full checks, one at a time
            continue
        data_json = canonical(data)
        if entry_hash(prev, seq, eid, when, subject, etype, actor, corr, data_json) != h:
            raise InputError(f"event {index + 1} (actor {actor}, seq {seq}) does not match its hash: it was changed after "
                             "it was written, or not written by Tessera")
        append((seq, eid, when, subject, etype, actor, corr, data_json, prev, h))
    return out


def ingest(conn: sqlite3.Connection, foreign_events: Iterable[Event | Mapping[str, Any]]) -> list[Event]:
    """Store other actors' events (a peer's), each on its own actor's chain, all or none.

    Each event (an Event, or a mapping of its fields as ``Event.as_dict`` gives them) must
    recompute to its hash and link to the head of its actor's chain: seq one more than the head's
    and prev_hash the head's hash. An actor's first event may start its chain anywhere (a peer
    that pruned no longer has seq 1): its seq - 1 and prev_hash become the chain's anchor. An
    event already stored with the same hash is skipped (peers resend), so ingesting twice is
    harmless. This node's own chain only grows by its own appends.

    Returns:
        the events stored (not those skipped), in order.
    Raises:
        InputError naming the event (its actor and seq) that is malformed, does not match its
        hash, does not link, differs from the one stored with its seq (a fork), reuses a stored
        id, or claims this node as its actor; nothing is stored then.
    """
    from tessera.core.store.db import transaction

    prepared = [_foreign(event, i) for i, event in enumerate(foreign_events)]
    if not prepared:
        return []
    stored: list[Event] = []
    with transaction(conn):
        local = node_id(conn)
        chains: dict[str, list] = {}  # actor -> [anchor_seq, anchor_hash, head_seq, head_hash]
        rows, in_batch = [], {}  # in_batch: (actor, seq) -> hash of the rows about to be stored
        for index, (row, event) in enumerate(prepared):
            seq, actor, prev, h = row[0], row[5], row[8], row[9]
            where = f"event {index + 1} (actor {actor}, seq {seq})"
            if actor == local:
                raise InputError(f"{where} claims this node's own actor: only this node's appends extend its chain")
            chain = chains.get(actor)
            if chain is None:
                found = conn.execute("SELECT anchor_seq, anchor_hash, head_seq, head_hash FROM event_chains WHERE actor = ?",
                                     (actor,)).fetchone()
                chain = chains[actor] = list(found) if found else None
            if chain is not None and seq <= chain[2]:  # one this log has: the same, or a fork
                known = in_batch.get((actor, seq))
                if known is None:
                    have = conn.execute("SELECT hash FROM events WHERE actor = ? AND seq = ?", (actor, seq)).fetchone()
                    known = have[0] if have else None
                if known == h:
                    continue  # stored already (peers resend), or twice in this batch
                if known is None:
                    raise InputError(f"{where} is at or before the chain's first kept entry (seq {chain[0] + 1}); it was pruned here")
                raise InputError(f"{where} differs from the event stored with that seq: the chain forked",
                                 hint="the peer rewrote its history, or two nodes share one actor id")
            if chain is None:
                if seq == 1 and prev != GENESIS:
                    raise InputError(f"{where} starts the chain but does not link to the genesis hash (64 zeros)")
                chain = chains[actor] = [seq - 1, prev, seq - 1, prev]
            elif seq != chain[2] + 1 or prev != chain[3]:
                problem = (f"its seq follows {chain[2]}, the chain's head, by {seq - chain[2]}" if seq != chain[2] + 1
                           else "its prev_hash is not the hash of the chain's head")
                raise InputError(f"{where} does not link to its actor's chain: {problem}",
                                 hint=f"send the events after seq {chain[2]} in order, without gaps")
            chain[2], chain[3] = seq, h
            in_batch[(actor, seq)] = h
            rows.append(row)
            stored.append(event)
        try:
            conn.executemany(_INSERT, rows)
        except sqlite3.IntegrityError:
            raise InputError("an ingested event collides with one stored already (its id, or its actor and seq); "
                             "nothing was stored", hint="event ids must be unique across actors") from None
        conn.executemany(_INGESTED_HEAD, [(actor, c[0], c[1], c[2], c[3]) for actor, c in chains.items() if c is not None])
    return stored


def _row(r: tuple) -> Event:
    try:
        data = json.loads(r[7])
    except (ValueError, TypeError):  # only a file changed outside Tessera holds such a row
        from tessera.core.store.db import StoreDamaged

        raise StoreDamaged(f"the event at seq {r[0]} of actor {str(r[5])[:64]} holds data that is not JSON: "
                           "the store file was changed outside Tessera",
                           hint="check it with `tessera events verify`; a peer's replica is rebuilt by "
                                "`tessera peer sync NAME --full`") from None
    return Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], data, r[8], r[9], r[10])


_COLUMNS = "seq, id, time, subject, type, actor, correlation, data, prev_hash, hash"


def read(conn: sqlite3.Connection, *, pattern: str | None = None, since: str | None = None,
         until: str | None = None, after_seq: int | None = None, correlation: str | None = None,
         limit: int | None = None, data_equals: dict[str, Any] | None = None,
         after_position: int | None = None) -> list[Event]:
    """Events in local arrival order matching every filter given (pattern with ``*``/``>``; since
    and until as stored times, inclusive; after_seq: seq greater than it, in every actor's chain;
    after_position: arrived after that position, exclusive; data_equals: top-level data fields
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
    if after_position is not None:
        where.append("rowid > ?")
        args.append(after_position)
    if correlation:
        where.append("correlation = ?")
        args.append(correlation)
    sql = (f"SELECT {_COLUMNS}, rowid FROM events" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY rowid")
    out = []
    for r in conn.execute(sql, args):
        if pattern and not subject_matches(pattern, r[3]):
            continue
        out.append(_row(r))
        if limit is not None and len(out) >= limit:
            break
    return out


def follow(conn: sqlite3.Connection, *, after_position: int, poll: float = 0.02, stop: Any = None,
           **filters: Any) -> Iterator[Event]:
    """Yield events arriving after ``after_position`` (see ``last_position``) as they are
    committed (by any process, to any actor's chain), forever or until ``stop`` (a
    threading.Event) is set. ``PRAGMA data_version`` tells cheaply when another connection
    wrote, so an idle follower costs almost nothing."""
    import time

    last = after_position
    version = None
    while stop is None or not stop.is_set():
        current = conn.execute("PRAGMA data_version").fetchone()[0]
        if current != version:
            version = current
            # the newest position is read before the events: what is committed between the two
            # is beyond it, so moving the cursor to it never skips an event
            top = last_position(conn)
            for event in read(conn, after_position=last, **filters):
                last = event.position
                yield event
            last = max(last, top)  # events filtered out still move the cursor on
        time.sleep(poll)


def last_position(conn: sqlite3.Connection) -> int:
    """The position (local arrival order) of the last event stored, 0 when there is none."""
    return conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]


def last_seq(conn: sqlite3.Connection) -> int:
    """The highest seq of this node's own chain (0 when it has none)."""
    actor = _stored_node_id(conn)
    if actor is None:
        return 0
    return conn.execute("SELECT coalesce(max(seq), 0) FROM events WHERE actor = ?", (actor,)).fetchone()[0]


@dataclass
class Verdict:
    """The result of ``verify``: ok, how many entries were checked, and the first problem (its
    seq and, when it is not this node's own chain, its actor)."""

    ok: bool
    checked: int
    seq: int | None = None
    problem: str | None = None
    actor: str | None = None
    chains: int = 0
    signed_now: bool = False  # this node's head had no signature yet (an upgraded log) and got one


def _walk(rows: Iterable[tuple], anchor_seq: int, anchor_hash: str, mark: int) -> tuple[int, str, int, str | None, tuple | None]:
    """Check one chain's entries in seq order from its anchor: (last seq, last hash, entries
    checked, the hash at seq ``mark`` if reached, None), or the same with (seq, problem) at the
    first broken link."""
    prev_seq, prev_hash, checked, marked = anchor_seq, anchor_hash, 0, None
    for seq, eid, when, subject, etype, actor, corr, data_json, p, h in rows:
        if seq != prev_seq + 1:
            return prev_seq, prev_hash, checked, marked, (seq, f"seq {seq} follows seq {prev_seq}: entries between them are missing or were inserted")
        if p != prev_hash:
            return prev_seq, prev_hash, checked, marked, (seq, f"seq {seq} does not link to the entry before it (prev_hash differs): an entry was removed, inserted or moved")
        if entry_hash(p, seq, eid, when, subject, etype, actor, corr, data_json) != h:
            return prev_seq, prev_hash, checked, marked, (seq, f"seq {seq} was modified (its hash does not match its content)")
        prev_seq, prev_hash = seq, h
        if seq == mark:
            marked = h
        checked += 1
    return prev_seq, prev_hash, checked, marked, None


def _head_problem(head: Head | None, last_seq: int, last_hash: str, marked: str | None, local: bool,
                  key: Any) -> tuple[int, str] | None:
    """Whether a chain that verified up to (last_seq, last_hash), with ``marked`` the hash it has
    at its head's seq, agrees with its recorded head: another actor's chain ends exactly there;
    this node's passes through its signed head (the entries after it were appended since the last
    signature) and the head's signature holds under the node's key."""
    if head is None:
        if last_seq == 0:
            return None
        return last_seq, "the chain has no recorded head: its head was removed, or its entries were written around Tessera"
    if last_seq < head.seq:
        return last_seq + 1, (f"the chain ends at seq {last_seq} but its head is at seq {head.seq}: "
                              f"entries after seq {last_seq} were removed")
    if not local and last_seq > head.seq:
        return head.seq + 1, f"seq {head.seq + 1} and after are beyond the chain's head (seq {head.seq}): they were added around Tessera"
    at_head = marked if head.seq > head.anchor_seq else head.anchor_hash if head.seq == head.anchor_seq else head.hash
    if at_head != head.hash:
        return head.seq, (f"seq {head.seq}'s hash differs from the chain's {'signed ' if local else ''}head: "
                          "the history was rewritten")
    if not local:
        return None
    if head.signature is None:
        if key is None:
            return None  # a log from before signed heads: verify signs it once the chain holds
        return head.seq, "the head has no signature, though this node has a key to sign with: its signature was removed"
    if key is None:
        return head.seq, "the node key is missing, so the signed head cannot be checked (restore the .key file beside the store)"
    mine = node_key.public_key_hex(key)
    if head.public_key != mine:
        return head.seq, "the head was signed by another key than this node's"
    if not node_key.signature_valid(mine, head_message(head.actor, head.seq, head.hash, head.time or ""), head.signature or ""):
        return head.seq, "the head's signature does not match it: the head was changed after it was signed"
    return None


def verify(conn: sqlite3.Connection, *, sign: bool = True) -> Verdict:
    """Walk every actor's chain in seq order from its anchor (this node's own chain first); the
    first broken link is named by seq (and actor).

    Detects: a modified entry (its hash does not recompute), a deleted one (a gap in seq, or the
    next entry's prev_hash no longer matches), an inserted one and a reordering (prev_hash or
    seq out of line), a chain that does not reach its recorded head (a cut tail) or no longer
    holds the head's hash there (a history rewritten with recomputed hashes) and, on this node's
    chain, a head whose signature does not hold under the node's key. Once this node's chain has
    verified, its end is signed as its head (``signed_now`` when the head had no signature yet: a
    log upgraded from before signed heads), unless ``sign`` is False (a check that must write
    nothing, such as tessera doctor; it never makes a node key either).
    """
    local = _stored_node_id(conn)
    recorded = heads(conn)
    actors = [a for (a,) in conn.execute("SELECT DISTINCT actor FROM events")]
    order = sorted(set(actors) | set(recorded), key=lambda a: (a != local, a))
    key = _node_key(conn, create=False) if local in recorded else None
    checked = 0
    local_end = None
    for actor in order:
        head = recorded.get(actor)
        rows = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE actor = ? ORDER BY seq", (actor,))
        last_seq_, last_hash, n, marked, broken = _walk(rows, head.anchor_seq if head else 0,
                                                        head.anchor_hash if head else GENESIS, head.seq if head else -1)
        checked += n
        shown = None if actor == local else actor
        if broken:
            return Verdict(False, checked, broken[0], broken[1], shown, len(order))
        problem = _head_problem(head, last_seq_, last_hash, marked, actor == local, key)
        if problem:
            return Verdict(False, checked, problem[0], problem[1], shown, len(order))
        if actor == local and head is not None and (last_seq_ > head.seq or head.signature is None):
            local_end = (head, last_seq_, last_hash)
    signed_now = sign and local_end is not None and _sign_verified_end(conn, *local_end)
    return Verdict(True, checked, chains=len(order), signed_now=signed_now)


def _sign_verified_end(conn: sqlite3.Connection, head: Head, seq: int, h: str) -> bool:
    """Sign the end of this node's chain once verify has walked it. Returns whether the head had
    no signature before (trust on first use: what was in the log before signed heads existed is
    taken as it was)."""
    from tessera.core.store.db import transaction

    from tessera.core.store.db import StoreError

    key = _node_key(conn)
    when = conn.execute("SELECT time FROM events WHERE actor = ? AND seq = ?", (head.actor, seq)).fetchone()
    try:
        with transaction(conn):
            signed = _sign_end(conn, key, head.actor, seq, h, when[0] if when else head.time or now(), new_chain=False)
    except StoreError:  # a read-only or locked store is verified all the same, its end left unsigned
        return False
    return signed and head.signature is None


def checkpoint(conn: sqlite3.Connection) -> dict[str, Any]:
    """This node's signed chain head (actor, seq, hash, time, signature, public_key), to keep
    somewhere the node cannot change, for ``check_against``. The whole log is verified first,
    and its end signed: a checkpoint vouches for everything before it.

    Raises:
        TesseraError when the log does not verify.
    """
    from tessera.core.store.db import transaction

    actor = node_id(conn)
    verdict = verify(conn)
    if not verdict.ok:
        raise verdict_error(verdict)
    head = heads(conn).get(actor)
    if head is None:  # nothing appended yet: the chain is empty and its head is the genesis
        key = _node_key(conn)
        with transaction(conn):
            _sign_end(conn, key, actor, 0, GENESIS, now(), new_chain=True)
        head = heads(conn)[actor]
    return head.checkpoint()


def verdict_error(verdict: Verdict) -> TesseraError:
    """The one-line error for a log that does not verify."""
    where = f"seq {verdict.seq}" + (f" of actor {verdict.actor}" if verdict.actor else "")
    return TesseraError(f"event log broken at {where}: {verdict.problem} ({verdict.checked} entries before it are intact)")


def parse_checkpoint(text: str, *, where: str) -> dict[str, Any]:
    """A checkpoint as ``events checkpoint`` printed it, its fields checked and its signature
    checked under the public key it names.

    Raises:
        InputError when it is not a checkpoint; TesseraError when its signature does not hold.
    """
    hint = "give the file `tessera events checkpoint` wrote"
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{where} is not a checkpoint: not JSON ({str(exc).split(':')[0]})", hint=hint) from None
    if not isinstance(value, dict):
        raise InputError(f"{where} is not a checkpoint: not a JSON object", hint=hint)
    for name, valid in (("actor", lambda v: isinstance(v, str) and v),
                        ("seq", lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63),
                        ("hash", lambda v: isinstance(v, str) and _HEX64.fullmatch(v)),
                        ("time", lambda v: isinstance(v, str)),
                        ("signature", lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{128}", v)),
                        ("public_key", lambda v: isinstance(v, str) and _HEX64.fullmatch(v))):
        if name not in value:
            raise InputError(f"{where} is not a checkpoint: it has no {name}", hint=hint)
        if not valid(value[name]):
            raise InputError(f"{where} is not a checkpoint: its {name} is not valid", hint=hint)
    if not node_key.signature_valid(value["public_key"], head_message(value["actor"], value["seq"], value["hash"], value["time"]),
                                    value["signature"]):
        raise TesseraError(f"the checkpoint {where} has a bad signature: it was changed after it was signed",
                           hint="use an untouched copy of the checkpoint")
    return value


def check_against(conn: sqlite3.Connection, point: Mapping[str, Any], *, where: str) -> None:
    """Whether the log still reaches a checkpoint (from ``parse_checkpoint``): its actor's chain
    holds an entry at the checkpoint's seq with the checkpoint's hash. Catches a cut tail or a
    rewritten history even when whoever did it held the node key and re-signed the head.

    Raises:
        TesseraError saying how the log and the checkpoint differ.
    """
    actor, seq, h = point["actor"], point["seq"], point["hash"]
    local = _stored_node_id(conn)
    whose = "this node's chain" if actor == local else f"the chain of actor {actor}"
    if actor == local:
        key = _node_key(conn, create=False)
        if key is None or node_key.public_key_hex(key) != point["public_key"]:
            raise TesseraError(f"the checkpoint {where} was signed by another key than this node's: "
                               "the node key was replaced since, or the checkpoint is another store's",
                               hint="check against a checkpoint this store wrote")
    head = heads(conn).get(actor)
    last = conn.execute("SELECT max(seq) FROM events WHERE actor = ?", (actor,)).fetchone()[0]
    end = last if last is not None else head.anchor_seq if head else 0
    if seq > end:
        raise TesseraError(f"the log does not reach the checkpoint {where}: {whose} ends at seq {end}, the checkpoint "
                           f"is at seq {seq}: entries were removed from its tail",
                           hint="restore the store from a backup taken after the checkpoint")
    if head is not None and seq < head.anchor_seq:
        raise TesseraError(f"the checkpoint {where} is at seq {seq}, which was pruned: {whose} now starts after "
                           f"seq {head.anchor_seq}, so it cannot be checked", hint="check against a newer checkpoint")
    if head is not None and seq == head.anchor_seq:
        found = head.anchor_hash
    elif seq == 0:
        found = GENESIS
    else:
        row = conn.execute("SELECT hash FROM events WHERE actor = ? AND seq = ?", (actor, seq)).fetchone()
        found = row[0] if row else None
    if found != h:
        raise TesseraError(f"the log differs from the checkpoint {where}: {whose} has "
                           f"{'no entry' if found is None else 'another hash'} at seq {seq}: the history was rewritten",
                           hint="restore the store from a backup taken after the checkpoint")


def prune(conn: sqlite3.Connection, *, older_than: str) -> int:
    """Delete events with time before ``older_than`` (a stored time), keeping every chain
    verifiable.

    Only a prefix of each actor's chain is removed (up to its first entry that is not old
    enough), and its last removed entry's (seq, hash) becomes the anchor ``verify`` starts that
    chain from. Heads are left as they are: a chain pruned whole still ends at its head. Entries
    of an actor with no recorded head (written around Tessera; ``verify`` reports them) are kept.

    Returns:
        how many entries were removed.
    """
    from tessera.core.store.db import transaction

    removed = 0
    with transaction(conn):
        for head in heads(conn).values():
            actor = head.actor
            first_young = conn.execute("SELECT min(seq) FROM events WHERE actor = ? AND time >= ?",
                                       (actor, older_than)).fetchone()[0]
            if first_young is None:  # all of it is old (this node's end may be past its signed head)
                first_young = (conn.execute("SELECT max(seq) FROM events WHERE actor = ?", (actor,)).fetchone()[0] or 0) + 1
            last = conn.execute("SELECT seq, hash FROM events WHERE actor = ? AND seq < ? ORDER BY seq DESC LIMIT 1",
                                (actor, first_young)).fetchone()
            if last is None:
                continue
            removed += conn.execute("DELETE FROM events WHERE actor = ? AND seq < ?", (actor, first_young)).rowcount
            conn.execute("UPDATE event_chains SET anchor_seq = ?, anchor_hash = ? WHERE actor = ?", (last[0], last[1], actor))
    return removed
