"""Small knowledge fixtures shared by issue 16's tests (ingest, search, graph, peers).

``write_notes(folder)`` writes a realistic runbook tree and returns its root. Its content is a
contract between the tests of several parts: add files, never change or remove existing ones.

Mentions in it: ``deployment/web`` and ``kubectl -n shop get pod web-7d9f8c6b5-x2x9q``
(runbooks/web.md), the Service ``api`` and the ConfigMap ``api-config`` (runbooks/api.md),
``kubectl rollout restart deployment/web -n shop`` (tools/restart.py), a CrashLoopBackOff note
(notes/crashloop.txt). Left out by the walk: debug.log and build/ (.gitignore), .private/
(hidden), images/diagram.png (binary).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

WEB_RUNBOOK = """\
---
title: Web frontend runbook
tags: [web, oncall]
owner: team-shop
---
# Web frontend

The web frontend is `deployment/web` in the `shop` namespace. See [the dashboard](https://grafana.example.com/d/web)
and [[api]] for the backend. #frontend

## Symptoms

Users see 502 errors from the ingress. Pods of the web deployment restart.

## Diagnosis

List the pods and look at their restarts:

```sh
# this line is a shell comment, not a heading
kubectl -n shop get pod web-7d9f8c6b5-x2x9q -o wide

kubectl -n shop describe deployment/web
```

### Logs

Check the container logs for out-of-memory kills.

## Remediation

Roll the deployment back with `kubectl -n shop rollout undo deployment/web`.
"""

API_RUNBOOK = """\
API service
===========

The Service api routes to the api pods. Its settings live in the ConfigMap api-config
(<https://wiki.example.com/api-config>). #backend #oncall

Connection refused
------------------

When clients get connection refused, check that Service api has endpoints:
kubectl -n shop get endpoints api

Config reload
-------------

After editing configmap/api-config, restart the pods so they read it again.
"""

CRASHLOOP_NOTE = """\
When a container keeps restarting, the pod shows CrashLoopBackOff.
Kubernetes backs off longer after each crash.

Look at the previous container's logs with kubectl logs --previous,
and at the events of the pod.

A liveness probe that fails too early also restarts the container.
"""

RESTART_TOOL = '''\
"""Restart helpers for the shop namespace."""

import subprocess

NAMESPACE = "shop"


def restart_web():
    """Restart deployment/web by a rollout."""
    subprocess.run(["kubectl", "rollout", "restart", "deployment/web", "-n", NAMESPACE], check=True)


class Checker:
    """Checks that the api Service answers."""

    def check(self):
        return subprocess.run(["kubectl", "-n", NAMESPACE, "get", "service", "api"]).returncode == 0
'''

CHECK_SCRIPT = """\
#!/bin/sh
set -eu

check_web() {
  kubectl -n shop rollout status deployment/web
}

check_web
"""

PNG_BYTES = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


def write_notes(folder: Path) -> Path:
    """Write the runbook tree under ``folder`` / "notes" and return that root."""
    root = Path(folder) / "notes"
    files = {
        "runbooks/web.md": WEB_RUNBOOK,
        "runbooks/api.md": API_RUNBOOK,
        "notes/crashloop.txt": CRASHLOOP_NOTE,
        "tools/restart.py": RESTART_TOOL,
        "tools/check.sh": CHECK_SCRIPT,
        ".gitignore": "*.log\nbuild/\n",
        "debug.log": "kubectl -n shop get pod ignored-by-gitignore\n",
        "build/generated.md": "# Generated\n\nignored by .gitignore\n",
        ".private/secret.md": "# Hidden\n\nhidden folders are skipped\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "images" / "diagram.png").write_bytes(PNG_BYTES)
    return root


# What write_notes' tree ingests as (the walk's candidates that are documents).
NOTES_DOCUMENTS = ("notes/crashloop.txt", "runbooks/api.md", "runbooks/web.md", "tools/check.sh", "tools/restart.py")


def consistency_problems(conn) -> list[str]:
    """What is wrong with the knowledge tables, as sentences (empty when consistent): every chunk
    has its FTS row and every FTS row its chunk, with the same text; every document has chunks
    unless its text is empty; ordinals are 0..n-1; no (root, path) twice."""
    problems = []
    chunks = {row[0]: row[1] for row in conn.execute("SELECT id, text FROM knowledge_chunks")}
    fts = {row[0]: row[1] for row in conn.execute("SELECT rowid, text FROM knowledge_fts")}
    if set(chunks) - set(fts):
        problems.append(f"chunks without an FTS row: {sorted(set(chunks) - set(fts))[:5]}")
    if set(fts) - set(chunks):
        problems.append(f"FTS rows without a chunk: {sorted(set(fts) - set(chunks))[:5]}")
    if any(fts.get(cid) != text for cid, text in chunks.items() if cid in fts):
        problems.append("an FTS row's text differs from its chunk's")
    orphans = conn.execute("SELECT count(*) FROM knowledge_chunks c LEFT JOIN knowledge_documents d"
                           " ON d.id = c.document_id WHERE d.id IS NULL").fetchone()[0]
    if orphans:
        problems.append(f"{orphans} chunks without a document")
    for _doc_id, path, size, n, low, high in conn.execute(
            "SELECT d.id, d.path, d.size, count(c.id), min(c.ordinal), max(c.ordinal) FROM knowledge_documents d"
            " LEFT JOIN knowledge_chunks c ON c.document_id = d.id GROUP BY d.id"):
        if n == 0 and size > 0:
            problems.append(f"{path} has no chunks but {size} bytes")
        if n and (low != 0 or high != n - 1):
            problems.append(f"{path}'s chunk ordinals are not 0..{n - 1}")
    twice = conn.execute("SELECT root, path FROM knowledge_documents GROUP BY root, path HAVING count(*) > 1").fetchall()
    if twice:
        problems.append(f"documents stored twice: {twice[:5]}")
    no_vector = conn.execute("SELECT count(*) FROM knowledge_chunks WHERE embedding IS NULL").fetchone()[0]
    if no_vector:
        problems.append(f"{no_vector} chunks without an embedding")
    return problems


def index_snapshot(conn) -> list[tuple]:
    """The stored documents and chunks without ids or ingest times, to compare two indexes."""
    docs = conn.execute("SELECT root, path, kind, language, title, tags, links, front_matter, size, mtime, hash"
                        " FROM knowledge_documents ORDER BY root, path").fetchall()
    chunks = conn.execute("SELECT d.root, d.path, c.ordinal, c.heading, c.start_line, c.end_line, c.text, c.mentions,"
                          " c.embedding FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id"
                          " ORDER BY d.root, d.path, c.ordinal").fetchall()
    return docs + chunks


def kep_corpus() -> Path:
    """../shared/corpus/kubernetes-keps (or $TESSERA_SHARED/corpus/kubernetes-keps), or skip the
    test, saying so, when it is absent."""
    import os

    import pytest

    shared = Path(os.environ.get("TESSERA_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    corpus = shared / "corpus" / "kubernetes-keps"
    if not (corpus / "keps").is_dir():
        pytest.skip(f"KEP corpus absent: {corpus} not found (it lives in ../shared beside the checkout)")
    return corpus


@pytest.fixture
def notes(tmp_path) -> Path:
    """The notes of write_notes, ingested by a real ``tessera ingest`` into this test's data home."""
    root = write_notes(tmp_path)
    done = subprocess.run([sys.executable, "-m", "tessera.cli.main", "ingest", str(root)], capture_output=True,
                          text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return root
