"""``.ipynb`` import and export through nbformat (v4, validated against its schema).

Export: markdown cells become markdown cells, every other type a code cell (no outputs); the
nbformat cell id is the Tessera cell id; each cell's metadata holds
``{"tessera": {"type", "view", "refresh", "sources", "title", "row"}}`` (row: the 1-based row it
sits in, so the layout survives) and the notebook metadata ``{"tessera": {"title", "version": 1}}``.
nbformat.writes is deterministic, so export(import(text)) == text for a file Tessera wrote.

Import of a notebook Tessera did not write: markdown cells become markdown cells, code cells
query cells, each in a row of its own; the title is the metadata's, else the first ``# `` heading
of a markdown cell, else empty. Code cells in another language (a Python notebook: its
``language_info`` or kernel says so) or, when the notebook names no language, code that is not a
Tessera query, are never query cells: they become markdown cells holding the code in a fenced
block of its language, and one warning says how many.
"""

from __future__ import annotations

from typing import Any

from tessera.core.errors import InputError
from tessera.core.notebook.model import ATTRS, DEFAULTS, Notebook

VERSION = 1
# Notebook languages whose code cells are Tessera queries (what export_ipynb writes).
QUERY_LANGUAGES = ("cypher", "tessera")


def export_ipynb(nb: Notebook) -> str:
    """The notebook as .ipynb JSON text (validated)."""
    import nbformat
    from nbformat import v4

    out = v4.new_notebook()
    out.metadata["tessera"] = {"title": nb.title, "version": VERSION}
    out.metadata["language_info"] = {"name": "cypher"}
    for r, row in enumerate(nb.to_dict()["rows"], start=1):
        for cell in row["cells"]:
            meta = {"tessera": {**{a: cell[a] for a in ATTRS}, "row": r}}
            if cell["type"] == "markdown":
                out.cells.append(v4.new_markdown_cell(cell["source"], id=cell["id"], metadata=meta))
            else:
                out.cells.append(v4.new_code_cell(cell["source"], id=cell["id"], metadata=meta))
    nbformat.validate(out)
    return nbformat.writes(out, version=4)


def _language(data: Any) -> str | None:
    """The notebook's code language from its metadata (lower case), or None when it names none."""
    meta = data.metadata or {}
    name = (meta.get("language_info") or {}).get("name") or (meta.get("kernelspec") or {}).get("language")
    language = str(name or "").strip().lower()
    return language or None


def _is_query(source: str) -> bool:
    from tessera.core.errors import TesseraError
    from tessera.core.query.run import parse_query

    try:
        parse_query(source)
    except TesseraError:
        return False
    return True


def _as_markdown_code(source: str, language: str | None) -> str:
    """Code kept as a markdown cell: a fenced block of its language."""
    from tessera.core.notebook.markdown import fence_for

    fence = fence_for(source)
    return f"{fence}{language or ''}\n{source}\n{fence}" if source else ""


def import_ipynb(text: str, *, name: str = "notebook", where: str = "<ipynb>",
                 warnings: list[str] | None = None) -> Notebook:
    """A Notebook from .ipynb JSON text.

    Args:
        warnings: gets one line when code cells were kept as markdown (other-language code).
    Raises:
        InputError naming ``where`` when the text is not a valid nbformat notebook or its
        Tessera metadata is inconsistent.
    """
    import nbformat

    try:
        data = nbformat.reads(text, as_version=4)
        nbformat.validate(data)
    except Exception as exc:  # nbformat raises NotJSONError, ValidationError, ...
        first = str(exc).strip().split("\n")[0]
        raise InputError(f"{where}: not a valid Jupyter notebook: {first}") from None
    meta = data.metadata.get("tessera") or {}
    title = meta.get("title")
    language = _language(data)
    foreign = language is not None and language not in QUERY_LANGUAGES
    kept_as_markdown = 0
    rows: list[dict] = []
    last_row = None
    for cell in data.cells:
        tmeta = (cell.get("metadata") or {}).get("tessera") or {}
        kind = tmeta.get("type") or ("markdown" if cell.cell_type == "markdown" else "query")
        if cell.cell_type == "raw" and not tmeta:
            kind = "markdown"
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if cell.cell_type == "code" and not tmeta and (foreign or (language is None and source.strip()
                                                                   and not _is_query(source))):
            kind, source = "markdown", _as_markdown_code(source, language)
            kept_as_markdown += 1
        entry: dict[str, Any] = {**DEFAULTS, **{a: tmeta[a] for a in ATTRS if a in tmeta}, "type": kind,
                                 "source": source}
        if cell.get("id"):
            entry["id"] = cell["id"]
        row = tmeta.get("row")
        if row is None or row != last_row:
            rows.append({"cells": []})
        rows[-1]["cells"].append(entry)
        last_row = row
        if title is None and kind == "markdown" and entry["source"].startswith("# "):
            title = entry["source"].split("\n")[0][2:].strip()
    if kept_as_markdown and warnings is not None:
        what = f"{language} code" if foreign else "code that is not a Tessera query"
        warnings.append(f"{where}: {kept_as_markdown} code cell{'s' if kept_as_markdown != 1 else ''} of {what} "
                        f"imported as markdown (shown, never run)")
    try:
        return Notebook.from_dict({"title": title or "", "rows": rows}, name=name)
    except InputError as exc:
        raise InputError(f"{where}: {exc.message}") from None
