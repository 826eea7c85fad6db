"""A run's changes of state, each stored with its event ``job.<name>.<state>`` in one transaction
(docs/jobs.md): pending -> queued -> running -> succeeded | failed | timed_out | cancelled, and a
failed or timed-out run with attempts left followed by its retry (trigger retry, attempt + 1,
pending until backoff x 2^(attempt-1) has passed, capped)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from tessera.core import events
from tessera.core.errors import UsageError
from tessera.core.jobs.job_records import ACTIVE, FINISHED, Job, JobRun, get_job, get_run
from tessera.core.store.db import transaction
from tessera.core.times import format_time, now

MAX_RETRY_DELAY_S = 3600.0  # a retry waits at most this long (or the job's backoff, when larger)
RESULT_CAP = 1024 * 1024  # bytes of JSON rows kept for the alert (job_runs.result)


def correlation(run_id: int) -> str:
    """The correlation id of a run's events, and of every event its action appends (the child
    gets it as TESSERA_CORRELATION): `tessera events tail --correlation job-run-42`."""
    return f"job-run-{run_id}"


def _event(conn: sqlite3.Connection, run: JobRun, state: str, **extra: Any) -> None:
    data = {"run": run.id, "job": run.job, "attempt": run.attempt, "trigger": run.trigger,
            "scheduled_for": run.scheduled_for, **extra}
    events.append(conn, f"job.{run.job}.{state}", data, correlation=correlation(run.id))


def create(conn: sqlite3.Connection, job: Job, *, trigger: str, scheduled_for: str | None = None, attempt: int = 1,
           not_before: str | None = None, queue: bool = True, **event_extra: Any) -> JobRun | None:
    """A new run, pending (event), then queued (event) unless it must wait for ``not_before``
    or ``queue`` is False. None when the job already has a run for ``scheduled_for``."""
    with transaction(conn):
        cur = conn.execute(
            "INSERT OR IGNORE INTO job_runs (job, scheduled_for, trigger, attempt, state, created_at, not_before) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?)", (job.name, scheduled_for, trigger, attempt, now(), not_before))
        if cur.rowcount == 0:
            return None
        run = get_run(conn, cur.lastrowid)
        _event(conn, run, "pending", **({"not_before": not_before} if not_before else {}), **event_extra)
        if queue and not_before is None:
            run = _queue(conn, run)
    return run


def _queue(conn: sqlite3.Connection, run: JobRun) -> JobRun:
    conn.execute("UPDATE job_runs SET state = 'queued', queued_at = ? WHERE id = ? AND state = 'pending'", (now(), run.id))
    run = get_run(conn, run.id)
    _event(conn, run, "queued")
    return run


def queue_ready(conn: sqlite3.Connection, at: datetime) -> list[JobRun]:
    """Queue the pending runs whose not_before has passed (retries), except paused jobs'."""
    with transaction(conn):
        ready = [get_run(conn, r[0]) for r in conn.execute(
            "SELECT r.id FROM job_runs r JOIN jobs j ON j.name = r.job WHERE r.state = 'pending' AND j.paused = 0 "
            "AND (r.not_before IS NULL OR r.not_before <= ?) ORDER BY r.id", (format_time(at),))]
        return [_queue(conn, run) for run in ready]


def claim(conn: sqlite3.Connection, runner_id: str, run_id: int | None = None) -> JobRun | None:
    """Take a queued run (the oldest, or ``run_id``) for this runner: running (event). None when
    there is none (another runner took it first)."""
    with transaction(conn):
        if run_id is None:
            row = conn.execute("SELECT id FROM job_runs WHERE state = 'queued' ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            run_id = row[0]
        cur = conn.execute("UPDATE job_runs SET state = 'running', runner = ?, started_at = ? WHERE id = ? AND state = 'queued'",
                           (runner_id, now(), run_id))
        if cur.rowcount == 0:
            return None
        run = get_run(conn, run_id)
        _event(conn, run, "running", runner=runner_id)
    return run


def set_pid(conn: sqlite3.Connection, run_id: int, pid: int) -> None:
    with transaction(conn):
        conn.execute("UPDATE job_runs SET pid = ? WHERE id = ?", (pid, run_id))


def store_progress(conn: sqlite3.Connection, run_id: int, output: str, error: str) -> None:
    """A running run's output so far (for `job logs` while it runs, and kept if its runner dies)."""
    with transaction(conn):
        conn.execute("UPDATE job_runs SET output = ?, error = ? WHERE id = ? AND state = 'running'", (output, error, run_id))


def cancel_requested(conn: sqlite3.Connection, run_id: int) -> bool:
    row = conn.execute("SELECT cancel_requested FROM job_runs WHERE id = ?", (run_id,)).fetchone()
    return bool(row and row[0])


def finish(conn: sqlite3.Connection, run: JobRun, state: str, *, at: datetime, exit_code: int | None,
           duration_s: float | None, output: str, error: str, rows: list[dict[str, Any]] | None,
           runner_id: str | None = None) -> tuple[JobRun | None, JobRun | None]:
    """Store how a running run ended (event with exit_code, duration_s, rows) and, for a failed or
    timed-out run with attempts left, its retry (pending, not_before ``at`` + backoff).

    Returns:
        (the finished run, its retry or None); (None, None) when the run was no longer running
        under ``runner_id`` (another runner already found it stale and ended it).
    """
    assert state in FINISHED
    result = json.dumps(rows, default=str) if rows is not None else None
    if result is not None and len(result) > RESULT_CAP:
        result = None
    with transaction(conn):
        cur = conn.execute(
            "UPDATE job_runs SET state = ?, finished_at = ?, exit_code = ?, duration_s = ?, rows = ?, result = ?, "
            "output = ?, error = ? WHERE id = ? AND state = 'running'" + (" AND runner = ?" if runner_id else ""),
            (state, now(), exit_code, duration_s, len(rows) if rows is not None else None, result, output, error, run.id,
             *([runner_id] if runner_id else [])))
        if cur.rowcount == 0:
            return None, None
        done = get_run(conn, run.id)
        _event(conn, done, state, exit_code=exit_code, duration_s=duration_s, rows=done.rows)
        retry = _retry(conn, done, at)
    return done, retry


def _retry(conn: sqlite3.Connection, done: JobRun, at: datetime) -> JobRun | None:
    job = get_job(conn, done.job)
    if job is None or done.state not in ("failed", "timed_out") or done.attempt > job.retries:
        return None
    delay = min(job.backoff_s * 2 ** (done.attempt - 1), max(MAX_RETRY_DELAY_S, job.backoff_s))
    not_before = format_time(at + timedelta(seconds=delay))
    return create(conn, job, trigger="retry", attempt=done.attempt + 1, not_before=not_before, retry_of=done.id)


def cancel(conn: sqlite3.Connection, run_id: int) -> JobRun:
    """Cancel a run: a pending or queued one at once (event); a running one is asked to stop
    (its runner kills the group and records it cancelled).

    Raises:
        UsageError for an unknown run or one already finished.
    """
    with transaction(conn):
        run = get_run(conn, run_id)
        if run is None:
            raise UsageError(f"there is no run {run_id}", hint="tessera job history NAME lists a job's runs")
        if run.state not in ACTIVE:
            raise UsageError(f"run {run_id} has ended already ({run.state})")
        if run.state == "running":
            conn.execute("UPDATE job_runs SET cancel_requested = 1 WHERE id = ?", (run_id,))
            return get_run(conn, run_id)
        conn.execute("UPDATE job_runs SET state = 'cancelled', cancel_requested = 1, finished_at = ? WHERE id = ?",
                     (now(), run_id))
        run = get_run(conn, run_id)
        _event(conn, run, "cancelled", exit_code=None, duration_s=None, rows=None)
    return run


def after_finished(conn: sqlite3.Connection, run: JobRun, rows: list[dict[str, Any]] | None,
                   log: Any = None) -> str | None:
    """Hand a finished, stored run to its job's alert (core/jobs/alerts.py); a failure there is
    logged and never fails the run."""
    from tessera.core.jobs import alerts

    job = get_job(conn, run.job)
    if job is None:
        return None
    try:
        return alerts.after_run(conn, job, run, rows)
    except Exception as exc:  # the alert's own bug or a notify failure must not end the runner
        if log is not None:
            log("error", "alert.failed", run=run.id, job=run.job, error=f"{type(exc).__name__}: {exc}")
        return None
