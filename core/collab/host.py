"""The owner's side of live collaboration in ``tessera serve``: a ``collab_join`` (the first
request of a connection, after the hello) is checked and its connection handed to the room of
that notebook (core/collab/room.py), one room per notebook id shared by all its clients.

A join is allowed when the dialer is a peer this node publishes to (the server checked it
before dispatching) and ``notebook:NAME`` is granted to it; otherwise it gets one error frame
(``not_shared`` with the fix, or ``not_found`` for a shared name that has no notebook) and not
one byte of the notebook.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any, Callable

from tessera.core.collab.room import Room, RoomClient
from tessera.core.peers import identity, message_types
from tessera.core.peers.frames import ProtocolError

Log = Callable[..., None]


class CollabHost:
    def __init__(self, conn: sqlite3.Connection, *, log: Log, stopping: asyncio.Event):
        self.conn, self.log, self.stopping = conn, log, stopping
        self.rooms: dict[str, Room] = {}

    async def join(self, channel: Any, request: dict) -> None:
        """Serve one collab connection from its ``collab_join`` to its end."""
        from tessera.core.notebook import repository
        from tessera.core.peers import peer_list, shares

        node_id = channel.remote.node_id
        name = request["notebook"]
        me = identity.local_identity(self.conn)
        peer = peer_list.get(self.conn, node_id)
        if peer is None or not shares.is_granted(self.conn, node_id, f"notebook:{name}"):
            shown = peer.name if peer is not None else identity.short_id(node_id)
            await self._refuse(channel, ProtocolError(
                "not_shared", f"notebook {name} is not shared with {shown} by {me.name}",
                fix=f"ask {me.name}: tessera peer share {name} --with {shown}"))
            return
        if not repository.exists(self.conn, name):
            await self._refuse(channel, ProtocolError("not_found", f"{me.name} has no notebook {name}",
                                                      fix=f"ask {me.name} which notebooks it shares: tessera peer shared"))
            return
        upgrade = getattr(repository, "upgrade", None)  # doc's v2 layout (i15-doc); absent before it lands
        if upgrade is not None:
            upgrade(self.conn, name)
        notebook_id = repository.notebook_id(self.conn, name)
        room = self.rooms.get(notebook_id)
        if room is None or room.closed:
            room = self.rooms[notebook_id] = Room(self.conn, notebook_id, log=self.log, on_empty=self._empty)
            room.start()
        client = RoomClient(channel, node_id, peer.name, request["run"], role=peer.role)
        await channel.send(message_types.make("collab_welcome", notebook=name, notebook_id=notebook_id,
                                              role=peer.role, owner=me.name))
        self.log("info", "collab_joined", peer=identity.short_id(node_id), name=peer.name, notebook=name,
                 role=peer.role, run=request["run"])
        try:
            await room.serve(client, self.stopping)
        finally:
            self.log("info", "collab_left", peer=identity.short_id(node_id), notebook=name)
            if client.closing is None:
                await channel.finish()

    async def _refuse(self, channel: Any, error: ProtocolError) -> None:
        self.log("warning", "refused", peer=identity.short_id(channel.remote.node_id), code=error.code)
        await channel.refuse(error)
        await channel.finish()

    def _empty(self, room: Room) -> None:
        """The room's last client left: close it (a later join opens a fresh one)."""
        if self.rooms.get(room.notebook_id) is room:
            del self.rooms[room.notebook_id]
        asyncio.ensure_future(room.close())

    async def close(self) -> None:
        rooms, self.rooms = list(self.rooms.values()), {}
        await asyncio.gather(*(room.close() for room in rooms), return_exceptions=True)
