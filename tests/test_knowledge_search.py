"""Ranked search (core/knowledge/search.py, core/knowledge/search_text.py) over a real store:
documents written through core/knowledge/index.py with the bundled model's embeddings."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from tessera.core.errors import QueryError
from tessera.core.knowledge import index
from tessera.core.knowledge.records import ChunkRecord, DocumentRecord
from tessera.core.knowledge.search import (
    RRF_K, Searcher, chunk_scores, knowledge_state, search, search_many)
from tessera.core.knowledge.search_text import parse
from tessera.core.store.db import connect

AT = "2026-12-01T20:00:00Z"
ROOT = "/notes"

# path -> (title, [(heading, text)])
NOTES = {
    "runbooks/crashloop.md": ("Pods in CrashLoopBackOff", [
        ("Symptoms", "The pod status shows CrashLoopBackOff and the restart count climbs. The kubelet backs off "
                     "between restarts of the failing container."),
        ("Fix", "Read the logs of the previous container with kubectl logs --previous, then fix the command or "
                "the liveness probe."),
    ]),
    "runbooks/kube-proxy.md": ("kube-proxy troubleshooting", [
        ("Iptables", "When kube-proxy cannot program iptables, Services stop routing traffic to endpoints."),
        ("Restarting", "Delete the kube-proxy pod in kube-system; the DaemonSet starts a new one."),
    ]),
    "runbooks/web.md": ("Web deployment", [
        ("Scaling", "Scale deployment/web with kubectl -n shop scale deployment web --replicas=5."),
        ("Rollback", "Roll back with kubectl rollout undo deployment/web when a release misbehaves."),
    ]),
    "notes/dns.md": ("DNS notes", [
        ("CoreDNS", "CoreDNS answers cluster DNS queries; check the coredns ConfigMap named coredns in kube-system."),
        ("", "Name resolution fails when the upstream resolver times out."),
    ]),
    "notes/storage.md": ("Storage", [
        ("Volumes", "A PersistentVolumeClaim stays Pending when no StorageClass can provision a volume."),
        ("Quotas", "Disk pressure evicts pods from a node; clean images and logs."),
    ]),
}


def write_notes(conn, notes=NOTES, *, root=ROOT, embed=True) -> None:
    from tessera.core.knowledge.embedding import embed as embed_texts, to_blob

    for path, (title, sections) in notes.items():
        texts = [f"{heading}\n{text}" if heading else text for heading, text in sections]
        vectors = embed_texts(texts) if embed else [None] * len(texts)
        chunks = [ChunkRecord(ordinal=i, heading=heading, start_line=1 + 3 * i, end_line=2 + 3 * i, text=text,
                              embedding=to_blob(v) if v is not None else None)
                  for i, ((heading, text), v) in enumerate(zip(sections, vectors, strict=True))]
        body = "\n".join(texts)
        index.write_document(conn, DocumentRecord(
            root=root, root_given=root.lstrip("/"), path=path, kind="markdown", title=title, size=len(body),
            mtime=AT, hash=hashlib.sha256(body.encode()).hexdigest(), chunks=chunks), at=AT)


@pytest.fixture
def conn():
    c = connect()
    write_notes(c)
    yield c
    c.close()


def paths(hits) -> list[str]:
    return [h.path for h in hits]


# --- the search text ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, fts", [
    ("crash-loop", '"crash-loop"'),
    ("kube-proxy restarts", '"kube-proxy" AND "restarts"'),
    ("deployment/web", '"deployment/web"'),
    ("app.kubernetes.io/name", '"app.kubernetes.io/name"'),
    ("don't panic", '"don\'t" AND "panic"'),
    ("web and api", '"web" AND "and" AND "api"'),
    ("web AND api", '"web" AND "api"'),
    ('"rollout undo" OR rollback', '"rollout undo" OR "rollback"'),
    ("kube*", '"kube"*'),
    ('"kube pro"*', '"kube pro"*'),
    ("title:web", 'title: "web"'),
    ("Heading:(scaling OR rollback)", 'heading: ( "scaling" OR "rollback" )'),
    ("(web OR api) NOT dns", '( "web" OR "api" ) NOT "dns"'),
    ("NEAR(kubectl rollout, 3)", 'NEAR("kubectl" "rollout", 3)'),
    ("f(x) - web", '"f(x)" AND "web"'),
    ('say ""hi""', '"say" AND "hi"'),
    # FTS5 refuses a group right after a phrase without an operator: the AND is written out
    ("Recursive read-only (RRO) mounts", '"Recursive" AND "read-only" AND ( "RRO" ) AND "mounts"'),
    ("(web) title:api", '( "web" ) AND title: "api"'),
])
def test_plain_words_are_quoted_and_syntax_is_kept(text, fts):
    assert parse(text).fts == fts


def test_plain_text_of_several_terms_can_be_relaxed_to_or_and_syntax_cannot():
    assert parse("kube-proxy restarts* kube-proxy").terms == ('"kube-proxy"', '"restarts"*')
    assert parse("kube-proxy").terms == ()
    for text in ("a AND b", "a OR b", "a NOT b", "(a b)", "title:a b", "NEAR(a b)"):
        assert parse(text).terms == (), text


def test_semantic_words_leave_out_operators_and_what_not_excludes():
    assert parse('title:web AND "roll back" NOT (dns OR storage) kube*').words == "web roll back kube"


@pytest.mark.parametrize("text, what", [
    ('"unbalanced', "quote not closed (at character 1)"),
    ("web (api", "'(' not closed (at character 5)"),
    ("web )", "')' without '(' (at character 5)"),
])
def test_unbalanced_quotes_and_parentheses_are_one_line_errors(conn, text, what):
    with pytest.raises(QueryError) as err:
        search(conn, text, mode="bm25")
    line = err.value.one_line()
    assert what in line and "\n" not in line and "AND, OR, NOT" in line


@pytest.mark.parametrize("text", ["web AND", "AND web", "NOT web", "web OR OR api"])
def test_misplaced_operators_are_one_line_errors_in_every_mode(conn, text):
    for mode in ("bm25", "hybrid", "semantic"):
        with pytest.raises(QueryError) as err:
            search(conn, text, mode=mode)
        assert err.value.one_line().startswith(f"bad search text '{text}': ")
        assert "\n" not in err.value.one_line()


def test_a_text_over_the_limit_is_refused_before_any_work(conn, monkeypatch):
    from tessera.core.knowledge import search as search_module

    monkeypatch.setattr(search_module, "parse", lambda text: pytest.fail("parsed before the limit was checked"))
    with pytest.raises(QueryError, match=r"the search text is 4001 characters long; at most 4000 are searched"):
        search(conn, "w" * 4001)


def test_text_without_a_word_is_refused(conn):
    with pytest.raises(QueryError, match="has no word to look for"):
        search(conn, "- / --", mode="bm25")


# --- bm25 ----------------------------------------------------------------------------------------


def test_plain_hyphenated_and_dotted_words_just_work(conn):
    assert paths(search(conn, "kube-proxy", mode="bm25"))[0] == "runbooks/kube-proxy.md"
    assert paths(search(conn, "deployment/web", mode="bm25")) == ["runbooks/web.md"]
    assert paths(search(conn, "kubectl -n shop", mode="bm25"))[0] == "runbooks/web.md"


def test_plain_words_all_in_a_chunk_come_first_then_chunks_with_some_of_them(conn):
    hits = search(conn, "kubectl shop", mode="bm25", per="chunk")
    both = [h for h in hits if "kubectl" in h.snippet.lower().replace("«", "").replace("»", "")
            and "shop" in h.snippet.lower().replace("«", "").replace("»", "")]
    assert [h.path for h in hits[:1]] == ["runbooks/web.md"] and hits[0] in both
    assert {h.path for h in hits} == {"runbooks/web.md", "runbooks/crashloop.md"}  # the others name kubectl only
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # no chunk holds all of these words: the ones holding some are still found, best first
    loose = search(conn, "coredns iptables volumes", mode="bm25")
    assert set(paths(loose)) == {"notes/dns.md", "runbooks/kube-proxy.md", "notes/storage.md"}
    # syntax is taken as written: no relaxing
    assert search(conn, "coredns AND iptables", mode="bm25") == []
    assert search(conn, '"coredns iptables"', mode="bm25") == []
    # search() in queries scores the chunks that hold every word
    assert chunk_scores(conn, "coredns iptables") == {}


def test_phrases_match_words_in_order_only(conn):
    assert paths(search(conn, '"rollout undo"', mode="bm25")) == ["runbooks/web.md"]
    assert search(conn, '"undo rollout"', mode="bm25") == []


def test_prefixes(conn):
    assert set(paths(search(conn, "coredn*", mode="bm25"))) == {"notes/dns.md"}
    assert set(paths(search(conn, "iptabl*", mode="bm25"))) == {"runbooks/kube-proxy.md"}


def test_boolean_operators(conn):
    assert set(paths(search(conn, "kubectl AND logs", mode="bm25"))) == {"runbooks/crashloop.md"}
    assert set(paths(search(conn, "coredns OR iptables", mode="bm25"))) == {"notes/dns.md", "runbooks/kube-proxy.md"}
    # chunks match, not whole documents: web.md's Scaling section names kubectl without rollout
    assert set(paths(search(conn, "kubectl NOT rollout", mode="bm25"))) == {"runbooks/crashloop.md", "runbooks/web.md"}
    assert set(paths(search(conn, "kubectl NOT (rollout OR scale)", mode="bm25"))) == {"runbooks/crashloop.md"}
    assert set(paths(search(conn, "NEAR(previous container, 2)", mode="bm25"))) == {"runbooks/crashloop.md"}


def test_column_filters(conn):
    assert paths(search(conn, "title:storage", mode="bm25")) == ["notes/storage.md"]
    assert search(conn, "heading:kubelet", mode="bm25") == []
    assert paths(search(conn, "path:notes AND dns", mode="bm25")) == ["notes/dns.md"]


def test_a_title_word_ranks_above_the_same_word_in_text(conn):
    # "restarts" is in crashloop.md's text; "Restarting" (stemmed alike) is a heading in kube-proxy.md
    hits = search(conn, "restarting", mode="bm25")
    assert paths(hits)[0] == "runbooks/kube-proxy.md"
    assert hits[0].heading == "Restarting"


def test_hits_are_distinct_documents_by_default_and_chunks_on_request(conn):
    by_doc = search(conn, "kubectl", mode="bm25")
    assert len(paths(by_doc)) == len(set(paths(by_doc))) == 2
    by_chunk = search(conn, "kubectl", mode="bm25", per="chunk")
    assert sorted(paths(by_chunk)) == ["runbooks/crashloop.md", "runbooks/web.md", "runbooks/web.md"]
    assert [h.score for h in by_chunk] == sorted((h.score for h in by_chunk), reverse=True)


def test_hits_carry_their_place_and_a_snippet_with_the_match_marked(conn):
    (hit,) = search(conn, "iptables", mode="bm25")
    assert (hit.source, hit.root, hit.root_given, hit.path) == ("local", ROOT, "notes", "runbooks/kube-proxy.md")
    assert (hit.title, hit.heading, hit.start_line) == ("kube-proxy troubleshooting", "Iptables", 1)
    assert "«iptables»" in hit.snippet and "\n" not in hit.snippet
    assert 0 < hit.score < 1
    assert set(hit.as_dict()) == {"source", "root", "root_given", "path", "title", "heading", "score", "snippet",
                                  "chunk_id", "start_line"}


def test_a_document_is_shown_by_a_section_whose_text_holds_the_words(conn):
    # "Zebra" is in the title, so in every chunk's title column; the short section that never
    # names it scores best, but the section shown is the one whose text does
    write_notes(conn, {"animals/zebra.md": ("Zebra care", [
        ("Feeding", "Hay twice a day."),
        ("Stripes", "Every zebra has stripes of its own; a zebra foal knows its mother by them, and keepers "
                    "tell one animal from another the same way when they count the herd in the evening."),
    ])})
    for mode in ("bm25", "hybrid"):
        (hit,) = [h for h in search(conn, "zebra", mode=mode) if h.path == "animals/zebra.md"]
        assert hit.heading == "Stripes" and "«zebra»" in hit.snippet, mode


def test_plain_text_with_parentheses_and_abbreviations_searches(conn):
    # FTS5 refuses '"a" ( "b" )': every KEP title with an abbreviation in parentheses failed
    for text in ("Recursive read-only (RRO) mounts", "Kubernetes Enhancement Proposals (KEPs)",
                 "can we roll back (i.e. the enablement)?", "resources (PIDs, sockets, etc.)"):
        search(conn, text, mode="bm25")
    assert paths(search(conn, "scale (deployment/web)", mode="bm25")) == ["runbooks/web.md"]


def test_snippets_mark_each_plain_word(conn):
    (hit,) = search(conn, "previous liveness", mode="bm25")
    assert "«previous»" in hit.snippet and "«liveness»" in hit.snippet


def test_limit(conn):
    assert len(search(conn, "kube*", mode="bm25", limit=1)) == 1
    assert search(conn, "kube*", mode="bm25", limit=0) == []


def test_chunk_scores_score_every_matching_chunk(conn):
    scores = chunk_scores(conn, "kubectl")
    texts = dict(conn.execute("SELECT id, text FROM knowledge_chunks"))
    assert set(scores) == {cid for cid, text in texts.items() if "kubectl" in text}
    assert all(0 < s < 1 for s in scores.values())
    assert chunk_scores(conn, "nosuchwordanywhere") == {}


def test_a_store_without_knowledge_searches_to_nothing(tmp_path):
    empty = connect(tmp_path / "empty.db")
    assert knowledge_state(empty) == "empty" and search(empty, "web") == []
    bare = sqlite3.connect(tmp_path / "old.db")
    bare.execute("CREATE TABLE events(x)")
    assert knowledge_state(bare) == "missing" and search(bare, "web", mode="bm25") == []


# --- semantic and hybrid -----------------------------------------------------------------------


def test_my_container_keeps_restarting_finds_the_crashloop_note_first(conn):
    for mode in ("semantic", "hybrid"):
        hits = search(conn, "my container keeps restarting", mode=mode)
        assert paths(hits)[0] == "runbooks/crashloop.md", (mode, [(h.path, h.score) for h in hits])


def test_semantic_scores_are_cosines_and_hybrid_scores_are_normalised_rrf(conn):
    semantic = search(conn, "my container keeps restarting", mode="semantic")
    assert all(0 < h.score <= 1 for h in semantic)
    assert [h.score for h in semantic] == sorted((h.score for h in semantic), reverse=True)
    hybrid = search(conn, "crashloopbackoff restarts", mode="hybrid")
    # first under bm25 and under cosine: 1 / (k + 1) twice, over its maximum 2 / (k + 1)
    assert hybrid[0].path == "runbooks/crashloop.md" and hybrid[0].score == 1.0
    assert all(h.score >= 1 / (RRF_K + 100) / (2 / (RRF_K + 1)) for h in hybrid)
    assert "«" in hybrid[0].snippet


def test_what_is_nothing_like_the_query_is_no_hit(conn):
    # without a floor every search by meaning "finds" the least unlike chunks, and hybrid fills
    # the list with unrelated documents at up to 0.5
    assert search(conn, "banana bread recipe", mode="semantic") == []
    write_notes(conn, {"notes/zanzibar.md": ("Zanzibar", [("", "The zanzibar cluster runs the batch jobs.")])})
    assert paths(search(conn, "zanzibar", mode="hybrid")) == ["notes/zanzibar.md"]


def test_semantic_hits_without_the_words_show_the_chunk_opening(conn):
    hits = search(conn, "my container keeps restarting", mode="semantic")
    assert all("«" not in h.snippet for h in hits)


def test_the_searcher_reloads_vectors_only_when_the_index_changed(conn):
    finder = Searcher(conn)
    finder.search("restarting", mode="semantic")
    matrix = finder._matrix
    finder.search("dns", mode="semantic")
    assert finder._matrix is matrix
    write_notes(conn, {"runbooks/oom.md": ("OOMKilled", [("Memory", "The container was killed for exceeding its "
                                                                   "memory limit and restarts again and again.")])})
    hits = finder.search("container killed out of memory", mode="semantic")
    assert finder._matrix is not matrix and hits[0].path == "runbooks/oom.md"
    index.remove_document(conn, ROOT, "runbooks/oom.md", at=AT)
    assert "runbooks/oom.md" not in paths(finder.search("container killed out of memory", mode="semantic"))


def test_the_kept_searcher_does_not_keep_its_connection_alive(tmp_path):
    import gc
    import weakref

    store = connect(tmp_path / "s.db")
    write_notes(store, embed=False)
    assert search(store, "kubectl", mode="bm25")
    alive = weakref.ref(store)
    store.close()
    del store
    gc.collect()
    assert alive() is None, "freed, though searcher() keeps a Searcher for it"


def test_chunk_scores_semantic_and_hybrid(conn):
    semantic = chunk_scores(conn, "my container keeps restarting", mode="semantic")
    assert semantic and all(0 < s <= 1 for s in semantic.values())
    hybrid = chunk_scores(conn, "kubectl", mode="hybrid")
    lexical = chunk_scores(conn, "kubectl", mode="bm25")
    assert set(lexical) <= set(hybrid) and max(hybrid.values()) <= 1.0


def test_chunks_without_embeddings_are_found_by_words_only(tmp_path):
    plain = connect(tmp_path / "plain.db")
    write_notes(plain, embed=False)
    assert search(plain, "my container keeps restarting", mode="semantic") == []
    assert paths(search(plain, "crashloopbackoff", mode="hybrid")) == ["runbooks/crashloop.md"]


# --- several stores ------------------------------------------------------------------------------


def test_search_many_merges_by_score_and_labels_each_hit(conn, tmp_path):
    other = connect(tmp_path / "alice.db")
    write_notes(other, {**NOTES, "alice/crash.md": ("CrashLoopBackOff again", [
        ("CrashLoopBackOff", "CrashLoopBackOff CrashLoopBackOff: the container exits at once; CrashLoopBackOff.")])},
        root="/home/alice/notes")
    warnings: list[str] = []
    hits = search_many([("local", conn), ("alice", other)], "crashloopbackoff", mode="bm25", on_warning=warnings.append)
    alone = {"local": search(conn, "crashloopbackoff", mode="bm25"), "alice": search(other, "crashloopbackoff", mode="bm25")}
    assert sorted((h.source, h.path, h.score) for h in hits) == sorted(
        (label, h.path, h.score) for label, found in alone.items() for h in found)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True) and warnings == []
    assert {(h.source, h.path) for h in hits} >= {("alice", "alice/crash.md"), ("local", "runbooks/crashloop.md"),
                                                  ("alice", "runbooks/crashloop.md")}
    assert next(h.root for h in hits if h.source == "alice") == "/home/alice/notes"
    assert len(search_many([("local", conn), ("alice", other)], "crashloopbackoff", mode="bm25", limit=1)) == 1


def test_search_many_warns_about_a_store_it_cannot_search(conn, tmp_path):
    bare = sqlite3.connect(tmp_path / "bob.db")
    bare.execute("CREATE TABLE events(x)")
    broken = sqlite3.connect(tmp_path / "carol.db")
    broken.execute("CREATE TABLE knowledge_documents(x)")  # a knowledge table, but not the schema
    broken.execute("INSERT INTO knowledge_documents VALUES (1)")
    warnings: list[str] = []
    hits = search_many([("local", conn), ("bob", bare), ("carol", broken)], "iptables", mode="bm25",
                       on_warning=warnings.append)
    assert paths(hits) == ["runbooks/kube-proxy.md"]
    assert len(warnings) == 2 and warnings[0].startswith("bob has no knowledge") and "carol" in warnings[1]


def test_search_many_raises_bad_syntax_once(conn):
    with pytest.raises(QueryError):
        search_many([("local", conn)], "web AND", mode="bm25")
