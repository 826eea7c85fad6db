"""The server side of the blob messages (core/blobs/serving.py) on a real store: every request
authorized against the peer list and the blob's grants, one error and no byte otherwise; and a
fetch that was killed between the rename into place and the row's update finishes without a peer."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from tessera.core.blobs import blob_store, fetch, grants, serving
from tessera.core.peers import frames, message_types, peer_list
from tessera.core.store.db import connect, transaction

PEER = "cd" * 32
DATA = hashlib.shake_256(b"serving").digest(40_000)


@pytest.fixture
def conn(tmp_path):
    c = connect(tmp_path / "tessera.db")
    with transaction(c):
        peer_list.add(c, PEER, "bob", publish=True, added_at="2026-12-01T00:00:00Z")
    yield c
    c.close()


def ask(conn, request_type: str, **fields) -> dict:
    request = message_types.make(request_type, **fields)
    answer = serving.answer(conn, PEER, request)
    message_types.check(frames.decode_body(frames.encode(answer)[4:]))  # a frame the peer accepts
    return answer


def test_a_granted_blob_is_answered_with_its_manifest_and_chunks(conn):
    blob_id = blob_store.put_bytes(conn, DATA, chunk_size=16 * 1024, grant_to=[PEER])
    manifest = ask(conn, "blob_manifest_request", blob=blob_id)
    assert (manifest["type"], manifest["size"], manifest["chunk_size"]) == ("blob_manifest", 40_000, 16 * 1024)
    assert blob_store.info(conn, blob_id).manifest.chunks == manifest["chunks"]
    chunks = [ask(conn, "blob_get", blob=blob_id, index=i)["data"] for i in range(3)]
    assert b"".join(chunks) == DATA
    out_of_range = ask(conn, "blob_get", blob=blob_id, index=3)
    assert (out_of_range["type"], out_of_range["code"]) == ("error", "malformed")


def test_a_blob_not_granted_not_held_or_removed_is_one_not_shared_error_and_no_byte(conn):
    private = blob_store.put_bytes(conn, DATA + b"private", chunk_size=16 * 1024)
    shared = blob_store.put_bytes(conn, DATA, chunk_size=16 * 1024, grant_to=[PEER])
    unknown = "e" * 64
    answers = [ask(conn, "blob_manifest_request", blob=private), ask(conn, "blob_get", blob=private, index=0),
               ask(conn, "blob_manifest_request", blob=unknown)]
    blob_store.remove(conn, shared)
    answers.append(ask(conn, "blob_get", blob=shared, index=0))
    for answer in answers:
        assert (answer["type"], answer["code"]) == ("error", "not_shared"), answer
        assert "tessera blob share" in answer["fix"] and "data" not in answer and "chunks" not in answer
    with transaction(conn):
        grants.grant(conn, private, [PEER])
    assert ask(conn, "blob_get", blob=private, index=0)["type"] == "blob_chunk"


def test_a_peer_no_longer_published_to_is_refused_on_its_next_request(conn):
    blob_id = blob_store.put_bytes(conn, DATA, grant_to=[PEER])
    assert ask(conn, "blob_manifest_request", blob=blob_id)["type"] == "blob_manifest"
    with transaction(conn):
        peer_list.add(conn, PEER, "bob", publish=False, added_at="2026-12-01T00:00:00Z")
    refused = ask(conn, "blob_get", blob=blob_id, index=0)
    assert (refused["type"], refused["code"]) == ("error", "not_authorized")
    with transaction(conn):
        peer_list.remove(conn, PEER)
    assert ask(conn, "blob_get", blob=blob_id, index=0)["code"] == "unknown_peer"


def test_a_fetch_killed_after_the_rename_is_finished_without_asking_a_peer(conn):
    blob_id = blob_store.put_bytes(conn, DATA, chunk_size=16 * 1024)
    with transaction(conn):  # as a kill between install's rename and its update leaves it
        conn.execute("UPDATE blobs SET complete = 0 WHERE id = ?", (blob_id,))
        conn.execute("INSERT INTO blob_progress(blob_id, chunk) VALUES (?, 0), (?, 1)", (blob_id, blob_id))
    assert not blob_store.has(conn, blob_id)
    report = fetch.FetchReport(blob_id)
    path = asyncio.run(fetch.fetch(conn, None, blob_id, [], report=report))
    assert report.already_held and blob_store.has(conn, blob_id) and path.read_bytes() == DATA
    assert conn.execute("SELECT count(*) FROM blob_progress").fetchone()[0] == 0
