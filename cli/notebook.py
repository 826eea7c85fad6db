"""``tessera notebook ...`` and ``tessera cell ...``: notebooks of query, markdown, sql and events
cells kept in the store (tessera.core.notebook). Addresses are NAME or NAME/N (the N-th cell)."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Optional

import typer

from tessera.cli import completers
from tessera.cli.options import OutputSettings, SourceFlags, emit, output_options, read_text, source_options
from tessera.cli.remote_notebook import RunOption

_SETTINGS = dict(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                 context_settings={"help_option_names": ["-h", "--help"]})
notebook_app = typer.Typer(name="notebook", help="Notebooks: create, list, show, run, import and export them.", **_SETTINGS)
cell_app = typer.Typer(name="cell", help="Cells of a notebook: add, edit, remove, move, set attributes, split and merge rows.",
                       **_SETTINGS)

NotebookArg = Annotated[str, typer.Argument(metavar="NOTEBOOK", help="A notebook name.", show_default=False,
                                            autocompletion=completers.notebooks)]
AddressArg = Annotated[str, typer.Argument(metavar="NOTEBOOK[/N]", help="A notebook, or its N-th cell.", show_default=False,
                                           autocompletion=completers.notebooks_and_cells)]
CellArg = Annotated[str, typer.Argument(metavar="NOTEBOOK/N", help="The N-th cell of a notebook (reading order, from 1).",
                                        show_default=False, autocompletion=completers.cells)]
TextArg = Annotated[Optional[str], typer.Argument(metavar="TEXT", help="The cell's source text.", show_default=False)]
TextFile = Annotated[Optional[str], typer.Option("--file", "-f", metavar="FILE", help="Read the source from FILE ('-' for stdin).",
                                                 show_default=False)]
CellSources = Annotated[Optional[list[str]], typer.Option(
    "--source", "-s", metavar="SOURCE", show_default=False,
    help="A source the cell queries (as tessera query -s: file, directory, demo, replay:FILE, local, peer:NAME, peers). Repeatable.")]
TypeOpt = Annotated[Optional[str], typer.Option("--type", "-t", metavar="TYPE", show_default=False,
                                                autocompletion=completers.cell_types,
                                                help="Cell type: query (default), markdown, sql, events, search, or a plugin's.")]
ViewOpt = Annotated[Optional[str], typer.Option("--view", metavar="VIEW", show_default=False,
                                                autocompletion=completers.views,
                                                help="How the cell shows its rows: table, json, yaml, tree or graph.")]
RefreshOpt = Annotated[Optional[str], typer.Option("--refresh", metavar="POLICY", show_default=False,
                                                   autocompletion=completers.refresh_policies,
                                                   help="manual, watch, or every:N (N seconds).")]
TitleOpt = Annotated[Optional[str], typer.Option("--title", metavar="TEXT", help="A title.", show_default=False)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first (a terminal asks by default).")]


def _conn() -> Any:
    from tessera.core.store.db import connect

    return connect(on_wait=_note)


def _note(message: str) -> None:
    from tessera.cli.messages import print_message

    print_message(message)


# --- notebook -----------------------------------------------------------------------------------


@notebook_app.command("new")
def new(name: NotebookArg, title: TitleOpt = None) -> None:
    """Create an empty notebook.

    Example: tessera notebook new ops --title "Operations"
    """
    from tessera.core.notebook import repository

    repository.create(_conn(), name, title or "")
    _note(f"created notebook {name}")


PeersFlag = Annotated[bool, typer.Option("--peers", help="Also list each peer's notebooks (from their replicas), "
                                                  "with a leading source column: local or the peer's name.")]


@notebook_app.command("list")
@output_options
def list_(peers: PeersFlag = False, *, out: OutputSettings) -> None:
    """List the notebooks: name, title, cells, rows, last change (--peers: peers' too).

    Example: tessera notebook list --peers
    """
    from tessera.core.notebook import repository
    from tessera.core.result import Result

    columns = ["name", "title", "cells", "rows", "updated"]
    rows = [{k: r[k] for k in columns} for r in repository.list_notebooks(_conn())]
    if peers:
        from tessera.core.peers.replica_reading import LOCAL, open_all

        rows = [{"source": LOCAL, **r} for r in rows]
        for replica in open_all():
            try:
                rows += [{"source": replica.label, **{k: r[k] for k in columns}}
                         for r in repository.list_notebooks(replica.conn)]
            finally:
                replica.conn.close()
        columns = ["source", *columns]
    emit(Result(columns=columns, rows=rows), out)


def _load(addr: Any) -> Any:
    """The notebook an address names: this node's, or (``PEER:NAME``) a peer's from its replica."""
    from tessera.core.notebook import repository

    if addr.peer is None:
        return repository.load(_conn(), addr.name)
    from tessera.core.errors import QueryError, SourceUnavailable
    from tessera.core.peers.replica_reading import open_peer

    try:
        replica = open_peer(addr.peer)
        try:
            nb = repository.load(replica.conn, addr.name)
        finally:
            replica.conn.close()
    except (SourceUnavailable, QueryError):
        # Not synced here (yet): a notebook shared live is read from its owner's node instead.
        from tessera.cli.remote_notebook import fetch_notebook

        nb = fetch_notebook(addr)
        if nb is None:
            raise
        return nb
    nb.owner = replica.label  # type: ignore[attr-defined]
    return nb


@notebook_app.command("show")
@output_options
def show(address: AddressArg, *, out: OutputSettings) -> None:
    """Show a notebook's cells (or one cell): number, row, id, type, view, refresh, title, first line.

    -o json (or yaml) prints the whole document: title, rows, cells with their full source.
    PEER:NOTEBOOK[/N] shows a peer's notebook from its replica (read-only), e.g. alice:ops;
    without a replica of it, as the peer's node has it now (a notebook shared live).
    Who has the notebook open now (here, and at peers' nodes; for a peer's notebook, asked of
    its node) is listed after the title line (-o json: "people").
    """
    import json

    from tessera.core.errors import printable

    from tessera.core.notebook import repository
    from tessera.core.result import Result

    addr = repository.parse_address(address, peer=True)
    nb = _load(addr)
    owner = getattr(nb, "owner", None)
    shown = nb.name if owner is None else f"{owner}:{nb.name}"
    fmt = out.format()
    people = _people_in(addr, nb)
    if fmt in ("json", "yaml"):
        data = nb.cell(addr.cell) if addr.cell else {"name": nb.name, **nb.to_dict(), "people": people}
        if owner is not None:
            data = {"source": owner, **data}
        if fmt == "json":
            print(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            import yaml

            print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
        return
    cells = nb.cells()
    if addr.cell:
        nb.cell(addr.cell)
        cells = [cells[addr.cell - 1]]
    rows = [{"cell": f"{shown}/{c['number']}", "row": c["row"], "id": c["id"], "type": c["type"], "view": c["view"],
             "refresh": c["refresh"], "title": c["title"], "sources": ",".join(c["sources"]),
             "source": c["source"] if fmt != "table" else (c["source"].split("\n")[0] + (" …" if "\n" in c["source"] else ""))}
            for c in cells]
    if fmt == "table" and not out.quiet:
        rows_n = len(nb.layout())
        print(f"{shown}: {printable(nb.title) or '(no title)'} ({len(nb)} cell{'s' if len(nb) != 1 else ''}"
              f" in {rows_n} row{'s' if rows_n != 1 else ''})")
        if people:
            print("connected: " + ", ".join(_person(p, nb) for p in people))
    emit(Result(columns=["cell", "row", "id", "type", "view", "refresh", "title", "sources", "source"], rows=rows), out)


def _people_in(addr: Any, nb: Any) -> list[dict]:
    """Who has the notebook open now: [{name, node, cell, where}] (where: local = at this
    node, peer = at a peer's). A peer's notebook: asked of its node (collab probe_people);
    unreachable, it is said on stderr and the list is empty."""
    if addr.peer is None:
        from tessera.core.collab import presence

        found = presence.present(_conn(), nb.id)
    else:
        from tessera.core import config
        from tessera.core.collab.client import probe_people
        from tessera.core.errors import TesseraError

        try:
            found = probe_people(str(config.database_path()), addr.peer, addr.name, timeout=5.0)
        except TesseraError as err:
            _note(f"who is in {addr.peer}:{addr.name} is unknown: {err.one_line()}")
            return []
    return [{k: p.get(k) for k in ("name", "node", "cell", "where")} for p in found]


def _person(person: dict, nb: Any) -> str:
    """``bob (cell 2, at a peer)``."""
    from tessera.core.errors import printable

    where = [] if person.get("where") != "peer" else ["at a peer"]
    if person.get("cell") in nb.ids():
        where.insert(0, f"cell {nb.number_of(person['cell'])}")
    return printable(person.get("name") or "?") + (f" ({', '.join(where)})" if where else "")


@notebook_app.command("rm")
def rm(name: NotebookArg, yes: Yes = False) -> None:
    """Remove a notebook (its updates and stored results; its events stay in the log)."""
    from tessera.core.errors import TesseraError
    from tessera.core.notebook import repository

    conn = _conn()
    addr = repository.parse_address(name, cell=False)
    nb = repository.load(conn, addr.name)
    if not yes and sys.stdin.isatty() and sys.stderr.isatty():
        if not typer.confirm(f"Remove notebook {nb.name} ({len(nb)} cells)?", default=False, err=True):
            raise TesseraError("cancelled: nothing was removed")
    repository.remove(conn, addr.name)
    _note(f"removed notebook {addr.name}")


@notebook_app.command("rename")
def rename(old: NotebookArg, new: Annotated[str, typer.Argument(metavar="NEW", help="The new name.")]) -> None:
    """Rename a notebook (its history and results follow it)."""
    from tessera.core.notebook import repository

    repository.rename(_conn(), repository.parse_address(old, cell=False).name, new)
    _note(f"renamed notebook {old} to {new}")


@notebook_app.command("title")
def title(name: NotebookArg, text: Annotated[str, typer.Argument(metavar="TITLE", help="The new title.")]) -> None:
    """Set a notebook's title."""
    from tessera.core.notebook import repository

    if not repository.set_title(_conn(), repository.parse_address(name, cell=False).name, text):
        _note("no change")


@notebook_app.command("history")
@output_options
def history(name: NotebookArg, *, out: OutputSettings) -> None:
    """The notebook's changes from the event log, oldest first (renames included), each with who
    made it (by: the node's name; data.by holds its node id too)."""
    from tessera.core.notebook import repository
    from tessera.core.result import Result

    found = repository.history(_conn(), repository.parse_address(name, cell=False).name)
    rows = []
    for e in found:
        data = {k: v for k, v in e.data.items() if k not in ("notebook", "notebook_id")}
        by = data.get("by")
        rows.append({"seq": e.seq, "time": e.time, "action": e.subject.rsplit(".", 1)[-1],
                     "by": by.get("name", "") if isinstance(by, dict) else "", "subject": e.subject,
                     "correlation": e.correlation, "data": data})
    emit(Result(columns=["seq", "time", "action", "by", "subject", "correlation", "data"], rows=rows), out)


@notebook_app.command("run")
@output_options
@source_options(playback=True)
def run(
    address: AddressArg,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep the cells current by their refresh policy and print row changes as JSONL.")] = False,
    run_at: RunOption = None,
    *,
    src: SourceFlags,
    out: OutputSettings,
) -> None:
    """Run a notebook's cells (or cell N) once and print their rows, each with its cell id.

    With --watch, cells keep running by their refresh policy (watch: on every change of what
    they read; every:N: every N seconds) and each row change is printed as a JSON line
    {"cell", "op", "key", "row", "ts"}, starting with every current row of each cell as
    "added" (as query --watch starts); the changes are also recorded as events. --speed and
    --loop set how replay: sources play, as for dash and pane.

    Query cells without sources of their own use -s / --context (default: the current kube
    context). When a cell's rows differ from its previous run, the event
    query.<notebook>.<cell id>.changed records the row changes.

    PEER:NOTEBOOK runs a peer's notebook live over a connection to its `tessera serve`: at the
    owner by default (--run owner: no kubeconfig needed here), or here (--run local); nothing is
    recorded in this node's store.
    Example: tessera notebook run ops -o jsonl
    """
    from tessera.cli.remote_notebook import check_run
    from tessera.core.errors import TesseraError
    from tessera.core.notebook import repository
    from tessera.core.notebook.cells import CellContext, run_notebook

    addr = repository.parse_address(address, peer=True)
    where = check_run(run_at, addr.peer)
    failures: list[tuple[str, TesseraError]] = []
    if addr.peer is not None:
        _run_remote(addr, where, watch, src, out, failures)
        return
    conn = _conn()
    ctx = CellContext(conn, default_sources=src.specs, contexts=src.contexts, kubeconfig=src.kubeconfig,
                      namespace=src.namespace, all_namespaces=src.all_namespaces, stdin=sys.stdin, speed=src.speed,
                      loop=src.loop)
    failed = _failure_note(addr.name, failures)
    if watch:
        _watch(conn, addr, ctx, failed)
        return
    runs = run_notebook(conn, addr.name, addr.cell, context=ctx, on_error=failed)
    _print_runs(addr.name, runs, out, failures)


def _failure_note(shown: str, failures: list) -> Any:
    """The on_error of a run: each failing cell noted on stderr and kept for the exit code."""
    def failed(cell: dict, err: Any) -> None:
        where = f"{shown}/{cell['number']} ({cell['id']})"
        failures.append((where, err))
        _note(f"{where}: {err.one_line()}")

    return failed


def _run_remote(addr: Any, where: str, watch: bool, src: SourceFlags, out: OutputSettings, failures: list) -> None:
    """``notebook run PEER:NOTEBOOK``: once, or --watch, over a live connection to the owner."""
    import threading

    from tessera.cli import remote_notebook
    from tessera.core.notebook.session import SessionOptions

    if "-" in src.specs:
        from tessera.core.errors import UsageError

        raise UsageError("a peer's notebook cannot read stdin ('-s -')", hint="save the input to a file and use -s FILE")
    options = SessionOptions(default_sources=src.specs, contexts=src.contexts, kubeconfig=src.kubeconfig,
                             namespace=src.namespace, all_namespaces=src.all_namespaces, speed=src.speed, loop=src.loop)
    shown = f"{addr.peer}:{addr.name}"
    failed = _failure_note(shown, failures)
    if watch:
        remote_notebook.watch(addr, where, options, on_changes=_print_changes, on_error=failed,
                              stop=threading.Event())
        return
    runs, failing = remote_notebook.run_once(addr, where, options)
    for cell, err in failing:
        failed(cell, err)
    _print_runs(shown, runs, out, failures)


def _print_changes(cell: dict, changes: list[dict]) -> None:
    """--watch's output: one JSON line per row change, with its cell id."""
    import orjson

    write = sys.stdout.buffer.write
    for change in changes:
        write(orjson.dumps({"cell": cell["id"], **change}, option=orjson.OPT_NON_STR_KEYS) + b"\n")
    sys.stdout.flush()


def _print_runs(name: str, runs: list, out: OutputSettings, failures: list) -> None:
    """Print each cell's rows as -o asks (one section per cell on a terminal)."""
    from tessera.core.result import Result

    fmt = out.format()
    if out.output is None and fmt == "table" or fmt in ("table", "tree", "graph", "dot", "mermaid", "cyphernetes"):
        for r in runs:
            print(f"── {name}/{r.cell['number']} {r.cell['title'] or r.cell['type']} ({r.cell['id']})")
            view = r.cell["view"] if out.output is None else fmt
            sub = OutputSettings(view, out.color, out.limit, out.quiet)
            emit(r.result, sub)
    elif fmt in ("jsonl", "csv"):
        # one Result per cell (JSONL lines carry only their cell's columns); csv needs one header
        results = [_with_cell(r, out.limit) for r in runs]
        if fmt == "csv":
            columns = [c for res in results for c in res.columns]
            results = [Result(columns=list(dict.fromkeys(columns)), rows=[row for res in results for row in res.rows],
                              warnings=[w for res in results for w in res.warnings])]
        for res in results:
            emit(res, OutputSettings(fmt, out.color, None, out.quiet))
    else:  # json, yaml: one document holding every row
        from tessera.core.render.data import plain

        results = [_with_cell(r, out.limit) for r in runs]
        rows = plain([row for res in results for row in res.rows])
        if fmt == "json":
            import json

            print(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
        else:
            import yaml

            yaml.safe_dump(rows, sys.stdout, sort_keys=False, allow_unicode=True, default_flow_style=False)
        if not out.quiet:
            for res in results:
                for warning in res.warnings:
                    _note(f"warning: {warning}")
    if failures:
        raise _cells_failed(failures, total=len(runs) + len(failures))


def _cells_failed(failures: list[tuple[str, Any]], *, total: int) -> Exception:
    """The summary error of a run with failing cells: a message naming the first failure and
    that failure's exit code. A plain TesseraError carries it, since error classes take
    different arguments (a ParseError needs its position)."""
    from tessera.core.errors import TesseraError

    where, err = failures[0]
    # str(err): the message; a ParseError's includes its line and column
    summary = TesseraError(f"{len(failures)} of {total} cells failed; first: {where}: {err}", hint=err.hint)
    summary.exit_code = err.exit_code
    return summary


def _watch(conn, addr, ctx, failed) -> None:
    """``notebook run --watch``: JSONL row changes, each with its cell id, until interrupted."""
    import threading

    from tessera.core.notebook.session import watch_notebook
    from tessera.core.watch.cache import shared_hub

    hub = shared_hub()

    def fault(cell: dict, notice: str | None) -> None:
        where = f"{addr.name}/{cell['number']} ({cell['id']})"
        _note(f"warning: {where}: {notice}" if notice else f"{where}: reconnected; rows are current")

    try:
        watch_notebook(conn, addr.name, ctx, hub=hub, stop=threading.Event(), number=addr.cell,
                       on_changes=_print_changes, on_error=failed, on_fault=fault)
    finally:
        hub.close()


def _with_cell(run: Any, limit: int | None) -> Any:
    from tessera.core.result import Result

    columns = ["cell"] + [c for c in run.result.columns if c != "cell"]
    rows = [{"cell": run.cell["id"], **{c: row.get(c) for c in run.result.columns}} for row in run.result.rows[:limit]]
    return Result(columns=columns, rows=rows, warnings=list(run.result.warnings))


@notebook_app.command("import")
def import_(
    file: Annotated[str, typer.Argument(metavar="FILE", help="A .ipynb or .md file ('-' for stdin, with --format and --name).")],
    name: Annotated[Optional[str], typer.Option("--name", metavar="NAME", help="The notebook's name (default: the file name).",
                                                show_default=False)] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", "-F", metavar="FORMAT", show_default=False,
                                               autocompletion=completers.notebook_formats,
                                               help="ipynb or markdown (default: from the file's extension).")] = None,
) -> None:
    """Create a notebook from a Jupyter notebook (.ipynb) or the fenced markdown format (.md)."""
    import re
    from pathlib import Path

    from tessera.core.errors import UsageError
    from tessera.core.notebook import repository

    fmt = _format(fmt, file)
    if name is None:
        if file == "-":
            raise UsageError("importing from stdin needs --name")
        name = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(file).stem).strip("-_") or "notebook"
    repository.check_name(name)
    text = read_text(None, file)
    warnings: list[str] = []
    if fmt == "ipynb":
        from tessera.core.notebook.ipynb import import_ipynb

        nb = import_ipynb(text, name=name, where=file, warnings=warnings)
    else:
        from tessera.core.notebook.markdown import import_markdown

        nb = import_markdown(text, name=name, where=file)
    repository.create(_conn(), name, notebook=nb, action="imported", details={"format": fmt, "file": file})
    for warning in warnings:
        _note(f"warning: {warning}")
    _note(f"imported {file} as notebook {name} ({len(nb)} cells)")


@notebook_app.command("export")
def export(
    name: NotebookArg,
    file: Annotated[Optional[str], typer.Argument(metavar="[FILE]", help="Where to write (default: stdout).",
                                                  show_default=False)] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", "-F", metavar="FORMAT", show_default=False,
                                               autocompletion=completers.notebook_formats,
                                               help="ipynb or markdown (default: from FILE's extension, else markdown).")] = None,
) -> None:
    """Write a notebook as .ipynb (nbformat 4) or fenced markdown; both import back unchanged.

    PEER:NOTEBOOK writes a peer's notebook from its replica (e.g. to import a copy of your own).
    """
    from tessera.core.errors import UsageError
    from tessera.core.notebook import repository

    fmt = _format(fmt, file or "-", default="markdown")
    nb = _load(repository.parse_address(name, cell=False, peer=True))
    if fmt == "ipynb":
        from tessera.core.notebook.ipynb import export_ipynb

        text = export_ipynb(nb)
    else:
        from tessera.core.notebook.markdown import export_markdown

        text = export_markdown(nb)
    if file is None or file == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        from tessera.core.private_files import open_private

        with open_private(file, "w", encoding="utf-8", newline="") as fh:  # cell results are cluster data
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {file}: {exc.strerror}") from None


def _format(fmt: str | None, file: str, default: str | None = None) -> str:
    from tessera.core.errors import UsageError

    aliases = {"ipynb": "ipynb", "jupyter": "ipynb", "markdown": "markdown", "md": "markdown"}
    if fmt is not None:
        if fmt not in aliases:
            raise UsageError(f"'{fmt}' is not a notebook format; choose ipynb or markdown")
        return aliases[fmt]
    lower = file.lower()
    if lower.endswith(".ipynb"):
        return "ipynb"
    if lower.endswith((".md", ".markdown")):
        return "markdown"
    if default:
        return default
    raise UsageError(f"cannot tell the format of '{file}'", hint="use --format ipynb or --format markdown")


# --- cell ---------------------------------------------------------------------------------------


@cell_app.command("add")
def add(
    name: NotebookArg,
    text: TextArg = None,
    file: TextFile = None,
    type: TypeOpt = None,
    view: ViewOpt = None,
    refresh: RefreshOpt = None,
    source: CellSources = None,
    title: TitleOpt = None,
    after: Annotated[Optional[int], typer.Option("--after", metavar="N", min=0, show_default=False,
                                                 help="Put the new row after the row holding cell N (0: first).")] = None,
) -> None:
    """Add a cell in a row of its own (at the end, or --after N); prints its address NOTEBOOK/N.

    Example: tessera cell add ops -s demo --title Pods 'MATCH (p:Pod) RETURN p.metadata.name'
    """
    from tessera.core.notebook import repository

    addr = repository.parse_address(name, cell=False)
    attrs: dict[str, Any] = {"type": type or "query", "view": view or "table", "refresh": refresh or "manual",
                             "sources": source or [], "title": title or ""}
    cid, number = repository.add_cell(_conn(), addr.name, read_text(text, file) or "", after=after, **attrs)
    print(f"{addr.name}/{number}")
    _note(f"added cell {addr.name}/{number} ({cid})")


@cell_app.command("edit")
def edit(address: CellArg, text: TextArg = None, file: TextFile = None) -> None:
    """Replace a cell's source with TEXT (or -f FILE); without either, open $VISUAL / $EDITOR on it."""
    from tessera.core.notebook import repository

    addr = repository.parse_address(address, cell=True)
    conn = _conn()
    new_text = read_text(text, file)
    if new_text is not None:
        changed = repository.edit_cell(conn, addr.name, addr.cell, new_text)  # type: ignore[arg-type]
    else:
        base = repository.load(conn, addr.name)
        cell = base.cell(addr.cell)  # type: ignore[arg-type]
        edited = _edit_in_editor(cell["source"], cell["type"])
        changed = repository.edit_cell(conn, addr.name, addr.cell, edited, base=base)  # type: ignore[arg-type]
    _note(f"edited {addr}" if changed else "no change")


def _edit_in_editor(text: str, kind: str) -> str:
    """Open the editor on ``text`` in a temporary file; the file's content when it exits.

    The file gets a final newline (editors add one); one final newline is taken off again.
    """
    import shlex
    import subprocess
    import tempfile

    from tessera.core.errors import UsageError

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    suffix = {"query": ".cypher", "sql": ".sql", "markdown": ".md"}.get(kind, ".txt")
    fd, path = tempfile.mkstemp(prefix="tessera-cell-", suffix=suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text + "\n")
        try:
            proc = subprocess.run([*shlex.split(editor), path])
        except OSError as exc:
            raise UsageError(f"cannot start the editor '{editor}': {exc.strerror}", hint="set $EDITOR") from None
        if proc.returncode != 0:
            raise UsageError(f"the editor exited with status {proc.returncode}; nothing was changed")
        with open(path, encoding="utf-8", newline="") as fh:
            out = fh.read()
    finally:
        os.unlink(path)
    return out[:-1] if out.endswith("\n") else out


@cell_app.command("rm")
def rm_cell(address: CellArg) -> None:
    """Remove a cell (a row of 4 left with 3 becomes a row of 2 and a row of 1)."""
    from tessera.core.notebook import repository

    addr = repository.parse_address(address, cell=True)
    gone = repository.remove_cell(_conn(), addr.name, addr.cell)  # type: ignore[arg-type]
    _note(f"removed cell {addr} ({gone['id']})")


@cell_app.command("move")
def move(address: CellArg, to: Annotated[int, typer.Argument(metavar="TO", help="The position to move it to (from 1).")]) -> None:
    """Move a cell to position TO in reading order; rows keep their sizes, cells between shift by one."""
    from tessera.core.notebook import repository

    addr = repository.parse_address(address, cell=True)
    if repository.move_cell(_conn(), addr.name, addr.cell, to):  # type: ignore[arg-type]
        _note(f"moved {addr} to {addr.name}/{to}")
    else:
        _note("no change")


@cell_app.command("set")
def set_(
    address: CellArg,
    type: TypeOpt = None,
    view: ViewOpt = None,
    refresh: RefreshOpt = None,
    source: CellSources = None,
    no_sources: Annotated[bool, typer.Option("--no-sources", help="Clear the cell's sources (use the run's defaults).")] = False,
    title: TitleOpt = None,
) -> None:
    """Set a cell's attributes: --type, --view, --refresh, -s (replaces the sources), --title.

    Example: tessera cell set ops/2 --view graph --refresh every:30
    """
    from tessera.core.errors import UsageError
    from tessera.core.notebook import repository

    addr = repository.parse_address(address, cell=True)
    attrs: dict[str, Any] = {k: v for k, v in (("type", type), ("view", view), ("refresh", refresh), ("title", title))
                             if v is not None}
    if source and no_sources:
        raise UsageError("-s and --no-sources cannot be used together")
    if source:
        attrs["sources"] = source
    if no_sources:
        attrs["sources"] = []
    if not attrs:
        raise UsageError("nothing to set", hint="give --type, --view, --refresh, -s, --no-sources or --title")
    changes = repository.set_cell(_conn(), addr.name, addr.cell, **attrs)  # type: ignore[arg-type]
    _note(f"set {', '.join(changes)} of {addr}" if changes else "no change")


@cell_app.command("split")
def split(address: CellArg) -> None:
    """Split the row holding cell N: a row of 2 becomes two rows of 1, a row of 4 two rows of 2."""
    from tessera.core.notebook import repository

    addr = repository.parse_address(address, cell=True)
    done = repository.split_row(_conn(), addr.name, addr.cell)  # type: ignore[arg-type]
    _note(f"split row {done['row']} of {addr.name}")


@cell_app.command("merge")
def merge(address: CellArg) -> None:
    """Merge the row holding cell N with the next row: 1 + 1 makes a row of 2, 2 + 2 a row of 4."""
    from tessera.core.notebook import repository

    addr = repository.parse_address(address, cell=True)
    done = repository.merge_rows(_conn(), addr.name, addr.cell)  # type: ignore[arg-type]
    _note(f"merged rows {done['row']} and {done['row'] + 1} of {addr.name}")


def register(app: typer.Typer) -> None:
    """Add the notebook and cell command groups to ``app``."""
    app.add_typer(notebook_app, name="notebook")
    app.add_typer(cell_app, name="cell")
