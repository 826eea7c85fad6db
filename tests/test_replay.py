"""Recordings (core/recording_file.py), the replay source and the bundled demo recording."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tessera.core import api
from tessera.core.builtin_kinds import BUILTIN_KINDS
from tessera.core.errors import InputError, QueryError, SourceUnavailable, UsageError, WatchExpired
from tessera.core.recording_file import (
    RecordingWriter,
    format_time,
    load_recording,
    parse_time,
    state_at,
)
from tessera.plugins.sources.replay import DEMO_RECORDING, ReplaySource

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "tools" / "demo" / "record_demo.py"
T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=timezone.utc)
POD = next(k for k in BUILTIN_KINDS if k.kind == "Pod")
DEPLOY = next(k for k in BUILTIN_KINDS if k.kind == "Deployment")


def pod(name, ns="x", labels=None, **extra):
    meta = {"name": name, "namespace": ns, "labels": labels or {}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, **extra}


def widget(name, ns="x"):
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name, "namespace": ns}}


def write_tiny(path, *, scale=100.0):
    """a (x, app=web) and b (y, app=db) at start; a modified at +1; a Widget at +2; b deleted at +3 (units of `scale` s)."""
    t = lambda n: T0 + timedelta(seconds=n * scale)  # noqa: E731
    with RecordingWriter(path, "tiny", started=T0) as w:
        w.write("ADDED", pod("a", "x", {"app": "web"}), t(0))
        w.write("ADDED", pod("b", "y", {"app": "db"}), t(0))
        w.write("MODIFIED", pod("a", "x", {"app": "web", "v": "2"}), t(1))
        w.write("ADDED", widget("w1"), t(2))
        w.write("DELETED", pod("b", "y", {"app": "db"}), t(3))
    return path


# --- the demo recording -------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    return load_recording(DEMO_RECORDING)


def pods(state, ns=None):
    return {k[3]: o for k, o in state.items() if k[1] == "Pod" and (ns is None or k[2] == ns)}


def test_demo_recording_is_small_and_well_formed(demo):
    assert DEMO_RECORDING.stat().st_size < 1_000_000
    assert demo.header["recording"] == "tessera/1"
    assert demo.context == "demo"
    assert demo.start == datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
    assert 8 * 60 <= demo.duration <= 11 * 60
    churn = [ts for ts, _, _ in demo.events if ts > demo.start]
    assert churn, "no events after the initial state"
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise([demo.start] + churn)]
    assert max(gaps) <= 10.0
    # Every change carries a newer resourceVersion.
    versions = [int(o["metadata"]["resourceVersion"]) for ts, _, o in demo.events]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_demo_start_vs_end(demo):
    start, end = state_at(demo, demo.start), state_at(demo, demo.end)
    # Initial state is the demo cluster.
    from tessera.plugins.sources.demo import DemoSource

    assert len(start) == len(DemoSource().objects())
    # The rollout: frontend pods at the end all run 2.15.0 and none of them existed at the start.
    new = {n: p for n, p in pods(end, "shop").items() if n.startswith("frontend-")}
    assert len(new) == 3
    assert all(p["spec"]["containers"][0]["image"].endswith(":2.15.0") for p in new.values())
    assert not set(new) & set(pods(start, "shop"))
    assert all(p["status"]["phase"] == "Running" for p in new.values())
    deploy = end[("apps", "Deployment", "shop", "frontend")]
    assert deploy["status"]["updatedReplicas"] == 3
    assert deploy["status"]["observedGeneration"] == deploy["metadata"]["generation"]
    old_rs = end[("apps", "ReplicaSet", "shop", "frontend-tkb67fsqg4")]
    assert old_rs["spec"]["replicas"] == 0 and old_rs["status"]["replicas"] == 0
    # The crash loop: restartCount grew and the last termination is recorded.
    before = start[("", "Pod", "payments", "ledger-246hsqj64q-hxgl8")]["status"]["containerStatuses"][0]
    after = end[("", "Pod", "payments", "ledger-246hsqj64q-hxgl8")]["status"]["containerStatuses"][0]
    assert after["restartCount"] >= before["restartCount"] + 3
    assert after["lastState"]["terminated"]["exitCode"] == 1
    # The scale up and back down: payments-api ends where it began, with different history.
    assert end[("apps", "Deployment", "payments", "payments-api")]["spec"]["replicas"] == 2
    assert set(pods(end, "payments")) == set(pods(start, "payments"))


def test_demo_crash_loop_shows_backoff(demo):
    reasons = [
        o["status"]["containerStatuses"][0]["state"].get("waiting", {}).get("reason")
        for ts, _, o in demo.events
        if ts > demo.start and o["kind"] == "Pod" and o["metadata"]["name"] == "ledger-246hsqj64q-hxgl8"
    ]
    assert reasons.count("CrashLoopBackOff") >= 3


def test_demo_scale_up_then_down(demo):
    replicas = [
        o["spec"]["replicas"]
        for ts, _, o in demo.events
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "payments-api"
    ]
    assert max(replicas) == 4 and replicas[0] == replicas[-1] == 2
    mid = demo.start + timedelta(seconds=300)
    assert len([n for n in pods(state_at(demo, mid), "payments") if n.startswith("payments-api-")]) == 4


def test_demo_owner_references_hold_at_every_step(demo):
    # Check a handful of instants, including the middle of the rollout.
    deletions = [ts for ts, t, o in demo.events if t == "DELETED" and o["metadata"]["namespace"] == "shop"]
    instants = [demo.start, deletions[0] - timedelta(milliseconds=1), deletions[-1], demo.end]
    for when in instants:
        state = state_at(demo, when)
        uids = {o["metadata"]["uid"]: o for o in state.values()}
        for o in state.values():
            for ref in o["metadata"].get("ownerReferences", []):
                owner = uids.get(ref["uid"])
                assert owner is not None, (when, o["metadata"]["name"])
                assert (owner["kind"], owner["metadata"]["name"]) == (ref["kind"], ref["name"])


def test_state_at_mid_rollout_has_old_and_new_pods(demo):
    first_delete = next(ts for ts, t, o in demo.events if t == "DELETED" and o["metadata"]["name"].startswith("frontend-"))
    mid = state_at(demo, first_delete - timedelta(milliseconds=1))
    frontend = [p for n, p in pods(mid, "shop").items() if n.startswith("frontend-")]
    hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in frontend}
    assert "tkb67fsqg4" in hashes and len(hashes) == 2
    # An AT-style time string gives the same state.
    at = parse_time(format_time(first_delete - timedelta(milliseconds=1)))
    assert state_at(demo, at).keys() == mid.keys()
    # Before the start nothing exists; long after the end the final state holds.
    assert state_at(demo, demo.start - timedelta(seconds=1)) == {}
    assert state_at(demo, demo.end + timedelta(days=1)).keys() == state_at(demo, demo.end).keys()


def test_relationship_query_over_the_replayed_demo():
    src = ReplaySource("demo", at=datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc))
    res = api.run_query(
        'MATCH (d:Deployment {name: "frontend"})->(rs:ReplicaSet)->(p:Pod) RETURN p.spec.containers[0].image AS image',
        [src],
    )
    assert [r[0] if isinstance(r, (list, tuple)) else r["image"] for r in res.rows] == ["ghcr.io/acme/frontend:2.15.0"] * 3


def test_record_demo_is_reproducible(tmp_path):
    out = tmp_path / "again.jsonl.gz"
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], check=True, cwd=tmp_path)
    assert out.read_bytes() == DEMO_RECORDING.read_bytes()


# --- parse_time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-23T10:00:00Z", T0),
        ("2026-11-23T10:00:00.000Z", T0),
        ("2026-11-23t10:00:00z", T0),
        ("2026-11-23T11:30:00+01:30", T0),
        ("2026-11-23T05:00:00-05:00", T0),
        ("2026-11-23T10:00:00.123456789Z", T0 + timedelta(microseconds=123456)),
        ("2026-11-23T10:00:00.5Z", T0 + timedelta(milliseconds=500)),
    ],
)
def test_parse_time(text, expected):
    got = parse_time(text)
    assert got == expected and got.tzinfo == timezone.utc


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-11-23", "2026-11-23T10:00:00", "2026-13-01T00:00:00Z", "2026-11-23T10:00Z", "2026-11-23T10:00:00+25:00"]
)
def test_parse_time_rejects(text):
    with pytest.raises(QueryError) as err:
        parse_time(text)
    assert err.value.message == f"AT: '{text}' is not an RFC 3339 time"
    assert err.value.hint


def test_format_time_round_trips():
    when = T0 + timedelta(milliseconds=250)
    assert format_time(when) == "2026-11-23T10:00:00.250Z"
    assert parse_time(format_time(when)) == when


# --- reading and writing ------------------------------------------------------------------


def test_plain_and_gzip_read_the_same(tmp_path):
    plain = load_recording(write_tiny(tmp_path / "r.jsonl"))
    packed = load_recording(write_tiny(tmp_path / "r.jsonl.gz"))
    assert (tmp_path / "r.jsonl.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert plain.events == packed.events and plain.header == packed.header
    assert plain.start == T0 and plain.end == T0 + timedelta(seconds=300)
    assert [t for _, t, _ in plain.events] == ["ADDED", "ADDED", "MODIFIED", "ADDED", "DELETED"]


def test_writer_header_and_stream(tmp_path):
    buf = io.StringIO()
    w = RecordingWriter(buf, "ctx", started=T0)
    w.write("ADDED", pod("a"), T0)
    lines = buf.getvalue().splitlines()
    assert json.loads(lines[0]) == {"recording": "tessera/1", "context": "ctx", "started": "2026-11-23T10:00:00.000Z"}
    assert json.loads(lines[1])["type"] == "ADDED"
    w.close()
    assert not buf.closed  # a stream passed in stays the caller's
    with pytest.raises(ValueError):
        w.write("ADDED", pod("b"))
    with pytest.raises(ValueError):
        RecordingWriter(io.BytesIO(), "ctx").write("UPSERTED", pod("a"))


def test_writer_flushes_each_line(tmp_path):
    # A recorder killed without close() still leaves a readable file, gzip included.
    for name in ("live.jsonl", "live.jsonl.gz"):
        path = tmp_path / name
        w = RecordingWriter(path, "ctx", started=T0)
        w.write("ADDED", pod("a"), T0)
        w.write("MODIFIED", pod("a", labels={"v": "2"}), T0 + timedelta(seconds=1))
        rec = load_recording(path)
        assert [t for _, t, _ in rec.events] == ["ADDED", "MODIFIED"], name
        w.close()


def test_gzip_written_by_path_is_byte_stable(tmp_path):
    a = write_tiny(tmp_path / "a.jsonl.gz").read_bytes()
    b = write_tiny(tmp_path / "other-name.jsonl.gz").read_bytes()
    assert a == b


def _write_lines(path, lines, newline_at_end=True):
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    path.write_text(text)
    return path


HEADER = '{"recording": "tessera/1", "context": "c", "started": "2026-11-23T10:00:00Z"}'
EVENT = '{"ts": "2026-11-23T10:00:00Z", "type": "ADDED", "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "x"}}}'


def test_missing_header(tmp_path):
    with pytest.raises(InputError, match=r"bad\.jsonl:1: not a tessera recording"):
        load_recording(_write_lines(tmp_path / "bad.jsonl", [EVENT]))
    with pytest.raises(InputError, match=r"empty\.jsonl:1: empty recording"):
        load_recording(_write_lines(tmp_path / "empty.jsonl", [], newline_at_end=False))
    with pytest.raises(InputError, match=r":1: unsupported recording format 'tessera/9'"):
        load_recording(_write_lines(tmp_path / "v9.jsonl", [HEADER.replace("tessera/1", "tessera/9")]))
    with pytest.raises(InputError, match=r":1: header 'started'"):
        load_recording(_write_lines(tmp_path / "nostart.jsonl", ['{"recording": "tessera/1", "context": "c"}']))


def test_bad_lines_name_their_line(tmp_path):
    path = tmp_path / "r.jsonl"
    with pytest.raises(InputError, match=r"r\.jsonl:3: invalid JSON"):
        load_recording(_write_lines(path, [HEADER, EVENT, "{not json", EVENT]))
    with pytest.raises(InputError, match=r"r\.jsonl:2: unknown event type 'UPSERTED'"):
        load_recording(_write_lines(path, [HEADER, EVENT.replace("ADDED", "UPSERTED")]))
    with pytest.raises(InputError, match=r"r\.jsonl:3: 'ts' must be an RFC 3339 time"):
        load_recording(_write_lines(path, [HEADER, EVENT, EVENT.replace("2026-11-23T10:00:00Z", "noon")]))
    with pytest.raises(InputError, match=r"r\.jsonl:2: 'object' must be a resource"):
        load_recording(_write_lines(path, [HEADER, '{"ts": "2026-11-23T10:00:00Z", "type": "ADDED", "object": 3}']))
    # Blank lines still count, so the number matches what an editor shows.
    with pytest.raises(InputError, match=r"r\.jsonl:4: invalid JSON"):
        load_recording(_write_lines(path, [HEADER, "", EVENT, "[1,", EVENT]))


def test_truncated_last_line_is_ignored(tmp_path):
    path = _write_lines(tmp_path / "r.jsonl", [HEADER, EVENT, EVENT[:40]], newline_at_end=False)
    assert len(load_recording(path).events) == 1
    # ...but not when a newline follows it: then the line was written whole, and is bad.
    path = _write_lines(tmp_path / "r2.jsonl", [HEADER, EVENT, EVENT[:40]])
    with pytest.raises(InputError, match=r":3: invalid JSON"):
        load_recording(path)


def test_truncated_gzip_keeps_the_flushed_prefix(tmp_path):
    full = write_tiny(tmp_path / "r.jsonl.gz").read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(full[: len(full) - 30])
    rec = load_recording(cut)
    assert 1 <= len(rec.events) < 5


def test_missing_file_is_unavailable(tmp_path):
    with pytest.raises(SourceUnavailable, match="no such recording"):
        load_recording(tmp_path / "nope.jsonl")
    with pytest.raises(SourceUnavailable):
        ReplaySource(str(tmp_path / "nope.jsonl"))


def test_events_out_of_order_are_sorted(tmp_path):
    later = EVENT.replace("10:00:00Z", "10:00:05Z").replace('"a"', '"late"')
    rec = load_recording(_write_lines(tmp_path / "r.jsonl", [HEADER, later, EVENT]))
    assert [o["metadata"]["name"] for _, _, o in rec.events] == ["a", "late"]


# --- ReplaySource -------------------------------------------------------------------------


def test_replay_source_basics(tmp_path):
    path = write_tiny(tmp_path / "r.jsonl")
    src = ReplaySource(str(path), at=T0)
    assert src.name == f"replay:{path}"
    assert src.writable is False and src.concurrent is False and src.default_namespace is None
    assert src.now() == T0
    with pytest.raises(UsageError):
        ReplaySource(str(path), speed=0)


def test_kinds_include_kinds_seen_in_the_file(tmp_path):
    src = ReplaySource(str(write_tiny(tmp_path / "r.jsonl")))
    widget_kind = next(k for k in src.kinds() if k.kind == "Widget")
    assert (widget_kind.group, widget_kind.version, widget_kind.plural, widget_kind.namespaced) == (
        "example.com", "v1", "widgets", True,
    )
    assert any(k.kind == "Pod" and k.group == "" for k in src.kinds())
    # The demo recording's CRD gives its kind the CRD's names.
    demo_kinds = ReplaySource("demo").kinds()
    cert = [k for k in demo_kinds if k.kind == "Certificate"]
    assert len(cert) == 1 and cert[0].group == "cert-manager.io" and cert[0].plural == "certificates"


def test_list_filters_and_follows_set_at(tmp_path):
    src = ReplaySource(str(write_tiny(tmp_path / "r.jsonl")), at=T0)
    names = lambda objs: sorted(o["metadata"]["name"] for o in objs)  # noqa: E731
    assert names(src.list(POD)) == ["a", "b"]
    assert names(src.list(POD, namespace="y")) == ["b"]
    assert names(src.list(POD, name="a")) == ["a"]
    assert names(src.list(POD, labels={"app": "db"})) == ["b"]
    assert names(src.list(POD, labels={"app": "web", "v": "2"})) == []
    assert src.list(DEPLOY) == []
    src.set_at(T0 + timedelta(seconds=150))
    assert names(src.list(POD, labels={"app": "web", "v": "2"})) == ["a"]
    widget_kind = next(k for k in src.kinds() if k.kind == "Widget")
    assert src.list(widget_kind) == []
    src.set_at(T0 + timedelta(seconds=350))
    assert names(src.list(POD)) == ["a"]
    assert names(src.list(widget_kind)) == ["w1"]
    # Back in time works too (the state is rebuilt).
    src.set_at(T0 - timedelta(seconds=1))
    assert src.list(POD) == []


def test_clock_plays_and_holds_at_the_end(tmp_path):
    src = ReplaySource(str(write_tiny(tmp_path / "r.jsonl", scale=1.0)), speed=1000)
    time.sleep(0.05)  # 50 recording-seconds: well past the 3 s recording
    assert src.now() == src.recording.end
    assert sorted(o["metadata"]["name"] for o in src.list(POD)) == ["a"]


def test_watch_yields_events_in_order_as_the_clock_reaches_them(tmp_path):
    # Events at +100 s, +200 s, +300 s; at speed 1000 that is 0.1 s, 0.2 s and 0.3 s of real time.
    src = ReplaySource(str(write_tiny(tmp_path / "r.jsonl")), speed=1000)
    opened = time.monotonic()
    stop = threading.Event()
    got = []
    for type_, obj in src.watch(POD, namespace=None, resource_version="1", stop=stop, timeout=60):
        got.append((type_, obj["metadata"]["name"], round(time.monotonic() - opened, 3)))
        if len(got) == 2:
            break
    assert [g[:2] for g in got] == [("MODIFIED", "a"), ("DELETED", "b")]
    assert got[1][2] >= 0.25  # the delete waited for the clock
    items, rv = src.list_versioned(POD)
    assert [o["metadata"]["name"] for o in items] == ["a"] and rv == "4"


def test_watch_filters_namespace_and_kind(tmp_path):
    src = ReplaySource(str(write_tiny(tmp_path / "r.jsonl", scale=0.001)), speed=1000)
    time.sleep(0.01)
    stop = threading.Event()
    got = list(src.watch(POD, namespace="y", resource_version="-1", stop=stop, timeout=0.1))
    assert [(t, o["metadata"]["name"]) for t, o in got] == [("ADDED", "b"), ("DELETED", "b")]


def test_watch_stops_promptly(tmp_path):
    src = ReplaySource(str(write_tiny(tmp_path / "r.jsonl")), speed=1)  # next event 100 s away
    items, rv = src.list_versioned(POD)
    assert rv == "1" and len(items) == 2
    stop = threading.Event()
    got = []
    done = threading.Event()

    def run():
        got.extend(src.watch(POD, namespace=None, resource_version=rv, stop=stop, timeout=60))
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.1)  # most likely inside the wait by now; if not, stop is seen on the way in
    assert not done.is_set()
    stop.set()
    # The next event is 100 s away and the watch's own timeout 60 s: ending well before either
    # is the stop at work (how promptly is not a wall-clock bound a busy machine can keep).
    assert done.wait(30)
    assert got == []


def test_watch_returns_after_timeout(tmp_path):
    src = ReplaySource(str(write_tiny(tmp_path / "r.jsonl")), speed=1)
    began = time.monotonic()
    assert list(src.watch(POD, namespace=None, resource_version="1", stop=threading.Event(), timeout=0.2)) == []
    assert time.monotonic() - began >= 0.15  # it waited (no upper bound: a busy machine may be slow)


def test_fixed_clock_watch_and_moving_back(tmp_path):
    src = ReplaySource(str(write_tiny(tmp_path / "r.jsonl")), at=T0 + timedelta(seconds=150))
    items, rv = src.list_versioned(POD)
    assert rv == "2"
    assert list(src.watch(POD, namespace=None, resource_version=rv, stop=threading.Event(), timeout=0.1)) == []
    src.set_at(T0)
    with pytest.raises(WatchExpired):
        list(src.watch(POD, namespace=None, resource_version=rv, stop=threading.Event(), timeout=0.1))
    with pytest.raises(WatchExpired):
        list(src.watch(POD, namespace=None, resource_version="garbage", stop=threading.Event(), timeout=0.1))


def test_loop_wraps_and_expires_the_watch(tmp_path):
    src = ReplaySource(str(write_tiny(tmp_path / "r.jsonl")), speed=1000, loop=True)  # 0.3 s per cycle
    items, rv = src.list_versioned(POD)
    stop = threading.Event()
    got = []
    with pytest.raises(WatchExpired):  # at the wrap, 0.3 s in; the timeout only keeps a bug from hanging
        for type_, obj in src.watch(POD, namespace=None, resource_version=rv, stop=stop, timeout=60):
            got.append((type_, obj["metadata"]["name"]))
    assert ("DELETED", "b") in got  # the end of the cycle was delivered before the wrap
    items2, rv2 = src.list_versioned(POD)
    assert int(rv2) > int(rv)
    assert "a" in [o["metadata"]["name"] for o in items2]


def test_without_loop_the_end_holds(tmp_path):
    src = ReplaySource(str(write_tiny(tmp_path / "r.jsonl", scale=0.01)), speed=1000)
    time.sleep(0.05)
    _, rv = src.list_versioned(POD)
    assert rv == "4"
    assert list(src.watch(POD, namespace=None, resource_version=rv, stop=threading.Event(), timeout=0.1)) == []


def test_gzip_truncated_demo_like_file_replays(tmp_path):
    path = tmp_path / "r.jsonl.gz"
    with gzip.open(DEMO_RECORDING, "rb") as f:
        lines = f.read().split(b"\n")
    path.write_bytes(gzip.compress(b"\n".join(lines[:50]) + b"\n" + lines[50][:20], mtime=0))
    src = ReplaySource(str(path), at=datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert len(src.recording.events) == 49  # the header, 49 whole events, a cut one
