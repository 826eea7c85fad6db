"""The subgraph formats: tree, graph (ascii adjacency), dot (Graphviz) and mermaid.

Nodes and edges come from Result.nodes / Result.edges; every listing is sorted so the same
result always prints the same text.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, TextIO


def _label(node: Any) -> str:
    where = f" ({node.namespace})" if node.namespace else ""
    return f"{node.kind}/{node.name}{where}"


def _short(node: Any) -> str:
    return f"{node.kind}/{node.namespace}/{node.name}" if node.namespace else f"{node.kind}/{node.name}"


def _edges(result: Any) -> list:
    seen = set()
    out = []
    for e in result.edges:
        key = (e.source, e.target, e.type)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return sorted(out, key=lambda e: (e.source, e.type, e.target))


def _nodes(result: Any) -> dict[str, Any]:
    return {n.id: n for n in sorted(result.nodes, key=lambda n: n.id)}


def tree_lines(result: Any) -> Iterator[str]:
    """The lines of write_tree, made as they are read (a pane shows the first few of thousands)."""
    nodes = _nodes(result)
    if not nodes:
        yield "(no matches)"
        return
    children: dict[str, list] = {}
    incoming: set[str] = set()
    for e in _edges(result):
        children.setdefault(e.source, []).append(e)
        incoming.add(e.target)
    roots = [i for i in nodes if i not in incoming] or list(nodes)[:1]
    printed: set[str] = set()
    for root in roots:
        yield from _walk(nodes, children, printed, root, "", "", True, True)
    for node_id in nodes:  # pieces of a cycle with no root
        if node_id not in printed:
            yield from _walk(nodes, children, printed, node_id, "", "", True, True)


def _walk(nodes: dict[str, Any], children: dict[str, list], printed: set[str], node_id: str, prefix: str, via: str,
          last: bool, top: bool) -> Iterator[str]:
    """tree_lines from ``node_id`` down. A module function, not a closure in tree_lines: a
    recursive closure is a reference cycle (the function, its own cell) holding the whole
    subgraph, freed only by a full garbage collection: a dashboard's tree pane left one behind
    per update, and the collections that freed them paused the screen."""
    branch = "" if top else ("└── " if last else "├── ")
    node = nodes.get(node_id)
    text = _label(node) if node else node_id
    rel = f"-[{via}]-> " if via else ""
    again = node_id in printed
    yield f"{prefix}{branch}{rel}{text}{' (see above)' if again else ''}"
    if again:
        return
    printed.add(node_id)
    kids = children.get(node_id, [])
    child_prefix = prefix if top else prefix + ("    " if last else "│   ")
    for i, e in enumerate(kids):
        yield from _walk(nodes, children, printed, e.target, child_prefix, e.type, i == len(kids) - 1, False)


def write_tree(result: Any, out: TextIO, *, color: bool = False) -> None:
    """An indented tree from the roots (nodes nothing points at); a node seen twice is marked."""
    out.write("\n".join(tree_lines(result)) + "\n")


def graph_lines(result: Any) -> Iterator[str]:
    """The lines of write_graph, made as they are read."""
    nodes = _nodes(result)
    touched: set[str] = set()
    for e in _edges(result):
        a, b = nodes.get(e.source), nodes.get(e.target)
        yield f"{_short(a) if a else e.source} -[{e.type}]-> {_short(b) if b else e.target}"
        touched |= {e.source, e.target}
    for node_id, node in nodes.items():
        if node_id not in touched:
            yield _short(node)


def write_graph(result: Any, out: TextIO, *, color: bool = False) -> None:
    """One line per edge (``Kind/ns/name -[TYPE]-> Kind/ns/name``), then nodes without edges."""
    for line in graph_lines(result):
        out.write(line + "\n")


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_dot(result: Any, out: TextIO, *, color: bool = False) -> None:
    """A Graphviz digraph: one node per resource (label Kind + name), one edge per relationship."""
    out.write("digraph tessera {\n  rankdir=LR;\n  node [shape=box];\n")
    for node_id, node in _nodes(result).items():
        label = f"{node.kind}\n{node.namespace + '/' if node.namespace else ''}{node.name}"
        out.write(f"  {_dot_quote(node_id)} [label={_dot_quote(label)}];\n")
    for e in _edges(result):
        out.write(f"  {_dot_quote(e.source)} -> {_dot_quote(e.target)} [label={_dot_quote(e.type)}];\n")
    out.write("}\n")


def write_mermaid(result: Any, out: TextIO, *, color: bool = False) -> None:
    """A mermaid ``graph LR`` with sanitised ids (n0, n1...) and quoted labels."""
    ids = {}
    out.write("graph LR\n")
    for i, (node_id, node) in enumerate(_nodes(result).items()):
        ids[node_id] = f"n{i}"
        label = re.sub(r'["<>]', "", f"{node.kind}: {node.namespace + '/' if node.namespace else ''}{node.name}")
        out.write(f'  n{i}["{label}"]\n')
    for e in _edges(result):
        if e.source in ids and e.target in ids:
            rel = re.sub(r"[^A-Za-z0-9_]", "_", e.type)
            out.write(f"  {ids[e.source]} -->|{rel}| {ids[e.target]}\n")
