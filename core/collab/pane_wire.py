"""The wire format of owner-run panes (``collab_pane`` data): one pane's state as a msgpack map.

A cell run at the owner for its peers reaches them as a first **snapshot** (every row, keyed as
keyed_rows keys them) and then as **changes** (added / removed / changed rows, as diff_rows gives
them): a 10,000-row pane where one pod changed costs one row on the wire, not 10,000.

``PaneEncoder`` (owner side) turns each new PaneState of a cell into a message, keeping what the
viewers were last sent; ``PaneAssembler`` (viewer side) rebuilds a Result from the messages.
Decoding is strict: a message that is not exactly the shape below is a PaneWireError, one line,
which the viewer shows in that pane, never a crash.

Every message is at most PANE_INLINE_LIMIT bytes. A snapshot too big for that is stored as a
**blob** (core/blobs/) by the encoder's ``store_blob`` (the owner's feed: granted to the room's
viewers) and a small "blob" message names it; the viewer fetches the blob from the owner
(verified chunk by chunk), and its content, the snapshot message itself, is applied as if it had
come inline (``PaneAssembler.apply_blob``). Messages arriving meanwhile are held and applied after
it, so changes that fit one message follow a blob snapshot as they follow an inline one. Only a
snapshot over MAX_PANE_BLOB_BYTES (or one the owner could not store) still goes truncated (the
first rows that fit, ``truncated`` set, ``total`` the real count, ``why`` the reason), which the
pane says; after a truncated snapshot each change is sent as a snapshot again (the viewer holds
only part of the rows, so a diff could not apply).

Message fields: ``v`` 1; ``kind`` "snapshot" | "changes" | "status" | "blob"; ``seq``, the cell's
message number (a late joiner's snapshot carries the number of the last message, so changes
that do not follow what a viewer holds are noticed: OutOfStep); ``status``, ``error``,
``fault``, ``refreshed``, ``sources`` as in PaneState; snapshot: ``columns`` (list of str),
``rows`` ([[key, row], ...]), ``truncated`` (bool), ``total`` (int); changes: ``columns``,
``changes`` ([[op, key, row], ...]) and, when rows moved (a sorted result), ``order`` (every key);
blob: ``blob`` (its id), ``size`` (its bytes), ``total`` (its rows). A status message carries no
rows (the pane is starting, failing or paused: its last rows stay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import re
from typing import Any, Callable

from tessera.core.errors import InputError

PANE_INLINE_LIMIT = 1024 * 1024
# The largest snapshot sent whole as a blob; a bigger one goes truncated. Bounds the owner's disk
# (one blob per cell) and what a viewer fetches and holds in memory for one pane.
MAX_PANE_BLOB_BYTES = 64 * 1024 * 1024
MAX_HELD = 10_000  # messages held for a cell while its blob snapshot is fetched
WIRE_VERSION = 1
KINDS = ("snapshot", "changes", "status", "blob")
STATUSES = ("starting", "live", "idle", "paused", "error", "reconnecting", "static")
OPS = ("added", "removed", "changed")
# Room kept in a message for everything but its rows (status, error text, columns, framing).
_HEAD_ROOM = 64 * 1024
_BLOB_ID = re.compile(r"[0-9a-f]{64}")

StoreBlob = Callable[[str, bytes], str]  # (cell id, a snapshot message) -> its blob id


class PaneWireError(InputError):
    """A pane message that is not what pane_wire sends (one line, for the pane)."""


class OutOfStep(PaneWireError):
    """Row changes that do not apply to the rows this viewer holds (a message missed, or none
    before them): the viewer asks for the pane again (``collab_run``: the owner's feed then
    sends it as a snapshot)."""


def _pack(message: dict) -> bytes:
    import msgpack

    try:
        return msgpack.packb(message, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        # A value msgpack cannot carry (rows are JSON-able, but a plugin may hand out a date):
        # its JSON text goes instead, as notebook run -o json prints it.
        import json

        return msgpack.packb(json.loads(json.dumps(message, default=str)), use_bin_type=True)


def _head(state: Any) -> dict:
    return {"v": WIRE_VERSION, "status": state.status, "error": state.error, "fault": state.fault,
            "refreshed": state.refreshed, "sources": list(state.sources)}


class PaneEncoder:
    """The owner's side: what each cell's viewers were last sent, and the next message.

    Args:
        limit: the largest message (PANE_INLINE_LIMIT; tests pass less).
        store_blob: stores a snapshot over ``limit`` as a blob, returning its id (the feed's:
            granted to the viewers, the cell's previous one removed); None, or one that raises,
            and such a snapshot goes truncated.
        blob_limit: the largest snapshot sent as a blob (MAX_PANE_BLOB_BYTES).
    """

    def __init__(self, limit: int = PANE_INLINE_LIMIT, *, store_blob: StoreBlob | None = None,
                 blob_limit: int = MAX_PANE_BLOB_BYTES):
        self.limit = limit
        self.store_blob = store_blob
        self.blob_limit = blob_limit
        self._sent: dict[str, tuple[list[str], dict[str, dict]] | None] = {}
        self._seq: dict[str, int] = {}  # per cell: the number of the last message made

    def forget(self, cell_id: str) -> None:
        """The next message of the cell is a snapshot (it is gone, or a viewer lost step)."""
        self._sent.pop(cell_id, None)

    def encode(self, cell_id: str, state: Any) -> bytes:
        """The message for ``state`` (a PaneState of cell ``cell_id``): a status message while it
        has no result, a snapshot at first (or when its columns changed), else its changes."""
        from tessera.core.times import now
        from tessera.core.watch.live_query import diff_rows, keyed_rows

        seq = self._seq[cell_id] = self._seq.get(cell_id, 0) + 1
        if state.result is None:
            return _pack({**_head(state), "kind": "status", "seq": seq})
        columns = [str(c) for c in state.result.columns]
        rows = keyed_rows(state.result)
        last = self._sent.get(cell_id)
        if last is not None and last[0] == columns:
            changes = diff_rows(last[1], rows, now())
            message = {**_head(state), "kind": "changes", "seq": seq, "columns": columns,
                       "changes": [[c["op"], c["key"], c["row"]] for c in changes]}
            if list(_applied(last[1], message["changes"])) != list(rows):
                message["order"] = list(rows)  # a sorted result moved rows about: the viewer follows
            data = _pack(message)
            if len(data) <= self.limit:
                self._sent[cell_id] = (columns, rows)
                return data
        data, self._sent[cell_id] = self._snapshot(cell_id, state, seq)
        return data

    def snapshot(self, cell_id: str, state: Any) -> bytes:
        """Every row of ``state`` (as many as fit: then flagged truncated) as the message last
        made for the cell, for a viewer joining late: the changes made after it apply to it.
        Nothing is changed (what the other viewers were sent stays)."""
        return self._snapshot(cell_id, state, self._seq.get(cell_id, 0))[0]

    def _snapshot(self, cell_id: str, state: Any, seq: int) -> tuple[bytes, Any]:
        """(the snapshot message, or the blob message naming it; what the viewer then holds:
        None when truncated)."""
        from tessera.core.watch.live_query import keyed_rows

        if state.result is None:
            return _pack({**_head(state), "kind": "status", "seq": seq}), None
        columns = [str(c) for c in state.result.columns]
        rows = keyed_rows(state.result)
        message = {**_head(state), "kind": "snapshot", "seq": seq, "columns": columns,
                   "rows": [[k, r] for k, r in rows.items()], "truncated": False, "total": len(rows)}
        data = _pack(message)
        if len(data) <= self.limit:
            return data, (columns, rows)
        why = f"the owner's result is {_mib(len(data))}, over the {_mib(self.blob_limit)} a pane sends whole"
        if self.store_blob is not None and len(data) <= self.blob_limit:
            try:
                blob_id = self.store_blob(cell_id, data)
            except Exception as exc:  # the owner's disk full, its store busy: the rows that fit still go
                why = f"the owner could not store the whole result ({_mib(len(data))}) to send: {str(exc)[:120]}"
            else:
                return _pack({**_head(state), "kind": "blob", "seq": seq, "blob": blob_id, "size": len(data),
                              "total": len(rows)}), (columns, rows)
        kept, size = [], len(_pack({**message, "rows": []})) + _HEAD_ROOM
        for pair in message["rows"]:
            size += len(_pack({"r": pair}))
            if size > self.limit:
                break
            kept.append(pair)
        # the viewer holds part of the rows: the next change is a snapshot again
        return _pack({**message, "rows": kept, "truncated": True, "why": why}), None


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


@dataclass
class PaneView:
    """What a viewer knows of one owner-run pane (from PaneAssembler)."""

    status: str = "starting"
    error: str | None = None
    fault: str | None = None
    refreshed: str | None = None
    sources: tuple[str, ...] = ()
    columns: list[str] = field(default_factory=list)
    rows: dict[str, dict] = field(default_factory=dict)
    truncated: bool = False
    total: int = 0
    has_rows: bool = False
    seq: int = 0
    why: str | None = None  # why it is truncated (the owner says)
    fetching: tuple[str, int, int] | None = None  # a blob snapshot under way: (id, bytes, seq)
    held: list[dict] = field(default_factory=list)  # messages after it, applied once it is here

    def result(self) -> Any:
        """The rows as a Result (keys kept, so a viewer's live row changes match the owner's)."""
        from tessera.core.result import Result

        if not self.has_rows:
            return None
        warnings = []
        if self.truncated:
            warnings.append(f"showing {len(self.rows)} of {self.total} rows: "
                            f"{self.why or 'the owner result is too big to send whole'}")
        return Result(columns=list(self.columns), rows=list(self.rows.values()), keys=list(self.rows), warnings=warnings)


def _want(cond: bool, what: str) -> None:
    if not cond:
        raise PaneWireError(f"a pane update from the owner is malformed: {what}",
                            hint="the owner may run another Tessera version; ask them to upgrade")


def _opt_str(message: dict, key: str) -> str | None:
    value = message.get(key)
    _want(value is None or isinstance(value, str), f"'{key}' is not text")
    return value


def decode(data: bytes, *, limit: int = PANE_INLINE_LIMIT) -> dict:
    """One pane message, checked field by field.

    Args:
        limit: its largest size (a blob's content, a snapshot, is bounded by MAX_PANE_BLOB_BYTES).
    Raises:
        PaneWireError for anything but a message PaneEncoder makes (bad msgpack, trailing
        bytes, a missing or mistyped field, an unknown kind, status or op).
    """
    import msgpack

    _want(isinstance(data, (bytes, bytearray)), "not bytes")
    _want(len(data) <= limit, f"{len(data)} bytes, over the {limit}-byte limit")
    try:
        message = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises a handful of types for bad bytes; each is the same refusal
        raise PaneWireError(f"a pane update from the owner is not readable ({type(exc).__name__})",
                            hint="the owner may run another Tessera version; ask them to upgrade") from None
    _want(isinstance(message, dict), "not a map")
    _want(message.get("v") == WIRE_VERSION, f"version {message.get('v')!r}, not {WIRE_VERSION}")
    _want(message.get("kind") in KINDS, f"unknown kind {message.get('kind')!r}")
    _want(message.get("status") in STATUSES, f"unknown status {message.get('status')!r}")
    for key in ("error", "fault", "refreshed"):
        _opt_str(message, key)
    sources = message.get("sources", [])
    _want(isinstance(sources, list) and all(isinstance(s, str) for s in sources), "'sources' is not a list of text")
    _want(isinstance(message.get("seq"), int) and message["seq"] >= 0, "'seq' is not a message number")
    kind = message["kind"]
    if kind == "status":
        return message
    if kind == "blob":
        _want(isinstance(message.get("blob"), str) and _BLOB_ID.fullmatch(message["blob"]) is not None,
              "'blob' is not a blob id")
        _want(isinstance(message.get("size"), int) and 0 < message["size"] <= MAX_PANE_BLOB_BYTES,
              f"'size' is not a size of at most {MAX_PANE_BLOB_BYTES} bytes")
        _want(isinstance(message.get("total"), int) and message["total"] >= 0, "'total' is not a count")
        return message
    columns = message.get("columns")
    _want(isinstance(columns, list) and all(isinstance(c, str) for c in columns), "'columns' is not a list of text")
    if kind == "snapshot":
        rows = message.get("rows")
        _want(isinstance(rows, list), "'rows' is not a list")
        for pair in rows:
            _want(isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], dict),
                  "a row is not [key, row]")
        _want(isinstance(message.get("truncated"), bool), "'truncated' is not true or false")
        _want(isinstance(message.get("total"), int) and message["total"] >= len(rows), "'total' is not a count")
        _opt_str(message, "why")
        return message
    changes = message.get("changes")
    _want(isinstance(changes, list), "'changes' is not a list")
    order = message.get("order")
    _want(order is None or (isinstance(order, list) and all(isinstance(k, str) for k in order)),
          "'order' is not a list of keys")
    for change in changes:
        _want(isinstance(change, list) and len(change) == 3 and change[0] in OPS and isinstance(change[1], str)
              and isinstance(change[2], dict), "a change is not [op, key, row]")
    return message


def read_blob(data: bytes) -> dict:
    """A pane blob's content: one snapshot message, checked as ``decode`` checks an inline one
    (bounded by MAX_PANE_BLOB_BYTES).

    Raises:
        PaneWireError.
    """
    message = decode(data, limit=MAX_PANE_BLOB_BYTES)
    _want(message["kind"] == "snapshot", "its result blob is not a snapshot")
    return message


def _applied(rows: dict[str, dict], changes: list[list]) -> dict[str, dict]:
    """``rows`` after ``changes`` ([op, key, row]); new rows go last."""
    out = dict(rows)
    for op, key, row in changes:
        if op == "removed":
            out.pop(key, None)
        else:
            out[key] = row
    return out


class PaneAssembler:
    """The viewer's side: each cell's PaneView, rebuilt from the owner's messages.

    A "blob" message leaves the view as it was, with ``fetching`` set: the caller fetches the
    blob and hands its bytes to ``apply_blob`` (or calls ``blob_failed``); messages arriving
    meanwhile are held and applied after the blob's snapshot, and a newer snapshot (inline or
    blob) supersedes the fetch.
    """

    def __init__(self) -> None:
        self.views: dict[str, PaneView] = {}

    def apply(self, cell_id: str, data: bytes) -> PaneView:
        """Decode and apply one message; returns the cell's view.

        Raises:
            PaneWireError for a malformed message, or changes before the cell's first snapshot
            (the view is left as it was).
        """
        message = decode(data)
        old = self.views.get(cell_id) or PaneView()
        if old.fetching is not None and message["kind"] not in ("snapshot", "blob"):
            if len(old.held) >= MAX_HELD:  # the fetch is far behind: start again from a new snapshot
                self.views[cell_id] = _replace(old, fetching=None, held=[])
                raise OutOfStep("too many pane updates came while its whole result was fetched; "
                                "asked for the whole pane again", hint="it comes with the cell's next run")
            old.held.append(message)
            return old
        view = _step(old, message)
        self.views[cell_id] = view
        return view

    def apply_blob(self, cell_id: str, blob_id: str, message: dict) -> PaneView | None:
        """The content of the cell's blob ``blob_id``, read with ``read_blob`` (outside any lock:
        it may be 64 MiB): its snapshot applied, then the messages held meanwhile. None when that
        blob is no longer the one awaited (superseded).

        Raises:
            PaneWireError when the content is not the snapshot announced (the wait is over
            either way), OutOfStep when a held message does not follow it.
        """
        old = self.views.get(cell_id)
        if old is None or old.fetching is None or old.fetching[0] != blob_id:
            return None
        _, _, seq = old.fetching
        waiting = _replace(old, fetching=None, held=[])
        self.views[cell_id] = waiting
        _want(message["kind"] == "snapshot" and not message["truncated"] and message["seq"] == seq,
              "its result blob is not the snapshot it was announced as")
        view = _step(waiting, message)
        self.views[cell_id] = view
        for held in old.held:
            view = _step(view, held)
            self.views[cell_id] = view
        return view

    def blob_failed(self, cell_id: str, blob_id: str) -> bool:
        """The fetch of ``blob_id`` failed: the view stops waiting for it (the messages held are
        dropped: the next snapshot recovers). False when it was superseded already."""
        old = self.views.get(cell_id)
        if old is None or old.fetching is None or old.fetching[0] != blob_id:
            return False
        self.views[cell_id] = _replace(old, fetching=None, held=[])
        return True


def _replace(view: PaneView, **changes: Any) -> PaneView:
    from dataclasses import replace

    return replace(view, **changes)


def _step(old: PaneView, message: dict) -> PaneView:
    """``old`` after one decoded message (a new view; ``old`` is not changed).

    Raises:
        OutOfStep for changes that do not follow ``old``.
    """
    view = PaneView(status=message["status"], error=message.get("error"), fault=message.get("fault"),
                    refreshed=message.get("refreshed"), sources=tuple(message.get("sources", [])),
                    columns=old.columns, rows=old.rows, truncated=old.truncated, total=old.total,
                    has_rows=old.has_rows, seq=message["seq"], why=old.why)
    kind = message["kind"]
    if kind == "snapshot":
        view.columns = message["columns"]
        view.rows = {k: r for k, r in message["rows"]}
        view.truncated, view.total, view.has_rows = message["truncated"], message["total"], True
        view.why = message.get("why")
    elif kind == "blob":
        view.seq = old.seq  # the blob's snapshot carries the message number
        view.fetching = (message["blob"], message["size"], message["seq"])
    elif kind == "changes":
        if not old.has_rows or old.truncated or message["seq"] != old.seq + 1:
            raise OutOfStep("a pane update from the owner does not follow the last one this pane has; "
                            "asked for the whole pane again", hint="it comes with the cell's next run")
        rows = _applied(old.rows, message["changes"])
        if message.get("order") is not None:
            _want(set(message["order"]) == set(rows), "'order' does not list the rows")
            rows = {k: rows[k] for k in message["order"]}
        view.columns, view.rows, view.total = message["columns"], rows, len(rows)
    return view
