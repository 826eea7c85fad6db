"""``tessera tmux NB``: lay a notebook out as a tmux window, one ``tessera pane`` per cell.

The window follows the notebook's rows: one horizontal band per row (equal heights), each band
split into its 1, 2 or 4 cells (equal widths). Each pane runs ``tessera pane NB/N`` with the
source flags given here, so a pane can be closed, zoomed or moved with tmux's own keys.

Inside tmux (``$TMUX`` set) the window goes into the current session; outside, into a detached
session ``tessera-<notebook>`` (created when missing), and ``--attach`` attaches to it.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Annotated, Any, Optional

import typer

from tessera.cli import completers
from tessera.cli.dash import NotebookArg, resolve_notebook
from tessera.cli.options import LiveFlags, live_options

Attach = Annotated[bool, typer.Option("--attach", "-a", help="Attach to the session (outside tmux) or switch to the "
                                                              "window (inside tmux).")]
SessionName = Annotated[Optional[str], typer.Option("--session", metavar="NAME", show_default=False,
                                                    help="The tmux session (default: the current one inside tmux, "
                                                         "else tessera-NOTEBOOK; created when missing).")]
WindowName = Annotated[Optional[str], typer.Option("--window", metavar="NAME", show_default=False,
                                                   help="The window's name (default: the notebook's).")]
SocketName = Annotated[Optional[str], typer.Option("--socket-name", "-L", metavar="NAME", show_default=False,
                                                   help="Use this tmux server socket (tmux -L NAME).")]
Color = Annotated[str, typer.Option("--color", metavar="WHEN", autocompletion=completers.color_modes, help="Passed to each pane: auto, always or never.")]

# What the panes need from this process's environment: a tmux server gives new windows its own
# environment (from when it started), not the client's, so the data home would be lost.
PASS_ENV_PREFIXES = ("TESSERA_",)
PASS_ENV = ("KUBECONFIG", "NO_COLOR")
DROP_ENV = ("_TESSERA_COMPLETE",)
# Exit codes after which a pane simply closes (q, SIGHUP, Ctrl-C, SIGTERM); after any other the
# pane stays open on the error message until Enter.
QUIET_EXITS = "0|129|130|143"


@live_options
def tmux(
    notebook: NotebookArg = None,
    attach: Attach = False,
    session: SessionName = None,
    window: WindowName = None,
    socket_name: SocketName = None,
    color: Color = "auto",
    *,
    live: LiveFlags,
) -> None:
    """Lay a notebook out as a tmux window: one pane per cell, each running tessera pane NB/N.

    Rows become horizontal bands of equal height, each split into its 1, 2 or 4 cells; pane
    titles are the cell titles. Inside tmux the window goes into the current session, outside
    into a detached session tessera-NOTEBOOK. Prints the window as SESSION:INDEX. Source flags
    (-s, --context, --speed...) are passed to every pane.
    Example: tessera tmux ops --attach
    """
    import shutil

    from tessera.core.errors import SourceUnavailable, UsageError
    from tessera.core.notebook import repository
    from tessera.core.store.db import connect

    if color not in ("auto", "always", "never"):
        raise UsageError(f"--color: '{color}' is not one of auto, always, never")
    live.session_options()  # checks the flags before anything is created
    binary = shutil.which("tmux")
    if binary is None:
        raise SourceUnavailable("tmux is not installed", hint="install tmux, or run tessera pane NB/N in each terminal")
    conn = connect()
    try:
        name = resolve_notebook(conn, notebook, "tmux")
        cells = repository.load(conn, name).cells()
    finally:
        conn.close()
    if not cells:
        raise UsageError(f"notebook '{name}' has no cells", hint=f"add one: tessera cell add {name} 'MATCH ...'")
    inside = bool(os.environ.get("TMUX")) and socket_name is None
    if attach and not inside and not (sys.stdin.isatty() and sys.stdout.isatty()):
        where = (f" -L {shlex.quote(socket_name)}" if socket_name else "") + " attach -t " + shlex.quote(
            session or f"tessera-{name}")
        raise UsageError("--attach needs a terminal", hint=f"leave it out, and attach later with: tmux{where}")

    flags = live.as_args() + (["--color", color] if color != "auto" else [])
    server = Tmux(binary, socket_name)
    target = build_window(server, name, cells, flags, session=session, window=window or name, inside=inside)
    print(target)
    sys.stdout.flush()
    if attach:
        if inside:
            server.run("select-window", "-t", target)
            # Another session (--session): move this client there; nothing to move when the
            # command runs without a client (a script in a detached pane).
            server.run("switch-client", "-t", target, check=False)
        else:
            os.execvp(binary, server.base + ["attach-session", "-t", target])


class Tmux:
    """Runs tmux commands against one server.

    Args:
        binary: the tmux executable.
        socket_name: ``tmux -L`` socket name (None: the default server, or $TMUX's inside tmux).
    """

    def __init__(self, binary: str, socket_name: str | None = None):
        self.base = [binary] + (["-L", socket_name] if socket_name else [])

    def run(self, *args: str, check: bool = True) -> str:
        """Run ``tmux ARGS``; returns its stdout, stripped.

        Raises:
            SourceUnavailable with tmux's own message when it fails (and ``check``).
        """
        import subprocess

        from tessera.core.errors import SourceUnavailable

        proc = subprocess.run(self.base + list(args), capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            message = (proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}").splitlines()[0]
            raise SourceUnavailable(f"tmux {args[0]}: {message}")
        return proc.stdout.strip() if proc.returncode == 0 else ""


def build_window(server: Tmux, name: str, cells: list[dict], flags: list[str], *, session: str | None, window: str,
                 inside: bool) -> str:
    """Create the window and its panes; returns the window as ``SESSION:INDEX``.

    Args:
        server: the tmux server to talk to.
        name: the notebook.
        cells: its cells (``Notebook.cells()``: each with ``number`` and ``row``).
        flags: the ``tessera pane`` flags every pane gets.
        session: the session to use (None: the current one inside tmux, else tessera-NAME).
        window: the window's name.
        inside: running inside tmux (a new window in the current session when no session is named).
    Raises:
        UsageError when the window is too small for the layout; SourceUnavailable when tmux fails.
    """
    from tessera.core.errors import UsageError

    rows: list[list[dict]] = []
    for cell in cells:
        if rows and rows[-1][0]["row"] == cell["row"]:
            rows[-1].append(cell)
        else:
            rows.append([cell])
    cwd = os.getcwd()
    fmt = "#{session_name}:#{window_index}\t#{pane_id}"
    first = pane_command(name, rows[0][0]["number"], flags)
    if session is None and inside:
        made = server.run("new-window", "-d", "-P", "-F", fmt, "-n", window, "-c", cwd, first)
    else:
        session = session or f"tessera-{name}"
        if _exists(server, session):
            made = server.run("new-window", "-d", "-P", "-F", fmt, "-n", window, "-c", cwd, "-t", f"={session}:", first)
        else:
            size = _terminal_size()
            extra = ["-x", str(size[0]), "-y", str(size[1])] if size else []
            made = server.run("new-session", "-d", "-P", "-F", fmt, "-s", session, "-n", window, "-c", cwd, *extra,
                              first)
    target, top = made.split("\t")
    try:
        width, height = (int(v) for v in server.run("display-message", "-p", "-t", top,
                                                    "#{window_width} #{window_height}").split())
        heights = split_sizes(height, len(rows))
        if min(heights) < 2 or min(min(split_sizes(width, len(r))) for r in rows) < 8:
            raise UsageError(f"the tmux window ({width}x{height}) is too small for {len(cells)} panes in {len(rows)} rows",
                             hint="make the terminal larger, or use tessera pane NB/N")
        bands = [top]
        for i in range(1, len(rows)):
            rest = sum(heights[i:]) + len(rows) - 1 - i
            bands.append(server.run("split-window", "-d", "-v", "-l", str(rest), "-t", bands[-1], "-c", cwd,
                                    "-P", "-F", "#{pane_id}", pane_command(name, rows[i][0]["number"], flags)))
        for band, row in zip(bands, rows, strict=True):
            widths = split_sizes(width, len(row))
            panes = [band]
            for j in range(1, len(row)):
                rest = sum(widths[j:]) + len(row) - 1 - j
                panes.append(server.run("split-window", "-d", "-h", "-l", str(rest), "-t", panes[-1], "-c", cwd,
                                        "-P", "-F", "#{pane_id}", pane_command(name, row[j]["number"], flags)))
            for pane_id, cell in zip(panes, row, strict=True):
                server.run("select-pane", "-t", pane_id, "-T", cell.get("title") or f"{name}/{cell['number']}")
        server.run("select-pane", "-t", top)
    except Exception:
        server.run("kill-window", "-t", target, check=False)  # no half-built window left behind
        raise
    return target


def _exists(server: Tmux, session: str) -> bool:
    import subprocess

    return subprocess.run(server.base + ["has-session", "-t", f"={session}"], capture_output=True,
                          stdin=subprocess.DEVNULL).returncode == 0


def _terminal_size() -> tuple[int, int] | None:
    """This terminal's size, for a detached session that will be attached from it (tmux
    rescales the panes when another client attaches)."""
    for stream in (sys.stdout, sys.stderr, sys.stdin):
        try:
            size = os.get_terminal_size(stream.fileno())
            return size.columns, max(2, size.lines - 1)  # minus tmux's status line
        except (OSError, ValueError, AttributeError):
            continue
    return None


def split_sizes(total: int, parts: int) -> list[int]:
    """Sizes of ``parts`` panes sharing ``total`` cells with a 1-cell border between each two,
    as equal as can be (the first ones get the spare cells).

    Args:
        total: the window's width or height.
        parts: how many panes.
    Returns:
        the sizes, in order.
    """
    room = total - (parts - 1)
    base, spare = divmod(room, parts)
    return [base + (1 if k < spare else 0) for k in range(parts)]


def self_command() -> list[str]:
    """How to run this same tessera: the ``tessera``/``tsr`` script we were started as (works
    from a venv that is not on PATH), else ``python -m tessera.cli.main`` with this interpreter."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) in ("tessera", "tsr") and os.path.isfile(argv0) and os.access(argv0, os.X_OK):
        return [os.path.abspath(argv0)]
    return [sys.executable, "-m", "tessera.cli.main"]


def pane_environment(environ: Any = None) -> dict[str, str]:
    """The variables a pane must get from this process (data home, config, kubeconfig...)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in sorted(environ.items())
            if (k.startswith(PASS_ENV_PREFIXES) or k in PASS_ENV) and k not in DROP_ENV}


def pane_command(name: str, number: int, flags: list[str], environ: Any = None) -> str:
    """The shell command a tmux pane runs for cell ``name/number``.

    ``tessera pane`` with this process's data home and flags; when it fails to start (exit
    other than q/Ctrl-C/SIGHUP/SIGTERM) the pane stays open on its error until Enter. Wrapped
    in ``sh -c`` so it runs the same whatever the user's tmux default-shell is.
    """
    env = [f"{k}={v}" for k, v in pane_environment(environ).items()]
    argv = (["env"] + env if env else []) + self_command() + ["pane", f"{name}/{number}"] + flags
    script = (f"{shlex.join(argv)}; s=$?; case $s in {QUIET_EXITS}) ;; *) "
              f"printf '\\n[tessera pane exited with status %s; press Enter to close]' \"$s\"; read _ ;; esac")
    return "sh -c " + shlex.quote(script)


def register(app: typer.Typer) -> None:
    """Add the tmux command to ``app``."""
    app.command("tmux")(tmux)
