"""The ``search`` cell type (plugins/cells/search_cell.py): hits as rows, option lines, the
markdown round trip, ``notebook run`` JSONL, and a live dashboard pane that follows the index."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from knowledge_helpers import write_notes
from tessera.core.errors import QueryError
from tessera.core.knowledge import search as search_mod
from tessera.core.knowledge.ingest import ingest_paths
from tessera.core.notebook import repository
from tessera.core.notebook.cells import CellContext, cell_type, cell_type_names, run_cell
from tessera.core.notebook.markdown import export_markdown, import_markdown
from tessera.core.store.db import connect

TSR = [sys.executable, "-m", "tessera.cli.main"]


def tsr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TSR, *args], capture_output=True, text=True, env=dict(os.environ), timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def conn(tmp_path):
    c = connect()
    ingest_paths(c, [str(write_notes(tmp_path))])
    yield c
    c.close()


def cell(source: str, **extra) -> dict:
    return {"id": "s000001", "type": "search", "source": source, "view": "table", "refresh": "manual", "sources": [],
            "title": "", "number": 1, **extra}


def test_search_is_a_bundled_cell_type_listed_after_the_others():
    names = cell_type_names()
    assert names[:5] == ["query", "markdown", "sql", "events", "search"]
    assert type(cell_type("search")).__module__ == "tessera.plugins.cells.search_cell"


def test_rows_are_the_hits_best_first(conn):
    result = run_cell(cell("rollout undo"), CellContext(conn, notebook="n"))
    assert result.columns[:5] == ["score", "path", "title", "heading", "snippet"]
    assert result.rows[0]["path"] == "runbooks/web.md" and "«rollout»" in result.rows[0]["snippet"]
    assert [r["score"] for r in result.rows] == sorted((r["score"] for r in result.rows), reverse=True)
    assert len(result.keys) == len(result.rows) == len(set(result.keys))


def test_option_lines_set_mode_limit_and_per(conn):
    context = CellContext(conn, notebook="n")
    one = run_cell(cell("mode: bm25\nlimit: 1\n\nkubectl"), context)
    assert len(one.rows) == 1
    by_doc = run_cell(cell("mode: bm25\nlimit: 50\nkubectl"), context)
    by_chunk = run_cell(cell("mode: bm25\nper: chunk\nlimit: 50\nkubectl"), context)
    assert len({r["path"] for r in by_doc.rows}) == len(by_doc.rows) < len(by_chunk.rows)
    # "title:" is search syntax, not an option line
    titled = run_cell(cell("mode: bm25\ntitle:runbook"), context)
    assert {r["path"] for r in titled.rows} == {"runbooks/web.md"}


@pytest.mark.parametrize("source, what", [
    ("mode: fuzzy\nweb", "search cell n/1: 'mode: fuzzy' is not a choice (mode: bm25 | semantic | hybrid)"),
    ("limit: 0\nweb", "search cell n/1: 'limit: 0' is not a number of hits"),
    ("mode: bm25\n", "search cell n/1 has no text to search for"),
    ("web AND", "bad search text 'web AND'"),
])
def test_bad_cells_are_one_line_errors(conn, source, what):
    with pytest.raises(QueryError) as err:
        run_cell(cell(source), CellContext(conn, notebook="n"))
    assert err.value.one_line().startswith(what) and "\n" not in err.value.one_line()


def test_a_rerun_with_nothing_changed_does_not_search_again(conn, tmp_path, monkeypatch):
    calls = []
    real = search_mod.Searcher.search

    def counting(self, *args, **kwargs):
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(search_mod.Searcher, "search", counting)
    context = CellContext(conn, notebook="n")
    first = run_cell(cell("mode: bm25\nrestart"), context)
    again = run_cell(cell("mode: bm25\nrestart"), context)
    assert len(calls) == 1 and again.rows == first.rows
    again.rows.clear()  # a caller's copy: the cached result is not touched
    (tmp_path / "notes" / "runbooks" / "restarts.md").write_text("# Restarts\n\nHow to restart anything.\n")
    ingest_paths(conn, [str(tmp_path / "notes")])
    after = run_cell(cell("mode: bm25\nrestart"), context)
    assert len(calls) == 2 and "runbooks/restarts.md" in {r["path"] for r in after.rows}
    assert run_cell(cell("mode: bm25\nrestart"), context).rows == after.rows and len(calls) == 2


def test_markdown_round_trip_keeps_a_search_cell():
    conn = connect()
    repository.create(conn, "kb")
    repository.add_cell(conn, "kb", "mode: semantic\nlimit: 5\nmy container keeps restarting", type="search",
                        refresh="watch")
    text = export_markdown(repository.load(conn, "kb"))
    assert "```search {" in text and "type=search" in text and "refresh=watch" in text
    back = import_markdown(text, name="kb")
    (only,) = back.cells()
    assert only["type"] == "search" and only["source"] == "mode: semantic\nlimit: 5\nmy container keeps restarting"
    assert export_markdown(back) == text
    bare = import_markdown("# KB\n\n```search\nkube-proxy\n```\n", name="bare")
    assert bare.cells()[0]["type"] == "search"


def test_notebook_run_prints_the_hits_as_jsonl(conn):
    assert tsr("notebook", "new", "kb").returncode == 0
    added = tsr("cell", "add", "kb", "-t", "search", "mode: bm25\nrollout undo")
    assert added.returncode == 0, added.stderr
    ran = tsr("notebook", "run", "kb", "-o", "jsonl")
    assert ran.returncode == 0, ran.stderr
    rows = [json.loads(line) for line in ran.stdout.splitlines()]
    assert rows and rows[0]["path"] == "runbooks/web.md" and rows[0]["cell"] == repository.load(conn, "kb").ids()[0]
    assert {"score", "path", "title", "heading", "snippet"} <= set(rows[0])


def test_a_live_dashboard_pane_shows_a_newly_ingested_note(conn, tmp_path):
    pytest.importorskip("textual")
    from test_dash import dashboard, make_notebook, run, screen_text, until

    make_notebook("kb", ['```search {id=hits type=search view=table refresh=watch row=1 title="Hits"}\n'
                         "mode: bm25\nzanzibar\n```\n\n"])

    async def main():
        async with dashboard("kb", (200, 30)) as (app, pilot):
            assert app.session.panes["hits"].status == "live" and app.session.panes["hits"].rows == 0
            (tmp_path / "notes" / "runbooks" / "zanzibar.md").write_text("# Zanzibar\n\nThe zanzibar cluster runbook.\n")
            writer = connect()
            ingest_paths(writer, [str(tmp_path / "notes")])
            writer.close()
            await until(pilot, app, lambda: app.session.panes["hits"].rows == 1, timeout=60,
                        what="the new note in the pane")
            assert "runbooks/zanzibar.md" in screen_text(app)
    run(main())
