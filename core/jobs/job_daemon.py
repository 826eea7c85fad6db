"""`tessera job daemon`: the long-running runner (docs/jobs.md). It holds the data home's
``job-daemon.lock`` for its life (a second daemon refuses), registers in job_runners with a
heartbeat, and every tick (or as soon as a worker frees up) makes a scheduling pass and hands
queued runs to a pool of ``workers`` threads. SIGTERM or Ctrl-C: no new run starts, the running
ones get up to ``grace`` seconds, then are cancelled (their process groups killed)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from tessera.core.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_UNAVAILABLE, TesseraError
from tessera.core.jobs import run_states
from tessera.core.jobs.job_records import runner_alive, runners
from tessera.core.jobs.run_due import schedule_pass
from tessera.core.jobs.run_execution import execute
from tessera.core.jobs.runner_registry import Registration
from tessera.core.stop_signals import StopSignals
from tessera.core.store.db import connect

DAEMON_LOCK = "job-daemon.lock"
TICK_S = 1.0


class DaemonRunning(TesseraError):
    exit_code = EXIT_UNAVAILABLE


def daemon_lock(data_home: Path, db: Path):
    """The held daemon lock; DaemonRunning (exit 3) naming the other daemon when it is taken."""
    from filelock import Timeout

    from tessera.core.data_home_locks import lock_file

    lock = lock_file(data_home, DAEMON_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        other = ""
        conn = connect(db)
        try:
            alive = [r for r in runners(conn) if r.kind == "daemon" and runner_alive(r)]
            if alive:
                other = f" (pid {alive[0].pid} on {alive[0].host})"
        finally:
            conn.close()
        raise DaemonRunning(f"another job daemon is running{other}: it holds {data_home / DAEMON_LOCK}",
                            hint="a data home has one job daemon; stop that one first, or let it run the jobs") from None
    return lock


class JobDaemon:
    def __init__(self, data_home: Path, db: Path, *, workers: int, grace: float, log: Any):
        self.data_home, self.db, self.workers, self.grace, self.log = data_home, db, workers, grace, log
        self.stopping = threading.Event()
        self.cancel_all = threading.Event()
        self.wake = threading.Event()
        self.signals = StopSignals((signal.SIGTERM, signal.SIGINT), on_signal=self._on_signal)
        self.busy: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    def _on_signal(self, signum: int) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> int:
        lock = daemon_lock(self.data_home, self.db)
        try:
            with self.signals, Registration(self.db, "daemon", self.log) as me:
                self.log("info", "started", runner=me.id, workers=self.workers, grace_s=self.grace)
                self._loop(me.id)
                self._shut_down()
        finally:
            lock.release()
        self.log("info", "stopped", signal=self.signals.name)
        return EXIT_INTERRUPTED if self.signals.received == signal.SIGINT else EXIT_OK

    def _loop(self, me: str) -> None:
        conn = connect(self.db)
        try:
            while not self.stopping.is_set():
                self.wake.clear()
                try:
                    schedule_pass(conn, self.data_home, me, self.log)
                    self._start_queued(conn, me)
                except TesseraError as exc:  # a locked store: the next tick tries again
                    self.log("warning", "tick.failed", error=exc.one_line())
                except Exception as exc:  # a bug must not end the daemon with its runs left running
                    self.log("error", "tick.failed", error=f"{type(exc).__name__}: {exc}")
                self.wake.wait(TICK_S)
        finally:
            conn.close()

    def _start_queued(self, conn: Any, me: str) -> None:
        with self._lock:
            for run_id in [r for r, t in self.busy.items() if not t.is_alive()]:
                del self.busy[run_id]
        while len(self.busy) < self.workers and not self.stopping.is_set():
            run = run_states.claim(conn, me)
            if run is None:
                return
            self.log("info", "run.started", run=run.id, job=run.job, attempt=run.attempt, trigger=run.trigger)
            thread = threading.Thread(target=self._work, args=(run, me), name=f"job-run-{run.id}", daemon=True)
            with self._lock:
                self.busy[run.id] = thread
            thread.start()

    def _work(self, run: Any, me: str) -> None:
        conn = connect(self.db)
        try:
            execute(conn, run, me, stop=self.cancel_all.is_set, log=self.log)
        except Exception as exc:  # a bug or a lost store must not leave the daemon hanging on this run
            self.log("error", "run.crashed", run=run.id, job=run.job, error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
            self.wake.set()

    def _shut_down(self) -> None:
        with self._lock:
            running = [t for t in self.busy.values() if t.is_alive()]
        self.log("info", "stopping", signal=self.signals.name, running=len(running), grace_s=self.grace)
        deadline = time.monotonic() + self.grace
        for thread in running:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in running):
            self.cancel_all.set()
            for thread in running:
                thread.join()


def daemon(data_home: Path, db: Path, *, workers: int, grace: float, log: Any) -> int:
    """Run the daemon until SIGTERM (exit 0) or SIGINT (exit 130)."""
    return JobDaemon(data_home, db, workers=workers, grace=grace, log=log).run()
