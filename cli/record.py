"""``tessera record``: write a cluster's watch stream to a JSONL recording until stopped."""

from __future__ import annotations

import threading
from typing import Annotated, Optional

import typer

from tessera.cli import completers
from tessera.cli.options import ShowSecrets, SourceFlags, finite, source_options

KindArgs = Annotated[Optional[list[str]], typer.Argument(metavar="[KIND]...", help="Kinds to record (default: every watchable kind but Secrets; named, their values are recorded as \"<redacted>\" unless --show-secrets).", show_default=False)]
OutFile = Annotated[str, typer.Option("--output", "-o", metavar="FILE", help="The recording to write (.gz compresses).")]
Context = Annotated[Optional[str], typer.Option("--context", metavar="CTX", help="Kube context (default: the current one).", show_default=False,
                                                autocompletion=completers.kube_contexts)]
Duration = Annotated[Optional[float], typer.Option("--duration", metavar="SECONDS", min=0.1, callback=finite, help="Stop after SECONDS (default: run until Ctrl-C or SIGTERM).", show_default=False)]


@source_options(files=False, contexts=False)
def record(
    kinds: KindArgs = None,
    output: OutFile = ...,
    context: Context = None,
    duration: Duration = None,
    show_secrets: ShowSecrets = False,  # its callback opts in as the flags are read
    *,
    src: SourceFlags,
) -> None:
    """Record a cluster's changes to FILE: the initial state as ADDED events, then every change with its time.

    Replay it with -s replay:FILE (with --speed and --loop under --watch), or query a moment with AT "<time>".
    Example: tessera record --context prod deploy rs pods -o incident.jsonl.gz
    """
    from tessera.core import api
    from tessera.core.recording_file import RecordingWriter
    from tessera.core.stop_signals import StopSignals
    from tessera.core.watch.recorder import pick_kinds, record as run_record

    (source,) = api.open_sources([], contexts=[context] if context else [], kubeconfig=src.kubeconfig)
    chosen = pick_kinds(source, kinds or [])
    scope = None if src.all_namespaces or src.namespace is None else src.namespace
    stop = threading.Event()
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    with StopSignals(on_signal=lambda _signum: stop.set()), RecordingWriter(output, context=source.name) as writer:
        counts = run_record(source, chosen, writer, stop, namespace=scope)
    from tessera.cli.messages import print_message

    print_message(f"recorded {counts['events']} events of {counts['kinds']} kinds to {output}")


def register(app: typer.Typer) -> None:
    """Add the record command to ``app``."""
    app.command("record")(record)
