"""Several read-only sources seen as one, so relationships cross files (``-s a.yaml -s dir/``)."""

from __future__ import annotations

from typing import Any

from tessera.core.kinds import KindInfo
from tessera.core.sources.protocol import RefreshableSource, Source, WarningSource


class UnionSource(Source, RefreshableSource, WarningSource):
    """The union of several sources: kinds merged (first spelling wins), lists concatenated.

    Args:
        parts: the sources, in command-line order.
    """

    writable = False

    def __init__(self, parts: list[Any]):
        self.parts = parts
        self.name = "+".join(p.name for p in parts)

    def kinds(self) -> list[KindInfo]:
        """Every kind any part offers, once per (group, kind)."""
        seen: dict[tuple[str, str], KindInfo] = {}
        for part in self.parts:
            for k in part.kinds():
                seen.setdefault((k.group, k.kind), k)
        return list(seen.values())

    def list(self, kind: KindInfo, *, namespace=None, name=None, labels=None) -> list[dict]:
        """Each part's matching resources, in part order; parts lacking the kind add nothing."""
        out: list[dict] = []
        for part in self.parts:
            if any((k.group, k.kind) == (kind.group, kind.kind) for k in part.kinds()):
                out.extend(part.list(kind, namespace=namespace, name=name, labels=labels))
        return out

    def take_warnings(self) -> list[str]:
        """Every part's reading warnings (see ManifestSource.take_warnings), each handed out once."""
        return [w for part in self.parts if isinstance(part, WarningSource) for w in part.take_warnings()]

    def refresh(self) -> None:
        """Refresh every part that can re-read its data."""
        for part in self.parts:
            if isinstance(part, RefreshableSource):
                part.refresh()
