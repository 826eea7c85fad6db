"""Helpers for the job tests: `tessera` as a subprocess in the test's data home (conftest's
isolated_home is in os.environ), reading the store, adding a stand-in command job (a shell
script run through TESSERA_JOB_PROGRAM=/bin/sh), and process checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

TSR = [sys.executable, "-m", "tessera.cli.main"]
DEADLINE = 60  # seconds for any one process or condition: generous on a busy 2-core machine
SHELL = {"TESSERA_JOB_PROGRAM": "/bin/sh"}


def tsr(*args: str, env: dict | None = None, timeout: float = DEADLINE) -> subprocess.CompletedProcess:
    return subprocess.run([*TSR, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def store():
    from tessera.core.store.db import connect

    return connect()


# The default schedule of a test's job: it does not come due while a test runs, so a test sees only
# the runs it makes (with "* * * * *", a daemon or run-due crossing a minute made one more).
NEVER_DUE = "0 0 29 2 *"


def add_shell_job(name: str, script: str, *, cron: str = NEVER_DUE, timeout_s: float | None = None,
                  retries: int = 0, backoff_s: float = 30.0, tz: str = "UTC", at: str | None = None):
    """A command job whose action is ``/bin/sh -c SCRIPT`` when run with SHELL in the environment
    (added through core: `job add` only takes tessera commands)."""
    from tessera.core.jobs import job_definitions

    previous = os.environ.get("TESSERA_JOBS_NOW")
    if at is not None:
        os.environ["TESSERA_JOBS_NOW"] = at
    try:
        conn = store()
        return job_definitions.add(conn, job_definitions.JobDefinition(
            name=name, schedule=cron, timezone=tz, action="command", spec={"argv": ["-c", script]},
            timeout_s=timeout_s, retries=retries, backoff_s=backoff_s))
    finally:
        if at is not None:
            if previous is None:
                os.environ.pop("TESSERA_JOBS_NOW", None)
            else:
                os.environ["TESSERA_JOBS_NOW"] = previous


def runs_of(name: str) -> list:
    from tessera.core.jobs import job_records

    return job_records.runs(store(), name, newest_first=False)


def job_events(name: str) -> list:
    from tessera.core import events

    return events.read(store(), pattern=f"job.{name}.>")


def gone(pid: int) -> bool:
    """Whether the process no longer exists (a zombie nobody reaps counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def json_of(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
