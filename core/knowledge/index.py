"""Writing and reading the knowledge tables (core/knowledge_schema.py): one document, with its
chunks, full-text rows and change-log row, per transaction, so an ingest killed at any moment
leaves every document either as it was or as it is now.

Every writer of the knowledge tables goes through here: ingestion (core/knowledge/ingest.py),
JSONL input (``ingest -``) and peers' pages filed into a replica.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterator

from tessera.core.knowledge.records import ChunkRecord, DocumentRecord
from tessera.core.store.db import transaction


def write_document(conn: sqlite3.Connection, doc: DocumentRecord, *, at: str) -> bool:
    """Store ``doc`` (replacing what was stored at its root and path) in one transaction.

    Args:
        at: the time written (core/times.py), kept as ingested_at and in the change log.
    Returns:
        False when the stored document already has this hash (nothing is written), else True.
    """
    with transaction(conn):
        row = conn.execute("SELECT id, hash FROM knowledge_documents WHERE root = ? AND path = ?",
                           (doc.root, doc.path)).fetchone()
        if row is not None and row[1] == doc.hash:
            return False
        if row is not None:
            _delete_rows(conn, row[0])
        cur = conn.execute(
            "INSERT INTO knowledge_documents(root, root_given, path, kind, language, title, tags, links, front_matter,"
            " size, mtime, hash, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (doc.root, doc.root_given, doc.path, doc.kind, doc.language, doc.title, _json(doc.tags), _json(doc.links),
             _json(doc.front_matter), doc.size, doc.mtime, doc.hash, at))
        doc_id = cur.lastrowid
        for chunk in doc.chunks:
            cur = conn.execute(
                "INSERT INTO knowledge_chunks(document_id, ordinal, heading, start_line, end_line, text, mentions,"
                " embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (doc_id, chunk.ordinal, chunk.heading, chunk.start_line, chunk.end_line, chunk.text,
                 _json(chunk.mentions), chunk.embedding))
            conn.execute("INSERT INTO knowledge_fts(rowid, title, heading, text, path) VALUES (?, ?, ?, ?, ?)",
                         (cur.lastrowid, doc.title, chunk.heading, chunk.text, doc.path))
        conn.execute("INSERT INTO knowledge_changes(root, path, op, hash, at) VALUES (?, ?, 'upsert', ?, ?)",
                     (doc.root, doc.path, doc.hash, at))
        return True


def remove_document(conn: sqlite3.Connection, root: str, path: str, *, at: str) -> bool:
    """Remove the document at ``root`` / ``path`` in one transaction; False when there was none."""
    with transaction(conn):
        row = conn.execute("SELECT id FROM knowledge_documents WHERE root = ? AND path = ?", (root, path)).fetchone()
        if row is None:
            return False
        _delete_rows(conn, row[0])
        conn.execute("INSERT INTO knowledge_changes(root, path, op, hash, at) VALUES (?, ?, 'delete', NULL, ?)",
                     (root, path, at))
        return True


def compact_text_index(conn: sqlite3.Connection) -> None:
    """Merge the full-text index's segments into one b-tree (FTS5's 'optimize'), in one transaction.

    Each document's transaction leaves FTS5 a segment and its automerge keeps a dozen or more
    after a large ingest (18 over the KEPs); every MATCH looks each term up in every segment,
    and one with ``rowid IN (...)`` (snippets) does so once per row: over the KEPs a search's
    FTS5 queries take a third to half the time on one b-tree. Rankings are the same (bm25 reads
    the same counts). Costs about 0.5 s per 30,000 chunks, so a batch ingest does it once at
    its end, not ``--watch`` after every change (docs/knowledge.md, "Searching").
    """
    with transaction(conn):
        conn.execute("INSERT INTO knowledge_fts(knowledge_fts) VALUES ('optimize')")


def _delete_rows(conn: sqlite3.Connection, doc_id: int) -> None:
    conn.execute("DELETE FROM knowledge_fts WHERE rowid IN (SELECT id FROM knowledge_chunks WHERE document_id = ?)",
                 (doc_id,))
    conn.execute("DELETE FROM knowledge_chunks WHERE document_id = ?", (doc_id,))
    conn.execute("DELETE FROM knowledge_documents WHERE id = ?", (doc_id,))


def knowledge_state(conn: sqlite3.Connection) -> str:
    """``missing`` (no knowledge tables: a store from before issue 16 opened read-only, or a
    peer's replica with no knowledge shared), ``empty`` (nothing ingested) or ``present``."""
    try:
        found = conn.execute("SELECT 1 FROM knowledge_documents LIMIT 1").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return "missing"
        raise
    return "present" if found is not None else "empty"


def stored_hashes(conn: sqlite3.Connection, root: str) -> dict[str, str]:
    """Every document stored under ``root``: path -> content hash (dedupe and removals)."""
    return dict(conn.execute("SELECT path, hash FROM knowledge_documents WHERE root = ?", (root,)))


def read_document(conn: sqlite3.Connection, root: str, path: str, *, embeddings: bool = False) -> DocumentRecord | None:
    """The stored document with its chunks in order, or None."""
    row = conn.execute(f"SELECT {_DOC_COLUMNS} FROM knowledge_documents WHERE root = ? AND path = ?",
                       (root, path)).fetchone()
    return None if row is None else _record(conn, row, embeddings=embeddings)


def documents(conn: sqlite3.Connection, *, root: str | None = None, embeddings: bool = False) -> Iterator[DocumentRecord]:
    """Every stored document (under ``root`` when given), by root then path, with its chunks."""
    sql = f"SELECT {_DOC_COLUMNS} FROM knowledge_documents"
    rows = conn.execute(sql + " ORDER BY root, path" if root is None else sql + " WHERE root = ? ORDER BY path",
                        () if root is None else (root,)).fetchall()
    for row in rows:
        yield _record(conn, row, embeddings=embeddings)


def roots(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Each root ingested: ``root``, ``root_given`` (the latest spelling), ``documents``, ``chunks``."""
    out = []
    for root, given, docs in conn.execute(
            "SELECT root, max(root_given), count(*) FROM knowledge_documents GROUP BY root ORDER BY root"):
        chunks = conn.execute("SELECT count(*) FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id"
                              " WHERE d.root = ?", (root,)).fetchone()[0]
        out.append({"root": root, "root_given": given, "documents": docs, "chunks": chunks})
    return out


_DOC_COLUMNS = ("id, root, root_given, path, kind, language, title, tags, links, front_matter, size, mtime, hash")


def _record(conn: sqlite3.Connection, row: tuple, *, embeddings: bool) -> DocumentRecord:
    (doc_id, root, given, path, kind, language, title, tags, links, front, size, mtime, digest) = row
    chunks = [ChunkRecord(ordinal=o, heading=h, start_line=s, end_line=e, text=t, mentions=json.loads(m),
                          embedding=v if embeddings else None)
              for o, h, s, e, t, m, v in conn.execute(
                  "SELECT ordinal, heading, start_line, end_line, text, mentions, embedding FROM knowledge_chunks"
                  " WHERE document_id = ? ORDER BY ordinal", (doc_id,))]
    return DocumentRecord(root=root, root_given=given, path=path, kind=kind, language=language, title=title,
                          tags=json.loads(tags), links=json.loads(links), front_matter=json.loads(front), size=size,
                          mtime=mtime, hash=digest, chunks=chunks)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)
