"""The interactive shell: a prompt-toolkit prompt over cli/shell/repl.py's Shell.

Multi-line input (Enter runs a complete statement, else starts a new line; Alt-Enter always runs),
highlighting from core/query/highlight.py, completion from Shell.complete (in a thread, so a slow
discovery or sampling call never blocks typing), and history in ``<data home>/shell_history``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion, ThreadedCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.enums import DEFAULT_BUFFER
from prompt_toolkit.filters import has_focus
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.lexers import Lexer
from prompt_toolkit.styles import Style

from tessera.cli.shell.repl import Shell
from tessera.core.errors import TesseraError

STYLE = Style.from_dict({
    "query.keyword": "ansiblue bold",
    "query.function": "ansicyan",
    "query.kind": "ansigreen bold",
    "query.variable": "ansiyellow",
    "query.key": "ansimagenta",
    "query.string": "ansigreen",
    "query.number": "ansimagenta",
    "query.comment": "ansibrightblack italic",
    "query.operator": "ansired",
    "query.error": "bg:ansired ansiwhite",
    "query.command": "ansicyan bold",
    "query.macro": "ansicyan bold",
    "prompt": "bold",
})


class QueryLexer(Lexer):
    """Highlights the input with core/query/highlight.spans (the real lexer's tokens)."""

    def lex_document(self, document: Document) -> Callable[[int], list[tuple[str, str]]]:
        from tessera.core.query.highlight import spans

        text = document.text
        styles = [""] * len(text)
        for start, end, cls in spans(text):
            styles[start:end] = ["class:query." + cls] * (end - start)
        starts = [0]
        for line in document.lines[:-1]:
            starts.append(starts[-1] + len(line) + 1)

        def line_fragments(lineno: int) -> list[tuple[str, str]]:
            if lineno >= len(starts):
                return []
            begin = starts[lineno]
            line = document.lines[lineno]
            fragments: list[tuple[str, str]] = []
            for i, ch in enumerate(line):
                style = styles[begin + i]
                if fragments and fragments[-1][0] == style:
                    fragments[-1] = (style, fragments[-1][1] + ch)
                else:
                    fragments.append((style, ch))
            return fragments

        return line_fragments


class QueryCompleter(Completer):
    """Offers Shell.complete's candidates; while typing, only once something is typed."""

    def __init__(self, shell: Shell):
        self.shell = shell

    def get_completions(self, document: Document, complete_event: Any):
        try:
            start, candidates = self.shell.complete(document.text, document.cursor_position)
        except Exception:  # noqa: BLE001 - a completion bug must never break typing
            return
        cursor = document.cursor_position
        if start == cursor and not complete_event.completion_requested:
            return  # an empty prefix: wait for Tab rather than pop a menu after every space
        for candidate in candidates:
            yield Completion(candidate, start_position=start - cursor)


def key_bindings() -> KeyBindings:
    """Enter runs a complete statement (else adds a line); Alt-Enter / Esc Enter always runs."""
    from tessera.core.completion import is_complete

    kb = KeyBindings()
    # Only in the query itself: in Ctrl-R search, Enter must still accept the search.
    editing = has_focus(DEFAULT_BUFFER)

    # Ctrl-J too: keys typed ahead while a query runs reach us through the terminal's cooked
    # mode, which turns Enter's CR into LF.
    @kb.add("enter", filter=editing)
    @kb.add("c-j", filter=editing)
    def _enter(event: Any) -> None:
        buf = event.current_buffer
        state = buf.complete_state
        if state is not None and state.current_completion is not None:
            buf.complete_state = None  # Enter on a chosen completion keeps it and closes the menu
            return
        if is_complete(buf.text):
            buf.validate_and_handle()
        else:
            buf.insert_text("\n")

    @kb.add("escape", "enter", filter=editing)
    def _run(event: Any) -> None:
        event.current_buffer.validate_and_handle()

    return kb


def history_file() -> Path:
    """``<data home>/shell_history``, created readable by its owner only."""
    from tessera.core import config

    path = config.data_home() / "shell_history"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)  # queries can hold names and hosts: keep them private
    return path


def _continuation(width: int, line_number: int, is_soft_wrap: bool) -> str:
    return "...".rjust(width - 1) + " "


class Ended(BaseException):
    """A kill or hang-up ended the shell; ``code`` is the exit code to leave with. A
    BaseException, like KeyboardInterrupt, so that nothing on the way out takes it for an error."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def end_on_signals(sessions: list[PromptSession]) -> Callable[[], None]:
    """Make SIGTERM and SIGHUP end the shell as Ctrl-D does: a prompt on screen is closed first
    (so the terminal leaves raw mode), then ``Ended`` carries 143 or 129 out.

    Args:
        sessions: the prompts that may be on screen.
    Returns:
        a function that puts the previous handlers back.
    """
    import signal

    from tessera.core.errors import EXIT_HANGUP, EXIT_TERMINATED

    def leave(app: Any, code: int) -> None:
        if app.future is not None and not app.future.done():
            app.exit(exception=Ended(code))

    def handler(signum: int, frame: Any) -> None:
        code = EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_HANGUP
        for session in sessions:
            app = session.app
            if app.loop is not None and app.future is not None and not app.future.done():
                app.loop.call_soon_threadsafe(leave, app, code)
                return
        raise Ended(code)

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    except ValueError:  # not the main thread: keep the default behaviour
        return lambda: None

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def run_interactive(*, input: Any = None, output: Any = None, threaded: bool = True, **options: Any) -> int:
    """Prompt, run, repeat until ``\\q`` or Ctrl-D.

    Args:
        input, output: prompt-toolkit Input/Output (tests pass a pipe input and DummyOutput);
            default: the terminal.
        threaded: compute completions in a thread (tests turn it off to be deterministic).
        options: Shell arguments (specs, contexts, kubeconfig, namespace, all_namespaces, out,
            dry_run, yes, read_only).
    Returns:
        0, or 143 / 129 when SIGTERM / SIGHUP ended it.
    """
    from tessera.cli.shell.repl import print_error
    from tessera.core.macros import load_macros, parse_macros, DEFAULT_MACROS

    try:
        macros = load_macros()
    except TesseraError as err:
        print_error(err)
        print("tessera: using the built-in macros only", file=sys.stderr)
        macros = {m.name: m for m in parse_macros(DEFAULT_MACROS)}

    answer_session: PromptSession = PromptSession(input=input, output=output)

    def ask(question: str) -> bool:
        try:
            answer = answer_session.prompt(f"{question} [y/N] ")
        except (KeyboardInterrupt, EOFError):
            return False
        return answer.strip().lower() in ("y", "yes")

    shell = Shell(macros=macros, ask=ask, **options)
    try:
        shell.sources  # noqa: B018 - open now, so the prompt shows the context and a bad one is said at once
    except TesseraError as err:
        print_error(err)
    completer: Completer = QueryCompleter(shell)
    color = shell.out.use_color()
    session: PromptSession = PromptSession(
        history=FileHistory(str(history_file())),
        multiline=True,
        key_bindings=key_bindings(),
        lexer=QueryLexer() if color else None,
        style=STYLE,
        include_default_pygments_style=False,
        completer=ThreadedCompleter(completer) if threaded else completer,
        complete_while_typing=True,
        prompt_continuation=_continuation,
        enable_history_search=False,
        input=input,
        output=output,
    )
    if not shell.out.quiet:
        print("tessera shell: \\h for help, \\q or Ctrl-D to quit", file=sys.stderr)
    restore_signals = end_on_signals([session, answer_session])
    try:
        while not shell.done:
            try:
                text = session.prompt([("class:prompt", shell.prompt())])
            except KeyboardInterrupt:
                continue  # Ctrl-C clears the input
            except EOFError:
                break
            shell.execute(text)
    except Ended as ended:
        return ended.code
    finally:
        restore_signals()
        shell.close()
    return 0
