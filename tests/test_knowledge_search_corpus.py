"""Search over real prose: the KEP corpus in ../shared (skipped, saying so, when absent). Every
heading of every proposal is searchable as plain text, and sig-node's proposals, ingested, rank
as a reader expects under each mode. Latency is measured in bench/ingest.py, not asserted."""

from __future__ import annotations

import re

import pytest

from knowledge_helpers import kep_corpus
from tessera.core.errors import QueryError
from tessera.core.knowledge.ingest import ingest_paths
from tessera.core.knowledge.search import check_syntax, search
from tessera.core.store.db import connect

HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def _unbalanced(text: str) -> bool:
    return text.count('"') % 2 == 1 or text.count("(") != text.count(")")


def test_every_kep_heading_is_plain_text_fts5_accepts():
    corpus = kep_corpus()
    headings = []
    for path in sorted((corpus / "keps").rglob("*.md")):
        in_code = False
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lstrip().startswith("```"):
                in_code = not in_code
            m = None if in_code else HEADING.match(line)
            if m:
                headings.append(m.group(1))
    assert len(headings) > 10_000
    refused = []
    for text in headings:
        try:
            check_syntax(text)
        except QueryError as err:
            refused.append((text, err.one_line()))
    # only text that really is unbalanced syntax is refused (or has no word at all)
    wrong = [(t, e) for t, e in refused if not _unbalanced(t) and "has no word" not in e]
    assert wrong == [], wrong[:5]


@pytest.fixture(scope="module")
def sig_node(tmp_path_factory):
    corpus = kep_corpus()
    conn = connect(tmp_path_factory.mktemp("kep") / "store.db")
    summary = ingest_paths(conn, [str(corpus / "keps" / "sig-node")])
    assert summary.added > 100
    yield conn
    conn.close()


def folders(hits) -> list[str]:
    return [h.path.split("/")[0] for h in hits]


def test_a_kind_of_failure_by_name(sig_node):
    top = folders(search(sig_node, "CrashLoopBackOff", mode="bm25", limit=3))
    assert set(top[:2]) == {"4603-tune-crashloopbackoff", "5593-configure-the-max-crashloopbackoff-delay"}


def test_a_phrase_and_a_prefix(sig_node):
    assert folders(search(sig_node, '"sidecar containers"', mode="bm25", limit=1)) == ["753-sidecar-containers"]
    hits = search(sig_node, "crashloop*", mode="bm25", limit=5)
    assert all("crashloop" in h.snippet.lower() for h in hits) and "«" in hits[0].snippet


def test_snippets_mark_common_words_too(sig_node):
    # "containers" is in most of sig-node's sections: it is still marked beside "sidecar"
    (hit,) = search(sig_node, "sidecar containers", mode="bm25", limit=1)
    assert "«sidecar»" in hit.snippet and "«containers»" in hit.snippet, hit.snippet


def test_a_paraphrase_under_semantic_and_hybrid(sig_node):
    for mode in ("semantic", "hybrid"):
        top = folders(search(sig_node, "containers restarting again and again after crashing", mode=mode, limit=3))
        assert {"4603-tune-crashloopbackoff", "5593-configure-the-max-crashloopbackoff-delay"} & set(top), (mode, top)


def test_distinct_documents_and_scores_in_range(sig_node):
    for mode in ("bm25", "semantic", "hybrid"):
        hits = search(sig_node, "memory manager", mode=mode, limit=10)
        assert len(hits) == 10 and len({(h.root, h.path) for h in hits}) == 10
        assert all(0 <= h.score <= 1 for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
