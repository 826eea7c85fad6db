"""Source classes by name, from the ``tessera.sources`` entry point group (core/entry_points.py:
the bundled sources are registered in pyproject.toml like a third party's, so core names no
plugin module, and a bundled name cannot be taken over by another distribution).
"""

from __future__ import annotations

from typing import Any

from tessera.core import entry_points
from tessera.core.errors import SourceUnavailable

GROUP = "tessera.sources"


def source_class(name: str) -> Any:
    """The class (or factory) registered as ``name``.

    Raises:
        SourceUnavailable when no installed distribution registers ``name``.
    """
    ep = entry_points.find(GROUP, name)
    if ep is not None:
        return ep.load()
    raise SourceUnavailable(
        f"no source plugin named '{name}' is installed",
        hint=f"install the package that provides it (it registers a '{GROUP}' entry point); "
        "for the bundled sources reinstall tessera (make setup)",
    )


def source_names() -> list[str]:
    """Every registered source name, sorted."""
    return sorted(entry_points.names(GROUP))
