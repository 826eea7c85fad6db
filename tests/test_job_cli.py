"""`tessera job ...` as a user runs it (real subprocesses, a real store): add's checks before
anything is stored, list/show/history, the foreground run with its states and events and exit
codes, logs on a terminal, the output cap, pause/resume/rm, cancel, retries with backoff."""

from __future__ import annotations

import json

import pytest

from tests.job_helpers import SHELL, add_shell_job, job_events, json_of, runs_of, tsr
from tests.process_lines import stdout_on_a_terminal

PODS = "MATCH (p:Pod) RETURN p.metadata.name AS name ORDER BY name LIMIT 3"


@pytest.mark.parametrize("args, words", [
    (["bad.name", "--cron", "* * * * *", "--query", PODS], "bad job name 'bad.name'"),
    (["j", "--cron", "* * *", "--query", PODS], "--cron '* * *' has 3 fields"),
    (["j", "--cron", "99 * * * *", "--query", PODS], "--cron '99 * * * *' is not a valid cron expression"),
    (["j", "--cron", "* * * * *", "--tz", "Moon/Base", "--query", PODS], "--tz 'Moon/Base' is not a time zone"),
    (["j", "--cron", "* * * * *", "--timeout", "ten", "--query", PODS], "--timeout: 'ten' is not a duration"),
    (["j", "--cron", "* * * * *", "--backoff", "-5s", "--query", PODS], "--backoff"),
    (["j", "--cron", "* * * * *", "--retries", "1000", "--query", PODS], "--retries 1000 is out of range"),
    (["j", "--cron", "* * * * *", "--cell", "ops"], "--cell: 'ops' names a notebook"),
    (["j", "--cron", "* * * * *", "--cell", "ops/1"], "--cell ops/1: there is no notebook ops"),
    (["j", "--cron", "* * * * *"], "a job runs one thing; none was given"),
    (["j", "--cron", "* * * * *", "--query", PODS, "--cell", "ops/1"], "got --query and --cell"),
    (["j", "--cron", "* * * * *", "--query", PODS, "-n", "a", "-A"], "-n and -A exclude each other"),
    (["j", "--cron", "* * * * *", "-s", "demo", "--", "tessera", "events", "verify"], "-s, -n and -A go with --query"),
    (["j", "--cron", "* * * * *", "--", "ls", "-l"], "starting with tessera"),
    (["j", "--cron", "* * * * *", "--notify", "cat", "--query", PODS], "--notify goes with --alert"),
    (["j", "--cron", "* * * * *", "--", "tessera", "frobnicate"], "frobnicate is not a tessera command"),
    (["j", "--cron", "* * * * *", "--", "tessera", "job", "run", "other"], "a job cannot run `tessera job ...`"),
])
def test_add_refuses_bad_input_in_one_line_with_exit_2_and_stores_nothing(args, words):
    result = tsr("job", "add", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("tessera: ") and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert json_of(tsr("job", "list", "-o", "json")) == []


def test_add_parses_the_query_and_refuses_a_taken_name():
    bad = tsr("job", "add", "j", "--cron", "* * * * *", "--query", "MATCH (p:Pod RETURN p")
    assert bad.returncode == 1 and "parse error at line 1, column 14" in bad.stderr
    assert json_of(tsr("job", "list", "-o", "json")) == []
    assert tsr("job", "add", "j", "--cron", "* * * * *", "--query", PODS, "-s", "demo").returncode == 0
    again = tsr("job", "add", "j", "--cron", "0 * * * *", "--query", PODS)
    assert again.returncode == 2 and "job j exists already" in again.stderr


def test_list_and_show_give_schedule_zone_next_run_last_state_and_paused():
    env = {"TESSERA_JOBS_NOW": "2026-03-08T06:10:00Z"}
    added = tsr("job", "add", "nightly", "--cron", "30 2 * * *", "--tz", "America/New_York", "--query", PODS, "-s", "demo",
                env=env)
    assert added.returncode == 0, added.stderr
    assert "next run 2026-03-08T03:00-04:00" in added.stderr  # 02:30 does not exist that night
    [row] = json_of(tsr("job", "list", "-o", "json"))
    assert row == {"name": "nightly", "schedule": "30 2 * * *", "tz": "America/New_York", "action": "query",
                   "next_run": "2026-03-08T07:00:00.000Z", "last_state": None, "paused": False}
    [shown] = json_of(tsr("job", "show", "nightly", "-o", "json"))
    import os

    assert shown["spec"] == {"query": PODS, "sources": ["demo"], "namespace": None, "all_namespaces": False,
                             "cwd": os.getcwd()}
    assert shown["next_run_local"] == "2026-03-08T03:00-04:00" and shown["last_run"] is None
    assert tsr("job", "show", "nope").returncode == 2


def test_the_config_time_zone_is_the_default(isolated_home):
    (isolated_home / "config").mkdir(parents=True, exist_ok=True)
    (isolated_home / "config" / "config.toml").write_text('timezone = "Europe/Berlin"\n')
    assert tsr("job", "add", "j", "--cron", "0 9 * * *", "--query", PODS, "-s", "demo").returncode == 0
    assert json_of(tsr("job", "list", "-o", "json"))[0]["tz"] == "Europe/Berlin"


def test_a_foreground_run_prints_the_rows_goes_through_every_state_with_events_and_is_stored():
    assert tsr("job", "add", "pods", "--cron", "*/5 * * * *", "--query", PODS, "-s", "demo").returncode == 0
    result = tsr("job", "run", "pods")
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(printed) == 3 and all(set(row) == {"name"} for row in printed)
    [run] = runs_of("pods")
    assert (run.state, run.trigger, run.attempt, run.exit_code, run.rows) == ("succeeded", "manual", 1, 0, 3)
    assert run.result == printed and run.duration_s > 0 and run.pid is not None
    evs = job_events("pods")
    assert [e.subject for e in evs] == ["job.pods.added", "job.pods.pending", "job.pods.queued", "job.pods.running",
                                       "job.pods.succeeded"]
    final = evs[-1].data
    assert {k: final[k] for k in ("run", "job", "attempt", "trigger", "exit_code", "rows")} == \
        {"run": run.id, "job": "pods", "attempt": 1, "trigger": "manual", "exit_code": 0, "rows": 3}
    assert final["duration_s"] == run.duration_s
    [history] = json_of(tsr("job", "history", "pods", "-o", "json"))
    assert history["run"] == run.id and history["state"] == "succeeded"
    assert json_of(tsr("job", "list", "-o", "json"))[0]["last_state"] == "succeeded"


def test_a_cell_job_runs_its_cell():
    assert tsr("notebook", "new", "ops").returncode == 0
    assert tsr("cell", "add", "ops", PODS, "-s", "demo").returncode == 0
    assert tsr("cell", "add", "ops", "# notes", "--type", "markdown").returncode == 0
    markdown = tsr("job", "add", "c", "--cron", "0 * * * *", "--cell", "ops/2")
    assert markdown.returncode == 2 and "markdown cell, which does not run" in markdown.stderr
    missing = tsr("job", "add", "c", "--cron", "0 * * * *", "--cell", "ops/3")
    assert missing.returncode == 2 and "notebook ops has 2 cells" in missing.stderr
    assert tsr("job", "add", "c", "--cron", "0 * * * *", "--cell", "ops/1").returncode == 0
    assert tsr("job", "run", "c").returncode == 0
    [run] = runs_of("c")
    assert run.state == "succeeded" and run.rows == 3 and [r["name"] for r in run.result] == sorted(r["name"] for r in run.result)


def test_a_failing_command_exits_with_its_code_and_its_stderr_is_in_the_logs():
    assert tsr("job", "add", "broken", "--cron", "0 * * * *", "--", "tessera", "query", "MATCH (", "-s", "demo").returncode == 0
    result = tsr("job", "run", "broken")
    assert result.returncode == 1 and "parse error" in result.stderr
    [run] = runs_of("broken")
    assert run.state == "failed" and run.exit_code == 1 and run.rows is None
    logs = tsr("job", "logs", str(run.id))
    assert logs.returncode == 0 and "parse error" in logs.stderr and logs.stdout == ""
    assert [e.subject.rsplit(".", 1)[1] for e in job_events("broken")][-1] == "failed"
    assert tsr("job", "logs", "999").returncode == 2


def test_logs_escape_control_characters_on_a_terminal_and_not_in_a_pipe(tmp_path):
    add_shell_job("noisy", r"printf 'before\033[2Jafter\n'")
    assert tsr("job", "run", "noisy", env=SHELL).returncode == 0
    [run] = runs_of("noisy")
    import os
    import sys

    piped = tsr("job", "logs", str(run.id))
    assert piped.stdout == "before\x1b[2Jafter\n"
    shown = stdout_on_a_terminal([sys.executable, "-m", "tessera.cli.main", "job", "logs", str(run.id)], dict(os.environ))
    assert shown == "before\\x1b[2Jafter"


def _follower(run_id: int):
    import os
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "job", "logs", str(run_id), "-f"],
                            env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_logs_follow_waits_for_a_queued_run_prints_its_lines_as_they_come_and_ends_with_it(tmp_path):
    import os
    import queue
    import subprocess
    import sys
    import threading

    from tests.process_lines import wait_stderr
    from tests.test_peer_serve import wait_until

    release = tmp_path / "release"
    add_shell_job("slow", f"echo one; echo warned >&2; while [ ! -e {release} ]; do sleep 0.05; done; echo two")
    run_id = int(tsr("job", "run", "slow", "--detach").stdout)
    follower = _follower(run_id)
    runner = None
    try:
        wait_stderr(follower, lambda line: f"run {run_id} is queued: waiting for a runner" in line)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()
        runner = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "job", "run-due"], env={**os.environ, **SHELL},
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert lines.get(timeout=60) == "one\n"  # while the run is still going on
        wait_stderr(follower, lambda line: line == "warned")
        assert follower.poll() is None and runs_of("slow")[0].state == "running"
        release.touch()
        assert follower.wait(60) == 0
        wait_until(lambda: not lines.empty(), "the last line")
        assert lines.get_nowait() == "two\n" and lines.empty()
        assert runner.wait(60) == 0
    finally:
        for proc in (follower, runner):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_logs_follow_of_a_cut_stream_prints_the_stored_text_once_with_one_note(tmp_path):
    import os
    import subprocess
    import sys

    from tests.test_peer_serve import wait_until

    release = tmp_path / "release"
    add_shell_job("flood", f"head -c 3000000 /dev/zero | tr '\\0' a; while [ ! -e {release} ]; do sleep 0.05; done; "
                           "head -c 1000 /dev/zero | tr '\\0' b")
    runner = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "job", "run", "flood"], env={**os.environ, **SHELL},
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: runs_of("flood") and "more bytes not kept" in (runs_of("flood")[0].output or ""),
                   "the cut output stored as progress")
        follower = _follower(runs_of("flood")[0].id)
        release.touch()
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
        assert runner.wait(60) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    [run] = runs_of("flood")
    assert out == run.output and out.count("more bytes not kept") == 1
    assert out.startswith("a" * (1024 * 1024) + f"\n[tessera: {3000000 + 1000 - 1024 * 1024} more bytes not kept")


def test_a_run_whose_end_meets_a_locked_store_is_stored_once_the_lock_is_released(tmp_path):
    """The store held past the lock timeout when the run ends: the runner says so and tries again,
    so the run does not stay "running" under a live runner."""
    import os
    import sqlite3
    import subprocess
    import sys

    from tessera.core.store.db import db_path
    from tests.process_lines import wait_stderr
    from tests.test_peer_serve import wait_until

    release = tmp_path / "release"
    add_shell_job("late", f"while [ ! -e {release} ]; do sleep 0.05; done; echo done")
    runner = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "job", "run", "late"],
                              env={**os.environ, **SHELL, "TESSERA_LOCK_TIMEOUT": "1"}, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holder = sqlite3.connect(db_path(), isolation_level=None)
    try:
        wait_until(lambda: runs_of("late") and runs_of("late")[0].pid, "the run to start")
        holder.execute("BEGIN IMMEDIATE")
        release.touch()
        warned = wait_stderr(runner, lambda line: "run.end_not_stored" in line)
        assert "locked" in warned and runner.poll() is None
        holder.execute("ROLLBACK")
        assert runner.wait(60) == 0
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    [run] = runs_of("late")
    assert run.state == "succeeded" and run.output == "done\n"


def test_output_over_the_cap_is_cut_and_marked():
    add_shell_job("big", "head -c 3000000 /dev/zero | tr '\\0' a; echo done >&2")
    assert tsr("job", "run", "big", env=SHELL).returncode == 0
    [run] = runs_of("big")
    kept, _, note = run.output.partition("\n[tessera: ")
    assert kept == "a" * (1024 * 1024)
    assert note.startswith(f"{3000000 - 1024 * 1024} more bytes not kept")
    assert run.error == "done\n" and run.rows is None


def test_pause_resume_and_rm():
    at = {"TESSERA_JOBS_NOW": "2026-06-01T10:00:30Z"}
    assert tsr("job", "add", "p", "--cron", "* * * * *", "--tz", "UTC", "--", "tessera", "events", "verify", env=at).returncode == 0
    assert tsr("job", "pause", "p").returncode == 0
    [row] = json_of(tsr("job", "list", "-o", "json"))
    assert row["paused"] is True and row["next_run"] == "2026-06-01T10:01:00.000Z"
    later = {"TESSERA_JOBS_NOW": "2026-06-01T10:05:30Z"}
    assert tsr("job", "run-due", env=later).returncode == 0
    assert runs_of("p") == []  # paused: not run
    assert tsr("job", "resume", "p", env=later).returncode == 0
    assert json_of(tsr("job", "list", "-o", "json"))[0]["next_run"] == "2026-06-01T10:06:00.000Z"  # no catch-up
    queued = tsr("job", "run", "p", "--detach")
    assert queued.returncode == 0
    refused = tsr("job", "rm", "p")
    assert refused.returncode == 2 and f"run {queued.stdout.strip()} queued" in refused.stderr
    assert tsr("job", "cancel", queued.stdout.strip()).returncode == 0
    assert tsr("job", "rm", "p").returncode == 0
    assert json_of(tsr("job", "list", "-o", "json")) == [] and runs_of("p") == []
    assert [e.subject for e in job_events("p")][-1] == "job.p.removed"


def test_cancel_a_queued_run_and_refuse_an_ended_one():
    assert tsr("job", "add", "q", "--cron", "0 * * * *", "--", "tessera", "events", "verify").returncode == 0
    run_id = tsr("job", "run", "q", "--detach").stdout.strip()
    cancelled = tsr("job", "cancel", run_id)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stderr
    [run] = runs_of("q")
    assert run.state == "cancelled"
    assert [e.subject.rsplit(".", 1)[1] for e in job_events("q")] == ["added", "pending", "queued", "cancelled"]
    again = tsr("job", "cancel", run_id)
    assert again.returncode == 2 and "has ended already (cancelled)" in again.stderr
    assert tsr("job", "cancel", "12345").returncode == 2


def test_a_failed_run_is_retried_with_doubling_backoff_until_its_attempts_are_used():
    add_shell_job("flaky", "echo try >&2; exit 3", retries=2, backoff_s=30)
    t0 = "2026-06-01T10:00:00Z"
    first = tsr("job", "run", "flaky", env={**SHELL, "TESSERA_JOBS_NOW": t0})
    assert first.returncode == 3 and "retry queued as run 2 (not before 2026-06-01T10:00:30.000Z)" in first.stderr
    # before the backoff: nothing runs
    assert tsr("job", "run-due", env={**SHELL, "TESSERA_JOBS_NOW": "2026-06-01T10:00:29Z"}).returncode == 0
    assert [r.state for r in runs_of("flaky")] == ["failed", "pending"]
    assert tsr("job", "run-due", env={**SHELL, "TESSERA_JOBS_NOW": "2026-06-01T10:00:31Z"}).returncode == 1
    runs = runs_of("flaky")
    assert [(r.state, r.trigger, r.attempt) for r in runs] == [("failed", "manual", 1), ("failed", "retry", 2),
                                                                ("pending", "retry", 3)]
    assert runs[2].not_before == "2026-06-01T10:01:31.000Z"  # 30 s x 2
    assert tsr("job", "run-due", env={**SHELL, "TESSERA_JOBS_NOW": "2026-06-01T10:01:31Z"}).returncode == 1
    assert [(r.state, r.attempt) for r in runs_of("flaky")] == [("failed", 1), ("failed", 2), ("failed", 3)]
    pending = [e for e in job_events("flaky") if e.subject == "job.flaky.pending"]
    assert [e.data.get("retry_of") for e in pending] == [None, 1, 2]


def test_a_runs_events_and_the_events_its_command_appends_share_one_correlation_id():
    assert tsr("job", "add", "pub", "--cron", "0 * * * *", "--", "tessera", "events", "publish", "deploy.web", '{"v": 2}').returncode == 0
    assert tsr("job", "run", "pub").returncode == 0
    [run] = runs_of("pub")
    tail = tsr("events", "tail", "--correlation", f"job-run-{run.id}", "-o", "json")
    subjects = [e["subject"] for e in json.loads(tail.stdout)]
    assert subjects == ["job.pub.pending", "job.pub.queued", "job.pub.running", "deploy.web", "job.pub.succeeded"]


def _tsr_in(cwd, *args: str):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], cwd=cwd, env=dict(os.environ),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  namespace: shop\nstatus:\n  phase: Running\n"


def test_relative_paths_mean_what_they_meant_where_the_job_was_added(tmp_path):
    added_here, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    added_here.mkdir()
    elsewhere.mkdir()
    (added_here / "pods.yaml").write_text(POD)
    added = _tsr_in(added_here, "job", "add", "local", "--cron", "0 * * * *", "--query", PODS, "-s", "./pods.yaml")
    assert added.returncode == 0, added.stderr
    ran = _tsr_in(elsewhere, "job", "run", "local")
    assert ran.returncode == 0, ran.stderr
    assert [json.loads(line) for line in ran.stdout.splitlines()] == [{"name": "web-1"}]
    (added_here / "pods.yaml").unlink()
    added_here.rmdir()
    gone_dir = _tsr_in(elsewhere, "job", "run", "local")
    assert gone_dir.returncode == 1 and f"cannot start the job in {added_here}" in gone_dir.stderr
    assert runs_of("local")[-1].state == "failed"


def test_a_job_cannot_read_stdin():
    refused = tsr("job", "add", "j", "--cron", "0 * * * *", "--query", PODS, "-s", "-")
    assert refused.returncode == 2 and "a job has no stdin" in refused.stderr


@pytest.mark.parametrize("signame, code", [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_ctrl_c_kill_or_hangup_in_a_foreground_run_kills_its_group_records_it_cancelled_and_exits_128_n(
        tmp_path, signame, code):
    import os
    import signal
    import subprocess
    import sys

    from tests.job_helpers import gone
    from tests.test_peer_serve import wait_until

    pids = tmp_path / "pids"
    add_shell_job("hang", f"echo $$ > {pids}.tmp; sleep 300 & echo $! >> {pids}.tmp; mv {pids}.tmp {pids}; wait")
    proc = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "job", "run", "hang"], env={**os.environ, **SHELL},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: pids.exists(), "the job to write its pids")
        proc.send_signal(getattr(signal, signame))
        assert proc.wait(60) == code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shell, sleeper = (int(p) for p in pids.read_text().split())
    assert gone(shell) and gone(sleeper)
    [run] = runs_of("hang")
    assert run.state == "cancelled" and run.exit_code is not None


def _processes_of_run(run_id: int) -> list[int]:
    """The processes of run ``run_id`` of this test's data home (run ids restart in each home, so
    a test beside it on another worker has a run 1 too)."""
    import os

    markers = {f"TESSERA_JOB_RUN={run_id}".encode(), f"TESSERA_HOME={os.environ['TESSERA_HOME']}".encode()}
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if markers <= set(fh.read().split(b"\0")):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_ctrl_c_landing_inside_the_start_of_the_jobs_process_still_cancels_the_run(monkeypatch):
    """In CI a Ctrl-C once landed after the fork, before Popen returned: the KeyboardInterrupt
    left the job's group running and the run "running". Here the signal is sent from inside Popen."""
    import os
    import signal
    import subprocess

    import typer

    from tessera.cli import job as job_cli
    from tessera.core.jobs import action_process
    from tests.job_helpers import gone

    monkeypatch.setenv("TESSERA_JOB_PROGRAM", SHELL["TESSERA_JOB_PROGRAM"])
    add_shell_job("hang", "sleep 300 & wait")
    real_popen = subprocess.Popen

    def popen_then_ctrl_c(*args, **kwargs):
        started = real_popen(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return started

    monkeypatch.setattr(action_process.subprocess, "Popen", popen_then_ctrl_c)
    try:
        with pytest.raises(typer.Exit) as ended:
            job_cli.run("hang", detach=False)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped the foreground run as a KeyboardInterrupt")
    assert ended.value.exit_code == 130
    [run] = runs_of("hang")
    assert run.state == "cancelled"
    assert all(gone(pid) for pid in _processes_of_run(run.id))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_foreground_run_escapes_control_characters_on_a_terminal():
    import os
    import sys

    add_shell_job("noisy", r"printf 'x\033]0;title\007y\n'")
    shown = stdout_on_a_terminal([sys.executable, "-m", "tessera.cli.main", "job", "run", "noisy"], {**os.environ, **SHELL})
    assert shown == "x\\x1b]0;title\\x07y"
