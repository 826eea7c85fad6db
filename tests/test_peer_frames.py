"""The peer protocol's framing, message table and connection-start state machine
(core/peers/frames.py, message_types.py, hello.py): round trips, limits checked before reading,
broken frames, hypothesis fuzz, and a server on a real loopback socket against misbehaving peers
(one error frame, then the connection closes; nothing else is ever sent to an unknown node)."""

from __future__ import annotations

import asyncio
import sqlite3

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.core.peers import frames, message_types, peer_list
from tessera.core.peers.frames import ProtocolError
from tessera.core.peers.hello import ConnectionStart, PeerRefused, Phase, receive_one, say_hello, store_authorizer
from tessera.core.peers.rate_limit import PeerRateLimiter
from tessera.core.store.db import connect

SERVER_ID = "a" * 64
CLIENT_ID = "b" * 64
STRANGER_ID = "c" * 64
DEADLINE = 60  # seconds; generous for a loaded CI machine, only ever reached by a hang


class RecordingStream:
    """A byte stream over fixed bytes that records every read request (how much was asked for,
    how much handed back), and collects what is written."""

    def __init__(self, data: bytes, *, piece: int | None = None):
        self.data, self.pos, self.piece = data, 0, piece
        self.asked: list[int] = []
        self.written = bytearray()

    async def read(self, n: int) -> bytes:
        self.asked.append(n)
        take = n if self.piece is None else min(n, self.piece)
        out = self.data[self.pos:self.pos + take]
        self.pos += len(out)
        return out

    async def write(self, data: bytes) -> None:
        self.written += data

    @property
    def consumed(self) -> int:
        return self.pos


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, DEADLINE))


def frame_of_body(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def frames_in(data: bytes) -> list[dict]:
    """Every frame in ``data`` (what a peer sent us), decoded by our own decoder."""
    stream, out = RecordingStream(data), []
    while (frame := run(frames.read_frame(stream))) is not None:
        out.append(frame)
    return out


def hello(node_id: str = CLIENT_ID, **over) -> dict:
    return {"type": "hello", "version": message_types.PROTOCOL_VERSION, "node_id": node_id, "name": "client", "ticket": "",
            **over}


# -- framing -----------------------------------------------------------------------------------

plain = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=50) | st.binary(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=20), plain, max_size=8), st.integers(min_value=1, max_value=7))
def test_any_map_round_trips_whatever_the_stream_splits_it_into(message, piece):
    stream = RecordingStream(frames.encode(message) * 2, piece=piece)
    assert run(frames.read_frame(stream)) == message
    assert run(frames.read_frame(stream)) == message
    assert run(frames.read_frame(stream)) is None  # the end, between frames


def test_the_header_is_four_bytes_big_endian():
    data = frames.encode({"type": "ping", "nonce": 7})
    body = msgpack.packb({"type": "ping", "nonce": 7})
    assert data == len(body).to_bytes(4, "big") + body and data[:4] == b"\x00\x00\x00" + bytes([len(body)])


@pytest.mark.parametrize("announced", [1024 + 1, 2**32 - 1])
def test_a_length_over_the_limit_is_refused_before_any_of_the_body_is_read(announced):
    stream = RecordingStream(announced.to_bytes(4, "big") + b"\x00" * 5000)
    with pytest.raises(ProtocolError) as caught:
        run(frames.read_frame(stream, limit=1024))
    assert caught.value.code == "too_large" and str(announced) in str(caught.value)
    assert stream.consumed == 4 and sum(stream.asked) == 4  # only the header was asked for


def test_a_length_at_the_limit_is_read():
    body = msgpack.packb({"type": "ping", "pad": "x" * 1000})
    stream = RecordingStream(frame_of_body(body))
    assert run(frames.read_frame(stream, limit=len(body)))["pad"] == "x" * 1000


def test_the_body_is_read_in_bounded_pieces():
    body = msgpack.packb({"blob": b"x" * 300_000})
    stream = RecordingStream(frame_of_body(body))
    run(frames.read_frame(stream))
    assert max(stream.asked) <= 64 * 1024


def test_encode_refuses_a_message_over_the_limit_and_what_msgpack_cannot_carry():
    with pytest.raises(ProtocolError) as caught:
        frames.encode({"blob": b"x" * 2000}, limit=1000)
    assert caught.value.code == "too_large"
    with pytest.raises(ProtocolError) as caught:
        frames.encode({"value": object()})
    assert caught.value.code == "malformed"
    with pytest.raises(ValueError):
        frames.encode({}, limit=frames.MAX_FRAME_BYTES + 1)


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x00\x00", b"\x00\x00\x00\x05\x81", frame_of_body(b"\x81\xa1a\x01")[:-1]])
def test_a_truncated_frame_is_a_protocol_error(data):
    with pytest.raises(ProtocolError) as caught:
        run(frames.read_frame(RecordingStream(data)))
    assert caught.value.code == "truncated"


@pytest.mark.parametrize("body", [
    msgpack.packb([1, 2]), msgpack.packb(3), msgpack.packb("hello"), msgpack.packb(None), b"",
    msgpack.packb({"a": 1}) + b"\x01",           # trailing bytes after the map
    b"\xc1",                                      # a byte msgpack never uses
    msgpack.packb({b"type": b"hello"}),           # keys that are bytes
    msgpack.packb({"t": msgpack.ExtType(5, b"x")}),
    msgpack.packb({"t": msgpack.Timestamp(1)}),
    b"\x81\x91\x01\x01",                          # a list as a map key
    b"\x91" * 5000,                               # nesting past msgpack's stack
    b"\x81\xa1a\xa3\xff\xfe\xfd",                 # text that is not UTF-8
])
def test_a_body_that_is_not_one_plain_map_is_malformed(body):
    with pytest.raises(ProtocolError) as caught:
        run(frames.read_frame(RecordingStream(frame_of_body(body))))
    assert caught.value.code == "malformed"


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=64))
def test_fuzz_random_bytes_give_maps_or_protocol_errors_and_never_read_past_the_limit(data, limit):
    stream = RecordingStream(data)
    try:
        while run(frames.read_frame(stream, limit=limit)) is not None:
            pass
    except ProtocolError:
        pass
    # never asked for more than one header plus one body of at most the limit at a time
    assert max(stream.asked) <= max(4, limit)


# -- the message table ---------------------------------------------------------------------------

def test_every_message_type_checks_its_fields():
    assert message_types.check({**hello(), "extra": 1}) == hello()  # unknown fields are dropped
    for bad in (hello(version=True), hello(version="1"), hello(node_id="B" * 64), hello(node_id="b" * 63),
                hello(name=""), hello(name="x" * 65), {"type": "hello", "version": 1, "name": "n"},
                {"type": "error", "code": "", "message": "m", "fix": ""}, {"type": "error", "code": "c", "message": 1, "fix": ""},
                {"type": "ping", "nonce": 1.5}, {"type": "pong"}):
        with pytest.raises(ProtocolError) as caught:
            message_types.check(bad)
        assert caught.value.code == "malformed", bad
    for bad in ({}, {"type": "nope"}, {"type": 5}, {"type": None}):
        with pytest.raises(ProtocolError) as caught:
            message_types.check(bad)
        assert caught.value.code == "unknown_type"


# -- the state machine, no I/O ---------------------------------------------------------------------

def accepting(authorized=(CLIENT_ID,), **kw) -> ConnectionStart:
    return ConnectionStart(SERVER_ID, "server", remote_node_id=kw.pop("remote", None),
                           authorize=lambda n: None if n in authorized else ("unknown_peer", "is not a peer"), **kw)


def test_the_dialer_says_hello_first_and_the_acceptor_answers_only_after_accepting_it():
    dialer = ConnectionStart(CLIENT_ID, "client", remote_node_id=SERVER_ID)
    acceptor = accepting()
    assert acceptor.opening() == [] and dialer.opening() == [message_types.make("hello", **{k: v for k, v in hello().items() if k != "type"})]
    answer = acceptor.receive(dialer.opening()[0])
    assert acceptor.phase is Phase.OPEN and answer.send[0]["node_id"] == SERVER_ID and not answer.close
    assert dialer.receive(answer.send[0]).close is False and dialer.phase is Phase.OPEN
    assert dialer.remote.name == "server" and acceptor.remote.node_id == CLIENT_ID


def test_the_hello_carries_the_dialers_ticket_to_the_acceptor():
    dialer = ConnectionStart(CLIENT_ID, "client", remote_node_id=SERVER_ID, local_ticket="endpointabc")
    acceptor = accepting()
    acceptor.receive(dialer.opening()[0])
    assert acceptor.remote.ticket == "endpointabc"
    with pytest.raises(ProtocolError):
        message_types.check(hello(ticket="x" * 601))


def test_a_pong_answering_our_own_ping_is_taken_once_and_a_second_one_refused():
    acceptor = accepting()
    acceptor.receive(hello())
    ping = acceptor.ping()
    assert ping["type"] == "ping"
    step = acceptor.receive({"type": "pong", "nonce": ping["nonce"]})
    assert not step.close and step.send == [] and step.request is None
    again = acceptor.receive({"type": "pong", "nonce": ping["nonce"]})
    assert again.close and again.error.code == "unexpected"


@pytest.mark.parametrize("first, code", [
    ({"type": "ping", "nonce": 1}, "expected_hello"),
    ({"type": "pong", "nonce": 1}, "expected_hello"),
    ({"type": "nope"}, "unknown_type"),
    (hello(version=2), "version"),
    (hello(version=0), "version"),
    (hello(name=7), "malformed"),
    (hello(STRANGER_ID), "unknown_peer"),
])
def test_anything_but_an_authorized_hello_first_gets_one_error_and_closes(first, code):
    machine = accepting()
    step = machine.receive(first)
    assert step.close and machine.phase is Phase.CLOSED
    assert [f["type"] for f in step.send] == ["error"] and step.send[0]["code"] == code
    assert machine.receive(hello()).send == []  # closed: nothing more is ever sent


def test_a_hello_must_claim_the_node_id_the_transport_authenticated():
    step = accepting(authorized=(CLIENT_ID, STRANGER_ID), remote=CLIENT_ID).receive(hello(STRANGER_ID))
    assert step.send[0]["code"] == "identity_mismatch" and step.close


def test_an_unknown_node_is_told_the_fix_and_nothing_of_this_node():
    step = accepting().receive(hello(STRANGER_ID))
    assert step.send[0]["fix"] == f"on server: tessera peer add {STRANGER_ID} --publish"
    assert len(step.send) == 1 and SERVER_ID not in repr(step.send)


def test_the_peers_error_frame_closes_without_an_answer():
    dialer = ConnectionStart(CLIENT_ID, "client", remote_node_id=SERVER_ID)
    step = dialer.receive({"type": "error", "code": "unknown_peer", "message": "no", "fix": "tessera peer add x --publish"})
    assert step.close and step.send == [] and isinstance(step.error, PeerRefused) and step.error.exit_code == 5


def test_after_hello_pings_are_answered_and_a_second_hello_or_a_stray_pong_closes():
    machine = accepting()
    machine.receive(hello())
    assert machine.receive({"type": "ping", "nonce": 9}).send == [{"type": "pong", "nonce": 9}]
    assert machine.receive(hello()).send[0]["code"] == "unexpected" and machine.phase is Phase.CLOSED
    machine = accepting()
    machine.receive(hello())
    assert machine.receive({"type": "pong", "nonce": 9}).send[0]["code"] == "unexpected"


def test_requests_over_the_rate_limit_get_one_error_and_close():
    now = [0.0]
    machine = accepting(limiter=PeerRateLimiter(rate=1, burst=2, clock=lambda: now[0]))
    machine.receive(hello())
    assert [machine.receive({"type": "ping", "nonce": i}).send[0]["type"] for i in range(2)] == ["pong", "pong"]
    step = machine.receive({"type": "ping", "nonce": 3})
    assert step.close and step.send[0]["code"] == "rate_limited" and "wait 1.0 s" in step.send[0]["fix"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["type", "version", "node_id", "name", "nonce", "code", "message", "fix"]),
                                st.sampled_from(["hello", "ping", "pong", "error", CLIENT_ID, 1, True, "x", None]) | plain,
                                max_size=5), max_size=6),
       st.booleans())
def test_fuzz_any_maps_never_raise_and_at_most_one_error_is_ever_sent(messages, start_with_hello):
    machine = accepting()
    sent = []
    for message in ([hello()] if start_with_hello else []) + messages:
        sent += machine.receive(message).send
    assert [f for f in sent if f["type"] == "error"] == [f for f in sent if f["type"] == "error"][:1]
    if any(f["type"] == "error" for f in sent):
        assert sent[-1]["type"] == "error" and machine.phase is Phase.CLOSED


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_into_the_connection_start_give_only_protocol_errors(data):
    stream = RecordingStream(data)
    machine = accepting()
    try:
        run(say_hello(stream, machine, limit=100))
        while machine.phase is Phase.OPEN and not run(receive_one(stream, machine, limit=100)).close:
            pass
    except ProtocolError:
        pass
    sent = frames_in(bytes(stream.written))
    assert sum(f["type"] == "error" for f in sent) <= 1 and max(stream.asked) <= 100


# -- a real server on a loopback socket, against misbehaving peers ------------------------------

class SocketStream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def read(self, n: int) -> bytes:
        return await self.reader.read(n)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


@pytest.fixture()
def peer_store(tmp_path) -> sqlite3.Connection:
    conn = connect(tmp_path / "tessera.db")
    peer_list.add(conn, CLIENT_ID, "client", publish=True, added_at="2026-12-01T00:00:00Z")
    peer_list.add(conn, STRANGER_ID, "lurker", publish=False, added_at="2026-12-01T00:00:00Z")
    yield conn
    conn.close()


def talk_to_server(conn: sqlite3.Connection, data: bytes, *, remote: str | None = None, limit: int = 1024,
                   limiter: PeerRateLimiter | None = None) -> tuple[list[dict], list[BaseException]]:
    """Start a server on 127.0.0.1 running the connection start over the store's peer list; send
    it ``data`` raw, half-close, and return every frame it sent back before closing, and what it
    raised."""
    raised: list[BaseException] = []

    async def handle(reader, writer):
        machine = ConnectionStart(SERVER_ID, "server", remote_node_id=remote, authorize=store_authorizer(conn),
                                  limiter=limiter)
        stream = SocketStream(reader, writer)
        try:
            await say_hello(stream, machine, limit=limit)
            while not (step := await receive_one(stream, machine, limit=limit)).close:
                pass
            raised.append(step.error)
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to judge
            raised.append(exc)
        finally:
            writer.close()

    async def session():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        received = await reader.read()  # until the server closes
        writer.close()
        server.close()
        await server.wait_closed()
        return received

    return frames_in(run(session())), raised


def only_error(conn, data, **kw) -> dict:
    got, raised = talk_to_server(conn, data, **kw)
    assert len(got) == 1 and got[0]["type"] == "error", got
    assert all(isinstance(e, ProtocolError) for e in raised), raised
    return got[0]


def test_server_an_authorized_peer_is_answered_with_hello_and_pong(peer_store):
    got, raised = talk_to_server(peer_store, frames.encode(hello()) + frames.encode({"type": "ping", "nonce": 5}))
    assert [f["type"] for f in got] == ["hello", "pong"] and got[0]["node_id"] == SERVER_ID and got[1]["nonce"] == 5
    assert [e.code for e in raised] == ["closed"]  # we half-closed: the server saw the end and closed too


def test_server_an_unknown_node_gets_one_error_naming_the_fix_and_no_hello(peer_store):
    error = only_error(peer_store, frames.encode(hello("d" * 64)) + frames.encode({"type": "ping", "nonce": 1}))
    assert error["code"] == "unknown_peer" and error["fix"] == f"on server: tessera peer add {'d' * 64} --publish"


def test_server_a_peer_it_does_not_publish_to_is_not_authorized(peer_store):
    error = only_error(peer_store, frames.encode(hello(STRANGER_ID)))
    assert error["code"] == "not_authorized" and f"tessera peer add {STRANGER_ID} --publish" in error["fix"]


@pytest.mark.parametrize("data, code", [
    ((4096).to_bytes(4, "big") + b"\x00" * 100, "too_large"),
    (frame_of_body(msgpack.packb([1, 2, 3])), "malformed"),
    (frame_of_body(b"\xc1\xc1"), "malformed"),
    (frame_of_body(msgpack.packb({"type": "exfiltrate", "share": "ops"})), "unknown_type"),
    (frames.encode({"type": "ping", "nonce": 1}), "expected_hello"),
    (frames.encode({"type": "pong", "nonce": 1}), "expected_hello"),
    (frames.encode(hello(version=99)), "version"),
    (frames.encode(hello(version="1")), "malformed"),
    (frames.encode({"type": "hello", "node_id": CLIENT_ID, "name": "x"}), "malformed"),
    (frames.encode({"type": "error", "code": 5, "message": "m", "fix": ""}), "malformed"),
    (frames.encode(hello()) + frames.encode(hello()), "unexpected"),
    (frames.encode(hello()) + frames.encode({"type": "pong", "nonce": 2}), "unexpected"),
    (frames.encode(hello()) + frames.encode({"type": "ping", "nonce": "two"}), "malformed"),
    (frames.encode(hello())[:-3], "truncated"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_server_each_kind_of_misbehaviour_gets_one_error_frame_then_close(peer_store, data, code):
    got, raised = talk_to_server(peer_store, data)
    errors = [f for f in got if f["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == code and got[-1] is errors[0], got
    assert [e.code for e in raised] == [code]


def test_server_the_hello_of_another_node_than_the_transports_is_refused(peer_store):
    assert only_error(peer_store, frames.encode(hello()), remote=STRANGER_ID)["code"] == "identity_mismatch"


def test_server_a_peers_error_frame_gets_no_answer(peer_store):
    got, raised = talk_to_server(peer_store, frames.encode({"type": "error", "code": "bye", "message": "m", "fix": ""}))
    assert got == [] and isinstance(raised[0], PeerRefused)


def test_server_a_flood_of_pings_is_cut_at_the_rate_limit(peer_store):
    pings = b"".join(frames.encode({"type": "ping", "nonce": i}) for i in range(10))
    got, raised = talk_to_server(peer_store, frames.encode(hello()) + pings,
                                 limiter=PeerRateLimiter(rate=0.001, burst=3))
    assert [f["type"] for f in got] == ["hello", "pong", "pong", "pong", "error"] and got[-1]["code"] == "rate_limited"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=120))
def test_server_fuzz_random_bytes_never_crash_it_and_never_open_it(peer_store, data):
    got, raised = talk_to_server(peer_store, data, limit=64)
    assert all(isinstance(e, ProtocolError) for e in raised), raised
    assert [f["type"] for f in got] in ([], ["error"])
