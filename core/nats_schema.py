"""The NATS bridge's tables (the store's ``nats`` component of migrations, see
core/store/migrations.py): how far ``tessera nats push`` got into this node's chain on each
server and stream, and how far ``tessera nats pull`` got through each stream (docs/nats.md).
Kept out of core/nats/ so that opening the store imports nothing of nats-py. Reads for the other
parts (doctor, the status cell) are in core/nats/cursors.py.

- ``nats_push_cursors``: per (server, stream, pattern): ``seq`` is the last seq of this node's own
  chain the server acked (the outbox is every own event after it that matches the pattern; it
  advances only on the ack). ``acked_at`` when it last advanced, ``last_error`` the last failure
  (NULL after a success).
- ``nats_pull_cursors``: per (server, stream): ``stream_seq`` the last stream sequence applied
  (ingested into its actor's chain, or skipped as this node's own), ``pulled_at``, ``last_error``.
"""

from tessera.core.store.migrations import Component

MIGRATIONS = Component("nats", (
    # 1: push and pull cursors (issue 17)
    """
    CREATE TABLE nats_push_cursors (
        server TEXT NOT NULL,
        stream TEXT NOT NULL,
        pattern TEXT NOT NULL,
        seq INTEGER NOT NULL DEFAULT 0 CHECK (seq >= 0),
        acked_at TEXT,
        last_error TEXT,
        PRIMARY KEY (server, stream, pattern)
    );
    CREATE TABLE nats_pull_cursors (
        server TEXT NOT NULL,
        stream TEXT NOT NULL,
        stream_seq INTEGER NOT NULL DEFAULT 0 CHECK (stream_seq >= 0),
        pulled_at TEXT,
        last_error TEXT,
        PRIMARY KEY (server, stream)
    )
    """,
))
