"""The peer tables (the store's ``peers`` component of migrations, see core/store/migrations.py):
this node's name and the peer list. Kept out of core/peers/ so that opening the store imports
nothing of the peer protocol. Lookups are in core/peers/peer_list.py."""

from tessera.core.store.migrations import Component

MIGRATIONS = Component("peers", (
    # 1: the name peers see (one row) and the peer list (issue 14)
    """
    CREATE TABLE node_profile (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        name TEXT NOT NULL
    );
    CREATE TABLE peers (
        node_id TEXT PRIMARY KEY CHECK (length(node_id) = 64),
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'editor')),
        publish INTEGER NOT NULL DEFAULT 0 CHECK (publish IN (0, 1)),
        subscribe INTEGER NOT NULL DEFAULT 0 CHECK (subscribe IN (0, 1)),
        added_at TEXT NOT NULL
    )
    """,
))
