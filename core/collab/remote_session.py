"""A peer's notebook, live: ``RemoteNotebookSession`` is the NotebookSession interface (what the
dashboard, ``tessera pane`` and ``notebook run --watch`` use) over a CollabClient
(core/collab/client.py), so ``tessera dash alice:ops`` works as ``tessera dash ops`` does.

Where the cells run:

- ``run="owner"`` (the default): at the owner, with its sources and credentials; its panes
  arrive as pane_wire messages (a snapshot, then row changes) and are shown as they come. This
  node needs no kubeconfig. ``run_now`` asks the owner to run the cell again. A snapshot too
  large for one message is announced as a blob, fetched from the owner by the client (its loop,
  never the caller's thread) while the pane says "fetching N MiB from @alice", then shown whole;
  a newer snapshot cancels that fetch, and a failed one is one line in the pane.
- ``run="local"``: here, with this node's own kubeconfig and flags, by a NotebookSession over
  the client's document (ClientDocument) instead of the store; nothing is recorded in this
  node's store (the notebook is not this node's: no cell_results, no ``changed`` events).

Either way the document is the client's: edits (the dashboard's editor, ``editor``) go into it
and to the owner, who may refuse them (a viewer): ``on_refused`` then gets the owner's one-line
message, and the document is back to the owner's state.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any, Callable

from tessera.core.notebook.editor import NotebookEditor, typed_into
from tessera.core.notebook.session import PaneState, SessionOptions


class ClientDocument:
    """A NotebookSession's document (see session.StoreDocument) read from a CollabClient: each
    change of the client's Doc (the owner's, a peer's, ours) bumps ``version`` and wakes the
    worker, which reads a copy of the notebook made under the client's lock."""

    records = False  # a peer's notebook: its results are not this node's to store

    def __init__(self, client: Any):
        self.client = client
        self.version = 0
        self._read = -1
        self._wake: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def changed(self) -> None:
        """The client's document changed (from its on_change)."""
        with self._lock:
            self.version += 1
        if self._wake is not None:
            self._wake()

    def open(self, conn: Any, wake: Callable[[], None]) -> None:
        self._wake = wake

    def close(self) -> None:
        self._wake = None

    def moved_on(self) -> bool:
        return self.version != self._read

    def read(self) -> Any:
        from tessera.core.notebook.model import Notebook

        with self._lock:
            self._read = self.version
        with self.client.lock:
            nb = self.client.notebook
            copy = Notebook.from_updates([nb.full_update()], name=self.client.notebook_name)
        copy.id = self.client.notebook_id or f"{self.client.peer_id}:{self.client.notebook_name}"  # type: ignore[attr-defined]
        return copy


class ClientEditor(NotebookEditor):
    """NotebookEditor's edits by cell id, made to a CollabClient's document (then sent to the
    owner) instead of the store; in order, on the editor's own thread, as NotebookEditor does.
    ``done`` of ``type_text`` gets the document version holding the change."""

    def __init__(self, client: Any, document: Any):
        super().__init__(client.db_path)
        self.client = client
        self.document = document

    def _change(self, fn: Callable[[Any], Any], done: Any, failed: Any) -> None:
        self.submit(lambda conn: self.client.edit(fn), done=done, failed=failed)

    def add_cell(self, name: str, source: str = "", *, done: Any = None, failed: Any = None, **attrs: Any) -> None:
        def add(nb: Any) -> tuple[str, int]:
            after = attrs.pop("after", None)
            number = nb.number_of(after) if isinstance(after, str) else after
            return nb.add_cell(source=source, after=number, **attrs)

        self._change(add, done, failed)

    def edit_cell(self, name: str, cell_id: str, text: str, *, base_text: str | None = None, done: Any = None,
                  failed: Any = None) -> None:
        self._change(lambda nb: typed_into(nb, cell_id, text if base_text is None else base_text, text), done, failed)

    def type_text(self, name: str, cell_id: str, base: str, text: str, *, done: Any = None,
                  failed: Any = None) -> None:
        def typed(nb: Any) -> dict:
            typed_into(nb, cell_id, base, text)
            return {"text": nb.cell_by_id(cell_id)["source"]}

        def stored(result: dict) -> None:
            if done is not None:
                done({**result, "version": self.document.version})

        self._change(typed, stored, failed)

    def set_cell(self, name: str, cell_id: str, *, done: Any = None, failed: Any = None, **attrs: Any) -> None:
        self._change(lambda nb: nb.set_attrs(nb.number_of(cell_id), **attrs), done, failed)

    def remove_cell(self, name: str, cell_id: str, *, done: Any = None, failed: Any = None) -> None:
        self._change(lambda nb: nb.remove_cell(nb.number_of(cell_id)), done, failed)

    def move_cell(self, name: str, cell_id: str, to: int, *, done: Any = None, failed: Any = None) -> None:
        self._change(lambda nb: nb.move_cell(nb.number_of(cell_id), to), done, failed)

    def split_row(self, name: str, cell_id: str, *, done: Any = None, failed: Any = None) -> None:
        self._change(lambda nb: nb.split_row(nb.number_of(cell_id)), done, failed)

    def merge_rows(self, name: str, cell_id: str, *, done: Any = None, failed: Any = None) -> None:
        self._change(lambda nb: nb.merge_rows(nb.number_of(cell_id)), done, failed)


class RemoteNotebookSession:
    """A peer's notebook kept live, with the NotebookSession interface.

    Args:
        db_path: this node's store.
        peer: the owner (a peer's name or id).
        notebook: its notebook's name.
        options: SessionOptions for ``run="local"`` (sources, kubeconfig...); ignored for owner-run.
        run: "owner" or "local".
        number: only this cell (``tessera pane alice:ops/2``).
        on_update / on_layout / on_changes / on_error / on_fault: as NotebookSession's.
    Attributes beyond NotebookSession's: ``people`` (who else is in it), ``role`` (ours:
    viewer / editor), ``runs_at`` ("@alice" or "local"), ``status`` / ``reason`` (the
    connection: connecting, live, offline), ``on_refused`` (the owner refused an edit).
    """

    def __init__(self, db_path: str, peer: str, notebook: str, options: SessionOptions | None = None, *,
                 run: str = "owner", number: int | None = None,
                 on_update: Callable[[PaneState], None] | None = None,
                 on_layout: Callable[[Any], None] | None = None,
                 on_changes: Callable[[dict, list[dict]], None] | None = None,
                 on_error: Callable[[dict, Exception], None] | None = None,
                 on_fault: Callable[[dict, str | None], None] | None = None):
        from tessera.core.collab.client import CollabClient
        from tessera.core.collab.pane_wire import PaneAssembler
        from tessera.core.errors import UsageError

        if run not in ("owner", "local"):
            raise UsageError(f"--run '{run}' is not where cells can run", hint="use --run owner or --run local")
        self.db_path = db_path
        self.peer = peer
        self.notebook = notebook
        self.name = f"{peer}:{notebook}"
        self.run_at = run
        self.options = options or SessionOptions()
        self.number = number
        self.on_update = on_update or (lambda pane: None)
        self.on_layout = on_layout or (lambda session: None)
        self.on_changes = on_changes
        self.on_error = on_error
        self.on_fault = on_fault
        self.on_refused: Callable[[str], None] | None = None
        self.title = ""
        self.notebook_id: str | None = None
        self.layout: list[list[str]] = []
        self.panes: dict[str, PaneState] = {}
        self.failure: Exception | None = None
        self.subgraph: bool | None = None
        self.loaded = threading.Event()
        self.people: list[dict] = []
        self.status: str | None = "connecting"
        self.reason: str | None = None
        self.runs_at = f"@{peer}" if run == "owner" else "local"
        self._lock = threading.RLock()
        self._started = False
        self._shown_version = 0
        self._assembler = PaneAssembler()
        self._pane_errors: dict[str, str] = {}
        self._fetches: dict[str, tuple[str, Any]] = {}  # cell id -> (blob id, its fetch's future)
        self._results: dict[str, tuple[Any, Any]] = {}
        self._paused: set[str] = set()
        self._reported: dict[str, dict] = {}  # owner-run: the rows on_changes was last told of, per cell
        self.client = CollabClient(db_path, peer, notebook, run="local" if run == "local" else "owner",
                                   on_change=self._changed, on_presence=self._presence, on_pane=self._pane,
                                   on_refused=self._refused, on_status=self._status)
        self.document = ClientDocument(self.client)
        self.editor = ClientEditor(self.client, self.document)
        self._local: Any = None
        if run == "local":
            from tessera.core.notebook.session import NotebookSession

            # not this node's notebook: nothing recorded, and presence is the client's awareness
            local_options = replace(self.options, record=False, presence=False)
            self._local = NotebookSession(db_path, notebook, local_options, number=number,
                                          on_update=lambda pane: self.on_update(pane),
                                          on_layout=lambda session: self._local_layout(),
                                          on_changes=self._local_changes, on_error=self._local_error,
                                          on_fault=self._local_fault, document=self.document, editor=self.editor)

    # --- NotebookSession's interface ----------------------------------------------------------

    @property
    def role(self) -> str | None:
        return self.client.role

    @property
    def doc_version(self) -> int | None:
        """The document version the panes show (an editor's own change is in them from its version on)."""
        return self._local.doc_version if self._local is not None else self._shown_version

    def start(self) -> "RemoteNotebookSession":
        """Connect (in the background; work starts from the local copy if there is one).

        Raises:
            UsageError for a peer not in the peer list.
        """
        if self._started:  # the CLI starts it to check the owner answers, the dashboard then again
            return self
        self._started = True
        self.client.start()
        if self._local is not None:
            self._local.start()
        else:
            self._rebuild()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Send the edits still queued, leave, and stop."""
        self.editor.stop()
        if self._local is not None:
            self._local.stop(timeout)
        self.client.stop()

    def wait_synced(self, timeout: float) -> bool:
        return self.client.wait_synced(timeout)

    def run_now(self, cell_id: str) -> None:
        if self._local is not None:
            self._local.run_now(cell_id)
        else:
            self.client.run_cell(cell_id)

    def pause(self, cell_id: str) -> None:
        """Stop following the cell's changes here (at the owner it keeps running for others)."""
        if self._local is not None:
            self._local.pause(cell_id)
            return
        self._paused.add(cell_id)
        self._publish(cell_id)

    def resume(self, cell_id: str) -> None:
        if self._local is not None:
            self._local.resume(cell_id)
            return
        self._paused.discard(cell_id)
        self._publish(cell_id)

    def reload(self) -> None:
        if self._local is not None:
            self._local.reload()
        else:
            self._rebuild()

    def keep_subgraph(self, want: bool | None) -> None:
        """Run locally: as NotebookSession. Owner-run panes carry rows only (the tree and graph
        views need --run local)."""
        self.subgraph = want
        if self._local is not None:
            self._local.keep_subgraph(want)

    def set_cell(self, cell_id: str | None) -> None:
        self.client.set_cell(cell_id)

    # --- the client's callbacks (its thread) --------------------------------------------------

    def _changed(self, how: str) -> None:
        self.document.changed()
        if self._local is None:
            self._rebuild()

    def _presence(self, people: list[dict]) -> None:
        self.people = people
        self.on_layout(self)

    def _status(self, status: str, reason: str | None) -> None:
        self.status, self.reason = status, reason
        self.on_layout(self)

    def _refused(self, text: str) -> None:
        if self.on_refused is not None:
            self.on_refused(text)

    def _pane(self, cell_id: str, data: bytes) -> None:
        from tessera.core.collab.pane_wire import OutOfStep, PaneWireError

        with self._lock:
            try:
                view = self._assembler.apply(cell_id, data)
                self._pane_errors.pop(cell_id, None)
            except OutOfStep as err:
                view = self._assembler.views.get(cell_id)
                self._pane_errors[cell_id] = err.one_line()
                self.client.run_cell(cell_id)  # the owner's feed answers with a snapshot
            except PaneWireError as err:
                view = self._assembler.views.get(cell_id)
                self._pane_errors[cell_id] = err.one_line()
            self._follow_fetch(cell_id, view)
        self._publish(cell_id)

    def _follow_fetch(self, cell_id: str, view: Any) -> None:
        """Start the fetch of the blob the view awaits; cancel one it no longer awaits (under
        self._lock)."""
        want = view.fetching[0] if view is not None and view.fetching is not None else None
        current = self._fetches.get(cell_id)
        if current is not None and current[0] != want:
            del self._fetches[cell_id]
            if current[1] is not None:
                current[1].cancel()
        if want is not None and cell_id not in self._fetches:
            self._fetches[cell_id] = (want, None)
            future = self.client.fetch_blob(want, lambda data, reason: self._fetched(cell_id, want, data, reason))
            if self._fetches.get(cell_id, (None,))[0] == want:
                self._fetches[cell_id] = (want, future)

    def _fetched(self, cell_id: str, blob_id: str, data: bytes | None, reason: str | None) -> None:
        """A pane blob's fetch ended (a worker thread): its snapshot shown, or why not."""
        from tessera.core.collab.pane_wire import OutOfStep, PaneWireError, read_blob

        message = None
        if data is not None:
            try:
                message = read_blob(data)  # outside the lock: the client's thread keeps delivering meanwhile
            except PaneWireError as err:
                reason = err.one_line()
        with self._lock:
            if self._fetches.get(cell_id, (None,))[0] == blob_id:
                del self._fetches[cell_id]
            view = self._assembler.views.get(cell_id)
            size = view.fetching[1] if view is not None and view.fetching is not None else 0
            if message is None:
                if not self._assembler.blob_failed(cell_id, blob_id):
                    return  # superseded meanwhile: the newer message is what counts
                self._pane_errors[cell_id] = (f"the pane's whole result ({size / (1024 * 1024):.1f} MiB) could not "
                                              f"be fetched from {self.runs_at}: {reason}")
            else:
                try:
                    if self._assembler.apply_blob(cell_id, blob_id, message) is None:
                        return
                    self._pane_errors.pop(cell_id, None)
                except OutOfStep as err:
                    self._pane_errors[cell_id] = err.one_line()
                    self.client.run_cell(cell_id)
                except PaneWireError as err:
                    self._pane_errors[cell_id] = err.one_line()
        self._publish(cell_id)

    # --- owner-run panes ----------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Layout and cells from the client's document; panes from what the owner sent."""
        version = self.document.version
        nb = self.document.read()
        cells = nb.cells()
        if self.number is not None:
            try:
                nb.cell(self.number)
            except Exception as err:  # a bad number: the session stops with it, as NotebookSession does
                if self.client.wait_synced(0):
                    self.failure = err
                    self.loaded.set()
                    self.on_layout(self)
                return
            cells = [cells[self.number - 1]]
        with self._lock:
            self.title, self.notebook_id = nb.title, self.client.notebook_id
            layout = [[c["id"] for c in cells if c["row"] == r] for r in sorted({c["row"] for c in cells})]
            for cell in cells:
                self._publish(cell["id"], cell)
            for gone in set(self.panes) - {c["id"] for c in cells}:
                self.panes.pop(gone, None)
            self.layout = layout
            self._shown_version = version
        if self.client.wait_synced(0) or cells:
            self.loaded.set()
        self.on_layout(self)

    def _publish(self, cell_id: str, cell: dict | None = None) -> None:
        from tessera.core.notebook.cells import cell_type

        with self._lock:
            old = self.panes.get(cell_id)
            cell = cell or (old.cell if old is not None else None)
            if cell is None:
                return  # a pane for a cell our document does not have yet: shown once it does
            if not getattr(_cell_type_or_none(cell_type, cell["type"]), "runnable", True):
                state = PaneState(cell=cell, status="static", version=(old.version + 1) if old else 0)
            else:
                view = self._assembler.views.get(cell_id)
                error = self._pane_errors.get(cell_id)
                status = view.status if view is not None else "starting"
                if cell_id in self._paused:
                    status = "paused"
                if error is not None:
                    status = "error"
                result = self._result_of(cell_id, view)
                if result is not None and result.warnings:
                    error = error or result.warnings[0]  # a truncated result says so in the pane
                fault = view.fault if view else None
                if view is not None and view.fetching is not None:
                    fault = f"fetching {view.fetching[1] / (1024 * 1024):.1f} MiB from {self.runs_at}"
                    if not view.has_rows and status not in ("paused", "error"):
                        status = "starting"  # its first rows are on the way (notebook run waits for them)
                state = PaneState(cell=cell, status=status, result=result,
                                  error=error if error is not None else (view.error if view else None),
                                  refreshed=view.refreshed if view else None,
                                  sources=tuple(view.sources) if view else (), version=(old.version + 1) if old else 0,
                                  fault=fault)
                if cell_id in self._paused and old is not None:
                    state = replace(old, cell=cell, status="paused", version=old.version + 1)
            if old is not None and _same(old, state):
                return
            self.panes[cell_id] = state
        self.on_update(state)
        if self.on_changes is not None and state.result is not None and cell_id not in self._paused:
            self._report(state)
        if state.status == "error" and old is not None and old.status != "error" and self.on_error is not None:
            from tessera.core.errors import QueryError

            self.on_error(state.cell, QueryError(state.error or "the cell failed at the owner"))

    def _result_of(self, cell_id: str, view: Any) -> Any:
        """The view's rows as a Result, made once per message (a pane redraws only when it changed)."""
        if view is None:
            return None
        kept = self._results.get(cell_id)
        if kept is not None and kept[0] is view:
            return kept[1]
        result = view.result()
        self._results[cell_id] = (view, result)
        return result

    def _report(self, state: PaneState) -> None:
        from tessera.core.times import now
        from tessera.core.watch.live_query import diff_rows, keyed_rows

        rows = keyed_rows(state.result)
        before = self._reported.get(state.cell["id"])
        if before is not None and before == rows:
            return
        self._reported[state.cell["id"]] = rows
        changes = diff_rows(before or {}, rows, now())
        if changes:
            self.on_changes(state.cell, changes)

    # --- run here ------------------------------------------------------------------------------

    def _local_layout(self) -> None:
        local = self._local
        self.title, self.layout, self.panes = local.title, local.layout, local.panes
        self.notebook_id, self.failure = local.notebook_id, local.failure
        if local.loaded.is_set():
            self.loaded.set()
        self.on_layout(self)

    def _local_changes(self, cell: dict, changes: list[dict]) -> None:
        if self.on_changes is not None:
            self.on_changes(cell, changes)

    def _local_error(self, cell: dict, err: Exception) -> None:
        if self.on_error is not None:
            self.on_error(cell, err)

    def _local_fault(self, cell: dict, notice: str | None) -> None:
        if self.on_fault is not None:
            self.on_fault(cell, notice)


def _cell_type_or_none(lookup: Callable[[str], Any], name: str) -> Any:
    """A cell type, or None for one this node does not have (a plugin's at the owner): its pane
    then shows what the owner sends."""
    try:
        return lookup(name)
    except Exception:
        return None


def _same(a: PaneState, b: PaneState) -> bool:
    return (a.cell, a.status, a.result is b.result, a.error, a.refreshed, a.sources, a.fault) == \
        (b.cell, b.status, True, b.error, b.refreshed, b.sources, b.fault)
