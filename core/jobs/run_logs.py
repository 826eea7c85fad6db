"""`job logs RUN --follow`: a run's stdout and stderr as they grow in the store (a runner stores
them every second while the run goes on, core/jobs/action_process.py), handed on as the new text
of each until the run has ended. The note that ends a stream cut at its cap is handed on once, at
the end, since its count changes while the run writes."""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Callable, Iterator

from tessera.core.jobs.action_process import without_cut_note
from tessera.core.jobs.job_records import JobRun, get_run, runner_dead, runners

POLL_S = 0.5
RUNNER_CHECK_S = 5.0  # how often a running run's runner is looked at


def follow(conn: sqlite3.Connection, run_id: int, *, on_waiting: Callable[[JobRun], None] | None = None,
           on_orphaned: Callable[[str], None] | None = None, poll_s: float = POLL_S) -> Iterator[tuple[str, str]]:
    """(new stdout, new stderr) each time either grew, and once more when the run has ended (its
    last text and cut notes). ``on_waiting(run)`` once while it is pending or queued;
    ``on_orphaned(why)`` once if it is running under a dead runner (the next runner ends it, and
    the following with it). Ends when the run has ended, or is removed (with its job)."""
    shown = ["", ""]
    waited = orphaned = False
    checked_runner = 0.0
    while True:
        run = get_run(conn, run_id)
        if run is None:
            return
        if run.state in ("pending", "queued") and not waited and on_waiting is not None:
            on_waiting(run)
            waited = True
        if run.state == "running" and not orphaned and on_orphaned is not None and \
                time.monotonic() - checked_runner >= RUNNER_CHECK_S:
            checked_runner = time.monotonic()
            why = runner_dead(next((r for r in runners(conn) if r.id == run.runner), None))
            if why is not None:
                on_orphaned(why)
                orphaned = True
        streams = [run.output or "", run.error or ""]
        new = []
        for n, text in enumerate(streams):
            if not run.finished:
                # the note's count changes; a character cut in two at a snapshot's end is whole later
                text = without_cut_note(text)[0].removesuffix("\ufffd")
            same = len(os.path.commonprefix([shown[n], text]))  # all of it but where the final text differs
            new.append(text[same:])
            shown[n] = text
        if run.finished:
            yield new[0], new[1]
            return
        if new[0] or new[1]:
            yield new[0], new[1]
        time.sleep(poll_s)
