"""The data home's lock files (filelock: advisory, released when the process ends however it
ends): each made the same way, in the data home (made 0700 if missing), the file 0600. Which
locks there are, and who holds them, is said by their owners: core/peers/locks.py (serve.lock,
sync.lock), core/jobs/job_daemon.py (job-daemon.lock), core/jobs/due_claims.py (jobs.lock);
restore takes them all (core/backup/home_locks.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def lock_file(data_home: Path, name: str) -> Any:
    """The (not yet acquired) FileLock ``name`` in ``data_home``."""
    from filelock import FileLock

    data_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return FileLock(str(data_home / name), mode=0o600)
