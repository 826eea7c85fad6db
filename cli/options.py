"""Flags shared by the data commands, declared once (as sqlite-utils does with click decorators).

``output_options`` adds ``-o/--output``, ``--color``, ``--limit`` and ``-q/--quiet`` to a command
and hands it one ``OutputSettings``; ``emit`` renders a Result with them. The source flags
(``-s``, ``-n``, ``-A``, ``--context``, ``--kubeconfig``) are shared Annotated types.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Optional

import typer

from tessera.core.errors import UsageError

FORMAT_NAMES = ("table", "json", "jsonl", "yaml", "csv", "cyphernetes", "tree", "graph", "dot", "mermaid")

Sources = Annotated[
    Optional[list[str]],
    typer.Option(
        "--source", "-s", metavar="SOURCE",
        help="Manifest file, directory (recursive), '-' for stdin, 'demo', or replay:FILE / replay:demo (a recording). Repeatable.",
        show_default=False,
    ),
]
Speed = Annotated[float, typer.Option("--speed", metavar="X", min=0.001, help="Play recordings X times as fast.")]
Loop = Annotated[bool, typer.Option("--loop", help="Play recordings again from the start when they end.")]
Namespace = Annotated[Optional[str], typer.Option("--namespace", "-n", metavar="NS", help="Only this namespace.", show_default=False)]
AllNamespaces = Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")]
Contexts = Annotated[
    Optional[list[str]],
    typer.Option("--context", metavar="CTX", help="Kube context to query (repeatable; default: the current one).", show_default=False),
]
Kubeconfig = Annotated[
    Optional[str], typer.Option("--kubeconfig", metavar="PATH", help="Kubeconfig path (default: $KUBECONFIG, ~/.kube/config).", show_default=False)
]


@dataclass
class OutputSettings:
    """How a command prints: format (None = TTY default), color mode, row limit, quiet."""

    output: str | None = None
    color: str = "auto"
    limit: int | None = None
    quiet: bool = False

    def format(self, stream: Any = None) -> str:
        """The format to use: the explicit one, else table on a TTY and jsonl in a pipe."""
        from tessera.core.render import default_format

        stream = stream or sys.stdout
        return self.output or default_format(_isatty(stream))

    def use_color(self, stream: Any = None) -> bool:
        """``always``; ``never``; ``auto`` = stream is a TTY and NO_COLOR is unset or empty."""
        if self.color == "always":
            return True
        if self.color == "never":
            return False
        return _isatty(stream or sys.stdout) and not os.environ.get("NO_COLOR")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _check_output(value: str | None) -> str | None:
    if value is not None and value not in FORMAT_NAMES:
        raise typer.BadParameter(f"'{value}' is not a format; choose from {', '.join(FORMAT_NAMES)}")
    return value


def _check_color(value: str) -> str:
    if value not in ("auto", "always", "never"):
        raise typer.BadParameter(f"'{value}' is not one of auto, always, never")
    return value


_EXTRA = [
    inspect.Parameter(
        "output",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Optional[str],
            typer.Option(
                "--output", "-o", metavar="FORMAT", callback=_check_output, show_default=False,
                help=f"Output format: {', '.join(FORMAT_NAMES)} (default: table on a terminal, jsonl otherwise).",
            ),
        ],
    ),
    inspect.Parameter(
        "color",
        inspect.Parameter.KEYWORD_ONLY,
        default="auto",
        annotation=Annotated[
            str, typer.Option("--color", metavar="WHEN", callback=_check_color, help="auto (terminal and no NO_COLOR), always or never.")
        ],
    ),
    inspect.Parameter(
        "limit",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Optional[int], typer.Option("--limit", metavar="N", min=0, help="Print at most this many rows.", show_default=False)
        ],
    ),
    inspect.Parameter(
        "quiet",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option("--quiet", "-q", help="No warnings or progress on stderr.")],
    ),
]


def output_options(fn: Callable) -> Callable:
    """Decorator: add the shared output flags; the command receives ``out: OutputSettings``.

    Args:
        fn: a command function with an ``out`` parameter.
    Returns:
        the wrapped function, with a signature typer reads.
    """
    import typing

    hints = typing.get_type_hints(fn, include_extras=True)
    sig = inspect.signature(fn)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values() if p.name != "out"]

    @functools.wraps(fn)
    def wrapper(*args: Any, output: str | None = None, color: str = "auto", limit: int | None = None,
                quiet: bool = False, **kwargs: Any) -> Any:
        return fn(*args, out=OutputSettings(output, color, limit, quiet), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params + _EXTRA)  # type: ignore[attr-defined]
    annotations = {p.name: p.annotation for p in params}
    annotations.update({p.name: p.annotation for p in _EXTRA})
    wrapper.__annotations__ = annotations
    return wrapper


def emit(result: Any, out: OutputSettings) -> None:
    """Render a Result on stdout with the settings; warnings go to stderr unless quiet.

    Args:
        result: a tessera.core.result.Result.
        out: the command's OutputSettings.
    """
    from tessera.core.render import render

    if out.limit is not None:
        result.rows = result.rows[: out.limit]
    fmt = out.format()
    width = None
    render(result, fmt, sys.stdout, color=out.use_color(), width=width)
    sys.stdout.flush()
    if not out.quiet:
        for warning in result.warnings:
            print(f"tessera: warning: {warning}", file=sys.stderr)


def read_text(text: str | None, file: str | None) -> str | None:
    """The text given as an argument, or read from ``-f FILE`` (``-`` = stdin); None when neither.

    Raises:
        UsageError when both are given or the file cannot be read.
    """
    if text is not None and file is not None:
        raise UsageError("give the text as an argument or with -f, not both")
    if file is None:
        return text
    if file == "-":
        return sys.stdin.read()
    try:
        with open(file, encoding="utf-8", newline="") as fh:
            return fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror}") from None


def read_query(query: str | None, file: str | None) -> str:
    """The query text from the argument or ``-f FILE`` (``-`` = stdin).

    Raises:
        UsageError when both or neither are given, or the file cannot be read.
    """
    text = read_text(query, file)
    if text is None:
        raise UsageError("no query given", hint="pass it as an argument or with -f FILE (- for stdin)")
    return text
