"""The event log: append, filters, follow, verify (tampering of each kind), prune, correlation."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading

import pytest

from tessera.core import events
from tessera.core.errors import UsageError
from tessera.core.store import db

TSR = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args, stdin=None):
    return subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=60, input=stdin)


@pytest.fixture
def conn(tmp_path):
    c = db.connect(tmp_path / "e.db")
    events.append_many(c, [(f"svc.{s}.{a}", {"n": i}) for i, (s, a) in enumerate(
        [("web", "deploy"), ("web", "scale"), ("api", "deploy"), ("api.v2", "deploy")])])
    return c


def test_subject_wildcards(conn):
    def subjects(pattern):
        return [e.subject for e in events.read(conn, pattern=pattern)]

    assert subjects("svc.*.deploy") == ["svc.web.deploy", "svc.api.deploy"]
    assert subjects("svc.>") == ["svc.web.deploy", "svc.web.scale", "svc.api.deploy", "svc.api.v2.deploy"]
    assert subjects("svc.api.>") == ["svc.api.deploy", "svc.api.v2.deploy"]
    assert subjects("svc.web") == []
    assert subjects(">") == subjects("svc.>")
    with pytest.raises(UsageError, match="token 2"):
        events.read(conn, pattern="svc.>.x")


def test_filters_since_until_after_seq_correlation(conn):
    events.append(conn, "late.one", 1, correlation="corr-1")
    assert [e.seq for e in events.read(conn, after_seq=3)] == [4, 5]
    assert [e.seq for e in events.read(conn, correlation="corr-1")] == [5]
    assert events.read(conn, since=events.parse_when("1h", flag="--since"))[0].seq == 1
    assert events.read(conn, until="2000-01-01T00:00:00.000Z") == []
    assert events.parse_when("2026-11-23T10:00:00+01:00", flag="--since") == "2026-11-23T09:00:00.000Z"
    with pytest.raises(UsageError, match="--since 'yesterday'"):
        events.parse_when("yesterday", flag="--since")


def _tamper(conn, sql, *args):
    conn.execute(sql, args)


@pytest.mark.parametrize("how, seq", [
    ("modified", 2),
    ("deleted", 3),
    ("inserted", 4),  # the forged entry links correctly; the one after it no longer does
    ("reordered", 2),
])
def test_verify_detects_tampering(conn, how, seq):
    assert events.verify(conn).ok
    if how == "modified":
        _tamper(conn, "UPDATE events SET data = '{\"n\": 99}' WHERE seq = 2")
    elif how == "deleted":
        _tamper(conn, "DELETE FROM events WHERE seq = 2")
    elif how == "inserted":
        # shift the tail up and slip a forged entry in at seq 3
        conn.execute("UPDATE events SET seq = seq + 100 WHERE seq >= 3")
        conn.execute("UPDATE events SET seq = seq - 99 WHERE seq >= 103")
        prev = conn.execute("SELECT hash FROM events WHERE seq = 2").fetchone()[0]
        h = events.entry_hash(prev, 3, "forged", "2026-01-01T00:00:00.000Z", "svc.x", "event", "n", "c", "{}")
        conn.execute("INSERT INTO events VALUES (3, 'forged', '2026-01-01T00:00:00.000Z', 'svc.x', 'event', 'n', 'c', '{}', ?, ?)",
                     (prev, h))
    elif how == "reordered":
        conn.execute("UPDATE events SET seq = 100 WHERE seq = 2")
        conn.execute("UPDATE events SET seq = 2 WHERE seq = 3")
        conn.execute("UPDATE events SET seq = 3 WHERE seq = 100")
    verdict = events.verify(conn)
    assert not verdict.ok and verdict.seq == seq, verdict


def test_verify_cli_names_the_seq(tmp_path):
    for i in range(3):
        assert tessera("events", "publish", "a.b", json.dumps({"i": i})).returncode == 0
    assert tessera("events", "verify").stdout.strip() == "ok: 3 events, chain intact"
    conn = db.connect()
    conn.execute("UPDATE events SET subject = 'a.c' WHERE seq = 2")
    r = tessera("events", "verify")
    assert r.returncode == 1
    assert r.stderr.startswith("tessera: event log broken at seq 2: seq 2 was modified")


def _rechain_and_resign(conn):
    """Recompute every hash of this node's chain and sign its new head with the node key, as
    only someone holding the key can: a history rewritten on purpose that verifies again."""
    from tessera.core import node_key

    prev, seq = events.GENESIS, 0
    for seq, eid, t, s, ty, a, c, d in conn.execute("SELECT seq, id, time, subject, type, actor, correlation, data FROM events ORDER BY seq").fetchall():
        h = events.entry_hash(prev, seq, eid, t, s, ty, a, c, d)
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, seq))
        prev = h
    key = node_key.signing_key(conn.path)
    actor, when = events.node_id(conn), "2026-01-01T00:00:00.000Z"
    conn.execute("UPDATE event_chains SET head_seq = ?, head_hash = ?, head_time = ?, signature = ? WHERE actor = ?",
                 (seq, prev, when, node_key.sign(key, events.head_message(actor, seq, prev, when)), actor))


def test_prune_keeps_the_chain_verifiable(conn):
    conn.execute("UPDATE events SET time = '2020-01-01T00:00:00.000Z' WHERE seq <= 2")
    # the times were edited, so re-chain (and re-sign the head) to make a valid old log first
    _rechain_and_resign(conn)
    assert events.verify(conn).ok
    assert events.prune(conn, older_than=events.parse_when("30d", flag="--older-than")) == 2
    assert [e.seq for e in events.read(conn)] == [3, 4]
    assert events.verify(conn).ok
    events.append(conn, "after.prune", 1)
    assert events.verify(conn).ok and events.last_seq(conn) == 5
    conn.execute("UPDATE events SET data = '1' WHERE seq = 3")
    assert events.verify(conn).seq == 3


def test_publish_validates_and_reads_stdin():
    r = tessera("events", "publish", "a.b", "{nope")
    assert r.returncode == 2 and r.stderr.startswith("tessera: DATA is not valid JSON")
    r = tessera("events", "publish", "a..b", "1")
    assert r.returncode == 2 and "bad subject 'a..b'" in r.stderr
    r = tessera("events", "publish", "deploy.web", "-", stdin='{"image": "web:2"}')
    assert r.returncode == 0 and json.loads(r.stdout)["data"] == {"image": "web:2"}


def test_one_invocation_one_correlation():
    a = json.loads(tessera("events", "publish", "x.y", "1").stdout)
    b = json.loads(tessera("events", "publish", "x.y", "2").stdout)
    assert a["correlation"] != b["correlation"]
    c = json.loads(tessera("--correlation", "deploy-42", "events", "publish", "x.y", "3").stdout)
    assert c["correlation"] == "deploy-42"
    rows = [json.loads(x) for x in tessera("events", "tail", "--correlation", "deploy-42").stdout.splitlines()]
    assert [r["data"] for r in rows] == [3]


def test_tail_table_and_jsonl():
    tessera("events", "publish", "t.one", '{"a": 1}')
    r = tessera("events", "tail", "-o", "table", "t.*")
    assert "t.one" in r.stdout and '{"a":1}' in r.stdout
    r = tessera("events", "tail", "--limit", "1", "-o", "jsonl")
    assert len(r.stdout.splitlines()) == 1


def test_tail_follow_sees_another_process():
    tessera("events", "publish", "live.before", "0")
    proc = subprocess.Popen([*TSR, "events", "tail", "-f", "live.>"], stdout=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(json.loads(x)) for x in proc.stdout], daemon=True).start()
        # The backlog's one event printed: the tail is following now (no fixed sleep to guess when).
        assert lines.get(timeout=60)["subject"] == "live.before"
        tessera("events", "publish", "other.thing", "0")
        tessera("events", "publish", "live.one", '{"k": 1}')
        line = lines.get(timeout=60)
        assert line["subject"] == "live.one" and line["data"] == {"k": 1}
    finally:
        proc.terminate()
        proc.wait(10)


# --- hostile event data (issue 12): one typed line, never an internal error --------------------


def _refused(r, code=2):
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.startswith("tessera: ") and len(r.stderr.splitlines()) == 1, r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr and "\x1b" not in r.stderr
    return r.stderr


def test_publish_refuses_data_over_the_event_limit_before_parsing(tmp_path, monkeypatch):
    big = '"' + "x" * (1024 * 1024) + '"'  # 1 MiB + 2 bytes of valid JSON
    err = _refused(tessera("events", "publish", "big.one", "-", stdin=big))
    assert "stdin holds more than the 1 MiB limit for one event's data" in err and "TESSERA_MAX_EVENT_BYTES" in err
    monkeypatch.setenv("TESSERA_MAX_EVENT_BYTES", "100")
    err = _refused(tessera("events", "publish", "big.one", '"' + "y" * 200 + '"'))
    assert "DATA is 202 bytes, over the 100 bytes limit for one event's data" in err
    f = tmp_path / "data.json"
    f.write_text("[" + "1," * 100 + "1]")
    with open(f) as fh:  # stdin from a file: measured before it is read
        r = subprocess.run([*TSR, "events", "publish", "big.one", "-"], stdin=fh, capture_output=True, text=True, timeout=60)
    assert "stdin is 203 bytes, over the 100 bytes limit" in _refused(r)
    monkeypatch.setenv("TESSERA_MAX_EVENT_BYTES", "2MiB")
    assert tessera("events", "publish", "big.one", "-", stdin=big).returncode == 0
    assert [e["subject"] for e in map(json.loads, tessera("events", "tail").stdout.splitlines())] == ["big.one"]


@pytest.mark.parametrize("data", ["[" * 100_000 + "]" * 100_000, "[" * 300 + "]" * 300, '{"a":' * 500 + "1" + "}" * 500],
                         ids=["100000-deep", "300-deep", "500-deep-objects"])
def test_publish_refuses_deeply_nested_data(data):
    assert "nested deeper than 200 levels" in _refused(tessera("events", "publish", "deep.one", "-", stdin=data))
    assert tessera("events", "tail").stdout == ""


def test_publish_refuses_huge_integers_and_lone_surrogates():
    assert "DATA is not usable JSON: Exceeds the limit (4300 digits)" in _refused(tessera("events", "publish", "n.one", "1" * 5000))
    assert "half of a surrogate pair" in _refused(tessera("events", "publish", "s.one", '"\\ud800"'))
    r = tessera("events", "publish", "s.two", '"\\ud83d\\ude00"')  # a whole pair is one character
    assert r.returncode == 0 and json.loads(r.stdout)["data"] == "\U0001F600"


def test_publish_empty_or_closed_stdin():
    assert "no event data on stdin" in _refused(tessera("events", "publish", "e.one", "-", stdin=""))
    r = subprocess.run([*TSR, "events", "publish", "e.one", "-"], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert "stdin is closed" in _refused(r)


def test_append_refuses_data_python_cannot_store(conn):
    from tessera.core.errors import InputError

    before = events.last_seq(conn)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InputError, match="nested too deep"):
        events.append(conn, "deep.one", deep)
    with pytest.raises(InputError, match="half of a surrogate pair"):
        events.append(conn, "s.one", {"k": "\ud800"})
    assert events.last_seq(conn) == before


@pytest.mark.parametrize("args,expected", [
    (["events", "tail", "--since", "99999999999999d"], "reaches back past year 1"),
    (["events", "prune", "--older-than", "99999999999999d"], "reaches back past year 1"),
    (["events", "tail", "--after-seq", str(10**23)], "is larger than any seq"),
], ids=["since", "prune", "after-seq"])
def test_time_and_seq_flags_past_what_can_be_stored(args, expected):
    assert expected in _refused(tessera(*args))


def test_correlation_ids_are_per_context_threads_and_asyncio():
    """A daemon serves many requests at once: each thread or task keeps its own correlation id."""
    import asyncio
    import threading

    barrier, seen = threading.Barrier(2, timeout=60), {}

    def request(name):
        events.set_correlation(f"req-{name}")
        barrier.wait()  # both have set theirs before either reads
        seen[name] = events.correlation_id()

    threads = [threading.Thread(target=request, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert seen == {"a": "req-a", "b": "req-b"}

    async def task(name, started, both):
        events.set_correlation(f"task-{name}")
        started.set()
        await both.wait()
        return events.correlation_id()

    async def main():
        s1, s2, both = asyncio.Event(), asyncio.Event(), asyncio.Event()
        t1 = asyncio.create_task(task("1", s1, both))
        t2 = asyncio.create_task(task("2", s2, both))
        await s1.wait()
        await s2.wait()
        both.set()
        return await t1, await t2

    assert asyncio.run(main()) == ("task-1", "task-2")


def test_the_chain_encoders_write_what_json_writes_and_refuse_what_it_refuses():
    """events' canonical and body encoders reuse one C encoder (core/events._json_encoder) for
    speed: the text, which every hash covers, must stay byte for byte json.JSONEncoder's."""
    canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
    body = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    values = [{"b": 1, "a": [1.5, -0.0, 1e16, 2**70, None, True, "é\n\"\\\x00\u2028"]}, "text", 3, [], {},
              {"z": {"y": {"x": [{"b": 2, "a": 1}]}}}, {"1": 2, "10": 3, "2": 1}, [1, "a", {"k": "v"}]]
    for value in values:
        assert events._encode_canonical(value) == canonical(value), value
        assert events._encode_body(value) == body(value), value
    assert events._encode_body([float("nan")]) == body([float("nan")]) == "[NaN]"
    for bad in ({"a": float("nan")}, {b"k": 1}, {"a": b"x"}, {"a": object()}):
        with pytest.raises((TypeError, ValueError)):
            canonical(bad)
        with pytest.raises((TypeError, ValueError)):
            events._encode_canonical(bad)
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        events._encode_canonical(deep)
    with pytest.raises(events.InputError, match="nested too deep"):
        events._canonical(deep)
