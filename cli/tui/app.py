"""``tessera dash``: a notebook as a grid of live panes (rows of 1, 2 or 4).

The app is a thin shell: cells are kept current by a core NotebookSession on its own thread,
and every edit goes through the session's core NotebookEditor (core/notebook/editor.py: the
store's functions, by cell id, written in order off the UI thread), after which the session
reloads the notebook — so an edit made here is at once visible to ``notebook show`` in
another process, and an edit made there shows up here.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any, Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Static

from tessera.cli.tui.cell_pane import CellPane

# Checks for new pane states this often: changes are coalesced to at most this rate per pane.
SYNC_SECONDS = 0.1
# How long the banner shows an edit the owner refused.
NOTICE_SECONDS = 10.0


class DashApp(App):
    """The dashboard over one notebook.

    Args:
        session: a tessera.core.notebook.session.NotebookSession (not started: the app starts and
            stops it); edits go through its ``editor``.
        db_path: the store file (the app itself opens no connection: the session and its editor do).
        color: False for monochrome (NO_COLOR, --color never).
    """

    TITLE = "tessera"
    CSS = """
    Screen { layout: vertical; }
    #grid { height: 1fr; }
    .row { height: 1fr; min-height: 6; }
    #banner { height: 1; padding: 0 1; background: $panel; }
    #banner.-error { background: $error; color: $text; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("v", "cycle_view", "View"),
        Binding("e", "edit", "Edit"),
        Binding("r", "run_now", "Run"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("z", "zoom", "Zoom"),
        Binding("slash", "filter", "Filter"),
        Binding("a", "add_cell", "Add"),
        Binding("s", "split_row", "Split"),
        Binding("m", "merge_row", "Merge", show=False),
        Binding("d", "remove_cell", "Remove"),
        Binding("left_square_bracket", "move(-1)", "Move ←", show=False),
        Binding("right_square_bracket", "move(1)", "Move →", show=False),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("y", "copy", "Copy"),
        Binding("tab", "focus_next", "Next", show=False),
        Binding("shift+tab", "focus_previous", "Previous", show=False),
        Binding("h,left", "focus_side(-1)", "Left pane", show=False),
        Binding("l,right", "focus_side(1)", "Right pane", show=False),
        Binding("j,down", "scroll(1)", "Down", show=False),
        Binding("k,up", "scroll(-1)", "Up", show=False),
        Binding("pagedown", "scroll_page(1)", "Page down", show=False),
        Binding("pageup", "scroll_page(-1)", "Page up", show=False),
        Binding("g,home", "scroll_end(0)", "Top", show=False),
        Binding("G,end", "scroll_end(1)", "Bottom", show=False),
        Binding("escape", "unzoom", "Unzoom", show=False),
    ]
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, session: Any, db_path: str, *, color: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.db_path = db_path
        self.color = color
        self._layout: list[list[str]] = []
        self._ui: dict[str, dict] = {}  # per cell: offset, needle (kept across re-layouts)
        self._completion: dict[tuple, Any] = {}
        self._pending_focus: str | None = None  # a cell just added, focused when its pane appears
        self._signals: list[int] = []  # signals whose handlers on_mount installed
        self._ui_loop: asyncio.AbstractEventLoop | None = None
        self._push_pending = False
        self._people: list[dict] | None = None  # as last shown
        self._status: tuple | None = None  # a peer's notebook: the connection's status as last shown
        self._notice: tuple[str, float] | None = None  # a refusal kept in the banner until then
        self._follow_session()

    # --- life cycle ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="banner", markup=False)  # it shows the notebook title and error text, user text
        yield VerticalScroll(id="grid", can_focus=False)
        yield Footer()

    def _follow_session(self) -> None:
        """Have the session's worker push its changes to the screen at once (a keystroke typed
        elsewhere, a new layout, a pane's new rows), besides the regular SYNC_SECONDS check."""
        on_layout, on_update = self.session.on_layout, self.session.on_update

        def layout_changed(session: Any) -> None:
            on_layout(session)
            self._push()

        def pane_changed(state: Any) -> None:
            on_update(state)
            self._push()

        self.session.on_layout, self.session.on_update = layout_changed, pane_changed
        if hasattr(self.session, "on_refused"):  # a peer's notebook: the owner may refuse an edit
            self.session.on_refused = lambda text: self._on_ui(self._refused, text)

    def _push(self) -> None:
        """From any thread: sync the screen soon (once for many calls in a row)."""
        loop = self._ui_loop
        if loop is None or self._push_pending:
            return
        self._push_pending = True
        try:
            loop.call_soon_threadsafe(self._pushed)
        except RuntimeError:  # the app's loop has ended
            pass

    def _pushed(self) -> None:
        self._push_pending = False
        if self.is_running:
            self._sync()

    def _refused(self, text: str) -> None:
        """The owner refused an edit: its one line, in the banner and as a notification; the
        document is back to the owner's state (the session's next layout shows it)."""
        import time

        self.notify(text, severity="error", timeout=8, markup=False)
        self._notice = (text, time.monotonic() + NOTICE_SECONDS)
        self._banner()
        self.set_timer(NOTICE_SECONDS + 0.1, self._banner)

    def on_mount(self) -> None:
        if not self.color:
            self.theme = "textual-ansi" if "textual-ansi" in self.available_themes else self.theme
        self._ui_loop = asyncio.get_running_loop()
        self.session.start()
        self.set_interval(SYNC_SECONDS, self._sync)
        self._banner()
        self._catch_signals()

    def on_unmount(self) -> None:
        self._release_signals()
        self.session.stop()  # edits still queued are written first, before the process ends

    def _catch_signals(self) -> None:
        """Leave as ``q`` does (terminal restored, session stopped, edits written) on kill,
        hang-up or an interrupt signal, with the exit code the signal's default would give."""
        from tessera.core.errors import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED

        loop = asyncio.get_running_loop()
        for sig, code in ((signal.SIGTERM, EXIT_TERMINATED), (signal.SIGHUP, EXIT_HANGUP),
                          (signal.SIGINT, EXIT_INTERRUPTED)):
            try:
                loop.add_signal_handler(sig, lambda code=code: self.exit(return_code=code))
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such signal
                continue
            self._signals.append(sig)

    def _release_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()

    def _fatal_error(self) -> None:
        """A bug: close without Textual's full-screen traceback; ``tessera dash`` then reports
        the exception as one line (TESSERA_DEBUG=1 keeps Textual's traceback)."""
        import os

        if os.environ.get("TESSERA_DEBUG"):
            super()._fatal_error()
            return
        self._close_messages_no_wait()

    # --- keeping the screen in step with the session ---------------------------------------

    def _sync(self) -> None:
        """Re-layout when the notebook's layout changed; hand each pane its newest state."""
        if not self._has_screens():
            return
        if self.session.failure is not None:
            self._banner(f"stopped: {_one_line(self.session.failure)}", error=True)
            return
        layout = [list(row) for row in self.session.layout]
        people = list(self.session.people)
        status = (self.session.status, self.session.reason)
        if layout != self._layout:
            self._relayout(layout)
            self._banner()
        elif people != self._people or status != self._status:
            self._banner()
        self._people, self._status = people, status
        here: dict[str, list[str]] = {}
        for person in people:
            if person.get("cell"):
                here.setdefault(person["cell"], []).append(person.get("name") or "?")
        for pane in self.query(CellPane):
            state = self.session.panes.get(pane.cell_id)
            if state is not None:
                pane.show_state(state)
            pane.show_people(here.get(pane.cell_id, []))
        self._follow_editor()
        self._tell_cell()

    def _follow_editor(self) -> None:
        """An open editor shows what others typed in its cell (once our own typing is stored)."""
        from tessera.cli.tui.cell_editor import EditScreen

        screen = self.screen
        if not isinstance(screen, EditScreen):
            return
        state = self.session.panes.get(screen.cell["id"])
        if state is not None:
            screen.follow(state.cell.get("source", ""), self.session.doc_version)
        elif self.session.layout and not screen.pending:
            # removed elsewhere (another dashboard, a peer): nothing left to type into
            screen.dismiss(None)
            self.notify(f"cell {screen.cell.get('number', '?')} was removed elsewhere; its editor is closed",
                        severity="warning", timeout=6, markup=False)

    def _tell_cell(self) -> None:
        """Presence: the cell this dashboard is in (being edited, else focused)."""
        from tessera.cli.tui.cell_editor import EditScreen

        screen = self.screen
        if isinstance(screen, EditScreen):
            cell = screen.cell["id"]
        else:
            cell = self.focused.cell_id if isinstance(self.focused, CellPane) else None
        self.session.set_cell(cell)

    def _soon(self) -> None:
        """Look for the session's answer to a command sooner than the next regular sync."""
        for delay in (0.02, 0.05):
            self.set_timer(delay, self._sync)

    def sync_now(self) -> None:
        """Apply the session's current state at once (tests call this instead of waiting)."""
        self._sync()

    def _relayout(self, layout: list[list[str]]) -> None:
        grid = self.query_one("#grid", VerticalScroll)
        focused = self.focused.cell_id if isinstance(self.focused, CellPane) else None
        before = self._layout
        for pane in self.query(CellPane):
            self._ui[pane.cell_id] = {"offset": pane.row_offset, "needle": pane.needle}
        if self.screen.maximized is not None:
            self.screen.minimize()
        grid.remove_children()
        rows = []
        for ids in layout:
            panes = []
            for cell_id in ids:
                state = self.session.panes.get(cell_id)
                if state is None:
                    continue
                ui = self._ui.get(cell_id, {})
                panes.append(CellPane(cell_id, state, row_offset=ui.get("offset", 0), needle=ui.get("needle"),
                                      color=self.color, runs_at=self.session.runs_at))
            rows.append(Horizontal(*panes, classes="row"))
        grid.mount_all(rows)
        self._layout = layout
        shown = {c for row in layout for c in row}
        target = focused if focused in shown else _nearest(focused, before, layout)
        if self._pending_focus in shown:  # a cell just added takes the focus once it has a pane
            target, self._pending_focus = self._pending_focus, None
        if target is not None:
            self.call_after_refresh(self._focus_cell, target)

    def _focus_pending(self) -> None:
        cell_id, self._pending_focus = self._pending_focus, None
        if cell_id is not None:
            self._focus_cell(cell_id)

    def _focus_cell(self, cell_id: str) -> None:
        for pane in self.query(CellPane):
            if pane.cell_id == cell_id:
                pane.focus()
                return

    def _has_screens(self) -> bool:
        """False once the app shuts down: it drops its screens before its timers stop, so a
        timer's tick can still land then."""
        return self.is_running and bool(self.screen_stack)

    def _banner(self, text: str | None = None, *, error: bool = False) -> None:
        if not self._has_screens():
            return
        banner = self.query_one("#banner", Static)
        if text is None and self._notice is not None:
            import time

            if time.monotonic() < self._notice[1]:
                text, error = self._notice[0], True
            else:
                self._notice = None
        if text is None:
            title = self.session.title or self.session.name
            cells = sum(len(r) for r in self._layout)
            text = f"{self.session.name} — {title} · {cells} cells"
            status, reason = self.session.status, self.session.reason
            if status in ("connecting", "offline"):  # a peer's notebook, not live now
                text += f" · {status}" + (f": {reason}" if reason else "") + " (edits are kept and sent when back)"
                error = status == "offline"
            if self.session.role:
                text += f" · you are {'a viewer' if self.session.role == 'viewer' else 'an editor'}"
            people = self.session.people
            if people:
                text += " · here: " + ", ".join(self._person(p) for p in people)
            text += " · ? for help"
        banner.update(text)
        banner.set_class(error, "-error")

    def _person(self, person: dict) -> str:
        """``bob (cell 2)``: a person in the notebook and the cell they are in."""
        name = person.get("name") or "?"
        cell = person.get("cell")
        state = self.session.panes.get(cell) if cell else None
        if state is None:
            return name
        return f"{name} (cell {state.cell.get('number', '?')})"

    # --- the focused pane ------------------------------------------------------------------

    @property
    def pane(self) -> CellPane | None:
        """The focused pane, or the first one."""
        if isinstance(self.focused, CellPane):
            return self.focused
        panes = list(self.query(CellPane))
        return panes[0] if panes else None

    def _number(self, pane: CellPane) -> int:
        return int(pane.state.cell.get("number") or 0)

    # --- edits through the core editor, in order, off the UI thread ------------------------

    def persist(self, what: str, edit: Callable[[Any], Any], then: Callable[[Any], None] | None = None) -> None:
        """Queue ``edit(conn)`` (a store function's call) on the session's editor; ``then(result)``
        back on the UI thread. An error becomes a notification; the session reloads the notebook
        after each edit."""
        self.session.editor.submit(edit, **self._replies(what, then))

    def _replies(self, what: str, then: Callable[[Any], None] | None = None) -> dict:
        """The editor's callbacks (they run on its thread) for an edit called ``what``."""
        def done(result: Any) -> None:
            self._on_ui(self._soon)
            if then is not None:
                self._on_ui(then, result)

        def failed(err: Exception) -> None:
            # markup=False: the message echoes the user's text, and "[/]" in it would raise MarkupError
            self._on_ui(self.notify, f"{what}: {_one_line(err)}", severity="error", timeout=6, markup=False)

        return {"done": done, "failed": failed}

    def _on_ui(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn`` on the UI thread, unless the app is already closing."""
        try:
            self.call_from_thread(fn, *args, **kwargs)
        except RuntimeError:
            pass

    # --- actions ---------------------------------------------------------------------------

    def action_help(self) -> None:
        from tessera.cli.tui.screens import HelpScreen

        self.push_screen(HelpScreen(self.BINDINGS))

    def action_cycle_view(self) -> None:
        from tessera.core.render.views import next_view

        pane = self.pane
        if pane is None or pane.state.cell["type"] == "markdown":
            return
        view = next_view(pane.view)
        pane.set_view(view)
        name, cell_id = self.session.name, pane.cell_id
        self.session.editor.set_cell(name, cell_id, view=view, **self._replies("view"))

    def action_run_now(self) -> None:
        pane = self.pane
        if pane is not None:
            self.session.run_now(pane.cell_id)
            self._soon()
            self.notify(f"running cell {self._number(pane)}", timeout=1.5)

    def action_toggle_pause(self) -> None:
        pane = self.pane
        if pane is None:
            return
        if pane.state.status == "paused":
            self.session.resume(pane.cell_id)
        else:
            self.session.pause(pane.cell_id)
        self._soon()

    def action_zoom(self) -> None:
        pane = self.pane
        if pane is None:
            return
        if self.screen.maximized is not None:
            self.screen.minimize()
        else:
            self.screen.maximize(pane, container=False)
        pane.refresh()

    def action_unzoom(self) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()

    def action_scroll(self, delta: int) -> None:
        if self.pane is not None:
            self.pane.scroll_rows(delta)

    def action_scroll_page(self, direction: int) -> None:
        if self.pane is not None:
            self.pane.scroll_rows(direction * max(1, self.pane.body_height() - 1))

    def action_scroll_end(self, end: int) -> None:
        if self.pane is not None:
            self.pane.scroll_home(end=bool(end))

    def action_focus_side(self, direction: int) -> None:
        pane = self.pane
        if pane is None:
            return
        for row in self._layout:
            if pane.cell_id in row:
                i = row.index(pane.cell_id) + direction
                if 0 <= i < len(row):
                    self._focus_cell(row[i])
                return

    def action_filter(self) -> None:
        from tessera.cli.tui.screens import FilterScreen

        pane = self.pane
        if pane is None:
            return

        def done(needle: str | None) -> None:
            if needle is not None:
                pane.set_needle(needle)

        self.push_screen(FilterScreen(pane.needle or ""), done)

    def action_copy(self) -> None:
        from tessera.core.render.views import rows_as_text

        pane = self.pane
        if pane is None:
            return
        st = pane.state
        if st.status == "static" or st.result is None:
            text = st.cell.get("source", "")
        else:
            text = rows_as_text(st.result, pane.view, pane.needle)
        self.copy_to_clipboard(text)
        self.notify(f"copied {text.count(chr(10))} lines (OSC 52)", timeout=2)

    def action_edit(self) -> None:
        from tessera.cli.tui.cell_editor import EditScreen

        pane = self.pane
        if pane is None:
            return
        cell = pane.state.cell
        cell_id = pane.cell_id

        def write(base: str, text: str, written: Callable[[Any], None], failed: Callable[[Exception], None]) -> None:
            # Each change as typed, by id, onto what the cell holds when it is written: the cell
            # may have moved, or others may be typing in it too (core/notebook/editor.py).
            replies = self._replies("edit", written)
            on_error = replies["failed"]

            def not_written(err: Exception) -> None:
                self._on_ui(failed, err)
                on_error(err)

            self.session.editor.type_text(self.session.name, cell_id, base, text, done=replies["done"],
                                          failed=not_written)

        def closed(text: str | None) -> None:
            self._tell_cell()

        r = pane.region
        self.push_screen(EditScreen(cell, self.completion(cell.get("sources") or []), (r.x, r.y, r.width, r.height),
                                    write=write), closed)
        self.session.set_cell(cell_id)

    def completion(self, specs: list[str]) -> Any:
        """The completion data (kinds, fields) for cells reading these sources."""
        from tessera.cli.tui.cell_editor import CompletionData

        key = tuple(specs)
        if key not in self._completion:
            self._completion[key] = CompletionData(list(specs), self.session.options)
        return self._completion[key]

    def action_add_cell(self) -> None:
        pane = self.pane
        name = self.session.name
        after = pane.cell_id if pane is not None else None
        # the new cell reads what the focused one reads (a markdown cell reads nothing: the defaults)
        sources = list(pane.state.cell.get("sources") or []) if pane is not None else []

        def added(result: Any) -> None:
            cell_id, number = result
            self.notify(f"added cell {number}: press e to edit its query", timeout=3)
            self._pending_focus = cell_id
            if any(cell_id in row for row in self._layout):
                # its pane came before this answer: focus it after the focus that re-layout set
                self.call_after_refresh(self._focus_pending)

        self.session.editor.add_cell(name, "MATCH (p:Pod) RETURN p.metadata.name AS pod, p.status.phase AS phase",
                                     refresh="watch", sources=sources, after=after, **self._replies("add", added))

    def action_split_row(self) -> None:
        self._row_edit("split", "split_row")

    def action_merge_row(self) -> None:
        self._row_edit("merge", "merge_rows")

    def _row_edit(self, what: str, fn: str) -> None:
        pane = self.pane
        if pane is None:
            return
        getattr(self.session.editor, fn)(self.session.name, pane.cell_id, **self._replies(what))

    def action_remove_cell(self) -> None:
        from tessera.cli.tui.screens import ConfirmScreen

        pane = self.pane
        if pane is None:
            return
        name, number, cell_id = self.session.name, self._number(pane), pane.cell_id
        title = pane.state.cell.get("title") or pane.state.cell["id"]

        def done(yes: bool | None) -> None:
            if yes:
                self.session.editor.remove_cell(name, cell_id, **self._replies("remove"))

        self.push_screen(ConfirmScreen(f"Remove cell {number} ({title})? y/n"), done)

    def action_move(self, delta: int) -> None:
        pane = self.pane
        if pane is None:
            return
        name, number, cell_id = self.session.name, self._number(pane), pane.cell_id
        total = sum(len(r) for r in self._layout)
        to = number + delta
        if not 1 <= to <= total:
            return
        self.session.editor.move_cell(name, cell_id, to, **self._replies("move"))

    def get_system_commands(self, screen: Any) -> Any:
        from textual.app import SystemCommand

        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if binding.action in ("command_palette", "quit") or binding.action.startswith(("focus", "scroll")):
                continue
            action = binding.action
            yield SystemCommand(binding.description, ACTION_HELP.get(action.split("(")[0], binding.description),
                                lambda a=action: self.run_action(a))


ACTION_HELP = {
    "help": "Show every key",
    "cycle_view": "Cycle the view: table, json, yaml, tree, graph",
    "edit": "Edit the query (Ctrl+S saves, Tab completes)",
    "run_now": "Run the focused cell again now",
    "toggle_pause": "Pause or resume the focused cell",
    "zoom": "Zoom the focused pane full screen (again: back)",
    "filter": "Show only rows containing some text",
    "add_cell": "Add a query cell in a new row after this one",
    "split_row": "Split this row (2 -> 1+1, 4 -> 2+2)",
    "merge_row": "Merge this row with the next (1+1 -> 2, 2+2 -> 4)",
    "quit": "Quit",
    "remove_cell": "Remove the focused cell (asks first)",
    "move": "Move the focused cell one place back ([) or on (])",
    "copy": "Copy the pane's rows to the clipboard (OSC 52)",
}


def _nearest(gone: str | None, before: list[list[str]], after: list[list[str]]) -> str | None:
    """The cell to focus when the focused one ``gone`` is no longer shown (removed, say): the
    one now at its place in reading order, else the last one; the first when nothing was focused."""
    order = [c for row in after for c in row]
    if not order:
        return None
    old_order = [c for row in before for c in row]
    if gone is None or gone not in old_order:
        return order[0]
    return order[min(old_order.index(gone), len(order) - 1)]


def _one_line(err: BaseException) -> str:
    one = getattr(err, "one_line", None)
    return one() if callable(one) else f"{type(err).__name__}: {err}"
