"""Benchmark: the event log. Prints one JSON object on stdout.

- appends per second, one event per transaction (target 5,000/s) and in batches of 1,000
  (target 20,000/s), through core.events into a fresh store;
- the same two figures for bare sqlite3 (``bare_*``), measured in the same run: plain
  ``sqlite3`` inserts into a table with the store's own ``events`` columns and indexes (their
  SQL copied from the tessera store just written), the same synchronous/journal settings, the
  same canonical JSON and SHA-256 chaining, ids from ``os.urandom`` and the time from
  ``time.time()``; no subject check, no signed head, no Python objects returned. ``ratio_*`` is
  tessera's figure over bare's (target: at least 0.5);
- p95 latency from an append (in this process) to a running ``tessera events tail -f``
  (a separate process) printing it (target 100 ms).

Usage: .venv/bin/python bench/events.py [--single 20000] [--batched 200000] [--latency 300]
"""

from __future__ import annotations

import argparse
import hashlib
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


def bare_appends(path: Path, schema: list[str], single: int, batched: int, payload: dict) -> tuple[float, float]:
    """Appends per second (one per transaction, then batches of 1,000) with bare sqlite3: the
    least any chained log of these rows costs here."""
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    for sql in schema:
        conn.execute(sql)
    seq, prev = 0, "0" * 64
    actor, corr = os.urandom(16).hex(), os.urandom(16).hex()
    insert = ("INSERT INTO events(seq, id, time, subject, type, actor, correlation, data, prev_hash, hash)"
              " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

    def row(subject: str, data: dict) -> tuple:
        nonlocal seq, prev
        seq += 1
        eid, now = os.urandom(16).hex(), time.time()
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        data_json = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        body = json.dumps([seq, eid, when, subject, "event", actor, corr, data_json], separators=(",", ":"),
                          ensure_ascii=False)
        h = hashlib.sha256((prev + body).encode("utf-8")).hexdigest()
        out = (seq, eid, when, subject, "event", actor, corr, data_json, prev, h)
        prev = h
        return out

    t = time.perf_counter()
    for i in range(single):
        conn.execute(insert, row("bench.single", {**payload, "i": i}))  # autocommit: one transaction each
    one = single / (time.perf_counter() - t)
    t = time.perf_counter()
    for start in range(0, batched, 1000):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, [row("bench.batch", {**payload, "i": i}) for i in range(start, start + 1000)])
        conn.execute("COMMIT")
    many = batched / (time.perf_counter() - t)
    conn.close()
    return one, many


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
        schema = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL"
                                              " ORDER BY type DESC, name")]  # the table first, then its indexes
        conn.close()
        bare_single, bare_batched = bare_appends(Path(home) / "bare.db", schema, args.single, args.batched, payload)

    result = {
        "bench": "events",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "appends_per_s_single": round(single),
        "appends_per_s_batched": round(batched),
        "bare_appends_per_s_single": round(bare_single),
        "bare_appends_per_s_batched": round(bare_batched),
        "ratio_single": round(single / bare_single, 2),
        "ratio_batched": round(batched / bare_batched, 2),
        "targets": {"single": 5000, "batched": 20000, "ratio_to_bare": 0.5, "tail_latency_p95_ms": 100},
        "tail_latency_ms": {"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1),
                            "max": round(max(latencies), 1), "seen": len(latencies), "sent": len(sent)},
        "chain_verified": ok,
        "events_total": args.single + args.batched + args.latency,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
