"""Jobs: named queries, cells and tessera commands on a cron schedule, their runs, retries,
timeouts and alerts; `job run-due` for the system cron and `job daemon` (DESIGN §12, docs/jobs.md).
The tables are core/jobs_schema.py's."""
