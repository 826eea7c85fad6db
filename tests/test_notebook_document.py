"""The shared notebook document (issue 15, doc): format 2 (moves keep a cell's Map and text),
format 1 documents read and upgraded in place, ``repository.apply_update`` with ``by``, ``by`` on
every notebook event, and typing runs (one cell_edited event per cell and author per run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tessera.core import events
from tessera.core.errors import InputError, QueryError
from tessera.core.notebook import repository
from tessera.core.notebook.model import Notebook
from tessera.core.peers.identity import local_identity
from tessera.core.store.db import connect

BOB = {"node": "b0" * 32, "name": "bob@laptop"}
CAROL = {"node": "c0" * 32, "name": "carol@desk"}


@pytest.fixture
def conn():
    c = connect()
    yield c
    c.close()


def notebook_events(conn, name="ops", action=">"):
    return events.read(conn, pattern=f"notebook.{name}.{action}")


def stored_updates(conn, nid):
    return [r[0] for r in conn.execute("SELECT data FROM notebook_updates WHERE notebook_id = ? ORDER BY id", (nid,))]


def replica_of(conn, name="ops") -> Notebook:
    """A collaborator's copy: a second Doc holding what the store holds."""
    return Notebook.from_updates(stored_updates(conn, repository.notebook_id(conn, name)), name=name)


def send(conn, copy: Notebook, edit, *, by=BOB, name="ops"):
    """Edit a collaborator's copy and apply the edit's update to the store, as the host does."""
    before = copy.state()
    edit(copy)
    return repository.apply_update(conn, name, copy.update_since(before), by=by)


# --- apply_update --------------------------------------------------------------------------------


def test_apply_update_stores_a_collaborators_edit_with_its_events_by_them(conn):
    repository.create(conn, "ops", "Ops")
    first, _ = repository.add_cell(conn, "ops", "MATCH (p:Pod) RETURN p")
    copy = replica_of(conn)
    nid = repository.notebook_id(conn, "ops")
    rows_before = len(stored_updates(conn, nid))

    def edit(nb):
        nb.edit_source_by_id(first, "MATCH (p:Pod) RETURN p.name")
        nb.add_cell(source="MATCH (d:Deployment) RETURN d", id="cbob01")
        nb.set_title("Ops board")

    out = send(conn, copy, edit)
    assert out == {"changed": ["titled", "cell_added", "cell_edited"], "notebook": "ops"}
    stored = repository.load(conn, "ops")
    assert stored.to_dict() == copy.to_dict()
    assert len(stored_updates(conn, nid)) == rows_before + 1
    made = notebook_events(conn)[-3:]
    assert [e.subject.rsplit(".", 1)[-1] for e in made] == ["titled", "cell_added", "cell_edited"]
    assert all(e.data["by"] == BOB for e in made)
    assert made[1].data["cell"] == "cbob01" and made[1].data["number"] == 2
    assert made[2].data["before"] == "MATCH (p:Pod) RETURN p" and made[2].data["source"] == "MATCH (p:Pod) RETURN p.name"


def test_apply_update_twice_stores_nothing_the_second_time(conn):
    repository.create(conn, "ops")
    copy = replica_of(conn)
    before = copy.state()
    copy.add_cell(source="a")
    update = copy.update_since(before)
    nid = repository.notebook_id(conn, "ops")
    assert repository.apply_update(conn, nid, update, by=BOB)["changed"] == ["cell_added"]
    count, seq = len(stored_updates(conn, nid)), events.last_seq(conn)
    assert repository.apply_update(conn, "ops", update, by=BOB) is None
    assert len(stored_updates(conn, nid)) == count and events.last_seq(conn) == seq


def test_apply_update_stores_the_difference_not_the_raw_bytes(conn):
    repository.create(conn, "ops")
    copy = replica_of(conn)
    copy.add_cell(source="x")
    whole = copy.full_update()  # holds the notebook's creation too, which the store has already
    repository.apply_update(conn, "ops", whole, by=BOB)
    last = stored_updates(conn, repository.notebook_id(conn, "ops"))[-1]
    assert last != whole and len(last) < len(whole)


@pytest.mark.parametrize("junk", [b"", b"\x00", b"not an update at all", b"\xff" * 64])
def test_apply_update_refuses_bytes_that_are_not_an_update(conn, junk):
    repository.create(conn, "ops")
    nid = repository.notebook_id(conn, "ops")
    count, seq = len(stored_updates(conn, nid)), events.last_seq(conn)
    with pytest.raises(InputError) as caught:
        repository.apply_update(conn, "ops", junk, by=BOB)
    assert "not a notebook update" in caught.value.message and "\n" not in caught.value.message
    assert len(stored_updates(conn, nid)) == count and events.last_seq(conn) == seq


def test_apply_update_refuses_an_update_that_makes_the_notebook_too_big(conn, monkeypatch):
    repository.create(conn, "ops")
    first, _ = repository.add_cell(conn, "ops", "small")
    copy = replica_of(conn)
    nid = repository.notebook_id(conn, "ops")
    stored = len(repository.load(conn, "ops").full_update())
    monkeypatch.setattr(repository, "MAX_DOCUMENT_BYTES", stored + 1000)
    count = len(stored_updates(conn, nid))
    before = copy.state()
    for _ in range(3):  # each update alone is small; together they pass the limit
        copy.edit_source_by_id(first, copy.cell_by_id(first)["source"] + "y" * 400)
    with pytest.raises(repository.NotebookTooLarge, match=r"would be too large: [\d.]+ MiB, over the [\d.]+ MiB a notebook may hold; nothing was stored"):
        repository.apply_update(conn, "ops", copy.update_since(before), by=BOB)
    assert len(stored_updates(conn, nid)) == count
    assert repository.load(conn, "ops").cell_by_id(first)["source"] == "small"
    with pytest.raises(repository.NotebookTooLarge, match="the update is too large"):  # refused before it is read
        repository.apply_update(conn, "ops", b"\x00" * (stored + 2000), by=BOB)


def test_apply_update_refuses_a_cell_no_edit_could_make(conn):
    repository.create(conn, "ops")
    cid, _ = repository.add_cell(conn, "ops", "x")
    copy = replica_of(conn)
    before = copy.state()
    from pycrdt import Map

    copy.doc.get("cells", type=Map)[cid]["view"] = "hologram"  # what a hand-made update could hold
    with pytest.raises(InputError, match="bad cell: 'hologram' is not a view"):
        repository.apply_update(conn, "ops", copy.update_since(before), by=BOB)
    assert repository.load(conn, "ops").cell_by_id(cid)["view"] == "table"


def test_apply_update_to_a_removed_notebook_is_a_query_error(conn):
    nb = repository.create(conn, "ops")
    copy = replica_of(conn)
    repository.remove(conn, "ops")
    before = copy.state()
    copy.add_cell(source="late")
    with pytest.raises(QueryError, match="the notebook was removed"):
        repository.apply_update(conn, nb.id, copy.update_since(before), by=BOB)
    with pytest.raises(QueryError, match="notebook 'ops' not found"):
        repository.apply_update(conn, "ops", copy.update_since(before), by=BOB)


def test_apply_update_describes_moves_splits_and_removes(conn):
    repository.create(conn, "ops")
    ids = [repository.add_cell(conn, "ops", f"q{i}")[0] for i in range(4)]
    repository.merge_rows(conn, "ops", 1)
    copy = replica_of(conn)
    assert send(conn, copy, lambda nb: nb.move_cell(1, 3))["changed"] == ["cell_moved"]
    moved = notebook_events(conn, action="cell_moved")[-1]
    assert moved.data["cell"] == ids[0] and (moved.data["from"], moved.data["to"]) == (1, 3)
    assert moved.data["by"] == BOB
    assert send(conn, copy, lambda nb: nb.split_row(1))["changed"] == ["layout_changed"]
    assert send(conn, copy, lambda nb: nb.remove_cell(4))["changed"] == ["cell_removed"]
    assert repository.load(conn, "ops").layout() == copy.layout() == [[ids[1]], [ids[2]], [ids[0]]]


# --- by on every event ---------------------------------------------------------------------------


def test_every_local_notebook_event_says_which_node_made_it(conn):
    me = local_identity(conn)
    mine = {"node": me.node_id, "name": me.name}
    repository.create(conn, "ops")
    repository.add_cell(conn, "ops", "a")
    repository.edit_cell(conn, "ops", 1, "b")
    repository.set_cell(conn, "ops", 1, view="json")
    repository.add_cell(conn, "ops", "c")
    repository.move_cell(conn, "ops", 1, 2)
    repository.merge_rows(conn, "ops", 1)
    repository.split_row(conn, "ops", 1)
    repository.set_title(conn, "ops", "T")
    repository.remove_cell(conn, "ops", 1)
    repository.rename(conn, "ops", "ops2")
    repository.remove(conn, "ops2")
    made = events.read(conn, pattern="notebook.>")
    assert len(made) == 12
    assert all(e.data["by"] == mine for e in made), [e.data.get("by") for e in made]


def test_notebook_history_shows_who_made_each_change(tmp_path):
    env = {**os.environ, "TESSERA_HOME": str(tmp_path / "home")}

    def tessera(*args):
        r = subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout

    tessera("peer", "init", "--name", "alice@laptop")
    tessera("notebook", "new", "ops")
    tessera("cell", "add", "ops", "MATCH (p:Pod) RETURN p")
    rows = json.loads(tessera("notebook", "history", "ops", "-o", "json"))
    node = tessera("peer", "id").split()[0]
    assert [r["by"] for r in rows] == ["alice@laptop", "alice@laptop"]
    assert all(r["data"]["by"] == {"node": node, "name": "alice@laptop"} for r in rows)
    assert "alice@laptop" in tessera("notebook", "history", "ops")


# --- typing runs ---------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(repository, "clock", c)
    return c


def test_a_typing_run_stores_every_keystroke_and_one_event(conn, clock):
    repository.create(conn, "ops")
    cid, _ = repository.add_cell(conn, "ops", "")
    copy = replica_of(conn)
    text = ""
    for ch in "MATCH (p":  # one update per keystroke, each 0.5 s after the last
        text += ch
        assert send(conn, copy, lambda nb, typed=text: nb.edit_source_by_id(cid, typed))["changed"] == ["cell_edited"]
        clock.now += 0.5
    assert repository.load(conn, "ops").cell_by_id(cid)["source"] == "MATCH (p"
    edited = notebook_events(conn, action="cell_edited")
    assert len(edited) == 1 and edited[0].data["by"] == BOB
    assert (edited[0].data["before"], edited[0].data["source"]) == ("", "M")


def test_a_pause_longer_than_the_run_starts_a_new_event(conn, clock):
    repository.create(conn, "ops")
    cid, _ = repository.add_cell(conn, "ops", "")
    copy = replica_of(conn)
    send(conn, copy, lambda nb: nb.edit_source_by_id(cid, "a"))
    clock.now += repository.TYPING_RUN_SECONDS  # exactly 2 s later: still the run
    send(conn, copy, lambda nb: nb.edit_source_by_id(cid, "ab"))
    clock.now += repository.TYPING_RUN_SECONDS + 0.01  # a pause: a new run
    send(conn, copy, lambda nb: nb.edit_source_by_id(cid, "abc"))
    assert [e.data["source"] for e in notebook_events(conn, action="cell_edited")] == ["a", "abc"]


def test_runs_are_per_author_and_per_cell(conn, clock):
    repository.create(conn, "ops")
    one, _ = repository.add_cell(conn, "ops", "")
    two, _ = repository.add_cell(conn, "ops", "")
    copy = replica_of(conn)
    send(conn, copy, lambda nb: nb.edit_source_by_id(one, "b"), by=BOB)
    send(conn, copy, lambda nb: nb.edit_source_by_id(one, "bc"), by=CAROL)
    send(conn, copy, lambda nb: nb.edit_source_by_id(two, "b"), by=BOB)
    send(conn, copy, lambda nb: nb.edit_source_by_id(one, "bcb"), by=BOB)  # continues bob's run in cell one
    repository.edit_cell(conn, "ops", 1, "bcbl")  # this node: a run of its own
    edited = notebook_events(conn, action="cell_edited")
    assert [(e.data["cell"], e.data["by"]["name"]) for e in edited] == [
        (one, "bob@laptop"), (one, "carol@desk"), (two, "bob@laptop"), (one, local_identity(conn).name)]
    assert repository.load(conn, "ops").cell_by_id(one)["source"] == "bcbl"


def test_cell_edit_commands_keep_one_event_each_unless_they_fall_in_a_run(conn, clock):
    repository.create(conn, "ops")
    repository.add_cell(conn, "ops", "a")
    repository.edit_cell(conn, "ops", 1, "b")
    clock.now += 10
    repository.edit_cell(conn, "ops", 1, "c")
    clock.now += 1
    repository.edit_cell(conn, "ops", 1, "d")  # within 2 s of the last: the same run
    assert [e.data["source"] for e in notebook_events(conn, action="cell_edited")] == ["b", "c"]
    assert repository.load(conn, "ops").cell(1)["source"] == "d"


# --- cells by id ---------------------------------------------------------------------------------


def test_cell_by_id_and_edit_source_by_id_follow_a_cell_that_moved():
    nb = Notebook(name="t")
    a, _ = nb.add_cell(source="alpha")
    b, _ = nb.add_cell(source="beta")
    nb.move_cell(1, 2)
    assert nb.cell_by_id(a)["source"] == "alpha" and nb.number_of(a) == 2
    assert nb.edit_source_by_id(a, "alphabet") is True
    assert nb.edit_source_by_id(a, "alphabet") is False
    assert nb.cell(2)["source"] == "alphabet" and nb.cell(1)["id"] == b
    nb.remove_cell(2)
    with pytest.raises(QueryError, match=f"no cell with id '{a}'"):
        nb.cell_by_id(a)
    with pytest.raises(QueryError, match=f"no cell with id '{a}'"):
        nb.edit_source_by_id(a, "gone")


# --- format 1 documents (stores made before format 2) ----------------------------------------------


def format1_update() -> bytes:
    """A notebook as format 1 wrote it: meta {title}, rows of Maps holding cell Maps with ids."""
    from pycrdt import Array, Doc, Map, Text

    def cell(cid, source, **attrs):
        return Map({"id": cid, "type": attrs.get("type", "query"), "source": Text(source),
                    "view": attrs.get("view", "table"), "refresh": "manual", "sources": json.dumps(attrs.get("sources", [])),
                    "title": attrs.get("title", "")})

    doc = Doc()
    meta, rows = doc.get("meta", type=Map), doc.get("rows", type=Array)
    with doc.transaction():
        meta["title"] = "Old board"
        rows.append(Map({"cells": Array([cell("c00001", "MATCH (p:Pod) RETURN p", title="pods"),
                                         cell("c00002", "# Notes", type="markdown")])}))
        rows.append(Map({"cells": Array([cell("c00003", "MATCH (d:Deployment) RETURN d", view="json",
                                              sources=["k8s:prod"])])}))
    return doc.get_update()


def store_format1(conn, name="old") -> str:
    nid = "f1" * 16
    when = events.now()
    conn.execute("INSERT INTO notebooks(id, name, created, updated) VALUES (?, ?, ?, ?)", (nid, name, when, when))
    conn.execute("INSERT INTO notebook_updates(notebook_id, data, time) VALUES (?, ?, ?)", (nid, format1_update(), when))
    conn.commit()
    return nid


OLD_BOARD = {"title": "Old board", "rows": [
    {"cells": [
        {"id": "c00001", "type": "query", "title": "pods", "view": "table", "refresh": "manual", "sources": [],
         "source": "MATCH (p:Pod) RETURN p"},
        {"id": "c00002", "type": "markdown", "title": "", "view": "table", "refresh": "manual", "sources": [],
         "source": "# Notes"}]},
    {"cells": [
        {"id": "c00003", "type": "query", "title": "", "view": "json", "refresh": "manual", "sources": ["k8s:prod"],
         "source": "MATCH (d:Deployment) RETURN d"}]}]}


def test_a_format1_notebook_reads_as_before_and_reading_writes_nothing(conn):
    nid = store_format1(conn)
    nb = repository.load(conn, "old")
    assert nb.format == 1
    assert nb.to_dict() == OLD_BOARD
    assert nb.cell_by_id("c00003")["sources"] == ["k8s:prod"] and nb.number_of("c00003") == 3
    assert repository.list_notebooks(conn)[0]["cells"] == 3
    assert len(stored_updates(conn, nid)) == 1 and repository.load(conn, "old").format == 1


def test_a_format1_notebook_is_upgraded_in_the_transaction_of_its_first_change(conn):
    nid = store_format1(conn)
    repository.edit_cell(conn, "old", "c00002", "# Notes\nkeep")
    nb = repository.load(conn, "old")
    assert nb.format == 2
    from pycrdt import Array

    assert len(nb.doc.get("rows", type=Array)) == 0  # the old structures are emptied
    expected = json.loads(json.dumps(OLD_BOARD))
    expected["rows"][0]["cells"][1]["source"] = "# Notes\nkeep"
    assert nb.to_dict() == expected
    assert len(stored_updates(conn, nid)) == 2  # the upgrade and the edit are one stored change
    assert [e.subject.rsplit(".", 1)[-1] for e in events.read(conn, pattern="notebook.old.>")] == ["upgraded", "cell_edited"]
    repository.move_cell(conn, "old", 1, 3)  # format 2 edits from then on
    assert repository.load(conn, "old").layout() == [["c00002", "c00003"], ["c00001"]]


def test_upgrade_on_demand_then_a_collaborator_edits_the_format2_document(conn):
    nid = store_format1(conn)
    replica = Notebook.from_updates(stored_updates(conn, nid), name="old")  # a peer's replica: read, never upgraded
    assert replica.format == 1 and replica.to_dict() == OLD_BOARD
    assert repository.upgrade(conn, nid) is True
    assert repository.upgrade(conn, "old") is False
    assert [e.subject for e in events.read(conn, pattern="notebook.old.>")] == ["notebook.old.upgraded"]
    copy = replica_of(conn, "old")
    assert copy.format == 2 and copy.to_dict() == OLD_BOARD
    out = send(conn, copy, lambda nb: nb.edit_source_by_id("c00001", "MATCH (p:Pod) RETURN p.name"), name="old")
    assert out == {"changed": ["cell_edited"], "notebook": "old"}
    # the old replica takes the owner's updates and reads the upgraded notebook
    for update in stored_updates(conn, nid):
        replica.doc.apply_update(update)
    assert replica.format == 2 and replica.to_dict() == repository.load(conn, "old").to_dict()
    assert replica.cell(1)["source"] == "MATCH (p:Pod) RETURN p.name"


def test_apply_update_upgrades_a_format1_notebook_first(conn):
    nid = store_format1(conn)
    from pycrdt import Doc

    other = Notebook(Doc(), name="old")  # a collaborator's own document, adding a cell
    other.add_cell(source="MATCH (n:Node) RETURN n", id="cnew01")
    out = repository.apply_update(conn, nid, other.full_update(), by=BOB)
    assert out["changed"] == ["cell_added"]
    nb = repository.load(conn, "old")
    assert nb.format == 2 and nb.title == "Old board"
    assert sorted(nb.ids()) == ["c00001", "c00002", "c00003", "cnew01"]
    assert nb.cell_by_id("c00001")["source"] == "MATCH (p:Pod) RETURN p"
    assert [e.subject.rsplit(".", 1)[-1] for e in events.read(conn, pattern="notebook.old.>")] == ["upgraded", "cell_added"]


def test_markdown_and_ipynb_read_format1_and_format2_alike_and_import_as_format2(conn):
    from tessera.core.notebook.ipynb import export_ipynb, import_ipynb
    from tessera.core.notebook.markdown import export_markdown, import_markdown

    nid = store_format1(conn)
    old = repository.load(conn, "old")
    md, ipynb = export_markdown(old), export_ipynb(old)
    repository.upgrade(conn, nid)
    new = repository.load(conn, "old")
    assert (export_markdown(new), export_ipynb(new)) == (md, ipynb)
    for imported in (import_markdown(md), import_ipynb(ipynb)):
        assert imported.format == 2 and imported.to_dict() == OLD_BOARD


def test_an_export_after_concurrent_edits_holds_the_rows_as_read():
    from tessera.core.notebook.ipynb import export_ipynb, import_ipynb
    from tessera.core.notebook.markdown import export_markdown, import_markdown

    a = Notebook.from_dict({"title": "t", "rows": [{"cells": [{"id": f"c{i}", "source": f"q{i}"}]} for i in range(4)]})
    b = Notebook.from_updates([a.full_update()])
    a.merge_rows(1)  # [c0, c1] [c2] [c3]
    b.merge_rows(2)  # [c0] [c1, c2] [c3]
    for x, y in ((a, b), (b, a)):
        x.doc.apply_update(y.full_update())
    assert a.to_dict() == b.to_dict()
    assert all(len(row) in (1, 2, 4) for row in a.layout())
    assert import_markdown(export_markdown(a)).to_dict() == a.to_dict()
    assert import_ipynb(export_ipynb(a)).to_dict() == a.to_dict()


def test_a_read_after_a_change_that_only_deletes_sees_it():
    nb = Notebook(name="t")
    a, _ = nb.add_cell(source="alpha")
    b, _ = nb.add_cell(source="beta")
    assert nb.ids() == [a, b]  # read (and kept)
    state = nb.state()
    nb.remove_cell(2)  # a lone cell's row and Map deleted: nothing inserted
    assert nb.state() == state  # so the state vector alone would not show the change
    assert nb.ids() == [a] and len(nb) == 1
    nb.edit_source_by_id(a, "alp")  # a delete inside the text
    assert nb.cell(1)["source"] == "alp"


def test_every_keystroke_is_stored_across_compactions(conn, clock):
    repository.create(conn, "ops")
    cid, _ = repository.add_cell(conn, "ops", "")
    copy = replica_of(conn)
    nid = repository.notebook_id(conn, "ops")
    typed = ""
    for i in range(repository.COMPACT_AFTER * 2 + 7):
        typed += "abcdefghij"[i % 10]
        send(conn, copy, lambda nb, text=typed: nb.edit_source_by_id(cid, text))
        clock.now += 0.1
    assert len(stored_updates(conn, nid)) <= repository.COMPACT_AFTER  # compacted on the way
    assert repository.load(conn, "ops").cell_by_id(cid)["source"] == typed
    assert len(notebook_events(conn, action="cell_edited")) == 1
