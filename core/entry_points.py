"""Plugins by name, from entry point groups (``tessera.sources``, ``tessera.cells``).

Tessera registers its bundled plugins in pyproject.toml like any third party, so core names no
plugin module. Tessera's own distribution is asked first, so a bundled name cannot be taken over
by another distribution; a name Tessera does not register is looked for in every distribution.

A front end that knows Tessera's own entry points (the CLI, from plugins/bundled.py) hands them to
``know_own`` first, so finding a bundled plugin reads no installed metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib import metadata

_DISTRIBUTION = "tessera"
_known_own: dict[str, dict[str, str]] = {}


class KnownEntryPoint:
    """One of Tessera's own entry points as a front end declared it: loads like an EntryPoint."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def load(self) -> Any:
        import importlib

        module, _, attr = self.value.partition(":")
        return getattr(importlib.import_module(module), attr)


def know_own(groups: dict[str, dict[str, str]]) -> None:
    """Declare Tessera's own entry points (group -> name -> "module:attr"), as pyproject.toml
    registers them, so ``find`` answers for them without reading installed metadata."""
    for group, points in groups.items():
        _known_own.setdefault(group, {}).update(points)


def own(group: str) -> list[metadata.EntryPoint]:
    """Tessera's own entry points in ``group`` (sorted by name: the metadata keeps no order),
    read from the installed metadata."""
    from importlib import metadata

    try:
        return list(metadata.distribution(_DISTRIBUTION).entry_points.select(group=group))
    except metadata.PackageNotFoundError:
        return []


def find(group: str, name: str) -> metadata.EntryPoint | KnownEntryPoint | None:
    """The entry point registered as ``name`` in ``group`` (Tessera's own first), or None."""
    value = _known_own.get(group, {}).get(name)
    if value is not None:
        return KnownEntryPoint(name, value)
    from importlib import metadata

    for ep in own(group):
        if ep.name == name:
            return ep
    for ep in metadata.entry_points(group=group, name=name):
        return ep
    return None


def names(group: str) -> list[str]:
    """Every name registered in ``group``: Tessera's own, then the others, each sorted."""
    from importlib import metadata

    bundled = [ep.name for ep in own(group)]
    return bundled + sorted({ep.name for ep in metadata.entry_points(group=group)} - set(bundled))
