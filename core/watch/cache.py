"""One watch cache per (source, kind, namespace): list once, then watch from the list's
resourceVersion; resume from the last resourceVersion after a cut, list again on 410 Gone, and
back off with jitter while the source is unreachable.

Objects are replaced only by newer resourceVersions, so an event seen twice (a resumed watch
overlapping the old one) is not applied twice.
"""

from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from tessera.core.errors import TesseraError, WatchExpired

Key = tuple[str | None, str]  # (namespace, name)

# A join index no query has used for this long is dropped (looked for every INDEX_CHECK_EVENTS
# changes): keeping it current costs every change a little, and an edited or removed query may
# never ask for it again. A query that does is given a new one.
INDEX_IDLE_SECONDS = 300.0
INDEX_CHECK_EVENTS = 1000


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
                 backoff: tuple[float, float] = (0.2, 10.0)):
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
        self.ready = threading.Event()
        self._event_listeners: list[Callable[[str, dict], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watch_timeout = watch_timeout
        self._backoff = backoff
        self._thread: threading.Thread | None = None

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

    def subscribe_events(self, listener: Callable[[str, dict], None]) -> None:
        """Call ``listener(type, obj)`` for every change, in order: the first list as ADDED, watch
        events as they come, and a relist (after 410 Gone) as the ADDED/MODIFIED/DELETED it implies."""
        self._event_listeners.append(listener)

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
                    self._replace(items, rv)
                    need_list = False
                    self.ready.set()
                self.watch_calls += 1
                for etype, obj in self.source.watch(self.kind, namespace=self.namespace,
                                                    resource_version=self.resource_version,
                                                    stop=self._stop, timeout=self._watch_timeout):
                    self._apply(etype, obj)
                    delay = self._backoff[0]
                    if self._stop.is_set():
                        return
                self.error = None
            except WatchExpired:
                need_list = True
            except TesseraError as exc:
                self.error = exc
                self.errors += 1
                if self.list_calls == 0:
                    self.ready.set()  # let waiters see the error instead of hanging
                # full jitter: spread reconnects of many caches after a server restart
                self._stop.wait(random.uniform(0, delay))
                delay = min(delay * 2, self._backoff[1])
            except Exception as exc:  # noqa: BLE001 - a bug in a source must not kill the thread silently
                from tessera.core.errors import SourceUnavailable

                self.error = SourceUnavailable(f"source '{self.source.name}': watch {self.kind.kind} failed: {exc}")
                self.errors += 1
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])

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
                self._caches[base + (ns,)] = cache
                cache.start()
            return cache

    def subscribe_events(self, listener: Callable[[WatchCache, str, dict], None]) -> None:
        """Call ``listener(cache, type, obj)`` for every change in any cache, present or future."""
        with self._lock:
            self._event_listeners.append(listener)
            for cache in self._caches.values():
                cache.subscribe_events(lambda t, o, c=cache, f=listener: f(c, t, o))

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
        """Stop every cache and cut the sources' open streams."""
        for cache in self.caches():
            cache.stop()
        closed = set()
        for cache in self.caches():
            if id(cache.source) not in closed and hasattr(cache.source, "close"):
                closed.add(id(cache.source))
                cache.source.close()


_HUB: CacheHub | None = None


def shared_hub() -> CacheHub:
    """The process-wide hub every live front end (watch, dash, pane, jobs) shares."""
    global _HUB
    if _HUB is None:
        _HUB = CacheHub()
    return _HUB
