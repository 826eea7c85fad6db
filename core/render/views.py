"""A result as a pane shows it: one of the cell views (table, json, yaml, tree, graph), filtered,
and cut to the window of lines the pane has room for.

Live panes redraw often and results can hold 10,000 rows, so only the visible window is turned
into rich renderables; the full text of the json/yaml/tree/graph views is built once per
(result, view, filter) and kept in a ``ViewCache``. Front ends (the Textual dashboard, ``tessera
pane``) share this module, so a cell looks the same everywhere.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Iterator

from tessera.core.render.data import cell_text, plain

VIEWS = ("table", "json", "yaml", "tree", "graph")


def next_view(view: str) -> str:
    """The view after ``view`` in VIEWS (wrapping round)."""
    return VIEWS[(VIEWS.index(view) + 1) % len(VIEWS)] if view in VIEWS else VIEWS[0]


def filter_rows(result: Any, needle: str | None) -> list[dict]:
    """The rows of ``result`` having a cell whose text contains ``needle`` (case-insensitive);
    every row when there is no needle."""
    if not needle:
        return result.rows
    low = needle.lower()
    cols = result.columns
    return [row for row in result.rows if any(low in cell_text(row.get(c)).lower() for c in cols)]


@dataclass
class Window:
    """A view cut to fit: ``renderable`` (a rich renderable of at most ``height`` lines),
    ``total`` (lines or rows the whole view has), ``shown`` (rows after the filter, for the
    header), ``offset`` (the first line shown, clamped) and ``content`` (what the renderable
    shows, comparable: equal contents draw the same, so a front end may keep what it drew)."""

    renderable: Any
    total: int
    shown: int
    offset: int
    content: Any = None


class ViewCache:
    """The full text lines of a view, built once per (result, view, filter)."""

    def __init__(self) -> None:
        self._result: Any = None  # held, so its id cannot be reused by a newer result
        self._key: tuple | None = None
        self._value: Any = None

    def _get(self, result: Any, key: tuple, build: Any) -> Any:
        if result is not self._result or key != self._key:
            self._value = build()
            self._result, self._key = result, key
        return self._value

    def lines(self, result: Any, view: str, needle: str | None) -> "LazyLines":
        """The tree or graph view's lines, made as far as they are read (see LazyLines)."""
        return self._get(result, (view, needle), lambda: LazyLines(result, view, needle))

    def rows(self, result: Any, needle: str | None) -> list[dict]:
        """The filtered rows (the table view), kept like ``lines``."""
        return self._get(result, ("rows", needle), lambda: filter_rows(result, needle))

    def rows_text(self, result: Any, view: str, needle: str | None) -> "RowsText":
        """The json or yaml view's lines, made as far as they are read (see RowsText)."""
        return self._get(result, (view, needle, "lazy"), lambda: RowsText(result, view, filter_rows(result, needle)))


class RowsText:
    """The json or yaml text of rows, made a row at a time as far as a window reads it: a pane
    at the top of 10,000 rows formats the few rows it shows, not all of them.

    Args:
        result: the Result (for its columns).
        view: ``json`` or ``yaml``.
        rows: the (filtered) rows.
    """

    def __init__(self, result: Any, view: str, rows: list[dict]):
        self.columns = list(result.columns)
        self.view = view
        self.rows = rows
        self.lines: list[str] = ["[]"] if not rows else (["["] if view == "json" else [])
        self._next = 0

    @property
    def done(self) -> bool:
        return self._next >= len(self.rows)

    @property
    def shown(self) -> int:
        """The rows the text shows."""
        return len(self.rows)

    def upto(self, n: int) -> list[str]:
        """The lines, made until there are at least ``n`` (or all of them)."""
        while len(self.lines) < n and not self.done:
            row = {c: plain(self.rows[self._next].get(c)) for c in self.columns}
            self._next += 1
            last = self.done
            if self.view == "json":
                text = json.dumps(row, indent=2, ensure_ascii=False, default=str)
                self.lines.extend("  " + line for line in text.split("\n"))
                if not last:
                    self.lines[-1] += ","
                else:
                    self.lines.append("]")
            else:
                self.lines.extend(_yaml_dump([row]).rstrip("\n").split("\n"))
        return self.lines

    def total(self) -> int:
        """The number of lines: exact once all are made, else an estimate from those made."""
        if self.done:
            return len(self.lines)
        return max(len(self.lines), round(len(self.lines) / max(1, self._next) * len(self.rows)))


def _yaml_dump(data: Any) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's is several times faster
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, width=1000)


class LazyLines:
    """The tree or graph text of a result, made a line at a time as far as a window reads it:
    a pane at the top of a 10,000-pod tree walks the few nodes it shows. Read like RowsText.

    Args:
        result: the Result (its matched subgraph).
        view: ``tree`` or ``graph``.
        needle: keep only lines containing this text (case-insensitively).
    """

    def __init__(self, result: Any, view: str, needle: str | None):
        from tessera.core.result import Result

        self._lines = _graph_view_lines(result, view, needle)
        self.lines: list[str] = []
        self.done = False
        nodes, edges = getattr(result, "nodes", None) or [], getattr(result, "edges", None) or []
        # every node is printed at least once (tree) and every edge once (graph): a floor for
        # the length until all is made; unknown with a filter
        self._floor = 0 if needle else (len(nodes) if view == "tree" else len(edges))
        self.shown = len(filter_rows(result, needle)) if not isinstance(result, Result) or nodes else 0

    def upto(self, n: int) -> list[str]:
        """The lines, made until there are at least ``n`` (or all of them)."""
        while len(self.lines) < n and not self.done:
            line = next(self._lines, None)
            if line is None:
                self.done = True
            else:
                self.lines.append(line)
        return self.lines

    def total(self) -> int:
        """The number of lines: exact once all are made, else at least those made."""
        return len(self.lines) if self.done else max(len(self.lines), self._floor)


def _graph_view_lines(result: Any, view: str, needle: str | None) -> Iterator[str]:
    from tessera.core.render import graph

    lines = graph.tree_lines(result) if view == "tree" else graph.graph_lines(result)
    if not needle:
        return lines
    low = needle.lower()
    return (line for line in lines if low in line.lower())


def window(result: Any, view: str, *, height: int, offset: int = 0, needle: str | None = None,
           cache: ViewCache | None = None, color: bool = True) -> Window:
    """The part of ``result`` a pane of ``height`` lines shows from line ``offset``.

    Args:
        result: a Result.
        view: one of VIEWS.
        height: lines available (the table view spends one on its header).
        offset: the first row (table) or line (other views) to show; clamped to the end.
        needle: keep only rows (lines, for tree and graph) containing this text.
        cache: where the full text of the views is kept between calls.
        color: syntax colours for json/yaml and a bold header for tables.
    Returns:
        a Window.
    """
    from rich.text import Text

    cache = cache or ViewCache()
    height = max(1, height)
    if view == "table" or view not in VIEWS:
        rows = cache.rows(result, needle)
        body = max(1, height - 1)
        offset = max(0, min(offset, len(rows) - body))
        visible = rows[offset:offset + body]
        content = ("table", color, tuple(result.columns), tuple(tuple(cell_text(r.get(c)) for c in result.columns) for r in visible))
        return Window(_table(result.columns, visible, color), len(rows), len(rows), offset, content)
    text = cache.rows_text(result, view, needle) if view in ("json", "yaml") else cache.lines(result, view, needle)
    lines = text.upto(offset + height)
    if len(lines) < offset + height:  # scrolled past the end: clamp to the last page
        offset = max(0, len(lines) - height)
    total, shown = text.total(), text.shown
    part = "\n".join(lines[offset:offset + height])
    if color and view in ("json", "yaml"):
        from rich.syntax import Syntax

        renderable: Any = Syntax(part, view, theme="ansi_dark", background_color="default", word_wrap=False)
    else:
        renderable = Text(part)
    return Window(_NoWrap(renderable), total, shown, offset, (view, color, part))


def _table(columns: list[str], rows: list[dict], color: bool) -> Any:
    from rich.text import Text

    if not columns:
        return Text("(no columns)")
    cells = [[cell_text(row.get(c)) for c in columns] for row in rows]
    table = _FittedTable(columns, cells, color)
    if not rows:
        from rich.console import Group

        return Group(table, Text("(no rows)", style="dim" if color else ""))
    return table


# A column is cut to no fewer characters than this (or its own width, when narrower) before the
# widest columns are cut further.
_COLUMN_FLOOR = 8


class _FittedTable:
    """A pane's table whose columns are fitted to the width it is drawn in: when the columns do not
    fit, the widest are cut first (with an ellipsis), so the narrow ones (a score, a name, a phase)
    stay whole. rich's own fitting takes the same number of characters from every column of a
    table that cannot wrap, and a long column (a search hit's snippet) left the short ones none."""

    def __init__(self, columns: list[str], cells: list[list[str]], color: bool):
        self.columns, self.cells, self.color = columns, cells, color

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.table import Table
        from rich.text import Text

        natural = [max([len(c)] + [len(row[i]) for row in self.cells]) for i, c in enumerate(self.columns)]
        widths = fitted_widths(natural, options.max_width - (len(natural) - 1))
        table = Table(box=None, expand=False, pad_edge=False, show_edge=False, collapse_padding=True,
                      header_style="bold" if self.color else "")
        for col, width in zip(self.columns, widths, strict=True):
            table.add_column(Text(col), no_wrap=True, overflow="ellipsis", width=width)
        for row in self.cells:
            table.add_row(*(Text(v) for v in row))
        yield table


def fitted_widths(natural: list[int], room: int) -> list[int | None]:
    """Column widths within ``room`` characters: each column's own width when they all fit; else
    every column cut to one cap (the largest that fits), none below _COLUMN_FLOOR (or its own
    width). When even the floors do not fit, None for each (rich's own fitting)."""
    if sum(natural) <= room:
        return list(natural)
    floors = [min(w, _COLUMN_FLOOR) for w in natural]
    if sum(floors) > room:
        return [None] * len(natural)
    low, high = _COLUMN_FLOOR, max(natural)
    while low < high:  # the largest cap whose widths fit
        cap = (low + high + 1) // 2
        if sum(max(f, min(w, cap)) for w, f in zip(natural, floors, strict=True)) <= room:
            low = cap
        else:
            high = cap - 1
    widths = [max(f, min(w, low)) for w, f in zip(natural, floors, strict=True)]
    spare = room - sum(widths)
    for i in sorted(range(len(widths)), key=lambda i: -natural[i]):  # what the cap left, to the widest
        if spare <= 0:
            break
        more = min(spare, natural[i] - widths[i])
        widths[i] += more
        spare -= more
    return widths


class _NoWrap:
    """Lines cut at the pane's edge with an ellipsis, never wrapped (a pane is a window)."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield from console.render(self.inner, options.update(no_wrap=True, overflow="ellipsis"))


def markdown(text: str) -> Any:
    """A markdown cell's text as a rich renderable."""
    from rich.markdown import Markdown

    return Markdown(text or "")


def rows_as_text(result: Any, view: str, needle: str | None = None) -> str:
    """The whole view as plain text (what ``copy`` puts on the clipboard): the table as TSV, the
    other views as their full text."""
    if view == "table" or view not in VIEWS:
        rows = filter_rows(result, needle)
        cols = result.columns
        lines = ["\t".join(cols)] + ["\t".join(cell_text(r.get(c)) for c in cols) for r in rows]
        return "\n".join(lines) + "\n"
    if view in ("json", "yaml"):
        text: RowsText | LazyLines = RowsText(result, view, filter_rows(result, needle))
    else:
        text = LazyLines(result, view, needle)
    return "\n".join(text.upto(sys.maxsize)) + "\n"


