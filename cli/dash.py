"""``tessera dash``: open a notebook as a dashboard of live panes (the Textual app in cli/tui/).

Without a terminal it runs the notebook once and prints the rows, as ``notebook run`` does, so
``tessera dash ops | jq`` and cron jobs still get data.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Optional

import typer

from tessera.cli import completers
from tessera.cli.options import LiveFlags, OutputSettings, live_options, output_options
from tessera.cli.remote_notebook import RunOption

NotebookArg = Annotated[Optional[str], typer.Argument(metavar="NOTEBOOK", show_default=False,
                                                      autocompletion=completers.notebooks,
                                                      help="The notebook (default: the only one there is).")]
DashNotebookArg = Annotated[Optional[str], typer.Argument(metavar="NOTEBOOK", show_default=False,
                                                          autocompletion=completers.notebooks,
                                                          help="The notebook (default: the only one there is), or a "
                                                               "peer's: PEER:NOTEBOOK.")]
MouseOption = Annotated[bool, typer.Option("--mouse/--no-mouse",
                                           help="Take mouse clicks and scrolling; --no-mouse leaves the mouse to the "
                                                "terminal (its own text selection).")]


def resolve_notebook(conn: Any, name: str | None, command: str = "dash") -> str:
    """The notebook to open: ``name``, else the only notebook in the store.

    Args:
        command: the command asking (``dash``, ``tmux``), for the hint ``tessera COMMAND NAME``.
    Raises:
        QueryError when ``name`` does not exist; UsageError when none was named and there is not
        exactly one.
    """
    from tessera.core.errors import UsageError
    from tessera.core.notebook import repository

    if name is not None:
        repository.notebook_id(conn, repository.parse_address(name, cell=False).name)
        return name
    names = [nb["name"] for nb in repository.list_notebooks(conn)]
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError("there are no notebooks yet", hint="create one with: tessera notebook new NAME "
                         "(or import one: tessera notebook import FILE.md)")
    raise UsageError(f"which notebook? ({', '.join(names[:20])})", hint=f"tessera {command} NAME")


@output_options
@live_options
def dash(
    notebook: DashNotebookArg = None,
    mouse: MouseOption = True,
    run_at: RunOption = None,
    *,
    live: LiveFlags,
    out: OutputSettings,
) -> None:
    """Open a notebook as a dashboard of live panes (rows of 1, 2 or 4); ? lists the keys.

    Panes follow the shared watch caches (refresh: watch) or re-run on their interval
    (every:N); edits are saved as they are typed. Without a terminal, runs the notebook once
    and prints JSONL (like notebook run).
    PEER:NOTEBOOK opens a peer's shared notebook live, to edit together (the header and pane
    borders show who is where); its cells run at the owner (--run owner) or here (--run local).
    Example: tessera dash ops --context prod
    """
    from tessera.cli.remote_notebook import check_run
    from tessera.core import config
    from tessera.core.notebook import repository
    from tessera.core.store.db import connect

    addr = repository.parse_address(notebook, cell=False, peer=True) if notebook is not None else None
    where = check_run(run_at, addr.peer if addr is not None else None)
    if addr is not None and addr.peer is not None:
        name = notebook
    else:
        conn = connect()
        try:
            name = resolve_notebook(conn, notebook)
        finally:
            conn.close()
    options = live.session_options()
    options.presence = True  # peers in the notebook see this dashboard, and it sees them
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        run_once(name, live, out, run_at=run_at)
        return
    color = out.use_color(sys.stdout)
    if not color:
        os.environ["NO_COLOR"] = "1"  # Textual reads it at start-up
    from tessera.cli.tui.app import DashApp

    if addr is not None and addr.peer is not None:
        from tessera.cli.remote_notebook import open_session

        # Checked before the screen is taken: a notebook not shared with us is one line and exit 5,
        # an owner that cannot be reached exit 3 (unless we have a copy to work on offline).
        session = open_session(addr, where, options, offline=True)
    else:
        from tessera.core.notebook.session import NotebookSession

        session = NotebookSession(str(config.database_path()), name, options)
    app = DashApp(session, str(config.database_path()), color=color)
    app.run(mouse=mouse)
    if app._exception is not None:  # a bug in the app: cli/main.py reports it as one line
        raise app._exception
    if app.return_code:  # ended by a signal (kill, hang-up, interrupt)
        raise typer.Exit(app.return_code)


def run_once(address: str, live: LiveFlags, out: OutputSettings, *, run_at: str | None = None) -> None:
    """What a live front end does without a terminal: run the notebook (or cell) once and print
    its rows as ``notebook run`` does, JSONL unless -o says otherwise."""
    from tessera.cli.notebook import run as run_notebook

    run_notebook(address, **live.run_once_flags(), run_at=run_at, output=out.output or "jsonl", color=out.color,
                 limit=out.limit, quiet=out.quiet)


def register(app: typer.Typer) -> None:
    """Add the dash command to ``app``."""
    app.command("dash")(dash)
