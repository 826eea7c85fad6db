"""Benchmark: ``=~`` on a pattern that is exponential for a backtracking engine. Prints one JSON object.

``"^(a+)+$"`` against 32 ``a`` and a ``!``: Python's ``re`` tries every way of splitting the a's
(2^32) and does not return; RE2 is linear in the text. Measured:

- ``query_ms``: the query ``WHERE p.metadata.name =~ "^(a+)+$"`` over one such pod, through
  the engine, the first ``=~`` of the process (so importing RE2 and compiling the pattern count),
  after a warm-up query without ``=~`` has loaded the engine (target: under 100 ms);
- ``warm_us_p50`` / ``warm_us_max``: one ``search`` call once compiled, over ``--runs`` runs;
- ``long_text_ms``: the same pattern over ``--long`` characters of a's and a ``!`` (linear time).

Usage: .venv/bin/python bench/regex.py [--runs 1000] [--long 1000000]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

PATTERN = "^(a+)+$"
SUBJECT = "a" * 32 + "!"
TARGET_MS = 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="warm search calls timed")
    parser.add_argument("--long", type=int, default=1_000_000, help="length of the long subject")
    args = parser.parse_args()

    from tessera.core import api
    from tessera.core.builtin_kinds import BUILTIN_KINDS

    class OnePod:
        name = "bench"
        writable = False

        def kinds(self):
            return list(BUILTIN_KINDS)

        def list(self, kind, **_):
            return [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": SUBJECT, "namespace": "a"}}]

    api.run_query('MATCH (p:Pod) WHERE p.metadata.name = "x" RETURN count(p) AS n', [OnePod()])
    query = f'MATCH (p:Pod) WHERE p.metadata.name =~ "{PATTERN}" RETURN count(p) AS n'
    t = time.perf_counter()
    rows = api.run_query(query, [OnePod()]).rows
    query_ms = (time.perf_counter() - t) * 1000
    assert rows == [{"n": 0}], rows

    from tessera.core.query.regex import search

    warm = []
    for _ in range(args.runs):
        t = time.perf_counter()
        search(PATTERN, SUBJECT)
        warm.append((time.perf_counter() - t) * 1e6)
    warm.sort()

    long_subject = "a" * args.long + "!"
    t = time.perf_counter()
    search(PATTERN, long_subject)
    long_ms = (time.perf_counter() - t) * 1000

    print(json.dumps({
        "bench": "regex",
        "pattern": PATTERN,
        "subject": f"{len(SUBJECT) - 1} a + !",
        "query_ms": round(query_ms, 2),
        "target_ms": TARGET_MS,
        "met": query_ms < TARGET_MS,
        "warm_us_p50": round(warm[len(warm) // 2], 2),
        "warm_us_max": round(warm[-1], 2),
        "long_text_chars": args.long + 1,
        "long_text_ms": round(long_ms, 2),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
