"""``tessera shell``: the interactive query shell (cli/shell/); prompt_toolkit loads only when it runs."""

from __future__ import annotations

from typing import Annotated

import typer

from tessera.cli.options import OutputSettings, ReadOnlyFlag, SourceFlags, output_options, source_options

DryRun = Annotated[bool, typer.Option("--dry-run", help="Start with dry-run on: mutations print their API calls (\\dr toggles it).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Apply mutations without asking.")]


@output_options
@source_options
def shell(
    dry_run: DryRun = False,
    yes: Yes = False,
    read_only: ReadOnlyFlag = False,
    *,
    src: SourceFlags,
    out: OutputSettings,
) -> None:
    """Interactive query shell: highlighting, completion, history, macros, backslash commands.

    When stdin or stdout is not a terminal, runs the statements read from stdin and exits (0, or
    the exit code of the first failing statement). See docs/shell.md. Example: tessera shell -s demo
    """
    from tessera.cli.shell import run_shell

    code = run_shell(specs=src.specs, contexts=src.contexts, kubeconfig=src.kubeconfig, namespace=src.namespace,
                     all_namespaces=src.all_namespaces, out=out, dry_run=dry_run, yes=yes, read_only=read_only)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the shell command to ``app``."""
    app.command("shell")(shell)
