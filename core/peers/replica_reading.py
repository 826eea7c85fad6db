"""Opening peers' replicas for reading, by the names a user types: ``-s peer:NAME`` / ``-s peers``
sources, ``notebook list --peers``, ``notebook show NAME:NOTEBOOK``, ``events tail --peer NAME``.

Everything here is read-only: the local store is opened without creating or migrating it
(core/store/db.connect_read_only), each replica with replica_files.open_read_only. Nothing is
written, no data home and no node key appear. A peer is shown by its name with control
characters escaped (``label``): a peer chooses its own name, and it is printed in tables, headers
and errors.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from tessera.core.errors import SourceUnavailable, printable

LOCAL = "local"  # the label of this node's own store among peers' replicas


@dataclass
class OpenReplica:
    """A peer and its replica, open read-only (``conn``); close it when done."""

    node_id: str
    name: str
    conn: sqlite3.Connection

    @property
    def label(self) -> str:
        """The peer's name as shown: control characters escaped."""
        return printable(self.name)


def local_store(store_path: Path | None = None) -> sqlite3.Connection | None:
    """This node's own store, read-only; None when there is none yet (nothing stored)."""
    from tessera.core.store.db import connect_read_only

    return connect_read_only(store_path, timeout=5.0)


def _peer_list_conn(store_path: Path | None) -> sqlite3.Connection | None:
    local = local_store(store_path)
    if local is None:
        return None
    try:
        local.execute("SELECT 1 FROM peers LIMIT 1")
    except sqlite3.Error:  # a store from before peers: no peer table, so no peers
        local.close()
        return None
    return local


def open_peer(text: str, store_path: Path | None = None) -> OpenReplica:
    """The replica of the peer ``text`` names (its name, id or a unique id prefix).

    Raises:
        UsageError (exit 2) naming ``tessera peer list`` when no peer matches;
        SourceUnavailable (exit 3) when nothing was received from it yet.
    """
    from tessera.core.errors import UsageError
    from tessera.core.peers import peer_list, replica_files

    local = _peer_list_conn(store_path)
    if local is None:
        raise UsageError(f"no peer '{printable(text)}' (this node has no peers yet)",
                         hint="see `tessera peer list`; pair with `tessera peer invite` / `tessera peer join`")
    try:
        peer = peer_list.resolve(local, text)
    finally:
        local.close()
    conn = replica_files.open_read_only(peer.node_id, _store_file(store_path))
    if conn is None:
        raise SourceUnavailable(f"nothing has been received from peer '{printable(peer.name)}' yet (no replica)",
                                hint=f"run `tessera peer sync {printable(peer.name)}`")
    return OpenReplica(peer.node_id, peer.name, _checked(conn, peer.name))


def open_all(store_path: Path | None = None) -> list[OpenReplica]:
    """Every peer that has a replica, by name (peers with nothing received yet are left out)."""
    from tessera.core.peers import peer_list, replica_files

    local = _peer_list_conn(store_path)
    if local is None:
        return []
    try:
        peers = peer_list.all_peers(local)
    finally:
        local.close()
    out = []
    for peer in peers:
        conn = replica_files.open_read_only(peer.node_id, _store_file(store_path))
        if conn is not None:
            out.append(OpenReplica(peer.node_id, peer.name, _checked(conn, peer.name)))
    return out


def _store_file(store_path: Path | None) -> Path:
    if store_path is not None:
        return Path(store_path)
    from tessera.core.store.db import db_path

    return db_path()


def _checked(conn: sqlite3.Connection, name: str) -> sqlite3.Connection:
    """``conn`` once it reads as a store (a damaged or foreign file is one clear error)."""
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("SELECT 1 FROM events LIMIT 1")
        conn.execute("SELECT 1 FROM notebooks LIMIT 1")
    except sqlite3.Error as exc:
        conn.close()
        raise SourceUnavailable(f"the replica of peer '{printable(name)}' cannot be read: {exc}",
                                hint=f"run `tessera peer sync {printable(name)}` again") from None
    return conn
