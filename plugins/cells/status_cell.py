"""The ``status`` cell: the system at a glance, one row per item (columns ``what | name | state |
detail``): jobs (running, last result, next run) and their runners, alerts firing, peers
(reachable, last sync, transfer rate) and the NATS cursors' lag (in powers of ten, see lag_step),
gathered by core/system_status.py.
Its source may name the sections to show (``jobs alerts peers nats``, any order); empty: all.

Live: with ``refresh=watch`` a dashboard runs it again every couple of seconds (the session's
WATCH_FALLBACK), so a change in the store (a run finishing, an alert firing, a sync) shows
within that. Times are shown as wall-clock times in the user's time zone (``23:45``), not ages, so the rows change
only when the system does and a live pane records no change every second (docs/jobs.md).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from tessera.core.errors import QueryError, printable
from tessera.core.times import parse_time

COLUMNS = ["what", "name", "state", "detail"]
SECTIONS = ("jobs", "alerts", "peers", "nats")
NONE = "—"
_DETAIL_CHARS = 160  # of an error shown in a row
LAG_STEP = 10  # a push lag under this many events reads "caught up"; above, in powers of ten


def sections_of(source: str, where: str) -> tuple[str, ...]:
    """The sections the cell's source names, in the cell's order (all when it names none).

    Raises:
        QueryError naming the cell and the word that is not a section.
    """
    words = source.replace(",", " ").split()
    for word in words:
        if word.lower() not in SECTIONS:
            raise QueryError(f"{where}: '{printable(word)}' is not a section of the status cell",
                             hint=f"name some of: {' '.join(SECTIONS)} (or leave the cell empty for all)")
    picked = {w.lower() for w in words}
    return tuple(s for s in SECTIONS if not picked or s in picked)


class StatusCell:
    name = "status"
    fence = "status"
    runnable = True

    def run(self, cell: dict, context: Any) -> Any:
        from tessera.core.result import Result
        from tessera.core.system_status import gather

        where = f"status cell {context.notebook}/{cell.get('number', '?')}"
        sections = sections_of(cell.get("source") or "", where)
        now = datetime.now(user_zone())  # times are shown in it
        status = gather(context.conn, now)
        rows: list[dict[str, Any]] = []
        for section in sections:
            rows += _ROWS[section](status, now)
        return Result(columns=list(COLUMNS), rows=rows, keys=[f"{r['what']}:{r['name']}" for r in rows])


def _row(what: str, name: str, state: str, detail: str) -> dict[str, Any]:
    return {"what": what, "name": name, "state": state, "detail": printable(detail)}


def clock(stamp: str | None, now: datetime) -> str:
    """``stamp`` (RFC 3339) as wall-clock time in ``now``'s time zone (the cell's: the user's):
    ``23:45`` on the day of ``now``, ``Dec 02 23:45`` on another."""
    if not stamp:
        return "?"
    when = parse_time(stamp).astimezone(now.tzinfo)
    return when.strftime("%H:%M" if when.date() == now.date() else "%b %d %H:%M")


def user_zone() -> tzinfo:
    """The user's time zone (config.toml ``timezone``, else $TZ, else the system's), the one
    jobs read their schedules in."""
    from tessera.core.jobs.cron_schedule import user_timezone, zone

    return zone(user_timezone())


def rate(bytes_per_second: float) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if bytes_per_second >= size:
            return f"{bytes_per_second / size:.1f} {unit}/s"
    return f"{bytes_per_second:.0f} B/s"


def lag_step(lag: int) -> int | None:
    """The power of ten a push cursor's lag has reached (None: under LAG_STEP). The cell's own
    changes are events of this node too: an exact count would change with every record of the
    cell, and each record is one more event behind, so a live pane would never settle."""
    if lag < LAG_STEP:
        return None
    step = LAG_STEP
    while lag >= step * 10:
        step *= 10
    return step


def _last(job: Any, now: datetime) -> str:
    if job.last_state is None:
        return "never run"
    parts = [f"{job.last_state.replace('_', ' ')} {clock(job.last_finished_at, now)}"]
    if job.last_duration_s is not None:
        parts.append(f"{job.last_duration_s:.1f} s")
    if job.last_rows is not None:
        parts.append(f"{job.last_rows} row{'' if job.last_rows == 1 else 's'}")
    elif job.last_exit_code not in (None, 0):
        parts.append(f"exit {job.last_exit_code}")
    return ", ".join(parts)


def _job_rows(status: Any, now: datetime) -> list[dict[str, Any]]:
    if not status.jobs:
        return [_row("job", NONE, "no jobs", "tessera job add NAME --cron '*/5 * * * *' --query '…'")]
    rows = []
    for job in status.jobs:
        nxt = f"next {clock(job.next_run_at, now)}" if job.next_run_at else ""
        if job.retry_at is not None:
            detail = f"attempt {job.active_attempt} at {clock(job.retry_at, now)} (backoff)"
        elif job.active_run is not None:
            detail = f"run {job.active_run} since {clock(job.active_since, now)}"
        elif job.state == "overdue":
            detail = f"due {clock(job.next_run_at, now)}, no runner — tessera job daemon"
            nxt = ""
        elif job.state == "paused":
            detail = f"last {_last(job, now)} · tessera job resume {job.name}"
        else:
            detail = f"last {_last(job, now)}" if job.last_state else "never run"
        rows.append(_row("job", job.name, job.state.replace("_", " "), " · ".join(p for p in (detail, nxt) if p)))
    alive = [r for r in status.runners if r.alive]
    for runner in status.runners:
        if runner.alive:
            rows.append(_row("runner", runner.kind, "alive", f"pid {runner.pid} on {runner.host}"))
        else:
            rows.append(_row("runner", runner.kind, "dead", f"pid {runner.pid} on {runner.host}: heartbeat stopped; "
                                                            "the next runner fails or retries its runs"))
    if not alive:
        rows.append(_row("runner", NONE, "no runner", "tessera job daemon, or tessera job run-due from cron"))
    return rows


def _alert_rows(status: Any, now: datetime) -> list[dict[str, Any]]:
    if status.alerts_firing:
        rows = []
        for alert in status.alerts_firing:
            detail = f"since {clock(alert.since, now)} · {alert.condition}"
            if alert.value is not None:
                detail += f" · {alert.value}"
            if alert.notify_error:
                detail += f" · notify failed: {alert.notify_error[:_DETAIL_CHARS]}"
            rows.append(_row("alert", alert.job, "firing", detail))
        return rows
    if status.alerts_set:
        return [_row("alert", NONE, "ok", f"none firing of {status.alerts_set}")]
    return [_row("alert", NONE, "no alerts", "tessera job add … --alert 'rows > 0'")]


def _peer_rows(status: Any, now: datetime) -> list[dict[str, Any]]:
    if not status.peers:
        return [_row("peer", NONE, "no peers", "tessera peer invite")]
    rows = []
    for peer in status.peers:
        if peer.state == "unreachable":
            detail = (peer.last_error or "")[:_DETAIL_CHARS]
        elif peer.state == "never synced":
            detail = f"tessera peer sync {peer.name}"
        else:
            detail = f"synced {clock(peer.last_sync, now)}"
            if peer.bytes_per_second is not None:
                detail += f" · {rate(peer.bytes_per_second)}"
        rows.append(_row("peer", peer.name, peer.state, detail))
    return rows


def _nats_rows(status: Any, now: datetime) -> list[dict[str, Any]]:
    if not status.nats:
        return [_row("nats", NONE, "not pushing", "tessera nats push --server URL")]
    rows = []
    for cursor in status.nats:
        name = f"{cursor.direction} {cursor.stream}"
        where = f"{cursor.server}" + (f" {cursor.pattern}" if cursor.pattern and cursor.pattern != ">" else "")
        if cursor.last_error:
            rows.append(_row("nats", name, "error", f"{where}: {cursor.last_error[:_DETAIL_CHARS]}"))
        elif cursor.direction == "push":
            step = lag_step(cursor.lag or 0)
            if step is None:
                rows.append(_row("nats", name, "caught up", f"{where} · under {LAG_STEP} events behind"))
            else:
                acked = f" · acked {clock(cursor.at, now)}" if cursor.at else " · nothing acked yet"
                rows.append(_row("nats", name, f"lag {step:,}+", where + acked))
        else:
            pulled = f" · pulled {clock(cursor.at, now)}" if cursor.at else " · nothing pulled yet"
            rows.append(_row("nats", name, "pulling", where + pulled))
    return rows


_ROWS = {"jobs": _job_rows, "alerts": _alert_rows, "peers": _peer_rows, "nats": _nats_rows}
