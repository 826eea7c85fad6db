"""Scalar functions callable from queries: datetime(), duration(), now-relative arithmetic."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from tessera.core.errors import QueryError

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration (``P7D``, ``PT1H30M``, ``P1W``) into a timedelta.

    Args:
        text: the duration string; years and months are refused (they have no fixed length).
    Returns:
        the timedelta.
    Raises:
        QueryError: on anything else.
    """
    m = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if not m or text.strip().upper() in ("P", "PT"):
        raise QueryError(
            f"invalid duration {text!r}",
            hint='use ISO 8601 like "PT1H", "P7D" or "P1DT12H"',
        )
    parts = {k: float(v) for k, v in m.groupdict().items() if v}
    try:
        return timedelta(**parts)
    except OverflowError:
        raise QueryError(f"duration {text!r} out of range", hint="at most 999999999 days") from None


def parse_datetime(text: str) -> datetime:
    """Parse an RFC 3339 / ISO 8601 timestamp; a missing zone means UTC."""
    raw = text.strip()
    if raw.endswith("Z") or raw.endswith("z"):
        raw = raw[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise QueryError(
            f"invalid datetime {text!r}", hint='use RFC 3339 like "2024-05-01T12:00:00Z"'
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def call_function(name: str, args: list[Any]) -> Any:
    """Call a scalar function by (lower-case) name with evaluated arguments.

    Returns:
        datetime() -> the current UTC time (or the parsed argument); duration(s) -> timedelta.
    Raises:
        QueryError: unknown function or bad arguments.
    """
    if name == "datetime":
        if not args:
            return datetime.now(timezone.utc)
        if len(args) == 1 and isinstance(args[0], str):
            return parse_datetime(args[0])
        raise QueryError("datetime() takes no argument or one timestamp string")
    if name == "duration":
        if len(args) == 1 and isinstance(args[0], str):
            return parse_duration(args[0])
        raise QueryError('duration() takes one ISO 8601 string, e.g. duration("PT1H")')
    raise QueryError(f"unknown function {name}()", hint="known functions: datetime(), duration()")
