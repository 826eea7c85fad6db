"""The one time format Tessera writes: RFC 3339, UTC, milliseconds, a ``Z`` (events, recordings,
live row changes)."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def format_time(when: datetime) -> str:
    """``when`` as ``2026-11-23T10:00:00.000Z`` (a naive datetime is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (``Z`` or an offset; a naive one is taken as UTC) as an aware UTC datetime.

    Raises:
        ValueError when it is not one.
    """
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def now() -> str:
    """The current time, formatted as format_time does. Appending an event calls this once per
    event, so the text of the current second is kept and only the milliseconds are formatted."""
    global _second
    t = time.time()
    whole = int(t)
    cached = _second
    if cached[0] != whole:
        cached = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole)))
    return f"{cached[1]}{int((t - whole) * 1000):03d}Z"


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_kube_duration(text: str) -> float:
    """Seconds in a duration written as kubectl's flags take it: a plain number of seconds
    (``30``, ``2.5``) or Go's duration syntax (``30s``, ``1m``, ``1m30s``, ``500ms``, ``1h``).

    Raises:
        UsageError: anything else, or a negative duration.
    """
    import re

    from tessera.core.errors import UsageError

    raw = (text or "").strip()
    try:
        seconds = float(raw)
    except ValueError:
        parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", raw)
        if not raw or "".join(n + u for n, u in parts) != raw:
            raise UsageError(f"'{text}' is not a duration",
                             hint="use seconds (30) or a unit: 30s, 1m, 1m30s, 500ms; 0 means no limit") from None
        seconds = sum(float(n) * _GO_UNITS[u] for n, u in parts)
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise UsageError(f"'{text}' is not a duration: it must be 0 (no limit) or more")
    return seconds
