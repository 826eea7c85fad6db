"""``tessera record``: write a source's watch stream to a recording (see core/recording_file.py).

One watch cache per kind feeds one writer: the initial lists become ADDED events stamped with the
recording's start, then every change is written with its arrival time, until told to stop.
"""

from __future__ import annotations

import sys
import threading
from datetime import datetime, timezone
from typing import Any, Callable

from tessera.core.errors import TesseraError, UsageError, printable
from tessera.core.sources.protocol import ClosableSource, WatchableSource

STOP_POLL_S = 0.2  # how often the main thread looks at ``stop`` (and so runs a pending signal handler)

# Recorded by default: every watchable kind except Secrets, whose data a recording file would
# leak (name Secret explicitly to record them anyway).
_SKIPPED_BY_DEFAULT = {("", "Secret")}


def pick_kinds(source: Any, names: list[str]) -> list[Any]:
    """The kinds to record: the named ones, or every watchable kind but Secrets.

    Raises:
        UnknownKind (with close names) for a name the source does not offer.
    """
    from tessera.core.kinds import KindRegistry

    registry = KindRegistry(source.kinds())
    if names:
        return [registry.resolve(n) for n in names]
    return [k for k in source.kinds() if "watch" in k.verbs and (k.group, k.kind) not in _SKIPPED_BY_DEFAULT]


def record(source: Any, kinds: list[Any], writer: Any, stop: threading.Event, *, namespace: str | None = None,
           warn: Callable[[str], None] = lambda m: print(f"tessera: warning: {printable(m)}", file=sys.stderr),
           ready_timeout: float = 30.0) -> dict[str, int]:
    """Record until ``stop`` is set.

    Args:
        source: a watchable source.
        kinds: KindInfos to record.
        writer: a core.recording_file.RecordingWriter.
        stop: set it (from a signal handler, a timer...) to finish.
        namespace: one namespace, or None for all.
        warn: called with one line per kind that cannot be recorded (e.g. forbidden).
        ready_timeout: seconds to wait for each kind's first list.
    Returns:
        {"kinds": kinds recorded, "events": events written}.
    Raises:
        the first kind's error when no kind at all can be listed.
    """
    from tessera.core.watch.cache import WatchCache

    if not isinstance(source, WatchableSource):
        raise UsageError(f"source '{source.name}' cannot be watched, so it cannot be recorded")
    lock = threading.Lock()
    counts = {"kinds": 0, "events": 0}

    def writer_for(cache: WatchCache) -> Callable[[str, dict], None]:
        def write(etype: str, obj: dict) -> None:
            # the first list (before the cache is ready) is the state at the start
            ts = writer.started if not cache.ready.is_set() else datetime.now(timezone.utc)
            with lock:
                writer.write(etype, obj, ts=ts)
                counts["events"] += 1

        return write

    caches = []
    for kind in kinds:
        cache = WatchCache(source, kind, namespace if kind.namespaced else None)
        cache.subscribe_events(writer_for(cache))
        caches.append(cache)
    errors: list[TesseraError] = []
    try:
        for cache in caches:
            cache.start()
        for cache in caches:
            try:
                cache.wait_ready(ready_timeout)
                counts["kinds"] += 1
            except TesseraError as exc:
                cache.stop()
                errors.append(exc)
                warn(f"not recording {cache.kind.kind}: {exc.one_line()}")
        if counts["kinds"] == 0 and errors:
            raise errors[0]
        while not stop.wait(STOP_POLL_S):  # timed: a signal taken by a watch thread runs its handler here
            pass
    finally:
        for cache in caches:
            cache.stop()
        if isinstance(source, ClosableSource):
            source.close()
    return counts

