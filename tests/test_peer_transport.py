"""The transport over iroh (core/peers/transport.py, core/peers/iroh_shim.py): two endpoints in
separate processes on 127.0.0.1 with relays off; the shim checked byte for byte against the
bindings' own loop and refused on any iroh but the pinned one; start-up never imports iroh."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tessera.core import node_key

REPO = Path(__file__).resolve().parents[1]
NODE = [sys.executable, str(REPO / "tests" / "peer_endpoint_process.py")]
DEADLINE = 60  # seconds, for any one process: generous on a busy 2-core machine
MB = 1 << 20


def _loopback(socket_address: str) -> bool:
    host = socket_address.rsplit(":", 1)[0].strip("[]")
    return ipaddress.ip_address(host).is_loopback


def _public_id(store: Path) -> str:
    return node_key.public_key_hex(node_key.signing_key(store))


@pytest.fixture
def server(tmp_path):
    """A serving node process; yields (its first JSON line, the process)."""
    procs = []

    def start(reply_bytes: int):
        proc = subprocess.Popen([*NODE, "serve", str(tmp_path / "a.db"), str(reply_bytes)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        line = proc.stdout.readline()  # blocks until bound (or the process died: then "")
        assert line, proc.stderr.read()
        return json.loads(line), proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(DEADLINE)


def _connect(tmp_path, target: str, send_bytes: int, timeout: float = 15):
    return subprocess.run([*NODE, "connect", str(tmp_path / "b.db"), target, str(send_bytes), str(timeout)],
                          capture_output=True, text=True, timeout=DEADLINE)


def test_two_processes_exchange_bytes_both_ways_and_each_knows_the_others_key(tmp_path, server):
    hello, proc = server(reply_bytes=3 * MB + 5)
    assert hello["node_id"] == _public_id(tmp_path / "a.db")  # the iroh endpoint id IS our node id
    # loopback only: every socket it listens on and every address its ticket gives (not [::])
    assert hello["addresses"] and all(_loopback(a) for a in hello["addresses"]), hello
    assert hello["bound"] and all(_loopback(a) for a in hello["bound"]), hello

    client = _connect(tmp_path, hello["ticket"], send_bytes=5 * MB + 3)
    assert client.returncode == 0, client.stderr
    sent = json.loads(client.stdout)
    served = json.loads(proc.stdout.readline())
    assert proc.wait(DEADLINE) == 0, proc.stderr.read()

    assert served["remote"] == _public_id(tmp_path / "b.db")  # the accepting side sees the connecting key
    assert sent["remote"] == hello["node_id"]
    assert (served["got_bytes"], served["got_sha256"]) == (5 * MB + 3, sent["sent_sha256"])
    assert (sent["got_bytes"], sent["got_sha256"]) == (3 * MB + 5, served["sent_sha256"])


def test_a_connection_to_a_wrong_node_id_fails_cleanly(tmp_path, server):
    hello, proc = server(reply_bytes=1)
    other = node_key.public_key_hex(node_key.signing_key(tmp_path / "other.db"))
    client = _connect(tmp_path, f"{other}@{hello['addresses'][0]}", send_bytes=1)
    assert client.returncode == 3, client.stderr  # EXIT_UNAVAILABLE, not a crash
    lines = client.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in client.stderr, client.stderr
    assert f"is not {other[:10]}: it could not prove that id" in lines[0]
    assert proc.poll() is None  # the server skipped the failed handshake and still accepts


def test_no_answer_is_a_timeout_not_a_hang(tmp_path):
    nobody = node_key.public_key_hex(node_key.signing_key(tmp_path / "nobody.db"))
    client = _connect(tmp_path, f"{nobody}@127.0.0.1:9", send_bytes=1, timeout=1)
    assert client.returncode == 4, client.stderr  # EXIT_TIMEOUT
    assert client.stderr.strip().count("\n") == 0
    assert f"node {nobody[:10]} did not answer at 127.0.0.1:9 within 1 s" in client.stderr


@pytest.mark.parametrize("ticket", ["endpointnotaticket", "", "x" * 300])
def test_a_bad_ticket_is_a_usage_error(tmp_path, ticket):
    client = _connect(tmp_path, ticket, send_bytes=1)
    assert client.returncode == 2, client.stderr
    assert "is not a node ticket" in client.stderr and client.stderr.strip().count("\n") == 0


def test_a_bad_node_id_is_a_usage_error(tmp_path):
    client = _connect(tmp_path, "not-a-node-id@127.0.0.1:9", send_bytes=1)
    assert client.returncode == 2, client.stderr
    assert client.stderr.startswith("'not-a-node-id' is not a node id (a node id is 64 hex digits")
    assert client.stderr.strip().count("\n") == 0


def test_a_ticket_round_trips_the_address():
    from tessera.core.peers.transport import NodeAddress

    node = NodeAddress("02a8e167ff937d2c6aedf69c2fd6f8d6777ffe42691376cae296f79b677ed570",
                       ("127.0.0.1:35093",))
    assert NodeAddress.from_ticket(node.ticket()) == node
    assert node.ticket().startswith("endpoint")


# --- the shim ---------------------------------------------------------------------------------

def _buffer_bytes(ffi, write, chunks: list[bytes]) -> tuple[bytes, int]:
    """Write ``chunks`` (after a u32, so writes start at an odd offset and the buffer grows)
    into a fresh Rust buffer with ``write``; its contents and length, then free it."""
    builder = ffi._UniffiRustBufferBuilder()
    try:
        builder.write_u8(7)
        for chunk in chunks:
            write(builder, chunk)
        rbuf = builder.finalize()
        try:
            return rbuf.data[0:rbuf.len], rbuf.len
        finally:
            rbuf.free()
    except BaseException:
        builder.discard()
        raise


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.one_of(st.integers(0, 64), st.integers(0, MB)), min_size=1, max_size=3),
       seed=st.integers(0, 2**32), kind=st.sampled_from([bytes, bytearray, memoryview]))
@example(sizes=[0], seed=0, kind=bytes)
@example(sizes=[MB], seed=1, kind=bytes)  # the top of the range, which random draws seldom reach
@example(sizes=[MB - 1, 1, MB], seed=2, kind=memoryview)
def test_the_shim_writes_byte_identical_buffers_to_the_bindings_loop(sizes, seed, kind):
    from tessera.core.peers import iroh_shim
    from tessera.core.peers.transport import iroh

    ffi = iroh.iroh_ffi
    rng = random.Random(seed)
    chunks = [kind(rng.randbytes(size)) for size in sizes]
    fast = _buffer_bytes(ffi, iroh_shim.fast_write, chunks)
    slow = _buffer_bytes(ffi, iroh_shim.slow_write(ffi), chunks)
    assert fast == slow
    assert fast[1] == 1 + sum(sizes)


def test_the_shim_is_applied_when_the_transport_is_imported():
    from tessera.core.peers import iroh_shim
    from tessera.core.peers.transport import iroh

    assert iroh.iroh_ffi._UniffiRustBufferBuilder.write is iroh_shim.fast_write
    slow = iroh_shim.slow_write(iroh.iroh_ffi)
    assert slow is not iroh_shim.fast_write and "enumerate" in slow.__code__.co_names


def test_the_shim_refuses_another_iroh_version():
    from tessera.core.peers import iroh_shim
    from tessera.core.peers.transport import iroh

    with pytest.raises(iroh_shim.IrohMismatch) as err:
        iroh_shim.check(iroh.iroh_ffi, "1.3.0")
    assert "iroh 1.3.0 is installed" in err.value.one_line()
    assert "pip install -c constraints.txt iroh==1.2.0" in err.value.one_line()


def test_the_shim_refuses_a_write_it_does_not_recognise():
    from tessera.core.peers import iroh_shim
    from tessera.core.peers.transport import iroh

    real = iroh.iroh_ffi

    class Builder:
        _reserve = real._UniffiRustBufferBuilder._reserve

        def write(self, value):  # a different generator's write: not the loop the shim replaces
            self.rbuf.extend(value)

    fake = types.SimpleNamespace(_UniffiRustBufferBuilder=Builder, _UniffiRustBuffer=real._UniffiRustBuffer)
    with pytest.raises(iroh_shim.IrohMismatch, match="bindings are not the ones"):
        iroh_shim.apply(fake, iroh_shim.PINNED_VERSION)
    assert Builder.write is not iroh_shim.fast_write


_IMPORT_TRANSPORT = ("from tessera.core.errors import TesseraError\n"
                     "try:\n    import tessera.core.peers.transport\n"
                     "except TesseraError as err:\n    print(err.one_line()); raise SystemExit(err.exit_code)\n")


def _import_transport_with(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run([sys.executable, "-c", _IMPORT_TRANSPORT], capture_output=True, text=True,
                          env=env, timeout=DEADLINE)


def test_the_transport_refuses_to_load_over_another_installed_iroh(tmp_path):
    """A real install of another version: a dist-info saying iroh 9.9.9 ahead on sys.path."""
    meta = tmp_path / "iroh-9.9.9.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: iroh\nVersion: 9.9.9\n")
    proc = _import_transport_with(tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "iroh 9.9.9 is installed, but tessera's transport is checked against iroh 1.2.0" in proc.stdout


def test_the_transport_says_so_when_iroh_is_missing(tmp_path):
    (tmp_path / "iroh").mkdir()
    (tmp_path / "iroh" / "__init__.py").write_text("raise ImportError('libiroh_ffi.so not found')\n")
    proc = _import_transport_with(tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith("the iroh bindings are not installed"), proc.stdout


def test_the_pins_match_the_version_the_shim_was_checked_against():
    from tessera.core.peers import iroh_shim

    pin = f"iroh=={iroh_shim.PINNED_VERSION}"
    assert re.search(rf'"{re.escape(pin)}"', (REPO / "pyproject.toml").read_text())
    assert pin in (REPO / "constraints.txt").read_text().splitlines()


def test_start_up_and_a_query_do_not_import_iroh(tmp_path):
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    code = ("import sys, tessera.core.api\nfrom tessera.cli.main import main\n"
            f"rc = main(['query', '-s', {str(f)!r}, '-o', 'jsonl', 'MATCH (c:cm) RETURN c.metadata.name'])\n"
            "print(sorted(m for m in sys.modules if m == 'iroh' or m.startswith(('iroh.', 'tessera.core.peers.transport'))), rc, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=DEADLINE)
    assert proc.stderr.strip().splitlines()[-1] == "[] 0", proc.stderr


def test_without_relays_the_endpoint_is_never_online_and_says_so(tmp_path):
    import asyncio

    from tessera.core.peers.transport import Endpoint

    async def check():
        async with await Endpoint.bind(node_key.signing_key(tmp_path / "a.db"), loopback=True) as endpoint:
            return await endpoint.online(timeout=0.5), endpoint.address().relay_url

    assert asyncio.run(check()) == (False, None)


def test_a_peer_closing_on_purpose_reads_as_a_plain_reason(tmp_path):
    """A read after the other side closed the connection says so in words (what serve logs as
    `disconnected`), not in the Rust Debug text of iroh's ConnectionLost(ApplicationClosed ...)."""
    import asyncio

    from tessera.core.peers.transport import Endpoint, StreamClosed

    async def check() -> str:
        async with await Endpoint.bind(node_key.signing_key(tmp_path / "a.db"), loopback=True) as a, \
                await Endpoint.bind(node_key.signing_key(tmp_path / "b.db"), loopback=True) as b:
            accepting = asyncio.create_task(b.accept())
            dialed = await a.connect(b.ticket())
            accepted = await asyncio.wait_for(accepting, DEADLINE)
            stream = await dialed.open_stream()
            await stream.write(b"x")
            incoming = await asyncio.wait_for(accepted.accept_stream(), DEADLINE)
            assert await incoming.read_exact(1) == b"x"
            dialed.close("done")
            with pytest.raises(StreamClosed) as raised:
                await asyncio.wait_for(incoming.read_exact(1), DEADLINE)
            return raised.value.message

    message = asyncio.run(check())
    assert "the peer closed the connection (done)" in message and "ApplicationClose" not in message, message
