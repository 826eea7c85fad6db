"""An ingest SIGKILLed at any point leaves a consistent index, and the next run finishes the job
(docs/knowledge.md "Ingesting": crash consistency)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from knowledge_helpers import consistency_problems, index_snapshot
from tessera.core.knowledge.ingest import ingest_paths
from tessera.core.store.db import connect

DEADLINE = 120.0
FILES = 600


def write_corpus(root: Path) -> None:
    """FILES markdown and text files of a few sections each, some long enough to be cut."""
    for i in range(FILES):
        folder = root / f"team-{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        if i % 3:
            sections = "\n\n".join(f"## Part {j}\n\nRunbook {i} step {j}: restart deployment/app-{i} " + "and wait. " * (20 * j)
                                   for j in range(1, 4 + i % 4))
            (folder / f"runbook-{i}.md").write_text(f"# Runbook {i}\n\n{sections}\n")
        else:
            (folder / f"note-{i}.txt").write_text("\n\n".join(f"note {i} paragraph {j} " * 9 for j in range(5)))


def change_count(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM knowledge_changes").fetchone()[0]
    except sqlite3.OperationalError:  # the store is being created
        return 0
    finally:
        conn.close()


def test_sigkill_at_several_points_then_a_rerun_equals_a_clean_ingest(tmp_path):
    root = tmp_path / "corpus"
    write_corpus(root)
    db = Path(os.environ["TESSERA_HOME"]) / "tessera.db"
    killed = 0
    for writes in (1, 60, 60):  # killed after this many more documents were written: each time mid-run
        target = change_count(db) + writes
        proc = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "ingest", str(root)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + DEADLINE
        while proc.poll() is None and change_count(db) < target and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=DEADLINE)
        killed += code == -signal.SIGKILL
        conn = connect()
        assert consistency_problems(conn) == [], f"after a kill at {target} changes"
        assert change_count(db) < FILES, "killed before the job was done"
        conn.close()
    assert killed == 3

    finish = subprocess.run([sys.executable, "-m", "tessera.cli.main", "ingest", str(root)],
                            capture_output=True, text=True, timeout=DEADLINE)
    assert finish.returncode == 0, finish.stderr
    conn = connect()
    assert consistency_problems(conn) == []
    clean = connect(tmp_path / "clean" / "tessera.db")
    summary = ingest_paths(clean, [str(root)])
    assert summary.added == FILES
    assert index_snapshot(conn) == index_snapshot(clean)
    # each file was written once over all the runs: no document was written twice
    assert conn.execute("SELECT count(*) FROM knowledge_changes").fetchone()[0] == FILES
