"""Benchmark: live collaboration over real ``tessera serve`` processes on 127.0.0.1 (relays
off). Prints one JSON object on stdout; progress on stderr.

Nodes: ``alice`` owns the notebook ``ops`` and runs ``tessera serve`` with a kubeconfig for the
kmock-based API emulator (tests/kube_emulator.py); ``bob``, ``carol`` and ``dave`` are editors
and ``erin`` a viewer, each a separate process using core/collab/client.CollabClient (what
``tessera dash alice:ops`` runs). Peers are added on both sides directly (no pairing: bench/peers.py
measures that).

- ``keystroke_ms``: bob types --keystrokes characters at --rate a second into a cell; for each,
  the time until it is in the document of ``carol`` (another node's client, what its dashboard
  draws from), until alice's own NotebookSession (what alice's dashboard draws from) has it, and
  until alice's dashboard (``tessera dash ops``'s app, headless under Textual's run_test) renders
  the pane with it. p50/p95; the first WARMUP_KEYS keystrokes are listed apart. Clocks: every process reads CLOCK_MONOTONIC, which is one clock machine-wide on Linux.
- ``three_editors``: bob, carol and dave each type their own letter at --rate a second for
  --seconds into one cell at once; afterwards every client's document and alice's store are
  compared: ``all_present`` is true when each holds every character of each editor; ``cpu_pct``
  per editor process and for alice's serve over the typing.
- ``viewer_pane_ms``: a pod is added to the emulator --changes times; the time until erin's
  owner-run pane (collab_pane messages, core/collab/pane_wire.PaneAssembler) lists it. p50/p95.

The other processes are this file run with ``--role ...``.

Usage: .venv/bin/python bench/collab.py [--keystrokes 200] [--rate 10] [--seconds 60] [--changes 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
from procstat import proc_cpu_s  # noqa: E402

TYPE_CELL = "ctype01"  # the cell bob types in (keystroke latency)
SHARED_CELL = "cshare1"  # the cell three editors type in at once
PODS_CELL = "cpods01"  # the owner-run pane the viewer watches
LETTERS = {"bob": "b", "carol": "c", "dave": "d"}
WARMUP_KEYS = 5  # bob's first keystrokes: reported apart (the dashboard's first frames after start-up)


def log(msg: str) -> None:
    print(f"[collab bench] {msg}", file=sys.stderr, flush=True)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _percentiles(samples: list[float]) -> dict:
    if not samples:
        return {"p50": None, "p95": None, "n": 0}
    ordered = sorted(samples)
    return {"p50": _ms(statistics.median(ordered)), "p95": _ms(ordered[max(0, int(len(ordered) * 0.95) - 1)]),
            "max": _ms(ordered[-1]), "n": len(ordered)}


def emit(**fields) -> None:
    print(json.dumps({"t": time.monotonic(), **fields}), flush=True)


# --- the child processes ---------------------------------------------------------------------


def _client(home: str, run: str, **callbacks):
    from tessera.core.collab.client import CollabClient

    os.environ["TESSERA_HOME"] = home
    client = CollabClient(str(Path(home) / "tessera.db"), "alice", "ops", run=run, **callbacks).start()
    if not client.wait_synced(60):
        emit(event="error", reason="no sync within 60 s")
        sys.exit(1)
    return client


def _counts(text: str) -> dict:
    return {letter: text.count(letter) for letter in LETTERS.values()}


def role_typist(args) -> None:
    """Type ``--count`` characters of ``--letter`` at ``--rate`` a second into ``--cell``, each
    after the last one of ours (as a person typing on in one place), logging each keystroke."""
    client = _client(args.home, "none")
    emit(event="ready")
    sys.stdin.readline()  # the go
    letter, cell = args.letter, args.cell
    cpu0, wall0 = time.process_time(), time.monotonic()
    period = 1.0 / args.rate
    due = time.monotonic()
    for k in range(1, args.count + 1):
        def type_one(nb):
            text = nb.cell_by_id(cell)["source"]
            at = text.rfind(letter) + 1 if letter in text else len(text)
            nb.edit_source_by_id(cell, text[:at] + letter + text[at:])

        emit(event="key", k=k)
        client.edit(type_one)
        due += period
        time.sleep(max(0.0, due - time.monotonic()))
    emit(event="typed", cpu_s=time.process_time() - cpu0, wall_s=time.monotonic() - wall0)
    _final(client, args.cell)


def _final(client, cell: str) -> None:
    sys.stdin.readline()  # the parent asks for the final text once everybody has stopped typing
    with client.lock:
        text = client.notebook.cell_by_id(cell)["source"]
    emit(event="final", counts=_counts(text))
    client.stop()


def role_watcher(args) -> None:
    """Log each time the count of a letter in ``--cell`` grows (a client's document)."""
    seen = {letter: 0 for letter in LETTERS.values()}
    holder = {}
    lock = threading.Lock()

    def changed(_origin: str) -> None:
        client = holder.get("client")
        if client is None:
            return
        with client.lock:
            text = client.notebook.cell_by_id(args.cell)["source"]
        now = time.monotonic()
        with lock:
            for letter, n in _counts(text).items():
                if n > seen[letter]:
                    seen[letter] = n
                    print(json.dumps({"t": now, "event": "seen", "letter": letter, "count": n}), flush=True)

    holder["client"] = _client(args.home, "none", on_change=changed)
    emit(event="ready")
    _final(holder["client"], args.cell)


def role_owner_watcher(args) -> None:
    """The same at the owner: a NotebookSession over alice's store (the dashboard's source)."""
    from tessera.core.notebook.session import NotebookSession

    os.environ["TESSERA_HOME"] = args.home
    seen = {letter: 0 for letter in LETTERS.values()}
    lock = threading.Lock()

    def looked(session) -> None:
        now = time.monotonic()
        for pane in list(session.panes.values()):
            if pane.cell.get("id") != args.cell:
                continue
            with lock:
                for letter, n in _counts(pane.cell.get("source", "")).items():
                    if n > seen[letter]:
                        seen[letter] = n
                        print(json.dumps({"t": now, "event": "seen", "letter": letter, "count": n}), flush=True)

    session = NotebookSession(str(Path(args.home) / "tessera.db"), "ops",
                              on_update=lambda pane: looked(session), on_layout=looked)
    session.start()
    session.loaded.wait(60)
    emit(event="ready")
    sys.stdin.readline()
    session.stop()


def role_owner_dash(args) -> None:
    """The same at the owner's dashboard: ``tessera dash ops``'s app, headless (Textual's
    run_test), logging when the pane of ``--cell`` *renders* a text holding more of a letter."""
    import asyncio

    os.environ["TESSERA_HOME"] = args.home
    os.environ["NO_COLOR"] = "1"
    from tessera.cli.tui import cell_pane
    from tessera.cli.tui.app import DashApp
    from tessera.core.notebook.session import NotebookSession, SessionOptions

    seen = {letter: 0 for letter in LETTERS.values()}
    drawn = cell_pane.CellPane.render

    def render(self):
        out = drawn(self)
        if self.cell_id == args.cell:
            now = time.monotonic()
            for letter, n in _counts(self.state.cell.get("source", "")).items():
                if n > seen[letter]:
                    seen[letter] = n
                    print(json.dumps({"t": now, "event": "seen", "letter": letter, "count": n}), flush=True)
        return out

    cell_pane.CellPane.render = render
    options = SessionOptions()
    options.presence = True
    db = str(Path(args.home) / "tessera.db")
    app = DashApp(NotebookSession(db, "ops", options), db, color=False)

    async def run() -> None:
        async with app.run_test(size=(120, 40)):
            emit(event="ready")
            await asyncio.to_thread(sys.stdin.readline)

    asyncio.run(run())


def role_viewer(args) -> None:
    """Log each pod name the owner-run pane ``--cell`` newly lists."""
    from tessera.core.collab.pane_wire import PaneAssembler

    assembler = PaneAssembler()
    known: set[str] = set()

    def pane(cell_id: str, data: bytes) -> None:
        if cell_id != args.cell:
            return
        view = assembler.apply(cell_id, data)
        now = time.monotonic()
        for row in view.rows.values():
            name = row.get("name")
            if isinstance(name, str) and name not in known:
                known.add(name)
                print(json.dumps({"t": now, "event": "pod", "name": name}), flush=True)

    client = _client(args.home, "owner", on_pane=pane)
    emit(event="ready")
    sys.stdin.readline()
    client.stop()


ROLES = {"typist": role_typist, "watcher": role_watcher, "owner-watcher": role_owner_watcher,
         "owner-dash": role_owner_dash, "viewer": role_viewer}


# --- the parent ------------------------------------------------------------------------------


class Child:
    """A child process of this file; its JSON lines are read on a thread."""

    def __init__(self, name: str, *args: str, env: dict):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.lines: list[dict] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.lines.append(item)
                self.cond.notify_all()

    def wait_for(self, event: str, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for item in self.lines:
                    if item.get("event") == event:
                        return item
                    if item.get("event") == "error":
                        raise SystemExit(f"{self.name}: {item.get('reason')}")
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise SystemExit(f"{self.name} gave no {event} (exit {self.proc.poll()})")
                self.cond.wait(min(left, 1.0))

    def say(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def events(self, event: str) -> list[dict]:
        with self.cond:
            return [item for item in self.lines if item.get("event") == event]

    def end(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _store(home: Path, name: str):
    from tessera.core.peers import identity
    from tessera.core.store.db import connect

    conn = connect(home / "tessera.db")
    identity.init(conn, name)
    return conn


def _setup(root: Path, kubeconfig: Path) -> tuple[dict, dict]:
    """Every node's store, the notebook and shares at alice, the peers on both sides."""
    from tessera.core.notebook import repository
    from tessera.core.notebook.model import Notebook
    from tessera.core.peers import identity, peer_list, shares
    from tessera.core.store.db import transaction
    from tessera.core.times import now

    homes = {name: root / name for name in ("alice", "bob", "carol", "dave", "erin")}
    conns = {name: _store(home, name) for name, home in homes.items()}
    ids = {name: identity.local_identity(conn).node_id for name, conn in conns.items()}
    alice = conns["alice"]
    nb = Notebook.from_dict({"title": "bench", "rows": [
        {"cells": [{"id": PODS_CELL, "type": "query", "refresh": "watch", "sources": [],
                    "source": "MATCH (p:Pod) RETURN p.metadata.name AS name"}]},
        {"cells": [{"id": TYPE_CELL, "type": "markdown", "source": ""}]},
        {"cells": [{"id": SHARED_CELL, "type": "markdown", "source": ""}]},
    ]}, name="ops")
    repository.create(alice, "ops", notebook=nb)
    with transaction(alice):
        shares.add(alice, "notebook:ops", [shares.EVERY_PEER], added_at=now())
        for name in ("bob", "carol", "dave", "erin"):
            peer_list.add(alice, ids[name], name, role="viewer" if name == "erin" else "editor", publish=True,
                          subscribe=False, added_at=now())
    for name in ("bob", "carol", "dave", "erin"):
        with transaction(conns[name]):
            peer_list.add(conns[name], ids["alice"], "alice", role="viewer", publish=False, subscribe=False,
                          added_at=now())
    return homes, conns


def _set_alice_address(conns: dict, ticket: str) -> None:
    from tessera.core.peers import identity, peer_list
    from tessera.core.store.db import transaction

    alice_id = identity.local_identity(conns["alice"]).node_id
    for name, conn in conns.items():
        if name != "alice":
            with transaction(conn):
                peer_list.set_address(conn, alice_id, ticket)


def _start_serve(home: Path, kubeconfig: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "TESSERA_HOME": str(home), "TESSERA_PEER_LOOPBACK": "1", "KUBECONFIG": str(kubeconfig)}
    proc = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "serve"], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        if '"listening"' in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, json.loads(line)["ticket"]
    raise SystemExit(f"tessera serve did not start (exit {proc.wait()})")


def _latencies(sent: list[dict], seen: list[dict], letter: str) -> list[float]:
    """For keystroke k (its emit time), the first time the watcher saw k or more of ``letter``."""
    arrivals = sorted((item["count"], item["t"]) for item in seen if item["letter"] == letter)
    out = []
    j = 0
    for key in sent:
        while j < len(arrivals) and arrivals[j][0] < key["k"]:
            j += 1
        if j < len(arrivals):
            out.append(arrivals[j][1] - key["t"])
    return out


def measure(args, root: Path) -> dict:
    from kube_emulator import Emulator, write_kubeconfig

    emu = Emulator()
    kubeconfig = write_kubeconfig(root / "kubeconfig", {"emu": (emu.url, "default")}, current="emu")
    for n in range(20):
        emu.add(_pod(f"base-{n}"))
    homes, conns = _setup(root, kubeconfig)
    serve, ticket = _start_serve(homes["alice"], kubeconfig)
    _set_alice_address(conns, ticket)
    env = {**os.environ, "TESSERA_PEER_LOOPBACK": "1"}
    env.pop("KUBECONFIG", None)
    children: list[Child] = []
    result: dict = {}
    try:
        # -- one typist, a peer watcher and the owner's session ---------------------------------
        log("keystrokes: bob types, carol and alice's session watch")
        watcher = Child("carol", "--role", "watcher", "--home", str(homes["carol"]), "--cell", TYPE_CELL, env=env)
        owner = Child("alice-session", "--role", "owner-watcher", "--home", str(homes["alice"]), "--cell", TYPE_CELL,
                      env={**env, "KUBECONFIG": str(kubeconfig)})
        dash = Child("alice-dash", "--role", "owner-dash", "--home", str(homes["alice"]), "--cell", TYPE_CELL,
                     env={**env, "KUBECONFIG": str(kubeconfig)})
        typist = Child("bob", "--role", "typist", "--home", str(homes["bob"]), "--cell", TYPE_CELL, "--letter", "b",
                       "--count", str(args.keystrokes), "--rate", str(args.rate), env=env)
        children += [watcher, owner, dash, typist]
        for child in (watcher, owner, dash, typist):
            child.wait_for("ready")
        typist.say()
        typist.wait_for("typed", timeout=args.keystrokes / args.rate + 120)
        _wait_count(watcher, "b", args.keystrokes)
        _wait_count(owner, "b", args.keystrokes)
        _wait_count(dash, "b", args.keystrokes)
        keys = typist.events("key")
        warm, sent = keys[:WARMUP_KEYS], keys[WARMUP_KEYS:]
        result["keystroke_ms"] = {
            "to_peer_client": _percentiles(_latencies(sent, watcher.events("seen"), "b")),
            "to_owner_session": _percentiles(_latencies(sent, owner.events("seen"), "b")),
            "to_owner_dashboard_render": _percentiles(_latencies(sent, dash.events("seen"), "b")),
            "keystrokes": len(sent), "rate_per_s": args.rate,
            # the first keystrokes after everything started, kept out of the percentiles above
            "warmup_to_owner_dashboard_render": [_ms(x) for x in _latencies(warm, dash.events("seen"), "b")],
        }
        for child in (typist, watcher):
            child.say()
        owner.say()
        dash.say()
        for child in (watcher, owner, dash, typist):
            child.end()
        children.clear()

        # -- three editors at once -----------------------------------------------------------------
        log(f"three editors typing {args.rate}/s for {args.seconds} s")
        count = int(args.rate * args.seconds)
        typists = [Child(name, "--role", "typist", "--home", str(homes[name]), "--cell", SHARED_CELL, "--letter",
                         letter, "--count", str(count), "--rate", str(args.rate), env=env)
                   for name, letter in LETTERS.items()]
        children += typists
        for child in typists:
            child.wait_for("ready")
        serve_cpu0 = proc_cpu_s(serve.pid)
        wall0 = time.monotonic()
        for child in typists:
            child.say()
        typed = {child.name: child.wait_for("typed", timeout=args.seconds + 300) for child in typists}
        serve_cpu = (proc_cpu_s(serve.pid) or 0) - (serve_cpu0 or 0)
        wall = time.monotonic() - wall0
        finals = {}
        deadline = time.monotonic() + 120
        want = {letter: count for letter in LETTERS.values()}
        while True:  # let the last updates settle everywhere
            owner_text = _owner_text(homes["alice"], SHARED_CELL)
            if _counts(owner_text) == want or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # the owner's last relays reach the clients (bench only: no test waits so)
        for child in typists:
            child.say()
            finals[child.name] = child.wait_for("final")["counts"]
        finals["alice"] = _counts(_owner_text(homes["alice"], SHARED_CELL))
        result["three_editors"] = {
            "editors": len(typists), "chars_each": count, "rate_per_s": args.rate, "seconds": args.seconds,
            "all_present": all(counts == want for counts in finals.values()),
            "counts": finals,
            "cpu_pct": {name: round(100 * t["cpu_s"] / t["wall_s"], 1) for name, t in typed.items()},
            "owner_serve_cpu_pct": round(100 * serve_cpu / wall, 1),
        }
        for child in typists:
            child.end()
        children.clear()

        # -- a viewer's owner-run pane ---------------------------------------------------------
        log(f"viewer pane: {args.changes} pods added at the owner's cluster")
        viewer = Child("erin", "--role", "viewer", "--home", str(homes["erin"]), "--cell", PODS_CELL, env=env)
        children.append(viewer)
        viewer.wait_for("ready")
        _wait_pod(viewer, "base-19")
        samples = []
        for n in range(args.changes):
            name = f"bench-{n}"
            start = time.monotonic()
            emu.add(_pod(name))
            arrived = _wait_pod(viewer, name)
            samples.append(arrived - start)
            time.sleep(0.05)
        result["viewer_pane_ms"] = _percentiles(samples)
        viewer.say()
        viewer.end()
        children.clear()
    finally:
        for child in children:
            child.proc.kill()
        serve.terminate()
        serve.wait()
        emu.close()
    return result


def _owner_text(home: Path, cell: str) -> str:
    from tessera.core.notebook import repository
    from tessera.core.store.db import connect

    conn = connect(home / "tessera.db")
    try:
        return repository.load(conn, "ops").cell_by_id(cell)["source"]
    finally:
        conn.close()


def _wait_count(child: Child, letter: str, count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    with child.cond:
        while not any(i.get("letter") == letter and i.get("count", 0) >= count for i in child.lines):
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"{child.name} never saw {count} of '{letter}'")
            child.cond.wait(min(left, 1.0))


def _wait_pod(child: Child, name: str, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    with child.cond:
        while True:
            for item in child.lines:
                if item.get("event") == "pod" and item.get("name") == name:
                    return item["t"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"{child.name}'s pane never listed {name}")
            child.cond.wait(min(left, 1.0))


def _pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}, "status": {"phase": "Running"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keystrokes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--role", choices=sorted(ROLES))
    parser.add_argument("--home")
    parser.add_argument("--cell")
    parser.add_argument("--letter")
    parser.add_argument("--count", type=int)
    args = parser.parse_args()
    if args.role:
        ROLES[args.role](args)
        return
    import platform

    with tempfile.TemporaryDirectory(prefix="tessera-collab-bench-") as tmp:
        result = measure(args, Path(tmp))
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                         "load_1m": round(os.getloadavg()[0], 2)}
    result["command"] = "bench/collab.py " + " ".join(sys.argv[1:])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
