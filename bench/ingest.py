"""Benchmark: knowledge ingest and search over the Kubernetes Enhancement Proposals corpus.
Prints one JSON object on stdout; progress on stderr.

In a throwaway data home (TESSERA_HOME) and over a throwaway copy of the corpus (the watch
figure edits files, and the shared corpus must stay as it is):

- ``full_ingest``: ``tessera ingest COPY`` as a subprocess, wall time, files/s and MB/s;
- ``reingest_unchanged``: the same command again with nothing changed, its time, and whether it
  wrote nothing (no row added to the change log, no document's ingested_at moved), then
  ``ingest_paths`` in this process for its summary;
- ``watch_to_searchable_ms``: a ``tessera ingest --watch COPY`` subprocess; a unique word is
  appended to a KEP's README and the store is polled (FTS5 MATCH on a read-only connection)
  until the word is found, ``--watch-samples`` times (target p95 <= 200 ms);
- ``search_ms``: ``search()`` in this process, per mode (bm25, semantic, hybrid), over the 30
  paraphrases of bench/paraphrases.json, ``--rounds`` times each (target p95 <= 20 ms), beside
  ``rg_ms``: ``rg -l -i -w`` for the same words in the same run;
- ``index``: the store file (WAL checkpointed) over the bytes of the files ingested;
- ``paraphrase_top5`` / ``title_top5``: the share of the 30 queries whose target KEP has a
  document among the first 5 distinct documents returned, per mode; ``ranks`` per query.

Usage: .venv/bin/python bench/ingest.py [--corpus DIR] [--watch-samples 25] [--rounds 5]
       [--busy N] [--tessera PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARAPHRASES = REPO / "bench" / "paraphrases.json"
MODES = ("bm25", "semantic", "hybrid")
WATCH_TARGET_P95_MS = 200
SEARCH_TARGET_P95_MS = 20
TOP = 5
# Words dropped from a query before it is handed to rg (rg has no ranking, so "the" would list every file).
STOP_WORDS = frozenset(
    "a an and are as at be been but by can do does for from has have how i in into is it its my of on once or "
    "our should so such than that the their them then there these they this to until up was we were what when "
    "where which while who will with without would you your".split())


def log(message: str) -> None:
    print(f"bench/ingest: {message}", file=sys.stderr, flush=True)


def percentiles(xs: list[float]) -> dict:
    """p50/p95/max of xs (milliseconds, rounded), nearest-rank; None when there are none."""
    if not xs:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    s = sorted(xs)

    def at(p: float) -> float:
        return round(s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))], 2)

    return {"n": len(s), "p50": at(50), "p95": at(95), "max": round(s[-1], 2)}


def default_corpus() -> Path:
    shared = Path(os.environ.get("TESSERA_SHARED", REPO.parent / "shared"))
    return shared / "corpus" / "kubernetes-keps"


def find_tessera(given: str | None) -> str:
    for candidate in (given, REPO / ".venv" / "bin" / "tessera", shutil.which("tessera")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    print("bench/ingest: tessera not found: pass --tessera PATH, or run make setup", file=sys.stderr)
    raise SystemExit(2)


def git_head() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_tessera(tessera: str, args: list[str], env: dict, timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([tessera, *args], env=env, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - start, proc


def failure(proc: subprocess.CompletedProcess) -> str:
    last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or [""])[-1]
    return f"exit {proc.returncode}: {last[:300]}"


def last_json(text: str) -> dict | None:
    """The last line of ``text`` that is a JSON object (an ingest summary printed in a pipe), else None."""
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def corpus_files(root: Path) -> tuple[int, int]:
    files = size = 0
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            files += 1
            size += path.stat().st_size
    return files, size


def store_state(db: Path) -> dict:
    """What the store holds, read with a read-only connection."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731 - a local shorthand
        return {"documents": one("SELECT count(*) FROM knowledge_documents"),
                "chunks": one("SELECT count(*) FROM knowledge_chunks"),
                "bytes_ingested": one("SELECT coalesce(sum(size), 0) FROM knowledge_documents"),
                "last_change": one("SELECT coalesce(max(id), 0) FROM knowledge_changes"),
                "last_ingested_at": one("SELECT max(ingested_at) FROM knowledge_documents"),
                "kinds": dict(conn.execute("SELECT kind, count(*) FROM knowledge_documents GROUP BY kind"))}
    finally:
        conn.close()


def index_size(db: Path, bytes_ingested: int) -> dict:
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        by_table: dict[str, int] = {}
        try:
            for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                group = "knowledge_fts" if name.startswith("knowledge_fts") else name
                if group.startswith("knowledge") or group.startswith("sqlite_autoindex_knowledge"):
                    by_table[group] = by_table.get(group, 0) + size
        except sqlite3.OperationalError:  # SQLite built without dbstat
            by_table = {}
        embeddings = conn.execute("SELECT coalesce(sum(length(embedding)), 0) FROM knowledge_chunks").fetchone()[0]
        text = conn.execute("SELECT coalesce(sum(length(CAST(text AS BLOB))), 0) FROM knowledge_chunks").fetchone()[0]
    finally:
        conn.close()
    store = db.stat().st_size
    wal = db.with_name(db.name + "-wal")
    knowledge = sum(by_table.values()) or None
    return {"store_bytes": store, "wal_bytes_after_checkpoint": wal.stat().st_size if wal.exists() else 0,
            "corpus_bytes_ingested": bytes_ingested,
            "ratio": round(store / bytes_ingested, 3) if bytes_ingested else None,
            "knowledge_bytes": knowledge,
            "knowledge_ratio": round(knowledge / bytes_ingested, 3) if knowledge and bytes_ingested else None,
            "embedding_bytes": embeddings, "chunk_text_bytes": text,
            "by_table_bytes": dict(sorted(by_table.items(), key=lambda kv: -kv[1]))}


# --- watch: a saved file until it is searchable ---------------------------------------------------

def watch_latency(tessera: str, env: dict, copy: Path, db: Path, samples: int, deadline_s: float = 60.0,
                  start_s: float = 180.0) -> dict:
    readmes = sorted(copy.rglob("README.md"))
    if not readmes:
        return {"error": "no README.md in the corpus to edit"}
    # evenly spaced over the sorted list, so the edited files are of every size
    step = max(1, len(readmes) // (samples + 1))
    targets = [readmes[(i * step) % len(readmes)] for i in range(samples + 1)]
    stderr_path = copy.parent / "watch.stderr"  # a file, not a pipe: one line per batch must never block it
    stderr = stderr_path.open("w")
    proc = subprocess.Popen([tessera, "ingest", "--watch", str(copy)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=stderr)
    ro: list[sqlite3.Connection] = []

    def save_and_wait(target: Path, limit: float) -> float | None:
        """Append a unique word to ``target``; milliseconds until the store has it, None after ``limit`` s."""
        word = f"tesserawatch{secrets.token_hex(6)}"
        with target.open("a", encoding="utf-8") as f:
            f.write(f"\n\nA note added by the benchmark: {word}.\n")
        saved = time.perf_counter()
        while time.perf_counter() - saved < limit:
            if proc.poll() is not None:
                last = (stderr_path.read_text().strip().splitlines() or [""])[-1]
                raise RuntimeError(f"tessera ingest --watch exited {proc.returncode}: {last[:300]}")
            if not ro and db.exists():
                ro.append(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5))
            if ro:
                try:
                    if ro[0].execute("SELECT 1 FROM knowledge_fts WHERE knowledge_fts MATCH ? LIMIT 1",
                                     (f'"{word}"',)).fetchone():
                        return (time.perf_counter() - saved) * 1000
                except sqlite3.OperationalError:  # tables not created yet, or a busy moment
                    pass
            time.sleep(0.002)
        return None

    latencies: list[float] = []
    sizes: list[int] = []
    missed: list[str] = []
    try:
        # Until the watcher is up (start-up, its first ingest) a save may go unseen: save again
        # every 5 s until one is picked up; then one more uncounted save, then the samples.
        began, saves, first = time.perf_counter(), 0, None
        while first is None and time.perf_counter() - began < start_s:
            saves += 1
            first = save_and_wait(targets[0], 5.0)
        if first is None:
            return {"error": f"tessera ingest --watch picked up none of {saves} saves in {start_s:g} s"}
        log(f"watch: up {time.perf_counter() - began:.1f} s after its start, {saves} save(s) until one was seen")
        save_and_wait(targets[0], deadline_s)
        for target in targets[1:]:
            ms = save_and_wait(target, deadline_s)
            if ms is None:
                missed.append(str(target.relative_to(copy)))
                log(f"watch: a save of {target.relative_to(copy)} not searchable after {deadline_s:g} s")
            else:
                latencies.append(ms)
                sizes.append(target.stat().st_size)
            time.sleep(0.05)  # let the watcher go idle: each sample is one save, not a burst
    finally:
        for conn in ro:
            conn.close()
        if proc.poll() is None:
            proc.send_signal(2)  # SIGINT, as Ctrl-C
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stderr.close()
    result = {"ms": percentiles(latencies), "edited_file_bytes_median": sorted(sizes)[len(sizes) // 2] if sizes else None,
              "missed": missed, "saves_until_first_seen": saves, "watch_exit": proc.returncode,
              "target_p95_ms": WATCH_TARGET_P95_MS}
    p95 = result["ms"]["p95"]
    result["met"] = None if p95 is None else (p95 <= WATCH_TARGET_P95_MS and not missed)
    return result


# --- search latency and ranking -------------------------------------------------------------------

def kep_of(path: str) -> str | None:
    """The KEP folder ('keps/sig-x/NNNN-name') a document path belongs to, or None."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] == "keps":
        return "/".join(parts[:3])
    return None


def ranks(search, conn, queries: list[dict], field: str, mode: str) -> list[dict]:
    """For each query, the 1-based rank of its target KEP among the distinct documents returned
    (and among the distinct KEPs), None when absent from the first 50 hits or the search failed."""
    out = []
    for q in queries:
        docs: list[str] = []
        keps: list[str] = []
        try:
            hits = search(conn, q[field], limit=50, mode=mode)
        except Exception as exc:  # noqa: BLE001 - e.g. a title that is not valid FTS syntax: a miss, reported
            out.append({"kep": q["kep"], "by_document": None, "by_kep": None, "error": str(exc)[:200]})
            continue
        for hit in hits:
            if hit.path not in docs:
                docs.append(hit.path)
            kep = kep_of(hit.path)
            if kep and kep not in keps:
                keps.append(kep)
        by_doc = next((n for n, p in enumerate(docs, 1) if kep_of(p) == q["kep"]), None)
        by_kep = keps.index(q["kep"]) + 1 if q["kep"] in keps else None
        out.append({"kep": q["kep"], "by_document": by_doc, "by_kep": by_kep})
    return out


def timed_searches(search, conn, texts: list[str], mode: str, rounds: int) -> dict:
    """Milliseconds per search() call; a call that raises is counted in ``errors``, not timed."""
    times: list[float] = []
    errors: dict[str, str] = {}
    for _ in range(rounds):
        for text in texts:
            t = time.perf_counter()
            try:
                search(conn, text, limit=10, mode=mode)
            except Exception as exc:  # noqa: BLE001 - reported, the rest still timed
                errors[text] = str(exc)[:200]
                continue
            times.append((time.perf_counter() - t) * 1000)
    figures = percentiles(times)
    if errors:
        figures["errors"] = errors
    return figures


def share(found: list[dict], key: str) -> float | None:
    return round(sum(1 for r in found if r[key] is not None and r[key] <= TOP) / len(found), 3) if found else None


def search_figures(db: Path, queries: list[dict], rounds: int) -> dict:
    from tessera.core.knowledge.search import search
    from tessera.core.store.db import connect

    conn = connect(db)
    try:
        start = time.perf_counter()
        search(conn, queries[0]["query"], limit=10, mode="semantic")  # loads the model, warms the caches
        first_semantic_ms = (time.perf_counter() - start) * 1000
        latency: dict[str, dict] = {}
        title_latency: dict[str, dict] = {}
        # bm25 asks for every word of a query (FTS5's implicit AND); "bm25_any" is the same query
        # typed with OR between its words (stop words left out), what a user can do by hand
        any_words = [dict(q, query=" OR ".join(query_words(q["query"]))) for q in queries]
        for mode in MODES:
            timed_searches(search, conn, [q["query"] for q in queries], mode, 1)  # uncounted: caches warm
            latency[mode] = timed_searches(search, conn, [q["query"] for q in queries], mode, rounds)
            title_latency[mode] = timed_searches(search, conn, [q["title"] for q in queries], mode, rounds)
        timed_searches(search, conn, [q["query"] for q in any_words], "bm25", 1)
        latency["bm25_any"] = timed_searches(search, conn, [q["query"] for q in any_words], "bm25", rounds)
        latency["target_p95_ms"] = SEARCH_TARGET_P95_MS
        latency["met"] = {m: latency[m]["p95"] is not None and latency[m]["p95"] <= SEARCH_TARGET_P95_MS
                          for m in MODES}
        paraphrase = {m: ranks(search, conn, queries, "query", m) for m in MODES}
        paraphrase["bm25_any"] = ranks(search, conn, any_words, "query", "bm25")
        title = {m: ranks(search, conn, queries, "title", m) for m in MODES}
    finally:
        conn.close()
    return {
        "first_semantic_search_ms": round(first_semantic_ms, 1),
        "search_ms": latency,
        "title_search_ms": title_latency,
        "paraphrase_top5": {m: share(paraphrase[m], "by_document") for m in paraphrase},
        "paraphrase_top5_by_kep": {m: share(paraphrase[m], "by_kep") for m in paraphrase},
        "title_top5": {m: share(title[m], "by_document") for m in MODES},
        "ranks": {m: [r["by_document"] for r in paraphrase[m]] for m in paraphrase},
        "title_ranks": {m: [r["by_document"] for r in title[m]] for m in MODES},
        "query_keps": [q["kep"] for q in queries],
        "queries_evaluated": len(queries),
        "rank_errors": {m: {f"{kind} {r['kep']}": r["error"] for kind, rows in (("paraphrase", paraphrase[m]),
                                                                                 ("title", title.get(m, [])))
                            for r in rows if "error" in r} for m in paraphrase},
    }


def query_words(text: str) -> list[str]:
    """The query's distinct words, lower case, less stop words (what rg and bm25_any look for)."""
    return [w for w in dict.fromkeys(re.findall(r"[A-Za-z0-9]+", text.lower())) if w not in STOP_WORDS]


def rg_figures(copy: Path, queries: list[dict], rounds: int) -> dict:
    rg = shutil.which("rg")
    if rg is None:
        return {"error": "rg (ripgrep) not found on PATH: apt-get install -y ripgrep"}
    times: list[float] = []
    listed: list[int] = []
    for _ in range(rounds):
        for q in queries:
            args = [rg, "-l", "-i", "-w", "--no-messages"]
            for word in query_words(q["query"]):
                args += ["-e", word]
            t = time.perf_counter()
            proc = subprocess.run([*args, str(copy)], capture_output=True, text=True, timeout=120)
            times.append((time.perf_counter() - t) * 1000)
            listed.append(len(proc.stdout.splitlines()))
    version = subprocess.run([rg, "--version"], capture_output=True, text=True).stdout.split("\n", 1)[0]
    return {**percentiles(times), "version": version, "files_listed_median": sorted(listed)[len(listed) // 2],
            "how": "rg -l -i -w -e WORD ... (the query's words less stop words: any of them)"}


def guarded(stage, key: str) -> dict:
    """The stage's figures, or ``{key: the error}``: one failing stage keeps the others' figures."""
    try:
        return stage()
    except Exception as exc:  # noqa: BLE001 - a bench reports any failure in its JSON
        return {key: f"{type(exc).__name__}: {exc}"}


def cli_search_figures(tessera: str, env: dict, queries: list[dict], count: int) -> dict:
    """``tessera search -n 10 --mode M TEXT`` as a subprocess (start-up, the store opened, the
    model loaded for semantic and hybrid, JSONL out) for the first ``count`` paraphrases."""
    out: dict = {}
    for mode in MODES:
        times: list[float] = []
        failed: list[str] = []
        for q in queries[:count]:
            seconds, proc = run_tessera(tessera, ["search", "-n", "10", "--mode", mode, q["query"]], env, timeout=120)
            if proc.returncode == 0:
                times.append(seconds * 1000)
            else:
                failed.append(failure(proc))
        out[mode] = percentiles(times)
        if failed:
            out[mode]["errors"] = failed[:3]
    return out


# --- the run --------------------------------------------------------------------------------------

def quick_queries(corpus: Path, queries: list[dict]) -> list[dict]:
    """The paraphrases whose target KEP exists in ``corpus`` (all of them for the real corpus)."""
    return [q for q in queries if (corpus / q["kep"]).is_dir()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=None,
                        help="the corpus folder (default: $TESSERA_SHARED or ../shared, corpus/kubernetes-keps)")
    parser.add_argument("--watch-samples", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the 30 queries per mode")
    parser.add_argument("--busy", type=int, default=0, help="start N busy loops for the run (a loaded machine)")
    parser.add_argument("--tessera", default=None)
    parser.add_argument("--quick", action="store_true", help="3 watch samples, 1 round, 1 command-line search per mode: a smoke run")
    parser.add_argument("--no-watch", action="store_true")
    parser.add_argument("--in-process", action="store_true",
                        help="the full ingest through ingest_paths in this process instead of a tessera subprocess")
    args = parser.parse_args()
    if args.quick:
        args.watch_samples, args.rounds = min(args.watch_samples, 3), 1

    corpus = (args.corpus or default_corpus()).resolve()
    if not corpus.is_dir():
        print(json.dumps({"bench": "ingest", "skipped": f"corpus absent: {corpus} not found "
                          "(set TESSERA_SHARED to the folder holding corpus/kubernetes-keps)"}))
        return 0
    queries = quick_queries(corpus, json.loads(PARAPHRASES.read_text()))
    tessera = find_tessera(args.tessera)
    busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory(prefix="tessera-bench-ingest-") as tmp:
            return run(Path(tmp), corpus, queries, tessera, args)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()


def run(tmp: Path, corpus: Path, queries: list[dict], tessera: str, args) -> int:
    home = tmp / "home"
    copy = tmp / corpus.name
    shutil.copytree(corpus, copy, symlinks=True)
    env = {**os.environ, "TESSERA_HOME": str(home)}
    os.environ["TESSERA_HOME"] = str(home)
    db = home / "tessera.db"
    files, corpus_bytes = corpus_files(copy)
    out: dict = {"bench": "ingest", "corpus": str(corpus), "corpus_files": files, "corpus_bytes": corpus_bytes,
                 "head": git_head(), "python": platform.python_version(), "cpus": os.cpu_count(),
                 "busy_loops": args.busy, "load_1m_start": round(os.getloadavg()[0], 2)}

    from tessera.core.knowledge.ingest import ingest_paths
    from tessera.core.store.db import connect

    log(f"full ingest of {files} files ({corpus_bytes / 1e6:.1f} MB)" + (" in this process" if args.in_process else ""))
    if args.in_process:
        conn = connect(db)
        try:
            start = time.perf_counter()
            summary = ingest_paths(conn, [str(copy)]).as_dict()
            seconds = time.perf_counter() - start
        finally:
            conn.close()
    else:
        seconds, proc = run_tessera(tessera, ["ingest", "-o", "json", str(copy)], env, timeout=3600)
        if proc.returncode != 0:
            out["full_ingest"] = {"error": failure(proc), "seconds": round(seconds, 2)}
            print(json.dumps(out))
            return 0
        summary = last_json(proc.stdout)
    state = store_state(db)
    out["full_ingest"] = {"how": "ingest_paths in process" if args.in_process else "tessera ingest subprocess",
                          "seconds": round(seconds, 2), "files_per_s": round(files / seconds, 1),
                          "mb_per_s": round(corpus_bytes / 1e6 / seconds, 2), "documents": state["documents"],
                          "chunks": state["chunks"], "kinds": state["kinds"], "summary": summary}

    log("re-ingest, nothing changed")
    seconds, proc = run_tessera(tessera, ["ingest", "-o", "json", str(copy)], env, timeout=3600)
    again = store_state(db)
    reingest = {"seconds": round(seconds, 2), "summary": last_json(proc.stdout),
                "changes_logged": again["last_change"] - state["last_change"],
                "wrote_nothing": again["last_change"] == state["last_change"]
                and again["last_ingested_at"] == state["last_ingested_at"]}
    if proc.returncode != 0:
        reingest["error"] = failure(proc)
    conn = connect(db)
    try:
        start = time.perf_counter()
        summary = ingest_paths(conn, [str(copy)])
        reingest["in_process_seconds"] = round(time.perf_counter() - start, 3)
        reingest["in_process_summary"] = summary.as_dict()
    finally:
        conn.close()
    out["reingest_unchanged"] = reingest

    out["index"] = index_size(db, state["bytes_ingested"])

    log(f"search: {len(queries)} queries x {args.rounds} rounds x {len(MODES)} modes")
    if queries:
        out.update(guarded(lambda: search_figures(db, queries, args.rounds), "search_error"))
        out["rg_ms"] = rg_figures(copy, queries, args.rounds)
        out["cli_search_ms"] = guarded(lambda: cli_search_figures(tessera, env, queries, 1 if args.quick else 10), "error")
    else:
        out["search_error"] = "no paraphrase targets a KEP of this corpus"

    if not args.no_watch:
        log(f"watch: {args.watch_samples} saved files until searchable")
        out["watch_to_searchable"] = guarded(lambda: watch_latency(tessera, env, copy, db, args.watch_samples), "error")
    out["load_1m_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
