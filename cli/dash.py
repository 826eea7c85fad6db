"""``tessera dash``: open a notebook as a dashboard of live panes (the Textual app in cli/tui/).

Without a terminal it runs the notebook once and prints the rows, as ``notebook run`` does, so
``tessera dash ops | jq`` and cron jobs still get data.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Optional

import typer

from tessera.cli.options import (
    AllNamespaces,
    Contexts,
    Kubeconfig,
    Loop,
    Namespace,
    OutputSettings,
    Sources,
    Speed,
    output_options,
)

NotebookArg = Annotated[Optional[str], typer.Argument(metavar="NOTEBOOK", show_default=False,
                                                      help="The notebook (default: the only one there is).")]
RecordEvery = Annotated[float, typer.Option("--record-every", metavar="SECONDS", min=0.0,
                                            help="Record a cell's changes (events, cell_results) at most this often.")]


def resolve_notebook(conn: Any, name: str | None) -> str:
    """The notebook to open: ``name``, else the only notebook in the store.

    Raises:
        QueryError when ``name`` does not exist; UsageError when none was named and there is not
        exactly one.
    """
    from tessera.core.errors import UsageError
    from tessera.core.notebook import store

    if name is not None:
        store.notebook_id(conn, store.parse_address(name, cell=False).name)
        return name
    names = [nb["name"] for nb in store.list_notebooks(conn)]
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError("there are no notebooks yet", hint="create one with: tessera notebook new NAME "
                         "(or import one: tessera notebook import FILE.md)")
    raise UsageError(f"which notebook? ({', '.join(names[:20])})", hint="tessera dash NAME")


def session_options(source: list[str] | None, context: list[str] | None, kubeconfig: str | None,
                    namespace: str | None, all_namespaces: bool, speed: float, loop: bool,
                    record_every: float = 1.0) -> Any:
    """SessionOptions from the shared source flags (dash and pane take the same ones)."""
    from tessera.core.errors import UsageError
    from tessera.core.notebook.live import SessionOptions

    if namespace is not None and all_namespaces:
        raise UsageError("-n/--namespace and -A/--all-namespaces cannot be used together")
    if "-" in (source or []):
        raise UsageError("a live view cannot read stdin ('-s -')", hint="save the input to a file and use -s FILE")
    return SessionOptions(default_sources=list(source or []), contexts=list(context or []), kubeconfig=kubeconfig,
                          namespace=namespace, all_namespaces=all_namespaces, speed=speed, loop=loop,
                          record_every=record_every)


@output_options
def dash(
    notebook: NotebookArg = None,
    source: Sources = None,
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
    context: Contexts = None,
    kubeconfig: Kubeconfig = None,
    speed: Speed = 1.0,
    loop: Loop = False,
    record_every: RecordEvery = 1.0,
    *,
    out: OutputSettings,
) -> None:
    """Open a notebook as a dashboard of live panes (rows of 1, 2 or 4); ? lists the keys.

    Panes follow the shared watch caches (refresh: watch) or re-run on their interval
    (every:N); edits are saved at once. Without a terminal, runs the notebook once and prints
    JSONL (like notebook run).
    Example: tessera dash ops --context prod
    """
    from tessera.core import config
    from tessera.core.store.db import connect

    conn = connect()
    name = resolve_notebook(conn, notebook)
    options = session_options(source, context, kubeconfig, namespace, all_namespaces, speed, loop, record_every)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        conn.close()
        from tessera.cli.notebook import run as run_notebook

        run_notebook(name, source=source, namespace=namespace, all_namespaces=all_namespaces, context=context,
                     kubeconfig=kubeconfig, output=out.output or "jsonl", color=out.color, limit=out.limit,
                     quiet=out.quiet)
        return
    conn.close()
    color = out.use_color(sys.stdout)
    if not color:
        os.environ["NO_COLOR"] = "1"  # Textual reads it at start-up
    from tessera.cli.tui.app import DashApp
    from tessera.core.notebook.live import NotebookSession

    session = NotebookSession(str(config.database_path()), name, options)
    app = DashApp(session, str(config.database_path()), color=color)
    app.run()
    if app._exception is not None:  # a bug in the app: cli/main.py reports it as one line
        raise app._exception


def register(app: typer.Typer) -> None:
    """Add the dash command to ``app``."""
    app.command("dash")(dash)
