"""The live-collaboration tables (the store's ``collab`` component of migrations, see
core/store/migrations.py). Kept out of core/collab/ so that opening the store imports nothing of
the collaboration code. Lookups are in core/collab/presence.py (who is in a notebook) and
core/collab/local_copy.py (this node's copies of peers' notebooks).

- ``collab_presence``: who has a notebook of this node open now: this node's own front ends
  (``location`` 'local', announced by them every few seconds) and the peers connected to its
  room in ``tessera serve`` (``location`` 'peer', mirrored by the room). A row is fresh while
  ``seen`` (Unix seconds) is within presence.PRESENCE_TTL; stale rows are ignored and swept.
- ``collab_copies`` / ``collab_copy_updates``: the client side. For each peer notebook opened
  live, its id at the owner and the document as binary CRDT updates; ``pending`` = 1 marks a
  local edit the owner has not yet confirmed (re-sent on reconnect; idempotent).
"""

from tessera.core.store.migrations import Component

MIGRATIONS = Component("collab", (
    # 1: presence, and local copies of peers' notebooks (issue 15)
    """
    CREATE TABLE collab_presence (
        notebook_id TEXT NOT NULL,
        client TEXT NOT NULL,
        name TEXT NOT NULL,
        node TEXT NOT NULL,
        cell TEXT,
        location TEXT NOT NULL CHECK (location IN ('local', 'peer')),
        seen REAL NOT NULL,
        PRIMARY KEY (notebook_id, client)
    );
    CREATE TABLE collab_copies (
        peer TEXT NOT NULL CHECK (length(peer) = 64),
        notebook TEXT NOT NULL,
        notebook_id TEXT,
        role TEXT,
        owner TEXT,
        updated TEXT NOT NULL,
        PRIMARY KEY (peer, notebook)
    );
    CREATE TABLE collab_copy_updates (
        id INTEGER PRIMARY KEY,
        peer TEXT NOT NULL,
        notebook TEXT NOT NULL,
        data BLOB NOT NULL,
        pending INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1)),
        FOREIGN KEY (peer, notebook) REFERENCES collab_copies(peer, notebook) ON DELETE CASCADE
    );
    CREATE INDEX collab_copy_updates_copy ON collab_copy_updates(peer, notebook, id);
    """,
))
