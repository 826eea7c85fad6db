"""Schema migrations by component: each part of the store (the event log, notebooks; later peers,
knowledge, jobs) owns an ordered list of migrations, and the store records how far each has got.

A component's migrations live beside its code (``MIGRATIONS`` in the module named in
``COMPONENT_MODULES``); the store runs every component's missing migrations in one transaction,
components in the order listed (a later component may refer to an earlier one's tables).

Versions are kept in the table ``schema_components`` (component, version) once ``PRAGMA
user_version`` is ``COMPONENTS_SCHEMA``. Stores from before then kept one global user_version
(0 to 3); ``LEGACY_VERSIONS`` says what each meant per component, so they upgrade in place.
"""

from __future__ import annotations

import importlib
import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Component:
    """One part of the store's schema: its name and its migrations, each taking it from version
    i to i + 1. Never edit a migration that has shipped; add a new one."""

    name: str
    migrations: tuple[str, ...]

    @property
    def version(self) -> int:
        """The version its last migration reaches."""
        return len(self.migrations)


# The store's own tables: key/value facts (meta).
STORE = Component("store", (
    # 1: key/value facts about the store (the node id, the event chain's anchor before schema 4)
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
))

# Modules defining ``MIGRATIONS: Component``, in the order their migrations run (after STORE).
COMPONENT_MODULES = ("tessera.core.events_schema", "tessera.core.notebook.schema", "tessera.core.peers_schema",
                     "tessera.core.pairing_schema", "tessera.core.blobs_schema", "tessera.core.collab_schema",
                     "tessera.core.knowledge_schema", "tessera.core.jobs_schema", "tessera.core.nats_schema")

# user_version of a store whose versions are kept per component in ``schema_components``
COMPONENTS_SCHEMA = 4

# What the global user_version of older stores meant, per component (never change these)
LEGACY_VERSIONS: dict[int, dict[str, int]] = {
    0: {},
    1: {"events": 1},
    2: {"events": 1, "notebooks": 1},
    3: {"store": 1, "events": 1, "notebooks": 2},
}


def components() -> list[Component]:
    """Every component, in migration order."""
    return [STORE] + [importlib.import_module(name).MIGRATIONS for name in COMPONENT_MODULES]


def latest_versions() -> dict[str, int]:
    """The version this Tessera brings each component to."""
    return {c.name: c.version for c in components()}


def stored_versions(conn: sqlite3.Connection, user_version: int) -> dict[str, int]:
    """Each component's version in this store (a legacy store's, from its user_version)."""
    if user_version < COMPONENTS_SCHEMA:
        return dict(LEGACY_VERSIONS[user_version])
    return {name: version for name, version in conn.execute("SELECT component, version FROM schema_components")}


def statements(component: Component, start: int, stop: int) -> list[str]:
    """The SQL statements taking ``component`` from version ``start`` to ``stop``."""
    # executescript would COMMIT the open transaction; the statements are run one by one instead
    return [s.strip() for script in component.migrations[start:stop] for s in script.split(";") if s.strip()]
