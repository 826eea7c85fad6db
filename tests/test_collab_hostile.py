"""What a collab connection refuses (issue 15, wire), over a real `tessera serve`, with a dialer
speaking raw frames: a notebook not shared with the dialer, or a dialer that is not a peer, gets
one error frame and not one byte of the notebook (every frame received is inspected); malformed
collab data, data over the 1 MiB bound, a message type the protocol does not have: one
refusal or error each, no crash, and the serve goes on serving other clients."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.collab_helpers import (befriend, init_node, notebook_with_cell, point_at, share, sources, start_driver,
                                  wait_owner)
from tests.test_collab_sync import started  # noqa: F401  (fixture)
from tests.test_peer_serve import DEADLINE, procs, start_serve  # noqa: F401

SECRET = "MATCH (s:Secret) RETURN s"


class RawPeer:
    """A dialer of alice's serve that writes and reads frames itself (no client logic)."""

    def __init__(self, home: Path):
        self.home = home

    async def __aenter__(self):
        from tessera.core import node_key
        from tessera.core.peers import transport

        key = node_key.signing_key(self.home / "data" / "tessera.db")
        self.endpoint = await transport.Endpoint.bind(key, loopback=True)
        return self

    async def __aexit__(self, *exc):
        await self.endpoint.close()

    async def dial(self, ticket: str, name: str):
        from tessera.core.peers import message_types

        self.connection = await self.endpoint.connect(ticket)
        self.stream = await self.connection.open_stream()
        await self.send(message_types.make("hello", version=message_types.PROTOCOL_VERSION,
                                           node_id=self.endpoint.node_id, name=name, ticket=""))
        return await self.read()

    async def send(self, message: dict) -> None:
        from tessera.core.peers import frames

        await frames.write_frame(self.stream, message)

    async def send_bytes(self, body: bytes) -> None:
        await self.stream.write(len(body).to_bytes(4, "big") + body)

    async def read(self) -> dict | None:
        from tessera.core.peers import frames, transport

        try:
            return await asyncio.wait_for(frames.read_frame(self.stream), DEADLINE)
        except (transport.TransportError, frames.ProtocolError):
            return None

    async def read_until(self, predicate) -> list[dict]:
        got = []
        while (frame := await self.read()) is not None:
            got.append(frame)
            if predicate(frame):
                break
        return got

    async def everything(self) -> list[dict]:
        """Every frame until the serve closes."""
        return await self.read_until(lambda frame: False)


def _setup(tmp_path: Path, procs):
    alice, bob, mallory = tmp_path / "alice", tmp_path / "bob", tmp_path / "mallory"
    for home, name in ((alice, "alice"), (bob, "bob"), (mallory, "mallory")):
        init_node(home, name)
    befriend(alice, bob)
    cell = notebook_with_cell(alice, "ops", SECRET)
    notebook_with_cell(alice, "private", SECRET)
    share(alice, "ops", "bob")
    serve, listening = start_serve(procs, alice)
    point_at(bob, alice, listening["ticket"])
    return alice, bob, mallory, cell, serve, listening["ticket"]


def _holds_notebook_bytes(frames: list[dict]) -> bool:
    return any(f.get("type", "").startswith("collab") or b"Secret" in repr(f).encode() for f in frames)


def test_a_notebook_not_shared_or_a_node_not_a_peer_gets_one_error_frame_and_no_byte(tmp_path, procs):
    from tessera.core.peers import message_types

    alice, bob, mallory, _, serve, ticket = _setup(tmp_path, procs)

    async def scenario():
        async with RawPeer(bob) as raw:
            hello = await raw.dial(ticket, "bob")
            assert hello["type"] == "hello"
            await raw.send(message_types.make("collab_join", notebook="private", run="owner"))
            not_shared = await raw.everything()
        async with RawPeer(mallory) as raw:
            refused = await raw.dial(ticket, "mallory")
            await raw.send(message_types.make("collab_join", notebook="ops", run="owner"))
            not_peer = [refused] + await raw.everything()
        return not_shared, not_peer

    not_shared, not_peer = asyncio.run(scenario())
    assert [f["type"] for f in not_shared] == ["error"] and not_shared[0]["code"] == "not_shared", not_shared
    assert not_shared[0]["fix"] == "ask alice: tessera peer share private --with bob"
    assert [f["type"] for f in not_peer] == ["error"] and not_peer[0]["code"] == "unknown_peer", not_peer

    from tests.test_peer_serve import node_id, tessera

    assert tessera(alice, "peer", "add", node_id(bob), "--no-publish").returncode == 0  # bob: no longer published to

    async def unpublished():
        async with RawPeer(bob) as raw:
            refused = await raw.dial(ticket, "bob")
            await raw.send(message_types.make("collab_join", notebook="ops", run="owner"))
            return [refused] + await raw.everything()

    not_published = asyncio.run(unpublished())
    assert [f["type"] for f in not_published] == ["error"] and not_published[0]["code"] == "not_authorized"
    assert not any(map(_holds_notebook_bytes, (not_shared, not_peer, not_published)))
    assert serve.poll() is None


def test_malformed_huge_and_unknown_collab_messages_are_refused_and_serve_goes_on(tmp_path, procs, started):
    import msgpack

    from tessera.core.peers import message_types

    alice, bob, _, cell, serve, ticket = _setup(tmp_path, procs)

    async def scenario():
        async with RawPeer(bob) as raw:
            await raw.dial(ticket, "bob")
            await raw.send(message_types.make("collab_join", notebook="ops", run="none"))
            welcome = await raw.read()
            refusals = []
            for data in (b"\x07\x00garbage", b"\x00\x02\x05abc", b"\x00\x02" + b"\x03\xff\xff\xff",
                         b"\x01\x05\x01\x02\x03\x04\x05", b"\x00\x02" + bytes([0x80, 0x80, 0x40]) + b"x" * (1 << 20)):
                await raw.send(message_types.make("collab", data=data))
                refusals += [f for f in await raw.read_until(lambda f: f["type"] == "collab_refused")
                             if f["type"] == "collab_refused"]
            await raw.send_bytes(msgpack.packb({"type": "teleport", "to": "mars"}))
            rest = await raw.everything()
            return welcome, refusals, rest

    welcome, refusals, rest = asyncio.run(scenario())
    assert welcome["type"] == "collab_welcome" and welcome["role"] == "editor"
    assert [r["code"] for r in refusals] == ["malformed", "malformed", "malformed", "malformed", "too_large"], refusals
    assert all(r["message"] and "\n" not in r["message"] for r in refusals)
    errors = [f for f in rest if f["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "unknown_type", rest
    assert serve.poll() is None
    # the serve goes on: a real client joins and edits
    client = start_driver(started, bob, "alice", "ops")
    client.wait_synced()
    client.send("type", cell=cell, text=" LIMIT 2")
    wait_owner(alice, "ops", lambda nb: sources(nb)[cell] == SECRET + " LIMIT 2", "the edit after the hostile frames")


def test_a_notebook_larger_than_one_frame_opens_live_in_parts(tmp_path, procs, started):
    from tessera.core.notebook import repository
    from tests.test_peer_serve import store

    alice, bob, _, _, serve, ticket = _setup(tmp_path, procs)
    conn = store(alice)
    try:
        repository.create(conn, "big")
        repository.add_cell(conn, "big", "x" * (5 * 1024 * 1024))  # under the 8 MiB document limit, over a frame
        cell = repository.load(conn, "big").ids()[0]
    finally:
        conn.close()
    share(alice, "big", "bob")
    client = start_driver(started, bob, "alice", "big")
    client.wait_synced()
    assert sources(client.show()["notebook"])[cell] == "x" * (5 * 1024 * 1024)
    client.send("type", cell=cell, text="END")
    wait_owner(alice, "big", lambda nb: sources(nb)[cell].endswith("xEND"), "bob's edit of the big notebook")
    assert serve.poll() is None


def test_a_local_edit_over_the_live_limit_is_not_made_nor_sent(tmp_path, procs, started):
    from tests.collab_helpers import owner_notebook
    from tests.test_peer_serve import store

    alice, bob, _, cell, serve, ticket = _setup(tmp_path, procs)
    client = start_driver(started, bob, "alice", "ops")
    client.wait_synced()
    before = owner_notebook(alice, "ops")
    client.send("type", cell=cell, text="y" * (1536 * 1024))  # edit() reports before it returns
    refused = [l for l in client.seen if l.get("event") == "refused"]
    assert len(refused) == 1 and "over the 1 MiB one live edit may be" in refused[0]["message"], client.seen
    assert {"event": "change", "how": "reset"} in client.seen
    assert sources(client.show()["notebook"])[cell] == SECRET
    client.send("type", cell=cell, text=" LIMIT 3")  # and the next edit goes through
    wait_owner(alice, "ops", lambda nb: sources(nb)[cell] == SECRET + " LIMIT 3", "the next edit at alice")
    conn = store(bob)
    try:
        assert conn.execute("SELECT max(length(data)) FROM collab_copy_updates").fetchone()[0] < 1024 * 1024
    finally:
        conn.close()
    assert owner_notebook(alice, "ops")["rows"][0]["cells"][0]["source"] == SECRET + " LIMIT 3" != \
        before["rows"][0]["cells"][0]["source"]


def test_edits_that_would_grow_the_notebook_past_its_limit_are_refused_as_too_large(tmp_path, procs, started):
    from tessera.core.notebook import repository
    from tests.test_peer_serve import store

    alice, bob, _, _, serve, ticket = _setup(tmp_path, procs)
    conn = store(alice)
    try:
        repository.create(conn, "big")
        repository.add_cell(conn, "big", "x" * (3 * 1024 * 1024))  # opens live (under a 4 MiB frame)
        cell = repository.load(conn, "big").ids()[0]
    finally:
        conn.close()
    share(alice, "big", "bob")
    client = start_driver(started, bob, "alice", "big")
    client.wait_synced()
    for _ in range(6):  # 0.9 MiB each: the owner's notebook would pass 8 MiB on the fifth or sixth
        client.send("type", cell=cell, text="z" * (900 * 1024))
    refused = client.next(lambda l: l.get("event") == "refused", "the owner's too-large refusal")
    assert refused["message"].startswith("alice's node refused the edit: notebook 'big' would be too large"), refused
    assert "split it: move cells to another notebook" in refused["message"]
    client.next(lambda l: l.get("event") == "change" and l["how"] == "reset", "the reset to the owner's state")
    assert serve.poll() is None
