"""The knowledge tables (the store's ``knowledge`` component of migrations, see
core/store/migrations.py): what ``tessera ingest`` made of files, and the full-text index over it.
Kept out of core/knowledge/ so that opening the store imports nothing of ingestion or search.
Writes go through core/knowledge/index.py only, one document per transaction.

- ``knowledge_documents``: one row per ingested file (or JSONL document), keyed by its canonical
  root (absolute, symlinks resolved) and its path relative to that root ('/'-separated).
  ``root_given`` is the root as the user typed it. ``hash`` is the SHA-256 of the content: an
  unchanged file is not written again. tags, links and front_matter are JSON.
- ``knowledge_chunks``: the document split into parts (a markdown section, a top-level definition,
  a paragraph), in order; ``heading`` is the section's heading path ("Design > Risks");
  ``mentions`` (JSON) the Kubernetes resources the text names (core/knowledge/mentions.py);
  ``embedding`` the chunk's vector (core/knowledge/embedding.py), NULL when none was made.
- ``knowledge_fts``: FTS5 over each chunk (rowid = the chunk's id), porter-stemmed, with prefix
  indexes for ``word*`` queries.
- ``knowledge_changes``: every upsert and delete in order (AUTOINCREMENT, so ids are never
  reused): a peer's cursor into what changed under a shared path (core/peers/pages.py).
"""

from tessera.core.store.migrations import Component

MIGRATIONS = Component("knowledge", (
    # 1: documents, chunks, the FTS5 index and the change log (issue 16)
    """
    CREATE TABLE knowledge_documents (
        id INTEGER PRIMARY KEY,
        root TEXT NOT NULL,
        root_given TEXT NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('markdown', 'code', 'text')),
        language TEXT,
        title TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        links TEXT NOT NULL DEFAULT '[]',
        front_matter TEXT NOT NULL DEFAULT '{}',
        size INTEGER NOT NULL,
        mtime TEXT NOT NULL,
        hash TEXT NOT NULL,
        ingested_at TEXT NOT NULL,
        UNIQUE (root, path)
    );
    CREATE TABLE knowledge_chunks (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        heading TEXT NOT NULL DEFAULT '',
        start_line INTEGER NOT NULL,
        end_line INTEGER NOT NULL,
        text TEXT NOT NULL,
        mentions TEXT NOT NULL DEFAULT '[]',
        embedding BLOB,
        UNIQUE (document_id, ordinal)
    );
    CREATE VIRTUAL TABLE knowledge_fts USING fts5(
        title, heading, text, path,
        tokenize = 'porter unicode61 remove_diacritics 2',
        prefix = '2 3'
    );
    CREATE TABLE knowledge_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        root TEXT NOT NULL,
        path TEXT NOT NULL,
        op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
        hash TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX knowledge_changes_path ON knowledge_changes(root, path);
    """,
))
