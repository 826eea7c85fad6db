"""bench/nats.py runs end to end with small figures (run as a script, so its own file name,
nats.py, must not hide the nats-py package) and reports every figure it promises. No timing is
asserted: the figures are the bench's output, not a test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_small_run_reports_every_figure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TESSERA_HOME"}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "nats.py"), "--events", "2000", "--latency", "10"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    push = result["push"]
    assert push["in_process"]["events"] == 2000 and push["in_process"]["events_per_s"] > 0
    assert push["cli"]["exit"] == 0 and "pushed 2000 events" in push["cli"]["summary"]
    assert push["stream_messages"] == 2000 and push["target_events_per_s"] == 8000
    latency = result["latency_ms"]
    assert "error" not in latency, latency
    assert latency["seen"] == latency["sent"] == 10
    assert latency["p50"] <= latency["p95"] <= latency["max"]
    assert latency["exits_after_sigterm"] == [0, 0]
