"""The store: data home, migrations from every earlier schema, concurrent writers, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from tessera.core import events
from tessera.core.store import db


def test_data_home_from_env_private_and_wal(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSERA_HOME", str(tmp_path / "home"))
    conn = db.connect()
    assert db.db_path() == tmp_path / "home" / "tessera.db"
    assert stat.S_IMODE(os.stat(tmp_path / "home").st_mode) == 0o700
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.schema_version(conn) == db.SCHEMA_VERSION


def _fill(conn, version):
    """Data as a store at ``version`` would hold it."""
    if version >= 1:
        conn.execute("INSERT INTO events VALUES (1, 'e1', '2026-11-01T00:00:00.000Z', 'a.b', 'event', 'n', 'c', '{}', ?, 'h1')",
                     (events.GENESIS,))
    if version >= 2:
        conn.execute("INSERT INTO notebooks VALUES ('nb1', 'ops', 't', 't')")
        conn.execute("INSERT INTO notebook_updates(notebook_id, data, time) VALUES ('nb1', x'00', 't')")


@pytest.mark.parametrize("version", range(db.SCHEMA_VERSION))
def test_upgrade_from_every_earlier_schema(tmp_path, version):
    path = tmp_path / "old.db"
    old = db.connect(path, migrate_to=version)
    assert db.schema_version(old) == version
    _fill(old, version)
    old.close()
    conn = db.connect(path)
    assert db.schema_version(conn) == db.SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"events", "notebooks", "notebook_updates", "meta", "cell_results"} <= tables
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == (1 if version >= 1 else 0)
    assert conn.execute("SELECT count(*) FROM notebook_updates").fetchone()[0] == (1 if version >= 2 else 0)
    # foreign keys hold across the upgrade
    if version >= 2:
        conn.execute("DELETE FROM notebooks WHERE id = 'nb1'")
        assert conn.execute("SELECT count(*) FROM notebook_updates").fetchone()[0] == 0


def _schema(conn):
    return sorted((r[0], r[1]) for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))


@pytest.mark.parametrize("version", range(db.SCHEMA_VERSION))
def test_upgrade_reaches_the_schema_of_a_new_store(tmp_path, version):
    """Per-component versions: a store of every earlier global schema (3 is the last of those)
    ends with exactly the tables of a new store, and every component at its latest version."""
    from tessera.core.store import migrations

    db.connect(tmp_path / "old.db", migrate_to=version).close()
    upgraded, new = db.connect(tmp_path / "old.db"), db.connect(tmp_path / "new.db")
    assert _schema(upgraded) == _schema(new)
    assert db.component_versions(upgraded) == db.component_versions(new) == migrations.latest_versions()
    assert set(migrations.latest_versions()) == {"store", "events", "notebooks", "peers", "pairing", "blobs", "collab", "knowledge", "jobs", "nats"}


def test_a_component_newer_than_this_tessera_is_refused_unknown_ones_left_alone(tmp_path):
    path = tmp_path / "s.db"
    conn = db.connect(path)
    conn.execute("INSERT INTO schema_components VALUES ('jobs-from-the-future', 7)")
    conn.close()
    conn = db.connect(path)  # a component this Tessera does not know: its tables are not touched
    assert db.component_versions(conn)["jobs-from-the-future"] == 7
    conn.execute("UPDATE schema_components SET version = version + 1 WHERE component = 'events'")
    conn.close()
    with pytest.raises(db.StoreError, match="the store's events schema is at version .*, newer than this Tessera"):
        db.connect(path)


def test_one_transaction_upgrades_every_component(tmp_path, monkeypatch):
    """A migration that fails leaves the old schema whole: no component half-upgraded."""
    from tessera.core.store import migrations

    path = tmp_path / "old.db"
    db.connect(path, migrate_to=1).close()
    broken = migrations.Component("notebooks", ("CREATE TABLE notebooks (id TEXT)", "NOT SQL AT ALL"))
    real = migrations.components
    monkeypatch.setattr(migrations, "components", lambda: [c if c.name != "notebooks" else broken for c in real()])
    with pytest.raises(sqlite3.OperationalError):
        db.connect(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == {"events"}


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(db.StoreError, match="newer than this Tessera"):
        db.connect(path)


def test_not_a_database_is_one_clear_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(db.StoreDamaged, match="is damaged"):
        db.connect(path)
    r = subprocess.run([sys.executable, "-m", "tessera.cli.main", "events", "tail"], capture_output=True, text=True,
                       env={**os.environ, "TESSERA_HOME": str(tmp_path / "h")}, timeout=60)
    assert r.returncode == 0
    (tmp_path / "h" / "tessera.db").write_bytes(b"junk" * 1000)
    r = subprocess.run([sys.executable, "-m", "tessera.cli.main", "events", "tail"], capture_output=True, text=True,
                       env={**os.environ, "TESSERA_HOME": str(tmp_path / "h")}, timeout=60)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


def test_transaction_rolls_back_on_error(tmp_path):
    conn = db.connect(tmp_path / "t.db")
    with pytest.raises(KeyboardInterrupt):
        with db.transaction(conn):
            events.append(conn, "a.b", 1)
            raise KeyboardInterrupt
    assert events.last_seq(conn) == 0


WRITER = textwrap.dedent("""
    import sys
    from tessera.core.store.db import connect
    from tessera.core import events
    conn = connect(sys.argv[1])
    for i in range(int(sys.argv[2])):
        events.append(conn, f"w.{sys.argv[3]}", {"i": i})
""")


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "c.db"
    db.connect(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), "400", name]) for name in ("a", "b")]
    for p in procs:
        assert p.wait(120) == 0
    conn = db.connect(path)
    assert events.last_seq(conn) == 800
    assert [len(events.read(conn, pattern=f"w.{n}")) for n in ("a", "b")] == [400, 400]
    assert events.verify(conn).ok


BATCHER = textwrap.dedent("""
    import sys
    from tessera.core.store.db import connect
    from tessera.core import events
    conn = connect(sys.argv[1])
    n = 0
    while True:
        events.append_many(conn, [("k.batch", {"n": n, "i": i}) for i in range(1000)])
        n += 1
        print(n, flush=True)
""")


def test_sigkill_mid_batch_keeps_every_committed_row(tmp_path):
    path = tmp_path / "k.db"
    db.connect(path).close()
    proc = subprocess.Popen([sys.executable, "-c", BATCHER, str(path)], stdout=subprocess.PIPE, text=True)
    committed = 0
    while committed < 5:
        committed = int(proc.stdout.readline())
    time.sleep(0.037)  # land somewhere inside a later batch
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    conn = db.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = events.last_seq(conn)
    assert count >= committed * 1000 and count % 1000 == 0, "whole batches only"
    assert events.verify(conn).ok


# --- what users hit: a full disk, a lock held elsewhere, a damaged or empty file ---------------


def _tessera(*args, env=None, input=None):
    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=input, timeout=120)


def _one_line(r):
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


@pytest.fixture
def tiny_disk(tmp_path, request):
    """A 1 MiB tmpfs (a real disk that fills up; ``@pytest.mark.parametrize("tiny_disk", ["256k"],
    indirect=True)`` for another size); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    size = getattr(request, "param", "1m")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}); test_full_database covers SQLITE_FULL")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_is_one_line_and_loses_nothing(tiny_disk):
    env = {"TESSERA_HOME": str(tiny_disk / "home")}
    for i in range(3):
        assert _tessera("events", "publish", "disk.test", str(i), env=env).returncode == 0
    filler = tiny_disk / "filler"
    with open(filler, "wb", buffering=0) as fh:  # take every free block (unbuffered: closing has nothing left to flush)
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    big = '"' + "x" * 100_000 + '"'
    for args in (("events", "publish", "disk.test", big), ("events", "publish", "disk.test", "4"),
                 ("notebook", "new", "ops")):
        r = _tessera(*args, env=env)
        assert r.returncode == 1
        assert f"the disk holding the data home {tiny_disk / 'home'} is full" in _one_line(r)
        assert "everything stored before is intact" in r.stderr
    filler.unlink()
    r = _tessera("events", "verify", env=env)
    assert r.returncode == 0 and "ok: 3 events" in r.stdout
    assert _tessera("events", "publish", "disk.test", "4", env=env).returncode == 0


@pytest.mark.parametrize("tiny_disk", ["256k"], indirect=True)
def test_a_store_that_does_not_fit_the_disk_is_not_created(tiny_disk):
    """The new store's WAL is folded in before it is linked into place: on a disk too small for
    it, the command says the disk is full and leaves no store (it used to link in a file missing
    the schema's pages, reported as damaged ever after)."""
    env = {"TESSERA_HOME": str(tiny_disk / "home")}
    r = _tessera("events", "publish", "disk.test", "0", env=env)
    assert r.returncode == 1
    assert f"the disk holding the data home {tiny_disk / 'home'} is full" in _one_line(r)
    assert not (tiny_disk / "home" / "tessera.db").exists()
    assert [p.name for p in (tiny_disk / "home").iterdir()] == []


def test_full_database(tmp_path):
    """SQLITE_FULL without a small disk: the database is capped at its current size."""
    conn = db.connect(tmp_path / "full.db")
    events.append_many(conn, [("full.test", {"i": i}) for i in range(50)])
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(db.StoreFull, match="is full: nothing was written") as caught:
        events.append_many(conn, [("full.test", {"pad": "x" * 5000, "i": i}) for i in range(20)])
    assert caught.value.exit_code == 1
    assert not conn.in_transaction
    assert events.last_seq(conn) == 50 and events.verify(conn).ok
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert events.append(conn, "full.test", 51).seq == 51


HOLDER = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("holding", flush=True)
    sys.stdin.read()  # hold the write lock until the test closes our stdin
    conn.execute("COMMIT")
""")


@pytest.fixture
def lock_holder(isolated_home):
    """A second process holding the store's write lock (BEGIN IMMEDIATE) until released."""
    assert _tessera("events", "publish", "lock.test", "1").returncode == 0
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db.db_path())], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "holding\n"
    yield proc
    proc.stdin.close()
    proc.wait(60)


def test_locked_store_names_the_holder_and_gives_up_after_the_setting(lock_holder, isolated_home):
    (isolated_home / "config").mkdir()
    (isolated_home / "config" / "config.toml").write_text("store_lock_timeout = 0.5\n")
    assert json.loads(_tessera("info").stdout)["settings"]["store_lock_timeout"] == 0.5
    r = _tessera("events", "publish", "lock.test", "2")
    assert r.returncode == 4
    line = _one_line(r)
    assert f"the store {db.db_path()} is locked by pid {lock_holder.pid} (python -c); waited 0.5 s" in line
    assert "store_lock_timeout" in line
    # the environment variable wins over config.toml
    r = _tessera("notebook", "new", "ops", env={"TESSERA_LOCK_TIMEOUT": "0.2"})
    assert r.returncode == 4 and "waited 0.2 s" in _one_line(r)
    lock_holder.stdin.close()
    assert lock_holder.wait(60) == 0
    assert _tessera("events", "publish", "lock.test", "3").returncode == 0
    conn = db.connect()
    assert [e.data for e in events.read(conn)] == [1, 3] and events.verify(conn).ok


def test_locked_store_is_waited_for(lock_holder):
    import queue
    import threading

    writer = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "events", "publish", "lock.test", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "TESSERA_LOCK_TIMEOUT": "120"})
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in writer.stderr], daemon=True).start()
    notice = lines.get(timeout=60)  # the writer says it is waiting, and for whom
    assert f"the store is locked by pid {lock_holder.pid} (python -c); waiting up to 120 s" in notice
    assert writer.poll() is None
    lock_holder.stdin.close()
    assert writer.wait(60) == 0
    assert '"data":2' in writer.stdout.read()
    assert [e.data for e in events.read(db.connect())] == [1, 2]


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_bad_lock_timeout_is_a_usage_error(value):
    r = _tessera("events", "tail", env={"TESSERA_LOCK_TIMEOUT": value})
    assert r.returncode == 2 and "TESSERA_LOCK_TIMEOUT must be a number of seconds" in _one_line(r)


def _page_size(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()


def _damage_page(path, page):
    """Overwrite one page of a closed database (its WAL folded in) with junk."""
    size = _page_size(path)
    with open(path, "r+b") as fh:
        fh.seek((page - 1) * size)
        fh.write(b"\xa5" * size)


def test_damaged_database(isolated_home):
    for _ in range(5):
        assert _tessera("events", "publish", "damage.test", '"' + "x" * 3000 + '"').returncode == 0
    conn = sqlite3.connect(db.db_path())
    index_page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events_time'").fetchone()[0]
    conn.close()
    _damage_page(db.db_path(), index_page)
    r = _tessera("events", "verify")
    assert r.returncode == 1
    line = _one_line(r)
    assert f"the store {db.db_path()} is damaged: PRAGMA quick_check found: Page {index_page}:" in line
    assert "the event chain was not checked" in line
    # a write that meets the damaged page: one line, not a traceback
    r = _tessera("events", "publish", "damage.test", "1")
    assert r.returncode == 1
    assert f"the store {db.db_path()} is damaged: database disk image is malformed" in _one_line(r)
    assert "tessera events verify" in r.stderr
    # damage under the events themselves: reads fail the same way
    conn = sqlite3.connect(db.db_path())
    table_page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    conn.close()
    _damage_page(db.db_path(), table_page)
    for args in (("events", "tail"), ("events", "verify")):
        r = _tessera(*args)
        assert r.returncode == 1 and "is damaged" in _one_line(r)
    # every page but the first (the schema still reads): every command says so in one line
    pages = db.db_path().stat().st_size // _page_size(db.db_path())
    for page in range(2, pages + 1):
        _damage_page(db.db_path(), page)
    for args in (("events", "tail"), ("events", "publish", "a.b", "1"), ("events", "verify"), ("notebook", "list"),
                 ("notebook", "new", "ops"), ("cell", "add", "ops", "MATCH (p:Pod) RETURN p")):
        r = _tessera(*args)
        assert r.returncode == 1 and f"the store {db.db_path()} is damaged" in _one_line(r), args


def test_empty_database_file_is_refused_not_recreated(isolated_home):
    path = db.db_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    for args in (("events", "tail"), ("events", "publish", "a.b", "1"), ("notebook", "list")):
        r = _tessera(*args)
        assert r.returncode == 1
        assert f"the store {path} is empty (0 bytes)" in _one_line(r)
    assert path.stat().st_size == 0
    with pytest.raises(db.StoreDamaged, match="empty"):
        db.connect(path)


def test_store_files_are_private_whatever_the_umask(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o777)
    os.chmod(home, 0o777)
    old = os.umask(0)
    try:
        conn = db.connect(home / "tessera.db")
        events.append(conn, "private.test", 1)  # the -wal and -shm files exist while it is open
        for name in ("tessera.db", "tessera.db-wal", "tessera.db-shm", "tessera.db.key"):  # the key signs the chain's head
            assert stat.S_IMODE(os.stat(home / name).st_mode) == 0o600, name
        conn.close()
        assert sorted(p.name for p in home.iterdir()) == ["tessera.db", "tessera.db.key"]  # no temporary file left
        # a store an older version left readable by others is made private when opened
        os.chmod(home / "tessera.db", 0o644)
        db.connect(home / "tessera.db").close()
        assert stat.S_IMODE(os.stat(home / "tessera.db").st_mode) == 0o600
    finally:
        os.umask(old)


def test_two_processes_creating_the_store_at_once_share_one(tmp_path):
    path = tmp_path / "race" / "tessera.db"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), "50", name]) for name in "abcd"]
    for p in procs:
        assert p.wait(120) == 0
    conn = db.connect(path)
    assert events.last_seq(conn) == 200 and events.verify(conn).ok
