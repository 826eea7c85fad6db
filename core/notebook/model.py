"""The notebook document: a pycrdt ``Doc`` (a Yjs document, so edits from anywhere merge).

Layout of the document::

    meta: Map   {"title": str}
    rows: Array of Map {"cells": Array of cell Map}     each row holds 1, 2 or 4 cells
    cell Map:   id (str, "c" + 6 hex), type (str), source (Text), view (str), refresh (str),
                sources (str: a JSON list of source specs), title (str)

Cells are numbered 1, 2, ... in reading order (row by row, left to right); ``NAME/N`` addresses
cell N. Every edit below runs in one pycrdt transaction, so it is one binary update. Edits that
move a cell to another row re-create its Map with the same id and attributes (a CRDT array has
no move); a cell that only changes attributes or text keeps its Map.

pycrdt is imported lazily: importing this module costs nothing until a notebook is touched.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any, Iterable

from tessera.core.errors import InputError, QueryError, UsageError
from tessera.core.render.views import VIEWS

ROW_SIZES = (1, 2, 4)
ATTRS = ("type", "view", "refresh", "sources", "title")
DEFAULTS: dict[str, Any] = {"type": "query", "view": "table", "refresh": "manual", "sources": [], "title": ""}
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TYPE = re.compile(r"^[a-z][a-z0-9_-]*$")
_REFRESH = re.compile(r"^(manual|watch|every:([1-9][0-9]*))$")


def new_cell_id(taken: Iterable[str] = ()) -> str:
    """A short id safe in event subjects and nbformat cell ids: ``c`` + 6 hex digits."""
    taken = set(taken)
    while True:
        cid = "c" + secrets.token_hex(3)
        if cid not in taken:
            return cid


# --- attribute checks (one-line UsageErrors naming the accepted values) ------------------------


def check_view(value: str) -> str:
    if value not in VIEWS:
        raise UsageError(f"'{value}' is not a view; choose from {', '.join(VIEWS)}")
    return value


def check_refresh(value: str) -> str:
    if not _REFRESH.match(value or ""):
        raise UsageError(f"'{value}' is not a refresh policy; use manual, watch or every:N (N seconds, N >= 1)")
    return value


def refresh_seconds(value: str) -> int | None:
    """``every:N`` -> N; manual and watch -> None."""
    m = _REFRESH.match(value)
    return int(m.group(2)) if m and m.group(2) else None


def check_type_name(value: str) -> str:
    if not _TYPE.match(value or ""):
        raise UsageError(f"'{value}' is not a cell type name (lower-case letters, digits, _ and -)")
    return value


def check_title(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise UsageError("a title is one line")
    return value


def check_sources(value: Any) -> list[str]:
    if isinstance(value, str) or not all(isinstance(s, str) and s for s in value):
        raise UsageError("sources are a list of non-empty source specs (-s values)")
    return list(value)


def check_cell_id(value: str) -> str:
    if not _ID.match(value or ""):
        raise InputError(f"bad cell id '{value}': 1 to 64 letters, digits, _ or -")
    return value


CHECKS = {"type": check_type_name, "view": check_view, "refresh": check_refresh, "sources": check_sources,
          "title": check_title}


def _utf8_len(text: str) -> int:
    # pycrdt Text indices are UTF-8 byte offsets
    return len(text.encode("utf-8"))


class Notebook:
    """A notebook document. ``name`` only labels error messages.

    Args:
        doc: an existing pycrdt Doc (default: a new, empty one).
        name: the notebook's name, for messages.
    """

    def __init__(self, doc: Any = None, *, name: str = "notebook"):
        from pycrdt import Array, Doc, Map

        self.doc = doc if doc is not None else Doc()
        self.name = name
        self._meta = self.doc.get("meta", type=Map)
        self._rows = self.doc.get("rows", type=Array)

    # --- construction and updates ---------------------------------------------------------

    @classmethod
    def from_updates(cls, updates: Iterable[bytes], *, name: str = "notebook") -> "Notebook":
        """The document that results from applying binary updates in order."""
        from pycrdt import Doc

        doc = Doc()
        for update in updates:
            doc.apply_update(update)
        return cls(doc, name=name)

    @classmethod
    def from_dict(cls, data: dict, *, name: str = "notebook") -> "Notebook":
        """Build a document from a ``to_dict`` snapshot (cell ids kept; missing ones made up).

        Raises:
            InputError for a row that does not hold 1, 2 or 4 cells, a repeated cell id or a bad
            attribute.
        """
        nb = cls(name=name)
        title = data.get("title") or ""
        seen: set[str] = set()
        rows = []
        for r, row in enumerate(data.get("rows", []), start=1):
            cells = row.get("cells", [])
            if len(cells) not in ROW_SIZES:
                raise InputError(f"row {r} has {len(cells)} cells; a row holds 1, 2 or 4")
            built = []
            for cell in cells:
                cell = {**DEFAULTS, **cell}
                cid = cell.get("id") or new_cell_id(seen)
                check_cell_id(cid)
                if cid in seen:
                    raise InputError(f"cell id '{cid}' appears twice")
                seen.add(cid)
                try:
                    for attr in ATTRS:
                        CHECKS[attr](cell[attr])
                except UsageError as exc:
                    raise InputError(f"cell {cid}: {exc.message}") from None
                cell["id"] = cid
                built.append(cell)
            rows.append(built)
        try:
            check_title(title)
        except UsageError as exc:
            raise InputError(exc.message) from None
        with nb.doc.transaction():
            nb._meta["title"] = title
            for row in rows:
                nb._rows.append(_row_map(row))
        return nb

    def state(self) -> bytes:
        """The state vector: pass it to ``update_since`` after an edit."""
        return self.doc.get_state()

    def update_since(self, state: bytes) -> bytes:
        """The binary update holding every change made after ``state``."""
        return self.doc.get_update(state)

    def full_update(self) -> bytes:
        """The whole document as one update (what compaction stores)."""
        return self.doc.get_update()

    # --- reading -----------------------------------------------------------------------------

    @property
    def title(self) -> str:
        return self._meta.get("title") or ""

    def set_title(self, title: str) -> str:
        """Set the title; returns the previous one."""
        check_title(title)
        before = self.title
        self._meta["title"] = title
        return before

    def layout(self) -> list[list[str]]:
        """Cell ids row by row."""
        return [[str(c["id"]) for c in row["cells"]] for row in self._rows]

    def ids(self) -> list[str]:
        """Cell ids in reading order."""
        return [cid for row in self.layout() for cid in row]

    def __len__(self) -> int:
        return sum(len(row["cells"]) for row in self._rows)

    def _locate(self, n: int) -> tuple[int, int]:
        count = len(self)
        if not isinstance(n, int) or n < 1 or n > count:
            if count == 0:
                raise QueryError(f"notebook '{self.name}' has no cells; there is no cell {n}",
                                 hint=f"add one with: tessera cell add {self.name} 'MATCH ...'")
            raise QueryError(f"notebook '{self.name}' has {count} cell{'s' if count != 1 else ''}; there is no cell {n}")
        i = n
        for r, row in enumerate(self._rows):
            size = len(row["cells"])
            if i <= size:
                return r, i - 1
            i -= size
        raise AssertionError("unreachable")

    def _cell_map(self, n: int) -> Any:
        r, p = self._locate(n)
        return self._rows[r]["cells"][p]

    def cell(self, n: int) -> dict:
        """Cell ``n`` (1-based, reading order) as a plain dict (see ``to_dict``)."""
        return _snapshot(self._cell_map(n))

    def number_of(self, cell_id: str) -> int:
        """The 1-based number of the cell with this id."""
        ids = self.ids()
        if cell_id not in ids:
            raise QueryError(f"notebook '{self.name}' has no cell with id '{cell_id}'")
        return ids.index(cell_id) + 1

    def row_of(self, n: int) -> int:
        """The 1-based row holding cell ``n``."""
        return self._locate(n)[0] + 1

    def cells(self) -> list[dict]:
        """Every cell as a plain dict, in reading order, each with ``number`` and ``row`` added."""
        out = []
        for r, row in enumerate(self._rows, start=1):
            for cell in row["cells"]:
                out.append({**_snapshot(cell), "number": len(out) + 1, "row": r})
        return out

    def to_dict(self) -> dict:
        """The plain snapshot: ``{"title", "rows": [{"cells": [{id, type, title, view, refresh,
        sources, source}]}]}`` (what ``notebook show -o json`` prints, and what round trips keep)."""
        return {"title": self.title,
                "rows": [{"cells": [_snapshot(c) for c in row["cells"]]} for row in self._rows]}

    # --- edits -------------------------------------------------------------------------------

    def add_cell(self, type: str = "query", source: str = "", *, view: str = "table", refresh: str = "manual",
                 sources: list[str] | None = None, title: str = "", id: str | None = None,
                 after: int | None = None) -> tuple[str, int]:
        """Add a cell in a new row of its own: at the end, or after the row holding cell ``after``
        (0 = before every row).

        Returns:
            (the new cell's id, its number).
        """
        cell = {"id": id or new_cell_id(self.ids()), "type": check_type_name(type), "source": source,
                "view": check_view(view), "refresh": check_refresh(refresh),
                "sources": check_sources(sources or []), "title": check_title(title)}
        if cell["id"] in self.ids():
            raise UsageError(f"notebook '{self.name}' already has a cell with id '{cell['id']}'")
        if after is None:
            index = len(self._rows)
        elif after == 0:
            index = 0
        else:
            index = self._locate(after)[0] + 1
        with self.doc.transaction():
            self._rows.insert(index, _row_map([cell]))
        return cell["id"], self.number_of(cell["id"])

    def edit_source(self, n: int, text: str) -> bool:
        """Replace cell ``n``'s source with ``text`` as a minimal CRDT edit (common prefix and
        suffix kept, so concurrent edits elsewhere in the text merge). Returns whether it changed."""
        t = self._cell_map(n)["source"]
        old = str(t)
        if old == text:
            return False
        with self.doc.transaction():
            _replace_text(t, old, text)
        return True

    def set_attrs(self, n: int, **attrs: Any) -> dict[str, list]:
        """Set cell attributes (type, view, refresh, sources, title).

        Returns:
            ``{attr: [before, after]}`` for each attribute that changed.
        """
        cell = self._cell_map(n)
        before = _snapshot(cell)
        changes: dict[str, list] = {}
        for attr, value in attrs.items():
            if attr not in ATTRS:
                raise UsageError(f"unknown cell attribute '{attr}'; cells have {', '.join(ATTRS)}")
            value = CHECKS[attr](value)
            if before[attr] != value:
                changes[attr] = [before[attr], value]
        if changes:
            with self.doc.transaction():
                for attr, (_, value) in changes.items():
                    cell[attr] = json.dumps(value) if attr == "sources" else value
        return changes

    def remove_cell(self, n: int) -> dict:
        """Remove cell ``n`` and return it. A row left with 3 cells becomes a row of 2 followed
        by a row of 1; an emptied row disappears."""
        r, p = self._locate(n)
        cells = self._rows[r]["cells"]
        gone = _snapshot(cells[p])
        with self.doc.transaction():
            del cells[p]
            size = len(cells)
            if size == 0:
                del self._rows[r]
            elif size == 3:
                last = _snapshot(cells[2])
                del cells[2]
                self._rows.insert(r + 1, _row_map([last]))
        return gone

    def move_cell(self, n: int, to: int) -> bool:
        """Move cell ``n`` to position ``to`` in reading order; the rows keep their sizes and the
        cells in between shift by one. Returns whether anything moved."""
        self._locate(n)
        self._locate(to)
        if n == to:
            return False
        order = self.ids()
        snapshots = {c["id"]: c for c in (_snapshot(m) for row in self._rows for m in row["cells"])}
        moving = order.pop(n - 1)
        order.insert(to - 1, moving)
        with self.doc.transaction():
            i = 0
            for row in self._rows:
                cells = row["cells"]
                for p in range(len(cells)):
                    want = order[i]
                    if str(cells[p]["id"]) != want:
                        del cells[p]
                        cells.insert(p, _cell_map(snapshots[want]))
                    i += 1
        return True

    def split_row(self, n: int) -> tuple[int, list[str], list[str]]:
        """Split the row holding cell ``n``: 2 cells -> two rows of 1, 4 -> two rows of 2.

        Returns:
            (the row number, the ids kept in it, the ids of the new row after it).
        """
        r, _ = self._locate(n)
        cells = self._rows[r]["cells"]
        size = len(cells)
        if size == 1:
            raise UsageError(f"row {r + 1} of notebook '{self.name}' holds one cell; there is nothing to split")
        half = size // 2
        moved = [_snapshot(cells[i]) for i in range(half, size)]
        with self.doc.transaction():
            del cells[half:size]
            self._rows.insert(r + 1, _row_map(moved))
        return r + 1, [str(cells[i]["id"]) for i in range(half)], [c["id"] for c in moved]

    def merge_rows(self, n: int) -> tuple[int, list[str]]:
        """Merge the row holding cell ``n`` with the row after it: 1 + 1 -> 2, 2 + 2 -> 4.

        Returns:
            (the row number, the ids of the merged row).
        """
        r, _ = self._locate(n)
        if r + 1 >= len(self._rows):
            raise UsageError(f"row {r + 1} is the last row of notebook '{self.name}'; there is no next row to merge with")
        cells = self._rows[r]["cells"]
        nxt = self._rows[r + 1]["cells"]
        a, b = len(cells), len(nxt)
        if not ((a, b) in ((1, 1), (2, 2))):
            raise UsageError(
                f"cannot merge row {r + 1} ({a} cell{'s' if a != 1 else ''}) with row {r + 2} ({b} cell{'s' if b != 1 else ''}): "
                "a row holds 1, 2 or 4 cells, so only 1 + 1 and 2 + 2 merge")
        moved = [_snapshot(c) for c in nxt]
        with self.doc.transaction():
            del self._rows[r + 1]
            for cell in moved:
                cells.append(_cell_map(cell))
        return r + 1, [str(c["id"]) for c in cells]


def _replace_text(t: Any, old: str, text: str) -> None:
    """Turn CRDT text ``t`` (holding ``old``) into ``text`` by one delete and one insert between
    the common prefix and suffix."""
    prefix = 0
    limit = min(len(old), len(text))
    while prefix < limit and old[prefix] == text[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[len(old) - 1 - suffix] == text[len(text) - 1 - suffix]:
        suffix += 1
    start = _utf8_len(old[:prefix])
    removed = old[prefix:len(old) - suffix]
    inserted = text[prefix:len(text) - suffix]
    if removed:
        del t[start:start + _utf8_len(removed)]
    if inserted:
        t.insert(start, inserted)


class MergeConflict(Exception):
    """Both sides of a three-way merge changed the same lines (``merge_text``); the caller
    decides what to tell the user and where the losing version goes."""


def _line_hunks(base: list[str], other: list[str]) -> list[tuple[int, int, list[str]]]:
    """The changes from ``base`` to ``other`` (lists of lines) as (start, end, new lines): the
    base lines [start, end) are replaced by the new lines (start == end: an insertion)."""
    from difflib import SequenceMatcher

    ops = SequenceMatcher(None, base, other, autojunk=False).get_opcodes()
    return [(i1, i2, other[j1:j2]) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def _clash(a: tuple[int, int, list[str]], b: tuple[int, int, list[str]]) -> bool:
    """Two hunks of the same base that cannot both apply: they change a common line, one
    inserts inside lines the other changes, or both insert different lines at one place."""
    if a == b:
        return False  # the same change on both sides
    (a1, a2, _), (b1, b2, _) = a, b
    if a1 == a2 and b1 == b2:
        return a1 == b1
    if a1 == a2:
        return b1 < a1 < b2
    if b1 == b2:
        return a1 < b1 < a2
    return max(a1, b1) < min(a2, b2)


def merge_text(base: str, theirs: str, mine: str) -> str:
    """Three-way merge, line by line, of two edits of ``base`` (as ``git merge-file`` does): an
    edit made on an old copy (``cell edit`` with ``$EDITOR``, the dashboard's editor) keeps the
    changes others made meanwhile to other lines.

    Raises:
        MergeConflict when both changed the same line (or overlapping lines) differently: a
        character-level merge there would make a text neither side wrote (``LIMIT 50`` and
        ``LIMIT 1`` giving ``LIMIT 01``).
    """
    if theirs == base or mine == theirs:
        return mine
    if mine == base:
        return theirs
    lines = base.split("\n")
    ours, others = _line_hunks(lines, mine.split("\n")), _line_hunks(lines, theirs.split("\n"))
    for a in ours:
        for b in others:
            if _clash(a, b):
                raise MergeConflict(f"both changed line {min(a[0], b[0]) + 1}")
    hunks = sorted(set((i1, i2, tuple(new)) for i1, i2, new in ours + others), key=lambda h: (h[0], h[1]))
    out: list[str] = []
    at = 0
    for i1, i2, new in hunks:
        out.extend(lines[at:i1])
        out.extend(new)
        at = i2
    out.extend(lines[at:])
    return "\n".join(out)


def _snapshot(cell: Any) -> dict:
    sources = cell.get("sources")
    return {
        "id": str(cell.get("id")),
        "type": cell.get("type") or DEFAULTS["type"],
        "title": cell.get("title") or "",
        "view": cell.get("view") or DEFAULTS["view"],
        "refresh": cell.get("refresh") or DEFAULTS["refresh"],
        "sources": json.loads(sources) if sources else [],
        "source": str(cell["source"]) if "source" in cell else "",
    }


def _cell_map(cell: dict) -> Any:
    from pycrdt import Map, Text

    return Map({
        "id": cell["id"], "type": cell["type"], "source": Text(cell.get("source", "")), "view": cell["view"],
        "refresh": cell["refresh"], "sources": json.dumps(list(cell.get("sources") or [])),
        "title": cell.get("title") or "",
    })


def _row_map(cells: list[dict]) -> Any:
    from pycrdt import Array, Map

    return Map({"cells": Array([_cell_map(c) for c in cells])})
