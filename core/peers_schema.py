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
    # 2: sharing and sync (issue 14). peers.address: the peer's last known ticket (from pairing,
    # then from each hello it sends); last_sync / last_error: the end of our last pull from it.
    # node_profile.port: the UDP port this node's endpoint binds (`tessera serve`, `peer invite`),
    # chosen once so the ticket peers keep stays valid. peer_shares: what this node shares, each
    # item (`notebook:NAME`, `events:PATTERN`) with one peer (node_id) or with every peer it
    # publishes to ('*'). Nothing leaves that is not in peer_shares.
    """
    ALTER TABLE peers ADD COLUMN address TEXT NOT NULL DEFAULT '';
    ALTER TABLE peers ADD COLUMN last_sync TEXT;
    ALTER TABLE peers ADD COLUMN last_error TEXT;
    ALTER TABLE node_profile ADD COLUMN port INTEGER CHECK (port IS NULL OR port BETWEEN 1 AND 65535);
    CREATE TABLE peer_shares (
        item TEXT NOT NULL,
        node_id TEXT NOT NULL CHECK (node_id = '*' OR length(node_id) = 64),
        added_at TEXT NOT NULL,
        PRIMARY KEY (item, node_id)
    );
    """,
    # 3: the transfer figures of our last successful pull from the peer (issue 17, the status
    # cell's transfer rate): the bytes of the frames it sent us and the seconds from the first
    # request to the end of the pull (the dial and hello not included).
    """
    ALTER TABLE peers ADD COLUMN last_sync_bytes INTEGER CHECK (last_sync_bytes IS NULL OR last_sync_bytes >= 0);
    ALTER TABLE peers ADD COLUMN last_sync_seconds REAL CHECK (last_sync_seconds IS NULL OR last_sync_seconds >= 0);
    """,
))
