"""Peers over the network with real processes (issue 14): two data homes, `tessera serve` as a
subprocess on loopback (TESSERA_PEER_LOOPBACK=1), pairing through `peer invite` / `peer join`,
an unknown node refused with one error frame, SIGTERM, the serve lock and the sync lock.
Ports and tickets are read from the processes' output; every wait polls a condition."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.process_lines import stderr_lines, wait_stderr

TSR = [sys.executable, "-m", "tessera.cli.main"]
DEADLINE = 60  # seconds for any one process or condition: generous on a busy 2-core machine


def env_for(home: Path) -> dict:
    return {**os.environ, "TESSERA_HOME": str(home / "data"), "TESSERA_CONFIG_DIR": str(home / "config"),
            "TESSERA_PEER_LOOPBACK": "1"}


def tessera(home: Path, *args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess:
    return subprocess.run([*TSR, *args], env=env_for(home), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def store(home: Path) -> sqlite3.Connection:
    from tessera.core.store.db import connect

    return connect(home / "data" / "tessera.db")


def node_id(home: Path) -> str:
    return tessera(home, "peer", "id").stdout.strip()


def wait_until(condition, what: str, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def procs():
    started = []

    def start(home: Path, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([*TSR, *args], env=env_for(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(DEADLINE)


def start_serve(procs, home: Path, *args: str) -> tuple[subprocess.Popen, dict]:
    proc = procs(home, "serve", *args)
    line = wait_stderr(proc, lambda l: '"listening"' in l, timeout=DEADLINE)
    return proc, json.loads(line)


def start_invite(procs, home: Path, *args: str) -> tuple[subprocess.Popen, str, str]:
    """A running `peer invite`: its ticket and PIN, read from its first two lines."""
    proc = procs(home, "peer", "invite", *args)
    ticket_line, pin_line = proc.stdout.readline(), proc.stdout.readline()
    assert ticket_line.startswith("ticket  tessera:") and pin_line.startswith("pin     "), \
        (ticket_line, pin_line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, ticket_line.split()[1], pin_line.split()[1]


@pytest.fixture
def homes(tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    assert tessera(alice, "peer", "init", "--name", "alice").returncode == 0
    assert tessera(bob, "peer", "init", "--name", "bob").returncode == 0
    return alice, bob


def peers_of(home: Path) -> dict:
    conn = store(home)
    try:
        return {row[0]: row[1:] for row in conn.execute("SELECT node_id, name, role, publish, subscribe, address FROM peers")}
    finally:
        conn.close()


def shares_of(home: Path) -> set:
    conn = store(home)
    try:
        return set(conn.execute("SELECT item, node_id FROM peer_shares"))
    finally:
        conn.close()


# -- pairing ---------------------------------------------------------------------------------------

def test_pairing_through_a_running_serve_adds_each_side_to_the_other(procs, homes):
    alice, bob = homes
    serve, listening = start_serve(procs, alice)
    invite, ticket, pin = start_invite(procs, alice, "--role", "editor", "--share", "ops", "--share", "events:k8s.>")
    joined = tessera(bob, "peer", "join", ticket, "--pin", pin)
    assert joined.returncode == 0, joined.stderr
    assert "paired with alice" in joined.stdout
    out, err = invite.communicate(timeout=DEADLINE)
    assert invite.returncode == 0, err
    bob_id, alice_id = node_id(bob), node_id(alice)
    assert f"paired with bob ({bob_id[:10]}), role editor" in out
    name, role, publish, subscribe, _ = peers_of(alice)[bob_id]
    assert (name, role, publish, subscribe) == ("bob", "editor", 1, 1)
    assert shares_of(alice) == {("notebook:ops", bob_id), ("events:k8s.>", bob_id)}
    name, _, publish, subscribe, address = peers_of(bob)[alice_id]
    assert (name, publish, subscribe) == ("alice", 1, 1)
    assert address == listening["ticket"] and ticket.endswith(listening["ticket"])


def test_pairing_without_a_serve_the_invite_answers_itself_and_join_takes_a_name(procs, homes):
    alice, bob = homes
    invite, ticket, pin = start_invite(procs, alice)
    joined = tessera(bob, "peer", "join", ticket, "--pin", pin[:3] + " " + pin[3:], "--name", "work laptop")
    assert joined.returncode == 0, joined.stderr
    assert invite.wait(DEADLINE) == 0
    assert peers_of(bob)[node_id(alice)][0] == "work laptop"
    assert peers_of(alice)[node_id(bob)][:4] == ("bob", "viewer", 1, 1)
    assert shares_of(alice) == set()  # private by default


def test_a_wrong_pin_cancels_the_invite_shows_the_attempt_and_the_right_pin_is_then_refused(procs, homes):
    alice, bob = homes
    serve, _ = start_serve(procs, alice)
    invite, ticket, pin = start_invite(procs, alice)
    wrong = f"{(int(pin) + 1) % 1_000_000:06d}"
    joined = tessera(bob, "peer", "join", ticket, "--pin", wrong)
    assert joined.returncode == 5, joined.stderr
    assert "wrong PIN" in joined.stderr and "Traceback" not in joined.stderr
    out, err = invite.communicate(timeout=DEADLINE)
    assert invite.returncode == 5
    assert f"node {node_id(bob)} at 127.0.0.1:" in err or f"node {node_id(bob)} at [::1]:" in err, err
    again = tessera(bob, "peer", "join", ticket, "--pin", pin)
    assert again.returncode == 5 and "cancelled" in again.stderr, again.stderr
    assert peers_of(alice) == {} and peers_of(bob) == {}


def test_a_pin_that_is_not_six_digits_is_refused_before_dialing(homes):
    alice, bob = homes
    ticket = "tessera:AAAAAAAAAAAAAAAA:endpointaaaa"
    bad = tessera(bob, "peer", "join", ticket, "--pin", "12345")
    assert bad.returncode == 2 and "6 digits" in bad.stderr
    not_a_ticket = tessera(bob, "peer", "join", "endpointabc", "--pin", "123456")
    assert not_a_ticket.returncode == 2 and "not an invite ticket" in not_a_ticket.stderr
    no_pin = tessera(bob, "peer", "join", ticket)
    assert no_pin.returncode == 2 and "--pin" in no_pin.stderr


# -- serve -----------------------------------------------------------------------------------------

async def _dial_and_collect(home: Path, ticket: str, frames_to_send: list[dict], *, hello: bool) -> list[dict]:
    """Dial ``ticket`` as the node of ``home``; send a hello (when asked) and ``frames_to_send``;
    every frame the server sent until it closed."""
    from tessera.core import node_key
    from tessera.core.peers import frames, message_types, transport

    key = node_key.signing_key(home / "data" / "tessera.db")
    endpoint = await transport.Endpoint.bind(key, loopback=True)
    try:
        connection = await endpoint.connect(ticket)
        stream = await connection.open_stream()
        if hello:
            await frames.write_frame(stream, message_types.make(
                "hello", version=message_types.PROTOCOL_VERSION, node_id=endpoint.node_id, name="mallory", ticket=""))
        for frame in frames_to_send:
            await frames.write_frame(stream, frame)
        await stream.finish()
        got = []
        try:
            while (frame := await asyncio.wait_for(frames.read_frame(stream), DEADLINE)) is not None:
                got.append(frame)
        except (transport.TransportError, frames.ProtocolError):
            pass
        connection.close()
        return got
    finally:
        await endpoint.close()


def test_an_unknown_node_gets_one_error_frame_naming_the_fix_and_nothing_else(procs, homes, tmp_path):
    alice, _ = homes
    mallory = tmp_path / "mallory"
    assert tessera(mallory, "peer", "init", "--name", "mallory").returncode == 0
    serve, listening = start_serve(procs, alice)
    got = asyncio.run(_dial_and_collect(mallory, listening["ticket"], [{"type": "shares"}], hello=True))
    assert len(got) == 1 and got[0]["type"] == "error" and got[0]["code"] == "unknown_peer", got
    assert f"tessera peer add {node_id(mallory)} --publish" in got[0]["fix"]
    # and the server goes on answering
    again = asyncio.run(_dial_and_collect(mallory, listening["ticket"], [], hello=True))
    assert [f["code"] for f in again] == ["unknown_peer"]
    assert serve.poll() is None


def test_sigterm_stops_serve_with_exit_0_and_a_second_serve_refuses(procs, homes):
    alice, _ = homes
    serve, listening = start_serve(procs, alice)
    second = tessera(alice, "serve")
    assert second.returncode == 3 and "another `tessera serve`" in second.stderr
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(DEADLINE) == 0
    assert not (alice / "data" / "serve.ticket").exists()
    # the port is the node's: the next serve listens on the same one, so tickets stay valid
    again, relisten = start_serve(procs, alice)
    assert relisten["port"] == listening["port"]


def test_serve_logs_json_lines_without_the_pin(procs, homes):
    alice, bob = homes
    serve, _ = start_serve(procs, alice)
    invite, ticket, pin = start_invite(procs, alice)
    assert tessera(bob, "peer", "join", ticket, "--pin", pin).returncode == 0
    assert invite.wait(DEADLINE) == 0
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(DEADLINE) == 0
    lines, seen = stderr_lines(serve), []
    wait_until(lambda: seen.extend(_drain(lines)) or any('"stopped"' in line for line in seen), "the last log line")
    rest = "\n".join(seen)
    records = [json.loads(line) for line in rest.splitlines() if line.strip()]
    events = [r["event"] for r in records]
    assert "paired" in events and events[-1] == "stopped"
    assert all({"time", "level", "event"} <= r.keys() for r in records)
    assert pin not in rest


def _drain(lines) -> list[str]:
    out = []
    while not lines.empty():
        out.append(lines.get())
    return out


# -- peer sync -------------------------------------------------------------------------------------

def test_peer_sync_waits_for_the_sync_lock_then_goes_on(procs, homes):
    from filelock import FileLock

    from tessera.core.peers import peer_list

    alice, bob = homes
    conn = store(bob)
    with conn:
        peer_list.add(conn, node_id(alice), "alice", publish=True, subscribe=True, added_at="2026-12-01T00:00:00Z")
    conn.close()
    lock = FileLock(str(bob / "data" / "sync.lock"))
    lock.acquire()
    try:
        sync = procs(bob, "peer", "sync")
        wait_stderr(sync, lambda l: "waiting for another sync (up to 30 s)" in l, timeout=DEADLINE)
        assert sync.poll() is None
    finally:
        lock.release()
    out, _ = sync.communicate(timeout=DEADLINE)
    assert sync.returncode == 3  # alice has no address yet: unreachable
    line = json.loads(out.splitlines()[-1])
    assert line["peer"] == "alice" and line["status"] == "error" and "no address" in line["error"]
    conn = store(bob)
    assert "no address" in peer_list.get(conn, node_id(alice)).last_error


# -- fuzzing a running serve -----------------------------------------------------------------------

async def _send_raw(home: Path, ticket: str, data: bytes, *, hello: bool) -> list[dict]:
    """Dial as ``home``'s node, send a hello (when asked) then ``data`` as raw bytes, finish; the
    frames the server sent back until it closed (decoding stops at the first bad one)."""
    from tessera.core import node_key
    from tessera.core.peers import frames, message_types, transport

    key = node_key.signing_key(home / "data" / "tessera.db")
    endpoint = await transport.Endpoint.bind(key, loopback=True)
    try:
        connection = await endpoint.connect(ticket)
        stream = await connection.open_stream()
        prefix = frames.encode(message_types.make("hello", version=message_types.PROTOCOL_VERSION,
                                                  node_id=endpoint.node_id, name="fuzz", ticket="")) if hello else b""
        await stream.write(prefix + data if prefix + data else b"\0")
        await stream.finish()
        got = []
        try:
            while (frame := await asyncio.wait_for(frames.read_frame(stream), DEADLINE)) is not None:
                got.append(frame)
        except (transport.TransportError, frames.ProtocolError, asyncio.TimeoutError):
            pass
        connection.close()
        return got
    finally:
        await endpoint.close()


def test_random_frames_never_crash_serve_nor_draw_shared_data(procs, homes, tmp_path):
    import msgpack
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tessera.core import events
    from tessera.core.peers import peer_list

    alice, bob = homes
    conn = store(alice)
    with conn:  # bob is a peer alice publishes to, with nothing shared; alice has data of her own
        peer_list.add(conn, node_id(bob), "bob", publish=True, subscribe=True, added_at="2026-12-01T00:00:00Z")
    secret = "s3cr3t-cluster-data"
    events.append(conn, "k8s.deploy", {"note": secret})
    conn.close()
    serve, listening = start_serve(procs, alice)
    plain = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=20)
                         | st.binary(max_size=20),
                         lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                         max_leaves=10)
    types = st.sampled_from(["hello", "ping", "pong", "error", "shares", "pull", "subscribe", "page", "share_list",
                             "pair_start", "pair_confirm", "x"])
    maps = st.builds(lambda t, rest: {"type": t, **rest}, types, st.dictionaries(st.text(max_size=8), plain, max_size=5))
    payload = st.one_of(st.binary(max_size=200),
                        st.lists(maps, min_size=1, max_size=3).map(
                            lambda ms: b"".join(len(b).to_bytes(4, "big") + b
                                                for b in (msgpack.packb(m, use_bin_type=True) for m in ms))))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=payload, hello=st.booleans())
    def probe(data, hello):
        got = asyncio.run(_send_raw(bob, listening["ticket"], data, hello=hello))
        for frame in got:
            assert frame.get("type") in ("hello", "pong", "error", "share_list", "pair_reply", "pair_error"), frame
            assert secret not in json.dumps(frame, default=repr)
            if frame.get("type") == "share_list":
                assert frame["shares"] == []
        assert serve.poll() is None

    probe()
    # still answering a good client: a ping after the hello is answered
    got = asyncio.run(_dial_and_collect(bob, listening["ticket"], [{"type": "ping", "nonce": 7}], hello=True))
    assert [f["type"] for f in got[:2]] == ["hello", "pong"] and got[1]["nonce"] == 7


def test_an_invite_that_expires_unused_exits_4(homes):
    from datetime import timedelta

    from tessera.cli import peer_network
    from tessera.core.errors import EXIT_TIMEOUT, TesseraError
    from tessera.core.peers import pins

    alice, _ = homes
    conn = store(alice)
    invite, _ = pins.create_invite(conn, now=pins.utc_now() - pins.INVITE_LIFETIME - timedelta(seconds=1))
    with pytest.raises(TesseraError) as caught:
        peer_network._wait_for(conn, invite.id)
    assert caught.value.exit_code == EXIT_TIMEOUT and "expired" in caught.value.message


def test_interrupting_peer_invite_cancels_its_invite(procs, homes):
    alice, _ = homes
    for _ in range(3):  # it hung in some runs, so more than one
        invite, ticket, _ = start_invite(procs, alice)
        assert invite.stdout.readline().startswith("expires ")
        wait_stderr(invite, lambda l: "peer join TICKET" in l, timeout=DEADLINE)  # then it polls the invite
        invite.send_signal(signal.SIGINT)
        assert invite.wait(DEADLINE) == 130
        conn = store(alice)
        state, pin = conn.execute("SELECT state, pin FROM peer_invites WHERE id = ?", (ticket.split(":")[1],)).fetchone()
        conn.close()
        assert state == "cancelled" and pin is None


# -- sync through serve (with the data part) -------------------------------------------------------

def paired(procs, alice: Path, bob: Path) -> tuple[subprocess.Popen, dict]:
    """alice serving and paired with bob (bob joined alice's invite); alice's serve and its listening line."""
    serve, listening = start_serve(procs, alice)
    invite, ticket, pin = start_invite(procs, alice)
    joined = tessera(bob, "peer", "join", ticket, "--pin", pin)
    assert joined.returncode == 0, joined.stderr
    assert invite.wait(DEADLINE) == 0
    return serve, listening


def replica(home: Path, of: Path) -> sqlite3.Connection:
    from tessera.core.peers import replica_files

    conn = replica_files.open_read_only(node_id(of), home / "data" / "tessera.db")
    assert conn is not None, f"no replica of {of.name} in {home.name}"
    return conn


def replica_subjects(home: Path, of: Path) -> list[str]:
    """The subjects of the events in ``home``'s replica of ``of``, in arrival order ([] before it exists)."""
    from tessera.core.peers import replica_files

    conn = replica_files.open_read_only(node_id(of), home / "data" / "tessera.db")
    if conn is None:
        return []
    try:
        return [r[0] for r in conn.execute("SELECT subject FROM events ORDER BY rowid")]
    except sqlite3.OperationalError:  # made but not yet migrated
        return []
    finally:
        conn.close()


def sync_lines(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_notebooks_and_events_sync_both_ways_through_serve(procs, homes):
    alice, bob = homes
    paired(procs, alice, bob)
    start_serve(procs, bob)  # bob listens too (its port is stored, and its hello tells alice)
    assert tessera(alice, "notebook", "new", "ops").returncode == 0
    for n in range(3):
        assert tessera(alice, "events", "publish", f"k8s.deploy.web{n}", json.dumps({"n": n})).returncode == 0
    assert tessera(alice, "events", "publish", "private.note", '"not shared"').returncode == 0
    assert tessera(alice, "peer", "share", "ops").returncode == 0
    assert tessera(alice, "peer", "share", "events:k8s.>").returncode == 0
    assert tessera(bob, "events", "publish", "bob.hello", '"hi alice"').returncode == 0
    assert tessera(bob, "peer", "share", "events:bob.>").returncode == 0

    pulled = tessera(bob, "peer", "sync")
    assert pulled.returncode == 0, pulled.stderr
    (line,) = sync_lines(pulled)
    # bob's serve subscribes to alice meanwhile, so the pull and the subscription race to file the
    # same pages: between them each event is filed once (the replica below holds each exactly once)
    assert line["peer"] == "alice" and line["status"] == "ok" and 0 <= line["shares"]["events:k8s.>"]["items"] <= 3
    got = replica(bob, alice)
    assert sorted(r[0] for r in got.execute("SELECT subject FROM events")) == ["k8s.deploy.web0", "k8s.deploy.web1",
                                                                              "k8s.deploy.web2"]
    assert [r[0] for r in got.execute("SELECT name FROM notebooks")] == ["ops"]
    # bob's hello told alice where bob listens: alice pulls from bob the other way
    back = tessera(alice, "peer", "sync", "bob")
    assert back.returncode == 0, back.stderr
    assert [r[0] for r in replica(alice, bob).execute("SELECT subject FROM events")] == ["bob.hello"]
    # nothing new: a second pull moves nothing and still succeeds
    again = tessera(bob, "peer", "sync")
    assert again.returncode == 0 and sync_lines(again)[0]["items"] == 0
    conn = store(bob)
    from tessera.core.peers import peer_list

    assert peer_list.get(conn, node_id(alice)).last_sync is not None


def test_a_removed_peer_is_refused_and_its_sync_fails_with_exit_5(procs, homes):
    alice, bob = homes
    paired(procs, alice, bob)
    assert tessera(alice, "peer", "share", "events:k8s.>").returncode == 0
    assert tessera(bob, "peer", "sync").returncode == 0
    assert tessera(alice, "peer", "remove", "bob").returncode == 0
    refused = tessera(bob, "peer", "sync")
    assert refused.returncode == 5, (refused.returncode, refused.stderr)
    assert f"tessera peer add {node_id(bob)} --publish" in refused.stderr
    assert sync_lines(refused)[0]["status"] == "error"


def test_a_live_subscription_delivers_a_new_event_to_the_other_replica(procs, homes):
    alice, bob = homes
    paired(procs, alice, bob)
    assert tessera(alice, "peer", "share", "events:k8s.>").returncode == 0
    assert tessera(alice, "events", "publish", "k8s.first", "1").returncode == 0
    subscriber, _ = start_serve(procs, bob)  # a plain serve keeps subscriptions (no --sync needed)
    wait_stderr(subscriber, lambda l: '"subscription"' in l, timeout=DEADLINE)

    wait_until(lambda: replica_subjects(bob, alice) == ["k8s.first"], "the backlog in bob's replica")
    assert tessera(alice, "events", "publish", "k8s.second", "2").returncode == 0
    wait_until(lambda: replica_subjects(bob, alice) == ["k8s.first", "k8s.second"], "the live event in bob's replica")
    # alice removes bob: the subscription is refused at its next push and ends; later events stay home
    assert tessera(alice, "peer", "remove", "bob").returncode == 0
    failed = wait_stderr(subscriber, lambda l: '"subscription_failed"' in l, timeout=DEADLINE)
    assert "not_authorized" in failed or "no longer a peer" in failed or "not in this node's peer list" in failed, failed
    assert tessera(alice, "events", "publish", "k8s.third", "3").returncode == 0
    wait_stderr(subscriber, lambda l: '"subscription_failed"' in l, timeout=DEADLINE)  # its retry is refused too
    assert replica_subjects(bob, alice) == ["k8s.first", "k8s.second"]


async def _idle_peer_connection(home: Path, ticket: str, connected: "asyncio.Event", done: list) -> None:
    """A peer that says hello, gets the answer, then stays silent until the server closes."""
    from tessera.core import node_key
    from tessera.core.peers import frames, message_types, transport

    key = node_key.signing_key(home / "data" / "tessera.db")
    async with await transport.Endpoint.bind(key, loopback=True) as endpoint:
        connection = await endpoint.connect(ticket)
        stream = await connection.open_stream()
        await frames.write_frame(stream, message_types.make("hello", version=message_types.PROTOCOL_VERSION,
                                                            node_id=endpoint.node_id, name="bob", ticket=""))
        done.append(await frames.read_frame(stream))
        connected.set()
        try:
            while (frame := await frames.read_frame(stream)) is not None:
                done.append(frame)
            done.append("finished")  # the server ended the stream cleanly
        except (transport.TransportError, frames.ProtocolError):
            done.append("dropped")  # the connection was cut
        connection.close()


def test_sigterm_with_an_idle_peer_and_a_subscriber_connected_exits_0_and_closes_them(procs, homes):
    alice, bob = homes
    serve, listening = paired(procs, alice, bob)
    assert tessera(alice, "peer", "share", "events:k8s.>").returncode == 0
    subscriber, _ = start_serve(procs, bob, "--sync")
    wait_stderr(serve, lambda l: '"subscribed"' in l, timeout=DEADLINE)

    async def scenario():
        connected, done = asyncio.Event(), []
        idle = asyncio.create_task(_idle_peer_connection(bob, listening["ticket"], connected, done))
        await asyncio.wait_for(connected.wait(), DEADLINE)
        serve.send_signal(signal.SIGTERM)
        await asyncio.wait_for(idle, DEADLINE)
        return done

    done = asyncio.run(scenario())
    assert done[0]["type"] == "hello" and done[-1] == "finished"
    assert serve.wait(DEADLINE) == 0
    wait_stderr(subscriber, lambda l: '"subscription_failed"' in l, timeout=DEADLINE)  # it noticed, and retries
    subscriber.send_signal(signal.SIGTERM)
    assert subscriber.wait(DEADLINE) == 0


def test_peer_remove_closes_the_removed_peers_idle_connection(procs, homes):
    """`peer remove` on alice ends bob's open, idle connection to her serve with one error frame
    (not only refusing bob's next request)."""
    alice, bob = homes
    serve, listening = paired(procs, alice, bob)

    async def scenario():
        connected, done = asyncio.Event(), []
        idle = asyncio.create_task(_idle_peer_connection(bob, listening["ticket"], connected, done))
        await asyncio.wait_for(connected.wait(), DEADLINE)
        removed = await asyncio.to_thread(tessera, alice, "peer", "remove", "bob")
        assert removed.returncode == 0, removed.stderr
        await asyncio.wait_for(idle, DEADLINE)
        return done

    done = asyncio.run(scenario())
    assert done[0]["type"] == "hello" and done[-1] == "finished", done
    (error,) = done[1:-1]
    assert error["type"] == "error" and error["code"] == "not_authorized", error
    assert serve.poll() is None  # serve goes on


def test_peer_sync_gives_up_with_exit_4_when_the_lock_stays_held(procs, homes):
    from filelock import FileLock

    from tessera.core.peers import peer_list

    alice, bob = homes
    conn = store(bob)
    with conn:
        peer_list.add(conn, node_id(alice), "alice", publish=True, subscribe=True, added_at="2026-12-01T00:00:00Z")
    conn.close()
    with FileLock(str(bob / "data" / "sync.lock")):
        # the wait is store_lock_timeout's (30 s by default), shortened here
        waited = subprocess.run([*TSR, "peer", "sync"], env={**env_for(bob), "TESSERA_LOCK_TIMEOUT": "2"},
                                capture_output=True, text=True, timeout=DEADLINE, stdin=subprocess.DEVNULL)
    assert waited.returncode == 4, waited.stderr
    assert "waiting for another sync (up to 2 s)" in waited.stderr and "still holds" in waited.stderr
    assert waited.stdout == ""


def test_serve_port_binds_that_port_and_keeps_it_for_the_next_start(procs, homes):
    import socket

    alice, _ = homes
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve, listening = start_serve(procs, alice, "--port", str(port))
    assert listening["port"] == port
    from tessera.core.peers.transport import NodeAddress

    assert f"127.0.0.1:{port}" in NodeAddress.from_ticket(listening["ticket"]).addresses
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(DEADLINE) == 0
    _, again = start_serve(procs, alice)
    assert again["port"] == port
    bad = tessera(alice, "serve", "--sync-interval", "5s")
    assert bad.returncode == 2 and "--sync-interval" in bad.stderr


def test_peer_sync_on_a_terminal_draws_progress_on_stderr_and_keeps_json_on_a_piped_stdout(procs, homes):
    import pty

    alice, bob = homes
    paired(procs, alice, bob)
    assert tessera(alice, "events", "publish", "k8s.one", "1").returncode == 0
    assert tessera(alice, "peer", "share", "events:k8s.>").returncode == 0
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*TSR, "peer", "sync"], env={**env_for(bob), "COLUMNS": "100"}, stdout=subprocess.PIPE,
                            stderr=follower, stdin=subprocess.DEVNULL, text=True)
    os.close(follower)
    drawn = bytearray()
    while True:  # read the terminal until the process closes it (EIO once it has exited)
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    out, _ = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0
    (line,) = [json.loads(text) for text in out.splitlines()]
    assert line["status"] == "ok" and line["items"] == 1
    assert b"alice" in drawn and b"\x1b[" in drawn  # the progress bar, drawn with escape sequences


def test_serve_sync_retries_an_unreachable_peer_with_backoff_then_subscribes_once_it_is_back(procs, homes):
    alice, bob = homes
    alice_serve, _ = paired(procs, alice, bob)
    assert tessera(alice, "events", "publish", "k8s.back", "1").returncode == 0
    assert tessera(alice, "peer", "share", "events:k8s.>").returncode == 0
    alice_serve.send_signal(signal.SIGTERM)
    assert alice_serve.wait(DEADLINE) == 0
    subscriber, _ = start_serve(procs, bob, "--sync")
    first = json.loads(wait_stderr(subscriber, lambda l: '"subscription_failed"' in l, timeout=DEADLINE))
    second = json.loads(wait_stderr(subscriber, lambda l: '"subscription_failed"' in l, timeout=DEADLINE))
    assert (first["retry_s"], second["retry_s"]) == (1.0, 2.0) and first["peer"] == node_id(alice)[:10]
    assert "Traceback" not in first["reason"]
    start_serve(procs, alice)  # back on its stored port: the ticket bob keeps still works
    wait_stderr(subscriber, lambda l: '"subscription"' in l, timeout=3 * DEADLINE)

    wait_until(lambda: replica_subjects(bob, alice) == ["k8s.back"], "the event after the reconnect")


def test_a_share_granted_while_subscribed_reaches_the_subscriber(procs, homes):
    alice, bob = homes
    alice_serve, _ = paired(procs, alice, bob)
    subscriber, _ = start_serve(procs, bob, "--sync")
    wait_stderr(alice_serve, lambda l: '"subscribed"' in l, timeout=DEADLINE)  # to nothing yet: private by default
    assert tessera(alice, "events", "publish", "k8s.later", "1").returncode == 0
    assert tessera(alice, "peer", "share", "events:k8s.>", "--with", "bob").returncode == 0

    wait_until(lambda: replica_subjects(bob, alice) == ["k8s.later"], "the newly shared event in bob's replica")
    ended = wait_stderr(subscriber, lambda l: '"subscription_ended"' in l or '"subscription_failed"' in l, timeout=1)
    assert '"subscription_ended"' in ended


def test_peer_join_on_a_terminal_asks_for_the_pin_without_echo(procs, homes, tmp_path):
    """In a real tmux pane: the prompt appears, the typed PIN is not shown, the pairing succeeds."""
    import shlex
    import uuid

    alice, bob = homes
    invite, ticket, pin = start_invite(procs, alice)
    socket_name = f"tsr-join-{uuid.uuid4().hex[:8]}"
    env = env_for(bob)
    command = " ".join(f"{k}={shlex.quote(env[k])}" for k in ("TESSERA_HOME", "TESSERA_CONFIG_DIR", "TESSERA_PEER_LOOPBACK"))
    done = tmp_path / "join.rc"
    script = (f"env {command} {shlex.quote(sys.executable)} -m tessera.cli.main peer join {shlex.quote(ticket)}; "
              f"echo $? > {shlex.quote(str(done))}; sleep 600")

    def tmux(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", socket_name, "-f", "/dev/null", *args], capture_output=True, text=True,
                              timeout=30)

    try:
        assert tmux("new-session", "-d", "-x", "200", "-y", "20", script).returncode == 0
        wait_until(lambda: "PIN" in tmux("capture-pane", "-p").stdout, "the PIN prompt")
        tmux("send-keys", pin, "Enter")
        wait_until(lambda: done.exists() and done.read_text().strip(), "peer join to finish")
        screen = tmux("capture-pane", "-p").stdout
        assert done.read_text().strip() == "0", screen
        assert "paired with alice" in screen and pin not in screen
    finally:
        tmux("kill-server")
    assert invite.wait(DEADLINE) == 0


def test_the_daemons_timed_pulls_fill_the_replica_of_a_peer_without_a_live_subscription(procs, homes, monkeypatch):
    import io

    from tessera.core.peers import node_endpoint
    from tessera.core.peers.daemon import Daemon, DaemonLog

    alice, bob = homes
    paired(procs, alice, bob)
    assert tessera(alice, "events", "publish", "k8s.timed", "1").returncode == 0
    assert tessera(alice, "peer", "share", "events:k8s.>").returncode == 0
    monkeypatch.setenv("TESSERA_PEER_LOOPBACK", "1")
    log = io.StringIO()

    async def scenario():
        conn = store(bob)
        endpoint = await node_endpoint.bind(conn, listen=False)
        daemon = Daemon(conn, port=None, sync=True, sync_interval=0.2, log=DaemonLog(log))
        pulls = asyncio.create_task(daemon._timed_pulls(endpoint))
        try:
            deadline = time.monotonic() + DEADLINE
            while replica_subjects(bob, alice) != ["k8s.timed"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            pulls.cancel()
            await asyncio.gather(pulls, return_exceptions=True)
            await endpoint.close()

    asyncio.run(scenario())
    assert replica_subjects(bob, alice) == ["k8s.timed"]
    assert '"synced"' in log.getvalue()


def test_a_subscribe_with_a_bad_cursor_gets_one_malformed_error(procs, homes):
    alice, bob = homes
    serve, listening = paired(procs, alice, bob)
    assert tessera(alice, "peer", "share", "events:k8s.>").returncode == 0
    for _ in range(5):  # the error frame must arrive every time (closing right after it could drop it)
        got = asyncio.run(_dial_and_collect(bob, listening["ticket"],
                                            [{"type": "subscribe", "cursors": {"events:k8s.>": "0"}}], hello=True))
        assert [f["type"] for f in got] == ["hello", "error"] and got[1]["code"] == "malformed", got
    assert serve.poll() is None


def test_an_idle_subscription_is_pinged_and_the_pong_is_taken(procs, homes):
    from tessera.core import node_key
    from tessera.core.peers import frames, message_types, transport

    alice, bob = homes
    serve, listening = paired(procs, alice, bob)

    async def scenario() -> list[dict]:
        key = node_key.signing_key(bob / "data" / "tessera.db")
        async with await transport.Endpoint.bind(key, loopback=True) as endpoint:
            connection = await endpoint.connect(listening["ticket"])
            stream = await connection.open_stream()
            await frames.write_frame(stream, message_types.make(
                "hello", version=message_types.PROTOCOL_VERSION, node_id=endpoint.node_id, name="bob", ticket=""))
            got = [await frames.read_frame(stream)]
            await frames.write_frame(stream, message_types.make("subscribe", cursors={}))
            got.append(await asyncio.wait_for(frames.read_frame(stream), DEADLINE))  # the keep-alive, after 15 s
            await frames.write_frame(stream, message_types.make("pong", nonce=got[-1]["nonce"]))
            # a share granted now ends the subscription cleanly: no error frame means the pong was fine
            assert tessera(alice, "peer", "share", "events:k8s.>").returncode == 0
            while (frame := await asyncio.wait_for(frames.read_frame(stream), DEADLINE)) is not None:
                got.append(frame)
            connection.close()
            return got

    got = asyncio.run(scenario())
    assert [f["type"] for f in got] == ["hello", "ping"], got


def test_a_peer_sync_killed_mid_sync_resumes_with_no_duplicate_and_no_gap(procs, homes):
    """`tessera peer sync` against a real serve, SIGKILLed while pages arrive, again and again:
    after each kill the replica holds exactly alice's shared events up to its stored cursor (each
    page whole, with its cursor), and the next sync carries on from there until all are in."""
    from tessera.core import events
    from tessera.core.store.db import transaction

    alice, bob = homes
    paired(procs, alice, bob)
    conn = store(alice)
    with transaction(conn):
        events.append_many(conn, [("load.item", {"n": n, "pad": "x" * 200}) for n in range(30_000)])
    shared = [(rowid, seq) for rowid, seq in conn.execute(
        "SELECT rowid, seq FROM events WHERE subject = 'load.item' ORDER BY rowid")]
    conn.close()
    assert tessera(alice, "peer", "share", "events:load.>").returncode == 0

    def filed() -> tuple[int, list[int]]:
        """bob's stored cursor for the share and the seqs his replica holds, in seq order."""
        from tessera.core.peers import replica_files

        copy = replica_files.open_read_only(node_id(alice), bob / "data" / "tessera.db")
        if copy is None:
            return 0, []
        try:
            row = copy.execute("SELECT cursor FROM sync_cursors WHERE item = 'events:load.>'").fetchone()
            return (row[0] if row else 0), [s for (s,) in copy.execute("SELECT seq FROM events ORDER BY seq")]
        except sqlite3.OperationalError:  # made, not yet migrated
            return 0, []
        finally:
            copy.close()

    kills, cursor = 0, 0
    for _ in range(40):
        sync = procs(bob, "peer", "sync")
        before, deadline = cursor, time.monotonic() + DEADLINE
        while sync.poll() is None and filed()[0] == before:  # until a page more is filed, or it ends
            assert time.monotonic() < deadline, "peer sync neither filed a page nor ended"
            time.sleep(0.01)
        if sync.poll() is None:
            sync.send_signal(signal.SIGKILL)
            sync.wait(DEADLINE)
            kills += 1
        cursor, seqs = filed()
        # no duplicate, no gap: exactly the shared events up to the stored cursor
        assert seqs == [seq for rowid, seq in shared if rowid <= cursor], (kills, cursor)
        if sync.returncode == 0:
            break
    assert kills >= 1, "every sync finished before it could be killed"
    assert sync.returncode == 0
    assert filed()[1] == [seq for _, seq in shared]
