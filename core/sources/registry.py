"""Source classes by name, from the ``tessera.sources`` entry point group.

The bundled sources (manifests, demo, kubernetes, replay) are registered in pyproject.toml like
any third-party one, so core names no plugin module. Tessera's own distribution is asked first,
so a bundled name cannot be taken over by another distribution; a name Tessera does not register
is looked for in every distribution, so a third party adds a source by registering it there.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from tessera.core.errors import SourceUnavailable

GROUP = "tessera.sources"
_DISTRIBUTION = "tessera"


def _own_entry_points() -> list[metadata.EntryPoint]:
    try:
        return list(metadata.distribution(_DISTRIBUTION).entry_points.select(group=GROUP))
    except metadata.PackageNotFoundError:
        return []


def source_class(name: str) -> Any:
    """The class (or factory) registered as ``name``.

    Raises:
        SourceUnavailable when no installed distribution registers ``name``.
    """
    for ep in _own_entry_points():
        if ep.name == name:
            return ep.load()
    for ep in metadata.entry_points(group=GROUP, name=name):
        return ep.load()
    raise SourceUnavailable(
        f"no source plugin named '{name}' is installed",
        hint=f"install the package that provides it (it registers a '{GROUP}' entry point); "
        "for the bundled sources reinstall tessera (make setup)",
    )


def source_names() -> list[str]:
    """Every registered source name, sorted."""
    return sorted({ep.name for ep in metadata.entry_points(group=GROUP)})
