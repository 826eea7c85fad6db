"""core/query/run.py: one call runs a query in the shape its output format needs, with a row
limit the engine stops at when the query allows it, and the rules read once per file state."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_engine import MemorySource, cluster, obj

from tessera.core import api
from tessera.core.errors import UsageError
from tessera.core.query.engine import bindings_needed
from tessera.core.rules import rules_in_force

CHAIN = "MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) RETURN d.metadata.name AS d, p.metadata.name AS p"


@pytest.mark.parametrize("fmt, shape", [
    ("table", "rows"), ("json", "rows"), ("jsonl", "rows"), ("yaml", "rows"), ("csv", "rows"),
    ("tree", "graph"), ("graph", "graph"), ("dot", "graph"), ("mermaid", "graph"),
    ("cyphernetes", "cyphernetes"),
])
def test_each_format_gets_the_shape_it_renders(fmt, shape):
    assert api.shape_for_format(fmt) == shape


def test_rows_shape_builds_no_subgraph_and_graph_shape_does():
    rows_only = api.run_query(CHAIN, [MemorySource(cluster())], shape="rows")
    graph = api.run_query(CHAIN, [MemorySource(cluster())], shape="graph")
    assert rows_only.rows == graph.rows and len(rows_only.rows) == 5
    assert rows_only.nodes == [] and rows_only.edges == []
    assert {n.kind for n in graph.nodes} == {"Deployment", "ReplicaSet", "Pod"} and len(graph.edges) == 7


def test_unknown_shape_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown result shape 'table'"):
        api.run_query(CHAIN, [MemorySource(cluster())], shape="table")


def test_a_parsed_query_is_not_parsed_again(monkeypatch):
    query = api.parse_query(CHAIN)
    import tessera.core.query.parser as parser

    monkeypatch.setattr(parser, "parse", lambda text: pytest.fail("parsed twice"))
    assert len(api.run_query(query, [MemorySource(cluster())]).rows) == 5


def test_limit_stops_the_join_at_the_rows_asked_for():
    everything = api.run_query(CHAIN, [MemorySource(cluster())], shape="rows").rows
    source = MemorySource(cluster())
    engine = api.engine_for(source)
    components, _, _ = engine.match(api.parse_query(CHAIN), enough=2)
    assert [len(c.rows) for c in components] == [2]  # the last join stopped, nothing was cut later
    limited = api.run_query(CHAIN, [MemorySource(cluster())], shape="rows", limit=2)
    assert limited.rows == everything[:2] and len(limited.keys) == 2


@pytest.mark.parametrize("query, needed", [
    (CHAIN, 3),
    (CHAIN + " SKIP 1", 4),
    (CHAIN + " SKIP 1 LIMIT 1", 2),
    (CHAIN + " ORDER BY p", None),
    ("MATCH (d:Deployment) RETURN DISTINCT d.spec.replicas AS r", None),
    ("MATCH (d:Deployment)->(p:ReplicaSet) RETURN d.metadata.name AS d, count(p) AS n", None),
])
def test_bindings_needed_only_where_the_first_matches_make_the_first_rows(query, needed):
    assert bindings_needed(api.parse_query(query), 3) == needed


@pytest.mark.parametrize("query", [
    CHAIN + " ORDER BY p DESC",
    CHAIN + " SKIP 1",
    "MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) RETURN d.metadata.name AS d, count(p) AS n ORDER BY n",
    "MATCH (p:Pod) RETURN DISTINCT p.status.phase AS phase",
    "MATCH (d:Deployment), (s:Service) RETURN d.metadata.name AS d, s.metadata.name AS s",
    'MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) WHERE p.status.phase = "Running" OR d.metadata.name = "x" '
    "RETURN p.metadata.name AS p",
])
def test_limited_rows_are_the_first_rows_of_the_whole_answer(query):
    everything = api.run_query(query, [MemorySource(cluster())], shape="rows").rows
    for limit in (0, 1, 2, 100):
        for shape in ("rows", "graph"):
            assert api.run_query(query, [MemorySource(cluster())], shape=shape, limit=limit).rows == everything[:limit]


def test_limit_with_several_sources_applies_to_the_merged_rows():
    a, b = MemorySource(cluster(), name="east"), MemorySource(cluster(), name="west")
    result = api.run_query("IN east, west " + CHAIN, [a, b], shape="rows", limit=7)
    assert [r["context"] for r in result.rows] == ["east"] * 5 + ["west"] * 2 and len(result.keys) == 7


def test_the_subgraph_of_a_limited_graph_run_still_holds_every_match():
    result = api.run_query(CHAIN, [MemorySource(cluster())], shape="graph", limit=1)
    assert len(result.rows) == 1 and sum(n.kind == "Pod" for n in result.nodes) == 5


def test_rules_are_read_again_when_relationships_yaml_changes(isolated_home):
    path = isolated_home / "data" / "relationships.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    builtin = len(rules_in_force())
    assert rules_in_force() == rules_in_force()
    rule = ("relationships:\n  - from: Service\n    to: ConfigMap\n    type: {type}\n"
            "    match:\n      - from: metadata.name\n        to: metadata.name\n")
    path.write_text(rule.format(type="SVC_CM"))
    objs = [obj("Service", "web"), obj("ConfigMap", "web")]
    query = "MATCH (s:Service)-[r]->(c:ConfigMap) RETURN c.metadata.name AS c"
    assert api.run_query(query, [MemorySource(objs)]).rows == [{"c": "web"}]
    assert len(rules_in_force()) == builtin + 1
    path.write_text(rule.format(type="SVC_CM_RENAMED_TOO"))  # another size: another file state
    assert rules_in_force()[-1].type == "SVC_CM_RENAMED_TOO"
    path.unlink()
    assert len(rules_in_force()) == builtin


@pytest.mark.parametrize("query", [
    "MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) RETURN p.metadata.name AS p",
    "MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) RETURN p.metadata.name AS p ORDER BY p DESC",
    "MATCH (p:Pod) RETURN p.status.phase AS phase, count(p) AS n",
])
def test_tessera_query_limit_prints_the_first_rows_of_the_whole_answer(query):
    def lines(*flags: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-m", "tessera.cli.main", "query", "-s", "demo", "-o", "jsonl", *flags, query],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    everything = lines()
    assert len(everything) > 2
    assert lines("--limit", "2") == everything[:2]
