"""Hash indexes on a rule field that a watch cache keeps up to date, so a live query's join
probes them instead of re-indexing every cached object on every change.

A watch cache hands out its snapshot as a ``CacheSnapshot``: a plain list of the cached objects
that also knows the cache version it was taken at. ``joins.rule_pairs`` asks the snapshot for an
index on the join field; the cache answers only while nothing has changed since the snapshot (the
index then describes exactly the listed objects) and holds its lock while the join probes it.
"""

from __future__ import annotations

from contextlib import contextmanager
from itertools import count
from typing import Any, Callable, Hashable, Iterator, Mapping

from tessera.core.query.joins import hashable_values, namespace_of, path_fn


class JoinIndex:
    """The objects of one cache by (namespace, value) of one field, in the cache's own order.

    Args:
        field: a rule field path (``metadata.ownerReferences[].name``).
        same_ns: whether the rule relates resources of one namespace only (keys then carry the
            namespace; otherwise every key's namespace is "").
        objects: the cache's objects by key, in the cache's order.
    """

    def __init__(self, field: str, same_ns: bool, objects: Mapping[Hashable, dict]):
        self.field = field
        self.same_ns = same_ns
        self._get = path_fn(field)
        self._next = count()
        # key -> (position, namespace, values, object): positions follow the cache's dict order (a
        # new key goes last, a replaced object keeps its place), so sorting on them gives the list order
        self._entries: dict[Hashable, tuple[int, str, tuple, dict]] = {}
        self._position: dict[int, int] = {}  # id(object) -> position
        self._by_ns_value: dict[tuple[str, Any], dict[Hashable, dict]] = {}
        self._by_value: dict[Any, dict[Hashable, dict]] = {}
        self.lent_at = 0.0  # when a join last used it (time.monotonic(); set by the cache)
        for key, obj in objects.items():
            self.put(key, obj)

    def put(self, key: Hashable, obj: dict) -> None:
        """Index ``obj`` (new, or replacing the object held under ``key``)."""
        old = self._entries.get(key)
        ns = namespace_of(obj) if self.same_ns else ""
        values = tuple(dict.fromkeys(hashable_values(self._get(obj))))
        if old is not None:
            self._drop(key, old)
        position = old[0] if old is not None else next(self._next)
        self._entries[key] = (position, ns, values, obj)
        self._position[id(obj)] = position
        for v in values:
            self._by_ns_value.setdefault((ns, v), {})[key] = obj
            if self.same_ns:
                self._by_value.setdefault(v, {})[key] = obj

    def remove(self, key: Hashable) -> None:
        """Forget the object held under ``key`` (deleted from the cache)."""
        old = self._entries.pop(key, None)
        if old is not None:
            self._drop(key, old)

    def _drop(self, key: Hashable, entry: tuple[int, str, tuple, dict]) -> None:
        _, ns, values, obj = entry
        self._position.pop(id(obj), None)
        for v in values:
            bucket = self._by_ns_value[(ns, v)]
            bucket.pop(key)
            if not bucket:
                del self._by_ns_value[(ns, v)]
            if self.same_ns:
                bucket = self._by_value[v]
                bucket.pop(key)
                if not bucket:
                    del self._by_value[v]

    def position(self, obj: dict) -> int:
        """Where ``obj`` stands in the cache's order."""
        return self._position[id(obj)]

    def matching(self, ns: str, value: Any) -> list[dict]:
        """The objects in namespace ``ns`` ("" when the rule ignores namespaces) with ``value``."""
        return self._ordered(self._by_ns_value.get((ns, value)))

    def matching_any_namespace(self, value: Any) -> list[dict]:
        """The objects with ``value`` in any namespace (only for same-namespace rules)."""
        return self._ordered(self._by_value.get(value))

    def _ordered(self, bucket: dict[Hashable, dict] | None) -> list[dict]:
        if not bucket:
            return []
        objs = list(bucket.values())
        if len(objs) > 1:
            objs.sort(key=lambda o: self._position[id(o)])
        return objs


class CacheSnapshot(list):
    """A watch cache's objects as a list, able to lend the cache's join indexes while the cache
    still holds exactly these objects.

    Args:
        objects: the cached objects, in the cache's order.
        lend: ``lend(field, same_ns, version)``, the cache's context manager giving its index or
            None when the cache has changed since ``version``.
        version: the cache's version when the list was taken.
    """

    def __init__(self, objects: Any, lend: Callable[..., Any], version: int):
        super().__init__(objects)
        self._lend = lend
        self._version = version

    @contextmanager
    def join_index(self, field: str, same_ns: bool) -> Iterator[JoinIndex | None]:
        """The cache's index on ``field``, locked against changes while in use; None when the
        cache has moved on since this snapshot."""
        with self._lend(field, same_ns, self._version) as index:
            yield index
