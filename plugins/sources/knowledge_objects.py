"""The store's knowledge tables (core/knowledge_schema.py) as Kubernetes-shaped objects for the
``knowledge`` source (plugins/sources/knowledge_source.py): kinds ``Document`` and ``Chunk`` under
``tessera.dev/v1``, cluster-scoped (docs/knowledge.md "Knowledge in queries and notebooks").

metadata.name is readable and stable: a Document's path relative to its root, a Chunk's
``PATH#ORDINAL``; metadata.uid is derived from the canonical root and path (a UUID 5), a Chunk's
that and ``#ORDINAL``, so it survives a re-ingest that rewrites the rows. The fields sit at the top level (``d.title``,
``c.heading``, ``c.text``); a Chunk carries its document's path, title, tags, format and hash.
``mentioned``, ``mentioned_scoped`` and ``candidates`` (core/mention_links.py) are what the
MENTIONS rules join on.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from tessera.core.kinds import KindInfo

GROUP = "tessera.dev"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
_VERBS = ("list", "get")

DOCUMENT = KindInfo(GROUP, VERSION, "Document", "documents", "document", ("doc",), namespaced=False, verbs=_VERBS)
CHUNK = KindInfo(GROUP, VERSION, "Chunk", "chunks", "chunk", (), namespaced=False, verbs=_VERBS)
KINDS = (DOCUMENT, CHUNK)

_UID_SPACE = uuid.UUID("6f1d2c1e-16a0-4b7e-9d5e-6b6e6f776c65")  # uuid5 namespace of knowledge uids

_DOCUMENT_SQL = ("SELECT d.id, d.root, d.root_given, d.path, d.kind, d.language, d.title, d.tags, d.links,"
                 " d.front_matter, d.size, d.mtime, d.hash, d.ingested_at FROM knowledge_documents d")
_CHUNK_SQL = ("SELECT c.id, c.ordinal, c.heading, c.start_line, c.end_line, c.text, c.mentions, d.id FROM knowledge_chunks c"
              " JOIN knowledge_documents d ON d.id = c.document_id")


def document_uid(root: str, path: str) -> str:
    """The stable uid of the document at ``root`` / ``path``."""
    return str(uuid.uuid5(_UID_SPACE, f"{root}\0{path}"))


def chunk_uid(root: str, path: str, ordinal: int, *, document: str | None = None) -> str:
    """The stable uid of a document's chunk number ``ordinal``: its document's uid (``document``
    when the caller has it) and ``#ORDINAL``."""
    return f"{document or document_uid(root, path)}#{ordinal}"


def chunk_name(path: str, ordinal: int) -> str:
    return f"{path}#{ordinal}"


def documents(conn: sqlite3.Connection, *, name: str | None = None) -> list[dict[str, Any]]:
    """Every stored document (by root, then path) as a Document; only those at path ``name``."""
    docs = _document_rows(conn, name)
    texts: dict[int, list[str]] = {}
    mentions: dict[int, list[dict]] = {}
    counts: dict[int, int] = {}
    if docs:
        ids = list(docs)
        for doc_id, text, found in _chunks_of(conn, ids):
            texts.setdefault(doc_id, []).append(text)
            mentions.setdefault(doc_id, []).extend(found)
            counts[doc_id] = counts.get(doc_id, 0) + 1
    out = []
    for doc_id, doc in docs.items():
        obj = _document_object(doc)
        obj["chunks"] = counts.get(doc_id, 0)
        obj["text"] = "\n\n".join(texts.get(doc_id, []))
        obj["mentions"] = _unique(mentions.get(doc_id, []))
        obj.update(_link_fields(obj["mentions"]))
        out.append(obj)
    return out


def chunks(conn: sqlite3.Connection, *, name: str | None = None) -> list[dict[str, Any]]:
    """Every stored chunk (by document, then ordinal) as a Chunk; only ``PATH#ORDINAL`` ``name``."""
    path_filter = None
    ordinal_filter = None
    if name is not None:
        path_filter, sep, ordinal = name.rpartition("#")
        if not sep or not ordinal.isdigit():
            return []
        ordinal_filter = int(ordinal)
    docs = _document_rows(conn, path_filter)
    if not docs:
        return []
    sql = _CHUNK_SQL
    params: list[Any] = []
    if path_filter is not None:
        sql += f" WHERE d.id IN ({','.join('?' * len(docs))}) AND c.ordinal = ?"
        params = [*docs, ordinal_filter]
    rows = conn.execute(sql + " ORDER BY d.root, d.path, c.ordinal", params).fetchall()
    out = []
    for _chunk_id, ordinal, heading, start, end, text, mentions_json, doc_id in rows:
        doc = docs[doc_id]
        found = _mentions(mentions_json)
        out.append({
            "apiVersion": API_VERSION, "kind": "Chunk",
            "metadata": {"name": chunk_name(doc["path"], ordinal),
                         "uid": chunk_uid(doc["root"], doc["path"], ordinal, document=doc["uid"]),
                         "creationTimestamp": doc["ingested_at"], "resourceVersion": f"{doc['hash'][:16]}"},
            "document": doc["path"], "document_uid": doc["uid"],
            "root": doc["root"], "root_given": doc["root_given"], "path": doc["path"], "title": doc["title"],
            "format": doc["kind"], "language": doc["language"], "tags": doc["tags"], "mtime": doc["mtime"],
            "hash": doc["hash"], "ordinal": ordinal, "heading": heading, "start_line": start, "end_line": end,
            "text": text, "mentions": found, **_link_fields(found),
        })
    return out


def scores_by_uid(conn: sqlite3.Connection, by_chunk_id: dict[int, float]) -> dict[str, float]:
    """Chunk row id -> score turned into Chunk uid -> score, with each Document's uid -> the score
    of its best chunk."""
    out: dict[str, float] = {}
    ids = list(by_chunk_id)
    for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
        part = ids[start:start + 500]
        for chunk_id, ordinal, root, path in conn.execute(
                "SELECT c.id, c.ordinal, d.root, d.path FROM knowledge_chunks c JOIN knowledge_documents d"
                f" ON d.id = c.document_id WHERE c.id IN ({','.join('?' * len(part))})", part):
            score = float(by_chunk_id[chunk_id])
            out[chunk_uid(root, path, ordinal)] = score
            doc = document_uid(root, path)
            out[doc] = max(score, out.get(doc, 0.0))
    return out


def _document_rows(conn: sqlite3.Connection, path: str | None) -> dict[int, dict[str, Any]]:
    sql = _DOCUMENT_SQL + (" WHERE d.path = ?" if path is not None else "") + " ORDER BY d.root, d.path"
    out = {}
    for (doc_id, root, given, rel, kind, language, title, tags, links, front, size, mtime, digest,
         ingested) in conn.execute(sql, () if path is None else (path,)):
        out[doc_id] = {"uid": document_uid(root, rel), "root": root, "root_given": given, "path": rel, "kind": kind, "language": language,
                       "title": title, "tags": _json_list(tags), "links": _json_list(links),
                       "front_matter": _json_map(front), "size": size, "mtime": mtime, "hash": digest,
                       "ingested_at": ingested}
    return out


def _document_object(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "Document",
        "metadata": {"name": doc["path"], "uid": doc["uid"],
                     "creationTimestamp": doc["ingested_at"], "resourceVersion": doc["hash"][:16]},
        "root": doc["root"], "root_given": doc["root_given"], "path": doc["path"], "title": doc["title"],
        "format": doc["kind"], "language": doc["language"], "tags": doc["tags"], "links": doc["links"],
        "front_matter": doc["front_matter"], "size": doc["size"], "mtime": doc["mtime"], "hash": doc["hash"],
        "ingested_at": doc["ingested_at"],
    }


def _chunks_of(conn: sqlite3.Connection, doc_ids: list[int]) -> list[tuple[int, str, list[dict]]]:
    out = []
    for start in range(0, len(doc_ids), 500):  # SQLite's bound-parameter limit
        part = doc_ids[start:start + 500]
        for doc_id, text, mentions_json in conn.execute(
                f"SELECT document_id, text, mentions FROM knowledge_chunks WHERE document_id IN"
                f" ({','.join('?' * len(part))}) ORDER BY document_id, ordinal", part):
            out.append((doc_id, text, _mentions(mentions_json)))
    return out


def _link_fields(found: list[dict]) -> dict[str, Any]:
    from tessera.core.mention_links import link_fields

    return link_fields(found)


def _unique(found: list[dict]) -> list[dict]:
    seen: set[tuple] = set()
    out = []
    for m in found:
        key = (m.get("kind"), m.get("name"), m.get("namespace"), m.get("form"))
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def _mentions(text: str) -> list[dict]:
    value = _loads(text)
    return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []


def _json_list(text: str) -> list:
    value = _loads(text)
    return value if isinstance(value, list) else []


def _json_map(text: str) -> dict:
    value = _loads(text)
    return value if isinstance(value, dict) else {}


def _loads(text: Any) -> Any:
    import orjson

    try:
        return orjson.loads(text) if isinstance(text, str) else None
    except orjson.JSONDecodeError:
        return None
