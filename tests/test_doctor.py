"""tessera doctor, run as a real process against real things: files chmodded, a store corrupted
with bytes, a chain broken by editing a row, a kube emulator and a closed port, a real
nats-server started and killed, job rows a dead runner left. Each check is seen passing and
failing, its fix is a command, and doctor writes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kube_emulator import write_kubeconfig
from tests.nats_server import NatsServer
from tests.test_peer_serve import DEADLINE, env_for, node_id, paired, procs, start_serve, tessera, wait_until  # noqa: F401

NOWHERE = "/nonexistent/kubeconfig"


@pytest.fixture(autouse=True)
def no_kubeconfig(monkeypatch):
    """No test reads the machine's own kubeconfig (the kube tests give theirs)."""
    monkeypatch.setenv("KUBECONFIG", NOWHERE)


def doctor(home: Path, *args: str) -> tuple[int, dict[str, dict], subprocess.CompletedProcess]:
    """Run ``tessera doctor -o json``: (exit code, rows by check, the process)."""
    done = tessera(home, "doctor", "-o", "json", *args)
    assert "Traceback" not in done.stderr, done.stderr
    rows = json.loads(done.stdout) if done.stdout.strip() else []
    return done.returncode, {row["check"]: row for row in rows}, done


def store_path(home: Path) -> Path:
    return home / "data" / "tessera.db"


def publish(home: Path, count: int = 1, subject: str = "doctor.test") -> None:
    for i in range(count):
        done = tessera(home, "events", "publish", subject, json.dumps({"i": i, "pad": "x" * 200}))
        assert done.returncode == 0, done.stderr


def connect(home: Path) -> sqlite3.Connection:
    from tessera.core.store.db import connect as store_connect

    return store_connect(store_path(home))


def statuses(rows: dict[str, dict]) -> dict[str, str]:
    return {name: row["status"] for name, row in rows.items()}


def run_fix(home: Path, fix: str) -> None:
    """Run a row's fix as the user would paste it."""
    done = subprocess.run(fix, shell=True, env=env_for(home), capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, (fix, done.stderr)


# -- the whole table ------------------------------------------------------------------------------

def test_a_sound_home_passes_every_check_with_exit_0(isolated_home):
    publish(isolated_home, 3)
    code, rows, _ = doctor(isolated_home)
    assert code == 0, rows
    assert set(statuses(rows).values()) <= {"ok", "skip"}
    assert [name for name in rows if not name.startswith(("kube", "nats"))][:3] == [
        "data home permissions", "store permissions", "node key permissions"]
    assert rows["event chains"]["detail"].startswith("3 events in 1 chain")
    assert rows["store integrity"]["status"] == "ok"
    assert rows["peers"] == {"check": "peers", "status": "ok", "detail": "no peers", "fix": ""}
    assert rows["kube contexts"]["status"] == "skip" and NOWHERE in rows["kube contexts"]["detail"]
    assert rows["nats"]["status"] == "skip"
    assert rows["jobs"]["detail"] == "no jobs"
    for row in rows.values():
        assert set(row) == {"check", "status", "detail", "fix"}


def test_in_a_pipe_the_table_is_plain_text_with_one_row_per_check(isolated_home):
    publish(isolated_home)
    done = tessera(isolated_home, "doctor")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["check", "status", "detail", "fix"]
    assert "\x1b[" not in done.stdout
    assert any(line.split()[:3] == ["event", "chains", "ok"] for line in lines)


def test_on_a_terminal_the_table_is_drawn_with_colour_and_without_it_under_no_color(isolated_home):
    from tests.process_lines import stdout_on_a_terminal
    from tests.test_peer_serve import TSR

    publish(isolated_home)
    env = {**env_for(isolated_home), "NO_COLOR": ""}
    drawn = stdout_on_a_terminal([*TSR, "doctor"], env)
    assert "\x1b[" in drawn and "event chains" in drawn
    plain = stdout_on_a_terminal([*TSR, "doctor"], {**env, "NO_COLOR": "1"})
    assert "\x1b[" not in plain and plain.splitlines()[0].split() == ["check", "status", "detail", "fix"]


def test_no_data_home_yet_is_no_failure_and_makes_none(isolated_home):
    code, rows, _ = doctor(isolated_home)
    assert code == 0, rows
    assert rows["permissions"]["status"] == "skip"
    assert rows["kubeconfig permissions"]["status"] == "skip"  # still looked at: it is not in the data home
    assert not (isolated_home / "data").exists()


def test_a_data_home_that_is_a_file_is_one_failing_row_not_a_crash(isolated_home):
    (isolated_home / "data").write_text("not a directory")
    code, rows, done = doctor(isolated_home)
    assert code == 1 and rows["data home permissions"]["status"] == "fail", done.stderr
    assert "is not a directory" in rows["data home permissions"]["detail"]
    assert rows["store integrity"]["status"] == "skip" and done.stderr == ""


@pytest.mark.parametrize("args, said", [
    (["--timeout", "soon"], "--timeout: 'soon' is not a duration"),
    (["--timeout", "0"], "--timeout '0' must be more than 0"),
    (["-o", "yaml"], "'yaml' is not a format of doctor"),
])
def test_bad_flags_are_one_line_and_exit_2(isolated_home, args, said):
    done = tessera(isolated_home, "doctor", *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and said in done.stderr, done.stderr


# -- 1. permissions -----------------------------------------------------------------------------

def test_a_store_others_can_read_fails_with_the_chmod_that_mends_it(isolated_home):
    publish(isolated_home)
    os.chmod(store_path(isolated_home), 0o644)
    code, rows, _ = doctor(isolated_home)
    row = rows["store permissions"]
    assert code == 1 and row["status"] == "fail"
    assert f"{store_path(isolated_home)} is 0644" in row["detail"]
    assert row["fix"] == f"chmod 600 {store_path(isolated_home)}*"
    wal, shm = (store_path(isolated_home).with_name(f"tessera.db-{end}") for end in ("wal", "shm"))
    assert wal.stat().st_mode & 0o077 and shm.stat().st_mode & 0o077  # SQLite made them with the store's mode
    run_fix(isolated_home, row["fix"])
    code, rows, _ = doctor(isolated_home)
    assert code == 0 and rows["store permissions"]["status"] == "ok", rows["store permissions"]


def test_data_home_key_blobs_and_kubeconfig_modes_are_each_checked(isolated_home, tmp_path, monkeypatch):
    publish(isolated_home)
    home = isolated_home / "data"
    (tmp_path / "hello.txt").write_text("hello")
    blob = tessera(isolated_home, "blob", "put", str(tmp_path / "hello.txt"))
    assert blob.returncode == 0, blob.stderr
    os.chmod(home, 0o755)
    os.chmod(home / "tessera.db.key", 0o640)
    blobs = home / "blobs"
    blob_files = [p for p in blobs.rglob("*") if p.is_file()]
    assert blob_files
    os.chmod(blob_files[0], 0o644)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"dev": ("http://127.0.0.1:9", "default")}, "dev")
    os.chmod(kubeconfig, 0o644)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    code, rows, _ = doctor(isolated_home, "--timeout", "1s")
    assert code == 1
    expect = {
        "data home permissions": f"chmod 700 {home}",
        "node key permissions": f"chmod 600 {home / 'tessera.db.key'}",
        "blobs permissions": f"chmod -R go-rwx {blobs}",
        "kubeconfig permissions": f"chmod 600 {kubeconfig}",
    }
    for check, fix in expect.items():
        assert rows[check]["status"] == "fail" and rows[check]["fix"] == fix, rows[check]
    for fix in expect.values():
        run_fix(isolated_home, fix)
    _, rows, _ = doctor(isolated_home, "--timeout", "1s")
    assert {check: rows[check]["status"] for check in expect} == dict.fromkeys(expect, "ok")


def test_a_config_file_others_can_write_fails(isolated_home):
    publish(isolated_home)
    config = isolated_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("read_only = false\n")
    os.chmod(config, 0o666)
    code, rows, _ = doctor(isolated_home)
    assert code == 1 and rows["config file permissions"]["status"] == "fail"
    assert rows["config file permissions"]["fix"] == f"chmod go-w {config}"
    os.chmod(config, 0o644)  # readable is fine: it holds no secrets
    assert doctor(isolated_home)[1]["config file permissions"]["status"] == "ok"


# -- 2. integrity -------------------------------------------------------------------------------

def _corrupt(path: Path) -> None:
    """Overwrite the middle of every page after the first two with junk: the b-tree pages of
    the tables (the header page and the schema stay readable)."""
    page = 4096
    data = bytearray(path.read_bytes())
    for start in range(2 * page, len(data), page):
        data[start + 100:start + 400] = b"\xff" * 300
    path.write_bytes(bytes(data))


def test_a_store_corrupted_with_bytes_fails_integrity(isolated_home, tmp_path):
    publish(isolated_home, 20)
    conn = connect(isolated_home)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    broken = tmp_path / "broken"
    shutil.copytree(isolated_home / "data", broken / "data")
    _corrupt(store_path(broken))
    code, rows, done = doctor(broken)
    row = rows["store integrity"]
    assert code == 1 and row["status"] == "fail", done.stdout
    assert "is damaged" in row["detail"] and "tessera restore" in row["fix"]
    assert rows["event chains"]["status"] == "fail"
    assert doctor(isolated_home)[1]["store integrity"]["status"] == "ok"  # the original is untouched


def test_an_empty_store_file_is_damage_not_an_old_schema(isolated_home):
    publish(isolated_home)
    store_path(isolated_home).write_bytes(b"")
    code, rows, _ = doctor(isolated_home)
    row = rows["store integrity"]
    assert code == 1 and row["status"] == "fail" and "is empty (0 bytes)" in row["detail"], row


def test_a_damaged_replica_is_named_by_its_peer_and_its_schema_is_compared(isolated_home, tmp_path):
    publish(isolated_home, 20)
    conn = connect(isolated_home)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    peer_id = "ab" * 32
    from tessera.core.peers import peer_list
    from tessera.core.store.db import transaction

    with transaction(conn):
        peer_list.add(conn, peer_id, "carol", added_at="2026-12-01T00:00:00Z")
    conn.close()
    replica = isolated_home / "data" / "peers" / peer_id / "replica.db"
    replica.parent.mkdir(parents=True, mode=0o700)
    source = tmp_path / "other"
    publish(source, 20)
    other = connect(source)
    other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    other.close()
    shutil.copy(store_path(source), replica)
    os.chmod(replica, 0o600)
    code, rows, _ = doctor(isolated_home)
    assert rows["replica integrity carol"]["status"] == "ok", rows
    with sqlite3.connect(replica) as newer:
        newer.execute("UPDATE schema_components SET version = version + 1 WHERE component = 'events'")
    code, rows, _ = doctor(isolated_home)
    assert code == 1 and rows["replica integrity carol"]["status"] == "fail"
    assert "newer than this Tessera" in rows["replica integrity carol"]["detail"]
    shutil.copy(store_path(source), replica)
    _corrupt(replica)
    code, rows, _ = doctor(isolated_home)
    row = rows["replica integrity carol"]
    assert code == 1 and row["status"] == "fail" and "is damaged" in row["detail"]
    assert row["fix"].endswith("tessera peer sync carol --full")


def test_a_store_schema_older_than_this_tessera_is_a_warning_that_does_not_fail(isolated_home):
    publish(isolated_home)
    with sqlite3.connect(store_path(isolated_home)) as old:
        old.execute("UPDATE schema_components SET version = 0 WHERE component = 'nats'")
        old.execute("DROP TABLE nats_push_cursors")
        old.execute("DROP TABLE nats_pull_cursors")
    code, rows, _ = doctor(isolated_home)
    row = rows["store integrity"]
    assert row["status"] == "warn" and "nats 0 < 1" in row["detail"] and row["fix"] == "tessera events verify"
    assert code == 0
    assert rows["nats"]["status"] == "skip"  # no cursor tables to read: nothing to check, no crash


def test_a_store_from_before_components_is_upgradable_not_broken(isolated_home):
    from tessera.core.store.db import connect as store_connect

    store_connect(store_path(isolated_home), migrate_to=3).close()  # events 1, notebooks 2, store 1
    code, rows, done = doctor(isolated_home)
    assert rows["store integrity"]["status"] == "warn", rows["store integrity"]
    assert rows["event chains"]["status"] == "warn" and rows["event chains"]["fix"] == "tessera events verify"
    assert rows["peers"]["detail"] == "no peers" and rows["jobs"]["status"] == "ok" and rows["nats"]["status"] == "skip"
    assert code == 0, done.stdout


# -- 3. event chains ----------------------------------------------------------------------------

def test_a_row_edited_in_the_chain_fails_naming_the_seq(isolated_home):
    publish(isolated_home, 5)
    with sqlite3.connect(store_path(isolated_home)) as edit:
        edit.execute("UPDATE events SET data = '{\"i\": 99}' WHERE seq = 3")
    code, rows, _ = doctor(isolated_home)
    row = rows["event chains"]
    assert code == 1 and row["status"] == "fail"
    assert "broken at seq 3" in row["detail"] and "seq 3 was modified" in row["detail"]
    assert "tessera restore" in row["fix"]


def test_a_broken_foreign_chain_names_its_actor(isolated_home, tmp_path):
    from tessera.core import events

    publish(isolated_home, 2)
    other = tmp_path / "other"
    publish(other, 3)
    theirs = connect(other)
    foreign = [e.as_dict() for e in events.read(theirs)]
    actor = foreign[0]["actor"]
    theirs.close()
    mine = connect(isolated_home)
    events.ingest(mine, foreign)
    mine.close()
    assert doctor(isolated_home)[1]["event chains"]["status"] == "ok"
    with sqlite3.connect(store_path(isolated_home)) as edit:
        edit.execute("DELETE FROM events WHERE actor = ? AND seq = 2", (actor,))
    code, rows, _ = doctor(isolated_home)
    row = rows["event chains"]
    assert code == 1 and row["status"] == "fail"
    assert f"actor {actor} broken at seq 3" in row["detail"], row


def test_an_unsigned_head_without_a_key_is_a_warning_and_doctor_makes_no_key(isolated_home):
    publish(isolated_home, 2)
    key = store_path(isolated_home).with_name("tessera.db.key")
    key.unlink()
    with sqlite3.connect(store_path(isolated_home)) as edit:
        edit.execute("UPDATE event_chains SET signature = NULL, public_key = NULL")
    code, rows, _ = doctor(isolated_home)
    assert rows["event chains"]["status"] == "warn" and rows["event chains"]["fix"] == "tessera events verify"
    assert not key.exists()


def test_doctor_writes_nothing_to_the_store(isolated_home, monkeypatch):
    from tessera.core import events

    publish(isolated_home)
    monkeypatch.setattr(events, "SIGN_INTERVAL", 1e9)  # only a connection's first append signs
    conn = connect(isolated_home)
    for i in range(3):
        events.append(conn, "doctor.unsigned", {"i": i})
    head_seq = conn.execute("SELECT head_seq FROM event_chains").fetchone()[0]
    assert head_seq == 2  # seq 3 and 4 are past the signed head: verify would sign them, were it allowed
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    files = sorted(p for p in (isolated_home / "data").iterdir() if p.is_file())
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    code, rows, _ = doctor(isolated_home)
    assert code == 0 and rows["event chains"]["status"] == "ok", rows["event chains"]
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert after == before
    wal = store_path(isolated_home).with_name("tessera.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    with sqlite3.connect(store_path(isolated_home)) as look:
        assert look.execute("SELECT head_seq FROM event_chains").fetchone()[0] == 2


# -- 4. kube contexts ---------------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_each_kube_context_is_asked_for_its_version(isolated_home, kube_api, tmp_path, monkeypatch):
    publish(isolated_home)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {
        "up": (kube_api.url, "shop"),
        "down": (f"http://127.0.0.1:{_closed_port()}", "default"),
    }, current="up")
    os.chmod(kubeconfig, 0o600)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    code, rows, _ = doctor(isolated_home, "--timeout", "2s")
    assert rows["kube context up"]["status"] == "ok", rows["kube context up"]
    assert "GET /version" in rows["kube context up"]["detail"]
    assert "/version" in kube_api.paths()
    down = rows["kube context down"]
    assert code == 1 and down["status"] == "fail"
    assert "cannot reach the Kubernetes API" in down["detail"] and down["fix"] == "kubectl --context down cluster-info"
    code, rows, _ = doctor(isolated_home, "--kubeconfig", NOWHERE)
    assert rows["kube contexts"]["status"] == "skip" and code == 0


def test_a_hung_credential_plugin_does_not_hang_doctor(isolated_home, kube_api, tmp_path, monkeypatch):
    import yaml

    publish(isolated_home)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"up": (kube_api.url, "shop"), "sso": (kube_api.url, "shop")},
                                  current="up")
    config = yaml.safe_load(kubeconfig.read_text())
    # a plugin that never answers (as an SSO login waiting for a browser), gone once doctor is
    waits = "import os, time\nparent = os.getppid()\nwhile os.getppid() == parent: time.sleep(0.2)"
    config["users"].append({"name": "sso-user", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable, "args": ["-c", waits],
        "interactiveMode": "Never"}}})
    next(c for c in config["contexts"] if c["name"] == "sso")["context"]["user"] = "sso-user"
    kubeconfig.write_text(yaml.safe_dump(config))
    os.chmod(kubeconfig, 0o600)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    code, rows, _ = doctor(isolated_home, "--timeout", "1s")
    assert rows["kube context up"]["status"] == "ok"
    row = rows["kube context sso"]
    assert code == 1 and row["status"] == "fail" and "credential plugin or the server hung" in row["detail"], row


# -- 5. peers -----------------------------------------------------------------------------------

def test_a_peer_whose_serve_runs_answers_and_a_stopped_one_fails(procs, tmp_path):
    alice, bob, carol = tmp_path / "alice", tmp_path / "bob", tmp_path / "carol"
    for home in (alice, bob, carol):
        assert tessera(home, "peer", "init", "--name", home.name).returncode == 0
    paired(procs, alice, bob)  # alice serving, bob joined her
    carol_serve, _ = paired(procs, carol, bob)
    code, rows, _ = doctor(bob, "--timeout", "10s")
    assert rows["peer alice"]["status"] == "ok", rows["peer alice"]
    assert rows["peer carol"]["status"] == "ok", rows["peer carol"]
    carol_serve.terminate()
    assert carol_serve.wait(DEADLINE) == 0
    code, rows, _ = doctor(bob, "--timeout", "3s")
    assert rows["peer alice"]["status"] == "ok"
    assert code == 1 and rows["peer carol"]["status"] == "fail"
    assert rows["peer carol"]["fix"] == "on carol's machine: tessera serve"
    with sqlite3.connect(store_path(bob)) as look:  # the probe records nothing
        assert look.execute("SELECT count(*) FROM peers WHERE last_error IS NOT NULL").fetchone()[0] == 0
    with sqlite3.connect(store_path(bob)) as edit:  # bob only publishes to carol now: she pulls, need not serve
        edit.execute("UPDATE peers SET subscribe = 0 WHERE name = 'carol'")
    code, rows, _ = doctor(bob, "--timeout", "3s")
    assert rows["peer carol"]["status"] == "warn" and "only publishes to it" in rows["peer carol"]["detail"]
    assert code == 0


def test_a_peer_with_no_address_is_a_warning_and_a_lost_node_key_fails_without_making_one(isolated_home):
    from tessera.core.peers import peer_list
    from tessera.core.store.db import transaction

    publish(isolated_home)
    conn = connect(isolated_home)
    with transaction(conn):  # as pairing leaves an inviter whose joiner never served
        peer_list.add(conn, "cd" * 32, "dave", publish=True, subscribe=True, added_at="2026-12-01T00:00:00Z")
    conn.close()
    code, rows, _ = doctor(isolated_home)
    assert rows["peer dave"]["status"] == "warn" and "no address known yet" in rows["peer dave"]["detail"]
    assert code == 0
    key = store_path(isolated_home).with_name("tessera.db.key")
    key.unlink()
    code, rows, _ = doctor(isolated_home)
    assert code == 1 and rows["peers"]["status"] == "fail" and "is missing" in rows["peers"]["detail"]
    assert not key.exists()  # dialing would have made a new key: a new identity


# -- 6. NATS ------------------------------------------------------------------------------------

@pytest.fixture
def nats_server(tmp_path):
    """A real nats-server with JetStream on a free loopback port (tests/nats_server.py)."""
    server = NatsServer(tmp_path / "js").start()
    yield server
    server.stop()


def test_a_pushed_to_nats_server_is_checked_with_its_lag_until_it_is_killed(isolated_home, nats_server):
    url = nats_server.url
    publish(isolated_home, 4)
    conn = connect(isolated_home)
    from tessera.core.store.db import transaction

    with transaction(conn):  # as tessera nats push leaves it: 1 of 4 events acked
        conn.execute("INSERT INTO nats_push_cursors(server, stream, pattern, seq, acked_at) VALUES (?, 'TESSERA', '>', 1, "
                     "'2026-12-01T00:00:00.000Z')", (url,))
    conn.close()
    code, rows, _ = doctor(isolated_home, "--timeout", "5s")
    row = rows[f"nats {url}"]
    assert row["status"] == "warn" and "TESSERA 3 behind" in row["detail"] and "JetStream" in row["detail"], row
    assert row["fix"] == f"tessera nats push --server {url} --stream TESSERA '>'"
    assert code == 0
    nats_server.kill()
    code, rows, _ = doctor(isolated_home, "--timeout", "2s")
    row = rows[f"nats {url}"]
    assert code == 1 and row["status"] == "fail" and "unreachable" in row["detail"], row
    assert row["fix"].startswith("on 127.0.0.1: nats-server -js")


def test_a_nats_url_given_is_checked_and_one_with_a_password_is_refused_unshown(isolated_home, nats_server):
    publish(isolated_home)
    code, rows, _ = doctor(isolated_home, "--nats", nats_server.url)
    assert rows[f"nats {nats_server.url}"]["status"] == "ok" and code == 0
    secret_url = nats_server.url.replace("nats://", "nats://ops:hunter2@")
    done = tessera(isolated_home, "doctor", "--nats", secret_url)
    assert done.returncode == 2 and "hunter2" not in done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "--nats" in done.stderr and "TESSERA_NATS_USER" in done.stderr, done.stderr


def test_nats_credentials_come_from_the_environment_as_for_push(isolated_home, tmp_path, monkeypatch):
    publish(isolated_home)
    server = NatsServer(tmp_path / "auth", extra_args=("--user", "alice", "--pass", "s3cret-Pa55")).start()
    try:
        code, rows, done = doctor(isolated_home, "--nats", server.url, "--timeout", "5s")
        assert code == 1 and "refused the credentials" in rows[f"nats {server.url}"]["detail"], rows
        assert "TESSERA_NATS_USER" in rows[f"nats {server.url}"]["fix"]
        monkeypatch.setenv("TESSERA_NATS_USER", "alice")
        monkeypatch.setenv("TESSERA_NATS_PASSWORD", "s3cret-Pa55")
        code, rows, done = doctor(isolated_home, "--nats", server.url, "--timeout", "5s")
        assert code == 0 and rows[f"nats {server.url}"]["status"] == "ok", rows
        assert "s3cret" not in done.stdout + done.stderr
    finally:
        server.stop()


def test_a_server_without_jetstream_fails(isolated_home, tmp_path):
    publish(isolated_home)
    server = NatsServer(tmp_path / "plain", jetstream=False).start()
    try:
        code, rows, _ = doctor(isolated_home, "--nats", server.url, "--timeout", "5s")
    finally:
        server.stop()
    row = rows[f"nats {server.url}"]
    assert code == 1 and row["status"] == "fail" and "JetStream is not enabled" in row["detail"], row


# -- 7. jobs ------------------------------------------------------------------------------------

def _job(conn, name: str, next_run_at: str, *, paused: bool = False) -> None:
    conn.execute("INSERT INTO jobs(name, schedule, timezone, action, spec, created_at, next_run_at, paused) "
                 "VALUES (?, '*/5 * * * *', 'UTC', 'command', '{\"argv\": [\"info\"]}', '2026-12-01T00:00:00.000Z', ?, ?)",
                 (name, next_run_at, int(paused)))


def _runner(conn, runner_id: str, kind: str, pid: int, heartbeat: str) -> None:
    conn.execute("INSERT INTO job_runners(id, kind, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
                 (runner_id, kind, pid, socket.gethostname(), "2026-12-01T00:00:00.000Z", heartbeat))


def _stamp(seconds_from_now: float) -> str:
    from datetime import datetime, timedelta, timezone

    return (datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(DEADLINE)
    return proc.pid


def test_an_overdue_job_with_no_runner_fails_naming_it_and_how_to_run_jobs(isolated_home):
    from tessera.core.store.db import transaction

    publish(isolated_home)
    conn = connect(isolated_home)
    with transaction(conn):
        _job(conn, "late", _stamp(-3600))
        _job(conn, "soon", _stamp(600))
        _job(conn, "parked", _stamp(-3600), paused=True)
    conn.close()
    code, rows, _ = doctor(isolated_home)
    assert code == 1
    assert rows["job runner"]["status"] == "fail" and "tessera job daemon" in rows["job runner"]["fix"]
    assert "* * * * * tessera job run-due" in rows["job runner"]["fix"]
    overdue = rows["jobs overdue"]
    assert overdue["status"] == "fail" and "late (due" in overdue["detail"]
    assert "soon" not in overdue["detail"] and "parked" not in overdue["detail"]


def test_a_daemon_whose_pid_is_gone_is_dead_and_a_live_one_is_alive(isolated_home):
    from tessera.core.store.db import transaction

    publish(isolated_home)
    conn = connect(isolated_home)
    with transaction(conn):
        _job(conn, "late", _stamp(-3600))
        _runner(conn, "r-dead", "daemon", _dead_pid(), _stamp(0))  # fresh heartbeat, no process
        _runner(conn, "r-stale", "daemon", os.getpid(), _stamp(-600))  # running process, silent heartbeat
    conn.close()
    code, rows, _ = doctor(isolated_home)
    assert code == 1 and rows["job runner"]["status"] == "fail", rows["job runner"]
    assert "no live runner" in rows["job runner"]["detail"] and "dead:" in rows["job runner"]["detail"]
    conn = connect(isolated_home)
    with transaction(conn):
        conn.execute("DELETE FROM jobs")
        _job(conn, "soon", _stamp(600))
        _runner(conn, "r-live", "daemon", os.getpid(), _stamp(0))  # this test's process: alive
    conn.close()
    code, rows, _ = doctor(isolated_home)
    assert rows["job runner"]["status"] == "ok" and f"daemon pid {os.getpid()}" in rows["job runner"]["detail"]
    assert rows["jobs overdue"]["status"] == "ok"
    assert code == 0


def test_jobs_no_runner_ever_ran_warn_and_pass_once_run_due_has_run_them(isolated_home):
    added = tessera(isolated_home, "job", "add", "tick", "--cron", "*/5 * * * *", "--", "tessera", "events", "verify")
    assert added.returncode == 0, added.stderr
    ran = tessera(isolated_home, "job", "run", "tick")  # by hand: says nothing of a scheduler
    assert ran.returncode == 0, ran.stderr
    code, rows, _ = doctor(isolated_home)
    assert rows["job runner"]["status"] == "warn" and "no runner has run a scheduled run yet" in rows["job runner"]["detail"]
    assert "tessera job daemon" in rows["job runner"]["fix"] and code == 0
    with sqlite3.connect(store_path(isolated_home)) as edit:  # its due time came (not yet overdue)
        edit.execute("UPDATE jobs SET next_run_at = ?", (_stamp(-5),))
    due = tessera(isolated_home, "job", "run-due")  # as cron runs it
    assert due.returncode == 0, due.stderr
    code, rows, _ = doctor(isolated_home)
    assert rows["job runner"]["status"] == "ok" and "scheduled runs happen" in rows["job runner"]["detail"], rows["job runner"]
    assert rows["jobs overdue"]["status"] == "ok" and code == 0


# -- all at once --------------------------------------------------------------------------------

class Blackhole:
    """A loopback TCP server that accepts and never answers: a kube API or NATS server that hangs.
    It counts the connections open at once (each stays open until its client gives up)."""

    def __init__(self) -> None:
        import selectors
        import threading

        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.open = 0
        self.peak = 0
        self.accepted = 0
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import selectors

        while not self.stopping:
            for key, _ in self.selector.select(timeout=0.1):
                if key.fileobj is self.listener:
                    conn, _ = self.listener.accept()
                    self.selector.register(conn, selectors.EVENT_READ)
                    self.open += 1
                    self.accepted += 1
                    self.peak = max(self.peak, self.open)
                    continue
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the client gave up and closed
                    self.selector.unregister(key.fileobj)
                    key.fileobj.close()
                    self.open -= 1

    def close(self) -> None:
        self.stopping = True
        self.thread.join(DEADLINE)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()


@pytest.fixture
def blackhole():
    hole = Blackhole()
    yield hole
    hole.close()


def test_network_checks_wait_at_once_not_one_after_another(isolated_home, blackhole, tmp_path, monkeypatch):
    """Two kube contexts and two NATS servers that never answer: doctor holds all four connections
    open at the same moment (one after another, there would never be more than one), and each
    gives up as a timeout."""
    publish(isolated_home)
    url = f"http://127.0.0.1:{blackhole.port}"
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"hang-a": (url, "default"), "hang-b": (url, "default")},
                                  current="hang-a")
    os.chmod(kubeconfig, 0o600)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    nats = [f"nats://127.0.0.1:{blackhole.port}", f"nats://localhost:{blackhole.port}"]
    code, rows, _ = doctor(isolated_home, "--timeout", "10s", "--nats", nats[0], "--nats", nats[1])
    assert code == 1
    for context in ("hang-a", "hang-b"):
        assert rows[f"kube context {context}"]["status"] == "fail" and "stopped answering" in rows[f"kube context {context}"]["detail"]
    for server in nats:
        assert rows[f"nats {server}"]["status"] == "fail", rows[f"nats {server}"]
    assert blackhole.accepted >= 4
    assert blackhole.peak >= 4, (blackhole.peak, blackhole.accepted)
    wait_until(lambda: blackhole.open == 0, "every connection closed")


def test_a_real_job_daemon_is_alive_and_once_killed_is_dead(isolated_home, procs):
    import signal

    added = tessera(isolated_home, "job", "add", "tick", "--cron", "0 3 * * *", "--", "tessera", "events", "verify")
    assert added.returncode == 0, added.stderr
    daemon = procs(isolated_home, "job", "daemon")

    def daemon_row():
        with sqlite3.connect(store_path(isolated_home)) as look:
            return look.execute("SELECT pid FROM job_runners WHERE kind = 'daemon'").fetchone()

    wait_until(daemon_row, "the daemon's runner row")
    code, rows, _ = doctor(isolated_home)
    assert rows["job runner"]["status"] == "ok", rows["job runner"]
    assert f"daemon pid {daemon.pid}" in rows["job runner"]["detail"]
    assert rows["jobs overdue"]["status"] == "ok" and code == 0
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(DEADLINE)
    assert daemon_row() is not None  # a killed daemon leaves its row, heartbeat still fresh
    code, rows, _ = doctor(isolated_home)
    row = rows["job runner"]
    assert row["status"] == "warn" and f"dead: daemon pid {daemon.pid}" in row["detail"], row
    assert "tessera job daemon" in row["fix"]
