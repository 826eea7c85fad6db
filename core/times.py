"""The one time format Tessera writes: RFC 3339, UTC, milliseconds, a ``Z`` (events, recordings,
live row changes)."""

from __future__ import annotations

from datetime import datetime, timezone


def format_time(when: datetime) -> str:
    """``when`` as ``2026-11-23T10:00:00.000Z`` (a naive datetime is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def now() -> str:
    """The current time, formatted as format_time does."""
    return format_time(datetime.now(timezone.utc))
