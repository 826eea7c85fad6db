"""tessera ingest --watch, as a real subprocess: saved, renamed and deleted files reach the index,
a changed .gitignore re-scans, SIGTERM and Ctrl-C stop it cleanly (docs/knowledge.md "Ingesting")."""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from knowledge_helpers import consistency_problems, write_notes

DEADLINE = 60.0


class Watcher:
    """A running ``tessera ingest --watch ROOT`` with its stderr lines collected."""

    def __init__(self, root: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "ingest", "--watch", str(root)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_line(self, predicate) -> str:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.reader.is_alive(), f"the watch exited and said no more: {self.seen}"
                continue
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no such line within {DEADLINE} s: {self.seen}")

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=DEADLINE)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def watched(tmp_path):
    root = write_notes(tmp_path)
    watcher = Watcher(root)
    try:
        watcher.wait_line(lambda line: '"event": "ingest.watching"' in line)
        yield root, watcher
    finally:
        watcher.kill()


def store() -> sqlite3.Connection:
    path = Path(os.environ["TESSERA_HOME"]) / "tessera.db"
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def poll(condition, what: str):
    """Poll ``condition()`` (a fresh read of the store each time) until it is true."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        conn = store()
        try:
            if condition(conn):
                return
        finally:
            conn.close()
        time.sleep(0.005)
    raise AssertionError(f"not within {DEADLINE} s: {what}")


def searchable(word: str):
    return lambda conn: conn.execute("SELECT count(*) FROM knowledge_fts WHERE knowledge_fts MATCH ?", (word,)).fetchone()[0] > 0


def paths(conn) -> set[str]:
    return {row[0] for row in conn.execute("SELECT path FROM knowledge_documents")}


def test_saved_renamed_and_deleted_files_reach_the_index_and_sigterm_exits_0(watched):
    root, watcher = watched
    (root / "runbooks" / "fresh.md").write_text("# Fresh\n\nThe word zebracorn appears here.\n")
    poll(searchable("zebracorn"), "a new file's word searchable")
    batch = json.loads(watcher.wait_line(lambda line: '"event": "ingest.batch"' in line))
    assert batch["added"] == 1 and "runbooks/fresh.md" in batch["paths"] and batch["level"] == "info"

    (root / "runbooks" / "web.md").write_text("# Web\n\nnow about quokkaflow only\n")
    poll(searchable("quokkaflow"), "a saved file's new word searchable")
    poll(lambda conn: not searchable("Remediation")(conn), "a saved file's old text gone")

    (root / "runbooks" / "api.md").rename(root / "runbooks" / "api-renamed.md")
    poll(lambda conn: {"runbooks/api-renamed.md"} <= paths(conn) and "runbooks/api.md" not in paths(conn), "a rename")

    (root / "notes" / "crashloop.txt").unlink()
    poll(lambda conn: "notes/crashloop.txt" not in paths(conn), "a delete")

    (root / "scratch.log").write_text("ignored zebrawombat\n")  # *.log is ignored
    (root / ".gitignore").write_text("*.log\nbuild/\ntools/\n")
    poll(lambda conn: not any(p.startswith("tools/") for p in paths(conn)), "a .gitignore change re-scans")
    assert not searchable("zebrawombat")(store())

    assert watcher.stop(signal.SIGTERM) == 0
    watcher.wait_line(lambda line: '"event": "ingest.stopped"' in line)
    # stderr is not a terminal: after the summary line, every line is JSON (no library's log lines)
    assert watcher.seen[0].startswith("tessera: ingested ")
    assert all(isinstance(json.loads(line), dict) for line in watcher.seen[1:])
    conn = store()
    assert consistency_problems(conn) == []
    assert paths(conn) == {"runbooks/fresh.md", "runbooks/web.md", "runbooks/api-renamed.md"}


def test_ctrl_c_exits_130_with_the_index_consistent(watched):
    root, watcher = watched
    for i in range(20):
        (root / "runbooks" / f"many-{i}.md").write_text(f"# Many {i}\n\nword{i}x\n")
    assert watcher.stop(signal.SIGINT) == 130
    assert consistency_problems(store()) == []


def test_a_hang_up_exits_129_with_the_index_consistent(watched):
    root, watcher = watched
    (root / "runbooks" / "hung.md").write_text("# Hung\n\nthe word hangupword\n")
    poll(searchable("hangupword"), "the file saved before the hang-up searchable")
    assert watcher.stop(signal.SIGHUP) == 129
    assert consistency_problems(store()) == []


def test_a_file_saved_during_the_first_ingest_is_not_missed(tmp_path):
    """watch() calls on_ready (where the CLI runs its first full ingest) only once the watcher
    runs: a save then is applied right after, not lost until the next save."""
    from tessera.core.knowledge.ingest import resolve_targets
    from tessera.core.knowledge.watching import watch
    from tessera.core.store.db import connect

    root = write_notes(tmp_path)
    conn = connect()
    stop = threading.Event()

    def save_during_first_ingest():
        (root / "runbooks" / "web.md").write_text("# Web\n\nsaved while ingesting: platypusword\n")

    worker = threading.Thread(target=watch, args=(conn, resolve_targets([str(root)]), stop),
                              kwargs={"on_ready": save_during_first_ingest}, daemon=True)
    worker.start()
    try:
        poll(searchable("platypusword"), "the save made during the first ingest applied")
    finally:
        stop.set()
        worker.join(DEADLINE)
    assert not worker.is_alive()


def test_a_batch_the_locked_store_refused_is_applied_once_the_lock_is_gone(tmp_path, monkeypatch):
    """The store locked past its timeout is an error for that batch, reported, and its paths are
    tried again with the next batch: the watch goes on and the change lands."""
    from tessera.core.knowledge.ingest import ingest_paths, resolve_targets
    from tessera.core.knowledge.watching import watch
    from tessera.core.store.db import connect

    root = write_notes(tmp_path)
    conn = connect()
    ingest_paths(conn, [str(root)])
    monkeypatch.setenv("TESSERA_LOCK_TIMEOUT", "0.05")
    watcher_conn = connect()
    errors: list[str] = []
    ready = threading.Event()
    stop = threading.Event()
    worker = threading.Thread(target=watch, args=(watcher_conn, resolve_targets([str(root)]), stop), daemon=True,
                              kwargs={"on_ready": ready.set, "on_error": lambda exc, paths: errors.append(exc.one_line())})
    blocker = sqlite3.connect(Path(os.environ["TESSERA_HOME"]) / "tessera.db", isolation_level=None)
    worker.start()
    try:
        assert ready.wait(DEADLINE)
        blocker.execute("BEGIN IMMEDIATE")  # another process's write, held
        (root / "runbooks" / "web.md").write_text("# Web\n\nafter the lock: wombatword\n")
        deadline = time.monotonic() + DEADLINE
        while not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert errors and "locked" in errors[0]
        blocker.execute("ROLLBACK")
        poll(searchable("wombatword"), "the refused batch applied after the lock went")
    finally:
        stop.set()
        worker.join(DEADLINE)
        blocker.close()
    assert not worker.is_alive()

