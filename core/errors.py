"""Typed errors. Every error a user can cause maps to one exit code and a one-line message."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_TIMEOUT = 4
EXIT_UNAUTHORIZED = 5
EXIT_HANGUP = 129  # 128 + SIGHUP: the terminal went away (full-screen front ends)
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


class TesseraError(Exception):
    """Base class: ``str(err)`` is the one-line message, ``exit_code`` the process exit code."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message plus the hint (how to fix), on one line."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


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
            return f"{where}{lead}expected {self.expected}, got {self.found}"
        return f"{where}{self.message} (at {self.found})"

    def caret(self) -> str:
        """The offending source line with a caret under the offending column."""
        lines = self.source.split("\n")
        text = lines[self.line - 1] if self.line - 1 < len(lines) else ""
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: self.column - 1])
        return f"{text}\n{pad}^"

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
