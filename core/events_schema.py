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
))
