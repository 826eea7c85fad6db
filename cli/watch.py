"""``tessera query --watch``: follow live queries and print row changes (JSONL), or redraw the
table in place on a terminal."""

from __future__ import annotations

import sys
from typing import Any

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
    from tessera.core.watch.live import LiveQuery

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

    from tessera.core.watch.live import follow

    many = len(queries) > 1
    write = sys.stdout.buffer.write
    for index, changes in follow(queries, hub=hub, interval=interval):
        for change in changes:
            if many:
                change = {"query": index, **change}
            write(orjson.dumps(change, option=orjson.OPT_NON_STR_KEYS) + b"\n")
        sys.stdout.flush()
        _warn(queries[index], out)


def _warn(query: Any, out: OutputSettings) -> None:
    if out.quiet:
        return
    from tessera.cli.messages import print_warning

    if query.error is not None:
        print_warning(query.error.one_line())
    for warning in query.take_warnings():
        print_warning(warning)


def _redraw_loop(queries: list[Any], hub: Any, interval: float | None, out: OutputSettings) -> None:
    import dataclasses
    import io
    import time

    from tessera.core.render.table import write_table
    from tessera.core.watch.live import follow

    for _index, _changes in follow(queries, hub=hub, interval=interval):
        buffer = io.StringIO()
        for q in queries:
            rows = len(q.result.rows) if q.result is not None else 0
            status = f"error: {q.error.one_line()}" if q.error else "live"
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
