"""Output formats (DESIGN §5). ``render(result, fmt, out)`` writes one Result in one format.

Rows formats: table (rich), json, jsonl, yaml, csv. ``cyphernetes``: the Cyphernetes data map.
Graph formats over the matched subgraph: tree, graph (ascii adjacency), dot, mermaid. Libraries
(rich, yaml, csv) are imported inside the renderer that needs them.
"""

from __future__ import annotations

from typing import Any, TextIO

from tessera.core.errors import UsageError

FORMATS: tuple[str, ...] = ("table", "json", "jsonl", "yaml", "csv", "cyphernetes", "tree", "graph", "dot", "mermaid")


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (False for a closed stream, or one with no isatty)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def default_format(is_tty: bool) -> str:
    """``table`` for a terminal, ``jsonl`` for pipes and files."""
    return "table" if is_tty else "jsonl"


def render(result: Any, fmt: str, out: TextIO, *, color: bool = False, width: int | None = None) -> None:
    """Write ``result`` to ``out`` in format ``fmt``.

    Args:
        result: a tessera.core.result.Result.
        fmt: one of FORMATS.
        out: a text stream.
        color: ANSI colour (table and tree only).
        width: table width (default: the terminal's, else 120).
    Raises:
        UsageError for an unknown format.
    """
    if fmt in ("json", "jsonl", "yaml", "csv", "cyphernetes"):
        from tessera.core.render import data

        getattr(data, f"write_{fmt}")(result, out)
    elif fmt == "table":
        from tessera.core.render.table import write_table

        write_table(result, out, color=color, width=width)
    elif fmt in ("tree", "graph", "dot", "mermaid"):
        from tessera.core.render import graph

        getattr(graph, f"write_{fmt}")(result, out, color=color)
    else:
        raise UsageError(f"unknown output format '{fmt}'", hint=f"choose from {', '.join(FORMATS)}")
