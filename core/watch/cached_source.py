"""A source whose ``list`` reads from shared watch caches, so re-running a query costs no API call."""

from __future__ import annotations

from typing import Any

from tessera.core.resources import filters_nothing, select_resources
from tessera.core.sources.protocol import BoundedRequestsSource, WatchableSource, default_namespace


class CachedSource:
    """Wraps a watchable source; every list is served from the hub's cache for that kind.

    ``touched`` collects the (source, group, kind) keys read, so a live query is re-run only
    when one of its own kinds changes.

    Args:
        source: a source implementing core/sources/protocol.py WatchableSource.
        hub: the CacheHub to share (core.watch.cache.shared_hub() in front ends).
        ready_timeout: seconds to wait for a cache's first list (None: as long as the source's
            own requests may take when it bounds them, its ``request_timeout``; else 60).
    """

    # Lists are reads from memory: a thread pool per match would cost more than it saves.
    concurrent = False

    def __init__(self, source: Any, hub: Any, *, ready_timeout: float | None = None):
        self.source = source
        self.hub = hub
        self.name = source.name
        self.writable = source.writable
        self.default_namespace = default_namespace(source)
        if ready_timeout is None and not isinstance(source, BoundedRequestsSource):
            ready_timeout = 60.0
        self._ready_timeout = ready_timeout
        self.touched: set[tuple[str, str, str]] = set()
        # join values of the cached objects, kept between this source's matches (the objects
        # are replaced, never edited, when they change)
        from tessera.core.query.joins import JoinMemo

        self.join_memo = JoinMemo()

    def __getattr__(self, attr: str) -> Any:
        # writes, api_path, kubeconfig... go to the wrapped source
        return getattr(self.source, attr)

    def kinds(self) -> list[Any]:
        """The wrapped source's kinds (through the hub, which retries a failed discovery)."""
        return self.hub.kinds(self.source)

    def list(self, kind: Any, *, namespace: str | None = None, name: str | None = None,
             labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Resources of ``kind`` from the cache (started and first listed on first use)."""
        self.touched.add((self.source.name, kind.group, kind.kind))
        cache = self.hub.get(self.source, kind, namespace)
        cache.wait_ready(self._ready_timeout)
        snapshot = cache.snapshot()
        if cache.namespace is not None and cache.namespace == namespace:
            namespace = None  # a cache of that namespace alone: nothing more to filter by it
        if filters_nothing(kind, namespace=namespace, name=name, labels=labels):
            return snapshot  # the whole cache: joins may probe its kept indexes
        return select_resources(snapshot, kind, namespace=namespace, name=name, labels=labels)


    def current(self, oids: set[tuple[str, str, str, str]]) -> list[dict[str, Any]]:
        """The cached objects now bearing these identities ((group, kind, namespace, name));
        identities of deleted objects give nothing."""
        out = []
        wanted: dict[tuple[str, str], list[tuple[str | None, str]]] = {}
        for group, kind, ns, name in oids:
            wanted.setdefault((group, kind), []).append((ns or None, name))
        for cache in self.hub.caches():
            if cache.source is not self.source:
                continue
            keys = wanted.get((cache.kind.group, cache.kind.kind))
            if not keys:
                continue
            objects = cache.objects
            for key in keys:
                obj = objects.get(key)
                if obj is not None:
                    out.append(obj)
        return out


def can_watch(source: Any) -> bool:
    """True when the source streams changes (core/sources/protocol.py WatchableSource)."""
    return isinstance(source, WatchableSource)
