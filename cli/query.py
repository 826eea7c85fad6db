"""``tessera query`` and ``tessera explain``."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from tessera.cli.options import (
    OutputSettings,
    ReadOnlyFlag,
    SourceFlags,
    emit,
    finite,
    output_options,
    read_query,
    source_options,
)

QueryArg = Annotated[Optional[str], typer.Argument(metavar="QUERY", help="The query text.", show_default=False)]
QueryFile = Annotated[
    Optional[str], typer.Option("--file", "-f", metavar="FILE", help="Read the query from FILE ('-' for stdin).", show_default=False)
]
QueryFiles = Annotated[
    Optional[list[str]],
    typer.Option("--file", "-f", metavar="FILE",
                 help="Read the query from FILE ('-' for stdin); with --watch, repeat to follow several queries.",
                 show_default=False),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the exact API calls a mutation would make; change nothing.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before a mutation (a terminal asks by default).")]
Watch = Annotated[bool, typer.Option("--watch", "-w", help="Keep running: print row changes as JSONL (a live table on a terminal).")]
Interval = Annotated[
    Optional[float],
    typer.Option("--interval", metavar="SECONDS", min=0.1, show_default=False, callback=finite,
                 help="With --watch, also re-run every SECONDS (needed for sources that cannot watch, such as files)."),
]


@output_options
@source_options(playback=True)
def query(
    text: QueryArg = None,
    file: QueryFiles = None,
    watch: Watch = False,
    interval: Interval = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    read_only: ReadOnlyFlag = False,
    *,
    src: SourceFlags,
    out: OutputSettings,
) -> None:
    """Run a query over manifests (-s) or live clusters (--context) and print the rows.

    Example: tessera query -s demo 'MATCH (d:Deployment)->(p:Pod) RETURN d.metadata.name, COUNT{p} AS pods'
    """
    import gc

    # One query, then the process ends: reference counting frees what the run drops, and the
    # cyclic collector would only walk the imported modules and the parsed resources again and
    # again (a third of the run's time over a 10k-pod dump) to find nothing; frozen, they are not
    # walked once more by the collection the interpreter runs as it exits (0.24 s for that dump).
    # ``--watch`` runs for hours: it keeps the collector (turned on again below).
    gc.disable()
    from tessera.core import api
    from tessera.core.errors import UsageError

    specs = src.specs
    files = file or []
    if "-" in files and "-" in specs:
        raise UsageError("stdin can carry the query (-f -) or a source (-s -), not both")
    if interval is not None and not watch:
        raise UsageError("--interval needs --watch")
    if len(files) > 1 and not watch:
        raise UsageError("several -f files need --watch", hint="run one query at a time, or follow them with --watch")
    texts = [read_query(text, None)] if text is not None and not files else [read_query(text, f) for f in files or [None]]
    fmt = out.format()
    parsed = [api.parse_query(t) for t in texts]  # fail fast on a bad query before any source is opened
    contexts = src.contexts
    for q in parsed:
        contexts += [c for c in q.contexts if c not in contexts and not specs]
    sources = api.open_sources(specs, contexts=contexts, kubeconfig=src.kubeconfig, stdin=sys.stdin, speed=src.speed, loop=src.loop)
    if parsed[0].is_mutation:
        if watch:
            raise UsageError("--watch cannot follow a mutation")
        from tessera.cli.mutate import run_mutation
        from tessera.core import config

        run_mutation(texts[0], sources, out, dry_run=dry_run, yes=yes, read_only=read_only or config.read_only(),
                     run_options={"namespace": src.namespace, "all_namespaces": src.all_namespaces})
        return
    if dry_run:
        raise UsageError("--dry-run applies to mutations (CREATE, SET, DELETE) only")
    if watch:
        from tessera.cli.watch import watch_queries

        gc.enable()
        watch_queries(texts, sources, out, interval=interval,
                      run_options={"namespace": src.namespace, "all_namespaces": src.all_namespaces})
        return
    with _progress(out, "querying"):
        result = api.run_query(parsed[0], sources, namespace=src.namespace, all_namespaces=src.all_namespaces,
                               shape=api.shape_for_format(fmt), limit=out.limit)
    emit(result, out)
    gc.freeze()


def _progress(out: OutputSettings, label: str):
    """A rich spinner on stderr while the query runs, only on a TTY and when not quiet."""
    import contextlib

    if out.quiet or not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(label)


def explain(
    text: QueryArg = None,
    file: QueryFile = None,
) -> None:
    """Print the parsed plan of a query as JSON (exit 1 with the error on a bad query)."""
    import json

    from tessera.core import api

    plan = api.explain(read_query(text, file))
    print(json.dumps(plan, indent=2))


def register(app: typer.Typer) -> None:
    """Add the query and explain commands to ``app``."""
    app.command("query")(query)
    app.command("explain")(explain)
