"""A ``knowledge:PATH`` share as its sender sees it: which ingested documents it holds, and its
pages' items (docs/knowledge.md "Sharing with peers").

PATH is canonical (``canonical_path``: ``~`` expanded, absolute, symlinks resolved), and the share
holds every document whose location, its root joined with its path, is PATH or lies under it: a
share of a sub-folder of an ingested root carries only that part, a share of a folder above
several roots carries them all, a share of one file carries that file.

Pages: the cursor is ``knowledge_changes.id``. For each change past the cursor under PATH, in id
order, an item holds the document's state when the page is built (never a stale one): ``{"op":
"upsert", "change", ...DocumentRecord.as_dict()}`` without embeddings or ``{"op": "delete",
"change", "root", "path"}`` when it is gone; a document changed twice in the page is sent once,
with its last change id. Documents keep their root and path as stored here, so a peer's search
shows the same path as this node's. Changes elsewhere still move the cursor on.
"""

from __future__ import annotations

import os
import posixpath
import sqlite3

from tessera.core.errors import UsageError, printable
from tessera.core.peers.frames import MAX_FRAME_BYTES

# One document's packed item at most: a page must fit a frame (core/peers/frames.py, 4 MiB)
# beside its share, cursors and signature, and a page holds at least one item. A document over
# it (a file near ingest's 4 MiB limit) stays on this node: it is never sent.
MAX_DOCUMENT_BYTES = MAX_FRAME_BYTES - 64 * 1024

# Where a document lies: its root joined with its path ('/'-separated), as SQL over a table
# with root and path columns.
_LOCATION = "(CASE WHEN root = '/' THEN '/' || path ELSE root || '/' || path END)"
_UNDER = f"({_LOCATION} = ? OR substr({_LOCATION}, 1, ?) = ?)"


def canonical_path(text: str) -> str:
    """The path a user typed, canonical: ``~`` expanded, absolute, symlinks resolved.

    Raises:
        UsageError: empty, or a path this system cannot hold (a NUL byte).
    """
    hint = "share what was ingested under a folder or file as knowledge:PATH (e.g. knowledge:~/notes)"
    if not text:
        raise UsageError("a knowledge share needs a path after 'knowledge:'", hint=hint)
    try:
        return os.path.realpath(os.path.expanduser(text))
    except (ValueError, OSError) as exc:
        raise UsageError(f"'{printable(text)}' is not a path this system can open: {exc}", hint=hint) from None


def check_path(path: str) -> None:
    """A knowledge share's path as a peer names it: absolute and normalised ('/'-separated, no
    '.', '..' or empty part), nothing resolved here (it is the peer's path).

    Raises:
        UsageError naming what is wrong.
    """
    if not (path.startswith("/") and posixpath.normpath(path) == path and not path.startswith("//")
            and path.isprintable()):
        raise UsageError(f"'{printable(path[:300])}' is not a canonical absolute path",
                         hint="a knowledge share names the folder or file its sender shares, as /a/b")


def location(root: str, path: str) -> str:
    """Where the document at ``root`` / ``path`` lies."""
    return "/" + path if root == "/" else f"{root}/{path}"


def holds(share_path: str, root: str, path: str) -> bool:
    """Whether the share of ``share_path`` carries the document at ``root`` / ``path``."""
    where = location(root, path)
    return where == share_path or where.startswith(_prefix(share_path))


def _prefix(share_path: str) -> str:
    return share_path if share_path.endswith("/") else share_path + "/"


def _under_args(share_path: str) -> tuple:
    prefix = _prefix(share_path)
    return share_path, len(prefix), prefix


def document_count(conn: sqlite3.Connection, share_path: str) -> int:
    """How many ingested documents the share holds now."""
    return conn.execute(f"SELECT count(*) FROM knowledge_documents WHERE {_UNDER}",
                        _under_args(share_path)).fetchone()[0]


def latest_cursor(conn: sqlite3.Connection) -> int:
    """The newest change's id (whether under the share or not: a page past a smaller cursor may
    hold nothing and only move the cursor, as an events share's)."""
    return conn.execute("SELECT max(id) FROM knowledge_changes").fetchone()[0] or 0


def page_items(conn: sqlite3.Connection, share_path: str, cursor: int, limit: int,
               page_bytes: int) -> tuple[list[dict], int, bool]:
    """The items of the share's page after ``cursor``: at most ``limit`` and about
    ``page_bytes`` packed (at least one); returns (items, cursor_to, more)."""
    import msgpack

    from tessera.core.knowledge import index

    top = latest_cursor(conn)
    rows = conn.execute(f"SELECT id, root, path FROM knowledge_changes WHERE id > ? AND id <= ? AND {_UNDER} "
                        "ORDER BY id", (cursor, top, *_under_args(share_path)))
    items: list[dict] = []
    placed: dict[tuple[str, str], dict] = {}  # (root, path) -> its item in this page
    size, last, more = 0, cursor, False
    while not more and (batch := rows.fetchmany(500)):
        for change, root, path in batch:
            sent = placed.get((root, path))
            if sent is not None:  # sent already in its newest state: the later change is in it
                sent["change"] = change
                last = change
                continue
            doc = index.read_document(conn, root, path)
            if doc is None:
                item = {"op": "delete", "change": change, "root": root, "path": path}
            else:
                item = {"op": "upsert", "change": change, **doc.as_dict()}
            bytes_ = len(msgpack.packb(item, use_bin_type=True))
            if bytes_ > MAX_DOCUMENT_BYTES:  # never sendable: it stays here, and the share goes on
                last = change
                continue
            if items and (len(items) >= limit or size + bytes_ > page_bytes):
                more = True
                break
            items.append(item)
            placed[(root, path)] = item
            size += bytes_
            last = change
    return items, (last if more else max(cursor, top)), more
