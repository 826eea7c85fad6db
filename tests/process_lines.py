"""Reading a child process's output line by line in tests, waiting on a condition (never a
fixed sleep) with a generous deadline."""

from __future__ import annotations

import json
import os
import pty
import queue
import subprocess
import threading
import time


def json_lines(proc, count: int, timeout: float = 60) -> list:
    """Up to ``count`` JSON lines from the process's stdout, never blocking past ``timeout``
    (fewer when it runs out: the caller's assertion says what was missing)."""
    lines = getattr(proc, "_out_lines", None)
    if lines is None:
        lines = proc._out_lines = queue.Queue()

        def pump():
            for line in proc.stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        try:
            out.append(json.loads(lines.get(timeout=max(0.01, deadline - time.monotonic()))))
        except queue.Empty:
            break
    return out


def stderr_lines(proc) -> queue.Queue:
    """A queue of the process's stderr lines (newline stripped), filled by a thread; one per process."""
    lines = getattr(proc, "_err_lines", None)
    if lines is None:
        lines = proc._err_lines = queue.Queue()

        def pump():
            try:
                for line in proc.stderr:
                    lines.put(line.rstrip("\n"))
            except (ValueError, OSError):  # the test closed the pipe (its teardown) while a line was awaited
                pass

        threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_stderr(proc, predicate, timeout: float = 60) -> str:
    """The first stderr line satisfying ``predicate`` (lines before it are dropped), or fail."""
    lines = stderr_lines(proc)
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if predicate(line):
            return line
    raise AssertionError(f"no such line on stderr; saw {seen}")


def stdout_on_a_terminal(argv: list[str], env: dict, timeout: float = 60) -> str:
    """What the process ``argv`` prints with its stdout on a pty, read until it closes its end
    (exit 0 asserted; the stderr in the assertion's message)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the process closed its end
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=timeout)
    os.close(leader)
    assert proc.returncode == 0, proc.stderr.read()
    return seen.decode().replace("\r\n", "\n").strip()


def signal_a_worker_thread(pid: int, signum: int) -> None:
    """``signum`` delivered to one of the process's threads other than its main one (tgkill), as
    the kernel may deliver a process's signal: Python runs the handler only in the main thread,
    so a main thread in an untimed wait never runs it."""
    import ctypes

    workers = [int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid]
    assert workers, f"process {pid} has no thread but its main one"
    assert ctypes.CDLL(None, use_errno=True).tgkill(pid, workers[0], signum) == 0
