"""Whether the data home is in use by a process that would fight a restore: restore replaces the
whole folder, and a process that keeps it open writes on into the one moved aside.

Busy when another process holds a lock file at the top of the data home (``serve.lock`` of a
running ``tessera serve``, ``sync.lock`` of a sync, ``job-daemon.lock`` of the job daemon: every
``*.lock`` there, probed with filelock by taking it, waiting MOMENT_S for one held a moment), when the store lists a job runner that is alive (a fresh
heartbeat, and on this host a live pid), or when a process holds the store's write lock.
``holding`` keeps the lock files taken while the home is replaced, so none of them starts then.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Iterator

from tessera.core.errors import EXIT_UNAVAILABLE, TesseraError

ALWAYS_LOCKED = ("serve.lock", "sync.lock")
# Who holds each lock file the home is known to have (docs/peers.md, docs/jobs.md)
HOLDERS = {"serve.lock": "a running `tessera serve` (or `tessera peer invite`)", "sync.lock": "a sync (`tessera peer sync`)",
           "job-daemon.lock": "the job daemon (`tessera job daemon`)", "jobs.lock": "a job runner (`tessera job run-due`)"}
# A lock held for a moment (jobs.lock, while a runner turns due times into runs) is waited for this long
MOMENT_S = 2.0


class HomeBusy(TesseraError):
    """The data home is in use by a serve, a sync, a job runner or a writer (exit 3)."""

    exit_code = EXIT_UNAVAILABLE


def _busy(home: Path, what: str) -> HomeBusy:
    return HomeBusy(f"the data home {home} is in use by {what}; nothing was restored",
                    hint="stop it (and `tessera serve`, `tessera job daemon`), then run restore again")


def _alive_runners(store: Path) -> list[str]:
    from tessera.core.jobs import job_records
    from tessera.core.store.db import connect_read_only

    conn = connect_read_only(store)
    if conn is None:
        return []
    try:
        if not job_records.has_jobs_tables(conn):
            return []
        here = socket.gethostname()
        return [f"a job runner ({r.kind}, pid {r.pid} on {r.host})" for r in job_records.runners(conn)
                if job_records.runner_dead(r, here) is None]
    except Exception:  # noqa: BLE001 - an unreadable store is restore's to replace, not a reason to stop
        return []
    finally:
        conn.close()


@contextlib.contextmanager
def holding(home: Path) -> Iterator[None]:
    """Hold every lock file of ``home`` (and serve.lock and sync.lock, made when missing) for the
    block, after checking no job runner or writer uses the store.

    Raises:
        HomeBusy naming what uses it.
    """
    from filelock import Timeout

    from tessera.core.data_home_locks import lock_file

    if not home.is_dir():
        yield
        return
    names = sorted(set(ALWAYS_LOCKED) | {p.name for p in home.glob("*.lock") if p.is_file()})
    held = []
    try:
        for name in names:
            lock = lock_file(home, name)
            try:
                lock.acquire(timeout=MOMENT_S)
            except Timeout:
                raise _busy(home, HOLDERS.get(name, f"the process holding {name}")) from None
            held.append(lock)
        store = home / "tessera.db"
        runners = _alive_runners(store)
        if runners:
            raise _busy(home, runners[0])
        from tessera.core.store.holders import holder_text, lock_holders

        if lock_holders(store):
            raise _busy(home, holder_text(store))
        yield
    finally:
        for lock in reversed(held):
            lock.release()
