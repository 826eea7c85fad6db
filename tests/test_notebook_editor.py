"""core/notebook/editor.py: the one queued way a long-running front end changes a notebook —
edits written in order on the editor's thread through the store's functions, by cell id,
merged three-way with edits made meanwhile by ``tessera cell edit`` in another process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from tessera.core import config, events
from tessera.core.errors import EditConflict, QueryError
from tessera.core.notebook import repository
from tessera.core.notebook.editor import NotebookEditor
from tessera.core.store.db import connect

QUERY = "MATCH (p:Pod)\nWHERE p.status.phase = 'Running'\nRETURN p.metadata.name AS pod\nLIMIT 10"


def tessera(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    return proc


def make_ops() -> tuple[str, str]:
    """Notebook ops with two query cells; returns their ids."""
    conn = connect()
    repository.create(conn, "ops", "Ops")
    first, _ = repository.add_cell(conn, "ops", QUERY)
    second, _ = repository.add_cell(conn, "ops", "MATCH (d:Deployment) RETURN d")
    conn.close()
    return first, second


def cells() -> list[dict]:
    conn = connect()
    try:
        return repository.load(conn, "ops").cells()
    finally:
        conn.close()


class Replies:
    """done/failed callbacks that keep what they were given, and an event set by each."""

    def __init__(self) -> None:
        self.results: list = []
        self.errors: list[Exception] = []
        self.any = threading.Event()

    def kwargs(self) -> dict:
        return {"done": self._done, "failed": self._failed}

    def _done(self, result) -> None:
        self.results.append(result)
        self.any.set()

    def _failed(self, err: Exception) -> None:
        self.errors.append(err)
        self.any.set()

    def wait(self) -> None:
        assert self.any.wait(60), "the editor did not answer"


def test_edits_are_written_in_order_by_id_each_followed_by_after_edit():
    first, second = make_ops()
    reloads: list[str] = []
    editor = NotebookEditor(str(config.database_path()), after_edit=lambda: reloads.append(threading.current_thread().name))
    added = Replies()
    editor.set_cell("ops", second, view="json")
    editor.move_cell("ops", second, 1)  # by id: the second cell becomes the first
    editor.add_cell("ops", "MATCH (s:Service) RETURN s", after=first, **added.kwargs())
    editor.remove_cell("ops", first)
    assert editor.flush(60)
    added.wait()
    new_id, number = added.results[0]
    assert number == 3  # after `first`, which was second by then
    assert [c["id"] for c in cells()] == [second, new_id]
    assert cells()[0]["view"] == "json"
    conn = connect()
    actions = [e.subject.rsplit(".", 1)[1] for e in repository.history(conn, "ops")]
    conn.close()
    assert actions[-4:] == ["cell_set", "cell_moved", "cell_added", "cell_removed"]
    assert reloads == ["tessera-notebook-editor"] * 4  # on the writer thread, once per stored edit
    editor.stop()


def test_a_failed_edit_is_reported_and_the_next_one_is_still_written():
    first, _ = make_ops()
    editor = NotebookEditor(str(config.database_path()))
    bad, good = Replies(), Replies()
    editor.set_cell("ops", "no-such-id", view="json", **bad.kwargs())
    editor.set_cell("ops", first, title="Running pods", **good.kwargs())
    bad.wait()
    good.wait()
    assert isinstance(bad.errors[0], QueryError) and not bad.results
    assert good.results == [{"title": ["", "Running pods"]}]
    assert cells()[0]["title"] == "Running pods"
    editor.stop()


def test_stop_writes_the_edits_still_queued():
    first, _ = make_ops()
    editor = NotebookEditor(str(config.database_path()))
    for n in range(20):
        editor.set_cell("ops", first, title=f"title {n}")
    editor.stop(timeout=60)
    assert cells()[0]["title"] == "title 19"


def test_an_edit_from_an_old_copy_merges_with_cell_edit_from_another_process():
    first, _ = make_ops()
    editor = NotebookEditor(str(config.database_path()))
    # the user opened the cell as QUERY; meanwhile `tessera cell edit` moved it and changed line 1
    tessera("cell", "move", "ops/1", "2")
    tessera("cell", "edit", "ops/2", QUERY.replace("(p:Pod)", "(p:Pod {namespace: 'shop'})"))
    saved = Replies()
    editor.edit_cell("ops", first, QUERY.replace("LIMIT 10", "LIMIT 5"), base_text=QUERY, **saved.kwargs())
    saved.wait()
    assert saved.results == [True], saved.errors
    (cell,) = [c for c in cells() if c["id"] == first]
    assert cell["source"] == QUERY.replace("(p:Pod)", "(p:Pod {namespace: 'shop'})").replace("LIMIT 10", "LIMIT 5")
    editor.stop()


def test_an_edit_of_a_line_changed_elsewhere_is_a_conflict_and_both_versions_are_kept():
    first, _ = make_ops()
    editor = NotebookEditor(str(config.database_path()))
    tessera("cell", "edit", "ops/1", QUERY.replace("LIMIT 10", "LIMIT 50"))
    saved = Replies()
    mine = QUERY.replace("LIMIT 10", "LIMIT 1")
    editor.edit_cell("ops", first, mine, base_text=QUERY, **saved.kwargs())
    saved.wait()
    (err,) = saved.errors
    assert isinstance(err, EditConflict) and "changed on the same lines" in str(err)
    kept = str(err).split("your version is in ", 1)[1]
    assert open(kept).read() == mine and os.stat(kept).st_mode & 0o777 == 0o600
    assert cells()[0]["source"] == QUERY.replace("LIMIT 10", "LIMIT 50")
    conn = connect()
    assert len(events.read(conn, pattern="notebook.ops.cell_edited")) == 1  # only the other side's
    conn.close()
    editor.stop()
