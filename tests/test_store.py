"""The store: data home, migrations from every earlier schema, concurrent writers, SIGKILL."""

from __future__ import annotations

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
