"""Notebooks in the store: each is a row of ``notebooks`` plus its binary CRDT updates in
``notebook_updates`` (applied in id order to load it).

Every change runs in one ``transaction(conn)`` (``BEGIN IMMEDIATE``): load the document, apply
the edit, store the edit's binary diff (``doc.get_update(state_before)``), compact when a
notebook has more than ``COMPACT_AFTER`` updates (all of them replaced by one full-state update),
and append the event ``notebook.<name>.<action>`` — so two processes editing the same notebook
are serialised by SQLite's write lock and neither loses the other's change, and no change is
stored without its event (or the other way round).

Addresses: ``NAME`` (a notebook) or ``NAME/N`` (its N-th cell in reading order, from 1), each
optionally led by ``PEER:`` for a peer's notebook read from its replica (``alice:ops``,
``alice:ops/2``): only commands that read accept those (replicas are read-only). The peer part is
everything before the last ``:`` (a notebook name has none; a peer's name may).
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from tessera.core import events
from tessera.core.errors import EditConflict, QueryError, UsageError
from tessera.core.notebook.model import Notebook
from tessera.core.store.db import transaction

COMPACT_AFTER = 50
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
ACTIONS = ("created", "imported", "renamed", "removed", "titled", "cell_added", "cell_edited", "cell_removed",
           "cell_moved", "cell_set", "row_split", "row_merged")


@dataclass(frozen=True)
class Address:
    """A parsed address: the notebook name, for ``NAME/N`` the cell number, and for
    ``PEER:NAME`` the peer as typed (its name or id)."""

    name: str
    cell: int | None = None
    peer: str | None = None

    def __str__(self) -> str:
        local = self.name if self.cell is None else f"{self.name}/{self.cell}"
        return local if self.peer is None else f"{self.peer}:{local}"


def check_name(name: str) -> str:
    """A notebook name: a letter or digit, then letters, digits, ``_`` and ``-``.

    Raises:
        UsageError naming the rule.
    """
    if not NAME_RE.match(name or ""):
        raise UsageError(f"bad notebook name '{name}': use letters, digits, _ and - (starting with a letter or digit)")
    return name


def parse_address(text: str, *, cell: bool | None = None, peer: bool = False) -> Address:
    """Parse ``NAME`` or ``NAME/N``, each optionally led by ``PEER:``.

    Args:
        cell: True when a cell address is required, False when only a notebook name is accepted,
            None for either.
        peer: True when the command reads, so a peer's notebook (``PEER:NAME``) is accepted.
    Raises:
        UsageError for a malformed address, the wrong kind of address, or a peer's notebook given
        to a command that would change it (replicas are read-only).
    """
    owner, colon, local = (text or "").rpartition(":")
    if colon:
        if not owner:
            raise UsageError(f"bad address '{text}': name the peer before ':' (PEER:NOTEBOOK, e.g. alice:ops)")
        if not peer:
            raise UsageError(f"'{text}' is a peer's notebook, read from its replica, which is read-only: "
                             "this command works on this node's own notebooks only",
                             hint=f"read it with `tessera notebook show {text}`")
        address = parse_address(local, cell=cell)
        return Address(address.name, address.cell, owner)
    parts = (text or "").split("/")
    usage = "use NAME for a notebook or NAME/N for its N-th cell (N from 1)"
    if len(parts) > 2 or not parts[0]:
        raise UsageError(f"bad address '{text}': {usage}")
    name = parts[0]
    if not NAME_RE.match(name):
        raise UsageError(f"bad address '{text}': '{name}' is not a notebook name (letters, digits, _ and -)")
    number = None
    if len(parts) == 2:
        if not parts[1].isdigit() or int(parts[1]) < 1:
            raise UsageError(f"bad address '{text}': the cell number must be a whole number from 1 ({usage})")
        number = int(parts[1])
    if cell is True and number is None:
        raise UsageError(f"'{text}' names a notebook; this command needs a cell: {name}/N")
    if cell is False and number is not None:
        raise UsageError(f"'{text}' names a cell; this command takes a notebook name: {name}")
    return Address(name, number)


# --- reading ----------------------------------------------------------------------------------


def notebook_names(conn: sqlite3.Connection) -> list[str]:
    """Every notebook's name, sorted, without loading any (cheap enough for shell completion)."""
    return [r[0] for r in conn.execute("SELECT name FROM notebooks ORDER BY name")]


def _record(conn: sqlite3.Connection, name: str) -> tuple[str, str, str, str]:
    row = conn.execute("SELECT id, name, created, updated FROM notebooks WHERE name = ?", (name,)).fetchone()
    if row is None:
        names = notebook_names(conn)
        if names:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise QueryError(f"notebook '{name}' not found (notebooks: {shown})")
        raise QueryError(f"notebook '{name}' not found (there are no notebooks yet)",
                         hint="create one with: tessera notebook new NAME")
    return row


def exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM notebooks WHERE name = ?", (name,)).fetchone() is not None


def notebook_id(conn: sqlite3.Connection, name: str) -> str:
    """The notebook's stable id (kept across renames); raises QueryError when there is none."""
    return _record(conn, name)[0]


def _load_by_id(conn: sqlite3.Connection, nid: str, name: str) -> Notebook:
    updates = [r[0] for r in conn.execute("SELECT data FROM notebook_updates WHERE notebook_id = ? ORDER BY id", (nid,))]
    nb = Notebook.from_updates(updates, name=name)
    nb.id = nid  # type: ignore[attr-defined]
    return nb


def load_by_id(conn: sqlite3.Connection, nid: str) -> Notebook:
    """The notebook with this stable id, under its current name (it may have been renamed).

    Raises:
        QueryError when it was removed.
    """
    row = conn.execute("SELECT name FROM notebooks WHERE id = ?", (nid,)).fetchone()
    if row is None:
        raise QueryError("the notebook was removed")
    return _load_by_id(conn, nid, row[0])


def update_mark(conn: sqlite3.Connection, nid: str) -> int | None:
    """A number that grows with every stored change of the notebook (compaction included): a
    cheap way for a live view to notice edits made elsewhere. None when it has been removed."""
    row = conn.execute("SELECT max(id) FROM notebook_updates WHERE notebook_id = ?", (nid,)).fetchone()
    return row[0] if row else None


def load(conn: sqlite3.Connection, name: str) -> Notebook:
    """The notebook named ``name`` (all its stored updates applied); ``.id`` is its stable id.

    Raises:
        QueryError "notebook 'x' not found (notebooks: a, b)".
    """
    nid, name, _, _ = _record(conn, name)
    return _load_by_id(conn, nid, name)


def list_notebooks(conn: sqlite3.Connection) -> list[dict]:
    """Every notebook: name, title, cells, rows, created, updated (by name)."""
    out = []
    for nid, name, created, updated in conn.execute("SELECT id, name, created, updated FROM notebooks ORDER BY name").fetchall():
        nb = _load_by_id(conn, nid, name)
        out.append({"name": name, "title": nb.title, "cells": len(nb), "rows": len(nb.layout()),
                    "created": created, "updated": updated})
    return out


def history(conn: sqlite3.Connection, name: str) -> list[events.Event]:
    """The notebook's change events, oldest first (by its id, so events from before a rename
    are included)."""
    return events.read(conn, pattern="notebook.>", data_equals={"notebook_id": notebook_id(conn, name)})


# --- writing ----------------------------------------------------------------------------------


def _store_update(conn: sqlite3.Connection, nid: str, nb: Notebook, update: bytes, when: str) -> None:
    conn.execute("INSERT INTO notebook_updates(notebook_id, data, time) VALUES (?, ?, ?)", (nid, update, when))
    count = conn.execute("SELECT count(*) FROM notebook_updates WHERE notebook_id = ?", (nid,)).fetchone()[0]
    if count > COMPACT_AFTER:
        compact(conn, nid, nb, when)
    conn.execute("UPDATE notebooks SET updated = ? WHERE id = ?", (when, nid))


def compact(conn: sqlite3.Connection, nid: str, nb: Notebook, when: str | None = None) -> None:
    """Replace every stored update of the notebook by one full-state update (the caller's
    transaction, or its own)."""
    with transaction(conn):
        conn.execute("DELETE FROM notebook_updates WHERE notebook_id = ?", (nid,))
        conn.execute("INSERT INTO notebook_updates(notebook_id, data, time) VALUES (?, ?, ?)",
                     (nid, nb.full_update(), when or events.now()))


def _event(conn: sqlite3.Connection, name: str, nid: str, action: str, details: dict) -> events.Event:
    return events.append(conn, f"notebook.{name}.{action}", {"notebook": name, "notebook_id": nid, **details})


def create(conn: sqlite3.Connection, name: str, title: str = "", *, notebook: Notebook | None = None,
           action: str = "created", details: dict | None = None) -> Notebook:
    """Create a notebook (empty, or holding ``notebook``'s content, for imports).

    Raises:
        UsageError for a bad name; QueryError "notebook 'x' already exists".
    """
    check_name(name)
    nb = notebook if notebook is not None else Notebook(name=name)
    nb.name = name
    if notebook is None and title:
        nb.set_title(title)
    when = events.now()
    nid = uuid.uuid4().hex
    with transaction(conn):
        if exists(conn, name):
            raise QueryError(f"notebook '{name}' already exists", hint="pick another name, or remove it with: tessera notebook rm " + name)
        conn.execute("INSERT INTO notebooks(id, name, created, updated) VALUES (?, ?, ?, ?)", (nid, name, when, when))
        conn.execute("INSERT INTO notebook_updates(notebook_id, data, time) VALUES (?, ?, ?)", (nid, nb.full_update(), when))
        _event(conn, name, nid, action, {"title": nb.title, "cells": len(nb), **(details or {})})
    nb.id = nid  # type: ignore[attr-defined]
    return nb


def change(conn: sqlite3.Connection, name: str, action: str, edit: Callable[[Notebook], dict | None]) -> tuple[Notebook, dict | None]:
    """Apply ``edit`` to the notebook and persist it with its event, in one transaction.

    Args:
        action: the event's last subject token (cell_added, cell_set, ...).
        edit: changes the Notebook and returns the event details, or None when nothing changed
            (then nothing is stored and no event is written).
    Returns:
        (the notebook after the edit, the details or None).
    """
    with transaction(conn):
        nb = load(conn, name)
        before = nb.state()
        details = edit(nb)
        if details is None:
            return nb, None
        update = nb.update_since(before)
        when = events.now()
        _store_update(conn, nb.id, nb, update, when)  # type: ignore[attr-defined]
        _event(conn, nb.name, nb.id, action, details)  # type: ignore[attr-defined]
    return nb, details


def rename(conn: sqlite3.Connection, old: str, new: str) -> None:
    """Rename a notebook (its id, history, cell results and shares with peers stay)."""
    check_name(new)
    with transaction(conn):
        nid = notebook_id(conn, old)
        if old == new:
            return
        if exists(conn, new):
            raise QueryError(f"notebook '{new}' already exists")
        conn.execute("UPDATE notebooks SET name = ?, updated = ? WHERE id = ?", (new, events.now(), nid))
        # a share names the notebook (peer_shares, core/peers/shares.py): it follows the rename
        conn.execute("UPDATE OR REPLACE peer_shares SET item = ? WHERE item = ?", (f"notebook:{new}", f"notebook:{old}"))
        _event(conn, new, nid, "renamed", {"from": old, "to": new})


def remove(conn: sqlite3.Connection, name: str) -> None:
    """Delete a notebook with its updates and stored cell results (its events stay in the log)."""
    with transaction(conn):
        nb = load(conn, name)
        conn.execute("DELETE FROM notebooks WHERE id = ?", (nb.id,))  # type: ignore[attr-defined]
        _event(conn, name, nb.id, "removed", {"title": nb.title, "cells": len(nb)})  # type: ignore[attr-defined]


# --- the edits, as named operations (the CLI and other front ends call these) ----------------


def add_cell(conn: sqlite3.Connection, name: str, source: str = "", **attrs: Any) -> tuple[str, int]:
    """Add a cell (see Notebook.add_cell; ``after`` may be a cell id); returns (id, number). The
    type must be registered."""
    from tessera.core.notebook.cells import cell_type

    cell_type(attrs.get("type", "query"))
    out: dict = {}

    def edit(nb: Notebook) -> dict:
        after = attrs.get("after")
        cid, number = nb.add_cell(source=source, **{**attrs, "after": None if after is None else _number(nb, after)})
        out.update(id=cid, number=number)
        return {"cell": cid, "number": number, "row": nb.row_of(number), **{k: v for k, v in nb.cell(number).items() if k != "id"}}

    change(conn, name, "cell_added", edit)
    return out["id"], out["number"]


def _number(nb: Notebook, cell: int | str) -> int:
    """A cell reference as its number now: a number, or a cell id (found wherever it moved)."""
    return nb.number_of(cell) if isinstance(cell, str) else cell


def edit_cell(conn: sqlite3.Connection, name: str, cell: int | str, text: str, *, base: Notebook | None = None,
              base_text: str | None = None) -> bool:
    """Replace a cell's source; returns False (and records nothing) when it is unchanged.

    Args:
        cell: its number, or its id.
        base: the notebook as it was when the edit began (``cell edit`` with ``$EDITOR``): the
            edit is merged three-way with the cell's current text (model.merge_text), so changes
            others made to other lines meanwhile are kept, and the cell is found by id even if
            it moved.
        base_text: the same for a front end that kept only the cell's text (the dashboard's
            editor): ``cell`` is then best given as the id.
    Raises:
        EditConflict when the cell was changed meanwhile on the lines this edit changes, or
        removed: nothing is stored, and ``text`` is kept in a file the message names
        (save_conflict).
    """
    if base is not None:
        base_text = base.cell(_number(base, cell))["source"]
        cell = base.cell(_number(base, cell))["id"]
    if base_text is None:
        def edit(nb: Notebook) -> dict | None:
            n = _number(nb, cell)
            before = nb.cell(n)["source"]
            if not nb.edit_source(n, text):
                return None
            return {"cell": nb.cell(n)["id"], "number": n, "before": before, "source": text}
    else:
        from tessera.core.notebook.model import MergeConflict, merge_text

        def edit(nb: Notebook) -> dict | None:
            if isinstance(cell, str) and cell not in nb.ids():
                kept = save_conflict(nb.name, {"id": cell}, text)
                raise EditConflict(f"cell {cell} of notebook '{nb.name}' was removed while you edited it; nothing was "
                                   f"saved, and your version is in {kept}",
                                   hint=f"add it again: tessera cell add {nb.name} -f {kept}")
            n = _number(nb, cell)
            found = nb.cell(n)
            before = found["source"]
            try:
                merged = merge_text(base_text, before, text)  # type: ignore[arg-type]
            except MergeConflict as conflict:
                kept = save_conflict(nb.name, found, text)
                raise EditConflict(
                    f"cell {nb.name}/{n} ({found['id']}) was changed on the same lines while you edited it "
                    f"({conflict}); nothing was saved, and your version is in {kept}",
                    hint=f"compare: tessera notebook show {nb.name}/{n} -o json; keep yours: "
                         f"tessera cell edit {nb.name}/{n} -f {kept}") from None
            if not nb.edit_source(n, merged):
                return None
            return {"cell": found["id"], "number": n, "before": before, "source": nb.cell(n)["source"]}

    return change(conn, name, "cell_edited", edit)[1] is not None


def save_conflict(name: str, cell: dict, text: str) -> str:
    """Keep an edit that could not be merged: ``<data home>/conflicts/NB-CELL-TIME.EXT`` (0600,
    in a 0700 directory, as it may hold cluster names); returns its path."""
    import os
    import time

    from tessera.core import config

    folder = config.data_home() / "conflicts"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    suffix = {"query": ".cypher", "sql": ".sql", "markdown": ".md"}.get(cell.get("type", ""), ".txt")
    stem = f"{name}-{cell['id']}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    for n in range(1000):
        path = folder / (stem + (f"-{n}" if n else "") + suffix)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        return str(path)
    raise UsageError(f"cannot keep your edit: too many conflict files in {folder}")


def set_cell(conn: sqlite3.Connection, name: str, cell: int | str, **attrs: Any) -> dict:
    """Set attributes of a cell (its number or id); returns ``{attr: [before, after]}`` (empty:
    nothing changed)."""
    if "type" in attrs:
        from tessera.core.notebook.cells import cell_type

        cell_type(attrs["type"])

    def edit(nb: Notebook) -> dict | None:
        number = _number(nb, cell)
        changes = nb.set_attrs(number, **attrs)
        return {"cell": nb.cell(number)["id"], "number": number, "changes": changes} if changes else None

    details = change(conn, name, "cell_set", edit)[1]
    return details["changes"] if details else {}


def remove_cell(conn: sqlite3.Connection, name: str, cell: int | str) -> dict:
    """Remove a cell (its number or id); returns the removed cell."""
    def edit(nb: Notebook) -> dict:
        number = _number(nb, cell)
        gone = nb.remove_cell(number)
        return {"cell": gone["id"], "number": number, "removed": gone}

    return change(conn, name, "cell_removed", edit)[1]["removed"]  # type: ignore[index]


def move_cell(conn: sqlite3.Connection, name: str, cell: int | str, to: int) -> bool:
    """Move a cell (its number or id) to position TO (reading order; row sizes kept)."""
    def edit(nb: Notebook) -> dict | None:
        number = _number(nb, cell)
        cid = nb.cell(number)["id"]
        if not nb.move_cell(number, to):
            return None
        return {"cell": cid, "from": number, "to": to, "layout": nb.layout()}

    return change(conn, name, "cell_moved", edit)[1] is not None


def split_row(conn: sqlite3.Connection, name: str, cell: int | str) -> dict:
    """Split the row holding a cell (its number or id): 2 -> 1 + 1, 4 -> 2 + 2."""
    def edit(nb: Notebook) -> dict:
        row, kept, moved = nb.split_row(_number(nb, cell))
        return {"row": row, "cells": kept, "new_row": moved, "layout": nb.layout()}

    return change(conn, name, "row_split", edit)[1]  # type: ignore[return-value]


def merge_rows(conn: sqlite3.Connection, name: str, cell: int | str) -> dict:
    """Merge the row holding a cell (its number or id) with the next row (1 + 1 -> 2, 2 + 2 -> 4)."""
    def edit(nb: Notebook) -> dict:
        row, ids = nb.merge_rows(_number(nb, cell))
        return {"row": row, "cells": ids, "layout": nb.layout()}

    return change(conn, name, "row_merged", edit)[1]  # type: ignore[return-value]


def set_title(conn: sqlite3.Connection, name: str, title: str) -> bool:
    """Set the notebook's title; False when it was already that."""
    def edit(nb: Notebook) -> dict | None:
        before = nb.set_title(title)
        return None if before == title else {"before": before, "title": title}

    return change(conn, name, "titled", edit)[1] is not None
