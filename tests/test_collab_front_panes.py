"""Owner-run panes: pane_wire's messages both ways, and PaneFeed running a notebook at the owner
over the kube emulator (rows streamed as changes, writes refused, Secrets hidden); the session
following edits made elsewhere at once."""

from __future__ import annotations

import threading
import time

import msgpack
import pytest

from tessera.core import config
from tessera.core.collab.pane_wire import PaneAssembler, PaneEncoder, PaneWireError
from tessera.core.notebook import repository
from tessera.core.notebook.session import PaneState
from tessera.core.result import Result
from tessera.core.store.db import connect

PODS = "MATCH (p:Pod) WHERE p.metadata.namespace = \"shop\" RETURN p.metadata.name AS pod, p.status.phase AS phase"


def wait_until(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def state(rows: list[dict], keys: list[str], status: str = "live", version: int = 1) -> PaneState:
    columns = list(rows[0]) if rows else ["a"]
    return PaneState(cell={"id": "c1", "type": "query"}, status=status, version=version,
                     result=Result(columns=columns, rows=rows, keys=keys), sources=("emu-a",))


# --- pane_wire -------------------------------------------------------------------------------------


def test_a_pane_goes_as_a_snapshot_then_as_row_changes_only():
    enc, asm = PaneEncoder(), PaneAssembler()
    rows = [{"a": i} for i in range(1000)]
    first = enc.encode("c1", state(rows, [f"k{i}" for i in range(1000)]))
    assert msgpack.unpackb(first)["kind"] == "snapshot"
    view = asm.apply("c1", first)
    assert view.result().rows == rows and view.sources == ("emu-a",)
    changed = [*rows[1:500], {"a": -1}, *rows[501:], {"a": 1000}]
    keys = [f"k{i}" for i in range(1, 1000)] + ["k1000"]
    second = enc.encode("c1", state(changed, keys, version=2))
    message = msgpack.unpackb(second)
    assert message["kind"] == "changes"
    assert sorted(op for op, _, _ in message["changes"]) == ["added", "changed", "removed"]
    assert len(second) < len(first) / 20  # three rows, not a thousand
    view = asm.apply("c1", second)
    assert view.result().rows == changed and view.result().keys == keys


def test_rows_moved_by_a_sorted_result_keep_the_owners_order():
    enc, asm = PaneEncoder(), PaneAssembler()
    asm.apply("c1", enc.encode("c1", state([{"a": 1}, {"a": 2}, {"a": 3}], ["x", "y", "z"])))
    view = asm.apply("c1", enc.encode("c1", state([{"a": 3}, {"a": 1}, {"a": 2}], ["z", "x", "y"])))
    assert [r["a"] for r in view.result().rows] == [3, 1, 2]


def test_a_result_over_the_limit_is_a_truncated_snapshot_that_says_so():
    enc, asm = PaneEncoder(limit=80 * 1024), PaneAssembler()
    rows = [{"a": "x" * 1000} for _ in range(200)]
    data = enc.encode("c1", state(rows, [str(i) for i in range(200)]))
    assert len(data) <= 80 * 1024
    view = asm.apply("c1", data)
    result = view.result()
    assert view.truncated and view.total == 200 and 0 < len(result.rows) < 200
    assert "of 200 rows" in result.warnings[0]
    # the viewer holds part of the rows: the next change comes as a (truncated) snapshot again
    again = enc.encode("c1", state(rows[:-1], [str(i) for i in range(199)], version=2))
    assert msgpack.unpackb(again)["kind"] == "snapshot"
    assert asm.apply("c1", again).total == 199


@pytest.mark.parametrize("data, says", [
    (b"\xc1", "not readable"),
    (msgpack.packb([1, 2]), "not a map"),
    (msgpack.packb({"v": 2, "kind": "status", "status": "live"}), "version"),
    (msgpack.packb({"v": 1, "kind": "boom", "status": "live"}), "unknown kind"),
    (msgpack.packb({"v": 1, "kind": "status", "status": "live", "error": 5}), "'error' is not text"),
    (msgpack.packb({"v": 1, "kind": "status", "status": "live"}), "'seq' is not a message number"),
    (msgpack.packb({"v": 1, "kind": "snapshot", "status": "live", "seq": 1, "columns": ["a"], "rows": [["k"]],
                    "truncated": False, "total": 1}), "not [key, row]"),
    (msgpack.packb({"v": 1, "kind": "changes", "status": "live", "seq": 1, "columns": ["a"],
                    "changes": [["exploded", "k", {}]]}), "not [op, key, row]"),
    (msgpack.packb({"v": 1, "kind": "changes", "status": "live", "seq": 1, "columns": ["a"], "changes": []}),
     "does not follow the last one"),
])
def test_a_malformed_pane_message_is_one_line_and_changes_nothing(data, says):
    asm = PaneAssembler()
    with pytest.raises(PaneWireError) as caught:
        asm.apply("c1", data)
    assert says in str(caught.value) and "\n" not in caught.value.one_line()
    assert asm.views == {}


def test_a_late_joiners_snapshot_is_numbered_so_a_missed_change_is_noticed():
    from tessera.core.collab.pane_wire import OutOfStep

    enc = PaneEncoder()
    enc.encode("c1", state([{"a": 1}], ["x"]))
    late = enc.snapshot("c1", state([{"a": 1}], ["x"]))  # what a viewer joining now gets
    missed = enc.encode("c1", state([{"a": 1}, {"a": 2}], ["x", "y"], version=2))
    then = enc.encode("c1", state([{"a": 1}, {"a": 2}, {"a": 3}], ["x", "y", "z"], version=3))
    in_step = PaneAssembler()
    for data in (late, missed, then):
        in_step.apply("c1", data)
    assert [r["a"] for r in in_step.views["c1"].result().rows] == [1, 2, 3]
    lost = PaneAssembler()
    lost.apply("c1", late)
    with pytest.raises(OutOfStep):
        lost.apply("c1", then)  # y never arrived: applying z alone would show a wrong pane
    assert [r["a"] for r in lost.views["c1"].result().rows] == [1]


# --- PaneFeed over the kube emulator ----------------------------------------------------------------


class Viewer:
    """What a room would do with a feed's messages: assemble them, as a viewer does."""

    def __init__(self):
        self.assembler = PaneAssembler()
        self.kinds: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def send(self, cell_id: str, data: bytes) -> None:
        with self.lock:
            self.kinds.append((cell_id, msgpack.unpackb(data)["kind"]))
            self.assembler.apply(cell_id, data)

    def view(self, cell_id: str):
        with self.lock:
            return self.assembler.views.get(cell_id)


@pytest.fixture
def owner_notebook(kubeconfig, monkeypatch):
    """Notebook ops at the owner: a watched pod list, a cell that would write, a Secret's data;
    the owner's environment (serve's) has the kubeconfig and shows Secrets to its own user."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("TESSERA_SHOW_SECRETS", "1")
    conn = connect()
    repository.create(conn, "ops")
    pods = repository.add_cell(conn, "ops", PODS, refresh="watch")[0]
    writes = repository.add_cell(conn, "ops", 'MATCH (p:Pod {name: "web-5d8f-0"}) SET p.metadata.labels.hit = "yes"')[0]
    secret = repository.add_cell(conn, "ops", "MATCH (s:Secret) RETURN s.metadata.name AS name, s.data AS data")[0]
    conn.close()
    return {"pods": pods, "writes": writes, "secret": secret}


def test_the_feed_streams_row_changes_refuses_writes_and_hides_secrets(owner_notebook, kube_api):
    kube_api.add({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop", "uid": "sec1"},
                  "data": {"password": "aHVudGVyMg=="}})
    from tessera.core.collab.pane_feed import PaneFeed

    viewer = Viewer()
    feed = PaneFeed(str(config.database_path()), "ops", viewer.send)
    feed.start()
    try:
        ids = owner_notebook
        first = wait_until(lambda: (v := viewer.view(ids["pods"])) is not None and v.has_rows and v, what="pods")
        names = {r["pod"]: r["phase"] for r in first.result().rows}
        assert names and set(names.values()) == {"Running"}
        # a write is refused in its pane, and the cluster is untouched
        refused = wait_until(lambda: (v := viewer.view(ids["writes"])) is not None and v.status == "error" and v,
                             what="the write refused")
        assert "cells run for peers are read-only" in refused.error
        assert "hit" not in (kube_api.get("v1", "Pod", "shop", "web-5d8f-0")["metadata"].get("labels") or {})
        # the owner sees its Secrets, peers never do
        secret = wait_until(lambda: (v := viewer.view(ids["secret"])) is not None and v.has_rows and v, what="secret")
        assert secret.result().rows == [{"name": "db", "data": {"password": "<redacted>"}}]
        # a change at the owner's cluster reaches the viewer as one changed row
        pod = kube_api.get("v1", "Pod", "shop", "web-5d8f-0")
        kube_api.update({**pod, "status": {"phase": "Failed"}})
        wait_until(lambda: {r["pod"]: r["phase"] for r in viewer.view(ids["pods"]).result().rows}.get("web-5d8f-0")
                   == "Failed", what="the change")
        with viewer.lock:
            pod_kinds = [kind for cell, kind in viewer.kinds if cell == ids["pods"]]
        assert pod_kinds[-1] == "changes" and pod_kinds.count("snapshot") == 1
        # a viewer joining now gets every pane as it is
        late = PaneAssembler()
        for cell_id, data in feed.snapshot():
            late.apply(cell_id, data)
        assert late.views[ids["pods"]].result().rows == viewer.view(ids["pods"]).result().rows
        assert late.views[ids["secret"]].result().rows == secret.result().rows
        # a viewer out of step asks for the cell again: its next message is a snapshot
        with viewer.lock:
            before = len([k for c, k in viewer.kinds if c == ids["pods"]])
        feed.run_now(ids["pods"])
        wait_until(lambda: [k for c, k in viewer.kinds[:] if c == ids["pods"]][before:][:1] == ["snapshot"],
                   what="a snapshot after run_now")
    finally:
        feed.stop()
    # nothing recorded in the owner's store: a feed is a view for peers
    conn = connect()
    try:
        assert conn.execute("SELECT count(*) FROM cell_results").fetchone()[0] == 0
    finally:
        conn.close()


# --- the session follows edits made elsewhere at once -----------------------------------------------


def test_a_session_follows_an_edit_made_elsewhere_without_waiting_for_its_round(monkeypatch):
    """The worker's idle round is made an hour long: only the data_version poll can show the edit."""
    from tessera.core.notebook import session as session_module

    monkeypatch.setattr(session_module, "IDLE_ROUND_SECONDS", 3600.0)
    conn = connect()
    repository.create(conn, "notes")
    cell_id = repository.add_cell(conn, "notes", "before", type="markdown")[0]
    conn.close()
    session = session_module.NotebookSession(str(config.database_path()), "notes").start()
    try:
        assert session.loaded.wait(60)
        wait_until(lambda: session.panes.get(cell_id) is not None, what="the pane")
        conn = connect()
        repository.edit_cell(conn, "notes", cell_id, "after")
        conn.close()
        wait_until(lambda: session.panes[cell_id].cell["source"] == "after", timeout=30, what="the edit followed")
    finally:
        session.stop()
