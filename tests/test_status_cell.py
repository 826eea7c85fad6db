"""The ``status`` cell (plugins/cells/status_cell.py over core/system_status.py): jobs, runners,
alerts firing, peers and NATS cursors from a real store, the hints of an empty one, and the
dashboard showing a change in the store without being asked."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from datetime import datetime, timedelta, timezone

import pytest
from test_alerts import add_job, add_run, open_store
from test_dash import cell_md, dashboard, make_notebook, screen_text, until

from tessera.core.errors import QueryError
from tessera.core.jobs import alerts
from tessera.core.notebook.cells import CellContext, run_cell
from tessera.core.peers import peer_list
from tessera.core.store.db import transaction
from tessera.core.times import format_time


def stamp(seconds_from_now: float) -> str:
    return format_time(datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now))


def clock(seconds_from_now: float) -> str:
    from tessera.plugins.cells.status_cell import clock as shown
    from tessera.plugins.cells.status_cell import user_zone

    return shown(stamp(seconds_from_now), datetime.now(user_zone()))


def status_rows(conn, source: str = "") -> dict[tuple[str, str], tuple[str, str]]:
    result = run_cell({"type": "status", "source": source, "number": 1}, CellContext(conn, notebook="nb"))
    assert result.columns == ["what", "name", "state", "detail"]
    assert len(result.keys) == len(result.rows) == len(set(result.keys))
    return {(r["what"], r["name"]): (r["state"], r["detail"]) for r in result.rows}


def add_runner(conn, runner_id: str, *, pid: int, heartbeat: str, kind: str = "daemon", host: str | None = None):
    with transaction(conn):
        conn.execute("INSERT INTO job_runners(id, kind, pid, host, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
                     (runner_id, kind, pid, host or socket.gethostname(), heartbeat, heartbeat))


def add_peer(conn, name: str, node_id: str, *, synced: str | None = None, error: str | None = None,
             transfer: tuple[int, float] | None = None):
    with transaction(conn):
        peer_list.add(conn, node_id, name, subscribe=True, added_at=stamp(-7200))
        if synced:
            conn.execute("UPDATE peers SET last_sync = ? WHERE node_id = ?", (synced, node_id))
        if error:
            peer_list.record_sync(conn, node_id, when=stamp(0), error=error)
        if transfer:
            peer_list.record_transfer(conn, node_id, received_bytes=transfer[0], seconds=transfer[1])


def test_the_status_of_jobs_runners_alerts_peers_and_nats_one_row_each():
    from tessera.core import events

    conn = open_store()
    # jobs: one running, one whose last run succeeded, a failed one, a paused one, one never run
    add_job(conn, "busy", next_run_at=stamp(600))
    add_run(conn, "busy", "succeeded", rows=[])
    running = add_run(conn, "busy", "running", started_at=stamp(-30))
    pods = add_job(conn, "pods", alert="restarts > 5", next_run_at=stamp(240))
    alerts.after_run(conn, pods, add_run(conn, "pods", "succeeded", rows=[{"restarts": 9}, {"restarts": 1}],
                                         duration_s=1.25, finished_at=stamp(-60)), [{"restarts": 9}, {"restarts": 1}])
    add_job(conn, "broken", next_run_at=stamp(300))
    add_run(conn, "broken", "failed", rows=None, exit_code=3, finished_at=stamp(-120))
    add_job(conn, "resting", paused=True, next_run_at=stamp(-9000))
    add_job(conn, "fresh", next_run_at=stamp(3600))
    add_runner(conn, "r-live", pid=os.getpid(), heartbeat=stamp(-1))
    add_runner(conn, "r-dead", pid=os.getpid(), heartbeat=stamp(-600), kind="run-due")
    # peers: one synced lately with its transfer figures, one failing, one never synced
    add_peer(conn, "alice", "a" * 64, synced=stamp(-90), transfer=(3 * 1024 * 1024, 2.0))
    add_peer(conn, "bob", "b" * 64, synced=stamp(-900), error="node b… is not reachable (timed out after 10 s)")
    add_peer(conn, "carol", "c" * 64)
    # nats: a push cursor 4 events behind this node's chain, a pull cursor
    events.append_many(conn, [("x.y", {"n": n}) for n in range(6)])
    top = events.last_seq(conn)
    with transaction(conn):
        conn.execute("INSERT INTO nats_push_cursors(server, stream, pattern, seq, acked_at) VALUES (?, ?, ?, ?, ?)",
                     ("nats://127.0.0.1:4222", "TESSERA", ">", top - 4, stamp(-5)))
        conn.execute("INSERT INTO nats_pull_cursors(server, stream, stream_seq, pulled_at) VALUES (?, ?, ?, ?)",
                     ("nats://127.0.0.1:4222", "TEAM", 120, stamp(-5)))

    rows = status_rows(conn)
    assert rows[("job", "busy")] == ("running", f"run {running.id} since {clock(-30)} · next {clock(600)}")
    assert rows[("job", "pods")] == ("succeeded", f"last succeeded {clock(-60)}, 1.2 s, 2 rows · next {clock(240)}")
    assert rows[("job", "broken")] == ("failed", f"last failed {clock(-120)}, 0.5 s, exit 3 · next {clock(300)}")
    assert rows[("job", "resting")] == ("paused", "last never run · tessera job resume resting")
    assert rows[("job", "fresh")] == ("never run", f"never run · next {clock(3600)}")
    assert rows[("runner", "daemon")] == ("alive", f"pid {os.getpid()} on {socket.gethostname()}")
    assert rows[("runner", "run-due")][0] == "dead"
    assert rows[("alert", "pods")] == ("firing", f"since {clock(-60)} · restarts > 5 · 9")
    assert rows[("peer", "alice")] == ("reachable", f"synced {clock(-90)} · 1.5 MiB/s")
    assert rows[("peer", "bob")] == ("unreachable", "node b… is not reachable (timed out after 10 s)")
    assert rows[("peer", "carol")] == ("never synced", "tessera peer sync carol")
    assert rows[("nats", "push TESSERA")] == ("caught up", "nats://127.0.0.1:4222 · under 10 events behind")
    assert rows[("nats", "pull TEAM")] == ("pulling", f"nats://127.0.0.1:4222 · pulled {clock(-5)}")
    assert len(rows) == 13

    # the same store read again gives the same rows: nothing in them ticks with the clock
    assert status_rows(conn) == rows
    only = status_rows(conn, "peers, nats")
    assert {what for what, _ in only} == {"peer", "nats"}


def test_an_overdue_job_with_no_runner_alive_says_how_to_run_it_and_a_stale_sync_is_quiet():
    conn = open_store()
    add_job(conn, "late", next_run_at=stamp(-3600))
    add_runner(conn, "gone", pid=os.getpid(), heartbeat=stamp(-3600))
    add_peer(conn, "dana", "d" * 64, synced=stamp(-3 * 86400))
    rows = status_rows(conn)
    assert rows[("job", "late")] == ("overdue", f"due {clock(-3600)}, no runner — tessera job daemon")
    assert rows[("runner", "—")] == ("no runner", "tessera job daemon, or tessera job run-due from cron")
    assert rows[("peer", "dana")][0] == "quiet"


def test_a_retry_waiting_for_its_backoff_says_when_it_runs():
    conn = open_store()
    add_job(conn, "flaky", next_run_at=stamp(600))
    add_run(conn, "flaky", "failed", rows=None, exit_code=1, finished_at=stamp(-10))
    with transaction(conn):
        conn.execute("INSERT INTO job_runs(job, trigger, attempt, state, created_at, not_before) "
                     "VALUES ('flaky', 'retry', 2, 'pending', ?, ?)", (stamp(-10), stamp(50)))
    assert status_rows(conn, "jobs")[("job", "flaky")] == ("pending", f"attempt 2 at {clock(50)} (backoff) · next {clock(600)}")


def test_times_are_shown_in_the_users_time_zone(monkeypatch):
    from zoneinfo import ZoneInfo

    monkeypatch.setenv("TZ", "Asia/Kathmandu")  # +05:45: no whole-hour zone shows the same minutes
    conn = open_store()
    due = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(hours=2)
    add_job(conn, "tz", next_run_at=format_time(due))
    there = due.astimezone(ZoneInfo("Asia/Kathmandu"))
    today = datetime.now(ZoneInfo("Asia/Kathmandu")).date()
    shown = there.strftime("%H:%M" if there.date() == today else "%b %d %H:%M")
    assert status_rows(conn, "jobs")[("job", "tz")] == ("never run", f"never run · next {shown}")
    assert shown[-5:] != due.strftime("%H:%M")


def test_an_empty_data_home_gets_a_hint_per_section():
    conn = open_store()
    assert status_rows(conn) == {
        ("job", "—"): ("no jobs", "tessera job add NAME --cron '*/5 * * * *' --query '…'"),
        ("alert", "—"): ("no alerts", "tessera job add … --alert 'rows > 0'"),
        ("peer", "—"): ("no peers", "tessera peer invite"),
        ("nats", "—"): ("not pushing", "tessera nats push --server URL"),
    }


def test_alerts_set_but_none_firing_and_a_failed_notify_shows():
    conn = open_store()
    quiet = add_job(conn, "quiet", alert="rows > 0", next_run_at=stamp(60))
    alerts.after_run(conn, quiet, add_run(conn, "quiet", "succeeded", rows=[]), [])
    assert status_rows(conn, "alerts") == {("alert", "—"): ("ok", "none firing of 1")}
    loud = add_job(conn, "loud", alert="rows > 0", notify="echo nope >&2; exit 1", next_run_at=stamp(60))
    alerts.after_run(conn, loud, add_run(conn, "loud", "succeeded", rows=[{"a": 1}], finished_at=stamp(-1)),
                     [{"a": 1}])
    state, detail = status_rows(conn, "alerts")[("alert", "loud")]
    assert state == "firing" and detail.endswith("notify failed: exit code 1: nope")


def test_a_word_that_is_not_a_section_is_a_one_line_error_naming_the_cell():
    conn = open_store()
    with pytest.raises(QueryError) as caught:
        status_rows(conn, "jobs disks")
    assert caught.value.one_line() == ("status cell nb/1: 'disks' is not a section of the status cell "
                                       "(name some of: jobs alerts peers nats (or leave the cell empty for all))")


def test_the_dashboard_shows_a_new_job_and_a_firing_alert_without_being_asked():
    make_notebook("system", [cell_md("status", "", row=1, type_="status", refresh="watch", title="System")])

    async def main():
        async with dashboard("system", (120, 20)) as (app, pilot):
            assert "no jobs" in screen_text(app) and app.session.panes["status"].status == "live"
            conn = open_store()  # another connection, as `tessera job add` and a runner would be
            job = add_job(conn, "nightly", alert="rows > 0", next_run_at=stamp(600))
            await until(pilot, app, lambda: "nightly" in screen_text(app), what="the new job on screen")
            alerts.after_run(conn, job, add_run(conn, "nightly", "succeeded", rows=[{"x": 1}]), [{"x": 1}])
            await until(pilot, app, lambda: "· rows > 0 ·" in screen_text(app), what="the alert firing on screen")
            firing = [r for r in app.session.panes["status"].result.rows if r["what"] == "alert"]
            assert [(r["name"], r["state"]) for r in firing] == [("nightly", "firing")]
            assert "no jobs" not in screen_text(app)
            conn.close()

    asyncio.run(main())


def test_the_transfer_figures_are_stored_by_the_migration_and_read_back():
    conn = open_store()
    assert {"last_sync_bytes", "last_sync_seconds"} <= {r[1] for r in conn.execute("PRAGMA table_info(peers)")}
    add_peer(conn, "erin", "e" * 64, synced=stamp(-1), transfer=(2048, 0.5))
    assert peer_list.transfers(conn) == {"e" * 64: (2048, 0.5)}
    assert json.dumps(status_rows(conn, "peers")[("peer", "erin")]) == json.dumps(
        ["reachable", f"synced {clock(-1)} · 4.0 KiB/s"])


def test_a_push_lag_reads_in_powers_of_ten():
    from tessera.plugins.cells.status_cell import lag_step

    assert [lag_step(n) for n in (0, 9, 10, 99, 100, 1234, 10**6)] == [None, None, 10, 10, 100, 1000, 10**6]


def test_a_live_status_pane_settles_though_its_own_records_are_events():
    """Each change of the pane is recorded as an event of this node, which a push cursor counts
    as lag: with the exact count in its rows, every record changed the rows again (seen in tmux:
    the lag went up by one a second, one event each)."""
    from tessera.core import events

    conn = open_store()
    events.append_many(conn, [("x.y", {"n": n}) for n in range(30)])
    with transaction(conn):
        conn.execute("INSERT INTO nats_push_cursors(server, stream, pattern, seq) VALUES ('nats://127.0.0.1:4222', "
                     "'TESSERA', '>', 0)")
    make_notebook("loop", [cell_md("status", "nats", row=1, type_="status", refresh="watch", title="System")])

    async def main():
        async with dashboard("loop", (120, 12), record_every=0.0) as (app, pilot):
            seen: set = set()
            def evaluated_again() -> bool:
                seen.add(app.session.panes["status"].refreshed)
                return len(seen) >= 4
            await until(pilot, app, evaluated_again, what="four evaluations of the status cell")
            recorded = events.read(conn, pattern="query.loop.status.changed")
            assert len(recorded) == 1, [e.data["changes"] for e in recorded]

    asyncio.run(main())


def test_status_is_a_bundled_cell_type_with_its_own_fence():
    from tessera.core.notebook.cells import cell_type, cell_type_names
    from tessera.core.notebook.markdown import export_markdown, import_markdown

    assert cell_type_names()[:6] == ["query", "markdown", "sql", "events", "search", "status"]
    nb = import_markdown("# S\n\n```status {id=st row=1 refresh=watch}\njobs alerts\n```\n", name="s")
    (cell,) = nb.cells()
    assert (cell["type"], cell["source"], cell["refresh"]) == ("status", "jobs alerts", "watch")
    assert type(cell_type("status")).__module__ == "tessera.plugins.cells.status_cell"
    assert "```status {id=st type=status" in export_markdown(nb)
