"""Alerts (core/jobs/alerts.py, core/jobs/alert_condition.py): the condition language, firing
once and resolving once as events, the notify command with the alert on stdin.

The store helpers here (a job, a finished run) are imported by tests/test_status_cell*.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tessera.core import events
from tessera.core.errors import UsageError
from tessera.core.jobs import alert_condition, alerts
from tessera.core.jobs.job_records import get_job, get_run
from tessera.core.store import db
from tessera.core.times import now as time_now
from test_peer_serve import wait_until

DEADLINE = 30.0


def open_store(path: Path | None = None):
    return db.connect(path)


def add_job(conn, name: str, *, alert: str | None = None, notify: str | None = None, next_run_at: str | None = None,
            paused: bool = False, schedule: str = "*/5 * * * *"):
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO jobs(name, schedule, timezone, action, spec, alert, notify, paused, created_at, next_run_at) "
            "VALUES (?, ?, 'UTC', 'query', ?, ?, ?, ?, ?, ?)",
            (name, schedule, json.dumps({"query": "MATCH (p:Pod) RETURN p"}), alert, notify, int(paused), time_now(),
             next_run_at))
    return get_job(conn, name)


def add_run(conn, job: str, state: str, *, rows: list | None = None, exit_code: int | None = 0,
            duration_s: float = 0.5, finished_at: str | None = None, started_at: str | None = None):
    """A run of ``job`` in ``state`` (finished ones with their figures and result), as the runner stores it."""
    finished = state in ("succeeded", "failed", "timed_out", "cancelled")
    with db.transaction(conn):
        cur = conn.execute(
            "INSERT INTO job_runs(job, trigger, state, created_at, started_at, finished_at, exit_code, duration_s, rows, "
            "result) VALUES (?, 'manual', ?, ?, ?, ?, ?, ?, ?, ?)",
            (job, state, time_now(), started_at or time_now(), (finished_at or time_now()) if finished else None,
             exit_code if finished else None, duration_s if finished else None,
             len(rows) if rows is not None else None, json.dumps(rows) if rows is not None else None))
    return get_run(conn, cur.lastrowid)


def run_and_read(conn, job, state: str = "succeeded", rows: list | None = None, exit_code: int | None = 0):
    run = add_run(conn, job.name, state, rows=rows, exit_code=exit_code)
    return alerts.after_run(conn, job, run, rows)


def alert_events(conn, name: str) -> list:
    return events.read(conn, pattern=f"alert.{name}.>")


# --- the condition language ------------------------------------------------------------------

PODS = [{"name": "a", "restarts": 3, "status": "Running"},
        {"name": "b", "restarts": 7, "status": "Failed"},
        {"name": "c"}]


@pytest.mark.parametrize("condition, holds, value, matched", [
    ("rows > 0", True, 3, []),
    ("rows = 0", False, 3, []),
    ("count(*) >= 3", True, 3, []),
    ("max(restarts) > 5", True, 7, []),
    ("sum(restarts) = 10", True, 10, []),
    ("avg(restarts) < 5", False, 5.0, []),
    ("count(status) = 2", True, 2, []),
    ("restarts > 5", True, 7, ["b"]),
    ('status = "Failed"', True, "Failed", ["b"]),
    ('status != "Running"', True, "Failed", ["b", "c"]),  # c has no status: not Running, as in a query
    ('status = "Failed" AND restarts < 5', False, None, []),  # one row must make the whole condition true
    ('row.name = "c"', True, "c", ["c"]),
    ("exit_code != 0", False, 0, []),
    ("duration > 0.2", True, 0.5, []),
    ("rows > 0 AND restarts > 6", True, 3, ["b"]),
])
def test_a_condition_reads_the_figures_aggregates_and_any_row(condition, holds, value, matched):
    reading = alert_condition.read(alert_condition.parse(condition), rows=PODS, exit_code=0, duration_s=0.5)
    assert (reading.holds, reading.value, [r["name"] for r in reading.matched]) == (holds, value, matched)


def test_a_column_condition_never_holds_on_no_rows_and_a_command_without_rows_has_no_row_count():
    assert not alert_condition.read(alert_condition.parse('status != "Running"'), rows=[], exit_code=0,
                                    duration_s=1).holds
    assert not alert_condition.read(alert_condition.parse("rows > 0"), rows=None, exit_code=0, duration_s=1).holds
    assert alert_condition.read(alert_condition.parse("rows = 0"), rows=[], exit_code=0, duration_s=1).holds


def test_check_condition_gives_the_text_to_store():
    assert alerts.check_condition("  max(restarts) > 5 ") == "max(restarts) > 5"


@pytest.mark.parametrize("condition, position, what", [
    ("rows >", 7, "expected value, got the end of the condition"),
    ("rows > 0 junk", 10, 'got "junk"'),
    ("", 1, "expected a condition"),
    ("rows", 1, "a value, not a condition"),
    ("restarts + 1", 1, "a value, not a condition"),
    ("foo(x) > 1", 1, "unknown function foo()"),
    ("max(max(x)) > 1", 5, "max() inside another aggregate"),
    ("sum(rows) > 1", 1, "folds a column of the result"),
    ("(d)->(:Pod)", 1, "a graph pattern"),
    ("  rows >> 1", 9, 'got ">"'),
])
def test_a_bad_condition_is_one_line_with_its_position_and_examples(condition, position, what):
    with pytest.raises(UsageError) as caught:
        alerts.check_condition(condition)
    line = caught.value.one_line()
    assert "\n" not in line and caught.value.exit_code == 2
    assert f"at character {position}:" in line and what in line, line
    assert "'rows > 0'" in line and "docs/jobs.md" in line


def test_a_condition_longer_than_the_limit_is_refused_before_it_is_parsed():
    with pytest.raises(UsageError) as caught:
        alerts.check_condition("rows > 0 AND " * 200 + "rows > 0")
    assert caught.value.one_line().startswith("the alert condition is 2,608 characters long, over the 2,000")


def test_a_figures_condition_notifies_with_the_rows_the_run_returned(tmp_path):
    conn = open_store()
    out = tmp_path / "notified.json"
    job = add_job(conn, "many", alert="rows > 20", notify=f"cat > '{out}'")
    rows = [{"n": n} for n in range(25)]
    assert run_and_read(conn, job, rows=rows) == "firing"
    note = json.loads(out.read_text())
    assert note["rows"] == rows[:alerts.NOTIFY_ROWS] and note["rows_left_out"] == 5 and note["row_count"] == 25
    assert note["value"] == 25 and note["state"] == "firing" and note["exit_code"] == 0


# --- firing and resolving ----------------------------------------------------------------------

def test_an_alert_fires_once_resolves_once_and_notifies_with_the_alert_on_stdin(tmp_path):
    conn = open_store()
    out = tmp_path / "notified.jsonl"
    job = add_job(conn, "pods", alert="restarts > 5", notify=f"cat >> '{out}'")
    assert run_and_read(conn, job, rows=[{"name": "a", "restarts": 1}]) is None  # ok from the start: nothing said
    assert run_and_read(conn, job, rows=[{"name": "a", "restarts": 9}]) == "firing"
    assert run_and_read(conn, job, rows=[{"name": "a", "restarts": 12}]) is None  # still true: no new event
    assert run_and_read(conn, job, rows=[{"name": "a", "restarts": 12}]) is None
    assert run_and_read(conn, job, rows=[{"name": "a", "restarts": 0}]) == "resolved"
    assert run_and_read(conn, job, rows=[]) is None
    assert run_and_read(conn, job, rows=[{"name": "b", "restarts": 6}, {"name": "c", "restarts": 1}]) == "firing"
    found = alert_events(conn, "pods")
    assert [e.subject for e in found] == ["alert.pods.firing", "alert.pods.resolved", "alert.pods.firing"]
    first = found[0].data
    assert first["job"] == "pods" and first["condition"] == "restarts > 5" and first["value"] == 9
    assert isinstance(first["run"], int) and first["since"] == get_run(conn, first["run"]).finished_at
    assert found[1].data["firing_since"] == first["since"]
    notes = [json.loads(line) for line in out.read_text().splitlines()]
    assert [n["state"] for n in notes] == ["firing", "resolved", "firing"]
    assert notes[2]["rows"] == [{"name": "b", "restarts": 6}] and notes[2]["value"] == 6  # the rows that matched
    assert notes[2]["run"] == found[2].data["run"] and notes[2]["condition"] == "restarts > 5"
    state = conn.execute("SELECT state, run_id, detail FROM job_alerts WHERE job = 'pods'").fetchone()
    assert state[0] == "firing" and state[1] == found[2].data["run"]
    assert json.loads(state[2])["notify"]["ok"] is True


def test_failed_timed_out_and_cancelled_runs_leave_a_result_alert_as_it_was():
    conn = open_store()
    job = add_job(conn, "nonempty", alert="rows > 0")
    assert run_and_read(conn, job, rows=[{"x": 1}]) == "firing"
    assert run_and_read(conn, job, "failed", rows=None, exit_code=3) is None  # no result: not "no rows"
    assert run_and_read(conn, job, "timed_out", rows=None, exit_code=None) is None
    assert run_and_read(conn, job, "cancelled", rows=None, exit_code=None) is None
    assert conn.execute("SELECT state FROM job_alerts WHERE job = 'nonempty'").fetchone()[0] == "firing"
    assert len(alert_events(conn, "nonempty")) == 1


def test_an_exit_code_alert_reads_failed_runs():
    conn = open_store()
    job = add_job(conn, "health", alert="exit_code != 0")
    assert run_and_read(conn, job, rows=None, exit_code=0) is None
    assert run_and_read(conn, job, "failed", rows=None, exit_code=3) == "firing"
    assert run_and_read(conn, job, "failed", rows=None, exit_code=1) is None
    assert run_and_read(conn, job, "timed_out", rows=None, exit_code=None) is None
    assert run_and_read(conn, job, rows=None, exit_code=0) == "resolved"


def test_a_run_older_than_the_one_read_last_changes_nothing():
    conn = open_store()
    job = add_job(conn, "late", alert="rows > 0")
    older = add_run(conn, "late", "succeeded", rows=[{"x": 1}])
    newer = add_run(conn, "late", "succeeded", rows=[])
    assert alerts.after_run(conn, job, newer, []) is None
    assert alerts.after_run(conn, job, older, [{"x": 1}]) is None  # a second runner finishing late
    assert alert_events(conn, "late") == []


def test_a_condition_that_cannot_be_read_keeps_the_state_and_says_why():
    conn = open_store()
    job = add_job(conn, "texty", alert="avg(name) > 1")
    assert run_and_read(conn, job, rows=[{"name": "a"}]) is None
    detail = json.loads(conn.execute("SELECT detail FROM job_alerts WHERE job = 'texty'").fetchone()[0])
    assert "AVG needs numbers" in detail["error"] and alert_events(conn, "texty") == []


def test_a_failing_notify_command_is_recorded_in_the_alert_and_logged_never_raised(capsys):
    conn = open_store()
    job = add_job(conn, "loud", alert="rows > 0", notify="echo 'no webhook here' >&2; exit 7")
    assert run_and_read(conn, job, rows=[{"x": 1}]) == "firing"  # the change stands
    detail = json.loads(conn.execute("SELECT detail FROM job_alerts WHERE job = 'loud'").fetchone()[0])
    assert detail["notify"]["ok"] is False and detail["notify"]["exit_code"] == 7
    assert detail["notify"]["error"] == "exit code 7: no webhook here"
    assert [e.subject for e in alert_events(conn, "loud")] == ["alert.loud.firing"]
    (line,) = [json.loads(x) for x in capsys.readouterr().err.splitlines()]  # the runner's log: JSON off a terminal
    assert (line["level"], line["event"], line["job"], line["state"]) == ("warning", "alert.notify_failed", "loud", "firing")
    assert line["error"] == "exit code 7: no webhook here"


def test_a_notify_command_past_its_timeout_is_killed_with_its_whole_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    outcome = alerts.notify(f"sleep 300 & echo $! > '{pid_file}'; wait", {"job": "slow"}, timeout=1.0)
    assert outcome["ok"] is False and "killed after 1 s" in outcome["error"]
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), "the child's pid")
    child = int(pid_file.read_text())

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"

    wait_until(gone, "the notify command's background child to die")


def test_a_notify_command_that_cannot_start_is_a_failure_not_an_exception(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    outcome = alerts.notify("true", {"job": "x"})
    assert outcome["ok"] is False and outcome["error"].startswith("cannot start sh")
