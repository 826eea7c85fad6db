"""The ``tessera`` (alias ``tsr``) command: a typer app whose commands are thin shells over
tessera.core.api. ``run`` turns every error into one ``tessera: ...`` line on stderr and a typed
exit code (see tessera.core.errors), never a traceback.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import Annotated, Any, Optional

import typer

from tessera.cli import dash as dash_cmd
from tessera.cli import events as events_cmd
from tessera.cli import info as info_cmd
from tessera.cli import kinds as kinds_cmd
from tessera.cli import notebook as notebook_cmd
from tessera.cli import pane as pane_cmd
from tessera.cli import query as query_cmd
from tessera.cli import record as record_cmd
from tessera.cli.shell import command as shell_command
from tessera.cli import tmux as tmux_cmd
from tessera.cli.messages import print_error, print_message
from tessera.cli.options import ShowSecrets
from tessera.core.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, TesseraError

app = typer.Typer(
    name="tessera",
    help="Live graph queries over Kubernetes clusters and manifests, in a Cypher dialect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"tessera {version('tessera')}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    correlation: Annotated[
        Optional[str],
        typer.Option("--correlation", metavar="ID", show_default=False,
                     help="Correlation id carried by every event this command writes (default: a new one per command)."),
    ] = None,
    show_secrets: ShowSecrets = False,
) -> None:
    """Live graph queries over Kubernetes clusters and manifests, in a Cypher dialect."""
    if correlation is not None:
        from tessera.core.events import set_correlation

        set_correlation(correlation)


query_cmd.register(app)
kinds_cmd.register(app)
info_cmd.register(app)
record_cmd.register(app)
notebook_cmd.register(app)
events_cmd.register(app)
dash_cmd.register(app)
pane_cmd.register(app)
tmux_cmd.register(app)
shell_command.register(app)


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
    from typer import exceptions as typer_exc
    from typer._click import exceptions as click_exc
    from typer.main import get_command

    _guard_standard_streams()
    command = get_command(app)
    if os.environ.get("_TESSERA_COMPLETE"):
        # Shell completion (completions/ scripts call us with this variable set).
        from tessera.cli.complete_shell import install_completion_classes

        install_completion_classes()
    try:
        rv = command.main(args=argv, prog_name="tessera", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except TesseraError as err:
        print_error(err)
        return err.exit_code
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
