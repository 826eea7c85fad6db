"""`tessera job run-due`, for the system cron: one scheduling pass (end dead runners' runs, make
the due runs, queue the retries whose backoff has passed), then every queued run executed by a
pool of worker threads, each with its own store connection; returns when they have all ended."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable

from tessera.core.jobs import run_states
from tessera.core.jobs.due_claims import claim_due
from tessera.core.jobs.job_clock import jobs_now
from tessera.core.jobs.run_execution import Executed, execute
from tessera.core.jobs.runner_registry import Registration, recover_stale
from tessera.core.store.db import connect

JOIN_POLL_S = 0.2


def schedule_pass(conn: sqlite3.Connection, data_home: Path, me: str, log: Any = None) -> None:
    """What every runner does before taking runs: recover, claim the due, queue the ready."""
    recover_stale(conn, me=me, log=log)
    at = jobs_now()
    def unreadable(job: str, exc: Any) -> None:
        if log:
            log("error", "job.unreadable", job=job, error=exc.one_line())

    for run in claim_due(conn, data_home, at, on_error=unreadable):
        if log:
            log("info", "run.due", run=run.id, job=run.job, scheduled_for=run.scheduled_for)
    run_states.queue_ready(conn, at)


def work_queue(db: Path, runner_id: str, *, stop: Callable[[], bool] = lambda: False, log: Any = None,
               done: list[Executed] | None = None) -> list[Executed]:
    """One worker: claim queued runs and execute them until none is left (or ``stop()``)."""
    done = [] if done is None else done
    conn = connect(db)
    try:
        while not stop():
            run = run_states.claim(conn, runner_id)
            if run is None:
                break
            if log:
                log("info", "run.started", run=run.id, job=run.job, attempt=run.attempt, trigger=run.trigger)
            try:
                done.append(execute(conn, run, runner_id, stop=stop, log=log))
            except Exception as exc:  # a lost store: the run is left to the next runner's recovery
                if log:
                    log("error", "run.crashed", run=run.id, job=run.job, error=f"{type(exc).__name__}: {exc}")
                break
    finally:
        conn.close()
    return done


def run_due(data_home: Path, db: Path, *, workers: int, log: Any = None,
            stop: Callable[[], bool] = lambda: False) -> list[Executed]:
    """Run everything due now with ``workers`` threads; the ended runs, in the order they ended.
    ``stop()`` turning true (a signal: core/stop_signals.py) starts no new run and cancels
    the running ones (their groups killed, their ends stored)."""
    done: list[Executed] = []
    with Registration(db, "run-due", log) as me:
        conn = connect(db)
        try:
            schedule_pass(conn, data_home, me.id, log)
        finally:
            conn.close()
        interrupted = threading.Event()  # a KeyboardInterrupt, for a caller that does not pass ``stop``
        threads = [threading.Thread(target=work_queue, args=(db, me.id),
                                    kwargs={"log": log, "done": done, "stop": lambda: interrupted.is_set() or stop()},
                                    name=f"job-worker-{n}", daemon=True) for n in range(workers)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    # Timed: a signal that the kernel hands to a worker thread only runs its Python
                    # handler (the stop flag) once this, the main thread, is back in Python.
                    thread.join(JOIN_POLL_S)
        except KeyboardInterrupt:
            interrupted.set()
            for thread in threads:
                thread.join()
            raise
    return done
