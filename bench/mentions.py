"""Mentions and the one graph over the KEP corpus: how fast chunks' mentions are extracted, how long
``-s knowledge`` takes to list, and the issue's query across the knowledge and the demo cluster.

    python bench/mentions.py                       # ../shared/corpus/kubernetes-keps
    python bench/mentions.py --corpus DIR --runs 5 --home DIR   # DIR keeps the ingested store

One JSON object on stdout (progress on stderr); exit 2 with one line when the corpus is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ISSUE_QUERY = ('MATCH (c:Chunk)-[:MENTIONS]->(d:Deployment)->(:ReplicaSet)->(p:Pod) WHERE p.status.phase != "Running"'
               ' RETURN c.path, d.metadata.name')
SEARCH_QUERY = ('MATCH (c:Chunk)-[:MENTIONS]->(d:Deployment) WHERE search("rollout") > 0'
                ' RETURN c.path, d.metadata.name, search("rollout") AS s ORDER BY s DESC')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(os.environ.get("TESSERA_SHARED", REPO.parent / "shared"))
    parser.add_argument("--corpus", type=Path, default=shared / "corpus" / "kubernetes-keps")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--home", type=Path, help="a data home to ingest into (kept); default a temporary one")
    args = parser.parse_args()
    keps = args.corpus / "keps"
    if not keps.is_dir():
        print(f"bench/mentions.py: KEP corpus absent: {keps} not found", file=sys.stderr)
        return 2
    out: dict = {"corpus": str(args.corpus)}
    out["extract"] = extraction(keps)
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        env = {**os.environ, "TESSERA_HOME": str(home), "TESSERA_CONFIG_DIR": str(Path(tmp) / "config")}
        print("ingesting the corpus ...", file=sys.stderr)
        started = time.perf_counter()
        ingest = tessera(["ingest", str(keps)], env)
        out["ingest_seconds"] = round(time.perf_counter() - started, 2)
        if ingest.returncode != 0:
            out["ingest_error"] = ingest.stderr.strip()
            print(json.dumps(out))
            return 0
        out["chunks"] = int(json.loads(tessera(["query", "-s", "knowledge", "-o", "jsonl",
                                                "MATCH (c:Chunk) RETURN count(c) AS n"], env).stdout)["n"])
        out["chunks_naming_a_deployment"] = len(tessera(
            ["query", "-s", "knowledge", "-o", "jsonl",
             "MATCH (c:Chunk) WHERE c.mentioned.Deployment IS NOT NULL RETURN c.metadata.name"], env).stdout.splitlines())
        out["list_chunks"] = timed(["query", "-s", "knowledge", "-o", "jsonl", "MATCH (c:Chunk) RETURN count(c)"],
                                   env, args.runs)
        out["issue_query_with_demo"] = timed(["query", "-s", "knowledge", "-s", "demo", "-o", "jsonl", ISSUE_QUERY],
                                             env, args.runs)
        out["search_and_mentions_with_demo"] = timed(["query", "-s", "knowledge", "-s", "demo", "-o", "jsonl",
                                                      SEARCH_QUERY], env, args.runs)
    print(json.dumps(out))
    return 0


def extraction(keps: Path) -> dict:
    """mentions.extract over every markdown file's text, in-process."""
    from tessera.core.knowledge.mentions import extract

    texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(keps.rglob("*.md"))]
    size = sum(len(t.encode()) for t in texts)
    started = time.perf_counter()
    found = sum(len(extract(t)) for t in texts)
    seconds = time.perf_counter() - started
    return {"files": len(texts), "megabytes": round(size / 1e6, 2), "seconds": round(seconds, 2),
            "megabytes_per_second": round(size / 1e6 / seconds, 2), "mentions": found}


def tessera(args: list[str], env: dict) -> subprocess.CompletedProcess:
    exe = REPO / ".venv" / "bin" / "tessera"
    return subprocess.run([str(exe) if exe.exists() else "tessera", *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=1800)


def timed(args: list[str], env: dict, runs: int) -> dict:
    """Wall seconds of a whole ``tessera`` process (start-up included), median and max of ``runs``."""
    seconds, rows, error = [], 0, None
    for _ in range(runs):
        started = time.perf_counter()
        r = tessera(args, env)
        seconds.append(time.perf_counter() - started)
        rows = len(r.stdout.splitlines())
        if r.returncode != 0:
            error = r.stderr.strip()
    result = {"median_seconds": round(statistics.median(seconds), 3), "max_seconds": round(max(seconds), 3),
              "rows": rows}
    if error:
        result["error"] = error
    return result


if __name__ == "__main__":
    sys.exit(main())
