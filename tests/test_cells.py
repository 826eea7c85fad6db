"""Cell types (query, markdown, sql, events, plugins by entry point) and ``notebook run``: JSONL
rows carrying the cell id, ``query.<notebook>.<cell>.changed`` events with the row diff, only when
a result changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tessera.core import events
from tessera.core.errors import QueryError, UsageError
from tessera.core.notebook import cells as cells_mod
from tessera.core.notebook import repository
from tessera.core.notebook.cells import CellContext, cell_type, cell_type_names, record_result, run_cell, run_notebook
from tessera.core.result import Result
from tessera.core.store.db import connect

DEPLOYMENTS = "MATCH (d:Deployment) WHERE d.metadata.namespace = \"payments\" RETURN d.metadata.name AS name ORDER BY name"


def tsr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


@pytest.fixture
def conn():
    c = connect()
    yield c
    c.close()


def cell(type: str, source: str, **extra) -> dict:
    return {"id": "c000001", "type": type, "source": source, "view": "table", "refresh": "manual", "sources": [],
            "title": "", "number": 1, **extra}


# --- the registry -----------------------------------------------------------------------------


def test_bundled_types_load_without_entry_points(monkeypatch):
    def boom(**_):
        raise AssertionError("entry points scanned")

    monkeypatch.setattr("importlib.metadata.entry_points", boom)
    monkeypatch.setattr(cells_mod, "_loaded", {})
    for name in ("query", "markdown", "sql", "events"):
        assert cell_type(name).name == name
    assert cell_type("query").fence == "cypher"


def test_unknown_type_lists_the_known_ones():
    with pytest.raises(UsageError, match=r"no cell type 'pie' \(types: query, markdown, sql, events, search, status\)"):
        cell_type("pie")


def test_plugin_cell_type_from_an_entry_point(monkeypatch, tmp_path, conn):
    from importlib.metadata import EntryPoint

    (tmp_path / "tessera_upper_cell.py").write_text(
        "from tessera.core.result import Result\n"
        "class UpperCell:\n"
        "    name = 'upper'\n    fence = 'upper'\n    runnable = True\n"
        "    def run(self, cell, context):\n"
        "        return Result(columns=['text'], rows=[{'text': cell['source'].upper()}])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint(name="upper", value="tessera_upper_cell:UpperCell", group="tessera.cells")
    from importlib import metadata

    installed = metadata.entry_points

    def with_upper(**selection):
        found = list(installed(**selection))
        if selection.get("group") == "tessera.cells" and selection.get("name") in (None, "upper"):
            found.append(ep)
        return found

    monkeypatch.setattr(metadata, "entry_points", with_upper)
    monkeypatch.setattr(cells_mod, "_loaded", {})
    assert cell_type_names() == ["query", "markdown", "sql", "events", "search", "status", "upper"]
    repository.create(conn, "p")
    repository.add_cell(conn, "p", "shout", type="upper")
    (run,) = run_notebook(conn, "p")
    assert run.result.rows == [{"text": "SHOUT"}]
    from tessera.core.notebook.markdown import export_markdown, import_markdown

    text = export_markdown(repository.load(conn, "p"))
    assert text.startswith("```upper {")
    assert import_markdown(text).cell(1)["type"] == "upper"


def test_bundled_cells_are_registered_as_entry_points():
    """The bundled types come from Tessera's own ``tessera.cells`` entry points."""
    from tessera.core import entry_points

    assert sorted((ep.name, ep.value) for ep in entry_points.own("tessera.cells")) == [
        ("events", "tessera.plugins.cells.events_cell:EventsCell"),
        ("markdown", "tessera.plugins.cells.markdown_cell:MarkdownCell"),
        ("query", "tessera.plugins.cells.query_cell:QueryCell"),
        ("search", "tessera.plugins.cells.search_cell:SearchCell"),
        ("sql", "tessera.plugins.cells.sql_cell:SqlCell"),
        ("status", "tessera.plugins.cells.status_cell:StatusCell"),
    ]
    assert type(cell_type("sql")).__module__ == "tessera.plugins.cells.sql_cell"


# --- each type --------------------------------------------------------------------------------


def test_query_cell_runs_over_its_sources(conn):
    result = run_cell(cell("query", DEPLOYMENTS, sources=["demo"]), CellContext(conn, notebook="n"))
    assert result.columns == ["name"] and len(result.rows) >= 2
    assert result.rows == sorted(result.rows, key=lambda r: r["name"])


def test_query_cell_uses_the_run_defaults_when_it_has_no_sources(conn):
    ctx = CellContext(conn, notebook="n", default_sources=["demo"])
    assert run_cell(cell("query", "MATCH (c:Certificate) RETURN count(c) AS n"), ctx).rows == [{"n": 3}]


def test_query_cell_without_a_query(conn):
    with pytest.raises(QueryError, match="has no query"):
        run_cell(cell("query", "  "), CellContext(conn, notebook="n"))


def test_markdown_cell_has_nothing_to_run(conn):
    result = run_cell(cell("markdown", "# hi"), CellContext(conn))
    assert result.rows == [] and result.columns == []
    assert cell_type("markdown").runnable is False


def test_sql_cell_reads_the_store(conn):
    events.append(conn, "demo.one", {"x": 1})
    events.append(conn, "demo.two", {"x": 2})
    result = run_cell(cell("sql", "SELECT subject, json_extract(data, '$.x') AS x, subject FROM events ORDER BY seq"),
                      CellContext(conn, notebook="n"))
    assert result.columns == ["subject", "x", "subject_2"]
    assert result.rows == [{"subject": "demo.one", "x": 1, "subject_2": "demo.one"},
                           {"subject": "demo.two", "x": 2, "subject_2": "demo.two"}]
    rec = run_cell(cell("sql", "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT i FROM n"),
                   CellContext(conn))
    assert [r["i"] for r in rec.rows] == [1, 2, 3]


@pytest.mark.parametrize("statement", [
    "DELETE FROM events",
    "INSERT INTO meta(key, value) VALUES ('x', 'y')",
    "UPDATE events SET subject = 'x'",
    "DROP TABLE events",
    "CREATE TABLE t(x)",
    "PRAGMA user_version = 99",
    "ATTACH DATABASE ':memory:' AS other",
    "CREATE TEMP TABLE t(x)",
    "VACUUM",
])
def test_sql_cell_refuses_writes(conn, statement):
    events.append(conn, "demo.one", {"x": 1})
    before = conn.execute("SELECT count(*), (SELECT count(*) FROM meta) FROM events").fetchone()
    with pytest.raises(QueryError, match="sql cell n/1 is read-only: only SELECT"):
        run_cell(cell("sql", statement), CellContext(conn, notebook="n"))
    assert conn.execute("SELECT count(*), (SELECT count(*) FROM meta) FROM events").fetchone() == before
    assert conn.execute("PRAGMA user_version").fetchone()[0] != 99


def test_sql_cell_errors_are_one_line(conn):
    with pytest.raises(QueryError, match="sql cell n/1: no such table: nope"):
        run_cell(cell("sql", "SELECT * FROM nope"), CellContext(conn, notebook="n"))
    with pytest.raises(QueryError, match="sql cell n/1"):
        run_cell(cell("sql", "SELECT 1; SELECT 2"), CellContext(conn, notebook="n"))
    with pytest.raises(QueryError, match="has no statement"):
        run_cell(cell("sql", ""), CellContext(conn, notebook="n"))


def test_events_cell_matches_a_subject_pattern(conn):
    events.append_many(conn, [("deploy.web.rolled", {"v": 1}), ("deploy.api.rolled", {"v": 2}), ("pod.x.died", {})])
    result = run_cell(cell("events", " deploy.*.rolled \n"), CellContext(conn))
    assert [r["subject"] for r in result.rows] == ["deploy.web.rolled", "deploy.api.rolled"]
    assert result.rows[1]["data"] == {"v": 2}
    assert result.columns[:3] == ["seq", "time", "subject"] and len(result.keys) == 2
    assert len(run_cell(cell("events", ""), CellContext(conn)).rows) == 3
    with pytest.raises(UsageError, match="bad subject pattern"):
        run_cell(cell("events", "a..b"), CellContext(conn))


# --- changed events ---------------------------------------------------------------------------


def test_record_result_emits_only_on_change(conn):
    repository.create(conn, "nb")
    cid, _ = repository.add_cell(conn, "nb", "x", type="sql")
    nid = repository.notebook_id(conn, "nb")
    c = repository.load(conn, "nb").cells()[0]
    r1 = Result(columns=["a"], rows=[{"a": 1}, {"a": 2}], keys=["k1", "k2"])
    assert [ch["op"] for ch in record_result(conn, "nb", nid, c, r1)] == ["added", "added"]
    assert record_result(conn, "nb", nid, c, r1) == []
    r2 = Result(columns=["a"], rows=[{"a": 3}, {"a": 4}], keys=["k2", "k3"])
    changes = record_result(conn, "nb", nid, c, r2)
    assert [(ch["op"], ch["key"], ch["row"]) for ch in changes] == [("removed", "k1", {"a": 1}), ("changed", "k2", {"a": 3}),
                                                                    ("added", "k3", {"a": 4})]
    found = events.read(conn, pattern=f"query.nb.{cid}.changed")
    assert len(found) == 2
    assert found[1].data["changes"] == changes and found[1].data["cell"] == cid and found[1].data["rows"] == 2
    stored = json.loads(conn.execute("SELECT rows FROM cell_results WHERE cell_id = ?", (cid,)).fetchone()[0])
    assert stored == {"k2": {"a": 3}, "k3": {"a": 4}}


def test_an_empty_first_result_is_stored_without_an_event(conn):
    repository.create(conn, "nb")
    cid, _ = repository.add_cell(conn, "nb", "SELECT 1 WHERE 0", type="sql")
    (run,) = run_notebook(conn, "nb")
    assert run.result.rows == [] and run.changes == []
    assert events.read(conn, pattern="query.>") == []
    assert conn.execute("SELECT rows FROM cell_results WHERE cell_id = ?", (cid,)).fetchone()[0] == "{}"


def test_cli_notebook_run_jsonl_and_changed_events(conn):
    tsr("notebook", "new", "ops")
    q = tsr("cell", "add", "ops", "-s", "demo", DEPLOYMENTS).stdout.strip()
    tsr("cell", "add", "ops", "-t", "markdown", "just prose")
    tsr("cell", "add", "ops", "-t", "events", "deploy.>")
    tsr("cell", "add", "ops", "-t", "sql", "SELECT count(*) AS n FROM notebooks")
    assert q == "ops/1"
    ids = repository.load(conn, "ops").ids()
    first = tsr("notebook", "run", "ops")
    assert first.returncode == 0, first.stderr
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert {r["cell"] for r in rows} == {ids[0], ids[3]}  # markdown runs nothing; no deploy.> events yet
    assert all(set(r) == {"cell", "name"} for r in rows if r["cell"] == ids[0])
    assert [r for r in rows if r["cell"] == ids[3]] == [{"cell": ids[3], "n": 1}]
    changed = events.read(conn, pattern="query.ops.*.changed")
    assert [e.subject for e in changed] == [f"query.ops.{ids[0]}.changed", f"query.ops.{ids[3]}.changed"]
    names = [r["name"] for r in rows if r["cell"] == ids[0]]
    assert [c["row"]["name"] for c in changed[0].data["changes"]] == names
    assert {c["op"] for c in changed[0].data["changes"]} == {"added"}
    # the same results again: no new events
    assert tsr("notebook", "run", "ops").returncode == 0
    assert len(events.read(conn, pattern="query.ops.*.changed")) == 2
    # results change: only the cells whose rows changed report, with the diff
    events.append(conn, "deploy.web.rolled", {"to": "v2"})
    tsr("notebook", "new", "second")
    third = tsr("notebook", "run", "ops")
    assert third.returncode == 0
    later = events.read(conn, pattern="query.ops.*.changed")[2:]
    assert sorted(e.subject for e in later) == sorted([f"query.ops.{ids[2]}.changed", f"query.ops.{ids[3]}.changed"])
    sql_change = next(e for e in later if e.data["cell"] == ids[3])
    assert sql_change.data["changes"] == [{"op": "changed", "key": "0", "row": {"n": 2}, "ts": sql_change.data["changes"][0]["ts"]}]
    ev_change = next(e for e in later if e.data["cell"] == ids[2])
    assert [c["op"] for c in ev_change.data["changes"]] == ["added"]
    assert ev_change.data["changes"][0]["row"]["subject"] == "deploy.web.rolled"
    # one cell by address
    one = tsr("notebook", "run", "ops/4", "-o", "jsonl")
    assert [json.loads(x) for x in one.stdout.splitlines()] == [{"cell": ids[3], "n": 2}]
    bad = tsr("notebook", "run", "ops/9")
    assert bad.returncode == 1 and "notebook 'ops' has 4 cells; there is no cell 9" in bad.stderr


def test_cli_notebook_run_reports_a_failing_cell_and_runs_the_others(conn):
    tsr("notebook", "new", "ops")
    tsr("cell", "add", "ops", "-t", "sql", "DELETE FROM events")
    tsr("cell", "add", "ops", "-t", "sql", "SELECT 1 AS one")
    proc = tsr("notebook", "run", "ops")
    assert proc.returncode == 1
    ids = repository.load(conn, "ops").ids()
    assert [json.loads(x) for x in proc.stdout.splitlines()] == [{"cell": ids[1], "one": 1}]
    assert f"ops/1 ({ids[0]}): sql cell ops/1 is read-only" in proc.stderr
    assert proc.stderr.strip().split("\n")[-1].startswith("tessera: 1 of 2 cells failed; first: ops/1")


def test_cli_notebook_run_summarises_a_parse_error_like_other_errors(conn):
    tsr("notebook", "new", "ops")
    tsr("cell", "add", "ops", "-s", "demo", "MATCH (p:Pod RETURN p")
    tsr("cell", "add", "ops", "-t", "sql", "SELECT 1 AS one")
    proc = tsr("notebook", "run", "ops")
    ids = repository.load(conn, "ops").ids()
    assert proc.returncode == 1, proc.stderr
    assert [json.loads(x) for x in proc.stdout.splitlines()] == [{"cell": ids[1], "one": 1}]
    first, last = proc.stderr.strip().split("\n")
    assert first.startswith(f"tessera: ops/1 ({ids[0]}): parse error at line 1, column ")
    assert last.startswith(f"tessera: 1 of 2 cells failed; first: ops/1 ({ids[0]}): parse error at line 1, column ")
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


def test_cli_notebook_run_with_default_sources_and_table_views(conn):
    tsr("notebook", "new", "ops")
    tsr("cell", "add", "ops", "--title", "Certificates", "MATCH (c:Certificate) RETURN count(c) AS n")
    tsr("cell", "add", "ops", "--view", "json", "MATCH (c:Certificate) RETURN count(c) AS m")
    out = tsr("notebook", "run", "ops", "-s", "demo", "-o", "jsonl")
    assert [json.loads(x)["n" if i == 0 else "m"] for i, x in enumerate(out.stdout.splitlines())] == [3, 3]
    table = tsr("notebook", "run", "ops", "-s", "demo", "-o", "table")
    assert "── ops/1 Certificates" in table.stdout and "── ops/2 query" in table.stdout
    as_json = json.loads(tsr("notebook", "run", "ops", "-s", "demo", "-o", "json").stdout)
    ids = repository.load(conn, "ops").ids()
    assert as_json == [{"cell": ids[0], "n": 3}, {"cell": ids[1], "m": 3}]
