"""The event log's tables (its component of the store's migrations, see core/store/migrations.py)."""

from tessera.core.store.migrations import Component

MIGRATIONS = Component("events", (
    # 1: the event log (DESIGN §8), a hash chain ordered by seq
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        time TEXT NOT NULL,
        subject TEXT NOT NULL,
        type TEXT NOT NULL,
        actor TEXT NOT NULL,
        correlation TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX events_time ON events(time);
    CREATE INDEX events_correlation ON events(correlation);
    """,
    # 2: many nodes (issue 13): events keyed by (actor, seq), one hash chain per actor; the rowid
    # is the local arrival order (tail, follow). The columns stay as they were, so SQL cells and
    # anything inserting by position keep working. event_chains holds each chain's anchor (where
    # it starts after a prune; was meta.chain_anchor) and its head (where it must end), and for
    # this node's own chain the head's signature. The old log's one chain becomes the local
    # actor's chain: its actor becomes the node id when the store had none yet, and its head is
    # left unsigned (signature NULL) until the next append, verify or checkpoint signs it (SQL
    # cannot sign).
    """
    CREATE TABLE events_v2 (
        seq INTEGER NOT NULL,
        id TEXT NOT NULL UNIQUE,
        time TEXT NOT NULL,
        subject TEXT NOT NULL,
        type TEXT NOT NULL,
        actor TEXT NOT NULL,
        correlation TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        UNIQUE (actor, seq)
    );
    INSERT INTO events_v2(rowid, seq, id, time, subject, type, actor, correlation, data, prev_hash, hash)
        SELECT seq, seq, id, time, subject, type, actor, correlation, data, prev_hash, hash FROM events ORDER BY seq;
    DROP TABLE events;
    ALTER TABLE events_v2 RENAME TO events;
    CREATE INDEX events_time ON events(time);
    CREATE INDEX events_correlation ON events(correlation);
    CREATE TABLE event_chains (
        actor TEXT PRIMARY KEY,
        anchor_seq INTEGER NOT NULL,
        anchor_hash TEXT NOT NULL,
        head_seq INTEGER NOT NULL,
        head_hash TEXT NOT NULL,
        head_time TEXT,
        signature TEXT,
        public_key TEXT
    );
    INSERT OR IGNORE INTO meta(key, value)
        SELECT 'node_id', actor FROM events ORDER BY rowid DESC LIMIT 1;
    INSERT INTO event_chains(actor, anchor_seq, anchor_hash, head_seq, head_hash)
        SELECT node.value,
               coalesce((SELECT json_extract(value, '$[0]') FROM meta WHERE key = 'chain_anchor'), 0),
               coalesce((SELECT json_extract(value, '$[1]') FROM meta WHERE key = 'chain_anchor'),
                        '0000000000000000000000000000000000000000000000000000000000000000'),
               0, ''
        FROM meta node
        WHERE node.key = 'node_id'
          AND (EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM meta WHERE key = 'chain_anchor'));
    UPDATE event_chains SET head_seq = anchor_seq, head_hash = anchor_hash;
    UPDATE event_chains SET (head_seq, head_hash, head_time) =
        (SELECT seq, hash, time FROM events WHERE events.actor = event_chains.actor ORDER BY seq DESC LIMIT 1)
        WHERE EXISTS (SELECT 1 FROM events WHERE events.actor = event_chains.actor);
    DELETE FROM meta WHERE key = 'chain_anchor'
    """,
))
