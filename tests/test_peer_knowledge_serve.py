"""A knowledge share end to end with real processes on loopback (tests/test_peer_serve.py's
helpers: TESSERA_PEER_LOOPBACK=1, two data homes, `tessera serve`): alice ingests notes and shares
one folder with bob; bob's `peer sync` pulls it and `tessera search --peers` merges alice's hits
with his own, labelled; an update and a delete at alice reach bob by his live subscription;
unsharing stops them. Every wait polls a condition with a generous deadline."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

from knowledge_helpers import NOTES_DOCUMENTS, write_notes

from tests.process_lines import stdout_on_a_terminal, wait_stderr
from tests.test_peer_serve import DEADLINE, TSR, env_for, homes, node_id, paired, procs, start_serve, tessera, wait_until  # noqa: F401

PRIVATE = "PRIVATE-RUNBOOK-42 the root password is hunter2"


def ok(home: Path, *args: str) -> subprocess.CompletedProcess:
    done = tessera(home, *args)
    assert done.returncode == 0, (args, done.stderr)
    return done


def hits(home: Path, *args: str) -> list[dict]:
    return [json.loads(line) for line in ok(home, "search", *args).stdout.splitlines() if line.strip()]


def replica_paths(home: Path, of: Path) -> set[str]:
    """The paths of the documents in ``home``'s replica of ``of`` (empty before it has any)."""
    from tessera.core.peers import replica_files

    conn = replica_files.open_read_only(node_id(of), home / "data" / "tessera.db")
    if conn is None:
        return set()
    try:
        return {p for (p,) in conn.execute("SELECT path FROM knowledge_documents")}
    except sqlite3.OperationalError:  # made but not yet migrated
        return set()
    finally:
        conn.close()


def terminal_lines(home: Path, *args: str) -> list[str]:
    """What `tessera ARGS` prints on a terminal (a pty), line by line."""
    return stdout_on_a_terminal([*TSR, *args], env_for(home), DEADLINE).splitlines()


def test_a_knowledge_share_is_pulled_searched_with_peers_kept_current_live_and_stopped_by_unshare(procs, homes, tmp_path):
    alice, bob = homes
    alice_serve, _ = paired(procs, alice, bob)
    notes = tmp_path / "alice-notes"
    write_notes(notes / "public")
    (notes / "private").mkdir()
    (notes / "private" / "secret.md").write_text(f"# Secret\n\nCrashLoopBackOff {PRIVATE}\n")
    ok(alice, "ingest", str(notes))  # one root: public/ and private/ under it
    public = (notes / "public").resolve()
    shared = ok(alice, "peer", "share", f"knowledge:{notes}/public", "--with", "bob")
    assert f"shared knowledge:{public} with bob (5 documents" in shared.stdout

    mine = tmp_path / "bob-notes"
    mine.mkdir()
    (mine / "crashloop.md").write_text("# Bob's crash loop notes\n\nA pod in CrashLoopBackOff: read its previous "
                                       "logs with kubectl logs --previous.\n")
    ok(bob, "ingest", str(mine))

    pulled = ok(bob, "peer", "sync")
    (line,) = [json.loads(text) for text in pulled.stdout.splitlines() if text.strip()]
    assert line["status"] == "ok" and line["shares"][f"knowledge:{public}"]["items"] == 5
    assert replica_paths(bob, alice) == {f"public/notes/{path}" for path in NOTES_DOCUMENTS}  # relative to alice's root
    for name in os.listdir(bob / "data" / "peers" / node_id(alice)):  # the replica and its WAL
        assert b"hunter2" not in (bob / "data" / "peers" / node_id(alice) / name).read_bytes()

    # search --peers: alice's rows and bob's own, merged by score, each labelled with its source
    found = hits(bob, "--peers", "CrashLoopBackOff", "--mode", "bm25")
    assert {h["source"] for h in found} == {"alice", "local"}, found
    assert [h["score"] for h in found] == sorted((h["score"] for h in found), reverse=True)
    theirs = [h for h in found if h["source"] == "alice"]
    assert theirs[0]["path"] == "public/notes/notes/crashloop.txt" and "hunter2" not in json.dumps(found)
    assert [h["source"] for h in hits(bob, "CrashLoopBackOff")] == ["local"]  # without --peers, bob's own only
    lines = terminal_lines(bob, "search", "--peers", "CrashLoopBackOff", "--mode", "bm25", "--color", "never")
    assert any(text.startswith("[alice] (0.") and ") public/notes/notes/crashloop.txt — " in text for text in lines), lines
    assert any(text.startswith("[local] (") and ") crashloop.md — " in text for text in lines), lines

    # live: bob's serve subscribes; an update and a delete at alice reach bob's replica
    subscriber, _ = start_serve(procs, bob)
    wait_stderr(subscriber, lambda text: '"subscription"' in text, timeout=DEADLINE)
    runbook = notes / "public" / "notes" / "runbooks" / "api.md"
    runbook.write_text(runbook.read_text() + "\n## Zephyr\n\nDrain with the zephyrwidget tool first.\n")
    (notes / "public" / "notes" / "tools" / "check.sh").unlink()
    ok(alice, "ingest", str(notes))
    wait_until(lambda: "public/notes/tools/check.sh" not in replica_paths(bob, alice), "the delete in bob's replica")
    wait_until(lambda: [h["source"] for h in hits(bob, "--peers", "zephyrwidget", "--mode", "bm25")] == ["alice"],
               "the update found by bob's search --peers")

    # unsharing ends the subscription's pages: what alice ingests next stays with her
    ok(alice, "peer", "unshare", f"knowledge:{public}")
    wait_stderr(subscriber, lambda text: '"subscription_failed"' in text and "is not shared" in text, timeout=DEADLINE)
    (notes / "public" / "later.md").write_text("# Later\n\nquasarword after the unshare\n")
    ok(alice, "ingest", str(notes))
    assert ok(bob, "peer", "sync").returncode == 0
    assert "later.md" not in replica_paths(bob, alice)
    assert hits(bob, "--peers", "quasarword", "--mode", "bm25") == []
