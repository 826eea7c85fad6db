"""The source protocol every plugin implements (registered under the ``tessera.sources`` entry point)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from tessera.core.kinds import KindInfo


@runtime_checkable
class Source(Protocol):
    """A named provider of resources.

    name: shown in errors, ``tessera kinds`` and graph node ids (a kube context name, a path...).
    writable: False for files and recordings (mutations are refused with a clear message).
    """

    name: str
    writable: bool

    def kinds(self) -> list[KindInfo]:
        """Every kind this source can list (built-in table, discovery, CRDs found)."""
        ...

    def list(
        self,
        kind: KindInfo,
        *,
        namespace: str | None = None,
        name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Resources of ``kind``; filters are pushed down where the source can.

        Args:
            kind: a KindInfo from ``kinds()``.
            namespace: None for all namespaces; ignored for cluster-scoped kinds.
            name: only the resource with this metadata.name.
            labels: only resources whose labels include all these pairs.
        Returns:
            plain dicts, each with apiVersion, kind and metadata.
        Raises:
            SourceUnavailable / NotAuthorized / SourceTimeout from tessera.core.errors.
        """
        ...
