"""Jobs, runs, alerts and runners as the store holds them (core/jobs_schema.py): the dataclasses
and the reads every part shares (`job list/show/history`, `tessera doctor`, the status cell).
Writes belong to the modules that own each change (definitions, runs, alerts, runners)."""

from __future__ import annotations

import json
import socket
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

ACTIONS = ("query", "cell", "command")
STATES = ("pending", "queued", "running", "succeeded", "failed", "timed_out", "cancelled")
FINISHED = ("succeeded", "failed", "timed_out", "cancelled")
ACTIVE = ("pending", "queued", "running")

# A runner writes its heartbeat (job_runners.heartbeat_at) this often; one silent for
# RUNNER_STALE_S is dead (the next runner fails or retries its runs, doctor says so).
RUNNER_HEARTBEAT_S = 5.0
RUNNER_STALE_S = 30.0
# A job whose next_run_at is further in the past than this, and not paused, is overdue: no runner
# is running it (tessera doctor, the status cell).
OVERDUE_GRACE_S = 120.0

_JOB_COLUMNS = ("name, schedule, timezone, action, spec, timeout_s, retries, backoff_s, alert, notify, paused, "
                "created_at, next_run_at")
_RUN_COLUMNS = ("id, job, scheduled_for, trigger, attempt, state, runner, pid, cancel_requested, created_at, queued_at, "
                "started_at, finished_at, not_before, exit_code, duration_s, rows, result, output, error")


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str
    timezone: str
    action: str
    spec: dict[str, Any]
    timeout_s: float | None
    retries: int
    backoff_s: float
    alert: str | None
    notify: str | None
    paused: bool
    created_at: str
    next_run_at: str | None


@dataclass(frozen=True)
class JobRun:
    id: int
    job: str
    scheduled_for: str | None
    trigger: str
    attempt: int
    state: str
    runner: str | None
    pid: int | None
    cancel_requested: bool
    created_at: str
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    not_before: str | None
    exit_code: int | None
    duration_s: float | None
    rows: int | None
    result: Any
    output: str
    error: str

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass(frozen=True)
class AlertState:
    job: str
    state: str  # "ok" or "firing"
    since: str
    run_id: int | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class Runner:
    id: str
    kind: str  # "daemon" or "run-due"
    pid: int
    host: str
    started_at: str
    heartbeat_at: str


def seconds_since(stamp: str, now: datetime) -> float:
    """Seconds from a stored time (RFC 3339, as core/times.py writes it) to ``now``."""
    from tessera.core.times import parse_time

    return (now - parse_time(stamp)).total_seconds()


def runner_alive(runner: "Runner", now: datetime | None = None) -> bool:
    """Whether the runner's heartbeat is fresh (it may still be dead on another host)."""
    return seconds_since(runner.heartbeat_at, now or datetime.now(timezone.utc)) < RUNNER_STALE_S


def runner_dead(runner: "Runner | None", host: str | None = None, now: datetime | None = None) -> str | None:
    """Why ``runner`` is dead (None: it may be alive): the one rule runners apply to each other,
    and doctor, the status cell and restore apply to them. ``host``: this host's name (default
    socket.gethostname(), what runners register with)."""
    from tessera.core.pids import pid_alive

    if runner is None:
        return "its runner is gone from job_runners"
    if runner.host == (host or socket.gethostname()) and not pid_alive(runner.pid):
        return f"its runner (pid {runner.pid}) is no longer running"
    if not runner_alive(runner, now):
        return f"its runner's heartbeat stopped at {runner.heartbeat_at}"
    return None


def overdue(job: "Job", now: datetime | None = None) -> bool:
    """Whether the job should have run more than OVERDUE_GRACE_S ago and has not."""
    return (not job.paused and job.next_run_at is not None
            and seconds_since(job.next_run_at, now or datetime.now(timezone.utc)) > OVERDUE_GRACE_S)


def _job(row: tuple) -> Job:
    return Job(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7], row[8], row[9],
               bool(row[10]), row[11], row[12])


def _run(row: tuple) -> JobRun:
    result = json.loads(row[17]) if row[17] is not None else None
    return JobRun(*row[:8], bool(row[8]), *row[9:17], result, row[18], row[19])


def has_jobs_tables(conn: sqlite3.Connection) -> bool:
    """Whether this store has the jobs tables (a read-only open of an old store may not)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone() is not None


def get_job(conn: sqlite3.Connection, name: str) -> Job | None:
    row = conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE name = ?", (name,)).fetchone()
    return None if row is None else _job(row)


def list_jobs(conn: sqlite3.Connection) -> list[Job]:
    return [_job(r) for r in conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY name")]


def get_run(conn: sqlite3.Connection, run_id: int) -> JobRun | None:
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM job_runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else _run(row)


def runs(conn: sqlite3.Connection, job: str | None = None, *, states: tuple[str, ...] | None = None,
         limit: int | None = None, newest_first: bool = True) -> list[JobRun]:
    """Runs of one job (or every job), optionally only in ``states``, newest first by default."""
    where, args = [], []
    if job is not None:
        where.append("job = ?")
        args.append(job)
    if states:
        where.append(f"state IN ({', '.join('?' * len(states))})")
        args += list(states)
    sql = (f"SELECT {_RUN_COLUMNS} FROM job_runs" + (" WHERE " + " AND ".join(where) if where else "")
           + f" ORDER BY id {'DESC' if newest_first else 'ASC'}" + (" LIMIT ?" if limit is not None else ""))
    if limit is not None:
        args.append(limit)
    return [_run(r) for r in conn.execute(sql, args)]


def last_finished_run(conn: sqlite3.Connection, job: str) -> JobRun | None:
    found = runs(conn, job, states=FINISHED, limit=1)
    return found[0] if found else None


def alert_states(conn: sqlite3.Connection, *, firing_only: bool = False) -> list[AlertState]:
    sql = "SELECT job, state, since, run_id, detail FROM job_alerts"
    if firing_only:
        sql += " WHERE state = 'firing'"
    return [AlertState(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in conn.execute(sql + " ORDER BY job")]


def runners(conn: sqlite3.Connection) -> list[Runner]:
    return [Runner(*r) for r in conn.execute(
        "SELECT id, kind, pid, host, started_at, heartbeat_at FROM job_runners ORDER BY started_at")]
