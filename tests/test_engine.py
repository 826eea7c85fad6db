"""Engine behaviour over small in-memory clusters: joins, filters, grouping, ordering, errors."""

from __future__ import annotations

import pytest

from tessera.core import api
from tessera.core.builtin_kinds import BUILTIN_KINDS
from tessera.core.errors import QueryError
from tessera.core.query import joins


class MemorySource:
    """A read-only source over a list of objects (the engine's view of any source)."""

    writable = False

    def __init__(self, objects: list[dict], name: str = "mem"):
        self.name = name
        self.objects = objects
        self.calls: list[tuple] = []

    def kinds(self):
        return list(BUILTIN_KINDS)

    def list(self, kind, *, namespace=None, name=None, labels=None):
        self.calls.append((kind.kind, namespace, name, labels))
        out = []
        for o in self.objects:
            meta = o["metadata"]
            if o["kind"] != kind.kind:
                continue
            if namespace and kind.namespaced and meta.get("namespace") != namespace:
                continue
            if name and meta["name"] != name:
                continue
            if labels and any((meta.get("labels") or {}).get(k) != v for k, v in labels.items()):
                continue
            out.append(o)
        return out


def obj(kind, name, ns="shop", labels=None, owner=None, api_version="v1", **body):
    meta = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1]}]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}


def cluster() -> list[dict]:
    objs = []
    for d, replicas, pods in (("web", 3, 3), ("api", 2, 2), ("idle", 0, 0)):
        objs.append(obj("Deployment", d, labels={"app": d}, api_version="apps/v1", spec={"replicas": replicas}))
        objs.append(obj("ReplicaSet", f"{d}-abc", labels={"app": d}, owner=("Deployment", d), api_version="apps/v1"))
        for i in range(pods):
            objs.append(
                obj(
                    "Pod",
                    f"{d}-abc-{i}",
                    labels={"app": d},
                    owner=("ReplicaSet", f"{d}-abc"),
                    spec={"containers": [{"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]},
                    status={"phase": "Running" if i else "Pending"},
                )
            )
    objs.append(obj("Service", "web", spec={"selector": {"app": "web"}}))
    objs.append(obj("Service", "orphan", spec={"selector": {"app": "nothing"}}))
    # same names in another namespace must never join across namespaces
    objs.append(obj("ReplicaSet", "web-abc", ns="other", owner=("Deployment", "web"), api_version="apps/v1"))
    return objs


def rows(query: str, objs=None, **kw):
    return api.run_query(query, [MemorySource(objs if objs is not None else cluster())], **kw).rows


def test_chain_counts_grouped_per_deployment():
    out = rows("MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) RETURN d.metadata.name AS d, COUNT{p} AS pods ORDER BY d")
    assert out == [{"d": "api", "pods": 2}, {"d": "web", "pods": 3}]


def test_relationships_stay_inside_a_namespace():
    out = rows("MATCH (d:Deployment {name: \"web\"})->(rs:ReplicaSet) RETURN rs.metadata.namespace AS ns")
    assert out == [{"ns": "shop"}]


def test_direction_does_not_matter_and_selectors_join():
    a = rows("MATCH (p:Pod)->(s:Service) RETURN s.metadata.name AS s, count(p) AS n")
    b = rows("MATCH (s:Service)<-(p:Pod) RETURN s.metadata.name AS s, count(p) AS n")
    assert a == b == [{"s": "web", "n": 3}]


def test_join_is_hashed_not_all_pairs(monkeypatch):
    calls = {"n": 0}
    real = joins.path_fn

    def counting(path):
        fn = real(path)

        def wrapped(o):
            calls["n"] += 1
            return fn(o)

        return wrapped

    monkeypatch.setattr(joins, "path_fn", counting)
    objs = []
    for i in range(300):
        objs.append(obj("ReplicaSet", f"rs{i}", api_version="apps/v1"))
        objs.append(obj("Pod", f"p{i}", owner=("ReplicaSet", f"rs{i}")))
    out = rows("MATCH (rs:ReplicaSet)->(p:Pod) RETURN count(p) AS n", objs)
    assert out == [{"n": 300}]
    assert calls["n"] <= 2 * 600  # one key extraction per object, not 300 * 300 comparisons


def test_not_subpattern_and_positive_subpattern():
    assert rows("MATCH (d:Deployment) WHERE NOT (d)->(:ReplicaSet)->(:Pod) RETURN d.metadata.name AS n") == [{"n": "idle"}]
    got = rows("MATCH (d:Deployment) WHERE (d)->(:ReplicaSet)->(:Pod {app: \"web\"}) RETURN d.metadata.name AS n")
    assert got == [{"n": "web"}]
    assert rows("MATCH (s:Service) WHERE NOT (s)->(:Pod) RETURN s.metadata.name AS n") == [{"n": "orphan"}]


def test_or_parentheses_in_list_string_ops_and_null():
    q = 'MATCH (p:Pod) WHERE (p.status.phase = "Pending" OR p.metadata.name ENDS WITH "-2") AND p.metadata.name STARTS WITH "web" RETURN p.metadata.name AS n ORDER BY n'
    assert rows(q) == [{"n": "web-abc-0"}, {"n": "web-abc-2"}]
    q = 'MATCH (d:Deployment) WHERE d.metadata.name IN ["web", "idle"] RETURN d.metadata.name AS n ORDER BY n DESC'
    assert rows(q) == [{"n": "web"}, {"n": "idle"}]
    assert rows("MATCH (d:Deployment) WHERE d.status IS NULL RETURN count(d) AS n") == [{"n": 3}]
    assert rows("MATCH (p:Pod) WHERE p.spec.nodeName = NULL RETURN count(p) AS n") == [{"n": 5}]


def test_sum_adds_quantities_and_other_aggregates():
    q = (
        "MATCH (d:Deployment)->(:ReplicaSet)->(p:Pod) RETURN d.metadata.name AS d, "
        "SUM{p.spec.containers[*].resources.requests.cpu} AS cpu, sum(p.spec.containers[*].resources.requests.memory) AS mem, "
        "collect(p.metadata.name) AS pods ORDER BY d"
    )
    out = rows(q)
    assert out[0]["d"] == "api" and out[0]["cpu"] == "500m" and out[0]["mem"] == "128Mi"
    assert out[1]["cpu"] == "750m" and out[1]["pods"] == ["web-abc-0", "web-abc-1", "web-abc-2"]
    q = "MATCH (d:Deployment) RETURN avg(d.spec.replicas) AS a, MIN{d.spec.replicas} AS lo, max(d.spec.replicas) AS hi, count(d) AS n"
    assert rows(q) == [{"a": 5 / 3, "lo": 0, "hi": 3, "n": 3}]


def test_aggregate_over_nothing_gives_one_row():
    assert rows('MATCH (p:Pod {app: "none"}) RETURN count(p) AS n') == [{"n": 0}]


def test_order_is_stable_nulls_last_and_paged():
    out = rows("MATCH (p:Pod) RETURN p.metadata.name AS n, p.status.phase AS phase ORDER BY phase, n SKIP 1 LIMIT 3")
    assert [r["n"] for r in out] == ["web-abc-0", "api-abc-1", "web-abc-1"]


def test_datetime_and_duration():
    objs = [
        obj("Pod", "old", status={"startTime": "2020-01-01T00:00:00Z"}),
        obj("Pod", "new", status={"startTime": "2999-01-01T00:00:00Z"}),
    ]
    q = 'MATCH (p:Pod) WHERE p.status.startTime < datetime() - duration("P7D") RETURN p.metadata.name AS n'
    assert rows(q, objs) == [{"n": "old"}]


def test_kindless_node_expands_to_related_kinds():
    out = rows('MATCH (d:Deployment {name: "web"})->(x) RETURN x.kind AS k, x.metadata.name AS n ORDER BY k')
    assert out == [{"k": "ReplicaSet", "n": "web-abc"}]


def test_pushdown_name_label_namespace():
    src = MemorySource(cluster())
    api.run_query('MATCH (d:Deployment {name: "web", namespace: "shop"}) RETURN d', [src])
    assert src.calls == [("Deployment", "shop", "web", None)]
    src.calls.clear()
    api.run_query('MATCH (p:Pod {app: "web"}) RETURN p', [src], namespace="shop")
    assert src.calls == [("Pod", "shop", None, {"app": "web"})]


def test_errors_are_query_errors():
    with pytest.raises(QueryError, match="mutations"):
        rows('MATCH (d:Deployment) SET d.spec.replicas = 2')
    with pytest.raises(QueryError, match="not found"):
        rows("MATCH (x:Nope) RETURN x")
    with pytest.raises(QueryError, match="kindless nodes may only be used in a relationship"):
        rows("MATCH (x) RETURN x")
    with pytest.raises(QueryError, match="no relationship between Deployment and Node"):
        rows("MATCH (d:Deployment)->(n:Node) RETURN d")


def test_in_runs_over_several_sources_with_context_column():
    a, b = MemorySource(cluster(), name="east"), MemorySource(cluster()[:1], name="west")
    res = api.run_query("IN east, west MATCH (d:Deployment) RETURN count(d) AS n", [a, b])
    assert res.columns == ["context", "n"]
    assert res.rows == [{"context": "east", "n": 3}, {"context": "west", "n": 1}]


def test_result_graph_has_nodes_and_edges():
    res = api.run_query('MATCH (d:Deployment {name: "api"})->(rs:ReplicaSet)->(p:Pod) RETURN p', [MemorySource(cluster())])
    kinds = sorted(n.kind for n in res.nodes)
    assert kinds == ["Deployment", "Pod", "Pod", "ReplicaSet"]
    assert len(res.edges) == 3


def test_temporal_overflow_is_a_query_error():
    # Python raises OverflowError here; the user gets a one-line QueryError (exit 1).
    objs = [obj("Pod", "p", status={"startTime": "2020-01-01T00:00:00Z"})]
    with pytest.raises(QueryError, match=r"duration 'P99999999999D' out of range"):
        rows('MATCH (p:Pod) WHERE p.status.startTime > datetime() - duration("P99999999999D") RETURN p', objs)
    with pytest.raises(QueryError, match="is out of range"):
        rows('MATCH (p:Pod) WHERE p.status.startTime > datetime() - duration("P9999999D") RETURN p', objs)
    with pytest.raises(QueryError, match="is out of range"):
        rows('MATCH (p:Pod) WHERE p.status.startTime > datetime("0001-01-01T00:00:00Z") - duration("P1D") RETURN p', objs)


def namespaces() -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in ("shop", "other")]


def test_kindless_neighbour_of_a_namespace_is_every_resource_in_it():
    out = rows('MATCH (n:Namespace {name: "shop"})->(x) RETURN x.kind AS k, x.metadata.name AS n ORDER BY k, n',
               cluster() + namespaces())
    shop = sorted((o["kind"], o["metadata"]["name"]) for o in cluster() if o["metadata"]["namespace"] == "shop")
    assert [(r["k"], r["n"]) for r in out] == shop
    assert len(shop) == 13  # 3 Deployments, 3 ReplicaSets, 5 Pods, 2 Services; nothing from "other"
    # the Namespace rule's own type works too
    typed = rows('MATCH (n:Namespace {name: "other"})-[:NAMESPACE_HAS_RESOURCE]->(x) RETURN x.metadata.name AS n',
                 cluster() + namespaces())
    assert typed == [{"n": "web-abc"}]


def test_kindless_neighbour_of_a_namespaced_kind_includes_its_namespace_last():
    out = rows('MATCH (d:Deployment {name: "web"})->(x) RETURN x.kind AS k, x.metadata.name AS n', cluster() + namespaces())
    # rules naming both kinds first, then the Namespace rule (no ORDER BY: the engine's own order)
    assert out == [{"k": "ReplicaSet", "n": "web-abc"}, {"k": "Namespace", "n": "shop"}]
    chain = rows('MATCH (p:Pod {name: "web-abc-0"})->(x)->(d:Deployment {name: "web"}) RETURN x.kind AS k',
                 cluster() + namespaces())
    assert chain == [{"k": "ReplicaSet"}, {"k": "Namespace"}]


def test_kindless_neighbour_of_a_cluster_scoped_kind_has_no_namespace():
    objs = [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
            obj("Pod", "p", spec={"nodeName": "n1"})] + namespaces()
    assert rows("MATCH (nd:Node)->(x) RETURN x.kind AS k, x.metadata.name AS n", objs) == [{"k": "Pod", "n": "p"}]


def test_kindless_node_no_rule_can_reach_is_an_error_not_an_empty_answer():
    with pytest.raises(QueryError, match="no kind is related to Deployment by NO_SUCH_TYPE, so 'x' cannot match anything"):
        rows("MATCH (d:Deployment)-[:NO_SUCH_TYPE]->(x) RETURN x")


def cyphernetes(query: str, objs=None) -> dict:
    return api.run_query(query, [MemorySource(objs if objs is not None else cluster())], shape="cyphernetes").cyphernetes


def test_cyphernetes_shape_when_nothing_matches():
    # a kindless pattern: upstream merges its expanded queries and keeps only variables with rows
    assert cyphernetes('MATCH (d:Deployment {name: "none"})->(x) RETURN d.metadata.name, x') == {}
    # ORDER BY / SKIP / LIMIT: upstream rebuilds the map from the (no) rows
    assert cyphernetes('MATCH (d:Deployment {name: "none"}) RETURN d.metadata.name AS n ORDER BY n') == {}
    assert cyphernetes('MATCH (d:Deployment {name: "none"}) RETURN d LIMIT 5') == {}
    # a pattern of two or more relationships: {} as well
    assert cyphernetes('MATCH (d:Deployment {name: "none"})->(:ReplicaSet)->(p:Pod) RETURN d, p') == {}
    # otherwise each returned variable is listed with no entries
    assert cyphernetes('MATCH (d:Deployment {name: "none"}) RETURN d') == {"d": []}
    assert cyphernetes('MATCH (d:Deployment {name: "none"})->(rs:ReplicaSet) RETURN d, rs') == {"d": [], "rs": []}


def test_cyphernetes_aggregates_over_nothing_are_null():
    q = ('MATCH (p:Pod {app: "none"}) RETURN COUNT{p} AS n, SUM{p.spec.containers[*].resources.requests.cpu} AS cpu, '
         'SUM{p.spec.replicas} AS r, MIN{p.metadata.name} AS first')
    assert cyphernetes(q) == {"p": [], "aggregate": {"n": None, "cpu": None, "r": None, "first": None}}
    assert cyphernetes('MATCH (d:Deployment {name: "none"})->(x) RETURN SUM{x.spec.replicas} AS r') == {"aggregate": {"r": None}}
    # rows exist but hold no value to add: null as well, never [] or 0
    out = cyphernetes("MATCH (d:Deployment) RETURN SUM{d.spec.template.spec.containers[*].resources.requests.cpu} AS cpu, "
                      "SUM{d.status.readyReplicas} AS ready")
    assert out["aggregate"] == {"cpu": None, "ready": None}
    # the rows shape keeps Cypher's answers: SUM of nothing is 0, COUNT 0
    assert rows('MATCH (p:Pod {app: "none"}) RETURN count(p) AS n, SUM{p.spec.containers[*].resources.requests.cpu} AS cpu') == [
        {"n": 0, "cpu": 0}]


class FailingKindSource(MemorySource):
    """A source on which listing some kinds fails the way a live cluster can."""

    def __init__(self, objects, failing: dict):
        super().__init__(objects)
        self.failing = failing

    def list(self, kind, **kw):
        if kind.kind in self.failing:
            raise self.failing[kind.kind]
        return super().list(kind, **kw)


def test_expanded_kinds_that_cannot_be_listed_are_skipped_with_a_warning():
    from tessera.core.errors import NotAuthorized, SourceTimeout, SourceUnavailable

    failing = {"Secret": NotAuthorized("secrets is forbidden"),
               "CSIStorageCapacity": SourceUnavailable("storage.k8s.io: HTTP 503 service unavailable"),
               "Lease": QueryError("leases: not found on the server"),
               "ResourceQuota": SourceTimeout("resourcequotas timed out")}
    src = FailingKindSource(cluster() + namespaces(), failing)
    res = api.run_query('MATCH (n:Namespace {name: "other"})->(x) RETURN x.kind AS k, x.metadata.name AS n', [src])
    assert res.rows == [{"k": "ReplicaSet", "n": "web-abc"}]
    assert sorted(res.warnings) == [
        "skipped CSIStorageCapacity (cannot list it): storage.k8s.io: HTTP 503 service unavailable",
        "skipped Lease (cannot list it): leases: not found on the server",
        "skipped ResourceQuota (cannot list it): resourcequotas timed out",
        "skipped Secret (forbidden): secrets is forbidden"]
    # a kind the query names itself still fails the query
    with pytest.raises(SourceUnavailable):
        api.run_query("MATCH (n:Namespace)->(x) RETURN x", [FailingKindSource(cluster(), {"Namespace": SourceUnavailable("down")})])
