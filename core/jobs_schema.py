"""The job tables (the store's ``jobs`` component of migrations, see core/store/migrations.py):
named jobs on a cron schedule, their runs, their alerts, and the runners that run them (DESIGN
§12, docs/jobs.md). Kept out of core/jobs/ so that opening the store imports nothing of croniter
or the runner. Reads for the other parts (doctor, the status cell) are in core/jobs/job_records.py.

- ``jobs``: one row per job. ``name`` is one subject token (events ``job.<name>.<state>``);
  ``schedule`` a cron expression read in ``timezone`` (an IANA name); ``action`` what it runs and
  ``spec`` (JSON) how: ``{"query", "sources", "namespace", "all_namespaces"}`` for a query,
  ``{"notebook", "cell"}`` for a cell, ``{"argv"}`` for a tessera command, each with ``cwd`` (the
  directory `job add` ran in: relative paths mean what they meant there). ``next_run_at`` (UTC,
  RFC 3339) is the next due time, kept by the scheduler; a paused job keeps it but is not run.
  ``alert`` is the alert condition's text (NULL: none), ``notify`` the command run with the alert
  as JSON on stdin.
- ``job_runs``: one row per run. ``scheduled_for`` is the due time it is for (NULL for ``job run
  NAME``); UNIQUE (job, scheduled_for) is what makes a due run happen once however many runners
  race for it. ``state`` goes pending -> queued -> running -> succeeded | failed | timed_out |
  cancelled; ``runner`` names the runner holding it (job_runners.id) and ``pid`` its process group.
  ``output`` / ``error`` hold its stdout / stderr (capped, docs/jobs.md), ``rows`` the rows a
  query or cell returned, ``result`` (JSON) the rows themselves for the alert (capped).
- ``job_alerts``: each job's alert state: ``ok`` or ``firing`` since when, and the run that last
  changed it, so an alert fires once when its condition becomes true and resolves once.
- ``job_runners``: live runners (``daemon`` or ``run-due``): pid, host, heartbeat. A row whose
  heartbeat stopped is a runner that died; the next runner fails (or retries) its runs.
"""

from tessera.core.store.migrations import Component

MIGRATIONS = Component("jobs", (
    # 1: jobs, runs, alerts, runners (issue 17)
    """
    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        schedule TEXT NOT NULL,
        timezone TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('query', 'cell', 'command')),
        spec TEXT NOT NULL,
        timeout_s REAL CHECK (timeout_s IS NULL OR timeout_s > 0),
        retries INTEGER NOT NULL DEFAULT 0 CHECK (retries >= 0),
        backoff_s REAL NOT NULL DEFAULT 30 CHECK (backoff_s >= 0),
        alert TEXT,
        notify TEXT,
        paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
        created_at TEXT NOT NULL,
        next_run_at TEXT
    );
    CREATE TABLE job_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,
        scheduled_for TEXT,
        trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual', 'retry')),
        attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
        state TEXT NOT NULL CHECK (state IN ('pending', 'queued', 'running', 'succeeded', 'failed',
                                             'timed_out', 'cancelled')),
        runner TEXT,
        pid INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
        created_at TEXT NOT NULL,
        queued_at TEXT,
        started_at TEXT,
        finished_at TEXT,
        not_before TEXT,
        exit_code INTEGER,
        duration_s REAL,
        rows INTEGER,
        result TEXT,
        output TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        UNIQUE (job, scheduled_for)
    );
    CREATE INDEX job_runs_job ON job_runs(job, id);
    CREATE INDEX job_runs_state ON job_runs(state);
    CREATE TABLE job_alerts (
        job TEXT PRIMARY KEY REFERENCES jobs(name) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('ok', 'firing')),
        since TEXT NOT NULL,
        run_id INTEGER,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE job_runners (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('daemon', 'run-due')),
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL
    )
    """,
))
