"""The store's events and notebooks as Kubernetes-shaped objects, for the ``local`` / ``peer:NAME``
/ ``peers`` sources (plugins/sources/stores.py).

Two kinds under the API group ``tessera.dev/v1``, both cluster-scoped, named so they do not clash
with Kubernetes' own ``Event``: ``LogEvent`` (``logevents``, ``lev``) and ``Notebook``
(``notebooks``, ``nb``). metadata.name is the event id / the notebook name, metadata.uid the
event id / the notebook's stable id, metadata.creationTimestamp the event time / the notebook's
creation, metadata.resourceVersion a number that grows with each change (the event's arrival
position; the notebook's latest stored update); the fields sit at the top level (``e.subject``, ``n.title``, ``n.cells``), as
docs/peers.md ("Replicas in queries") lists them.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tessera.core.kinds import KindInfo

GROUP = "tessera.dev"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
_VERBS = ("list", "get")

LOG_EVENT = KindInfo(GROUP, VERSION, "LogEvent", "logevents", "logevent", ("lev",), namespaced=False, verbs=_VERBS)
NOTEBOOK = KindInfo(GROUP, VERSION, "Notebook", "notebooks", "notebook", ("nb",), namespaced=False, verbs=_VERBS)
KINDS = (LOG_EVENT, NOTEBOOK)


def log_events(conn: sqlite3.Connection, *, name: str | None = None) -> list[dict[str, Any]]:
    """Every event of the store (in arrival order) as a LogEvent; only the one with id ``name``
    when given."""
    from tessera.core import events

    found = events.read(conn) if name is None else _event_by_id(conn, name)
    return [log_event(e) for e in found]


def _event_by_id(conn: sqlite3.Connection, event_id: str) -> list[Any]:
    from tessera.core import events

    row = conn.execute("SELECT rowid FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        return []
    return events.read(conn, after_position=row[0] - 1, limit=1)


def log_event(event: Any) -> dict[str, Any]:
    """One core.events.Event as a LogEvent object."""
    return {
        "apiVersion": API_VERSION, "kind": "LogEvent",
        "metadata": {"name": event.id, "uid": event.id, "creationTimestamp": event.time,
                     "resourceVersion": str(event.position)},
        "subject": event.subject, "type": event.type, "actor": event.actor, "seq": event.seq, "time": event.time,
        "correlation": event.correlation, "data": event.data, "prev_hash": event.prev_hash, "hash": event.hash,
    }


def notebooks(conn: sqlite3.Connection, *, name: str | None = None) -> list[dict[str, Any]]:
    """Every notebook of the store (by name) as a Notebook object; only ``name`` when given."""
    sql = "SELECT id, name, created, updated FROM notebooks"
    rows = conn.execute(sql + " ORDER BY name" if name is None else sql + " WHERE name = ?",
                        () if name is None else (name,)).fetchall()
    if not rows:
        return []
    from tessera.core.notebook.repository import load_by_id

    out = []
    for nid, nb_name, created, updated in rows:
        nb = load_by_id(conn, nid)
        version = conn.execute("SELECT coalesce(max(id), 0) FROM notebook_updates WHERE notebook_id = ?", (nid,)).fetchone()[0]
        cells = [{"number": c["number"], "row": c["row"], "id": c["id"], "type": c["type"], "title": c["title"],
                  "view": c["view"], "refresh": c["refresh"], "sources": c["sources"], "source": c["source"]}
                 for c in nb.cells()]
        out.append({
            "apiVersion": API_VERSION, "kind": "Notebook",
            "metadata": {"name": nb_name, "uid": nid, "creationTimestamp": created, "resourceVersion": str(version)},
            "title": nb.title, "cells": cells, "updated": updated,
        })
    return out
