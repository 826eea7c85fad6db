"""Every output format, from a hand-built Result."""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml

from tessera.core.errors import UsageError
from tessera.core.render import FORMATS, default_format, render
from tessera.core.result import GraphEdge, GraphNode, Result

ROWS = [
    {"name": "web", "replicas": 3, "labels": {"app": "web"}, "images": ["nginx:1", "envoy"], "note": None},
    {"name": "db [x]", "replicas": 1, "labels": {}, "images": [], "note": "primary"},
]


def result() -> Result:
    nodes = [GraphNode("s/Deployment/shop/web", "Deployment", "web", "shop"),
             GraphNode("s/ReplicaSet/shop/web-1", "ReplicaSet", "web-1", "shop"),
             GraphNode("s/Pod/shop/web-1-a", "Pod", "web-1-a", "shop"),
             GraphNode("s/Node//n1", "Node", "n1", "")]
    edges = [GraphEdge(nodes[0].id, nodes[1].id, "OWNS"), GraphEdge(nodes[1].id, nodes[2].id, "OWNS"),
             GraphEdge(nodes[2].id, nodes[0].id, "LOOP")]
    return Result(columns=["name", "replicas", "labels", "images", "note"], rows=[dict(r) for r in ROWS],
                  nodes=nodes, edges=edges, cyphernetes={"d": [{"name": "web", "$": {"kind": "Deployment"}}]})


def out(fmt, res=None, **kw) -> str:
    buf = io.StringIO()
    render(res or result(), fmt, buf, **kw)
    return buf.getvalue()


def test_defaults():
    assert default_format(True) == "table" and default_format(False) == "jsonl"
    assert set(FORMATS) == {"table", "json", "jsonl", "yaml", "csv", "cyphernetes", "tree", "graph", "dot", "mermaid"}


def test_json_jsonl_yaml_round_trip():
    assert json.loads(out("json")) == ROWS
    assert [json.loads(line) for line in out("jsonl").splitlines()] == ROWS
    assert list(json.loads(out("jsonl").splitlines()[0])) == ["name", "replicas", "labels", "images", "note"]
    assert yaml.safe_load(out("yaml")) == ROWS


def test_csv():
    rows = list(csv.reader(io.StringIO(out("csv"))))
    assert rows[0] == ["name", "replicas", "labels", "images", "note"]
    assert rows[1] == ["web", "3", '{"app":"web"}', '["nginx:1","envoy"]', ""]


def test_cyphernetes_is_the_data_map():
    assert json.loads(out("cyphernetes")) == {"d": [{"name": "web", "$": {"kind": "Deployment"}}]}


def test_table_plain_and_colored():
    plain = out("table")
    assert "name" in plain and "db [x]" in plain and '{"app":"web"}' in plain
    assert "\x1b[" not in plain
    assert "\x1b[" in out("table", color=True)
    assert out("table", Result(columns=["a"], rows=[])).strip() == "(no rows)"


def test_tree_handles_cycles():
    text = out("tree")
    assert "Deployment/web (shop)" in text and "-[OWNS]-> ReplicaSet/web-1 (shop)" in text
    assert "(see above)" in text and "Node/n1" in text


def test_graph_dot_mermaid():
    g = out("graph")
    assert "Deployment/shop/web -[OWNS]-> ReplicaSet/shop/web-1" in g.splitlines()
    dot = out("dot")
    assert dot.startswith("digraph tessera {") and dot.rstrip().endswith("}")
    assert dot.count("->") == 3 and dot.count("{") == dot.count("}")
    mer = out("mermaid").splitlines()
    assert mer[0] == "graph LR" and sum("-->|" in line for line in mer) == 3


def test_unknown_format():
    with pytest.raises(UsageError, match="unknown output format 'xml'"):
        out("xml")


def test_datetimes_serialise():
    import datetime as dt

    res = Result(columns=["t"], rows=[{"t": dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)}])
    assert json.loads(out("jsonl", res)) == {"t": "2026-01-02T00:00:00Z"}
    assert json.loads(out("json", res)) == [{"t": "2026-01-02T00:00:00Z"}]


def test_tree_lines_leave_no_reference_cycle_behind():
    # A dashboard's tree pane reads a few lines of a new tree_lines() per update and drops it:
    # what it held (the whole subgraph) must go when it does, not wait for a full collection.
    import gc

    from tessera.core.render.graph import tree_lines

    assert list(tree_lines(result()))  # the cyclic graph of result(): every branch walked
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        lines = tree_lines(result())
        first = [next(lines), next(lines)]  # a pane's window: the generator left unfinished
        del lines
        assert gc.collect() == 0 and all(first)
    finally:
        if was_enabled:
            gc.enable()
