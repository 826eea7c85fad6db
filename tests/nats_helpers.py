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
    mine = [(headers, data) for subject, headers, data in stream_messages(server.url, stream)
            if subject.startswith(f"tessera.{stream}.{actor}.")]
    msg_ids = [headers["Nats-Msg-Id"] for headers, _ in mine]
    assert len(msg_ids) == len(set(msg_ids)), f"{len(msg_ids) - len(set(msg_ids))} events are in the stream twice"
    assert msg_ids == ids, (f"the stream holds {len(msg_ids)} of the chain's {len(ids)} events"
                            if len(msg_ids) != len(ids) else "the stream holds the chain out of order")
    seqs = [json.loads(data)["seq"] for _, data in mine]
    assert seqs == list(range(1, len(ids) + 1))
