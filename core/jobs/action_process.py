"""Running one job action as a child process in its own process group (``start_new_session``):
the query as ``python -m tessera.cli.main query ... -o jsonl``, the cell as ``notebook run NB/N
-o jsonl``, the command as ``tessera ARGS...``. Its stdout and stderr are read by threads and kept
up to OUTPUT_CAP bytes each (the rest counted, the cut marked); a timeout, a cancel or the end of
the leader kills the whole group, so nothing a job started outlives it and the runner never
blocks on a job (docs/jobs.md)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Callable

from tessera.core.config import format_bytes

OUTPUT_CAP = 1024 * 1024  # bytes of stdout, and of stderr, kept per run
KILL_GRACE_S = 5.0  # between SIGTERM and SIGKILL of a job's group
POLL_S = 0.1
PROGRESS_S = 1.0  # how often the output so far is handed to on_progress (when it grew)
# What a command job runs for `tessera` (default: this Python with tessera.cli.main): a wrapper
# that sets up an environment, or a test's stand-in program.
PROGRAM_ENV = "TESSERA_JOB_PROGRAM"
RUN_ENV = "TESSERA_JOB_RUN"  # the run id, in every process of the run (finding leftovers by it)


@dataclass
class Outcome:
    """How an action ended: state is succeeded | failed | timed_out | cancelled."""

    state: str
    exit_code: int | None
    duration_s: float
    output: str
    error: str
    rows: list[dict[str, Any]] | None
    problem: str | None = None  # why the action could not start (also in ``error``)


def _tessera() -> list[str]:
    program = os.environ.get(PROGRAM_ENV, "").strip()
    return shlex.split(program) if program else [sys.executable, "-m", "tessera.cli.main"]


def action_argv(action: str, spec: dict[str, Any]) -> list[str]:
    """The child's command line for a job's action and spec (core/jobs_schema.py)."""
    base = [sys.executable, "-m", "tessera.cli.main"]
    if action == "query":
        args = [*base, "query", spec["query"]]
        for source in spec.get("sources") or []:
            args += ["-s", source]
        if spec.get("namespace"):
            args += ["-n", spec["namespace"]]
        if spec.get("all_namespaces"):
            args.append("-A")
        return [*args, "-o", "jsonl"]
    if action == "cell":
        return [*base, "notebook", "run", f"{spec['notebook']}/{spec['cell']}", "-o", "jsonl"]
    return [*_tessera(), *spec["argv"]]


class _Capture:
    """A thread reading one pipe to its end: the first ``cap`` bytes kept, the rest counted,
    each chunk also handed to ``echo`` (the foreground `job run`)."""

    def __init__(self, pipe: IO[bytes], cap: int, echo: Callable[[bytes], None] | None):
        self.kept = bytearray()
        self.dropped = 0
        self._pipe, self._cap, self._echo = pipe, cap, echo
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        with self._pipe:
            while True:
                chunk = self._pipe.read1(65536) if hasattr(self._pipe, "read1") else self._pipe.read(65536)
                if not chunk:
                    return
                room = self._cap - len(self.kept)
                self.kept += chunk[:max(room, 0)]
                self.dropped += max(len(chunk) - max(room, 0), 0)
                if self._echo is not None:
                    try:
                        self._echo(chunk)
                    except (OSError, ValueError):
                        self._echo = None  # our own stdout went away: keep capturing

    def text(self) -> str:
        text = bytes(self.kept).decode("utf-8", errors="replace")
        if self.dropped:
            text += f"\n[tessera: {self.dropped} more bytes not kept; a run keeps {format_bytes(self._cap)} of each stream]\n"
        return text


_CUT_NOTE = re.compile(r"\n\[tessera: \d+ more bytes not kept; a run keeps [^\]\n]+ of each stream\]\n\Z")


def without_cut_note(text: str) -> tuple[str, str]:
    """A stored stream split into what was kept and the note that ends it once it was cut ("" when
    it was not): the kept part only grows while a run goes on, the note's count changes."""
    found = _CUT_NOTE.search(text)
    return (text, "") if found is None else (text[:found.start()], text[found.start():])


def json_rows(kept: bytes, truncated: bool) -> list[dict[str, Any]] | None:
    """stdout as rows when every line is a JSON object (a cut last line is left out), else None."""
    lines = kept.split(b"\n")
    if truncated and lines:
        lines = lines[:-1]
    rows = []
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        rows.append(value)
    return rows if rows or not truncated else None


def _exited(pid: int) -> bool:
    """Whether the child has exited, leaving it unreaped (its pid, hence its group id, stays
    taken until we reap it, so killing the group cannot hit a stranger)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the group, SIGKILL after ``grace`` s if the leader is still there."""
    kill_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not _exited(proc.pid):
        time.sleep(POLL_S)
    kill_group(proc.pid, signal.SIGKILL)


def run_action(argv: list[str], *, run_id: int, timeout_s: float | None, should_cancel: Callable[[], bool],
               cwd: str | None = None,
               on_started: Callable[[int], None], env: dict[str, str] | None = None,
               echo_out: Callable[[bytes], None] | None = None, echo_err: Callable[[bytes], None] | None = None,
               on_progress: Callable[[str, str], None] | None = None,
               cap: int = OUTPUT_CAP, grace: float = KILL_GRACE_S) -> Outcome:
    """Run ``argv`` to its end, its timeout or a cancel (``should_cancel()`` turning true).

    Raises:
        OSError when the program cannot be started (the caller records the run failed).
    """
    child_env = {**(env if env is not None else os.environ), RUN_ENV: str(run_id)}
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=child_env, cwd=cwd, start_new_session=True)
    out = _Capture(proc.stdout, cap, echo_out)
    err = _Capture(proc.stderr, cap, echo_err)
    ending = None
    reported, last_report = (0, 0), time.monotonic()
    try:
        on_started(proc.pid)
        while not _exited(proc.pid):
            if on_progress is not None and time.monotonic() - last_report >= PROGRESS_S:
                sizes = (len(out.kept) + out.dropped, len(err.kept) + err.dropped)
                if sizes != reported:
                    on_progress(out.text(), err.text())
                    reported = sizes
                last_report = time.monotonic()
            if timeout_s is not None and time.monotonic() - started >= timeout_s:
                ending = "timed_out"
            elif should_cancel():
                ending = "cancelled"
            if ending:
                _stop(proc, grace)
                break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        ending = "cancelled"  # a caller that lets Ctrl-C raise (the CLI's runners poll a flag instead)
        _stop(proc, grace)
    except BaseException:
        _stop(proc, 0)
        proc.wait()
        raise
    kill_group(proc.pid)  # whatever the job left running in its group (the leader is unreaped yet)
    code = proc.wait()
    for capture in (out, err):
        capture.thread.join(timeout=grace)  # a process that left the group may hold a pipe: not waited for
    duration = time.monotonic() - started
    exit_code = 128 - code if code < 0 else code
    state = ending or ("succeeded" if code == 0 else "failed")
    if ending == "timed_out":
        err.kept += f"\n[tessera: timed out after {timeout_s:g} s; the run's process group was killed]\n".encode()
    # a run that did not succeed has no result: its empty stdout is not "0 rows" to an alert
    rows = json_rows(bytes(out.kept), truncated=out.dropped > 0) if state == "succeeded" else None
    return Outcome(state, exit_code, duration, out.text(), err.text(), rows)


def leftover_processes(pgid: int, run_id: int) -> list[int]:
    """Processes still in group ``pgid`` that belong to run ``run_id`` (its RUN_ENV in their
    environment), read from /proc: what a dead runner's job left behind."""
    found = []
    marker = f"{RUN_ENV}={run_id}".encode()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            if int(fields[2]) != pgid:  # after ") ": state, ppid, pgrp
                continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if marker in fh.read().split(b"\0"):
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found
