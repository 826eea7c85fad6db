"""Values for shell tab completion of the CLI's options and arguments (the completions/ scripts
ask ``tessera``/``tsr`` with ``_TESSERA_COMPLETE`` set; typer calls these with the word typed so
far). Not to be confused with tessera.core.completion, which completes query text.

Each completer returns ``(value, help)`` pairs; typer keeps those starting with the word typed.
A tab press must be quick and quiet, so completers read only what they need (the kubeconfig with
PyYAML, the store read-only and without migrating, one notebook at a time), never open a cluster
connection, and answer nothing rather than print an error: a broken kubeconfig or store is
reported by the command itself when it runs.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

# Loading a notebook costs about a millisecond; past this many, cell addresses are offered only
# for the notebook being typed (NAME/...), so a store of hundreds stays quick to complete.
MAX_NOTEBOOKS_EXPANDED = 20
HELP_WIDTH = 60

Pairs = list[tuple[str, str]]


def _quiet(fn: Callable[..., Pairs]) -> Callable[..., Pairs]:
    """Answer no values instead of raising (TESSERA_DEBUG=1 shows the error)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Pairs:
        try:
            return fn(*args, **kwargs)
        except Exception:
            if os.environ.get("TESSERA_DEBUG"):
                raise
            return []

    return wrapper


def _short(text: str) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= HELP_WIDTH else line[: HELP_WIDTH - 1] + "…"


# --- fixed choices ----------------------------------------------------------------------------


def output_formats(incomplete: str) -> Pairs:
    """``-o/--output``: the output formats."""
    from tessera.cli.options import FORMAT_NAMES

    return [(name, "") for name in FORMAT_NAMES]


def color_modes(incomplete: str) -> Pairs:
    """``--color``: auto, always, never."""
    return [("auto", "on a terminal, unless NO_COLOR is set"), ("always", ""), ("never", "")]


def search_modes(incomplete: str) -> Pairs:
    """``tessera search --mode``: how hits are ranked."""
    return [("hybrid", "words and meaning, fused (the default)"), ("bm25", "the words"),
            ("semantic", "the meaning (offline embeddings)")]


def views(incomplete: str) -> Pairs:
    """``--view``: how a cell shows its rows."""
    from tessera.core.render.views import VIEWS

    return [(name, "") for name in VIEWS]


@_quiet
def cell_types(incomplete: str) -> Pairs:
    """``--type``: the bundled cell types and those of installed plugins."""
    from tessera.core.notebook.cells import cell_type_names

    return [(name, "") for name in cell_type_names()]


def refresh_policies(incomplete: str) -> Pairs:
    """``--refresh``: manual, watch, or every:N."""
    return [("manual", "run on request"), ("watch", "re-run on every change of what it reads"),
            ("every:60", "re-run every N seconds")]


def notebook_formats(incomplete: str) -> Pairs:
    """``-F/--format`` of notebook import and export."""
    return [("ipynb", "Jupyter notebook"), ("markdown", "fenced markdown")]


# --- the kubeconfig ---------------------------------------------------------------------------


def _contexts(ctx: Any) -> tuple[list[dict[str, str]], str | None]:
    from tessera.plugins.sources.kubernetes import kubeconfig_contexts

    return kubeconfig_contexts(ctx.params.get("kubeconfig") if ctx is not None else None)


@_quiet
def kube_contexts(ctx: Any, incomplete: str) -> Pairs:
    """``--context``: the contexts of the kubeconfig (--kubeconfig when given before it, else
    $KUBECONFIG, else ~/.kube/config); the help names the cluster and namespace."""
    contexts, current = _contexts(ctx)
    out = []
    for c in contexts:
        where = c["cluster"] + (f", namespace {c['namespace']}" if c["namespace"] else "")
        out.append((c["name"], ("current; " if c["name"] == current else "") + where))
    return out


@_quiet
def kube_namespaces(ctx: Any, incomplete: str) -> Pairs:
    """``-n/--namespace``: the namespaces the kubeconfig's contexts name (those of the
    --context values given first, when any, else of every context), and ``default``.

    Live namespaces are not asked for: that needs the kubernetes client (0.3 s to import) and
    its auth plugins, which can take seconds — too slow for a tab press."""
    from tessera.core.errors import SourceUnavailable

    try:
        contexts, _ = _contexts(ctx)
    except SourceUnavailable:  # no kubeconfig (yet): default is still a namespace
        contexts = []
    chosen = ctx.params.get("context") if ctx is not None else None
    if isinstance(chosen, str):
        chosen = [chosen]
    if chosen:
        contexts = [c for c in contexts if c["name"] in chosen]
    by_namespace: dict[str, list[str]] = {}
    for c in contexts:
        by_namespace.setdefault(c["namespace"] or "default", []).append(c["name"])
    by_namespace.setdefault("default", [])
    return [(ns, f"context {', '.join(names)}" if names else "") for ns, names in sorted(by_namespace.items())]


# --- notebooks and cells ----------------------------------------------------------------------


def _addresses(incomplete: str, *, names: bool, cells: bool) -> Pairs:
    """Notebook names and/or ``NAME/N`` cell addresses matching ``incomplete``.

    Cells are listed for the notebook named before a ``/``, else for every notebook whose name
    starts with ``incomplete`` (when cells are required, or when only one notebook matches),
    up to MAX_NOTEBOOKS_EXPANDED notebooks.
    """
    from tessera.core.store.db import connect_read_only

    conn = connect_read_only()
    if conn is None:
        return []
    try:
        from tessera.core.notebook import repository

        all_names = repository.notebook_names(conn)
        if "/" in incomplete:
            wanted = incomplete.split("/", 1)[0]
            matching = [n for n in all_names if n == wanted]
        else:
            matching = [n for n in all_names if n.startswith(incomplete)]
        out: Pairs = []
        expand = cells and ("/" in incomplete or not names or len(matching) == 1)
        if names and "/" not in incomplete:
            out += [(n, "notebook") for n in matching]
        if expand and len(matching) <= MAX_NOTEBOOKS_EXPANDED:
            for name in matching:
                nb = repository.load(conn, name)
                for cell in nb.cells():
                    label = cell["title"] or cell["source"].split("\n")[0]
                    out.append((f"{name}/{cell['number']}", _short(f"{cell['type']}: {label}")))
        elif expand:  # too many to load: the names, to type on from
            out += [(f"{n}/", "notebook") for n in matching]
        return out
    finally:
        conn.close()


@_quiet
def notebooks(incomplete: str) -> Pairs:
    """A NOTEBOOK argument: the notebook names in the store."""
    return _addresses(incomplete, names=True, cells=False)


@_quiet
def notebooks_and_cells(incomplete: str) -> Pairs:
    """A NOTEBOOK[/N] argument: names, and ``NAME/N`` for the notebook being typed."""
    return _addresses(incomplete, names=True, cells=True)


@_quiet
def cells(incomplete: str) -> Pairs:
    """A NOTEBOOK/N argument: ``NAME/N`` for every cell of the matching notebooks."""
    return _addresses(incomplete, names=False, cells=True)


# --- peers ------------------------------------------------------------------------------------


def _read_store(query: Callable[[Any], Pairs]) -> Pairs:
    from tessera.core.store.db import connect_read_only

    conn = connect_read_only()
    if conn is None:
        return []
    try:
        return query(conn)
    finally:
        conn.close()


@_quiet
def peers(incomplete: str) -> Pairs:
    """A PEER argument or option: the peers' names, each with its short id; a name holding
    control characters is left out (it is reached by its id)."""
    return _read_store(lambda conn: [(name, f"peer {node_id[:10]}") for name, node_id in
                                     conn.execute("SELECT name, node_id FROM peers ORDER BY name")
                                     if name.isprintable()])


@_quiet
def share_items(incomplete: str) -> Pairs:
    """An ITEM to share: ``notebook:NAME`` for each notebook, ``knowledge:ROOT`` for each root
    ingested, the items shared already, and ``events:`` to type a subject pattern after."""
    def query(conn: Any) -> Pairs:
        out = [(f"notebook:{name}", "notebook") for (name,) in conn.execute("SELECT name FROM notebooks ORDER BY name")]
        out += [(f"knowledge:{root}", "ingested") for (root,) in
                conn.execute("SELECT DISTINCT root FROM knowledge_documents ORDER BY root")]
        out += [(item, "shared") for (item,) in conn.execute("SELECT DISTINCT item FROM peer_shares ORDER BY item")
                if item.startswith(("events:", "knowledge:"))]
        return out + [("events:", "events:SUBJECT_PATTERN, e.g. events:deploy.>")]

    return _read_store(query)
