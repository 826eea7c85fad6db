"""Whether a process still runs on this host, by its pid: the one check behind a job runner's
liveness (core/jobs/job_records.py) and a backup's leftovers (core/backup/leftovers.py)."""

from __future__ import annotations

import os


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs on this host (one of another user counts as running)."""
    if not pid or pid < 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
