"""Notebooks: the CRDT model, persistence with compaction, addresses, events for every change, the
CLI (including $EDITOR), and two processes editing at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tessera.core import events
from tessera.core.errors import QueryError, UsageError
from tessera.core.notebook import repository
from tessera.core.notebook.model import Notebook
from tessera.core.store.db import connect


def tsr(*args: str, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], capture_output=True, text=True,
                          input=input, env={**os.environ, **(env or {})}, timeout=120)


@pytest.fixture
def conn():
    c = connect()
    yield c
    c.close()


def subjects(conn, name="ops"):
    return [e.subject for e in events.read(conn, pattern=f"notebook.{name}.>")]


# --- the model --------------------------------------------------------------------------------


def test_model_rows_split_merge_and_numbering():
    nb = Notebook(name="t")
    ids = [nb.add_cell(source=f"q{i}")[0] for i in range(5)]
    assert nb.layout() == [[i] for i in ids]
    assert nb.merge_rows(1) == (1, ids[:2])
    nb.merge_rows(3)
    nb.merge_rows(1)
    assert nb.layout() == [ids[:4], [ids[4]]]
    assert [c["number"] for c in nb.cells()] == [1, 2, 3, 4, 5]
    assert [c["row"] for c in nb.cells()] == [1, 1, 1, 1, 2]
    with pytest.raises(UsageError, match=r"cannot merge row 1 \(4 cells\) with row 2 \(1 cell\)"):
        nb.merge_rows(1)
    with pytest.raises(UsageError, match="last row"):
        nb.merge_rows(5)
    assert nb.split_row(2) == (1, ids[:2], ids[2:4])
    assert nb.layout() == [ids[:2], ids[2:4], [ids[4]]]
    nb.split_row(3)
    assert nb.layout() == [ids[:2], [ids[2]], [ids[3]], [ids[4]]]
    with pytest.raises(UsageError, match="holds one cell"):
        nb.split_row(3)
    with pytest.raises(UsageError, match=r"cannot merge row 1 \(2 cells\) with row 2 \(1 cell\)"):
        nb.merge_rows(1)


def test_model_move_keeps_row_sizes_and_cell_content():
    nb = Notebook(name="t")
    ids = [nb.add_cell(source=f"q{i}", title=f"T{i}", view="json")[0] for i in range(4)]
    nb.merge_rows(1)
    nb.merge_rows(3)
    assert nb.move_cell(1, 4)
    assert nb.layout() == [[ids[1], ids[2]], [ids[3], ids[0]]]
    moved = nb.cell(4)
    assert moved == {"id": ids[0], "type": "query", "title": "T0", "view": "json", "refresh": "manual", "sources": [],
                     "source": "q0"}
    assert not nb.move_cell(2, 2)


def test_model_remove_from_a_row_of_four_rebalances():
    nb = Notebook(name="t")
    ids = [nb.add_cell()[0] for _ in range(4)]
    nb.merge_rows(1), nb.merge_rows(3), nb.merge_rows(1)
    assert nb.remove_cell(2)["id"] == ids[1]
    assert nb.layout() == [[ids[0], ids[2]], [ids[3]]]
    nb.remove_cell(3)
    nb.remove_cell(1)
    nb.remove_cell(1)
    assert nb.layout() == [] and len(nb) == 0


def test_model_text_edits_are_minimal_and_unicode_safe():
    nb = Notebook(name="t")
    nb.add_cell(source="MATCH (p:Pod) — é😀 RETURN p")
    state = nb.state()
    assert nb.edit_source(1, "MATCH (p:Pod) — é😀 WHERE true RETURN p.metadata.name")
    assert nb.cell(1)["source"] == "MATCH (p:Pod) — é😀 WHERE true RETURN p.metadata.name"
    # a concurrent edit of the same text from another replica merges with this one
    other = Notebook.from_updates([nb.full_update()])
    s2 = other.state()
    other.edit_source(1, "-- top\n" + other.cell(1)["source"])
    nb.doc.apply_update(other.update_since(s2))
    assert nb.cell(1)["source"] == "-- top\nMATCH (p:Pod) — é😀 WHERE true RETURN p.metadata.name"
    assert len(nb.update_since(state)) > 0
    assert not nb.edit_source(1, nb.cell(1)["source"])


@pytest.mark.parametrize("attrs, message", [
    ({"view": "pie"}, "not a view"),
    ({"refresh": "every:0"}, "not a refresh policy"),
    ({"refresh": "hourly"}, "not a refresh policy"),
    ({"title": "a\nb"}, "one line"),
    ({"colour": "red"}, "unknown cell attribute"),
])
def test_model_rejects_bad_attributes(attrs, message):
    nb = Notebook(name="t")
    nb.add_cell()
    with pytest.raises(UsageError, match=message):
        nb.set_attrs(1, **attrs)


def test_to_dict_shape():
    nb = Notebook(name="t")
    nb.set_title("Board")
    cid, _ = nb.add_cell("sql", "SELECT 1", view="json", refresh="every:30", sources=["demo"], title="One")
    assert nb.to_dict() == {"title": "Board", "rows": [{"cells": [
        {"id": cid, "type": "sql", "title": "One", "view": "json", "refresh": "every:30", "sources": ["demo"],
         "source": "SELECT 1"}]}]}
    assert cid.startswith("c") and len(cid) == 7


# --- store and events -------------------------------------------------------------------------


def test_every_change_is_persisted_with_its_event(conn):
    repository.create(conn, "ops", "Ops")
    repository.add_cell(conn, "ops", "MATCH (p:Pod) RETURN p", sources=["demo"], title="Pods")
    repository.add_cell(conn, "ops", "notes", type="markdown")
    repository.add_cell(conn, "ops", "SELECT 1", type="sql")
    repository.edit_cell(conn, "ops", 1, "MATCH (p:Pod) RETURN p.metadata.name")
    repository.set_cell(conn, "ops", 2, title="Notes")
    repository.merge_rows(conn, "ops", 1)
    repository.move_cell(conn, "ops", 3, 1)
    repository.split_row(conn, "ops", 1)
    repository.remove_cell(conn, "ops", 2)
    repository.set_title(conn, "ops", "Operations")
    assert subjects(conn) == [f"notebook.ops.{a}" for a in (
        "created", "cell_added", "cell_added", "cell_added", "cell_edited", "cell_set", "row_merged", "cell_moved",
        "row_split", "cell_removed", "titled")]
    # a fresh connection sees exactly the same document
    other = connect()
    nb = repository.load(other, "ops")
    assert nb.title == "Operations"
    assert [(c["type"], c["source"]) for c in nb.cells()] == [("sql", "SELECT 1"), ("markdown", "notes")]
    edited = [e for e in events.read(conn, pattern="notebook.ops.cell_edited")][0]
    assert edited.data["before"] == "MATCH (p:Pod) RETURN p" and edited.data["source"].endswith("p.metadata.name")
    assert edited.data["notebook"] == "ops" and edited.data["number"] == 1 and edited.data["cell"].startswith("c")
    set_event = events.read(conn, pattern="notebook.ops.cell_set")[0]
    assert set_event.data["changes"] == {"title": ["", "Notes"]}


def test_no_op_changes_store_nothing_and_emit_nothing(conn):
    repository.create(conn, "ops")
    repository.add_cell(conn, "ops", "x")
    before = (subjects(conn), conn.execute("SELECT count(*) FROM notebook_updates").fetchone()[0])
    assert repository.edit_cell(conn, "ops", 1, "x") is False
    assert repository.set_cell(conn, "ops", 1, view="table") == {}
    assert repository.move_cell(conn, "ops", 1, 1) is False
    assert repository.set_title(conn, "ops", "") is False
    assert (subjects(conn), conn.execute("SELECT count(*) FROM notebook_updates").fetchone()[0]) == before


def test_failed_change_rolls_back_everything(conn):
    repository.create(conn, "ops")
    repository.add_cell(conn, "ops", "x")
    n_events = events.last_seq(conn)
    with pytest.raises(UsageError):
        repository.merge_rows(conn, "ops", 1)
    with pytest.raises(QueryError):
        repository.remove_cell(conn, "ops", 5)
    assert events.last_seq(conn) == n_events
    assert len(repository.load(conn, "ops")) == 1


def test_compaction_keeps_the_document(conn, monkeypatch):
    monkeypatch.setattr(repository, "COMPACT_AFTER", 10)
    repository.create(conn, "ops")
    for i in range(25):
        repository.add_cell(conn, "ops", f"q{i}")
    for i in range(1, 26, 3):
        repository.edit_cell(conn, "ops", i, f"edited {i}")
    count = conn.execute("SELECT count(*) FROM notebook_updates").fetchone()[0]
    assert 1 <= count <= 10
    nb = repository.load(conn, "ops")
    assert len(nb) == 25
    assert nb.cell(4)["source"] == "edited 4" and nb.cell(5)["source"] == "q4"


def test_compaction_happens_at_the_default_threshold(conn):
    repository.create(conn, "ops")
    for i in range(repository.COMPACT_AFTER + 5):
        repository.add_cell(conn, "ops", f"q{i}")
    count = conn.execute("SELECT count(*) FROM notebook_updates").fetchone()[0]
    assert count < repository.COMPACT_AFTER
    assert len(repository.load(conn, "ops")) == repository.COMPACT_AFTER + 5


def test_names_duplicates_and_not_found(conn):
    repository.create(conn, "a")
    repository.create(conn, "b-2_x")
    with pytest.raises(QueryError, match="notebook 'a' already exists"):
        repository.create(conn, "a")
    for bad in ("-a", "a b", "a.b", "", "é"):
        with pytest.raises(UsageError, match="bad notebook name"):
            repository.create(conn, bad)
    with pytest.raises(QueryError, match=r"notebook 'zz' not found \(notebooks: a, b-2_x\)"):
        repository.load(conn, "zz")
    repository.add_cell(conn, "a", "x")
    repository.add_cell(conn, "a", "y")
    repository.add_cell(conn, "a", "z")
    with pytest.raises(QueryError, match="notebook 'a' has 3 cells; there is no cell 7"):
        repository.edit_cell(conn, "a", 7, "q")


def test_not_found_with_no_notebooks(conn):
    with pytest.raises(QueryError, match="there are no notebooks yet"):
        repository.load(conn, "x")


@pytest.mark.parametrize("text, kind, message", [
    ("a/b/c", None, "bad address 'a/b/c'"),
    ("a/", None, "the cell number must be a whole number"),
    ("a/0", None, "the cell number must be a whole number"),
    ("a/x", None, "the cell number must be a whole number"),
    ("/3", None, "bad address '/3'"),
    ("a b/1", None, "is not a notebook name"),
    ("ops", True, "'ops' names a notebook; this command needs a cell: ops/N"),
    ("ops/2", False, "'ops/2' names a cell; this command takes a notebook name: ops"),
])
def test_bad_addresses(text, kind, message):
    with pytest.raises(UsageError) as info:
        repository.parse_address(text, cell=kind)
    assert message in info.value.message


def test_addresses_parse():
    assert repository.parse_address("ops") == repository.Address("ops", None)
    assert repository.parse_address("ops/12", cell=True) == repository.Address("ops", 12)
    assert str(repository.parse_address("ops/3")) == "ops/3"


def test_rename_remove_list_and_history(conn):
    repository.create(conn, "ops", "Ops")
    repository.add_cell(conn, "ops", "x")
    repository.rename(conn, "ops", "prod")
    with pytest.raises(QueryError, match="not found"):
        repository.load(conn, "ops")
    repository.add_cell(conn, "prod", "y")
    hist = repository.history(conn, "prod")
    assert [e.subject for e in hist] == ["notebook.ops.created", "notebook.ops.cell_added", "notebook.prod.renamed",
                                         "notebook.prod.cell_added"]
    assert [e.seq for e in hist] == sorted(e.seq for e in hist)
    assert hist[2].data["from"] == "ops" and hist[2].data["to"] == "prod"
    repository.create(conn, "other")
    with pytest.raises(QueryError, match="already exists"):
        repository.rename(conn, "prod", "other")
    assert [n["name"] for n in repository.list_notebooks(conn)] == ["other", "prod"]
    assert repository.list_notebooks(conn)[1]["cells"] == 2
    nid = repository.notebook_id(conn, "prod")
    repository.remove(conn, "prod")
    assert conn.execute("SELECT count(*) FROM notebook_updates WHERE notebook_id = ?", (nid,)).fetchone()[0] == 0
    assert events.read(conn, pattern="notebook.prod.removed")[0].data["cells"] == 2
    # a new notebook with a removed one's name starts a fresh history
    repository.create(conn, "prod")
    assert [e.subject for e in repository.history(conn, "prod")] == ["notebook.prod.created"]


def test_unknown_cell_type_is_refused(conn):
    repository.create(conn, "ops")
    with pytest.raises(UsageError, match=r"no cell type 'pie' \(types: query, markdown, sql, events"):
        repository.add_cell(conn, "ops", "x", type="pie")


def test_editor_edit_merges_with_a_change_made_meanwhile(conn):
    repository.create(conn, "ops")
    repository.add_cell(conn, "ops", "line one\nline two")
    repository.add_cell(conn, "ops", "other")
    base = repository.load(conn, "ops")  # the editor opens on cell 1
    repository.edit_cell(conn, "ops", 1, "line one\nline two\nline three")  # someone else appends meanwhile
    repository.move_cell(conn, "ops", 1, 2)  # and moves the cell
    assert repository.edit_cell(conn, "ops", 1, "LINE ONE\nline two", base=base)
    assert repository.load(conn, "ops").cell(2)["source"] == "LINE ONE\nline two\nline three"


def test_merge_text_merges_other_lines_and_refuses_the_same_line():
    from tessera.core.notebook.model import MergeConflict, merge_text

    base = "MATCH (p:Pod)\nRETURN p\nLIMIT 10"
    assert merge_text(base, "MATCH (p:Pod)\nRETURN p\nLIMIT 50", "MATCH (p:Pod)\nRETURN p.metadata.name\nLIMIT 10") == \
        "MATCH (p:Pod)\nRETURN p.metadata.name\nLIMIT 50"
    assert merge_text(base, "// top\n" + base, base + "\n// end") == "// top\n" + base + "\n// end"
    assert merge_text(base, base.replace("10", "5"), base.replace("10", "5")) == base.replace("10", "5")
    for theirs, mine in [(base.replace("10", "50"), base.replace("10", "1")),  # the same line, differently
                         (base.replace("RETURN p\n", ""), base.replace("RETURN p", "RETURN p.kind")),  # deleted vs changed
                         (base + "\nSKIP 1", base + "\nSKIP 2")]:  # different lines added at one place
        with pytest.raises(MergeConflict):
            merge_text(base, theirs, mine)


def test_editor_edit_of_a_line_changed_meanwhile_is_a_conflict_that_keeps_both(conn):
    import stat

    from tessera.core.errors import EditConflict

    repository.create(conn, "ops")
    repository.add_cell(conn, "ops", "MATCH (p:Pod) RETURN p LIMIT 10")
    base = repository.load(conn, "ops")
    repository.edit_cell(conn, "ops", 1, "MATCH (p:Pod) RETURN p LIMIT 50")  # someone else, meanwhile
    with pytest.raises(EditConflict) as caught:
        repository.edit_cell(conn, "ops", 1, "MATCH (p:Pod) RETURN p LIMIT 1", base=base)
    assert caught.value.exit_code == 1
    kept = caught.value.message.rsplit("your version is in ", 1)[1]
    assert open(kept).read() == "MATCH (p:Pod) RETURN p LIMIT 1"
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
    assert repository.load(conn, "ops").cell(1)["source"] == "MATCH (p:Pod) RETURN p LIMIT 50"
    assert len(events.read(conn, pattern="notebook.ops.cell_edited")) == 1  # only the other edit
    repository.remove_cell(conn, "ops", 1)  # a cell removed while its editor was open: the edit is kept too
    with pytest.raises(EditConflict, match="was removed while you edited it") as caught:
        repository.edit_cell(conn, "ops", base.ids()[0], "MATCH (n) RETURN n", base_text="MATCH (p:Pod) RETURN p LIMIT 10")
    assert open(caught.value.message.rsplit("your version is in ", 1)[1]).read() == "MATCH (n) RETURN n"


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_lifecycle_and_errors():
    assert tsr("notebook", "new", "ops", "--title", "Ops board").returncode == 0
    dup = tsr("notebook", "new", "ops")
    assert dup.returncode == 1 and dup.stderr.startswith("tessera: notebook 'ops' already exists")
    add = tsr("cell", "add", "ops", "-s", "demo", "--title", "Deps", "MATCH (d:Deployment) RETURN d.metadata.name AS n")
    assert add.returncode == 0 and add.stdout == "ops/1\n", add.stderr
    assert tsr("cell", "add", "ops", "-t", "markdown", "-f", "-", input="# Notes\n").stdout == "ops/2\n"
    assert tsr("cell", "merge", "ops/1").returncode == 0
    shown = json.loads(tsr("notebook", "show", "ops", "-o", "json").stdout)
    assert shown["title"] == "Ops board" and len(shown["rows"]) == 1
    assert [c["type"] for c in shown["rows"][0]["cells"]] == ["query", "markdown"]
    assert shown["rows"][0]["cells"][1]["source"] == "# Notes\n"
    lines = [json.loads(x) for x in tsr("notebook", "show", "ops", "-o", "jsonl").stdout.splitlines()]
    assert [x["cell"] for x in lines] == ["ops/1", "ops/2"] and lines[0]["title"] == "Deps"
    assert tsr("cell", "set", "ops/1", "--view", "json", "--refresh", "every:10").returncode == 0
    assert json.loads(tsr("notebook", "show", "ops/1", "-o", "json").stdout)["refresh"] == "every:10"
    for args, code, message in [
        (("notebook", "show", "nope"), 1, "tessera: notebook 'nope' not found (notebooks: ops)"),
        (("cell", "edit", "ops/7", "x"), 1, "tessera: notebook 'ops' has 2 cells; there is no cell 7"),
        (("cell", "rm", "ops"), 2, "tessera: 'ops' names a notebook; this command needs a cell: ops/N"),
        (("cell", "rm", "a/b/c"), 2, "tessera: bad address 'a/b/c'"),
        (("cell", "split", "ops/1"), 0, ""),
        (("cell", "merge", "ops/2"), 2, "tessera: row 2 is the last row"),
        (("cell", "set", "ops/1", "--view", "pie"), 2, "tessera: 'pie' is not a view"),
        (("cell", "set", "ops/1"), 2, "tessera: nothing to set"),
        (("notebook", "new", "bad name"), 2, "tessera: bad notebook name 'bad name'"),
        (("notebook", "rename", "ops", "prod"), 0, ""),
    ]:
        proc = tsr(*args)
        assert proc.returncode == code, (args, proc.stderr)
        if message:
            assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, (args, proc.stderr)
    listed = [json.loads(x) for x in tsr("notebook", "list").stdout.splitlines()]
    assert [(x["name"], x["cells"], x["rows"]) for x in listed] == [("prod", 2, 2)]
    hist = [json.loads(x) for x in tsr("notebook", "history", "prod").stdout.splitlines()]
    assert [h["action"] for h in hist] == ["created", "cell_added", "cell_added", "row_merged", "cell_set",
                                           "row_split", "renamed"]
    assert tsr("notebook", "rm", "prod").returncode == 0
    assert tsr("notebook", "list").stdout == ""


def test_cli_cell_edit_opens_the_editor(tmp_path):
    script = tmp_path / "fake-editor"
    log = tmp_path / "seen"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys
        path = sys.argv[1]
        text = open(path).read()
        open({str(log)!r}, "w").write(text)
        open(path, "w").write(text.replace("count", "COUNT") + "// edited\\n")
        """))
    script.chmod(0o755)
    tsr("notebook", "new", "ops")
    tsr("cell", "add", "ops", "MATCH (p:Pod) RETURN count(p)")
    proc = tsr("cell", "edit", "ops/1", env={"EDITOR": str(script), "VISUAL": ""})
    assert proc.returncode == 0 and "edited ops/1" in proc.stderr, proc.stderr
    assert log.read_text() == "MATCH (p:Pod) RETURN count(p)\n"  # the file ends with a newline, as editors like
    assert json.loads(tsr("notebook", "show", "ops/1", "-o", "json").stdout)["source"] == \
        "MATCH (p:Pod) RETURN COUNT(p)\n// edited"
    conn = connect()
    assert events.read(conn, pattern="notebook.ops.cell_edited")[0].data["source"].endswith("// edited")
    # an editor that leaves the text alone changes nothing; a failing one reports and changes nothing
    assert "no change" in tsr("cell", "edit", "ops/1", env={"EDITOR": "true", "VISUAL": ""}).stderr
    failing = tsr("cell", "edit", "ops/1", env={"EDITOR": "false", "VISUAL": ""})
    assert failing.returncode == 2 and "the editor exited with status 1" in failing.stderr
    assert len(events.read(conn, pattern="notebook.ops.cell_edited")) == 1


def test_cli_two_editor_edits_of_one_line_report_a_conflict(tmp_path):
    # The editor stands for a person: while it is open, another process edits the same line.
    script = tmp_path / "slow-editor"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import subprocess, sys
        subprocess.run([{sys.executable!r}, "-m", "tessera.cli.main", "cell", "edit", "ops/1",
                        "MATCH (p:Pod) RETURN p LIMIT 50"], check=True)
        path = sys.argv[1]
        text = open(path).read()
        open(path, "w").write(text.replace("LIMIT 10", "LIMIT 1"))
        """))
    script.chmod(0o755)
    tsr("notebook", "new", "ops")
    tsr("cell", "add", "ops", "MATCH (p:Pod) RETURN p LIMIT 10")
    proc = tsr("cell", "edit", "ops/1", env={"EDITOR": str(script), "VISUAL": ""})
    assert proc.returncode == 1, proc.stderr
    other, line = proc.stderr.splitlines()  # the other process's note, then ours
    assert other == "tessera: edited ops/1"
    assert line.startswith("tessera: cell ops/1 (") and "was changed on the same lines while you edited it" in line
    kept = line.split("your version is in ", 1)[1].split(" (", 1)[0]
    assert open(kept).read() == "MATCH (p:Pod) RETURN p LIMIT 1"  # as the cell would hold it
    assert json.loads(tsr("notebook", "show", "ops/1", "-o", "json").stdout)["source"] == \
        "MATCH (p:Pod) RETURN p LIMIT 50"
    assert tsr("cell", "edit", "ops/1", "-f", kept).returncode == 0  # what the hint offers: keep yours


def test_two_processes_adding_cells_concurrently_lose_nothing(tmp_path):
    assert tsr("notebook", "new", "race").returncode == 0
    code = textwrap.dedent("""\
        import sys
        from tessera.core.store.db import connect
        from tessera.core.notebook import repository
        conn = connect()
        who = sys.argv[1]
        repository.TYPING_RUN_SECONDS = -1  # every edit its own event: this counts that none is lost
        for i in range(15):
            repository.add_cell(conn, "race", f"{who}-{i}")
            if i % 5 == 4:  # read-modify-write inside the change's transaction
                repository.change(conn, "race", "cell_edited",
                             lambda nb: nb.edit_source(1, nb.cell(1)["source"] + who) and {"cell": nb.cell(1)["id"]})
        """)
    procs = [subprocess.Popen([sys.executable, "-c", code, who], stderr=subprocess.PIPE, text=True) for who in "AB"]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    conn = connect()
    nb = repository.load(conn, "race")
    sources = [c["source"] for c in nb.cells()]
    assert len(sources) == 30
    assert {s.rstrip("AB") for s in sources} == {f"{w}-{i}" for w in "AB" for i in range(15)}
    assert len(events.read(conn, pattern="notebook.race.cell_added")) == 30
    assert len(events.read(conn, pattern="notebook.race.cell_edited")) == 6
    assert sorted(sources[0][len(sources[0].rstrip("AB")):]) == sorted("AAABBB")
    assert events.verify(conn).ok
