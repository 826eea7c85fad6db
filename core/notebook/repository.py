"""Notebooks in the store: each is a row of ``notebooks`` plus its binary CRDT updates in
``notebook_updates`` (applied in id order to load it).

Every change runs in one ``transaction(conn)`` (``BEGIN IMMEDIATE``): load the document, apply
the edit, store the edit's binary diff (``doc.get_update(state_before)``), compact when a
notebook has more than ``COMPACT_AFTER`` updates (all of them replaced by one full-state update),
and append the event ``notebook.<name>.<action>`` — so two processes editing the same notebook
are serialised by SQLite's write lock and neither loses the other's change, and no change is
stored without its event (or the other way round).

Every notebook event's data holds ``by`` = {"node": node id hex, "name": node name}: who made the
change (this node for local edits, the collaborator for ``apply_update``). A live editor stores
one update per keystroke; the log gets at most one ``cell_edited`` event per (cell, author) per
typing run (TYPING_RUN_SECONDS, see ``_continues_typing_run``). A format 1 document is upgraded
to format 2 (core/notebook/model.py) in the transaction of its first change, or by ``upgrade``.

Addresses: ``NAME`` (a notebook) or ``NAME/N`` (its N-th cell in reading order, from 1), each
optionally led by ``PEER:`` for a peer's notebook read from its replica (``alice:ops``,
``alice:ops/2``): only commands that read accept those (replicas are read-only). The peer part is
everything before the last ``:`` (a notebook name has none; a peer's name may).
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from tessera.core import events
from tessera.core.errors import EditConflict, InputError, QueryError, UsageError
from tessera.core.notebook.model import Notebook
from tessera.core.store.db import transaction

COMPACT_AFTER = 50
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
ACTIONS = ("created", "imported", "renamed", "removed", "titled", "cell_added", "cell_edited", "cell_removed",
           "cell_moved", "cell_set", "row_split", "row_merged", "layout_changed", "upgraded")
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024  # a stored notebook's whole state, checked before a change is stored
TYPING_RUN_SECONDS = 2.0  # an author's edits of one cell this close together are one run: one cell_edited event


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
                             hint=f"read it with `tessera notebook show {text}`, or edit it live (as its editor) "
                                  f"in `tessera dash {owner}:{local.split('/')[0]}`")
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


def clock() -> float:
    """Seconds since the epoch: when an edit happened, for typing runs (wall-clock time, as the
    processes sharing a store have no other common clock)."""
    return time.time()


def local_by(conn: sqlite3.Connection) -> dict:
    """This node as the author of a change: ``{"node": its node id, "name": its name}`` (read
    once per connection; the node key is made on first use, as ``tessera peer id`` does)."""
    memo = getattr(conn, "memo", None)
    if memo is None or "notebook_by" not in memo:
        from tessera.core.peers.identity import local_identity

        me = local_identity(conn)
        author = {"node": me.node_id, "name": me.name}
        if memo is None:
            return author
        memo["notebook_by"] = author
    return dict(memo["notebook_by"])


def _author(by: dict) -> dict:
    return {"node": str(by["node"]), "name": str(by["name"])}


class NotebookTooLarge(InputError):
    """A change that would make a notebook's whole state larger than MAX_DOCUMENT_BYTES (nothing
    was stored); the collaboration host tells the editor so."""


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _check_size(nb: Notebook) -> None:
    size = len(nb.full_update())
    if size > MAX_DOCUMENT_BYTES:
        raise NotebookTooLarge(f"notebook '{nb.name}' would be too large: {_mib(size)}, over the "
                               f"{_mib(MAX_DOCUMENT_BYTES)} a notebook may hold; nothing was stored",
                               hint="split it: move cells to another notebook")


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


def _event(conn: sqlite3.Connection, name: str, nid: str, action: str, details: dict, by: dict) -> events.Event:
    return events.append(conn, f"notebook.{name}.{action}", {"notebook": name, "notebook_id": nid, **details, "by": by})


def _continues_typing_run(conn: sqlite3.Connection, nid: str, cell_id: str, author: str, now: float) -> bool:
    """Record that ``author`` edited the cell at ``now``; True when that continues their typing
    run: their previous edit of this cell was at most TYPING_RUN_SECONDS before (a clock that
    went back starts a new run)."""
    row = conn.execute("SELECT last_edit FROM notebook_typing WHERE notebook_id = ? AND cell_id = ? AND author = ?",
                       (nid, cell_id, author)).fetchone()
    conn.execute("INSERT INTO notebook_typing(notebook_id, cell_id, author, last_edit) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT(notebook_id, cell_id, author) DO UPDATE SET last_edit = excluded.last_edit",
                 (nid, cell_id, author, now))
    return row is not None and 0 <= now - row[0] <= TYPING_RUN_SECONDS


def _record_events(conn: sqlite3.Connection, nb: Notebook, changes: list[tuple[str, dict]], by: dict) -> None:
    """Append the events of changes just stored, each with ``by``; a cell_edited that continues
    its author's typing run appends nothing."""
    nid = nb.id  # type: ignore[attr-defined]
    now = clock()
    for action, details in changes:
        if action == "cell_edited" and _continues_typing_run(conn, nid, details["cell"], by["node"], now):
            continue
        if action == "cell_removed":
            conn.execute("DELETE FROM notebook_typing WHERE notebook_id = ? AND cell_id = ?", (nid, details["cell"]))
        _event(conn, nb.name, nid, action, details, by)


def _save(conn: sqlite3.Connection, nb: Notebook, since: bytes, changes: list[tuple[str, dict]], by: dict,
          *, upgraded: bool) -> None:
    """Store the document's change since state vector ``since`` (size checked first) with its
    events: the owner's ``upgraded`` first when this change upgraded a format 1 document."""
    _check_size(nb)
    _store_update(conn, nb.id, nb, nb.update_since(since), events.now())  # type: ignore[attr-defined]
    if upgraded:
        _event(conn, nb.name, nb.id, "upgraded", {"format": nb.format}, local_by(conn))  # type: ignore[attr-defined]
    _record_events(conn, nb, changes, by)


def create(conn: sqlite3.Connection, name: str, title: str = "", *, notebook: Notebook | None = None,
           action: str = "created", details: dict | None = None) -> Notebook:
    """Create a notebook (empty, or holding ``notebook``'s content, for imports).

    Raises:
        UsageError for a bad name; QueryError "notebook 'x' already exists"; NotebookTooLarge
        for content larger than MAX_DOCUMENT_BYTES.
    """
    check_name(name)
    nb = notebook if notebook is not None else Notebook(name=name)
    nb.name = name
    if notebook is None and title:
        nb.set_title(title)
    nb.upgrade()
    _check_size(nb)
    when = events.now()
    nid = uuid.uuid4().hex
    with transaction(conn):
        if exists(conn, name):
            raise QueryError(f"notebook '{name}' already exists", hint="pick another name, or remove it with: tessera notebook rm " + name)
        conn.execute("INSERT INTO notebooks(id, name, created, updated) VALUES (?, ?, ?, ?)", (nid, name, when, when))
        conn.execute("INSERT INTO notebook_updates(notebook_id, data, time) VALUES (?, ?, ?)", (nid, nb.full_update(), when))
        _event(conn, name, nid, action, {"title": nb.title, "cells": len(nb), **(details or {})}, local_by(conn))
    nb.id = nid  # type: ignore[attr-defined]
    return nb


def change(conn: sqlite3.Connection, name: str, action: str, edit: Callable[[Notebook], dict | None]) -> tuple[Notebook, dict | None]:
    """Apply ``edit`` to the notebook and persist it with its event (``by`` this node), in one
    transaction; a format 1 document is upgraded in the same transaction.

    Args:
        action: the event's last subject token (cell_added, cell_set, ...).
        edit: changes the Notebook and returns the event details, or None when nothing changed
            (then nothing is stored and no event is written).
    Returns:
        (the notebook after the edit, the details or None).
    Raises:
        NotebookTooLarge when the notebook would grow past MAX_DOCUMENT_BYTES (nothing stored).
    """
    with transaction(conn):
        nb = load(conn, name)
        before = nb.state()
        upgraded = nb.upgrade()
        details = edit(nb)
        if details is None:
            return nb, None
        _save(conn, nb, before, [(action, details)], local_by(conn), upgraded=upgraded)
    return nb, details


def _find(conn: sqlite3.Connection, name_or_id: str) -> tuple[str, str]:
    """(id, name) of the notebook with this id, else this name.

    Raises:
        QueryError when there is none (it was removed, or never was).
    """
    for column in ("id", "name"):
        row = conn.execute(f"SELECT id, name FROM notebooks WHERE {column} = ?", (name_or_id,)).fetchone()
        if row is not None:
            return row[0], row[1]
    if re.fullmatch(r"[0-9a-f]{32}", name_or_id or ""):
        raise QueryError("the notebook was removed")
    nid, name, _, _ = _record(conn, name_or_id)  # raises, naming the notebooks there are
    return nid, name


def upgrade(conn: sqlite3.Connection, name_or_id: str) -> bool:
    """Upgrade a stored format 1 notebook (its name or id) to format 2 in place, in one
    transaction with its ``upgraded`` event (the collaboration host calls this before serving
    a notebook, so collaborators edit the format 2 structures). False when it already was."""
    with transaction(conn):
        nid, name = _find(conn, name_or_id)
        nb = _load_by_id(conn, nid, name)
        before = nb.state()
        if not nb.upgrade():
            return False
        _save(conn, nb, before, [], local_by(conn), upgraded=True)
    return True


def _view(nb: Notebook) -> dict:
    """What the events compare: the title, each cell (with number and row) and the rows.

    Raises:
        InputError when a cell holds an attribute no edit could have given it (a collaborator's
        update made by hand).
    """
    from tessera.core.notebook.model import ATTRS, CHECKS

    try:
        cells = nb.cells()
        for cell in cells:
            for attr in ATTRS:
                CHECKS[attr](cell[attr])
        return {"title": nb.title, "cells": {c["id"]: c for c in cells}, "layout": nb.layout()}
    except UsageError as exc:
        raise InputError(f"the update leaves notebook '{nb.name}' with a bad cell: {exc.message}; nothing was stored") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"the update leaves notebook '{nb.name}' unreadable ({exc}); nothing was stored") from None


def _filtered(layout: list[list[str]], keep: set[str]) -> list[list[str]]:
    return [r for r in ([c for c in row if c in keep] for row in layout) if r]


def _changes(before: dict, after: dict) -> list[tuple[str, dict]]:
    """The events describing how ``after`` differs from ``before`` (``_view`` snapshots): the
    title; cells added, removed, edited, set; and the rows: cell_moved for each cell that
    changed place among rows of unchanged sizes, else one layout_changed (splits, merges, and
    what concurrent edits made)."""
    from difflib import SequenceMatcher

    out: list[tuple[str, dict]] = []
    if before["title"] != after["title"]:
        out.append(("titled", {"before": before["title"], "title": after["title"]}))
    old, new = before["cells"], after["cells"]
    for cid, cell in new.items():
        if cid not in old:
            out.append(("cell_added", {"cell": cid, **{k: v for k, v in cell.items() if k != "id"}}))
    for cid, cell in old.items():
        if cid not in new:
            gone = {k: v for k, v in cell.items() if k not in ("number", "row")}
            out.append(("cell_removed", {"cell": cid, "number": cell["number"], "removed": gone}))
    for cid, cell in new.items():
        if cid not in old:
            continue
        was = old[cid]
        if was["source"] != cell["source"]:
            out.append(("cell_edited", {"cell": cid, "number": cell["number"], "before": was["source"],
                                        "source": cell["source"]}))
        changes = {a: [was[a], cell[a]] for a in ("type", "view", "refresh", "sources", "title") if was[a] != cell[a]}
        if changes:
            out.append(("cell_set", {"cell": cid, "number": cell["number"], "changes": changes}))
    common = set(old) & set(new)
    rows_before, rows_after = _filtered(before["layout"], common), _filtered(after["layout"], common)
    if rows_before != rows_after:
        order_before = [c for row in rows_before for c in row]
        order_after = [c for row in rows_after for c in row]
        if [len(r) for r in rows_before] == [len(r) for r in rows_after]:
            matcher = SequenceMatcher(None, order_before, order_after, autojunk=False)
            stayed = {order_before[b.a + k] for b in matcher.get_matching_blocks() for k in range(b.size)}
            for cid in order_after:
                if cid not in stayed:
                    out.append(("cell_moved", {"cell": cid, "from": old[cid]["number"], "to": new[cid]["number"],
                                               "layout": after["layout"]}))
        else:
            out.append(("layout_changed", {"before": before["layout"], "layout": after["layout"]}))
    return out


def apply_update(conn: sqlite3.Connection, name_or_id: str, update: bytes, *, by: dict) -> dict | None:
    """Apply a binary update from a collaborator to the stored notebook (its name or id), in one
    transaction: load it (upgrading a format 1 document), apply the update, and when the document
    changed store the difference (never the raw bytes: a repeated update stores nothing) with
    the events describing what changed, each with ``by`` (the collaborator: {"node", "name"}).

    Returns:
        {"changed": [the actions, in order], "notebook": its name}, or None when nothing changed
        (an update already applied, or an empty one).
    Raises:
        QueryError when the notebook is gone; InputError (one line) for bytes that are not an
        update or an update that leaves a cell no edit could make; NotebookTooLarge (an
        InputError) for one that would make the stored notebook larger than MAX_DOCUMENT_BYTES
        (checked before anything is stored).
    """
    if not isinstance(update, (bytes, bytearray, memoryview)):
        raise InputError(f"a notebook update is bytes, not {type(update).__name__}")
    if len(update) > MAX_DOCUMENT_BYTES:
        raise NotebookTooLarge(f"the update is too large: {_mib(len(update))}, over the {_mib(MAX_DOCUMENT_BYTES)} "
                               "a whole notebook may hold; nothing was stored")
    author = _author(by)
    with transaction(conn):
        nid, name = _find(conn, name_or_id)
        nb = _load_by_id(conn, nid, name)
        since = nb.state()
        upgraded = nb.upgrade()
        before_state, before = nb.full_update(), _view(nb)
        try:
            nb.doc.apply_update(bytes(update))
        except ValueError as exc:
            reason = str(exc).strip().split("\n")[0][:200]
            raise InputError(f"the update for notebook '{name}' is not a notebook update ({reason}); nothing was stored") from None
        if nb.full_update() == before_state:
            return None
        _check_size(nb)
        changes = _changes(before, _view(nb))
        _save(conn, nb, since, changes, author, upgraded=upgraded)
    return {"changed": [action for action, _ in changes], "notebook": name}


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
        _event(conn, new, nid, "renamed", {"from": old, "to": new}, local_by(conn))


def remove(conn: sqlite3.Connection, name: str) -> None:
    """Delete a notebook with its updates and stored cell results (its events stay in the log)."""
    with transaction(conn):
        nb = load(conn, name)
        conn.execute("DELETE FROM notebooks WHERE id = ?", (nb.id,))  # type: ignore[attr-defined]
        _event(conn, name, nb.id, "removed", {"title": nb.title, "cells": len(nb)}, local_by(conn))  # type: ignore[attr-defined]


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
