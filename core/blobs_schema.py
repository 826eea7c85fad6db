"""The blob component of the store's migrations (core/store/migrations.py): the content-addressed
blob store's tables. The bytes live in files under the data home's ``blobs/`` (core/blobs/blob_store.py);
these tables hold what each blob is (its manifest), who may fetch it, and how far a fetch got."""

from tessera.core.store.migrations import Component

MIGRATIONS = Component("blobs", (
    # 1: blobs (issue 15). blobs: one row per blob this node holds or is fetching: its id (the
    # SHA-256 of its chunk list, core/blobs/manifest.py), size, chunk size and the chunks'
    # SHA-256s (32 bytes each, concatenated); complete = 1 once its file is whole, verified and in
    # place; name: the file it was put from (shown by `blob list`, never used as a path).
    # blob_grants: which peers may fetch it (node ids). blob_progress: the chunks of an
    # incomplete fetch already verified and written to its partial file, one row per chunk, so a
    # fetch killed at any moment resumes from them.
    """
    CREATE TABLE blobs (
        id TEXT PRIMARY KEY CHECK (length(id) = 64),
        size INTEGER NOT NULL CHECK (size >= 0),
        chunk_size INTEGER NOT NULL CHECK (chunk_size > 0),
        chunks BLOB NOT NULL,
        complete INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),
        name TEXT NOT NULL DEFAULT '',
        added_at TEXT NOT NULL
    );
    CREATE TABLE blob_grants (
        blob_id TEXT NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
        node_id TEXT NOT NULL CHECK (length(node_id) = 64),
        added_at TEXT NOT NULL,
        PRIMARY KEY (blob_id, node_id)
    );
    CREATE TABLE blob_progress (
        blob_id TEXT NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
        chunk INTEGER NOT NULL CHECK (chunk >= 0),
        PRIMARY KEY (blob_id, chunk)
    ) WITHOUT ROWID
    """,
))
