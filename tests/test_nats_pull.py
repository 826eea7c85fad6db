"""`tessera nats pull` against a real nats-server: two members (two data homes) push and pull
each other's chains, which verify complete on both sides; --follow at both ends carries a new
event across; a forged message in the stream is refused without storing it while the genuine
chain still arrives whole."""

from __future__ import annotations

import asyncio
import json
import signal

from tests.nats_helpers import append_events, nats_server, own_actor  # noqa: F401
from tests.test_peer_serve import DEADLINE, procs, store, tessera, wait_until  # noqa: F401


def chain(home, actor: str) -> list[str]:
    conn = store(home)
    try:
        return [r[0] for r in conn.execute("SELECT id FROM events WHERE actor = ? ORDER BY seq", (actor,))]
    finally:
        conn.close()


def test_two_members_push_and_pull_each_others_chains_complete_and_verified(tmp_path, nats_server):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    alice_ids, bob_ids = append_events(alice, 3000), append_events(bob, 2000)
    for home in (alice, bob):
        pushed = tessera(home, "nats", "push", "--server", nats_server.url)
        assert pushed.returncode == 0, pushed.stderr
    for home, own, other in ((alice, 3000, 2000), (bob, 2000, 3000)):
        pulled = tessera(home, "nats", "pull", "--server", nats_server.url)
        assert pulled.returncode == 0, pulled.stderr
        assert f"pulled {other} events" in pulled.stderr and f"{own} own skipped" in pulled.stderr
    assert chain(alice, own_actor(bob)) == bob_ids
    assert chain(bob, own_actor(alice)) == alice_ids
    for home in (alice, bob):
        verified = tessera(home, "events", "verify")
        assert verified.returncode == 0 and "5000 events, 2 chains intact" in verified.stdout, verified.stdout + verified.stderr

    again = tessera(bob, "nats", "pull", "--server", nats_server.url)
    assert again.returncode == 0 and "pulled 0 events" in again.stderr, again.stderr
    from_start = tessera(bob, "nats", "pull", "--server", nats_server.url, "--from-start")
    assert from_start.returncode == 0 and "pulled 0 events" in from_start.stderr and "3000 held already" in from_start.stderr
    assert chain(bob, own_actor(alice)) == alice_ids


def test_follow_push_and_follow_pull_carry_new_events_across(tmp_path, nats_server, procs):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    ids = append_events(alice, 100)
    append_events(bob, 1)
    push = procs(alice, "nats", "push", "--server", nats_server.url, "--follow")
    pull = procs(bob, "nats", "pull", "--server", nats_server.url, "--follow")
    actor = own_actor(alice)
    wait_until(lambda: chain(bob, actor) == ids, "bob to mirror alice's backlog")
    ids += append_events(alice, 5, subject="demo.live")
    wait_until(lambda: chain(bob, actor) == ids, "bob to mirror alice's new events")
    pull.send_signal(signal.SIGTERM)
    assert pull.wait(DEADLINE) == 0
    push.send_signal(signal.SIGINT)
    assert push.wait(DEADLINE) == 130
    stopped = [json.loads(line) for line in push.stderr.read().splitlines() if line.startswith("{")]
    assert stopped[-1]["event"] == "stopped" and stopped[-1]["cursor"] == len(ids)
    assert tessera(bob, "events", "verify").returncode == 0


def _publish(url: str, subject: str, body: bytes, msg_id: str) -> None:
    """One message published straight to the stream (not through tessera)."""
    import nats

    async def send() -> None:
        nc = await nats.connect(url, allow_reconnect=False)
        try:
            ack = await nc.jetstream().publish(subject, body, headers={"Nats-Msg-Id": msg_id})
            assert not ack.duplicate
        finally:
            await nc.close()

    asyncio.run(send())


def _publish_forged(url: str, event: dict) -> None:
    """A message on alice's subject holding her next event with its data changed (the hash
    left as it was): what a member who can write to the stream could forge."""
    _publish(url, f"tessera.TESSERA.{event['actor']}.{event['subject']}", json.dumps(event).encode(), "forged")


def test_a_forged_message_is_refused_unstored_and_the_genuine_chain_still_arrives(tmp_path, nats_server):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    ids = append_events(alice, 3)
    assert tessera(alice, "nats", "push", "--server", nats_server.url).returncode == 0
    ids += append_events(alice, 3, subject="demo.later")
    conn = store(alice)
    fourth = conn.execute("SELECT seq, id, time, subject, type, actor, correlation, data, prev_hash, hash "
                          "FROM events WHERE seq = 4").fetchone()
    conn.close()
    forged = dict(zip(("seq", "id", "time", "subject", "type", "actor", "correlation", "data", "prev_hash", "hash"), fourth, strict=True))
    forged["data"] = {"i": 0, "pad": "forged"}
    _publish_forged(nats_server.url, forged)  # in the stream before the genuine seq 4
    assert tessera(alice, "nats", "push", "--server", nats_server.url).returncode == 0

    pulled = tessera(bob, "nats", "pull", "--server", nats_server.url)
    assert pulled.returncode == 1, pulled.stderr
    lines = pulled.stderr.splitlines()
    assert len(lines) == 2, pulled.stderr
    assert f"refused 1 events of actor {forged['actor']} from seq 4" in lines[0] and "does not match its hash" in lines[0]
    assert "pulled 6 events" in lines[1]
    assert chain(bob, forged["actor"]) == ids  # the forgery stored nowhere, the genuine chain whole
    conn = store(bob)
    assert conn.execute("SELECT count(*) FROM events WHERE data LIKE '%forged%'").fetchone()[0] == 0
    error = conn.execute("SELECT last_error FROM nats_pull_cursors").fetchone()[0]
    conn.close()
    assert "seq 4" in error and "does not match its hash" in error
    assert tessera(bob, "events", "verify").returncode == 0


def test_a_follow_pull_reconnects_after_the_server_restarts_and_goes_on_from_its_cursor(tmp_path, nats_server, procs):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    ids = append_events(alice, 500)
    assert tessera(alice, "nats", "push", "--server", nats_server.url).returncode == 0
    pull = procs(bob, "nats", "pull", "--server", nats_server.url, "--follow")
    actor = own_actor(alice)
    wait_until(lambda: chain(bob, actor) == ids, "bob to mirror alice's first events")
    nats_server.kill()
    from tests.process_lines import wait_stderr

    assert json.loads(wait_stderr(pull, lambda line: '"pull_failed"' in line))["level"] == "warning"
    nats_server.start()
    ids += append_events(alice, 500, subject="demo.after_restart")
    assert tessera(alice, "nats", "push", "--server", nats_server.url).returncode == 0
    wait_until(lambda: chain(bob, actor) == ids, "bob to mirror the events pushed after the restart", timeout=2 * DEADLINE)
    pull.send_signal(signal.SIGTERM)
    assert pull.wait(DEADLINE) == 0
    assert tessera(bob, "events", "verify").returncode == 0


def test_a_chain_pushed_through_a_pattern_has_a_gap_and_pull_stops_it_there(tmp_path, nats_server):
    """docs/nats.md "Patterns": the events after a gap cannot link, so they are refused and
    reported; the chain here ends at the last event that linked and still verifies."""
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    ids = append_events(alice, 3, subject="demo.keep")
    append_events(alice, 1, subject="other.drop")
    append_events(alice, 2, subject="demo.keep")
    assert tessera(alice, "nats", "push", "--server", nats_server.url, "demo.>").returncode == 0
    pulled = tessera(bob, "nats", "pull", "--server", nats_server.url)
    assert pulled.returncode == 1
    actor = own_actor(alice)
    assert f"refused 2 events of actor {actor} from seq 5" in pulled.stderr and "does not link" in pulled.stderr
    assert chain(bob, actor) == ids
    assert tessera(bob, "events", "verify").returncode == 0


def test_messages_that_are_not_events_of_the_actor_their_subject_names_are_refused(tmp_path, nats_server):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    ids = append_events(alice, 2)
    assert tessera(alice, "nats", "push", "--server", nats_server.url).returncode == 0
    conn = store(alice)
    first = conn.execute("SELECT seq, id, time, subject, type, actor, correlation, data, prev_hash, hash "
                         "FROM events WHERE seq = 1").fetchone()
    conn.close()
    event = dict(zip(("seq", "id", "time", "subject", "type", "actor", "correlation", "data", "prev_hash", "hash"), first, strict=True))
    event["data"] = json.loads(event["data"])
    mallory = "f" * 32
    _publish(nats_server.url, f"tessera.TESSERA.{mallory}.{event['subject']}", json.dumps(event).encode(), "moved")
    _publish(nats_server.url, f"tessera.TESSERA.{mallory}.demo.x", b"\x00 not json", "garbage")
    pulled = tessera(bob, "nats", "pull", "--server", nats_server.url)
    assert pulled.returncode == 1, pulled.stderr
    assert f"refused 2 events of actor {mallory}" in pulled.stderr
    assert "its subject names another actor or subject than its body" in pulled.stderr
    assert "pulled 2 events" in pulled.stderr
    assert chain(bob, own_actor(alice)) == ids and chain(bob, mallory) == []
    assert tessera(bob, "events", "verify").returncode == 0


def test_a_pull_sigkilled_mid_pull_and_restarted_ends_with_the_chain_whole(tmp_path, nats_server, procs):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    ids = append_events(alice, 30000)
    assert tessera(alice, "nats", "push", "--server", nats_server.url).returncode == 0
    actor = own_actor(alice)
    pull = procs(bob, "nats", "pull", "--server", nats_server.url)
    wait_until(lambda: pull.poll() is not None or len(chain(bob, actor)) > 0, "bob's first ingested batch")
    pull.send_signal(signal.SIGKILL)
    pull.wait(DEADLINE)
    assert pull.returncode == -signal.SIGKILL
    held = len(chain(bob, actor))
    assert 0 < held < len(ids), "the pull was not killed mid-pull"
    conn = store(bob)
    cursor = conn.execute("SELECT stream_seq FROM nats_pull_cursors").fetchone()
    conn.close()
    assert cursor is not None and cursor[0] == held  # the cursor moved with exactly what was stored

    again = tessera(bob, "nats", "pull", "--server", nats_server.url)
    assert again.returncode == 0, again.stderr
    assert chain(bob, actor) == ids
    assert tessera(bob, "events", "verify").returncode == 0
