"""Live cells: `notebook run --watch` keeps cells current and records each change as an event."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time

from process_lines import json_lines, wait_stderr
from tessera.core import events
from tessera.core.store import db

TSR = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args):
    r = subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r


def lines_of(proc):
    """``take(n, timeout=60)``: the next ``n`` JSON lines the process prints (fewer at the deadline)."""
    return functools.partial(json_lines, proc)


def test_watch_cells_follow_the_cluster_and_every_cells_poll_files(kubeconfig, kube_api, tmp_path):
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n")
    tessera("notebook", "new", "ops")
    tessera("cell", "add", "ops", "--refresh", "watch", "--title", "pods",
            "MATCH (rs:ReplicaSet)->(p:Pod) RETURN p.metadata.name AS pod, p.status.phase AS phase")
    tessera("cell", "add", "ops", "--refresh", "every:1", "-s", str(manifest), "MATCH (c:ConfigMap) RETURN c.metadata.name AS name")
    tessera("cell", "add", "ops", "-t", "markdown", "# notes")
    cells = json.loads(tessera("notebook", "show", "ops", "-o", "json").stdout)
    ids = [c["id"] for row in cells["rows"] for c in row["cells"]]
    proc = subprocess.Popen([*TSR, "notebook", "run", "ops", "--watch", "--kubeconfig", str(kubeconfig)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    take = lines_of(proc)
    try:
        initial = take(4)
        pods = sorted(c["row"]["pod"] for c in initial if "pod" in c["row"])
        assert pods == ["cart-5d8f-0", "web-5d8f-0", "web-5d8f-1"]
        assert [c["row"] for c in initial if "name" in c["row"]] == [{"name": "a"}]
        pod_cell = next(c["cell"] for c in initial if "pod" in c["row"])
        pod = kube_api.get("v1", "Pod", "shop", "web-5d8f-0")
        kube_api.update({**pod, "status": {"phase": "Failed"}})
        (change,) = take(1)
        assert change == {"cell": pod_cell, "op": "changed", "key": change["key"],
                          "row": {"pod": "web-5d8f-0", "phase": "Failed"}, "ts": change["ts"]}
        manifest.write_text(manifest.read_text() + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: x}\n")
        (added,) = take(1)
        assert added["op"] == "added" and added["row"] == {"name": "b"}
    finally:
        proc.terminate()
        proc.wait(10)
    conn = db.connect()
    changed = events.read(conn, pattern=f"query.ops.{pod_cell}.changed")
    assert len(changed) == 2, "the first result and the phase change"
    assert changed[-1].data["changes"][0]["row"] == {"pod": "web-5d8f-0", "phase": "Failed"}
    assert pod_cell == ids[0]


# --- NotebookSession: what dash and pane rely on -----------------------------------------------

def _session(name, cells, **options):
    from tessera.core import config
    from tessera.core.notebook import repository
    from tessera.core.notebook.session import NotebookSession, SessionOptions

    conn = db.connect()
    repository.create(conn, name)
    for source, attrs in cells:
        repository.add_cell(conn, name, source, **attrs)
    conn.close()
    updates = []
    session = NotebookSession(str(config.database_path()), name, SessionOptions(**options), on_update=updates.append)
    return session, updates


def _until(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _pod(name, phase="Running"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": {"phase": phase}}


def test_session_gathers_changes_within_min_refresh_and_spaces_records(kubeconfig, kube_api):
    query = "MATCH (p:Pod) WHERE p.metadata.name STARTS WITH \"burst-\" RETURN p.metadata.name AS pod"
    session, updates = _session("s", [(query, {"refresh": "watch"})], kubeconfig=str(kubeconfig), min_refresh=1.5,
                                record_every=30.0)
    session.start()
    try:
        _until(lambda: session.panes and next(iter(session.panes.values())).status == "live", what="first result")
        cell_id = next(iter(session.panes))
        before = len([u for u in updates if u.result is not None])
        began = time.monotonic()
        for i in range(6):
            kube_api.add(_pod(f"burst-{i}"))
            time.sleep(0.05)
        spread = time.monotonic() - began  # 0.3 s, unless the machine is busy
        _until(lambda: session.panes[cell_id].rows == 6, what="the burst")
        time.sleep(0.5)  # time for an evaluation too many to show
        evaluations = len([u for u in updates if u.result is not None]) - before
        # six changes, applied together: one evaluation per 1.5 s the burst took, and one more
        assert 1 <= evaluations <= 2 + int(spread / 1.5), (evaluations, spread)
        conn = db.connect()
        assert list(events.read(conn, pattern="query.s.>")) == []  # held back by record_every
        conn.close()
    finally:
        session.stop()
    conn = db.connect()
    changed = list(events.read(conn, pattern="query.s.>"))
    stored = json.loads(conn.execute("SELECT rows FROM cell_results").fetchone()[0])
    conn.close()
    # written when the session stopped: one event with the six additions, and the rows
    assert len(changed) == 1 and [c["op"] for c in changed[0].data["changes"]] == ["added"] * 6
    assert sorted(r["pod"] for r in stored.values()) == [f"burst-{i}" for i in range(6)]


def test_session_keeps_the_subgraph_on_request_and_republishes_on_resume():
    query = 'MATCH (d:Deployment {namespace: "payments"})->(rs:ReplicaSet) RETURN d.metadata.name AS d'
    session, _ = _session("g", [(query, {"refresh": "watch", "sources": ["replay:demo"]})])
    session.start()
    try:
        _until(lambda: session.panes and next(iter(session.panes.values())).status == "live", what="first result")
        cell_id = next(iter(session.panes))
        assert session.panes[cell_id].result.nodes == []  # a table view: rows only
        session.keep_subgraph(True)
        _until(lambda: session.panes[cell_id].result is not None and session.panes[cell_id].result.nodes,
               what="the subgraph")
        session.pause(cell_id)
        _until(lambda: session.panes[cell_id].status == "paused", what="paused")
        session.resume(cell_id)  # rows unchanged: the pane must still say live again
        _until(lambda: session.panes[cell_id].status == "live", what="resumed")
    finally:
        session.stop()


def test_watch_starts_with_the_current_rows_even_when_the_stored_result_is_unchanged():
    tessera("notebook", "new", "ops")
    tessera("cell", "add", "ops", "-s", "demo",
            'MATCH (d:Deployment {namespace: "payments"}) RETURN d.metadata.name AS name')
    once = [json.loads(x) for x in tessera("notebook", "run", "ops").stdout.splitlines()]
    assert once  # the stored result now holds these rows
    proc = subprocess.Popen([*TSR, "notebook", "run", "ops", "--watch"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    take = lines_of(proc)
    try:
        initial = take(len(once), timeout=60)
    finally:
        proc.terminate()
        proc.wait(10)
    assert sorted(c["row"]["name"] for c in initial) == sorted(r["name"] for r in once)
    assert {c["op"] for c in initial} == {"added"} and {c["cell"] for c in initial} == {once[0]["cell"]}
    conn = db.connect()
    assert len(events.read(conn, pattern="query.ops.>")) == 1, "the unchanged rows recorded no second event"
    conn.close()


def test_watch_takes_speed_and_loop_for_replays():
    tessera("notebook", "new", "ops")
    tessera("cell", "add", "ops", "-s", "replay:demo", "--refresh", "watch",
            'MATCH (d:Deployment {name: "payments-api"}) RETURN d.spec.replicas AS n')
    # The recording scales payments-api 2 -> 4 about 70 s in and back to 2 before its end (ten
    # minutes). At 120x both come within seconds; only --loop plays them again (a third change).
    proc = subprocess.Popen([*TSR, "notebook", "run", "ops", "--watch", "--speed", "120", "--loop"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    take = lines_of(proc)
    try:
        first, *changes = take(4, timeout=60)
    finally:
        proc.terminate()
        proc.wait(10)
    assert first["op"] == "added" and first["row"] == {"n": 2}
    assert [(c["op"], c["row"]["n"]) for c in changes] == [("changed", 4), ("changed", 2), ("changed", 4)]


def test_in_context_cells_follow_that_context_and_name_it(kubeconfig, kube_api, kube_api_b):
    query = "IN emu-b MATCH (p:Pod) WHERE p.metadata.namespace = \"payments\" RETURN p.metadata.name AS pod, " \
            "p.status.phase AS phase"
    session, _ = _session("multi", [(query, {"refresh": "watch"})], kubeconfig=str(kubeconfig), min_refresh=0.0)
    session.start()
    try:
        _until(lambda: session.panes and next(iter(session.panes.values())).status == "live", timeout=60,
               what="first result")
        cell_id = next(iter(session.panes))
        pane = session.panes[cell_id]
        assert [r["pod"] for r in pane.result.rows] == ["api-b-5d8f-0"]
        assert pane.sources == ("emu-b",)  # the pane's footer names the context the query reads
        pod = kube_api_b.get("v1", "Pod", "payments", "api-b-5d8f-0")
        kube_api_b.update({**pod, "status": {"phase": "Failed"}})
        _until(lambda: session.panes[cell_id].result.rows[0]["phase"] == "Failed", timeout=60,
               what="the change in emu-b")
        assert session.panes[cell_id].sources == ("emu-b",)
    finally:
        session.stop()


def test_session_started_while_the_cluster_is_down_says_it_retries_then_shows_the_rows(kubeconfig, kube_api):
    kube_api.stop()
    session, updates = _session("down", [("MATCH (p:Pod) RETURN p.metadata.name AS pod", {"refresh": "watch"})],
                                kubeconfig=str(kubeconfig))
    session.start()
    try:
        _until(lambda: session.panes and next(iter(session.panes.values())).status == "reconnecting", 30,
               "the cell to say it is retrying")
        pane = next(iter(session.panes.values()))
        assert "cannot reach the Kubernetes API" in pane.fault and "retrying with backoff until it answers" in pane.fault
        assert pane.error is None and pane.result is None
        kube_api.start()
        _until(lambda: next(iter(session.panes.values())).status == "live", 60, "the first rows")
        pane = next(iter(session.panes.values()))
        assert pane.rows == 3 and pane.fault is None
    finally:
        session.stop()


def test_notebook_run_watch_follows_an_in_context_cell(kubeconfig, kube_api, kube_api_b):
    tessera("notebook", "new", "ops")
    tessera("cell", "add", "ops", "--refresh", "watch",
            "IN emu-b MATCH (p:Pod) WHERE p.metadata.namespace = \"payments\" RETURN p.metadata.name AS pod, "
            "p.status.phase AS phase")
    proc = subprocess.Popen([*TSR, "notebook", "run", "ops", "--watch", "--kubeconfig", str(kubeconfig)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    take = lines_of(proc)
    try:
        (first,) = take(1, timeout=60)
        assert first["row"] == {"pod": "api-b-5d8f-0", "phase": "Running"}
        pod = kube_api_b.get("v1", "Pod", "payments", "api-b-5d8f-0")
        kube_api_b.update({**pod, "status": {"phase": "Failed"}})
        (change,) = take(1, timeout=60)
    finally:
        proc.terminate()
        proc.wait(10)
    assert change["op"] == "changed" and change["row"] == {"pod": "api-b-5d8f-0", "phase": "Failed"}


def test_notebook_run_watch_reports_a_lost_connection_and_the_recovery(kubeconfig, kube_api):
    tessera("notebook", "new", "ops")
    tessera("cell", "add", "ops", "--refresh", "watch", "MATCH (p:Pod) RETURN p.metadata.name AS pod")
    proc = subprocess.Popen([*TSR, "notebook", "run", "ops", "--watch", "--kubeconfig", str(kubeconfig)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    take = lines_of(proc)
    try:
        assert len(take(3)) == 3
        kube_api.stop()
        lost = wait_stderr(proc, lambda line: "connection lost" in line)
        assert lost.startswith("tessera: warning: ops/1 (") and "retrying" in lost
        kube_api.start()
        back = wait_stderr(proc, lambda line: "reconnected" in line)
        assert back.startswith("tessera: ops/1 (") and back.endswith("reconnected; rows are current")
    finally:
        proc.terminate()
        proc.wait(10)


FROZEN_GC_SCRIPT = r'''
import gc, time
from tessera.core import config
from tessera.core.notebook import repository
from tessera.core.notebook.session import FROZEN_GC_YOUNG_THRESHOLD, NotebookSession, SessionOptions
from tessera.core.store import db

def until(predicate):
    deadline = time.monotonic() + 60
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)

conn = db.connect()
repository.create(conn, "f")
repository.add_cell(conn, "f", 'MATCH (d:Deployment)->(rs:ReplicaSet) RETURN d.metadata.name AS d', sources=["demo"])
conn.close()
session = NotebookSession(str(config.database_path()), "f", SessionOptions(freeze_gc=True)).start()
try:
    until(lambda: session.panes and next(iter(session.panes.values())).result is not None)
    cell_id = next(iter(session.panes))
    first = session.panes[cell_id].result
    until(lambda: gc.get_freeze_count() > 0)
    print("young threshold raised:", gc.get_threshold()[0] == FROZEN_GC_YOUNG_THRESHOLD)
    frozen_before = gc.get_freeze_count()
    session.editor.set_cell("f", cell_id, view="tree")  # needs the subgraph: planned and run again
    until(lambda: session.panes[cell_id].result is not first and session.panes[cell_id].result.nodes)
    again = session.panes[cell_id].result
    until(lambda: gc.get_freeze_count() > frozen_before)  # the worker freezes after it published
    print("new state frozen:", not any(o is again for o in gc.get_objects()))
finally:
    session.stop()
'''


def test_a_dashboard_session_keeps_its_long_lived_state_out_of_the_collectors_way():
    # freeze_gc (tessera dash, pane): the state built at start-up and again after a cell is planned
    # anew (here a view that needs the subgraph) is frozen, and young collections are spaced, so
    # that full collections do not walk 10,000-row live queries and pause the screen.
    proc = subprocess.run([sys.executable, "-c", FROZEN_GC_SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines() == ["young threshold raised: True", "new state frozen: True"], proc.stderr


COSTLY_CELL_SCRIPT = r'''
import time
from tessera.core import config
from tessera.core.notebook import repository
from tessera.core.notebook.session import NotebookSession, SessionOptions
from tessera.core.store import db
from tessera.core.watch.live_query import LiveQuery

BURN = 0.05  # CPU seconds every evaluation of changes takes at the least
FIRST_BURN = 1.0  # and the first, full one (building the state): it must not delay the next ones
calls = []
refresh = LiveQuery.refresh

def costly_refresh(self, changed=None):
    # Timed as the evaluation starts, as the session times its spacing (from the start of the
    # last evaluation): timed after the burn, a burn stretched by a busy machine made the next
    # interval look shorter than the spacing (0.97 s for three, seen once under load).
    if changed is not None:
        calls.append(time.monotonic())
    start = time.thread_time()
    while time.thread_time() - start < (BURN if changed is not None else FIRST_BURN):
        pass
    return refresh(self, changed)

LiveQuery.refresh = costly_refresh
conn = db.connect()
repository.create(conn, "c")
repository.add_cell(conn, "c", "MATCH (p:Pod) RETURN p.metadata.name AS pod, p.status.phase AS phase",
                    refresh="watch", sources=["replay:demo"])
conn.close()
session = NotebookSession(str(config.database_path()), "c", SessionOptions(min_refresh=0.05, speed=600.0, loop=True))
session.start()
try:
    deadline = time.monotonic() + 60
    while not (session.panes and next(iter(session.panes.values())).result is not None):
        assert time.monotonic() < deadline, "no first result"
        time.sleep(0.02)
    first_result, first = time.monotonic(), len(calls)
    while len(calls) - first < 3:  # the replay keeps changing: three evaluations of changes
        assert time.monotonic() < deadline, "fewer than three evaluations of changes"
        time.sleep(0.02)
    t1, t2, t3 = calls[first:first + 3]
    print(t1 - first_result, t3 - t1)
finally:
    session.stop()
'''


def test_a_costly_watch_cell_is_evaluated_less_often():
    # With min_refresh (the dashboard), a cell whose evaluation of changes takes CPU time C waits
    # at least 10 C after it: here 0.5 s, where min_refresh alone would evaluate every 0.05 s, so
    # three evaluations span at least 1 s (a busy machine only stretches them). The first
    # evaluation (in full, 1 s of CPU here) does not count: were it counted, the first evaluation
    # of changes would wait 10 s after it, far longer than the next ones take.
    proc = subprocess.run([sys.executable, "-c", COSTLY_CELL_SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lead, span = map(float, proc.stdout.split())
    # each interval is at least the spacing less what runs between the session's clock read and
    # this one (a few calls: 25 ms is far more than it takes even on a busy machine)
    assert span >= 2 * (0.5 - 0.025), (lead, span)
    assert lead < span, (lead, span)
