"""The notebook document: a pycrdt ``Doc`` (a Yjs document, so edits from anywhere merge).

Layout of the document (format 2)::

    meta:   Map   {"title": str, "format": 2}
    cells:  Map   {cell id -> cell Map}
            cell Map: type (str), source (Text), view (str), refresh (str),
                      sources (str: a JSON list of source specs), title (str)
    layout: Array of Map {"cells": Array of cell id strings}      each row holds 1, 2 or 4 cells

A cell's Map (and its source Text) lives from its add to its remove: moving a cell, splitting or
merging rows only move id strings in ``layout``, so text typed concurrently into a cell that
someone moves is kept. Every edit below runs in one pycrdt transaction, so it is one binary update,
and writes the smallest change of ``layout`` that gives the new rows (a row whose ids did not
change is not touched).

Concurrent edits can leave ``layout`` in shapes no single edit makes; reading normalises them
(``normal_layout``), the same way on every replica, so every Doc holding the same updates reads
the same notebook: an id seen twice (two concurrent moves) is kept at its first place, an id
without a cell Map (a concurrent remove) is dropped, an emptied row is skipped, a row of 3 reads
as 2 + 1 (more than 4: chunks of 4, 2, 1), and a cell Map in no row (a row removed while someone
added to it) is shown in a row of its own at the end (sorted by id). The next edit writes the
normalised rows back.

Format 1 (notebooks made before format 2): ``meta`` {title} and ``rows``: Array of Map {"cells":
Array of cell Map (with its ``id``)}. It is still read as is. ``upgrade`` rewrites such a document
in place (same Doc: format 2 structures written, ``rows`` emptied); every edit upgrades first, in
its own transaction, so an owner's first change upgrades. Reading never writes (a peer's replica
is never upgraded by its reader).

Cells are numbered 1, 2, ... in reading order (row by row, left to right); ``NAME/N`` addresses
cell N.

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
FORMAT = 2  # the document layout this code writes (see the module docstring)
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
        doc: an existing pycrdt Doc (default: a new, empty one, in format 2).
        name: the notebook's name, for messages.
    """

    def __init__(self, doc: Any = None, *, name: str = "notebook"):
        from pycrdt import Array, Doc, Map

        fresh = doc is None
        self.doc = doc if doc is not None else Doc()
        self.name = name
        self._meta = self.doc.get("meta", type=Map)
        self._cells = self.doc.get("cells", type=Map)
        self._layout = self.doc.get("layout", type=Array)
        self._rows = self.doc.get("rows", type=Array)  # format 1 only
        self._read_cache: tuple[bytes, list[list[str]], dict[str, dict]] | None = None
        if fresh:
            self._meta["format"] = FORMAT

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
                for cell in row:
                    nb._cells[cell["id"]] = _cell_map(cell)
            nb._write_layout([[c["id"] for c in row] for row in rows])
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

    # --- the format ----------------------------------------------------------------------------

    @property
    def format(self) -> int:
        """2 for the current layout, 1 for a document made before it (``rows`` of cell Maps)."""
        return FORMAT if self._meta.get("format") == FORMAT else 1

    def upgrade(self) -> bool:
        """Rewrite a format 1 document as format 2 in place (one transaction: every cell's Map
        copied into ``cells`` with its text, the rows into ``layout``, ``rows`` emptied, the
        format set). Returns False when it already was format 2 (nothing written)."""
        if self.format == FORMAT:
            return False
        rows, plain = self._read()
        cells = {cid: _snapshot(cid, plain[cid]) for row in rows for cid in row}
        with self.doc.transaction():
            for cid, cell in cells.items():
                self._cells[cid] = _cell_map(cell)
            self._write_layout(rows)
            if len(self._rows):
                del self._rows[0:len(self._rows)]
            self._meta["format"] = FORMAT
        return True

    def _read(self) -> tuple[list[list[str]], dict[str, dict]]:
        """(the rows of cell ids as readers see them, each cell id's content as plain data; the
        caller must not change them). Reading a pycrdt document element by element is slow (a
        transaction per access) and a live view reads often, so the result is kept until the
        document changes: its state vector says what was inserted, and an update past it holds
        just the delete set, which says what was deleted."""
        state = self.doc.get_state()
        key = state + self.doc.get_update(state)
        if self._read_cache is not None and self._read_cache[0] == key:
            return self._read_cache[1], self._read_cache[2]
        rows, plain = self._read_document()
        self._read_cache = (key, rows, plain)
        return rows, plain

    def _read_document(self) -> tuple[list[list[str]], dict[str, dict]]:
        # str() of a pycrdt type is its JSON, made by yrs in one call: several times faster than
        # to_py(), which walks the document in Python
        if self.format == FORMAT:
            plain = {str(cid): cell for cid, cell in _as_plain(self._cells, {}).items() if isinstance(cell, dict)}
            raw = [_row_items(row) for row in _as_plain(self._layout, [])]
        else:
            plain = {}
            raw = []
            for row in _as_plain(self._rows, []):
                ids = []
                for cell in _row_items(row):
                    if isinstance(cell, dict):
                        cid = str(cell.get("id"))
                        plain.setdefault(cid, cell)
                        ids.append(cid)
                raw.append(ids)
        return normal_layout(raw, plain.keys()), plain

    def _write_layout(self, rows: list[list[str]]) -> None:
        """Make ``layout`` hold exactly ``rows`` (each of 1, 2 or 4 ids) with the fewest changes:
        rows already right are left alone, a changed row has only its changed ids replaced."""
        from difflib import SequenceMatcher

        from pycrdt import Array, Map

        current = [[str(cid) for cid in _row_items(row)] for row in _as_plain(self._layout, [])]
        ops = SequenceMatcher(None, [tuple(r) for r in current], [tuple(r) for r in rows], autojunk=False).get_opcodes()
        for tag, i1, i2, j1, j2 in reversed(ops):  # from the end, so earlier indices stay right
            if tag == "equal":
                continue
            paired = min(i2 - i1, j2 - j1)
            if i2 - i1 > paired:
                del self._layout[i1 + paired:i2]
            for k, ids in enumerate(rows[j1 + paired:j2]):
                self._layout.insert(i1 + paired + k, Map({"cells": Array(list(ids))}))
            for k in range(paired):
                row = self._layout[i1 + k]
                if not _is_map(row) or not _is_array(row.get("cells")):
                    row = self._layout[i1 + k] = Map({"cells": Array([])})
                    current[i1 + k] = []
                _sync_ids(row["cells"], current[i1 + k], rows[j1 + k])

    # --- reading -----------------------------------------------------------------------------

    @property
    def title(self) -> str:
        return str(self._meta.get("title") or "")

    def set_title(self, title: str) -> str:
        """Set the title; returns the previous one."""
        check_title(title)
        before = self.title
        with self.doc.transaction():
            self.upgrade()
            self._meta["title"] = title
        return before

    def layout(self) -> list[list[str]]:
        """Cell ids row by row."""
        return [list(row) for row in self._read()[0]]

    def ids(self) -> list[str]:
        """Cell ids in reading order."""
        return [cid for row in self._read()[0] for cid in row]

    def __len__(self) -> int:
        return len(self.ids())

    def _locate(self, n: int, rows: list[list[str]] | None = None) -> tuple[int, int]:
        rows = self.layout() if rows is None else rows
        count = sum(len(row) for row in rows)
        if not isinstance(n, int) or n < 1 or n > count:
            if count == 0:
                raise QueryError(f"notebook '{self.name}' has no cells; there is no cell {n}",
                                 hint=f"add one with: tessera cell add {self.name} 'MATCH ...'")
            raise QueryError(f"notebook '{self.name}' has {count} cell{'s' if count != 1 else ''}; there is no cell {n}")
        i = n
        for r, row in enumerate(rows):
            if i <= len(row):
                return r, i - 1
            i -= len(row)
        raise AssertionError("unreachable")

    def _id_of(self, n: int) -> str:
        rows = self.layout()
        r, p = self._locate(n, rows)
        return rows[r][p]

    def _plain_of(self, cell_id: str) -> dict:
        plain = self._read()[1]
        if cell_id not in plain:
            raise QueryError(f"notebook '{self.name}' has no cell with id '{cell_id}'")
        return plain[cell_id]

    def _map_of(self, cell_id: str) -> Any:
        """The cell's Map in a format 2 document (edits upgrade first)."""
        cell = self._cells.get(cell_id)
        if not _is_map(cell):
            raise QueryError(f"notebook '{self.name}' has no cell with id '{cell_id}'")
        return cell

    def cell(self, n: int) -> dict:
        """Cell ``n`` (1-based, reading order) as a plain dict (see ``to_dict``)."""
        return self.cell_by_id(self._id_of(n))

    def cell_by_id(self, cell_id: str) -> dict:
        """The cell with this id as a plain dict (see ``to_dict``), wherever it moved.

        Raises:
            QueryError when the notebook has no such cell (it was removed).
        """
        return _snapshot(cell_id, self._plain_of(cell_id))

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
        rows, plain = self._read()
        out = []
        for r, row in enumerate(rows, start=1):
            for cid in row:
                out.append({**_snapshot(cid, plain[cid]), "number": len(out) + 1, "row": r})
        return out

    def to_dict(self) -> dict:
        """The plain snapshot: ``{"title", "rows": [{"cells": [{id, type, title, view, refresh,
        sources, source}]}]}`` (what ``notebook show -o json`` prints, and what round trips keep)."""
        rows, plain = self._read()
        return {"title": self.title, "rows": [{"cells": [_snapshot(cid, plain[cid]) for cid in row]} for row in rows]}

    # --- edits (each upgrades a format 1 document first, in the same transaction) -------------

    def add_cell(self, type: str = "query", source: str = "", *, view: str = "table", refresh: str = "manual",
                 sources: list[str] | None = None, title: str = "", id: str | None = None,
                 after: int | None = None) -> tuple[str, int]:
        """Add a cell in a new row of its own: at the end, or after the row holding cell ``after``
        (0 = before every row).

        Returns:
            (the new cell's id, its number).
        """
        rows, plain = self._read()
        cell = {"id": check_cell_id(id) if id else new_cell_id(plain), "type": check_type_name(type), "source": source,
                "view": check_view(view), "refresh": check_refresh(refresh),
                "sources": check_sources(sources or []), "title": check_title(title)}
        if cell["id"] in plain:
            raise UsageError(f"notebook '{self.name}' already has a cell with id '{cell['id']}'")
        if after is None:
            index = len(rows)
        elif after == 0:
            index = 0
        else:
            index = self._locate(after, rows)[0] + 1
        with self.doc.transaction():
            self.upgrade()
            self._cells[cell["id"]] = _cell_map(cell)
            self._write_layout(rows[:index] + [[cell["id"]]] + rows[index:])
        return cell["id"], self.number_of(cell["id"])

    def edit_source(self, n: int, text: str) -> bool:
        """Replace cell ``n``'s source with ``text`` as a minimal CRDT edit (common prefix and
        suffix kept, so concurrent edits elsewhere in the text merge). Returns whether it changed."""
        return self.edit_source_by_id(self._id_of(n), text)

    def edit_source_by_id(self, cell_id: str, text: str) -> bool:
        """``edit_source`` for the cell with this id (wherever it moved). Returns whether it changed.

        Raises:
            QueryError when the notebook has no such cell.
        """
        if self.cell_by_id(cell_id)["source"] == text:
            return False
        with self.doc.transaction():
            self.upgrade()
            t = self._map_of(cell_id)["source"]
            _replace_text(t, str(t), text)
        return True

    def set_attrs(self, n: int, **attrs: Any) -> dict[str, list]:
        """Set cell attributes (type, view, refresh, sources, title).

        Returns:
            ``{attr: [before, after]}`` for each attribute that changed.
        """
        cid = self._id_of(n)
        before = self.cell_by_id(cid)
        changes: dict[str, list] = {}
        for attr, value in attrs.items():
            if attr not in ATTRS:
                raise UsageError(f"unknown cell attribute '{attr}'; cells have {', '.join(ATTRS)}")
            value = CHECKS[attr](value)
            if before[attr] != value:
                changes[attr] = [before[attr], value]
        if changes:
            with self.doc.transaction():
                self.upgrade()
                cell = self._map_of(cid)
                for attr, (_, value) in changes.items():
                    cell[attr] = json.dumps(value) if attr == "sources" else value
        return changes

    def remove_cell(self, n: int) -> dict:
        """Remove cell ``n`` and return it. A row left with 3 cells becomes a row of 2 followed
        by a row of 1; an emptied row disappears."""
        rows = self.layout()
        r, p = self._locate(n, rows)
        cid = rows[r][p]
        gone = self.cell_by_id(cid)
        left = [c for c in rows[r] if c != cid]
        with self.doc.transaction():
            self.upgrade()
            del self._cells[cid]
            self._write_layout(rows[:r] + _chunks(left) + rows[r + 1:])
        return gone

    def move_cell(self, n: int, to: int) -> bool:
        """Move cell ``n`` to position ``to`` in reading order; the rows keep their sizes and the
        cells in between shift by one. Only ids move: the cell's Map, and its text, stay.
        Returns whether anything moved."""
        rows = self.layout()
        self._locate(n, rows)
        self._locate(to, rows)
        if n == to:
            return False
        order = [cid for row in rows for cid in row]
        order.insert(to - 1, order.pop(n - 1))
        moved, i = [], 0
        for row in rows:
            moved.append(order[i:i + len(row)])
            i += len(row)
        with self.doc.transaction():
            self.upgrade()
            self._write_layout(moved)
        return True

    def split_row(self, n: int) -> tuple[int, list[str], list[str]]:
        """Split the row holding cell ``n``: 2 cells -> two rows of 1, 4 -> two rows of 2.

        Returns:
            (the row number, the ids kept in it, the ids of the new row after it).
        """
        rows = self.layout()
        r, _ = self._locate(n, rows)
        size = len(rows[r])
        if size == 1:
            raise UsageError(f"row {r + 1} of notebook '{self.name}' holds one cell; there is nothing to split")
        kept, moved = rows[r][:size // 2], rows[r][size // 2:]
        with self.doc.transaction():
            self.upgrade()
            self._write_layout(rows[:r] + [kept, moved] + rows[r + 1:])
        return r + 1, kept, moved

    def merge_rows(self, n: int) -> tuple[int, list[str]]:
        """Merge the row holding cell ``n`` with the row after it: 1 + 1 -> 2, 2 + 2 -> 4.

        Returns:
            (the row number, the ids of the merged row).
        """
        rows = self.layout()
        r, _ = self._locate(n, rows)
        if r + 1 >= len(rows):
            raise UsageError(f"row {r + 1} is the last row of notebook '{self.name}'; there is no next row to merge with")
        a, b = len(rows[r]), len(rows[r + 1])
        if not ((a, b) in ((1, 1), (2, 2))):
            raise UsageError(
                f"cannot merge row {r + 1} ({a} cell{'s' if a != 1 else ''}) with row {r + 2} ({b} cell{'s' if b != 1 else ''}): "
                "a row holds 1, 2 or 4 cells, so only 1 + 1 and 2 + 2 merge")
        merged = rows[r] + rows[r + 1]
        with self.doc.transaction():
            self.upgrade()
            self._write_layout(rows[:r] + [merged] + rows[r + 2:])
        return r + 1, merged


def normal_layout(rows: Iterable[list[str]], known: Iterable[str]) -> list[list[str]]:
    """The rows readers see, from rows of ids as concurrent edits may leave them: an id at its
    first place only, ids of no known cell dropped, each row's ids in chunks of 4, 2 and 1 (a
    row of 3 reads as 2 + 1; an emptied row is skipped), then each known cell in no row in a
    row of its own, by id (the same order on every replica)."""
    known = set(known)
    seen: set[str] = set()
    out: list[list[str]] = []
    for row in rows:
        kept = []
        for cid in row:
            if cid in known and cid not in seen:
                seen.add(cid)
                kept.append(cid)
        out.extend(_chunks(kept))
    out.extend([cid] for cid in sorted(known - seen))
    return out


def _chunks(ids: list[str]) -> list[list[str]]:
    """``ids`` as rows of 4, 2 and 1 (largest first)."""
    out = []
    i = 0
    while i < len(ids):
        size = next(s for s in reversed(ROW_SIZES) if s <= len(ids) - i)
        out.append(ids[i:i + size])
        i += size
    return out


def _sync_ids(arr: Any, current: list[str], want: list[str]) -> None:
    """Turn CRDT array ``arr`` (holding ``current``) into ``want`` by deleting and inserting only
    the ids that differ."""
    from difflib import SequenceMatcher

    for tag, i1, i2, j1, j2 in reversed(SequenceMatcher(None, current, want, autojunk=False).get_opcodes()):
        if tag == "equal":
            continue
        if i2 > i1:
            del arr[i1:i2]
        for k, cid in enumerate(want[j1:j2]):
            arr.insert(i1 + k, cid)


def _is_map(value: Any) -> bool:
    from pycrdt import Map

    return isinstance(value, Map)


def _is_array(value: Any) -> bool:
    from pycrdt import Array

    return isinstance(value, Array)


def _as_plain(shared: Any, empty: Any) -> Any:
    """A pycrdt Map or Array as plain data (``empty`` when it holds something else)."""
    value = json.loads(str(shared))
    return value if isinstance(value, type(empty)) else empty


def _row_items(row: Any) -> list[Any]:
    """What a row (as plain data) holds: ids in format 2, cells in format 1 (nothing for a
    malformed row)."""
    cells = row.get("cells") if isinstance(row, dict) else None
    return cells if isinstance(cells, list) else []


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


def _snapshot(cell_id: str, cell: dict) -> dict:
    """A cell as ``to_dict`` shows it, from its content as plain data."""
    sources = cell.get("sources")
    source = cell.get("source")
    return {
        "id": cell_id,
        "type": cell.get("type") or DEFAULTS["type"],
        "title": cell.get("title") or "",
        "view": cell.get("view") or DEFAULTS["view"],
        "refresh": cell.get("refresh") or DEFAULTS["refresh"],
        "sources": json.loads(sources) if sources else [],
        "source": str(source) if source is not None else "",
    }


def _cell_map(cell: dict) -> Any:
    """A format 2 cell Map (its id is its key in ``cells``)."""
    from pycrdt import Map, Text

    return Map({
        "type": cell["type"], "source": Text(cell.get("source", "")), "view": cell["view"],
        "refresh": cell["refresh"], "sources": json.dumps(list(cell.get("sources") or [])),
        "title": cell.get("title") or "",
    })
