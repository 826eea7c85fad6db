"""Cell types and running cells.

A cell type is a class with ``name``, ``fence`` (the markdown fence language), ``runnable`` and
``run(cell, context) -> Result``; the bundled ones live in plugins/cells and are loaded without
scanning entry points (as core/sources/registry.py does for sources); others are found under the entry-point
group ``tessera.cells``.

``run_notebook`` runs cells once, keeps each cell's rows in ``cell_results`` and, when the rows
differ from the previous run, appends ``query.<notebook>.<cell id>.changed`` with the row diff
(tessera.core.watch.live_query.diff_rows) — in one transaction per cell.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, TextIO

from tessera.core.errors import UsageError

CELL_GROUP = "tessera.cells"
# The order types are offered in (errors, completion); entry point metadata keeps none.
LISTED_FIRST = ("query", "markdown", "sql", "events", "search", "status")
_loaded: dict[str, Any] = {}


def cell_type_names() -> list[str]:
    """Every known cell type: the bundled ones (query, markdown, sql, events, search, status), then installed
    plugins, sorted (all from the ``tessera.cells`` entry points, see core/entry_points.py)."""
    from tessera.core import entry_points

    first = {name: i for i, name in enumerate(LISTED_FIRST)}
    return sorted(entry_points.names(CELL_GROUP), key=lambda name: (first.get(name, len(first)), name))


def cell_type(name: str) -> Any:
    """The cell type (an instance) called ``name``.

    Raises:
        UsageError "no cell type 'x' (types: ...)".
    """
    if name in _loaded:
        return _loaded[name]
    from tessera.core import entry_points

    ep = entry_points.find(CELL_GROUP, name)
    if ep is None:
        raise UsageError(f"no cell type '{name}' (types: {', '.join(cell_type_names())})")
    cls = ep.load()
    _loaded[name] = cls() if isinstance(cls, type) else cls
    return _loaded[name]


def fence_language(type_name: str) -> str:
    """The markdown fence language for a type (``cypher`` for query cells); the type's own name
    when the type is not installed."""
    try:
        return getattr(cell_type(type_name), "fence", type_name) or type_name
    except UsageError:
        return type_name


def type_for_fence(language: str) -> str:
    """The cell type a bare fence language stands for (``cypher`` -> query)."""
    for name in cell_type_names():
        try:
            if getattr(cell_type(name), "fence", name) == language:
                return name
        except UsageError:
            continue
    return language


@dataclass
class CellContext:
    """What a running cell may use.

    conn: the store connection; db_path: the store file (sql cells open it read-only);
    notebook: the notebook's name; default_sources / contexts / kubeconfig / namespace /
    all_namespaces: for query cells without sources of their own (like ``tessera query``'s
    flags); stdin: what a ``-`` source reads; speed / loop: how ``replay:`` sources play.
    """

    conn: sqlite3.Connection
    notebook: str = ""
    db_path: str | None = None
    default_sources: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    kubeconfig: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    stdin: TextIO | None = None
    speed: float = 1.0
    loop: bool = False
    _opened: dict = field(default_factory=dict)

    def sources_for(self, specs: list[str], query_contexts: tuple[str, ...] | list[str] = ()) -> list[Any]:
        """Open (once per run) the sources for these -s specs (none: the defaults).

        Args:
            query_contexts: the contexts the query names with ``IN`` (``query_sources`` finds
                them). Without specs they are opened too, as ``tessera query 'IN prod ...'``
                does, so a live cell watches them (and its pane names them).
        """
        from tessera.core.sources.opening import open_sources

        specs = list(specs) or list(self.default_sources)
        contexts = [] if specs else list(self.contexts) + [c for c in query_contexts if c not in self.contexts]
        key = (tuple(specs), tuple(contexts))
        if key not in self._opened:
            self._opened[key] = open_sources(specs, contexts=contexts, kubeconfig=self.kubeconfig, stdin=self.stdin,
                                             speed=self.speed, loop=self.loop)
        return self._opened[key]

    def query_sources(self, cell: dict) -> list[Any]:
        """The sources a query cell reads: its own, else the defaults, plus its ``IN`` contexts."""
        return self.sources_for(cell.get("sources") or [], query_contexts(cell.get("source", "")))

    def store_path(self) -> str:
        if self.db_path:
            return self.db_path
        for _, name, path in self.conn.execute("PRAGMA database_list"):
            if name == "main":
                return path
        raise UsageError("the store has no file")


def query_contexts(text: str) -> tuple[str, ...]:
    """The contexts a query picks with a leading ``IN a, b`` (none for a query that does not
    parse: running it reports why)."""
    from tessera.core.errors import TesseraError
    from tessera.core.query.run import parse_query

    try:
        return tuple(parse_query(text).contexts)
    except TesseraError:
        return ()


def run_cell(cell: dict, context: CellContext) -> Any:
    """Run one cell (a dict from Notebook.cell / cells) with its type; returns a Result."""
    return cell_type(cell["type"]).run(cell, context)


def previous_rows(conn: sqlite3.Connection, notebook_id: str, cell_id: str) -> dict[str, dict] | None:
    """The rows stored for a cell by its last run (keyed as keyed_rows does), or None."""
    row = conn.execute("SELECT rows FROM cell_results WHERE notebook_id = ? AND cell_id = ?",
                       (notebook_id, cell_id)).fetchone()
    return json.loads(row[0]) if row else None


def record_result(conn: sqlite3.Connection, notebook: str, notebook_id: str, cell: dict, result: Any) -> list[dict]:
    """Store a cell's new rows and, when they differ from the stored ones, append
    ``query.<notebook>.<cell id>.changed`` with the diff; one transaction.

    Returns:
        the row changes (empty when nothing changed).
    """
    return record_rows(conn, notebook, notebook_id, cell, result)[0]


def record_rows(conn: sqlite3.Connection, notebook: str, notebook_id: str, cell: dict, result: Any,
                previous: dict[str, dict] | None = None, *, store_rows: bool = True) -> tuple[list[dict], dict[str, dict]]:
    """record_result for live runners, which keep what they recorded last: given ``previous``
    (the rows of their last record), the stored rows are not read back and parsed again.
    ``store_rows=False`` appends the event only and leaves ``cell_results`` for a later record
    (writing 10,000 rows costs far more than their diff).

    Returns:
        (the row changes, the rows now stored, keyed as keyed_rows gives them).
    """
    from tessera.core import events
    from tessera.core.store.db import transaction
    from tessera.core.watch.live_query import diff_rows, keyed_rows

    new = keyed_rows(result)
    when = events.now()
    with transaction(conn):
        old = previous if previous is not None else previous_rows(conn, notebook_id, cell["id"])
        changes = diff_rows(old or {}, new, when)
        if store_rows or previous is None:
            conn.execute(
                "INSERT INTO cell_results(notebook_id, cell_id, rows, time) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(notebook_id, cell_id) DO UPDATE SET rows = excluded.rows, time = excluded.time",
                (notebook_id, cell["id"], json.dumps(new, ensure_ascii=False, default=str), when))
        if changes:
            events.append(conn, f"query.{notebook}.{cell['id']}.changed", {
                "notebook": notebook, "notebook_id": notebook_id, "cell": cell["id"], "number": cell.get("number"),
                "type": cell["type"], "columns": list(result.columns), "rows": len(result.rows), "changes": changes,
            })
    return changes, new


@dataclass
class CellRun:
    """One cell's run: the cell (with number and row), its Result, and the row changes."""

    cell: dict
    result: Any
    changes: list[dict]


def run_notebook(conn: sqlite3.Connection, name: str, number: int | None = None, *,
                 context: CellContext | None = None, on_error: Any = None) -> list[CellRun]:
    """Run every runnable cell of the notebook (or only cell ``number``) once, in reading order.

    Markdown cells (and other non-runnable types) are skipped. Each result is recorded with
    record_result (so ``changed`` events carry the diff against the previous run).

    Args:
        on_error: called as ``on_error(cell, error)`` for a cell that fails with a TesseraError,
            and the run goes on with the next cell; None: the error propagates.
    """
    from tessera.core.errors import TesseraError

    from tessera.core.notebook import repository

    nb = repository.load(conn, name)
    cells = nb.cells()
    if number is not None:
        nb.cell(number)  # raises for a bad number
        cells = [cells[number - 1]]
    context = context or CellContext(conn, notebook=name)
    context.notebook = name
    out = []
    for cell in cells:
        kind = cell_type(cell["type"])
        if not getattr(kind, "runnable", True):
            continue
        try:
            result = kind.run(cell, context)
        except TesseraError as err:
            if on_error is None:
                raise
            on_error(cell, err)
            continue
        changes = record_result(conn, name, nb.id, cell, result)  # type: ignore[attr-defined]
        out.append(CellRun(cell, result, changes))
    return out
