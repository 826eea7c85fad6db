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


# Optional: ``take_warnings() -> list[str]``, warnings from reading (e.g. List items a manifest
# file held that are not objects), each handed out once; the engine adds them to the result.

# A watch event: ("ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK", object dict).
WatchEvent = tuple[str, dict[str, Any]]


@runtime_checkable
class WatchableSource(Protocol):
    """A source that can stream changes; watch caches (core/watch/) use it when present.

    Sources without these methods are polled (``--interval``).
    """

    def list_versioned(self, kind: KindInfo, *, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """All resources of ``kind`` (in ``namespace``, or all) and the resourceVersion they are as of."""
        ...

    def watch(
        self, kind: KindInfo, *, namespace: str | None, resource_version: str, stop: Any, timeout: float = 30.0
    ) -> Any:
        """Yield WatchEvents after ``resource_version`` until ``stop`` (a threading.Event) is set,
        the server ends the stream, or ``timeout`` seconds pass with the stream open.

        A source that talks to a server should open the stream in the call itself (raising when it
        cannot) and return the iterator: watch caches take a returned stream as proof the server
        answers (core/watch/cache.py health). A generator function is fine for local sources.

        Raises:
            WatchExpired when resource_version is too old (relist, then watch again);
            SourceUnavailable / NotAuthorized / SourceTimeout as ``list`` does.
        """
        ...
