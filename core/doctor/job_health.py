"""Check 7: something runs the jobs, and none is overdue (core/jobs/job_records.py). A runner is
alive when its heartbeat is fresh and, on this host, its pid still runs (job_records.runner_dead); jobs
with no live runner are fine while none is overdue (``tessera job run-due`` from cron leaves no
runner row between its runs). No jobs: ok."""

from __future__ import annotations

from pathlib import Path

from tessera.core.doctor.check_result import FAIL, OK, WARN, CheckResult, listed, quoted
from tessera.core.doctor.read_only_store import open_read_only, unreadable
from tessera.core.errors import TesseraError

RECENT_RUNS = 20  # each job's last runs looked at for one a schedule started (not `job run NAME`)
START_RUNNER = "tessera job daemon (or add `* * * * * tessera job run-due` to crontab -e)"


def alive(runner) -> bool:
    """A runner is alive: fresh heartbeat and, on this host, its process still runs (the rule the
    runners themselves apply to each other: core/jobs/job_records.runner_dead)."""
    from tessera.core.jobs.job_records import runner_dead

    return runner_dead(runner) is None


def check_jobs(store: Path) -> list[CheckResult]:
    from tessera.core.jobs import job_records

    if not store.exists():
        return [CheckResult("jobs", OK, "no jobs")]
    try:
        conn = open_read_only(store)
    except TesseraError as exc:
        return [unreadable("jobs", exc)]
    try:
        if not job_records.has_jobs_tables(conn):
            return [CheckResult("jobs", OK, "no jobs (the store predates jobs)")]
        jobs = job_records.list_jobs(conn)
        runners = job_records.runners(conn)
        scheduled = any(run.trigger != "manual" for job in jobs for run in job_records.runs(conn, job.name, limit=RECENT_RUNS))
    except TesseraError as exc:
        return [unreadable("jobs", exc)]
    finally:
        conn.close()
    if not jobs:
        return [CheckResult("jobs", OK, "no jobs")]
    return [_runner_row(jobs, runners, scheduled), _overdue_row(jobs, runners)]


def _describe(runner) -> str:
    return f"{runner.kind} pid {runner.pid} on {runner.host} (heartbeat {runner.heartbeat_at})"


def _runner_row(jobs: list, runners: list, scheduled: bool) -> CheckResult:
    from tessera.core.jobs.job_records import overdue

    live = [r for r in runners if alive(r)]
    dead = [r for r in runners if not alive(r)]
    late = [j.name for j in jobs if overdue(j)]
    dead_note = f"; dead: {listed([_describe(r) for r in dead])}" if dead else ""
    if any(r.kind == "daemon" for r in live):
        daemon = next(r for r in live if r.kind == "daemon")
        return CheckResult("job runner", OK, f"daemon alive: {_describe(daemon)}{dead_note}")
    if live:
        return CheckResult("job runner", OK, f"run-due running: {_describe(live[0])}{dead_note}")
    if late:
        what = f"no live runner{dead_note}" if dead else "no job daemon runs and no `tessera job run-due` has run them"
        return CheckResult("job runner", FAIL, f"{what}; {len(late)} job{'' if len(late) == 1 else 's'} overdue",
                           START_RUNNER)
    if dead:
        return CheckResult("job runner", WARN, f"no live runner{dead_note}; no job is overdue yet (the next runner clears the dead one's runs)",
                           START_RUNNER)
    if not scheduled:
        return CheckResult("job runner", WARN, "no runner has run a scheduled run yet (only `tessera job run`): "
                                               "jobs will be overdue unless one runs", START_RUNNER)
    return CheckResult("job runner", OK, "no runner at this moment, none overdue: scheduled runs happen "
                                         "(`tessera job run-due` from cron leaves no row between its runs)")


def _overdue_row(jobs: list, runners: list) -> CheckResult:
    from tessera.core.jobs.job_records import overdue

    late = [j for j in jobs if overdue(j)]
    active = [j for j in jobs if not j.paused]
    if not late:
        return CheckResult("jobs overdue", OK, f"{len(active)} active job{'' if len(active) == 1 else 's'} on time"
                                               + (f", {len(jobs) - len(active)} paused" if len(active) < len(jobs) else ""))
    names = listed([f"{j.name} (due {j.next_run_at})" for j in late])
    if any(alive(r) for r in runners):
        fix = f"tessera job run {quoted(late[0].name)} (and see tessera job history {quoted(late[0].name)})"
    else:
        fix = START_RUNNER
    return CheckResult("jobs overdue", FAIL, f"overdue: {names}", fix)
