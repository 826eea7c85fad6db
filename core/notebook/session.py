"""Live cells: run a notebook's cells, then keep them current by their refresh policy.

- ``watch`` query cells over sources that can watch follow the shared watch caches (changes are
  evaluated incrementally, see core/watch/); over other sources, and for sql/events cells, they
  are re-run every WATCH_FALLBACK seconds;
- ``every:N`` cells are re-run every N seconds (files are read again);
- ``manual`` cells run once (and again when asked: ``run_now``).

``NotebookSession`` does this for every long-running front end (``notebook run --watch``,
``tessera dash``, ``tessera pane``): it owns one worker thread with its own store connection,
publishes a ``PaneState`` per cell, takes commands (run now, pause, resume, reload) from any
thread, and follows edits made to the notebook elsewhere (another process, the dashboard's own
editor) by watching the notebook's stored updates. Its ``editor`` (core/notebook/editor.py) is
how the front end showing it changes the notebook: queued, written in order off the front end's
thread through the store's functions, and followed by a reload.

Every change is recorded with cells.record_result, so it lands in ``cell_results`` and as a
``query.<notebook>.<cell>.changed`` event, exactly as ``notebook run`` records it. A session may
space those records out (``record_every``): the dashboard shows each change at once, and the
event then carries the diff since the previous record.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

WATCH_FALLBACK = 2.0
# A live runner appends each change's event at once (record_every), but rewrites a cell's whole
# stored rows (cell_results) at most this often, and when it stops.
STORE_ROWS_EVERY = 10.0
# With SessionOptions.freeze_gc: the youngest generation's collection threshold (CPython's
# default is 700), so that garbage collection stays out of the way of a dashboard's frames.
FROZEN_GC_YOUNG_THRESHOLD = 10_000
# With min_refresh: a watch cell is evaluated again at the soonest this many times the CPU its last
# evaluation took after it, so one pane takes at most about a tenth of a core (a tree view over
# 10,000 pods, evaluated in full, then refreshes every 2 s or so instead of every second).
EVAL_CPU_SPACING = 10.0
# Views drawn from the matched subgraph, which only full evaluations produce.
GRAPH_VIEWS = ("tree", "graph")
# The longest a worker waits between rounds when nothing is due (commands and edits wake it).
IDLE_ROUND_SECONDS = 1.0
# How often a session looks for edits made to its notebook elsewhere (PRAGMA data_version on a
# connection of its own, which costs microseconds): a keystroke typed in another process (a
# collaborator's, stored by `tessera serve`) reaches this one's screen within about this long.
FOLLOW_POLL_SECONDS = 0.01


@dataclass(frozen=True)
class PaneState:
    """What a front end shows for one cell; replaced (never mutated) on every change.

    cell: the cell's dict (id, number, row, type, source, view, refresh, sources, title).
    status: ``starting``, ``live`` (kept current by watch or a timer), ``idle`` (manual: ran
        once), ``paused``, ``error``, ``reconnecting`` (a watched source cannot be reached: the
        result is its last, retried with backoff) or ``static`` (a cell that does not run, such
        as markdown).
    result: the last good Result (kept while the cell is failing or paused), or None.
    error: the one-line error of the last evaluation, or None.
    fault: while ``reconnecting``, what is wrong and that it is being retried (one line).
    reconnected: when a lost source last answered again (RFC 3339), or None.
    refreshed: when the last evaluation succeeded (RFC 3339), or None.
    sources: the sources it reads, as ``-s`` specs or context names, for the pane's header.
    version: bumped on every change, so a front end can skip redrawing what it has drawn.
    """

    cell: dict
    status: str = "starting"
    result: Any = None
    error: str | None = None
    refreshed: str | None = None
    sources: tuple[str, ...] = ()
    version: int = 0
    fault: str | None = None
    reconnected: str | None = None

    @property
    def rows(self) -> int:
        """The number of result rows (0 before the first result)."""
        return len(self.result.rows) if self.result is not None else 0


@dataclass
class _LiveCell:
    """The worker's own record of a cell being kept current."""

    cell: dict
    live: Any = None          # a LiveQuery (cache-driven), or None
    period: float | None = None
    due: float = float("inf")
    paused: bool = False
    plan_key: tuple = ()
    record_due: float | None = None  # a result not yet recorded (record_every)
    last_record: float = 0.0
    pending: dict | None = None  # changes seen but not yet evaluated (min_refresh), by source
    live_due: float = float("inf")
    last_eval: float = 0.0
    eval_cpu: float = 0.0  # CPU seconds the last evaluation took (the worker's own clock)
    recorded: dict | None = None  # the rows of the last record
    rows_stored: float = 0.0  # when cell_results last got the full rows
    rows_pending: bool = False  # recorded changes whose rows cell_results does not hold yet
    reported: bool = False  # on_changes has had this cell's rows (its first report is every row)


def _plan_key(cell: dict, subgraph: bool) -> tuple:
    """What, when it changes, means the cell must be planned and run again (not just redrawn)."""
    return (cell["type"], cell.get("source", ""), tuple(cell.get("sources") or ()), cell.get("refresh") or "manual",
            subgraph)


def _source_names(sources: list[Any]) -> tuple[str, ...]:
    return tuple(getattr(s, "name", "?") or "?" for s in sources)


@dataclass
class SessionOptions:
    """How a session opens sources and records results.

    default_sources / contexts / kubeconfig / namespace / all_namespaces: as ``tessera query``'s
    flags, for cells without sources of their own. speed / loop: how recordings replay. stdin:
    what a ``-`` source reads.
    record_every: at most one record (``changed`` event) per cell per this many seconds; 0 records
    every change. With a spacing, the full rows in cell_results are rewritten at most every
    STORE_ROWS_EVERY seconds (and when the session stops).
    min_refresh: a watch cell is evaluated at most once per this many seconds; changes arriving
    meanwhile are gathered and applied together (0: on every change, as ``query --watch``).
    record: False keeps results out of this store altogether (no cell_results, no ``changed``
    events; on_changes is still called): a notebook that is not this node's (a peer's, run here
    with ``--run local``), or panes run at the owner for its peers (core/collab/pane_feed.py).
    presence: announce this front end in the notebook's presence (core/collab/presence.py: the
    owner's own dashboard, so peers see who is in it) and keep ``people`` current: everyone else
    in it, here and at peers' nodes. Only on a node that has a node key (it has peers).
    for_peers: cells run for someone else (owner-run panes, core/collab/pane_feed.py): read-only
    (a query cell that writes is refused in its pane, never planned), and Secret values stay
    hidden even where this node's user opted in to see them.
    freeze_gc: once the first results are in, move everything alive (the watch caches above all)
    out of the garbage collector's sight (gc.freeze): full collections otherwise walk every cached
    object and pause the whole process, the screen included. For front ends that own the process.
    """

    default_sources: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    kubeconfig: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    speed: float = 1.0
    loop: bool = False
    record_every: float = 0.0
    min_refresh: float = 0.0
    freeze_gc: bool = False
    stdin: Any = None
    record: bool = True
    for_peers: bool = False
    presence: bool = False


class NotebookSession:
    """A notebook's cells kept current on a worker thread.

    Args:
        db_path: the store file (the worker opens its own connection).
        name: the notebook.
        options: SessionOptions.
        number: only this cell (``tessera pane NB/N``); None: every cell.
        hub: the CacheHub to share (None: a new one, closed with the session).
        on_update: called from the worker with the new PaneState after every change of a pane.
        on_layout: called from the worker after the notebook's layout or cells changed (and once
            after the first load), with the session.
        on_changes: called from the worker with (cell, row changes) after each recorded change.
        on_error: called from the worker with (cell, TesseraError) when an evaluation fails.
        on_fault: called from the worker with (cell, notice) when a source the cell watches is
            lost (the notice says why; the cell is then ``reconnecting``), and with (cell, None)
            when it is back.
        document: where the notebook is read from and followed (see StoreDocument, the
            default: this node's store; core/collab/remote_session.py's ClientDocument: a
            peer's notebook, live over a collab connection).
        editor: how the front end edits it (default: a NotebookEditor on the store that reloads
            this session after each edit).
    """

    def __init__(self, db_path: str, name: str, options: SessionOptions | None = None, *, number: int | None = None,
                 hub: Any = None, on_update: Callable[[PaneState], None] | None = None,
                 on_layout: Callable[["NotebookSession"], None] | None = None,
                 on_changes: Callable[[dict, list[dict]], None] | None = None,
                 on_error: Callable[[dict, Exception], None] | None = None,
                 on_fault: Callable[[dict, str | None], None] | None = None,
                 document: Any = None, editor: Any = None):
        self.db_path = db_path
        self.name = name
        self.options = options or SessionOptions()
        self.number = number
        self._own_hub = hub is None
        self.hub = hub
        self.on_update = on_update or (lambda pane: None)
        self.on_layout = on_layout or (lambda session: None)
        self.on_changes = on_changes
        self.on_error = on_error
        self.on_fault = on_fault
        self.title = ""
        self.notebook_id: str | None = None
        self.layout: list[list[str]] = []
        self.panes: dict[str, PaneState] = {}
        self.failure: Exception | None = None  # why the worker stopped, if it failed
        self.subgraph: bool | None = None  # keep_subgraph's setting
        self.loaded = threading.Event()
        # Live collaboration (see core/collab/remote_session.py for a peer's notebook): who else
        # is in the notebook (options.presence), where the cells run (None: here, nothing to say),
        # the front end's cell, and the document version the panes show (grows with each change).
        self.people: list[dict] = []
        self.runs_at: str | None = None
        self.role: str | None = None
        self.status: str | None = None  # a peer's notebook: its connection (connecting, live, offline)
        self.reason: str | None = None
        self.doc_version: int | None = None
        self._cell: str | None = None
        self._presence: _Presence | None = None
        self._stop = threading.Event()
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._collector: Any = None
        self._thread: threading.Thread | None = None
        self.document = document if document is not None else StoreDocument(db_path, name)
        if editor is None:
            from tessera.core.notebook.editor import NotebookEditor

            # Edits made by the front end showing this session: written in order on the editor's
            # thread, then the session reloads (``editor.edit_cell(...)``, see core/notebook/editor.py).
            editor = NotebookEditor(db_path, after_edit=self.reload)
        self.editor = editor

    # --- commands (any thread) -------------------------------------------------------------

    def start(self) -> "NotebookSession":
        """Start the worker thread; returns the session."""
        self._thread = threading.Thread(target=self._thread_main, name=f"tessera-session-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Write the edits still queued on ``editor``, then stop the worker (recording what
        is still unrecorded) and wait for it."""
        self.editor.stop()
        self._stop.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run_now(self, cell_id: str) -> None:
        """Evaluate the cell again in full (a paused cell too, once)."""
        self._command("run", cell_id)

    def pause(self, cell_id: str) -> None:
        """Stop following the cell's changes; its last result stays on show."""
        self._command("pause", cell_id)

    def resume(self, cell_id: str) -> None:
        """Follow the cell again, starting with a full evaluation."""
        self._command("resume", cell_id)

    def reload(self) -> None:
        """Read the notebook again now (after an edit made through the store)."""
        self._command("reload", None)

    def set_cell(self, cell_id: str | None) -> None:
        """The cell the front end is in (its focused pane, or the cell being edited), for presence."""
        if cell_id != self._cell:
            self._cell = cell_id
            self._wake()

    def keep_subgraph(self, want: bool | None) -> None:
        """Keep the matched subgraph in results (True), drop it (False), or do as each cell's
        stored view says (None: only tree and graph views need it). A front end showing a view
        it does not save (``tessera pane --view tree``) sets this; cells are planned again."""
        self._command("subgraph", want)

    def _wants_subgraph(self, cell: dict) -> bool:
        return self.subgraph if self.subgraph is not None else cell.get("view") in GRAPH_VIEWS

    def _command(self, what: str, cell_id: str | None) -> None:
        self._commands.put((what, cell_id))
        self._wake()

    def _wake(self) -> None:
        if self._collector is not None:
            self._collector.wake.set()

    # --- the worker ------------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            self.run()
        except Exception as exc:  # reported to the front end, which decides how to show it
            self.failure = exc
            self.loaded.set()
            self.on_layout(self)

    def run(self) -> None:
        """Run the session in this thread until ``stop`` (``notebook run --watch`` calls it
        directly; ``start`` calls it on a worker thread)."""
        from tessera.core.notebook.cells import CellContext
        from tessera.core.store import db
        from tessera.core.watch.cache import CacheHub
        from tessera.core.watch.live_query import ChangeCollector

        if self.hub is None:
            self.hub = CacheHub()
        conn = db.connect(self.db_path)
        o = self.options
        self._context = (_peers_cell_context() if o.for_peers else CellContext)(conn, notebook=self.name, db_path=self.db_path,
                                    default_sources=list(o.default_sources), contexts=list(o.contexts),
                                    kubeconfig=o.kubeconfig, namespace=o.namespace, all_namespaces=o.all_namespaces,
                                    stdin=o.stdin, speed=o.speed, loop=o.loop)
        self._conn = conn
        self._collector = ChangeCollector(self.hub)
        self._cells: dict[str, _LiveCell] = {}
        try:
            self.document.open(conn, self._wake)
            self._load(first=True)
            if self.options.presence:
                self._presence = _Presence.start(conn, self.db_path)
            self.loaded.set()
            if self.options.freeze_gc:
                import gc

                gc.collect()
                gc.freeze()
                # Young collections every FROZEN_GC_YOUNG_THRESHOLD allocations, not 700: a
                # round's 10,000-row lists then mostly die before a collection sees them,
                # instead of being promoted and walked again by the older generations.
                gc.set_threshold(FROZEN_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
            while not self._stop.is_set():
                self._round()
            self._flush_records()
        finally:
            if self._presence is not None and self.notebook_id is not None:
                self._presence.withdraw(self.notebook_id)
            self.document.close()
            if self._own_hub:
                self.hub.close()
            conn.close()

    def _round(self) -> None:
        now = time.monotonic()
        dues = [min(lc.due, lc.live_due) for lc in self._cells.values() if not lc.paused]
        dues += [lc.record_due for lc in self._cells.values() if lc.record_due is not None]
        timeout = min([max(0.0, d - now) for d in dues] + [IDLE_ROUND_SECONDS])
        woke, keys, oids = self._collector.wait(timeout)
        if self._stop.is_set():
            return
        self._do_commands()
        self._follow_edits()
        if self._presence is not None and self.notebook_id is not None:
            people = self._presence.round(self.notebook_id, self._cell)
            if people is not None and people != self.people:
                self.people = people
                self.on_layout(self)
        health = self._collector.take_health()
        if health:
            # a watched source was lost or is back: its cells say so (and, back, catch up)
            for lc in list(self._cells.values()):
                if lc.live is not None and not lc.paused and lc.live.reads_source(health):
                    self._evaluate(lc, None, publish=True)
        now = time.monotonic()
        if woke and keys:
            for lc in list(self._cells.values()):
                if lc.live is not None and not lc.paused and lc.live.reads(keys):
                    pending = lc.pending if lc.pending is not None else {}
                    for source, ids in oids.items():
                        pending.setdefault(source, set()).update(ids)
                    lc.pending = pending
                    lc.live_due = min(lc.live_due, max(now, lc.last_eval + self._spacing(lc)))
        for lc in list(self._cells.values()):
            if lc.pending is not None and not lc.paused and lc.live_due <= now:
                changed, lc.pending, lc.live_due = lc.pending, None, float("inf")
                self._evaluate(lc, changed)
        now = time.monotonic()
        for lc in list(self._cells.values()):
            if lc.period and not lc.paused and lc.due <= now:
                self._evaluate(lc, None)
                lc.due = now + lc.period
            if lc.record_due is not None and lc.record_due <= now:
                self._record(lc)

    def _spacing(self, lc: _LiveCell) -> float:
        """How long after its last evaluation a watch cell with changes is evaluated again."""
        if not self.options.min_refresh:
            return 0.0  # every change at once, as query --watch
        return max(self.options.min_refresh, EVAL_CPU_SPACING * lc.eval_cpu)

    def _do_commands(self) -> None:
        while True:
            try:
                what, cell_id = self._commands.get_nowait()
            except queue.Empty:
                return
            if what in ("reload", "subgraph"):
                if what == "subgraph":
                    self.subgraph = cell_id  # type: ignore[assignment]  (the setting, not a cell)
                self._load(first=False)
                continue
            lc = self._cells.get(cell_id)
            if lc is None:
                continue
            if what == "pause" and not lc.paused:
                lc.paused = True
                self._publish(lc, status="paused")
            elif what == "resume" and lc.paused:
                lc.paused = False
                self._evaluate(lc, None, publish=True)
                lc.due = time.monotonic() + lc.period if lc.period else float("inf")
            elif what == "run":
                self._evaluate(lc, None, reload_sources=True, publish=True)

    def _follow_edits(self) -> None:
        """Reload when the notebook moved on (an edit here or elsewhere)."""
        if self.document.moved_on():
            self._load(first=False)

    def _load(self, *, first: bool) -> None:
        from tessera.core.notebook.cells import cell_type

        nb = self.document.read()
        self.notebook_id = nb.id  # type: ignore[attr-defined]
        if nb.name != self.name:  # renamed meanwhile
            self.name = nb.name
            self._context.notebook = nb.name
        cells = nb.cells()
        if self.number is not None:
            nb.cell(self.number)  # a bad number raises here (and ends the session)
            cells = [cells[self.number - 1]]
        self.title = nb.title
        layout = [[c["id"] for c in cells if c["row"] == r] for r in sorted({c["row"] for c in cells})]
        fresh: dict[str, _LiveCell] = {}
        to_run = []
        for cell in cells:
            old = self._cells.get(cell["id"])
            key = _plan_key(cell, self._wants_subgraph(cell))
            if old is not None and old.plan_key == key:
                old.cell = cell
                fresh[cell["id"]] = old
                pane = self.panes.get(cell["id"])
                if pane is not None and pane.cell != cell:
                    self._publish(old, cell=cell)
                continue
            if not getattr(cell_type(cell["type"]), "runnable", True):
                lc = _LiveCell(cell, plan_key=key)
                fresh[cell["id"]] = lc
                self._publish(lc, status="static", cell=cell, error=None)
                continue
            lc = self._plan(cell)
            if old is not None:
                lc.paused, lc.reported = old.paused, old.reported
            fresh[cell["id"]] = lc
            to_run.append(lc)
        for cell_id in set(self._cells) - set(fresh):
            self.panes.pop(cell_id, None)
        for lc in to_run:
            self._publish(lc, status="paused" if lc.paused else "starting", cell=lc.cell)
        self._cells = fresh
        self.layout = layout  # every cell in it has a pane by now
        self.doc_version = self.document.version  # after the panes: a reader seeing it sees them
        self.on_layout(self)
        now = time.monotonic()
        for lc in to_run:
            if lc.paused:
                continue
            self._evaluate(lc, None)
            lc.due = now + lc.period if lc.period else float("inf")
        if not first and to_run and self.options.freeze_gc:
            self._freeze_new_state()

    def _freeze_new_state(self) -> None:
        """After cells were planned and evaluated again (a view needing the subgraph, an edited
        query), move their new long-lived state (a 10,000-row live query's bindings and rows)
        out of the collector's sight, as run() does once at start-up: else every full collection
        walks it, and pauses the whole process (the screen included) for 100 ms and more. The
        young generations are collected first, so that their cyclic garbage is not frozen with it."""
        import gc

        gc.collect(1)
        gc.freeze()

    def _plan(self, cell: dict) -> _LiveCell:
        """How the cell will be kept current (see the module docstring)."""
        from tessera.core.errors import TesseraError
        from tessera.core.notebook.model import refresh_seconds
        from tessera.core.watch.cached_source import can_watch
        from tessera.core.watch.live_query import LiveQuery

        subgraph = self._wants_subgraph(cell)
        key = _plan_key(cell, subgraph)
        policy = cell.get("refresh") or "manual"
        if policy == "watch" and cell["type"] == "query" and not (self.options.for_peers and _writes(cell)):
            try:
                sources = self._context.query_sources(cell)
            except TesseraError:
                return _LiveCell(cell, period=WATCH_FALLBACK, plan_key=key)  # the run reports it
            if all(can_watch(s) for s in sources):
                ctx = self._context
                live = _LazyLiveQuery(lambda: LiveQuery(
                    cell.get("source", ""), sources, self.hub, namespace=ctx.namespace,
                    all_namespaces=ctx.all_namespaces, subgraph=subgraph))
                return _LiveCell(cell, live=live, plan_key=key)
            return _LiveCell(cell, period=WATCH_FALLBACK, plan_key=key)
        if policy == "watch":
            return _LiveCell(cell, period=WATCH_FALLBACK, plan_key=key)
        seconds = refresh_seconds(policy)
        return _LiveCell(cell, period=float(seconds) if seconds else None, plan_key=key)

    def _evaluate(self, lc: _LiveCell, changed: dict | None, *, reload_sources: bool = False,
                  publish: bool = False) -> None:
        """Evaluate the cell (``changed``: what changed, for incremental evaluation) and publish
        its new state — for a watch cell only when its rows changed, unless ``publish``. The CPU
        time of an evaluation of changes is kept (``eval_cpu``): the next one of a costly cell
        waits longer."""
        lc.last_eval = time.monotonic()
        started_cpu = time.thread_time()
        try:
            self._evaluate_now(lc, changed, reload_sources=reload_sources, publish=publish)
        finally:
            # Only an evaluation of changes says what the next one will cost: a full one (the
            # first, building an incremental query's state; run now; resume) costs far more.
            lc.eval_cpu = time.thread_time() - started_cpu if changed is not None else 0.0

    def _evaluate_now(self, lc: _LiveCell, changed: dict | None, *, reload_sources: bool, publish: bool) -> None:
        from tessera.core.errors import TesseraError
        from tessera.core.notebook.cells import run_cell

        if changed is None:
            lc.pending, lc.live_due = None, float("inf")  # a full evaluation covers them
        fault = None  # a watched source that cannot be reached: said, and retried by the hub
        try:
            if self.options.for_peers:
                _refuse_writes(lc.cell)
            if lc.live is not None:
                live = lc.live.get()
                changes = live.refresh(changed)
                fault = live.fault_notice()
                if live.error is not None and fault is None:
                    raise live.error
                pane = self.panes.get(lc.cell["id"])
                news = fault != (pane.fault if pane is not None else None)
                if not changes and live.runs > 1 and not publish and not news:
                    return
                result = live.result
            else:
                sources = self._context.query_sources(lc.cell) if lc.cell["type"] == "query" else []
                if lc.period or reload_sources:
                    from tessera.core.sources.protocol import refresh_sources

                    refresh_sources(sources)
                result = run_cell(lc.cell, self._context)
        except TesseraError as err:
            fault = lc.live.get().fault_notice() if lc.live is not None and lc.live.built else None
            if fault is not None:  # not the cell's error: it runs when the source answers
                self._publish(lc, status="reconnecting", error=None, **self._fault_changes(lc, fault))
                return
            self._publish(lc, status="error", error=err.one_line(), **self._fault_changes(lc, None))
            if self.on_error is not None:
                self.on_error(lc.cell, err)
            return
        status = "paused" if lc.paused else ("live" if lc.live is not None or lc.period else "idle")
        if fault is not None and not lc.paused:
            status = "reconnecting"
        self._publish(lc, status=status, result=result, error=None, refreshed=_now(), sources=self._sources_of(lc),
                      **self._fault_changes(lc, fault))
        lc.record_due = time.monotonic() if not lc.last_record else max(
            time.monotonic(), lc.last_record + self.options.record_every)
        if lc.record_due <= time.monotonic():
            self._record(lc)

    def _fault_changes(self, lc: _LiveCell, fault: str | None) -> dict:
        """The PaneState fields for the cell's source being lost (``fault``) or fine (None), and
        on_fault told of a change."""
        pane = self.panes.get(lc.cell["id"])
        was = pane.fault if pane is not None else None
        if fault == was:
            return {}
        if self.on_fault is not None:
            self.on_fault(lc.cell, fault)
        if fault is not None:
            return {"fault": fault}
        return {"fault": None, "reconnected": _now() if pane is not None and pane.result is not None else None}

    def _sources_of(self, lc: _LiveCell) -> tuple[str, ...]:
        from tessera.core.notebook.cells import query_contexts

        if lc.cell["type"] != "query":
            return ("store",)
        try:
            sources = self._context.query_sources(lc.cell)
            picked = query_contexts(lc.cell.get("source", ""))
            # IN picks some of them: the pane names what the query reads
            return _source_names([s for s in sources if not picked or s.name in picked])
        except Exception:
            return tuple(lc.cell.get("sources") or ())

    def _record(self, lc: _LiveCell, final: bool = False) -> None:
        from tessera.core.notebook.cells import record_rows

        lc.record_due = None
        pane = self.panes.get(lc.cell["id"])
        if pane is None or pane.result is None:
            return
        if not (self.options.record and self.document.records):
            self._report_unrecorded(lc, pane.result)
            return
        lc.last_record = now = time.monotonic()
        store_rows = final or not self.options.record_every or now - lc.rows_stored >= STORE_ROWS_EVERY
        changes, lc.recorded = record_rows(self._conn, self.name, self.notebook_id, lc.cell, pane.result, lc.recorded,
                                           store_rows=store_rows)
        if store_rows:
            lc.rows_stored = now
            lc.rows_pending = False
        else:
            lc.rows_pending = True
        if self.on_changes is not None:
            if not lc.reported:
                # The first report is every current row (as query --watch starts), even when the
                # stored rows of an earlier run are the same and the record changed nothing.
                from tessera.core.watch.live_query import diff_rows

                lc.reported = True
                changes = diff_rows({}, lc.recorded or {}, _now())
            if changes:
                self.on_changes(lc.cell, changes)

    def _report_unrecorded(self, lc: _LiveCell, result: Any) -> None:
        """What _record tells on_changes, for results kept out of the store (options.record)."""
        from tessera.core.watch.live_query import diff_rows, keyed_rows

        lc.last_record = time.monotonic()
        rows = keyed_rows(result)
        changes = diff_rows(lc.recorded or {}, rows, _now())
        lc.recorded, lc.reported = rows, True
        if self.on_changes is not None and changes:
            self.on_changes(lc.cell, changes)

    def _flush_records(self) -> None:
        for lc in self._cells.values():
            if lc.record_due is not None or lc.rows_pending:
                self._record(lc, final=True)

    def _publish(self, lc: _LiveCell, **changes: Any) -> None:
        cell_id = lc.cell["id"]
        old = self.panes.get(cell_id) or PaneState(cell=lc.cell)
        pane = replace(old, **changes, version=old.version + 1)
        self.panes[cell_id] = pane
        self.on_update(pane)


class _Presence:
    """A session's front end in the notebook's presence (SessionOptions.presence), on the worker's
    connection: announced every ANNOUNCE_SECONDS and when its cell changes; everyone else read
    at most every PEOPLE_SECONDS (the worker wakes on every commit, a peer's arrival included)."""

    PEOPLE_SECONDS = 0.05

    def __init__(self, conn: Any, node: str, name: str):
        import secrets

        self.conn = conn
        self.node, self.name = node, name
        self.client = f"local-{secrets.token_hex(6)}"
        self._announced: tuple | None = None
        self._announce_due = 0.0
        self._read_due = 0.0

    @classmethod
    def start(cls, conn: Any, db_path: str) -> "_Presence | None":
        """None on a node without a node key (never paired: nobody could be in the notebook)."""
        from pathlib import Path

        from tessera.core.peers import identity, peer_list

        node = identity.node_id_of_store(Path(db_path), create=False)
        if node is None:
            return None
        return cls(conn, node, peer_list.stored_name(conn) or identity.default_name())

    def round(self, notebook_id: str, cell: str | None) -> list[dict] | None:
        """Announce if due; the others present (None: not read this round)."""
        from tessera.core.collab import presence
        from tessera.core.errors import TesseraError

        now = time.monotonic()
        try:
            if (notebook_id, cell) != self._announced or now >= self._announce_due:
                presence.announce(self.conn, notebook_id, self.client, name=self.name, node=self.node, cell=cell,
                                  where="local")
                self._announced, self._announce_due = (notebook_id, cell), now + presence.ANNOUNCE_SECONDS
            if now < self._read_due:
                return None
            self._read_due = now + self.PEOPLE_SECONDS
            return [p for p in presence.present(self.conn, notebook_id) if p["client"] != self.client]
        except TesseraError:  # a busy store: presence is a help, tried again next round
            return None

    def withdraw(self, notebook_id: str) -> None:
        from tessera.core.collab import presence
        from tessera.core.errors import TesseraError

        try:
            presence.withdraw(self.conn, notebook_id, self.client)
        except TesseraError:
            pass


def _writes(cell: dict) -> bool:
    """True for a query cell whose query changes the cluster (CREATE, SET, DELETE...)."""
    return cell["type"] == "query" and _query_writes(cell.get("source", ""))


@functools.lru_cache(maxsize=256)
def _query_writes(text: str) -> bool:
    """Parsed once per text: a live cell is checked at every evaluation."""
    from tessera.core.errors import TesseraError
    from tessera.core.query.run import parse_query

    try:
        return parse_query(text).is_mutation
    except TesseraError:
        return False  # running it reports why it does not parse


def _refuse_writes(cell: dict) -> None:
    """A cell run for peers may only read (SessionOptions.for_peers)."""
    from tessera.core.errors import ReadOnly

    if _writes(cell):
        raise ReadOnly("this cell changes the cluster, and cells run for peers are read-only: it was not run",
                       hint="run it at the owner's node, or with --run local")


@functools.cache
def _peers_cell_context() -> type:
    from tessera.core.notebook.cells import CellContext

    class PeersCellContext(CellContext):
        """A CellContext whose sources hide Secret values whatever this node's setting."""

        def sources_for(self, specs: list[str], query_contexts: Any = ()) -> list[Any]:
            from tessera.core.secrets import RedactingSource

            opened = super().sources_for(specs, query_contexts)
            for i, source in enumerate(opened):  # the list opened once and kept: wrapped once
                if not isinstance(source, RedactingSource):
                    opened[i] = RedactingSource(source)
            return opened

    return PeersCellContext


class StoreDocument:
    """A session's notebook as this node's store holds it (the default document).

    The worker reads it with its own connection; a poller thread with a connection of its own
    checks ``PRAGMA data_version`` every FOLLOW_POLL_SECONDS and wakes the worker when another
    connection committed (an edit by the dashboard's editor, ``cell edit``, a collaborator's
    keystroke stored by ``tessera serve``), so edits show within milliseconds, not at the
    worker's next timed round. The worker then compares the notebook's update mark: other
    commits (results, events) cost one indexed query and no reload.
    """

    records = True  # results go to cell_results and the event log

    @property
    def version(self) -> int | None:
        """The update mark of the last read (NotebookEditor.type_text's ``version`` compares to it)."""
        return self._mark

    def __init__(self, db_path: str, name: str):
        self.db_path = db_path
        self.name = name
        self.notebook_id: str | None = None
        self._conn: Any = None
        self._mark: int | None = None
        self._closed = threading.Event()
        self._poller: threading.Thread | None = None

    def open(self, conn: Any, wake: Callable[[], None]) -> None:
        """Start following, reading with ``conn`` (the worker's); ``wake()`` when it may have moved on."""
        import sqlite3

        self._conn = conn
        try:
            watcher = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=1.0, check_same_thread=False)
            # read before the first load, so that an edit committed between the two is seen
            seen = watcher.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return  # the worker's own timed rounds still follow edits
        self._poller = threading.Thread(target=self._poll, args=(watcher, seen, wake), name="tessera-session-follow",
                                        daemon=True)
        self._poller.start()

    def close(self) -> None:
        self._closed.set()

    def moved_on(self) -> bool:
        """True when the notebook's stored updates changed since the last read."""
        from tessera.core.notebook import repository

        if self.notebook_id is None:
            return True
        mark = repository.update_mark(self._conn, self.notebook_id)
        return mark is None or mark != self._mark

    def read(self) -> Any:
        """The notebook now (a Notebook with ``.id``); QueryError when it is gone."""
        from tessera.core.notebook import repository

        if self.notebook_id is None:
            nb = repository.load(self._conn, self.name)
            self.notebook_id = nb.id  # type: ignore[attr-defined]
        else:
            nb = repository.load_by_id(self._conn, self.notebook_id)
            self.name = nb.name
        self._mark = repository.update_mark(self._conn, self.notebook_id)
        return nb

    def _poll(self, conn: Any, seen: int, wake: Callable[[], None]) -> None:
        import sqlite3

        try:
            while not self._closed.wait(FOLLOW_POLL_SECONDS):
                try:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.Error:
                    continue
                if version != seen:
                    seen = version
                    wake()
        finally:
            conn.close()


class _LazyLiveQuery:
    """A LiveQuery built at its first evaluation, so a query that does not parse becomes the
    pane's error (at evaluation) rather than a failure to plan."""

    def __init__(self, build: Callable[[], Any]):
        self._build = build
        self._live: Any = None

    def get(self) -> Any:
        if self._live is None:
            self._live = self._build()
        return self._live

    @property
    def built(self) -> bool:
        return self._live is not None

    def reads(self, keys: set) -> bool:
        return self._live is None or self._live.reads(keys)

    def reads_source(self, names: set[str]) -> bool:
        """True when the query reads any of these sources (or has not been built yet)."""
        return self._live is None or any(name in names for name in self._live.source_names)


def _now() -> str:
    from tessera.core.times import now

    return now()


def watch_notebook(conn: Any, name: str, context: Any, *, hub: Any, stop: Any, number: int | None = None,
                   on_changes: Callable[[dict, list[dict]], None],
                   on_error: Callable[[dict, Exception], None],
                   on_fault: Callable[[dict, str | None], None] | None = None) -> None:
    """Run the notebook's cells (or cell ``number``) and keep them current until ``stop`` is set
    (``notebook run --watch``): a NotebookSession in this thread that records every change.

    Args:
        conn: the store (its file is opened again by the session).
        name: the notebook.
        context: a cells.CellContext (default sources, contexts, namespace...).
        hub: the CacheHub watch cells share.
        stop: a threading.Event.
        number: only this cell.
        on_changes: called with (cell, row changes) after each evaluation that changed something
            (the first evaluation reports every row as added).
        on_error: called with (cell, TesseraError) when an evaluation fails; the cell keeps its
            last rows and is tried again at its next turn.
        on_fault: called with (cell, notice) when a watched source is lost, (cell, None) when
            it is back (see NotebookSession).
    """
    options = SessionOptions(default_sources=list(context.default_sources), contexts=list(context.contexts),
                             kubeconfig=context.kubeconfig, namespace=context.namespace,
                             all_namespaces=context.all_namespaces, speed=context.speed, loop=context.loop,
                             stdin=context.stdin)
    session = NotebookSession(context.store_path(), name, options, number=number, hub=hub,
                              on_changes=on_changes, on_error=on_error, on_fault=on_fault)
    session._stop = stop
    session.run()
