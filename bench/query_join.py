#!/usr/bin/env python3
"""Benchmark: a three-kind ownership join, Tessera versus an equivalent jq program.

Generates kubectl-style cluster dumps (what ``kubectl get deploy,rs,pods,svc -A -o json``
prints) with 1k / 10k / 100k pods into a temporary directory, each twice: realistic (about 8 KB
a pod) and compact (the same cluster as a lean listing, about 0.9 KB a pod), then times, as the
wall time of the whole subprocess (median of N runs):

    tessera query -s dump.json -o json \
        'MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) RETURN d.metadata.name AS deployment, COUNT{p} AS pods'

against a jq program computing the same answer from the same file, checks the answers agree, and
prints one JSON object per line on stdout (per size, start-up, targets). Progress goes to stderr.

Usage:
    python bench/query_join.py [--sizes 1000,10000,100000] [--runs N] [--tessera PATH]

See bench/README.md for the targets and how to read the output.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

QUERY = (
    "MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) "
    "RETURN d.metadata.name AS deployment, COUNT{p} AS pods"
)
SMALL_QUERY = QUERY

# The same answer as QUERY, computed by jq. Tessera's rules: Deployment->ReplicaSet when a
# ReplicaSet's metadata.ownerReferences[].name equals the Deployment's name in the same namespace;
# ReplicaSet->Pod likewise. Cypher groups implicitly by the non-aggregate item, the deployment
# NAME, so same-named deployments in different namespaces add up into one row, and only
# deployments with at least one (rs, pod) match appear.
JQ_PROGRAM = r"""
.items as $items
# pods per "namespace/owner name" (each distinct owner name of a pod counts once)
| (reduce ($items[] | select(.kind == "Pod")
           | .metadata.namespace as $ns
           | [.metadata.ownerReferences[]?.name] | unique[] | $ns + "/" + .
          ) as $k ({}; .[$k] += 1)) as $pods_by_owner
# the set of "namespace/name" of deployments
| (reduce ($items[] | select(.kind == "Deployment") | .metadata.namespace + "/" + .metadata.name) as $k
      ({}; .[$k] = true)) as $deployments
# one {deployment, pods} per (replicaset with pods, owning deployment in its namespace)
| [ $items[] | select(.kind == "ReplicaSet")
    | .metadata.namespace as $ns
    | ($pods_by_owner[$ns + "/" + .metadata.name] // 0) as $n
    | select($n > 0)
    | [.metadata.ownerReferences[]?.name] | unique[]
    | select($deployments[$ns + "/" + .])
    | {deployment: ., pods: $n} ]
# Cypher groups by the deployment name alone
| group_by(.deployment)
| map({deployment: .[0].deployment, pods: (map(.pods) | add)})
"""

NAMESPACES = [
    "default", "payments", "checkout", "catalog", "identity",
    "search", "observability", "ingress", "data", "platform",
]
APPS = [
    "api", "web", "worker", "cart", "orders", "billing", "auth", "search", "indexer", "gateway",
    "notifier", "scheduler", "reports", "profile", "inventory", "shipping", "pricing", "ledger",
    "metrics", "cache",
]
IMAGES = {
    "api": "ghcr.io/acme/api", "web": "nginx", "worker": "ghcr.io/acme/worker",
    "cache": "redis", "metrics": "prom/prometheus",
}
NODES = [f"ip-10-0-{i // 16}-{(i * 37) % 250 + 2}.eu-west-1.compute.internal" for i in range(60)]
ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated suffixes


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------


class Gen:
    """Deterministic generator of kubectl-style objects."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.base = datetime(2024, 3, 1, 8, 0, 0, tzinfo=timezone.utc)
        self.rv = 100000

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def suffix(self, n: int) -> str:
        return "".join(self.rng.choice(ALNUM) for _ in range(n))

    def ts(self, after: datetime | None = None, max_s: int = 86400 * 60) -> str:
        t = (after or self.base) + timedelta(seconds=self.rng.randrange(1, max_s))
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    def resource_version(self) -> str:
        self.rv += self.rng.randrange(1, 50)
        return str(self.rv)


def _parse_ts(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _template_hash(dep_uid: str, generation: int) -> str:
    h = hashlib.sha1(f"{dep_uid}/{generation}".encode()).hexdigest()
    return "".join(ALNUM[int(h[i : i + 2], 16) % len(ALNUM)] for i in range(0, 20, 2))


def _container(g: Gen, app: str, version: str) -> dict[str, Any]:
    cpu = g.rng.choice(["50m", "100m", "250m", "500m", "1"])
    mem = g.rng.choice(["64Mi", "128Mi", "256Mi", "512Mi", "1Gi"])
    port = g.rng.choice([8080, 8000, 3000, 9090])
    return {
        "name": app,
        "image": f"{IMAGES.get(app, 'ghcr.io/acme/' + app)}:{version}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": g.rng.choice(["info", "debug", "warn"])},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        ],
        "resources": {
            "requests": {"cpu": cpu, "memory": mem},
            "limits": {"memory": mem} if g.rng.random() < 0.6 else {"cpu": cpu, "memory": mem},
        },
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
            "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 1,
            "successThreshold": 1, "failureThreshold": 3,
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def generate(n_pods: int, seed: int = 42) -> dict[str, Any]:
    """A kubectl List with about n_pods pods (exactly n_pods) plus their owners and services.

    Shape: replicas drawn around 10 per Deployment (one live ReplicaSet each; about a third also
    keep an old ReplicaSet scaled to 0; a few deployments are scaled to 0), one Service per
    Deployment, ten namespaces, a few bare pods with no owner. Some deployment names recur in
    several namespaces (to exercise grouping by name). Order follows kubectl: deployments,
    replicasets, pods, services.
    """
    g = Gen(seed * 1_000_003 + n_pods)
    rng = g.rng
    deployments: list[dict] = []
    replicasets: list[dict] = []
    pods: list[dict] = []
    services: list[dict] = []

    bare = max(1, n_pods // 500)  # standalone pods (debug shells, jobs run by hand): no owner
    owned_target = n_pods - bare
    owned = 0
    j = 0
    while owned < owned_target:
        ns = NAMESPACES[j % len(NAMESPACES)]
        b = j // len(NAMESPACES)
        app = APPS[b % len(APPS)]
        # every fourth index reuses the same name across namespaces; the rest are unique
        name = f"{app}-{b}" if b % 4 == 0 else f"{app}-{b}-{ns[:4]}"
        j += 1
        r = rng.random()
        replicas = 0 if r < 0.03 else rng.randint(3, 17)
        replicas = min(replicas, owned_target - owned)
        owned += replicas
        version = f"1.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
        labels = {"app": name, "app.kubernetes.io/name": app, "app.kubernetes.io/part-of": ns, "tier": rng.choice(["frontend", "backend"])}
        dep_uid = g.uid()
        dep_created = g.ts()
        generation = rng.randint(1, 6)
        container = _container(g, app, version)
        template = {
            "metadata": {"creationTimestamp": None, "labels": dict(labels)},
            "spec": {
                "containers": [container],
                "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "serviceAccountName": "default",
                "terminationGracePeriodSeconds": 30,
            },
        }
        deployments.append({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "annotations": {"deployment.kubernetes.io/revision": str(generation)},
                "creationTimestamp": dep_created,
                "generation": generation,
                "labels": dict(labels),
                "name": name,
                "namespace": ns,
                "resourceVersion": g.resource_version(),
                "uid": dep_uid,
            },
            "spec": {
                "progressDeadlineSeconds": 600,
                "replicas": replicas,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": name}},
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
                "template": template,
            },
            "status": {
                "availableReplicas": replicas,
                "observedGeneration": generation,
                "readyReplicas": replicas,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                     "lastTransitionTime": dep_created, "lastUpdateTime": dep_created,
                     "message": "Deployment has minimum availability."},
                ],
            } if replicas else {"observedGeneration": generation},
        })
        services.append({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "creationTimestamp": dep_created,
                "labels": dict(labels),
                "name": name,
                "namespace": ns,
                "resourceVersion": g.resource_version(),
                "uid": g.uid(),
            },
            "spec": {
                "clusterIP": f"10.96.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
                "selector": {"app": name},
                "sessionAffinity": "None",
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        })
        revisions = [(generation, replicas)]
        if generation > 1 and rng.random() < 0.35:
            revisions.insert(0, (generation - 1, 0))  # old ReplicaSet kept at 0 replicas
        for rev, rs_replicas in revisions:
            pth = _template_hash(dep_uid, rev)
            rs_name = f"{name}-{pth}"
            rs_uid = g.uid()
            rs_created = g.ts(_parse_ts(dep_created), 86400 * 10)
            rs_labels = {**labels, "pod-template-hash": pth}
            rs_template = json.loads(json.dumps(template))
            rs_template["metadata"]["labels"]["pod-template-hash"] = pth
            replicasets.append({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                        "deployment.kubernetes.io/max-replicas": str(replicas + max(1, replicas // 4)),
                        "deployment.kubernetes.io/revision": str(rev),
                    },
                    "creationTimestamp": rs_created,
                    "generation": 1,
                    "labels": rs_labels,
                    "name": rs_name,
                    "namespace": ns,
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
                        "kind": "Deployment", "name": name, "uid": dep_uid,
                    }],
                    "resourceVersion": g.resource_version(),
                    "uid": rs_uid,
                },
                "spec": {
                    "replicas": rs_replicas,
                    "selector": {"matchLabels": {"app": name, "pod-template-hash": pth}},
                    "template": rs_template,
                },
                "status": {
                    "availableReplicas": rs_replicas, "fullyLabeledReplicas": rs_replicas,
                    "observedGeneration": 1, "readyReplicas": rs_replicas, "replicas": rs_replicas,
                } if rs_replicas else {"observedGeneration": 1, "replicas": 0},
            })
            for _ in range(rs_replicas):
                pods.append(_pod(g, ns, rs_name, rs_uid, rs_labels, container, rs_created))

    for i in range(bare):
        ns = NAMESPACES[i % len(NAMESPACES)]
        c = _container(g, "debug", "latest")
        pods.append(_pod(g, ns, None, None, {"run": f"debug-{i}"}, c, g.ts(), name=f"debug-{i}"))

    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": deployments + replicasets + pods + services,
        "metadata": {"resourceVersion": ""},
    }


def _pod(g: Gen, ns: str, rs_name: str | None, rs_uid: str | None, labels: dict, container: dict,
         after: str, name: str | None = None) -> dict[str, Any]:
    rng = g.rng
    created = g.ts(_parse_ts(after), 86400 * 5)
    started = (_parse_ts(created) + timedelta(seconds=rng.randrange(1, 30))).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = rng.random()
    phase = "Running" if r < 0.96 else ("Pending" if r < 0.985 else "Failed")
    ready = phase == "Running"
    restarts = 0 if rng.random() < 0.8 else rng.randint(1, 40)
    meta: dict[str, Any] = {
        "creationTimestamp": created,
        "labels": dict(labels),
        "name": name or f"{rs_name}-{g.suffix(5)}",
        "namespace": ns,
        "resourceVersion": g.resource_version(),
        "uid": g.uid(),
    }
    if rs_name:
        meta["generateName"] = f"{rs_name}-"
        meta["ownerReferences"] = [{
            "apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
            "kind": "ReplicaSet", "name": rs_name, "uid": rs_uid,
        }]
    state = ({"running": {"startedAt": started}} if ready else
             {"waiting": {"reason": "ContainerCreating"}} if phase == "Pending" else
             {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": started, "finishedAt": started}})
    node = rng.choice(NODES)
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": created},
            {"type": "Ready", "status": "True" if ready else "False", "lastProbeTime": None, "lastTransitionTime": started},
            {"type": "ContainersReady", "status": "True" if ready else "False", "lastProbeTime": None, "lastTransitionTime": started},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": created},
        ],
        "hostIP": f"10.0.{rng.randrange(4)}.{rng.randrange(2, 250)}",
        "qosClass": "Burstable",
        "startTime": created,
    }
    if phase != "Pending":
        status["podIP"] = f"10.244.{rng.randrange(256)}.{rng.randrange(2, 255)}"
        status["podIPs"] = [{"ip": status["podIP"]}]
    status["containerStatuses"] = [{
        "name": container["name"],
        "image": container["image"],
        "imageID": f"{container['image'].split(':')[0]}@sha256:{hashlib.sha256(container['image'].encode()).hexdigest()}",
        "containerID": f"containerd://{rng.getrandbits(256):064x}" if phase != "Pending" else None,
        "ready": ready,
        "restartCount": restarts,
        "started": ready,
        "state": state,
        "lastState": {},
    }]
    if status["containerStatuses"][0]["containerID"] is None:
        del status["containerStatuses"][0]["containerID"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "containers": [container],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "nodeName": node,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": "default",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
            ],
        },
        "status": status,
    }


def compact(doc: dict) -> dict:
    """The same cluster as a lean listing (about 0.9 KB a pod as written): each object keeps its
    identity (apiVersion, kind, name, namespace, uid, labels, ownerReferences, creation time),
    selectors, replica counts, a pod's node, containers' names and images, phase and IP; pod
    templates, probes, environment, tolerations, conditions and container statuses go. The join
    and its answer are the same; only the bytes to read and parse shrink."""
    keep_meta = ("creationTimestamp", "labels", "name", "namespace", "ownerReferences", "resourceVersion", "uid")
    items = []
    for o in doc["items"]:
        meta = {k: v for k, v in o["metadata"].items() if k in keep_meta}
        spec, status = o.get("spec") or {}, o.get("status") or {}
        if o["kind"] == "Pod":
            spec = {"containers": [{"name": c["name"], "image": c["image"]} for c in spec["containers"]],
                    "nodeName": spec.get("nodeName")}
            status = {k: status[k] for k in ("phase", "podIP") if k in status}
        elif o["kind"] == "Service":
            spec = {k: spec[k] for k in ("selector", "type") if k in spec}
            status = {}
        else:
            spec = {k: spec[k] for k in ("replicas", "selector") if k in spec}
            status = {k: status[k] for k in ("replicas",) if k in status}
        items.append({"apiVersion": o["apiVersion"], "kind": o["kind"], "metadata": meta, "spec": spec,
                      "status": status})
    return {**doc, "items": items}


def write_dump(doc: dict, path: Path, *, indent: int | None = 4) -> None:
    # kubectl -o json indents by four spaces; the compact dump is written without whitespace
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=indent, separators=None if indent else (",", ":"))
        f.write("\n")


def expected_answer(doc: dict) -> list[dict]:
    """The reference answer in Python (a cross-check of the jq program)."""
    pods_by_owner: dict[tuple[str, str], int] = {}
    deps: set[tuple[str, str]] = set()
    for o in doc["items"]:
        ns = o["metadata"].get("namespace")
        if o["kind"] == "Pod":
            for owner in {r["name"] for r in o["metadata"].get("ownerReferences", [])}:
                pods_by_owner[(ns, owner)] = pods_by_owner.get((ns, owner), 0) + 1
        elif o["kind"] == "Deployment":
            deps.add((ns, o["metadata"]["name"]))
    out: dict[str, int] = {}
    for o in doc["items"]:
        if o["kind"] != "ReplicaSet":
            continue
        ns = o["metadata"].get("namespace")
        n = pods_by_owner.get((ns, o["metadata"]["name"]), 0)
        if not n:
            continue
        for owner in {r["name"] for r in o["metadata"].get("ownerReferences", [])}:
            if (ns, owner) in deps:
                out[owner] = out.get(owner, 0) + n
    return normalize([{"deployment": k, "pods": v} for k, v in out.items()])


# ---------------------------------------------------------------------------------------------
# Running and checking
# ---------------------------------------------------------------------------------------------


def normalize(rows: Any) -> list[dict] | None:
    """Rows as a sorted list of {deployment, pods}; None when the shape is not recognised."""
    if isinstance(rows, dict):
        for key in ("rows", "results", "data", "items"):
            if isinstance(rows.get(key), list):
                rows = rows[key]
                break
    if not isinstance(rows, list):
        return None
    out = []
    for r in rows:
        if not isinstance(r, dict) or "deployment" not in r or "pods" not in r:
            return None
        pods = r["pods"]
        if isinstance(pods, float) and pods.is_integer():
            pods = int(pods)
        out.append({"deployment": r["deployment"], "pods": pods})
    return sorted(out, key=lambda r: (str(r["deployment"]), str(r["pods"])))


class RunError(Exception):
    pass


def run_once(cmd: list[str], timeout: float) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunError(f"timed out after {timeout:.0f}s") from None
    except OSError as e:
        raise RunError(str(e)) from None
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise RunError(f"exit {p.returncode}: {err[-1] if err else '(no stderr)'}")
    return dt, p.stdout


def timed(cmd: list[str], runs: int, timeout: float, label: str) -> tuple[float | None, bytes | None, str | None]:
    """Median wall time over runs, the first run's stdout, and an error message (or None)."""
    times: list[float] = []
    out: bytes | None = None
    for i in range(runs):
        try:
            dt, stdout = run_once(cmd, timeout)
        except RunError as e:
            log(f"  {label}: run {i + 1} failed: {e}")
            return None, out, str(e)
        times.append(dt)
        if out is None:
            out = stdout
        log(f"  {label}: run {i + 1}/{runs} {dt:.3f}s")
    return statistics.median(times), out, None


def parse_json(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        # tolerate JSON lines
        try:
            return [json.loads(line) for line in data.splitlines() if line.strip()]
        except ValueError:
            return None


def find_tessera(arg: str | None) -> str | None:
    if arg:
        p = Path(arg)
        return str(p) if p.exists() else shutil.which(arg)
    venv = REPO / ".venv" / "bin" / "tessera"
    if venv.exists():
        return str(venv)
    return shutil.which("tessera")


def rnd(x: float | None, n: int = 4) -> float | None:
    return None if x is None else round(x, n)


DUMPS = ("realistic", "compact")  # each size is timed over both, in the same run
RATIO_TARGETS = {"realistic": 0.5, "compact": 1.0}  # Tessera's time over jq's at 10k pods, at most


def bench_size(n: int, runs: int, workdir: Path, tessera: str, jq: str, jq_prog: Path,
               timeout: float, seed: int, check_python: bool, keep: bool = False,
               dump: str = "realistic") -> dict[str, Any]:
    log(f"[{n} pods, {dump}] generating ...")
    t0 = time.perf_counter()
    doc = generate(n, seed)
    path = workdir / (f"dump-{n}.json" if dump == "realistic" else f"dump-{n}-{dump}.json")
    if dump == "compact":
        doc = compact(doc)
        write_dump(doc, path, indent=None)
    else:
        write_dump(doc, path)
    n_objects = len(doc["items"])
    n_pods = sum(1 for o in doc["items"] if o["kind"] == "Pod")
    file_mb = path.stat().st_size / 1e6
    reference = expected_answer(doc) if check_python else None
    del doc
    log(f"[{n} pods, {dump}] {n_objects} objects, {file_mb:.1f} MB, generated in {time.perf_counter() - t0:.1f}s")

    t_med, t_out, t_err = timed([tessera, "query", "-s", str(path), "-o", "json", QUERY], runs, timeout, "tessera")
    j_med, j_out, j_err = timed([jq, "-c", "-f", str(jq_prog), str(path)], runs, timeout, "jq")

    t_rows = normalize(parse_json(t_out)) if t_err is None else None
    j_rows = normalize(parse_json(j_out)) if j_err is None else None
    match = t_rows is not None and j_rows is not None and t_rows == j_rows
    result: dict[str, Any] = {
        "dump": dump,
        "pods": n_pods,
        "objects": n_objects,
        "file_mb": round(file_mb, 2),
        "kb_per_pod": round(file_mb * 1000 / n_pods, 2) if n_pods else None,
        "tessera_median_s": rnd(t_med),
        "jq_median_s": rnd(j_med),
        "ratio": rnd(t_med / j_med, 3) if t_med is not None and j_med else None,
        "answers_match": match,
        "runs": runs,
        "rows": len(j_rows) if j_rows is not None else None,
    }
    if reference is not None and j_rows is not None and reference != j_rows:
        log(f"[{n} pods, {dump}] WARNING: jq answer differs from the Python reference")
        result["jq_matches_reference"] = False
    if t_err:
        result["tessera_error"] = t_err
    elif t_rows is None:
        result["tessera_error"] = "unrecognised output: " + (t_out or b"").decode(errors="replace")[:200]
    if j_err:
        result["jq_error"] = j_err
    if not match and t_rows is not None and j_rows is not None:
        tk = {r["deployment"]: r["pods"] for r in t_rows}
        jk = {r["deployment"]: r["pods"] for r in j_rows}
        diff = [k for k in sorted(set(tk) | set(jk)) if tk.get(k) != jk.get(k)]
        log(f"[{n} pods, {dump}] answers differ on {len(diff)} deployments, e.g. "
            + ", ".join(f"{k}: tessera={tk.get(k)} jq={jk.get(k)}" for k in diff[:5]))
    if not keep:
        path.unlink(missing_ok=True)
    return result


def small_items(seed: int) -> list[dict]:
    """Ten objects: one Deployment, its live ReplicaSet, seven of its pods and its Service."""
    doc = generate(200, seed)
    by_kind: dict[str, list[dict]] = {}
    for o in doc["items"]:
        by_kind.setdefault(o["kind"], []).append(o)
    for d in by_kind["Deployment"]:
        if d["spec"]["replicas"] < 7:
            continue
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        rs = next(r for r in by_kind["ReplicaSet"] if r["metadata"]["namespace"] == ns
                  and r["metadata"]["ownerReferences"][0]["name"] == name and r["spec"]["replicas"])
        rsn = rs["metadata"]["name"]
        pods = [p for p in by_kind["Pod"] if p["metadata"]["namespace"] == ns
                and p["metadata"].get("ownerReferences", [{}])[0].get("name") == rsn][:7]
        svc = next(s for s in by_kind["Service"] if s["metadata"]["namespace"] == ns and s["metadata"]["name"] == name)
        return [d, rs, *pods, svc]
    raise RuntimeError("no deployment with 7 replicas")


DEMO_ONE_ROW_QUERY = 'MATCH (n:Namespace {name:"shop"}) RETURN n.metadata.name'
STARTUP_TARGET_S = 0.15
KUBECTL_RATIO_TARGET = 2.0  # start-up at most twice kubectl's (a Go binary) on the same machine, same run


def bench_startup(runs: int, workdir: Path, tessera: str, timeout: float, seed: int) -> dict[str, Any]:
    """Median wall times of ``tessera --version``, a one-row ``-s demo`` query, the same query as
    the size benches over a 10-object file, and ``kubectl version --client``, their runs
    interleaved (one of each per round) so that load changing during the run hits all alike."""
    import os

    log("[startup] ...")
    items = small_items(seed)
    small = workdir / "small.json"
    write_dump({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}, small)
    kubectl = shutil.which("kubectl") or ("/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None)
    commands = {
        "tessera_version": [tessera, "--version"],
        "demo_query": [tessera, "query", "-s", "demo", DEMO_ONE_ROW_QUERY, "-o", "json"],
        "small_query": [tessera, "query", "-s", str(small), "-o", "json", SMALL_QUERY],
    }
    if kubectl:
        commands["kubectl_version"] = [kubectl, "version", "--client"]
    times: dict[str, list[float]] = {name: [] for name in commands}
    errors: dict[str, str] = {}
    for round_no in range(runs + 1):  # round 0 warms the page cache (and writes .pyc files) and is not counted
        for name, cmd in commands.items():
            if name in errors:
                continue
            try:
                dt, _ = run_once(cmd, timeout)
            except RunError as e:
                log(f"  {name}: run {round_no} failed: {e}")
                errors[name] = str(e)
                continue
            if round_no:
                times[name].append(dt)
        log(f"  round {round_no}/{runs}: " + ", ".join(f"{n} {t[-1]:.3f}s" for n, t in times.items() if t and round_no))

    def median(name: str) -> float | None:
        return statistics.median(times[name]) if times.get(name) and name not in errors else None

    kubectl_s = median("kubectl_version")

    def over_kubectl(name: str) -> float | None:
        value = median(name)
        return round(value / kubectl_s, 2) if value is not None and kubectl_s else None

    version_ratio, demo_ratio = over_kubectl("tessera_version"), over_kubectl("demo_query")
    out: dict[str, Any] = {
        "bench": "startup",
        "tessera_version_median_s": rnd(median("tessera_version")),
        "demo_query_median_s": rnd(median("demo_query")),
        "small_query_median_s": rnd(median("small_query")),
        "kubectl_version_median_s": rnd(kubectl_s),
        "version_over_kubectl": version_ratio,
        "demo_query_over_kubectl": demo_ratio,
        "kubectl_ratio_target": KUBECTL_RATIO_TARGET,
        "met_kubectl_ratio": {
            "version": None if version_ratio is None else version_ratio <= KUBECTL_RATIO_TARGET,
            "demo_query": None if demo_ratio is None else demo_ratio <= KUBECTL_RATIO_TARGET,
        },
        "small_objects": len(items),
        "runs": runs,
        "target_s": STARTUP_TARGET_S,
    }
    if not kubectl:
        out["kubectl_error"] = "kubectl not found on PATH or at /usr/bin/kubectl"
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # every run would compile tessera's modules again: not what an installed tessera does
        out["warning"] = "PYTHONDONTWRITEBYTECODE is set: tessera's .pyc files are not written, so every run recompiles"
    for name, message in errors.items():
        out[f"{name.removeprefix('tessera_')}_error"] = message
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="pod counts, comma-separated")
    ap.add_argument("--runs", type=int, default=None,
                    help="runs per measurement (default: 5, or 3 for sizes >= 100000)")
    ap.add_argument("--tessera", default=None, help="tessera executable")
    ap.add_argument("--jq", default="jq", help="jq executable")
    ap.add_argument("--timeout", type=float, default=900.0, help="per-run timeout in seconds")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--keep", metavar="DIR", default=None, help="write dumps here and keep them")
    ap.add_argument("--no-startup", action="store_true", help="skip the start-up bench")
    ap.add_argument("--no-python-check", action="store_true",
                    help="skip cross-checking the jq program against a Python reference")
    args = ap.parse_args(argv)

    try:
        sizes = [int(s.replace("_", "").strip().lower().replace("k", "000")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        print(f"query_join: bad --sizes {args.sizes!r}", file=sys.stderr)
        return 2
    tessera = find_tessera(args.tessera)
    if not tessera:
        print("query_join: tessera not found (use --tessera PATH, or install it into .venv)", file=sys.stderr)
        return 2
    jq = shutil.which(args.jq) or (args.jq if Path(args.jq).exists() else None)
    if not jq:
        print(f"query_join: jq not found ({args.jq})", file=sys.stderr)
        return 2
    log(f"tessera: {tessera}\njq: {jq}")

    results: dict[tuple[int, str], dict] = {}
    startup: dict[str, Any] | None = None
    tmp = None
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tessera-bench-")
        workdir = Path(tmp.name)
    try:
        jq_prog = workdir / "join.jq"
        jq_prog.write_text(JQ_PROGRAM)
        for n in sizes:
            runs = args.runs if args.runs else (3 if n >= 100_000 else 5)
            for dump in DUMPS:
                r = bench_size(n, runs, workdir, tessera, jq, jq_prog, args.timeout, args.seed,
                               not args.no_python_check, keep=bool(args.keep), dump=dump)
                results[(n, dump)] = r
                print(json.dumps(r), flush=True)
        if not args.no_startup:
            startup = bench_startup(args.runs or 10, workdir, tessera, args.timeout, args.seed)
            print(json.dumps(startup), flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()

    r10k = results.get((10_000, "realistic"))
    c10k = results.get((10_000, "compact"))
    r100k = results.get((100_000, "realistic"))
    ratio_10k = r10k.get("ratio") if r10k else None
    compact_ratio_10k = c10k.get("ratio") if c10k else None
    t10 = r10k.get("tessera_median_s") if r10k else None
    t100 = r100k.get("tessera_median_s") if r100k else None
    scale = round(t100 / t10, 2) if t10 and t100 else None
    startup_v = startup.get("tessera_version_median_s") if startup else None
    startup_q = startup.get("small_query_median_s") if startup else None

    def ok(value: float | None, target: float) -> bool | None:
        return None if value is None else value <= target

    summary = {
        "bench": "targets",
        "ratio_at_10k": ratio_10k,
        "ratio_target": RATIO_TARGETS["realistic"],
        "compact_ratio_at_10k": compact_ratio_10k,
        "compact_ratio_target": RATIO_TARGETS["compact"],
        "scale_100k_over_10k": scale,
        "scale_target": 12,
        "startup_target_s": STARTUP_TARGET_S,
        "startup_kubectl_ratio_target": KUBECTL_RATIO_TARGET,
        "met": {
            "ratio_at_10k": (ok(ratio_10k, RATIO_TARGETS["realistic"]) if r10k and r10k.get("answers_match")
                             else (False if r10k else None)),
            "compact_ratio_at_10k": (ok(compact_ratio_10k, RATIO_TARGETS["compact"]) if c10k and c10k.get("answers_match")
                                     else (False if c10k else None)),
            "scale_100k_over_10k": ok(scale, 12),
            "startup_version": ok(startup_v, STARTUP_TARGET_S),
            "startup_small_query": ok(startup_q, STARTUP_TARGET_S),
            "startup_version_vs_kubectl": startup.get("met_kubectl_ratio", {}).get("version") if startup else None,
            "startup_demo_query_vs_kubectl": startup.get("met_kubectl_ratio", {}).get("demo_query") if startup else None,
            "answers_match": all(r.get("answers_match") for r in results.values()) if results else None,
        },
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
