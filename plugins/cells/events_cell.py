"""The ``events`` cell: its source is a subject pattern (``*`` one token, ``>`` the rest; empty
means every event); the rows are the matching events of the store's log, oldest first."""

from __future__ import annotations

from typing import Any

COLUMNS = ["seq", "time", "subject", "type", "actor", "correlation", "data"]


class EventsCell:
    name = "events"
    fence = "events"
    runnable = True

    def run(self, cell: dict, context: Any) -> Any:
        from tessera.core import events
        from tessera.core.result import Result

        pattern = (cell.get("source") or "").strip() or ">"
        found = events.read(context.conn, pattern=pattern)
        rows = [{c: getattr(e, c) for c in COLUMNS} for e in found]
        return Result(columns=list(COLUMNS), rows=rows, keys=[e.id for e in found])
