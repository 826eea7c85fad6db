"""When a job is due: its cron expression (croniter) read in its time zone, mapped to real (UTC)
instants by the DST rules of docs/jobs.md:

- a wall-clock time skipped when clocks go forward fires once, at the first minute after the gap
  (02:30 on a spring-forward night runs at 03:00);
- a wall-clock time repeated when clocks go back fires once, at its first occurrence, for a
  schedule with a fixed hour (``30 1 * * *``); a schedule whose hour field is ``*``
  (``*/5 * * * *``, ``0 * * * *``) runs at every real occurrence, both the first and the second.

croniter walks wall-clock times (naive datetimes); each is mapped to its instants here, so
croniter's own handling of aware datetimes across transitions is never relied on.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from tessera.core.errors import InputError, UsageError

# Wall-clock offsets change by at most a few hours (DST is 1 h, Lord Howe 30 min; a zone's
# change of standard time rarely more): instants more than this apart in wall time cannot swap order.
_MAX_SHIFT = timedelta(hours=3)
_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_SEARCH_LIMIT = 100_000  # wall times examined for one answer (a schedule matching nothing, e.g. Feb 30)


class Schedule:
    """A checked cron expression: ``Schedule.parse(text)``."""

    def __init__(self, text: str, croniter_class: Any):
        self.text = text
        self._croniter = croniter_class
        self.every_hour = croniter_class(text).expanded[1] == ["*"]

    @classmethod
    def parse(cls, text: str) -> "Schedule":
        """Raises UsageError (naming --cron and how to fix it) for anything but a 5-field cron
        expression or one of the @ aliases."""
        from croniter import CroniterError, croniter

        raw = " ".join((text or "").split())
        hint = "five fields: minute hour day-of-month month day-of-week, e.g. '*/5 * * * *' or '30 2 * * 1-5' (or @hourly, @daily...)"
        if raw.startswith("@") and raw not in _ALIASES:
            raise UsageError(f"--cron '{text}': unknown alias {raw}", hint=f"use one of {', '.join(_ALIASES)}")
        if not raw.startswith("@") and len(raw.split(" ")) != 5:
            raise UsageError(f"--cron '{text}' has {len(raw.split()) if raw else 0} fields, not 5", hint=hint)
        try:
            croniter(raw)
        except (CroniterError, ValueError, KeyError) as exc:
            raise UsageError(f"--cron '{text}' is not a valid cron expression: {exc}", hint=hint) from None
        schedule = cls(raw, croniter)
        if schedule._first_wall_after(datetime(2000, 1, 1)) is None:
            raise UsageError(f"--cron '{text}' never matches a date", hint="check the day-of-month and month fields")
        return schedule

    def _first_wall_after(self, wall: datetime) -> datetime | None:
        walls = self._walls(wall, forward=True)
        return next(walls, None)

    def _walls(self, start: datetime, *, forward: bool) -> Iterator[datetime]:
        """Matching wall-clock times (naive) after (or, backward, before) ``start``."""
        it = self._croniter(self.text, start)
        step = it.get_next if forward else it.get_prev
        for _ in range(_SEARCH_LIMIT):
            try:
                yield step(datetime)
            except (StopIteration, ValueError, OverflowError):  # past year 9999 / before year 1
                return

    def instants(self, wall: datetime, zone: Any) -> list[datetime]:
        """The real instants (aware UTC) at which the wall-clock time ``wall`` fires in ``zone``."""
        first = wall.replace(tzinfo=zone, fold=0)
        second = wall.replace(tzinfo=zone, fold=1)
        as_utc = first.astimezone(timezone.utc)
        if as_utc.astimezone(zone).replace(tzinfo=None) != wall:  # skipped: a spring-forward gap
            return [_first_minute_after_gap(wall, zone)]
        if first.utcoffset() != second.utcoffset():  # repeated: an autumn fold
            again = second.astimezone(timezone.utc)
            return [as_utc, again] if self.every_hour else [as_utc]
        return [as_utc]

    def next_due(self, after: datetime, zone: Any) -> datetime | None:
        """The first instant strictly after ``after`` (aware) at which the schedule fires."""
        best: datetime | None = None
        start = after.astimezone(zone).replace(tzinfo=None, fold=0) - _MAX_SHIFT
        for wall in self._walls(start, forward=True):
            if best is not None and wall > best.astimezone(zone).replace(tzinfo=None) + _MAX_SHIFT:
                break
            for instant in self.instants(wall, zone):
                if instant > after and (best is None or instant < best):
                    best = instant
        return best

    def latest_due(self, at_or_before: datetime, zone: Any) -> datetime | None:
        """The last instant at or before ``at_or_before`` at which the schedule fires."""
        best: datetime | None = None
        start = at_or_before.astimezone(zone).replace(tzinfo=None, fold=0) + _MAX_SHIFT
        for wall in self._walls(start, forward=False):
            if best is not None and wall < best.astimezone(zone).replace(tzinfo=None) - _MAX_SHIFT:
                break
            for instant in self.instants(wall, zone):
                if instant <= at_or_before and (best is None or instant > best):
                    best = instant
        return best

    def due_between(self, start: datetime, end: datetime, zone: Any, *, limit: int) -> list[datetime]:
        """Instants in [start, end], oldest first, at most ``limit`` of them."""
        found: list[datetime] = []
        when = start - timedelta(microseconds=1)
        while len(found) < limit:
            nxt = self.next_due(when, zone)
            if nxt is None or nxt > end:
                break
            found.append(nxt)
            when = nxt
        return found


def _first_minute_after_gap(wall: datetime, zone: Any) -> datetime:
    """The instant of the first wall-clock minute after ``wall`` that exists in ``zone``."""
    probe = wall.replace(second=0, microsecond=0)
    for _ in range(24 * 60):
        probe += timedelta(minutes=1)
        instant = probe.replace(tzinfo=zone).astimezone(timezone.utc)
        if instant.astimezone(zone).replace(tzinfo=None) == probe:
            return instant
    raise ValueError(f"no wall-clock time after {wall} exists in {zone}")  # no real zone has a day-long gap


# --- time zones ---------------------------------------------------------------------------


def zone(name: str) -> Any:
    """The ZoneInfo for an IANA name; UsageError naming --tz when there is none."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        if not name or name != name.strip() or name.startswith("/"):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UsageError(f"--tz '{name}' is not a time zone",
                         hint="use an IANA name such as Europe/Berlin, America/New_York or UTC") from None


def user_timezone() -> str:
    """The user's time zone name: ``timezone`` in config.toml, else ``$TZ``, else the system's
    (/etc/localtime's link into the zoneinfo tree, else /etc/timezone), else UTC.

    Raises:
        InputError / UsageError when config.toml or TZ names something that is not an IANA zone.
    """
    from tessera.core.config import config_file, settings

    configured = settings().get("timezone")
    if configured is not None:
        if not isinstance(configured, str):
            raise InputError(f"{config_file()}: timezone must be a text such as \"Europe/Berlin\", not {configured!r}")
        try:
            zone(configured)
        except UsageError as exc:
            raise InputError(f"{config_file()}: timezone = {configured!r} is not a time zone", hint=exc.hint) from None
        return configured
    env = os.environ.get("TZ", "").strip()
    if env:
        name = env[1:] if env.startswith(":") else env
        try:
            zone(name)
        except UsageError as exc:
            raise UsageError(f"TZ={env!r} is not an IANA time zone",
                             hint=f"pass --tz, set timezone in {config_file()}, or {exc.hint}") from None
        return name
    return _system_timezone()


def _system_timezone() -> str:
    localtime = Path("/etc/localtime")
    try:
        target = os.path.realpath(localtime)
        if "/zoneinfo/" in target:
            name = target.split("/zoneinfo/", 1)[1]
            zone(name)
            return name
    except (OSError, UsageError):
        pass
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
        zone(name)
        return name
    except (OSError, UnicodeDecodeError, UsageError):
        return "UTC"  # no /etc/localtime: the C library's time is UTC too
