"""Pages of a share, as the sender builds them (DESIGN §11; docs/peers.md "Sharing, pages and
replicas"): what a share holds past a cursor, at most ``limit`` items and about 1 MiB, signed by
the node key.

- ``notebook:NAME``: the cursor is ``notebook_updates.id``; items are the notebook's stored CRDT
  updates in id order, ``{notebook_id, name, title, update_id, time, update}``. A compaction
  writes one full-state update with a larger id, so a cursor stays valid across it.
- ``events:PATTERN``: the cursor is the events table's rowid (local arrival order); items are
  this node's own events (its actor) whose subject matches the pattern, as ``Event.as_dict``
  gives them; notebooks' change events only when the pattern names them (shares.event_shared). Rows passed over (another actor's, another subject) still move the cursor on.
- ``knowledge:PATH``: the cursor is ``knowledge_changes.id``; items are the current state of each
  document changed under PATH past it, or its delete (core/peers/knowledge_share.py).

A page's ``items`` travel as one msgpack ``bin``: the array of item maps packed once by the
sender (``pack_items``). The signature covers those bytes as they are, so neither side sorts or
re-packs the items to sign or verify, and the receiver unpacks them (``items_of``) only after the
signature holds (core/peers/replica.py).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tessera.core.peers import frames, page_signing, shares

# Items per page at most: small events fill a page by count, large ones by PAGE_BYTES first.
# 5000 keeps the initial pull of 100 000 small events to about 25 requests, inside serve's
# rate-limit burst (core/peers/rate_limit.py), so the pull is never paced.
MAX_LIMIT = 5000
PAGE_BYTES = 1 << 20  # about 1 MiB of items a page, well under the frames' 4 MiB
_ITEM_OVERHEAD = 200  # the msgpack of an item's fields beside its payload, roughly
_SCAN_ROWS = 20_000  # rows an events page looks at (most may be filtered out), so one page stays cheap


def build(conn: sqlite3.Connection, item: str, cursor: int, *, limit: int = MAX_LIMIT, signing_key: Any) -> dict:
    """The signed ``page`` message of ``item`` after ``cursor``: at most ``limit`` (1 to
    MAX_LIMIT) items and about PAGE_BYTES; ``more`` says whether anything is left past it.
    The caller has checked the item is granted to whoever receives it."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    cursor = max(0, int(cursor))
    if shares.kind_of(item) == "notebook":
        items, cursor_to, more = _notebook_items(conn, shares.target_of(item), cursor, limit)
    elif shares.kind_of(item) == "knowledge":
        from tessera.core.peers import knowledge_share

        items, cursor_to, more = knowledge_share.page_items(conn, shares.target_of(item), cursor, limit, PAGE_BYTES)
    else:
        items, cursor_to, more = _event_items(conn, shares.target_of(item), cursor, limit)
    page = {"type": "page", "share": item, "cursor_from": cursor, "cursor_to": cursor_to, "more": more,
            "items": pack_items(items)}
    return page_signing.signed(page, signing_key, inner_sorted=True)  # its top level holds no map


def pack_items(items: list) -> bytes:
    """The ``items`` field of a page: the msgpack array of its item maps."""
    import msgpack

    return msgpack.packb(items, use_bin_type=True)


def items_of(page: dict) -> list:
    """The item maps of a page whose signature has been checked (or that we built).

    Raises:
        frames.ProtocolError(malformed): ``items`` is not one msgpack array of plain data.
    """
    items = page.get("items")
    if not isinstance(items, bytes):
        raise frames.ProtocolError("malformed", f"the page's items are a {type(items).__name__}, not packed bytes")
    return frames.decode_array(items, "the page's items")


def latest_cursor(conn: sqlite3.Connection, item: str) -> int:
    """The cursor past which ``item`` has nothing yet (cheap: a subscription polls it). For an
    events share it is the newest event's rowid, whether it matches the pattern or not, so a page
    built past a smaller cursor may hold no item and only move the cursor; so for a knowledge
    share, the newest change's id."""
    if shares.kind_of(item) == "knowledge":
        from tessera.core.peers import knowledge_share

        return knowledge_share.latest_cursor(conn)
    if shares.kind_of(item) == "notebook":
        row = conn.execute("SELECT max(u.id) FROM notebook_updates u JOIN notebooks n ON n.id = u.notebook_id "
                           "WHERE n.name = ?", (shares.target_of(item),)).fetchone()
    else:
        row = conn.execute("SELECT max(rowid) FROM events").fetchone()
    return row[0] or 0


def _notebook_items(conn: sqlite3.Connection, name: str, cursor: int, limit: int) -> tuple[list, int, bool]:
    found = conn.execute("SELECT id FROM notebooks WHERE name = ?", (name,)).fetchone()
    if found is None:  # removed (or not made yet): nothing to send, the receiver keeps what it has
        return [], cursor, False
    notebook_id = found[0]
    rows = conn.execute("SELECT id, data, time FROM notebook_updates WHERE notebook_id = ? AND id > ? ORDER BY id LIMIT ?",
                        (notebook_id, cursor, limit + 1)).fetchall()
    more = len(rows) > limit
    title = _title(conn, notebook_id, name) if rows else ""
    items, size = [], 0
    for update_id, data, when in rows[:limit]:
        if items and size + len(data) + _ITEM_OVERHEAD > PAGE_BYTES:
            more = True
            break
        size += len(data) + _ITEM_OVERHEAD
        items.append({"name": name, "notebook_id": notebook_id, "time": when, "title": title, "update": bytes(data),
                      "update_id": update_id})
    return items, (items[-1]["update_id"] if items else cursor), more


def _title(conn: sqlite3.Connection, notebook_id: str, name: str) -> str:
    from tessera.core.notebook.model import Notebook

    updates = [r[0] for r in conn.execute("SELECT data FROM notebook_updates WHERE notebook_id = ? ORDER BY id",
                                          (notebook_id,))]
    return Notebook.from_updates(updates, name=name).title


def _event_items(conn: sqlite3.Connection, pattern: str, cursor: int, limit: int) -> tuple[list, int, bool]:
    from tessera.core import events

    actor = events.local_actor(conn)
    if actor is None:  # this node never wrote an event
        return [], cursor, False
    shared: dict[str, bool] = {}  # subject -> event_shared(pattern, subject): subjects repeat
    matches = shares.event_shared
    loads = json.loads
    items: list[dict] = []
    size, last = 0, cursor
    rows = conn.execute("SELECT rowid, seq, id, time, subject, type, actor, correlation, data, prev_hash, hash "
                        "FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?", (cursor, _SCAN_ROWS + 1))
    more, scanned = False, 0
    for rowid, seq, eid, when, subject, etype, who, corr, data, prev, h in _chunks(rows):
        scanned += 1
        if scanned > _SCAN_ROWS:
            more = True
            break
        wanted = shared.get(subject)
        if wanted is None:
            wanted = shared[subject] = matches(pattern, subject)
        if who == actor and wanted:
            if len(items) >= limit or (items and size + len(data) + _ITEM_OVERHEAD > PAGE_BYTES):
                more = True
                break
            size += len(data) + _ITEM_OVERHEAD
            items.append({"actor": who, "correlation": corr, "data": loads(data), "hash": h, "id": eid,
                          "prev_hash": prev, "seq": seq, "subject": subject, "time": when, "type": etype})
        last = rowid
    return items, last, more


def _chunks(cursor: sqlite3.Cursor, size: int = 500):
    """The cursor's rows, read a chunk at a time (most pages stop long before the scan's end,
    and a row at a time costs a call through the store's error translation each)."""
    while True:
        chunk = cursor.fetchmany(size)
        if not chunk:
            return
        yield from chunk
