"""One graph (issue 16): ``-s knowledge`` as a source, and its chunks' MENTIONS of the resources of
the sources queried beside it, in one query, as a user runs them: real ``tessera ingest`` and
``tessera query`` processes over runbooks (tests/knowledge_helpers.py's tree and notes written
here), the bundled demo cluster and the kube emulator (tests/kube_emulator.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from knowledge_helpers import notes, write_notes  # noqa: F401  (notes: a fixture)

TSR = [sys.executable, "-m", "tessera.cli.main"]
ISSUE_QUERY = ('MATCH (c:Chunk)-[:MENTIONS]->(d:Deployment)->(:ReplicaSet)->(p:Pod) WHERE p.status.phase != "Running"'
               ' RETURN c.path, d.metadata.name')

# Runbooks over the demo cluster (plugins/sources/demo_data): ads (shop) and fraud-detector
# (payments) have Pending pods; cart, checkout and frontend run.
DEMO_NOTES = {
    "ads.md": "# Ads\n\nWhen `deployment/ads` has pending pods, look at the quota of the shop namespace.\n",
    "fraud.md": "# Fraud\n\nThe `fraud-detector` pods wait for a node with a GPU.\n",
    "cart.md": "# Cart\n\nRestart deployment/cart after a config change.\n",
    "legacy.md": "# Legacy\n\nRetire legacy-billing next quarter.\n",
    "prose.md": "# Prose\n\nThe cart of groceries and the web of dependencies; checkout the ads budget.\n",
    "scoped.md": ("# Scoped\n\n```\nkubectl -n payments get deploy frontend\n"
                  "kubectl -n shop describe deployment checkout\n```\n"),
}


def tsr(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=180, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL, env=dict(os.environ))


def rows(r: subprocess.CompletedProcess) -> list[dict]:
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def write_files(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def demo_notes(tmp_path) -> Path:
    root = write_files(tmp_path / "demo-notes", DEMO_NOTES)
    r = tsr("ingest", str(root))
    assert r.returncode == 0, r.stderr
    return root


def mentions_of(path: str, *sources: str) -> set[tuple[str, str]]:
    """(kind, name) of everything the chunks of ``path`` MENTION in the sources."""
    found = rows(tsr("query", "-s", "knowledge", *sources, "-o", "jsonl",
                     f'MATCH (c:Chunk)-[:MENTIONS]->(x) WHERE c.path = "{path}" RETURN x.kind, x.metadata.name'))
    return {(r["x.kind"], r["x.metadata.name"]) for r in found}


# ----------------------------------------------------------------------------- the knowledge source


def test_kinds_of_the_knowledge_source(notes):
    found = rows(tsr("kinds", "-s", "knowledge", "-o", "jsonl"))
    assert {(r["kind"], r["group"], r["namespaced"]) for r in found} == {
        ("Document", "tessera.dev", False), ("Chunk", "tessera.dev", False)}


def test_documents_with_their_paths_and_tags(notes):
    found = rows(tsr("query", "-s", "knowledge", "-o", "jsonl", "MATCH (d:Document) RETURN d.path, d.tags"))
    by_path = {r["d.path"]: r["d.tags"] for r in found}
    assert set(by_path) == {"notes/crashloop.txt", "runbooks/api.md", "runbooks/web.md", "tools/check.sh",
                            "tools/restart.py"}
    assert set(by_path["runbooks/web.md"]) == {"web", "oncall", "frontend"}


def test_chunks_carry_their_document_and_a_name_filter_is_pushed_down(notes):
    found = rows(tsr("query", "-s", "knowledge", "-o", "jsonl",
                     'MATCH (c:Chunk {name: "runbooks/web.md#4"}) RETURN c.path, c.title, c.heading, c.start_line,'
                     ' c.text, c.format, c.metadata.uid'))
    assert len(found) == 1
    chunk = found[0]
    assert chunk["c.path"] == "runbooks/web.md" and chunk["c.title"] == "Web frontend runbook"
    assert chunk["c.heading"] == "Web frontend > Remediation" and "rollout undo" in chunk["c.text"]
    assert chunk["c.format"] == "markdown" and chunk["c.start_line"] > 1 and chunk["c.metadata.uid"]
    # and a chunk belongs to its document
    parts = rows(tsr("query", "-s", "knowledge", "-o", "jsonl",
                     'MATCH (c:Chunk)-[:PART_OF]->(d:Document {name: "runbooks/api.md"}) RETURN c.heading'))
    assert [r["c.heading"] for r in parts] == ["API service", "API service > Connection refused",
                                               "API service > Config reload"]


def test_nothing_ingested_is_an_empty_source():
    assert rows(tsr("query", "-s", "knowledge", "-o", "jsonl", "MATCH (d:Document) RETURN d.path")) == []


# ----------------------------------------------------------------------------- one graph


def test_the_issue_query_over_the_demo_cluster(demo_notes):
    found = rows(tsr("query", "-s", "knowledge", "-s", "demo", "-o", "jsonl", ISSUE_QUERY))
    assert {(r["c.path"], r["d.metadata.name"]) for r in found} == {("ads.md", "ads"), ("fraud.md", "fraud-detector")}


def test_false_positives_are_kept_down(demo_notes):
    # prose naming nothing links nothing, though Deployments cart and ads exist
    assert mentions_of("prose.md", "-s", "demo") == set()
    # deployment/cart links the Deployment only, not the Service of the same name
    assert mentions_of("cart.md", "-s", "demo") == {("Deployment", "cart")}
    # "the `fraud-detector` pods" name the workload, not the Service of that name
    assert mentions_of("fraud.md", "-s", "demo") == {("Deployment", "fraud-detector")}
    # a bare distinctive name links whatever has exactly that name
    assert ("Service", "legacy-billing") in mentions_of("legacy.md", "-s", "demo")


def test_a_mention_with_a_namespace_links_only_there(demo_notes):
    # frontend lives in shop, not payments; checkout in shop
    assert mentions_of("scoped.md", "-s", "demo") == {("Deployment", "checkout")}


def test_search_scores_chunks_in_where_order_by_and_return(demo_notes):
    found = rows(tsr("query", "-s", "knowledge", "-o", "jsonl",
                     'MATCH (c:Chunk) WHERE search("pending OR groceries") > 0'
                     ' RETURN c.path, search("pending OR groceries") AS score ORDER BY search("pending OR groceries") DESC'))
    assert {r["c.path"] for r in found} == {"ads.md", "prose.md"}
    assert all(0 < r["score"] <= 1 for r in found)
    assert [r["score"] for r in found] == sorted((r["score"] for r in found), reverse=True)
    # with the cluster: the runbooks of failing deployments, best match first, naming the variable
    found = rows(tsr("query", "-s", "knowledge", "-s", "demo", "-o", "jsonl",
                     ISSUE_QUERY.replace("RETURN c.path, d.metadata.name",
                                         'RETURN c.path, search(c, "quota") AS s ORDER BY s DESC')))
    assert [r["c.path"] for r in found][0] == "ads.md" and found[0]["s"] > 0
    assert {r["c.path"] for r in found if r["s"] == 0} == {"fraud.md"}


def test_search_of_a_document_is_its_best_chunk(notes):
    docs = rows(tsr("query", "-s", "knowledge", "-o", "jsonl",
                    'MATCH (d:Document) WHERE search(d, "rollout undo") > 0 RETURN d.path, search(d, "rollout undo") AS s'))
    chunks = rows(tsr("query", "-s", "knowledge", "-o", "jsonl",
                      'MATCH (c:Chunk) WHERE c.path = "runbooks/web.md" RETURN search("rollout undo") AS s'))
    assert [d["d.path"] for d in docs] == ["runbooks/web.md"]
    assert docs[0]["s"] == max(c["s"] for c in chunks) > 0


@pytest.mark.parametrize("args, query, says", [
    (["-s", "demo"], 'MATCH (d:Deployment) WHERE search("x") > 0 RETURN d', "add -s knowledge"),
    (["-s", "knowledge", "-s", "demo"], 'MATCH (d:Deployment) WHERE search("x") > 0 RETURN d', "this MATCH has none"),
    (["-s", "knowledge"], 'MATCH (c:Chunk), (d:Document) RETURN search("x")', "name the one"),
    (["-s", "knowledge"], 'MATCH (c:Chunk) RETURN search(c.path, "x")', "search(VAR, TEXT)"),
    (["-s", "knowledge"], 'MATCH (c:Chunk) RETURN search()', "takes the text"),
    (["-s", "knowledge"], 'MATCH (c:Chunk) RETURN search(c, 3)', "as a string"),
])
def test_search_misuse_is_one_line_exit_1(demo_notes, args, query, says):
    r = tsr("query", *args, query)
    assert r.returncode == 1, r.stderr
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_bad_search_syntax_is_one_line_exit_1(demo_notes):
    r = tsr("query", "-s", "knowledge", 'MATCH (c:Chunk) WHERE search("crash AND (") > 0 RETURN c.path')
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- a live cluster


def test_the_issue_query_over_a_live_cluster(notes, kube_api, kubeconfig):
    """web (shop) gets a Pending pod in the emulator; runbooks/web.md and the tools name it."""
    rs = kube_api.get("apps/v1", "ReplicaSet", "shop", "web-5d8f")
    kube_api.add({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "web-5d8f-pending", "namespace": "shop", "uid": "p-pending",
                               "labels": {"app": "web"},
                               "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f",
                                                    "uid": rs["metadata"]["uid"], "controller": True}]},
                  "spec": {"containers": [{"name": "web", "image": "acme/web:1"}]}, "status": {"phase": "Pending"}})
    found = rows(tsr("query", "-s", "knowledge", "--context", "emu-a", "--kubeconfig", str(kubeconfig), "-o", "jsonl",
                     ISSUE_QUERY))
    assert {(r["c.path"], r["d.metadata.name"]) for r in found} == {
        ("runbooks/web.md", "web"), ("tools/restart.py", "web"), ("tools/check.sh", "web")}
    # two contexts: each is joined with the knowledge, each row names its context
    found = rows(tsr("query", "-s", "knowledge", "--context", "emu-a", "--context", "emu-b", "--kubeconfig",
                     str(kubeconfig), "-o", "jsonl", "-A",
                     'MATCH (c:Chunk)-[:MENTIONS]->(s:Service) RETURN c.path, s.metadata.name'))
    assert {(r["context"], r["c.path"], r["s.metadata.name"]) for r in found} == {
        ("emu-a", "tools/restart.py", "api")}  # "the api Service"; emu-b's Service is api-b


# ----------------------------------------------------------------------------- live


def test_a_live_query_sees_a_newly_ingested_document(tmp_path):
    from process_lines import json_lines

    root = write_files(tmp_path / "live", {"one.md": "# One\n\nnothing yet\n"})
    assert tsr("ingest", str(root)).returncode == 0
    proc = subprocess.Popen([*TSR, "query", "--watch", "-s", "knowledge",
                             'MATCH (c:Chunk) WHERE search("rollback") > 0 OR c.path = "one.md" RETURN c.path'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=dict(os.environ))
    try:
        first = json_lines(proc, 1)
        assert [(e["op"], e["row"]["c.path"]) for e in first] == [("added", "one.md")], proc.stderr
        write_files(root, {"two.md": "# Two\n\nRoll back deployment/web: a rollback.\n"})
        assert tsr("ingest", str(root)).returncode == 0
        second = json_lines(proc, 1)
        assert [(e["op"], e["row"]["c.path"]) for e in second] == [("added", "two.md")]
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# ----------------------------------------------------------------------------- real data


def test_kep_chunks_mentioning_deployments_are_few_and_real():
    """Two SIG folders of the KEP corpus (skipped when absent): real prose that talks about
    Deployments all the time but names few; the named ones are found."""
    from knowledge_helpers import kep_corpus

    keps = kep_corpus() / "keps"
    r = tsr("ingest", str(keps / "sig-cli"), str(keps / "sig-network"))
    assert r.returncode == 0, r.stderr
    total = rows(tsr("query", "-s", "knowledge", "-o", "jsonl", "MATCH (c:Chunk) RETURN count(c) AS n"))[0]["n"]
    named = rows(tsr("query", "-s", "knowledge", "-o", "jsonl",
                     "MATCH (c:Chunk) WHERE c.mentioned.Deployment IS NOT NULL RETURN c.path, c.mentioned.Deployment"))
    assert total > 1000
    assert 3 <= len(named) <= total // 100, named  # a sane number: named Deployments, not every "Deployment"
    assert any(r["c.path"] == "2590-kubectl-subresource/README.md" and "nginx-deployment" in r["c.mentioned.Deployment"]
               for r in named)
    # and across the demo cluster: only resources that exist there, by their exact names
    linked = rows(tsr("query", "-s", "knowledge", "-s", "demo", "-o", "jsonl",
                      "MATCH (c:Chunk)-[:MENTIONS]->(x) RETURN DISTINCT x.metadata.name AS n"))
    demo_names = {r["n"] for r in rows(tsr("query", "-s", "demo", "-o", "jsonl",
                                           "MATCH (d:Deployment) RETURN d.metadata.name AS n"))}
    assert {r["n"] for r in linked} & demo_names == {"kube-state-metrics"}


def test_a_live_query_across_the_cluster_and_the_knowledge(tmp_path, kube_api, kubeconfig):
    """-s knowledge --context: the join watches each kind through the source that has it; a new
    runbook and a new Deployment each show up."""
    from process_lines import json_lines

    root = write_files(tmp_path / "live", {"web.md": "# Web\n\nRestart deployment/web.\n"})
    assert tsr("ingest", str(root)).returncode == 0
    proc = subprocess.Popen([*TSR, "query", "--watch", "-s", "knowledge", "--context", "emu-a", "--kubeconfig",
                             str(kubeconfig), 'MATCH (c:Chunk)-[:MENTIONS]->(d:Deployment) RETURN c.path, d.metadata.name'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=dict(os.environ))
    try:
        assert [(e["op"], e["row"]["c.path"], e["row"]["d.metadata.name"]) for e in json_lines(proc, 1)] == [
            ("added", "web.md", "web")]
        write_files(root, {"cart.md": "# Cart\n\nScale deployment/cart and deployment/orders.\n"})
        assert tsr("ingest", str(root)).returncode == 0
        assert [(e["op"], e["row"]["c.path"], e["row"]["d.metadata.name"]) for e in json_lines(proc, 1)] == [
            ("added", "cart.md", "cart")]
        kube_api.add({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "orders", "namespace": "shop", "uid": "d-shop-orders"},
                      "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "orders"}}}})
        assert [(e["op"], e["row"]["c.path"], e["row"]["d.metadata.name"]) for e in json_lines(proc, 1)] == [
            ("added", "cart.md", "orders")]
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_a_notebook_cell_over_the_knowledge_and_a_cluster(demo_notes):
    assert tsr("notebook", "new", "kb").returncode == 0
    r = tsr("cell", "add", "kb", "-s", "knowledge", "-s", "demo",
            'MATCH (c:Chunk)-[:MENTIONS]->(d:Deployment) WHERE c.path = "ads.md" RETURN c.path, d.metadata.name')
    assert r.returncode == 0, r.stderr
    found = rows(tsr("notebook", "run", "kb"))
    assert [(f["c.path"], f["d.metadata.name"]) for f in found] == [("ads.md", "ads")]


# ----------------------------------------------------------------------------- in-process


class CountingKnowledge:
    """A knowledge source that counts what the engine asks it to score."""

    def __init__(self, source):
        self.source = source
        self.asked: list[str] = []

    def __getattr__(self, attr):
        return getattr(self.source, attr)

    def kinds(self):
        return self.source.kinds()

    def list(self, kind, **filters):
        return self.source.list(kind, **filters)

    def text_scores(self, text):
        self.asked.append(text)
        return self.source.text_scores(text)


def test_search_is_scored_once_per_distinct_text_per_run(tmp_path):
    """The engine asks the source once per text, however many rows, clauses and variables use it
    (the search part's chunk_scores is a full-text query over every chunk)."""
    from tessera.core.knowledge.ingest import ingest_paths
    from tessera.core.query.run import run_query
    from tessera.core.store.db import connect
    from tessera.plugins.sources.knowledge_source import KnowledgeSource

    conn = connect()
    ingest_paths(conn, [str(write_notes(tmp_path))])
    counting = CountingKnowledge(KnowledgeSource())
    try:
        result = run_query('MATCH (c:Chunk) WHERE search("kubectl") > 0 OR search(c, "restart") > 0'
                           ' RETURN c.path, search("kubectl") AS k ORDER BY search(c, "kubectl") DESC, c.path',
                           [counting], shape="rows")
        assert len(result.rows) > 3
        assert sorted(counting.asked) == ["kubectl", "restart"]
        scores = [row["k"] for row in result.rows]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0
    finally:
        counting.source.close()
        conn.close()


def test_writes_to_knowledge_kinds_beside_a_cluster_are_refused(notes, kube_api, kubeconfig):
    """The joined source takes the cluster's writes, never a Chunk's: nothing reaches the API."""
    before = len(kube_api.list_requests())
    r = tsr("query", "-s", "knowledge", "--context", "emu-a", "--kubeconfig", str(kubeconfig), "--dry-run",
            'MATCH (c:Chunk {name: "runbooks/web.md#0"}) SET c.title = "x"')
    assert r.returncode == 1, r.stderr
    assert "read-only" in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not [q for q in kube_api.list_requests()[before:] if q.get("method") not in (None, "GET")]
    # the cluster's own resources are still writable through it
    r = tsr("query", "-s", "knowledge", "--context", "emu-a", "--kubeconfig", str(kubeconfig), "--dry-run",
            'MATCH (d:Deployment {name: "web"}) SET d.spec.replicas = 3')
    assert r.returncode == 0, r.stderr
