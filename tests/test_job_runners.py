"""The two runners with real processes: `job run-due` racing itself (exactly one run per due
time), the catch-up policy, a timeout killing the whole process group, `job daemon` (its lock,
SIGTERM with a grace period, Ctrl-C, cancel) and a SIGKILLed daemon's runs ended by the next
runner. Every wait polls a condition; schedules are driven by TESSERA_JOBS_NOW."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.job_helpers import DEADLINE, SHELL, TSR, add_shell_job, gone, job_events, runs_of, store, tsr
from tests.process_lines import signal_a_worker_thread, wait_stderr
from tests.test_peer_serve import wait_until


@pytest.fixture
def started():
    procs: list[subprocess.Popen] = []

    def start(*args: str, env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen([*TSR, *args], env={**os.environ, **SHELL, **(env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(DEADLINE)


def test_run_dues_started_together_make_exactly_one_run_per_due_time(started):
    add_shell_job("tick", "true", cron="* * * * *", at="2026-06-01T09:59:30Z")
    rounds, racers = 6, 3
    for minute in range(rounds):
        at = {"TESSERA_JOBS_NOW": f"2026-06-01T10:{minute:02d}:20Z"}
        procs = [started("job", "run-due", env=at) for _ in range(racers)]
        for proc in procs:
            assert proc.wait(DEADLINE) == 0, proc.stderr.read()
    runs = runs_of("tick")
    assert sorted(r.scheduled_for for r in runs) == [f"2026-06-01T10:{m:02d}:00.000Z" for m in range(rounds)]
    assert all(r.state == "succeeded" and r.trigger == "schedule" for r in runs)
    assert len([e for e in job_events("tick") if e.subject == "job.tick.succeeded"]) == rounds
    assert not [e for e in job_events("tick") if e.subject == "job.tick.missed"]


def test_after_downtime_only_the_latest_missed_time_runs_and_the_rest_are_one_missed_event():
    add_shell_job("five", "true", cron="*/5 * * * *", at="2026-06-01T10:00:10Z")
    assert tsr("job", "run-due", env={**SHELL, "TESSERA_JOBS_NOW": "2026-06-01T11:02:00Z"}).returncode == 0
    [run] = runs_of("five")
    assert run.scheduled_for == "2026-06-01T11:00:00.000Z" and run.state == "succeeded"
    [missed] = [e for e in job_events("five") if e.subject == "job.five.missed"]
    assert {k: missed.data[k] for k in ("count", "first", "last", "ran", "more")} == {
        "count": 11, "first": "2026-06-01T10:05:00.000Z", "last": "2026-06-01T10:55:00.000Z",
        "ran": "2026-06-01T11:00:00.000Z", "more": False}
    from tessera.core.jobs.job_records import get_job

    assert get_job(store(), "five").next_run_at == "2026-06-01T11:05:00.000Z"


def _pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() and path.read_text().count("\n") >= 2 else []


def test_a_timeout_kills_the_whole_process_group_grandchild_included(tmp_path):
    pids = tmp_path / "pids"
    add_shell_job("slow", f"echo $$ > {pids}.tmp; sleep 300 & echo $! >> {pids}.tmp; mv {pids}.tmp {pids}; wait",
                  timeout_s=1.0)
    result = tsr("job", "run", "slow", env=SHELL)
    assert result.returncode == 4 and "timed out" in result.stderr
    shell, grandchild = _pids(pids)
    wait_until(lambda: gone(shell) and gone(grandchild), "the shell and its sleep to be gone")
    [run] = runs_of("slow")
    assert run.state == "timed_out" and "timed out after 1 s" in run.error
    assert job_events("slow")[-1].subject == "job.slow.timed_out"


def _daemon(started, *args: str, env: dict | None = None) -> subprocess.Popen:
    proc = started("job", "daemon", *args, env=env)
    wait_stderr(proc, lambda line: '"started"' in line)
    return proc


def _running(name: str):
    def check():
        runs = [r for r in runs_of(name) if r.state == "running" and r.pid is not None]
        return runs[0] if runs else None
    return wait_until(check, f"a run of {name} to be running")


def test_sigterm_lets_a_running_job_finish_within_the_grace_period_then_exits_0(started, tmp_path):
    release = tmp_path / "release"
    add_shell_job("patient", f"while [ ! -e {release} ]; do sleep 0.05; done; echo finished")
    daemon = _daemon(started, "--grace", "60s")
    assert tsr("job", "run", "patient", "--detach").returncode == 0
    _running("patient")
    daemon.send_signal(signal.SIGTERM)
    wait_stderr(daemon, lambda line: '"stopping"' in line)
    assert daemon.poll() is None  # still waiting for the run
    release.touch()
    assert daemon.wait(DEADLINE) == 0
    [run] = runs_of("patient")
    assert run.state == "succeeded" and run.output == "finished\n"
    from tessera.core.jobs.job_records import runners

    assert runners(store()) == []  # its row removed on a clean exit


def test_sigterm_cancels_what_is_still_running_after_the_grace_period(started, tmp_path):
    pids = tmp_path / "pids"
    add_shell_job("stubborn", f"echo $$ > {pids}.tmp; sleep 300 & echo $! >> {pids}.tmp; mv {pids}.tmp {pids}; wait")
    daemon = _daemon(started, "--grace", "1s")
    assert tsr("job", "run", "stubborn", "--detach").returncode == 0
    _running("stubborn")
    wait_until(lambda: _pids(pids), "the job to write its pids")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(DEADLINE) == 0
    [run] = runs_of("stubborn")
    assert run.state == "cancelled"
    assert all(gone(pid) for pid in _pids(pids))
    stopped = json.loads(wait_stderr(daemon, lambda line: '"stopped"' in line))
    assert stopped["signal"] == "SIGTERM" and stopped["level"] == "info"


def test_ctrl_c_stops_the_daemon_with_130_and_a_second_daemon_is_refused(started):
    daemon = _daemon(started)
    second = tsr("job", "daemon")
    assert second.returncode == 3
    assert second.stderr.count("\n") == 1 and f"another job daemon is running (pid {daemon.pid}" in second.stderr
    daemon.send_signal(signal.SIGINT)
    assert daemon.wait(DEADLINE) == 130


@pytest.mark.parametrize("signame, code, target", [("SIGINT", 130, "process"), ("SIGTERM", 143, "process"),
                                                   ("SIGTERM", 143, "worker thread")])
def test_a_signal_to_run_due_cancels_its_running_runs_kills_their_groups_and_exits_128_n(started, tmp_path,
                                                                                        signame, code, target):
    pids = tmp_path / "pids"
    add_shell_job("stubborn", f"echo $$ > {pids}.tmp; sleep 300 & echo $! >> {pids}.tmp; mv {pids}.tmp {pids}; wait")
    assert tsr("job", "run", "stubborn", "--detach").returncode == 0
    runner = started("job", "run-due")
    wait_until(lambda: _pids(pids), "the job to write its pids")
    if target == "process":
        runner.send_signal(getattr(signal, signame))
    else:  # once seen under load: the main thread, in an untimed join, never ran the handler
        signal_a_worker_thread(runner.pid, getattr(signal, signame))
    assert runner.wait(DEADLINE) == code
    [run] = runs_of("stubborn")
    assert run.state == "cancelled"
    assert all(gone(pid) for pid in _pids(pids))
    from tessera.core.jobs.job_records import runners

    assert runners(store()) == []  # its row removed: nothing is left for a recovery


def test_the_daemon_runs_due_jobs_and_a_cancel_kills_a_running_one(started, tmp_path):
    pids = tmp_path / "pids"
    add_shell_job("hang", f"echo $$ > {pids}.tmp; sleep 300 & echo $! >> {pids}.tmp; mv {pids}.tmp {pids}; wait",
                  cron="0 * * * *", at="2026-06-01T09:30:00Z")
    _daemon(started, env={"TESSERA_JOBS_NOW": "2026-06-01T10:00:05Z"})
    run = _running("hang")
    assert run.trigger == "schedule" and run.scheduled_for == "2026-06-01T10:00:00.000Z"
    wait_until(lambda: _pids(pids), "the job to write its pids")
    cancelled = tsr("job", "cancel", str(run.id))
    assert cancelled.returncode == 0 and f"run {run.id} cancelled" in cancelled.stderr
    assert all(gone(pid) for pid in _pids(pids))
    assert [e.subject.rsplit(".", 1)[1] for e in job_events("hang")][-1] == "cancelled"


def test_a_sigkilled_daemon_leaves_no_run_stuck_running(started, tmp_path):
    pids = tmp_path / "pids"
    # the first attempt hangs; the retry (pids already written) succeeds at once
    add_shell_job("orphan", f"[ -e {pids} ] && exit 0; echo first-attempt; echo $$ > {pids}.tmp; sleep 300 & "
                            f"echo $! >> {pids}.tmp; mv {pids}.tmp {pids}; wait", cron="0 0 1 1 *", retries=1, backoff_s=0)
    daemon = _daemon(started)
    assert tsr("job", "run", "orphan", "--detach").returncode == 0
    run = _running("orphan")
    wait_until(lambda: _pids(pids), "the job to write its pids")
    # its output so far is stored while it runs: job logs shows it
    wait_until(lambda: tsr("job", "logs", str(run.id)).stdout == "first-attempt\n", "the output so far in job logs")
    daemon.kill()
    daemon.wait(DEADLINE)
    assert not any(gone(pid) for pid in _pids(pids))  # its own session: it outlived the daemon
    # the next runner: the dead daemon's run is failed, its group killed, its retry run
    next_runner = tsr("job", "run-due", env=SHELL)
    wait_until(lambda: all(gone(pid) for pid in _pids(pids)), "the leftover group to be killed")
    runs = runs_of("orphan")
    assert runs[0].id == run.id and runs[0].state == "failed"
    assert "marked failed: its runner (pid" in runs[0].error
    assert runs[0].output == "first-attempt\n"  # what it wrote before its runner died is kept
    assert (runs[1].trigger, runs[1].attempt, runs[1].state) == ("retry", 2, "succeeded")
    assert next_runner.returncode == 0, next_runner.stderr
    recovered = [json.loads(line) for line in next_runner.stderr.splitlines() if line.startswith("{")]
    assert any(line["event"] == "run.recovered" and line["run"] == run.id for line in recovered)
    from tessera.core.jobs.job_records import runners

    assert [r.kind for r in runners(store())] == []


def test_run_due_across_the_autumn_change_runs_a_fixed_hour_once_and_an_interval_at_every_real_time():
    add_shell_job("daily", "true", cron="30 1 * * *", tz="America/New_York", at="2026-10-31T12:00:00Z")
    add_shell_job("halfhourly", "true", cron="*/30 * * * *", tz="America/New_York", at="2026-11-01T04:45:00Z")
    # 01:31 EDT, 01:31 EST (the same wall time an hour later), 02:01 EST
    for at in ("2026-11-01T05:31:00Z", "2026-11-01T06:31:00Z", "2026-11-01T07:01:00Z"):
        assert tsr("job", "run-due", env={**SHELL, "TESSERA_JOBS_NOW": at}).returncode == 0
    assert [r.scheduled_for for r in runs_of("daily")] == ["2026-11-01T05:30:00.000Z"]
    assert [r.scheduled_for for r in runs_of("halfhourly")] == [
        "2026-11-01T05:30:00.000Z", "2026-11-01T06:30:00.000Z", "2026-11-01T07:00:00.000Z"]
    # no run-due at 01:00 EDT nor at 01:00 EST: each reported missed by the next one
    missed = [e.data for e in job_events("halfhourly") if e.subject == "job.halfhourly.missed"]
    assert [(m["count"], m["first"]) for m in missed] == [(1, "2026-11-01T05:00:00.000Z"), (1, "2026-11-01T06:00:00.000Z")]
    from tessera.core.jobs.job_records import get_job

    assert get_job(store(), "daily").next_run_at == "2026-11-02T06:30:00.000Z"  # 01:30 EST the next day


@pytest.mark.parametrize("workers", [1, 2])
def test_the_daemon_runs_at_most_workers_runs_at_once(started, tmp_path, workers):
    release = tmp_path / "release"
    for name in ("first", "second"):
        add_shell_job(name, f"while [ ! -e {release} ]; do sleep 0.05; done")
        assert tsr("job", "run", name, "--detach").returncode == 0
    daemon = _daemon(started, "--workers", str(workers))

    def running() -> list:
        return [r for name in ("first", "second") for r in runs_of(name) if r.state == "running"]

    wait_until(lambda: len(running()) == workers, f"{workers} runs running")
    if workers == 1:
        queued = [r for name in ("first", "second") for r in runs_of(name) if r.state == "queued"]
        assert len(running()) == 1 and len(queued) == 1  # the second waits for the free worker
    release.touch()
    wait_until(lambda: all(r.state == "succeeded" for name in ("first", "second") for r in runs_of(name)),
               "both runs to succeed")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(DEADLINE) == 0
