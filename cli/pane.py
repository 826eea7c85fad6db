"""``tessera pane NB/N``: one notebook cell, live, full screen, without chrome (for tmux panes).

The whole terminal is the cell's result, in its view (core/render/views.py, as the dashboard
draws it), with one status line at the bottom. The cell is kept current by a core
NotebookSession on a worker thread; this module only draws and reads keys.

Start-up cost is the point of this command (a tmux window may start eight of them at once), so it
draws with rich alone — no Textual, no prompt-toolkit — on the terminal's alternate screen,
rewriting only the lines that changed. Without a terminal (or with ``-o``) it prints the cell's
rows once, as ``notebook run NB/N`` does.

Exit codes: 0 after ``q``, 130 after Ctrl-C (SIGINT), 129 after SIGHUP (the tmux pane or the
terminal went away), 143 after SIGTERM; the terminal is restored in every case.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Optional

import typer

from tessera.cli import completers
from tessera.cli.dash import run_once
from tessera.cli.options import LiveFlags, OutputSettings, live_options, output_options
from tessera.cli.remote_notebook import RunOption
from tessera.core.errors import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED
from tessera.core.render import is_terminal

AddressArg = Annotated[str, typer.Argument(metavar="NB/N", show_default=False, autocompletion=completers.cells,
                                           help="The cell: NOTEBOOK/N, the N-th cell in reading order.")]
ViewOption = Annotated[Optional[str], typer.Option("--view", metavar="VIEW", show_default=False,
                                                   autocompletion=completers.views,
                                                   help="Show the cell as table, json, yaml, tree or graph "
                                                        "(not saved in the notebook).")]

EXIT_QUIT = 0
# At most this many redraws per second: a busy cluster can change a result far more often
# than anyone can read it, and tmux copies every byte we write to each attached client.
REDRAW_SECONDS = 0.1

STATUS_MARK = {"live": "●", "idle": "○", "paused": "‖", "error": "✖", "starting": "…", "static": "¶",
               "stopped": "■", "reconnecting": "↻"}
STATUS_STYLE = {"live": "green", "paused": "yellow", "error": "red", "stopped": "red", "reconnecting": "yellow"}

# Alternate screen, cursor hidden, no autowrap (a full-width last line must not scroll the
# screen); the reverse on the way out.
_ENTER = "\x1b[?1049h\x1b[?25l\x1b[?7l\x1b[0m\x1b[2J"
_LEAVE = "\x1b[0m\x1b[?7h\x1b[?25h\x1b[?1049l"
# Synchronized output (DEC mode 2026): terminals that know it show a frame at once; others
# ignore it.
_BEGIN_FRAME = "\x1b[?2026h"
_END_FRAME = "\x1b[?2026l"

_KEYS = {
    "q": "quit", "Q": "quit",
    "v": "view",
    "j": "down", "\x1b[B": "down", "\x1bOB": "down", "\x0e": "down",
    "k": "up", "\x1b[A": "up", "\x1bOA": "up", "\x10": "up",
    "\x1b[6~": "page_down", " ": "page_down", "\x06": "page_down",
    "\x1b[5~": "page_up", "b": "page_up", "\x02": "page_up",
    "g": "top", "\x1b[H": "top", "\x1b[1~": "top", "\x1bOH": "top",
    "G": "bottom", "\x1b[F": "bottom", "\x1b[4~": "bottom", "\x1bOF": "bottom",
    "r": "run",
    "p": "pause",
    "\x0c": "redraw",
}


@output_options
@live_options
def pane(
    address: AddressArg,
    view: ViewOption = None,
    run_at: RunOption = None,
    *,
    live: LiveFlags,
    out: OutputSettings,
) -> None:
    """Show one cell live, full screen, without chrome (for tmux panes; see tessera tmux).

    Keys: q quit, v next view (not saved), j/k or arrows scroll, PgUp/PgDn/space page,
    g/G top/bottom, r run now, p pause/resume. One status line at the bottom shows the cell,
    its status (live/paused/error), sources, view, rows and last refresh.
    Exit codes: 0 after q, 130 after Ctrl-C, 129 after SIGHUP, 143 after SIGTERM.
    Without a terminal, or with -o, prints the cell's rows once (JSONL by default), like
    notebook run NB/N.
    PEER:NB/N shows a cell of a peer's shared notebook, run at the owner (--run owner, the
    default: no kubeconfig needed here) or here (--run local).
    Example: tessera pane ops/2 -s replay:demo --speed 20
    """
    from tessera.cli.remote_notebook import check_run
    from tessera.core.errors import UsageError
    from tessera.core.notebook import repository
    from tessera.core.render.views import VIEWS

    addr = repository.parse_address(address, cell=True, peer=True)
    where = check_run(run_at, addr.peer)
    if view is not None and view not in VIEWS:
        raise UsageError(f"'{view}' is not a view; choose from {', '.join(VIEWS)}")
    options = live.session_options()
    if out.output is not None or not (is_terminal(sys.stdin) and is_terminal(sys.stdout)):
        run_once(str(addr), live, out, run_at=run_at)
        return
    from tessera.core import config
    from tessera.core.store.db import connect

    number = int(addr.cell or 0)  # parse_address(cell=True) always has one
    db_path = str(config.database_path())
    session = None
    if addr.peer is not None:
        from tessera.cli.remote_notebook import open_session

        session = open_session(addr, where, options)
        try:
            cell = {**session.document.read().cell(number), "number": number}
        except Exception:
            session.stop()
            raise
        session.set_cell(cell["id"])  # presence: others see us in this cell
    else:
        conn = connect(db_path)
        try:
            # Checked here, so a bad address is one line on stderr, not a flash of an empty screen.
            cell = {**repository.load(conn, addr.name).cell(number), "number": number}
        finally:
            conn.close()
    screen = PaneScreen(db_path, str(addr).rsplit("/", 1)[0], number, options, cell=cell, view=view,
                        color=out.use_color(sys.stdout), session=session)
    code = screen.run()
    if code:
        raise typer.Exit(code)


class PaneScreen:
    """Draws one cell of a NotebookSession on the terminal until a key or a signal ends it.

    Args:
        db_path: the store file.
        name: the notebook.
        number: the cell's number.
        options: SessionOptions (sources, speed, record_every...).
        cell: the cell as loaded (for the first frame, before the session has run it).
        view: a view to show instead of the cell's own (None: the cell's).
        color: colours and styles (False: plain text).
        fd_in / fd_out: the terminal (default: stdin and stdout).
        session: the session to show (a peer's notebook: a started RemoteNotebookSession on
            this cell); None: a NotebookSession on this node's notebook ``name``.
    """

    def __init__(self, db_path: str, name: str, number: int, options: Any, *, cell: dict, view: str | None = None,
                 color: bool = True, fd_in: int | None = None, fd_out: int | None = None,
                 session: Any = None) -> None:
        from tessera.core.notebook.session import GRAPH_VIEWS, NotebookSession, PaneState

        self.name = name
        self.number = number
        self.view_override = view
        self.color = color
        self.fd_in = sys.stdin.fileno() if fd_in is None else fd_in
        self.fd_out = sys.stdout.fileno() if fd_out is None else fd_out
        self._started = session is not None  # a peer's notebook: started (and synced) by the caller
        if session is None:
            session = NotebookSession(db_path, name, options, number=number)
        session.on_update, session.on_layout = self._on_update, self._on_layout
        self.session = session
        self.state: Any = PaneState(cell=cell)
        if view is not None and (view in GRAPH_VIEWS) != (cell.get("view") in GRAPH_VIEWS):
            self.session.subgraph = view in GRAPH_VIEWS  # planned so from the start (before start())
        self.offset = 0
        self.code: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._saved_tty: Any = None
        self._screen_on = False
        self._resized = True
        self._drawn_key: tuple | None = None
        self._lines: list[str] = []
        self._last_draw = 0.0
        self._console: Any = None
        self._size = (80, 24)
        self._views: Any = None
        self._terminal_gone = False

    # --- the session's callbacks (worker thread) ---------------------------------------------

    def _on_update(self, state: Any) -> None:
        self.state = state
        self._poke()

    def _on_layout(self, session: Any) -> None:
        self._poke()

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # already awake (the pipe is full) or closing

    # --- main loop ---------------------------------------------------------------------------

    def run(self) -> int:
        """Take over the terminal, follow the cell until q or a signal, restore the terminal.

        Returns:
            the exit code (0 after q, 129 SIGHUP, 130 SIGINT, 143 SIGTERM).
        Raises:
            the session's error when it fails before showing anything (a notebook removed
            meanwhile, say), after the terminal is restored.
        """
        import signal

        handlers: dict[int, Any] = {}

        def ending(code: int) -> Any:
            def handler(signum: int, frame: Any) -> None:
                if self.code is None:
                    self.code = code
                self._poke()
            return handler

        def resized(signum: int, frame: Any) -> None:
            self._resized = True
            self._poke()

        def suspend(signum: int, frame: Any) -> None:
            # Ctrl-Z: give the shell its terminal back, stop, and take it again on fg.
            self._restore_terminal()
            signal.signal(signal.SIGTSTP, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTSTP)
            signal.signal(signal.SIGTSTP, suspend)
            self._take_terminal()
            self._resized = True
            self._poke()

        wanted = {signal.SIGINT: ending(EXIT_INTERRUPTED), signal.SIGTERM: ending(EXIT_TERMINATED),
                  signal.SIGHUP: ending(EXIT_HANGUP), signal.SIGWINCH: resized, signal.SIGTSTP: suspend}
        failure: BaseException | None = None
        try:
            for sig, handler in wanted.items():
                handlers[sig] = signal.signal(sig, handler)
            self._take_terminal()
            self._draw()  # the first frame: the status line, before any result
            if not self._started:
                self.session.start()
            else:  # started before the screen was ours: show what it has
                state = self.session.panes.get(self.state.cell.get("id"))
                if state is not None:
                    self.state = state
            self._loop()
        except Exception as exc:  # drawn from here on: the terminal comes back first
            failure = exc
        finally:
            # The terminal first: stopping may wait for an evaluation in progress.
            self._restore_terminal()
            self.session.stop(timeout=2.0)
            for sig, handler in handlers.items():
                try:
                    signal.signal(sig, handler)
                except (TypeError, ValueError):
                    pass
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        if failure is not None:
            raise failure
        return self.code or EXIT_QUIT

    def _loop(self) -> None:
        import select
        import time

        while self.code is None:
            now = time.monotonic()
            wait = 1.0
            if self._want_draw():
                wait = max(0.0, self._last_draw + REDRAW_SECONDS - now)
            ready, _, _ = select.select([self._wake_r, self.fd_in], [], [], wait)
            if self._wake_r in ready:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
            if self.fd_in in ready:
                try:
                    data = os.read(self.fd_in, 1024)
                except OSError:
                    data = b""
                if not data:
                    # The terminal is gone (EOF or EIO): as good as a hangup.
                    self._terminal_gone = True
                    self.code = EXIT_HANGUP
                    break
                for action in parse_keys(data.decode("utf-8", "replace")):
                    self._act(action)
            if self.session.failure is not None and self.state.result is None and self.state.status == "starting":
                raise self.session.failure
            if self.code is None and self._want_draw() and time.monotonic() - self._last_draw >= REDRAW_SECONDS:
                self._draw()

    def _follow_view(self) -> None:
        """Have the session keep the subgraph exactly when the view on show needs it."""
        from tessera.core.notebook.session import GRAPH_VIEWS

        want = self.view in GRAPH_VIEWS
        setting = None if want == (self.state.cell.get("view") in GRAPH_VIEWS) else want
        if setting != self.session.subgraph:
            self.session.keep_subgraph(setting)

    # --- keys --------------------------------------------------------------------------------

    @property
    def view(self) -> str:
        """The view on show: the override, else the cell's own."""
        return self.view_override or self.state.cell.get("view") or "table"

    def _act(self, action: str) -> None:
        from tessera.core.render.views import next_view

        page = max(1, self._size[1] - 2)
        cell_id = self.state.cell.get("id")
        if action == "quit":
            self.code = EXIT_QUIT
        elif action == "view" and self.state.cell.get("type") != "markdown":
            self.view_override = next_view(self.view)
            self.offset = 0
            self._follow_view()
        elif action == "down":
            self.offset += 1
        elif action == "up":
            self.offset = max(0, self.offset - 1)
        elif action == "page_down":
            self.offset += page
        elif action == "page_up":
            self.offset = max(0, self.offset - page)
        elif action == "top":
            self.offset = 0
        elif action == "bottom":
            self.offset = 10**9  # clamped by window()
        elif action == "run" and cell_id and self.state.status != "static":
            self.session.run_now(cell_id)
        elif action == "pause" and cell_id and self.state.status not in ("static", "starting"):
            if self.state.status == "paused":
                self.session.resume(cell_id)
            else:
                self.session.pause(cell_id)
        elif action == "redraw":
            self._resized = True

    # --- the terminal ------------------------------------------------------------------------

    def _take_terminal(self) -> None:
        import termios
        import tty

        try:
            self._saved_tty = termios.tcgetattr(self.fd_in)
            # cbreak, not raw: keys arrive one by one unechoed, and Ctrl-C / Ctrl-Z still
            # become signals, handled like a kill.
            tty.setcbreak(self.fd_in, termios.TCSANOW)
        except termios.error:
            self._saved_tty = None
        self._write(_ENTER)
        self._screen_on = True
        self._lines = []

    def _restore_terminal(self) -> None:
        import termios

        if self._screen_on:
            self._screen_on = False
            self._write(_LEAVE)
        if self._saved_tty is not None:
            try:
                termios.tcsetattr(self.fd_in, termios.TCSADRAIN, self._saved_tty)
            except (termios.error, OSError):
                pass
            self._saved_tty = None

    def _write(self, text: str) -> None:
        if self._terminal_gone:
            return
        data = text.encode("utf-8", "replace")
        try:
            while data:
                n = os.write(self.fd_out, data)
                data = data[n:]
        except BlockingIOError:
            pass
        except OSError:
            # EIO / EPIPE: the terminal went away (a killed tmux pane); stop as after SIGHUP.
            self._terminal_gone = True
            if self.code is None:
                self.code = EXIT_HANGUP

    # --- drawing -----------------------------------------------------------------------------

    def _key(self) -> tuple:
        st = self.state
        return (st.version, id(st), self.view, self.offset, self._size, self.session.failure is not None)

    def _want_draw(self) -> bool:
        return self._resized or self._key() != self._drawn_key

    def _draw(self) -> None:
        import time

        if self._resized:
            self._resized = False
            try:
                size = os.get_terminal_size(self.fd_out)
                self._size = (max(1, size.columns), max(1, size.lines))
            except OSError:
                pass
            self._lines = []
        width, height = self._size
        lines = self.frame(width, height)
        out = [_BEGIN_FRAME]
        if not self._lines:
            out.append("\x1b[0m\x1b[2J")
        for i, line in enumerate(lines):
            if i < len(self._lines) and self._lines[i] == line:
                continue
            # Erase the line, then write it: erasing after a full-width line would take its last
            # character (without autowrap the cursor stays on the last column, which EL clears).
            out.append(f"\x1b[{i + 1};1H\x1b[2K{line}\x1b[0m")
        out.append(_END_FRAME)
        self._write("".join(out))
        self._lines = lines
        self._drawn_key = self._key()
        self._last_draw = time.monotonic()

    def _console_for(self, width: int, height: int) -> Any:
        import io

        from rich.console import Console

        if self._console is None:
            self._console = Console(file=io.StringIO(), force_terminal=True, color_system="auto" if self.color else None,
                                    no_color=not self.color, legacy_windows=False, highlight=False, emoji=False,
                                    markup=False, width=width, height=height)
        self._console.width = width
        self._console.height = height
        return self._console

    def _render(self, renderable: Any, width: int, height: int, **options: Any) -> list[str]:
        console = self._console_for(width, height)
        with console.capture() as capture:
            console.print(renderable, crop=True, **options)
        text = capture.get()
        if text.endswith("\n"):
            text = text[:-1]
        return text.split("\n")[:height] if text else []

    def frame(self, width: int, height: int) -> list[str]:
        """The screen as ``height`` lines of ANSI text: the body, then the status line.

        Args:
            width / height: the terminal's size.
        Returns:
            the lines (exactly ``height`` of them; a 1-line terminal shows only the status).
        """
        from rich.text import Text

        from tessera.core.render.views import ViewCache, markdown, window

        st = self.state
        body_height = height - 1
        body: list[str] = []
        summary = ""
        failure = self.session.failure
        error = st.error or st.fault or (f"stopped: {_one_line(failure)}" if failure is not None else None)
        if body_height > 0:
            if st.status == "static":
                body = self._render(markdown(st.cell.get("source", "")), width, body_height)
            else:
                if error:
                    text = Text(error, style="bold red" if self.color else "bold", overflow="fold")
                    body = self._render(text, width, max(1, body_height // 2))
                room = body_height - len(body)
                if st.result is None:
                    if not error and room > 0:
                        waiting = "waiting for the first result…" if st.status == "starting" else "(no result yet)"
                        body += self._render(Text(waiting, style="dim"), width, room)
                elif room > 0:
                    if self._views is None:
                        self._views = ViewCache()
                    win = window(st.result, self.view, height=room, offset=self.offset, cache=self._views,
                                 color=self.color)
                    self.offset = win.offset
                    body += self._render(win.renderable, width, room)
                    shown = room - 1 if self.view == "table" else room
                    if win.total > shown:
                        unit = "rows" if self.view == "table" else "lines"
                        summary = f"{unit} {win.offset + 1}-{min(win.total, win.offset + shown)}/{win.total}"
        body = (body + [""] * body_height)[:max(0, body_height)]
        return body + [self._status_line(width, summary, error is not None and failure is not None)]

    def _status_line(self, width: int, summary: str, stopped: bool) -> str:
        from rich.text import Text

        st = self.state
        cell = st.cell
        status = "stopped" if stopped else st.status
        style = STATUS_STYLE.get(status, "") if self.color else ""
        line = Text(style="reverse" if self.color else "")
        line.append(f" {STATUS_MARK.get(status, '?')} ", style=style)
        line.append(f"{self.name}/{cell.get('number', self.number)} ", style="bold" if self.color else "")
        line.append(cell.get("title") or cell.get("type") or "")
        line.append(f" {status}", style=style)
        parts = [self.session.runs_at] if self.session.runs_at else []  # a peer's notebook: @alice or local
        if self.session.status in ("connecting", "offline"):
            parts.append(self.session.status)
        sources = st.sources or tuple(cell.get("sources") or ())
        if sources:
            parts.append(",".join(sources))
        if cell.get("type") != "markdown":
            parts.append(self.view + ("*" if self.view_override and self.view_override != cell.get("view") else ""))
            if summary and self.view == "table":
                parts.append(summary)  # "rows 11-30/40" says the count too
            else:
                parts += [f"{st.rows} rows"] + ([summary] if summary else [])
        parts.append(cell.get("refresh") or "manual")
        if st.refreshed:
            parts.append(st.refreshed[11:19])
        if st.reconnected and st.status != "reconnecting":
            parts.append(f"reconnected {st.reconnected[11:19]}")
        line.append("  " + " · ".join(parts) + " ")
        line.truncate(width, overflow="ellipsis", pad=True)
        rendered = self._render(line, width, 1, no_wrap=True, overflow="ellipsis", end="")
        return rendered[0] if rendered else ""


def parse_keys(text: str) -> list[str]:
    """The actions in a chunk of terminal input (unknown keys and escape sequences dropped).

    Args:
        text: what one read returned (several keys when typed or repeated fast).
    Returns:
        action names from the key table (quit, view, down, up, page_down, page_up, top, bottom,
        run, pause, redraw).
    """
    actions = []
    i = 0
    while i < len(text):
        if text[i] == "\x1b":
            # ESC [ params final, or ESC O final; a lone ESC is nothing.
            j = i + 1
            if j < len(text) and text[j] in "[O":
                j += 1
                while j < len(text) and not ("@" <= text[j] <= "~"):
                    j += 1
                j += 1
            seq = text[i:j]
            i = max(j, i + 1)
        else:
            seq = text[i]
            i += 1
        action = _KEYS.get(seq)
        if action is not None:
            actions.append(action)
    return actions


def _one_line(exc: BaseException) -> str:
    one_line = getattr(exc, "one_line", None)
    return one_line() if callable(one_line) else f"{type(exc).__name__}: {exc}"


def register(app: typer.Typer) -> None:
    """Add the pane command to ``app``."""
    app.command("pane")(pane)
