"""Incremental live queries give exactly what a full run gives, after every kind of change."""

from __future__ import annotations

import json
import random

import pytest

from tessera.core import api
from kube_emulator import wait_quiet
from tessera.core.watch.cache import CacheHub
from tessera.core.watch.incremental import eligible, oid
from tessera.core.watch.live_query import LiveQuery, diff_rows, keyed_rows
from tessera.plugins.sources.kubernetes import KubernetesSource

QUERIES = [
    "MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) RETURN d.metadata.name AS d, p.metadata.name AS p, p.status.phase AS phase",
    "MATCH (p:Pod) RETURN p.status.phase AS phase, count(p) AS pods, collect(p.metadata.name) AS names",
    "MATCH (p:Pod) RETURN count(p) AS pods",
    "MATCH (s:Service)->(p:Pod) RETURN s.metadata.name AS svc, count(p) AS pods ORDER BY svc",
    "MATCH (p:Pod)->(x) RETURN x.kind AS kind, x.metadata.name AS name, p.metadata.name AS pod",
    "MATCH (rs:ReplicaSet)->(p:Pod) WHERE rs.spec.replicas > 1 OR p.status.phase = \"Failed\" RETURN rs.metadata.name AS rs, p.metadata.name AS p",
    "MATCH (d:Deployment), (n:Node) RETURN d.metadata.name AS d, n.metadata.name AS n",
    # plain rows in ORDER BY order: kept sorted from one change to the next (ascending keys)...
    "MATCH (p:Pod) RETURN p.status.phase AS phase, p.metadata.name AS pod ORDER BY phase, pod",
    # ...or sorted again (a descending key)
    "MATCH (rs:ReplicaSet)->(p:Pod) RETURN p.metadata.name AS p, rs.spec.replicas AS n ORDER BY n DESC, p",
]


def test_eligibility():
    assert eligible(api.parse_query(QUERIES[0]))
    for text in ("MATCH (d:Deployment) WHERE NOT (d)->(:Service) RETURN d", "MATCH (p:Pod) RETURN p LIMIT 2",
                 "MATCH (p:Pod) RETURN DISTINCT p.status.phase", 'MATCH (d:Deployment) SET d.spec.replicas = 1'):
        assert not eligible(api.parse_query(text))


def pod(rng, i, rs):
    app = rs.split("-")[0]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{rs}-x{i}", "namespace": "shop", "uid": f"x{i}",
                         "labels": {"app": app, "pod-template-hash": "5d8f"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                              "uid": f"rs-shop-{app}", "controller": True}]},
            "spec": {"nodeName": "node-1", "containers": [{"name": app, "image": "acme/x:1"}]},
            "status": {"phase": rng.choice(["Running", "Pending", "Failed"])}}


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_matches_full_after_random_changes(kubeconfig, kube_api, seed):
    rng = random.Random(seed)
    source = KubernetesSource(kubeconfig=str(kubeconfig))
    hub = CacheHub(backoff=(0.05, 0.3))
    try:
        lives = [LiveQuery(q, [source], hub, namespace="shop") for q in QUERIES]
        assert all(lq.incremental is not None for lq in lives)
        for lq in lives:
            lq.refresh()
        seen = {"events": 0}
        hub.subscribe_events(lambda c, t, o: seen.__setitem__("events", seen["events"] + 1))
        made = 0
        ever = {oid(o) for o in kube_api.objects("Pod") + kube_api.objects("ReplicaSet")}
        for step in range(25):
            choice = rng.random()
            pods = [o for o in kube_api.objects("Pod") if o["metadata"]["namespace"] == "shop"]
            if choice < 0.3 or not pods:
                kube_api.add(pod(rng, step, rng.choice(["web-5d8f", "cart-5d8f"])))
            elif choice < 0.5:
                kube_api.remove(rng.choice(pods))
            elif choice < 0.7:
                p = dict(rng.choice(pods))
                p["status"] = {"phase": rng.choice(["Running", "Failed"])}
                kube_api.update(p)
            elif choice < 0.85:
                p = dict(rng.choice(pods))
                p["metadata"] = {**p["metadata"], "labels": {"app": rng.choice(["web", "cart", "none"])}}
                kube_api.update(p)
            else:
                rs = dict(kube_api.get("apps/v1", "ReplicaSet", "shop", rng.choice(["web-5d8f", "cart-5d8f"])))
                rs["spec"] = {"replicas": rng.randint(0, 3)}
                kube_api.update(rs)
            made += 1
            assert wait_quiet(lambda made=made: seen["events"] >= made, 60)
            ever |= {oid(o) for o in kube_api.objects("Pod") + kube_api.objects("ReplicaSet")}
            # a superset of what changed (every object ever seen) must give the exact result too
            for lq in lives:
                before = dict(lq.rows)
                changes = lq.refresh({source.name: set(ever)} if step % 2 else {source.name: _last_changed(kube_api)})
                full = api.run_query(lq.text, lq.sources, namespace="shop")
                assert _canonical(lq.result) == _canonical(full), (lq.text, step)
                # the reported changes are exactly the difference between the two results
                expected = [c for c in diff_rows(before, keyed_rows(full), "")
                            if c["op"] != "changed" or _canonical_changes([c]) != _canonical_changes(
                                [{**c, "row": before[c["key"]]}])]
                assert _canonical_changes(changes) == _canonical_changes(expected), (lq.text, step)
                if lq.query.order_by:
                    assert lq.result.rows == full.rows
    finally:
        hub.close()
        source.close()


def _canonical(result):
    """Rows by identity, COLLECT lists sorted (their order is not part of the result)."""
    return {k: {c: sorted(v) if isinstance(v, list) else v for c, v in row.items()} for k, row in keyed_rows(result).items()}


def _canonical_changes(changes):
    def rows(row):
        return {c: sorted(v) if isinstance(v, list) else v for c, v in row.items()}

    return sorted((c["op"], c["key"], json.dumps(rows(c["row"]), sort_keys=True)) for c in changes)


def _last_changed(kube_api):
    rv, _key, _event, obj = kube_api.handler.history[-1]
    return {oid(obj)}
