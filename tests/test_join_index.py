"""Join indexes kept by watch caches: the pairs (and their order) must be those of the plain hash
join over the same objects, through any sequence of changes."""

from __future__ import annotations

import random

from tessera.core.builtin_kinds import BUILTIN_KINDS
from tessera.core.query.joins import JoinMemo, rule_pairs
from tessera.core.relationships import Criterion, Rule
from tessera.core.watch.cache import WatchCache

OWNS = Rule("ReplicaSet", "Pod", "OWNS", (Criterion("metadata.name", "metadata.ownerReferences[].name"),))
# a cluster-scoped side and a rule that ignores namespaces
RUNS_ON = Rule("Pod", "Node", "RUNS_ON", (Criterion("spec.nodeName", "metadata.name"),), same_namespace=False)
# same-namespace rule with a cluster-scoped side (a Namespace-like owner)
LABELLED = Rule("Node", "Pod", "LABELLED", (Criterion("metadata.labels.zone", "metadata.labels.zone"),))


def kind(name: str):
    return next(k for k in BUILTIN_KINDS if k.kind == name)


def pod(rng: random.Random, i: int, version: int) -> dict:
    owners = [{"name": f"rs-{rng.randrange(6)}"} for _ in range(rng.choice([0, 1, 1, 1, 2]))]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p-{i}", "namespace": rng.choice(["a", "b"]), "resourceVersion": str(version),
                         "ownerReferences": owners, "labels": {"zone": rng.choice(["z1", "z2", "z3"])}},
            "spec": {"nodeName": f"n-{rng.randrange(4)}"}}


def replicaset(i: int, ns: str, version: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"rs-{i}", "namespace": ns, "resourceVersion": str(version)}}


def node(rng: random.Random, i: int, version: int) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"n-{i}", "resourceVersion": str(version), "labels": {"zone": rng.choice(["z1", "z2"])}}}


def cache_of(kind_name: str) -> WatchCache:
    # no source and no thread: changes are applied as the watcher thread applies them
    return WatchCache(None, kind(kind_name), None)


def plain(rule: Rule, a: list, b: list) -> list[tuple[int, int]]:
    return [(id(x), id(y)) for x, y in rule_pairs(rule, list(a), list(b))]


def indexed(rule: Rule, a: list, b: list, memo: JoinMemo | None = None) -> list[tuple[int, int]]:
    return [(id(x), id(y)) for x, y in rule_pairs(rule, a, b, memo)]


def test_kept_indexes_give_the_hash_join_pairs_in_its_order_through_churn():
    rng = random.Random(7)
    pods, rss, nodes = cache_of("Pod"), cache_of("ReplicaSet"), cache_of("Node")
    version = 0
    for i in range(60):
        version += 1
        pods._apply("ADDED", pod(rng, i, version))
    for i in range(6):
        for ns in ("a", "b"):
            version += 1
            rss._apply("ADDED", replicaset(i, ns, version))
    for i in range(4):
        version += 1
        nodes._apply("ADDED", node(rng, i, version))
    memo = JoinMemo()
    for _ in range(40):
        p, r, n = pods.snapshot(), rss.snapshot(), nodes.snapshot()
        some_pods = rng.sample(list(p), 3)
        some_rss = rng.sample(list(r), 2)
        for rule, a, b in [
            (OWNS, r, p), (OWNS, some_rss, p), (OWNS, r, some_pods),
            (RUNS_ON, p, n), (RUNS_ON, some_pods, n),
            (LABELLED, n, p), (LABELLED, n, some_pods), (LABELLED, nodes.snapshot()[:1], p),
        ]:
            assert indexed(rule, a, b, memo) == plain(rule, a, b), rule.type
        # churn: modify (values may change), delete, re-add
        for _ in range(5):
            version += 1
            i = rng.randrange(70)
            change = rng.random()
            if change < 0.6:
                pods._apply("MODIFIED" if (None, f"p-{i}") in pods.objects else "ADDED", pod(rng, i, version))
            elif change < 0.8:
                current = next((o for o in pods.objects.values() if o["metadata"]["name"] == f"p-{i}"), None)
                if current is not None:
                    pods._apply("DELETED", current)
            else:
                nodes._apply("MODIFIED", node(rng, rng.randrange(4), version))
    assert pods._join_indexes and rss._join_indexes and nodes._join_indexes
    for cache in (pods, rss, nodes):
        for index in cache._join_indexes.values():  # nothing left behind by replaced objects
            assert len(index._position) == len(index._entries) == len(cache.objects)


def test_a_snapshot_lends_an_index_only_while_the_cache_is_unchanged():
    rng = random.Random(1)
    pods = cache_of("Pod")
    pods._apply("ADDED", pod(rng, 0, 1))
    before = pods.snapshot()
    with before.join_index("spec.nodeName", False) as index:
        assert index is not None and index.matching("", before[0]["spec"]["nodeName"]) == [before[0]]
    pods._apply("ADDED", pod(rng, 1, 2))
    with before.join_index("spec.nodeName", False) as index:
        assert index is None
    # the stale snapshot still joins correctly, by the plain hash join
    nodes = cache_of("Node")
    for i in range(4):
        nodes._apply("ADDED", node(rng, i, 10 + i))
    assert indexed(RUNS_ON, before, nodes.snapshot()) == plain(RUNS_ON, before, nodes.snapshot())
    assert len(indexed(RUNS_ON, before, nodes.snapshot())) == 1


def test_a_relist_drops_the_indexes_and_they_follow_the_new_order():
    rng = random.Random(3)
    pods, rss = cache_of("Pod"), cache_of("ReplicaSet")
    for i in range(20):
        pods._apply("ADDED", pod(rng, i, i + 1))
    for i in range(6):
        rss._apply("ADDED", replicaset(i, "a", 100 + i))
    r = rss.snapshot()
    indexed(OWNS, r, pods.snapshot())
    assert pods._join_indexes
    relisted = [pod(rng, i, 200 + i) for i in reversed(range(25))]
    pods._replace(relisted, "300")
    assert not pods._join_indexes
    p = pods.snapshot()
    assert indexed(OWNS, r, p) == plain(OWNS, r, p)


def test_an_index_no_join_uses_is_dropped_and_rebuilt_on_demand(monkeypatch):
    from tessera.core.watch import cache as cache_module

    monkeypatch.setattr(cache_module, "INDEX_CHECK_EVENTS", 10)
    rng = random.Random(5)
    pods, nodes = cache_of("Pod"), cache_of("Node")
    for i in range(4):
        nodes._apply("ADDED", node(rng, i, i + 1))
    for i in range(20):
        pods._apply("ADDED", pod(rng, i, 100 + i))
    some_pods = pods.snapshot()[:3]  # a plain list: the join probes the nodes' index
    indexed(RUNS_ON, some_pods, nodes.snapshot())
    assert list(nodes._join_indexes) == [("metadata.name", False)]
    for i in range(20, 30):  # used a moment ago: kept through a check
        nodes._apply("ADDED", node(rng, i, 200 + i))
    assert nodes._join_indexes
    monkeypatch.setattr(cache_module, "INDEX_IDLE_SECONDS", 0.0)
    for i in range(30, 40):  # idle past the limit at the next check: dropped
        nodes._apply("ADDED", node(rng, i, 300 + i))
    assert not nodes._join_indexes
    n = nodes.snapshot()
    assert indexed(RUNS_ON, some_pods, n) == plain(RUNS_ON, some_pods, n)  # asked again: rebuilt, current
    assert nodes._join_indexes
