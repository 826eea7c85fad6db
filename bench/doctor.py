"""Benchmark: ``tessera doctor`` on a machine where nothing answers. Prints one JSON object on stdout.

A loopback TCP server that accepts and never answers stands for hung kube API servers and NATS
servers; the kubeconfig has --contexts contexts pointing at it and doctor is given --servers
``--nats`` URLs at it, with ``--timeout``. Every network check then waits its whole timeout, so
run one after another doctor would take (contexts + servers) x timeout; run at once it takes
about one timeout plus start-up, the imports of the kubernetes client and nats-py (CPU-bound,
so one after the other under the GIL) and the local checks. Reported: the wall time of each run
(median, max), the timeout, and the wall time over the timeout. Target: median under
timeout + 3 s on a 2-core machine.

Usage: .venv/bin/python bench/doctor.py [--runs 3] [--timeout 3] [--contexts 4] [--servers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def blackhole() -> tuple[int, threading.Event]:
    """A server that accepts and never answers; (port, stop)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    stop = threading.Event()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)

    def run() -> None:
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.1):
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    selector.register(conn, selectors.EVENT_READ)
                elif not key.fileobj.recv(65536):
                    selector.unregister(key.fileobj)
                    key.fileobj.close()

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1], stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3.0, help="doctor's --timeout, seconds")
    parser.add_argument("--contexts", type=int, default=4, help="kube contexts that never answer")
    parser.add_argument("--servers", type=int, default=4, help="NATS servers that never answer")
    args = parser.parse_args()
    tessera = REPO / ".venv" / "bin" / "tessera"
    if not tessera.exists():
        print(f"bench/doctor.py: no {tessera} (run make setup)", file=sys.stderr)
        return 2
    port, stop = blackhole()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TESSERA_HOME": f"{tmp}/home", "TESSERA_CONFIG_DIR": f"{tmp}/config",
               "KUBECONFIG": f"{tmp}/kubeconfig"}
        contexts = "".join(f"- name: hang{i}\n  context: {{cluster: c{i}, user: u}}\n" for i in range(args.contexts))
        clusters = "".join(f"- name: c{i}\n  cluster: {{server: 'http://127.0.0.1:{port}'}}\n" for i in range(args.contexts))
        Path(env["KUBECONFIG"]).write_text(f"apiVersion: v1\ncurrent-context: hang0\nclusters:\n{clusters}"
                                           f"users:\n- name: u\n  user: {{token: t}}\ncontexts:\n{contexts}")
        os.chmod(env["KUBECONFIG"], 0o600)
        subprocess.run([str(tessera), "events", "publish", "bench.doctor", "{}"], env=env, check=True,
                       capture_output=True)
        nats = [arg for i in range(args.servers) for arg in ("--nats", f"nats://127.0.0.1:{port}/{i}")]
        walls = []
        rows = 0
        for _ in range(args.runs):
            started = time.monotonic()
            done = subprocess.run([str(tessera), "doctor", "-o", "json", "--timeout", f"{args.timeout:g}s", *nats],
                                  env=env, capture_output=True, text=True)
            walls.append(time.monotonic() - started)
            rows = len(json.loads(done.stdout))
    stop.set()
    median = statistics.median(walls)
    print(json.dumps({
        "bench": "doctor", "python": platform.python_version(), "cpus": os.cpu_count(),
        "timeout_s": args.timeout, "contexts": args.contexts, "nats_servers": args.servers, "rows": rows,
        "runs": args.runs, "wall_median_s": round(median, 2), "wall_max_s": round(max(walls), 2),
        "over_timeout_s": round(median - args.timeout, 2),
        "one_after_another_s": (args.contexts + args.servers) * args.timeout,
        "met": median < args.timeout + 3,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
