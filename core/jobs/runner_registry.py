"""Runners in job_runners: registering, the heartbeat thread (every RUNNER_HEARTBEAT_S), leaving
on a clean exit, and what the next runner does about one that died (docs/jobs.md): each run a
dead runner held in "running" has its leftover process group killed and is marked failed, or
retried when attempts remain."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Callable

from tessera.core.jobs import run_states
from tessera.core.jobs.action_process import kill_group, leftover_processes
from tessera.core.jobs.job_clock import jobs_now
from tessera.core.jobs.job_records import RUNNER_HEARTBEAT_S, runner_dead, runners, runs
from tessera.core.store.db import connect, transaction
from tessera.core.times import now

Log = Callable[..., None]


class Registration:
    """This process as a runner: its row in job_runners and a thread keeping its heartbeat."""

    def __init__(self, db: Path, kind: str, log: Log | None = None):
        self.host = socket.gethostname()
        self.id = f"{kind}-{self.host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.kind, self._db, self._log = kind, db, log
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Registration":
        conn = connect(self._db)
        try:
            self._write(conn)
        finally:
            conn.close()
        self._thread = threading.Thread(target=self._beat, name="job-runner-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _write(self, conn: sqlite3.Connection) -> None:
        when = now()
        with transaction(conn):
            cur = conn.execute("UPDATE job_runners SET heartbeat_at = ? WHERE id = ?", (when, self.id))
            if cur.rowcount == 0:  # first time, or another runner took us for dead and removed the row
                conn.execute("INSERT INTO job_runners (id, kind, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
                             (self.id, self.kind, os.getpid(), self.host, when, when))

    def _beat(self) -> None:
        conn = connect(self._db)
        try:
            while not self._stopped.wait(RUNNER_HEARTBEAT_S):
                try:
                    self._write(conn)
                except Exception as exc:  # a locked or full store: try again next beat
                    if self._log:
                        self._log("warning", "heartbeat.failed", error=str(exc))
        finally:
            conn.close()

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=RUNNER_HEARTBEAT_S * 2)
        conn = connect(self._db)
        try:
            with transaction(conn):
                conn.execute("DELETE FROM job_runners WHERE id = ?", (self.id,))
        finally:
            conn.close()


def recover_stale(conn: sqlite3.Connection, *, me: str, log: Log | None = None) -> list[run_states.JobRun]:
    """End the runs left "running" by dead runners: kill what is left of each one's process
    group, then mark it failed (its retry queued when attempts remain); remove the dead runners."""
    host = socket.gethostname()
    known = {r.id: r for r in runners(conn)}
    ended = []
    for run in runs(conn, states=("running",), newest_first=False):
        if run.runner == me:
            continue
        why = runner_dead(known.get(run.runner), host)
        if why is None:
            continue
        if run.pid is not None and leftover_processes(run.pid, run.id):
            kill_group(run.pid)
        note = f"\n[tessera: marked failed: {why}]\n"
        done, retry = run_states.finish(conn, run, "failed", at=jobs_now(), exit_code=None, duration_s=None,
                                        output=run.output, error=run.error + note, rows=None, runner_id=run.runner)
        if done is not None:
            ended.append(done)
            if log:
                log("warning", "run.recovered", run=run.id, job=run.job, reason=why,
                    retry=retry.id if retry else None)
    for runner in known.values():
        if runner.id != me and runner_dead(runner, host) is not None:
            with transaction(conn):
                conn.execute("DELETE FROM job_runners WHERE id = ?", (runner.id,))
    return ended


def cancel_orphaned(conn: sqlite3.Connection, run: run_states.JobRun) -> run_states.JobRun | None:
    """`job cancel` of a running run whose runner is dead: nobody would stop it, so kill what is
    left of its group and record it cancelled now. None when its runner may be alive."""
    known = {r.id: r for r in runners(conn)}
    why = runner_dead(known.get(run.runner), socket.gethostname())
    if why is None:
        return None
    if run.pid is not None and leftover_processes(run.pid, run.id):
        kill_group(run.pid)
    done, _ = run_states.finish(conn, run, "cancelled", at=jobs_now(), exit_code=None, duration_s=None,
                                output=run.output, error=run.error + f"\n[tessera: cancelled; {why}]\n", rows=None,
                                runner_id=run.runner)
    return done
