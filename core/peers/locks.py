"""The data home's two peer locks (filelock, advisory, released when the process ends):

- ``serve.lock``: held by the process that owns this node's endpoint port (``tessera serve``, or
  ``tessera peer invite`` when no serve runs), so a second one refuses instead of fighting over it;
- ``sync.lock``: held while pulling from peers into the replicas (``tessera peer sync``, the
  daemon's timed pulls), so two pulls never race for the same cursors.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from tessera.core.data_home_locks import lock_file
from tessera.core.errors import EXIT_TIMEOUT, EXIT_UNAVAILABLE, TesseraError

SERVE_LOCK = "serve.lock"
SYNC_LOCK = "sync.lock"


class ServeRunning(TesseraError):
    exit_code = EXIT_UNAVAILABLE


class SyncBusy(TesseraError):
    exit_code = EXIT_TIMEOUT


def serve_lock(data_home: Path):
    """The held serve lock.

    Raises:
        ServeRunning (exit 3) when another process holds it.
    """
    from filelock import Timeout

    lock = lock_file(data_home, SERVE_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ServeRunning(f"another `tessera serve` (or `tessera peer invite`) holds this node's endpoint "
                           f"({data_home / SERVE_LOCK})",
                           hint="stop it first, or use that one; a data home has one endpoint") from None
    return lock


def serve_running(data_home: Path) -> bool:
    """Whether a process holds the serve lock now (probed by taking it and letting go)."""
    from filelock import Timeout

    lock = lock_file(data_home, SERVE_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def sync_lock(data_home: Path, *, wait: float | None = None, on_wait: Callable[[str], None] | None = None):
    """The held sync lock, waiting up to ``wait`` s for another sync (saying so once); by default
    as long as a command waits for the store's write lock (``store_lock_timeout``, 30 s): one
    setting says how long a command waits for another process.

    Raises:
        SyncBusy (exit 4) when it is still held after ``wait`` s.
    """
    from filelock import Timeout

    if wait is None:
        from tessera.core.config import store_lock_timeout

        wait = store_lock_timeout()
    lock = lock_file(data_home, SYNC_LOCK)
    try:
        lock.acquire(timeout=0)
        return lock
    except Timeout:
        pass
    if on_wait is not None:
        on_wait(f"waiting for another sync (up to {wait:g} s)")
    started = time.monotonic()
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise SyncBusy(f"another sync still holds {data_home / SYNC_LOCK} after {time.monotonic() - started:.0f} s",
                       hint="wait for it to finish (`tessera peer sync` or `tessera serve --sync`), then run again") from None
    return lock
