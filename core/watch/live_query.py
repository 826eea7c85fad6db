"""Queries kept current: re-run over the watch caches on every change (or on an interval for
sources that cannot watch) and report row-level changes.

A row's identity is the set of resources it binds (or its grouping values for aggregates, see
core/query/project.py row_key), so a pod whose phase changes is one ``changed`` row, not a
removal and an addition.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

from tessera.core.errors import TesseraError
from tessera.core.times import now


def keyed_rows(result: Any) -> dict[str, dict]:
    """Rows by identity; repeated identities (possible with SKIP/LIMIT ties) get ``#n`` suffixes."""
    out: dict[str, dict] = {}
    keys = result.keys if len(result.keys) == len(result.rows) else [None] * len(result.rows)
    for i, (key, row) in enumerate(zip(keys, result.rows, strict=True)):
        key = key if key is not None else str(i)
        unique, n = key, 1
        while unique in out:
            n += 1
            unique = f"{key}#{n}"
        out[unique] = row
    return out


def diff_rows(old: dict[str, dict], new: dict[str, dict], ts: str) -> list[dict]:
    """The changes from ``old`` to ``new`` (both from keyed_rows).

    Returns:
        ``{"op": "added"|"removed"|"changed", "key", "row", "ts"}`` dicts: removals first, then
        additions and changes in ``new``'s order (a removed row carries its last value).
    """
    changes = [{"op": "removed", "key": k, "row": row, "ts": ts} for k, row in old.items() if k not in new]
    for key, row in new.items():
        before = old.get(key)
        if before is None:
            changes.append({"op": "added", "key": key, "row": row, "ts": ts})
        elif before is not row and before != row:  # an unchanged row is often the same dict
            changes.append({"op": "changed", "key": key, "row": row, "ts": ts})
    return changes


class LiveQuery:
    """One query over live sources, re-evaluated when told to.

    Args:
        text: the query.
        sources: sources to run over; with a hub, watchable ones are read through its caches.
        hub: the CacheHub to share (None: query the sources directly each time).
        subgraph: keep the matched subgraph in ``result`` (for the tree and graph views): always
            evaluate in full, since incremental evaluation tracks rows only.
        run_options: namespace / all_namespaces passed to core.query.run.run_query.
    """

    def __init__(self, text: str, sources: list[Any], hub: Any = None, *, subgraph: bool = False, **run_options: Any):
        from tessera.core.query.run import engine_for, parse_query
        from tessera.core.watch.cached_source import CachedSource, can_watch

        self.text = text
        self.query = parse_query(text)
        self.hub = hub
        # Own wrappers (over shared caches) record which kinds this query reads.
        self.sources = [CachedSource(s, hub) if hub is not None and can_watch(s) else s for s in sources]
        self.incremental = None
        if (not subgraph and len(self.sources) == 1 and not self.query.contexts
                and isinstance(self.sources[0], CachedSource)):
            from tessera.core.watch.incremental import IncrementalQuery, eligible

            if eligible(self.query):
                source = self.sources[0]
                from tessera.core.rules import rules_in_force

                rules = rules_in_force()  # read once, not on every incremental match
                self.incremental = IncrementalQuery(
                    self.query,
                    lambda: engine_for(source, namespace=run_options.get("namespace"),
                                       all_namespaces=run_options.get("all_namespaces", False), rules=rules),
                    source.current,
                )
        self.options = run_options
        self.rows: dict[str, dict] = {}
        self._result: Any = None
        self.error: TesseraError | None = None
        self.runs = 0

    @property
    def result(self) -> Any:
        """The current Result (None before the first successful run); built on demand after
        incremental updates, which only report changes."""
        if self._result is None and self.incremental is not None and self.runs:
            self._result = self.incremental.result()
        return self._result

    def take_warnings(self) -> list[str]:
        """Warnings of the last full evaluation not yet taken (each is reported once). A context
        that did not answer is left out while it is a ``fault``: that is reported as such."""
        if self._result is None:
            return []
        out = list(self._result.warnings)
        self._result.warnings.clear()
        if self.hub is not None:
            known = {f.one_line() for f in self.hub.faults().values()}
            out = [w for w in out if w not in known]
        return out

    @property
    def source_names(self) -> list[str]:
        """The names of the sources the query reads (its ``IN`` contexts, else all given)."""
        return list(self.query.contexts) or [s.name for s in self.sources]

    @property
    def fault(self) -> TesseraError | None:
        """Why a watched source this query reads cannot be reached now (its rows are as of the
        last time it could), or None. Set and cleared by the hub's caches as they fail and
        reconnect; ``follow`` yields when it changes."""
        faulty = self._faulty_source()
        return self.hub.fault(faulty) if faulty is not None else None

    def fault_notice(self) -> str | None:
        """``fault`` as front ends show it (fault_notice's wording), or None."""
        faulty = self._faulty_source()
        fault = self.hub.fault(faulty) if faulty is not None else None
        return fault_notice(fault, had_rows=self.hub.answered(faulty)) if fault is not None else None

    def _faulty_source(self) -> str | None:
        if self.hub is None:
            return None
        return next((name for name in self.source_names if self.hub.fault(name) is not None), None)

    def reads(self, keys: set[tuple[str, str, str]]) -> bool:
        """True when the query read any of these (source, group, kind) caches last time (or
        cannot tell: it has not run successfully, or reads a source that is not cached)."""
        touched: set = set()
        for s in self.sources:
            t = getattr(s, "touched", None)
            if t is None:
                return True
            touched |= t
        return self.runs == 0 or self.error is not None or bool(touched & keys)

    def refresh(self, changed: dict[str, set] | None = None) -> list[dict]:
        """Run the query again and return the row changes since the last run.

        Args:
            changed: source name -> identities (core.watch.incremental.oid) of the resources that
                changed since the last run; lets an incremental query update only what they touch.
                None: evaluate in full.

        A failing run keeps the previous rows and records ``error`` (a live view shows it and
        carries on); the error is raised only if the very first run fails.
        """
        from tessera.core.query.run import run_query

        try:
            if self.incremental is not None and changed is not None and self.runs and self.error is None:
                changes = self.incremental.apply(changed.get(self.sources[0].name, set()), now())
                self._result = None
                self.runs += 1
                self.rows = self.incremental.rows_by_key
                return changes
            if self.incremental is None:
                result = run_query(self.query, self.sources, **self.options)
            else:
                result = self.incremental.full()
        except TesseraError as exc:
            self.error = exc
            if self.runs == 0:
                raise
            return []
        self.error = None
        self.runs += 1
        self._result = result
        new = keyed_rows(result)
        changes = diff_rows(self.rows, new, now())
        self.rows = new
        return changes


class ChangeCollector:
    """Gathers what changed in a hub's caches between two rounds of evaluation.

    ``wait(timeout)`` blocks until a change (or the timeout), lets ``debounce`` seconds of
    further changes accumulate, and returns (woke, changed (source, group, kind) keys, changed
    resource identities by source name). Events from a cache's first list are ignored: the
    first full run of each query reads that list whole.
    """

    def __init__(self, hub: Any = None, debounce: float = 0.01):
        self.wake = threading.Event()
        self.debounce = debounce
        self._keys: set[tuple[str, str, str]] = set()
        self._oids: dict[str, set] = {}
        self._health: set[str] = set()
        self._lock = threading.Lock()
        if hub is not None:
            hub.subscribe_events(self._changed)
            hub.subscribe_health(self._health_changed)

    def _health_changed(self, source_name: str, _fault: Any) -> None:
        with self._lock:
            self._health.add(source_name)
        self.wake.set()

    def take_health(self) -> set[str]:
        """The sources whose fault changed (lost, changed, recovered) since the last call."""
        with self._lock:
            out, self._health = self._health, set()
        return out

    def _changed(self, cache: Any, _etype: str, obj: dict) -> None:
        from tessera.core.watch.incremental import oid

        if not cache.ready.is_set():
            return
        with self._lock:
            self._keys.add((cache.source.name, cache.kind.group, cache.kind.kind))
            self._oids.setdefault(cache.source.name, set()).add(oid(obj))
        self.wake.set()

    def wait(self, timeout: float | None) -> tuple[bool, set, dict[str, set]]:
        """Wait for changes; returns (woke, keys, identities) and starts a new round."""
        woke = self.wake.wait(timeout)
        if woke and self.debounce:
            time.sleep(self.debounce)
        self.wake.clear()
        with self._lock:
            keys, oids = self._keys, self._oids
            self._keys, self._oids = set(), {}
        return woke, keys, oids


def follow(
    queries: list[LiveQuery],
    *,
    hub: Any = None,
    interval: float | None = None,
    stop: threading.Event | None = None,
    debounce: float = 0.01,
) -> Iterator[tuple[int, list[dict]]]:
    """Yield ``(query index, changes)`` as the queries' results change, forever or until ``stop``.

    The first yield per query is its whole initial result as ``added`` rows. With a hub, a
    change in a cache re-evaluates the queries that read its kind (from memory, incrementally
    where possible); changes arriving within ``debounce`` seconds are folded into one round.
    With ``interval``, queries are also re-run in full every ``interval`` seconds (for sources
    that cannot watch). A query that starts failing yields ``(index, [])`` once, with its
    ``error`` set (and once more when it runs again); it keeps its last rows. A query whose source's health changes (``fault``
    set or cleared) yields too, rows changed or not.

    A first run that cannot reach its sources (SourceUnavailable, SourceTimeout) does not end
    the stream when something will try again (the hub retries a source it holds a fault for, its
    caches and discovery with backoff; ``interval`` re-runs): it yields ``(index, [])`` with
    ``error`` set, and the query's first rows come, as ``added``, once it answers. Otherwise it
    raises.
    """
    stop = stop or threading.Event()
    collector = ChangeCollector(hub, debounce)
    faults = [None] * len(queries)
    for i, q in enumerate(queries):
        changes = _first_run(q, interval)
        faults[i] = _fault_text(q)
        yield i, changes
    while not stop.is_set():
        woke, keys, oids = collector.wait(interval if interval is not None else 1.0)
        if stop.is_set():
            return
        health = collector.take_health()
        waiting = [q.runs == 0 for q in queries]
        if not woke and interval is None and not any(waiting):
            continue
        if not woke and interval is not None:
            _reload(queries)
        for i, q in enumerate(queries):
            touched = bool(health) and any(name in health for name in q.source_names)
            if waiting[i]:
                failing = q.error
                changes = _first_run(q, interval)
            elif (woke and q.reads(keys)) or (not woke and interval is not None) or touched:
                failing = q.error
                changes = q.refresh(oids if woke and not touched else None)
            else:
                continue
            fault, faults[i] = faults[i], _fault_text(q)
            # a new failure, its end and a change of health are news too (with no row changes):
            # front ends show q.error and q.fault
            if (changes or fault != faults[i] or (failing is None) != (q.error is None)
                    or (q.error is not None and failing.one_line() != q.error.one_line())):
                yield i, changes


def _first_run(q: LiveQuery, interval: float | None) -> list[dict]:
    from tessera.core.errors import SourceTimeout, SourceUnavailable

    try:
        return q.refresh()
    except (SourceUnavailable, SourceTimeout):
        # retried when something will try again: the hub, for a source it knows is faulty (it
        # retries that), or the interval
        if interval is None and q.fault is None:
            raise
        return []  # q.error says why; tried again at the next round


def _fault_text(q: LiveQuery) -> str | None:
    fault = q.fault
    return fault.one_line() if fault is not None else None


def _reload(queries: list[LiveQuery]) -> None:
    """Let polled sources (files) read their data again before an interval re-run."""
    from tessera.core.sources.protocol import refresh_sources

    refresh_sources(s for q in queries for s in q.sources)


def fault_notice(fault: TesseraError, *, had_rows: bool) -> str:
    """The line a front end shows while a source cannot be reached."""
    if had_rows:
        return f"connection lost: {fault.one_line()}; retrying with backoff, the rows shown are from before"
    return f"{fault.one_line()}; retrying with backoff until it answers"


class FaultNotices:
    """What to tell a user about a hub's sources as they fail and come back: one notice when a
    source is lost (or its error changes), one when it answers again. Front ends print or show
    them; the wording is the same everywhere."""

    def __init__(self) -> None:
        self._lost: dict[str, tuple[str, float, bool]] = {}  # name -> (notice, since, had answered)

    def update(self, hub: Any) -> list[tuple[str, str]]:
        """The notices since the last call, as (``warning`` | ``info``, text).

        Args:
            hub: the CacheHub whose faults() to report.
        """
        out = []
        for name, fault in hub.faults().items():
            seen = self._lost.get(name)
            answered = seen[2] if seen else hub.answered(name)
            notice = fault_notice(fault, had_rows=answered)
            if seen is None or seen[0] != notice:
                out.append(("warning", notice))
                self._lost[name] = (notice, seen[1] if seen else time.monotonic(), answered)
        faults = hub.faults()
        for name in [n for n in self._lost if n not in faults]:
            _, since, answered = self._lost.pop(name)
            if answered:
                out.append(("info", f"reconnected to {name} after {time.monotonic() - since:.0f}s; rows are current"))
            else:
                out.append(("info", f"connected to {name}"))
        return out
