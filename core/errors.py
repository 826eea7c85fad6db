"""Typed errors. Every error a user can cause maps to one exit code and a one-line message."""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_TIMEOUT = 4
EXIT_UNAUTHORIZED = 5
EXIT_HANGUP = 129  # 128 + SIGHUP: the terminal went away (full-screen front ends)
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM

# C0 and C1 control characters (ESC, newline, NUL...), DEL, and the Unicode bidi overrides that
# reorder what a terminal shows. Input echoed in a message must not move the cursor, clear the
# screen or break the message over lines, so these are shown as escapes.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b``, ``\\n``, ``\\t``...), so that printed
    on a terminal it stays on one line and sends no escape sequence. Backslashes are left alone,
    so escaping twice changes nothing."""
    return _CONTROL.sub(_escape, text)


class TesseraError(Exception):
    """Base class: ``str(err)`` is the one-line message, ``exit_code`` the process exit code."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message plus the hint (how to fix), on one line (control characters escaped)."""
        return printable(f"{self.message} ({self.hint})" if self.hint else self.message)


class QueryError(TesseraError):
    """A query that parses but cannot run: unknown kind, bad path, refused mutation..."""


class UnknownKind(QueryError):
    """A kind name no source offers (the hint lists the closest names)."""


class ParseError(QueryError):
    """A syntax error, with its position.

    Attributes:
        line, column: 1-based position of the offending token.
        found: the offending token, quoted (``"RETURN"``; ``end of query`` at the end of the text).
        expected: what would have been valid there ("" when the message says it all).
        source: the full query text (used to draw the caret).
    """

    def __init__(self, message: str, *, source: str, offset: int, found: str, expected: str):
        self.source = source
        self.offset = max(0, min(offset, len(source)))
        before = source[: self.offset]
        self.line = before.count("\n") + 1
        self.column = self.offset - (before.rfind("\n") + 1) + 1
        self.found = found
        self.expected = expected
        super().__init__(message)

    def one_line(self) -> str:
        """``parse error at line L, column C: [MESSAGE: ]expected X, got "tok"``.

        Without an ``expected`` part: ``parse error at line L, column C: MESSAGE (at "tok")``.
        """
        where = f"parse error at line {self.line}, column {self.column}: "
        if self.expected:
            lead = f"{self.message}: " if self.message else ""
            return printable(f"{where}{lead}expected {self.expected}, got {self.found}")
        return printable(f"{where}{self.message} (at {self.found})")

    CARET_WIDTH = 120  # characters of a long source line shown around the offending column

    def caret(self) -> str:
        """The offending source line with a caret under the offending column (two lines; control
        characters in the line are escaped and the caret still points at the same character). A
        line longer than CARET_WIDTH is cut to the part around the column, with ``…`` where cut."""
        lines = self.source.split("\n")
        text = lines[self.line - 1] if self.line - 1 < len(lines) else ""
        column = self.column - 1
        start, end = 0, len(text)
        if len(text) > self.CARET_WIDTH:
            start = max(0, min(column - self.CARET_WIDTH // 2, len(text) - self.CARET_WIDTH))
            end = start + self.CARET_WIDTH
        part = text[start:end]
        lead, tail = ("…" if start > 0 else ""), ("…" if end < len(text) else "")
        shown = lead + "\t".join(printable(p) for p in part.split("\t")) + tail  # tabs kept, so the caret lines up
        pad = " " * len(lead) + "".join("\t" if ch == "\t" else " " * len(printable(ch)) for ch in text[start:column])
        return f"{shown}\n{pad}^"

    def __str__(self) -> str:
        return self.one_line()


class UsageError(TesseraError):
    """Bad flags or arguments (exit 2)."""

    exit_code = EXIT_USAGE


class SourceUnavailable(TesseraError):
    """A source could not be reached or read (exit 3)."""

    exit_code = EXIT_UNAVAILABLE


class SourceTimeout(TesseraError):
    """A source did not answer in time (exit 4)."""

    exit_code = EXIT_TIMEOUT


class NotAuthorized(TesseraError):
    """The source refused us (exit 5)."""

    exit_code = EXIT_UNAUTHORIZED


class InputError(UsageError):
    """A file we were given cannot be read as what it claims to be (bad YAML, bad relationships.yaml).

    The message names the file and line at fault (``path:line: what``), exit 2.
    """


class WatchExpired(TesseraError):
    """A watch's resourceVersion is too old (HTTP 410 Gone): the watcher must list again.

    Internal to watch caches; never reaches the user.
    """

    exit_code = EXIT_UNAVAILABLE


class EditConflict(TesseraError):
    """An edit made on an old copy changes lines someone else changed meanwhile (exit 1); the
    message says where the edit was kept."""


class ReadOnly(TesseraError):
    """A write was asked of a source or a mode that refuses writes (exit 1)."""
