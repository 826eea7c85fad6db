"""``tessera job ...``: named queries, cells and tessera commands on a cron schedule (core/jobs/,
docs/jobs.md): add, list, show, rm, pause, resume, run, cancel, logs, history, and the two
runners, ``run-due`` (for the system cron) and ``daemon``."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from tessera.cli.messages import open_store, print_message, print_warning
from tessera.cli.options import AllNamespaces, Namespace, OutputSettings, Sources, emit, output_options

job_app = typer.Typer(name="job", help="Jobs: queries, cells and tessera commands on a cron schedule, and their runs.",
                      no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                      context_settings={"help_option_names": ["-h", "--help"]})

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The job's name.", show_default=False)]
RunArg = Annotated[int, typer.Argument(metavar="RUN", min=1, max=2**63 - 1, help="A run id (tessera job history NAME lists them).",
                                       show_default=False)]
Workers = Annotated[int, typer.Option("--workers", metavar="N", min=1, max=64, help="Runs at the same time.")]


def _duration(text: str | None, flag: str) -> float | None:
    """Seconds, or None for no value; 0 (no limit) is None too."""
    if text is None:
        return None
    from tessera.core.errors import UsageError
    from tessera.core.times import parse_kube_duration

    try:
        return parse_kube_duration(text) or None
    except UsageError as exc:
        raise UsageError(f"{flag}: {exc.message}", hint=exc.hint) from None


def _data_paths():
    from tessera.core.config import data_home
    from tessera.core.store.db import db_path

    return data_home(), db_path()


@job_app.command("add")
def add(
    name: NameArg,
    cron: Annotated[str, typer.Option("--cron", metavar="EXPR", show_default=False,
                                      help="When it runs: a cron expression (minute hour day month weekday), e.g. '*/5 * * * *', or @hourly, @daily...")],
    query: Annotated[Optional[str], typer.Option("--query", metavar="QUERY", show_default=False, help="Run this query.")] = None,
    source: Sources = None,
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
    cell: Annotated[Optional[str], typer.Option("--cell", metavar="NOTEBOOK/N", show_default=False, help="Run this notebook cell.")] = None,
    timeout: Annotated[Optional[str], typer.Option("--timeout", metavar="DURATION", show_default=False,
                                                   help="Kill a run (its whole process group) after this long, e.g. 60s, 5m (default: no limit).")] = None,
    retries: Annotated[int, typer.Option("--retries", metavar="N", help="Run a failed or timed-out run again up to N times.")] = 0,
    backoff: Annotated[str, typer.Option("--backoff", metavar="DURATION", help="Wait before the first retry; doubled for each next one.")] = "30s",
    alert: Annotated[Optional[str], typer.Option("--alert", metavar="COND", show_default=False,
                                                 help="An alert on the run's rows, e.g. 'rows > 0': fires once when it becomes true, resolves once.")] = None,
    notify: Annotated[Optional[str], typer.Option("--notify", metavar="CMD", show_default=False,
                                                  help="A command run with the alert as JSON on stdin when it fires or resolves.")] = None,
    tz: Annotated[Optional[str], typer.Option("--tz", metavar="ZONE", show_default=False,
                                              help="The time zone the schedule is read in (default: timezone in config.toml, else TZ, else the system's).")] = None,
    command: Annotated[Optional[list[str]], typer.Argument(metavar="[-- tessera ARGS...]", show_default=False,
                                                           help="Run this tessera command.")] = None,
) -> None:
    """Add a job: a query (--query, with -s/-n/-A), a cell (--cell NB/N) or a tessera command
    (after --), run on the --cron schedule in the job's time zone. Everything is checked before
    the job is stored: the name, the schedule, the time zone, the durations, the query's syntax,
    that the cell exists.

    Example: tessera job add crashloops --cron '*/5 * * * *' --query 'MATCH (p:Pod) WHERE p.status.phase = "Failed" RETURN p.metadata.name' -s demo
    Example: tessera job add verify-log --cron '0 3 * * *' --timeout 10m -- tessera events verify
    """
    from tessera.cli.main import COMMAND_MODULES
    from tessera.core.errors import UsageError
    from tessera.core.jobs import job_definitions
    from tessera.core.jobs.cron_schedule import user_timezone

    job_definitions.check_name(name)
    actions = [what for what, given in (("--query", query is not None), ("--cell", cell is not None),
                                        ("-- tessera ARGS", bool(command))) if given]
    if len(actions) != 1:
        raise UsageError(f"a job runs one thing; {'none was given' if not actions else 'got ' + ' and '.join(actions)}",
                         hint="give one of --query QUERY, --cell NOTEBOOK/N, or -- tessera ARGS...")
    if (source or namespace or all_namespaces) and query is None:
        raise UsageError("-s, -n and -A go with --query", hint="a cell has its own sources; a command takes its own flags")
    if notify is not None and alert is None:
        raise UsageError("--notify goes with --alert", hint="give the alert condition it is run for, e.g. --alert 'rows > 0'")
    if namespace and all_namespaces:
        raise UsageError("-n and -A exclude each other", hint="give -n NS for one namespace or -A for all")
    if "-" in (source or []):
        raise UsageError("-s -: a job has no stdin to read", hint="save the input to a file and give -s FILE")
    if query is not None:
        action, spec = "query", {"query": query, "sources": list(source or []), "namespace": namespace,
                                 "all_namespaces": all_namespaces}
    elif cell is not None:
        from tessera.core.notebook import repository

        try:
            address = repository.parse_address(cell, cell=True)
        except UsageError as exc:
            raise UsageError(f"--cell: {exc.message}", hint=exc.hint or "write NOTEBOOK/N, e.g. ops/2") from None
        action, spec = "cell", {"notebook": address.name, "cell": address.cell}
    else:
        action, spec = "command", {"argv": job_definitions.check_command(list(command), COMMAND_MODULES)}
    import os

    spec["cwd"] = os.getcwd()  # relative paths (-s ./manifests, a command's files) mean what they meant here
    definition = job_definitions.JobDefinition(
        name=name, schedule=cron, timezone=tz if tz is not None else user_timezone(), action=action, spec=spec,
        timeout_s=_duration(timeout, "--timeout"), retries=retries, backoff_s=_duration(backoff, "--backoff") or 0.0,
        alert=alert, notify=notify)
    job = job_definitions.add(open_store(), definition)
    print_message(f"added job {job.name}: {job.action}, '{job.schedule}' in {job.timezone}; next run {_local(job.next_run_at, job.timezone)}")


def _local(stamp: str | None, tz: str) -> str:
    """A stored UTC time as the job's wall-clock time with its offset (``-`` for none)."""
    if stamp is None:
        return "-"
    from tessera.core.jobs.cron_schedule import zone
    from tessera.core.times import parse_time

    return parse_time(stamp).astimezone(zone(tz)).isoformat(timespec="minutes")


def _job_row(conn: Any, job: Any) -> dict:
    from tessera.core.jobs import job_records

    last = job_records.last_finished_run(conn, job.name)
    active = job_records.runs(conn, job.name, states=job_records.ACTIVE, limit=1)
    return {"name": job.name, "schedule": job.schedule, "tz": job.timezone, "action": job.action,
            "next_run": job.next_run_at, "last_state": (active or [last])[0].state if (active or last) else None,
            "paused": job.paused}


@job_app.command("list")
@output_options
def list_(*, out: OutputSettings) -> None:
    """List the jobs: name, schedule, time zone, action, next run (UTC), last state, paused.

    Example: tessera job list -o json
    """
    from tessera.core.jobs import job_records
    from tessera.core.result import Result

    conn = open_store()
    rows = [_job_row(conn, job) for job in job_records.list_jobs(conn)]
    emit(Result(columns=["name", "schedule", "tz", "action", "next_run", "last_state", "paused"], rows=rows), out)


@job_app.command("show")
@output_options
def show(name: NameArg, *, out: OutputSettings) -> None:
    """Show one job: its definition, next run, last run and alert state.

    Example: tessera job show crashloops -o json
    """
    from dataclasses import asdict

    from tessera.core.jobs import job_definitions, job_records
    from tessera.core.result import Result

    conn = open_store()
    job = job_definitions.existing(conn, name)
    last = job_records.last_finished_run(conn, name)
    alert = next((a for a in job_records.alert_states(conn) if a.job == name), None)
    data = {**asdict(job), "next_run_local": _local(job.next_run_at, job.timezone),
            "last_run": None if last is None else {k: getattr(last, k) for k in
                                                   ("id", "state", "trigger", "attempt", "finished_at", "exit_code", "duration_s", "rows")},
            "alert_state": None if alert is None else asdict(alert)}
    if out.format() == "table":
        import json

        rows = [{"field": key, "value": value if isinstance(value, str) or value is None else json.dumps(value, default=str)}
                for key, value in data.items()]
        emit(Result(columns=["field", "value"], rows=rows), out)
    else:
        emit(Result(columns=list(data), rows=[data]), out)


@job_app.command("rm")
def rm(name: NameArg) -> None:
    """Remove a job and its run history (refused while one of its runs is queued or running).

    Example: tessera job rm crashloops
    """
    from tessera.core.jobs import job_definitions

    job_definitions.remove(open_store(), name)
    print_message(f"removed job {name}")


@job_app.command("pause")
def pause(name: NameArg) -> None:
    """Pause a job: no scheduled run and no retry starts until it is resumed.

    Example: tessera job pause crashloops
    """
    from tessera.core.jobs import job_definitions

    job_definitions.set_paused(open_store(), name, True)
    print_message(f"paused job {name}")


@job_app.command("resume")
def resume(name: NameArg) -> None:
    """Resume a paused job; it next runs at its next due time from now (times missed while
    paused are not caught up).

    Example: tessera job resume crashloops
    """
    from tessera.core.jobs import job_definitions

    job = job_definitions.set_paused(open_store(), name, False)
    print_message(f"resumed job {name}; next run {_local(job.next_run_at, job.timezone)}")


class _TerminalEcho:
    """Writes a child's bytes to one of our streams; on a terminal with control characters
    escaped (line by line, so newlines stay), decoding UTF-8 across chunk boundaries."""

    def __init__(self, stream: Any):
        import codecs

        from tessera.core.render import is_terminal

        self.stream = stream
        self.terminal = is_terminal(stream)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __call__(self, chunk: bytes) -> None:
        if self.terminal:
            self.stream.write(_printable_lines(self.decoder.decode(chunk)))
            self.stream.flush()
        else:
            self.stream.buffer.write(chunk)
            self.stream.buffer.flush()


def _printable_lines(text: str) -> str:
    from tessera.core.errors import printable

    return "\n".join(printable(line) for line in text.split("\n"))


def _warnings_only(level: str, event: str, **fields: Any) -> None:
    """The foreground run's log: what went wrong besides the run (its alert) as one warning line."""
    if level != "info" and event != "run.finished":  # how the run ended is the exit code's to say
        print_warning(f"{event}: " + ", ".join(f"{key}={value}" for key, value in fields.items()))


EXIT_OF_STATE = {"succeeded": 0, "timed_out": 4, "cancelled": 130}


@job_app.command("run")
def run(
    name: NameArg,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Queue the run for a runner (job daemon or run-due) and return at once.")] = False,
) -> None:
    """Run a job now, in the foreground: its output is printed as it comes and the exit code
    says how it ended (0 succeeded, the job's own code when it failed, 4 timed out, 130
    cancelled or Ctrl-C; SIGTERM and SIGHUP cancel it too, exit 143 and 129). --detach queues
    it for a runner instead and prints the run id.

    Example: tessera job run crashloops
    """
    from tessera.core.jobs import job_definitions, run_states
    from tessera.core.jobs.run_execution import execute
    from tessera.core.jobs.runner_registry import Registration
    from tessera.core.stop_signals import StopSignals

    conn = open_store()
    job = job_definitions.existing(conn, name)
    if detach:
        queued = run_states.create(conn, job, trigger="manual")
        print(queued.id)
        print_message(f"queued run {queued.id} of job {name}; a runner (tessera job daemon or job run-due) will run it")
        return
    _, db = _data_paths()
    with StopSignals() as stop, Registration(db, "run-due") as me:
        queued = run_states.create(conn, job, trigger="manual")
        running = run_states.claim(conn, me.id, queued.id)
        ended = execute(conn, running, me.id, echo_out=_TerminalEcho(sys.stdout), echo_err=_TerminalEcho(sys.stderr),
                        log=_warnings_only, stop=stop.is_set)
    outcome = ended.outcome
    if outcome.problem is not None:
        print_message(f"run {running.id} failed: {outcome.problem}")
    if ended.retry is not None:
        print_message(f"run {running.id} {outcome.state}; retry queued as run {ended.retry.id} (not before {ended.retry.not_before})")
    if stop.is_set():
        raise typer.Exit(stop.exit_code)
    if outcome.state == "failed":
        raise typer.Exit(outcome.exit_code if outcome.exit_code else 1)
    if outcome.state != "succeeded":
        print_message(f"run {running.id} {outcome.state.replace('_', ' ')}")
    raise typer.Exit(EXIT_OF_STATE[outcome.state])


@job_app.command("cancel")
def cancel(run_id: RunArg) -> None:
    """Cancel a run: a pending or queued one at once; a running one has its process group killed
    by its runner (waits up to 30 s for it to say so).

    Example: tessera job cancel 42
    """
    import time

    from tessera.core.errors import SourceTimeout
    from tessera.core.jobs import job_records, run_states

    from tessera.core.jobs.runner_registry import cancel_orphaned

    conn = open_store()
    run = run_states.cancel(conn, run_id)
    if run.state == "running":
        run = cancel_orphaned(conn, run) or run
    deadline = time.monotonic() + 30
    while not run.finished and time.monotonic() < deadline:
        time.sleep(0.1)
        run = job_records.get_run(conn, run_id)
    if not run.finished:
        raise SourceTimeout(f"run {run_id} was asked to stop but its runner has not stopped it in 30 s",
                            hint="check the runner with tessera doctor; a dead runner's runs are ended by the next runner")
    print_message(f"run {run_id} {'cancelled' if run.state == 'cancelled' else 'ended meanwhile: ' + run.state}")


@job_app.command("logs")
def logs(
    run_id: RunArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing what the run writes until it has ended (Ctrl-C stops following, not the run).")] = False,
) -> None:
    """Print a run's stdout (on stdout) and stderr (on stderr), each kept up to 1 MiB (a running
    run's so far); on a terminal, control characters are shown escaped. -f follows a run that
    is still going on (or waits for one that is queued) until it has ended.

    Example: tessera job logs 42 -f
    """
    from tessera.core.errors import UsageError
    from tessera.core.jobs import job_records
    from tessera.core.render import is_terminal

    conn = open_store()
    run = job_records.get_run(conn, run_id)
    if run is None:
        raise UsageError(f"there is no run {run_id}", hint="tessera job history NAME lists a job's runs")

    def write(text: str, stream: Any) -> None:
        if text:
            stream.write(_printable_lines(text) if is_terminal(stream) else text)
            stream.flush()

    if not follow:
        if not run.finished:
            print_message(f"run {run_id} is {run.state}: this is its output so far (stored every second while it runs; -f follows it)")
        write(run.output, sys.stdout)
        write(run.error, sys.stderr)
        return
    from tessera.core.jobs.run_logs import follow as follow_run

    # Ctrl-C stops only this reader (exit 130): the run is not ours to cancel
    def orphaned(why: str) -> None:
        print_warning(f"run {run_id}: {why}; still following: the next runner (job daemon or job run-due) ends it")

    for out, err in follow_run(conn, run_id, on_orphaned=orphaned,
                               on_waiting=lambda r: print_message(f"run {run_id} is {r.state}: waiting for a runner to start it")):
        write(out, sys.stdout)
        write(err, sys.stderr)
    ended = job_records.get_run(conn, run_id)
    if ended is not None and is_terminal(sys.stderr):
        print_message(f"run {run_id} {ended.state.replace('_', ' ')}")


@job_app.command("history")
@output_options
def history(name: NameArg, *, out: OutputSettings) -> None:
    """A job's runs, newest first: id, state, trigger, attempt, due time, start, end, duration,
    exit code, rows.

    Example: tessera job history crashloops --limit 10 -o json
    """
    from tessera.core.jobs import job_definitions, job_records
    from tessera.core.result import Result

    conn = open_store()
    job_definitions.existing(conn, name)
    columns = ["run", "state", "trigger", "attempt", "scheduled_for", "started_at", "finished_at", "duration_s",
               "exit_code", "rows"]
    rows = [{"run": r.id, **{c: getattr(r, c) for c in columns[1:]}}
            for r in job_records.runs(conn, name, limit=out.limit)]
    emit(Result(columns=columns, rows=rows), out)


@job_app.command("run-due")
def run_due(
    workers: Workers = 4,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also log each run started and ended (default: only failures).")] = False,
) -> None:
    """Run every job due now, and the queued runs and retries whose time has come, then exit:
    for the system cron (`* * * * * tessera job run-due`). A due run happens once however many
    run-due (or daemons) start at the same moment. Exit 0 when every run succeeded, else 1;
    Ctrl-C, SIGTERM or SIGHUP cancels the running runs, then exits 130, 143 or 129.

    Example: tessera job run-due --workers 2
    """
    from tessera.core.daemon_log import DaemonLog
    from tessera.core.jobs.run_due import run_due as run_everything_due
    from tessera.core.stop_signals import StopSignals

    data_home, db = _data_paths()
    log = DaemonLog()

    def quiet_log(level: str, event: str, **fields: Any) -> None:
        if verbose or level != "info":
            log(level, event, **fields)

    with StopSignals() as stop:
        done = run_everything_due(data_home, db, workers=workers, log=quiet_log, stop=stop.is_set)
    if stop.is_set():
        raise typer.Exit(stop.exit_code)
    if any(d.outcome.state != "succeeded" for d in done):
        raise typer.Exit(1)


@job_app.command("daemon")
def daemon(
    workers: Workers = 4,
    grace: Annotated[str, typer.Option("--grace", metavar="DURATION", help="On SIGTERM or Ctrl-C, how long running jobs may go on before they are cancelled.")] = "30s",
) -> None:
    """Run jobs as they come due, until SIGTERM (exit 0) or Ctrl-C (exit 130): then no new run
    starts and the running ones get up to --grace before their process groups are killed.
    One daemon per data home (a second exits 3). Logs JSON lines on stderr (readable on a terminal).

    Example: tessera job daemon --workers 2 --grace 1m
    """
    from tessera.core.daemon_log import DaemonLog
    from tessera.core.jobs.job_daemon import daemon as run_daemon

    seconds = _duration(grace, "--grace") or 0.0
    data_home, db = _data_paths()
    raise typer.Exit(run_daemon(data_home, db, workers=workers, grace=seconds, log=DaemonLog()))


def register(app: typer.Typer) -> None:
    """Add the job command group to ``app``."""
    app.add_typer(job_app, name="job")
