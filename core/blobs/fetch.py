"""Fetching a blob from one or more peers at once, chunk by chunk, verified and resumable.

1. The manifest: asked of every peer (each connection's first request), checked against the
   blob's id before any chunk is asked for; a peer whose manifest does not hash to the id is
   dropped as lying. The first good one is kept in the store (``blobs``, complete = 0).
2. The chunks: one connection per peer, each taking the next missing chunk from one shared queue
   and keeping up to WINDOW requests in flight (paced under the peers' rate limit), so the chunks
   are split between the connections as fast as each delivers. Every chunk is checked against
   the manifest before it is written (at its offset in ``blobs/partial/<id>.part``) and recorded
   in ``blob_progress`` right after, one transaction a chunk. A peer that fails (refuses, breaks
   the connection, stalls past CHUNK_SECONDS) or lies (a chunk that does not match) is dropped
   and its chunks in flight go back to the queue for the others. Once every chunk has been asked
   for, an idle connection also asks for chunks another one has had in flight for
   STRAGGLER_SECONDS (a peer that died or stalls mid-way): the first delivery is kept.
3. The end: the partial file is fsynced, verified whole (every chunk read back and hashed) and
   renamed into place (core/blobs/blob_store.install).

Killed at any moment, a fetch resumes from the chunks recorded; when the partial file is
shorter than they say (or gone), the chunks it still holds are read back and hashed before
their records are trusted, and the others fetched again. Local failures (a full disk, the
partial file vanishing) end the fetch at once with one line; the chunks verified stay recorded.
"""

from __future__ import annotations

import asyncio
import collections
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tessera.core.blobs import manifest as manifests
from tessera.core.blobs import blob_store
from tessera.core.blobs.manifest import Manifest, ManifestMismatch
from tessera.core.errors import (EXIT_UNAUTHORIZED, EXIT_UNAVAILABLE, NotAuthorized, SourceUnavailable,
                                 TesseraError, UsageError, printable)
from tessera.core.peers import message_types, rate_limit
from tessera.core.peers.frames import ProtocolError
from tessera.core.store.db import StoreError

WINDOW = 4  # chunk requests in flight on one connection
# Once every chunk has been asked for, an idle connection also asks for a chunk another one asked
# for this long ago and has not delivered (a peer killed mid-way is only noticed at QUIC's idle
# timeout, 30 s; a stalled one never): at most WINDOW chunks fetched twice, never a wait on one peer.
STRAGGLER_SECONDS = 10.0
STRAGGLER_POLL_SECONDS = 1.0
REREAD_ROUNDS = 3  # fetch, read back, fetch again what read back wrong: then it is the disk
CHUNK_SECONDS = 60.0  # a peer that sends no awaited chunk for this long is dropped
# Each serve allows a peer 20 requests a second in bursts of 40 (core/peers/rate_limit.py); a
# fetch paces its requests to each peer under that, as a sync pull does.
PACE_RATE = rate_limit.DEFAULT_RATE
PACE_BURST = rate_limit.DEFAULT_BURST - 5
RATE_LIMITED_PAUSE = rate_limit.DEFAULT_BURST / rate_limit.DEFAULT_RATE  # the peer's bucket is full again
RATE_LIMITED_TRIES = 5

OnChunk = Callable[[int, int, str], Any]  # (chunk index, its bytes, the peer's name)
OnNote = Callable[[str], Any]


class PeerLied(TesseraError):
    """A peer sent a manifest or chunk that does not match the blob's id."""


@dataclass
class PeerOutcome:
    name: str
    node_id: str
    chunks: int = 0  # verified chunks it delivered in this run
    error: str | None = None
    exit_code: int = 0


@dataclass
class FetchReport:
    blob_id: str
    size: int = 0
    chunk_count: int = 0
    resumed: int = 0  # chunks verified before this run (kept from a fetch that was stopped)
    fetched: int = 0  # chunks fetched and verified in this run
    read_back_wrong: int = 0  # chunks recorded whose bytes read back wrong at the end (fetched again)
    already_held: bool = False
    peers: dict[str, PeerOutcome] = field(default_factory=dict)
    path: Path | None = None

    def as_dict(self) -> dict:
        return {"blob": self.blob_id, "size": self.size, "chunks": self.chunk_count, "resumed": self.resumed,
                "fetched": self.fetched, "read_back_wrong": self.read_back_wrong, "already_held": self.already_held,
                "path": str(self.path) if self.path else None,
                "from": {name: {"chunks": p.chunks, "error": p.error} for name, p in self.peers.items()}}


class _Progress:
    """The fetch's shared state: the manifest, the partial file, the queue of missing chunks."""

    def __init__(self, conn: sqlite3.Connection, blob_id: str, report: FetchReport, on_chunk: OnChunk | None,
                 on_note: OnNote | None):
        self.conn, self.blob_id, self.report = conn, blob_id, report
        self.on_chunk, self.on_note = on_chunk, on_note
        self.manifest: Manifest | None = None
        self.part: Path | None = None
        self.fd: int | None = None
        self.queue: collections.deque[int] = collections.deque()  # chunks no connection has asked for
        self.asked: dict[int, list] = {}  # chunk in flight -> [connections asking for it, when last asked]
        self.verified: set[int] = set()
        self.changed = asyncio.Condition()
        self.ready = asyncio.Event()

    @property
    def done(self) -> bool:
        return self.manifest is not None and len(self.verified) == self.manifest.chunk_count

    def note(self, text: str) -> None:
        if self.on_note is not None:
            self.on_note(text)

    def prepare(self, manifest: Manifest, *, name: str = "") -> None:
        """Keep the manifest, open the partial file and work out which chunks are missing
        (synchronous: no other worker runs in between)."""
        from tessera.core.store.db import transaction
        from tessera.core.times import now

        with transaction(self.conn):
            self.conn.execute("INSERT OR IGNORE INTO blobs(id, size, chunk_size, chunks, complete, name, added_at) "
                              "VALUES (?, ?, ?, ?, 0, ?, ?)",
                              (self.blob_id, manifest.size, manifest.chunk_size, manifest.chunks, name, now()))
        self.manifest = manifest
        self.part = blob_store.partial_path(self.conn, self.blob_id)
        recorded = {r[0] for r in self.conn.execute("SELECT chunk FROM blob_progress WHERE blob_id = ?", (self.blob_id,))
                    if 0 <= r[0] < manifest.chunk_count}
        existed = self.part.exists()
        self.fd = os.open(self.part, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        os.fchmod(self.fd, 0o600)
        if recorded:
            extent = max(sum(manifest.chunk_span(i)) for i in recorded)
            length = os.fstat(self.fd).st_size
            if not existed:
                self.note(f"the partial file of blob {self.blob_id[:16]} was gone: its {len(recorded)} recorded chunks "
                          "are fetched again")
                recorded = set()
            elif length < extent:
                kept = {i for i in recorded if self._holds(i)}
                self.note(f"the partial file of blob {self.blob_id[:16]} is shorter than its progress records "
                          f"({length} of {extent} bytes): {len(kept)} of {len(recorded)} recorded chunks read back "
                          "and verified, the others are fetched again")
                recorded = kept
            if recorded != {r[0] for r in self.conn.execute("SELECT chunk FROM blob_progress WHERE blob_id = ?",
                                                             (self.blob_id,))}:
                with transaction(self.conn):
                    self.conn.execute("DELETE FROM blob_progress WHERE blob_id = ?", (self.blob_id,))
                    self.conn.executemany("INSERT INTO blob_progress(blob_id, chunk) VALUES (?, ?)",
                                          [(self.blob_id, i) for i in sorted(recorded)])
        self.verified = recorded
        self.report.size, self.report.chunk_count = manifest.size, manifest.chunk_count
        self.report.resumed = len(recorded)
        missing = manifest.size - sum(manifest.chunk_span(i)[1] for i in recorded)
        blob_store.check_room(self.part.parent, missing)
        self.queue.extend(i for i in range(manifest.chunk_count) if i not in recorded)
        self.ready.set()

    def _holds(self, index: int) -> bool:
        """Whether the partial file holds chunk ``index`` as the manifest says (read back, hashed)."""
        offset, length = self.manifest.chunk_span(index)
        try:
            manifests.check_chunk(self.manifest, index, os.pread(self.fd, length, offset))
        except ManifestMismatch:
            return False
        return True

    def store_chunk(self, index: int, data: bytes, peer: PeerOutcome) -> None:
        """Write a verified chunk at its offset, then record it (a kill between the two only
        costs fetching it again)."""
        from tessera.core.store.db import transaction

        offset, _ = self.manifest.chunk_span(index)
        try:
            os.pwrite(self.fd, data, offset)
        except OSError as exc:
            if blob_store.is_disk_full(exc):
                raise blob_store.disk_full(exc, self.part.parent, len(data),
                                      hint="free some space and run the same command again: the chunks verified "
                                           "so far are kept") from None
            raise blob_store.BlobError(f"cannot write {self.part}: {exc.strerror}", hint="check the data home") from None
        with transaction(self.conn):
            self.conn.execute("INSERT OR IGNORE INTO blob_progress(blob_id, chunk) VALUES (?, ?)", (self.blob_id, index))
        self.verified.add(index)
        self.asked.pop(index, None)
        peer.chunks += 1
        self.report.fetched += 1
        if self.on_chunk is not None:
            self.on_chunk(index, len(data), peer.name)

    def take(self, mine: collections.deque[int]) -> int | None:
        """The next chunk for a connection to ask for (``mine``: those it has in flight): the
        next one in the queue; once the queue is empty, a chunk another connection asked for
        STRAGGLER_SECONDS ago or more and has not delivered (a peer that died or stalls: whoever
        delivers first is kept); None when there is neither."""
        now = time.monotonic()
        if self.queue:
            index = self.queue.popleft()
            self.asked[index] = [1, now]
            return index
        for index, (_, when) in self.asked.items():
            if now - when >= STRAGGLER_SECONDS and index not in mine and index not in self.verified:
                self.asked[index][0] += 1
                self.asked[index][1] = now
                return index
        return None

    async def give_back(self, indices: list[int]) -> None:
        """Chunks a dropped peer had in flight: first in the queue for the others (unless another
        connection is asking for one too)."""
        async with self.changed:
            returned = []
            for index in indices:
                asking = self.asked.get(index)
                if asking is None or index in self.verified:
                    continue
                asking[0] -= 1
                if asking[0] <= 0:
                    del self.asked[index]
                    returned.append(index)
            self.queue.extendleft(reversed(returned))
            self.changed.notify_all()

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def reread(self) -> list[int]:
        """Once every chunk is recorded: fsync the partial file and read every chunk back and hash
        it. The chunks that read back wrong (the file damaged since, or records trusted from a
        stopped fetch whose bytes were not all on disk) are forgotten and queued again; returned."""
        from tessera.core.store.db import transaction

        try:
            os.ftruncate(self.fd, self.manifest.size)
            os.fsync(self.fd)
        except OSError as exc:
            if blob_store.is_disk_full(exc):
                raise blob_store.disk_full(exc, self.part.parent) from None
            raise blob_store.BlobError(f"cannot write {self.part}: {exc.strerror}", hint="check the data home") from None
        bad = [i for i in range(self.manifest.chunk_count) if not self._holds(i)]
        if bad:
            with transaction(self.conn):
                self.conn.executemany("DELETE FROM blob_progress WHERE blob_id = ? AND chunk = ?",
                                      [(self.blob_id, i) for i in bad])
            self.verified.difference_update(bad)
            self.queue.extend(bad)
            self.report.read_back_wrong += len(bad)
            self.note(f"{len(bad)} chunks of blob {self.blob_id[:16]} read back wrong from {self.part} (the first: "
                      f"{bad[0]}): fetched again")
        return bad

    def finish(self) -> Path:
        """Move the partial file, read back whole (``reread``), into place."""
        if not self.part.exists():
            raise blob_store.BlobError(f"the partial file {self.part} vanished during the fetch",
                                       hint="run the same command again to fetch the blob anew")
        return blob_store.install(self.conn, self.blob_id, self.part)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


async def fetch(conn: sqlite3.Connection, endpoint: Any, blob_id: str, peers: list, *,
                on_chunk: OnChunk | None = None, on_note: OnNote | None = None,
                report: FetchReport | None = None) -> Path:
    """Fetch blob ``blob_id`` from ``peers`` (peer_list.Peer, dialed with ``endpoint``) in parallel
    into this node's blob store; the path of the whole, verified blob. A blob held already is
    not fetched again.

    Raises:
        UsageError (no peers), NotAuthorized (every peer refused: not shared with us, exit 5),
        SourceUnavailable (no peer could be reached, exit 3), TesseraError/PeerLied (no peer
        delivered the rest: each one's reason on the line), BlobError (a full disk, the partial
        file vanished). The chunks verified before a failure stay recorded: the same fetch again
        resumes from them.
    """
    from filelock import FileLock, Timeout

    report = report if report is not None else FetchReport(blob_id)
    held = _held(conn, blob_id, report)
    if held is not None:
        return held
    if not peers:
        raise UsageError(f"no peer to fetch blob {blob_id[:16]} from", hint="pass --from PEER (see `tessera peer list`)")
    lock_path = Path(str(blob_store.partial_path(conn, blob_id)) + ".lock")
    lock = FileLock(str(lock_path), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise blob_store.BlobError(f"another fetch of blob {blob_id[:16]} is under way on this node",
                                   hint="wait for it to finish (or stop it), then run again") from None
    held = _held(conn, blob_id, report)  # a fetch that held the lock until just now may have finished it
    if held is not None:
        lock.release()
        return held
    known = blob_store.info(conn, blob_id)
    progress = _Progress(conn, blob_id, report, on_chunk, on_note)
    try:
        if known is not None:  # a fetch stopped before: its manifest was verified then; checked again
            progress.prepare(manifests.verify(blob_id, known.size, known.chunk_size, known.manifest.chunks))
        outcomes = [PeerOutcome(p.name, p.node_id) for p in peers]
        for outcome in outcomes:
            report.peers[outcome.name] = outcome
        for _ in range(REREAD_ROUNDS):
            if not progress.done:
                await _fetch_missing(conn, endpoint, peers, outcomes, progress)
            if not progress.done:
                raise _failure(blob_id, progress, outcomes)
            if not progress.reread():
                break
        else:
            raise blob_store.BlobError(f"chunks of blob {blob_id[:16]} still read back wrong from {progress.part} after "
                                       f"{REREAD_ROUNDS} rounds", hint="check the disk holding the data home")
        report.path = progress.finish()
        lock_path.unlink(missing_ok=True)  # held still: a fetch starting now finds the blob held once it has the lock
        return report.path
    finally:
        progress.close()
        lock.release()


async def _fetch_missing(conn: sqlite3.Connection, endpoint: Any, peers: list, outcomes: list[PeerOutcome],
                         progress: _Progress) -> None:
    """One connection per peer until every chunk is verified or every peer is dropped."""
    workers = [asyncio.create_task(_worker(conn, endpoint, peer, outcome, progress))
               for peer, outcome in zip(peers, outcomes, strict=True) if outcome.error is None]
    try:
        await _until_done(workers, progress)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def _held(conn: sqlite3.Connection, blob_id: str, report: FetchReport) -> Path | None:
    """The blob's path when this node holds it whole already (also when a fetch was killed
    between the rename into place and the row's update: the file is verified, then marked)."""
    known = blob_store.info(conn, blob_id)
    if known is None:
        return None
    final = blob_store.blob_path(conn, blob_id)
    if known.complete and blob_store.has(conn, blob_id):
        report.path = final
    elif final.is_file() and not blob_store.verify_file(final, known.manifest):
        report.path = blob_store.install_existing(conn, blob_id)
    else:
        return None
    report.already_held, report.size, report.chunk_count = True, known.size, known.manifest.chunk_count
    return report.path


async def _until_done(workers: list[asyncio.Task], progress: _Progress) -> None:
    """Wait until every chunk is verified or every worker has ended; a local failure (raised by
    a worker) ends the fetch at once. Workers still dialing a slow or absent peer when the others
    have delivered everything are cancelled by the caller, not waited for."""
    pending = set(workers)
    while pending and not progress.done:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()


def _failure(blob_id: str, progress: _Progress, outcomes: list[PeerOutcome]) -> TesseraError:
    reasons = "; ".join(f"{printable(o.name)}: {o.error}" for o in outcomes if o.error) or "no peer answered"
    codes = {o.exit_code for o in outcomes if o.error}
    kept = len(progress.verified)
    message = f"could not fetch blob {blob_id[:16]}: {reasons}"
    hint = (f"the {kept} verified chunks are kept: run the same command again (or --from another peer) to resume"
            if kept else "ask a peer that holds it to share it: tessera blob share ID --with YOU")
    if codes == {EXIT_UNAUTHORIZED}:
        return NotAuthorized(message, hint=hint)
    if codes == {EXIT_UNAVAILABLE}:
        return SourceUnavailable(message, hint=hint)
    return TesseraError(message, hint=hint)


async def _worker(conn: sqlite3.Connection, endpoint: Any, peer: Any, outcome: PeerOutcome, progress: _Progress) -> None:
    """Fetch chunks from one peer until none is missing, or it fails (recorded in ``outcome``,
    its chunks in flight given back). A peer that refuses us for its rate limit (our burst met
    what another connection of ours, or a fetch killed just before, had taken) is dialed again
    after RATE_LIMITED_PAUSE, up to RATE_LIMITED_TRIES times. Local failures (BlobError, the
    store) are raised."""
    from tessera.core.peers.hello import PeerRefused

    for attempt in range(RATE_LIMITED_TRIES + 1):
        in_flight: collections.deque[int] = collections.deque()
        try:
            await _session(conn, endpoint, peer, outcome, progress, in_flight)
            return
        except PeerRefused as exc:
            if exc.code != "rate_limited" or attempt == RATE_LIMITED_TRIES:
                _drop(outcome, progress, exc)
                return
            progress.note(f"{outcome.name} is at its rate limit for this node: dialing it again in "
                          f"{RATE_LIMITED_PAUSE:g} s")
        except asyncio.TimeoutError:
            _drop(outcome, progress, SourceUnavailable(f"sent no chunk for {CHUNK_SECONDS:g} s"))
            return
        except (blob_store.BlobError, StoreError, sqlite3.Error):  # this node's, not the peer's: the fetch ends
            raise
        except TesseraError as exc:
            _drop(outcome, progress, exc)
            return
        finally:
            if in_flight:
                await progress.give_back(list(in_flight))
        await asyncio.sleep(RATE_LIMITED_PAUSE)


async def _session(conn: sqlite3.Connection, endpoint: Any, peer: Any, outcome: PeerOutcome, progress: _Progress,
                   in_flight: collections.deque[int]) -> None:
    """One connection to ``peer``: its manifest checked, then chunks until none is missing."""
    from tessera.core.peers import channel as channels

    pace = rate_limit.TokenBucket(PACE_RATE, PACE_BURST)
    channel = await channels.open_channel(conn, endpoint, peer)
    try:
        await _paced(pace)
        await channel.send(message_types.make("blob_manifest_request", blob=progress.blob_id))
        answer = await asyncio.wait_for(_receive(channel, "blob_manifest"), CHUNK_SECONDS)
        if answer["blob"] != progress.blob_id:
            raise PeerLied(f"answered with the manifest of another blob ({printable(answer['blob'][:16])})")
        try:
            got = manifests.verify(progress.blob_id, answer["size"], answer["chunk_size"], answer["chunks"])
        except ManifestMismatch as exc:
            raise PeerLied(f"sent a manifest that does not match: {exc}") from None
        if progress.manifest is None:
            progress.prepare(got)
        await progress.ready.wait()
        while True:
            while len(in_flight) < WINDOW and (index := progress.take(in_flight)) is not None:
                in_flight.append(index)
                await _paced(pace)
                await channel.send(message_types.make("blob_get", blob=progress.blob_id, index=index))
            if not in_flight:
                if progress.done:
                    await progress.notify()
                    return
                async with progress.changed:  # until chunks are given back, or a chunk in flight elsewhere straggles
                    try:
                        await asyncio.wait_for(progress.changed.wait_for(lambda: progress.queue or progress.done),
                                               STRAGGLER_POLL_SECONDS)
                    except asyncio.TimeoutError:
                        pass
                continue
            chunk = await asyncio.wait_for(_receive(channel, "blob_chunk"), CHUNK_SECONDS)
            index = in_flight[0]
            if chunk["blob"] != progress.blob_id or chunk["index"] != index:
                raise PeerLied(f"sent chunk {chunk['index']} of {printable(chunk['blob'][:16])} when chunk {index} "
                               f"of {progress.blob_id[:16]} was asked for")
            try:
                manifests.check_chunk(progress.manifest, index, chunk["data"])
            except ManifestMismatch as exc:
                raise PeerLied(f"sent a bad chunk: {exc}") from None
            in_flight.popleft()
            if index not in progress.verified:
                progress.store_chunk(index, chunk["data"], outcome)
            if progress.done:
                await progress.notify()
    finally:
        channel.close()


def _drop(outcome: PeerOutcome, progress: _Progress, exc: TesseraError) -> None:
    outcome.error, outcome.exit_code = exc.one_line(), exc.exit_code
    if isinstance(exc, ProtocolError) and getattr(exc, "code", "") == "not_shared":
        outcome.exit_code = EXIT_UNAUTHORIZED
    progress.note(f"{outcome.name}: {outcome.error} (dropped; its chunks are taken from the others)")


async def _paced(pace: rate_limit.TokenBucket) -> None:
    while (wait := pace.take()) > 0:
        await asyncio.sleep(wait)


async def _receive(channel: Any, expected: str) -> dict:
    message = message_types.check(await channel.recv())
    if message["type"] == "error":
        from tessera.core.peers.hello import PeerRefused

        raise PeerRefused(message["code"], message["message"], fix=message["fix"])
    if message["type"] != expected:
        raise ProtocolError("unexpected", f"expected a {expected} message, got {message['type']}")
    return message
