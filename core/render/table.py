"""The table format: a rich table, one row per result row.

Cells are for a terminal: control characters other than line breaks and tabs are escaped
(``\x1b``), so a value from elsewhere (a manifest, a peer's notebook or event) cannot send an
escape sequence. The data formats (json, csv...) carry values as they are.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

from tessera.core.errors import printable
from tessera.core.render import is_terminal
from tessera.core.render.data import cell_text

_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # as errors.printable, less \n \t


def terminal_text(text: str) -> str:
    """``text`` with every control character but newline and tab escaped."""
    return _CONTROL_BUT_LINES.sub(lambda m: printable(m.group()), text)


def write_table(result: Any, out: TextIO, *, color: bool = False, width: int | None = None) -> None:
    """Write rows as a rich table; an empty result prints ``(no rows)``.

    Args:
        result: the Result.
        out: the stream.
        color: ANSI styles on headers and borders.
        width: the table width (default: the terminal width when ``out`` is one, else 120).
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(
        file=out,
        color_system="auto" if color else None,
        force_terminal=color,
        no_color=not color,
        width=width or (None if is_terminal(out) else 120),
        highlight=False,
        soft_wrap=False,
    )
    if not result.rows:
        console.print("(no rows)", markup=False)
        return
    table = Table(show_lines=False, header_style="bold cyan" if color else None, box=None)
    for col in result.columns:
        table.add_column(Text(terminal_text(col)), overflow="fold")
    for row in result.rows:
        table.add_row(*(Text(terminal_text(cell_text(row.get(c)))) for c in result.columns))
    console.print(table)


