"""``tessera shell``: an interactive query REPL (prompt-toolkit), scriptable through stdin.

- repl.py: the Shell (state, backslash commands, macros, running statements, completion) and the
  script loop used when stdin is not a terminal; no terminal library.
- app.py: the prompt-toolkit front end (multi-line input, highlighting, completion, history).

Importing this package imports neither prompt_toolkit nor the query engine: ``run_shell`` loads
what the chosen mode needs.
"""

from __future__ import annotations

import sys
from typing import Any


def run_shell(*, interactive: bool | None = None, **options: Any) -> int:
    """Run the shell until ``\\q``, Ctrl-D or the end of stdin.

    Args:
        interactive: use the prompt (default: when stdin and stdout are terminals); otherwise
            read statements from stdin.
        options: Shell arguments (specs, contexts, kubeconfig, namespace, all_namespaces, out,
            dry_run, yes, read_only).
    Returns:
        the exit code: 0, or in script mode the code of the first failing statement.
    Raises:
        TesseraError when the shell cannot start (bad flags, a broken macro file in script mode).
    """
    from tessera.cli.shell.repl import Shell, run_script

    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if not interactive:
        if sys.stdin is None or sys.stdin.closed:  # started with <&-
            from tessera.core.errors import UsageError

            raise UsageError("stdin is closed, so there are no statements to read",
                             hint="run tessera shell in a terminal, or pipe statements in")
        shell = Shell(**options)
        try:
            return run_script(shell, sys.stdin)
        finally:
            shell.close()
    from tessera.cli.shell.prompt_ui import run_interactive

    return run_interactive(**options)
