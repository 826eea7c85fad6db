"""The push and pull cursors (core/nats_schema.py) as the other parts read them: what is still
to send (the lag) per server and stream, for `tessera doctor` and the status cell. The cursors
are written by the push and pull themselves."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class PushCursor:
    server: str
    stream: str
    pattern: str
    seq: int
    acked_at: str | None
    last_error: str | None
    lag: int  # this node's own events past the cursor (all of them, before the pattern's filter)


@dataclass(frozen=True)
class PullCursor:
    server: str
    stream: str
    stream_seq: int
    pulled_at: str | None
    last_error: str | None


def has_nats_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'nats_push_cursors'").fetchone() is not None


def push_cursors(conn: sqlite3.Connection) -> list[PushCursor]:
    from tessera.core.events import last_seq

    top = last_seq(conn)
    return [PushCursor(*r, max(0, top - r[3])) for r in conn.execute(
        "SELECT server, stream, pattern, seq, acked_at, last_error FROM nats_push_cursors ORDER BY server, stream, pattern")]


def pull_cursors(conn: sqlite3.Connection) -> list[PullCursor]:
    return [PullCursor(*r) for r in conn.execute(
        "SELECT server, stream, stream_seq, pulled_at, last_error FROM nats_pull_cursors ORDER BY server, stream")]
