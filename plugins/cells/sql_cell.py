"""The ``sql`` cell: one read-only SQL statement over the store (events, notebooks,
cell_results...). It runs on its own connection opened with ``mode=ro`` and ``query_only``, and
an authorizer refuses anything but reading, so a statement that would write fails with a clear
message instead of changing the store."""

from __future__ import annotations

import sqlite3
from typing import Any

from tessera.core.errors import QueryError

_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
            getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


def _value(v: Any) -> Any:
    return v.hex() if isinstance(v, (bytes, bytearray, memoryview)) else v


class SqlCell:
    name = "sql"
    fence = "sql"
    runnable = True

    def run(self, cell: dict, context: Any) -> Any:
        from pathlib import Path

        from tessera.core.result import Result

        text = (cell.get("source") or "").strip()
        where = f"sql cell {context.notebook}/{cell.get('number', '?')}"
        if not text:
            raise QueryError(f"{where} has no statement")
        uri = Path(context.store_path()).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            conn.execute("PRAGMA query_only = ON")
            denied: list[int] = []

            def authorize(action: int, *args: Any) -> int:
                if action in _ALLOWED:
                    return sqlite3.SQLITE_OK
                denied.append(action)
                return sqlite3.SQLITE_DENY

            conn.set_authorizer(authorize)
            try:
                cur = conn.execute(text)
                fetched = cur.fetchall()
            except sqlite3.DatabaseError as exc:
                msg = str(exc)
                if denied or "readonly" in msg or "read-only" in msg or "query_only" in msg:
                    raise QueryError(f"{where} is read-only: only SELECT (and WITH ... SELECT) statements run here",
                                     hint=f"sqlite said: {msg}") from None
                raise QueryError(f"{where}: {msg}") from None
            except sqlite3.Warning as exc:  # e.g. several statements at once
                raise QueryError(f"{where}: {exc}", hint="one statement per cell") from None
        finally:
            conn.close()
        columns: list[str] = []
        for d in cur.description or []:
            name, n = d[0], 1
            while name in columns:
                n += 1
                name = f"{d[0]}_{n}"
            columns.append(name)
        rows = [{c: _value(v) for c, v in zip(columns, r, strict=True)} for r in fetched]
        return Result(columns=columns, rows=rows)
