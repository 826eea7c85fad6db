"""Alerts on a job's result (`job add --alert COND [--notify CMD]`): the condition checked after
each finished run; a change of state (ok -> firing, firing -> ok) is one event
``alert.<name>.firing|resolved`` and one run of the notify command (docs/jobs.md, "Alerts").
The condition language is core/jobs/alert_condition.py.

Which runs count: a succeeded run always; a failed run (it ended with an exit code) only for a
condition on ``exit_code`` and ``duration`` alone, since its result is missing and would read as
"no rows" (resolving ``rows > 0`` on every failure); a timed-out or cancelled run never.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tessera.core.jobs.job_records import Job, JobRun

NOTIFY_TIMEOUT_S = 30.0  # the notify command is killed (its whole process group) after this long
NOTIFY_ROWS = 20  # rows the notify command's JSON carries at most (the rest are counted)
_ERROR_CHARS = 300  # of the notify command's stderr kept in the alert's detail
_WAIT_AFTER_KILL_S = 5.0


def check_condition(text: str) -> str:
    """The condition as stored (normalised); UsageError (one line: what, where, how to fix) when
    it is not a valid alert condition. Called by `job add` before anything is stored."""
    from tessera.core.jobs.alert_condition import parse

    return parse(text).text


def after_run(conn: sqlite3.Connection, job: Job, run: JobRun, rows: list[dict[str, Any]] | None) -> str | None:
    """Called by the runner once ``run`` has reached a finished state (its row stored), with the
    rows a query or cell returned (None for a command whose output is not JSON rows). Updates
    job_alerts and appends ``alert.<name>.firing|resolved`` in one transaction when the state
    changes, then runs the job's notify command with the alert JSON on stdin (outside the
    transaction; its failure is logged in the alert's detail, never raised).

    Returns:
        "firing" or "resolved" when the state changed, else None.
    """
    from tessera.core.errors import TesseraError
    from tessera.core.jobs.alert_condition import parse, read

    if job.alert is None or run.state not in ("succeeded", "failed"):
        return None
    try:
        condition = parse(job.alert)
        if run.state == "failed" and condition.reads_result:
            return None
        reading = read(condition, rows=rows, exit_code=run.exit_code, duration_s=run.duration_s, row_count=run.rows)
    except TesseraError as err:
        # the state stays as it was: a condition that cannot be read says nothing about the result
        _log("alert.unreadable", job=job.name, run=run.id, error=err.one_line())
        _update_detail(conn, job.name, {"error": err.one_line(), "last_run": run.id})
        return None
    change = _store(conn, job, run, condition.text, reading, rows)
    if change is None:
        return None
    state, alert = change
    if job.notify:
        outcome = notify(job.notify, alert)
        if not outcome["ok"]:
            _log("alert.notify_failed", job=job.name, run=run.id, state=state, error=outcome["error"])
        _update_detail(conn, job.name, {"notify": outcome})
    return state


def _store(conn: sqlite3.Connection, job: Job, run: JobRun, text: str, reading: Any,
           rows: list[dict[str, Any]] | None) -> tuple[str, dict] | None:
    """The alert's new state stored, with its event when it changed: (state, the alert JSON),
    or None when it did not change (or ``run`` is older than the run last read)."""
    from tessera.core import events
    from tessera.core.store.db import transaction
    from tessera.core.times import now as time_now

    result = reading.matched or list(rows or [])  # what made it true, else what the run returned
    detail = {"condition": text, "value": reading.value, "matched": len(reading.matched), "last_run": run.id}
    with transaction(conn):
        row = conn.execute("SELECT state, since, detail FROM job_alerts WHERE job = ?", (job.name,)).fetchone()
        was, was_since, was_detail = (row[0], row[1], json.loads(row[2])) if row else ("ok", None, {})
        if isinstance(was_detail.get("last_run"), int) and was_detail["last_run"] > run.id:
            return None  # a later run was read first (two runners): it says more than this one
        state = "firing" if reading.holds else "ok"
        if row is not None and state == was:
            kept = {k: v for k, v in was_detail.items() if k in ("notify",)}
            conn.execute("UPDATE job_alerts SET detail = ? WHERE job = ?", (_json({**kept, **detail}), job.name))
            return None
        since = run.finished_at or time_now()
        conn.execute(
            "INSERT INTO job_alerts(job, state, since, run_id, detail) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(job) DO UPDATE SET state = excluded.state, since = excluded.since, "
            "run_id = excluded.run_id, detail = excluded.detail",
            (job.name, state, since, run.id, _json(detail)))
        if row is None and state == "ok":
            return None  # the first reading, and nothing to say
        change = "firing" if state == "firing" else "resolved"
        data = {"job": job.name, "condition": text, "run": run.id, "since": since, "value": reading.value,
                "rows": run.rows, "matched": len(reading.matched)}
        if change == "resolved":
            data["firing_since"] = was_since
        events.append(conn, f"alert.{job.name}.{change}", data)
    alert = {"job": job.name, "state": change, "condition": text, "run": run.id, "since": since,
             "value": reading.value, "exit_code": run.exit_code, "duration_s": run.duration_s,
             "row_count": run.rows, "rows": list(result[:NOTIFY_ROWS]), "rows_left_out": max(0, len(result) - NOTIFY_ROWS)}
    return change, alert


def _log(event: str, **fields: Any) -> None:
    """A warning in the runner's log (stderr: JSON lines off a terminal, as the daemon's own)."""
    from tessera.core.daemon_log import DaemonLog

    DaemonLog()("warning", event, **fields)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _update_detail(conn: sqlite3.Connection, job: str, changes: dict[str, Any]) -> None:
    """Merge ``changes`` into the alert's detail (an alert not read yet gets an ``ok`` row)."""
    from tessera.core.store.db import transaction
    from tessera.core.times import now as time_now

    with transaction(conn):
        row = conn.execute("SELECT detail FROM job_alerts WHERE job = ?", (job,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO job_alerts(job, state, since, run_id, detail) VALUES (?, 'ok', ?, NULL, ?)",
                         (job, time_now(), _json(changes)))
        else:
            conn.execute("UPDATE job_alerts SET detail = ? WHERE job = ?", (_json({**json.loads(row[0]), **changes}), job))


def notify(command: str, alert: dict[str, Any], *, timeout: float = NOTIFY_TIMEOUT_S) -> dict[str, Any]:
    """Run ``command`` through ``sh -c`` with ``alert`` as one line of JSON on stdin, in a process
    group of its own (killed whole after ``timeout`` s). Never raises.

    Returns:
        ``{"ok", "exit_code", "error", "at"}``: error is the failure's one line (the end of its
        stderr, or why it could not start or was killed), None when it exited 0.
    """
    import os
    import signal
    import subprocess

    from tessera.core.errors import printable
    from tessera.core.times import now as time_now

    started = time_now()
    payload = (json.dumps(alert, default=str) + "\n").encode("utf-8")
    try:
        proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return {"ok": False, "exit_code": None, "error": f"cannot start sh: {exc.strerror or exc}", "at": started}
    try:
        _, err = proc.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.communicate(timeout=_WAIT_AFTER_KILL_S)
        except subprocess.TimeoutExpired:  # something it started left the group and holds stderr
            pass
        return {"ok": False, "exit_code": None, "error": f"killed after {timeout:g} s (NOTIFY_TIMEOUT_S)", "at": started}
    if proc.returncode == 0:
        return {"ok": True, "exit_code": 0, "error": None, "at": started}
    tail = printable(err.decode("utf-8", "replace").strip()[-_ERROR_CHARS:])
    how = f"exit code {proc.returncode}" if proc.returncode > 0 else f"killed by signal {-proc.returncode}"
    return {"ok": False, "exit_code": proc.returncode, "error": f"{how}: {tail}" if tail else how, "at": started}
