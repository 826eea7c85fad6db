"""Watch caches and live queries against the emulator: changes, restarts, 410 Gone, relationships."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from tessera.core.kinds import KindRegistry
from kube_emulator import wait_quiet
from process_lines import json_lines, wait_stderr
from tessera.core.watch.cache import CacheHub, WatchCache
from tessera.core.watch.cached_source import CachedSource
from tessera.core.watch.live_query import LiveQuery, diff_rows, follow, keyed_rows
from tessera.plugins.sources.kubernetes import KubernetesSource


def pod(name, ns="shop", rs="web-5d8f", phase="Running", labels=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"u-{name}",
                         "labels": labels or {"app": "web", "pod-template-hash": "5d8f"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                              "uid": f"rs-{ns}-web", "controller": True}]},
            "spec": {"containers": [{"name": "web", "image": "acme/web:1"}]}, "status": {"phase": phase}}


def names(cache):
    return sorted(o["metadata"]["name"] for o in cache.snapshot())


def emulator_names(emu, ns="shop"):
    return sorted(o["metadata"]["name"] for o in emu.objects("Pod") if o["metadata"]["namespace"] == ns)


@pytest.fixture
def source(kubeconfig):
    src = KubernetesSource(kubeconfig=str(kubeconfig))
    yield src
    src.close()


@pytest.fixture
def pods_cache(source):
    kind = KindRegistry(source.kinds()).resolve("pods")
    cache = WatchCache(source, kind, "shop", watch_timeout=30, backoff=(0.05, 0.3)).start()
    cache.wait_ready(60)
    yield cache
    cache.stop()
    source.close()


def test_cache_sees_added_modified_deleted(pods_cache, kube_api):
    assert names(pods_cache) == ["cart-5d8f-0", "web-5d8f-0", "web-5d8f-1"]
    kube_api.add(pod("web-5d8f-2"))
    assert wait_quiet(lambda: "web-5d8f-2" in names(pods_cache), 60)
    kube_api.update(pod("web-5d8f-2", phase="Failed"))
    assert wait_quiet(lambda: any(o["status"]["phase"] == "Failed" for o in pods_cache.snapshot()), 60)
    kube_api.remove(pod("web-5d8f-0"))
    assert wait_quiet(lambda: "web-5d8f-0" not in names(pods_cache), 60)
    kube_api.add(pod("other", ns="payments"))  # another namespace: not this cache's business
    time.sleep(0.2)
    assert names(pods_cache) == emulator_names(kube_api)
    assert pods_cache.list_calls == 1 and pods_cache.events == 3


def test_restart_mid_watch_resumes_without_duplicates_or_losses(pods_cache, kube_api):
    # mid-watch: the cache's first watch is open (it starts just after the first list)
    assert wait_quiet(lambda: kube_api.watch_requests(), 10)
    kube_api.stop()
    # changes while the watcher cannot connect
    kube_api.add(pod("web-5d8f-7"))
    kube_api.update(pod("web-5d8f-1", phase="Pending"))
    kube_api.remove(pod("cart-5d8f-0", rs="cart-5d8f"))
    assert wait_quiet(lambda: pods_cache.errors >= 1, 60), "the watcher saw the API go away"
    kube_api.start()
    assert wait_quiet(lambda: names(pods_cache) == emulator_names(kube_api), 60)
    assert pods_cache.list_calls == 1, "resumed from the resourceVersion, no relist"
    assert pods_cache.events == 3, "each change applied exactly once"
    assert pods_cache.errors >= 1
    by_name = {o["metadata"]["name"]: o for o in pods_cache.snapshot()}
    assert by_name["web-5d8f-1"]["status"]["phase"] == "Pending"
    resumed = [w["params"]["resourceVersion"] for w in kube_api.watch_requests()]
    assert len(resumed) >= 2 and resumed[-1] != "0"


def test_410_gone_relists(pods_cache, kube_api):
    kube_api.stop()
    kube_api.add(pod("web-5d8f-8"))
    kube_api.compact()  # the resourceVersion the cache holds is now too old
    kube_api.start()
    assert wait_quiet(lambda: "web-5d8f-8" in names(pods_cache), 60)
    assert pods_cache.list_calls == 2
    kube_api.add(pod("web-5d8f-9"))
    assert wait_quiet(lambda: "web-5d8f-9" in names(pods_cache), 60)
    assert names(pods_cache) == emulator_names(kube_api)


def test_hub_shares_one_cache_per_kind_and_namespace(source, kube_api):
    hub = CacheHub()
    try:
        kinds = KindRegistry(source.kinds())
        a = hub.get(source, kinds.resolve("pods"), None)
        b = hub.get(source, kinds.resolve("po"), None)
        c = hub.get(source, kinds.resolve("pods"), "shop")  # served by the all-namespaces cache
        assert a is b is c
        nodes = hub.get(source, kinds.resolve("nodes"), "shop")
        assert nodes.namespace is None  # cluster-scoped
    finally:
        hub.close()


def test_live_query_follows_relationships(source, kube_api):
    hub = CacheHub(backoff=(0.05, 0.3))
    try:
        live = LiveQuery("MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) RETURN d.metadata.name AS d, p.metadata.name AS p",
                         [CachedSource(source, hub)], namespace="shop")
        first = live.refresh()
        assert {(c["op"], c["row"]["p"]) for c in first} == {("added", "web-5d8f-0"), ("added", "web-5d8f-1"),
                                                              ("added", "cart-5d8f-0")}
        before = len(kube_api.list_requests())
        kube_api.add(pod("web-5d8f-5"))
        assert wait_quiet(lambda: any(c.events for c in hub.caches()), 60)
        changes = live.refresh()
        assert changes == [{"op": "added", "key": changes[0]["key"], "row": {"d": "web", "p": "web-5d8f-5"},
                            "ts": changes[0]["ts"]}]
        assert "p=Pod/shop/web-5d8f-5" in changes[0]["key"]
        kube_api.remove(pod("web-5d8f-0"))
        wait_quiet(lambda: sum(c.events for c in hub.caches()) >= 2, 60)
        assert [(c["op"], c["row"]["p"]) for c in live.refresh()] == [("removed", "web-5d8f-0")]
        assert kube_api.list_requests()[before:] == [], "refreshes read the cache, not the API"
    finally:
        hub.close()


def test_aggregate_rows_change_in_place():
    class R:
        def __init__(self, rows, keys):
            self.rows, self.keys = rows, keys

    old = keyed_rows(R([{"d": "web", "n": 2}], ['["web"]']))
    new = keyed_rows(R([{"d": "web", "n": 3}, {"d": "api", "n": 1}], ['["web"]', '["api"]']))
    ops = [(c["op"], c["row"]) for c in diff_rows(old, new, "t")]
    assert ops == [("changed", {"d": "web", "n": 3}), ("added", {"d": "api", "n": 1})]


def test_follow_yields_initial_then_changes(source, kube_api):
    hub = CacheHub(backoff=(0.05, 0.3))
    stop = threading.Event()
    try:
        live = LiveQuery("MATCH (d:Deployment) RETURN d.metadata.name AS name, d.spec.replicas AS replicas",
                         [CachedSource(source, hub)], namespace="shop")
        stream = follow([live], hub=hub, stop=stop)
        index, initial = next(stream)
        assert index == 0 and sorted(c["row"]["name"] for c in initial) == ["cart", "web"]
        dep = kube_api.get("apps/v1", "Deployment", "shop", "web")
        dep = {**dep, "spec": {**dep["spec"], "replicas": 5}}
        kube_api.update(dep)
        index, changes = next(stream)
        assert [(c["op"], c["row"]) for c in changes] == [("changed", {"name": "web", "replicas": 5})]
    finally:
        stop.set()
        hub.close()


def test_cli_watch_emits_jsonl_changes(kubeconfig, kube_api):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tessera.cli.main", "query", "--watch", "--kubeconfig", str(kubeconfig),
         "MATCH (rs:ReplicaSet)->(p:Pod) RETURN p.metadata.name AS pod, p.status.phase AS phase"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        initial = json_lines(proc, 3)
        assert sorted(c["row"]["pod"] for c in initial) == ["cart-5d8f-0", "web-5d8f-0", "web-5d8f-1"]
        assert {c["op"] for c in initial} == {"added"} and all(c["ts"].endswith("Z") for c in initial)
        kube_api.add(pod("web-5d8f-3"))
        (added,) = json_lines(proc, 1)
        assert added["op"] == "added" and added["row"] == {"pod": "web-5d8f-3", "phase": "Running"}
        kube_api.update(pod("web-5d8f-3", phase="Failed"))
        (changed,) = json_lines(proc, 1)
        assert changed["op"] == "changed" and changed["row"]["phase"] == "Failed" and changed["key"] == added["key"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_watch_files_need_interval(tmp_path):
    from tessera.plugins.sources.demo import DEMO_DIR

    r = subprocess.run([sys.executable, "-m", "tessera.cli.main", "query", "--watch", "-s", str(DEMO_DIR),
                        "MATCH (d:Deployment) RETURN d.metadata.name"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot be watched" in r.stderr and "--interval" in r.stderr


def test_cli_watch_interval_polls_files(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tessera.cli.main", "query", "--watch", "--interval", "0.2", "-s", str(manifest),
         "MATCH (c:ConfigMap) RETURN c.metadata.name AS name"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert [c["row"] for c in json_lines(proc, 1)] == [{"name": "a"}]
        manifest.write_text(manifest.read_text() + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: x}\n")
        (change,) = json_lines(proc, 1)
        assert change["op"] == "added" and change["row"] == {"name": "b"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_follow_reruns_only_queries_whose_kinds_changed(source, kube_api):
    hub = CacheHub(backoff=(0.05, 0.3))
    stop = threading.Event()
    try:
        pods = LiveQuery("MATCH (p:Pod) RETURN p.metadata.name AS name", [source], hub, namespace="shop")
        nodes = LiveQuery("MATCH (n:Node) RETURN n.metadata.name AS name", [source], hub)
        stream = follow([pods, nodes], hub=hub, stop=stop)
        next(stream), next(stream)
        kube_api.add(pod("web-5d8f-4"))
        index, changes = next(stream)
        assert index == 0 and [c["row"]["name"] for c in changes] == ["web-5d8f-4"]
        assert pods.runs == 2 and nodes.runs == 1, "the Node query did not re-run for a Pod change"
    finally:
        stop.set()
        hub.close()


@pytest.mark.skipif(__import__("shutil").which("tmux") is None, reason="tmux is not installed")
def test_watch_on_a_terminal_redraws_a_table_in_place(tmp_path):
    import shutil
    import uuid

    session = f"tsr-{uuid.uuid4().hex[:8]}"
    socket_name = f"tsr-{uuid.uuid4().hex[:8]}"
    tmux = [shutil.which("tmux"), "-L", socket_name]
    cmd = (f"TESSERA_HOME={tmp_path} {sys.executable} -m tessera.cli.main query --watch -s replay:demo --speed 100 "
           "'MATCH (p:Pod) WHERE p.metadata.namespace = \"payments\" RETURN p.metadata.name AS pod, "
           "p.status.containerStatuses[0].restartCount AS restarts'")
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd], check=True)
    try:
        def screen():
            return subprocess.run([*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

        assert wait_quiet(lambda: "restarts" in screen(), 60), screen()
        first = screen()
        assert "live" in first and "rows" in first and "pod" in first
        assert first.count("restarts") == 1, "the table is redrawn in place, not appended"
        assert wait_quiet(lambda: screen() != first, 60), "the table changes as the recording plays"
        assert screen().count("restarts") == 1
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def test_follow_reports_a_query_that_starts_failing_once():
    from tessera.core.builtin_kinds import BUILTIN_KINDS
    from tessera.core.errors import SourceUnavailable

    class Flaky:
        name, writable, default_namespace = "flaky", False, None

        def __init__(self):
            self.calls = 0

        def kinds(self):
            return list(BUILTIN_KINDS)

        def list(self, kind, **_):
            self.calls += 1
            if 1 < self.calls < 6:
                raise SourceUnavailable("flaky went away")
            name = "a" if self.calls == 1 else "b"
            return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "x"}}]

    flaky = Flaky()
    live = LiveQuery("MATCH (c:ConfigMap) RETURN c.metadata.name AS name", [flaky])
    stop = threading.Event()
    stream = follow([live], interval=0.05, stop=stop)
    index, initial = next(stream)
    assert index == 0 and [(c["op"], c["key"], c["row"]) for c in initial] == [("added", "c=ConfigMap/x/a", {"name": "a"})]
    index, changes = next(stream)
    assert (index, changes) == (0, []) and "flaky went away" in live.error.one_line()
    assert live.rows == {"c=ConfigMap/x/a": {"name": "a"}}, "the last rows are kept"
    index, changes = next(stream)  # four failures in a row are reported once; then it recovers
    assert [(c["op"], c["row"]) for c in changes] == [("removed", {"name": "a"}), ("added", {"name": "b"})]
    assert live.error is None and flaky.calls == 6
    stop.set()


def _watch_proc(kubeconfig, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "tessera.cli.main", "query", "--watch", "--kubeconfig", str(kubeconfig), *args,
         "MATCH (p:Pod) RETURN p.metadata.name AS pod"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_cli_watch_reports_a_lost_connection_and_the_recovery(kubeconfig, kube_api):
    proc = _watch_proc(kubeconfig)
    try:
        assert len(json_lines(proc, 3)) == 3
        kube_api.stop()
        lost = wait_stderr(proc, lambda line: "connection lost" in line)
        assert lost.startswith("tessera: warning: connection lost: ") and "retrying" in lost
        assert "emu-a" in lost and kube_api.url in lost, "the warning names the context and the server"
        kube_api.add(pod("web-5d8f-7"))  # a change made while we were away
        kube_api.start()
        back = wait_stderr(proc, lambda line: "reconnected" in line)
        assert back.startswith("tessera: reconnected to emu-a after ")
        (added,) = json_lines(proc, 1, timeout=60)
        assert added["op"] == "added" and added["row"] == {"pod": "web-5d8f-7"}
        assert proc.poll() is None, "the watch carries on"
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_watch_started_while_the_api_is_down_retries_and_says_so(kubeconfig, kube_api):
    kube_api.stop()
    proc = _watch_proc(kubeconfig)
    try:
        waiting = wait_stderr(proc, lambda line: "retrying" in line)
        assert waiting.startswith("tessera: warning: cannot reach the Kubernetes API at ")
        assert "retrying with backoff until it answers" in waiting
        assert proc.poll() is None, "the watch waits for the server instead of exiting"
        kube_api.start()
        wait_stderr(proc, lambda line: line == "tessera: connected to emu-a")
        initial = json_lines(proc, 3, timeout=60)
        assert sorted(c["row"]["pod"] for c in initial) == ["cart-5d8f-0", "web-5d8f-0", "web-5d8f-1"]
        assert {c["op"] for c in initial} == {"added"}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.skipif(__import__("shutil").which("tmux") is None, reason="tmux is not installed")
def test_watch_on_a_terminal_shows_a_lost_connection_in_its_status_line(tmp_path, kubeconfig, kube_api):
    import shutil
    import uuid

    session = f"tsr-{uuid.uuid4().hex[:8]}"
    tmux = [shutil.which("tmux"), "-L", f"tsr-{uuid.uuid4().hex[:8]}"]
    cmd = (f"TESSERA_HOME={tmp_path} {sys.executable} -m tessera.cli.main query --watch --kubeconfig {kubeconfig} "
           "'MATCH (p:Pod) RETURN p.metadata.name AS pod'")
    subprocess.run([*tmux, "-f", "/dev/null", "new-session", "-d", "-s", session, "-x", "200", "-y", "20", cmd],
                   check=True)
    try:
        def screen():
            return subprocess.run([*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

        assert wait_quiet(lambda: "web-5d8f-0" in screen() and "live" in screen(), 60), screen()
        kube_api.stop()
        assert wait_quiet(lambda: "connection lost" in screen(), 60), screen()
        assert "web-5d8f-0" in screen(), "the last rows stay"
        kube_api.start()
        assert wait_quiet(lambda: "reconnected" in screen() and "connection lost" not in screen(), 60), screen()
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def test_cli_watch_reports_a_server_that_stops_answering_and_its_recovery(kubeconfig, kube_api):
    proc = _watch_proc(kubeconfig)
    try:
        assert len(json_lines(proc, 3)) == 3
        kube_api.freeze()  # connections stay open, nothing answers: only the heartbeat can tell
        lost = wait_stderr(proc, lambda line: "connection lost" in line)
        assert "emu-a" in lost and "stopped answering" in lost and "heartbeat" in lost
        kube_api.thaw()
        wait_stderr(proc, lambda line: line.startswith("tessera: reconnected to emu-a after "))
        kube_api.add(pod("web-5d8f-8"))  # the watches work again (resumed after the hang)
        (added,) = json_lines(proc, 1, timeout=60)
        assert added["op"] == "added" and added["row"] == {"pod": "web-5d8f-8"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_hub_reports_one_fault_per_source_and_one_recovery(source, kube_api):
    from tessera.core.kinds import KindRegistry

    hub = CacheHub(backoff=(0.05, 0.3))
    told = []
    hub.subscribe_health(lambda name, fault: told.append((name, fault)))
    registry = KindRegistry(source.kinds())
    caches = [hub.get(source, registry.resolve(k), "shop") for k in ("pods", "deployments", "services")]
    try:
        for cache in caches:
            cache.wait_ready(10)
        assert hub.faults() == {} and told == []
        kube_api.stop()
        assert wait_quiet(lambda: all(c.fault is not None for c in caches), 30), "every cache sees the loss"
        assert set(hub.faults()) == {"emu-a"} and all(name == "emu-a" for name, _ in told)
        assert told and all(fault is not None for _, fault in told), "lost: no recovery is told meanwhile"
        kube_api.start()
        assert wait_quiet(lambda: hub.faults() == {}, 30)
        assert told[-1] == ("emu-a", None)
        assert [fault is None for _, fault in told].count(True) == 1, "one recovery, once every cache is back"
        assert all(c.fault is None for c in caches)
        before = len(told)
    finally:
        hub.close()
    assert wait_quiet(lambda: len(told) > before, 0.5) is False, "closing cuts the streams without a fault"


def test_cli_watch_started_while_down_with_kinds_on_disk_waits_for_the_first_list(kubeconfig, kube_api):
    first = subprocess.run([sys.executable, "-m", "tessera.cli.main", "query", "--kubeconfig", str(kubeconfig),
                            "MATCH (p:Pod) RETURN p.metadata.name"], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr  # the kinds are now in the discovery cache
    kube_api.stop()
    proc = _watch_proc(kubeconfig)
    try:
        waiting = wait_stderr(proc, lambda line: "retrying" in line)
        assert waiting.startswith("tessera: warning: ") and "connection lost" not in waiting, "no rows were shown"
        assert "until it answers" in waiting
        kube_api.start()
        wait_stderr(proc, lambda line: line == "tessera: connected to emu-a")
        assert len(json_lines(proc, 3, timeout=60)) == 3
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_watch_says_when_a_failing_query_runs_again(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tessera.cli.main", "query", "--watch", "--interval", "0.2", "-s", str(manifest),
         "MATCH (c:ConfigMap) RETURN c.metadata.name AS name"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert [c["row"] for c in json_lines(proc, 1)] == [{"name": "a"}]
        manifest.write_text("apiVersion: v1\nkind: [unclosed\n")
        broken = wait_stderr(proc, lambda line: line.startswith("tessera: warning: "))
        assert "m.yaml" in broken
        manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n")
        wait_stderr(proc, lambda line: line == "tessera: the query runs again")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)
