"""Benchmark: the event log. Prints one JSON object on stdout.

- appends per second, one event per transaction (target 5,000/s) and in batches of 1,000
  (target 20,000/s), through core.events into a fresh store;
- p95 latency from an append (in this process) to a running ``tessera events tail -f``
  (a separate process) printing it (target 100 ms).

Usage: .venv/bin/python bench/events.py [--single 20000] [--batched 200000] [--latency 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=20000, help="events appended one at a time")
    parser.add_argument("--batched", type=int, default=200000, help="events appended in batches of 1000")
    parser.add_argument("--latency", type=int, default=300, help="events timed through tail -f")
    args = parser.parse_args()

    from tessera.core import events
    from tessera.core.store.db import connect

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TESSERA_HOME": home}
        os.environ["TESSERA_HOME"] = home
        conn = connect()
        payload = {"image": "ghcr.io/acme/web:1.2.3", "replicas": 3, "namespace": "shop"}

        t = time.perf_counter()
        for i in range(args.single):
            events.append(conn, "bench.single", {**payload, "i": i})
        single = args.single / (time.perf_counter() - t)

        t = time.perf_counter()
        for start in range(0, args.batched, 1000):
            events.append_many(conn, [("bench.batch", {**payload, "i": i}) for i in range(start, start + 1000)])
        batched = args.batched / (time.perf_counter() - t)

        tail = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "events", "tail", "-f", "bench.latency.>"],
                                stdout=subprocess.PIPE, env=env, bufsize=0)
        seen: dict[int, float] = {}

        def read() -> None:
            for line in tail.stdout:
                seen[json.loads(line)["data"]["n"]] = time.perf_counter()

        threading.Thread(target=read, daemon=True).start()
        time.sleep(1.5)  # the tail process starts and reads the backlog (none matches)
        sent: dict[int, float] = {}
        try:
            for n in range(args.latency):
                sent[n] = time.perf_counter()
                events.append(conn, f"bench.latency.{n % 7}", {"n": n})
                time.sleep(0.02)
            deadline = time.time() + 10
            while len(seen) < args.latency and time.time() < deadline:
                time.sleep(0.05)
        finally:
            tail.terminate()
            tail.wait(10)
        latencies = [(seen[n] - sent[n]) * 1000 for n in sent if n in seen]
        ok = events.verify(conn).ok

    result = {
        "bench": "events",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "appends_per_s_single": round(single),
        "appends_per_s_batched": round(batched),
        "targets": {"single": 5000, "batched": 20000, "tail_latency_p95_ms": 100},
        "tail_latency_ms": {"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1),
                            "max": round(max(latencies), 1), "seen": len(latencies), "sent": len(sent)},
        "chain_verified": ok,
        "events_total": args.single + args.batched + args.latency,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
