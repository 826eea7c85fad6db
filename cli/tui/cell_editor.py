"""Editing a cell's query in the dashboard: a text area highlighted by Tessera's own lexer
(core/query/highlight.py) with completion of keywords, kinds and field paths
(core/completion.py). Tab completes; Esc or Ctrl+S closes it.

The editor is live: each change is written to the notebook as it is typed (``write``, the
session editor's ``type_text``), and what others type in the same cell (another dashboard, a
peer) comes into the open editor (``follow``) as one replacement, the cursor kept where it was
in the text around it (core/notebook/editor.py map_offset)."""

from __future__ import annotations

import threading
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static, TextArea
from textual.widgets.text_area import Selection

# Highlight classes of core/query/highlight.py -> TextArea theme style names.
_STYLE_NAMES = {"kind": "type", "variable": "variable.builtin", "function": "function.call",
                "punctuation": "punctuation.bracket", "macro": "keyword.function"}


class CompletionData:
    """Kinds and field paths for completion over one set of sources, fetched on a thread
    (discovery and sampling may take a moment against a real cluster) and kept for the app's
    life.

    Args:
        specs: the cell's ``-s`` specs (empty: the session's defaults).
        options: the session's SessionOptions (contexts, kubeconfig, defaults).
    """

    def __init__(self, specs: list[str], options: Any) -> None:
        self.specs = list(specs)
        self.options = options
        self.kinds: list[str] = []
        self._fields: dict[str, list[str]] = {}
        self._sources: list[Any] | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._load_kinds, daemon=True).start()

    def _open(self) -> list[Any]:
        if self._sources is None:
            from tessera.core import api

            o = self.options
            specs = self.specs or o.default_sources
            self._sources = api.open_sources(specs, contexts=o.contexts if not specs else [], kubeconfig=o.kubeconfig,
                                             speed=o.speed, loop=o.loop)
        return self._sources

    def _load_kinds(self) -> None:
        from tessera.core import api

        try:
            kinds = api.list_kinds(self._open())
        except Exception:  # completion is a help, never an error
            return
        names = set()
        for k in kinds:
            names.add(k.get("kind") or "")
        self.kinds = sorted(n for n in names if n)

    def fields(self, kind: str) -> list[str]:
        """Field paths seen in up to 20 sampled objects of ``kind`` (empty if none or failing)."""
        with self._lock:
            if kind in self._fields:
                return self._fields[kind]
        from tessera.core import api
        from tessera.core.completion import field_paths

        try:
            result = api.run_query(f"MATCH (x:{kind}) RETURN x LIMIT 20", self._open())
            objects = [row.get("x") for row in result.rows if isinstance(row.get("x"), dict)]
            paths = field_paths(objects)
        except Exception:
            paths = []
        with self._lock:
            self._fields[kind] = paths
        return paths


class QueryArea(TextArea):
    """A TextArea highlighted with Tessera's lexer instead of a tree-sitter grammar."""

    def _build_highlight_map(self) -> None:
        from tessera.core.query.highlight import spans

        self._line_cache.clear()
        highlights = self._highlights
        highlights.clear()
        text = self.text
        # spans are character offsets into the text; the map wants (row, byte column)
        starts = [0]
        for line in text.split("\n"):
            starts.append(starts[-1] + len(line) + 1)
        lines = text.split("\n")
        try:
            found = spans(text)
        except Exception:
            return
        row = 0
        for start, end, cls in found:
            while row + 1 < len(starts) and starts[row + 1] <= start:
                row += 1
            if row >= len(lines):
                break
            line = lines[row]
            a = start - starts[row]
            b = min(end - starts[row], len(line))
            name = _STYLE_NAMES.get(cls, cls)
            highlights[row].append((len(line[:a].encode()), len(line[:b].encode()), name))


class EditScreen(ModalScreen[str | None]):
    """Edits one cell's source in place: the editor covers the cell's own pane (grown to at least
    72x12 where the pane is smaller, and kept on screen). Dismisses with the new text (Ctrl+S)
    or None (Esc).

    Args:
        cell: the cell's dict.
        completion: kinds and fields for its sources.
        region: where the pane is on screen (x, y, width, height); None: centred.
    """

    DEFAULT_CSS = """
    EditScreen { align: center middle; }
    EditScreen > Vertical { width: 90%; height: 80%; border: round $accent; background: $surface; }
    EditScreen.-in-place { align: left top; }
    EditScreen QueryArea { height: 1fr; }
    EditScreen OptionList { height: auto; max-height: 8; display: none; }
    EditScreen OptionList.-shown { display: block; }
    EditScreen #edit-help { height: 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "Close"),
        Binding("escape", "cancel", "Close"),
        Binding("tab", "complete", "Complete", priority=True),
    ]

    def __init__(self, cell: dict, completion: CompletionData | None = None,
                 region: tuple[int, int, int, int] | None = None, *, write: Any = None) -> None:
        """``write(base, text, written, failed)``: store the change ``base`` -> ``text`` (then
        ``written({"text", "version"})`` or ``failed(error)``, on the UI thread). A viewer of a
        peer's notebook types too: the owner's node refuses the edit, and says so."""
        super().__init__()
        self.cell = cell
        self.completion = completion
        self.anchor = region
        self.write = write
        self._candidates: list[str] = []
        self._start = 0
        self._shown = cell.get("source", "")  # the text last written or followed (not a new change)
        self._pending = 0  # changes written but not yet stored
        self._written_version: int | None = None  # the document version holding our last change

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"cell {self.cell.get('number')} · {self.cell.get('title') or self.cell['type']} — "
                         "saved as you type · Esc close · Tab complete", id="edit-help", markup=False)
            area = QueryArea(self.cell.get("source", ""), soft_wrap=True, show_line_numbers=True, tab_behavior="focus")
            area.theme = "monokai" if self.app.color else "css"
            yield area
            yield OptionList(id="completions")

    def on_mount(self) -> None:
        if self.anchor is not None:
            screen_w, screen_h = self.app.size
            x, y, w, h = self.anchor
            w, h = min(screen_w, max(w, 72)), min(screen_h, max(h, 12))
            box = self.query_one(Vertical)
            box.styles.width, box.styles.height = w, h
            box.styles.offset = (max(0, min(x, screen_w - w)), max(0, min(y, screen_h - h)))
            self.add_class("-in-place")
        area = self.query_one(QueryArea)
        area.focus()
        area.move_cursor(area.document.end)

    def action_save(self) -> None:
        self.dismiss(self.query_one(QueryArea).text)

    def action_cancel(self) -> None:
        options = self.query_one(OptionList)
        if options.has_class("-shown"):
            options.remove_class("-shown")
            self.query_one(QueryArea).focus()
            return
        self.dismiss(self.query_one(QueryArea).text)  # every change is written already

    # --- live: our changes out, others' in ------------------------------------------------

    @property
    def pending(self) -> int:
        """Changes typed here and not yet stored."""
        return self._pending

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        text = event.text_area.text
        if text == self._shown or self.write is None:
            return  # followed from the document (or nothing new)
        base, self._shown = self._shown, text
        self._pending += 1
        self.write(base, text, self._written, self._write_failed)

    def _written(self, result: dict) -> None:
        self._pending -= 1
        version = result.get("version")
        if version is not None and (self._written_version is None or version > self._written_version):
            self._written_version = version

    def _write_failed(self, error: Exception) -> None:
        self._pending -= 1

    def follow(self, text: str, version: int | None) -> bool:
        """Show the document's text of the cell (version ``version``), once every change typed
        here is in it: a document older than our last stored change is skipped (it would undo
        what was just typed). Returns whether the editor changed."""
        from tessera.core.notebook.editor import changed_span, map_offset

        if self._pending or (self._written_version is not None and version is not None
                             and version < self._written_version):
            return False
        areas = self.query(QueryArea)
        if not areas:  # not composed yet
            return False
        area = areas.first()
        old = area.text
        if old != self._shown:
            return False  # typed here, its Changed message not handled yet: written first
        if text == old:
            self._shown = text
            return False
        start, old_end, new_end = changed_span(old, text)
        cursor = map_offset(old, text, _offset(old, area.cursor_location))
        anchor = map_offset(old, text, _offset(old, area.selection.start))
        self._shown = text
        area.replace(text[start:new_end], _location(old, start), _location(old, old_end), maintain_selection_offset=True)
        area.selection = Selection(_location(text, anchor), _location(text, cursor))
        return True

    def action_complete(self) -> None:
        """Complete the word at the cursor: insert the only candidate, else list them."""
        options = self.query_one(OptionList)
        if options.has_class("-shown") and options.highlighted is not None:
            self._insert(self._candidates[options.highlighted])
            return
        area = self.query_one(QueryArea)
        text = area.text
        cursor = _offset(text, area.cursor_location)
        start, candidates = self.candidates(text, cursor)
        self._start = start
        if not candidates:
            self.notify("no completions", timeout=1)
            return
        if len(candidates) == 1:
            self._insert(candidates[0])
            return
        self._candidates = candidates[:50]
        options.clear_options()
        options.add_options(self._candidates)
        options.highlighted = 0
        options.add_class("-shown")
        options.focus()

    def candidates(self, text: str, cursor: int) -> tuple[int, list[str]]:
        """What may go at ``cursor``: (where the replaced word starts, candidates)."""
        from tessera.core.completion import complete

        data = self.completion
        return complete(text, cursor, kinds=data.kinds if data else [], fields=data.fields if data else None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._insert(self._candidates[event.option_index])

    def _insert(self, word: str) -> None:
        area = self.query_one(QueryArea)
        area.replace(word, _location(area.text, self._start), area.cursor_location)
        self.query_one(OptionList).remove_class("-shown")
        area.focus()


def _offset(text: str, location: tuple[int, int]) -> int:
    """A (row, column) location as a character offset."""
    row, col = location
    lines = text.split("\n")
    return sum(len(line) + 1 for line in lines[:row]) + col


def _location(text: str, offset: int) -> tuple[int, int]:
    """A character offset as a (row, column) location."""
    before = text[:offset].split("\n")
    return len(before) - 1, len(before[-1])
