"""One watch cache per (source, kind, namespace): list once, then watch from the list's
resourceVersion; resume from the last resourceVersion after a cut, list again on 410 Gone, and
back off with jitter while the source is unreachable.

Objects are replaced only by newer resourceVersions, so an event seen twice (a resumed watch
overlapping the old one) is not applied twice.

Health: a cache is *faulty* from the moment a list or watch call fails, or an open watch is
cut, until a list succeeds or the server accepts a watch again. The hub folds its caches'
faults, failed discoveries and missed heartbeats into one fault per source and tells its health
listeners of each change, so live front ends can say "connection lost" and "reconnected" as it
happens: a stopped server is noticed at the next failed call, within the backoff; a vanished one
through TCP keepalive on the open watch (plugins/sources/kubernetes.py); one that keeps the
connection and stops answering (hung, or behind a proxy) by the heartbeat, a ``ping`` every
HEARTBEAT_SECONDS that must answer within HEARTBEAT_TIMEOUT.
"""

from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from tessera.core.errors import TesseraError, WatchExpired
from tessera.core.sources.protocol import ClosableSource, PingableSource

Key = tuple[str | None, str]  # (namespace, name)

# A join index no query has used for this long is dropped (looked for every INDEX_CHECK_EVENTS
# changes): keeping it current costs every change a little, and an edited or removed query may
# never ask for it again. A query that does is given a new one.
INDEX_IDLE_SECONDS = 300.0
INDEX_CHECK_EVENTS = 1000
# Retry delays after an error: the first, and the longest (doubling in between, full jitter).
# The longest bounds how long a server that is back goes unnoticed.
BACKOFF = (0.2, 5.0)
# While a source's caches are healthy, the hub asks it (``source.ping``, when it has one) whether
# it still answers: quiet watches send nothing, so a hung server would otherwise go unnoticed
# until a watch is renewed (minutes). Detection within HEARTBEAT_SECONDS + HEARTBEAT_TIMEOUT.
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TIMEOUT = 3.0


def _rv(obj: dict) -> int | None:
    text = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _key(obj: dict) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace"), meta.get("name", "")


class WatchCache:
    """The live contents of one kind in one namespace (None: all) of one source.

    Args:
        source: a source implementing base.WatchableSource.
        kind: the KindInfo to watch.
        namespace: one namespace, or None for all.
        watch_timeout: seconds each watch request stays open before it is renewed.
        backoff: (first delay, longest delay) in seconds between retries after an error.
    """

    def __init__(self, source: Any, kind: Any, namespace: str | None, *, watch_timeout: float = 290.0,
                 backoff: tuple[float, float] = BACKOFF):
        self.source = source
        self.kind = kind
        self.namespace = namespace
        self.objects: dict[Key, dict] = {}
        self.version = 0  # bumped on every change of ``objects``
        self._join_indexes: dict[tuple[str, bool], Any] = {}
        self.resource_version = ""
        self.list_calls = 0
        self.watch_calls = 0
        self.events = 0
        self.errors = 0
        self.error: TesseraError | None = None
        # set while the source cannot be reached (see the module docstring)
        self.fault: TesseraError | None = None
        self.ready = threading.Event()
        self._event_listeners: list[Callable[[str, dict], None]] = []
        self._health_listeners: list[Callable[["WatchCache"], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watch_timeout = watch_timeout
        self._backoff = backoff
        self._thread: threading.Thread | None = None
        self._renew_until = 0.0  # a watch that ends before this was cut on purpose (renew)

    # --- public -----------------------------------------------------------------------------

    def start(self) -> "WatchCache":
        """Start the watcher thread (once); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{self.kind.kind}")
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching; the thread ends at the next event or when its stream closes."""
        self._stop.set()

    def renew(self) -> None:
        """Expect the open watch to be cut in the next few seconds (the hub cuts the source's
        streams after a hung server answers again: they may be dead) and resume from the last
        resourceVersion at once, without counting the cut as a fault."""
        self._renew_until = time.monotonic() + 5.0

    def subscribe_events(self, listener: Callable[[str, dict], None]) -> None:
        """Call ``listener(type, obj)`` for every change, in order: the first list as ADDED, watch
        events as they come, and a relist (after 410 Gone) as the ADDED/MODIFIED/DELETED it implies."""
        self._event_listeners.append(listener)

    def subscribe_health(self, listener: Callable[["WatchCache"], None]) -> None:
        """Call ``listener(cache)`` whenever ``fault`` changes (set, replaced or cleared)."""
        self._health_listeners.append(listener)

    def snapshot(self) -> list[dict]:
        """The current objects (a consistent copy of the list, objects shared read-only), as a
        CacheSnapshot that can lend this cache's join indexes while nothing has changed."""
        from tessera.core.query.join_index import CacheSnapshot

        with self._lock:
            return CacheSnapshot(self.objects.values(), self._lend_join_index, self.version)

    @contextmanager
    def _lend_join_index(self, field: str, same_ns: bool, version: int) -> Iterator[Any]:
        # Held under the lock: the watcher thread waits while a join probes the index.
        with self._lock:
            if version != self.version:
                yield None
                return
            index = self._join_indexes.get((field, same_ns))
            if index is None:
                from tessera.core.query.join_index import JoinIndex

                index = self._join_indexes[(field, same_ns)] = JoinIndex(field, same_ns, self.objects)
            index.lent_at = time.monotonic()
            yield index

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the first list has arrived.

        Raises:
            the source's error (SourceUnavailable, NotAuthorized...) when the first list failed,
            SourceTimeout after ``timeout`` seconds.
        """
        if not self.ready.wait(timeout):
            from tessera.core.errors import SourceTimeout

            raise SourceTimeout(f"source '{self.source.name}': no answer listing {self.kind.kind} in {timeout:.0f}s")
        if self.list_calls == 0 and self.error is not None:
            raise self.error

    # --- the watcher thread ---------------------------------------------------------------------

    def _run(self) -> None:
        delay = self._backoff[0]
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    items, rv = self.source.list_versioned(self.kind, namespace=self.namespace)
                    self.list_calls += 1
                    self._set_fault(None)
                    self._replace(items, rv)
                    need_list = False
                    self.ready.set()
                self.watch_calls += 1
                stream = self.source.watch(self.kind, namespace=self.namespace, resource_version=self.resource_version,
                                           stop=self._stop, timeout=self._watch_timeout)
                self._set_fault(None)  # the server accepted the watch
                for etype, obj in stream:
                    self._apply(etype, obj)
                    delay = self._backoff[0]
                    if self._stop.is_set():
                        return
                self.error = None
            except WatchExpired:
                need_list = True
            except TesseraError as exc:
                if time.monotonic() < self._renew_until:
                    self._renew_until = 0.0
                    continue
                self._failed(exc)
                # full jitter: spread reconnects of many caches after a server restart
                self._stop.wait(random.uniform(0, delay))
                delay = min(delay * 2, self._backoff[1])
            except Exception as exc:  # noqa: BLE001 - a bug in a source must not kill the thread silently
                from tessera.core.errors import SourceUnavailable

                self._failed(SourceUnavailable(f"source '{self.source.name}': watch {self.kind.kind} failed: {exc}"))
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])

    def _failed(self, exc: TesseraError) -> None:
        self.error = exc
        self.errors += 1
        if self._stop.is_set():
            return  # closing: a cut stream is no fault
        self._set_fault(exc)
        if self.list_calls == 0:
            self.ready.set()  # let waiters see the error instead of hanging

    def _set_fault(self, fault: TesseraError | None) -> None:
        if fault is None and self.fault is None:
            return
        self.fault = fault
        for listener in list(self._health_listeners):
            listener(self)

    def _replace(self, items: list[dict], rv: str) -> None:
        fresh = {_key(o): o for o in items}
        with self._lock:
            old = self.objects
            implied = [("DELETED", o) for k, o in old.items() if k not in fresh]
            for k, o in fresh.items():
                if k not in old:
                    implied.append(("ADDED", o))
                elif _rv(o) != _rv(old[k]) or _rv(o) is None:
                    implied.append(("MODIFIED", o))
            self.objects = fresh
            self.version += 1
            self._join_indexes.clear()  # the new list sets a new order; indexes are rebuilt on use
            self.resource_version = rv
        for etype, obj in implied:
            self._emit(etype, obj)

    def _apply(self, etype: str, obj: dict) -> None:
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if etype == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        key = _key(obj)
        new_rv = _rv(obj)
        with self._lock:
            old = self.objects.get(key)
            if old is not None and new_rv is not None and (_rv(old) or -1) >= new_rv and etype != "DELETED":
                return  # already seen (a resumed watch replaying what we have)
            if etype == "DELETED":
                if old is None:
                    if rv:
                        self.resource_version = rv
                    return
                del self.objects[key]
                for index in self._join_indexes.values():
                    index.remove(key)
            else:
                self.objects[key] = obj
                for index in self._join_indexes.values():
                    index.put(key, obj)
            self.version += 1
            if rv:
                self.resource_version = rv
            self.events += 1
            if self._join_indexes and self.events % INDEX_CHECK_EVENTS == 0:
                idle_since = time.monotonic() - INDEX_IDLE_SECONDS
                for spec in [k for k, index in self._join_indexes.items() if index.lent_at < idle_since]:
                    del self._join_indexes[spec]
        self._emit(etype, obj)

    def _emit(self, etype: str, obj: dict) -> None:
        for listener in list(self._event_listeners):
            listener(etype, obj)


class CacheHub:
    """Every watch cache of a process, shared: asking twice for the same (source, kind,
    namespace) gives the same cache, and an all-namespaces cache also serves each namespace."""

    def __init__(self, **cache_options: Any):
        self._caches: dict[tuple[str, str, str, str | None], WatchCache] = {}
        self._lock = threading.Lock()
        self._event_listeners: list[Callable[[WatchCache, str, dict], None]] = []
        self._health_listeners: list[Callable[[str, TesseraError | None], None]] = []
        self._faults: dict[str, TesseraError] = {}  # as last told to health listeners
        self._discovery_faults: dict[str, TesseraError] = {}  # sources whose discovery is being retried
        self._heartbeat_faults: dict[str, TesseraError] = {}  # sources that missed a heartbeat
        self._heartbeats: set[str] = set()  # sources with a heartbeat thread
        self._closed = threading.Event()
        self._options = cache_options

    def get(self, source: Any, kind: Any, namespace: str | None) -> WatchCache:
        """The started cache for this source, kind and namespace (None: all namespaces).

        Returns:
            a WatchCache; with a namespace, an existing all-namespaces cache may be returned
            (its snapshot must then be filtered by namespace).
        """
        ns = namespace if kind.namespaced else None
        base = (source.name, kind.group, kind.kind)
        with self._lock:
            cache = self._caches.get(base + (None,)) or self._caches.get(base + (ns,))
            if cache is None:
                cache = WatchCache(source, kind, ns, **self._options)
                for listener in self._event_listeners:
                    cache.subscribe_events(lambda t, o, c=cache, f=listener: f(c, t, o))
                cache.subscribe_health(lambda c: self._health_changed(c.source.name))
                self._caches[base + (ns,)] = cache
                cache.start()
                if isinstance(source, PingableSource) and source.name not in self._heartbeats:
                    self._heartbeats.add(source.name)
                    threading.Thread(target=self._heartbeat, args=(source,), daemon=True,
                                     name=f"heartbeat-{source.name}").start()
            return cache

    def subscribe_events(self, listener: Callable[[WatchCache, str, dict], None]) -> None:
        """Call ``listener(cache, type, obj)`` for every change in any cache, present or future."""
        with self._lock:
            self._event_listeners.append(listener)
            for cache in self._caches.values():
                cache.subscribe_events(lambda t, o, c=cache, f=listener: f(c, t, o))

    def kinds(self, source: Any) -> list[Any]:
        """``source.kinds()``; when discovery cannot reach the source, the error is raised and
        discovery is retried on a thread with backoff, and until it succeeds later calls raise
        the last error at once (a live query over several contexts does not wait on a dead one
        at every refresh). The retry's outcome is a health change of the source.

        Raises:
            the source's error (SourceUnavailable, SourceTimeout, NotAuthorized...).
        """
        from tessera.core.errors import SourceTimeout, SourceUnavailable

        with self._lock:
            fault = self._discovery_faults.get(source.name)
        if fault is not None:
            raise fault
        try:
            return source.kinds()
        except (SourceUnavailable, SourceTimeout) as exc:
            with self._lock:
                retrying = source.name in self._discovery_faults
                self._discovery_faults[source.name] = exc
            if not retrying:
                threading.Thread(target=self._retry_discovery, args=(source,), daemon=True,
                                 name=f"discover-{source.name}").start()
            self._health_changed(source.name)
            raise

    def answered(self, source_name: str) -> bool:
        """Whether any cache of the source has listed (rows from it have been seen)."""
        return any(c.list_calls for c in self.caches() if c.source.name == source_name)

    def _retry_discovery(self, source: Any) -> None:
        from tessera.core.errors import SourceTimeout, SourceUnavailable

        delay = self._options.get("backoff", BACKOFF)[0]
        longest = self._options.get("backoff", BACKOFF)[1]
        while not self._closed.wait(random.uniform(0, delay)):
            try:
                source.kinds()
            except (SourceUnavailable, SourceTimeout) as exc:
                with self._lock:
                    self._discovery_faults[source.name] = exc
                self._health_changed(source.name)
                delay = min(delay * 2, longest)
                continue
            except TesseraError:
                pass  # refused, say: the next query run reports it
            with self._lock:
                self._discovery_faults.pop(source.name, None)
            self._health_changed(source.name)
            return

    def _heartbeat(self, source: Any) -> None:
        from tessera.core.errors import SourceTimeout, SourceUnavailable

        name = source.name
        while not self._closed.wait(HEARTBEAT_SECONDS):
            with self._lock:
                missed = self._heartbeat_faults.get(name)
                caches = [c for c in self._caches.values() if c.source is source]
            if missed is None and any(c.fault is not None for c in caches):
                continue  # the caches know already; their reconnects tell when it is back
            try:
                source.ping(HEARTBEAT_TIMEOUT)
            except (SourceUnavailable, SourceTimeout) as exc:
                if self._closed.is_set():
                    return
                with self._lock:
                    self._heartbeat_faults[name] = exc
                self._health_changed(name)
                continue
            except TesseraError:
                continue  # refused (401/403 on /version): it answers, which is all we ask
            if missed is not None:
                # back after hanging: its open watches may be dead; resume them from their last
                # resourceVersion
                for cache in caches:
                    cache.renew()
                if isinstance(source, ClosableSource):
                    source.close()
                with self._lock:
                    self._heartbeat_faults.pop(name, None)
                self._health_changed(name)

    def subscribe_health(self, listener: Callable[[str, TesseraError | None], None]) -> None:
        """Call ``listener(source name, fault or None)`` whenever a source's fault changes: set
        (it cannot be reached), replaced by another message, or cleared (it answers again)."""
        with self._lock:
            self._health_listeners.append(listener)

    def fault(self, source_name: str) -> TesseraError | None:
        """Why the source cannot be reached now (its discovery or any of its caches), or None."""
        with self._lock:
            return self._faults.get(source_name)

    def faults(self) -> dict[str, TesseraError]:
        """Every source that cannot be reached now, by name."""
        with self._lock:
            return dict(self._faults)

    def _health_changed(self, source_name: str) -> None:
        with self._lock:
            fault = self._discovery_faults.get(source_name)
            if fault is None:
                fault = next((c.fault for c in self._caches.values()
                              if c.source.name == source_name and c.fault is not None), None)
            if fault is None:
                fault = self._heartbeat_faults.get(source_name)
            old = self._faults.get(source_name)
            if (old is None) == (fault is None) and (old is None or old.one_line() == fault.one_line()):
                return
            if fault is None:
                del self._faults[source_name]
            else:
                self._faults[source_name] = fault
            listeners = list(self._health_listeners)
        for listener in listeners:
            listener(source_name, fault)

    def caches(self) -> list[WatchCache]:
        """Every cache created so far."""
        with self._lock:
            return list(self._caches.values())

    def stats(self) -> list[dict]:
        """Per cache: source, kind, namespace, list and watch calls, events, errors, objects."""
        return [
            {"source": c.source.name, "kind": c.kind.kind, "namespace": c.namespace, "list_calls": c.list_calls,
             "watch_calls": c.watch_calls, "events": c.events, "errors": c.errors, "objects": len(c.objects)}
            for c in self.caches()
        ]

    def close(self) -> None:
        """Stop every cache and discovery retry, and cut the sources' open streams."""
        self._closed.set()
        for cache in self.caches():
            cache.stop()
        closed = set()
        for cache in self.caches():
            if id(cache.source) not in closed and isinstance(cache.source, ClosableSource):
                closed.add(id(cache.source))
                cache.source.close()


_HUB: CacheHub | None = None


def shared_hub() -> CacheHub:
    """The process-wide hub every live front end (watch, dash, pane, jobs) shares."""
    global _HUB
    if _HUB is None:
        _HUB = CacheHub()
    return _HUB
