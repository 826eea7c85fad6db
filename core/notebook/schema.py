"""The notebooks' tables (their component of the store's migrations, see core/store/migrations.py)."""

from tessera.core.store.migrations import Component

MIGRATIONS = Component("notebooks", (
    # 1: notebooks, each a CRDT document kept as its binary updates (compacted now and then)
    """
    CREATE TABLE notebooks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE TABLE notebook_updates (
        id INTEGER PRIMARY KEY,
        notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
        data BLOB NOT NULL,
        time TEXT NOT NULL
    );
    CREATE INDEX notebook_updates_notebook ON notebook_updates(notebook_id, id);
    """,
    # 2: the last result of each cell, to report what changed between runs
    """
    CREATE TABLE cell_results (
        notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
        cell_id TEXT NOT NULL,
        rows TEXT NOT NULL,
        time TEXT NOT NULL,
        PRIMARY KEY (notebook_id, cell_id)
    );
    """,
    # 3: update ids are never reused (AUTOINCREMENT). A peer's cursor on a shared notebook is the
    # last update id it received (core/peers/pages.py); without AUTOINCREMENT a compaction that
    # deletes a notebook's every update, or a notebook removed and made again, gave new updates
    # ids at or below that cursor, and the peer never received them.
    """
    CREATE TABLE notebook_updates_v3 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
        data BLOB NOT NULL,
        time TEXT NOT NULL
    );
    INSERT INTO notebook_updates_v3(id, notebook_id, data, time) SELECT id, notebook_id, data, time FROM notebook_updates;
    DROP TABLE notebook_updates;
    ALTER TABLE notebook_updates_v3 RENAME TO notebook_updates;
    CREATE INDEX notebook_updates_notebook ON notebook_updates(notebook_id, id);
    """,
    # 4: typing runs. A live editor stores one update per keystroke but the log gets one
    # cell_edited event per (cell, author) per run of typing (repository.TYPING_RUN_SECONDS): this
    # is when each author last edited each cell, so every process editing the store (serve's
    # collaboration host, the dashboard, `cell edit`) applies the same rule.
    """
    CREATE TABLE notebook_typing (
        notebook_id TEXT NOT NULL REFERENCES notebooks(id) ON DELETE CASCADE,
        cell_id TEXT NOT NULL,
        author TEXT NOT NULL,
        last_edit REAL NOT NULL,
        PRIMARY KEY (notebook_id, cell_id, author)
    );
    """,
))
