"""The system at a glance (the ``status`` cell, docs/jobs.md "The status cell"): jobs and their
runners, alerts firing, peers and the NATS cursors, read from the store (reads only, through
core/jobs/job_records.py, core/peers/peer_list.py and core/nats/cursors.py).

What the states mean:

- a job is ``running`` / ``queued`` / ``pending`` while it has a run in that state, else
  ``paused``, else ``overdue`` when its next run is more than OVERDUE_GRACE_S past and no runner is
  alive, else the state of its last finished run (``never run`` before the first);
- a runner is alive while its heartbeat is fresh (RUNNER_STALE_S) and, on this host, its process
  exists;
- a peer is ``reachable`` when our last contact with it succeeded (a pull, or a page of a
  subscription of ``tessera serve``: last_error empty, last_sync set) less than PEER_RECENT_S ago;
  ``quiet`` when that success is older (an idle subscription looks the same: the store cannot
  tell), ``unreachable`` when the last contact failed, ``never synced`` before any;
- a NATS push cursor's lag is this node's own events not yet acknowledged by the server.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tessera.core.jobs.job_records import seconds_since

PEER_RECENT_S = 3 * 30 * 60.0  # three of `tessera serve --sync`'s default intervals


@dataclass(frozen=True)
class JobStatus:
    name: str
    state: str  # running | queued | pending | paused | overdue | succeeded | failed | timed_out | cancelled | never run
    schedule: str
    next_run_at: str | None
    active_since: str | None = None  # when the active run was created or started
    active_run: int | None = None
    active_attempt: int | None = None
    retry_at: str | None = None  # a pending retry waits until then (its backoff)
    last_state: str | None = None
    last_finished_at: str | None = None
    last_duration_s: float | None = None
    last_rows: int | None = None
    last_exit_code: int | None = None


@dataclass(frozen=True)
class RunnerStatus:
    id: str
    kind: str
    pid: int
    host: str
    alive: bool


@dataclass(frozen=True)
class AlertStatus:
    job: str
    condition: str
    since: str
    value: object
    notify_error: str | None


@dataclass(frozen=True)
class PeerStatus:
    name: str
    node_id: str
    state: str  # reachable | quiet | unreachable | never synced
    last_sync: str | None
    last_error: str | None
    bytes: int | None  # of the last successful pull
    seconds: float | None

    @property
    def bytes_per_second(self) -> float | None:
        if self.bytes is None or not self.seconds:
            return None
        return self.bytes / self.seconds


@dataclass(frozen=True)
class NatsStatus:
    direction: str  # push | pull
    server: str
    stream: str
    pattern: str
    lag: int | None  # push: events not acknowledged yet; pull: None
    at: str | None  # last ack (push) or pull
    last_error: str | None


@dataclass
class SystemStatus:
    jobs: list[JobStatus] = field(default_factory=list)
    runners: list[RunnerStatus] = field(default_factory=list)
    alerts_firing: list[AlertStatus] = field(default_factory=list)
    alerts_set: int = 0  # jobs with an alert condition
    peers: list[PeerStatus] = field(default_factory=list)
    nats: list[NatsStatus] = field(default_factory=list)


def gather(conn: sqlite3.Connection, now: datetime | None = None) -> SystemStatus:
    """The status now (``now``: for tests). A store without the jobs or nats tables (an old
    one opened read-only) has none of those."""
    now = now or datetime.now(timezone.utc)
    status = SystemStatus()
    _jobs(conn, now, status)
    _peers(conn, now, status)
    _nats(conn, status)
    return status


def _jobs(conn: sqlite3.Connection, now: datetime, status: SystemStatus) -> None:
    from tessera.core.jobs import job_records as jr

    if not jr.has_jobs_tables(conn):
        return
    for runner in jr.runners(conn):
        alive = jr.runner_dead(runner, now=now) is None
        status.runners.append(RunnerStatus(runner.id, runner.kind, runner.pid, runner.host, alive))
    any_runner = any(r.alive for r in status.runners)
    active: dict[str, jr.JobRun] = {}
    for run in jr.runs(conn, states=jr.ACTIVE, newest_first=False):
        current = active.get(run.job)
        # the one to show: a running run before a queued one before a pending one
        if current is None or jr.ACTIVE.index(run.state) > jr.ACTIVE.index(current.state):
            active[run.job] = run
    jobs = jr.list_jobs(conn)
    for job in jobs:
        last = jr.last_finished_run(conn, job.name)
        run = active.get(job.name)
        if run is not None:
            state = run.state
        elif job.paused:
            state = "paused"
        elif jr.overdue(job, now) and not any_runner:
            state = "overdue"
        else:
            state = last.state if last is not None else "never run"
        status.jobs.append(JobStatus(
            job.name, state, job.schedule, None if job.paused else job.next_run_at,
            active_since=(run.started_at or run.created_at) if run is not None else None,
            active_run=run.id if run is not None else None, active_attempt=run.attempt if run is not None else None,
            retry_at=run.not_before if run is not None and run.state == "pending" else None,
            last_state=last.state if last else None, last_finished_at=last.finished_at if last else None,
            last_duration_s=last.duration_s if last else None, last_rows=last.rows if last else None,
            last_exit_code=last.exit_code if last else None))
    alerting = {job.name: job.alert for job in jobs if job.alert}
    status.alerts_set = len(alerting)
    for alert in jr.alert_states(conn, firing_only=True):
        notify = alert.detail.get("notify") if isinstance(alert.detail.get("notify"), dict) else {}
        status.alerts_firing.append(AlertStatus(
            alert.job, alerting.get(alert.job) or str(alert.detail.get("condition", "")), alert.since,
            alert.detail.get("value"), None if notify.get("ok", True) else str(notify.get("error"))))


def _peers(conn: sqlite3.Connection, now: datetime, status: SystemStatus) -> None:
    from tessera.core.peers import peer_list

    try:
        peers = peer_list.all_peers(conn)
    except sqlite3.OperationalError:  # a store from before the peers tables, opened read-only
        return
    try:
        transfers = peer_list.transfers(conn)
    except sqlite3.OperationalError:  # one from before peers migration 3: no transfer figures yet
        transfers = {}
    for peer in peers:
        if peer.last_error is not None:
            state = "unreachable"
        elif peer.last_sync is None:
            state = "never synced"
        elif seconds_since(peer.last_sync, now) <= PEER_RECENT_S:
            state = "reachable"
        else:
            state = "quiet"
        sent, seconds = transfers.get(peer.node_id, (None, None))
        status.peers.append(PeerStatus(peer.name, peer.node_id, state, peer.last_sync, peer.last_error, sent, seconds))


def _nats(conn: sqlite3.Connection, status: SystemStatus) -> None:
    from tessera.core.nats import cursors

    if not cursors.has_nats_tables(conn):
        return
    for push in cursors.push_cursors(conn):
        status.nats.append(NatsStatus("push", push.server, push.stream, push.pattern, push.lag, push.acked_at,
                                      push.last_error))
    for pull in cursors.pull_cursors(conn):
        status.nats.append(NatsStatus("pull", pull.server, pull.stream, "", None, pull.pulled_at, pull.last_error))
