"""The wire format of owner-run panes (``collab_pane`` data): one pane's state as a msgpack map.

A cell run at the owner for its peers reaches them as a first **snapshot** (every row, keyed as
keyed_rows keys them) and then as **changes** (added / removed / changed rows, as diff_rows gives
them): a 10,000-row pane where one pod changed costs one row on the wire, not 10,000.

``PaneEncoder`` (owner side) turns each new PaneState of a cell into a message, keeping what the
viewers were last sent; ``PaneAssembler`` (viewer side) rebuilds a Result from the messages.
Decoding is strict: a message that is not exactly the shape below is a PaneWireError, one line,
which the viewer shows in that pane, never a crash.

Every message is at most PANE_INLINE_LIMIT bytes. A result too big for that goes as a truncated
snapshot (the first rows that fit, ``truncated`` set and ``total`` the real count), which the pane
says, until large results move as blobs; after a truncated snapshot each change is sent as a
snapshot again (the viewer holds only part of the rows, so a diff could not apply).

Message fields: ``v`` 1; ``kind`` "snapshot" | "changes" | "status"; ``seq``, the cell's
message number (a late joiner's snapshot carries the number of the last message, so changes
that do not follow what a viewer holds are noticed: OutOfStep); ``status``, ``error``,
``fault``, ``refreshed``, ``sources`` as in PaneState; snapshot: ``columns`` (list of str),
``rows`` ([[key, row], ...]), ``truncated`` (bool), ``total`` (int); changes: ``columns``,
``changes`` ([[op, key, row], ...]) and, when rows moved (a sorted result), ``order`` (every key). A status message carries no rows (the pane is starting,
failing or paused: its last rows stay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tessera.core.errors import InputError

PANE_INLINE_LIMIT = 1024 * 1024
WIRE_VERSION = 1
KINDS = ("snapshot", "changes", "status")
STATUSES = ("starting", "live", "idle", "paused", "error", "reconnecting", "static")
OPS = ("added", "removed", "changed")
# Room kept in a message for everything but its rows (status, error text, columns, framing).
_HEAD_ROOM = 64 * 1024


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
    """

    def __init__(self, limit: int = PANE_INLINE_LIMIT):
        self.limit = limit
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
        data, self._sent[cell_id] = self._snapshot(state, seq)
        return data

    def snapshot(self, cell_id: str, state: Any) -> bytes:
        """Every row of ``state`` (as many as fit: then flagged truncated) as the message last
        made for the cell, for a viewer joining late: the changes made after it apply to it.
        Nothing is changed (what the other viewers were sent stays)."""
        return self._snapshot(state, self._seq.get(cell_id, 0))[0]

    def _snapshot(self, state: Any, seq: int) -> tuple[bytes, Any]:
        """(the snapshot message, what the viewer then holds: None when truncated)."""
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
        kept, size = [], len(_pack({**message, "rows": []})) + _HEAD_ROOM
        for pair in message["rows"]:
            size += len(_pack({"r": pair}))
            if size > self.limit:
                break
            kept.append(pair)
        # the viewer holds part of the rows: the next change is a snapshot again
        return _pack({**message, "rows": kept, "truncated": True}), None


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

    def result(self) -> Any:
        """The rows as a Result (keys kept, so a viewer's live row changes match the owner's)."""
        from tessera.core.result import Result

        if not self.has_rows:
            return None
        warnings = []
        if self.truncated:
            warnings.append(f"showing {len(self.rows)} of {self.total} rows: the owner's result is over "
                            f"{PANE_INLINE_LIMIT // (1024 * 1024)} MiB, too big to stream whole")
        return Result(columns=list(self.columns), rows=list(self.rows.values()), keys=list(self.rows), warnings=warnings)


def _want(cond: bool, what: str) -> None:
    if not cond:
        raise PaneWireError(f"a pane update from the owner is malformed: {what}",
                            hint="the owner may run another Tessera version; ask them to upgrade")


def _opt_str(message: dict, key: str) -> str | None:
    value = message.get(key)
    _want(value is None or isinstance(value, str), f"'{key}' is not text")
    return value


def decode(data: bytes) -> dict:
    """One pane message, checked field by field.

    Raises:
        PaneWireError for anything but a message PaneEncoder makes (bad msgpack, trailing
        bytes, a missing or mistyped field, an unknown kind, status or op).
    """
    import msgpack

    _want(isinstance(data, (bytes, bytearray)), "not bytes")
    _want(len(data) <= PANE_INLINE_LIMIT, f"{len(data)} bytes, over the {PANE_INLINE_LIMIT}-byte limit")
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
    """The viewer's side: each cell's PaneView, rebuilt from the owner's messages."""

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
        view = PaneView(status=message["status"], error=message.get("error"), fault=message.get("fault"),
                        refreshed=message.get("refreshed"), sources=tuple(message.get("sources", [])),
                        columns=old.columns, rows=old.rows, truncated=old.truncated, total=old.total,
                        has_rows=old.has_rows, seq=message["seq"])
        kind = message["kind"]
        if kind == "snapshot":
            view.columns = message["columns"]
            view.rows = {k: r for k, r in message["rows"]}
            view.truncated, view.total, view.has_rows = message["truncated"], message["total"], True
        elif kind == "changes":
            if not old.has_rows or old.truncated or message["seq"] != old.seq + 1:
                raise OutOfStep("a pane update from the owner does not follow the last one this pane has; "
                                "asked for the whole pane again", hint="it comes with the cell's next run")
            rows = _applied(old.rows, message["changes"])
            if message.get("order") is not None:
                _want(set(message["order"]) == set(rows), "'order' does not list the rows")
                rows = {k: rows[k] for k in message["order"]}
            view.columns, view.rows, view.total = message["columns"], rows, len(rows)
        self.views[cell_id] = view
        return view
