"""Writes the bundled demo recording: python tools/demo/record_demo.py [--out PATH]

The recording starts from the demo cluster (plugins/sources/demo_data/*.yaml) at 2026-11-01T09:00:00Z
and plays about ten minutes of churn, every step 1-10 s apart:

- shop/frontend rolls out image 2.15.0: a new ReplicaSet, its pods created one by one (surge 1,
  unavailable 0), each old pod terminated once a new one is Ready, the old ReplicaSet scaled to 0;
- payments/ledger-246hsqj64q-hxgl8 starts crash-looping (restartCount climbing, kubelet back-off
  10 s, 20 s, 40 s...);
- the payments-api HorizontalPodAutoscaler scales its Deployment from 2 to 4 replicas under load,
  then back to 2;
- the frontend and checkout autoscalers report fresh CPU figures every 6-10 s.

ReplicaSet, Deployment and Endpoints statuses follow the pods they own or select. The output is
byte-identical on every run: a fixed seed, fixed times, and gzip with no name and mtime 0.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import heapq
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from tessera.core.recording_file import RecordingWriter, format_time
from tessera.plugins.sources.manifests import ManifestSource

DEMO_DATA = Path(__file__).resolve().parents[2] / "plugins" / "sources" / "demo_data"
DEFAULT_OUT = DEMO_DATA / "recording.jsonl.gz"
START = datetime(2026, 11, 1, 9, 0, 0, tzinfo=timezone.utc)
DURATION = 600.0  # seconds of churn after the initial state
SEED = 20261101
NODES = ["node-a", "node-b", "node-c"]
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

Obj = dict[str, Any]
# A scenario is a generator: it performs one step each time it is resumed and yields the seconds
# to wait before its next step.
Scenario = Iterator[float]


def _uid(*parts: str) -> str:
    h = hashlib.sha1("/".join(("recording",) + parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _hash(text: str, n: int) -> str:
    digest = hashlib.sha1(text.encode()).digest()
    return "".join(ALPHABET[b % len(ALPHABET)] for b in digest[:n])


def _owner_ref(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _condition(obj: Obj, type_: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def _ready(pod: Obj) -> bool:
    cond = _condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True") and not pod["metadata"].get("deletionTimestamp")


class Cluster:
    """The simulated cluster: the objects, the clock, and the writer every change goes to."""

    def __init__(self, writer: RecordingWriter, objects: list[Obj], rng: random.Random):
        self.writer = writer
        self.rng = rng
        self.t = START
        self.rv = 48_210
        self.ip = 100
        self.objects: dict[tuple[str, str, str], Obj] = {}
        for obj in objects:
            obj = copy.deepcopy(obj)
            meta = obj["metadata"]
            if obj["kind"] in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
                meta.setdefault("generation", (obj.get("status") or {}).get("observedGeneration") or 1)
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            self.objects[self._key(obj)] = obj
            writer.write("ADDED", obj, START)

    @staticmethod
    def _key(obj: Obj) -> tuple[str, str, str]:
        meta = obj["metadata"]
        return obj["kind"], meta.get("namespace") or "", meta["name"]

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        """The live object (mutate it, then call emit)."""
        return self.objects[(kind, namespace, name)]

    def of_kind(self, kind: str, namespace: str) -> list[Obj]:
        """Objects of a kind in a namespace, in creation order."""
        return [o for (k, ns, _), o in self.objects.items() if k == kind and ns == namespace]

    def now(self) -> str:
        """The simulated time as written in objects."""
        return format_time(self.t).replace(".000Z", "Z")

    def emit(self, type_: str, obj: Obj) -> None:
        """Record a change to ``obj`` at the current time, with a new resourceVersion."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = self._key(obj)
        if type_ == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.writer.write(type_, obj, self.t)

    def next_ip(self) -> str:
        self.ip += 1
        return f"10.244.1.{self.ip}"

    # --- controllers: statuses that follow the pods -------------------------------------

    def pods_of(self, rs: Obj) -> list[Obj]:
        uid = rs["metadata"]["uid"]
        return [
            p
            for p in self.of_kind("Pod", rs["metadata"]["namespace"])
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
        ]

    def replicasets_of(self, deploy: Obj) -> list[Obj]:
        uid = deploy["metadata"]["uid"]
        return [
            rs
            for rs in self.of_kind("ReplicaSet", deploy["metadata"]["namespace"])
            if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or [])
        ]

    def sync_rs(self, rs: Obj) -> None:
        """Recompute a ReplicaSet's status from its (non-terminating) pods; emit if it changed."""
        pods = [p for p in self.pods_of(rs) if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in pods if _ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if {k: v for k, v in (rs.get("status") or {}).items() if k in status} != status:
            rs["status"] = {**(rs.get("status") or {}), **status}
            self.emit("MODIFIED", rs)

    def sync_deployment(self, deploy: Obj, new_rs: Obj | None = None) -> None:
        """Recompute a Deployment's status from its ReplicaSets; emit if it changed."""
        sets = self.replicasets_of(deploy)
        new_rs = new_rs or max(sets, key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))
        want = deploy["spec"]["replicas"]
        replicas = sum((rs.get("status") or {}).get("replicas", 0) for rs in sets)
        ready = sum((rs.get("status") or {}).get("readyReplicas", 0) for rs in sets)
        updated = (new_rs.get("status") or {}).get("replicas", 0)
        status: Obj = {
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": updated,
            "observedGeneration": deploy["metadata"]["generation"],
        }
        if want - ready > 0:
            status["unavailableReplicas"] = want - ready
        done = updated == want and replicas == want
        status["conditions"] = [
            {
                "type": "Available",
                "status": "True" if ready >= want - (want // 4) else "False",
                "reason": "MinimumReplicasAvailable" if ready >= want - (want // 4) else "MinimumReplicasUnavailable",
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                "message": f'ReplicaSet "{new_rs["metadata"]["name"]}" '
                + ("has successfully progressed." if done else "is progressing."),
            },
        ]
        if deploy.get("status") != status:
            deploy["status"] = status
            self.emit("MODIFIED", deploy)

    def sync_endpoints(self, namespace: str) -> None:
        """Recompute Endpoints of services whose pods changed; emit those that differ."""
        pods = self.of_kind("Pod", namespace)
        for svc in self.of_kind("Service", namespace):
            selector = (svc.get("spec") or {}).get("selector")
            key = ("Endpoints", namespace, svc["metadata"]["name"])
            if not selector or key not in self.objects:
                continue
            ep = self.objects[key]
            chosen = [
                p
                for p in pods
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                and not p["metadata"].get("deletionTimestamp")
                and (p.get("status") or {}).get("podIP")
            ]
            ready = [_address(p) for p in chosen if _ready(p)]
            not_ready = [_address(p) for p in chosen if not _ready(p)]
            subsets = ep.get("subsets") or [{}]
            old = subsets[0]
            if _ips(old.get("addresses")) == _ips(ready) and _ips(old.get("notReadyAddresses")) == _ips(not_ready):
                continue
            new = {k: v for k, v in old.items() if k not in ("addresses", "notReadyAddresses")}
            if ready:
                new["addresses"] = ready
            if not_ready:
                new["notReadyAddresses"] = not_ready
            ep["subsets"] = [new]
            self.emit("MODIFIED", ep)

    def pod_changed(self, pod: Obj) -> None:
        """Let the owning ReplicaSet, Deployment and the Endpoints catch up with a pod change."""
        ns = pod["metadata"]["namespace"]
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref["kind"] == "ReplicaSet" and ("ReplicaSet", ns, ref["name"]) in self.objects:
                rs = self.get("ReplicaSet", ns, ref["name"])
                self.sync_rs(rs)
                for dref in rs["metadata"].get("ownerReferences") or []:
                    if dref["kind"] == "Deployment" and ("Deployment", ns, dref["name"]) in self.objects:
                        self.sync_deployment(self.get("Deployment", ns, dref["name"]))
        self.sync_endpoints(ns)

    # --- pod lifecycle -------------------------------------------------------------------

    def create_pod(self, rs: Obj) -> Obj:
        """A new Pending pod from a ReplicaSet's template."""
        tmpl = rs["spec"]["template"]
        ns = rs["metadata"]["namespace"]
        while True:
            name = f'{rs["metadata"]["name"]}-{"".join(self.rng.choice(ALPHABET) for _ in range(5))}'
            if ("Pod", ns, name) not in self.objects:
                break
        spec = copy.deepcopy(tmpl["spec"])
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": _uid("Pod", ns, name),
                "creationTimestamp": self.now(),
                "labels": dict(tmpl["metadata"]["labels"]),
                "ownerReferences": [_owner_ref(rs)],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "Burstable"},
        }
        self.emit("ADDED", pod)
        self.pod_changed(pod)
        return pod

    def schedule_pod(self, pod: Obj) -> None:
        node = self.rng.choice(NODES)
        pod["spec"]["nodeName"] = node
        pod["status"] = {
            "phase": "Pending",
            "qosClass": "Burstable",
            "hostIP": f"192.168.1.{NODES.index(node) + 10}",
            "startTime": self.now(),
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                }
                for c in pod["spec"]["containers"]
            ],
        }
        self.emit("MODIFIED", pod)
        self.pod_changed(pod)

    def start_pod(self, pod: Obj) -> None:
        st = pod["status"]
        st["phase"] = "Running"
        st["podIP"] = self.next_ip()
        for cond in st["conditions"]:
            cond["status"] = "True"
            cond.pop("reason", None)
        for cs in st["containerStatuses"]:
            cs.update(ready=True, started=True, state={"running": {"startedAt": self.now()}})
        self.emit("MODIFIED", pod)
        self.pod_changed(pod)

    def terminate_pod(self, pod: Obj) -> None:
        pod["metadata"]["deletionTimestamp"] = format_time(self.t + timedelta(seconds=30)).replace(".000Z", "Z")
        pod["metadata"]["deletionGracePeriodSeconds"] = 30
        self.emit("MODIFIED", pod)
        self.pod_changed(pod)

    def delete_pod(self, pod: Obj) -> None:
        self.emit("DELETED", pod)
        self.pod_changed(pod)


def _address(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {
        "ip": pod["status"]["podIP"],
        "nodeName": pod["spec"].get("nodeName"),
        "targetRef": {"kind": "Pod", "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
    }


def _ips(addresses: list[Obj] | None) -> list[str]:
    return sorted(a.get("ip", "") for a in addresses or [])


# --- scenarios --------------------------------------------------------------------------


def _step(rng: random.Random, low: float = 1.0, high: float = 10.0) -> float:
    return rng.randint(int(low * 1000), int(high * 1000)) / 1000


def rollout(c: Cluster, rng: random.Random) -> Scenario:
    """shop/frontend: image 2.14.1 -> 2.15.0 with maxSurge 1, maxUnavailable 0."""
    yield 45.0
    deploy = c.get("Deployment", "shop", "frontend")
    old_rs = max(
        c.replicasets_of(deploy),
        key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]),
    )
    image = "ghcr.io/acme/frontend:2.15.0"
    deploy["metadata"]["generation"] += 1
    deploy["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "3"
    deploy["spec"]["template"]["spec"]["containers"][0]["image"] = image
    c.emit("MODIFIED", deploy)
    yield _step(rng, 1, 2)

    want = deploy["spec"]["replicas"]
    template = copy.deepcopy(deploy["spec"]["template"])
    pod_hash = _hash("frontend/" + json.dumps(template, sort_keys=True), 10)
    template["metadata"]["labels"]["pod-template-hash"] = pod_hash
    name = f"frontend-{pod_hash}"
    new_rs: Obj = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": _uid("ReplicaSet", "shop", name),
            "creationTimestamp": c.now(),
            "generation": 1,
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {
                "deployment.kubernetes.io/revision": "3",
                "deployment.kubernetes.io/desired-replicas": str(want),
                "deployment.kubernetes.io/max-replicas": str(want + 1),
            },
            "ownerReferences": [_owner_ref(deploy)],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {**deploy["spec"]["selector"]["matchLabels"], "pod-template-hash": pod_hash}},
            "template": template,
        },
        "status": {"replicas": 0, "observedGeneration": 1},
    }
    c.emit("ADDED", new_rs)
    c.sync_deployment(deploy, new_rs)
    old_pods = [p for p in c.pods_of(old_rs)]
    for k in range(1, want + 1):
        if k > 1:
            new_rs["spec"]["replicas"] = k
            new_rs["metadata"]["generation"] += 1
            c.emit("MODIFIED", new_rs)
            yield _step(rng, 1, 2)
        pod = c.create_pod(new_rs)
        yield _step(rng, 1, 3)
        c.schedule_pod(pod)
        yield _step(rng, 4, 10)
        c.start_pod(pod)
        yield _step(rng, 1, 3)
        old_rs["spec"]["replicas"] = want - k
        old_rs["metadata"]["generation"] = old_rs["metadata"].get("generation", 1) + 1
        c.emit("MODIFIED", old_rs)
        victim = old_pods.pop()
        c.terminate_pod(victim)
        yield _step(rng, 2, 8)
        c.delete_pod(victim)
        yield _step(rng, 1, 4)
    c.sync_deployment(deploy, new_rs)


def crash_loop(c: Cluster, rng: random.Random) -> Scenario:
    """payments/ledger-246hsqj64q-hxgl8 fails on start, over and over (kubelet back-off doubles)."""
    yield 25.0
    pod = c.get("Pod", "payments", "ledger-246hsqj64q-hxgl8")
    backoff = 10
    started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    while True:
        st = pod["status"]
        cs = st["containerStatuses"][0]
        cs["restartCount"] += 1
        cs.update(ready=False, started=False)
        cs["lastState"] = {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "message": "panic: connect to postgres:5432: connection refused",
                "startedAt": started,
                "finishedAt": c.now(),
            }
        }
        cs["state"] = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {backoff}s restarting failed container=ledger pod={pod['metadata']['name']}",
            }
        }
        for cond in st["conditions"]:
            if cond["type"] in ("Ready", "ContainersReady"):
                cond.update(status="False", reason="ContainersNotReady")
        c.emit("MODIFIED", pod)
        c.pod_changed(pod)
        yield backoff + _step(rng, 0, 1)
        started = c.now()
        cs["state"] = {"running": {"startedAt": started}}
        cs["started"] = True
        c.emit("MODIFIED", pod)
        yield _step(rng, 3, 6)
        backoff = min(backoff * 2, 300)


def autoscale(c: Cluster, rng: random.Random) -> Scenario:
    """payments/payments-api: the HPA scales 2 -> 4 under load, then back to 2 (stabilisation window)."""
    hpa = c.get("HorizontalPodAutoscaler", "payments", "payments-api")
    deploy = c.get("Deployment", "payments", "payments-api")
    rs = c.replicasets_of(deploy)[0]

    def report(cpu: int, desired: int) -> None:
        hpa["status"] = {
            "currentReplicas": deploy["spec"]["replicas"],
            "desiredReplicas": desired,
            "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu, "averageValue": f"{cpu * 5}m"}}}
            ],
        }
        if desired != deploy["spec"]["replicas"]:
            hpa["status"]["lastScaleTime"] = c.now()
        c.emit("MODIFIED", hpa)

    def scale(n: int) -> None:
        deploy["spec"]["replicas"] = n
        deploy["metadata"]["generation"] += 1
        c.emit("MODIFIED", deploy)
        rs["spec"]["replicas"] = n
        rs["metadata"]["generation"] = rs["metadata"].get("generation", 1) + 1
        rs["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(n)
        c.emit("MODIFIED", rs)

    yield 10.0
    for cpu in (48, 63, 88, 131):
        report(cpu, 2 if cpu <= 70 else 4)
        yield 15.0 + _step(rng, 0, 1)
    scale(4)
    yield _step(rng, 1, 2)
    new_pods = [c.create_pod(rs), c.create_pod(rs)]
    yield _step(rng, 1, 3)
    for pod in new_pods:
        c.schedule_pod(pod)
        yield _step(rng, 1, 3)
    for pod in new_pods:
        yield _step(rng, 3, 9)
        c.start_pod(pod)
    report(74, 4)
    cpu = 66
    # Scale-down waits out the HPA's default 300 s stabilisation window.
    while c.t - START < timedelta(seconds=470):
        yield 15.0 + _step(rng, 0, 1)
        cpu = max(24, cpu - rng.randint(0, 9))
        report(cpu, 2 if c.t - START >= timedelta(seconds=470) else 4)
    scale(2)
    yield _step(rng, 1, 2)
    for pod in new_pods:
        c.terminate_pod(pod)
        yield _step(rng, 1, 3)
    yield _step(rng, 2, 6)
    for pod in new_pods:
        c.delete_pod(pod)
        yield _step(rng, 1, 2)
    while True:
        yield 15.0 + _step(rng, 0, 1)
        report(rng.randint(24, 34), 2)


def hpa_metrics(c: Cluster, rng: random.Random, name: str, namespace: str, base: int, offset: float) -> Scenario:
    """An autoscaler's CPU figure, refreshed every 6-10 s, so the recording never goes quiet for long."""
    yield offset
    hpa = c.get("HorizontalPodAutoscaler", namespace, name)
    while True:
        cpu = max(5, base + rng.randint(-9, 9))
        status = hpa.setdefault("status", {})
        status["currentMetrics"] = [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu, "averageValue": f"{cpu * 2}m"}}}
        ]
        c.emit("MODIFIED", hpa)
        yield _step(rng, 6, 10)


# --- main -------------------------------------------------------------------------------


def write_demo_recording(out: Path | str) -> None:
    """Write the demo recording to ``out`` (gzip when it ends in .gz)."""
    rng = random.Random(SEED)
    objects = ManifestSource(str(DEMO_DATA)).objects()
    with RecordingWriter(out, context="demo", started=START) as writer:
        cluster = Cluster(writer, objects, rng)
        scenarios = [
            rollout(cluster, random.Random(SEED + 1)),
            crash_loop(cluster, random.Random(SEED + 2)),
            autoscale(cluster, random.Random(SEED + 3)),
            hpa_metrics(cluster, random.Random(SEED + 4), "frontend", "shop", 41, 3.0),
            hpa_metrics(cluster, random.Random(SEED + 5), "checkout", "shop", 55, 8.5),
        ]
        queue: list[tuple[float, int, Scenario]] = []
        for i, scenario in enumerate(scenarios):
            heapq.heappush(queue, (next(scenario), i, scenario))
        while queue:
            at, i, scenario = heapq.heappop(queue)
            if at > DURATION:
                break
            cluster.t = START + timedelta(milliseconds=round(at * 1000))
            try:
                delay = next(scenario)
            except StopIteration:
                continue
            heapq.heappush(queue, (at + delay, i, scenario))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``record_demo.py [--out PATH]`` (default: plugins/sources/demo_data/recording.jsonl.gz)."""
    parser = argparse.ArgumentParser(description="Write the bundled demo recording.")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where to write (default: %(default)s)")
    args = parser.parse_args(argv)
    write_demo_recording(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
