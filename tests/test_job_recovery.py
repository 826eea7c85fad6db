"""Runners that died, in a real store: a run held by a runner on another host whose heartbeat
stopped, or whose row is gone, is failed (or retried) by the next runner while a live runner's is
left alone; `job cancel` of a dead runner's run ends it at once; a live runner's heartbeat moves;
a job whose stored time zone no longer reads does not keep the others from running."""

from __future__ import annotations

import subprocess

from tests.job_helpers import DEADLINE, SHELL, TSR, add_shell_job, gone, runs_of, store, tsr
from tests.test_peer_serve import wait_until

OLD = "2026-01-01T00:00:00.000Z"


def _running_under(runner: str, *, host: str, heartbeat: str, job: str = "held", pid: int | None = None) -> int:
    """A run of ``job`` left running by ``runner`` (its row written as given; no row when host is None)."""
    from tessera.core.jobs import run_states
    from tessera.core.jobs.job_records import get_job
    from tessera.core.store.db import transaction

    conn = store()
    if host is not None:
        with transaction(conn):
            conn.execute("INSERT INTO job_runners (id, kind, pid, host, started_at, heartbeat_at) VALUES (?, 'daemon', 1, ?, ?, ?)",
                         (runner, host, OLD, heartbeat))
    run = run_states.create(conn, get_job(conn, job), trigger="manual")
    claimed = run_states.claim(conn, runner, run.id)
    if pid is not None:
        run_states.set_pid(conn, claimed.id, pid)
    return claimed.id


def test_runs_of_a_runner_whose_heartbeat_stopped_or_whose_row_is_gone_are_failed_and_retried():
    from tessera.core.jobs.runner_registry import recover_stale
    from tessera.core.times import now

    add_shell_job("held", "true", cron="0 0 1 1 *", retries=1, backoff_s=60)
    stale = _running_under("daemon-far-1", host="far-away-host", heartbeat=OLD)
    vanished = _running_under("daemon-gone-2", host=None, heartbeat=OLD)
    alive = _running_under("daemon-far-3", host="far-away-host", heartbeat=now())
    ended = recover_stale(store(), me="me")
    assert sorted(r.id for r in ended) == [stale, vanished]
    runs = {r.id: r for r in runs_of("held")}
    assert runs[stale].state == "failed" and "heartbeat stopped at 2026-01-01" in runs[stale].error
    assert runs[vanished].state == "failed" and "gone from job_runners" in runs[vanished].error
    assert runs[alive].state == "running"
    retries = [r for r in runs.values() if r.trigger == "retry"]
    assert sorted((r.attempt, r.state) for r in retries) == [(2, "pending"), (2, "pending")]
    from tessera.core.jobs.job_records import runners

    assert [r.id for r in runners(store())] == ["daemon-far-3"]  # the dead runner's row removed


def test_cancelling_a_dead_runners_run_kills_its_leftover_group_and_ends_it_at_once(tmp_path):
    import os

    add_shell_job("held", "true", cron="0 0 1 1 *")
    # a leftover process group carrying the run's marker, as a SIGKILLed runner leaves it
    run_id = _running_under("daemon-gone-9", host=None, heartbeat=OLD)
    leftover = subprocess.Popen(["sleep", "300"], start_new_session=True, env={**os.environ, "TESSERA_JOB_RUN": str(run_id)})
    try:
        from tessera.core.jobs import run_states

        run_states.set_pid(store(), run_id, leftover.pid)
        result = tsr("job", "cancel", str(run_id), timeout=DEADLINE)
        assert result.returncode == 0 and f"run {run_id} cancelled" in result.stderr
        assert leftover.wait(DEADLINE) == -9
        [run] = runs_of("held")
        assert run.state == "cancelled" and "gone from job_runners" in run.error
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_a_process_without_the_runs_marker_is_never_killed_as_a_leftover():
    add_shell_job("held", "true", cron="0 0 1 1 *")
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        run_id = _running_under("daemon-gone-7", host=None, heartbeat=OLD, pid=stranger.pid)
        from tessera.core.jobs.runner_registry import recover_stale

        assert [r.id for r in recover_stale(store(), me="me")] == [run_id]
        assert not gone(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()


def test_a_live_daemon_keeps_its_heartbeat_fresh_and_removes_its_row_on_exit():
    from tessera.core.jobs.job_records import runner_alive, runners

    proc = subprocess.Popen([*TSR, "job", "daemon"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        first = wait_until(lambda: runners(store()), "the daemon's runner row")[0]
        assert (first.kind, first.pid) == ("daemon", proc.pid) and runner_alive(first)
        wait_until(lambda: [r for r in runners(store()) if r.heartbeat_at > first.heartbeat_at], "a newer heartbeat")
        proc.terminate()
        assert proc.wait(DEADLINE) == 0
        assert runners(store()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_job_whose_time_zone_no_longer_reads_does_not_block_the_others():
    from tessera.core.store.db import transaction

    add_shell_job("good", "true", cron="* * * * *", at="2026-06-01T09:59:30Z")
    add_shell_job("bad", "true", cron="* * * * *", at="2026-06-01T09:59:30Z")
    conn = store()
    with transaction(conn):
        conn.execute("UPDATE jobs SET timezone = 'Gone/Zone' WHERE name = 'bad'")
    result = tsr("job", "run-due", env={**SHELL, "TESSERA_JOBS_NOW": "2026-06-01T10:00:10Z"})
    assert result.returncode == 0, result.stderr
    assert [r.state for r in runs_of("good")] == ["succeeded"] and runs_of("bad") == []
    assert '"job.unreadable"' in result.stderr and "Gone/Zone" in result.stderr
