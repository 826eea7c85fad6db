"""``tessera query`` and ``tessera explain``."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from tessera.cli.options import (
    AllNamespaces,
    Contexts,
    Kubeconfig,
    Namespace,
    OutputSettings,
    Sources,
    emit,
    output_options,
    read_query,
)

QueryArg = Annotated[Optional[str], typer.Argument(metavar="QUERY", help="The query text.", show_default=False)]
QueryFile = Annotated[
    Optional[str], typer.Option("--file", "-f", metavar="FILE", help="Read the query from FILE ('-' for stdin).", show_default=False)
]


@output_options
def query(
    text: QueryArg = None,
    file: QueryFile = None,
    source: Sources = None,
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
    context: Contexts = None,
    kubeconfig: Kubeconfig = None,
    *,
    out: OutputSettings,
) -> None:
    """Run a query over manifests (-s) or live clusters (--context) and print the rows.

    Example: tessera query -s demo 'MATCH (d:Deployment)->(p:Pod) RETURN d.metadata.name, COUNT{p} AS pods'
    """
    from tessera.core import api
    from tessera.core.errors import UsageError

    specs = source or []
    if file == "-" and "-" in specs:
        raise UsageError("stdin can carry the query (-f -) or a source (-s -), not both")
    if namespace is not None and all_namespaces:
        raise UsageError("-n/--namespace and -A/--all-namespaces cannot be used together")
    text = read_query(text, file)
    fmt = out.format()
    api.parse_query(text)  # fail fast on a bad query before any source is opened
    sources = api.open_sources(specs, contexts=context or [], kubeconfig=kubeconfig, stdin=sys.stdin)
    with _progress(out, "querying"):
        result = api.run_query(
            text,
            sources,
            namespace=namespace,
            all_namespaces=all_namespaces,
            shape="cyphernetes" if fmt == "cyphernetes" else "rows",
        )
    emit(result, out)


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
