"""The shell's state and behaviour, without a terminal library: what a submitted input does.

``Shell.execute(text)`` runs one submission — a backslash command, a macro call or one or more
``;``-separated statements — printing results on stdout and errors as one ``tessera: ...`` line
on stderr (with a caret for parse errors). It never raises a TesseraError, so the interactive
loop (cli/shell/prompt_ui.py) and the script loop (``run_script``) just go on or stop on its return
code. ``Shell.complete`` is the completion the prompt offers (core/completion.py plus the
backslash commands' arguments).
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Iterable, TextIO

from tessera.cli.options import FORMAT_NAMES, OutputSettings
from tessera.core.errors import EXIT_INTERRUPTED, TesseraError, UsageError

# name -> (argument, what it does); \h prints this table.
COMMANDS: dict[str, tuple[str, str]] = {
    "\\o": ("[FORMAT]", "output format: " + ", ".join(FORMAT_NAMES) + " (alone: show it)"),
    "\\n": ("[NAMESPACE]", "query only this namespace (alone: back to the source's default)"),
    "\\A": ("", "toggle all namespaces"),
    "\\c": ("[CONTEXT...]", "switch to these kube contexts, reopening the sources (alone: list contexts)"),
    "\\dr": ("", "toggle dry-run: mutations print their API calls instead of changing anything"),
    "\\m": ("[NAME]", "list the macros (with a name: show that one)"),
    "\\h": ("", "this help (also \\?)"),
    "\\q": ("", "quit (also Ctrl-D)"),
}
_ALIASES = {"\\?": "\\h", "\\help": "\\h", "\\quit": "\\q", "\\x": "\\q"}

HELP_KEYS = """\
Keys: Enter runs a statement that ends with ';' or parses as a whole (otherwise it starts a new
line); Alt-Enter or Esc Enter always runs; Tab completes keywords, kinds, fields (after var.),
variables and macros; Up/Down walk the history; Ctrl-R searches it; Ctrl-C clears the input;
Ctrl-D quits.
Macros: ':name args' runs a macro (\\m lists them; your own go in {macros_file})."""


class Shell:
    """One shell session: sources, scope, output format, dry-run flag, macros, completion caches.

    Args:
        specs: ``-s`` values (manifests, ``demo``, ``replay:...``).
        contexts: ``--context`` values (kube contexts).
        kubeconfig: ``--kubeconfig``.
        namespace / all_namespaces: the initial scope (``-n`` / ``-A``).
        out: output settings (``-o``, ``--color``, ``--limit``, ``-q``); ``out.output`` None
            means table on a terminal and jsonl otherwise.
        dry_run: start with dry-run on.
        yes: apply mutations without asking.
        read_only: refuse every write.
        ask: how to ask "Apply?" before a mutation (the interactive prompt passes its own);
            None: ask on a terminal only, as ``tessera query`` does.
        macros: name -> Macro (default: load_macros()).
    """

    def __init__(self, *, specs: list[str] | None = None, contexts: list[str] | None = None,
                 kubeconfig: str | None = None, namespace: str | None = None, all_namespaces: bool = False,
                 out: OutputSettings | None = None, dry_run: bool = False, yes: bool = False,
                 read_only: bool = False, ask: Callable[[str], bool] | None = None,
                 macros: dict[str, Any] | None = None):
        if "-" in (specs or []):
            raise UsageError("the shell reads statements from stdin, so stdin cannot be a source (-s -)",
                             hint="save the manifests to a file and pass -s FILE")
        self.specs = list(specs or [])
        self.contexts = list(contexts or [])
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.all_namespaces = all_namespaces
        self.out = out or OutputSettings()
        self.dry_run = dry_run
        self.yes = yes
        self.read_only = read_only
        self.ask = ask
        if macros is None:
            from tessera.core.macros import load_macros

            macros = load_macros()
        self.macros = macros
        self.done = False
        self._sources: list[Any] | None = None
        self._lock = threading.RLock()
        self._kinds: list[str] | None = None
        self._fields: dict[tuple[str, str], list[str]] = {}
        self._namespaces: list[str] | None = None

    # --- sources -------------------------------------------------------------------------

    @property
    def sources(self) -> list[Any]:
        """The open sources, opened on first use (so a failed open is retried by the next query)."""
        with self._lock:  # the completer runs in its own thread and may get here first
            if self._sources is None:
                from tessera.core import api

                self._sources = api.open_sources(self.specs, contexts=self.contexts, kubeconfig=self.kubeconfig)
            return self._sources

    def _reset_caches(self) -> None:
        self._kinds = None
        self._fields = {}
        self._namespaces = None

    def close(self) -> None:
        """Close the open sources (watch streams, HTTP pools)."""
        for source in self._sources or []:
            closer = getattr(source, "close", None)
            if closer is not None:
                try:
                    closer()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
        self._sources = None

    def prompt(self) -> str:
        """``tessera(CONTEXT|NAMESPACE)> ``: the sources' names and the namespace scope."""
        if self._sources is not None:
            where = ",".join(s.name for s in self._sources)
            default = next((getattr(s, "default_namespace", None) for s in self._sources), None)
        else:
            where = ",".join(self.specs + self.contexts) or "?"
            default = None
        scope = "all" if self.all_namespaces else (self.namespace or default or "all")
        return f"tessera({where}|{scope})> "

    # --- running input -------------------------------------------------------------------

    def execute(self, text: str) -> int:
        """Run one submission: a backslash command, a macro call or statements.

        Args:
            text: what the user submitted.
        Returns:
            0, or the exit code of the error that stopped it (the error is already printed).
        """
        stripped = text.strip()
        if not stripped:
            return 0
        try:
            if stripped.startswith("\\"):
                self.command(stripped)
                return 0
            if stripped.startswith(":"):
                from tessera.core.macros import expand

                statements = expand(stripped, self.macros)
            else:
                from tessera.core.macros import split_statements

                statements = split_statements(text)
            for statement in statements:
                self.run_statement(statement)
            return 0
        except TesseraError as err:
            print_error(err)
            return err.exit_code
        except KeyboardInterrupt:
            print("tessera: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED

    def run_statement(self, text: str) -> None:
        """Run one query or mutation and print its rows in the current format.

        Raises:
            TesseraError from parsing, the sources or the mutation.
        """
        from tessera.core import api
        from tessera.core.query.parser import parse

        query = parse(text)  # a syntax error before any source is opened
        if query.is_mutation:
            from tessera.cli.mutate import run_mutation
            from tessera.core import config

            run_mutation(text, self.sources, self.out, dry_run=self.dry_run, yes=self.yes,
                         read_only=self.read_only or config.read_only(), run_options=self._scope(),
                         ask=self.ask)
            return
        from tessera.cli.options import emit

        fmt = self.out.format()
        result = api.run_query(text, self.sources, shape=api.shape_for_format(fmt), limit=self.out.limit,
                               **self._scope())
        emit(result, self.out)

    def _scope(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "all_namespaces": self.all_namespaces}

    # --- backslash commands --------------------------------------------------------------

    def command(self, text: str) -> None:
        """Run a backslash command (see COMMANDS).

        Raises:
            UsageError for an unknown command or a bad argument.
        """
        name, *args = text.split()
        name = _ALIASES.get(name, name)
        if name not in COMMANDS:
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=2, cutoff=0.5)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise UsageError(f"unknown command {name}", hint=hint + "\\h lists the commands")
        handler = getattr(self, "_cmd_" + name[1:].lower())
        handler(args)

    def _note(self, message: str) -> None:
        """Acknowledge a change of state on stderr (stdout carries only results and listings)."""
        if not self.out.quiet:
            from tessera.core.errors import printable

            print(printable(message), file=sys.stderr)  # it echoes arguments: \n NAME, \c CTX

    def _cmd_o(self, args: list[str]) -> None:
        if not args:
            print(self.out.format())
            return
        if len(args) > 1 or args[0] not in FORMAT_NAMES:
            raise UsageError(f"'{' '.join(args)}' is not a format", hint="choose from " + ", ".join(FORMAT_NAMES))
        self.out.output = args[0]
        self._note(f"output format: {args[0]}")

    def _cmd_n(self, args: list[str]) -> None:
        if len(args) > 1:
            raise UsageError("\\n takes one namespace", hint="\\n NAMESPACE, or \\n alone to clear it")
        self.namespace = args[0] if args else None
        if args:
            self.all_namespaces = False
        self._note(f"namespace: {self.namespace}" if args else "namespace: the source's default")

    def _cmd_a(self, args: list[str]) -> None:
        self._no_args("\\A", args)
        self.all_namespaces = not self.all_namespaces
        if self.all_namespaces:
            self.namespace = None
        self._note(f"all namespaces: {'on' if self.all_namespaces else 'off'}")

    def _cmd_dr(self, args: list[str]) -> None:
        self._no_args("\\dr", args)
        self.dry_run = not self.dry_run
        self._note(f"dry-run: {'on (mutations print their API calls)' if self.dry_run else 'off'}")

    def _cmd_q(self, args: list[str]) -> None:
        self.done = True

    def _cmd_h(self, args: list[str]) -> None:
        from tessera.core import config

        print("Commands:")
        for name, (arg, what) in COMMANDS.items():
            print(f"  {(name + ' ' + arg).strip():<18} {what}")
        print(HELP_KEYS.format(macros_file=config.macros_file()))

    def _cmd_m(self, args: list[str]) -> None:
        if args:
            macro = self.macros.get(args[0].lstrip(":"))
            if macro is None:
                from tessera.core.macros import expand

                expand(":" + args[0].lstrip(":"), self.macros)  # raises the unknown-macro error
                return
            print(f"{macro.usage()}{'  # ' + macro.doc if macro.doc else ''}  ({macro.origin})")
            for statement in macro.statements:
                print(statement.rstrip() + ";")
            return
        width = max((len(m.usage()) for m in self.macros.values()), default=0)
        for macro in self.macros.values():
            origin = "" if macro.origin == "built-in" else f"  ({macro.origin})"
            print(f"  {macro.usage():<{width}}  {macro.doc}{origin}".rstrip())

    def _cmd_c(self, args: list[str]) -> None:
        from tessera.plugins.sources.kubernetes import available_contexts

        names, current = available_contexts(self.kubeconfig)
        if not args:
            open_names = {s.name for s in self._sources or []}
            print("sources: " + (", ".join(sorted(open_names)) or ", ".join(self.specs + self.contexts) or "none open"))
            for name in names:
                mark = "*" if name == current else " "
                print(f"{mark} {name}")
            return
        wanted = [c for arg in args for c in arg.split(",") if c]
        unknown = [c for c in wanted if c not in names]
        if unknown:
            raise UsageError(f"no context named '{unknown[0]}'", hint=f"contexts: {', '.join(names) or 'none'}")
        from tessera.core import api

        fresh = api.open_sources([], contexts=wanted, kubeconfig=self.kubeconfig)
        self.close()
        self.specs, self.contexts, self._sources = [], wanted, fresh
        self._reset_caches()
        self._note(f"context: {', '.join(wanted)}")

    @staticmethod
    def _no_args(name: str, args: list[str]) -> None:
        if args:
            raise UsageError(f"{name} takes no argument")

    # --- completion ----------------------------------------------------------------------

    def complete(self, text: str, cursor: int) -> tuple[int, list[str]]:
        """Completions at the cursor: backslash commands and their arguments, else queries/macros.

        Returns:
            (start, candidates) as core.completion.complete does.
        """
        before = text[:cursor]
        lead = before.lstrip()
        if lead.startswith("\\"):
            parts = lead.split(" ")
            if len(parts) == 1:
                return cursor - len(lead), [c for c in [*COMMANDS, "\\?"] if c.startswith(lead) and c != lead]
            word = parts[-1]
            return cursor - len(word), [c for c in self._command_args(parts[0]) if c.lower().startswith(word.lower()) and c != word]
        from tessera.core.completion import complete

        return complete(text, cursor, kinds=self.kind_names(), fields=self.fields_for, macros=list(self.macros))

    def _command_args(self, name: str) -> Iterable[str]:
        name = _ALIASES.get(name, name)
        try:
            if name == "\\o":
                return FORMAT_NAMES
            if name == "\\m":
                return list(self.macros)
            if name == "\\c":
                from tessera.plugins.sources.kubernetes import available_contexts

                return available_contexts(self.kubeconfig)[0]
            if name == "\\n":
                return self.namespace_names()
        except TesseraError:
            return []
        return []

    def kind_names(self) -> list[str]:
        """Every Kind name the sources offer (discovery), cached until the sources change."""
        if self._kinds is None:
            from tessera.core import api

            try:
                self._kinds = sorted({row["kind"] for row in api.list_kinds(self.sources)})
            except TesseraError:
                return []  # not cached: the source may come back
        return self._kinds

    def fields_for(self, kind_name: str) -> list[str]:
        """Field paths of a kind (as written in a query), from up to 20 sampled objects; cached.

        Raises:
            TesseraError when the kind is unknown or the source cannot list it.
        """
        from tessera.core.completion import field_paths
        from tessera.core.kinds import KindRegistry

        source = self.sources[0]
        kind = KindRegistry(source.kinds()).resolve(kind_name)
        key = (source.name, f"{kind.group}/{kind.kind}")
        if key not in self._fields:
            scope = None if self.all_namespaces else (self.namespace or getattr(source, "default_namespace", None))
            objects = source.list(kind, namespace=scope if kind.namespaced else None)[:20]
            if not objects and scope is not None:
                objects = source.list(kind, namespace=None)[:20]  # nothing here: learn fields elsewhere
            self._fields[key] = field_paths(objects)
        return self._fields[key]

    def namespace_names(self) -> list[str]:
        """Namespace names of the first source, for ``\\n`` completion; cached."""
        if self._namespaces is None:
            from tessera.core.kinds import KindRegistry

            source = self.sources[0]
            kind = KindRegistry(source.kinds()).resolve("Namespace")
            self._namespaces = sorted(o["metadata"]["name"] for o in source.list(kind))
        return self._namespaces


def print_error(err: TesseraError) -> None:
    """Print an error as every command does: one ``tessera: ...`` line, a caret for parse errors."""
    from tessera.cli import main

    main.print_error(err)


def run_script(shell: Shell, stream: TextIO) -> int:
    """Run statements read from a stream (stdin when it is not a terminal), as if typed.

    Each line is like pressing Enter: a backslash command or macro call on its own line runs at
    once; statement lines gather until they end with ``;`` or parse as a whole query; a blank
    line runs what has gathered; so does the end of the input.

    Args:
        shell: the Shell.
        stream: the input.
    Returns:
        0, or the exit code of the first submission that failed (nothing after it runs).
    """
    from tessera.core.completion import is_complete

    pending: list[str] = []

    def submit() -> int:
        text = "".join(pending)
        pending.clear()
        return shell.execute(text)

    for line in stream:
        blank = not line.strip()
        if blank and not pending:
            continue
        if blank:
            code = submit()
        elif not pending and line.lstrip().startswith(("\\", ":")):
            pending.append(line)
            code = submit()
        else:
            pending.append(line if line.endswith("\n") else line + "\n")
            code = submit() if is_complete("".join(pending)) else 0
        if code or shell.done:
            return code
    return submit() if pending and any(p.strip() for p in pending) else 0
