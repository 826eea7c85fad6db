"""Stores as read-only sources: ``-s local`` (this node's own store) and ``-s peer:NAME`` /
``-s peers`` (peers' replicas, core/peers/replica_reading.py), listing the kinds of
plugins/sources/store_objects.py (``LogEvent``, ``Notebook``).

Each store is a source of its own, so a query over several (a fan-out) gives every row a leading
``source`` column naming where it came from (``local`` or the peer's name): ``fan_out_column``.
Nothing is ever written: there are no write methods, and the files are opened read-only.

Watching (live queries, ``refresh: watch`` cells, dash panes) polls the file: ``PRAGMA
data_version`` tells cheaply when another process (sync, ``events publish``) committed, and only
then is the kind listed again and compared with what the watch last saw, key by key. A watch
resumes only from the version its source handed out last (``list_versioned`` or the watch's own
bookmark); anything else is WatchExpired, and the watch cache lists again.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any, Iterator

from tessera.core.kinds import KindInfo
from tessera.core.sources.protocol import (ClosableSource, ConcurrentSource, DefaultNamespaceSource, LabelledSource, Source,
                                           WatchableSource)

POLL_SECONDS = 0.05  # how often a watch asks whether the file changed (a cheap PRAGMA)


class StoreSource(Source, WatchableSource, ClosableSource, ConcurrentSource, DefaultNamespaceSource, LabelledSource):
    """The events and notebooks of one store file open read-only (``conn``; None: an empty store).

    Args:
        name: the label of its rows (``local`` or a peer's printable name).
        conn: a read-only sqlite3 connection to a file with the store's schema, or None.
    """

    writable = False
    concurrent = False
    default_namespace = None
    fan_out_column = "source"

    def __init__(self, name: str, conn: sqlite3.Connection | None):
        self.name = name
        self._conn = conn
        self._lock = threading.Lock()  # one connection, read by queries and by watch threads
        self._generation = 0
        # per kind: the version handed out last, the objects as of it by (namespace, name), and the
        # file's data_version read before they were listed
        self._seen: dict[str, tuple[str, dict[tuple[Any, str], dict[str, Any]], int | None]] = {}

    def kinds(self) -> list[KindInfo]:
        from tessera.plugins.sources.store_objects import KINDS

        return list(KINDS)

    def list(self, kind: KindInfo, *, namespace: str | None = None, name: str | None = None,
             labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The store's objects of ``kind`` (cluster-scoped: ``namespace`` is ignored; they carry no
        labels, so any label filter matches nothing)."""
        from tessera.plugins.sources import store_objects

        if self._conn is None or labels or kind.group != store_objects.GROUP:
            return []
        read = {"LogEvent": store_objects.log_events, "Notebook": store_objects.notebooks}.get(kind.kind)
        if read is None:
            return []
        with self._lock:
            from tessera.core.errors import SourceUnavailable
            from tessera.core.store.db import StoreDamaged

            try:
                return read(self._conn, name=name)
            except StoreDamaged as exc:  # a damaged row (e.g. event data that is not JSON)
                raise SourceUnavailable(f"cannot read the store of '{self.name}': {exc.message}") from None
            except (sqlite3.Error, ValueError) as exc:
                raise SourceUnavailable(f"cannot read the store of '{self.name}': {exc}") from None

    def list_versioned(self, kind: KindInfo, *, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """Every object of ``kind`` and the version a watch resumes from."""
        data_version = self._data_version()  # read before the list: a commit after it is seen by the watch
        items = self.list(kind, namespace=namespace)
        return items, self._remember(kind, items, data_version)

    def _remember(self, kind: KindInfo, items: list[dict[str, Any]], data_version: int | None) -> str:
        with self._lock:
            self._generation += 1
            version = str(self._generation)
            self._seen[kind.kind] = (version, {_key(o): o for o in items}, data_version)
        return version

    def watch(self, kind: KindInfo, *, namespace: str | None, resource_version: str, stop: Any,
              timeout: float = 30.0) -> Iterator[tuple[str, dict[str, Any]]]:
        """ADDED / MODIFIED / DELETED for each object that changed since ``resource_version``, then
        a BOOKMARK with the new version, each time another process commits to the file."""
        from tessera.core.errors import WatchExpired

        seen = self._seen.get(kind.kind)
        if seen is None or seen[0] != resource_version:
            raise WatchExpired(f"'{self.name}' has no state at version {resource_version} to watch from")
        return self._changes(kind, seen[1], seen[2], stop, timeout)

    def _changes(self, kind: KindInfo, before: dict, version: int | None, stop: Any,
                 timeout: float) -> Iterator[tuple[str, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while not stop.is_set() and time.monotonic() < deadline:
            if self._conn is None:
                return  # closed: the end of the stream, not the deletion of everything
            current = self._data_version()
            if current != version:
                version = current
                items = self.list(kind)
                after = {_key(o): o for o in items}
                for key, obj in before.items():
                    if key not in after:
                        yield "DELETED", obj
                for key, obj in after.items():
                    if key not in before:
                        yield "ADDED", obj
                    elif obj != before[key]:
                        yield "MODIFIED", obj
                before = after
                yield "BOOKMARK", {"metadata": {"resourceVersion": self._remember(kind, items, current)}}
            stop.wait(POLL_SECONDS)

    def _data_version(self) -> int | None:
        if self._conn is None:
            return None
        with self._lock:
            try:
                return self._conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error as exc:
                from tessera.core.errors import SourceUnavailable

                raise SourceUnavailable(f"cannot read the store of '{self.name}': {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _key(obj: dict[str, Any]) -> tuple[Any, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace"), meta.get("name", "")


class LocalStoreSource(StoreSource):
    """``-s local``: this node's own store, read-only (empty when there is no store yet)."""

    def __init__(self) -> None:
        from tessera.core.peers.replica_reading import LOCAL, local_store

        super().__init__(LOCAL, local_store())


class PeerReplicaSource(StoreSource):
    """``-s peer:NAME``: one peer's replica (NAME: its name, id or a unique id prefix).

    Raises:
        UsageError (exit 2) for an unknown peer; SourceUnavailable (exit 3) when it has no replica yet.
    """

    def __init__(self, peer: str | Any) -> None:
        from tessera.core.peers.replica_reading import OpenReplica, open_peer

        replica = peer if isinstance(peer, OpenReplica) else open_peer(peer)
        self.node_id = replica.node_id
        super().__init__(replica.label, replica.conn)

    @classmethod
    def every(cls) -> list[PeerReplicaSource]:
        """``-s peers``: one source per peer that has a replica, by name."""
        from tessera.core.peers.replica_reading import open_all

        return [cls(replica) for replica in open_all()]
