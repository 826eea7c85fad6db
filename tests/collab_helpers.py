"""Real-process helpers for the collab tests: nodes (data homes) made with `tessera peer init`,
befriended in their stores (the outcome of pairing, which tests/test_peer_serve.py covers), a
notebook shared, `tessera serve` running, and clients as subprocesses of tests/collab_driver.py
speaking JSON lines. Every wait polls a condition with a generous deadline."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.test_peer_serve import DEADLINE, env_for, node_id, store, tessera, wait_until

DRIVER = str(Path(__file__).with_name("collab_driver.py"))
ROOT = str(Path(__file__).resolve().parent.parent)


def init_node(home: Path, name: str) -> str:
    result = tessera(home, "peer", "init", "--name", name)
    assert result.returncode == 0, result.stderr
    return node_id(home)


def befriend(owner: Path, other: Path, *, role: str = "editor") -> None:
    """``owner`` publishes to ``other`` with ``role``; ``other`` knows ``owner`` (by its name) at
    the address of its running serve (set later by ``point_at``)."""
    from tessera.core.peers import identity, peer_list
    from tessera.core.store.db import transaction

    for me, them, publish in ((owner, other, True), (other, owner, False)):
        conn = store(me)
        them_conn = store(them)
        try:
            them_id = identity.local_identity(them_conn).node_id
            them_name = identity.local_identity(them_conn).name
            with transaction(conn):
                peer_list.add(conn, them_id, them_name, role=role if publish else "viewer", publish=publish,
                              subscribe=False, added_at="2026-12-01T00:00:00Z")
        finally:
            conn.close()
            them_conn.close()


def point_at(home: Path, owner: Path, ticket: str) -> None:
    """``home`` dials ``owner`` at this ticket (its serve's, from the listening line)."""
    from tessera.core.peers import peer_list
    from tessera.core.store.db import transaction

    conn = store(home)
    try:
        with transaction(conn):
            peer_list.set_address(conn, node_id(owner), ticket)
    finally:
        conn.close()


def notebook_with_cell(home: Path, name: str, source: str) -> str:
    """A notebook with one query cell; its cell id."""
    assert tessera(home, "notebook", "new", name).returncode == 0
    added = tessera(home, "cell", "add", name, source)
    assert added.returncode == 0, added.stderr
    from tessera.core.notebook import repository

    conn = store(home)
    try:
        return repository.load(conn, name).ids()[0]
    finally:
        conn.close()


def share(home: Path, name: str, *peers: str) -> None:
    result = tessera(home, "peer", "share", name, *[arg for p in peers for arg in ("--with", p)])
    assert result.returncode == 0, result.stderr


def owner_notebook(home: Path, name: str) -> dict:
    from tessera.core.notebook import repository

    conn = store(home)
    try:
        return repository.load(conn, name).to_dict()
    finally:
        conn.close()


def sources(notebook: dict) -> dict:
    """cell id -> source, from a to_dict snapshot."""
    return {cell["id"]: cell["source"] for row in notebook["rows"] for cell in row["cells"]}


def layout(notebook: dict) -> list[list[str]]:
    return [[cell["id"] for cell in row["cells"]] for row in notebook["rows"]]


@dataclass
class Driver:
    """One client process (tests/collab_driver.py)."""

    proc: subprocess.Popen
    lines: queue.Queue
    seen: list
    # lines read, since the last command began, while waiting for another: an event the client's
    # thread printed before the answer to the command that caused it (a refusal before the "done"
    # of the "type" that drew it). The next waits look here first; each command starts afresh, so a
    # wait never matches a line from before the command preceding it.
    unclaimed: list = field(default_factory=list)

    def begin(self, op: str, **fields) -> None:
        """Start one command without waiting for it (``done`` then waits)."""
        self.unclaimed.clear()
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()

    def done(self, op: str, timeout: float = DEADLINE) -> dict:
        line = self.next(lambda l: l.get("event") == "done" and l.get("op") == op, f"the answer to {op}", timeout)
        assert "error" not in line, line
        return line["result"]

    def send(self, op: str, **fields) -> dict:
        """Run one command; its result (fails on an error)."""
        self.begin(op, **fields)
        line = self.next(lambda l: l.get("event") == "done" and l.get("op") == op, f"the answer to {op}")
        assert "error" not in line, line
        return line["result"]

    def next(self, predicate, what: str, timeout: float = DEADLINE) -> dict:
        for i, line in enumerate(self.unclaimed):
            if predicate(line):
                del self.unclaimed[: i + 1]  # the lines before it were passed over, as when read in order
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if predicate(line):
                return line
            self.unclaimed.append(line)
        raise AssertionError(f"timed out waiting for {what}; saw {self.seen[-20:]}; "
                             f"exit {self.proc.poll()}")

    def show(self) -> dict:
        return self.send("show")

    def wait_show(self, condition, what: str, timeout: float = DEADLINE) -> dict:
        """Poll ``show`` until ``condition(result)``."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.show()
            if condition(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last: {shown}")
            time.sleep(0.05)

    def wait_synced(self) -> None:
        assert self.send("wait_synced", timeout=DEADLINE), self.seen[-20:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"op": "stop"}) + "\n")
            self.proc.stdin.flush()
            self.next(lambda l: l.get("event") == "stopped", "the driver to stop")
            self.proc.wait(DEADLINE)


def start_driver(procs_started: list, home: Path, peer: str, notebook: str, run: str = "none") -> Driver:
    proc = subprocess.Popen([sys.executable, DRIVER, peer, notebook, run], env={**env_for(home), "PYTHONPATH": ROOT},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    procs_started.append(proc)
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            try:
                lines.put(json.loads(line))
            except ValueError:
                lines.put({"event": "garbage", "line": line})

    import threading

    threading.Thread(target=pump, daemon=True).start()
    driver = Driver(proc, lines, [])
    driver.next(lambda l: l.get("event") == "started", "the driver to start")
    return driver


def wait_owner(home: Path, name: str, condition, what: str) -> dict:
    return wait_until(lambda: (lambda nb: nb if condition(nb) else None)(owner_notebook(home, name)), what)
