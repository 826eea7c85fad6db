"""Owner-run panes too large for one message (issue 15, big panes): pane_wire's "blob" messages.
The encoder stores such a snapshot as a blob and names it; the assembler awaits the blob, holds
what comes meanwhile, applies the blob's snapshot and then the held changes; a newer snapshot
supersedes the fetch; over MAX_PANE_BLOB_BYTES (or when the owner cannot store it) the snapshot
still goes truncated, saying why. The real transfer between serves is tests/test_collab_big_cli.py."""

from __future__ import annotations

import hashlib

import msgpack
import pytest

from tessera.core.collab.pane_wire import (PANE_INLINE_LIMIT, OutOfStep, PaneAssembler, PaneEncoder, PaneWireError,
                                           decode, read_blob)
from tessera.core.notebook.session import PaneState
from tessera.core.result import Result

LIMIT = 64 * 1024  # a small inline limit, so a test's "big" pane is small


def state(n: int, *, width: int = 500, changed: dict | None = None, version: int = 1) -> PaneState:
    rows = [{"pod": f"p{i}", "note": "x" * width} for i in range(n)]
    for i, row in (changed or {}).items():
        rows[i] = row
    return PaneState(cell={"id": "c1", "type": "query"}, status="live", version=version,
                     result=Result(columns=["pod", "note"], rows=rows, keys=[f"k{i}" for i in range(n)]))


class BlobShelf:
    """store_blob for the tests: content-addressed, as blob_store is."""

    def __init__(self):
        self.blobs: dict[str, bytes] = {}

    def __call__(self, cell_id: str, data: bytes) -> str:
        blob_id = hashlib.sha256(data).hexdigest()
        self.blobs[blob_id] = data
        return blob_id


def test_a_snapshot_over_the_limit_goes_as_a_blob_and_arrives_whole_then_changes_follow_it():
    shelf = BlobShelf()
    enc, asm = PaneEncoder(limit=LIMIT, store_blob=shelf), PaneAssembler()
    first = enc.encode("c1", state(400))  # about 200 KiB of rows
    assert len(first) < 1024
    message = msgpack.unpackb(first)
    assert message["kind"] == "blob" and message["total"] == 400 and message["blob"] in shelf.blobs
    assert message["size"] == len(shelf.blobs[message["blob"]]) > LIMIT
    view = asm.apply("c1", first)
    assert view.fetching == (message["blob"], message["size"], 1) and not view.has_rows
    # one pod changes while the viewer fetches: it goes as a change (the owner counts the viewer
    # as holding every row) and is held until the blob is there
    second = enc.encode("c1", state(400, changed={7: {"pod": "p7", "note": "Failed"}}, version=2))
    assert msgpack.unpackb(second)["kind"] == "changes" and len(second) < 1024
    held = asm.apply("c1", second)
    assert held.fetching is not None and not held.has_rows
    view = asm.apply_blob("c1", message["blob"], read_blob(shelf.blobs[message["blob"]]))
    assert view.fetching is None and not view.truncated and view.seq == 2
    result = view.result()
    assert len(result.rows) == 400 and not result.warnings
    assert result.rows[7] == {"pod": "p7", "note": "Failed"} and result.rows[8]["note"] == "x" * 500
    # and after it, changes apply directly
    third = enc.encode("c1", state(400, changed={7: {"pod": "p7", "note": "Running"}}, version=3))
    assert asm.apply("c1", third).result().rows[7]["note"] == "Running"


def test_a_newer_snapshot_supersedes_the_blob_being_fetched():
    shelf = BlobShelf()
    enc, asm = PaneEncoder(limit=LIMIT, store_blob=shelf), PaneAssembler()
    first = msgpack.unpackb(enc.encode("c1", state(400)))
    asm.apply("c1", msgpack.packb(first))
    enc.forget("c1")  # a run again: the next message is a snapshot, a new blob
    second = msgpack.unpackb(enc.encode("c1", state(401, version=2)))
    assert second["kind"] == "blob" and second["blob"] != first["blob"]
    asm.apply("c1", msgpack.packb(second))
    assert asm.apply_blob("c1", first["blob"], read_blob(shelf.blobs[first["blob"]])) is None  # superseded: ignored
    assert asm.blob_failed("c1", first["blob"]) is False
    assert len(asm.apply_blob("c1", second["blob"], read_blob(shelf.blobs[second["blob"]])).rows) == 401
    # an inline snapshot supersedes a fetch too
    enc.forget("c1")
    asm.apply("c1", enc.encode("c1", state(401, version=3)))
    small = PaneEncoder(limit=LIMIT, store_blob=shelf).encode("c1", state(3, version=4))
    view = asm.apply("c1", small)
    assert view.fetching is None and len(view.rows) == 3


def test_a_failed_fetch_stops_the_wait_and_the_next_message_asks_for_the_pane_again():
    shelf = BlobShelf()
    enc, asm = PaneEncoder(limit=LIMIT, store_blob=shelf), PaneAssembler()
    blob = msgpack.unpackb(enc.encode("c1", state(400)))["blob"]
    asm.apply("c1", msgpack.packb({**msgpack.unpackb(enc.snapshot("c1", state(400)))}))
    assert asm.blob_failed("c1", blob) is True
    assert asm.views["c1"].fetching is None
    with pytest.raises(OutOfStep):  # no rows: the change does not apply, the viewer asks again
        asm.apply("c1", enc.encode("c1", state(400, changed={1: {"pod": "p1", "note": "y"}}, version=2)))


def test_a_blob_that_is_not_the_snapshot_announced_is_refused_and_the_wait_ends():
    shelf = BlobShelf()
    enc, asm = PaneEncoder(limit=LIMIT, store_blob=shelf), PaneAssembler()
    blob = msgpack.unpackb(enc.encode("c1", state(400)))["blob"]
    asm.apply("c1", enc.snapshot("c1", state(400)))
    other = msgpack.unpackb(shelf.blobs[blob])
    with pytest.raises(PaneWireError, match="not the snapshot it was announced as"):
        asm.apply_blob("c1", blob, read_blob(msgpack.packb({**other, "seq": 9})))
    assert asm.views["c1"].fetching is None
    with pytest.raises(PaneWireError, match="not readable"):
        read_blob(b"\xc1 not msgpack")
    with pytest.raises(PaneWireError, match="not a snapshot"):
        read_blob(enc.encode("c1", state(400, changed={1: {"pod": "p1", "note": "y"}}, version=2)))


def test_over_the_blob_limit_or_when_the_owner_cannot_store_it_the_snapshot_is_truncated_saying_why():
    enc = PaneEncoder(limit=LIMIT, store_blob=BlobShelf(), blob_limit=100 * 1024)
    data = enc.encode("c1", state(400))
    message = decode(data)
    assert message["kind"] == "snapshot" and message["truncated"] and "over the 0.1 MiB" in message["why"]
    view = PaneAssembler().apply("c1", data)
    assert "of 400 rows" in view.result().warnings[0] and "over the 0.1 MiB" in view.result().warnings[0]

    def full(cell_id: str, data: bytes) -> str:
        raise OSError("No space left on device")

    message = decode(PaneEncoder(limit=LIMIT, store_blob=full).encode("c1", state(400)))
    assert message["truncated"] and "could not store" in message["why"] and "No space left" in message["why"]


@pytest.mark.parametrize("change, what", [
    ({"blob": "nope"}, "not a blob id"),
    ({"blob": "A" * 64}, "not a blob id"),
    ({"size": 0}, "'size'"),
    ({"size": 65 * 1024 * 1024}, "'size'"),
    ({"total": -1}, "'total'"),
])
def test_a_malformed_blob_message_is_one_line_for_the_pane(change, what):
    good = {"v": 1, "kind": "blob", "status": "live", "error": None, "fault": None, "refreshed": None,
            "sources": [], "seq": 1, "blob": "ab" * 32, "size": PANE_INLINE_LIMIT + 1, "total": 3}
    assert decode(msgpack.packb(good))["blob"] == "ab" * 32
    with pytest.raises(PaneWireError, match=what):
        PaneAssembler().apply("c1", msgpack.packb({**good, **change}))
