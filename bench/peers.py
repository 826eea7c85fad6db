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

- ``replica_apply_100k_events_s``: building every signed page of an events share of --events
  (100k) events from cursor 0 (core/peers/pages.py), through the frame encoding, and filing each
  in a replica (core/peers/replica.apply: signature, one hash per event, page and cursor in one
  transaction), with no network; ``replica_apply_detail`` splits it into build, frames and apply.

The other node is this file run with --serve in its own process (so the two ends do not share
a GIL or an event loop), with the same shim setting as the measuring side.

Usage: .venv/bin/python bench/peers.py [--mb 64] [--binds 20] [--connects 50] [--requests 2000] [--events 100000]
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
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-shim", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, shim=not args.no_shim))
        return
    from tessera.core.peers import iroh_shim

    with tempfile.TemporaryDirectory() as home:
        result = asyncio.run(measure(args, Path(home)))
        result.update(replica_apply(Path(home), args.events))
    result.update({"iroh": iroh_shim.installed_version(), "python": platform.python_version(),
                   "cpus": __import__("os").cpu_count(), "transport": "loopback, relays off"})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
