"""The dashboard's small screens: the key help, the row filter prompt and a yes/no question."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static


def key_label(key: str) -> str:
    """A binding's keys as a person types them (``question_mark`` -> ``?``)."""
    names = {"question_mark": "?", "slash": "/", "left_square_bracket": "[", "right_square_bracket": "]",
             "ctrl+p": "Ctrl+P", "shift+tab": "Shift+Tab", "pagedown": "PgDn", "pageup": "PgUp", "escape": "Esc"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


class HelpScreen(ModalScreen[None]):
    """Every key of the dashboard, with what it does; scrolls when the terminal is short. Esc,
    q or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 76; max-width: 95%; height: auto; max-height: 95%;
        border: round $accent; padding: 0 1; background: $surface;
    }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self.bindings_shown = bindings

    def compose(self) -> ComposeResult:
        from rich.table import Table

        from tessera.cli.tui.app import ACTION_HELP

        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        keys: dict[str, list[str]] = {}
        for b in self.bindings_shown:
            if not b.action.startswith(("focus", "scroll", "unzoom")):
                keys.setdefault(b.action.split("(")[0], []).append(key_label(b.key))
        for action, labels in keys.items():
            table.add_row(" ".join(dict.fromkeys(labels)), ACTION_HELP.get(action, action))
        table.add_row("Ctrl+P", "Command palette: every action, searchable")
        table.add_row("Tab", "Next pane (Shift+Tab: previous; h/l: left/right)")
        table.add_row("j k ↑ ↓", "Scroll the focused pane (PgUp/PgDn, g/G: top/end)")
        table.add_row("mouse", "Click a pane to focus it; the wheel scrolls the pane under it")
        with VerticalScroll():
            yield Static("[b]tessera dash — keys[/b]  (Esc closes, ↑↓ scroll)")
            yield Static(table)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)


class FilterScreen(ModalScreen[str | None]):
    """Asks for the text rows must contain; Enter applies (empty clears), Esc cancels."""

    DEFAULT_CSS = """
    FilterScreen { align: center bottom; }
    FilterScreen > Input { width: 100%; margin: 0 0 1 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str = "") -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        yield Input(value=self.current, placeholder="show rows containing… (Enter applies, empty clears, Esc cancels)")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y confirms, anything else declines."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Static { width: auto; border: round $warning; padding: 0 2; background: $surface; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(self.question, markup=False)

    def on_key(self, event: Any) -> None:
        event.stop()
        self.dismiss(event.key == "y")
