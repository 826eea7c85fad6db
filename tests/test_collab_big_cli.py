"""A pane too large for one message reaches a peer whole, as a blob (issue 15, big panes), against
real `tessera serve` processes on 127.0.0.1 and the kube emulator: alice's notebook lists 250 pods
with a 6 KiB note each (about 1.5 MiB of rows, over the 1 MiB a pane message holds); bob, a viewer
without any kubeconfig, runs it with `tessera notebook run alice:ops -o jsonl`."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from tessera.core.collab.pane_wire import PANE_INLINE_LIMIT
from tests.collab_helpers import befriend, init_node, point_at, share
from tests.test_collab_sync import started  # noqa: F401  (a fixture)
from tests.test_peer_serve import DEADLINE, TSR, env_for, node_id, procs, start_serve, store, tessera, wait_until  # noqa: F401

PODS = 250
NOTE = 6 * 1024
BIG = ('MATCH (p:Pod) WHERE p.metadata.namespace = "shop" '
       'RETURN p.metadata.name AS pod, p.status.phase AS phase, p.metadata.annotations.note AS note')


def note_of(i: int) -> str:
    return (f"pod {i:03d} " * (NOTE // 8 + 1))[:NOTE]


@pytest.fixture
def big(tmp_path, procs, kube_api, kubeconfig, monkeypatch):
    """alice serving notebook ops (a watched list of 250 big pods) shared with bob, a viewer;
    carol is a peer alice publishes to, but not in the notebook."""
    for i in range(PODS):
        kube_api.add({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": f"big-{i:03d}", "namespace": "shop", "uid": f"big-{i}",
                                   "annotations": {"note": note_of(i)}},
                      "status": {"phase": "Running"}})
    alice, bob, carol = tmp_path / "alice", tmp_path / "bob", tmp_path / "carol"
    for home, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        init_node(home, name)
    befriend(alice, bob, role="viewer")
    befriend(alice, carol, role="viewer")
    assert tessera(alice, "notebook", "new", "ops").returncode == 0
    added = tessera(alice, "cell", "add", "ops", BIG, "--refresh", "watch", "--title", "Big pods")
    assert added.returncode == 0, added.stderr
    share(alice, "ops", "bob")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))  # serve's environment: alice's credentials
    serve, listening = start_serve(procs, alice)
    point_at(bob, alice, listening["ticket"])
    point_at(carol, alice, listening["ticket"])
    empty_home = tmp_path / "bob-home"
    empty_home.mkdir()
    bob_env = {k: v for k, v in env_for(bob).items() if k != "KUBECONFIG"}
    bob_env["HOME"] = str(empty_home)
    return {"alice": alice, "bob": bob, "carol": carol, "bob_env": bob_env, "serve": serve}


def pane_blobs(home) -> dict[str, list[str]]:
    """The pane blobs in a node's store: blob id -> the node ids it is granted to."""
    conn = store(home)
    try:
        return {blob_id: [r[0] for r in conn.execute("SELECT node_id FROM blob_grants WHERE blob_id = ? ORDER BY node_id",
                                                     (blob_id,))]
                for (blob_id,) in conn.execute("SELECT id FROM blobs WHERE name LIKE 'pane:%' ORDER BY id")}
    finally:
        conn.close()


def blob_file(home, blob_id: str):
    return home / "data" / "blobs" / blob_id


def rows_of(stdout: str) -> dict[str, dict]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return {row["pod"]: row for row in rows}


def test_a_pane_over_one_message_reaches_a_viewer_whole_as_a_blob_and_changes_follow_it(big, kube_api, started):
    watch = subprocess.Popen([*TSR, "notebook", "run", "alice:ops", "--watch", "-o", "jsonl"], env=big["bob_env"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    started.append(watch)
    lines: list[dict] = []

    def read():
        for line in watch.stdout:
            lines.append(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    want = {f"big-{i:03d}" for i in range(PODS)}
    wait_until(lambda: want <= {l["row"]["pod"] for l in lines if l["op"] == "added"}, "every big pod added at bob",
               timeout=DEADLINE * 2)
    added = {l["row"]["pod"]: l["row"] for l in lines if l["op"] == "added"}
    # whole: every row, every note in full, nothing said about truncation
    assert all(added[f"big-{i:03d}"] == {"pod": f"big-{i:03d}", "phase": "Running", "note": note_of(i)}
               for i in range(PODS))
    assert "web-5d8f-0" in added  # the seeded pods too
    # alice holds exactly one pane blob, over one message, granted to bob
    blobs = pane_blobs(big["alice"])
    assert len(blobs) == 1, blobs
    (first,) = blobs
    assert blobs[first] == [node_id(big["bob"])]
    assert blob_file(big["alice"], first).stat().st_size > PANE_INLINE_LIMIT
    assert (blob_file(big["alice"], first).stat().st_mode & 0o777) == 0o600
    # bob keeps no copy of the pane's blob: the pane holds its rows
    def bob_holds_none() -> bool:
        conn = store(big["bob"])
        try:
            return conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0 and not blob_file(big["bob"], first).exists()
        finally:
            conn.close()

    wait_until(bob_holds_none, "bob's copy of the pane blob removed once its rows are shown")

    # one pod changes at alice's cluster: it arrives as a change, and no new blob is made
    pod = kube_api.get("v1", "Pod", "shop", "big-007")
    kube_api.update({**pod, "status": {"phase": "Failed"}})
    wait_until(lambda: any(l["op"] == "changed" and l["row"]["pod"] == "big-007" and l["row"]["phase"] == "Failed"
                           for l in lines), "the one-pod change at bob")
    assert pane_blobs(big["alice"]) == blobs

    # carol is a peer of alice's, but not in the notebook's room: the pane blob is not hers
    refused = tessera(big["carol"], "blob", "get", first, "--from", "alice", "-o", str(big["carol"] / "got"))
    assert refused.returncode == 5, (refused.returncode, refused.stderr)
    assert "not shared" in refused.stderr and "Traceback" not in refused.stderr
    assert not (big["carol"] / "got").exists()

    # a viewer joining now gets the pane (changed since) as a new blob; the one it supersedes is
    # gone from alice's store, its file and grants with it
    once = subprocess.run([*TSR, "notebook", "run", "alice:ops", "-o", "jsonl"], env=big["bob_env"],
                          capture_output=True, text=True, timeout=DEADLINE * 2, stdin=subprocess.DEVNULL)
    assert once.returncode == 0, once.stderr
    rows = rows_of(once.stdout)
    assert want <= set(rows) and rows["big-007"]["phase"] == "Failed" and rows["big-123"]["note"] == note_of(123)
    now = pane_blobs(big["alice"])
    assert first not in now and not blob_file(big["alice"], first).exists()
    conn = store(big["alice"])
    try:
        assert conn.execute("SELECT count(*) FROM blob_grants WHERE blob_id = ?", (first,)).fetchone()[0] == 0
    finally:
        conn.close()

    # carol, once alice shares the notebook with her, joins the room and may fetch the pane
    share(big["alice"], "ops", "carol")
    carol_env = {k: v for k, v in env_for(big["carol"]).items() if k != "KUBECONFIG"}
    joined = subprocess.run([*TSR, "notebook", "run", "alice:ops", "-o", "jsonl"], env=carol_env,
                            capture_output=True, text=True, timeout=DEADLINE * 2, stdin=subprocess.DEVNULL)
    assert joined.returncode == 0, joined.stderr
    assert want <= set(rows_of(joined.stdout)) and rows_of(joined.stdout)["big-249"]["note"] == note_of(249)
    assert node_id(big["carol"]) in next(iter(pane_blobs(big["alice"]).values()))

    # the last viewer leaves: the feed stops and every pane blob goes
    watch.terminate()
    watch.wait(DEADLINE)
    wait_until(lambda: pane_blobs(big["alice"]) == {}, "alice's pane blobs removed once nobody views the panes")


def test_a_failed_fetch_is_one_line_in_the_pane_and_the_cells_next_message_recovers(big, kube_api, started):
    # bob's blob store cannot take a fetch: its partial-fetch directory is a file
    blobs = big["bob"] / "data" / "blobs"
    blobs.mkdir(mode=0o700, exist_ok=True)
    (blobs / "partial").write_text("in the way")
    watch = subprocess.Popen([*TSR, "notebook", "run", "alice:ops", "--watch", "-o", "jsonl"], env=big["bob_env"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    started.append(watch)
    lines: list[dict] = []
    errors: list[str] = []

    def read(stream, into, parse):
        for line in stream:
            into.append(parse(line))

    threading.Thread(target=read, args=(watch.stdout, lines, json.loads), daemon=True).start()
    threading.Thread(target=read, args=(watch.stderr, errors, str.rstrip), daemon=True).start()
    wait_until(lambda: any("could not be fetched from @alice" in e for e in errors), "the failed fetch in the pane",
               timeout=DEADLINE * 2)
    line = next(e for e in errors if "could not be fetched" in e)
    assert "1.5 MiB" in line and "this node cannot store it: File exists" in line, errors
    assert "Traceback" not in "\n".join(errors)
    assert lines == []  # no partial rows shown as if they were the result
    # the way is clear again; the cell's next message (a pod changes) makes bob ask for the pane
    # again, and it arrives whole
    (blobs / "partial").unlink()
    pod = kube_api.get("v1", "Pod", "shop", "big-042")
    kube_api.update({**pod, "status": {"phase": "Pending"}})
    want = {f"big-{i:03d}" for i in range(PODS)}
    wait_until(lambda: want <= {l["row"]["pod"] for l in lines if l["op"] == "added"}, "every big pod added after all",
               timeout=DEADLINE * 2)
    added = {l["row"]["pod"]: l["row"] for l in lines if l["op"] == "added"}
    assert added["big-042"]["phase"] == "Pending" and added["big-199"]["note"] == note_of(199)


def test_the_pane_says_it_is_fetching_from_the_owner_until_the_whole_result_is_shown(big, monkeypatch):
    """RemoteNotebookSession, the dashboard's and `tessera pane`'s session, in this process as bob."""
    from tessera.core.collab.remote_session import RemoteNotebookSession

    for key in ("TESSERA_HOME", "TESSERA_CONFIG_DIR", "TESSERA_PEER_LOOPBACK"):
        monkeypatch.setenv(key, env_for(big["bob"])[key])
    states = []
    session = RemoteNotebookSession(str(big["bob"] / "data" / "tessera.db"), "alice", "ops", run="owner",
                                    on_update=states.append)
    session.start()
    try:
        shown = wait_until(lambda: next((s for s in list(states) if s.result is not None and len(s.result.rows) > PODS),
                                        None), "the whole pane at bob", timeout=DEADLINE * 2)
        before = states[:states.index(shown)]
        fetching = [s for s in before if s.fault and s.fault.startswith("fetching ")]
        assert fetching and fetching[0].fault == "fetching 1.5 MiB from @alice" and fetching[0].status == "starting"
        assert fetching[0].result is None  # nothing partial shown as the result meanwhile
        assert shown.fault is None and shown.error is None and not shown.result.warnings
        assert len(shown.result.rows) == PODS + 3  # the big pods and the shop's three
    finally:
        session.stop()
