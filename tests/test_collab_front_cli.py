"""A peer's notebook from the command line against a real `tessera serve` (issue 15, front):
`notebook run alice:ops -o jsonl` (once and --watch), `pane alice:ops/1 -o jsonl`, --run local,
`notebook show` listing who is connected. alice's serve reads the kube emulator; bob has no
kubeconfig at all (KUBECONFIG unset, an empty HOME): owner-run cells need none."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from tests.collab_helpers import befriend, init_node, point_at, share, start_driver
from tests.test_collab_sync import started  # noqa: F401  (a fixture)
from tests.kube_emulator import write_kubeconfig
from tests.test_peer_serve import DEADLINE, TSR, env_for, procs, start_serve, tessera, wait_until  # noqa: F401

PODS = 'MATCH (p:Pod) WHERE p.metadata.namespace = "shop" RETURN p.metadata.name AS pod, p.status.phase AS phase'


@pytest.fixture
def pair(tmp_path, procs, kubeconfig, monkeypatch):
    """alice serving notebook ops (a watched pod list over her cluster) shared with bob, a viewer."""
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    init_node(alice, "alice")
    init_node(bob, "bob")
    befriend(alice, bob, role="viewer")
    assert tessera(alice, "notebook", "new", "ops").returncode == 0
    added = tessera(alice, "cell", "add", "ops", PODS, "--refresh", "watch", "--title", "Shop pods")
    assert added.returncode == 0, added.stderr
    assert tessera(alice, "notebook", "new", "private").returncode == 0
    share(alice, "ops", "bob")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))  # serve's environment: alice's credentials
    serve, listening = start_serve(procs, alice)
    point_at(bob, alice, listening["ticket"])
    empty_home = tmp_path / "bob-home"
    empty_home.mkdir()
    bob_env = {k: v for k, v in env_for(bob).items() if k != "KUBECONFIG"}
    bob_env["HOME"] = str(empty_home)
    return {"alice": alice, "bob": bob, "bob_env": bob_env, "serve": serve, "tmp": tmp_path}


def bob_runs(pair, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TSR, *args], env=pair["bob_env"], capture_output=True, text=True, timeout=DEADLINE * 2,
                          stdin=subprocess.DEVNULL)


def pods_of(stdout: str) -> dict:
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return {row["pod"]: row["phase"] for row in rows}


def test_notebook_run_of_a_peers_notebook_runs_it_at_the_owner(pair, kube_api):
    result = bob_runs(pair, "notebook", "run", "alice:ops", "-o", "jsonl")
    assert result.returncode == 0, result.stderr
    want = {p["metadata"]["name"]: "Running" for p in kube_api.objects("Pod") if p["metadata"]["namespace"] == "shop"}
    assert want and pods_of(result.stdout) == want
    # nothing of alice's notebook was recorded in bob's store
    from tests.test_peer_serve import store

    conn = store(pair["bob"])
    try:
        assert conn.execute("SELECT count(*) FROM cell_results").fetchone()[0] == 0
    finally:
        conn.close()


def test_pane_of_a_peers_cell_without_a_terminal_prints_its_rows(pair, kube_api):
    result = bob_runs(pair, "pane", "alice:ops/1")
    assert result.returncode == 0, result.stderr
    assert "web-5d8f-0" in pods_of(result.stdout)


def test_notebook_run_watch_of_a_peers_notebook_streams_the_owners_changes(pair, kube_api, started):
    proc = subprocess.Popen([*TSR, "notebook", "run", "alice:ops", "--watch", "-o", "jsonl"], env=pair["bob_env"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    started.append(proc)
    lines: list[dict] = []

    def read():
        for line in proc.stdout:
            lines.append(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    wait_until(lambda: any(l["op"] == "added" and l["row"]["pod"] == "web-5d8f-0" for l in lines), "every row added")
    pod = kube_api.get("v1", "Pod", "shop", "web-5d8f-0")
    kube_api.update({**pod, "status": {"phase": "Failed"}})
    wait_until(lambda: any(l["op"] == "changed" and l["row"] == {"pod": "web-5d8f-0", "phase": "Failed"}
                           for l in lines), "the change at alice's cluster")
    proc.terminate()
    proc.wait(DEADLINE)


def test_run_local_runs_a_peers_notebook_with_this_nodes_own_kubeconfig(pair, kube_api_b):
    mine = write_kubeconfig(pair["tmp"] / "bob-kubeconfig", {"bobs": (kube_api_b.url, "shop")}, current="bobs")
    kube_api_b.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "only-at-bob", "namespace": "shop",
                                                                    "uid": "bob-1"}, "status": {"phase": "Pending"}})
    result = bob_runs(pair, "notebook", "run", "alice:ops", "--run", "local", "--kubeconfig", str(mine), "-o", "jsonl")
    assert result.returncode == 0, result.stderr
    assert pods_of(result.stdout).get("only-at-bob") == "Pending"
    assert "web-5d8f-0" not in pods_of(result.stdout)  # alice's cluster is not read
    from tests.test_peer_serve import store

    conn = store(pair["bob"])
    try:  # run here, but not bob's notebook: nothing recorded in his store
        assert conn.execute("SELECT count(*) FROM cell_results").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM events WHERE subject LIKE 'query.%'").fetchone()[0] == 0
    finally:
        conn.close()


def test_a_notebook_not_shared_is_refused_with_exit_5_and_one_line(pair):
    result = bob_runs(pair, "notebook", "run", "alice:private", "-o", "jsonl")
    assert result.returncode == 5, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.stderr
    assert "not shared" in result.stderr or "not_shared" in result.stderr
    # without a replica, show asks the owner's node: its refusal is the line, not "no replica"
    shown = bob_runs(pair, "notebook", "show", "alice:private")
    assert shown.returncode == 5, (shown.returncode, shown.stderr)
    assert shown.stderr.strip().splitlines() == [
        "tessera: alice:private: the peer refused: notebook private is not shared with bob by alice "
        "(ask alice: tessera peer share private --with bob)"]


def test_run_is_refused_for_this_nodes_own_notebook(pair):
    result = tessera(pair["alice"], "notebook", "run", "ops", "--run", "owner")
    assert result.returncode == 2 and "--run is for a peer's notebook" in result.stderr


def test_notebook_show_lists_who_is_connected(pair, started):
    bob = start_driver(started, pair["bob"], "alice", "ops")
    bob.wait_synced()
    shown = tessera(pair["alice"], "notebook", "show", "ops", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    people = json.loads(shown.stdout)["people"]
    assert [(p["name"], p["where"]) for p in people] == [("bob", "peer")]
    table = tessera(pair["alice"], "notebook", "show", "ops", "-o", "table")
    assert "connected: bob (at a peer)" in table.stdout
    # at bob's node, `notebook show alice:ops` asks alice's node who is in it: without a replica
    # (never synced) the notebook itself is read from her node too, then from the replica
    def show_at_bob() -> dict:
        shown = subprocess.run([*TSR, "notebook", "show", "alice:ops", "-o", "json"], env=pair["bob_env"],
                               capture_output=True, text=True, timeout=DEADLINE, stdin=subprocess.DEVNULL)
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)

    live = show_at_bob()
    assert [p["name"] for p in live["people"]] == ["bob"]  # its driver, connected
    assert live["rows"][0]["cells"][0]["source"] == PODS
    synced = subprocess.run([*TSR, "peer", "sync", "alice"], env=pair["bob_env"], capture_output=True, text=True,
                            timeout=DEADLINE, stdin=subprocess.DEVNULL)
    assert synced.returncode == 0, synced.stderr
    assert [p["name"] for p in show_at_bob()["people"]] == ["bob"]
    bob.stop()
    gone = tessera(pair["alice"], "notebook", "show", "ops", "-o", "json")
    assert json.loads(gone.stdout)["people"] == []
