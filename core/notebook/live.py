"""Live cells: run a notebook's cells, then keep them current by their refresh policy.

- ``watch`` query cells over sources that can watch follow the shared watch caches (changes are
  evaluated incrementally, see core/watch/); over other sources, and for sql/events cells, they
  are re-run every WATCH_FALLBACK seconds;
- ``every:N`` cells are re-run every N seconds (files are read again);
- ``manual`` cells run once.

Every change is recorded with cells.record_result, so it lands in ``cell_results`` and as a
``query.<notebook>.<cell>.changed`` event, exactly as ``notebook run`` records it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

WATCH_FALLBACK = 2.0


@dataclass
class LiveCell:
    """One cell being kept current: a LiveQuery (cache-driven) or a period in seconds (or neither:
    run once)."""

    cell: dict
    live: Any = None
    period: float | None = None
    due: float = 0.0


def plan_cells(cells: list[dict], context: Any, hub: Any) -> list[LiveCell]:
    """How each runnable cell will be kept current (see the module docstring)."""
    from tessera.core.notebook.cells import cell_type
    from tessera.core.notebook.model import refresh_seconds
    from tessera.core.watch.cached_source import can_watch
    from tessera.core.watch.live import LiveQuery

    out = []
    for cell in cells:
        if not getattr(cell_type(cell["type"]), "runnable", True):
            continue
        policy = cell.get("refresh") or "manual"
        seconds = refresh_seconds(policy)
        if policy == "watch" and cell["type"] == "query":
            sources = context.sources_for(cell.get("sources") or [])
            if all(can_watch(s) for s in sources):
                live = LiveQuery(cell["source"], sources, hub, namespace=context.namespace,
                                 all_namespaces=context.all_namespaces)
                out.append(LiveCell(cell, live=live))
                continue
            out.append(LiveCell(cell, period=WATCH_FALLBACK))
        elif policy == "watch":
            out.append(LiveCell(cell, period=WATCH_FALLBACK))
        else:
            out.append(LiveCell(cell, period=float(seconds) if seconds else None))
    return out


def watch_notebook(conn: Any, name: str, context: Any, *, hub: Any, stop: Any, number: int | None = None,
                   on_changes: Callable[[dict, list[dict]], None],
                   on_error: Callable[[dict, Exception], None]) -> None:
    """Run the notebook's cells (or cell ``number``) and keep them current until ``stop`` is set.

    Args:
        conn: the store.
        name: the notebook.
        context: a cells.CellContext (default sources, contexts, namespace...).
        hub: the CacheHub watch cells share.
        stop: a threading.Event.
        number: only this cell.
        on_changes: called with (cell, row changes) after each evaluation that changed something
            (the first evaluation reports every row as added).
        on_error: called with (cell, TesseraError) when an evaluation fails; the cell keeps its
            last rows and is tried again at its next turn.
    """
    from tessera.core.errors import TesseraError
    from tessera.core.notebook import store
    from tessera.core.notebook.cells import record_result, run_cell
    from tessera.core.watch.live import ChangeCollector

    nb = store.load(conn, name)
    cells = nb.cells()
    if number is not None:
        nb.cell(number)  # a bad number raises here
        cells = [cells[number - 1]]
    context.notebook = name
    collector = ChangeCollector(hub)
    live_cells = plan_cells(cells, context, hub)

    def evaluate(lc: LiveCell, changed: dict | None) -> None:
        try:
            if lc.live is not None:
                changed_rows = lc.live.refresh(changed)
                if lc.live.error is not None:
                    raise lc.live.error
                if not changed_rows and lc.live.runs > 1:
                    return
                result = lc.live.result
            else:
                for source in context.sources_for(lc.cell.get("sources") or []):
                    if callable(getattr(source, "refresh", None)):
                        source.refresh()
                result = run_cell(lc.cell, context)
        except TesseraError as err:
            on_error(lc.cell, err)
            return
        changes = record_result(conn, name, nb.id, lc.cell, result)  # type: ignore[attr-defined]
        if changes:
            on_changes(lc.cell, changes)

    now = time.monotonic()
    for lc in live_cells:
        evaluate(lc, None)
        lc.due = now + lc.period if lc.period else float("inf")
    while not stop.is_set():
        periodic = [lc.due for lc in live_cells if lc.period]
        timeout = max(0.0, min(periodic) - time.monotonic()) if periodic else 1.0
        woke, keys, oids = collector.wait(min(timeout, 1.0))
        if stop.is_set():
            return
        if woke:
            for lc in live_cells:
                if lc.live is not None and lc.live.reads(keys):
                    evaluate(lc, oids)
        now = time.monotonic()
        for lc in live_cells:
            if lc.period and lc.due <= now:
                evaluate(lc, None)
                lc.due = now + lc.period
