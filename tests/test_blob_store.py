"""The blob store on real SQLite stores and files (issue 15 point 5): content addressing, the
manifest checked against the id and each chunk against the manifest, atomic 0600 writes in a
0700 directory, the limits checked before a byte is read, and the `tessera blob` commands'
one-line errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tessera.core.blobs import blob_store, grants, manifest
from tessera.core.errors import UsageError
from tessera.core.store.db import connect, transaction

TSR = [sys.executable, "-m", "tessera.cli.main"]


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TESSERA_HOME": str(home / "data"), "TESSERA_CONFIG_DIR": str(home / "config")}
    return subprocess.run([*TSR, *args], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def data_of(n: int, seed: str = "x") -> bytes:
    return hashlib.shake_256(seed.encode()).digest(n)


@pytest.fixture
def conn(tmp_path):
    c = connect(tmp_path / "a" / "tessera.db")
    yield c
    c.close()


def test_the_same_content_with_the_same_chunk_size_has_the_same_id_on_every_node(tmp_path, conn):
    other = connect(tmp_path / "b" / "tessera.db")
    data = data_of(100_000)
    first = blob_store.put_bytes(conn, data, chunk_size=16 * 1024)
    assert blob_store.put_bytes(other, data, chunk_size=16 * 1024) == first
    assert blob_store.put_bytes(other, data, chunk_size=32 * 1024) != first  # the chunk size is part of the id
    assert blob_store.put_bytes(other, data[:-1] + b"!", chunk_size=16 * 1024) != first
    found = blob_store.info(conn, first)
    assert found.manifest.chunk_count == 7 and found.size == 100_000
    assert manifest.verify(first, found.size, found.chunk_size, found.manifest.chunks).blob_id == first
    other.close()


def test_a_manifest_that_does_not_hash_to_the_id_is_refused(conn):
    blob_id = blob_store.put_bytes(conn, data_of(50_000), chunk_size=16 * 1024)
    good = blob_store.info(conn, blob_id).manifest
    tampered = bytes([good.chunks[0] ^ 1]) + good.chunks[1:]
    with pytest.raises(manifest.ManifestMismatch, match="does not hash to the blob id"):
        manifest.verify(blob_id, good.size, good.chunk_size, tampered)
    with pytest.raises(manifest.ManifestMismatch, match="lists"):
        manifest.verify(blob_id, good.size + 20_000, good.chunk_size, good.chunks)
    with pytest.raises(manifest.ManifestMismatch):
        manifest.verify(blob_id, good.size, 1, good.chunks)
    with pytest.raises(manifest.ManifestMismatch, match="chunk 1's SHA-256"):
        manifest.check_chunk(good, 1, b"\x00" * good.chunk_span(1)[1])
    with pytest.raises(manifest.ManifestMismatch, match="bytes, not"):
        manifest.check_chunk(good, 3, b"short")


def test_put_writes_a_private_file_atomically_and_read_bytes_verifies_it(conn, tmp_path):
    data = data_of(40_000)
    blob_id = blob_store.put_bytes(conn, data, chunk_size=16 * 1024)
    directory = tmp_path / "a" / "blobs"
    assert (directory.stat().st_mode & 0o777) == 0o700
    assert ((directory / blob_id).stat().st_mode & 0o777) == 0o600
    assert [p.name for p in directory.iterdir() if p.is_file()] == [blob_id]  # no temporary file left
    assert blob_store.has(conn, blob_id) and blob_store.read_bytes(conn, blob_id) == data
    damaged = bytearray(data)
    damaged[20_000] ^= 1
    (directory / blob_id).write_bytes(bytes(damaged))
    with pytest.raises(blob_store.BlobError, match="is damaged: chunk 1's SHA-256"):
        blob_store.read_bytes(conn, blob_id)
    assert blob_store.remove(conn, blob_id) and not blob_store.has(conn, blob_id) and not (directory / blob_id).exists()


def test_an_empty_blob_and_one_chunk_exactly(conn):
    assert blob_store.read_bytes(conn, blob_store.put_bytes(conn, b"")) == b""
    exact = data_of(16 * 1024)
    blob_id = blob_store.put_bytes(conn, exact, chunk_size=16 * 1024)
    assert blob_store.info(conn, blob_id).manifest.chunk_count == 1 and blob_store.read_bytes(conn, blob_id) == exact


def test_grants_are_per_blob_and_per_peer(conn):
    peer = "ab" * 32
    blob_id = blob_store.put_bytes(conn, b"result", grant_to=[peer])
    other = blob_store.put_bytes(conn, b"other")
    assert grants.is_granted(conn, blob_id, peer) and not grants.is_granted(conn, other, peer)
    with transaction(conn):
        grants.revoke(conn, blob_id, [peer])
    assert not grants.is_granted(conn, blob_id, peer)


@pytest.mark.parametrize("text, size", [("16KiB", 16384), ("1MiB", 1048576), ("2M", 2097152), ("65536", 65536),
                                        ("256 kib", 262144)])
def test_chunk_sizes_are_read_with_binary_units(text, size):
    assert manifest.parse_chunk_size(text) == size


@pytest.mark.parametrize("text", ["8KiB", "3MiB", "1.5MiB", "lots", "16XB", ""])
def test_a_chunk_size_out_of_bounds_or_unreadable_is_a_usage_error(text):
    with pytest.raises(UsageError):
        manifest.parse_chunk_size(text)


def test_a_manifest_over_one_frame_is_refused_before_a_byte_is_read(tmp_path):
    big = tmp_path / "huge.tsrec"
    with open(big, "wb") as sparse:  # 3 GiB of holes: refused on its size alone, never read
        sparse.truncate(3 * 1024 ** 3)
    result = run(tmp_path, "blob", "put", str(big), "--chunk-size", "16KiB")
    assert result.returncode == 2, result.stderr
    assert f"at most {manifest.MAX_CHUNKS} chunks" in result.stderr and "--chunk-size 32KiB or more" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not any((tmp_path / "data" / "blobs").glob(".put-*"))
    # the frame limit holds for the largest manifest allowed
    from tessera.core.peers import frames, message_types

    largest = message_types.make("blob_manifest", blob="0" * 64, size=1, chunk_size=16384,
                                 chunks=b"\x00" * 32 * manifest.MAX_CHUNKS)
    assert len(frames.encode(largest)) <= frames.MAX_FRAME_BYTES
    chunk = message_types.make("blob_chunk", blob="0" * 64, index=2 ** 31, data=b"\x00" * manifest.MAX_CHUNK_SIZE)
    assert len(frames.encode(chunk)) <= frames.MAX_FRAME_BYTES


def test_blob_commands_put_list_share_rm_and_their_errors(tmp_path):
    file = tmp_path / "export.md"
    file.write_bytes(data_of(70_000))
    put = run(tmp_path, "blob", "put", str(file), "--chunk-size", "16KiB")
    assert put.returncode == 0, put.stderr
    blob_id = put.stdout.strip()
    assert len(blob_id) == 64
    listed = run(tmp_path, "blob", "list", "--json")
    import json

    [row] = json.loads(listed.stdout)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert (row["id"], row["size"], row["chunks"], row["state"], row["name"]) == (blob_id, 70_000, 5, "held", "export.md")
    for args, code, text in [
        (("blob", "put", str(tmp_path / "missing")), 2, "cannot read"),
        (("blob", "put", str(tmp_path)), 2, "not a regular file"),
        (("blob", "put", str(fifo)), 2, "not a regular file"),
        (("blob", "put", str(file), "--chunk-size", "1KiB"), 2, "out of bounds"),
        (("blob", "put", str(file), "--share-with", "nobody"), 2, "no peer 'nobody'"),
        (("blob", "share", blob_id, "--with", "nobody"), 2, "no peer 'nobody'"),
        (("blob", "rm", "0123456789abcdef"), 2, "no blob '0123456789abcdef'"),
        (("blob", "get", "not-an-id"), 2, "is not a blob id"),
        (("blob", "get", "f" * 64), 2, "no peer to fetch"),
    ]:
        result = run(tmp_path, *args)
        assert result.returncode == code and text in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    out = tmp_path / "copy.md"
    held = run(tmp_path, "blob", "get", blob_id[:12], "-o", str(out))  # held already: no peer needed
    assert held.returncode == 0 and json.loads(held.stdout)["already_held"], held.stderr
    assert out.read_bytes() == file.read_bytes() and (out.stat().st_mode & 0o777) == 0o600
    bob, carol = "ab" * 32, "ef" * 32
    assert run(tmp_path, "peer", "add", bob, "--name", "bob", "--publish").returncode == 0
    assert run(tmp_path, "peer", "add", carol, "--name", "carol", "--subscribe").returncode == 0
    shared = run(tmp_path, "blob", "share", blob_id[:12], "--with", "carol")
    assert shared.returncode == 0 and "warning: carol cannot fetch it yet" in shared.stderr, shared.stderr
    assert run(tmp_path, "blob", "share", blob_id[:12], "--with", "bob").returncode == 0
    assert json.loads(run(tmp_path, "blob", "list", "--json").stdout)[0]["shared_with"] == ["bob", "carol"]
    assert run(tmp_path, "blob", "unshare", blob_id[:12], "--with", "bob").returncode == 0
    assert json.loads(run(tmp_path, "blob", "list", "--json").stdout)[0]["shared_with"] == ["carol"]
    again = run(tmp_path, "blob", "unshare", blob_id[:12], "--with", "bob")
    assert again.returncode == 2 and "is not shared with bob" in again.stderr
    removed = run(tmp_path, "blob", "rm", blob_id[:12])
    assert removed.returncode == 0 and json.loads(run(tmp_path, "blob", "list", "--json").stdout) == []
