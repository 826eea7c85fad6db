"""``tessera ingest PATH… [--watch] [--emit]``: files (or JSONL documents on stdin) into the
knowledge index. A thin shell over core/knowledge/ingest.py and watching.py (docs/knowledge.md)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Annotated, Any

import typer

from tessera.cli.messages import open_store, print_message, print_warning

PathArgs = Annotated[list[str], typer.Argument(
    metavar="PATH...", show_default=False,
    help="Folders or files to ingest (a folder's .gitignore files are respected); '-' reads JSONL documents from stdin.")]
Watch = Annotated[bool, typer.Option("--watch", "-w", help="After ingesting, keep the index current as files change, "
                                                           "until Ctrl-C or SIGTERM (logs one line per batch on stderr).")]
Emit = Annotated[bool, typer.Option("--emit", help="Write each change on stdout as a JSONL line (`tessera ingest -` reads them back).")]
Output = Annotated[str, typer.Option("--output", "-o", metavar="FORMAT", show_default=False,
                                     help="'json': also print the summary as one JSON line on stdout "
                                          "(default: nothing on stdout but --emit's lines).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary line on stderr.")]
Reindex = Annotated[bool, typer.Option("--reindex", help="Split, extract mentions and embed unchanged files again too "
                                                         "(after an upgrade of tessera changed how).")]


def ingest(paths: PathArgs, watch: Watch = False, emit: Emit = False, output: Output = "text", quiet: Quiet = False,
           reindex: Reindex = False) -> None:
    """Ingest notes, runbooks and code into the knowledge index (Document and Chunk resources).

    Markdown is split by headings, code by top-level definitions, text by paragraphs. Unchanged
    files are not written again; files gone are removed; binary, unreadable and oversized files
    are skipped and counted. The summary goes to stderr as one line; exit 2 for a missing PATH.

    Example: tessera ingest ~/runbooks ./README.md; tessera ingest --emit notes | TESSERA_HOME=b tessera ingest -
    """
    from tessera.core.errors import UsageError

    if output not in ("text", "json"):
        raise UsageError(f"--output must be 'text' or 'json', not '{output}'", hint="-o json prints the summary on stdout")
    if output == "json" and emit:
        raise UsageError("--emit and -o json both write stdout", hint="use one: --emit for the changes, -o json for the summary")
    from_stdin = "-" in paths
    if from_stdin and (len(paths) > 1 or watch or reindex):
        raise UsageError("'-' (JSONL on stdin) cannot be combined with paths, --watch or --reindex",
                         hint="run `tessera ingest -` on its own")
    on_change = _emit_line if emit else None
    if from_stdin:
        from tessera.core.config import max_input_bytes
        from tessera.core.knowledge.ingest import ingest_jsonl

        limit = max_input_bytes()
        summary = ingest_jsonl(open_store(), _stdin_lines(limit), on_change=on_change, max_line_bytes=limit)
        _report(summary, output, quiet)
        return
    from tessera.core.knowledge import ingest as ingesting

    ingesting.resolve_targets(paths)  # a PATH missing: refused before the store is even opened
    conn = open_store()
    targets = ingesting.resolve_paths(conn, paths)

    def first_ingest() -> None:
        summary = _with_progress(lambda progress: ingesting.ingest_targets(
            conn, targets, on_progress=progress, on_change=on_change, on_warning=print_warning, reindex=reindex), quiet)
        _report(summary, output, quiet)

    if not watch:
        first_ingest()
        return
    from tessera.core.stop_signals import StopSignals

    stopper = _Stopper()
    with StopSignals(on_signal=stopper.on_signal) as signals:
        _watch(conn, targets, stopper, on_change, quiet, first_ingest)
    raise typer.Exit(stopper.exit_code(signals.received))


def _stdin_lines(limit: int):
    """stdin's lines as bytes, each read up to ``limit`` + 1 bytes (a longer one is refused by
    ingest_jsonl without being held whole)."""
    from tessera.core.errors import UsageError

    if sys.stdin is None or sys.stdin.closed:
        raise UsageError("stdin is closed", hint="pipe JSONL documents into `tessera ingest -`")
    if sys.stdin.isatty():
        print_message("reading JSONL documents from the terminal (Ctrl-D ends)")
    stream = sys.stdin.buffer
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit:
            yield line  # refused by its length; the rest of it is never read
            return
        yield line


def _emit_line(change: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(change, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _report(summary: Any, output: str, quiet: bool) -> None:
    if not quiet:
        print_message(summary.line())
    if output == "json":
        print(json.dumps(summary.as_dict()), flush=True)


def _with_progress(work: Any, quiet: bool) -> Any:
    """Run ``work(on_progress)``, with a progress bar on stderr when it is a terminal."""
    if quiet or not sys.stderr.isatty():
        return work(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        TextColumn("{task.description}"), console=Console(stderr=True), transient=True)
    task = progress.add_task("", total=None)

    def advance(done: int, total: int, path: str) -> None:
        progress.update(task, completed=done, total=total or None, description=path[-50:])

    with progress:
        return work(advance)


class _Stopper:
    """Ctrl-C, SIGTERM and SIGHUP under --watch. While the first ingest runs they stop it at once
    (KeyboardInterrupt, or SystemExit 143 / 129, so the document being written is rolled back);
    once watching, they end the watch after the batch being written: exit 130 for Ctrl-C, 0 for
    SIGTERM (the way a service is stopped), 129 for a hang-up."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.watching = False

    def on_signal(self, signum: int) -> None:
        from tessera.core.errors import EXIT_HANGUP, EXIT_TERMINATED

        self.stop.set()
        if not self.watching:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_HANGUP)

    @staticmethod
    def exit_code(first_signal: int | None) -> int:
        from tessera.core.errors import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_OK

        if first_signal is None:
            return EXIT_OK
        return {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_OK}.get(first_signal, EXIT_HANGUP)


def _watch(conn: Any, targets: list, stopper: _Stopper, on_change: Any, quiet: bool, first_ingest: Any) -> None:
    from tessera.core.daemon_log import DaemonLog
    from tessera.core.knowledge.watching import watch

    daemon_log = DaemonLog(sys.stderr)

    def log(event: str, level: str = "info", **fields: Any) -> None:
        if not (quiet and level == "info"):
            daemon_log(level, event, **fields)

    def on_batch(summary: Any, paths: list[str]) -> None:
        figures = summary.as_dict()
        log("ingest.batch", root=figures["roots"][0], added=figures["added"], updated=figures["updated"],
            removed=figures["removed"], unchanged=figures["unchanged"], skipped=figures["skipped"],
            paths=paths[:20], seconds=figures["seconds"])

    def on_error(exc: Any, paths: list[str]) -> None:
        log("ingest.failed", level="error", error=exc.one_line(), paths=paths[:20], retry="with the next batch")

    def on_ready() -> None:
        first_ingest()
        stopper.watching = True
        log("ingest.watching", roots=[t.root_given for t in targets])

    watch(conn, targets, stopper.stop, on_batch=on_batch, on_change=on_change, on_warning=print_warning,
          on_ready=on_ready, on_error=on_error)
    log("ingest.stopped")


def register(app: typer.Typer) -> None:
    """Add the ingest command to ``app``."""
    app.command("ingest")(ingest)

