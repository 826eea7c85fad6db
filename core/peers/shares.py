"""What this node shares, and with whom: the lookups over the store's ``peer_shares`` table.

A share item is ``notebook:NAME``, ``events:SUBJECT_PATTERN`` (NATS-style, core/events.py) or
``knowledge:/CANONICAL/PATH`` (what was ingested under that path: core/peers/knowledge_share.py).
Each row grants one item to one peer (its node id) or to every peer this node publishes to
('*'). Nothing leaves this node that is not granted here ("private by default"); the server
side (core/peers/requests.py) asks ``granted`` on every request.
"""

from __future__ import annotations

import sqlite3

from tessera.core.errors import UsageError, printable

EVERY_PEER = "*"
KINDS = ("notebook", "events", "knowledge")


def parse_item(text: str) -> str:
    """A share item in its one form, from what a user typed: a bare notebook NAME means
    ``notebook:NAME``; a knowledge PATH is canonicalised (``~`` expanded, made absolute, symlinks
    resolved), so ``knowledge:~/notes`` and ``knowledge:/home/me/notes`` are one share.

    Raises:
        UsageError naming what is wrong (escaped) and the forms accepted.
    """
    kind, sep, target = text.partition(":")
    if sep and kind == "knowledge":
        from tessera.core.peers import knowledge_share

        return _checked_item(text, f"knowledge:{knowledge_share.canonical_path(target)}")
    return _checked_item(text, text)


def check_received(item: str) -> str:
    """``item`` as a peer sent it (a share list, a page), checked for its form only: nothing
    about it is resolved on this machine (a knowledge share's path is the sender's).

    Raises:
        UsageError naming what is wrong.
    """
    if kind_of(item) == "knowledge":
        from tessera.core.peers import knowledge_share

        knowledge_share.check_path(target_of(item))
    return _checked_item(item, item)


_HINT = ("share a notebook as NAME or notebook:NAME, events as events:SUBJECT_PATTERN (e.g. events:deploy.>), "
         "what was ingested under a path as knowledge:PATH")


def _checked_item(text: str, item: str) -> str:
    from tessera.core import events
    from tessera.core.notebook.repository import NAME_RE
    from tessera.core.peers.message_types import MAX_SHARE_CHARS

    kind, sep, target = item.partition(":")
    if not sep:
        kind, target = "notebook", item
    if kind == "notebook":
        if not NAME_RE.match(target):
            raise UsageError(f"'{printable(text)}' is not a notebook name (letters, digits, _ and -)", hint=_HINT)
    elif kind == "events":
        try:
            events.check_subject(target, pattern=True)
        except UsageError as exc:
            raise UsageError(printable(exc.message), hint=_HINT) from None
    elif kind != "knowledge":
        raise UsageError(f"'{printable(text)}' is not a share: '{printable(kind)}' is not a kind of share", hint=_HINT)
    item = f"{kind}:{target}"
    if len(item) > MAX_SHARE_CHARS:  # what a pull or a page may name (core/peers/message_types.py)
        raise UsageError(f"the share '{printable(item[:80])}…' is {len(item)} characters long; a share is at most "
                         f"{MAX_SHARE_CHARS}", hint="share a shorter path (a parent folder) or pattern")
    return item


def kind_of(item: str) -> str:
    """``notebook``, ``events`` or ``knowledge``."""
    return item.partition(":")[0]


def target_of(item: str) -> str:
    """The notebook name, the subject pattern or the knowledge share's path."""
    return item.partition(":")[2]


NOTEBOOK_EVENTS = "notebook"  # the first token of the notebooks' change events (notebook.NAME.ACTION)


def event_shared(pattern: str, subject: str) -> bool:
    """Whether an events share of ``pattern`` carries the event ``subject``: it matches, and it is
    not a notebook's change event unless the pattern names notebook events itself. Those events
    hold what changed (cell sources included), so ``events:>`` must not carry the content of
    notebooks that are not shared; ``events:notebook.ops.>`` does, as it says."""
    from tessera.core.events import subject_matches

    if subject.startswith("notebook.") and pattern.split(".", 1)[0] != NOTEBOOK_EVENTS:
        return False
    return subject_matches(pattern, subject)


def add(conn: sqlite3.Connection, item: str, node_ids: list[str], *, added_at: str) -> int:
    """Grant ``item`` to each node id (or EVERY_PEER); returns how many grants are new."""
    cursor = conn.executemany("INSERT OR IGNORE INTO peer_shares(item, node_id, added_at) VALUES (?, ?, ?)",
                              [(item, n, added_at) for n in node_ids])
    return cursor.rowcount


def remove(conn: sqlite3.Connection, item: str, node_ids: list[str] | None = None) -> int:
    """Take back ``item`` from these node ids (None: from everyone, '*' included); returns how
    many grants were removed."""
    if node_ids is None:
        return conn.execute("DELETE FROM peer_shares WHERE item = ?", (item,)).rowcount
    return conn.executemany("DELETE FROM peer_shares WHERE item = ? AND node_id = ?",
                            [(item, n) for n in node_ids]).rowcount


def grants(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Every item shared, with the node ids (or '*') it is granted to, by item."""
    out: dict[str, list[str]] = {}
    for item, node_id in conn.execute("SELECT item, node_id FROM peer_shares ORDER BY item, node_id"):
        out.setdefault(item, []).append(node_id)
    return out


def granted(conn: sqlite3.Connection, node_id: str) -> list[str]:
    """The items ``node_id`` may pull: granted to it or to every peer (sorted, each once). Whether
    it may connect at all (a peer we publish to) is the peer list's answer, not this one's."""
    return [r[0] for r in conn.execute("SELECT DISTINCT item FROM peer_shares WHERE node_id IN (?, ?) ORDER BY item",
                                       (node_id, EVERY_PEER))]


def is_granted(conn: sqlite3.Connection, node_id: str, item: str) -> bool:
    return conn.execute("SELECT 1 FROM peer_shares WHERE item = ? AND node_id IN (?, ?)",
                        (item, node_id, EVERY_PEER)).fetchone() is not None


def item_count(conn: sqlite3.Connection, item: str) -> int:
    """How many items the share holds now: a notebook's stored updates, this node's own events
    the share carries (``event_shared``), or the documents ingested under a knowledge share's path."""
    from tessera.core import events

    if kind_of(item) == "notebook":
        return conn.execute("SELECT count(*) FROM notebook_updates u JOIN notebooks n ON n.id = u.notebook_id "
                            "WHERE n.name = ?", (target_of(item),)).fetchone()[0]
    if kind_of(item) == "knowledge":
        from tessera.core.peers import knowledge_share

        return knowledge_share.document_count(conn, target_of(item))
    actor = events.local_actor(conn)
    if actor is None:
        return 0
    pattern = target_of(item)
    # counted per subject in SQL: a share list is asked for first on every pull, and matching
    # each of 100 000 rows in Python held the pull up by most of a second
    return sum(n for subject, n in conn.execute("SELECT subject, count(*) FROM events WHERE actor = ? GROUP BY subject",
                                                (actor,))
               if event_shared(pattern, subject))
