"""``tessera peer share/shared/unshare knowledge:PATH`` through real ``tessera`` processes
(cli/peer_sharing.py): the path canonicalised, its documents counted, a path that neither exists
nor holds anything ingested refused in one line, a folder not ingested yet shared with a note."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from knowledge_helpers import NOTES_DOCUMENTS, write_notes

from tessera.core.knowledge.ingest import ingest_paths
from tessera.core.store.db import connect

BOB = "b0" * 32


def tessera(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, stdin=subprocess.DEVNULL)


def ok(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = tessera(*args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc


def ingest(path: Path) -> None:
    conn = connect(Path(os.environ["TESSERA_HOME"]) / "tessera.db")
    try:
        ingest_paths(conn, [str(path)])
    finally:
        conn.close()


def test_share_shared_and_unshare_a_knowledge_path_in_any_spelling(tmp_path):
    notes = write_notes(tmp_path).resolve()
    (tmp_path / "link").symlink_to(notes)
    ingest(notes)
    ok("peer", "add", BOB, "--name", "bob", "--publish")

    shared = ok("peer", "share", "knowledge:link/runbooks", "--with", "bob", cwd=tmp_path)
    item = f"knowledge:{notes / 'runbooks'}"
    assert shared.stdout.strip() == f"shared {item} with bob (2 documents ingested under it now)"
    ok("peer", "share", f"knowledge:{notes}")
    rows = {r["item"]: r for r in json.loads(ok("peer", "shared", "--json").stdout)}
    assert rows[item]["kind"] == "knowledge" and rows[item]["items"] == 2 and rows[item]["with"] == ["bob"]
    assert rows[f"knowledge:{notes}"]["items"] == len(NOTES_DOCUMENTS)
    assert f"{item}  bob" in ok("peer", "shared").stdout

    ok("peer", "unshare", "knowledge:./runbooks/../runbooks", cwd=notes)  # the same path, spelt otherwise
    assert [r["item"] for r in json.loads(ok("peer", "shared", "--json").stdout)] == [f"knowledge:{notes}"]


def test_a_path_with_nothing_ingested_is_refused_unless_it_exists(tmp_path):
    ok("peer", "add", BOB, "--name", "bob", "--publish")
    missing = tmp_path / "no-such-folder"
    refused = tessera("peer", "share", f"knowledge:{missing}")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert f"there is no {missing}" in refused.stderr and "tessera ingest PATH" in refused.stderr
    assert json.loads(ok("peer", "shared", "--json").stdout) == []

    empty = tmp_path / "later"
    empty.mkdir()
    shared = ok("peer", "share", f"knowledge:{empty}")
    assert "(0 documents ingested under it now)" in shared.stdout
    assert f"note: nothing is ingested under {empty.resolve()} yet" in shared.stderr

    # what was ingested under a path that is gone since is still there to share (its documents)
    gone = tmp_path / "gone"
    write_notes(gone)
    ingest(gone / "notes")
    for path in sorted((gone / "notes").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (gone / "notes").rmdir()
    assert "(5 documents" in ok("peer", "share", f"knowledge:{gone / 'notes'}").stdout

    bad = tessera("peer", "share", "knowledge:")
    assert bad.returncode == 2 and "needs a path" in bad.stderr
    escaped = tessera("peer", "share", f"knowledge:{tmp_path}/ev\x1bil")
    assert escaped.returncode == 2 and "\\x1b" in escaped.stderr and "\x1b" not in escaped.stderr


def test_share_items_complete_the_roots_ingested():
    from test_cli_completion import bash_complete

    notes = write_notes(Path(os.environ["TESSERA_HOME"]).parent / "kb").resolve()
    ingest(notes)
    assert f"knowledge:{notes}" in bash_complete("tsr peer share ")
