"""``tessera query --watch``: follow live queries and print row changes (JSONL), or redraw the
table in place on a terminal."""

from __future__ import annotations

import sys
from typing import Any

from tessera.cli.messages import print_message, print_warning
from tessera.cli.options import OutputSettings


def watch_queries(texts: list[str], sources: list[Any], out: OutputSettings, *, interval: float | None,
                  run_options: dict[str, Any]) -> None:
    """Run ``texts`` live over ``sources`` until interrupted.

    Args:
        texts: one or more queries (each JSONL change carries ``"query": i`` when several).
        sources: opened sources; watchable ones are served from the shared watch caches.
        out: output settings (table on a TTY redraws; anything else prints JSONL changes).
        interval: re-run every this many seconds as well (needed for sources that cannot watch).
        run_options: namespace / all_namespaces for api.run_query.
    """
    from tessera.core.errors import UsageError
    from tessera.core.watch.cache import shared_hub
    from tessera.core.watch.cached_source import can_watch
    from tessera.core.watch.live_query import LiveQuery

    hub = shared_hub()
    if interval is None and not all(can_watch(s) for s in sources):
        names = ", ".join(s.name for s in sources if not can_watch(s))
        raise UsageError(f"source {names} cannot be watched", hint="add --interval SECONDS to re-run it periodically")
    queries = [LiveQuery(t, sources, hub, **run_options) for t in texts]
    fmt = out.format()
    redraw = fmt == "table" and sys.stdout.isatty()
    try:
        if redraw:
            _redraw_loop(queries, hub, interval, out)
        else:
            _jsonl_loop(queries, hub, interval, out)
    finally:
        hub.close()


def _jsonl_loop(queries: list[Any], hub: Any, interval: float | None, out: OutputSettings) -> None:
    import orjson

    from tessera.core.watch.live_query import FaultNotices, follow

    many = len(queries) > 1
    write = sys.stdout.buffer.write
    notices = FaultNotices()
    errors: dict[int, str] = {}  # query index -> its error as printed
    for index, changes in follow(queries, hub=hub, interval=interval):
        for change in changes:
            if many:
                change = {"query": index, **change}
            write(orjson.dumps(change, option=orjson.OPT_NON_STR_KEYS) + b"\n")
        sys.stdout.flush()
        if out.quiet:
            continue
        faults = hub.faults()
        for level, text in notices.update(hub):
            (print_warning if level == "warning" else print_message)(text)
        _warn(queries[index], index if many else None, errors, {f.one_line() for f in faults.values()})


def _warn(query: Any, index: int | None, errors: dict[int, str], faults: set[str]) -> None:
    """Print the query's new error (unless it is a fault already told) and its warnings; say
    when a query that failed runs again."""
    key = index or 0
    error = query.error.one_line() if query.error is not None else None
    if error is not None and error not in faults and errors.get(key) != error:
        print_warning(error)
        errors[key] = error
    elif error is None and key in errors:
        del errors[key]
        label = f"query {index}" if index is not None else "the query"
        print_message(f"{label} runs again")
    for warning in query.take_warnings():
        print_warning(warning)


def _redraw_loop(queries: list[Any], hub: Any, interval: float | None, out: OutputSettings) -> None:
    import dataclasses
    import io
    import time

    from tessera.core.render.table import write_table
    from tessera.core.watch.live_query import FaultNotices, follow

    notices = FaultNotices()
    reconnected = ""
    for _index, _changes in follow(queries, hub=hub, interval=interval):
        if any(level == "info" for level, _ in notices.update(hub)):
            reconnected = f"  ·  reconnected {time.strftime('%H:%M:%S')}"
        buffer = io.StringIO()
        for q in queries:
            rows = len(q.result.rows) if q.result is not None else 0
            notice = q.fault_notice()
            if notice is not None:
                status = notice
            elif q.error:
                status = f"error: {q.error.one_line()}"
            else:
                status = "live" + reconnected
            buffer.write(f"{q.text.strip().splitlines()[0][:60]}  ·  {rows} rows  ·  {status}  ·  "
                         f"{time.strftime('%H:%M:%S')}  ·  Ctrl-C to stop\n\n")
            if q.result is not None:
                result = q.result
                if out.limit is not None:
                    result = dataclasses.replace(result, rows=result.rows[: out.limit])
                write_table(result, buffer, color=out.use_color(), width=_width())
            buffer.write("\n")
        sys.stdout.write("\x1b[H\x1b[2J" + buffer.getvalue())
        sys.stdout.flush()


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((120, 40)).columns
