"""The pull: ask a peer which shares it gives us, then pull each one page by page from the
cursor stored in its replica until the peer says there is no more, filing every page with
core/peers/replica.py (page and cursor in one transaction). The next page is asked for as soon
as a page arrives, before it is filed, so the peer builds page n+1 while we check page n.

The channel is anything with ``async send(dict)`` and ``async recv() -> dict`` (recv raising
hello.PeerRefused for an error frame): core/peers/channel.py over iroh, or two queues in tests.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from tessera.core.errors import EXIT_OK, TesseraError, printable
from tessera.core.peers import message_types, pages, rate_limit, replica, shares
from tessera.core.peers.frames import ProtocolError

PAGE_LIMIT = pages.MAX_LIMIT
# A peer's serve refuses requests past its rate limit (core/peers/rate_limit.py: 20 a second,
# bursts of 40) and closes the connection, so a pull paces its requests under that: the same
# rate, a burst kept 5 short for the requests another connection of ours may have made.
PACE_RATE = rate_limit.DEFAULT_RATE
PACE_BURST = rate_limit.DEFAULT_BURST - 5


class Channel(Protocol):
    async def send(self, message: dict) -> Any: ...

    async def recv(self) -> dict: ...


@dataclass
class ShareReport:
    items: int = 0  # items stored by this pull
    pages: int = 0
    cursor: int = 0  # the cursor stored at the end


@dataclass
class SyncReport:
    peer: str
    node_id: str
    shares: dict[str, ShareReport] = field(default_factory=dict)
    error: str | None = None
    exit_code: int = EXIT_OK

    @property
    def items(self) -> int:
        return sum(s.items for s in self.shares.values())

    @property
    def ok(self) -> bool:
        return self.error is None


def report_line(report: SyncReport) -> dict:
    """The JSON line ``peer sync`` prints for one peer."""
    return {"peer": report.peer, "node_id": report.node_id,
            "shares": {item: {"items": s.items, "pages": s.pages, "cursor": s.cursor} for item, s in report.shares.items()},
            "items": report.items, "status": "ok" if report.ok else "error", "error": report.error}


OnPage = Callable[[str, int, int], "Awaitable[None] | None"]


async def pull(channel: Channel, conn: sqlite3.Connection, peer: Any, *, full: bool = False,
               on_page: OnPage | None = None) -> SyncReport:
    """Pull everything ``peer`` (a peer_list.Peer) shares with us into its replica.

    Args:
        conn: the local store (the replica lives beside it; the outcome is recorded in the peer
            list: ``last_sync`` on success, ``last_error`` on failure).
        full: ignore the stored cursors and rebuild the replica from cursor 0, in one transaction:
            a pull killed or refused half way leaves the old replica whole.
        on_page: called with (share, items stored, cursor) after each page is stored.
    Returns:
        the SyncReport; a failure (the peer refused, a page was refused, the connection broke)
        is in ``error`` (one line) and ``exit_code``, never raised. What was stored before the
        failure stays (each page is whole), except with ``full``.
    """
    from tessera.core.peers import peer_list
    from tessera.core.store.db import transaction
    from tessera.core.times import now

    report = SyncReport(peer.name, peer.node_id)
    target = replica.open_for_write(peer.node_id, conn.path)
    replica.prepare_for_bulk(target)
    try:
        if full:
            with transaction(target):
                _empty(target)
                await _pull_shares(channel, target, peer, report, on_page)
        else:
            await _pull_shares(channel, target, peer, report, on_page)
    except TesseraError as exc:
        report.error, report.exit_code = exc.one_line(), exc.exit_code
    finally:
        replica.end_bulk(target)
        target.close()
    with transaction(conn):
        peer_list.record_sync(conn, peer.node_id, when=now(), error=report.error)
    return report


def _empty(target: sqlite3.Connection) -> None:
    for table in ("sync_cursors", "events", "event_chains", "notebook_updates", "notebooks", "knowledge_fts",
                  "knowledge_chunks", "knowledge_documents", "knowledge_changes"):
        target.execute(f"DELETE FROM {table}")


async def _pull_shares(channel: Channel, target: sqlite3.Connection, peer: Any, report: SyncReport,
                       on_page: OnPage | None) -> None:
    pace = rate_limit.TokenBucket(PACE_RATE, PACE_BURST)
    await _paced(pace)
    await channel.send(message_types.make("shares"))
    answer = await _receive(channel, "share_list")
    items = []
    for entry in answer["shares"]:
        item = entry.get("item") if isinstance(entry, dict) else None
        if not isinstance(item, str) or ":" not in item or not _well_formed(item):
            raise ProtocolError("malformed", f"{printable(peer.name)} listed a share that is not one: {printable(repr(item))[:80]}")
        items.append(item)
    for item in dict.fromkeys(items):  # each once, whatever the peer listed
        cursor = replica.cursors(target).get(item, 0)
        share = report.shares[item] = ShareReport(cursor=cursor)
        more = True
        await _paced(pace)
        await channel.send(message_types.make("pull", share=item, cursor=cursor, limit=PAGE_LIMIT))
        while more:
            page = await _receive(channel, "page")
            if page["share"] != item:
                raise ProtocolError("unexpected", f"{printable(peer.name)} answered a pull of {item} with a page of "
                                                  f"{printable(page['share'])}")
            ask_next = page["more"] and page["cursor_to"] != cursor
            if ask_next and pace.take() == 0:
                # Ask for the next page before filing this one, so the peer builds it while we check
                # and store this one. Should this page be refused, the answer is never read: the
                # pull stops and the connection closes.
                await channel.send(message_types.make("pull", share=item, cursor=page["cursor_to"], limit=PAGE_LIMIT))
                ask_next = False
            # overlap: a live subscription (serve) may have filed part of this page meanwhile; what
            # it filed is skipped by hash, and a page past the stored cursor is still a gap
            added = replica.apply(target, peer.node_id, page, overlap=True)
            if ask_next:  # over the pace: filed first, then asked when the peer allows it
                await _paced(pace)
                await channel.send(message_types.make("pull", share=item, cursor=page["cursor_to"], limit=PAGE_LIMIT))
            share.items += added
            share.pages += 1
            if page["cursor_to"] == cursor and page["more"]:
                raise ProtocolError("unexpected", f"{printable(peer.name)} sent a page of {item} that moves nowhere "
                                                  "but says there is more")
            cursor = share.cursor = page["cursor_to"]
            more = page["more"]
            if on_page is not None:
                result = on_page(item, added, cursor)
                if result is not None:
                    await result


def _well_formed(item: str) -> bool:
    try:
        return shares.check_received(item) == item
    except TesseraError:
        return False


async def _paced(pace: rate_limit.TokenBucket) -> None:
    """Wait until ``pace`` allows one more request, and take it."""
    import asyncio

    while (wait := pace.take()) > 0:
        await asyncio.sleep(wait)


async def _receive(channel: Channel, expected: str) -> dict:
    message = message_types.check(await channel.recv())
    if message["type"] == "error":  # a channel that hands error frames on instead of raising
        from tessera.core.peers.hello import PeerRefused

        raise PeerRefused(message["code"], message["message"], fix=message["fix"])
    if message["type"] != expected:
        raise ProtocolError("unexpected", f"expected a {expected} message, got {message['type']}")
    return message
