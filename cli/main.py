"""The ``tessera`` (alias ``tsr``) command: a typer app whose commands are thin shells over
tessera.core.api. ``run`` turns every error into one ``tessera: ...`` line on stderr and a typed
exit code (see tessera.core.errors), never a traceback. Only the invoked command's module is
imported (COMMAND_MODULES), and a bare ``--version`` is answered before typer is.
"""

from __future__ import annotations

import errno
import functools
import gc
import io
import os
import sys
from typing import TYPE_CHECKING, Any

from tessera.cli.messages import print_error, print_message
from tessera.cli.version import print_version
from tessera.core.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, TesseraError

if TYPE_CHECKING:
    import typer

# Each command's module (it has ``register(app)``), in the order ``tessera --help`` lists them.
# A command line names one command, so only its module is imported and registered: importing all
# of them (and building every command's click parameters) was most of ``tessera --version``'s time.
# ``--help``, completion and the man pages (cli/docgen.py) build the full app.
COMMAND_MODULES: dict[str, str] = {
    "query": "tessera.cli.query",
    "explain": "tessera.cli.query",
    "kinds": "tessera.cli.kinds",
    "info": "tessera.cli.info",
    "record": "tessera.cli.record",
    "notebook": "tessera.cli.notebook",
    "cell": "tessera.cli.notebook",
    "events": "tessera.cli.events",
    "dash": "tessera.cli.dash",
    "pane": "tessera.cli.pane",
    "tmux": "tessera.cli.tmux",
    "shell": "tessera.cli.shell.command",
    "peer": "tessera.cli.peer",
    "serve": "tessera.cli.serve",
    "blob": "tessera.cli.blob",
    "ingest": "tessera.cli.knowledge_ingest",
    "search": "tessera.cli.knowledge_search",
    "job": "tessera.cli.job",
    "backup": "tessera.cli.backup",
    "restore": "tessera.cli.backup",
    "nats": "tessera.cli.nats",
    "doctor": "tessera.cli.doctor",
}
# Root options that take a value (``--correlation ID``): the word after one is not the command.
_ROOT_VALUE_OPTIONS = ("--correlation",)
_VERSION_ONLY = (["--version"], ["-V"])


def build_app(commands: list[str] | None = None) -> "typer.Typer":
    """The app with the modules of ``commands`` registered (default: every command)."""
    from tessera.cli.root import root_app

    wanted = set(commands) if commands is not None else set(COMMAND_MODULES)
    app = root_app()
    for module in dict.fromkeys(COMMAND_MODULES[name] for name in COMMAND_MODULES if name in wanted):
        # __import__, not importlib.import_module: only the former shows in ``python -X importtime``,
        # which the start-up tests (tests/test_packaging.py) read.
        __import__(module, fromlist=["register"]).register(app)
    return app


@functools.cache
def full_app() -> "typer.Typer":
    """The app with every command, for ``--help``, completion and cli/docgen.py."""
    return build_app()


def __getattr__(name: str) -> Any:
    # ``from tessera.cli.main import app``: the full app, built on first use (not at import).
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def invoked_command(args: list[str]) -> str | None:
    """The command a command line names (its first word that is not a root option), when it is
    one of ours; None for none (``--help``, no arguments) or an unknown word."""
    words = iter(args)
    for word in words:
        if word == "--":
            return None
        if word in _ROOT_VALUE_OPTIONS:
            next(words, None)
            continue
        if word.startswith("-"):
            continue
        return word if word in COMMAND_MODULES else None
    return None


class _ClosedStdout(io.TextIOBase):
    """sys.stdout when the shell closed it (``>&-``): every write fails as a closed descriptor
    would, so the command stops with one line instead of a NoneType error (print() to None would
    instead drop the output silently)."""

    def writable(self) -> bool:
        return True

    def write(self, text: Any) -> int:
        raise OSError(errno.EBADF, "stdout is closed")

    @property
    def buffer(self) -> "_ClosedStdout":  # binary writes fail the same way
        return self

    def isatty(self) -> bool:
        return False


class _ClosedStdin(io.TextIOBase):
    """sys.stdin when the shell closed it (``<&-``): closed, so readers (read_stream) say "stdin is
    closed"; not a terminal, so commands that ask or draw take their non-interactive path."""

    def __init__(self) -> None:
        super().__init__()
        self.close()

    def isatty(self) -> bool:
        return False


def _guard_standard_streams() -> None:
    """Keep descriptors 0-2 taken when the shell closed them (``<&-``, ``>&-``, ``2>&-``): the next
    file opened would otherwise get that number, and whatever writes "stdout" would write into it
    (a database, a recording). The Python streams stay closed: stdin reads as closed (and is no
    terminal), stdout writes fail, stderr messages are dropped (as for any Unix tool started that way)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdin is None:
        sys.stdin = _ClosedStdin()
    if sys.stdout is None:
        sys.stdout = _ClosedStdout()
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process


def _write_failed(exc: OSError) -> bool:
    """True for an error writing an already open stream (stdout on a full disk, a closed stdout)."""
    return exc.filename is None and exc.errno in (errno.EBADF, errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: sys.argv[1:]).

    Returns:
        the process exit code.
    """
    # Start-up allocates thousands of objects that live as long as the process (modules, the
    # command's click parameters): the cyclic collector walking them during the imports finds
    # nothing and costs ~5 ms. It is back on before the command runs (_run_app), and as it was
    # when main returns (a one-shot query turns it off, then freezes what it made).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _main(argv)
    finally:
        if collecting:
            gc.enable()


def _main(argv: list[str] | None) -> int:
    _guard_standard_streams()
    args = list(sys.argv[1:] if argv is None else argv)
    completing = bool(os.environ.get("_TESSERA_COMPLETE"))
    try:
        if args in _VERSION_ONLY and not completing:
            print_version()  # without typer: the whole command is this line
            return 0
        _know_bundled_plugins()
        return _run_app(args, completing)
    except TesseraError as err:
        print_error(err)
        return err.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as cat does.
        _discard_stdout()
        return 0
    except OSError as exc:
        if _write_failed(exc):
            _discard_stdout()  # else the flush at exit fails again and prints a second message
            print_message(f"cannot write the output: {exc.strerror}")
            return EXIT_ERROR
        if exc.filename is not None:  # a file the command opened: the system's reason is the answer
            print_message(f"{exc.filename}: {exc.strerror}")
            return EXIT_ERROR
        if os.environ.get("TESSERA_DEBUG"):
            raise
        print_message(f"internal error: {type(exc).__name__}: {exc} (set TESSERA_DEBUG=1 for the traceback)")
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if os.environ.get("TESSERA_DEBUG"):
            raise
        print_message(f"internal error: {type(exc).__name__}: {exc} (set TESSERA_DEBUG=1 for the traceback)")
        return 1


def _know_bundled_plugins() -> None:
    """Tell core where the bundled sources and cell types are, so finding one reads no installed
    metadata (plugins/bundled.py; a third party's are still found through their entry points)."""
    from tessera.core import entry_points
    from tessera.plugins.bundled import ENTRY_POINTS

    entry_points.know_own(ENTRY_POINTS)


def _run_app(args: list[str], completing: bool) -> int:
    """Parse ``args`` with the app (just the invoked command's, unless completing) and run it;
    typer's and click's own exits become exit codes here, the rest is main()'s to report."""
    from typer import exceptions as typer_exc
    from typer._click import exceptions as click_exc
    from typer.main import get_command

    name = None if completing else invoked_command(args)
    command = get_command(build_app([name]) if name else full_app())
    if completing:
        # Shell completion (completions/ scripts call us with this variable set).
        from tessera.cli.complete_shell import install_completion_classes

        install_completion_classes()
    gc.enable()  # off while the app was built (main); a command may turn it off again (query)
    try:
        rv = command.main(args=args, prog_name="tessera", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except typer_exc.Exit as exc:
        return exc.exit_code
    except typer_exc.Abort:
        return EXIT_INTERRUPTED
    except click_exc.NoArgsIsHelpError as exc:
        print(exc.format_message(), file=sys.stderr)  # our own help text, several lines
        return EXIT_USAGE
    except click_exc.ClickException as exc:
        print_message(exc.format_message())
        return exc.exit_code if exc.exit_code else EXIT_USAGE


def _discard_stdout() -> None:
    """Point descriptor 1 at /dev/null, so what is still buffered for stdout goes nowhere quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    if isinstance(sys.stdout, _ClosedStdout):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
