"""``tessera search TEXT``: ranked search over what ``tessera ingest`` stored (and, with
``--peers``, over peers' replicas), core/knowledge/search.py; docs/knowledge.md "Searching"."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from tessera.cli import completers
from tessera.cli.options import OutputSettings, emit, output_options
from tessera.core.render import is_terminal

# The formats a list of hits can take (the graph views draw matched subgraphs: hits are not one).
FORMATS = ("table", "json", "jsonl", "yaml", "csv")
COLUMNS = ["source", "path", "title", "heading", "score", "snippet", "start_line", "root", "root_given", "chunk_id"]
TABLE_COLUMNS = ["source", "score", "path", "title", "heading", "snippet"]
DEFAULT_HITS = 10

Text = Annotated[str, typer.Argument(metavar="TEXT", show_default=False,
                                     help='What to look for: plain words, or FTS5 syntax ("a phrase", word*, '
                                          'AND/OR/NOT, NEAR(a b, 10), ( ), title:word).')]
Number = Annotated[Optional[int], typer.Option("--number", "-n", metavar="N", min=0, max=10_000, show_default=False,
                                               help=f"How many hits (default {DEFAULT_HITS}); --limit is the same.")]
Chunks = Annotated[bool, typer.Option("--chunks", help="One hit per matching chunk (section), not the best chunk "
                                      "of each document.")]
Peers = Annotated[bool, typer.Option("--peers", help="Also search every peer's replica (what peers shared as "
                                     "knowledge:PATH), merged by score, each hit labelled with its peer.")]


def _check_mode(value: str) -> str:
    from tessera.core.knowledge.search import MODES

    if value not in MODES:
        raise typer.BadParameter(f"'{value}' is not a search mode; choose from {', '.join(MODES)}")
    return value


Mode = Annotated[str, typer.Option("--mode", "-m", metavar="MODE", callback=_check_mode, autocompletion=completers.search_modes,
                                   help="hybrid (words and meaning, fused), bm25 (the words) or semantic "
                                        "(the meaning: offline embeddings).")]


@output_options
def search(
    text: Text,
    number: Number = None,
    mode: Mode = "hybrid",
    chunks: Chunks = False,
    peers: Peers = False,
    *,
    out: OutputSettings,
) -> None:
    """Search the ingested notes, runbooks and code, best first.

    On a terminal each hit is one line, [SOURCE] (SCORE) PATH — TITLE › HEADING: SNIPPET (the
    heading without the title it starts with), the matched words in bold; in a pipe, JSON lines (source, path, title, heading, score, snippet...).
    Example: tessera search "crash-loop NOT staging" -n 5
    """
    from tessera.core.errors import UsageError

    if not text.strip():
        raise UsageError("the search text is empty", hint='give words to look for, e.g. tessera search "kube-proxy"')
    fmt = out.output
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"search results cannot be shown as {fmt}", hint=f"use -o {', '.join(FORMATS)}")
    count = _count(number, out.limit)
    hits, notes, warnings = _find(text, count=count, mode=mode, per="chunk" if chunks else "document", peers=peers)
    if not out.quiet:
        from tessera.cli.messages import print_message, print_warning

        for note in notes:
            print_message(note)
        for warning in warnings:
            print_warning(warning)
    if fmt is None and is_terminal(sys.stdout):
        _print_lines(hits, color=out.use_color())
        return
    from tessera.core.result import Result

    out.limit = None  # already applied
    columns = TABLE_COLUMNS if (fmt or out.format()) == "table" else COLUMNS
    emit(Result(columns=columns, rows=[{c: h.as_dict()[c] for c in columns} for h in hits]), out)


def _count(number: int | None, limit: int | None) -> int:
    """-n and --limit say the same; given both, the smaller wins."""
    given = [n for n in (number, limit) if n is not None]
    return min(given) if given else DEFAULT_HITS


def _find(text: str, *, count: int, mode: str, per: str, peers: bool) -> tuple[list[Any], list[str], list[str]]:
    """The hits, the notes (nothing to search) and the warnings (a store left out)."""
    from tessera.core.knowledge.index import knowledge_state
    from tessera.core.knowledge.search import search_many
    from tessera.core.store.db import connect_read_only

    notes: list[str] = []
    warnings: list[str] = []
    stores: list[tuple[str, Any]] = []
    local = connect_read_only(timeout=5.0)  # creates and migrates nothing: a search writes nothing
    replicas: list[Any] = []
    try:
        if local is not None and _local_state(local, knowledge_state) == "present":
            stores.append(("local", _LocalStore(local)))  # core/peers/replica_reading.LOCAL: the peers' word for this node
        if peers:
            from tessera.core.peers.replica_reading import open_all

            replicas = open_all()
            if not replicas:
                notes.append("no peer has sent anything yet (see `tessera peer list`)")
            stores += [(replica.label, replica.conn) for replica in replicas]
        if not stores:
            notes.insert(0, "nothing is ingested here yet (run `tessera ingest PATH` first)")
            from tessera.core.knowledge.search import check_syntax

            check_syntax(text)  # bad syntax is still an error (exit 1), with nothing to search
            return [], notes, warnings
        hits = search_many(stores, text, limit=count, mode=mode, per=per, on_warning=warnings.append)
        return hits, notes, warnings
    finally:
        for replica in replicas:
            replica.conn.close()
        if local is not None:
            local.close()


def _local_state(conn: Any, knowledge_state: Any) -> str:
    """knowledge_state of this node's store; a damaged or locked store is its one-line StoreError
    (exit 1 or 3), not a warning: it is the store the user asked about."""
    import sqlite3

    try:
        return knowledge_state(conn)
    except sqlite3.Error as exc:
        raise _store_error(exc) from None


def _store_error(exc: Exception) -> Exception:
    from tessera.core.store.db import db_path, store_error

    return store_error(exc, db_path(), 5.0) or exc


class _LocalStore:
    """This node's store for search_many: its failures raised as the store's errors (a peer's
    replica that fails is left out with a warning instead)."""

    def __init__(self, conn: Any):
        from tessera.core.knowledge.search import Searcher

        self.conn = conn
        self.searcher = Searcher(conn)

    def search(self, *args: Any, **kwargs: Any) -> Any:
        import sqlite3

        try:
            return self.searcher.search(*args, **kwargs)
        except sqlite3.Error as exc:
            raise _store_error(exc) from None


def _print_lines(hits: list[Any], *, color: bool) -> None:
    """``[SOURCE] (SCORE) PATH — TITLE › HEADING: SNIPPET`` per hit; the marked words bold."""
    from rich.console import Console
    from rich.text import Text

    from tessera.core.errors import printable
    from tessera.core.knowledge.search import MARK_END, MARK_START

    console = Console(file=sys.stdout, color_system="auto" if color else None, force_terminal=color,
                      no_color=not color, highlight=False, soft_wrap=True)
    if not hits:
        console.print("(no hits)", markup=False)
        return
    for hit in hits:
        line = Text()
        line.append(f"[{printable(hit.source)}]", style="cyan")
        line.append(f" ({hit.score:.2f}) ", style="dim")
        line.append(printable(hit.path), style="bold")
        where = printable(hit.title) + (f" › {printable(heading)}" if (heading := _own_heading(hit)) else "")
        line.append(f" — {where}: ")
        for i, part in enumerate(printable(hit.snippet).replace(MARK_END, MARK_START).split(MARK_START)):
            line.append(part, style="bold" if i % 2 else None)
        console.print(line)


def _own_heading(hit: Any) -> str:
    """The heading path without the title it starts with (a markdown file's first heading is
    usually its title: "KEP-753: Sidecar containers > Design" shows as "Design")."""
    if hit.heading == hit.title:
        return ""
    prefix = f"{hit.title} > "
    return hit.heading[len(prefix):] if hit.title and hit.heading.startswith(prefix) else hit.heading


def register(app: typer.Typer) -> None:
    """Add the search command to ``app``."""
    app.command("search")(search)
