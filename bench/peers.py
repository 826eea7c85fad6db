"""Benchmark: the transport over iroh (core/peers/transport.py), on loopback with relays off.
Prints one JSON object on stdout.

- ``bind_ms``: Endpoint.bind with the node key (median of --binds);
- ``connect_ms``: a fresh QUIC + TLS 1.3 connection to a node in another process, p50/p95 of
  --connects;
- ``request_response_ms``: a 64-byte request and a 64-byte answer on one open stream, p50/p95
  of --requests round trips;
- ``throughput_mb_s``: --mb MiB (default 64) in one stream, ``upload`` (this process sends) and
  ``download`` (the other process sends), each ``with_shim`` and ``without_shim`` (both
  processes with the bindings' per-byte copy loop put back: core/peers/iroh_shim.py).
- ``pairing_ms``: one whole pairing by PIN (connect, SPAKE2 exchange, both sides adding each
  other) against a real ``tessera serve`` of another data home, p50/p95 of --pairings; the
  invite is made in that store beforehand, as ``peer invite`` does while a serve runs.
- ``sync_100k_events_s``: the initial pull of --events (default 100 000) events shared by a
  real ``tessera serve``, into this process's replica (core/peers/sync_dial.pull_from), seconds;
- ``live_event_ms``: p50/p95 of --live single events appended on the publisher until each is
  in the replica of a subscriber running ``tessera serve --sync`` (polled every millisecond).

- ``replica_apply_100k_events_s``: building every signed page of an events share of --events
  (100k) events from cursor 0 (core/peers/pages.py), through the frame encoding, and filing each
  in a replica (core/peers/replica.apply: signature, one hash per event, page and cursor in one
  transaction; the replica prepared as sync.pull does, its one checkpoint counted), with no
  network; ``replica_apply_detail`` splits it into build, frames and apply. One process does
  both sides here, one after the other; over the network they overlap (sync.pull pipelines).

The other node is this file run with --serve in its own process (so the two ends do not share
a GIL or an event loop), with the same shim setting as the measuring side.

Usage: .venv/bin/python bench/peers.py [--mb 64] [--binds 20] [--connects 50] [--requests 2000] [--pairings 20]
       [--events 100000] [--live 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tessera.core import node_key

CHUNK = 1 << 20  # bytes per write / read call
REQUEST = 64
HEADER = struct.Struct(">cQ")  # op, byte count


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50": _ms(statistics.median(ordered)), "p95": _ms(ordered[int(len(ordered) * 0.95) - 1]),
            "n": len(ordered)}


def _set_shim(on: bool) -> None:
    from tessera.core.peers import iroh_shim
    from tessera.core.peers.transport import iroh

    if on:
        iroh_shim.apply(iroh.iroh_ffi)
    else:
        iroh_shim.restore(iroh.iroh_ffi)


async def _read_all(stream) -> int:
    total = 0
    while chunk := await stream.read(CHUNK):
        total += len(chunk)
    return total


async def _send(stream, size: int) -> None:
    block = bytes(CHUNK)
    left = size
    while left:
        part = block if left >= CHUNK else block[:left]
        await stream.write(part)
        left -= len(part)
    await stream.finish()


async def _handle(conn) -> None:
    from tessera.core.peers.transport import TransportError

    try:
        while True:
            stream = await conn.accept_stream()
            op, size = HEADER.unpack(await stream.read_exact(HEADER.size))
            if op == b"E":  # echo requests of `size` bytes until the client finishes
                while True:
                    request = await stream.read(size)
                    if not request:
                        break
                    request += await stream.read_exact(size - len(request))
                    await stream.write(request)
                await stream.finish()
            elif op == b"U":
                total = await _read_all(stream)
                await stream.write(struct.pack(">Q", total))
                await stream.finish()
            elif op == b"D":
                await _send(stream, size)
    except TransportError:
        return  # the client closed the connection


async def serve(store: Path, shim: bool) -> None:
    from tessera.core.peers.transport import Endpoint

    _set_shim(shim)
    endpoint = await Endpoint.bind(node_key.signing_key(store), loopback=True)
    print(endpoint.ticket(), flush=True)
    tasks = set()
    while (conn := await endpoint.accept()) is not None:
        task = asyncio.create_task(_handle(conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def _throughput(endpoint, ticket: str, size: int) -> dict:
    conn = await endpoint.connect(ticket)
    stream = await conn.open_stream()
    await stream.write(HEADER.pack(b"U", size))
    start = time.perf_counter()
    await _send(stream, size)
    (received,) = struct.unpack(">Q", await stream.read_exact(8))
    upload = time.perf_counter() - start
    assert received == size, (received, size)

    stream = await conn.open_stream()
    start = time.perf_counter()
    await stream.write(HEADER.pack(b"D", size))
    got = await _read_all(stream)
    download = time.perf_counter() - start
    assert got == size, (got, size)
    conn.close()
    mb = size / (1 << 20)
    return {"upload": round(mb / upload, 1), "download": round(mb / download, 1)}


def _start_server(store: Path, shim: bool) -> tuple[subprocess.Popen, str]:
    args = [sys.executable, __file__, "--serve", str(store)] + ([] if shim else ["--no-shim"])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    ticket = proc.stdout.readline().strip()
    if not ticket:
        raise SystemExit(f"the serving node did not start (exit {proc.wait()})")
    return proc, ticket


async def measure(args, home: Path) -> dict:
    from tessera.core.peers.transport import Endpoint

    key = node_key.signing_key(home / "client.db")
    binds = []
    for _ in range(args.binds):
        start = time.perf_counter()
        endpoint = await Endpoint.bind(key, loopback=True)
        binds.append(time.perf_counter() - start)
        await endpoint.close()

    result: dict = {"bind_ms": _percentiles(binds), "throughput_mb_s": {}, "mb": args.mb}
    for shim in (True, False):
        _set_shim(shim)
        proc, ticket = _start_server(home / "server.db", shim)
        try:
            async with await Endpoint.bind(key, loopback=True) as endpoint:
                if shim:
                    connects = []
                    for _ in range(args.connects):
                        start = time.perf_counter()
                        conn = await endpoint.connect(ticket)
                        connects.append(time.perf_counter() - start)
                        conn.close()
                    result["connect_ms"] = _percentiles(connects)

                    conn = await endpoint.connect(ticket)
                    stream = await conn.open_stream()
                    await stream.write(HEADER.pack(b"E", REQUEST))
                    request, rtts = bytes(REQUEST), []
                    for _ in range(args.requests):
                        start = time.perf_counter()
                        await stream.write(request)
                        await stream.read_exact(REQUEST)
                        rtts.append(time.perf_counter() - start)
                    await stream.finish()
                    conn.close()
                    result["request_response_ms"] = _percentiles(rtts)
                label = "with_shim" if shim else "without_shim"
                result["throughput_mb_s"][label] = await _throughput(endpoint, ticket, args.mb << 20)
        finally:
            proc.kill()
            proc.wait()
    _set_shim(True)
    return result


def _start_tessera_serve(home: Path, *args: str) -> tuple[subprocess.Popen, str]:
    import os

    env = {**os.environ, "TESSERA_HOME": str(home), "TESSERA_PEER_LOOPBACK": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "serve", *args], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        if '"listening"' in line:  # then keep reading its log, so a full pipe never blocks it
            import threading

            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, json.loads(line)["ticket"]
    raise SystemExit(f"tessera serve did not start (exit {proc.wait()})")


async def measure_pairing(count: int, home: Path) -> dict:
    from tessera.core.peers import channel, identity, node_endpoint, pairing_session, pins
    from tessera.core.store.db import connect

    inviter_home, joiner_home = home / "inviter", home / "joiner"
    proc, ticket = _start_tessera_serve(inviter_home)
    try:
        inviter = connect(inviter_home / "tessera.db")
        joiner = connect(joiner_home / "tessera.db")
        me = identity.local_identity(joiner)
        samples = []
        async with await node_endpoint.bind(joiner, listen=False) as endpoint:
            for _ in range(count):
                invite, pin = pins.create_invite(inviter)
                start = time.perf_counter()
                link = await channel.dial_for_pairing(endpoint, ticket)
                await pairing_session.join(joiner, link, pin=pin, invite_id=invite.id, local_id=me.node_id,
                                           local_name=me.name, inviter_ticket=ticket)
                await link.finish()
                samples.append(time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait()
    return _percentiles(samples)


async def _pair(joiner, endpoint, inviter, ticket: str) -> None:
    from tessera.core.peers import channel, identity, pairing_session, pins

    me = identity.local_identity(joiner)
    invite, pin = pins.create_invite(inviter)
    link = await channel.dial_for_pairing(endpoint, ticket)
    await pairing_session.join(joiner, link, pin=pin, invite_id=invite.id, local_id=me.node_id, local_name=me.name,
                               inviter_ticket=ticket)
    await link.finish()


async def measure_sync(event_count: int, live_count: int, home: Path) -> dict:
    import os

    from tessera.core import events
    from tessera.core.peers import node_endpoint, peer_list, replica_files, shares, sync_dial
    from tessera.core.store.db import connect, transaction
    from tessera.core.times import now

    publisher_home, subscriber_home = home / "publisher", home / "subscriber"
    publisher = connect(publisher_home / "tessera.db")
    for start in range(0, event_count, 10_000):
        events.append_many(publisher, [("bench.sync", {"n": n, "pad": "x" * 40})
                                       for n in range(start, min(event_count, start + 10_000))])
    with transaction(publisher):
        shares.add(publisher, "events:bench.>", [shares.EVERY_PEER], added_at=now())
    os.environ["TESSERA_PEER_LOOPBACK"] = "1"
    proc, ticket = _start_tessera_serve(publisher_home)
    subscriber = connect(subscriber_home / "tessera.db")
    try:
        async with await node_endpoint.bind(subscriber, listen=False) as endpoint:
            await _pair(subscriber, endpoint, publisher, ticket)
            peer = peer_list.get(subscriber, peer_list.all_peers(subscriber)[0].node_id)
            start = time.perf_counter()
            report = await sync_dial.pull_from(subscriber, endpoint, peer)
            initial = time.perf_counter() - start
            assert report.ok and report.items == event_count, (report.error, report.items)
        subscriber.close()
        follower, _ = _start_tessera_serve(subscriber_home, "--sync")
        try:
            replica = None
            while replica is None:
                replica = replica_files.open_read_only(peer.node_id, subscriber_home / "tessera.db")
            samples = []
            for n in range(live_count):
                start = time.perf_counter()
                appended = events.append(publisher, "bench.live", {"n": n})
                deadline = start + 60
                while replica.execute("SELECT 1 FROM events WHERE hash = ?", (appended.hash,)).fetchone() is None:
                    if time.perf_counter() > deadline:
                        raise SystemExit("a live event did not arrive within 60 s")
                    time.sleep(0.001)
                samples.append(time.perf_counter() - start)
        finally:
            follower.terminate()
            follower.wait()
    finally:
        proc.terminate()
        proc.wait()
    return {"sync_100k_events_s": round(initial, 2), "events": event_count, "live_event_ms": _percentiles(samples)}


def replica_apply(home: Path, count: int) -> dict:
    """Build and apply every page of ``count`` events (see the module docstring)."""
    from tessera.core import events
    from tessera.core.peers import frames, identity, pages, replica
    from tessera.core.store.db import connect

    sender = connect(home / "sender" / "tessera.db")
    key = node_key.signing_key(sender.path)
    node_id = identity.node_id_of(bytes(key.verify_key))
    for start in range(0, count, 10_000):
        events.append_many(sender, [("deploy.web", {"n": i, "host": "web-1", "ok": True})
                                    for i in range(start, min(count, start + 10_000))])
    target = replica.open_for_write(node_id, home / "receiver" / "tessera.db")
    replica.prepare_for_bulk(target)  # as sync.pull files pages
    times = {"build": 0.0, "frames": 0.0, "apply": 0.0}
    cursor, more, stored, pages_sent = 0, True, 0, 0
    cpu_start = time.process_time()  # beside the wall clock: the machine may be shared
    while more:
        t0 = time.perf_counter()
        page = pages.build(sender, "events:deploy.>", cursor, limit=pages.MAX_LIMIT, signing_key=key)
        t1 = time.perf_counter()
        page = frames.decode_body(frames.encode(page)[4:])
        t2 = time.perf_counter()
        stored += replica.apply(target, node_id, page)
        t3 = time.perf_counter()
        times["build"] += t1 - t0
        times["frames"] += t2 - t1
        times["apply"] += t3 - t2
        cursor, more, pages_sent = page["cursor_to"], page["more"], pages_sent + 1
    t0 = time.perf_counter()
    replica.end_bulk(target)  # the one checkpoint, counted with apply
    times["apply"] += time.perf_counter() - t0
    if stored != count:
        raise SystemExit(f"the replica holds {stored} events, not {count}")
    return {"replica_apply_100k_events_s": round(sum(times.values()), 3),
            "replica_apply_detail": {**{k: round(v, 3) for k, v in times.items()}, "events": count, "pages": pages_sent,
                                     "cpu_s": round(time.process_time() - cpu_start, 3)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--binds", type=int, default=20)
    parser.add_argument("--connects", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--pairings", type=int, default=20)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--live", type=int, default=50)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-shim", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, shim=not args.no_shim))
        return
    from tessera.core.peers import iroh_shim

    with tempfile.TemporaryDirectory() as home:
        result = asyncio.run(measure(args, Path(home)))
        result["pairing_ms"] = asyncio.run(measure_pairing(args.pairings, Path(home)))
        result.update(asyncio.run(measure_sync(args.events, args.live, Path(home))))
        result.update(replica_apply(Path(home), args.events))
    result.update({"iroh": iroh_shim.installed_version(), "python": platform.python_version(),
                   "cpus": __import__("os").cpu_count(), "transport": "loopback, relays off"})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
