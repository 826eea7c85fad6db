"""Blobs between real `tessera serve` processes on loopback (issue 15 point 5): a blob fetched from
two peers at once (both connections used, counted from each serve's log), a fetch SIGKILLed half
way and resumed (no chunk verified before the kill is fetched again), a partial file cut short
and damaged after the kill (the chunks it still holds read back and hashed), a lying peer (bad
chunks) dropped and its chunks taken from the other, an ungranted fetch refused.

Each blob has 300 chunks of 16 KiB: a serve allows a peer 20 requests a second (bursts of 40),
so one peer alone needs at least 13 s for it, whatever the machine: time enough for the second
connection to join, and for a kill to land half way. Every wait polls a condition."""

from __future__ import annotations

import hashlib
import json
import queue
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.process_lines import stderr_lines
from tests.test_peer_serve import DEADLINE, paired, procs, tessera, wait_until  # noqa: F401 (procs: a fixture)

CHUNK = 16 * 1024
CHUNKS = 300


def init(tmp_path: Path, *names: str) -> list[Path]:
    homes = []
    for name in names:
        home = tmp_path / name
        assert tessera(home, "peer", "init", "--name", name).returncode == 0
        homes.append(home)
    return homes


def make_file(directory: Path, chunks: int = CHUNKS) -> tuple[Path, bytes]:
    data = hashlib.shake_256(str(directory).encode()).digest(CHUNK * chunks - 123)  # the last chunk short
    path = directory / "incident.tsrec"
    path.write_bytes(data)
    return path, data


def put(home: Path, file: Path, *share_with: str) -> str:
    args = [a for name in share_with for a in ("--share-with", name)]
    result = tessera(home, "blob", "put", str(file), "--chunk-size", "16KiB", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


class ServeLog:
    """The chunk lines one serve logged (blob_chunk_sent), read from its stderr as they come."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines = stderr_lines(proc)
        self.sent: list[int] = []

    def chunks(self, blob_id: str) -> list[int]:
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return self.sent
            if '"blob_chunk_sent"' in line:
                entry = json.loads(line)
                if entry["blob"] == blob_id[:16]:
                    self.sent.append(entry["index"])


def progress_rows(home: Path, blob_id: str) -> set[int]:
    conn = sqlite3.connect(f"file:{home / 'data' / 'tessera.db'}?mode=ro", uri=True, timeout=30)
    try:
        return {r[0] for r in conn.execute("SELECT chunk FROM blob_progress WHERE blob_id = ?", (blob_id,))}
    except sqlite3.OperationalError:  # the table is not made yet
        return set()
    finally:
        conn.close()


def get_line(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def trio(tmp_path, procs):  # noqa: F811
    """alice paired with bob and with carol, who serve (alice only dials)."""
    alice, bob, carol = init(tmp_path, "alice", "bob", "carol")
    bob_serve, _ = paired(procs, bob, alice)
    carol_serve, _ = paired(procs, carol, alice)
    return alice, (bob, ServeLog(bob_serve)), (carol, ServeLog(carol_serve))


@pytest.fixture
def pair(tmp_path, procs):  # noqa: F811
    alice, bob = init(tmp_path, "alice", "bob")
    bob_serve, _ = paired(procs, bob, alice)
    return alice, bob, ServeLog(bob_serve)


def test_a_blob_held_by_two_peers_is_fetched_from_both_at_once(trio, tmp_path):
    alice, (bob, bob_log), (carol, carol_log) = trio
    file, data = make_file(tmp_path)
    blob_id = put(bob, file, "alice")
    assert put(carol, file, "alice") == blob_id  # content-addressed: the same id on every node
    out = tmp_path / "got.tsrec"
    line = get_line(tessera(alice, "blob", "get", blob_id, "--from", "bob", "--from", "carol", "-o", str(out)))
    assert out.read_bytes() == data and (out.stat().st_mode & 0o777) == 0o600
    held = alice / "data" / "blobs" / blob_id
    assert held.read_bytes() == data and (held.stat().st_mode & 0o777) == 0o600
    assert list((alice / "data" / "blobs" / "partial").iterdir()) == []  # no partial file or lock left
    wait_until(lambda: len(bob_log.chunks(blob_id)) + len(carol_log.chunks(blob_id)) >= CHUNKS, "every chunk logged")
    from_bob, from_carol = bob_log.chunks(blob_id), carol_log.chunks(blob_id)
    assert from_bob and from_carol, (len(from_bob), len(from_carol))  # both connections carried chunks
    assert sorted(from_bob + from_carol) == list(range(CHUNKS))  # each chunk fetched once
    assert line["from"]["bob"] == {"chunks": len(from_bob), "error": None}
    assert line["from"]["carol"] == {"chunks": len(from_carol), "error": None}
    assert (line["fetched"], line["resumed"], line["chunks"]) == (CHUNKS, 0, CHUNKS)


def test_a_lying_peer_is_dropped_and_its_chunks_are_taken_from_the_other(trio, tmp_path):
    alice, (bob, bob_log), (carol, carol_log) = trio
    file, data = make_file(tmp_path)
    blob_id = put(bob, file, "alice")
    assert put(carol, file, "alice") == blob_id
    held = bytearray((carol / "data" / "blobs" / blob_id).read_bytes())
    for offset in range(0, len(held), CHUNK):  # carol's copy is damaged in every chunk
        held[offset] ^= 0xFF
    (carol / "data" / "blobs" / blob_id).write_bytes(bytes(held))
    result = tessera(alice, "blob", "get", blob_id, "--from", "carol", "--from", "bob")
    line = get_line(result)
    assert (alice / "data" / "blobs" / blob_id).read_bytes() == data
    assert "carol" in result.stderr and "bad chunk" in result.stderr and "Traceback" not in result.stderr
    assert "does not match the manifest" in line["from"]["carol"]["error"]
    assert line["from"]["carol"]["chunks"] == 0 and line["from"]["bob"]["chunks"] == CHUNKS
    wait_until(lambda: len(bob_log.chunks(blob_id)) >= CHUNKS, "bob's chunks logged")
    wait_until(lambda: carol_log.chunks(blob_id), "carol's lie logged")
    assert sorted(bob_log.chunks(blob_id)) == list(range(CHUNKS))  # carol's chunks came from bob


def _kill_half_way(procs, alice: Path, blob_id: str) -> set[int]:  # noqa: F811
    """Start alice's fetch from bob, SIGKILL it once 60 chunks are recorded; the chunks recorded."""
    fetching = procs(alice, "blob", "get", blob_id, "--from", "bob")
    wait_until(lambda: len(progress_rows(alice, blob_id)) >= 60 or fetching.poll() is not None, "60 chunks recorded")
    fetching.send_signal(signal.SIGKILL)
    fetching.wait(DEADLINE)
    assert fetching.returncode == -signal.SIGKILL  # killed, not finished
    recorded = progress_rows(alice, blob_id)
    assert 60 <= len(recorded) < CHUNKS
    assert not (alice / "data" / "blobs" / blob_id).exists()
    return recorded


def test_a_fetch_killed_half_way_resumes_without_fetching_a_verified_chunk_again(pair, procs, tmp_path):  # noqa: F811
    alice, bob, bob_log = pair
    file, data = make_file(tmp_path)
    blob_id = put(bob, file, "alice")
    recorded = _kill_half_way(procs, alice, blob_id)
    line = get_line(tessera(alice, "blob", "get", blob_id, "--from", "bob"))
    assert (alice / "data" / "blobs" / blob_id).read_bytes() == data
    assert line["resumed"] == len(recorded) and line["fetched"] == CHUNKS - len(recorded)
    assert progress_rows(alice, blob_id) == set()
    assert not (alice / "data" / "blobs" / "partial" / f"{blob_id}.part").exists()
    wait_until(lambda: set(bob_log.chunks(blob_id)) >= set(range(CHUNKS)), "every chunk logged")
    served = bob_log.chunks(blob_id)
    assert all(served.count(index) == 1 for index in recorded)  # sent once, before the kill
    again = get_line(tessera(alice, "blob", "get", blob_id, "--from", "bob"))
    assert again["already_held"] and again["fetched"] == 0


def test_a_resumed_fetch_rereads_a_partial_file_cut_short_before_trusting_its_records(pair, procs, tmp_path):  # noqa: F811
    alice, bob, bob_log = pair
    file, data = make_file(tmp_path)
    blob_id = put(bob, file, "alice")
    recorded = _kill_half_way(procs, alice, blob_id)
    part = alice / "data" / "blobs" / "partial" / f"{blob_id}.part"
    kept_extent = 20 * CHUNK
    with open(part, "r+b") as partial:  # cut after chunk 19, and damage chunk 3, which stays
        partial.truncate(kept_extent)
        partial.seek(3 * CHUNK + 5)
        partial.write(b"\x00" * 7 if data[3 * CHUNK + 5:3 * CHUNK + 12] != b"\x00" * 7 else b"\x01" * 7)
    still_good = {i for i in recorded if i < 20 and i != 3}
    result = tessera(alice, "blob", "get", blob_id, "--from", "bob")
    line = get_line(result)
    assert "shorter than its progress records" in result.stderr
    assert (alice / "data" / "blobs" / blob_id).read_bytes() == data
    assert line["resumed"] == len(still_good) and line["fetched"] == CHUNKS - len(still_good)
    wait_until(lambda: len(bob_log.chunks(blob_id)) >= len(recorded) + CHUNKS - len(still_good), "chunks logged")
    served = bob_log.chunks(blob_id)
    assert all(served.count(index) == 1 for index in still_good)  # read back and trusted
    assert served.count(3) == 2 and all(served.count(i) == 2 for i in recorded - still_good)  # fetched again


def test_one_fetch_of_a_blob_at_a_time_and_a_resumed_fetch_whose_partial_file_is_gone_starts_over(pair, procs, tmp_path):  # noqa: F811
    alice, bob, bob_log = pair
    file, data = make_file(tmp_path)
    blob_id = put(bob, file, "alice")
    fetching = procs(alice, "blob", "get", blob_id, "--from", "bob")
    wait_until(lambda: progress_rows(alice, blob_id) or fetching.poll() is not None, "a chunk recorded")
    second = tessera(alice, "blob", "get", blob_id, "--from", "bob")  # while the first runs
    assert second.returncode == 1 and "another fetch of blob" in second.stderr, second.stderr
    fetching.send_signal(signal.SIGKILL)
    fetching.wait(DEADLINE)
    _kill_half_way(procs, alice, blob_id)
    (alice / "data" / "blobs" / "partial" / f"{blob_id}.part").unlink()
    result = tessera(alice, "blob", "get", blob_id, "--from", "bob")
    line = get_line(result)
    assert "was gone" in result.stderr and (line["resumed"], line["fetched"]) == (0, CHUNKS)
    assert (alice / "data" / "blobs" / blob_id).read_bytes() == data


def test_a_peer_whose_manifest_does_not_hash_to_the_id_is_dropped_before_any_chunk(pair, tmp_path):
    alice, bob, bob_log = pair
    file, _ = make_file(tmp_path, chunks=3)
    blob_id = put(bob, file, "alice")
    conn = sqlite3.connect(bob / "data" / "tessera.db")
    with conn:  # bob's store lies about the chunks' hashes
        conn.execute("UPDATE blobs SET chunks = zeroblob(96) WHERE id = ?", (blob_id,))
    conn.close()
    result = tessera(alice, "blob", "get", blob_id, "--from", "bob")
    assert result.returncode == 1 and "does not hash to the blob id" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert bob_log.chunks(blob_id) == [] and not (alice / "data" / "blobs" / blob_id).exists()
    listed = json.loads(tessera(alice, "blob", "list", "--json").stdout)
    assert listed == []  # no manifest kept from a liar


def test_a_blob_not_granted_is_refused_and_not_one_chunk_leaves(pair, tmp_path):
    alice, bob, bob_log = pair
    file, _ = make_file(tmp_path, chunks=3)
    blob_id = put(bob, file)  # not shared with alice
    result = tessera(alice, "blob", "get", blob_id, "--from", "bob")
    assert result.returncode == 5, result.stderr
    assert "not shared" in result.stderr and f"tessera blob share {blob_id}" in result.stderr
    assert result.stderr.count("\n") <= 2 and "Traceback" not in result.stderr
    assert not (alice / "data" / "blobs" / blob_id).exists()
    assert tessera(bob, "blob", "share", blob_id[:12], "--with", "alice").returncode == 0
    line = get_line(tessera(alice, "blob", "get", blob_id, "--from", "bob"))
    assert line["fetched"] == 3
    wait_until(lambda: len(bob_log.chunks(blob_id)) >= 3, "the granted chunks logged")
    assert sorted(bob_log.chunks(blob_id)) == [0, 1, 2]  # none before the grant


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs for alice's data home (needs root's mount, as on this project's machines)."""
    where = tmp_path / "alice"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_disk_that_fills_during_a_fetch_is_one_line_and_the_fetch_resumes_once_space_is_free(
        small_disk, tmp_path, procs):  # noqa: F811
    alice = small_disk
    [bob] = init(tmp_path, "bob")
    assert tessera(alice, "peer", "init", "--name", "alice").returncode == 0
    bob_serve, _ = paired(procs, bob, alice)
    file, data = make_file(tmp_path)
    blob_id = put(bob, file, "alice")
    fetching = procs(alice, "blob", "get", blob_id, "--from", "bob")
    wait_until(lambda: len(progress_rows(alice, blob_id)) >= 60 or fetching.poll() is not None, "60 chunks recorded")
    filler = alice / "filler"
    with open(filler, "wb", buffering=0) as fill:  # the disk fills up under the fetch
        try:
            while True:
                fill.write(b"\x00" * 4096)
        except OSError:
            pass
    _, err = fetching.communicate(timeout=DEADLINE)
    assert fetching.returncode == 1, err
    assert "full" in err and "Traceback" not in err and err.strip().count("\n") == 0, err
    kept = progress_rows(alice, blob_id)
    assert len(kept) >= 60
    filler.unlink()
    line = get_line(tessera(alice, "blob", "get", blob_id, "--from", "bob"))
    assert line["resumed"] == len(kept) and (alice / "data" / "blobs" / blob_id).read_bytes() == data


def test_a_fetch_ends_once_every_chunk_is_in_without_waiting_for_a_peer_that_never_answers(pair, tmp_path):
    """carol's address is a UDP socket that reads nothing, so dialing her only ends at the
    connect timeout (15 s); bob delivers the one chunk long before that, and the fetch then stops
    dialing carol instead of waiting to record her failure."""
    import socket

    from nacl.signing import SigningKey

    from tessera.core.peers import identity, transport

    alice, bob, bob_log = pair
    file, data = make_file(tmp_path, chunks=1)
    blob_id = put(bob, file, "alice")
    carol_id = identity.node_id_of(bytes(SigningKey.generate().verify_key))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        ticket = transport.NodeAddress(carol_id, (f"127.0.0.1:{silent.getsockname()[1]}",)).ticket()
        assert tessera(alice, "peer", "add", carol_id, "--name", "carol", "--publish", "--subscribe").returncode == 0
        conn = sqlite3.connect(alice / "data" / "tessera.db")
        with conn:
            conn.execute("UPDATE peers SET address = ? WHERE node_id = ?", (ticket, carol_id))
        conn.close()
        line = get_line(tessera(alice, "blob", "get", blob_id, "--from", "carol", "--from", "bob"))
    assert (alice / "data" / "blobs" / blob_id).read_bytes() == data
    assert line["from"]["bob"] == {"chunks": 1, "error": None}
    assert line["from"]["carol"] == {"chunks": 0, "error": None}  # not waited for, so no failure to record



def test_a_peer_killed_during_a_fetch_leaves_its_chunks_to_the_other(trio, procs, tmp_path):  # noqa: F811
    """carol is SIGKILLed half way: her chunks in flight are asked of bob once they have waited
    10 s (fetch.STRAGGLER_SECONDS), so the fetch ends without waiting for QUIC to notice the dead
    connection (its idle timeout, 30 s) and carol's connection is closed, not failed."""
    alice, (bob, bob_log), (carol, carol_log) = trio
    file, data = make_file(tmp_path)
    blob_id = put(bob, file, "alice")
    assert put(carol, file, "alice") == blob_id
    fetching = procs(alice, "blob", "get", blob_id, "--from", "bob", "--from", "carol")
    wait_until(lambda: len(carol_log.chunks(blob_id)) >= 20 or fetching.poll() is not None, "carol sending chunks")
    carol_log.proc.send_signal(signal.SIGKILL)
    carol_log.proc.wait(DEADLINE)
    out, err = fetching.communicate(timeout=120)
    assert fetching.returncode == 0, err
    line = json.loads(out)
    assert (alice / "data" / "blobs" / blob_id).read_bytes() == data
    from_carol = line["from"]["carol"]["chunks"]
    assert 20 <= from_carol < CHUNKS and line["from"]["bob"]["chunks"] == CHUNKS - from_carol
    assert line["from"]["carol"]["error"] is None, line  # finished before her connection timed out


def test_a_kept_chunk_damaged_in_a_partial_file_of_full_length_is_found_at_the_end_and_fetched_again(
        pair, procs, tmp_path):  # noqa: F811
    alice, bob, bob_log = pair
    file, data = make_file(tmp_path)
    blob_id = put(bob, file, "alice")
    recorded = _kill_half_way(procs, alice, blob_id)
    part = alice / "data" / "blobs" / "partial" / f"{blob_id}.part"
    with open(part, "r+b") as partial:  # not shorter than its records: they are trusted until the end
        partial.seek(5 * CHUNK)
        partial.write(bytes(b ^ 0xFF for b in data[5 * CHUNK:5 * CHUNK + 10]))
    result = tessera(alice, "blob", "get", blob_id, "--from", "bob")
    line = get_line(result)
    assert "read back wrong" in result.stderr and line["read_back_wrong"] == 1
    assert (alice / "data" / "blobs" / blob_id).read_bytes() == data
    assert line["resumed"] == len(recorded) and line["fetched"] == CHUNKS - len(recorded) + 1
    wait_until(lambda: bob_log.chunks(blob_id).count(5) == 2, "chunk 5 sent again")


def test_on_a_terminal_blob_get_shows_a_progress_bar_then_one_readable_line(pair, tmp_path):
    import shlex
    import shutil

    from tests.test_dash_tmux import Tmux
    from tests.test_peer_serve import TSR, env_for

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    alice, bob, _ = pair
    file, data = make_file(tmp_path)
    blob_id = put(bob, file, "alice")
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in env_for(alice).items() if k.startswith("TESSERA_"))
    command = f"env {env} {shlex.join(TSR)} blob get {blob_id} --from bob -o {shlex.quote(str(tmp_path / 'out'))}"
    tmux = Tmux()
    try:
        tmux("new-session", "-d", "-s", "t", "-x", "150", "-y", "10", f"{command}; echo EXIT=$?; sleep 600")
        bar = tmux.wait_for(r"MiB")  # rich's bar: bytes so far of the size, and the speed
        assert blob_id[:16] in bar and re.search(r"/4\.7 MiB", bar), bar
        done = tmux.wait_for(r"EXIT=\d+", timeout=DEADLINE)
        assert "EXIT=0" in done and f"{blob_id}  {len(data)} bytes, {CHUNKS} chunks fetched" in done, done
    finally:
        tmux.close()
    assert (tmp_path / "out").read_bytes() == data
