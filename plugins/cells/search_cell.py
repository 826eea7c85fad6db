"""The ``search`` cell: its source is the text ``tessera search`` takes (FTS5 syntax, plain words
welcome), optionally after option lines ``mode: bm25|semantic|hybrid``, ``limit: N`` and
``per: document|chunk``; its rows are the hits, best first (docs/knowledge.md, "Searching").

Live: with ``refresh=watch`` (or ``every:N``) a dashboard runs the cell again every couple of
seconds. While the knowledge index has not changed (knowledge_changes' largest id, one indexed
read) the cell answers with the result it made last, so a pane that nothing changed costs next to
nothing; after an ingest it searches again and the pane shows the new hits.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from tessera.core.errors import QueryError, printable

COLUMNS = ["score", "path", "title", "heading", "snippet", "start_line"]  # the store is this node's: no source column
OPTIONS = {"mode": ("bm25", "semantic", "hybrid"), "per": ("document", "chunk")}
DEFAULT_LIMIT = 10
_OPTION_LINE = re.compile(r"\s*(mode|limit|per)\s*:\s*(\S+)\s*")
_CACHED_TEXTS = 64  # results kept per process (one per cell text and options)


def parse_source(source: str, where: str) -> tuple[str, dict[str, Any]]:
    """The search text and the options (mode, limit, per) of a cell's source.

    Raises:
        QueryError naming the cell for a bad option value or a source without text.
    """
    from tessera.core.knowledge.search import MAX_LIMIT

    options: dict[str, Any] = {"mode": "hybrid", "limit": DEFAULT_LIMIT, "per": "document"}
    lines = source.split("\n")
    while lines and (_OPTION_LINE.fullmatch(lines[0]) or not lines[0].strip()):
        m = _OPTION_LINE.fullmatch(lines.pop(0))
        if m is None:
            continue
        key, value = m.group(1), m.group(2)
        if key == "limit":
            if not value.isdigit() or not 0 < int(value) <= MAX_LIMIT:
                raise QueryError(f"{where}: 'limit: {printable(value)}' is not a number of hits",
                                 hint=f"use a whole number from 1 to {MAX_LIMIT}")
            options[key] = int(value)
        elif value not in OPTIONS[key]:
            raise QueryError(f"{where}: '{key}: {printable(value)}' is not a choice",
                             hint=f"{key}: {' | '.join(OPTIONS[key])}")
        else:
            options[key] = value
    text = "\n".join(lines).strip()
    if not text:
        raise QueryError(f"{where} has no text to search for",
                         hint="write the words, after option lines such as 'mode: bm25' or 'limit: 20'")
    return text, options


class SearchCell:
    name = "search"
    fence = "search"
    runnable = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple, tuple[int, Any]] = {}  # (store, text, options) -> (index version, Result)

    def run(self, cell: dict, context: Any) -> Any:
        from tessera.core.knowledge.search import searcher

        where = f"search cell {context.notebook}/{cell.get('number', '?')}"
        text, options = parse_source(cell.get("source") or "", where)
        finder = searcher(context.conn)
        key = (_store_of(context), text, tuple(sorted(options.items())))
        version = finder.version()
        with self._lock:
            cached = self._last.get(key)
        if cached is not None and cached[0] == version:
            return _copy(cached[1])
        hits = finder.search(text, limit=options["limit"], mode=options["mode"], per=options["per"])
        result = _result(hits, per=options["per"])
        with self._lock:
            if len(self._last) >= _CACHED_TEXTS:
                self._last.pop(next(iter(self._last)))
            self._last[key] = (version, result)
        return _copy(result)


def _store_of(context: Any) -> Any:
    """What tells stores apart in the cache: the store's file (a closed connection's id can be
    reused by another store's)."""
    try:
        return context.store_path()
    except Exception:  # noqa: BLE001 - an in-memory store has no file: its connection it is
        return id(context.conn)


def _result(hits: list[Any], *, per: str) -> Any:
    from tessera.core.result import Result

    rows = [{c: hit.as_dict()[c] for c in COLUMNS} for hit in hits]
    # a document is the same row when its score or snippet changes (per chunk: the same section)
    keys = [f"{h.source}\x00{h.root}\x00{h.path}" + (f"\x00{h.start_line}" if per == "chunk" else "") for h in hits]
    return Result(columns=list(COLUMNS), rows=rows, keys=keys)


def _copy(result: Any) -> Any:
    """A Result of its own for the caller (front ends may cut or reorder its lists)."""
    from tessera.core.result import Result

    return Result(columns=list(result.columns), rows=[dict(r) for r in result.rows], keys=list(result.keys))
