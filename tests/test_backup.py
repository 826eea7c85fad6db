"""tessera backup (issue 17, point 5): a consistent copy while a writer appends, the file's
format and modes, --encrypt, refusing to overwrite, a backup killed on the way.

The helpers here (a data home with a little of everything, its contents, a writer process) are
shared with tests/test_restore.py."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.test_peer_serve import DEADLINE, TSR, env_for, procs, tessera, wait_until  # noqa: F401 - procs: a fixture

PASSPHRASE = "correct horse battery staple"

WRITER = """
import sys
from tessera.core import events
from tessera.core.store.db import connect
conn = connect()
i = 0
while True:
    i += 1
    events.append(conn, "writer.tick", {"i": i})
"""


def data(home: Path) -> Path:
    return home / "data"


def make_home(home: Path, *, events: int = 3) -> None:
    """A data home with events, a key, a blob, relationships.yaml and a file in conflicts/."""
    for i in range(events):
        assert tessera(home, "events", "publish", "setup.event", f'{{"n": {i}}}').returncode == 0
    (data(home) / "relationships.yaml").write_text("rules: []\n")
    blob_source = home / "blob.bin"
    blob_source.write_bytes(os.urandom(5000))
    put = tessera(home, "blob", "put", str(blob_source))
    assert put.returncode == 0, put.stderr
    (data(home) / "conflicts").mkdir(exist_ok=True)
    (data(home) / "conflicts" / "kept.md").write_text("an edit kept\n")


def contents(home: Path) -> dict[str, str]:
    """``folder_contents`` of the data home."""
    return folder_contents(data(home))


def folder_contents(root: Path) -> dict[str, str]:
    """SHA-256 of every file under a data home folder (the store read through SQLite: its pages
    may be laid out differently in a copy, its rows may not), hidden and lock files left out."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if not path.is_file() or path.name.endswith((".lock", "-wal", "-shm")) or any(p.startswith(".") for p in path.relative_to(root).parts):
            continue
        if path.name.endswith(".db"):
            conn = sqlite3.connect(path)
            rows = conn.execute("SELECT seq, id, hash FROM events ORDER BY actor, seq").fetchall()
            conn.close()
            out[rel] = hashlib.sha256(repr(rows).encode()).hexdigest()
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def event_rows(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT seq, id, data, hash FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()


def start_writer(home: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER], env=env_for(home), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def count_events(home: Path, subject: str) -> int:
    conn = sqlite3.connect(data(home) / "tessera.db", timeout=DEADLINE)
    try:
        return conn.execute("SELECT count(*) FROM events WHERE subject = ?", (subject,)).fetchone()[0]
    finally:
        conn.close()


def wait_events(home: Path, subject: str, at_least: int) -> int:
    return wait_until(lambda: count_events(home, subject) >= at_least and count_events(home, subject),
                      f"{at_least} {subject} events")


def with_passphrase(home: Path, *args: str, passphrase: str = PASSPHRASE) -> subprocess.CompletedProcess:
    env = {**env_for(home), "TESSERA_BACKUP_PASSPHRASE": passphrase}
    return subprocess.run([*TSR, *args], env=env, capture_output=True, text=True, timeout=DEADLINE,
                          stdin=subprocess.DEVNULL)


def backup_line(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_backup_taken_while_a_writer_appends_restores_a_verified_prefix_of_the_writes(tmp_path):
    home, other = tmp_path / "h", tmp_path / "other"
    make_home(home)
    writer = start_writer(home)
    try:
        wait_events(home, "writer.tick", 200)
        file = tmp_path / "during.tsrbak"
        line = backup_line(tessera(home, "backup", str(file)))
        assert line["file"] == str(file) and line["encrypted"] is False
        before = count_events(home, "writer.tick")
        wait_events(home, "writer.tick", before + 200)  # it went on writing through and after the backup
    finally:
        writer.kill()
        writer.wait(DEADLINE)
    restored = tessera(other, "restore", str(file))
    assert restored.returncode == 0, restored.stderr
    assert tessera(other, "events", "verify").returncode == 0
    copy, original = event_rows(data(other) / "tessera.db"), event_rows(data(home) / "tessera.db")
    assert 3 + 200 <= len(copy) < len(original)
    assert copy == original[:len(copy)]  # a prefix: the same entries, none half-written
    ticks = [json.loads(row[2])["i"] for row in copy if row[2].startswith('{"i"')]
    assert ticks == list(range(1, len(ticks) + 1))


def test_the_backup_file_is_0600_holds_a_manifest_of_every_file_and_leaves_caches_and_locks_out(tmp_path):
    from tessera.core.backup import backup_container, backup_manifest
    from tessera.core.store.db import component_versions, connect

    home = tmp_path / "h"
    make_home(home)
    (data(home) / "cache" / "discovery").mkdir(parents=True)
    (data(home) / "cache" / "discovery" / "ctx.json").write_text("{}")
    (data(home) / "serve.lock").write_text("")
    (data(home) / "serve.ticket").write_text("tessera:address")
    (data(home) / "blobs" / "partial").mkdir(parents=True, exist_ok=True)
    (data(home) / "blobs" / "partial" / "x.part").write_bytes(b"half")
    (data(home) / ".tessera.db.new-abc").write_bytes(b"temporary")
    (data(home) / "peers" / ("ab" * 32)).mkdir(parents=True)
    (data(home) / "peers" / ("ab" * 32) / "replica.db").write_bytes(b"")
    file = tmp_path / "home.tsrbak"
    result = tessera(home, "backup", str(file))
    backup_line(result)
    assert result.stderr == ""  # no progress bar off a terminal
    assert file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging or partial left
    with backup_container.reading(file, lambda: b"") as payload:
        import tarfile

        with tarfile.open(fileobj=payload, mode="r|") as tar:
            first = next(iter(tar))
            manifest = backup_manifest.parse(tar.extractfile(first).read(), where="test")
    paths = {f.path for f in manifest.files}
    blob_files = {f"blobs/{p.name}" for p in (data(home) / "blobs").iterdir() if p.is_file()}
    assert paths == {"tessera.db", "tessera.db.key", "relationships.yaml", "conflicts/kept.md"} | blob_files
    assert len(blob_files) == 1
    conn = connect(data(home) / "tessera.db")
    assert manifest.components == component_versions(conn) == manifest.entry("tessera.db").components
    conn.close()
    key = data(home) / "tessera.db.key"
    assert manifest.entry("tessera.db.key").sha256 == hashlib.sha256(key.read_bytes()).hexdigest()
    assert manifest.entry("tessera.db.key").size == 32
    assert manifest.tessera_version and manifest.created_at.endswith("Z") and manifest.replicas is False


def test_replicas_are_in_only_with_the_flag_and_a_pulled_replica_restores(tmp_path):
    """bob's data home holds alice's replica from a real pull (a share of some of her events:
    a chain with gaps, as replicas hold)."""
    from peer_sync_helpers import befriend, make_node, pull

    from tessera.core import events
    from tessera.core.peers import replica_files, shares
    from tessera.core.store.db import transaction

    alice, bob = make_node(tmp_path / "alice", "data"), make_node(tmp_path / "bob", "data")
    befriend(alice, bob)
    events.append_many(alice.conn, [("deploy.web", {"n": i}) if i % 3 else ("audit.login", {"n": i}) for i in range(30)])
    with transaction(alice.conn):
        shares.add(alice.conn, "events:deploy.>", [bob.node_id], added_at="t")
    assert pull(bob, alice)[0].ok
    home = tmp_path / "bob"
    received = event_rows(replica_files.replica_path(alice.node_id, bob.path))
    assert len(received) == 20
    without, with_ = tmp_path / "without.tsrbak", tmp_path / "with.tsrbak"
    assert backup_line(tessera(home, "backup", str(without)))["files"] == 2  # the store and its key
    line = backup_line(tessera(home, "backup", "--replicas", str(with_)))
    assert line["files"] == 3 and line["replicas"] is True
    other = tmp_path / "other"
    restored = tessera(other, "restore", str(with_))
    assert restored.returncode == 0, restored.stderr
    copy = data(other) / "peers" / alice.node_id / "replica.db"
    assert event_rows(copy) == received
    assert copy.stat().st_mode & 0o777 == 0o600 and copy.parent.stat().st_mode & 0o777 == 0o700
    assert tessera(other, "restore", "--force", str(without)).returncode == 0
    assert not (data(other) / "peers").exists()


def test_an_existing_file_is_refused_without_force_before_any_work(tmp_path):
    home = tmp_path / "h"
    make_home(home)
    file = tmp_path / "home.tsrbak"
    file.write_text("precious")
    refused = tessera(home, "backup", str(file))
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == f"tessera: {file} exists; nothing was written (add --force to replace it, or give another path)"
    assert file.read_text() == "precious"
    backup_line(tessera(home, "backup", "--force", str(file)))
    assert file.read_bytes().startswith(b"TESSERA-BACKUP\n") and file.stat().st_mode & 0o777 == 0o600


def test_bad_targets_and_passphrases_get_one_line_and_exit_2(tmp_path):
    home = tmp_path / "h"
    make_home(home)
    cases = [
        (["backup", str(tmp_path)], "is a folder"),
        (["backup", str(tmp_path / "missing" / "b.tsrbak")], "is not a folder"),
        (["backup", "--encrypt", str(tmp_path / "b.tsrbak")], "no terminal to ask on"),  # stdin is /dev/null
        (["backup", "--passphrase-file", str(tmp_path / "pw"), str(tmp_path / "b.tsrbak")], "--passphrase-file is for --encrypt"),
        (["backup", "--encrypt", "--passphrase-file", str(tmp_path / "nope"), str(tmp_path / "b.tsrbak")], "cannot read the passphrase file"),
    ]
    (tmp_path / "empty").write_text("\n")
    cases.append((["backup", "--encrypt", "--passphrase-file", str(tmp_path / "empty"), str(tmp_path / "b.tsrbak")], "empty passphrase"))
    for args, message in cases:
        result = tessera(home, *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tessera: ") and message in lines[0], (args, lines)
    assert not (tmp_path / "b.tsrbak").exists()
    nothing = tessera(tmp_path / "empty-home", "backup", str(tmp_path / "b.tsrbak"))
    assert nothing.returncode == 1 and "there is no store to back up" in nothing.stderr


def test_an_encrypted_backup_header_names_argon2id_and_its_cost_and_holds_no_plain_text(tmp_path):
    from tessera.core.backup import backup_container

    home = tmp_path / "h"
    make_home(home)
    secret_text = "rules: [the words of a secret rule]\n" * 50
    (data(home) / "relationships.yaml").write_text(secret_text)
    file = tmp_path / "sealed.tsrbak"
    line = backup_line(with_passphrase(home, "backup", "--encrypt", str(file)))
    assert line["encrypted"] is True
    with open(file, "rb") as fh:
        header, prefix = backup_container.read_header(fh, where="test")
    sealing = header["encryption"]
    assert sealing["kdf"] == "argon2id" and sealing["cipher"] == "xchacha20poly1305-secretstream"
    assert sealing["opslimit"] == 3 and sealing["memlimit"] == 256 * 1024 * 1024 and len(bytes.fromhex(sealing["salt"])) == 16
    plain = tmp_path / "plain.tsrbak"
    backup_line(tessera(home, "backup", str(plain)))
    with open(plain, "rb") as fh:
        _, plain_prefix = backup_container.read_header(fh, where="test")
    assert plain.read_bytes()[len(plain_prefix):].startswith(b"\x1f\x8b")  # plain: gzip right after the header
    body = file.read_bytes()[len(prefix):]
    assert b"\x1f\x8b" not in body[:64] and b"secret rule" not in body and b"manifest.json" not in body


def test_sigkill_during_a_backup_leaves_no_file_and_the_next_backup_clears_its_leftovers(tmp_path):
    home = tmp_path / "h"
    make_home(home)
    with open(data(home) / "recording.bin", "wb") as big:  # incompressible: the backup takes a while
        big.write(os.urandom(96 * 1024 * 1024))
    out = tmp_path / "out"
    out.mkdir()
    file = out / "home.tsrbak"
    proc = subprocess.Popen([*TSR, "backup", str(file)], env=env_for(home), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def partial_growing():
            return [p for p in out.glob(".home.tsrbak.backup-*.partial") if p.stat().st_size > 1024 * 1024]
        wait_until(partial_growing, "the backup's temporary file to fill")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(DEADLINE)
    assert proc.returncode == -signal.SIGKILL
    assert not file.exists()
    assert [p.name for p in out.iterdir()] != []  # its leftovers: a hidden staging folder and partial file
    (data(home) / "recording.bin").unlink()
    backup_line(tessera(home, "backup", str(file)))
    assert sorted(p.name for p in out.iterdir()) == ["home.tsrbak"]


def _on_a_terminal(home: Path, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run tessera with stdin, stdout and stderr on a pty, typing each answer after the prompt
    that ends in ': ' appears; (exit code, everything it wrote)."""
    import pty
    import time

    leader, follower = pty.openpty()
    proc = subprocess.Popen([*TSR, *args], env=env_for(home), stdin=follower, stdout=follower, stderr=follower,
                            start_new_session=True)
    os.close(follower)
    seen, pending = b"", list(answers)
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # it closed its end
                break
            if not chunk:
                break
            seen += chunk
            if pending and seen.rstrip().endswith(b":"):
                os.write(leader, pending.pop(0).encode() + b"\n")
                seen += b"<typed>"
        proc.wait(DEADLINE)
    finally:
        os.close(leader)
    return proc.returncode, seen.decode(errors="replace")


def test_on_a_terminal_the_passphrase_is_asked_twice_never_echoed_and_a_mismatch_writes_nothing(tmp_path):
    home = tmp_path / "h"
    make_home(home)
    file = tmp_path / "sealed.tsrbak"
    code, shown = _on_a_terminal(home, ["backup", "--encrypt", str(file)], ["tea for two", "tea for three"])
    assert code == 2 and "the two passphrases differ; nothing was written" in shown and not file.exists()
    code, shown = _on_a_terminal(home, ["backup", "--encrypt", str(file)], ["tea for two", "tea for two"])
    assert code == 0, shown
    assert shown.count("passphrase") >= 2 and "tea for" not in shown
    assert "backing up" in shown and "bytes" in shown  # the progress bar, on a terminal only
    assert "backed up 5 files" in shown and "encrypted" in shown
    other = tmp_path / "other"
    code, shown = _on_a_terminal(other, ["restore", str(file)], ["tea for two"])
    assert code == 0, shown
    assert shown.count("Backup passphrase:") == 1 and "tea for" not in shown and "restored 5 files" in shown
    assert contents(other) == contents(home)


def test_a_backup_written_inside_the_data_home_does_not_take_the_one_it_replaces(tmp_path):
    from tessera.core.backup import backup_container, backup_manifest

    home = tmp_path / "h"
    make_home(home)
    file = data(home) / "home.tsrbak"
    first = backup_line(tessera(home, "backup", str(file)))
    assert first["files"] == 5
    second = backup_line(tessera(home, "backup", "--force", str(file)))
    assert second["files"] == 5
    with backup_container.reading(file, lambda: b"") as payload:
        import tarfile

        with tarfile.open(fileobj=payload, mode="r|") as tar:
            manifest = backup_manifest.parse(tar.extractfile(next(iter(tar))).read(), where="test")
    assert "home.tsrbak" not in {f.path for f in manifest.files}
