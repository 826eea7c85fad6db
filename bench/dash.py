#!/usr/bin/env python3
"""Benchmark: ``tessera dash`` with 8 live panes over a 10k-pod replay.

Generates (seeded, into a temporary directory) a recording in the ``tessera/1`` format — the
initial state of a cluster of ``--pods`` pods with their Deployments, ReplicaSets, Services,
Nodes and Namespaces (bench/live.py's generator), then steady churn: pod phase flips, restarts,
pod replacements and scale events at ``--rate`` changes per recording second — and a notebook
of 8 live cells (refresh=watch, sources=["replay:FILE"]) in rows of 1, 2, 4 and 1 in a
throwaway TESSERA_HOME. Then runs the real DashApp in this process under Textual's headless
test driver (``app.run_test(size=(200, 60))``) and measures:

1. ``cpu``: process CPU time (every thread: the Textual event loop, the session's worker, the
   replay's watch-cache threads, the store writer) over the wall time of a steady-state window
   of ``--seconds``, after every pane has its first result and ``--settle`` seconds more; also
   per thread, the number of frames written and pane changes in the window.
2. ``keys``: for ``--presses`` key presses (tab, j, k, v in a fixed pattern), the time from just
   before the key is sent (``pilot.press``) to the first frame the driver writes after the key's
   action has run — the frame that shows the change. p50/p95/max.

The headless driver normally skips the last step of a screen update (turning the composed
frame into terminal escape sequences and writing them); this bench swaps in a driver that
reports itself as not headless, so Textual does that work too, and whose ``write`` timestamps
and discards the frame instead of writing to a terminal. No terminal is involved: terminal
I/O and the terminal's own drawing are not measured.

Prints ONE JSON object on stdout; progress goes to stderr.

Usage:
    .venv/bin/python bench/dash.py [--pods 10000] [--seconds 30] [--presses 50] [--speed 1]
    .venv/bin/python bench/dash.py --quick          # 500 pods, 5 s: a smoke run

See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import gc
import json
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

# Textual redirects sys.stdout/stderr while the app runs; progress goes to the real stderr.
_ERR = sys.__stderr__

from live import Cluster, _git_state, percentile  # noqa: E402 - bench/live.py's cluster generator
from query_join import NAMESPACES  # noqa: E402

START = datetime(2026, 11, 23, 9, 0, 0, tzinfo=timezone.utc)
NOTEBOOK = "benchdash"
TREE_NAMESPACE = "payments"
TREE_PREFIX = "api"

# The dashboard: (row, title, view, query). Rows of 1, 2, 4 and 1 cells.
CELLS: list[tuple[int, str, str, str]] = [
    (1, "Pods not Running", "table",
     'MATCH (p:Pod) WHERE p.status.phase != "Running" '
     "RETURN p.metadata.namespace AS ns, p.metadata.name AS pod, p.status.phase AS phase, "
     "p.status.containerStatuses[0].restartCount AS restarts, p.spec.nodeName AS node ORDER BY ns, pod"),
    (2, "Deployments: desired vs ready", "table",
     "MATCH (d:Deployment) RETURN d.metadata.namespace AS ns, d.metadata.name AS deployment, "
     "d.spec.replicas AS desired, d.status.readyReplicas AS ready ORDER BY ns, deployment"),
    (2, "Pods per phase", "json",
     "MATCH (p:Pod) RETURN p.status.phase AS phase, count(p) AS pods ORDER BY phase"),
    (3, "Restarts per namespace", "yaml",
     "MATCH (p:Pod) RETURN p.metadata.namespace AS ns, SUM{p.status.containerStatuses[*].restartCount} AS restarts, "
     "count(p) AS pods ORDER BY ns"),
    (3, "Pods per node", "table",
     "MATCH (p:Pod)->(n:Node) RETURN n.metadata.name AS node, count(p) AS pods ORDER BY node"),
    (3, "Pods per deployment", "table",
     "MATCH (d:Deployment)->(:ReplicaSet)->(p:Pod) RETURN d.metadata.namespace AS ns, d.metadata.name AS deployment, "
     "count(p) AS pods ORDER BY ns, deployment"),
    (3, f"{TREE_NAMESPACE}/{TREE_PREFIX}* wiring", "tree",
     f'MATCH (d:Deployment {{namespace: "{TREE_NAMESPACE}"}})->(rs:ReplicaSet)->(p:Pod) '
     f'WHERE d.metadata.name STARTS WITH "{TREE_PREFIX}" '
     "RETURN d.metadata.name AS deployment, rs.metadata.name AS rs, p.metadata.name AS pod"),
    (4, "All pods", "table",
     "MATCH (p:Pod) RETURN p.metadata.namespace AS ns, p.metadata.name AS pod, p.status.phase AS phase, "
     "p.status.containerStatuses[0].restartCount AS restarts, p.spec.nodeName AS node, "
     "p.spec.containers[0].image AS image ORDER BY ns, pod"),
]

# The keys pressed, in a repeating pattern: the focus moves on one pane per cycle (tab), which
# is scrolled (j, k) and switched to its next view (v: table -> json -> yaml -> tree -> graph).
KEY_PATTERN = ["tab", "j", "v", "j", "k"]

TARGETS = {"cpu_share": 0.15, "key_p95_ms": 50}


def log(msg: str) -> None:
    print(f"[dash {time.strftime('%H:%M:%S')}] {msg}", file=_ERR, flush=True)


def _r(x: float | None, nd: int = 1) -> float | None:
    return round(x, nd) if x is not None else None


# ---------------------------------------------------------------------------------------------
# The recording: initial state, then churn
# ---------------------------------------------------------------------------------------------


class Churn:
    """Writes the cluster's initial state and then seeded changes to a RecordingWriter."""

    def __init__(self, cluster: Cluster, writer: Any, rng: random.Random) -> None:
        self.c = cluster
        self.w = writer
        self.rng = rng
        self.rv = 1000
        self.events = 0
        self.by_type: collections.Counter = collections.Counter()
        self.rs_of_dep: dict[tuple[str, str], dict] = {}
        self.dep_of_rs: dict[tuple[str, str], dict] = {}
        self.members: dict[tuple[str, str], list[tuple[str, str]]] = collections.defaultdict(list)
        for rs in cluster.replicasets:
            meta = rs["metadata"]
            owner = meta["ownerReferences"][0]["name"]
            self.rs_of_dep[(meta["namespace"], owner)] = rs
        for dep in cluster.deployments:
            meta = dep["metadata"]
            rs = self.rs_of_dep[(meta["namespace"], meta["name"])]
            self.dep_of_rs[(meta["namespace"], rs["metadata"]["name"])] = dep
        for key, pod in cluster.pods.items():
            self.members[(key[0], pod["metadata"]["ownerReferences"][0]["name"])].append(key)

    def emit(self, etype: str, obj: dict, ts: datetime) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.w.write(etype, obj, ts=ts)  # serialised at once, so obj may change afterwards
        self.events += 1

    def initial(self) -> int:
        c = self.c
        objs = c.namespace_objects() + c.node_objects() + c.deployments + c.old_replicasets + c.replicasets
        objs += c.services + list(c.pods.values())
        for obj in objs:
            self.emit("ADDED", obj, START)
        return len(objs)

    # --- changes -------------------------------------------------------------------------

    def _rs_key(self, pod: dict) -> tuple[str, str]:
        return pod["metadata"]["namespace"], pod["metadata"]["ownerReferences"][0]["name"]

    def _ready(self, dep: dict, ts: datetime) -> None:
        """Bring the deployment's status in line with its pods (written only when it changed)."""
        meta = dep["metadata"]
        rs = self.rs_of_dep[(meta["namespace"], meta["name"])]
        keys = self.members[(meta["namespace"], rs["metadata"]["name"])]
        ready = sum(1 for k in keys if self.c.pods[k]["status"]["phase"] == "Running")
        st = dep["status"]
        if st.get("readyReplicas") != ready or st.get("replicas") != len(keys):
            st.update(replicas=len(keys), readyReplicas=ready, availableReplicas=ready)
            self.emit("MODIFIED", dep, ts)

    @staticmethod
    def _set_phase(pod: dict, phase: str) -> None:
        st = pod["status"]
        st["phase"] = phase
        st["conditions"] = [{"type": "Ready", "status": "True" if phase == "Running" else "False"}]
        st["containerStatuses"][0]["ready"] = phase == "Running"

    def change(self, ts: datetime) -> str:
        kind = self.rng.choices(["phase", "restart", "replace", "scale"], [45, 30, 15, 10])[0]
        c = self.c
        if kind == "phase":
            pod = c.random_pod()
            was = pod["status"]["phase"]
            self._set_phase(pod, self.rng.choice(["Pending", "Pending", "Failed"]) if was == "Running" else "Running")
            self.emit("MODIFIED", pod, ts)
            self._ready(self.dep_of_rs[self._rs_key(pod)], ts)
        elif kind == "restart":
            pod = c.random_pod()
            pod["status"]["containerStatuses"][0]["restartCount"] += 1
            self.emit("MODIFIED", pod, ts)
        elif kind == "replace":
            pod = c.random_pod()
            self._delete_pod(pod, ts)
            self._add_pod(self._live_rs(pod), ts)
            self._ready(self.dep_of_rs[self._rs_key(pod)], ts)
        else:
            dep = self.rng.choice(c.deployments)
            meta = dep["metadata"]
            rs = self.rs_of_dep[(meta["namespace"], meta["name"])]
            keys = self.members[(meta["namespace"], rs["metadata"]["name"])]
            n = len(keys)
            delta = 1 if n <= 1 else (-1 if n >= 9 else self.rng.choice([-1, 1]))
            dep["spec"]["replicas"] = n + delta
            dep["metadata"]["generation"] = dep["metadata"].get("generation", 1) + 1
            self.emit("MODIFIED", dep, ts)
            rs["spec"]["replicas"] = n + delta
            rs["status"]["replicas"] = n + delta
            self.emit("MODIFIED", rs, ts)
            if delta > 0:
                self._add_pod(rs, ts)
            else:
                self._delete_pod(c.pods[self.rng.choice(keys)], ts)
            self._ready(dep, ts)
        self.by_type[kind] += 1
        return kind

    def _live_rs(self, pod: dict) -> dict:
        dep = self.dep_of_rs[self._rs_key(pod)]
        return self.rs_of_dep[(dep["metadata"]["namespace"], dep["metadata"]["name"])]

    def _delete_pod(self, pod: dict, ts: datetime) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        del self.c.pods[key]
        self.members[self._rs_key(pod)].remove(key)
        self.emit("DELETED", pod, ts)

    def _add_pod(self, rs: dict, ts: datetime) -> None:
        pod = self.c.new_pod(rs)
        self._set_phase(pod, "Pending" if self.rng.random() < 0.5 else "Running")
        self.members[self._rs_key(pod)].append((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        self.emit("ADDED", pod, ts)


def write_recording(path: Path, pods: int, seed: int, churn_seconds: float, rate: float) -> dict:
    """The recording file: the initial state at START, then ``rate`` changes per second (with
    jitter) for ``churn_seconds``, beginning one second in. Returns what was written."""
    from tessera.core.recording_file import RecordingWriter

    cluster = Cluster(seed)
    cluster.generate(pods)
    with RecordingWriter(path, context="bench-dash", started=START) as writer:
        churn = Churn(cluster, writer, random.Random(seed + 1))
        initial = churn.initial()
        n = int(churn_seconds * rate)
        for i in range(n):
            t = 1.0 + (i + churn.rng.uniform(-0.4, 0.4)) / rate
            churn.change(START + timedelta(seconds=max(0.5, t)))
    return {
        "file": str(path), "file_mb": round(path.stat().st_size / 1e6, 1),
        "pods": pods, "initial_objects": initial,
        "deployments": len(cluster.deployments),
        "replicasets": len(cluster.replicasets) + len(cluster.old_replicasets),
        "services": len(cluster.services), "nodes": len(cluster.nodes), "namespaces": len(NAMESPACES),
        "churn_recording_seconds": churn_seconds, "changes": n, "change_events": churn.events - initial,
        "changes_by_type": dict(churn.by_type),
        "changes_per_recording_s": rate, "events_per_recording_s": round((churn.events - initial) / churn_seconds, 2),
    }


# ---------------------------------------------------------------------------------------------
# The notebook
# ---------------------------------------------------------------------------------------------


def make_notebook(db_path: Path, recording: Path) -> list[list[str]]:
    from tessera.core.notebook import repository
    from tessera.core.store import db

    conn = db.connect(db_path)
    try:
        repository.create(conn, NOTEBOOK, "Dashboard benchmark")
        spec = f"replay:{recording}"
        for _, title, view, query in CELLS:
            repository.add_cell(conn, NOTEBOOK, query, type="query", view=view, refresh="watch", sources=[spec], title=title)
        # every cell starts in its own row: 1 | 2+3 | 4+5 -> 4..7 | 8
        repository.merge_rows(conn, NOTEBOOK, 2)
        repository.merge_rows(conn, NOTEBOOK, 4)
        repository.merge_rows(conn, NOTEBOOK, 6)
        repository.merge_rows(conn, NOTEBOOK, 4)
        layout = repository.load(conn, NOTEBOOK).layout()
    finally:
        conn.close()
    sizes = [len(r) for r in layout]
    expected = [1, 2, 4, 1]
    if sizes != expected:
        raise RuntimeError(f"notebook layout is {sizes}, not {expected}")
    return layout


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of every live Python thread, by ident: (name, seconds)."""
    out = {}
    for t in threading.enumerate():
        if t.ident is None:
            continue
        try:
            out[t.ident] = (t.name, time.clock_gettime(time.pthread_getcpuclockid(t.ident)))
        except (OSError, AttributeError):
            pass
    return out


def cpu_by_thread(before: dict, after: dict, wall: float) -> dict[str, dict]:
    """Per thread name (watch-* threads summed): CPU seconds and share of one core over ``wall``."""
    sums: collections.Counter = collections.Counter()
    for ident, (name, cpu) in after.items():
        cpu0 = before.get(ident, (name, 0.0))[1]
        label = "watch-cache threads" if name.startswith("watch-") else name
        label = "session worker" if name.startswith("tessera-session-") else label
        label = "main (Textual event loop)" if name == "MainThread" else label
        sums[label] += cpu - cpu0
    return {k: {"cpu_s": round(v, 2), "share": round(v / wall, 3)} for k, v in sums.most_common() if v >= 0.005}


class GcStats:
    """Garbage collections and the time they took, by generation."""

    def __init__(self) -> None:
        self.count = collections.Counter()
        self.seconds = collections.Counter()
        self.longest = 0.0
        self._t = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            dt = time.perf_counter() - self._t
            self.count[info["generation"]] += 1
            self.seconds[info["generation"]] += dt
            self.longest = max(self.longest, dt)

    def snapshot(self) -> tuple[dict, dict, float]:
        """Counts and seconds so far, and the longest collection since the previous snapshot."""
        longest, self.longest = self.longest, 0.0
        return dict(self.count), dict(self.seconds), longest


class Sampler(threading.Thread):
    """CPU-weighted stack sampling of every thread (no profiler hooks): every 1/hz s, each
    thread's current stack is charged the CPU time that thread used since the last sample
    (from its pthread CPU clock), so waiting threads weigh nothing."""

    def __init__(self, hz: float) -> None:
        super().__init__(daemon=True, name="bench-sampler")
        self.interval = 1.0 / hz
        self.depth = 10  # innermost frames kept per stack (function:line, leaf first)
        self.stop_event = threading.Event()
        self.self_cpu: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.incl_cpu: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.total: collections.Counter = collections.Counter()
        self.stacks: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.samples = 0

    def run(self) -> None:
        last: dict[int, float] = {}
        me = threading.get_ident()
        while not self.stop_event.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            frames = sys._current_frames()
            self.samples += 1
            for ident, frame in frames.items():
                if ident == me:
                    continue
                try:
                    cpu = time.clock_gettime(time.pthread_getcpuclockid(ident))
                except OSError:
                    continue
                prev = last.get(ident)
                last[ident] = cpu
                if prev is None or cpu <= prev:
                    continue
                w = cpu - prev
                name = names.get(ident, str(ident))
                name = "watch-cache threads" if name.startswith("watch-") else name
                self.total[name] += w
                seen = set()
                stack = []
                f = frame
                while f is not None:
                    code = f.f_code
                    label = f"{code.co_name} ({_short_path(code.co_filename)}:{code.co_firstlineno})"
                    if not stack:
                        self.self_cpu[name][label] += w
                    if len(stack) < self.depth:
                        stack.append(f"{code.co_name}:{f.f_lineno}")
                    if label not in seen:
                        seen.add(label)
                        self.incl_cpu[name][label] += w
                    f = f.f_back
                self.stacks[name][" <- ".join(stack)] += w

    def report(self, top: int = 30) -> dict:
        out = {"samples": self.samples, "hz": round(1 / self.interval), "threads": {}}
        for name, total in self.total.most_common():
            if total < 0.05:
                continue
            out["threads"][name] = {
                "cpu_s_sampled": round(total, 2),
                "self": [[k, round(v, 2)] for k, v in self.self_cpu[name].most_common(top)],
                "inclusive": [[k, round(v, 2)] for k, v in self.incl_cpu[name].most_common(top)],
                "stacks": [[k, round(v, 2)] for k, v in self.stacks[name].most_common(top)],
            }
        return out


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path.rsplit("/", 2)[-1] if "/" in path else path


# ---------------------------------------------------------------------------------------------
# The app under test
# ---------------------------------------------------------------------------------------------


class Probe:
    """What the instrumented app and panes report: frames written, pane renders, key actions."""

    def __init__(self) -> None:
        self.writes = 0
        self.bytes = 0
        self.last_write = 0.0
        self.write_times: list[float] = []  # every frame's time (a few per second)
        self.write_event: asyncio.Event | None = None
        self.action_done = 0.0
        self.actions: list[str] = []
        self.renders = 0
        self.render_s = 0.0
        self.rendered_with_result: set[str] = set()
        self.panes: int = 0
        self.t_start = 0.0
        self.first_frame_s: float | None = None
        self.first_full_paint_s: float | None = None

    def on_write(self, data: str) -> None:
        now = time.perf_counter()
        self.writes += 1
        self.bytes += len(data)
        self.last_write = now
        self.write_times.append(now)
        if self.first_frame_s is None:
            self.first_frame_s = now - self.t_start
        if (self.first_full_paint_s is None and self.panes
                and len(self.rendered_with_result) >= self.panes):
            self.first_full_paint_s = now - self.t_start
        if self.write_event is not None:
            self.write_event.set()


PROBE = Probe()


def instrument() -> type:
    """The DashApp subclass under test (and CellPane.render counted, in this process only)."""
    from textual.drivers.headless_driver import HeadlessDriver

    from tessera.cli.tui import cell_pane as pane_module
    from tessera.cli.tui.app import DashApp

    class FrameDriver(HeadlessDriver):
        """The headless driver, but not headless to the app: Textual renders each update to
        terminal escape sequences and writes them here, where they are timed and dropped."""

        @property
        def is_headless(self) -> bool:
            return False

        def write(self, data: str) -> None:
            PROBE.on_write(data)

    original_render = pane_module.CellPane.render

    def counted_render(self: Any) -> Any:
        t = time.perf_counter()
        try:
            return original_render(self)
        finally:
            PROBE.renders += 1
            PROBE.render_s += time.perf_counter() - t
            if self.state.result is not None:
                PROBE.rendered_with_result.add(self.cell_id)

    pane_module.CellPane.render = counted_render
    _instrument_session()

    class BenchDashApp(DashApp):
        def _build_driver(self, headless: bool, inline: bool, mouse: bool, size: Any) -> Any:
            driver = super()._build_driver(headless, inline, mouse, size)
            driver.__class__ = FrameDriver
            return driver

        async def run_action(self, action: Any, default_namespace: Any = None) -> bool:
            try:
                return await super().run_action(action, default_namespace)
            finally:
                PROBE.action_done = time.perf_counter()
                PROBE.actions.append(str(action))

    return BenchDashApp


class CellCosts:
    """CPU time (time.thread_time of the session worker) per cell: evaluations (LiveQuery.refresh
    or a full run), building the Result (LiveQuery.result), recording (cells.record_result)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.reset()

    def reset(self) -> None:
        self.data: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.rounds = 0

    def add(self, what: str, seconds: float, title: str | None = None) -> None:
        title = title if title is not None else getattr(self.local, "title", None) or "?"
        c = self.data[title]
        c[what + "_s"] += seconds
        c[what + "_n"] += 1

    def report(self) -> dict:
        out = {}
        for title, c in sorted(self.data.items(), key=lambda kv: -kv[1]["evaluate_s"] - kv[1]["record_s"]):
            out[title] = {k: (round(v, 3) if k.endswith("_s") else v) for k, v in sorted(c.items())}
        return out


COSTS = CellCosts()


def _instrument_session() -> None:
    """Time the session's per-cell work (this process only; the session code is unchanged)."""
    from tessera.core.notebook import session as notebook_session
    from tessera.core.watch import live_query as watch_live

    session_cls = notebook_session.NotebookSession
    evaluate, record = session_cls._evaluate, session_cls._record
    refresh, result = watch_live.LiveQuery.refresh, watch_live.LiveQuery.result

    def timed_evaluate(self: Any, lc: Any, changed: Any, **kw: Any) -> Any:
        COSTS.local.title = lc.cell.get("title")
        t = time.thread_time()
        try:
            return evaluate(self, lc, changed, **kw)
        finally:
            COSTS.add("evaluate", time.thread_time() - t)
            COSTS.local.title = None

    def timed_record(self: Any, lc: Any) -> Any:
        t = time.thread_time()
        try:
            return record(self, lc)
        finally:
            COSTS.add("record", time.thread_time() - t, lc.cell.get("title"))

    def timed_refresh(self: Any, changed: Any = None) -> Any:
        t = time.thread_time()
        try:
            return refresh(self, changed)
        finally:
            COSTS.add("refresh_full" if changed is None or self.incremental is None else "refresh_incremental",
                      time.thread_time() - t)

    def timed_result(self: Any) -> Any:
        t = time.thread_time()
        try:
            return result.fget(self)
        finally:
            COSTS.add("result", time.thread_time() - t)

    wait = watch_live.ChangeCollector.wait

    def counted_wait(self: Any, timeout: Any) -> Any:
        out = wait(self, timeout)
        if out[0] and out[1]:
            COSTS.rounds += 1  # a round that has changes to evaluate
        return out

    watch_live.ChangeCollector.wait = counted_wait
    session_cls._evaluate, session_cls._record = timed_evaluate, timed_record
    watch_live.LiveQuery.refresh = timed_refresh
    watch_live.LiveQuery.result = property(timed_result)


def pane_versions(session: Any) -> int:
    return sum(p.version for p in list(session.panes.values()))


async def run_dash(args: argparse.Namespace, db_path: Path, out: dict) -> None:
    from tessera.cli.options import LiveFlags
    from tessera.core.notebook.session import NotebookSession

    app_class = instrument()
    # exactly as `tessera dash NOTEBOOK --speed X [--loop]` builds it (the CLI's defaults)
    options = LiveFlags(speed=args.speed, loop=args.loop).session_options()
    session = NotebookSession(str(db_path), NOTEBOOK, options)
    app = app_class(session, str(db_path), color=not args.no_color)
    gcs = GcStats()
    gc.callbacks.append(gcs)
    PROBE.panes = len(CELLS)
    PROBE.t_start = time.perf_counter()
    t_start = PROBE.t_start
    cpu_start = time.process_time()
    async with app.run_test(size=(200, 60)) as pilot:
        # --- first results ---
        deadline = t_start + args.ready_timeout
        while True:
            if session.failure is not None:
                raise RuntimeError(f"session failed: {session.failure}")
            panes = list(session.panes.values())
            errors = {p.cell.get("title"): p.error for p in panes if p.error}
            if errors:
                raise RuntimeError(f"pane errors: {errors}")
            if len(panes) == len(CELLS) and all(p.result is not None for p in panes):
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"not every pane had a result after {args.ready_timeout} s: "
                                   f"{[(p.cell.get('title'), p.status) for p in panes]}")
            await asyncio.sleep(0.02)
        t_results = time.perf_counter()
        while PROBE.first_full_paint_s is None and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        out["startup"] = {
            "all_results_s": round(t_results - t_start, 2),
            "first_frame_s": _r(PROBE.first_frame_s, 2),
            "first_full_paint_s": _r(PROBE.first_full_paint_s, 2),
            "cpu_s_to_full_paint": round(time.process_time() - cpu_start, 2),
            "rows_per_pane": {p.cell.get("title"): p.rows for p in session.panes.values()},
        }
        log(f"all 8 panes painted with results {out['startup']['first_full_paint_s']} s after start; "
            f"settling {args.settle} s")
        await asyncio.sleep(args.settle)
        source = _replay_source(session)

        # --- steady state: no input, just the replay's churn ---
        sampler = Sampler(args.sample) if args.sample else None
        if sampler:
            sampler.start()
        gc0 = gcs.snapshot()
        th0 = thread_cpu()
        w0, r0, b0, v0 = PROBE.writes, PROBE.renders, PROBE.bytes, pane_versions(session)
        rt0 = PROBE.render_s
        replay0 = source.now() if source is not None else None
        COSTS.reset()
        load0 = os.getloadavg()
        c0, t0 = time.process_time(), time.perf_counter()
        log(f"steady state: measuring CPU for {args.seconds} s")
        await asyncio.sleep(args.seconds)
        c1, t1 = time.process_time(), time.perf_counter()
        th1 = thread_cpu()
        if sampler:
            sampler.stop_event.set()
            sampler.join()
        wall = t1 - t0
        replay1 = source.now() if source is not None else None
        gc1 = gcs.snapshot()
        changes_seen = None
        if replay0 is not None and replay1 is not None:
            rec = source.recording
            changes_seen = rec.count_at(replay1) - rec.count_at(replay0)
        out["cpu"] = {
            "window_s": round(wall, 2),
            "cpu_s": round(c1 - c0, 2),
            "cpu_share": round((c1 - c0) / wall, 3),
            "by_thread": cpu_by_thread(th0, th1, wall),
            "frames_written": PROBE.writes - w0,
            "frames_per_s": round((PROBE.writes - w0) / wall, 1),
            "frame_kb_mean": round((PROBE.bytes - b0) / max(1, PROBE.writes - w0) / 1024, 1),
            "pane_changes": pane_versions(session) - v0,
            "pane_renders": PROBE.renders - r0,
            "pane_render_s": round(PROBE.render_s - rt0, 3),
            "replay_events_in_window": changes_seen,
            "replay_events_per_s": round(changes_seen / wall, 2) if changes_seen is not None else None,
            "cpu_ms_per_replay_event": round((c1 - c0) * 1000 / changes_seen, 1) if changes_seen else None,
            "session_rounds": COSTS.rounds,
            "session_cpu_ms_per_round": (round(cpu_by_thread(th0, th1, wall).get("session worker", {}).get("cpu_s", 0)
                                               * 1000 / COSTS.rounds, 1) if COSTS.rounds else None),
            "gc_collections": {str(g): gc1[0].get(g, 0) - gc0[0].get(g, 0) for g in (0, 1, 2)},
            "gc_s": round(sum(gc1[1].values()) - sum(gc0[1].values()), 3),
            "longest_gc_ms": round(gc1[2] * 1000, 1),
            "session_cpu_by_cell": COSTS.report(),
            "loadavg_1m_start_end": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
            "target": TARGETS["cpu_share"],
        }
        if sampler:
            out["profile_steady_state"] = sampler.report()
        log(f"CPU {out['cpu']['cpu_share']:.3f} of a core; {out['cpu']['frames_written']} frames, "
            f"{out['cpu']['pane_changes']} pane changes, {changes_seen} replay events")

        # --- key presses ---
        sampler = Sampler(args.sample) if args.sample else None
        if sampler:
            sampler.start()
        out["keys"] = await press_keys(pilot, args, session, gcs)
        if sampler:
            sampler.stop_event.set()
            sampler.join()
            out["profile_presses"] = sampler.report()

        out["replay"] = {
            "clock_at_end": replay1.isoformat() if replay1 is not None else None,
            "recording_end": source.recording.end.isoformat() if source is not None else None,
            "ended_during_run": bool(source is not None and not args.loop and source.now() >= source.recording.end),
        }
        out["textual_console"] = {"color_system": app.console.color_system, "size": list(app.size)}
    gc.callbacks.remove(gcs)


async def press_keys(pilot: Any, args: argparse.Namespace, session: Any, gcs: GcStats) -> dict:
    from tessera.cli.tui.cell_pane import CellPane

    PROBE.write_event = asyncio.Event()
    lat: list[float] = []
    per_key: dict[str, list[float]] = collections.defaultdict(list)
    per_pane_view: dict[str, list[float]] = collections.defaultdict(list)
    action_lat: list[float] = []
    missed: list[str] = []
    slow: list[dict] = []
    gc0 = gcs.snapshot()
    c0, w0 = time.process_time(), time.perf_counter()
    log(f"pressing {args.presses} keys")
    for i in range(args.presses):
        key = KEY_PATTERN[i % len(KEY_PATTERN)]
        app = pilot.app
        focused = app.focused
        if isinstance(focused, CellPane):
            where = f"{focused.state.cell.get('title')} [{focused.view}]"
        else:  # keys then act on the first pane (DashApp.pane)
            where = f"not a pane: {type(focused).__name__}#{getattr(focused, 'id', None)}"
        PROBE.write_event.clear()
        n_actions = len(PROBE.actions)
        t0 = time.perf_counter()
        await pilot.press(key)
        # the first frame written after the key's action ran shows its effect
        deadline = t0 + args.key_timeout
        got = None
        while True:
            if len(PROBE.actions) > n_actions and PROBE.action_done >= t0:
                i = bisect.bisect_left(PROBE.write_times, PROBE.action_done)
                if i < len(PROBE.write_times):
                    got = PROBE.write_times[i]
                    break
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            PROBE.write_event.clear()
            try:
                await asyncio.wait_for(PROBE.write_event.wait(), left)
            except asyncio.TimeoutError:
                pass
        if got is None:
            missed.append(f"{key} on {where}")
        else:
            ms = (got - t0) * 1000
            lat.append(ms)
            action_lat.append((PROBE.action_done - t0) * 1000)
            per_key[key].append(ms)
            if key == "v":
                per_pane_view[where].append(ms)
            if ms > TARGETS["key_p95_ms"]:
                slow.append({"key": key, "pane": where, "ms": round(ms, 1),
                             "action_done_ms": round((PROBE.action_done - t0) * 1000, 1)})
        await asyncio.sleep(args.key_gap)
    wall = time.perf_counter() - w0
    gc1 = gcs.snapshot()
    lat_sorted = sorted(lat)
    return {
        "presses": args.presses,
        "pattern": KEY_PATTERN,
        "measured": len(lat),
        "missed": missed,
        "latency_ms": {
            "p50": _r(percentile(lat_sorted, 50)), "p95": _r(percentile(lat_sorted, 95)),
            "max": _r(lat_sorted[-1] if lat_sorted else None),
            "mean": _r(statistics.fmean(lat) if lat else None), "target_p95": TARGETS["key_p95_ms"],
        },
        "key_to_action_done_ms": {"p50": _r(percentile(sorted(action_lat), 50)),
                                  "p95": _r(percentile(sorted(action_lat), 95)),
                                  "max": _r(max(action_lat) if action_lat else None)},
        "by_key_ms": {k: {"n": len(v), "p50": _r(percentile(sorted(v), 50)), "max": _r(max(v))} for k, v in per_key.items()},
        "v_by_pane_ms": {k: [round(x, 1) for x in v] for k, v in per_pane_view.items()},
        "over_target": slow,
        "cpu_share_during_presses": round((time.process_time() - c0) / wall, 3),
        "wall_s": round(wall, 1),
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
        "gc_s_during_presses": round(sum(gc1[1].values()) - sum(gc0[1].values()), 3),
        "longest_gc_ms": round(gc1[2] * 1000, 1),
    }


def _replay_source(session: Any) -> Any:
    try:
        for sources in session._context._opened.values():
            for s in sources:
                if hasattr(s, "recording"):
                    return s
    except AttributeError:
        pass
    return None


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=None, help="pods in the recording (default 10000; --quick 500)")
    ap.add_argument("--seconds", type=float, default=None, help="steady-state CPU window (default 30; --quick 5)")
    ap.add_argument("--presses", type=int, default=None, help="key presses timed (default 50; --quick 15)")
    ap.add_argument("--speed", type=float, default=1.0, help="replay speed (recording seconds per second)")
    ap.add_argument("--rate", type=float, default=5.0, help="changes per recording second in the churn")
    ap.add_argument("--loop", action="store_true", help="replay with --loop (a wrap relists every kind)")
    ap.add_argument("--settle", type=float, default=None, help="seconds after the first full paint before measuring (default 10; --quick 2)")
    ap.add_argument("--key-gap", type=float, default=0.3, help="seconds between a key's frame and the next key")
    ap.add_argument("--key-timeout", type=float, default=10.0, help="seconds to wait for a key's frame")
    ap.add_argument("--ready-timeout", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-color", action="store_true", help="DashApp(color=False)")
    ap.add_argument("--sample", type=float, default=0.0, metavar="HZ",
                    help="sample every thread's stack at HZ during the steady state and the presses; adds CPU profiles to the output "
                         "(the sampler costs CPU itself: do not read cpu_share from such a run)")
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it (recording, TESSERA_HOME)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 500 pods, 5 s, 15 presses")
    args = ap.parse_args()
    q = args.quick
    args.pods = args.pods if args.pods is not None else (500 if q else 10000)
    args.seconds = args.seconds if args.seconds is not None else (5.0 if q else 30.0)
    args.presses = args.presses if args.presses is not None else (15 if q else 50)
    args.settle = args.settle if args.settle is not None else (2.0 if q else 10.0)
    if args.speed <= 0:
        ap.error("--speed must be positive")

    import textual

    out: dict[str, Any] = {
        "bench": "dash",
        "pods": args.pods,
        "targets": dict(TARGETS),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "textual": textual.__version__},
        "command": shlex.join([sys.executable, *sys.argv]),
        "git": _git_state(),
        "options": {"seconds": args.seconds, "presses": args.presses, "speed": args.speed, "rate": args.rate,
                    "loop": args.loop, "settle": args.settle, "seed": args.seed, "size": [200, 60],
                    "color": not args.no_color, "sample_hz": args.sample or None},
    }
    tmp_ctx = None
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp_ctx = tempfile.TemporaryDirectory(prefix="tessera-dash-")
        workdir = Path(tmp_ctx.name)
    error = None
    try:
        home = workdir / "home"
        home.mkdir(exist_ok=True)
        os.environ["TESSERA_HOME"] = str(home)  # before any tessera module reads the config
        os.environ["TESSERA_CONFIG_DIR"] = str(workdir / "config")
        # long enough that the replay is still churning when the presses end (no --loop wrap)
        real_s = 180 + args.settle + args.seconds + args.presses * (args.key_gap + 1.0) + 60
        churn_seconds = round(real_s * args.speed)
        path = workdir / "cluster.jsonl"
        t = time.perf_counter()
        rec = write_recording(path, args.pods, args.seed, churn_seconds, args.rate)
        rec["changes_per_real_s"] = round(args.rate * args.speed, 2)
        rec["events_per_real_s"] = round(rec["events_per_recording_s"] * args.speed, 2)
        out["recording"] = rec
        log(f"recording: {rec['initial_objects']} objects ({rec['pods']} pods, {rec['deployments']} deployments), "
            f"then {rec['changes']} changes over {churn_seconds} s, {rec['file_mb']} MB, in {time.perf_counter() - t:.1f} s")
        from tessera.core import config

        db_path = config.database_path()
        layout = make_notebook(db_path, path)
        out["notebook"] = {"layout": [len(r) for r in layout],
                           "cells": [{"row": r, "title": title, "view": view, "query": query}
                                     for r, title, view, query in CELLS]}
        asyncio.run(run_dash(args, db_path, out))
    except Exception as exc:  # noqa: BLE001 - report and still print the JSON
        import traceback

        traceback.print_exc(file=_ERR)
        error = f"{type(exc).__name__}: {exc}"
        out["error"] = error
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()
    cpu = out.get("cpu", {}).get("cpu_share")
    p95 = out.get("keys", {}).get("latency_ms", {}).get("p95")
    out["met"] = {
        "cpu_share": cpu is not None and cpu <= TARGETS["cpu_share"],
        "key_p95_ms": p95 is not None and p95 <= TARGETS["key_p95_ms"] and not out["keys"]["missed"],
    }
    print(json.dumps(out))
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
