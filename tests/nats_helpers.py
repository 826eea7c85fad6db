"""What the NATS tests share: a real nats-server per test (tests/nats_server.py), members' data
homes with events appended, and what the stream holds read independently of `tessera nats`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.nats_server import NatsServer, stream_messages
from tests.test_peer_serve import store


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(tmp_path / "jetstream").start()
    yield server
    server.kill()


def append_events(home: Path, count: int, subject: str = "demo.work") -> list[str]:
    """Append ``count`` events to the home's own chain (in batches of 1000); their ids."""
    from tessera.core import events

    conn = store(home)
    ids = []
    for first in range(0, count, 1000):
        batch = [(f"{subject}.{i % 5}", {"i": i, "pad": "x" * 40}) for i in range(first, min(first + 1000, count))]
        ids += [e.id for e in events.append_many(conn, batch)]
    conn.close()
    return ids


def own_actor(home: Path) -> str:
    from tessera.core import events

    conn = store(home)
    try:
        return events.node_id(conn)
    finally:
        conn.close()


def push_cursor(home: Path) -> int:
    conn = store(home)
    try:
        row = conn.execute("SELECT max(seq) FROM nats_push_cursors").fetchone()
        return row[0] or 0
    finally:
        conn.close()


def assert_stream_holds_chain_once(server: NatsServer, actor: str, ids: list[str], stream: str = "TESSERA") -> None:
    """The stream holds each of ``ids`` (the actor's chain, in seq order) exactly once, in order."""
    mine = [(headers, json.loads(data)) for subject, headers, data in stream_messages(server.url, stream)
            if subject.startswith(f"tessera.{stream}.{actor}.")]
    held = [event["id"] for _, event in mine]
    assert len(held) == len(set(held)), f"{len(held) - len(set(held))} events are in the stream twice"
    assert held == ids, (f"the stream holds {len(held)} of the chain's {len(ids)} events"
                         if len(held) != len(ids) else "the stream holds the chain out of order")
    assert [event["seq"] for _, event in mine] == list(range(1, len(ids) + 1))
    assert all(headers.get("Nats-Msg-Id") == event["id"] for headers, event in mine), "a message's Nats-Msg-Id is not its event id"
