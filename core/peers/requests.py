"""The server side of ``shares`` and ``pull``: one answer per request, authorized on every
request against the peer list and peer_shares (never once per connection, so a peer removed, or a
share taken back, while a connection is open is refused from its next request on).

Refusals are one ``error`` message (the connection closes after it): ``unknown_peer`` (not in
the peer list), ``not_authorized`` (a peer we do not publish to), ``not_shared`` (a share not
granted to it: not one byte of its data is sent).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tessera.core.errors import printable
from tessera.core.peers import message_types, pages, peer_list, shares


def refusal(code: str, message: str, fix: str) -> dict:
    return message_types.make("error", code=code, message=message[:1000], fix=fix[:300])


def authorize(conn: sqlite3.Connection, node_id: str) -> tuple[peer_list.Peer | None, dict | None]:
    """(the peer, None) when ``node_id`` may pull from us now, else (None, the error message)."""
    peer = peer_list.get(conn, node_id)
    fix = f"on {_our_name(conn)}: tessera peer add {node_id} --publish"
    if peer is None:
        return None, refusal("unknown_peer", f"{node_id[:10]} is not in this node's peer list", fix)
    if not peer.publish:
        return None, refusal("not_authorized", f"{node_id[:10]} ({printable(peer.name)}) is a peer this node does not publish to", fix)
    return peer, None


def answer(conn: sqlite3.Connection, node_id: str, request: dict, signing_key: Any) -> dict:
    """The answer to one checked request (``shares`` or ``pull``) from ``node_id`` (the id the
    transport proved): a ``share_list``, a ``page``, or one ``error``."""
    peer, refused = authorize(conn, node_id)
    if refused is not None:
        return refused
    kind = request.get("type")
    if kind == "shares":
        listed = [{"item": item, "kind": shares.kind_of(item), "items": shares.item_count(conn, item)}
                  for item in shares.granted(conn, node_id)]
        return message_types.make("share_list", shares=listed)
    if kind == "pull":
        item = request["share"]
        if not shares.is_granted(conn, node_id, item):
            return refusal("not_shared", f"'{printable(item[:300])}' is not shared with {printable(peer.name)}",
                           f"on {_our_name(conn)}: tessera peer share {printable(item[:200])} --with {node_id[:10]}")
        limit, cursor = request["limit"], request["cursor"]
        if not 1 <= limit <= pages.MAX_LIMIT or cursor < 0:
            return refusal("malformed", f"a pull needs a cursor from 0 and a limit from 1 to {pages.MAX_LIMIT}",
                           "send the cursor of the last page stored")
        return pages.build(conn, item, cursor, limit=limit, signing_key=signing_key)
    return refusal("unexpected", f"this node does not answer {printable(str(kind))[:40]} requests here",
                   "ask shares or pull")


def _our_name(conn: sqlite3.Connection) -> str:
    from tessera.core.peers.identity import default_name

    return printable(peer_list.stored_name(conn) or default_name())
