"""Job schedules (core/jobs/cron_schedule.py): croniter expressions read in the job's time zone,
mapped to real instants by the DST rules of docs/jobs.md, with fixed clocks around the 2026 US
(8 March, 1 November) and EU (29 March, 25 October) changes; and the user's time zone."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tessera.core.errors import InputError, UsageError
from tessera.core.jobs.cron_schedule import Schedule, user_timezone, zone


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def fires(expr: str, tz: str, start: datetime, end: datetime) -> list[str]:
    """Every instant the schedule fires in (start, end], as local wall time with its offset."""
    schedule, z = Schedule.parse(expr), zone(tz)
    out, when = [], start
    while True:
        when = schedule.next_due(when, z)
        if when is None or when > end:
            return out
        out.append(when.astimezone(z).isoformat(timespec="minutes"))


@pytest.mark.parametrize("tz, start, end, expected", [
    # US: 02:00 EST -> 03:00 EDT on 8 March 2026; 02:30 does not exist
    ("America/New_York", utc(2026, 3, 7, 12), utc(2026, 3, 9, 12),
     ["2026-03-08T03:00-04:00", "2026-03-09T02:30-04:00"]),
    # EU: 02:00 CET -> 03:00 CEST on 29 March 2026
    ("Europe/Berlin", utc(2026, 3, 28, 12), utc(2026, 3, 30, 12),
     ["2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00"]),
])
def test_a_skipped_wall_time_fires_once_at_the_first_minute_after_the_gap(tz, start, end, expected):
    assert fires("30 2 * * *", tz, start, end) == expected


def test_minute_interval_times_in_the_gap_fall_on_one_run_at_its_end():
    # 01:30 EST, then 02:00-02:55 do not exist: one run at 03:00 EDT, then on as usual
    assert fires("*/30 * * * *", "America/New_York", utc(2026, 3, 8, 6, 10), utc(2026, 3, 8, 8, 0)) == [
        "2026-03-08T01:30-05:00", "2026-03-08T03:00-04:00", "2026-03-08T03:30-04:00", "2026-03-08T04:00-04:00"]


@pytest.mark.parametrize("expr, tz, start, end, expected", [
    # US: 02:00 EDT -> 01:00 EST on 1 November 2026; 01:30 happens twice
    ("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), utc(2026, 11, 2, 12),
     ["2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"]),
    # EU: 03:00 CEST -> 02:00 CET on 25 October 2026; 02:30 happens twice
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), utc(2026, 10, 26, 12),
     ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"]),
])
def test_a_repeated_wall_time_fires_once_for_a_fixed_hour_schedule(expr, tz, start, end, expected):
    assert fires(expr, tz, start, end) == expected


@pytest.mark.parametrize("tz, start, end, expected", [
    ("America/New_York", utc(2026, 11, 1, 4, 50), utc(2026, 11, 1, 7, 0),
     ["2026-11-01T01:00-04:00", "2026-11-01T01:30-04:00", "2026-11-01T01:00-05:00", "2026-11-01T01:30-05:00",
      "2026-11-01T02:00-05:00"]),
    ("Europe/Berlin", utc(2026, 10, 24, 23, 50), utc(2026, 10, 25, 2, 0),
     ["2026-10-25T02:00+02:00", "2026-10-25T02:30+02:00", "2026-10-25T02:00+01:00", "2026-10-25T02:30+01:00",
      "2026-10-25T03:00+01:00"]),
])
def test_a_minute_interval_schedule_runs_at_every_real_occurrence_of_the_repeated_hour(tz, start, end, expected):
    assert fires("*/30 * * * *", tz, start, end)[-len(expected):] == expected
    # real time only moves forward: every instant is later than the one before
    instants = fires("*/30 * * * *", tz, start, end)
    assert [datetime.fromisoformat(i) for i in instants] == sorted(datetime.fromisoformat(i) for i in instants)


def test_hourly_runs_25_times_on_the_autumn_day_and_23_on_the_spring_day():
    ny = "America/New_York"
    assert len(fires("@hourly", ny, utc(2026, 11, 1, 3, 59), utc(2026, 11, 2, 4, 59))) == 25
    assert len(fires("@hourly", ny, utc(2026, 3, 8, 4, 59), utc(2026, 3, 9, 3, 59))) == 23


def test_latest_due_is_the_last_fire_at_or_before_the_time():
    schedule, ny = Schedule.parse("30 1 * * *"), zone("America/New_York")
    # after both 01:30s of 1 November: the first (EDT) is the only one that fired
    assert schedule.latest_due(utc(2026, 11, 1, 7, 0), ny) == utc(2026, 11, 1, 5, 30)
    assert schedule.latest_due(utc(2026, 11, 1, 5, 30), ny) == utc(2026, 11, 1, 5, 30)
    gap = Schedule.parse("30 2 * * *")
    assert gap.latest_due(utc(2026, 3, 8, 7, 30), ny) == utc(2026, 3, 8, 7, 0)


@pytest.mark.parametrize("expr, words", [
    ("* * * *", "4 fields, not 5"),
    ("* * * * * *", "6 fields, not 5"),
    ("61 * * * *", "not a valid cron expression"),
    ("@reboot", "unknown alias"),
    ("0 0 30 2 *", "never matches"),
    ("", "0 fields"),
])
def test_bad_schedules_are_usage_errors_naming_the_flag(expr, words):
    with pytest.raises(UsageError) as err:
        Schedule.parse(expr)
    assert "--cron" in err.value.one_line() and words in err.value.one_line()


def test_bad_time_zones_are_usage_errors_naming_the_flag():
    for name in ("Mars/Olympus", "", "/etc/passwd", "../../etc/passwd"):
        with pytest.raises(UsageError, match="--tz"):
            zone(name)


def test_the_user_time_zone_is_config_then_tz_then_the_system(isolated_home, monkeypatch):
    config = isolated_home / "config"
    config.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("TZ", ":Asia/Tokyo")
    assert user_timezone() == "Asia/Tokyo"
    (config / "config.toml").write_text('timezone = "Europe/Berlin"\n')
    assert user_timezone() == "Europe/Berlin"
    (config / "config.toml").write_text('timezone = "Nowhere/City"\n')
    with pytest.raises(InputError, match="config.toml: timezone"):
        user_timezone()
    (config / "config.toml").write_text("")
    monkeypatch.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")
    with pytest.raises(UsageError, match="TZ="):
        user_timezone()
    monkeypatch.delenv("TZ")
    assert zone(user_timezone()) is not None  # the system's, or UTC
