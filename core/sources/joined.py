"""One source with another's kinds joined to it: ``-s knowledge`` beside a cluster, files or a
recording (core/sources/opening.py), so one query's MATCH reaches both and the relationship
rules join across them (``(c:Chunk)-[:MENTIONS]->(d:Deployment)``, docs/knowledge.md "One graph").

The joined source is the base source as far as anything else can tell: its name (a fan-out
labels rows with the context, not "knowledge"), its namespace, its writes and its other
capabilities are the base's, forwarded like core/secrets.py RedactingSource forwards them (an
attribute the base lacks is lacking here too). Only three things are its own: ``kinds`` (the
base's, then the added source's that the base does not have), ``list`` and the watch methods
(each kind goes to the source that has it), and ``text_scores`` / ``close``, which reach the added
source as well.
"""

from __future__ import annotations

from typing import Any

from tessera.core.kinds import KindInfo
from tessera.core.sources.protocol import ClosableSource, ScoringSource, WatchableSource


_WRITES = ("create", "patch", "delete", "api_path")


class JoinedSource:
    """``base`` with ``added``'s kinds (the base wins a kind both offer).

    Args:
        base: any source (a kube context, files, a recording, a store).
        added: a read-only source whose kinds are joined (the knowledge source).
    """

    def __init__(self, base: Any, added: Any):
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "added", added)
        # the added source's kinds, once: any other kind is the base's without asking it
        object.__setattr__(self, "_added_kinds", frozenset((k.group, k.kind) for k in added.kinds()))

    def __getattr__(self, attr: str) -> Any:
        if attr in ("list_versioned", "watch"):
            # watchable when both are: a kind is watched through the source that has it
            if not (isinstance(self.base, WatchableSource) and isinstance(self.added, WatchableSource)):
                raise AttributeError(attr)
            return getattr(self, f"_{attr}_routed")
        value = getattr(self.base, attr)
        if attr in _WRITES and callable(value):
            return self._writes_base_kinds_only(attr, value)
        return value

    def _writes_base_kinds_only(self, attr: str, write: Any) -> Any:
        """The base's write method, refusing the added source's kinds (the knowledge is read-only:
        a CREATE, SET or DELETE of a Chunk must not reach the cluster's API)."""
        def call(kind: KindInfo, *args: Any, **kwargs: Any) -> Any:
            if self._owner(kind) is self.added:
                from tessera.core.errors import ReadOnly

                raise ReadOnly(f"{kind.kind} objects come from '{self.added.name}', which is read-only",
                               hint="change them with tessera ingest; write only the cluster's resources")
            return write(kind, *args, **kwargs)
        return call

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self.base, attr, value)

    def __repr__(self) -> str:
        return f"JoinedSource({self.base!r}, {self.added!r})"

    def kinds(self) -> list[KindInfo]:
        """The base's kinds, then the added source's that the base does not offer."""
        own = self.base.kinds()
        have = {(k.group, k.kind) for k in own}
        return own + [k for k in self.added.kinds() if (k.group, k.kind) not in have]

    def _owner(self, kind: KindInfo) -> Any:
        key = (kind.group, kind.kind)
        if key not in self._added_kinds or any((k.group, k.kind) == key for k in self.base.kinds()):
            return self.base
        return self.added

    def list(self, kind: KindInfo, *, namespace: str | None = None, name: str | None = None,
             labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """``kind``'s resources from whichever source offers it."""
        return self._owner(kind).list(kind, namespace=namespace, name=name, labels=labels)

    def _list_versioned_routed(self, kind: KindInfo, *, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        return self._owner(kind).list_versioned(kind, namespace=namespace)

    def _watch_routed(self, kind: KindInfo, *, namespace: str | None, resource_version: str, stop: Any,
                      timeout: float = 30.0) -> Any:
        return self._owner(kind).watch(kind, namespace=namespace, resource_version=resource_version, stop=stop,
                                       timeout=timeout)

    @property
    def scored_kinds(self) -> tuple[tuple[str, str], ...]:
        """The added source's scored kinds (ScoringSource), or none."""
        return tuple(self.added.scored_kinds) if isinstance(self.added, ScoringSource) else ()

    def text_scores(self, text: str) -> dict[str, float]:
        """The added source's scores for ``text`` (ScoringSource), or none."""
        return self.added.text_scores(text) if isinstance(self.added, ScoringSource) else {}

    def close(self) -> None:
        """Close both (each that holds anything)."""
        try:
            if isinstance(self.base, ClosableSource):
                self.base.close()
        finally:
            if isinstance(self.added, ClosableSource):
                self.added.close()
