"""Turning due times into runs, exactly once however many runners race (docs/jobs.md): under the
data home's ``jobs.lock`` (filelock) and in one store transaction, each unpaused job whose
next_run_at has passed gets one run for its latest due time (UNIQUE (job, scheduled_for) makes
the claim atomic even without the lock), and next_run_at moves to the next due time after now.

Catch-up after downtime: only the latest missed time runs; the older ones are one event
``job.<name>.missed`` (count, first, last). A due time that comes while the job's previous run
is still pending, queued or running is not started beside it: it is reported missed too."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from tessera.core import events
from tessera.core.errors import EXIT_TIMEOUT, TesseraError
from tessera.core.jobs import run_states
from tessera.core.jobs.cron_schedule import Schedule, zone
from tessera.core.jobs.job_records import ACTIVE, JobRun, list_jobs, runs
from tessera.core.store.db import transaction
from tessera.core.times import format_time, parse_time

CLAIM_LOCK = "jobs.lock"
MISSED_LISTED = 1000  # due times counted in one missed event (more: "more": true)


class ClaimBusy(TesseraError):
    exit_code = EXIT_TIMEOUT


def claim_lock(data_home: Path, wait: float):
    """The held ``jobs.lock`` (released when the process ends, whatever the way)."""
    from filelock import Timeout

    from tessera.core.data_home_locks import lock_file

    lock = lock_file(data_home, CLAIM_LOCK)
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise ClaimBusy(f"another runner held {data_home / CLAIM_LOCK} for {wait:g} s",
                        hint="a runner claiming due jobs is stuck; find it with tessera doctor") from None
    return lock


def claim_due(conn: sqlite3.Connection, data_home: Path, at: datetime, *, wait: float = 30.0,
              on_error: Callable[[str, TesseraError], None] | None = None) -> list[JobRun]:
    """The scheduled runs made for every job due at ``at`` (queued, ready for a runner). A job
    whose stored schedule or time zone no longer reads (a zone gone from the system's tz
    database) is passed to ``on_error`` and skipped: it does not keep the others from running."""
    lock = claim_lock(data_home, wait)
    try:
        made = []
        with transaction(conn):
            for job in list_jobs(conn):
                if job.paused or job.next_run_at is None or parse_time(job.next_run_at) > at:
                    continue
                try:
                    schedule, tz = Schedule.parse(job.schedule), zone(job.timezone)
                except TesseraError as exc:
                    if on_error is not None:
                        on_error(job.name, exc)
                    continue
                run = _claim_job(conn, job, schedule, tz, at)
                if run is not None:
                    made.append(run)
        return made
    finally:
        lock.release()


def _claim_job(conn: sqlite3.Connection, job, schedule: Schedule, tz: Any, at: datetime) -> JobRun | None:
    first = parse_time(job.next_run_at)
    latest = max(schedule.latest_due(at, tz) or first, first)
    following = schedule.next_due(at, tz)
    conn.execute("UPDATE jobs SET next_run_at = ? WHERE name = ?", (format_time(following) if following else None, job.name))
    busy = runs(conn, job.name, states=ACTIVE, limit=1)
    missed = schedule.due_between(first, latest - timedelta(microseconds=1), tz, limit=MISSED_LISTED)
    if busy:
        missed.append(latest)
    if missed:
        events.append(conn, f"job.{job.name}.missed",
                      {"job": job.name, "count": len(missed), "more": len(missed) >= MISSED_LISTED,
                       "first": format_time(missed[0]), "last": format_time(missed[-1]),
                       "reason": f"run {busy[0].id} was still {busy[0].state}" if busy else "no runner ran the job then",
                       "ran": None if busy else format_time(latest)})
    if busy:
        return None
    return run_states.create(conn, job, trigger="schedule", scheduled_for=format_time(latest))
