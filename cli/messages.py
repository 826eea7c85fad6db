"""What the CLI writes on stderr besides results: errors, warnings and notes, each one line
prefixed ``tessera:``, with control characters in echoed input escaped (core.errors.printable),
so a query or file name holding ``\\x1b[2J`` or a newline cannot clear the screen or split a line."""

from __future__ import annotations

import sys

from tessera.core.errors import ParseError, TesseraError, printable


def print_error(err: TesseraError) -> None:
    """One ``tessera: ...`` line on stderr; a parse error adds the source line and a caret."""
    print(f"tessera: {printable(err.one_line())}", file=sys.stderr)
    if isinstance(err, ParseError):
        for line in err.caret().split("\n"):
            print(f"  {line}", file=sys.stderr)


def print_message(message: str) -> None:
    """``tessera: MESSAGE`` on stderr, on one line."""
    print(f"tessera: {printable(message)}", file=sys.stderr)


def print_warning(message: str) -> None:
    """``tessera: warning: MESSAGE`` on stderr, on one line."""
    print_message(f"warning: {message}")


def open_store():
    """The data home's store, saying on stderr when it waits for another process's write lock."""
    from tessera.core.store.db import connect

    return connect(on_wait=print_message)
