"""Flags shared by the data commands, declared once (as sqlite-utils does with click decorators).

``output_options`` adds ``-o/--output``, ``--color``, ``--limit``, ``-q/--quiet`` and ``--show-secrets`` to a command
and hands it one ``OutputSettings``; ``emit`` renders a Result with them. ``source_options`` adds
the source flags (``-s``, ``-n``, ``-A``, ``--context``, ``--kubeconfig``, ``--request-timeout``,
and ``--speed``/``--loop`` where recordings play) and hands it one ``SourceFlags``;
``live_options`` does the same for the live front ends (``LiveFlags``).
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Optional

import typer

from tessera.cli import completers
from tessera.core.errors import UsageError
from tessera.core.render import is_terminal

FORMAT_NAMES = ("table", "json", "jsonl", "yaml", "csv", "cyphernetes", "tree", "graph", "dot", "mermaid")

Sources = Annotated[
    Optional[list[str]],
    typer.Option(
        "--source", "-s", metavar="SOURCE",
        help="Manifest file, directory (recursive), '-' for stdin, 'demo', replay:FILE / replay:demo (a recording), "
             "'local' (this node's store), peer:NAME or 'peers' (peers' replicas), 'knowledge' (what tessera "
             "ingest stored; beside other sources, joined to each). Repeatable.",
        show_default=False,
    ),
]
MAX_FLOAT_OPTION = 1e9  # seconds (31 years) or a speed factor; past it timers overflow (OverflowError)


def finite(value: float | None) -> float | None:
    """A number option's callback: refuse nan, inf and values timers cannot hold (click's range
    check lets nan through, and ``--interval inf`` crashed a timer)."""
    import math

    if value is not None and not (math.isfinite(value) and abs(value) <= MAX_FLOAT_OPTION):
        raise typer.BadParameter(f"{value!r} is not a number tessera can use (at most {MAX_FLOAT_OPTION:.0e})")
    return value


Speed = Annotated[float, typer.Option("--speed", metavar="X", min=0.001, callback=finite, help="Play recordings X times as fast.")]
Loop = Annotated[bool, typer.Option("--loop", help="Play recordings again from the start when they end.")]
Namespace = Annotated[Optional[str], typer.Option("--namespace", "-n", metavar="NS", help="Only this namespace.", show_default=False,
                                                  autocompletion=completers.kube_namespaces)]
AllNamespaces = Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")]
Contexts = Annotated[
    Optional[list[str]],
    typer.Option("--context", metavar="CTX", help="Kube context to query (repeatable; default: the current one).", show_default=False,
                 autocompletion=completers.kube_contexts),
]
Kubeconfig = Annotated[
    Optional[str], typer.Option("--kubeconfig", metavar="PATH", help="Kubeconfig path (default: $KUBECONFIG, ~/.kube/config).", show_default=False)
]


ReadOnlyFlag = Annotated[bool, typer.Option("--read-only", help="Refuse every write (also: read_only = true in config.toml).")]


def _reveal_secrets(value: bool) -> bool:
    if value:
        from tessera.core.secrets import show_secrets

        show_secrets()  # while the flags are read: before the command opens its sources
    return value


ShowSecrets = Annotated[bool, typer.Option("--show-secrets", callback=_reveal_secrets,
                                           help="Show Secret data/stringData values instead of \"<redacted>\" "
                                                "(also: TESSERA_SHOW_SECRETS=1, show_secrets = true in config.toml).")]


def _set_request_timeout(value: str | None) -> str | None:
    """Parse --request-timeout and make it the process's limit (every source opened after)."""
    if value is not None:
        from tessera.core import config
        from tessera.core.times import parse_kube_duration

        try:
            config.set_request_timeout(parse_kube_duration(value))
        except UsageError as exc:
            raise typer.BadParameter(exc.one_line()) from None
    return value


RequestTimeout = Annotated[
    Optional[str],
    typer.Option("--request-timeout", metavar="DURATION", callback=_set_request_timeout, show_default=False,
                 help="Give up on one API request after this long, as kubectl: 30s, 1m, plain seconds, "
                      "0 for no limit (default 60s, or $TESSERA_REQUEST_TIMEOUT). A context that times out "
                      "is a warning when others answer; exit 4 when none does."),
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
        return self.output or default_format(is_terminal(stream))

    def use_color(self, stream: Any = None) -> bool:
        """``always``; ``never``; ``auto`` = stream is a TTY and NO_COLOR is unset or empty."""
        if self.color == "always":
            return True
        if self.color == "never":
            return False
        return is_terminal(stream or sys.stdout) and not os.environ.get("NO_COLOR")


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
                autocompletion=completers.output_formats,
                help=f"Output format: {', '.join(FORMAT_NAMES)} (default: table on a terminal, jsonl otherwise).",
            ),
        ],
    ),
    inspect.Parameter(
        "color",
        inspect.Parameter.KEYWORD_ONLY,
        default="auto",
        annotation=Annotated[
            str, typer.Option("--color", metavar="WHEN", callback=_check_color, autocompletion=completers.color_modes,
                              help="auto (terminal and no NO_COLOR), always or never.")
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
    inspect.Parameter("show_secrets", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=ShowSecrets),
]


def _output_settings(show_secrets: bool = False, **values: Any) -> OutputSettings:
    return OutputSettings(**values)  # --show-secrets has done its work as it was read


def _shared_flags(fn: Callable, name: str, extra: list[inspect.Parameter], build: Callable[..., Any]) -> Callable:
    """Wrap ``fn`` so typer sees the ``extra`` flags in place of its parameter ``name``, which
    receives ``build(**values of the extra flags)``."""
    import typing

    hints = typing.get_type_hints(fn, include_extras=True)
    sig = inspect.signature(fn)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values() if p.name != name]
    names = [p.name for p in extra]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {n: kwargs.pop(n) for n in names if n in kwargs}
        return fn(*args, **{name: build(**values)}, **kwargs)

    keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in extra]
    wrapper.__signature__ = sig.replace(parameters=params + keyword)  # type: ignore[attr-defined]
    annotations = {p.name: p.annotation for p in params}
    annotations.update({p.name: p.annotation for p in extra})
    wrapper.__annotations__ = annotations
    return wrapper


def output_options(fn: Callable) -> Callable:
    """Decorator: add the shared output flags; the command receives ``out: OutputSettings``.

    Args:
        fn: a command function with an ``out`` parameter.
    Returns:
        the wrapped function, with a signature typer reads.
    """
    return _shared_flags(fn, "out", _EXTRA, _output_settings)


@dataclass
class SourceFlags:
    """The source flags a command was given: ``-s``, ``-n``, ``-A``, ``--context``,
    ``--kubeconfig``, ``--request-timeout`` and, where recordings play, ``--speed`` and ``--loop``
    (see ``source_options``: a command gets the ones it declares, the others keep their defaults)."""

    source: list[str] | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    context: list[str] | None = None
    kubeconfig: str | None = None
    request_timeout: str | None = None  # applied when parsed (RequestTimeout); kept for as_args
    speed: float = 1.0
    loop: bool = False

    def __post_init__(self) -> None:
        if self.namespace is not None and self.all_namespaces:
            raise UsageError("-n/--namespace and -A/--all-namespaces cannot be used together")

    @property
    def specs(self) -> list[str]:
        """The ``-s`` specs, in the order given."""
        return list(self.source or [])

    @property
    def contexts(self) -> list[str]:
        """The ``--context`` names, in the order given."""
        return list(self.context or [])

    def as_args(self) -> list[str]:
        """Command-line flags that give another process these settings (defaults left out)."""
        args: list[str] = []
        for spec in self.source or []:
            args += ["-s", spec]
        for ctx in self.context or []:
            args += ["--context", ctx]
        if self.kubeconfig:
            args += ["--kubeconfig", self.kubeconfig]
        if self.namespace:
            args += ["-n", self.namespace]
        if self.all_namespaces:
            args.append("-A")
        if self.speed != 1.0:
            args += ["--speed", repr(self.speed)]
        if self.loop:
            args.append("--loop")
        if self.request_timeout is not None:
            args += ["--request-timeout", self.request_timeout]
        return args


@dataclass
class LiveFlags(SourceFlags):
    """The flags of the live front ends (dash, pane, tmux): the source flags plus how often a
    live cell is re-evaluated and recorded."""

    record_every: float = 1.0
    min_refresh: float = 1.0

    def session_options(self) -> Any:
        """The SessionOptions these flags ask for.

        Raises:
            UsageError for ``-s -`` (a live view cannot read stdin).
        """
        from tessera.core.notebook.session import SessionOptions

        if "-" in self.specs:
            raise UsageError("a live view cannot read stdin ('-s -')", hint="save the input to a file and use -s FILE")
        return SessionOptions(default_sources=self.specs, contexts=self.contexts,
                              kubeconfig=self.kubeconfig, namespace=self.namespace,
                              all_namespaces=self.all_namespaces, speed=self.speed, loop=self.loop,
                              record_every=self.record_every, min_refresh=self.min_refresh, freeze_gc=True)

    def as_args(self) -> list[str]:
        """Command-line flags that give another process these settings (defaults left out)."""
        args = super().as_args()
        if self.record_every != 1.0:
            args += ["--record-every", repr(self.record_every)]
        if self.min_refresh != 1.0:
            args += ["--min-refresh", repr(self.min_refresh)]
        return args

    def run_once_flags(self) -> dict[str, Any]:
        """The flags ``notebook run`` takes (what a live front end does without a terminal)."""
        return {"source": self.source, "namespace": self.namespace, "all_namespaces": self.all_namespaces,
                "context": self.context, "kubeconfig": self.kubeconfig, "speed": self.speed, "loop": self.loop}


RecordEvery = Annotated[float, typer.Option("--record-every", metavar="SECONDS", min=0.0, callback=finite,
                                            help="Record a cell's changes (events, cell_results) at most this often.")]
MinRefresh = Annotated[float, typer.Option("--min-refresh", metavar="SECONDS", min=0.0, callback=finite,
                                           help="Re-evaluate a live cell at most this often; changes in between "
                                                "are applied together (0: on every change).")]


def _flag(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_FILES = [_flag("source", None, Sources)]
_NAMESPACES = [_flag("namespace", None, Namespace), _flag("all_namespaces", False, AllNamespaces)]
_CONTEXTS = [_flag("context", None, Contexts)]
_CLUSTER = [_flag("kubeconfig", None, Kubeconfig), _flag("request_timeout", None, RequestTimeout)]
_PLAYBACK = [_flag("speed", 1.0, Speed), _flag("loop", False, Loop)]
_LIVE = [_flag("record_every", 1.0, RecordEvery), _flag("min_refresh", 1.0, MinRefresh)]


def source_options(fn: Callable | None = None, *, files: bool = True, contexts: bool = True, namespaces: bool = True,
                   playback: bool = False) -> Any:
    """Decorator: add the shared source flags; the command receives ``src: SourceFlags``.

    Every command that reads sources takes them from here, so they are spelled, documented and
    checked (``-n`` with ``-A`` is a usage error) in one place.

    Args:
        fn: a command function with a ``src`` parameter (or None, to be called with the switches).
        files: add ``-s/--source``.
        contexts: add ``--context`` (repeatable).
        namespaces: add ``-n/--namespace`` and ``-A/--all-namespaces``.
        playback: add ``--speed`` and ``--loop`` (how replay: sources play).
    Returns:
        the wrapped function, with a signature typer reads (``--kubeconfig`` and
        ``--request-timeout`` always).
    """
    flags = ((_FILES if files else []) + (_NAMESPACES if namespaces else []) + (_CONTEXTS if contexts else [])
             + _CLUSTER + (_PLAYBACK if playback else []))

    def decorate(command: Callable) -> Callable:
        return _shared_flags(command, "src", flags, SourceFlags)

    return decorate(fn) if fn is not None else decorate


def live_options(fn: Callable) -> Callable:
    """Decorator: add the live front ends' flags (every source flag, ``--speed``, ``--loop``,
    ``--record-every``, ``--min-refresh``); the command receives ``live: LiveFlags``."""
    return _shared_flags(fn, "live", _FILES + _NAMESPACES + _CONTEXTS + _CLUSTER + _PLAYBACK + _LIVE, LiveFlags)


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
        from tessera.cli.messages import print_warning

        for warning in result.warnings:
            print_warning(warning)


def read_text(text: str | None, file: str | None) -> str | None:
    """The text given as an argument, or read from ``-f FILE`` (``-`` = stdin); None when neither.

    The file is read with the input size limit (TESSERA_MAX_INPUT_BYTES) and must be UTF-8.

    Raises:
        UsageError when both are given, stdin is closed, or the file cannot be read, is a
        directory, is over the limit or is not UTF-8 (InputError, with the line and column).
    """
    from tessera.core.config import max_input_bytes
    from tessera.core.errors import SourceUnavailable
    from tessera.core.inputs import decode_text, read_path, read_stream

    if text is not None and file is not None:
        raise UsageError("give the text as an argument or with -f, not both")
    if file is None:
        return text
    limit = max_input_bytes()
    if file == "-":
        return decode_text(read_stream(sys.stdin, where="stdin", limit=limit), "stdin")
    try:
        data = read_path(file, limit=limit)
    except SourceUnavailable as exc:  # a file named on the command line: a usage error (exit 2)
        raise UsageError(exc.message, hint=exc.hint) from None
    return decode_text(data, file)


def read_query(query: str | None, file: str | None) -> str:
    """The query text from the argument or ``-f FILE`` (``-`` = stdin).

    Raises:
        UsageError when both or neither are given, the text is empty, or the file cannot be read.
    """
    text = read_text(query, file)
    if text is None:
        raise UsageError("no query given", hint="pass it as an argument or with -f FILE (- for stdin)")
    if not text.strip():
        where = "stdin" if file == "-" else file
        raise UsageError(f"the query read from {where} is empty" if where else "the query is empty",
                         hint="pass it as an argument or with -f FILE (- for stdin)")
    return text
