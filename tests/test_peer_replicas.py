"""Peers' replicas read by queries and listings (issue 14 point 7): the ``local``, ``peer:NAME``
and ``peers`` sources, the fan-out ``source`` column, ``notebook list --peers``, ``notebook show
PEER:NOTEBOOK``, ``events tail --peer``; every read leaves the replica's bytes as they were.

Each peer is a second real store (its events appended and its notebook made by core.events and
core.notebook.repository, so its key signs its own chain); its rows are copied into
``peers/<node id>/replica.db`` (a file with the store's schema, made by core.store.db.connect) as
sync stores them: events with their actor, seq and hashes, notebooks with the peer's id and name.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tessera.core import events
from tessera.core.errors import UsageError
from tessera.core.notebook import repository
from tessera.core.peers import identity, peer_list, replica_files
from tessera.core.store import db
from tessera.core.store.db import transaction

from process_lines import json_lines, stderr_lines

TSR = [sys.executable, "-m", "tessera.cli.main"]
WHEN = "2026-12-01T00:00:00.000Z"
EVIL = "ev\x1b[31mil\nname"  # a peer chooses its own name: control characters in it


def tessera(*args, stdin=None):
    return subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=120, input=stdin)


def _refused(r, code):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("tessera: ") and len(r.stderr.splitlines()) == 1, r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr and "\x1b" not in r.stderr
    return r.stderr


def _local_store() -> Path:
    return db.db_path()


class Peer:
    """A peer: its own real store (``home``), and the copy of its rows in our replica file."""

    def __init__(self, tmp_path: Path, name: str, subjects: list[str], notebook: str | None):
        self.name = name
        self.store = tmp_path / ("peer-" + hashlib.sha256(name.encode()).hexdigest()[:12]) / "tessera.db"
        conn = db.connect(self.store)
        for subject in subjects:
            events.append(conn, subject, {"from": name})
        if notebook:
            repository.create(conn, notebook, f"{name}'s {notebook}" if name.isprintable() else notebook)
            repository.add_cell(conn, notebook, "MATCH (d:Deployment) RETURN d.metadata.name")
            repository.add_cell(conn, notebook, "# notes", type="markdown")
        self.conn = conn
        self.node_id = identity.node_id_of_store(self.store)
        self.actor = events.node_id(conn)
        local = db.connect(_local_store())
        with transaction(local):
            peer_list.add(local, self.node_id, name, publish=True, subscribe=True, added_at=WHEN)
        local.close()

    @property
    def replica(self) -> Path:
        return replica_files.replica_path(self.node_id, _local_store())

    def sync(self) -> None:
        """Copy every row the replica lacks (what a pull of the whole share would store)."""
        replica = db.connect(self.replica)
        replica.execute("ATTACH DATABASE ? AS peer", (str(self.store),))
        with transaction(replica):
            replica.execute("INSERT INTO main.events(seq, id, time, subject, type, actor, correlation, data, prev_hash, hash) "
                            "SELECT seq, id, time, subject, type, actor, correlation, data, prev_hash, hash FROM peer.events "
                            "WHERE id NOT IN (SELECT id FROM main.events) ORDER BY rowid")
            replica.execute("INSERT OR REPLACE INTO main.notebooks(id, name, created, updated) "
                            "SELECT id, name, created, updated FROM peer.notebooks")
            replica.execute("INSERT OR IGNORE INTO main.notebook_updates(id, notebook_id, data, time) "
                            "SELECT id, notebook_id, data, time FROM peer.notebook_updates")
        replica.execute("DETACH DATABASE peer")
        replica.close()

    def events(self) -> list[dict]:
        return [e.as_dict() for e in events.read(self.conn)]


def _files(directory: Path) -> list[str]:
    """The files in ``directory`` but SQLite's own -wal/-shm companions."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(("-wal", "-shm")))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def own_store():
    conn = db.connect(_local_store())
    events.append(conn, "deploy.local.api", {"from": "me"})
    events.append(conn, "build.local", {"from": "me"})
    repository.create(conn, "mine", "Mine")
    conn.close()


@pytest.fixture
def alice(tmp_path, own_store):
    peer = Peer(tmp_path, "alice", ["deploy.shop.web", "build.shop", "deploy.shop.db"], "ops")
    peer.sync()
    return peer


@pytest.fixture
def bob(tmp_path, own_store):
    peer = Peer(tmp_path, "bob", ["deploy.bank.core"], "runbook")
    peer.sync()
    return peer


DEPLOYS = 'MATCH (e:LogEvent) WHERE e.subject =~ "deploy.*" RETURN e.subject, e.actor, e.time'


# --- sources ----------------------------------------------------------------------------------


def test_a_peer_source_reads_its_replica_by_name_or_id(alice):
    r = tessera("query", "-s", "peer:alice", "-o", "jsonl", DEPLOYS)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    times = {e["subject"]: e["time"] for e in alice.events()}
    # one source: no source column; the rows are alice's own events, her actor kept
    assert rows == [{"e.subject": s, "e.actor": alice.actor, "e.time": times[s]} for s in ("deploy.shop.web", "deploy.shop.db")]
    by_id = tessera("query", "-s", f"peer:{alice.node_id[:12]}", "-o", "jsonl", DEPLOYS)
    assert by_id.returncode == 0 and by_id.stdout == r.stdout, by_id.stderr


def test_a_local_source_reads_this_nodes_store(own_store):
    r = tessera("query", "-s", "local", "-o", "jsonl", DEPLOYS)
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["e.subject"] for line in r.stdout.splitlines()] == ["deploy.local.api"]


def test_fan_out_rows_carry_a_leading_source_column(alice, bob):
    r = tessera("query", "-s", "peers", "-s", "local", "-o", "json",
                'MATCH (e:LogEvent) WHERE e.subject =~ "deploy.*" RETURN e.subject, e.time')
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [list(row) for row in rows] == [["source", "e.subject", "e.time"]] * len(rows)
    assert sorted((row["source"], row["e.subject"]) for row in rows) == [
        ("alice", "deploy.shop.db"), ("alice", "deploy.shop.web"), ("bob", "deploy.bank.core"),
        ("local", "deploy.local.api")]
    table = tessera("query", "-s", "peers", "-s", "local", "-o", "table", "MATCH (n:nb) RETURN n.metadata.name, n.title")
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert header == ["source", "n.metadata.name", "n.title"]
    assert {tuple(line.split()[:2]) for line in table.stdout.splitlines()[1:]} == {
        ("alice", "ops"), ("bob", "runbook"), ("local", "mine")}
    # a store named twice (peers and peer:alice) is read once
    twice = tessera("query", "-s", "peers", "-s", "peer:alice", "-o", "jsonl", "MATCH (n:Notebook) RETURN n.metadata.name")
    assert sorted(twice.stdout.splitlines()) == sorted(['{"source":"alice","n.metadata.name":"ops"}',
                                                        '{"source":"bob","n.metadata.name":"runbook"}'])


def test_notebook_objects_carry_title_cells_and_times(alice):
    r = tessera("query", "-s", "peer:alice", "-o", "json", "MATCH (n:Notebook) RETURN n")
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    nb = row["n"]
    assert nb["apiVersion"] == "tessera.dev/v1" and nb["kind"] == "Notebook"
    record = alice.conn.execute("SELECT id, created, updated FROM notebooks WHERE name = 'ops'").fetchone()
    latest = alice.conn.execute("SELECT max(id) FROM notebook_updates WHERE notebook_id = ?", (record[0],)).fetchone()[0]
    assert nb["metadata"] == {"name": "ops", "uid": record[0], "creationTimestamp": record[1], "resourceVersion": str(latest)}
    assert nb["title"] == "alice's ops" and nb["updated"] == record[2]
    assert [(c["number"], c["type"], c["source"]) for c in nb["cells"]] == [
        (1, "query", "MATCH (d:Deployment) RETURN d.metadata.name"), (2, "markdown", "# notes")]


def test_log_event_objects_carry_every_field_and_filter_by_name(alice):
    first = alice.events()[0]
    r = tessera("query", "-s", "peer:alice", "-o", "json", f'MATCH (e:lev {{metadata: {{name: "{first["id"]}"}}}}) RETURN e')
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    event = row["e"]
    assert event["kind"] == "LogEvent" and event["apiVersion"] == "tessera.dev/v1"
    assert event["metadata"] == {"name": first["id"], "uid": first["id"], "creationTimestamp": first["time"],
                                 "resourceVersion": "1"}  # its arrival position in the replica
    assert {k: event[k] for k in first if k != "id"} == {k: v for k, v in first.items() if k != "id"}


def test_kinds_lists_the_store_kinds_apart_from_kubernetes_events(own_store):
    r = tessera("kinds", "-s", "local", "-o", "jsonl")
    assert r.returncode == 0, r.stderr
    kinds = {row["kind"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert set(kinds) == {"LogEvent", "Notebook"}
    assert kinds["LogEvent"]["group"] == "tessera.dev" and kinds["LogEvent"]["short_names"] == "lev"
    assert kinds["Notebook"]["plural"] == "notebooks" and kinds["Notebook"]["namespaced"] is False


def test_an_unknown_peer_is_a_usage_error_naming_the_peer_list(own_store):
    err = _refused(tessera("query", "-s", "peer:carol", DEPLOYS), 2)
    assert "no peer 'carol'" in err and "tessera peer list" in err
    err = _refused(tessera("query", "-s", "peer:", DEPLOYS), 2)
    assert "tessera peer list" in err
    err = _refused(tessera("events", "tail", "--peer", "carol"), 2)
    assert "tessera peer list" in err
    err = _refused(tessera("notebook", "show", "carol:ops"), 2)
    assert "tessera peer list" in err


def test_a_peer_without_a_replica_says_to_sync_it(tmp_path, own_store):
    Peer(tmp_path, "dave", ["deploy.x"], None)  # paired, nothing received yet
    for args in (("query", "-s", "peer:dave", DEPLOYS), ("events", "tail", "--peer", "dave"),
                 ("notebook", "show", "dave:ops")):
        err = _refused(tessera(*args), 3)
        assert "tessera peer sync dave" in err, err
    err = _refused(tessera("query", "-s", "peers", DEPLOYS), 3)
    assert "tessera peer sync" in err
    # with local named too, the peers without replicas add nothing and local still answers
    r = tessera("query", "-s", "peers", "-s", "local", "-o", "jsonl", DEPLOYS)
    assert r.returncode == 0 and json.loads(r.stdout)["e.subject"] == "deploy.local.api", r.stderr


def test_a_replica_that_is_not_a_store_is_one_line_exit_3(alice):
    alice.replica.write_bytes(b"not a database " * 100)
    for args in (("query", "-s", "peer:alice", DEPLOYS), ("events", "tail", "--peer", "alice"),
                 ("notebook", "show", "alice:ops"), ("notebook", "list", "--peers")):
        err = _refused(tessera(*args), 3)
        assert "the replica of peer 'alice' cannot be read" in err and "tessera peer sync alice" in err, (args, err)


def test_a_damaged_replica_row_is_one_line_exit_3_for_a_query(alice):
    replica = db.connect(alice.replica)
    replica.execute("UPDATE events SET data = 'not json' WHERE seq = 2")
    replica.close()
    err = _refused(tessera("query", "-s", "peer:alice", DEPLOYS), 3)
    assert "cannot read the store of 'alice'" in err, err
    tail = tessera("events", "tail", "--peer", "alice")  # the same row, read by the event log
    assert tail.returncode == 1 and "Traceback" not in tail.stderr and "internal" not in tail.stderr, tail.stderr
    assert "seq 2" in tail.stderr and "not JSON" in tail.stderr and len(tail.stderr.strip().splitlines()) == 1


# --- read-only --------------------------------------------------------------------------------


def test_reading_never_changes_a_replica_and_a_write_is_refused(alice):
    before = _digest(alice.replica)
    local_before = _files(_local_store().parent)
    reads = [
        ("query", "-s", "peer:alice", DEPLOYS), ("query", "-s", "peers", "-s", "local", DEPLOYS),
        ("query", "-s", "peer:alice", "-o", "table", "MATCH (n:Notebook) RETURN n.title"),
        ("notebook", "list", "--peers"), ("notebook", "list", "--peers", "-o", "json"),
        ("notebook", "show", "alice:ops"), ("notebook", "show", "alice:ops/2", "-o", "json"),
        ("notebook", "export", "alice:ops"), ("events", "tail", "--peer", "alice"),
        ("events", "tail", "--peer", "alice", "-o", "table"),
    ]
    for args in reads:
        r = tessera(*args)
        assert r.returncode == 0, (args, r.stderr)
        assert _digest(alice.replica) == before, args
    for create in ('CREATE (e:LogEvent {metadata: {name: "forged"}, subject: "deploy.forged"})',
                   'MATCH (n:Notebook) SET n.title = "mine now"', 'MATCH (n:Notebook) DELETE n'):
        err = _refused(tessera("query", "-s", "peer:alice", "--yes", create), 1)
        assert "source 'alice' is read-only" in err, err
    assert _digest(alice.replica) == before
    # no node key or anything else appeared beside the replica or in the data home
    assert _files(alice.replica.parent) == ["replica.db"]
    assert _files(_local_store().parent) == local_before
    assert alice.replica.stat().st_mode & 0o777 == 0o600


def test_editing_commands_refuse_a_peers_notebook(alice):
    before = _digest(alice.replica)
    for args in (("cell", "add", "alice:ops", "MATCH (p:Pod) RETURN p"), ("cell", "edit", "alice:ops/1", "x"),
                 ("cell", "rm", "alice:ops/1"), ("cell", "move", "alice:ops/1", "2"), ("cell", "split", "alice:ops/1"),
                 ("cell", "set", "alice:ops/1", "--view", "json"), ("notebook", "rm", "alice:ops", "--yes"),
                 ("notebook", "rename", "alice:ops", "x"), ("notebook", "title", "alice:ops", "x"),
                 ("notebook", "history", "alice:ops")):  # (notebook run alice:ops runs it at alice: issue 15)
        err = _refused(tessera(*args), 2)
        assert "'alice:ops" in err and "read-only" in err and "tessera notebook show alice:ops" in err, (args, err)
    assert _digest(alice.replica) == before
    err = _refused(tessera("notebook", "new", "alice:ops"), 2)  # not a name a notebook can have
    assert "bad notebook name" in err


def test_peer_addresses_leave_local_addresses_as_they_were():
    assert repository.parse_address("ops") == repository.Address("ops", None)
    assert repository.parse_address("ops/2", cell=True) == repository.Address("ops", 2)
    assert repository.parse_address("alice:ops", peer=True) == repository.Address("ops", None, "alice")
    assert repository.parse_address("alice:ops/2", peer=True, cell=True) == repository.Address("ops", 2, "alice")
    # a peer's name may hold ':' and '/': the notebook is after the last ':'
    assert repository.parse_address("me@a/b:c:ops/3", peer=True) == repository.Address("ops", 3, "me@a/b:c")
    assert str(repository.parse_address("alice:ops/2", peer=True)) == "alice:ops/2"
    for text, message in ((":ops", "name the peer"), ("alice:", "bad address ''"), ("alice:ops/x", "cell number"),
                          ("alice:o p", "not a notebook name")):
        with pytest.raises(UsageError, match=message):
            repository.parse_address(text, peer=True)
    with pytest.raises(UsageError, match="read-only"):
        repository.parse_address("alice:ops")
    with pytest.raises(UsageError, match="names a notebook; this command needs a cell"):
        repository.parse_address("alice:ops", peer=True, cell=True)


# --- listings ---------------------------------------------------------------------------------


def test_notebook_list_with_peers_adds_a_source_column(alice, bob):
    plain = tessera("notebook", "list", "-o", "json")
    assert plain.returncode == 0 and [r["name"] for r in json.loads(plain.stdout)] == ["mine"]
    assert "source" not in json.loads(plain.stdout)[0]
    r = tessera("notebook", "list", "--peers", "-o", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(row["source"], row["name"], row["title"], row["cells"]) for row in rows] == [
        ("local", "mine", "Mine", 0), ("alice", "ops", "alice's ops", 2), ("bob", "runbook", "bob's runbook", 2)]
    assert list(rows[0]) == ["source", "name", "title", "cells", "rows", "updated"]
    table = tessera("notebook", "list", "--peers", "-o", "table")
    assert table.stdout.splitlines()[0].split()[:2] == ["source", "name"]


def test_notebook_show_reads_a_peers_notebook(alice):
    r = tessera("notebook", "show", "alice:ops", "-o", "table")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "alice:ops: alice's ops (2 cells in 2 rows)"
    assert "alice:ops/1" in r.stdout and "alice:ops/2" in r.stdout and "MATCH (d:Deployment)" in r.stdout
    doc = json.loads(tessera("notebook", "show", "alice:ops", "-o", "json").stdout)
    assert doc["source"] == "alice" and doc["name"] == "ops" and doc["title"] == "alice's ops"
    assert [c["source"] for row in doc["rows"] for c in row["cells"]] == ["MATCH (d:Deployment) RETURN d.metadata.name", "# notes"]
    cell = json.loads(tessera("notebook", "show", f"{alice.node_id[:16]}:ops/2", "-o", "json").stdout)
    assert cell["type"] == "markdown" and cell["source"] == "# notes"
    err = _refused(tessera("notebook", "show", "alice:nope"), 1)
    assert "notebook 'nope' not found (notebooks: ops)" in err
    exported = tessera("notebook", "export", "alice:ops")
    assert exported.returncode == 0 and "MATCH (d:Deployment) RETURN d.metadata.name" in exported.stdout


def test_events_tail_peer_prints_the_replicas_events(alice):
    r = tessera("events", "tail", "--peer", "alice", "-o", "jsonl")
    assert r.returncode == 0, r.stderr
    assert [json.loads(line) for line in r.stdout.splitlines()] == alice.events()
    filtered = tessera("events", "tail", "--peer", "alice", "-o", "jsonl", "deploy.>", "--limit", "1")
    assert [json.loads(line)["subject"] for line in filtered.stdout.splitlines()] == ["deploy.shop.web"]
    table = tessera("events", "tail", "--peer", "alice", "-o", "table")
    assert "build.shop" in table.stdout and "deploy.local.api" not in table.stdout
    mine = tessera("events", "tail", "-o", "jsonl")
    assert "deploy.shop.web" not in mine.stdout and "deploy.local.api" in mine.stdout


def test_events_tail_peer_follow_sees_what_sync_writes(alice):
    proc = subprocess.Popen([*TSR, "events", "tail", "--peer", "alice", "-f", "deploy.>"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        backlog = json_lines(proc, 2)
        assert [e["subject"] for e in backlog] == ["deploy.shop.web", "deploy.shop.db"], stderr_lines(proc).queue
        events.append(alice.conn, "build.later", None)
        events.append(alice.conn, "deploy.shop.later", {"n": 3})
        alice.sync()  # another process's write to the replica, as sync makes it
        (later,) = json_lines(proc, 1)
        assert later == alice.events()[-1] and later["subject"] == "deploy.shop.later"
    finally:
        proc.terminate()
        proc.wait(30)


# --- escaping ---------------------------------------------------------------------------------


def test_a_peer_name_with_control_characters_is_escaped_in_every_output(tmp_path, own_store):
    evil = Peer(tmp_path, EVIL, ["deploy.evil"], "ops")
    evil.sync()
    shown = "ev\\x1b[31mil\\nname"
    ref = evil.node_id[:12]
    for fmt in ("table", "csv", "jsonl", "json", "yaml"):
        r = tessera("query", "-s", "peers", "-s", "local", "-o", fmt, "MATCH (e:LogEvent) RETURN e.subject")
        assert r.returncode == 0 and "\x1b" not in r.stdout and shown in r.stdout.replace("\\\\", "\\"), (fmt, r.stdout)
        r = tessera("notebook", "list", "--peers", "-o", fmt)
        assert r.returncode == 0 and "\x1b" not in r.stdout and shown in r.stdout.replace("\\\\", "\\"), (fmt, r.stdout)
    for fmt in ("tree", "graph", "dot", "mermaid", "cyphernetes"):
        r = tessera("query", "-s", "peers", "-s", "local", "-o", fmt, "MATCH (e:LogEvent) RETURN e.subject")
        assert r.returncode == 0 and "\x1b" not in r.stdout and "\n" + "name" not in r.stdout, (fmt, r.stdout)
    r = tessera("notebook", "show", f"{ref}:ops", "-o", "table")
    assert r.returncode == 0 and "\x1b" not in r.stdout and r.stdout.startswith(f"{shown}:ops: "), r.stdout
    r = tessera("notebook", "show", f"{ref}:ops", "-o", "json")
    assert "\x1b" not in r.stdout and json.loads(r.stdout)["source"] == shown
    r = tessera("events", "tail", "--peer", ref, "-o", "table")
    assert r.returncode == 0 and "\x1b" not in r.stdout and "deploy.evil" in r.stdout
    os.remove(evil.replica)
    err = _refused(tessera("query", "-s", f"peer:{ref}", DEPLOYS), 3)
    assert shown in err
    err = _refused(tessera("query", "-s", f"peer:{EVIL}x", DEPLOYS), 2)
    assert "ev\\x1b[31mil\\nnamex" in err


def test_query_watch_with_an_interval_follows_a_replica_as_sync_writes_it(alice):
    proc = subprocess.Popen([*TSR, "query", "--watch", "--interval", "0.2", "-s", "peer:alice", "-o", "jsonl",
                             'MATCH (e:LogEvent) WHERE e.subject =~ "deploy.*" RETURN e.subject'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json_lines(proc, 2)
        assert sorted(c["row"]["e.subject"] for c in first) == ["deploy.shop.db", "deploy.shop.web"], first
        events.append(alice.conn, "deploy.shop.cache", None)
        alice.sync()
        (added,) = json_lines(proc, 1)
        assert added["op"] == "added" and added["row"] == {"e.subject": "deploy.shop.cache"}, added
    finally:
        proc.terminate()
        proc.wait(30)


def test_query_watch_streams_what_sync_writes_without_an_interval(alice):
    proc = subprocess.Popen([*TSR, "query", "--watch", "-s", "peers", "-s", "local", "-o", "jsonl",
                             "MATCH (n:Notebook) RETURN n.metadata.name AS name, n.title AS title"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json_lines(proc, 2)
        assert sorted((c["op"], c["row"]["source"], c["row"]["name"]) for c in first) == [
            ("added", "alice", "ops"), ("added", "local", "mine")], (first, stderr_lines(proc).queue)
        repository.set_title(alice.conn, "ops", "renamed by alice")
        alice.sync()
        changes = json_lines(proc, 1)
        assert changes and changes[0]["row"] == {"source": "alice", "name": "ops", "title": "renamed by alice"}, changes
        repository.create(alice.conn, "later", "Later")
        alice.sync()
        (added,) = json_lines(proc, 1)
        assert added["op"] == "added" and added["row"] == {"source": "alice", "name": "later", "title": "Later"}, added
    finally:
        proc.terminate()
        proc.wait(30)


def test_local_with_no_store_yet_answers_nothing_and_creates_nothing():
    home = _local_store().parent
    r = tessera("query", "-s", "local", "-o", "jsonl", "MATCH (e:LogEvent) RETURN e.subject")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    err = _refused(tessera("query", "-s", "peers", "MATCH (e:LogEvent) RETURN e.subject"), 3)
    assert "tessera peer sync" in err
    err = _refused(tessera("events", "tail", "--peer", "alice"), 2)
    assert "no peer 'alice'" in err and "tessera peer list" in err
    assert not home.exists()


def test_what_a_peer_wrote_reaches_a_terminal_table_escaped(tmp_path, own_store):
    hostile = Peer(tmp_path, "mallory", ["deploy.m"], None)
    repository.create(hostile.conn, "ops", "t\x1b]0;owned\x07itle")
    repository.add_cell(hostile.conn, "ops", "MATCH (p:Pod)\x1b[2J RETURN p", title="c\x1b[31mell")
    hostile.sync()
    replica = db.connect(hostile.replica)  # a row as a careless or hostile sender could have it stored
    replica.execute("INSERT INTO events(seq, id, time, subject, type, actor, correlation, data, prev_hash, hash) "
                    "VALUES (9, 'x1', '2026-12-01T00:00:00\x1b[2J.000Z', 'deploy.m2', 'ty\x1b[5mpe', ?, 'c', '{\"k\": \"d\\u001b[1m\"}', '', '')",
                    (hostile.actor,))
    replica.close()
    outputs = [
        tessera("notebook", "show", "mallory:ops", "-o", "table"),
        tessera("notebook", "list", "--peers", "-o", "table"),
        tessera("query", "-s", "peer:mallory", "-o", "table", "MATCH (n:Notebook) RETURN n.title, n.cells"),
        tessera("query", "-s", "peer:mallory", "-o", "table", "MATCH (e:LogEvent) RETURN e.time, e.type, e.data"),
        tessera("events", "tail", "--peer", "mallory", "-o", "table"),
    ]
    for r in outputs:
        assert r.returncode == 0, (r.args, r.stderr)
        assert "\x1b" not in r.stdout and "\x07" not in r.stdout, (r.args, r.stdout)
        assert "\\x1b" in r.stdout, (r.args, r.stdout)  # shown escaped, not dropped
    assert "ty\\x1b[5mpe" in outputs[4].stdout and "ty\\x1b[5mpe" in outputs[3].stdout
    # -f prints its own table lines: escaped the same way
    proc = subprocess.Popen([*TSR, "events", "tail", "--peer", "mallory", "-o", "table", "-f", "deploy.m2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
        line = lines.get(timeout=60)
        assert "deploy.m2" in line and "ty\\x1b[5mpe" in line and "\x1b" not in line, line
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_watch_ends_when_its_source_closes_instead_of_deleting_everything(alice):
    import threading as _threading

    from tessera.core.errors import WatchExpired
    from tessera.core.sources.opening import open_sources
    from tessera.plugins.sources.store_objects import NOTEBOOK

    (source,) = open_sources(["peer:alice"])
    items, version = source.list_versioned(NOTEBOOK)
    assert [o["metadata"]["name"] for o in items] == ["ops"]
    with pytest.raises(WatchExpired):
        source.watch(NOTEBOOK, namespace=None, resource_version="stale", stop=_threading.Event())
    stream = source.watch(NOTEBOOK, namespace=None, resource_version=version, stop=_threading.Event(), timeout=60)
    source.close()
    assert list(stream) == []
