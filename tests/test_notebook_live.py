"""Live cells: `notebook run --watch` keeps cells current and records each change as an event."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

from tessera.core import events
from tessera.core.store import db

TSR = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args):
    r = subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r


def lines_of(proc):
    q: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            q.put(json.loads(line))

    threading.Thread(target=pump, daemon=True).start()

    def take(n, timeout=20):
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n:
            try:
                out.append(q.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                break
        return out

    return take


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
        (added,) = take(1, timeout=10)
        assert added["op"] == "added" and added["row"] == {"name": "b"}
    finally:
        proc.terminate()
        proc.wait(10)
    conn = db.connect()
    changed = events.read(conn, pattern=f"query.ops.{pod_cell}.changed")
    assert len(changed) == 2, "the first result and the phase change"
    assert changed[-1].data["changes"][0]["row"] == {"pod": "web-5d8f-0", "phase": "Failed"}
    assert pod_cell == ids[0]
