"""`tessera nats push` against a real nats-server with JetStream (tests/nats_server.py): the
outbox advances only on acks, so a push SIGKILLed mid-push and restarted, or a server SIGKILLed
and restarted under a --follow push, leaves the stream holding each event exactly once, in
order. Every wait polls a condition with a generous deadline."""

from __future__ import annotations

import json
import signal

from tests.nats_helpers import append_events, assert_stream_holds_chain_once, nats_server, own_actor, push_cursor  # noqa: F401
from tests.process_lines import wait_stderr
from tests.test_peer_serve import DEADLINE, procs, store, tessera, wait_until  # noqa: F401


def test_push_sigkilled_mid_push_and_restarted_holds_each_event_once(tmp_path, nats_server, procs):
    home = tmp_path / "a"
    ids = append_events(home, 30000)
    push = procs(home, "nats", "push", "--server", nats_server.url)
    wait_until(lambda: push_cursor(home) > 0 or push.poll() is not None, "the push's first acks")
    push.send_signal(signal.SIGKILL)
    push.wait(DEADLINE)
    assert push.returncode == -signal.SIGKILL
    killed_at = push_cursor(home)
    assert 0 < killed_at < len(ids), "the push was not killed mid-push"

    again = tessera(home, "nats", "push", "--server", nats_server.url)
    assert again.returncode == 0, again.stderr
    assert f"cursor at seq {len(ids)}" in again.stderr
    assert push_cursor(home) == len(ids)
    assert_stream_holds_chain_once(nats_server, own_actor(home), ids)

    nothing = tessera(home, "nats", "push", "--server", nats_server.url)
    assert nothing.returncode == 0 and "pushed 0 events" in nothing.stderr, nothing.stderr


def test_server_sigkilled_and_restarted_under_a_follow_push_loses_and_duplicates_nothing(tmp_path, nats_server, procs):
    home = tmp_path / "a"
    ids = append_events(home, 30000)
    push = procs(home, "nats", "push", "--server", nats_server.url, "--follow")
    wait_until(lambda: push_cursor(home) > 0, "the push's first acks")
    nats_server.kill()
    assert push_cursor(home) < len(ids), "the server was not killed mid-push"
    failed = wait_stderr(push, lambda line: '"push_failed"' in line)
    assert json.loads(failed)["level"] == "warning"
    ids += append_events(home, 2000, subject="demo.while_down")  # the outbox grows while the server is away
    nats_server.start()  # the same port and store dir

    wait_until(lambda: push_cursor(home) == len(ids), "the follow push to catch up after the restart", timeout=2 * DEADLINE)
    assert_stream_holds_chain_once(nats_server, own_actor(home), ids)

    ids += append_events(home, 10, subject="demo.after")  # --follow keeps tailing the log
    wait_until(lambda: push_cursor(home) == len(ids), "the follow push to send new events")
    push.send_signal(signal.SIGTERM)
    assert push.wait(DEADLINE) == 0
    assert_stream_holds_chain_once(nats_server, own_actor(home), ids)
    logged = []  # every line after push_failed up to stopped: JSON, no traceback of a dead connection's task
    wait_stderr(push, lambda line: logged.append(json.loads(line)) or logged[-1]["event"] == "stopped")
    assert logged[-1]["cursor"] == len(ids)


def test_push_with_a_pattern_sends_only_matching_own_events_and_moves_past_the_rest(tmp_path, nats_server):
    home = tmp_path / "a"
    ids = append_events(home, 10, subject="demo.keep") + append_events(home, 5, subject="other.drop")
    result = tessera(home, "nats", "push", "--server", nats_server.url, "demo.>")
    assert result.returncode == 0, result.stderr
    assert "pushed 10 events" in result.stderr and "5 left out by the pattern" in result.stderr
    assert push_cursor(home) == len(ids)  # the cursor is past the left-out events too
    from tests.nats_server import stream_messages

    subjects = [subject for subject, _, _ in stream_messages(nats_server.url, "TESSERA")]
    assert len(subjects) == 10 and all(".demo.keep." in s for s in subjects)


def test_push_and_pull_errors_are_one_line_with_typed_exit_codes(tmp_path, nats_server):
    home = tmp_path / "a"
    append_events(home, 3)
    from tests.nats_server import free_port

    closed = f"nats://127.0.0.1:{free_port()}"
    for command in ("push", "pull"):
        down = tessera(home, "nats", command, "--server", closed)
        assert down.returncode == 3, down.stderr
        assert down.stderr.count("\n") == 1 and "unreachable: connection refused" in down.stderr
        for bad, what in ((["--server", "http://127.0.0.1:4222"], "not a NATS URL"),
                          (["--server", "nats://alice:secret@127.0.0.1:4222"], "credentials in the URL"),
                          (["--server", nats_server.url, "--stream", "a.b"], "not a stream name")):
            refused = tessera(home, "nats", command, *bad)
            assert refused.returncode == 2, refused.stderr
            assert what in refused.stderr and refused.stderr.count("\n") == 1
            assert "secret" not in refused.stderr  # a password in a URL is never echoed
    pattern = tessera(home, "nats", "push", "--server", nats_server.url, "demo..x")
    assert pattern.returncode == 2 and "bad subject pattern" in pattern.stderr
    assert push_cursor(home) == 0


def test_a_server_without_jetstream_is_one_line_and_exit_3(tmp_path):
    from tests.nats_server import NatsServer

    server = NatsServer(tmp_path / "plain", jetstream=False).start()
    try:
        home = tmp_path / "a"
        append_events(home, 2)
        for command in ("push", "pull"):
            result = tessera(home, "nats", command, "--server", server.url)
            assert result.returncode == 3, result.stderr
            assert result.stderr.count("\n") == 1 and "has no JetStream" in result.stderr
    finally:
        server.kill()


def test_a_once_push_that_loses_its_server_exits_3_with_one_line_and_resumes_later(tmp_path, nats_server, procs):
    home = tmp_path / "a"
    ids = append_events(home, 30000)
    push = procs(home, "nats", "push", "--server", nats_server.url)
    wait_until(lambda: push_cursor(home) > 0 or push.poll() is not None, "the push's first acks")
    nats_server.kill()
    assert push.wait(DEADLINE) == 3
    stderr = push.stderr.read()
    assert stderr.count("\n") == 1 and "lost the connection to" in stderr and "Traceback" not in stderr, stderr
    assert push_cursor(home) < len(ids)
    nats_server.start()
    again = tessera(home, "nats", "push", "--server", nats_server.url)
    assert again.returncode == 0, again.stderr
    assert_stream_holds_chain_once(nats_server, own_actor(home), ids)


def test_credentials_come_from_the_environment_and_are_never_printed(tmp_path):
    import os
    import subprocess

    from tests.nats_server import NatsServer
    from tests.test_peer_serve import TSR, env_for

    server = NatsServer(tmp_path / "auth", extra_args=("--user", "alice", "--pass", "s3cret-Pa55")).start()
    try:
        home = tmp_path / "a"
        append_events(home, 3)

        def push(**env) -> subprocess.CompletedProcess:
            return subprocess.run([*TSR, "nats", "push", "--server", server.url], capture_output=True, text=True,
                                  env={**env_for(home), **env}, timeout=DEADLINE, stdin=subprocess.DEVNULL)

        wrong = push(TESSERA_NATS_USER="alice", TESSERA_NATS_PASSWORD="wrong-Pa55")
        assert wrong.returncode == 5, wrong.stderr
        assert wrong.stderr.count("\n") == 1 and "refused the credentials" in wrong.stderr
        half = push(TESSERA_NATS_USER="alice")
        assert half.returncode == 2 and "go together" in half.stderr
        right = push(TESSERA_NATS_USER="alice", TESSERA_NATS_PASSWORD="s3cret-Pa55")
        assert right.returncode == 0 and "pushed 3 events" in right.stderr, right.stderr
        for result in (wrong, half, right):
            assert "Pa55" not in result.stderr + result.stdout
        assert os.environ.get("TESSERA_NATS_PASSWORD") is None  # the test's own environment untouched
    finally:
        server.kill()


def test_two_spellings_of_one_server_share_one_cursor(tmp_path, nats_server):
    home = tmp_path / "a"
    append_events(home, 5)
    first = tessera(home, "nats", "push", "--server", f"NATS://127.0.0.1:{nats_server.port}/")
    assert first.returncode == 0 and "pushed 5 events" in first.stderr, first.stderr
    assert f"on nats://127.0.0.1:{nats_server.port};" in first.stderr
    second = tessera(home, "nats", "push", "--server", f"nats://127.0.0.1:{nats_server.port}")
    assert second.returncode == 0 and "pushed 0 events" in second.stderr, second.stderr
    conn = store(home)
    assert conn.execute("SELECT server, seq FROM nats_push_cursors").fetchall() == [(f"nats://127.0.0.1:{nats_server.port}", 5)]
    conn.close()


def _tls_files(folder) -> tuple:
    """A CA and a server certificate for 127.0.0.1 it signed, as PEM files (ca, cert, key)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return tuple(str(p) for p in paths)


def test_tls_with_the_ca_given_by_ca_and_refused_without_it(tmp_path):
    from tests.nats_server import NatsServer

    ca, cert, key = _tls_files(tmp_path / "tls")
    server = NatsServer(tmp_path / "tls-store", extra_args=("--tls", "--tlscert", cert, "--tlskey", key)).start()
    try:
        home = tmp_path / "a"
        append_events(home, 4)
        url = f"tls://127.0.0.1:{server.port}"
        untrusted = tessera(home, "nats", "push", "--server", url)  # the system's CAs do not know the test CA
        assert untrusted.returncode == 3 and untrusted.stderr.count("\n") == 1, untrusted.stderr
        assert "certificate is not trusted" in untrusted.stderr and "--ca FILE" in untrusted.stderr
        upgraded = tessera(home, "nats", "push", "--server", f"nats://127.0.0.1:{server.port}", "--ca", ca)
        assert upgraded.returncode == 0 and "pushed 4 events" in upgraded.stderr, upgraded.stderr  # --ca kept on nats://
        assert upgraded.stderr.count("\n") == 1, upgraded.stderr
        trusted = tessera(home, "nats", "push", "--server", url, "--ca", ca)
        # tls:// is another cursor than nats:// (the scheme says how to dial): all 4 are sent again and dropped
        assert trusted.returncode == 0 and trusted.stderr.count("\n") == 1, trusted.stderr
        assert "pushed 4 events" in trusted.stderr and "(4 the stream had already)" in trusted.stderr
        pulled = tessera(tmp_path / "b", "nats", "pull", "--server", url, "--ca", ca)
        assert pulled.returncode == 0 and "pulled 4 events" in pulled.stderr and pulled.stderr.count("\n") == 1, pulled.stderr
        missing = tessera(home, "nats", "push", "--server", url, "--ca", str(tmp_path / "nope.pem"))
        assert missing.returncode == 2 and "--ca" in missing.stderr
    finally:
        server.kill()


def test_an_event_the_stream_refuses_stops_the_push_at_once_with_exit_1_and_the_cursor_before_it(tmp_path, nats_server):
    """A stream an operator capped (max_msgs, discard new) answers the event over the cap with
    an error PubAck: the push stops there with one line and exit 1 (not a wait for an ack that
    never comes and exit 3), the cursor just before the refused event, the reason stored."""
    import asyncio

    import nats
    from nats.js import api

    async def capped_stream() -> None:
        nc = await nats.connect(nats_server.url, allow_reconnect=False, connect_timeout=10)
        try:
            await nc.jetstream().add_stream(api.StreamConfig(name="CAPPED", subjects=["tessera.CAPPED.>"], max_msgs=5,
                                                             discard=api.DiscardPolicy.NEW))
        finally:
            await nc.close()

    asyncio.run(capped_stream())
    home = tmp_path / "a"
    ids = append_events(home, 12)
    result = tessera(home, "nats", "push", "--server", nats_server.url, "--stream", "CAPPED")
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "refused event seq 6 for stream CAPPED" in result.stderr, result.stderr
    assert "maximum messages exceeded" in result.stderr.lower(), result.stderr
    assert push_cursor(home) == 5
    conn = store(home)
    (last_error,) = conn.execute("SELECT last_error FROM nats_push_cursors WHERE stream = 'CAPPED'").fetchone()
    assert last_error.startswith("seq 6: ")
    assert_stream_holds_chain_once(nats_server, own_actor(home), ids[:5], stream="CAPPED")


def test_an_own_event_whose_subject_would_break_the_protocol_line_is_exit_1_and_nothing_past_it_is_sent(tmp_path, nats_server):
    """The push writes HPUB lines itself: a damaged log whose event subject holds whitespace is
    refused before anything of that write reaches the server (one line, exit 1, the cursor
    before the batch), not sent as a broken protocol line."""
    home = tmp_path / "a"
    append_events(home, 5)
    conn = store(home)
    with conn:
        conn.execute("UPDATE events SET subject = 'demo.bad subject' WHERE seq = 3")
    conn.close()
    result = tessera(home, "nats", "push", "--server", nats_server.url)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "'demo.bad subject' is unfit for a NATS subject" in result.stderr, result.stderr
    assert push_cursor(home) == 0
    from tests.nats_server import stream_messages

    assert stream_messages(nats_server.url, "TESSERA") == []


def test_a_connection_closed_without_nats_py_calling_back_is_still_seen_lost(nats_server):
    """nats-py 2.16 can close a connection whose last flush fails without running its disconnect
    callbacks (it marks the connection closed first): push and pull still see it lost."""
    import asyncio

    from tessera.core.nats import broker

    async def scenario() -> bool:
        lost = asyncio.Event()
        nc = await broker.connect(nats_server.url, broker.Credentials(), on_closed=lost.set)
        nc._status = nc.CLOSED  # what nats-py's _close does before the flush that can fail
        try:
            await asyncio.wait_for(lost.wait(), DEADLINE)
            return lost.is_set()
        finally:
            nc._status = nc.CONNECTED
            await nc.close()

    assert asyncio.run(scenario())
