#!/usr/bin/env python3
"""Benchmark: Tessera against a live (emulated) Kubernetes API.

Starts the kmock-based API emulator from ``tests/kube_emulator.py`` on 127.0.0.1, fills it with
a generated cluster (Deployments -> ReplicaSets -> Pods with ownerReferences carrying uids,
Services, Nodes) and measures, in one run:

(a) ``join``: the wall time (median of ``--repeat`` runs) of

        tessera query -A --kubeconfig K -o json \
          'MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) RETURN d.metadata.name AS deployment,
           rs.metadata.name AS replicaset, p.metadata.name AS pod'

    against ``kubectl --kubeconfig K get deploy,rs,pods -A -o json | jq -c JQ_JOIN`` (the same
    join by ownerReferences uid), checks the rows agree and reports ``ratio`` = tessera / kubectl+jq.

(b) ``watch``: one ``tessera query --watch -A -f q1 ... -f q8`` process follows eight queries
    while the bench makes changes through the emulator at a steady rate for
    ``--churn-seconds``. It reports list calls per resource before and after the churn (one list
    per resource is the target: the watch caches must never relist), watch calls, the
    change-to-output latency of identifiable changes (a pod label ``bench-seq=<n>`` that query 3
    returns as a column), and the CPU the watch process used during the churn.

Prints ONE JSON object on stdout; progress goes to stderr.

Usage:
    .venv/bin/python bench/live.py [--pods 10000] [--churn-seconds 300] [--repeat 5] [--rate 5]

See bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
from procstat import proc_cpu_s, proc_rss_mb  # noqa: E402

try:  # the emulator's own dependencies (kmock) come with the dev extras
    from kube_emulator import Emulator, write_kubeconfig  # noqa: E402
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"bench/live.py: cannot import tests/kube_emulator.py ({exc}); install the dev extras",
          file=sys.stderr)
    sys.exit(2)

try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

JOIN_QUERY = (
    "MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) "
    "RETURN d.metadata.name AS deployment, rs.metadata.name AS replicaset, p.metadata.name AS pod"
)

# The same rows from kubectl's List: Pod -> ReplicaSet -> Deployment by ownerReferences[].uid.
JQ_JOIN = r"""
.items as $items
| (reduce ($items[] | select(.kind == "Deployment")) as $d ({}; .[$d.metadata.uid] = $d.metadata.name)) as $deps
| (reduce ($items[] | select(.kind == "ReplicaSet")) as $r ({};
      .[$r.metadata.uid] = {name: $r.metadata.name, owners: [$r.metadata.ownerReferences[]?.uid]})) as $rss
| [ $items[] | select(.kind == "Pod")
    | .metadata.name as $pod
    | [.metadata.ownerReferences[]?.uid] | unique[]
    | ($rss[.] // empty) as $rs
    | $rs.owners | unique[]
    | ($deps[.] // empty)
    | {deployment: ., replicaset: $rs.name, pod: $pod} ]
"""

WATCH_NAMESPACE = "payments"
# The eight live queries. Query index 2 (0-based) carries the bench-seq column used for latency.
WATCH_QUERIES = [
    # 0 pods by phase
    "MATCH (p:Pod) RETURN p.status.phase AS phase, count(p) AS pods",
    # 1 deployments with replicas
    "MATCH (d:Deployment) RETURN d.metadata.namespace AS ns, d.metadata.name AS deployment, "
    "d.spec.replicas AS replicas",
    # 2 the ownership join, filtered by a label (the tagged pods)
    "MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) WHERE p.metadata.labels.bench-seq IS NOT NULL "
    "RETURN d.metadata.name AS deployment, rs.metadata.name AS replicaset, p.metadata.name AS pod, "
    "p.metadata.labels.bench-seq AS seq",
    # 3 services -> pods
    "MATCH (s:Service)->(p:Pod) RETURN s.metadata.namespace AS ns, s.metadata.name AS service, count(p) AS pods",
    # 4 pods on nodes
    "MATCH (p:Pod)->(n:Node) RETURN n.metadata.name AS node, count(p) AS pods",
    # 5 container images
    "MATCH (p:Pod) RETURN p.spec.containers[0].image AS image, count(p) AS pods",
    # 6 restarted pods
    "MATCH (p:Pod) WHERE p.status.containerStatuses[0].restartCount > 0 "
    "RETURN p.metadata.namespace AS ns, p.metadata.name AS pod, p.status.containerStatuses[0].restartCount AS restarts",
    # 7 pods of one namespace
    f"MATCH (p:Pod) WHERE p.metadata.namespace = \"{WATCH_NAMESPACE}\" "
    "RETURN p.metadata.name AS pod, p.status.phase AS phase, p.spec.nodeName AS node",
]
TAGGED_QUERY = 2

from query_join import APPS, NAMESPACES  # noqa: E402 - the same generated cluster shape as the file bench

ALNUM = "bcdfghjklmnpqrstvwxz2456789"
TIERS = ["frontend", "backend", "batch"]


def log(msg: str) -> None:
    print(f"[live {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


def percentile(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


# ---------------------------------------------------------------------------------------------
# Generated cluster
# ---------------------------------------------------------------------------------------------


class Cluster:
    """Generates the objects and keeps the bench's own view (for picking change targets)."""

    def __init__(self, seed: int, nodes: int = 50) -> None:
        self.rng = random.Random(seed)
        self.nodes = [f"node-{i:03d}" for i in range(nodes)]
        self.deployments: list[dict] = []
        self.replicasets: list[dict] = []  # the live ones (pods are created under these)
        self.old_replicasets: list[dict] = []
        self.services: list[dict] = []
        self.pods: dict[tuple[str, str], dict] = {}  # (ns, name) -> pod
        self.pod_keys: list[tuple[str, str]] = []  # for random choice; lazily compacted
        self.counter = 0

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def suffix(self, n: int) -> str:
        return "".join(self.rng.choice(ALNUM) for _ in range(n))

    @staticmethod
    def owner(obj: dict) -> list[dict]:
        return [{"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
                 "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]

    def generate(self, pods: int) -> None:
        remaining = pods
        i = 0
        while remaining > 0:
            ns = NAMESPACES[i % len(NAMESPACES)]
            app = APPS[(i // len(NAMESPACES)) % len(APPS)]
            name = f"{app}-{i // (len(NAMESPACES) * len(APPS))}" if i >= len(NAMESPACES) * len(APPS) else app
            tier = TIERS[i % len(TIERS)]
            n = min(remaining, self.rng.randint(3, 7))
            remaining -= n
            i += 1
            labels = {"app": name, "tier": tier}
            dep = {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": name, "namespace": ns, "uid": self.uid(), "labels": dict(labels),
                                "creationTimestamp": "2024-03-01T08:00:00Z", "generation": 2},
                   "spec": {"replicas": n, "selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": dict(labels)},
                                         "spec": {"containers": [{"name": app, "image": f"ghcr.io/acme/{app}:1.{i % 4}"}]}}},
                   "status": {"replicas": n, "readyReplicas": n, "availableReplicas": n}}
            self.deployments.append(dep)
            if self.rng.random() < 0.33:  # an old ReplicaSet scaled to 0
                h = self.suffix(10)
                self.old_replicasets.append(self._rs(dep, h, 0, labels))
            h = self.suffix(10)
            rs = self._rs(dep, h, n, labels)
            self.replicasets.append(rs)
            self.services.append({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": ns, "uid": self.uid(), "labels": dict(labels),
                             "creationTimestamp": "2024-03-01T08:00:00Z"},
                "spec": {"selector": {"app": name}, "type": "ClusterIP", "clusterIP": f"10.96.{i // 250}.{i % 250}",
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
            for _ in range(n):
                self.new_pod(rs)

    def _rs(self, dep: dict, h: str, replicas: int, labels: dict) -> dict:
        meta = dep["metadata"]
        rs_labels = {**labels, "pod-template-hash": h}
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{meta['name']}-{h}", "namespace": meta["namespace"], "uid": self.uid(),
                             "labels": rs_labels, "ownerReferences": self.owner(dep),
                             "creationTimestamp": "2024-03-01T08:00:00Z"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": meta["name"], "pod-template-hash": h}},
                         "template": {"metadata": {"labels": dict(rs_labels)},
                                      "spec": dep["spec"]["template"]["spec"]}},
                "status": {"replicas": replicas, "readyReplicas": replicas}}

    def new_pod(self, rs: dict, extra_labels: dict | None = None) -> dict:
        meta = rs["metadata"]
        name = f"{meta['name']}-{self.suffix(5)}"
        while (meta["namespace"], name) in self.pods:
            name = f"{meta['name']}-{self.suffix(5)}"
        restarts = self.rng.choice([0] * 18 + [1, 3])
        phase = self.rng.choice(["Running"] * 16 + ["Pending", "Failed", "Succeeded", "Running"])
        container = rs["spec"]["template"]["spec"]["containers"][0]
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": meta["namespace"], "uid": self.uid(),
                         "labels": {**meta["labels"], **(extra_labels or {})}, "ownerReferences": self.owner(rs),
                         "creationTimestamp": "2024-03-02T08:00:00Z"},
            "spec": {"nodeName": self.rng.choice(self.nodes), "serviceAccountName": "default",
                     "containers": [{"name": container["name"], "image": container["image"],
                                     "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                   "limits": {"memory": "128Mi"}}}]},
            "status": {"phase": phase, "podIP": f"10.244.{self.rng.randrange(256)}.{self.rng.randrange(256)}",
                       "conditions": [{"type": "Ready", "status": "True" if phase == "Running" else "False"}],
                       "containerStatuses": [{"name": container["name"], "image": container["image"],
                                              "ready": phase == "Running", "restartCount": restarts}]},
        }
        self.pods[(meta["namespace"], name)] = pod
        self.pod_keys.append((meta["namespace"], name))
        return pod

    def random_pod(self) -> dict:
        while True:
            i = self.rng.randrange(len(self.pod_keys))
            key = self.pod_keys[i]
            if key in self.pods:
                return self.pods[key]
            self.pod_keys[i] = self.pod_keys[-1]  # a removed pod: drop its slot
            self.pod_keys.pop()

    def node_objects(self) -> list[dict]:
        return [{"apiVersion": "v1", "kind": "Node",
                 "metadata": {"name": n, "uid": self.uid(), "labels": {"kubernetes.io/hostname": n}},
                 "status": {"capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"}}} for n in self.nodes]

    def namespace_objects(self) -> list[dict]:
        return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "uid": self.uid()}}
                for ns in NAMESPACES]


def load(emu: Emulator, cluster: Cluster) -> int:
    objs: list[dict] = []
    objs += cluster.namespace_objects() + cluster.node_objects()
    objs += cluster.deployments + cluster.old_replicasets + cluster.replicasets + cluster.services
    objs += list(cluster.pods.values())
    for obj in objs:
        emu.add(obj)
    return len(objs)


# ---------------------------------------------------------------------------------------------
# (a) join: tessera versus kubectl | jq
# ---------------------------------------------------------------------------------------------


def rows_of(text: str) -> list[tuple]:
    data = json.loads(text) if text.strip() else []
    if isinstance(data, dict):
        data = data.get("rows", [])
    return sorted((r.get("deployment"), r.get("replicaset"), r.get("pod")) for r in data)


def timed(cmd: list[str], env: dict | None = None, timeout: float = 900) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    return time.perf_counter() - t0, proc


def bench_join(tessera: list[str], kubeconfig: Path, workdir: Path, repeat: int, env: dict) -> dict:
    jq_file = workdir / "join.jq"
    jq_file.write_text(JQ_JOIN)
    tessera_cmd = tessera + ["query", "-A", "--kubeconfig", str(kubeconfig), "-o", "json", "-q", JOIN_QUERY]
    kubectl_cmd = (f"set -o pipefail; kubectl --kubeconfig {shlex.quote(str(kubeconfig))} get deploy,rs,pods -A -o json"
                   f" | jq -c -f {shlex.quote(str(jq_file))}")
    shell_cmd = ["bash", "-c", kubectl_cmd]
    commands = {"tessera": tessera_cmd, "kubectl_jq": shell_cmd}
    times: dict[str, list[float]] = {side: [] for side in commands}
    rows: dict[str, list | None] = {side: None for side in commands}
    errors: dict[str, str] = {}
    for i in range(repeat):
        # alternate the order so neither side always runs on a warmer machine
        for side in (list(commands) if i % 2 == 0 else list(commands)[::-1]):
            dt, proc = timed(commands[side], env)
            if proc.returncode != 0:
                errors[side] = f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1]}"
                continue
            times[side].append(dt)
            rows[side] = rows_of(proc.stdout)
        log(f"join run {i + 1}/{repeat}: tessera {_fmt(times['tessera'])} s, kubectl|jq {_fmt(times['kubectl_jq'])} s")
    t_times, k_times = times["tessera"], times["kubectl_jq"]
    t_rows, k_rows = rows["tessera"], rows["kubectl_jq"]
    tm, km = median(t_times), median(k_times)
    out = {
        "tessera_median_s": tm, "kubectl_jq_median_s": km,
        "ratio": round(tm / km, 3) if tm and km else None, "ratio_target": 1.0,
        "rows_equal": (t_rows == k_rows) if t_rows is not None and k_rows is not None else None,
        "rows": len(k_rows) if k_rows is not None else None,
        "tessera_rows": len(t_rows) if t_rows is not None else None,
        "runs": repeat,
        "tessera_times_s": [round(x, 3) for x in t_times], "kubectl_jq_times_s": [round(x, 3) for x in k_times],
        "commands": {"tessera": shlex.join(tessera_cmd), "kubectl_jq": kubectl_cmd.replace("set -o pipefail; ", "")},
    }
    if t_rows is not None and k_rows is not None and t_rows != k_rows:
        ts, ks = collections.Counter(t_rows), collections.Counter(k_rows)
        out["only_tessera_sample"] = [list(r) for r in list((ts - ks).elements())[:5]]
        out["only_kubectl_jq_sample"] = [list(r) for r in list((ks - ts).elements())[:5]]
    if errors:
        out["errors"] = errors
    return out


# ---------------------------------------------------------------------------------------------
# (b) watch: one process, eight queries, steady churn
# ---------------------------------------------------------------------------------------------


class Reader(threading.Thread):
    """Reads the watch process's stdout, timestamps each line and notes the bench-seq values."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lock = threading.Lock()
        self.seen: dict[str, float] = {}  # seq -> monotonic time of the first line showing it
        self.lines = 0
        self.lines_per_query: collections.Counter = collections.Counter()
        self.bad_lines = 0
        self.last_line_at = time.monotonic()
        self.cond = threading.Condition(self.lock)

    def run(self) -> None:
        for raw in self.stream:
            now = time.monotonic()
            try:
                change = _loads(raw)
            except ValueError:
                with self.lock:
                    self.bad_lines += 1
                continue
            q = change.get("query", 0) if isinstance(change, dict) else None
            seq = None
            if q == TAGGED_QUERY and change.get("op") in ("added", "changed"):
                seq = (change.get("row") or {}).get("seq")
            with self.cond:
                self.lines += 1
                self.lines_per_query[q] += 1
                self.last_line_at = now
                if seq is not None and str(seq) not in self.seen:
                    self.seen[str(seq)] = now
                    self.cond.notify_all()

    def wait_seq(self, seq: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while seq not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True


def count_paths(reqs: list[dict], *, starts_only: bool) -> dict[str, int]:
    c: collections.Counter = collections.Counter()
    for r in reqs:
        if starts_only and r["params"].get("continue"):
            continue
        c[r["path"]] += 1
    return dict(sorted(c.items()))


def bench_watch(tessera: list[str], emu: Emulator, cluster: Cluster, kubeconfig: Path, workdir: Path,
                churn_seconds: float, rate: float, env: dict, ready_timeout: float) -> dict:
    files = []
    for i, q in enumerate(WATCH_QUERIES):
        p = workdir / f"q{i + 1}.cypher"
        p.write_text(q + "\n")
        files.append(p)
    cmd = tessera + ["query", "--watch", "-A", "--kubeconfig", str(kubeconfig)]
    for p in files:
        cmd += ["-f", str(p)]
    lists_before_start = len(emu.list_requests())
    watches_before_start = len(emu.watch_requests())
    stderr_path = workdir / "watch.stderr"
    result: dict[str, Any] = {"command": shlex.join(cmd), "queries": WATCH_QUERIES, "tagged_query": TAGGED_QUERY}
    rng = random.Random(7)
    with open(stderr_path, "wb") as err:
        t_spawn = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, bufsize=0)
        try:
            reader = Reader(proc.stdout)
            reader.start()

            # --- ready: every query printed its first result (a probe change comes through) ---
            # The first probe shows that query 2 has run; the second, written after that, can
            # only show in a later round, so the first round (every initial result) is complete.
            for name in ("probe-1", "probe-2"):
                probe = copy.deepcopy(cluster.random_pod())
                probe["metadata"]["labels"]["bench-seq"] = name
                cluster.pods[(probe["metadata"]["namespace"], probe["metadata"]["name"])] = probe
                emu.update(probe)
                if not reader.wait_seq(name, ready_timeout):
                    raise RuntimeError(f"watch process not ready after {ready_timeout} s "
                                       f"(exit {proc.poll()}, stderr: {_tail(stderr_path)})")
            result["startup_s"] = round(time.monotonic() - t_spawn, 2)
            result["startup_cpu_s"] = _r(proc_cpu_s(proc.pid), 2)
            # let the round that showed the probe finish before counting
            while time.monotonic() - reader.last_line_at < 1.0:
                time.sleep(0.1)
            result["initial_lines"] = reader.lines
            lists_before = emu.list_requests()[lists_before_start:]
            watches_before = emu.watch_requests()[watches_before_start:]
            log(f"watch ready in {result['startup_s']} s, {reader.lines} initial lines; "
                f"lists {count_paths(lists_before, starts_only=True)}")

            # --- churn ---
            cpu0, t0 = proc_cpu_s(proc.pid), time.monotonic()
            lines0 = reader.lines
            sent: dict[str, float] = {}
            made = collections.Counter()
            interval = 1.0 / rate
            n = 0
            next_report = t0 + 10
            while True:
                now = time.monotonic()
                if now - t0 >= churn_seconds:
                    break
                due = t0 + n * interval
                if due > now:
                    time.sleep(due - now)
                if proc.poll() is not None:
                    raise RuntimeError(f"watch process exited ({proc.returncode}) during churn: {_tail(stderr_path)}")
                n += 1
                kind = rng.choices(["label", "phase", "add", "remove", "scale"], [40, 20, 15, 15, 10])[0]
                seq = str(n)
                if kind == "label":
                    pod = copy.deepcopy(cluster.random_pod())
                    pod["metadata"]["labels"]["bench-seq"] = seq
                    cluster.pods[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = pod
                    sent[seq] = time.monotonic()
                    emu.update(pod)
                elif kind == "add":
                    rs = cluster.rng.choice(cluster.replicasets)
                    pod = cluster.new_pod(rs, {"bench-seq": seq})
                    sent[seq] = time.monotonic()
                    emu.add(pod)
                elif kind == "phase":
                    pod = copy.deepcopy(cluster.random_pod())
                    st = pod["status"]
                    st["phase"] = "Pending" if st["phase"] == "Running" else "Running"
                    if rng.random() < 0.3:
                        st["containerStatuses"][0]["restartCount"] += 1
                    cluster.pods[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = pod
                    emu.update(pod)
                elif kind == "remove":
                    pod = cluster.random_pod()
                    del cluster.pods[(pod["metadata"]["namespace"], pod["metadata"]["name"])]
                    emu.remove(pod)
                else:
                    dep = cluster.rng.choice(cluster.deployments)
                    dep["spec"]["replicas"] = max(0, dep["spec"]["replicas"] + rng.choice([-1, 1]))
                    emu.update(copy.deepcopy(dep))
                made[kind] += 1
                if time.monotonic() >= next_report:
                    next_report += 10
                    log(f"churn {time.monotonic() - t0:.0f}/{churn_seconds:.0f} s: {n} changes, "
                        f"{sum(1 for k in sent if k in reader.seen)}/{len(sent)} tagged seen, watch cpu "
                        f"{(proc_cpu_s(proc.pid) or 0) - (cpu0 or 0):.1f} s")
            t1 = time.monotonic()
            cpu1 = proc_cpu_s(proc.pid)
            churn_wall = t1 - t0

            # --- drain: give late outputs up to 30 s ---
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(s not in reader.seen for s in sent):
                time.sleep(0.1)
            drain_s = time.monotonic() - t1
            cpu2 = proc_cpu_s(proc.pid)
            time.sleep(0.5)
            lists_all = emu.list_requests()[lists_before_start:]
            watches_all = emu.watch_requests()[watches_before_start:]

            lat = sorted((reader.seen[s] - t) * 1000 for s, t in sent.items() if s in reader.seen)
            lb, la = count_paths(lists_before, starts_only=True), count_paths(lists_all, starts_only=True)
            result.update({
                "list_calls_per_kind": la,
                "list_calls_per_kind_before_churn": lb,
                "list_calls_during_churn": sum(la.values()) - sum(lb.values()),
                "list_pages_per_kind": count_paths(lists_all, starts_only=False),
                "list_calls_target": 1,
                "watch_calls_per_kind": count_paths(watches_all, starts_only=False),
                "watch_calls_before_churn": len(watches_before),
                "watch_calls_during_churn": len(watches_all) - len(watches_before),
                "churn_seconds": round(churn_wall, 1),
                "rate_per_s_target": rate,
                "changes_made": n,
                "changes_by_type": dict(made),
                "rate_per_s_actual": round(n / churn_wall, 2) if churn_wall else None,
                "tagged_changes": len(sent),
                "tagged_seen": sum(1 for s in sent if s in reader.seen),
                "latency_ms": {
                    "p50": _r(percentile(lat, 50)), "p95": _r(percentile(lat, 95)), "max": _r(lat[-1] if lat else None),
                    "mean": _r(statistics.fmean(lat) if lat else None), "target_p95": 200,
                },
                "output_lines_during_churn": reader.lines - lines0,
                "output_lines_per_query": {str(k): v for k, v in sorted(reader.lines_per_query.items(), key=lambda kv: str(kv[0]))},
                "bad_output_lines": reader.bad_lines,
                "cpu_s_during_churn": _r(cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None, 2),
                "cpu_share_during_churn": _r((cpu1 - cpu0) / churn_wall if cpu0 is not None and cpu1 is not None else None, 3),
                "cpu_s_drain": _r(cpu2 - cpu1 if cpu1 is not None and cpu2 is not None else None, 2),
                "drain_s": round(drain_s, 2),
                "watch_rss_mb_end": proc_rss_mb(proc.pid),
                "watch_exit_during_run": proc.poll(),
            })
            warnings = _tail(stderr_path, 5)
            if warnings:
                result["watch_stderr_tail"] = warnings
        finally:
            _terminate(proc)
    return result


def _fmt(xs: list[float]) -> str:
    return f"{xs[-1]:.3f}" if xs else "-"


def _r(x: float | None, nd: int = 1) -> float | None:
    return round(x, nd) if x is not None else None


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------------


def find_tessera(arg: str | None) -> list[str]:
    if arg:
        return [arg]
    local = REPO / ".venv" / "bin" / "tessera"
    if local.exists():
        return [str(local)]
    found = shutil.which("tessera")
    return [found] if found else [sys.executable, "-m", "tessera.cli.main"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--churn-seconds", type=float, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rate", type=float, default=5.0, help="changes per second during the churn")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tessera", help="tessera executable (default: .venv/bin/tessera)")
    ap.add_argument("--ready-timeout", type=float, default=600)
    ap.add_argument("--no-join", action="store_true")
    ap.add_argument("--no-watch", action="store_true")
    args = ap.parse_args()

    for tool in ("kubectl", "jq"):
        if not args.no_join and shutil.which(tool) is None:
            print(f"bench/live.py: {tool} not found on PATH", file=sys.stderr)
            return 2
    tessera = find_tessera(args.tessera)
    out: dict[str, Any] = {
        "bench": "live",
        "pods": args.pods,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "kubectl": _version(["kubectl", "version", "--client"]), "jq": _version(["jq", "--version"])},
        "command": shlex.join([sys.executable, *sys.argv]),
        "git": _git_state(),
    }
    with tempfile.TemporaryDirectory(prefix="tessera-live-") as tmp:
        workdir = Path(tmp)
        env = dict(os.environ, HOME=str(workdir), KUBECACHEDIR=str(workdir / "kubecache"), NO_COLOR="1")
        env.pop("KUBECONFIG", None)
        emu = Emulator()
        try:
            cluster = Cluster(args.seed)
            cluster.generate(args.pods)
            t = time.monotonic()
            n = load(emu, cluster)
            log(f"emulator {emu.url}: {n} objects ({len(cluster.deployments)} deployments, "
                f"{len(cluster.replicasets) + len(cluster.old_replicasets)} replicasets, {len(cluster.pods)} pods, "
                f"{len(cluster.services)} services, {len(cluster.nodes)} nodes) in {time.monotonic() - t:.1f} s")
            out["objects"] = n
            kubeconfig = write_kubeconfig(workdir / "kubeconfig", {"emu": (emu.url, "default")}, current="emu")
            if not args.no_join:
                log(f"join: {args.repeat} runs each")
                out["join"] = bench_join(tessera, kubeconfig, workdir, args.repeat, env)
                out["join"]["met"] = bool(out["join"]["rows_equal"] and out["join"]["ratio"] is not None
                                          and out["join"]["ratio"] <= 1.0)
            if not args.no_watch:
                log(f"watch: 8 queries, {args.churn_seconds:.0f} s of churn at {args.rate}/s")
                try:
                    w = bench_watch(tessera, emu, cluster, kubeconfig, workdir, args.churn_seconds, args.rate, env,
                                    args.ready_timeout)
                    w["met"] = {
                        "list_calls_1_each": bool(w["list_calls_per_kind"]) and all(v == 1 for v in w["list_calls_per_kind"].values()),
                        "latency_p95": w["latency_ms"]["p95"] is not None and w["latency_ms"]["p95"] <= 200,
                        "all_tagged_seen": w["tagged_seen"] == w["tagged_changes"],
                    }
                    out["watch"] = w
                except Exception as exc:  # noqa: BLE001 - report and still print the JSON
                    log(f"watch failed: {exc}")
                    out["watch"] = {"error": str(exc)}
        finally:
            emu.close()
    print(json.dumps(out))
    return 0


def _git_state() -> dict[str, Any] | None:
    """HEAD and the locally modified files (read-only git calls): what Tessera code was measured."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=20).stdout.strip()
        status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=20).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"head": head or None, "modified": [line[3:] for line in status]}


def _version(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


if __name__ == "__main__":
    sys.exit(main())
