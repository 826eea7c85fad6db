"""Edits of notebooks from a long-running front end, queued and written in order off its thread.

``NotebookEditor`` is the one way a front end that must never wait for the disk (the dashboard)
changes a notebook: each call (add_cell, edit_cell, set_cell, ...) queues the same function of
core/notebook/repository.py that ``tessera cell ...`` calls, and one writer thread with its own store
connection runs them in the order they were made. A cell is addressed by its **id**, so an edit
lands on the cell the user meant even when another process has moved it meanwhile; ``edit_cell``
with ``base_text`` is merged three-way with the cell's current text, exactly as ``cell edit`` with
``$EDITOR`` (repository.edit_cell, model.merge_text), and an EditConflict reaches ``failed`` with the
user's text kept in a conflict file.

Callbacks run on the writer thread: ``done(result)`` with the store function's result,
``failed(error)`` with the exception (the next edit is still written). A front end hands them to
its own thread (Textual's ``call_from_thread``).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)

Done = Callable[[Any], None] | None
Failed = Callable[[Exception], None] | None


class NotebookEditor:
    """A writer thread for one process's notebook edits.

    Args:
        db_path: the store file (the writer opens its own connection).
        after_edit: called on the writer thread after every stored edit (a NotebookSession's
            ``reload``, so the panes follow at once), before ``done``.
    """

    def __init__(self, db_path: str, *, after_edit: Callable[[], None] | None = None):
        self.db_path = db_path
        self.after_edit = after_edit
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> "NotebookEditor":
        """Start the writer (also started by the first edit); returns the editor."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_loop, name="tessera-notebook-editor", daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Write every edit still queued, then end the writer (waiting at most ``timeout``)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._jobs.put(None)
        if thread is not threading.current_thread():
            thread.join(timeout)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every edit queued so far is written; False if that took over ``timeout``."""
        written = threading.Event()
        self.submit(lambda conn: None, done=lambda _: written.set(), failed=lambda _: written.set(), quiet=True)
        return written.wait(timeout)

    # --- the edits (any thread; they return at once) --------------------------------------

    def submit(self, edit: Callable[[Any], Any], *, done: Done = None, failed: Failed = None,
               quiet: bool = False) -> None:
        """Queue ``edit(conn)``: a call of a core/notebook/repository.py function on the writer's
        connection. ``quiet``: no ``after_edit`` (nothing was changed)."""
        self.start()
        self._jobs.put((edit, done, failed, quiet))

    def add_cell(self, name: str, source: str = "", *, done: Done = None, failed: Failed = None, **attrs: Any) -> None:
        """repository.add_cell (``after`` a cell id); ``done((id, number))``."""
        from tessera.core.notebook import repository

        self.submit(lambda conn: repository.add_cell(conn, name, source, **attrs), done=done, failed=failed)

    def edit_cell(self, name: str, cell_id: str, text: str, *, base_text: str | None = None, done: Done = None,
                  failed: Failed = None) -> None:
        """repository.edit_cell by id; with ``base_text`` (the text the user started from) merged
        three-way with what the cell holds now, or an EditConflict to ``failed``."""
        from tessera.core.notebook import repository

        self.submit(lambda conn: repository.edit_cell(conn, name, cell_id, text, base_text=base_text),
                    done=done, failed=failed)

    def type_text(self, name: str, cell_id: str, base: str, text: str, *, done: Done = None,
                  failed: Failed = None) -> None:
        """A live editor's change of a cell's text, as typed: ``base`` (what the editor showed) became
        ``text``; that one change is applied to what the cell holds when it is written (others'
        typing meanwhile kept, see rebase_typing). ``done({"text", "version"})``: the cell's text
        once stored, and the notebook's update mark then (a NotebookSession's ``doc_version``
        reaches it once it shows this edit)."""
        from tessera.core.notebook import repository

        def edit(conn: Any) -> dict:
            nb, _ = repository.change(conn, name, "cell_edited", lambda nb: typed_into(nb, cell_id, base, text))
            return {"text": nb.cell_by_id(cell_id)["source"],
                    "version": repository.update_mark(conn, nb.id)}  # type: ignore[attr-defined]

        self.submit(edit, done=done, failed=failed)

    def set_cell(self, name: str, cell_id: str, *, done: Done = None, failed: Failed = None, **attrs: Any) -> None:
        """repository.set_cell by id (view, refresh, type, title, sources)."""
        from tessera.core.notebook import repository

        self.submit(lambda conn: repository.set_cell(conn, name, cell_id, **attrs), done=done, failed=failed)

    def remove_cell(self, name: str, cell_id: str, *, done: Done = None, failed: Failed = None) -> None:
        """repository.remove_cell by id."""
        from tessera.core.notebook import repository

        self.submit(lambda conn: repository.remove_cell(conn, name, cell_id), done=done, failed=failed)

    def move_cell(self, name: str, cell_id: str, to: int, *, done: Done = None, failed: Failed = None) -> None:
        """repository.move_cell by id, to position ``to`` (reading order, from 1)."""
        from tessera.core.notebook import repository

        self.submit(lambda conn: repository.move_cell(conn, name, cell_id, to), done=done, failed=failed)

    def split_row(self, name: str, cell_id: str, *, done: Done = None, failed: Failed = None) -> None:
        """repository.split_row of the row holding the cell."""
        from tessera.core.notebook import repository

        self.submit(lambda conn: repository.split_row(conn, name, cell_id), done=done, failed=failed)

    def merge_rows(self, name: str, cell_id: str, *, done: Done = None, failed: Failed = None) -> None:
        """repository.merge_rows: the row holding the cell with the next one."""
        from tessera.core.notebook import repository

        self.submit(lambda conn: repository.merge_rows(conn, name, cell_id), done=done, failed=failed)

    # --- the writer ------------------------------------------------------------------------

    def _write_loop(self) -> None:
        from tessera.core.store import db

        conn = None
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                edit, done, failed, quiet = job
                try:
                    if conn is None:
                        conn = db.connect(self.db_path)
                    result = edit(conn)
                except Exception as err:  # one bad edit never ends the writer: it is reported, the next runs
                    _call(failed, err, default=lambda e: log.warning("notebook edit failed: %s", _one_line(e)))
                    continue
                if not quiet and self.after_edit is not None:
                    _call(self.after_edit)
                _call(done, result)
        finally:
            if conn is not None:
                conn.close()


def _call(fn: Callable[..., Any] | None, *args: Any, default: Callable[..., Any] | None = None) -> None:
    """Run a callback; a callback's own failure is logged, never the writer's end."""
    fn = fn or default
    if fn is None:
        return
    try:
        fn(*args)
    except Exception as err:  # a front end's callback must not stop the edits after it
        log.warning("notebook edit callback failed: %s", _one_line(err))


def _one_line(err: BaseException) -> str:
    one = getattr(err, "one_line", None)
    return one() if callable(one) else f"{type(err).__name__}: {err}"


# --- live typing ---------------------------------------------------------------------------------


def typed_into(nb: Any, cell_id: str, base: str, text: str) -> dict | None:
    """Apply a live editor's change (``base`` -> ``text``) to cell ``cell_id`` of Notebook ``nb``
    as it is now; returns the ``cell_edited`` event's details, or None when nothing changed.

    Raises:
        QueryError when the cell is gone (removed by someone else meanwhile).
    """
    before = nb.cell_by_id(cell_id)["source"]
    if not nb.edit_source_by_id(cell_id, rebase_typing(base, text, before)):
        return None
    return {"cell": cell_id, "number": nb.number_of(cell_id), "before": before, "source": nb.cell_by_id(cell_id)["source"]}


def changed_span(old: str, new: str) -> tuple[int, int, int]:
    """The one replacement turning ``old`` into ``new``: (start, end in old, end in new), after
    the longest common prefix and then the longest common suffix."""
    limit = min(len(old), len(new))
    prefix = 0
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[len(old) - 1 - suffix] == new[len(new) - 1 - suffix]:
        suffix += 1
    return prefix, len(old) - suffix, len(new) - suffix


def map_offset(old: str, new: str, offset: int) -> int:
    """Where a position in ``old`` is in ``new``: before the changed part (changed_span) it
    stays; after it, it moves by the length change; inside it, it follows its character through
    a diff of that part (difflib), and a position in text that was replaced goes to where the
    replacement starts. Text someone else inserted exactly at the position ends up after it,
    never behind it."""
    from difflib import SequenceMatcher

    start, old_end, new_end = changed_span(old, new)
    if offset <= start:
        return offset
    if offset >= old_end:
        return offset + (new_end - old_end)
    at = offset - start
    blocks = SequenceMatcher(None, old[start:old_end], new[start:new_end], autojunk=False).get_opcodes()
    for tag, i1, i2, j1, _j2 in blocks:
        if tag == "equal" and i1 <= at <= i2:
            return start + j1 + (at - i1)
        if tag != "equal" and i1 <= at < i2:
            return start + j1
    return new_end


def rebase_typing(base: str, mine: str, current: str) -> str:
    """``current`` with the change that turned ``base`` into ``mine`` applied to it: a live
    editor's keystroke made over ``base`` while ``current`` (others' typing included) is what the
    document holds now. Text typed by others stays; the keystroke lands where it was made."""
    if current == base:
        return mine
    start, old_end, new_end = changed_span(base, mine)
    inserted = mine[start:new_end]
    at = map_offset(base, current, start)
    until = max(at, map_offset(base, current, old_end)) if old_end > start else at
    return current[:at] + inserted + current[until:]
