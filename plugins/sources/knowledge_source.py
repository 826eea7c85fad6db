"""``-s knowledge``: what ``tessera ingest`` stored, as a read-only source of ``Document`` and
``Chunk`` objects (plugins/sources/knowledge_objects.py; docs/knowledge.md "Knowledge in queries
and notebooks").

It reads this node's store read-only, like ``-s local`` (plugins/sources/stores.py StoreSource,
whose watching it shares: ``PRAGMA data_version`` tells when an ingest committed, and only then
is a kind listed again), so a live query or a dashboard pane over it sees a newly ingested file.
Named beside other sources, the knowledge kinds join each of them (core/sources/opening.py,
core/sources/joined.py), so MENTIONS links chunks to that cluster's resources.

It is a ScoringSource: ``search("TEXT")`` in a query scores chunks through
core/knowledge/search.py (bm25, 0..1), a Document by its best chunk.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tessera.core.kinds import KindInfo
from tessera.core.sources.protocol import ScoringSource
from tessera.plugins.sources.stores import StoreSource

NAME = "knowledge"
SCORED_KINDS = (("tessera.dev", "Chunk"), ("tessera.dev", "Document"))


class KnowledgeSource(StoreSource, ScoringSource):
    """The knowledge tables of a store, read-only.

    Args:
        conn_or_path: a read-only sqlite3 connection, a store file's path, or None for this
            node's store (empty when there is none yet).
    """

    scored_kinds = SCORED_KINDS

    def __init__(self, conn_or_path: sqlite3.Connection | str | Path | None = None) -> None:
        from tessera.core.peers.replica_reading import local_store

        if isinstance(conn_or_path, sqlite3.Connection):
            conn: sqlite3.Connection | None = conn_or_path
        else:
            conn = local_store(Path(conn_or_path) if conn_or_path is not None else None)
        super().__init__(NAME, conn)

    def kinds(self) -> list[KindInfo]:
        from tessera.plugins.sources.knowledge_objects import KINDS

        return list(KINDS)

    def list(self, kind: KindInfo, *, namespace: str | None = None, name: str | None = None,
             labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The stored Documents or Chunks (cluster-scoped: ``namespace`` is ignored; they carry no
        labels, so a label filter matches nothing); ``name`` is a path / ``PATH#ORDINAL``."""
        from tessera.core.knowledge.index import knowledge_state
        from tessera.plugins.sources import knowledge_objects

        if self._conn is None or labels or kind.group != knowledge_objects.GROUP:
            return []
        read = {"Document": knowledge_objects.documents, "Chunk": knowledge_objects.chunks}.get(kind.kind)
        if read is None:
            return []
        return self._read(lambda conn: read(conn, name=name) if knowledge_state(conn) != "missing" else [], [])

    def text_scores(self, text: str) -> dict[str, float]:
        """Every matching Chunk's uid -> its bm25 score (core/knowledge/search.py chunk_scores), and
        each Document's uid -> its best chunk's."""
        from tessera.core.knowledge.index import knowledge_state
        from tessera.plugins.sources import knowledge_objects

        if self._conn is None:
            return {}

        def scores(conn: sqlite3.Connection) -> dict[str, float]:
            if knowledge_state(conn) == "missing":
                return {}
            from tessera.core.knowledge.search import chunk_scores

            by_id = chunk_scores(conn, text, mode="bm25")
            return knowledge_objects.scores_by_uid(conn, by_id)

        return self._read(scores, {})

    def _read(self, read: Any, empty: Any) -> Any:
        """``read(conn)`` under the connection's lock (``empty`` once closed); a failing store
        is SourceUnavailable, one line."""
        from tessera.core.errors import SourceUnavailable, TesseraError

        with self._lock:
            if self._conn is None:
                return empty
            try:
                return read(self._conn)
            except TesseraError:
                raise
            except (sqlite3.Error, ValueError) as exc:
                raise SourceUnavailable(f"cannot read the knowledge of this node's store: {exc}",
                                        hint="run `tessera info` to see the store in use") from None
