"""The scheduler's clock: what time it is for due times, next runs and retry backoff. Real UTC
time, unless ``TESSERA_JOBS_NOW`` holds an RFC 3339 time (tests drive schedules with it instead
of waiting for real minutes; docs/jobs.md). Start, finish and heartbeat times are always real."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from tessera.core.errors import UsageError
from tessera.core.times import parse_time

NOW_ENV = "TESSERA_JOBS_NOW"


def jobs_now() -> datetime:
    """Now, for the schedule: ``$TESSERA_JOBS_NOW`` when set, else the real time (aware, UTC).

    Raises:
        UsageError when the variable is not an RFC 3339 time.
    """
    fixed = os.environ.get(NOW_ENV, "").strip()
    if not fixed:
        return datetime.now(timezone.utc)
    try:
        return parse_time(fixed)
    except ValueError:
        raise UsageError(f"{NOW_ENV}={fixed!r} is not an RFC 3339 time",
                         hint="e.g. 2026-03-08T07:00:00Z, or unset it to use the real clock") from None
