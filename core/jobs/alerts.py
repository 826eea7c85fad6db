"""Alerts on a job's result (`job add --alert COND [--notify CMD]`): the condition checked after
each finished run; a change of state (ok -> firing, firing -> ok) is one event
``alert.<name>.firing|resolved`` and one run of the notify command (docs/jobs.md).

FOUNDATION PLACEHOLDER (issue 17, lead): the signatures below are the contract between the job
runner and the alerts part; the alerts part replaces the bodies. Nothing on main may ship with
these bodies."""

from __future__ import annotations

import sqlite3
from typing import Any

from tessera.core.jobs.job_records import Job, JobRun


def check_condition(text: str) -> str:
    """The condition as stored (normalised); UsageError (one line: what, where, how to fix) when
    it is not a valid alert condition. Called by `job add` before anything is stored."""
    return text.strip()


def after_run(conn: sqlite3.Connection, job: Job, run: JobRun, rows: list[dict[str, Any]] | None) -> str | None:
    """Called by the runner once ``run`` has reached a finished state (its row stored), with the
    rows a query or cell returned (None for a command whose output is not JSON rows). Updates
    job_alerts and appends ``alert.<name>.firing|resolved`` in one transaction when the state
    changes, then runs the job's notify command with the alert JSON on stdin (outside the
    transaction; its failure is logged in the alert's detail, never raised).

    Returns:
        "firing" or "resolved" when the state changed, else None.
    """
    if job.alert is None:
        return None
    raise NotImplementedError("alerts are not built yet")
