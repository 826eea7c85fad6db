"""A peer's replica, as sync and import write it: ``peers/<node id>/replica.db`` (the store's own
schema, so the events and notebooks readers work on it, plus ``sync_cursors``), and ``apply``,
which files one received page in it after checking everything about it.

``apply`` stores a page whole or not at all, with its share's cursor, in one transaction: a pull
killed anywhere resumes from the last page stored, with no duplicate and no gap. It checks, in
this order, and refuses the page (``PageRefused``, exit 1, nothing written) at the first failure:

1. the signature is the sender's (its node id is its Ed25519 public key); only then are the
   page's packed items unpacked (core/peers/pages.py);
2. the page's share is well formed and its cursor_from is the cursor stored for that share (else
   the page is a duplicate, or pages were skipped);
3. each event recomputes to its hash, is well formed, is on one actor's chain, and that actor is
   the one this peer's replica already holds (the first page received fixes it), and each event
   links to its neighbours stored or in the page (an event's prev_hash is the hash of the entry
   at seq - 1 where that entry is here; an events share is filtered by subject, so its seqs may
   have gaps); an event already here with the same hash is skipped (two shares may overlap), one
   with another hash is a fork;
4. each notebook update is a CRDT update the notebook (as stored here) accepts;
5. each knowledge item is a well-formed document (or delete) within its limits, lying under the
   share's path (core/peers/knowledge_replica.py); it is written through core/knowledge/index.py.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tessera.core.errors import InputError, TesseraError, printable
from tessera.core.peers import page_signing, pages, replica_files, shares
from tessera.core.peers.frames import ProtocolError

SYNC_CURSORS = """CREATE TABLE IF NOT EXISTS sync_cursors (
    item TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL,
    items INTEGER NOT NULL,
    synced_at TEXT
)"""


class PageRefused(TesseraError):
    """A received page failed a check: nothing of it was written (exit 1)."""


def open_for_write(node_id: str, store_path: Path | None = None, *, path: Path | None = None) -> sqlite3.Connection:
    """The replica of peer ``node_id`` opened for writing, made when missing: its directory 0700,
    the file 0600, the store's schema and ``sync_cursors``. No node key is made beside it and no
    actor id is given to it (it holds the peer's events, never its own).

    Args:
        store_path: the local store (the replica lives beside it, under peers/).
        path: another file to use (tests; the default is replica_files.replica_path).
    """
    from tessera.core.store.db import connect

    if path is None:
        path = replica_files.replica_path(node_id, store_path)
        directories = (path.parent.parent, path.parent)  # peers/ and peers/<node id>/
    else:
        path = Path(path)
        directories = (path.parent,)
    for directory in directories:
        directory.mkdir(mode=0o700, exist_ok=True, parents=True)
        os.chmod(directory, 0o700)
    conn = connect(path)
    conn.execute(SYNC_CURSORS)
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('replica_of', ?)", (node_id,))
    return conn


BULK_CACHE_KIB = 64 * 1024  # the page cache while pages are filed: 100 000 events' indexes fit in it


def prepare_for_bulk(replica: sqlite3.Connection) -> None:
    """Make filing many pages on this connection cheap: a larger page cache, and no WAL
    checkpoint after each page's commit (every checkpoint rewrote the same index pages; 0.8 s of
    3 for 100 000 events). Each commit is still durable in the WAL (synchronous = NORMAL, as the
    store); ``end_bulk`` folds the WAL back once."""
    replica.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    replica.execute("PRAGMA wal_autocheckpoint = 0")


def end_bulk(replica: sqlite3.Connection) -> None:
    """Undo ``prepare_for_bulk``: one checkpoint (PASSIVE: a reader of the replica is never
    waited for; what it holds back is folded in by a later checkpoint) and the default again."""
    from tessera.core.store.db import StoreError

    try:
        replica.execute("PRAGMA wal_checkpoint(PASSIVE)")
        replica.execute("PRAGMA wal_autocheckpoint = 1000")
    except (StoreError, sqlite3.Error):
        pass  # the pages are committed; the WAL is folded in by the next checkpoint


def cursors(replica: sqlite3.Connection) -> dict[str, int]:
    """Each share's stored cursor (what was received up to)."""
    return {item: cursor for item, cursor in replica.execute("SELECT item, cursor FROM sync_cursors")}


def item_counts(replica: sqlite3.Connection) -> dict[str, int]:
    """How many items each share filed in this replica."""
    return {item: n for item, n in replica.execute("SELECT item, items FROM sync_cursors")}


@dataclass
class _Link:
    prev_hash: str
    hash: str


def apply(replica: sqlite3.Connection, sender_node_id: str, page: dict, *, overlap: bool = False) -> int:
    """Check ``page`` (a ``page`` message from ``sender_node_id``) and file it in ``replica``
    with its share's new cursor, in one transaction (the caller's, when one is open).

    Args:
        overlap: accept a page starting at or before the stored cursor (a bundle's pages start
            at 0): events already here are skipped by hash, notebook updates are idempotent; a
            page starting past the stored cursor is still a gap.
    Returns:
        how many items were stored (events already here are not counted).
    Raises:
        PageRefused naming the check that failed; nothing is written then.
    """
    from tessera.core.store.db import transaction
    from tessera.core.times import now

    if not page_signing.valid(page, sender_node_id):
        raise PageRefused(f"a page of '{printable(str(page.get('share'))[:300])}' from {sender_node_id[:10]} is not signed "
                          "by that peer: it was altered on the way, or sent by another node; nothing of it was stored")
    item = page.get("share")
    try:
        item = shares.check_received(item) if isinstance(item, str) and ":" in item else None
    except TesseraError:
        item = None
    if item is None or item != page["share"]:
        raise PageRefused(f"a page from {sender_node_id[:10]} names no valid share; nothing of it was stored")
    cursor_from, cursor_to = page.get("cursor_from"), page.get("cursor_to")
    if not (type(cursor_from) is int and type(cursor_to) is int and 0 <= cursor_from <= cursor_to < 2**63):
        raise PageRefused(f"the page of {item} from {sender_node_id[:10]} has bad cursors; nothing of it was stored")
    try:
        items = pages.items_of(page)  # unpacked only now that the signature holds
    except ProtocolError as exc:
        raise PageRefused(f"the page of {item} from {sender_node_id[:10]} was refused: {exc.message}; "
                          "nothing of it was stored") from None
    with transaction(replica):
        row = replica.execute("SELECT cursor, items FROM sync_cursors WHERE item = ?", (item,)).fetchone()
        stored, count = row if row else (0, 0)
        if cursor_from > stored or (cursor_from < stored and not overlap):
            what = "a duplicate of one stored already" if cursor_from < stored else "past the pages stored: pages are missing before it"
            raise PageRefused(f"the page of {item} from {sender_node_id[:10]} starts at cursor {cursor_from}, but this "
                              f"replica holds it up to {stored}: it is {what}; nothing of it was stored",
                              hint="run the sync again; it resumes from the stored cursor")
        try:
            if shares.kind_of(item) == "events":
                added = _file_events(replica, items)
            elif shares.kind_of(item) == "knowledge":
                from tessera.core.peers import knowledge_replica

                added = knowledge_replica.file_items(replica, shares.target_of(item), items,
                                                     after=stored if overlap else cursor_from, cursor_to=cursor_to)
            else:
                added = _file_notebook_updates(replica, items, stored if overlap else cursor_from, cursor_to)
        except InputError as exc:
            raise PageRefused(f"the page of {item} from {sender_node_id[:10]} was refused: {exc.message}; "
                              "nothing of it was stored") from None
        replica.execute("INSERT INTO sync_cursors(item, cursor, items, synced_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(item) DO UPDATE SET cursor = excluded.cursor, items = excluded.items, "
                        "synced_at = excluded.synced_at", (item, max(stored, cursor_to), count + added, now()))
    return added


_INSERT_EVENT = ("INSERT INTO events(seq, id, time, subject, type, actor, correlation, data, prev_hash, hash) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_STORE_HEAD = ("INSERT INTO event_chains(actor, anchor_seq, anchor_hash, head_seq, head_hash, head_time) "
               "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(actor) DO UPDATE SET anchor_seq = min(anchor_seq, excluded.anchor_seq), "
               "anchor_hash = CASE WHEN excluded.anchor_seq < anchor_seq THEN excluded.anchor_hash ELSE anchor_hash END, "
               "head_seq = max(head_seq, excluded.head_seq), "
               "head_hash = CASE WHEN excluded.head_seq > head_seq THEN excluded.head_hash ELSE head_hash END, "
               "head_time = CASE WHEN excluded.head_seq > head_seq THEN excluded.head_time ELSE head_time END")


def _file_events(replica: sqlite3.Connection, items: list) -> int:
    from tessera.core import events

    if not items:
        return 0
    rows = events.foreign_rows(items)  # one SHA-256 each
    actor = rows[0][5]
    for i, row in enumerate(rows):
        if row[5] != actor:
            raise InputError(f"event {i + 1} is of actor {printable(row[5])}, not {printable(actor)}: "
                             "a page holds its sender's own events only")
        if i and row[0] <= rows[i - 1][0]:
            raise InputError(f"event {i + 1} (seq {row[0]}) is out of order: a page's seqs only grow")
    chains = [a for (a,) in replica.execute("SELECT actor FROM event_chains")]
    if chains and chains != [actor]:
        raise InputError(f"its events are of actor {printable(actor)}, but this peer's events so far are of actor "
                         f"{printable(chains[0])}: a peer sends its own events only")
    first, last = rows[0][0], rows[-1][0]
    near = {seq: _Link(p, h) for seq, p, h in replica.execute(
        "SELECT seq, prev_hash, hash FROM events WHERE actor = ? AND seq BETWEEN ? AND ?", (actor, first - 1, last + 1))}
    new = []
    for i, row in enumerate(rows):
        seq, prev, h = row[0], row[8], row[9]
        here = near.get(seq)
        if here is not None:
            if here.hash != h:
                raise InputError(f"event {i + 1} (seq {seq}) differs from the event stored with that seq: the chain forked")
            continue  # stored already (shares may overlap)
        before, after = near.get(seq - 1), near.get(seq + 1)
        if seq == 1 and prev != events.GENESIS:
            raise InputError(f"event {i + 1} (seq 1) does not link to the genesis hash")
        if before is not None and before.hash != prev:
            raise InputError(f"event {i + 1} (seq {seq}) does not link to seq {seq - 1}: its prev_hash differs")
        if after is not None and after.prev_hash != h:
            raise InputError(f"event {i + 1} (seq {seq}) does not link to seq {seq + 1}: that one's prev_hash differs")
        near[seq] = _Link(prev, h)
        new.append(row)
    if not new:
        return 0
    try:
        replica.executemany(_INSERT_EVENT, new)
    except sqlite3.IntegrityError:
        raise InputError("one of its events reuses the id of another event stored already") from None
    replica.execute(_STORE_HEAD, (actor, new[0][0] - 1, new[0][8], new[-1][0], new[-1][9], new[-1][2]))
    return len(new)


def _file_notebook_updates(replica: sqlite3.Connection, items: list, cursor_from: int, cursor_to: int) -> int:
    from tessera.core.notebook import repository
    from tessera.core.notebook.model import Notebook

    by_notebook: dict[str, list[dict]] = {}
    last = cursor_from
    for i, item in enumerate(items):
        _check_update(item, i)
        update_id = item["update_id"]
        if update_id > cursor_to:
            raise InputError(f"update {i + 1} (id {update_id}) is past the page's cursor {cursor_to}")
        if update_id <= cursor_from:
            continue  # received already (an overlapping bundle page)
        if update_id <= last:
            raise InputError(f"update {i + 1} (id {update_id}) is out of order: a page's ids only grow")
        last = update_id
        by_notebook.setdefault(item["notebook_id"], []).append(item)
    added = 0
    for notebook_id, updates in by_notebook.items():
        newest = updates[-1]
        name, when = newest["name"], newest["time"]
        held = replica.execute("SELECT id FROM notebooks WHERE name = ? AND id != ?", (name, notebook_id)).fetchone()
        if held is not None:  # the name went to another notebook at the sender (removed, or renamed since)
            replica.execute("DELETE FROM notebooks WHERE id = ?", (held[0],))
        replica.execute("INSERT INTO notebooks(id, name, created, updated) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(id) DO UPDATE SET name = excluded.name, updated = excluded.updated",
                        (notebook_id, name, updates[0]["time"], when))
        stored = [r[0] for r in replica.execute("SELECT data FROM notebook_updates WHERE notebook_id = ? ORDER BY id",
                                                (notebook_id,))]
        try:
            notebook = Notebook.from_updates(stored + [u["update"] for u in updates], name=name)
        except Exception as exc:  # pycrdt raises its own errors for bytes that are no update
            raise InputError(f"the update of notebook {printable(name)} is not a CRDT update ({type(exc).__name__})") from None
        replica.executemany("INSERT INTO notebook_updates(notebook_id, data, time) VALUES (?, ?, ?)",
                            [(notebook_id, u["update"], u["time"]) for u in updates])
        if len(stored) + len(updates) > repository.COMPACT_AFTER:
            repository.compact(replica, notebook_id, notebook, when)
        added += len(updates)
    return added


def _check_update(item: Any, index: int) -> None:
    from tessera.core.notebook.repository import NAME_RE

    where = f"update {index + 1}"
    if not isinstance(item, dict):
        raise InputError(f"{where} is not a notebook update")
    for name, kind in (("notebook_id", str), ("name", str), ("title", str), ("update_id", int), ("time", str),
                       ("update", bytes)):
        if type(item.get(name)) is not kind:
            raise InputError(f"{where} has no {name} of type {kind.__name__}")
    if not 0 < len(item["notebook_id"]) <= 200 or not 0 < len(item["time"]) <= 200:
        raise InputError(f"{where} has a bad notebook_id or time")
    if not NAME_RE.match(item["name"]) or len(item["name"]) > 200:
        raise InputError(f"{where} names no valid notebook ({printable(item['name'][:80])})")
