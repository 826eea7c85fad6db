r"""The git-friendly notebook format: markdown with one fenced block per cell.

    # Pods and events

    ```cypher {id=c1a2b3 type=query view=table refresh=watch row=1 title="Pods" sources=demo}
    MATCH (p:Pod) RETURN p.metadata.name
    ```

    ```markdown {id=c9f00d type=markdown view=table refresh=manual row=2}
    Notes about *the pods* above.
    ```

Rules (docs/notebooks.md has them too):

- ``# TITLE`` before the first cell is the notebook's title (omitted when the title is empty).
- Every cell is a fenced block: the fence language is the type's (``cypher`` for query, ``sql``,
  ``events``, ``markdown``), then the attributes in braces: ``key=value`` separated by spaces,
  in the order id, type, view, refresh, row, title, sources. A value is bare (letters, digits and
  ``_ . / : @ + = ~ % -``) or a JSON string in double quotes; title is always quoted; sources is a
  comma-separated list of specs, or a JSON array when a spec holds a character a bare value
  cannot. title and sources are left out when empty; ``row=N`` groups cells into rows
  (consecutive cells with the same row number share a row of 1, 2 or 4).
- The fence is three backticks, or one more than the longest run of backticks in the source.
  The source is the text between the fence lines, exactly (no trailing newline is added).
- Blocks are separated by one blank line; the file ends with a newline.

Hand-written files may leave attributes out (defaults: a new id, the fence's type, view table,
refresh manual, a row of its own). Text outside the cell blocks, and fenced blocks without
attributes in a language that is no cell type, become markdown cells (so nothing is lost);
exporting again writes them as fenced markdown cells. export(import(text)) == text for any text
export wrote, and import(export(nb)) == nb.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tessera.core.errors import InputError
from tessera.core.notebook.model import DEFAULTS, Notebook

_BARE = re.compile(r"^[A-Za-z0-9_./:@+=~%-]+$")
_OPEN = re.compile(r"^(`{3,})([^`\s{]*)[ \t]*(\{.*\})?[ \t]*$")
_KEYS = ("id", "type", "view", "refresh", "row", "title", "sources")


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _value(value: str) -> str:
    return value if _BARE.match(value) else _quote(value)


def _sources(specs: list[str]) -> str:
    if all(_BARE.match(s) for s in specs):
        return ",".join(specs)
    return json.dumps(specs, ensure_ascii=False)


def fence_for(source: str) -> str:
    """The backtick fence for a block holding ``source``: three, or one more than the longest
    run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", source)), default=0)
    return "`" * max(3, longest + 1)


def export_markdown(nb: Notebook) -> str:
    """The notebook in the fenced-block format (see the module docstring)."""
    from tessera.core.notebook.cells import fence_language

    parts = []
    if nb.title:
        parts.append(f"# {nb.title}")
    for r, row in enumerate(nb.to_dict()["rows"], start=1):
        for cell in row["cells"]:
            attrs = [f"id={_value(cell['id'])}", f"type={_value(cell['type'])}", f"view={_value(cell['view'])}",
                     f"refresh={_value(cell['refresh'])}", f"row={r}"]
            if cell["title"]:
                attrs.append(f"title={_quote(cell['title'])}")
            if cell["sources"]:
                attrs.append(f"sources={_sources(cell['sources'])}")
            fence = fence_for(cell["source"])
            body = [cell["source"]] if cell["source"] else []
            parts.append("\n".join([f"{fence}{fence_language(cell['type'])} {{{' '.join(attrs)}}}", *body, fence]))
    return "\n\n".join(parts) + "\n" if parts else ""


def _parse_attrs(text: str, where: str) -> dict[str, Any]:
    inner = text.strip()[1:-1]
    decoder = json.JSONDecoder()
    out: dict[str, Any] = {}
    i = 0
    while i < len(inner):
        if inner[i] in " \t":
            i += 1
            continue
        m = re.compile(r"([a-z_]+)=").match(inner, i)
        if not m:
            raise InputError(f"{where}: bad attribute at '{inner[i:i + 20]}': use key=value (keys: {', '.join(_KEYS)})")
        key = m.group(1)
        if key not in _KEYS:
            raise InputError(f"{where}: unknown attribute '{key}' (attributes: {', '.join(_KEYS)})")
        if key in out:
            raise InputError(f"{where}: attribute '{key}' given twice")
        i = m.end()
        if i < len(inner) and inner[i] in "\"[":
            try:
                value, i = decoder.raw_decode(inner, i)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: bad quoted value for '{key}': {exc.msg}") from None
        else:
            end = i
            while end < len(inner) and inner[end] not in " \t":
                end += 1
            value, i = inner[i:end], end
            if key == "sources":
                value = [s for s in value.split(",") if s]
            elif key == "row":
                if not value.isdigit():
                    raise InputError(f"{where}: row must be a number, not '{value}'")
                value = int(value)
        if key == "sources" and isinstance(value, str):
            value = [value]
        if key == "sources" and not (isinstance(value, list) and all(isinstance(s, str) for s in value)):
            raise InputError(f"{where}: sources must be a comma-separated list or a JSON array of strings")
        if key != "sources" and key != "row" and not isinstance(value, str):
            raise InputError(f"{where}: '{key}' must be a string")
        out[key] = value
    return out


def import_markdown(text: str, *, name: str = "notebook", where: str = "<markdown>") -> Notebook:
    """A Notebook from the fenced-block format.

    Raises:
        InputError ``where:line: what`` for an unterminated fence, a bad attribute, a row that does
        not hold 1, 2 or 4 cells, a repeated id.
    """
    from tessera.core.notebook.cells import cell_type_names, type_for_fence

    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    title: str | None = None
    cells: list[tuple[dict, Any, int]] = []  # (cell, row label, line)
    prose: list[str] = []
    prose_line = 0
    known = set(cell_type_names())

    def flush_prose() -> None:
        while prose and not prose[0].strip():
            prose.pop(0)
        while prose and not prose[-1].strip():
            prose.pop()
        if prose:
            cells.append(({"type": "markdown", "source": "\n".join(prose)}, None, prose_line))
        prose.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        m = _OPEN.match(line)
        lang = m.group(2) if m else ""
        is_cell = bool(m) and (m.group(3) is not None or type_for_fence(lang) in known)
        if m and is_cell:
            flush_prose()
            fence, start = m.group(1), i
            body = []
            i += 1
            while i < len(lines) and not re.fullmatch(rf"`{{{len(fence)},}}[ \t]*", lines[i]):
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise InputError(f"{where}:{start + 1}: the fenced block opened here is not closed (a line of {fence})")
            attrs = _parse_attrs(m.group(3), f"{where}:{start + 1}") if m.group(3) else {}
            cell = {"type": attrs.get("type") or type_for_fence(lang or "cypher"), "source": "\n".join(body)}
            for key in ("id", "view", "refresh", "title", "sources"):
                if key in attrs:
                    cell[key] = attrs[key]
            cells.append((cell, attrs.get("row"), start + 1))
            i += 1
            continue
        if m:  # a fence of another language inside prose: keep it whole
            fence = m.group(1)
            if not prose:
                prose_line = i + 1
            prose.append(line)
            i += 1
            while i < len(lines):
                prose.append(lines[i])
                i += 1
                if re.fullmatch(rf"`{{{len(fence)},}}[ \t]*", prose[-1]):
                    break
            continue
        if title is None and not cells and not any(p.strip() for p in prose) and (line.startswith("# ") or line == "#"):
            title = line[2:]
            i += 1
            continue
        if not prose:
            prose_line = i + 1
        prose.append(line)
        i += 1
    flush_prose()

    rows: list[dict] = []
    labels: list[Any] = []
    for cell, label, line in cells:
        if label is not None and labels and label == labels[-1]:
            rows[-1]["cells"].append(cell)
            continue
        if label is not None and label in labels:
            raise InputError(f"{where}:{line}: row {label} continues after another row; a row's cells must be together")
        rows.append({"cells": [cell]})
        labels.append(label)
    try:
        return Notebook.from_dict({"title": title or "", "rows": rows}, name=name)
    except InputError as exc:
        raise InputError(f"{where}: {exc.message}") from None


__all__ = ["export_markdown", "import_markdown", "DEFAULTS"]
