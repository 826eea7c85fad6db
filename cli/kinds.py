"""``tessera kinds``: every kind each source offers, with every name it answers to."""

from __future__ import annotations

import sys

import typer

from tessera.cli.options import OutputSettings, SourceFlags, emit, output_options, source_options


@output_options
@source_options(namespaces=False)
def kinds(
    *,
    src: SourceFlags,
    out: OutputSettings,
) -> None:
    """List the kinds the sources offer (built-in table plus CRDs, or live discovery)."""
    from tessera.core import api
    from tessera.core.result import Result

    sources = api.open_sources(src.specs, contexts=src.contexts, kubeconfig=src.kubeconfig, stdin=sys.stdin)
    rows = api.list_kinds(sources)
    for row in rows:
        row["short_names"] = ",".join(row["short_names"])
    columns = ["source", "kind", "group", "version", "plural", "singular", "short_names", "namespaced"]
    emit(Result(columns=columns, rows=rows), out)


def register(app: typer.Typer) -> None:
    """Add the kinds command to ``app``."""
    app.command("kinds")(kinds)
