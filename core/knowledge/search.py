"""Ranked search over the knowledge tables (core/knowledge_schema.py): bm25 over the FTS5 index,
cosine over the chunks' embeddings, and their reciprocal rank fusion (docs/knowledge.md,
"Searching", has the formulas and the choices made).

- ``bm25``: FTS5's bm25 with column weights title 4, heading 2, text 1, path 1 (a word in a
  document's title or a section's heading says more about it than one in the prose). Score
  ``b / (b + BM25_HALF)`` with ``b = -bm25`` (FTS5's bm25 is negative, lower is better): 0..1,
  higher is better, 0.5 at ``b = BM25_HALF``; one formula for every store, so scores from
  different stores can be merged (each store's own document frequencies still weigh words).
- ``semantic``: the cosine of the query's embedding with each chunk's (both unit vectors: a dot
  product); below SEMANTIC_FLOOR a chunk is no hit.
- ``hybrid`` (the default): reciprocal rank fusion of the two rankings, ``sum 1 / (RRF_K + rank)``
  with rank 1-based in each ranking, divided by its maximum ``2 / (RRF_K + 1)`` so that 1.0 means
  first in both.

Hits are documents by default (a user wants distinct documents in the top ten), each scored by
its best chunk and shown by its best chunk whose text holds the words; ``per="chunk"`` ranks
chunks. Plain words that too few chunks hold all of fall back on chunks holding their distinctive
terms, ranked after (``_bm25``, ``_relaxed``). Snippets mark the matched words with ``«`` and
``»`` (MARK_START / MARK_END).

A ``Searcher`` keeps a store's chunk ids, embedding matrix and term counts and reads them again
only when ``knowledge_changes`` moved on (its largest id), so repeated searches (a search cell,
the bench) cost the FTS5 queries and one matrix-vector product.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

from tessera.core.errors import QueryError, printable
from tessera.core.knowledge.index import knowledge_state
from tessera.core.knowledge.search_text import SYNTAX_HINT, ParsedSearch, parse

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

MODES = ("bm25", "semantic", "hybrid")
PER = ("document", "chunk")
BM25_WEIGHTS = (4.0, 2.0, 1.0, 1.0)  # title, heading, text, path: the order of knowledge_fts's columns
BM25_HALF = 10.0
RRF_K = 60
MARK_START, MARK_END, ELLIPSIS = "«", "»", "…"
SNIPPET_TOKENS = 24
FUSION_DEPTH = 100  # how deep into each ranking the fusion looks (a rank past it would add < 1/160)
MAX_LIMIT = 10_000
MAX_TEXT = 4_000  # characters: a pasted page would make FTS5 intersect thousands of posting lists
# A chunk less like the query than this is no semantic hit: over the KEPs, queries about nothing
# in them ("banana bread recipe", "zanzibar") reach 0.28 at most, the 30 paraphrases' targets
# 0.33 to 0.73. Without it every search by meaning "finds" something, and hybrid fills the list
# with unrelated documents at up to 0.5.
SEMANTIC_FLOOR = 0.3
RELAX_SHARE, RELAX_MIN_CHUNKS, RELAX_TERMS = 0.05, 100, 6  # plain words falling back on some of them: _relaxed

_BM25 = "bm25(knowledge_fts, " + ", ".join(str(w) for w in BM25_WEIGHTS) + ")"


@dataclass
class Hit:
    """One search result: a chunk (the best of its document unless ranked per chunk).

    source: where it was found (``local`` or a peer's name); root / root_given: the ingested
    root, canonical and as typed; path: relative to the root; score: 0..1 (the module
    docstring); snippet: the text around the match, matches between ``«`` and ``»``, on one
    line; start_line: the chunk's first line in its file (1-based).
    """

    source: str
    root: str
    root_given: str
    path: str
    title: str
    heading: str
    score: float
    snippet: str
    chunk_id: int
    start_line: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def has_knowledge(conn: sqlite3.Connection) -> bool:
    """Whether the store has the knowledge tables and at least one document in them."""
    return knowledge_state(conn) == "present"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise QueryError(f"'{printable(mode)}' is not a search mode", hint=f"use one of {', '.join(MODES)}")
    return mode


def _check(text: str, mode: str, per: str, limit: int) -> ParsedSearch:
    check_mode(mode)
    if per not in PER:
        raise QueryError(f"'{printable(per)}' is not a way to rank hits", hint=f"use one of {', '.join(PER)}")
    if not 0 <= limit <= MAX_LIMIT:
        raise QueryError(f"a search returns 0 to {MAX_LIMIT} hits, not {limit}")
    return check_syntax(text)


_syntax_conn: sqlite3.Connection | None = None
_syntax_lock = threading.Lock()


def check_syntax(text: str) -> ParsedSearch:
    """``text`` parsed and its FTS5 expression tried on an empty in-memory index, so bad syntax
    is the same one-line QueryError with no store, or a store with nothing in it.

    Raises:
        QueryError for bad syntax, a text without a word, or one over MAX_TEXT characters.
    """
    global _syntax_conn
    if len(text) > MAX_TEXT:
        raise QueryError(f"the search text is {len(text)} characters long; at most {MAX_TEXT} are searched",
                         hint="search for the few words that matter (a long text is looked for by meaning just as well)")
    parsed = parse(text)
    if not parsed.fts:
        raise QueryError(f"the search text '{printable(text)}' has no word to look for",
                         hint="give at least one word (letters or digits)")
    with _syntax_lock:
        if _syntax_conn is None:
            _syntax_conn = sqlite3.connect(":memory:", check_same_thread=False)
            _syntax_conn.execute("CREATE VIRTUAL TABLE knowledge_fts USING fts5(title, heading, text, path)")
        try:
            _syntax_conn.execute("SELECT rowid FROM knowledge_fts WHERE knowledge_fts MATCH ?", (parsed.fts,)).fetchall()
        except sqlite3.OperationalError as exc:
            raise _syntax_error(text, exc) from None
    return parsed


class Searcher:
    """Searches one store connection, keeping its embedding matrix between searches.

    Thread-safe (one lock); the connection must allow use from the calling threads.
    """

    def __init__(self, conn: sqlite3.Connection, *, weak: bool = False):
        # weak: searcher() keeps one per connection in a WeakKeyDictionary, whose values must not
        # hold their keys (the connection would never be freed)
        self._conn: Any = weakref.ref(conn) if weak else (lambda: conn)
        self._lock = threading.Lock()
        self._version: int | None = None
        self._ids: Any = None       # every chunk's id (int64, ascending)
        self._docs: Any = None      # its document's id
        self._matrix: Any = None    # its embedding, (n, 256) float32 unit vectors; None until needed
        self._term_chunks: dict[str, int] = {}  # a term (FTS5 syntax) -> how many chunks hold it
        self._matches_nothing: set[str] = set()  # FTS5 expressions no chunk matches

    @property
    def conn(self) -> sqlite3.Connection:
        conn = self._conn()
        if conn is None:
            raise RuntimeError("the connection of this Searcher was closed and freed")
        return conn

    # -- public ---------------------------------------------------------------------------------

    def version(self) -> int:
        """The largest id in knowledge_changes (0 for none): moves on with every write."""
        try:
            return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM knowledge_changes").fetchone()[0])
        except sqlite3.OperationalError:
            return 0

    def search(self, text: str, *, limit: int = 10, mode: str = "hybrid", per: str = "document",
               source: str = "local") -> list[Hit]:
        """The best ``limit`` hits for ``text`` (FTS5 syntax, plain words welcome: search_text.py).

        Raises:
            QueryError (exit 1) for bad syntax, one line with a hint; EmbeddingUnavailable
            (exit 3) when semantic ranking is asked for and the bundled model cannot load.
        """
        parsed = _check(text, mode, per, limit)
        if limit == 0 or not has_knowledge(self.conn):
            return []
        with self._lock:
            self._load(vectors=mode != "bm25")  # what is kept is checked against the index once per search
            return self._search(text, parsed, limit=limit, mode=mode, per=per, source=source)

    def chunk_scores(self, text: str, *, mode: str = "bm25") -> dict[int, float]:
        """Every matching chunk's score (chunk id -> 0..1, higher better) for ``text``: the
        query function ``search("TEXT")`` scores chunks with it. ``semantic`` matches every
        chunk with a cosine from SEMANTIC_FLOOR; ``hybrid`` fuses the two complete rankings."""
        parsed = _check(text, mode, "chunk", 0)
        if not has_knowledge(self.conn):
            return {}
        with self._lock:
            self._load(vectors=mode != "bm25")
            lexical = self._bm25(text, parsed) if mode != "semantic" else []
            if mode == "bm25":
                return dict(lexical)
            semantic = self._semantic(parsed, None, per="chunk")
            if mode == "semantic":
                return dict(semantic)
            return _fuse([[c for c, _ in lexical], [c for c, _ in semantic]])

    # -- rankings -------------------------------------------------------------------------------

    def _bm25(self, text: str, parsed: ParsedSearch, limit: int | None = None, *,
              relax_below: int | None = None) -> list[tuple[int, float]]:
        """The best ``limit`` matching chunks (all when None), best first: (chunk id, score).

        With ``relax_below``, plain text whose terms fewer than that many chunks hold all of
        is searched again for chunks holding some of its distinctive terms (_relaxed); those
        follow, each score capped at the one before it (scores never rise down the list)."""
        ranked = self._match(text, parsed.fts, limit)
        if not parsed.terms or relax_below is None or len(ranked) >= relax_below:
            return ranked
        relaxed = self._relaxed(parsed)
        if not relaxed:
            return ranked
        have = {c for c, _ in ranked}
        floor = ranked[-1][1] if ranked else 1.0
        for chunk_id, score in self._match(text, relaxed, limit):
            if chunk_id not in have:
                floor = min(floor, score)
                ranked.append((chunk_id, floor))
                if limit is not None and len(ranked) >= limit:
                    break
        return ranked

    def _marked(self, parsed: ParsedSearch) -> str:
        """What snippets mark: the text as written; plain words each on its own (a hit may hold
        some of them), the distinctive ones only for a long text (FTS5 runs a snippet's match
        once per rowid: a sentence's every word would cost milliseconds per hit)."""
        if not parsed.terms:
            return parsed.fts
        return " OR ".join(parsed.terms) if len(parsed.terms) <= RELAX_TERMS else self._relaxed(parsed)

    def _relaxed(self, parsed: ParsedSearch) -> str:
        """The plain text's distinctive terms joined by OR: those in at most RELAX_SHARE of the
        chunks or RELAX_MIN_CHUNKS (at most RELAX_TERMS of them, the rarest), else the two rarest. Words found
        nearly everywhere ("the", "how", "pod" in the KEPs) rank nothing and would make FTS5
        score most of the index; counting a term's chunks costs a fraction of a millisecond."""
        self._load(vectors=False)
        common = max(RELAX_SHARE * len(self._ids), RELAX_MIN_CHUNKS)
        counts = []
        for term in parsed.terms:
            found = self._term_chunks.get(term)
            if found is None:
                found = self.conn.execute("SELECT count(*) FROM knowledge_fts WHERE knowledge_fts MATCH ?",
                                          (term,)).fetchone()[0]
                self._term_chunks[term] = found
            if found:
                counts.append((found, term))
        counts.sort()
        rare = [term for found, term in counts if found <= common][:RELAX_TERMS]
        return " OR ".join(rare or [term for _, term in counts[:2]])

    def _match(self, text: str, fts: str, limit: int | None) -> list[tuple[int, float]]:
        try:
            rows = self.conn.execute(
                f"SELECT rowid, {_BM25} AS b FROM knowledge_fts WHERE knowledge_fts MATCH ? ORDER BY b, rowid"
                + (" LIMIT ?" if limit is not None else ""), (fts,) if limit is None else (fts, limit)).fetchall()
        except sqlite3.OperationalError as exc:
            if not _is_syntax_error(exc):
                raise
            raise _syntax_error(text, exc) from None
        if not rows:
            self._matches_nothing.add(fts)
        return [(rowid, _bm25_score(rank)) for rowid, rank in rows]

    def _bm25_documents(self, text: str, parsed: ParsedSearch, count: int) -> tuple[list[tuple[int, float]], list[int]]:
        """The best chunk of each of the ``count`` best-matching documents, best first, and the
        chunk ranking it came from. FTS5 scores every match whatever the LIMIT; fewer rows
        fetched is less to sort and carry."""
        self._load(vectors=False)
        fetch = max(4 * count, 40)
        while True:
            ranked = self._bm25(text, parsed, fetch, relax_below=fetch)
            best = _best_per_document(ranked, self._documents_of([c for c, _ in ranked]), count)
            if len(best) >= count or len(ranked) < fetch:
                return best, [c for c, _ in ranked]
            fetch *= 4

    def _semantic(self, parsed: ParsedSearch, count: int | None, *, per: str) -> list[tuple[int, float]]:
        """The ``count`` closest chunks (or the closest chunk of the ``count`` closest documents),
        best first, cosines from SEMANTIC_FLOOR only; count None: every such chunk."""
        self._load(vectors=True)
        return _closest(self._ids, self._docs, self._matrix, parsed.words, count, per=per)

    def _semantic_soon(self, parsed: ParsedSearch, count: int | None, *, per: str) -> "Future[list[tuple[int, float]]]":
        """_semantic on a worker thread, while this one runs the FTS5 queries (numpy and SQLite
        release the GIL). The worker reads no connection, only the arrays _load read, taken now:
        a _load on this thread meanwhile replaces them (never changes them in place)."""
        self._load(vectors=True)
        return _worker().submit(_closest, self._ids, self._docs, self._matrix, parsed.words, count, per=per)

    def _load(self, *, vectors: bool) -> None:
        """Every chunk's id and document (and embedding, when ``vectors``), read again when
        knowledge_changes moved on since they were read."""
        version = self.version()
        if self._version == version and (self._matrix is not None or not vectors):
            return
        import numpy as np

        columns = "id, document_id, embedding" if vectors else "id, document_id"
        rows = self.conn.execute(f"SELECT {columns} FROM knowledge_chunks ORDER BY id").fetchall()
        self._ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        self._docs = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        self._matrix = _matrix([r[2] for r in rows]) if vectors else None
        if version != self._version:
            self._term_chunks, self._matches_nothing = {}, set()
        self._version = version

    def _documents_of(self, chunk_ids: list[int]) -> dict[int, int]:
        """Chunk id -> document id, from the ids read by _load (a chunk written since is left
        out: the next search reads them again)."""
        import numpy as np

        if not chunk_ids or not len(self._ids):
            return {}
        wanted = np.asarray(chunk_ids, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._ids, wanted), len(self._ids) - 1)
        found = self._ids[at] == wanted
        return {int(c): int(d) for c, d in zip(wanted[found], self._docs[at][found], strict=True)}

    # -- one search -----------------------------------------------------------------------------

    def _search(self, text: str, parsed: ParsedSearch, *, limit: int, mode: str, per: str, source: str) -> list[Hit]:
        if mode == "bm25":
            if per == "chunk":
                ranked = self._bm25(text, parsed, limit, relax_below=limit)
                return self._hits(ranked, parsed, matched={c for c, _ in ranked}, source=source)
            ranked, _ = self._shown_chunks(parsed, *self._bm25_documents(text, parsed, limit))
            return self._hits(ranked, parsed, matched={c for c, _ in ranked}, source=source)
        if mode == "semantic":
            return self._hits(self._semantic(parsed, limit, per=per), parsed, matched=set(), source=source)
        depth = max(limit, FUSION_DEPTH)
        semantic_soon = self._semantic_soon(parsed, depth, per=per)  # on the worker while SQLite matches
        try:
            if per == "document":
                # one FTS5 query however common the words: the documents among its best chunks
                lexical_chunks = self._bm25(text, parsed, 3 * depth, relax_below=limit)
                lexical = _best_per_document(lexical_chunks, self._documents_of([c for c, _ in lexical_chunks]), depth)
            else:
                lexical = self._bm25(text, parsed, depth, relax_below=limit)
        except BaseException:
            semantic_soon.exception()  # waited for, its own error dropped: no cosine outlives the search
            raise
        semantic = semantic_soon.result()
        if per == "document":
            docs = self._documents_of([c for c, _ in lexical] + [c for c, _ in semantic])
            shown = {docs[c]: c for c, _ in reversed(semantic) if c in docs}
            shown.update({docs[c]: c for c, _ in reversed(lexical) if c in docs})  # matched words: the better snippet
            fused = _fuse([[docs[c] for c, _ in lexical if c in docs], [docs[c] for c, _ in semantic if c in docs]])
            ranked = [(shown[d], score) for d, score in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]
            ranked, in_text = self._shown_chunks(parsed, ranked, [c for c, _ in lexical_chunks])
        else:
            fused = _fuse([[c for c, _ in lexical], [c for c, _ in semantic]])
            ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
            in_text = set()
        matched = {c for c, _ in lexical} | in_text
        return self._hits(ranked, parsed, matched={c for c, _ in ranked if c in matched}, source=source)

    def _shown_chunks(self, parsed: ParsedSearch, ranked: list[tuple[int, float]],
                      preferred: list[int]) -> tuple[list[tuple[int, float]], set[int]]:
        """Each hit's document shown by a chunk whose text holds the words, when it has one: the
        first such chunk in ``preferred`` (the bm25 ranking), else its first in the file; the
        score stays the document's. A word in a document's title or top heading is in every
        chunk's title and heading path, so its best-scoring chunk can be one whose text says
        nothing of it ("Dependencies"). Returns the hits and the chunks put in.

        The text match is one unranked FTS5 query (a MATCH with ``rowid IN (...)`` runs the
        match once per rowid: seconds for a long sentence)."""
        import numpy as np

        docs = self._documents_of([c for c, _ in ranked])
        wanted = set(docs.values())
        if not wanted:
            return ranked, set()
        wanted_array = np.fromiter(wanted, dtype=np.int64, count=len(wanted))
        rank = {c: i for i, c in enumerate(preferred)}
        best: dict[int, tuple[float, int]] = {}
        for expr in (parsed.fts, self._relaxed(parsed) if parsed.terms else ""):
            if not expr or len(best) == len(wanted) or expr in self._matches_nothing:
                continue  # (a sentence's every word in one section: usually none, and known)
            rows = self.conn.execute("SELECT rowid FROM knowledge_fts WHERE knowledge_fts MATCH ?",
                                     (f"text : ( {expr} )",)).fetchall()
            found = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            at = np.minimum(np.searchsorted(self._ids, found), max(len(self._ids) - 1, 0))
            # thousands of chunks hold a long text's rare words; the few of the hits' documents
            # are picked out in numpy, not one by one in Python
            kept = (self._ids[at] == found) & np.isin(self._docs[at], wanted_array)
            for chunk_id, doc in zip(found[kept].tolist(), self._docs[at][kept].tolist(), strict=True):
                key = (rank.get(chunk_id, float("inf")), chunk_id)
                if doc not in best or key < best[doc]:
                    best[doc] = key
        chosen = {doc: chunk_id for doc, (_, chunk_id) in best.items()}
        out = [(chosen.get(docs.get(c, -1), c), score) for c, score in ranked]
        return out, set(chosen.values())

    def _hits(self, ranked: list[tuple[int, float]], parsed: ParsedSearch, *, matched: set[int], source: str) -> list[Hit]:
        if not ranked:
            return []
        ids = [c for c, _ in ranked]
        marks = ",".join("?" * len(ids))
        rows = {r[0]: r for r in self.conn.execute(
            "SELECT c.id, d.root, d.root_given, d.path, d.title, c.heading, c.start_line, c.text"
            f" FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id WHERE c.id IN ({marks})", ids)}
        snippets: dict[int, str] = {}
        if matched:
            wanted = [c for c in ids if c in matched]
            snippets = dict(self.conn.execute(
                f"SELECT rowid, snippet(knowledge_fts, 2, ?, ?, ?, {SNIPPET_TOKENS}) FROM knowledge_fts"
                f" WHERE knowledge_fts MATCH ? AND rowid IN ({','.join('?' * len(wanted))})",
                [MARK_START, MARK_END, ELLIPSIS, self._marked(parsed), *wanted]))
        out = []
        for chunk_id, score in ranked:
            row = rows.get(chunk_id)
            if row is None:  # removed between the ranking and now
                continue
            _, root, given, path, title, heading, start, body = row
            snippet = snippets.get(chunk_id) or _opening(body)
            out.append(Hit(source=source, root=root, root_given=given, path=path, title=title, heading=heading,
                           score=round(min(1.0, max(0.0, score)), 4), snippet=" ".join(snippet.split()),
                           chunk_id=chunk_id, start_line=start))
        return out


def _matrix(blobs: list[bytes | None]) -> Any:
    """The stored vectors as one (n, DIMENSIONS) array; a chunk without one is a zero row (its
    cosine is 0: never a semantic hit)."""
    import numpy as np

    from tessera.core.knowledge.embedding import DIMENSIONS, from_blobs

    if blobs and all(b is not None and len(b) == DIMENSIONS * 4 for b in blobs):
        return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), DIMENSIONS)
    return from_blobs(blobs)


def _cosines(matrix: Any, words: str) -> Any:
    """Each row's cosine with the embedding of ``words``, or None with nothing to compare."""
    if matrix is None or not len(matrix) or not words.strip():
        return None
    import numpy as np

    from tessera.core.knowledge.embedding import embed

    # einsum, not @: a matrix-vector product goes to OpenBLAS's threads, whose hand-offs cost
    # 8 ms on a busy 2-core machine against 2.5 ms for einsum's one thread (32,000 chunks)
    return np.einsum("ij,j->i", matrix, embed([words])[0])


def _closest(ids: Any, docs: Any, matrix: Any, words: str, count: int | None, *, per: str) -> list[tuple[int, float]]:
    """Searcher._semantic over the arrays _load read (ids, document ids, embeddings)."""
    import numpy as np

    cosines = _cosines(matrix, words)
    if cosines is None:
        return []
    total = len(cosines)
    take = total if count is None else min(total, max(8 * count, 256))
    while True:
        top = np.argpartition(-cosines, take - 1)[:take] if take < total else np.arange(total)
        order = top[np.lexsort((ids[top], -cosines[top]))]
        order = order[cosines[order] >= SEMANTIC_FLOOR]
        floored = len(order) < take  # the rest are further still: no use looking deeper
        if per == "document":  # each document's first (closest) chunk, in order
            _, first = np.unique(docs[order], return_index=True)
            order = order[np.sort(first)]
        if count is None or len(order) >= count or take >= total or floored:
            return [(int(ids[i]), float(cosines[i])) for i in order[:count]]
        take = min(total, take * 4)


_pool: "ThreadPoolExecutor | None" = None
_pool_lock = threading.Lock()


def _worker() -> "ThreadPoolExecutor":
    """The threads hybrid searches compute cosines on (numpy and SQLite release the GIL, so the
    matrix-vector product overlaps the FTS5 queries). Two: searches in two threads (a dashboard
    beside a shell) need not queue behind each other; made on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tessera-cosine")
        return _pool


def _bm25_score(rank: float) -> float:
    b = max(0.0, -float(rank))
    return b / (b + BM25_HALF)


def _fuse(rankings: list[list[int]]) -> dict[int, float]:
    """Reciprocal rank fusion of rankings (best first), divided by its maximum for two
    rankings: key -> 0..1."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank)
    top = 2.0 / (RRF_K + 1)
    return {key: value / top for key, value in fused.items()}


def _best_per_document(ranked: list[tuple[int, float]], docs: dict[int, int], count: int) -> list[tuple[int, float]]:
    seen: set[int] = set()
    out = []
    for chunk_id, score in ranked:
        doc = docs.get(chunk_id)
        if doc is not None and doc not in seen:
            seen.add(doc)
            out.append((chunk_id, score))
            if len(out) >= count:
                break
    return out


def _opening(text: str, words: int = SNIPPET_TOKENS) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (ELLIPSIS if len(parts) > words else "")


def _is_syntax_error(exc: sqlite3.OperationalError) -> bool:
    """Whether FTS5 refused the MATCH expression (not: a missing or damaged table)."""
    message = str(exc)
    return message.startswith("fts5:") or "syntax error" in message or message.startswith("unterminated string")


def _syntax_error(text: str, exc: sqlite3.OperationalError) -> QueryError:
    message = str(exc)
    if message.startswith("fts5: "):
        message = message[len("fts5: "):]
    if message == 'syntax error near ""':
        message = "the text ends where a term was expected"
    return QueryError(f"bad search text '{printable(text)}': {message}", hint=SYNTAX_HINT)


# -- module-level: a Searcher per connection, kept while the connection lives ---------------------

_searchers: "weakref.WeakKeyDictionary[Any, Searcher]" = weakref.WeakKeyDictionary()
_searchers_lock = threading.Lock()


def searcher(conn: sqlite3.Connection) -> Searcher:
    """The Searcher kept for ``conn`` (a new one each call for a connection that takes no weak
    reference: a plain sqlite3.Connection; the store's StoreConnection does)."""
    with _searchers_lock:
        try:
            found = _searchers.get(conn)
        except TypeError:
            return Searcher(conn)
        if found is None:
            found = _searchers[conn] = Searcher(conn, weak=True)
        return found


def search(conn: sqlite3.Connection, text: str, *, limit: int = 10, mode: str = "hybrid", per: str = "document",
           source: str = "local") -> list[Hit]:
    """The best ``limit`` hits in this store (Searcher.search)."""
    return searcher(conn).search(text, limit=limit, mode=mode, per=per, source=source)


def chunk_scores(conn: sqlite3.Connection, text: str, *, mode: str = "bm25") -> dict[int, float]:
    """Chunk id -> score for every matching chunk (Searcher.chunk_scores)."""
    return searcher(conn).chunk_scores(text, mode=mode)


def search_many(stores: list[tuple[str, Any]], text: str, *, limit: int = 10, mode: str = "hybrid",
                per: str = "document", on_warning: Callable[[str], None] | None = None) -> list[Hit]:
    """Search several stores (``(label, connection or Searcher)``: this node's and peers'
    replicas) and merge their hits by score, each labelled with its store's label.

    A store that cannot be searched (a replica without knowledge tables, a damaged file: an
    sqlite3.Error) is left out with a warning (``on_warning``); bad search syntax is the user's
    and raises, and so does any other error (a caller wrapping a Searcher to raise its own for a
    store that must answer, as the CLI does for this node's).
    Ties are broken by the stores' order, then path.
    """
    check_syntax(text)  # bad syntax is refused once, before any store is read
    merged: list[tuple[int, Hit]] = []
    for order, (label, store) in enumerate(stores):
        finder = store if hasattr(store, "search") else searcher(store)  # a Searcher, or one wrapped
        try:
            if knowledge_state(finder.conn) == "missing":
                if on_warning is not None:
                    on_warning(f"{printable(label)} has no knowledge to search (nothing shared as knowledge:PATH)")
                continue
            found = finder.search(text, limit=limit, mode=mode, per=per, source=label)
        except QueryError:
            raise
        except sqlite3.Error as exc:
            if on_warning is not None:
                on_warning(f"cannot search {printable(label)}'s knowledge: {exc}")
            continue
        merged += [(order, hit) for hit in found]
    merged.sort(key=lambda pair: (-pair[1].score, pair[0], pair[1].path, pair[1].start_line))
    return [hit for _, hit in merged[:limit]]
