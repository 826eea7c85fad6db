"""Recordings: a cluster's initial state plus its watch events, as JSON lines (format ``tessera/1``).

Line 1 is a header ``{"recording": "tessera/1", "context": NAME, "started": TIME}``; every other
line is an event ``{"ts": TIME, "type": "ADDED"|"MODIFIED"|"DELETED", "object": {...}}``. The
initial list is written as ADDED events at ``started``. A name ending in ``.gz`` means gzip.
See docs/recordings.md.
"""

from __future__ import annotations

import bisect
import gzip
import io
import os
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

import orjson

from tessera.core.errors import InputError, QueryError, SourceUnavailable
from tessera.core.private_files import open_private
from tessera.core.times import format_time

FORMAT = "tessera/1"
EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED")

# (API group, kind, namespace, name); the namespace is "" for cluster-scoped objects.
Key = tuple[str, str, str, str]
Event = tuple[datetime, str, dict[str, Any]]

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


# --- time ---------------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (``2026-11-01T09:05:00Z``, ``...05.250+01:00``) as an aware UTC datetime.

    Args:
        text: the time as written; the offset (``Z`` or ``+hh:mm``) is required.
    Returns:
        the time in UTC (fractional seconds beyond microseconds are dropped).
    Raises:
        QueryError naming the text when it is not an RFC 3339 time.
    """
    m = _RFC3339.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise _bad_time(text)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, offset = m.group(7), m.group(8)
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    if offset in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise _bad_time(text)
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    # RFC 3339 allows a leap second (:60); datetime does not, so it folds into the next second.
    leap = second == 60
    try:
        dt = datetime(year, month, day, hour, minute, 59 if leap else second, micro, tzinfo=tz)
    except ValueError:
        raise _bad_time(text) from None
    if leap:
        dt += timedelta(seconds=1)
    return dt.astimezone(timezone.utc)


def _bad_time(text: Any) -> QueryError:
    return QueryError(
        f"AT: '{text}' is not an RFC 3339 time",
        hint="write a UTC time like 2026-11-01T09:05:00Z or one with an offset like 2026-11-01T10:05:00+01:00",
    )


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


# --- keys ---------------------------------------------------------------------------------


def group_of(api_version: str) -> str:
    """The API group of an apiVersion (``apps/v1`` -> ``apps``, ``v1`` -> ``""``)."""
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def object_key(obj: dict[str, Any]) -> Key:
    """The identity of an object across events: (API group, kind, namespace or "", name)."""
    meta = obj.get("metadata") or {}
    return (
        group_of(str(obj.get("apiVersion", ""))),
        str(obj.get("kind", "")),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )


# --- writing ------------------------------------------------------------------------------


class RecordingWriter:
    """Writes a recording line by line, flushing each, so a killed recorder leaves a readable prefix.

    Args:
        path_or_stream: a path (created 0600: a recording holds cluster data; gzip when it ends
            in ``.gz``; the gzip header carries no name and mtime 0, so equal content gives
            equal bytes) or an open stream (text or binary).
        context: the kube context (or other name) recorded.
        started: when the recording starts (default now); the header's ``started``.
    """

    def __init__(self, path_or_stream: str | Path | IO[Any], context: str, started: datetime | None = None):
        self.context = context
        self.started = _utc(started) if started is not None else datetime.now(timezone.utc)
        self._owned: list[Any] = []
        if isinstance(path_or_stream, (str, Path)):
            path = Path(path_or_stream)
            try:
                raw = open_private(path, "wb")
            except OSError as exc:
                raise SourceUnavailable(f"cannot write {path}: {exc.strerror}") from None
            self._owned.append(raw)
            if path.name.endswith(".gz"):
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                self._owned.insert(0, gz)
                self._stream: Any = gz
            else:
                self._stream = raw
            self._text = False
        else:
            self._stream = path_or_stream
            self._text = isinstance(path_or_stream, io.TextIOBase)
        self._closed = False
        self._line({"recording": FORMAT, "context": context, "started": format_time(self.started)})

    def _line(self, doc: dict[str, Any]) -> None:
        data = orjson.dumps(doc) + b"\n"
        self._stream.write(data.decode() if self._text else data)
        self._stream.flush()

    def write(self, type: str, obj: dict[str, Any], ts: datetime | None = None) -> None:
        """Append one event.

        Args:
            type: ADDED, MODIFIED or DELETED.
            obj: the full object (apiVersion, kind, metadata...).
            ts: when it happened (default now).
        Raises:
            ValueError for an unknown type or a write after close.
        """
        if self._closed:
            raise ValueError("recording is closed")
        if type not in EVENT_TYPES:
            raise ValueError(f"event type must be one of {', '.join(EVENT_TYPES)}, not {type!r}")
        when = _utc(ts) if ts is not None else datetime.now(timezone.utc)
        self._line({"ts": format_time(when), "type": type, "object": obj})

    def close(self) -> None:
        """Finish the file (closes streams the writer opened; a passed-in stream stays open)."""
        if self._closed:
            return
        self._closed = True
        for stream in self._owned:
            stream.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --- reading ------------------------------------------------------------------------------


@dataclass
class Recording:
    """A loaded recording.

    header: the first line as read; events: (ts, type, object) in time order; start: the header's
    ``started``; end: the last event's time (``start`` when there are none); path: where it came from.
    """

    header: dict[str, Any]
    events: list[Event]
    start: datetime
    end: datetime
    path: str = ""
    _times: list[datetime] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._times = [ts for ts, _, _ in self.events]

    @property
    def context(self) -> str:
        """The recorded context's name."""
        return str(self.header.get("context") or "")

    @property
    def duration(self) -> float:
        """Seconds from start to the last event."""
        return (self.end - self.start).total_seconds()

    def count_at(self, when: datetime) -> int:
        """How many events have ts <= ``when`` (events[:n] make up the state at ``when``)."""
        return bisect.bisect_right(self._times, _utc(when))


def load_recording(path: str | Path) -> Recording:
    """Read a recording file (plain or ``.gz``).

    Args:
        path: the file.
    Returns:
        the Recording, its events in time order (a stable sort, so same-time events keep file order).
    Raises:
        SourceUnavailable when the file is missing or unreadable; InputError (``path:line: what``)
        for a missing or unknown header or a bad event line. A truncated last line, as a recorder
        killed mid-write leaves, is dropped silently.
    """
    from tessera.core.config import max_input_bytes
    from tessera.core.inputs import read_path

    where = str(path)
    if not os.path.lexists(path):
        raise SourceUnavailable(
            f"no such recording: {where}", hint="record one with `tessera record`, or replay the bundled 'demo'"
        )
    limit = max_input_bytes()  # the file, and again what it inflates to (a gzip bomb is small on disk)
    data = read_path(path, limit=limit)
    if where.endswith(".gz") or data[:2] == b"\x1f\x8b":
        data = _gunzip(data, where, limit)
    return parse_recording(data, where)


def _gunzip(data: bytes, where: str, limit: int) -> bytes:
    """The decompressed members of ``data``, refused as soon as they pass ``limit`` bytes (a gzip
    bomb is small on disk), so memory never holds more than the limit."""
    from tessera.core.inputs import too_large

    # zlib rather than gzip.decompress: a recorder killed mid-write leaves a gzip stream with no
    # trailer, and we want everything that was flushed before that.
    out: list[bytes] = []
    total = 0
    rest = data
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = rest
        try:
            while pending:
                chunk = d.decompress(pending, limit - total + 1)
                out.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise too_large(f"{where} decompressed", limit, None)
                pending = d.unconsumed_tail
        except zlib.error as exc:
            if total:
                break
            raise InputError(f"{where}:1: not a gzip file ({exc})", hint="recordings are JSON lines, optionally gzipped") from None
        if not d.eof:
            break
        rest = d.unused_data
    return b"".join(out)


def parse_recording(data: bytes | str, where: str = "<recording>") -> Recording:
    """A Recording from the (uncompressed) file content.

    Args:
        data: the JSON lines.
        where: the file name, for error messages.
    Returns:
        the Recording.
    Raises:
        InputError (``where:line: what``), as load_recording.
    """
    from tessera.core.documents import check_json_depth

    raw = data.encode() if isinstance(data, str) else data
    lines = raw.split(b"\n")
    complete = raw.endswith(b"\n")
    last = len(lines) - 1
    header: dict[str, Any] | None = None
    start: datetime | None = None
    events: list[Event] = []
    for i, line in enumerate(lines):
        lineno = i + 1
        if not line.strip():
            continue
        try:
            check_json_depth(line, f"{where}:{lineno}", hint="fix or remove the line")  # orjson allows 1024 levels; output stops at 254
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if i == last and not complete:
                break  # truncated final line: the recorder was killed mid-write
            raise InputError(f"{where}:{lineno}: invalid JSON: {exc.msg}", hint="fix or remove the line") from None
        if header is None:
            header, start = _header(doc, where, lineno)
            continue
        events.append(_event(doc, where, lineno))
    if header is None or start is None:
        raise InputError(f"{where}:1: empty recording: no header line", hint=f'the first line must be {{"recording": "{FORMAT}", ...}}')
    events.sort(key=lambda e: e[0])
    end = max(start, events[-1][0]) if events else start
    return Recording(header=header, events=events, start=start, end=end, path=where)


def _header(doc: Any, where: str, lineno: int) -> tuple[dict[str, Any], datetime]:
    hint = f'the first line must be {{"recording": "{FORMAT}", "context": ..., "started": ...}}'
    if not isinstance(doc, dict) or "recording" not in doc:
        raise InputError(f"{where}:{lineno}: not a tessera recording: the header line is missing", hint=hint)
    if doc["recording"] != FORMAT:
        raise InputError(
            f"{where}:{lineno}: unsupported recording format {doc['recording']!r} (this tessera reads {FORMAT})",
            hint="upgrade tessera",
        )
    started = doc.get("started")
    try:
        start = parse_time(started) if isinstance(started, str) else None
    except QueryError:
        start = None
    if start is None:
        raise InputError(f"{where}:{lineno}: header 'started' must be an RFC 3339 time, got {started!r}", hint=hint)
    return doc, start


def _event(doc: Any, where: str, lineno: int) -> Event:
    hint = 'each event line is {"ts": TIME, "type": "ADDED|MODIFIED|DELETED", "object": {...}}'
    if not isinstance(doc, dict):
        raise InputError(f"{where}:{lineno}: an event must be a JSON object", hint=hint)
    ts_text, type_, obj = doc.get("ts"), doc.get("type"), doc.get("object")
    try:
        ts = parse_time(ts_text) if isinstance(ts_text, str) else None
    except QueryError:
        ts = None
    if ts is None:
        raise InputError(f"{where}:{lineno}: 'ts' must be an RFC 3339 time, got {ts_text!r}", hint=hint)
    if type_ not in EVENT_TYPES:
        raise InputError(f"{where}:{lineno}: unknown event type {type_!r}", hint=hint)
    if not isinstance(obj, dict) or not obj.get("kind") or not isinstance(obj.get("metadata"), dict):
        raise InputError(f"{where}:{lineno}: 'object' must be a resource with kind and metadata", hint=hint)
    if not obj["metadata"].get("name"):
        raise InputError(f"{where}:{lineno}: the object has no metadata.name", hint=hint)
    return ts, type_, obj


# --- state --------------------------------------------------------------------------------


def apply_event(state: dict[Key, dict[str, Any]], type: str, obj: dict[str, Any]) -> None:
    """Fold one event into ``state`` (ADDED/MODIFIED store the object, DELETED removes it)."""
    key = object_key(obj)
    if type == "DELETED":
        state.pop(key, None)
    else:
        state[key] = obj


def state_at(recording: Recording, when: datetime) -> dict[Key, dict[str, Any]]:
    """The objects that exist at ``when``: every event with ts <= ``when`` folded in order.

    Args:
        recording: a loaded recording.
        when: the instant (before the start gives an empty state, after the end the final one).
    Returns:
        {(group, kind, namespace or "", name): object}.
    """
    state: dict[Key, dict[str, Any]] = {}
    for _, type_, obj in recording.events[: recording.count_at(when)]:
        apply_event(state, type_, obj)
    return state
