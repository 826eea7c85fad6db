"""Filing a received page of a ``knowledge:PATH`` share in a peer's replica (core/peers/replica.py
calls ``file_items`` inside the page's transaction, once the signature holds).

Every item is checked before anything is written, and the first bad one refuses the page whole
(``InputError``): an item that is not an upsert or delete of a well-formed document (types,
kinds, a 64-hex hash, distinct chunk ordinals), one over the limits (MAX_DOCUMENT_BYTES packed,
MAX_CHUNKS chunks, MAX_TEXT_CHARS for a name), a root that is not canonical, a path that is not
relative and normalised (``..``, ``.``, empty parts, a leading '/'), or a document that lies
outside the share's path.

What the sender says a chunk mentions, and its embeddings, are not trusted or needed: mentions are
extracted again here and chunks embedded here with this node's model, so a peer's cosine scores
are comparable with this node's own (core/knowledge/search.py merges them). Documents keep the
sender's root and path; they are written only through core/knowledge/index.py.
"""

from __future__ import annotations

import json
import posixpath
import re
import sqlite3
from typing import Any

from tessera.core.errors import InputError, UsageError, printable
from tessera.core.peers import knowledge_share

MAX_CHUNKS = 20_000  # a document's chunks at most
MAX_TEXT_CHARS = 4096  # a root, a path, a title, a heading, a tag or link, at most
MAX_LIST = 10_000  # tags or links at most
_HASH = re.compile(r"[0-9a-f]{64}")
_DOCUMENT_FIELDS = {"root": str, "root_given": str, "path": str, "kind": str, "title": str, "size": int, "mtime": str,
                    "hash": str, "tags": list, "links": list, "front_matter": dict, "chunks": list}
_CHUNK_FIELDS = {"ordinal": int, "heading": str, "start_line": int, "end_line": int, "text": str}


def file_items(replica: sqlite3.Connection, share_path: str, items: list, *, after: int, cursor_to: int) -> int:
    """Check every item of a page of the share of ``share_path``, then write each one whose change
    is past ``after`` (an overlapping page's earlier items were filed already). Returns how many
    documents were written or removed (one already here with the same hash is not counted)."""
    from tessera.core.knowledge import index
    from tessera.core.knowledge.records import DocumentRecord
    from tessera.core.times import now

    checked = [_check_item(item, i, share_path, after, cursor_to) for i, item in enumerate(items)]
    wanted = [item for item in checked if item["change"] > after]
    upserts = [DocumentRecord.from_dict(item) for item in wanted if item["op"] == "upsert"]
    _prepare(upserts)
    by_key = {(doc.root, doc.path): doc for doc in upserts}
    at, written = now(), 0
    for item in wanted:
        if item["op"] == "delete":
            written += index.remove_document(replica, item["root"], item["path"], at=at)
        else:
            written += index.write_document(replica, by_key[(item["root"], item["path"])], at=at)
    return written


def _prepare(docs: list) -> None:
    """Mentions and embeddings for the received chunks, made here as ingest makes them."""
    from tessera.core.knowledge import mentions
    from tessera.core.knowledge.ingest import embed_documents

    for doc in docs:
        for chunk in doc.chunks:
            chunk.mentions = mentions.extract(chunk.text)
    embed_documents(docs)


def _check_item(item: Any, index: int, share_path: str, after: int, cursor_to: int) -> dict:
    import msgpack

    where = f"item {index + 1}"
    if not isinstance(item, dict) or item.get("op") not in ("upsert", "delete"):
        raise InputError(f"{where} is not a document's upsert or delete")
    change = item.get("change")
    if type(change) is not int or not 0 < change <= cursor_to:
        raise InputError(f"{where} has no change id within the page's cursors")
    for name in ("root", "path"):
        if type(item.get(name)) is not str:
            raise InputError(f"{where} has no {name} of type str")
    root, path = item["root"], item["path"]
    _check_root(root, where)
    _check_relative(path, where)
    if not knowledge_share.holds(share_path, root, path):
        raise InputError(f"{where} ({printable(knowledge_share.location(root, path)[:200])}) lies outside the "
                         f"shared path {printable(share_path[:200])}")
    if item["op"] == "delete":
        return item
    if len(msgpack.packb(item, use_bin_type=True)) > knowledge_share.MAX_DOCUMENT_BYTES:
        raise InputError(f"{where} is over {knowledge_share.MAX_DOCUMENT_BYTES} bytes")
    _check_document(item, where)
    return item


def _check_root(root: str, where: str) -> None:
    try:
        knowledge_share.check_path(root)
    except UsageError:
        raise InputError(f"{where} has a root that is not a canonical absolute path: {printable(root[:200])}") from None
    if len(root) > MAX_TEXT_CHARS:
        raise InputError(f"{where} has a root over {MAX_TEXT_CHARS} characters")


def _check_relative(path: str, where: str) -> None:
    parts = path.split("/")
    if (not path or len(path) > MAX_TEXT_CHARS or path.startswith("/") or not path.isprintable()
            or any(part in ("", ".", "..") for part in parts) or posixpath.normpath(path) != path):
        raise InputError(f"{where} has a path that is not relative and normalised: "
                         f"{printable(path[:200])!r} (no '..', '.', empty part or leading '/')")


def _check_document(item: dict, where: str) -> None:
    from tessera.core.knowledge.records import DOCUMENT_KINDS

    for name, kind in _DOCUMENT_FIELDS.items():
        if type(item.get(name)) is not kind:
            raise InputError(f"{where} has no {name} of type {kind.__name__}")
    if item.get("language") is not None and type(item["language"]) is not str:
        raise InputError(f"{where} has a language that is not a str")
    if item["kind"] not in DOCUMENT_KINDS:
        raise InputError(f"{where} is of kind {printable(item['kind'][:40])!r}, not one of {', '.join(DOCUMENT_KINDS)}")
    if not _HASH.fullmatch(item["hash"]):
        raise InputError(f"{where} has a hash that is not 64 lowercase hex digits")
    if item["size"] < 0:
        raise InputError(f"{where} has a negative size")
    for name in ("root_given", "title", "mtime", "language"):
        if len(item.get(name) or "") > MAX_TEXT_CHARS:
            raise InputError(f"{where} has a {name} over {MAX_TEXT_CHARS} characters")
    for name in ("tags", "links"):
        values = item[name]
        if len(values) > MAX_LIST or not all(type(v) is str and len(v) <= MAX_TEXT_CHARS for v in values):
            raise InputError(f"{where} has {name} that are not at most {MAX_LIST} strings")
    try:  # stored as JSON: no bytes, no map key but a string
        json.dumps(item["front_matter"], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise InputError(f"{where} has front matter that is not plain JSON data") from None
    chunks = item["chunks"]
    if len(chunks) > MAX_CHUNKS:
        raise InputError(f"{where} has {len(chunks)} chunks, over {MAX_CHUNKS}")
    ordinals = set()
    for n, chunk in enumerate(chunks):
        if not isinstance(chunk, dict):
            raise InputError(f"{where}, chunk {n + 1} is not a chunk")
        for name, kind in _CHUNK_FIELDS.items():
            if type(chunk.get(name)) is not kind:
                raise InputError(f"{where}, chunk {n + 1} has no {name} of type {kind.__name__}")
        if len(chunk["heading"]) > MAX_TEXT_CHARS or not 0 <= chunk["start_line"] < 2**31 or not 0 <= chunk["end_line"] < 2**31:
            raise InputError(f"{where}, chunk {n + 1} has a heading over {MAX_TEXT_CHARS} characters or bad lines")
        if chunk["ordinal"] in ordinals or not 0 <= chunk["ordinal"] < 2**31:
            raise InputError(f"{where}, chunk {n + 1} repeats ordinal {chunk['ordinal']} or has a bad one")
        ordinals.add(chunk["ordinal"])
