"""bench/ingest.py runs end to end over a tiny generated corpus (--quick) and reports every
figure it promises. No timing is asserted: the figures are the bench's output, not a test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Three proposals in the KEP layout, each the target of one of bench/paraphrases.json's queries,
# and one unrelated note; written here, never copied from the corpus.
TINY_CORPUS = {
    "keps/sig-node/277-ephemeral-containers/README.md": (
        "# Ephemeral Containers\n\n## Summary\n\nRun a short-lived container inside an existing pod's namespaces "
        "to troubleshoot it: distroless images have no shell, so `kubectl debug` adds one for a while.\n\n"
        "## Motivation\n\nOperators need to inspect a running pod without restarting it.\n"),
    "keps/sig-node/277-ephemeral-containers/kep.yaml": "title: Ephemeral Containers\nstatus: implemented\n",
    "keps/sig-release/2572-release-cadence/README.md": (
        "# Defining the Kubernetes Release Cadence\n\n## Summary\n\nSIG Release proposes three releases per year "
        "instead of four, each cycle fifteen weeks long.\n"),
    "keps/sig-release/2572-release-cadence/kep.yaml": "title: Defining the Kubernetes Release Cadence\n",
    "keps/sig-network/1435-mixed-protocol-lb/README.md": (
        "# Different protocols in the same service definition with type=loadbalancer\n\n## Summary\n\n"
        "A LoadBalancer Service may have ports with TCP and UDP together, as DNS servers need on port 53.\n"),
    "notes/unrelated.md": "# Coffee\n\nThe machine on the third floor needs descaling every month.\n",
}


def test_quick_run_reports_every_figure(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for rel, text in TINY_CORPUS.items():
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        (corpus / rel).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "TESSERA_HOME"}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "ingest.py"), "--corpus", str(corpus), "--quick"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)

    assert result["corpus_files"] == len(TINY_CORPUS)
    full = result["full_ingest"]
    assert "error" not in full, full
    assert full["documents"] == len(TINY_CORPUS) and full["chunks"] >= len(TINY_CORPUS)
    assert full["seconds"] > 0 and full["files_per_s"] > 0

    again = result["reingest_unchanged"]
    assert "error" not in again, again
    assert again["wrote_nothing"] is True and again["changes_logged"] == 0
    summary = again["in_process_summary"]
    assert (summary["added"], summary["updated"], summary["removed"]) == (0, 0, 0)
    assert summary["unchanged"] == len(TINY_CORPUS)

    index = result["index"]
    assert index["store_bytes"] > 0 and index["corpus_bytes_ingested"] == sum(len(t.encode()) for t in TINY_CORPUS.values())
    assert index["wal_bytes_after_checkpoint"] == 0

    assert "search_error" not in result, result.get("search_error")
    assert result["queries_evaluated"] == 3  # the three paraphrases whose KEP is in the tiny corpus
    for mode in ("bm25", "semantic", "hybrid"):
        assert result["search_ms"][mode]["n"] == 3 and result["search_ms"][mode]["p95"] is not None
        assert 0 <= result["paraphrase_top5"][mode] <= 1
        assert 0 <= result["title_top5"][mode] <= 1
        assert len(result["ranks"][mode]) == 3
    # only the ephemeral containers KEP has the words of its title: first by bm25
    first = result["query_keps"].index("keps/sig-node/277-ephemeral-containers")
    assert result["title_ranks"]["bm25"][first] == 1

    for mode in ("bm25", "semantic", "hybrid"):
        assert result["cli_search_ms"][mode]["n"] == 1, result["cli_search_ms"]

    rg = result["rg_ms"]
    assert "error" in rg or (rg["n"] == 3 and rg["p50"] is not None)

    watch = result["watch_to_searchable"]
    assert "error" not in watch, watch
    assert watch["missed"] == [] and watch["ms"]["n"] == 3


def test_paraphrases_target_30_distinct_keps_without_their_title_words() -> None:
    import re

    import yaml

    queries = json.loads((REPO / "bench" / "paraphrases.json").read_text())
    assert len(queries) == 30 and len({q["kep"] for q in queries}) == 30
    corpus = Path(os.environ.get("TESSERA_SHARED", REPO.parent / "shared")) / "corpus" / "kubernetes-keps"
    if not corpus.is_dir():
        import pytest

        pytest.skip(f"KEP corpus absent: {corpus} not found (it lives in ../shared beside the checkout)")
    small = {"a", "an", "the", "of", "for", "in", "to", "and", "on", "by", "with", "from", "support", "add"}
    for q in queries:
        folder = corpus / q["kep"]
        assert (folder / "README.md").is_file(), q["kep"]
        title = yaml.safe_load((folder / "kep.yaml").read_text())["title"].strip()
        assert q["title"] == title
        title_words = set(re.findall(r"[a-z0-9]+", title.lower())) - small
        assert not title_words & set(re.findall(r"[a-z0-9]+", q["query"].lower())), q["kep"]
