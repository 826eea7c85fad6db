"""Executing one claimed (running) run: its action as a child process group
(core/jobs/action_process.py), its pid stored, a cancel request or the runner's shutdown polled,
the outcome stored with its event and retry (core/jobs/run_states.py), then the job's alert."""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any, Callable

from tessera.core.jobs import run_states
from tessera.core.jobs.action_process import Outcome, action_argv, run_action
from tessera.core.jobs.job_clock import jobs_now
from tessera.core.jobs.job_records import JobRun, get_job
from tessera.core.store.db import StoreFull, StoreLocked

CANCEL_POLL_S = 0.5  # how often a running run's cancel_requested is read
STORE_RETRY_FIRST_S, STORE_RETRY_MOST_S = 1.0, 30.0  # storing a run's end again while the store is locked


def _not_started(problem: str) -> Outcome:
    return Outcome("failed", None, 0.0, "", f"[tessera: {problem}]\n", None, problem=problem)


def _store_progress(conn: sqlite3.Connection, run: JobRun, output: str, error: str, log: Any) -> None:
    """The output so far, when the store takes it: a busy or full store skips this snapshot (the
    next one carries it), it never ends the job."""
    try:
        run_states.store_progress(conn, run.id, output, error)
    except (StoreLocked, StoreFull) as exc:
        if log is not None:
            log("warning", "run.progress_not_stored", run=run.id, job=run.job, error=exc.one_line())


def _store_end(conn: sqlite3.Connection, run: JobRun, outcome: Outcome, runner_id: str, stop: Callable[[], bool],
               log: Any) -> tuple[JobRun | None, JobRun | None]:
    """Store how the run ended, trying again while the store is locked (past its lock timeout) or
    full, so the run does not stay "running" under a live runner; given up only when ``stop()``
    (the runner is going: the next runner's recovery ends the run)."""
    delay = STORE_RETRY_FIRST_S
    while True:
        try:
            return run_states.finish(conn, run, outcome.state, at=jobs_now(), exit_code=outcome.exit_code,
                                     duration_s=round(outcome.duration_s, 3), output=outcome.output,
                                     error=outcome.error, rows=outcome.rows, runner_id=runner_id)
        except (StoreLocked, StoreFull) as exc:
            if stop():
                raise
            if log is not None:
                log("warning", "run.end_not_stored", run=run.id, job=run.job, state=outcome.state,
                    error=exc.one_line(), retry_in_s=delay)
            time.sleep(delay)
            delay = min(delay * 2, STORE_RETRY_MOST_S)


class Executed:
    """A run's end: the stored run (None when another runner ended it first), its retry, and
    the outcome as the process gave it."""

    def __init__(self, run: JobRun | None, retry: JobRun | None, outcome: Outcome):
        self.run, self.retry, self.outcome = run, retry, outcome


def execute(conn: sqlite3.Connection, run: JobRun, runner_id: str, *, stop: Callable[[], bool] = lambda: False,
            echo_out: Callable[[bytes], None] | None = None, echo_err: Callable[[bytes], None] | None = None,
            log: Any = None) -> Executed:
    """Run ``run`` (claimed by ``runner_id``) to its end; ``stop()`` turning true cancels it."""
    job = get_job(conn, run.job)
    checked = [0.0, False]

    def should_cancel() -> bool:
        if stop():
            return True
        if time.monotonic() - checked[0] >= CANCEL_POLL_S:
            checked[0], checked[1] = time.monotonic(), run_states.cancel_requested(conn, run.id)
        return checked[1]

    if job is None:  # removed meanwhile (rm refuses while a run is running; a race is still possible)
        outcome = _not_started("the job was removed before its run started")
    elif stop():  # cancelled (Ctrl-C, shutdown) before its process started: none is
        outcome = Outcome("cancelled", None, 0.0, "", "[tessera: cancelled before it started]\n", None)
    else:
        try:
            env = {**os.environ, "TESSERA_CORRELATION": run_states.correlation(run.id)}
            outcome = run_action(action_argv(job.action, job.spec), run_id=run.id, timeout_s=job.timeout_s, env=env,
                                 cwd=job.spec.get("cwd"),
                                 on_progress=lambda out, err: _store_progress(conn, run, out, err, log),
                                 should_cancel=should_cancel, on_started=lambda pid: run_states.set_pid(conn, run.id, pid),
                                 echo_out=echo_out, echo_err=echo_err)
        except OSError as exc:
            where = f" in {job.spec['cwd']}" if job.spec.get("cwd") and not os.path.isdir(job.spec["cwd"]) else ""
            outcome = _not_started(f"cannot start the job{where}: {exc.strerror or exc}")
    done, retry = _store_end(conn, run, outcome, runner_id, stop, log)
    if log is not None:
        log("info" if outcome.state == "succeeded" else "warning", "run.finished", run=run.id, job=run.job,
            state=outcome.state, exit_code=outcome.exit_code, duration_s=round(outcome.duration_s, 3),
            rows=len(outcome.rows) if outcome.rows is not None else None, retry=retry.id if retry else None)
    if done is not None:
        run_states.after_finished(conn, done, outcome.rows, log)
    return Executed(done, retry, outcome)
