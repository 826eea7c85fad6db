"""The server side of the blob messages (``tessera serve``, dispatched by core/peers/server.py
after the hello): ``blob_manifest_request`` -> ``blob_manifest``, ``blob_get`` -> ``blob_chunk``.

Every request is checked again against the peer list (a peer this node publishes to) and the
blob's grants: a blob not held here, or not granted to the requester, is one ``not_shared``
error frame (the same answer for both, so a peer cannot probe what else this node holds) and not
one byte of it. Chunks are sent as they are on disk: the fetcher checks each against the
manifest, so a damaged copy here costs the fetcher a re-fetch from another peer, never a bad
byte stored.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tessera.core.blobs import blob_store, grants
from tessera.core.peers import message_types, requests

BLOB_MESSAGES = ("blob_manifest_request", "blob_get")


def answer(conn: sqlite3.Connection, node_id: str, request: dict) -> dict:
    """The answer to one checked blob request from ``node_id`` (the id the transport proved)."""
    peer, refused = requests.authorize(conn, node_id)
    if refused is not None:
        return refused
    blob_id = request["blob"]
    found = blob_store.info(conn, blob_id)
    path = Path(conn.path).parent / blob_store.DIRECTORY / blob_id
    if found is None or not found.complete or not grants.is_granted(conn, blob_id, node_id) or not path.is_file():
        return _not_shared(conn, blob_id, peer.name)
    if request["type"] == "blob_manifest_request":
        return message_types.make("blob_manifest", blob=blob_id, size=found.size, chunk_size=found.chunk_size,
                                  chunks=found.manifest.chunks)
    index = request["index"]
    if not 0 <= index < found.manifest.chunk_count:
        return requests.refusal("malformed", f"blob {blob_id[:16]} has {found.manifest.chunk_count} chunks, "
                                             f"there is no chunk {index}", "ask for the chunks its manifest lists")
    offset, length = found.manifest.chunk_span(index)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # removed since the lookup
        return _not_shared(conn, blob_id, peer.name)
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    return message_types.make("blob_chunk", blob=blob_id, index=index, data=data)


def _not_shared(conn: sqlite3.Connection, blob_id: str, peer_name: str) -> dict:
    from tessera.core.errors import printable
    from tessera.core.peers import identity

    me = identity.local_identity(conn)
    return requests.refusal("not_shared", f"blob {blob_id[:16]} is not shared with {printable(peer_name)} by {me.name}",
                            f"on {me.name}: tessera blob share {blob_id} --with {printable(peer_name)}")
