"""``knowledge:PATH`` shares between two real stores over the in-memory wire of
tests/peer_sync_helpers.py (core/peers/knowledge_share.py, knowledge_replica.py, and their hooks in
shares, pages, replica, sync and bundle): real files ingested with core/knowledge/ingest.py, only
what lies under the shared path sent (checked in every frame), updates and deletes carried, and
every bad item refusing its page whole with nothing written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from knowledge_helpers import write_notes
from peer_sync_helpers import befriend, make_node, pull, refused_pull

from tessera.core.errors import UsageError
from tessera.core.knowledge import embedding, index
from tessera.core.knowledge.ingest import embedding_text, ingest_paths
from tessera.core.peers import bundle, knowledge_share, page_signing, pages, replica, replica_files, shares
from tessera.core.store.db import transaction
from tests.test_peer_sync import alice_bob, share  # noqa: F401  (a fixture and a helper)

PRIVATE = "PRIVATE-RUNBOOK-42: the root password is hunter2"




def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def notes_tree(base: Path) -> Path:
    """/…/notes with public/ (the fixture runbooks plus one note) and private/ (a secret)."""
    notes = base / "notes"
    write_notes(notes / "public")  # public/notes/… : runbooks, a text note, code
    write(notes / "public" / "disk.md", "# Disk full\n\nWhen the node's disk fills, prune images.\n")
    write(notes / "private" / "secret.md", f"# Secret\n\n{PRIVATE}\n")
    return notes.resolve()


def replica_documents(puller, sender) -> dict[tuple[str, str], str]:
    conn = replica_files.open_read_only(sender.node_id, puller.path)
    if conn is None:
        return {}
    try:
        return {(r, p): h for r, p, h in conn.execute("SELECT root, path, hash FROM knowledge_documents")}
    finally:
        conn.close()


def replica_text(puller, sender) -> str:
    conn = replica_files.open_read_only(sender.node_id, puller.path)
    try:
        return "\n".join(t for (t,) in conn.execute("SELECT text FROM knowledge_chunks"))
    finally:
        conn.close()


def test_a_share_of_one_ingested_folder_carries_it_and_no_frame_holds_the_other(alice_bob, tmp_path):
    alice, bob = alice_bob
    notes = notes_tree(tmp_path)
    ingest_paths(alice.conn, [str(notes / "public"), str(notes / "private")])  # two roots
    share(alice, f"knowledge:{notes / 'public'}", bob)

    report, wire = pull(bob, alice)
    assert report.ok, report.error
    got = replica_documents(bob, alice)
    expected = {(str(notes / "public"), path) for path in index.stored_hashes(alice.conn, str(notes / "public"))}
    assert set(got) == expected and len(expected) == 6  # write_notes' five documents, disk.md
    assert report.shares[f"knowledge:{notes / 'public'}"].items == len(expected)
    for frame in wire.sent:
        assert b"PRIVATE-RUNBOOK" not in frame and b"hunter2" not in frame and b"private" not in frame

    # asking for the other folder anyway: one not_shared error, none of its bytes
    refusal, wire = refused_pull(alice, bob, f"knowledge:{notes / 'private'}")
    assert refusal.code == "not_shared" and len(wire.sent) == 1 and b"PRIVATE-RUNBOOK" not in wire.sent[0]
    refusal, wire = refused_pull(alice, bob, f"knowledge:{notes}")  # the parent is not granted either
    assert refusal.code == "not_shared" and b"PRIVATE-RUNBOOK" not in wire.sent[0]


def test_a_share_of_a_sub_folder_carries_only_that_part_and_of_a_parent_every_root_under_it(alice_bob, tmp_path):
    alice, bob = alice_bob
    notes = notes_tree(tmp_path)
    other = write(tmp_path / "elsewhere" / "x.md", "# Elsewhere\n\nnot under notes\n").parent.resolve()
    ingest_paths(alice.conn, [str(notes), str(other)])  # one root holding public/ and private/
    sub = f"knowledge:{notes / 'public' / 'notes' / 'runbooks'}"
    share(alice, sub, bob)
    assert shares.item_count(alice.conn, sub) == 2
    report, wire = pull(bob, alice)
    assert report.ok, report.error
    assert set(replica_documents(bob, alice)) == {(str(notes), "public/notes/runbooks/api.md"),
                                                  (str(notes), "public/notes/runbooks/web.md")}
    assert not any(b"PRIVATE-RUNBOOK" in f or b"not under notes" in f for f in wire.sent)

    # a share of one file carries that file
    one = f"knowledge:{notes / 'public' / 'disk.md'}"
    share(alice, one, bob)
    assert shares.item_count(alice.conn, one) == 1
    assert pull(bob, alice)[0].shares[one].items == 1

    # a share of the folder above both roots carries both (each document once however many shares hold it)
    top = f"knowledge:{tmp_path.resolve()}"
    share(alice, top, bob)
    report, _ = pull(bob, alice)
    assert report.ok, report.error
    assert set(replica_documents(bob, alice)) == {(r["root"], p) for r in index.roots(alice.conn)
                                                  for p in index.stored_hashes(alice.conn, r["root"])}
    assert PRIVATE in replica_text(bob, alice)  # shared now, by the parent's share


def test_updates_and_deletes_reach_the_replica_and_nothing_unchanged_is_written_again(alice_bob, tmp_path):
    alice, bob = alice_bob
    notes = notes_tree(tmp_path)
    ingest_paths(alice.conn, [str(notes / "public")])
    item = f"knowledge:{notes / 'public'}"
    share(alice, item, bob)
    assert pull(bob, alice)[0].ok
    root = str(notes / "public")

    write(notes / "public" / "disk.md", "# Disk full\n\nWhen the disk fills, run `crictl rmi --prune`.\n")
    (notes / "public" / "notes" / "tools" / "check.sh").unlink()
    ingest_paths(alice.conn, [root])
    report, _ = pull(bob, alice)
    assert report.ok and report.shares[item].items == 2  # one updated, one removed
    assert {p: h for (r, p), h in replica_documents(bob, alice).items()} == index.stored_hashes(alice.conn, root)
    assert "crictl rmi --prune" in replica_text(bob, alice)
    conn = replica_files.open_read_only(alice.node_id, bob.path)
    assert [r[0] for r in conn.execute("SELECT rowid FROM knowledge_fts WHERE knowledge_fts MATCH 'crictl'")]
    conn.close()

    again, _ = pull(bob, alice)
    assert again.ok and again.shares[item].items == 0
    # changes elsewhere move the cursor but send nothing of theirs
    write(tmp_path / "other" / "o.md", "# Other\n\nnot shared text OTHER-99\n")
    ingest_paths(alice.conn, [str(tmp_path / "other")])
    report, wire = pull(bob, alice)
    assert report.ok and report.shares[item].items == 0
    assert report.shares[item].cursor == knowledge_share.latest_cursor(alice.conn)
    assert not any(b"OTHER-99" in f for f in wire.sent)


def test_chunks_are_embedded_at_the_receiver_and_its_mentions_extracted_there(alice_bob, tmp_path):
    alice, bob = alice_bob
    notes = notes_tree(tmp_path)
    ingest_paths(alice.conn, [str(notes / "public")])
    item = f"knowledge:{notes / 'public'}"
    page = pages.build(alice.conn, item, 0, signing_key=alice.key)
    items = pages.items_of(page)
    assert items and all("embedding" not in c for it in items for c in it["chunks"])  # not sent: 1 KiB a chunk
    share(alice, item, bob)
    assert pull(bob, alice)[0].ok
    conn = replica_files.open_read_only(alice.node_id, bob.path)
    doc = index.read_document(conn, str(notes / "public"), "notes/runbooks/web.md", embeddings=True)
    mine = index.read_document(alice.conn, str(notes / "public"), "notes/runbooks/web.md", embeddings=True)
    conn.close()
    assert [c.mentions for c in doc.chunks] == [c.mentions for c in mine.chunks]
    expected = embedding.embed([embedding_text(doc, c) for c in doc.chunks])
    assert embedding.from_blobs([c.embedding for c in doc.chunks]).tolist() == expected.tolist()


def _forged(sender, item, cursor_from, cursor_to, items, more=False):
    page = {"type": "page", "share": item, "cursor_from": cursor_from, "cursor_to": cursor_to, "more": more,
            "items": pages.pack_items(items)}
    return page_signing.signed(page, sender.key, inner_sorted=True)


def _document(root, path, text="some text", **changes):
    doc = {"op": "upsert", "change": 1, "root": root, "root_given": root, "path": path, "kind": "markdown",
           "title": "T", "size": len(text), "mtime": "2026-12-01T00:00:00Z", "hash": hashlib.sha256(text.encode()).hexdigest(),
           "language": None, "tags": [], "links": [], "front_matter": {},
           "chunks": [{"ordinal": 0, "heading": "", "start_line": 1, "end_line": 1, "text": text, "mentions": []}]}
    doc.update(changes)
    return doc


def _bad_chunks(**changes):
    return [{"ordinal": 0, "heading": "", "start_line": 1, "end_line": 1, "text": "x", **changes}]


BAD_ITEMS = {
    "a path escaping with ..": lambda: _document("/notes/public", "../private/secret.md"),
    "a root escaping with ..": lambda: _document("/notes/public/../private", "secret.md"),
    "a document outside the share": lambda: _document("/notes/private", "secret.md"),
    "a sibling with the same start": lambda: _document("/notes/public-not", "a.md"),
    "an absolute path": lambda: _document("/notes/public", "/etc/passwd"),
    "an empty part": lambda: _document("/notes/public", "a//b.md"),
    "a delete outside the share": lambda: {"op": "delete", "change": 1, "root": "/notes", "path": "private/x.md"},
    "no op": lambda: {k: v for k, v in _document("/notes/public", "a.md").items() if k != "op"},
    "not a map": lambda: ["op", "upsert"],
    "a missing field": lambda: {k: v for k, v in _document("/notes/public", "a.md").items() if k != "hash"},
    "a field of the wrong type": lambda: _document("/notes/public", "a.md", size="12"),
    "a bad kind": lambda: _document("/notes/public", "a.md", kind="pdf"),
    "a bad hash": lambda: _document("/notes/public", "a.md", hash="zz"),
    "a chunk without text": lambda: _document("/notes/public", "a.md", chunks=[{"ordinal": 0, "heading": "",
                                                                                 "start_line": 1, "end_line": 1}]),
    "repeated ordinals": lambda: _document("/notes/public", "a.md", chunks=_bad_chunks() * 2),
    "too many chunks": lambda: _document("/notes/public", "a.md", chunks=[
        {"ordinal": i, "heading": "", "start_line": 1, "end_line": 1, "text": ""} for i in range(20_001)]),
    "an oversized document": lambda: _document("/notes/public", "a.md", "x" * (knowledge_share.MAX_DOCUMENT_BYTES + 1)),
    "front matter that is not JSON": lambda: _document("/notes/public", "a.md", front_matter={"k": b"\x00bytes"}),
    "a change past the page": lambda: _document("/notes/public", "a.md", change=99),
    "tags that are not strings": lambda: _document("/notes/public", "a.md", tags=[1]),
}


@pytest.mark.parametrize("bad", sorted(BAD_ITEMS))
def test_a_signed_page_with_one_bad_item_is_refused_whole_and_nothing_is_written(alice_bob, bad):
    alice, bob = alice_bob
    item = "knowledge:/notes/public"
    good = _document("/notes/public", "ok.md", "a good document")
    page = _forged(alice, item, 0, 2, [good, BAD_ITEMS[bad]()])
    target = replica.open_for_write(alice.node_id, bob.path)
    try:
        with pytest.raises(replica.PageRefused) as refused:
            replica.apply(target, alice.node_id, page)
        assert "nothing of it was stored" in refused.value.message and "\n" not in refused.value.one_line()
        assert target.execute("SELECT count(*) FROM knowledge_documents").fetchone()[0] == 0
        assert target.execute("SELECT count(*) FROM knowledge_chunks").fetchone()[0] == 0
        assert replica.cursors(target) == {}
        # the good item alone is filed: the refusal was the bad item's
        assert replica.apply(target, alice.node_id, _forged(alice, item, 0, 2, [good])) == 1
        assert target.execute("SELECT path FROM knowledge_documents").fetchall() == [("ok.md",)]
    finally:
        target.close()


def test_a_page_naming_a_share_path_that_is_not_canonical_is_refused(alice_bob):
    alice, bob = alice_bob
    target = replica.open_for_write(alice.node_id, bob.path)
    try:
        for item in ("knowledge:/notes/../etc", "knowledge:notes", "knowledge://notes", "knowledge:/notes/"):
            with pytest.raises(replica.PageRefused, match="names no valid share"):
                replica.apply(target, alice.node_id, _forged(alice, item, 0, 1, []))
    finally:
        target.close()


def test_share_paths_are_canonical_and_a_share_item_stays_within_the_wire_limit(tmp_path, monkeypatch):
    notes = (tmp_path / "notes").resolve()
    notes.mkdir()
    (tmp_path / "link").symlink_to(notes)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for typed in (str(tmp_path / "link"), "~/link", "link", "./notes/", str(notes / ".." / "notes")):
        assert shares.parse_item(f"knowledge:{typed}") == f"knowledge:{notes}", typed
    with pytest.raises(UsageError, match="a share is at most 300"):
        shares.parse_item("knowledge:/" + "d" * 300)
    with pytest.raises(UsageError, match="needs a path"):
        shares.parse_item("knowledge:")
    # received items are checked, not resolved: the path is the sender's
    assert shares.check_received("knowledge:/link") == "knowledge:/link"


def test_an_old_overlapping_page_does_not_bring_a_deleted_document_back(alice_bob, tmp_path):
    alice, bob = alice_bob
    notes = notes_tree(tmp_path)
    root = notes / "public"
    ingest_paths(alice.conn, [str(root)])
    item = f"knowledge:{root}"
    share(alice, item, bob)
    stale = pages.build(alice.conn, item, 0, signing_key=alice.key)  # say, in a bundle written now
    (root / "disk.md").unlink()
    ingest_paths(alice.conn, [str(root)])
    assert pull(bob, alice)[0].ok
    assert (str(root), "disk.md") not in replica_documents(bob, alice)
    target = replica.open_for_write(alice.node_id, bob.path)
    try:
        assert replica.apply(target, alice.node_id, stale, overlap=True) == 0
    finally:
        target.close()
    assert (str(root), "disk.md") not in replica_documents(bob, alice)


def test_a_bundle_carries_a_knowledge_share_and_a_full_pull_rebuilds_it(alice_bob, tmp_path):
    alice, bob = alice_bob
    notes = notes_tree(tmp_path)
    ingest_paths(alice.conn, [str(notes / "public")])
    item = f"knowledge:{notes / 'public'}"
    share(alice, item, bob)
    path = tmp_path / "alice.tbundle"
    bundle.write(alice.conn, path, bundle.export_items(alice.conn, [item], bob.node_id), signing_key=alice.key,
                 signer=alice.node_id, name="alice", recipient=bob.node_id)
    assert PRIVATE.encode() not in path.read_bytes()
    _, stored = bundle.import_bundle(bob.conn, path, local_node_id=bob.node_id)
    assert stored == {item: 6}
    assert {p for _, p in replica_documents(bob, alice)} == set(index.stored_hashes(alice.conn, str(notes / "public")))
    # importing it again files nothing twice
    assert bundle.import_bundle(bob.conn, path, local_node_id=bob.node_id)[1] == {item: 0}

    # a full pull empties the replica's knowledge too, then files what is shared now
    with transaction(alice.conn):
        shares.remove(alice.conn, item)
    share(alice, f"knowledge:{notes / 'public' / 'disk.md'}", bob)
    report, _ = pull(bob, alice, full=True)
    assert report.ok, report.error
    assert set(replica_documents(bob, alice)) == {(str(notes / "public"), "disk.md")}
    conn = replica_files.open_read_only(alice.node_id, bob.path)
    assert conn.execute("SELECT count(*) FROM knowledge_fts").fetchone()[0] == \
        conn.execute("SELECT count(*) FROM knowledge_chunks").fetchone()[0]
    conn.close()


def test_pages_of_a_large_share_keep_to_their_limits_and_a_pull_files_them_all(alice_bob, tmp_path, monkeypatch):
    alice, bob = alice_bob
    root = tmp_path / "many"
    for n in range(40):
        write(root / f"d{n:02}.md", f"# Doc {n}\n\n" + f"paragraph {n} " * 200 + "\n")
    ingest_paths(alice.conn, [str(root)])
    item = f"knowledge:{root.resolve()}"
    share(alice, item, bob)
    monkeypatch.setattr(pages, "PAGE_BYTES", 20_000)  # a few documents a page
    first = pages.build(alice.conn, item, 0, limit=3, signing_key=alice.key)
    assert len(pages.items_of(first)) <= 3 and first["more"]
    report, _ = pull(bob, alice)
    assert report.ok and report.shares[item].pages > 3
    assert len(replica_documents(bob, alice)) == 40


def test_a_signed_knowledge_page_of_anything_is_filed_or_refused_never_a_crash(alice_bob):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    alice, bob = alice_bob
    copy = replica.open_for_write(alice.node_id, bob.path)
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=12),
                        st.binary(max_size=8))
    plain = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(st.one_of(st.text(max_size=5), st.binary(max_size=3)),
                                                                          inner, max_size=3)), max_leaves=8)
    chunk_fields = st.sampled_from(["ordinal", "heading", "start_line", "end_line", "text", "mentions", "embedding"])
    chunk = st.one_of(plain, st.dictionaries(chunk_fields, plain, max_size=7),
                      st.builds(lambda c: {**_bad_chunks()[0], **c}, st.dictionaries(chunk_fields, plain, max_size=2)))
    fields = st.sampled_from(["op", "change", "root", "root_given", "path", "kind", "title", "size", "mtime", "hash",
                              "language", "tags", "links", "front_matter", "chunks"])
    roots = st.sampled_from(["/notes", "/notes/public", "/", "/notes/../x", "notes", "/notes/"])
    paths = st.sampled_from(["a.md", "public/a.md", "../a.md", "", "a//b", "/a", "./a", "a\x00b"])
    item = st.one_of(
        st.builds(lambda path, change: _document("/notes", path, change=change), st.sampled_from(["a.md", "b/c.md"]),
                  st.integers(1, 5)),  # well formed: filed when its change is within the page
        plain,
        st.builds(lambda root, path, changes, chunks: {**_document(root, path), **changes,
                                                       **({"chunks": chunks} if chunks is not None else {})},
                  roots, paths, st.dictionaries(fields, plain, max_size=2), st.one_of(st.none(), st.lists(chunk, max_size=3))),
        st.builds(lambda root, path, change: {"op": "delete", "change": change, "root": root, "path": path},
                  roots, paths, st.one_of(st.integers(-1, 5), plain)))
    page = st.fixed_dictionaries({"type": st.just("page"), "more": st.booleans(),
                                  "share": st.sampled_from(["knowledge:/notes", "knowledge:/", "knowledge:/notes/public"]),
                                  "cursor_from": st.just(0), "cursor_to": st.integers(0, 5),
                                  "items": st.lists(item, max_size=3).map(pages.pack_items)})

    def contents():
        return [copy.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                for table in ("knowledge_documents", "knowledge_chunks", "knowledge_changes", "sync_cursors")]

    @settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(page)
    def check(candidate):
        with transaction(copy):  # each example starts from an empty replica
            for table in ("knowledge_fts", "knowledge_chunks", "knowledge_documents", "knowledge_changes", "sync_cursors"):
                copy.execute(f"DELETE FROM {table}")
        before = contents()
        try:
            filed.append(replica.apply(copy, alice.node_id, page_signing.signed(candidate, alice.key, inner_sorted=True)))
        except replica.PageRefused:
            assert contents() == before  # refused: nothing written
        assert not copy.in_transaction

    filed: list[int] = []
    try:
        check()
    finally:
        copy.close()
    assert any(filed), "no example reached the writes"


def test_a_document_too_large_for_a_frame_stays_home_and_the_rest_of_the_share_goes(alice_bob, tmp_path, monkeypatch):
    alice, bob = alice_bob
    root = tmp_path / "kb"
    write(root / "small.md", "# Small\n\nfits\n")
    write(root / "large.md", "# Large\n\n" + "word " * 4000 + "\n")
    ingest_paths(alice.conn, [str(root)])
    item = f"knowledge:{root.resolve()}"
    share(alice, item, bob)
    monkeypatch.setattr(knowledge_share, "MAX_DOCUMENT_BYTES", 10_000)  # large.md packs to about 20 KB
    report, _ = pull(bob, alice)
    assert report.ok and report.shares[item].cursor == knowledge_share.latest_cursor(alice.conn)
    assert {p for _, p in replica_documents(bob, alice)} == {"small.md"}


def test_a_shared_kep_folder_searches_the_same_at_the_receiver(alice_bob):
    """Real prose (../shared/corpus/kubernetes-keps): what bob files from alice's share of a sig's
    KEPs ranks exactly as alice's own index does, in every mode (same text, same model, same
    bm25 statistics), and a share of one KEP's folder under that root carries only it."""
    from knowledge_helpers import kep_corpus

    from tessera.core.knowledge.search import search

    alice, bob = alice_bob
    sig = (kep_corpus() / "keps" / "sig-autoscaling").resolve()
    ingest_paths(alice.conn, [str(sig)])
    item = f"knowledge:{sig}"
    share(alice, item, bob)
    report, _ = pull(bob, alice)
    assert report.ok, report.error
    assert report.shares[item].items == shares.item_count(alice.conn, item) > 10
    copy = replica_files.open_read_only(alice.node_id, bob.path)
    try:
        for text in ("autoscaler custom metrics", "scale to zero", "horizontal pod autoscaler"):
            for mode in ("bm25", "semantic", "hybrid"):
                theirs = [(h.path, h.heading, h.score) for h in search(copy, text, mode=mode)]
                assert theirs == [(h.path, h.heading, h.score) for h in search(alice.conn, text, mode=mode)], (text, mode)
                assert theirs, (text, mode)
    finally:
        copy.close()

    one = sorted(p for p in index.stored_hashes(alice.conn, str(sig)) if "/" in p)[0].split("/")[0]
    carol = make_node(alice.path.parent.parent, "carol")
    befriend(alice, carol)
    share(alice, f"knowledge:{sig / one}", carol)
    assert pull(carol, alice)[0].ok
    got = {p for _, p in replica_documents(carol, alice)}
    assert got and all(p.startswith(f"{one}/") for p in got)
