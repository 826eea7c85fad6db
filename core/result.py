"""The result of running a query: rows for the tabular formats, a subgraph for the graph views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class GraphNode:
    """A matched resource: id is ``source/kind/namespace/name`` (namespace empty if cluster-scoped)."""

    id: str
    kind: str
    name: str
    namespace: str
    variables: list[str] = field(default_factory=list)
    source: str = ""


@dataclass
class GraphEdge:
    """A matched relationship between two GraphNode ids (from the pattern's left node to right)."""

    source: str
    target: str
    type: str


@dataclass
class Result:
    """Rows plus the matched subgraph.

    columns: ordered column names (RETURN aliases or expression text).
    rows: one dict per result row, keyed by column; values are JSON-able (whole resources are
        dicts). A RETURN of nothing (mutations) gives no columns.
    nodes / edges: the subgraph of every resource and relationship taking part in a match.
    cyphernetes: the Cyphernetes-shaped data map (``{var: [...], "aggregate": {...}}``).
    keys: one identity per row (the resources it binds, or its grouping values), used by live
        queries to tell a changed row from a new one.
    """

    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)
    cyphernetes: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


def merge_results(results: list[tuple[str, Result]], shape: str = "graph", column: str = "context") -> Result:
    """The Results of several sources (``(source name, result)``) as one.

    Rows gain a leading ``column`` (``context`` for kube contexts, ``source`` for stores and
    peers' replicas, core/sources/protocol.fan_out_column) and keys the source's name; the subgraphs are put
    side by side (node ids already name their source). In the ``cyphernetes`` shape each
    variable becomes ``<source>_<var>`` and each aggregate ``<source>_<column>``.
    """
    merged = Result()
    if shape == "cyphernetes":
        for name, res in results:
            for key, value in res.cyphernetes.items():
                if key == "aggregate":
                    merged.cyphernetes.setdefault("aggregate", {}).update(
                        {f"{name}_{k}": v for k, v in value.items()}
                    )
                else:
                    merged.cyphernetes[f"{name}_{key}"] = value
        return merged
    merged.columns = [column] + results[0][1].columns
    for name, res in results:
        merged.rows.extend({column: name, **row} for row in res.rows)
        merged.keys.extend(f"{name} {key}" for key in res.keys)
        merged.nodes.extend(res.nodes)
        merged.edges.extend(res.edges)
    return merged
