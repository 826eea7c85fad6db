"""Benchmark: ``tessera pane NB/N`` start-up on a pty. Prints one JSON object on stdout.

For two cells — ``demo/2`` (the demo notebook's Deployments cell over replay:demo) and ``ops/1``
(the same query over -s demo) — spawns ``tessera pane`` on a 100x30 pseudo-terminal N times and
times, from the spawn, the first frame (the status line naming the cell) and the first rows
(``payments-api`` on screen). Median and min of N runs; target: first paint under 0.6 s (the
best of the runs, on a 2-core machine). tests/test_pane.py checks only the order (status line
no later than the rows).

Usage: .venv/bin/python bench/pane.py [--runs 5]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("tessera")
TSR = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tessera.cli.main"]
CELLS = {"demo/2": b"Deployments", "ops/1": b"Deployments"}


def first_paint(address: str, marker: bytes, rows: bytes, timeout: float = 60.0) -> tuple[float, float]:
    """Seconds from spawning ``tessera pane ADDRESS`` until ``marker`` and until ``rows`` appear."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    start = time.monotonic()
    proc = subprocess.Popen([*TSR, "pane", address], stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out, first, result = b"", None, None
    try:
        while time.monotonic() - start < timeout and result is None:
            if select.select([master], [], [], 0.01)[0]:
                out += os.read(master, 65536)
            now = time.monotonic() - start
            if first is None and marker in out:
                first = now
            if rows in out:
                result = now
        os.write(master, b"q")
        proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    if first is None or result is None:
        raise SystemExit(f"bench/pane.py: {address} showed no rows in {timeout:.0f} s: {out[-500:]!r}")
    return first, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per cell")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update({"TESSERA_HOME": f"{tmp}/home", "TESSERA_CONFIG_DIR": f"{tmp}/config"})

        def tsr(*argv: str) -> None:
            subprocess.run([*TSR, *argv], check=True, capture_output=True, stdin=subprocess.DEVNULL)

        tsr("notebook", "import", str(REPO / "plugins" / "sources" / "demo_data" / "dashboard.md"), "--name", "demo")
        tsr("notebook", "new", "ops")
        tsr("cell", "add", "ops", "-s", "demo", "--refresh", "watch", "--title", "Deployments",
            "MATCH (d:Deployment) RETURN d.metadata.name AS name, d.spec.replicas AS want")
        results = {}
        for address, marker in CELLS.items():
            runs = [first_paint(address, marker, b"payments-api") for _ in range(args.runs)]
            paint, rows = [r[0] for r in runs], [r[1] for r in runs]
            results[address] = {"first_paint_median_s": round(statistics.median(paint), 3),
                                "first_paint_min_s": round(min(paint), 3),
                                "first_rows_median_s": round(statistics.median(rows), 3),
                                "first_rows_min_s": round(min(rows), 3)}
    print(json.dumps({"bench": "pane", "runs": args.runs, "cpus": os.cpu_count(), "python": platform.python_version(),
                      "cells": results, "met": all(r["first_paint_min_s"] < 0.6 for r in results.values())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
