"""Plugins by name, from entry point groups (``tessera.sources``, ``tessera.cells``).

Tessera registers its bundled plugins in pyproject.toml like any third party, so core names no
plugin module. Tessera's own distribution is asked first, so a bundled name cannot be taken over
by another distribution; a name Tessera does not register is looked for in every distribution.
"""

from __future__ import annotations

from importlib import metadata

_DISTRIBUTION = "tessera"


def own(group: str) -> list[metadata.EntryPoint]:
    """Tessera's own entry points in ``group`` (sorted by name: the metadata keeps no order)."""
    try:
        return list(metadata.distribution(_DISTRIBUTION).entry_points.select(group=group))
    except metadata.PackageNotFoundError:
        return []


def find(group: str, name: str) -> metadata.EntryPoint | None:
    """The entry point registered as ``name`` in ``group`` (Tessera's own first), or None."""
    for ep in own(group):
        if ep.name == name:
            return ep
    for ep in metadata.entry_points(group=group, name=name):
        return ep
    return None


def names(group: str) -> list[str]:
    """Every name registered in ``group``: Tessera's own, then the others, each sorted."""
    bundled = [ep.name for ep in own(group)]
    return bundled + sorted({ep.name for ep in metadata.entry_points(group=group)} - set(bundled))
