"""Benchmark: the event log. Prints one JSON object on stdout.

- appends per second, one event per transaction (target 5,000/s) and in batches of 1,000
  (target 20,000/s), through core.events into a fresh store;
- the same two figures for bare sqlite3 (``bare_*``), measured in the same run: plain
  ``sqlite3`` inserts into a table with the store's own ``events`` columns and indexes (their
  SQL copied from the tessera store just written), the same synchronous/journal settings, the
  same canonical JSON (encoders made once) and SHA-256 chaining, ids from ``os.urandom`` and
  the time from ``time.time()``; no subject check, no signed head, no Python objects returned. ``ratio_*`` is
  tessera's figure over bare's (target: at least 0.5);
- p95 latency from an append (in this process) to a running ``tessera events tail -f``
  (a separate process) printing it (target 100 ms).

Usage: .venv/bin/python bench/events.py [--single 20000] [--batched 200000] [--latency 300] [--rounds 10]
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


class TesseraLog:
    """Appends through core.events (per-actor chain, the head signed once per call)."""

    def __init__(self, conn) -> None:
        from tessera.core import events

        self.conn, self.events = conn, events

    def append(self, subject: str, data: dict) -> None:
        self.events.append(self.conn, subject, data)

    def append_many(self, entries: list[tuple[str, dict]]) -> None:
        self.events.append_many(self.conn, entries)


class BareLog:
    """The same chained rows written with bare sqlite3: the least any such log costs here."""

    def __init__(self, path: Path, schema: list[str]) -> None:
        import sqlite3

        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        for sql in schema:
            self.conn.execute(sql)
        self.seq, self.prev = 0, "0" * 64
        self.actor, self.corr = os.urandom(16).hex(), os.urandom(16).hex()

    _INSERT = ("INSERT INTO events(seq, id, time, subject, type, actor, correlation, data, prev_hash, hash)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

    # encoders made once, and the text of the current second kept: what careful hand-written code does
    _canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
    _body = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    _second = (-1, "")

    def row(self, subject: str, data: dict) -> tuple:
        self.seq += 1
        eid, now = os.urandom(16).hex(), time.time()
        whole = int(now)
        if self._second[0] != whole:
            self._second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole)))
        when = f"{self._second[1]}{int((now - whole) * 1000):03d}Z"
        data_json = self._canonical(data)
        body = self._body([self.seq, eid, when, subject, "event", self.actor, self.corr, data_json])
        h = hashlib.sha256((self.prev + body).encode("utf-8")).hexdigest()
        out = (self.seq, eid, when, subject, "event", self.actor, self.corr, data_json, self.prev, h)
        self.prev = h
        return out

    def append(self, subject: str, data: dict) -> None:
        self.conn.execute(self._INSERT, self.row(subject, data))  # autocommit: one transaction

    def append_many(self, entries: list[tuple[str, dict]]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(self._INSERT, [self.row(subject, data) for subject, data in entries])
        self.conn.execute("COMMIT")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=20000, help="events appended one at a time")
    parser.add_argument("--batched", type=int, default=200000, help="events appended in batches of 1000")
    parser.add_argument("--latency", type=int, default=300, help="events timed through tail -f")
    parser.add_argument("--rounds", type=int, default=10,
                        help="tessera and bare take turns this many times, so a busy machine slows both alike")
    args = parser.parse_args()

    from tessera.core import events
    from tessera.core.store.db import connect

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TESSERA_HOME": home}
        os.environ["TESSERA_HOME"] = home
        conn = connect()
        schema = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL"
                                              " ORDER BY type DESC, name")]  # the store's own table, then its indexes
        bare = BareLog(Path(home) / "bare.db", schema)
        payload = {"image": "ghcr.io/acme/web:1.2.3", "replicas": 3, "namespace": "shop"}
        spent = {"single": 0.0, "batched": 0.0, "bare_single": 0.0, "bare_batched": 0.0}

        tessera = TesseraLog(conn)

        def one_at_a_time(log, start: int, stop: int) -> None:
            for i in range(start, stop):
                log.append("bench.single", {**payload, "i": i})

        def in_batches(log, start: int, stop: int) -> None:
            for first in range(start, stop, 1000):
                log.append_many([("bench.batch", {**payload, "i": i}) for i in range(first, min(first + 1000, stop))])

        for mode, total, run in (("single", args.single, one_at_a_time), ("batched", args.batched, in_batches)):
            step = -(-total // args.rounds)
            for r, start in enumerate(range(0, total, step)):
                stop = min(start + step, total)
                turns = [(mode, tessera), ("bare_" + mode, bare)]
                for name, log in (turns if r % 2 == 0 else turns[::-1]):
                    t = time.perf_counter()
                    run(log, start, stop)
                    spent[name] += time.perf_counter() - t
        single, batched = args.single / spent["single"], args.batched / spent["batched"]
        bare_single, bare_batched = args.single / spent["bare_single"], args.batched / spent["bare_batched"]
        bare.conn.close()

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
