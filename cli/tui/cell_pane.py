"""One cell as a dashboard pane: a bordered window whose title is the cell's number, title and
status, whose subtitle is its source, view, row count and last refresh, and whose body is the
visible part of its result (tessera.core.render.views)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.visual import Visual, visualize
from textual.widget import Widget

STATUS_MARK = {"live": "●", "idle": "○", "paused": "‖", "error": "✖", "starting": "…", "static": "¶",
               "reconnecting": "↻"}
STATUS_STYLE = {"live": "green", "idle": "", "paused": "yellow", "error": "red", "starting": "dim", "static": "dim",
                "reconnecting": "yellow"}
WHEEL_LINES = 3  # lines per mouse-wheel notch, as in most terminals and pagers


class KeptBody(Visual):
    """A pane body that keeps its rendered lines while it is drawn again at the same size and
    style (see CellPane._render_body). ``content`` is what it shows."""

    def __init__(self, visual: Visual, content: Any) -> None:
        self.visual = visual
        self.content = content
        self._key: Any = None
        self._strips: Any = None

    def render_strips(self, width: int, height: int | None, style: Any, options: Any) -> Any:
        key = (width, height, style, options.selection, options.selection_style, options.post_style)
        if key != self._key:
            self._strips, self._key = self.visual.render_strips(width, height, style, options), key
        return self._strips

    def get_optimal_width(self, rules: Any, container_width: int) -> int:
        return self.visual.get_optimal_width(rules, container_width)

    def get_height(self, rules: Any, width: int) -> int:
        return self.visual.get_height(rules, width)


class CellPane(Widget, can_focus=True):
    """A cell's pane. The app hands it PaneStates (``show_state``); scrolling and the row filter are
    the pane's own (``offset``, ``needle``) and survive re-layouts through the app."""

    DEFAULT_CSS = """
    CellPane {
        width: 1fr;
        height: 1fr;
        min-width: 16;
        border: round $panel-lighten-2;
        border-title-align: left;
        border-subtitle-align: right;
        padding: 0 1;
    }
    CellPane:focus {
        border: round $accent;
    }
    CellPane.-error {
        border: round $error;
    }
    CellPane.-error:focus {
        border: double $error;
    }
    """

    def __init__(self, cell_id: str, state: Any, *, row_offset: int = 0, needle: str | None = None,
                 color: bool = True, runs_at: str | None = None) -> None:
        from tessera.core.render.views import ViewCache

        super().__init__(id=f"cell-{cell_id}")
        self.cell_id = cell_id
        self.state = state
        self.row_offset = row_offset
        self.needle = needle
        self.color = color
        self.runs_at = runs_at  # where the cell runs (a peer's notebook: "@alice" or "local")
        self.people: list[str] = []  # the others in this cell (presence)
        self._views = ViewCache()
        self._drawn_version = -1
        self._body: KeptBody | None = None  # the body last drawn, kept while what it shows is the same
        self._view_override: str | None = None
        self._update_chrome()

    # --- state ---------------------------------------------------------------------------

    def show_state(self, state: Any) -> None:
        """Take a new PaneState and redraw if it differs from the one drawn."""
        if state is self.state and state.version == self._drawn_version:
            return
        if self._view_override is not None and state.cell.get("view") == self._view_override:
            self._view_override = None  # the saved view has come back from the store
        self.state = state
        self._update_chrome()
        self.refresh()

    def show_people(self, names: list[str]) -> None:
        """Name on the border who else is in this cell (editing it, or with it focused)."""
        if names != self.people:
            self.people = list(names)
            self._update_chrome()

    @property
    def view(self) -> str:
        return self._view_override or self.state.cell.get("view") or "table"

    def set_view(self, view: str) -> None:
        """Show another view at once; it wins over the states that arrive until the session
        reports the saved view back (the app persists it)."""
        self._view_override = view
        self.row_offset = 0
        self._update_chrome()
        self.refresh()

    def set_needle(self, needle: str | None) -> None:
        """Filter rows to those containing ``needle`` (None or "" clears it)."""
        self.needle = needle or None
        self.row_offset = 0
        self._update_chrome()
        self.refresh()

    def scroll_rows(self, delta: int) -> None:
        """Scroll the body by ``delta`` lines (rows in the table view); clamped when drawn."""
        self.row_offset = max(0, self.row_offset + delta)
        self.refresh()

    def on_mouse_scroll_down(self, event: Any) -> None:
        self.scroll_rows(WHEEL_LINES)
        event.stop()  # the pane scrolls its own rows; the grid behind it stays put

    def on_mouse_scroll_up(self, event: Any) -> None:
        self.scroll_rows(-WHEEL_LINES)
        event.stop()

    def scroll_home(self, end: bool = False) -> None:
        self.row_offset = 10**9 if end else 0
        self.refresh()

    def body_height(self) -> int:
        return max(1, self.content_region.height)

    def _update_chrome(self) -> None:
        st = self.state
        cell = st.cell
        mark = STATUS_MARK.get(st.status, "?")
        style = STATUS_STYLE.get(st.status, "") if self.color else ""
        title = cell.get("title") or ""
        head = Text()
        head.append(f"{mark} ", style=style)
        head.append(f"{cell.get('number', '?')} ", style="bold" if self.color else "")
        head.append(title or cell["type"])
        head.append(f" {st.status}", style=style or "")
        if self.people:
            head.append(" · " + ", ".join(self.people), style="bold magenta" if self.color else "")
        self.border_title = head
        parts = [self.runs_at] if self.runs_at else []
        if st.sources:
            parts.append(",".join(st.sources))
        if cell["type"] != "markdown":
            parts.append(self.view)
            parts.append(f"{st.rows} rows" if not self.needle else f"/{self.needle}/")
        parts.append(cell.get("refresh") or "manual")
        if st.refreshed:
            parts.append(st.refreshed[11:19])
        if st.reconnected and st.status != "reconnecting":
            parts.append(f"reconnected {st.reconnected[11:19]}")
        self.border_subtitle = " · ".join(parts)
        self.set_class(st.status == "error", "-error")

    # --- drawing -------------------------------------------------------------------------

    def render(self) -> Any:
        try:
            return self._render_body()
        except Exception as exc:  # a bug drawing one pane must not take the dashboard down
            return Text(f"cannot draw this pane: {type(exc).__name__}: {exc}", style="bold red" if self.color else "")

    def _render_body(self) -> Any:
        from rich.console import Group

        from tessera.core.render.views import markdown, window

        st = self.state
        self._drawn_version = st.version
        if st.status == "static":
            return markdown(st.cell.get("source", ""))
        height = self.body_height()
        parts: list[Any] = []
        problem = st.error or st.fault
        if problem:
            style = ("bold red" if st.error else "bold yellow") if self.color else "bold"
            parts.append(Text(problem, style=style, overflow="fold"))
            height -= min(height - 1, 1 + len(problem) // max(1, self.content_region.width))
        if st.result is None:
            if not problem:
                parts.append(Text("waiting for the first result…" if st.status == "starting" else "(no result yet)",
                                  style="dim"))
            return Group(*parts)
        win = window(st.result, self.view, height=height, offset=self.row_offset, needle=self.needle, cache=self._views,
                     color=self.color)
        self.row_offset = win.offset
        # A live pane is handed a new state about once a second, its title and subtitle (row
        # count, refresh time) redrawn each time; the rows on show are often the same (a change
        # off-screen in 10,000 rows): those keep the lines drawn before instead of laying out
        # and rendering the table (or highlighting the json) again.
        content = (problem, bool(st.error), self.color, win.content)
        if win.content is not None and self._body is not None and self._body.content == content:
            return self._body
        parts.append(win.renderable)
        self._body = KeptBody(visualize(self, Group(*parts)), content)
        return self._body

