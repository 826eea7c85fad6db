"""Stores as read-only sources: ``-s local`` (this node's own store) and ``-s peer:NAME`` /
``-s peers`` (peers' replicas, core/peers/replica_reading.py), listing the kinds of
plugins/sources/store_objects.py (``LogEvent``, ``Notebook``).

Each store is a source of its own, so a query over several (a fan-out) gives every row a leading
``source`` column naming where it came from (``local`` or the peer's name): ``fan_out_column``.
Nothing is ever written: there are no write methods, and the files are opened read-only.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tessera.core.kinds import KindInfo
from tessera.core.sources.protocol import ClosableSource, ConcurrentSource, DefaultNamespaceSource, LabelledSource, Source


class StoreSource(Source, ClosableSource, ConcurrentSource, DefaultNamespaceSource, LabelledSource):
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

    def kinds(self) -> list[KindInfo]:
        from tessera.plugins.sources.store_objects import KINDS

        return list(KINDS)

    def list(self, kind: KindInfo, *, namespace: str | None = None, name: str | None = None,
             labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The store's objects of ``kind`` (cluster-scoped: ``namespace`` is ignored; they carry no
        labels, so any label filter matches nothing)."""
        from tessera.plugins.sources import store_objects

        if self._conn is None or labels:
            return []
        try:
            if kind.kind == "LogEvent" and kind.group == store_objects.GROUP:
                return store_objects.log_events(self._conn, name=name)
            if kind.kind == "Notebook" and kind.group == store_objects.GROUP:
                return store_objects.notebooks(self._conn, name=name)
        except sqlite3.Error as exc:
            from tessera.core.errors import SourceUnavailable

            raise SourceUnavailable(f"cannot read {self.name}'s store: {exc}") from None
        return []

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


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
