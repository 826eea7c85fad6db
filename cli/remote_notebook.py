"""A peer's notebook opened live from the command line (``PEER:NOTEBOOK[/N]``): what ``tessera
dash alice:ops``, ``tessera pane alice:ops/2`` and ``tessera notebook run alice:ops`` share.

The notebook comes over a collab connection to the owner's ``tessera serve``
(core/collab/remote_session.py); its cells run at the owner (``--run owner``, the default: no
kubeconfig needed here) or here with this node's own kubeconfig and flags (``--run local``).
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any, Callable, Optional

import typer

RunOption = Annotated[Optional[str], typer.Option(
    "--run", metavar="WHERE", show_default=False,
    help="For a peer's notebook (PEER:NOTEBOOK): run its cells at the owner (owner, the default: its "
         "panes are streamed here, no credentials needed) or here with your own kubeconfig (local).")]

# How long a command waits for the owner's node to send the notebook.
SYNC_SECONDS = 30.0
# How long a one-shot run waits for each cell's first result from the owner.
RESULT_SECONDS = 60.0


def check_run(run: str | None, peer: str | None) -> str:
    """Where a notebook's cells run: ``run`` for a peer's notebook (default owner).

    Raises:
        UsageError for --run with this node's own notebook, or an unknown place.
    """
    from tessera.core.errors import UsageError

    if peer is None:
        if run is not None:
            raise UsageError("--run is for a peer's notebook (PEER:NOTEBOOK); this node's own notebooks run here",
                             hint="leave --run out, or name a peer's notebook, e.g. alice:ops")
        return "local"
    if run not in (None, "owner", "local"):
        raise UsageError(f"--run '{run}' is not where cells can run", hint="use --run owner or --run local")
    return run or "owner"


def open_session(addr: Any, run: str, options: Any, *, offline: bool = False, **callbacks: Any) -> Any:
    """A started RemoteNotebookSession on ``addr`` (a parse_address with a peer), synced with
    the owner; the caller stops it. ``offline``: a notebook this node has a local copy of (it
    was opened before) is returned at once, synced or not (the dashboard works offline and
    catches up), unless the owner refuses it.

    Raises:
        UsageError for a peer not in the peer list; NotAuthorized when the owner refuses (the
        notebook is not shared with this node); SourceUnavailable when the owner's node cannot
        be reached within SYNC_SECONDS (no local copy to start from either).
    """
    from tessera.core import config
    from tessera.core.collab.remote_session import RemoteNotebookSession

    session = RemoteNotebookSession(str(config.database_path()), addr.peer, addr.name, options, run=run,
                                    number=addr.cell, **callbacks)
    session.start()
    deadline = time.monotonic() + SYNC_SECONDS
    kept = session.client.notebook_id is not None  # a local copy from an earlier session
    while not session.wait_synced(0.05):
        refused = (session.reason or "").startswith("the peer refused")  # for good: no use retrying
        if offline and kept and not refused and session.status == "offline":
            return session  # the owner's node is not there now: work on the local copy
        if refused or time.monotonic() > deadline:
            error = not_live(session)  # before stop(), which ends with the reason "stopped"
            session.stop()
            raise error
    return session


def not_live(session: Any) -> Exception:
    """The error for a peer's notebook that could not be had: refused, or unreachable."""
    from tessera.core.errors import NotAuthorized, SourceUnavailable

    reason = session.reason or "no answer"
    where = f"{session.peer}:{session.notebook}"
    if reason.startswith("the peer refused"):
        if "(ask " in reason:  # the owner's refusal names its fix already
            return NotAuthorized(f"{where}: {reason}")
        return NotAuthorized(f"{where}: {reason}", hint=f"ask {session.peer} to share it: "
                             f"tessera peer share {session.notebook} --with <your name>")
    return SourceUnavailable(f"{where}: cannot reach {session.peer}'s node ({reason})",
                             hint=f"check that {session.peer} runs `tessera serve` (tessera peer list shows its address)")


def run_once(addr: Any, run: str, options: Any, *, timeout: float = RESULT_SECONDS) -> tuple[list, list]:
    """Each cell's first result (``notebook run alice:ops``), in reading order.

    Returns:
        (runs, failures): CellRun per cell with a result, (cell, TesseraError) per failing one.
    Raises:
        as open_session; SourceTimeout when a cell has no result within ``timeout``.
    """
    from tessera.core.errors import QueryError, SourceTimeout
    from tessera.core.notebook.cells import CellRun

    session = open_session(addr, run, options)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if session.failure is not None:
                raise session.failure
            ids = [c for row in session.layout for c in row]
            states = [session.panes.get(c) for c in ids]
            if session.loaded.is_set() and all(s is not None and s.status not in ("starting",)
                                               and (s.result is not None or s.error or s.status == "static")
                                               for s in states):
                break
            if time.monotonic() > deadline:
                waiting = [s.cell.get("number") for s in states if s is not None and s.status == "starting"]
                raise SourceTimeout(f"{session.name}: no result from cell(s) {waiting} within {timeout:g} s",
                                    hint="check the owner's `tessera serve` log, or try --run local")
            time.sleep(0.02)
        runs, failures = [], []
        for state in states:
            if state.status == "static":
                continue
            if state.error and (state.result is None or state.status == "error"):
                failures.append((state.cell, QueryError(state.error)))
            else:
                runs.append(CellRun(state.cell, state.result, []))
        return runs, failures
    finally:
        session.stop()


def watch(addr: Any, run: str, options: Any, *, on_changes: Callable[[dict, list[dict]], None],
          on_error: Callable[[dict, Exception], None], stop: Any) -> None:
    """``notebook run alice:ops --watch``: row changes (every row as added first) until ``stop``."""
    session = open_session(addr, run, options, on_changes=on_changes, on_error=on_error)
    try:
        while not stop.wait(0.25):
            if session.failure is not None:
                raise session.failure
    finally:
        session.stop()


def fetch_notebook(addr: Any, timeout: float = 10.0) -> Any:
    """A peer's notebook as its owner's node has it now (for ``notebook show alice:ops`` without a
    replica), read over a collab connection that runs nothing; None when the owner's node does
    not give it (not shared, not reachable: its first connection attempt failed) within
    ``timeout``. ``.owner`` is the peer as named."""
    from tessera.core import config
    from tessera.core.collab.client import CollabClient
    from tessera.core.errors import TesseraError
    from tessera.core.notebook.model import Notebook

    settled = threading.Event()  # synced ("live"), or the first connection attempt failed ("offline")
    client = CollabClient(str(config.database_path()), addr.peer, addr.name, run="none",
                          on_status=lambda status, reason: settled.set() if status in ("live", "offline") else None)
    try:
        client.start()
    except TesseraError:
        return None
    try:
        settled.wait(timeout)
        if not client.wait_synced(0):
            if (client.reason or "").startswith("the peer refused"):  # not shared: say so, not "no replica"
                from types import SimpleNamespace

                raise not_live(SimpleNamespace(reason=client.reason, peer=addr.peer, notebook=addr.name))
            return None
        with client.lock:
            nb = Notebook.from_updates([client.notebook.full_update()], name=addr.name)
        nb.id = client.notebook_id  # type: ignore[attr-defined]
        nb.owner = addr.peer  # type: ignore[attr-defined]
        return nb
    finally:
        client.stop()
