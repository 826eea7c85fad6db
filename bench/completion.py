"""Benchmark: shell tab completion. Prints one JSON object on stdout.

Each Tab runs the program once (completions/ scripts), so its cost is the start-up of
``tessera`` plus the values: for each kind of request (a subcommand, -o formats, --context and
-n from a kubeconfig of 50 contexts, notebook names and NB/N cells from a store of 20 notebooks
of 8 cells), the median and max wall time of N runs, as bash's script makes them. Target: median
under 0.25 s on a 2-core machine.

Usage: .venv/bin/python bench/completion.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINES = {
    "subcommand": "tsr no",
    "output_formats": "tsr query -o ",
    "contexts": "tsr query --context ",
    "namespaces": "tsr query -n ",
    "notebooks": "tsr dash ",
    "cells": "tsr pane nb07/",
    "all_cells": "tsr pane ",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per request")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TESSERA_HOME": f"{tmp}/home", "TESSERA_CONFIG_DIR": f"{tmp}/config",
               "KUBECONFIG": f"{tmp}/kubeconfig"}
        contexts = "".join(f"- name: ctx{i:02}\n  context: {{cluster: c{i}, user: u, namespace: ns{i % 10}}}\n"
                           for i in range(50))
        Path(env["KUBECONFIG"]).write_text(f"apiVersion: v1\ncurrent-context: ctx00\ncontexts:\n{contexts}")
        os.environ.update({k: env[k] for k in ("TESSERA_HOME", "TESSERA_CONFIG_DIR")})
        from tessera.core.notebook import repository
        from tessera.core.store.db import connect

        conn = connect()
        for n in range(20):
            repository.create(conn, f"nb{n:02}")
            for c in range(8):
                repository.add_cell(conn, f"nb{n:02}", f"MATCH (p:Pod) RETURN p.metadata.name AS n{c}", type="query",
                               view="table", refresh="manual", sources=[], title=f"cell {c}")
        conn.close()

        results = {}
        for name, line in LINES.items():
            run_env = {**env, "_TESSERA_COMPLETE": "complete_bash", "_TESSERA_COMP_LINE": line,
                       "_TESSERA_COMP_WORDBREAKS": "\"'><=;|&(:"}
            times, values = [], 0
            for _ in range(args.runs):
                start = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "tessera.cli.main"], env=run_env, capture_output=True,
                                      text=True, check=True)
                times.append(time.perf_counter() - start)
                values = len(proc.stdout.split())
            results[name] = {"line": line, "values": values, "median_s": round(statistics.median(times), 4),
                             "max_s": round(max(times), 4)}
    print(json.dumps({"bench": "completion", "runs": args.runs, "cpus": os.cpu_count(),
                      "python": platform.python_version(), "requests": results,
                      "met": all(r["median_s"] < 0.25 for r in results.values())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
