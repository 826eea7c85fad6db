"""A job's definition: checking what `job add` was given (before anything is stored) and the
changes to the jobs table (add, remove, pause, resume), each with its event
``job.<name>.added|removed|paused|resumed`` in the same transaction (docs/jobs.md)."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from tessera.core import events
from tessera.core.errors import UsageError
from tessera.core.jobs import job_records
from tessera.core.jobs.cron_schedule import Schedule, zone
from tessera.core.jobs.job_clock import jobs_now
from tessera.core.store.db import transaction
from tessera.core.times import format_time, now

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
MAX_RETRIES = 100
MAX_BACKOFF_S = 24 * 3600.0


@dataclass
class JobDefinition:
    """What `job add` stores, checked (``check``) before it is."""

    name: str
    schedule: str
    timezone: str
    action: str  # query | cell | command
    spec: dict[str, Any]
    timeout_s: float | None = None
    retries: int = 0
    backoff_s: float = 30.0
    alert: str | None = None
    notify: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UsageError(f"bad job name '{name}': use 1 to 100 letters, digits, '-' or '_'",
                         hint="a job name is one token of its events' subjects (job.NAME.STATE), e.g. nightly-pods")
    return name


def check_retries(retries: int, backoff_s: float) -> None:
    if not 0 <= retries <= MAX_RETRIES:
        raise UsageError(f"--retries {retries} is out of range", hint=f"use 0 to {MAX_RETRIES}")
    if not 0 <= backoff_s <= MAX_BACKOFF_S:
        raise UsageError("--backoff must be from 0 to 24h", hint="e.g. 30s, 5m")


def check_command(argv: list[str], commands: Any) -> list[str]:
    """The tessera arguments of a command job (``-- tessera ARGS...``), without the leading
    ``tessera``; UsageError unless their first word is one of ``commands`` (the front end's)."""
    if not argv or argv[0] not in ("tessera", "tsr"):
        raise UsageError("a command job runs a tessera command: write it after '--' starting with tessera",
                         hint="e.g. tessera job add nightly --cron '0 3 * * *' -- tessera events verify")
    args = argv[1:]
    words = [a for a in args if not a.startswith("-")]
    if not words or words[0] not in commands:
        shown = words[0] if words else "(none)"
        raise UsageError(f"'-- tessera {' '.join(args)}': {shown} is not a tessera command",
                         hint="run tessera --help for the commands")
    if words[0] == "job":
        # its runs would start in sessions of their own, out of reach of this job's timeout and cancel
        raise UsageError("a job cannot run `tessera job ...`",
                         hint="give each job its own schedule, or run the other job's action directly")
    return args


def check(conn: sqlite3.Connection, definition: JobDefinition) -> tuple[Schedule, Any]:
    """Every check `job add` makes, in order, raising the first failure (nothing is stored)."""
    from tessera.core.jobs import alerts

    check_name(definition.name)
    schedule = Schedule.parse(definition.schedule)
    tz = zone(definition.timezone)
    check_retries(definition.retries, definition.backoff_s)
    if definition.action == "query":
        from tessera.core.query.run import parse_query

        parse_query(definition.spec["query"])
    elif definition.action == "cell":
        _check_cell(conn, definition.spec["notebook"], definition.spec["cell"])
    if definition.alert is not None:
        definition.alert = alerts.check_condition(definition.alert)
    if definition.notify is not None and not definition.notify.strip():
        raise UsageError("--notify is empty", hint="give the command to run with the alert as JSON on stdin")
    if job_records.get_job(conn, definition.name) is not None:
        raise UsageError(f"job {definition.name} exists already",
                         hint=f"remove it first (tessera job rm {definition.name}) or choose another name")
    return schedule, tz


def _check_cell(conn: sqlite3.Connection, notebook: str, number: int) -> None:
    from tessera.core.errors import QueryError
    from tessera.core.notebook import repository

    where = f"--cell {notebook}/{number}"
    if not repository.exists(conn, notebook):
        raise UsageError(f"{where}: there is no notebook {notebook}", hint="tessera notebook list shows the notebooks")
    cells = repository.load(conn, notebook).cells()
    if number > len(cells):
        raise UsageError(f"{where}: notebook {notebook} has {len(cells)} cell{'s' if len(cells) != 1 else ''}",
                         hint=f"tessera notebook show {notebook} numbers them")
    try:
        from tessera.core.notebook.cells import cell_type

        kind = cell_type(cells[number - 1]["type"])
    except QueryError as exc:
        raise UsageError(f"{where}: {exc.message}", hint=exc.hint) from None
    if not getattr(kind, "runnable", True):
        raise UsageError(f"{where} is a {cells[number - 1]['type']} cell, which does not run",
                         hint="name a query, sql, events or search cell")


def add(conn: sqlite3.Connection, definition: JobDefinition) -> job_records.Job:
    """Check and store the job with its first due time; event ``job.<name>.added``."""
    schedule, tz = check(conn, definition)
    first = schedule.next_due(jobs_now(), tz)
    with transaction(conn):
        if job_records.get_job(conn, definition.name) is not None:  # a racing add
            raise UsageError(f"job {definition.name} exists already")
        conn.execute(
            "INSERT INTO jobs (name, schedule, timezone, action, spec, timeout_s, retries, backoff_s, alert, notify, "
            "paused, created_at, next_run_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (definition.name, schedule.text, definition.timezone, definition.action, json.dumps(definition.spec),
             definition.timeout_s, definition.retries, definition.backoff_s, definition.alert, definition.notify,
             now(), format_time(first) if first else None))
        events.append(conn, f"job.{definition.name}.added",
                      {"job": definition.name, "schedule": schedule.text, "timezone": definition.timezone,
                       "action": definition.action, "next_run_at": format_time(first) if first else None})
    return job_records.get_job(conn, definition.name)


def existing(conn: sqlite3.Connection, name: str) -> job_records.Job:
    check_name(name)
    job = job_records.get_job(conn, name)
    if job is None:
        raise UsageError(f"there is no job {name}", hint="tessera job list shows the jobs")
    return job


def remove(conn: sqlite3.Connection, name: str) -> None:
    """Remove the job and its history; refused while one of its runs is queued or running."""
    with transaction(conn):
        existing(conn, name)
        active = job_records.runs(conn, name, states=("queued", "running"), limit=1)
        if active:
            raise UsageError(f"job {name} has run {active[0].id} {active[0].state}",
                             hint=f"cancel it first (tessera job cancel {active[0].id}) or wait for it to end")
        conn.execute("DELETE FROM jobs WHERE name = ?", (name,))
        events.append(conn, f"job.{name}.removed", {"job": name})


def set_paused(conn: sqlite3.Connection, name: str, paused: bool) -> job_records.Job:
    """Pause (runs nothing new; next_run_at kept) or resume (next_run_at from now: the times
    missed while paused are not caught up)."""
    with transaction(conn):
        job = existing(conn, name)
        if job.paused == paused:
            return job
        next_run_at = job.next_run_at
        if not paused:
            due = Schedule.parse(job.schedule).next_due(jobs_now(), zone(job.timezone))
            next_run_at = format_time(due) if due else None
        conn.execute("UPDATE jobs SET paused = ?, next_run_at = ? WHERE name = ?", (int(paused), next_run_at, name))
        events.append(conn, f"job.{name}.{'paused' if paused else 'resumed'}", {"job": name, "next_run_at": next_run_at})
    return job_records.get_job(conn, name)
