"""The source protocol every plugin implements, and the optional capabilities core tests for.

A source is registered under the ``tessera.sources`` entry point group (core/sources/registry.py).
Every source satisfies ``Source``. A capability is a protocol of its own: core asks
``isinstance(source, WatchableSource)`` (all are ``runtime_checkable``), never probes attribute
names one by one. Wrappers that forward attributes with ``__getattr__`` (core/secrets.py
RedactingSource, core/watch/cached_source.py CachedSource) have exactly the capabilities of the
source they wrap: on Python 3.11 ``isinstance`` against a protocol looks members up with
``hasattr``, which reaches ``__getattr__``.

``isinstance`` checks only that the members exist, not their signatures; the docstrings here are
the contract, and tests/test_source_contract.py checks each bundled source against the
capabilities it declares.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from tessera.core.kinds import KindInfo


@runtime_checkable
class Source(Protocol):
    """A named provider of resources.

    name: shown in errors, ``tessera kinds`` and graph node ids (a kube context name, a path...).
    writable: False for files and recordings (mutations are refused with a clear message).

    Relationships between resources are not the source's business: the rules in force
    (core/rules.py, ``tessera.core.rules.rules_in_force``) join what ``list`` returns, so every
    object must carry apiVersion, kind and metadata (name, namespace, labels, ownerReferences,
    uid as the source has them) for the rules to match on.
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


@runtime_checkable
class WritableSource(Protocol):
    """A source that takes CREATE / SET / DELETE (core/mutate.py); it is writable only when its
    ``writable`` is also True."""

    writable: bool

    def create(self, kind: KindInfo, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Create ``obj``; returns the server's copy."""
        ...

    def patch(self, kind: KindInfo, namespace: str | None, name: str, ops: list[dict[str, Any]], *,
              dry_run: bool = False) -> dict[str, Any]:
        """Apply JSON-patch ``ops`` to one object; returns the server's copy."""
        ...

    def delete(self, kind: KindInfo, namespace: str | None, name: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Delete one object; returns the server's answer."""
        ...

    def api_path(self, kind: KindInfo, namespace: str | None, name: str | None = None) -> str:
        """The API path a call on this object goes to (shown in plans)."""
        ...


@runtime_checkable
class TimeTravelSource(Protocol):
    """A source that can answer as of a moment (``AT "..."`` queries; recordings)."""

    def set_at(self, when: datetime | None) -> None:
        """Answer later lists as of ``when`` (None: the latest state)."""
        ...


@runtime_checkable
class RediscoverableSource(Protocol):
    """A source whose kinds may come from a cache that can be stale (a new CRD is not in it)."""

    kinds_cached: bool  # True when the last kinds() came from a cache

    def rediscover(self) -> None:
        """Drop the cached kinds; the next kinds() asks the server."""
        ...


@runtime_checkable
class DefaultNamespaceSource(Protocol):
    """A source with a namespace of its own (a kube context's); None means all namespaces."""

    default_namespace: str | None


@runtime_checkable
class ClosableSource(Protocol):
    """A source holding connections or files to release when its user is done."""

    def close(self) -> None:
        ...


@runtime_checkable
class PingableSource(Protocol):
    """A source that can check its server answers (watch caches' heartbeat)."""

    def ping(self, timeout: float) -> None:
        """Return when the server answers within ``timeout`` seconds; raise SourceUnavailable /
        SourceTimeout when it does not."""
        ...


@runtime_checkable
class BoundedRequestsSource(Protocol):
    """A source that bounds its own requests; watch caches wait that long for a first list."""

    request_timeout: float | None


@runtime_checkable
class ConcurrentSource(Protocol):
    """A source that says whether several lists at once pay off (``concurrent``: a server with
    latency, yes; memory or files, no). Sources without it are listed one kind at a time."""

    concurrent: bool


@runtime_checkable
class RefreshableSource(Protocol):
    """A source that can re-read its data (manifest files after an edit)."""

    def refresh(self) -> None:
        ...


def refresh_sources(sources: Any) -> None:
    """Let every source that can re-read its data (files after an edit) do so, each once."""
    seen: set[int] = set()
    for source in sources:
        if id(source) not in seen and isinstance(source, RefreshableSource):
            seen.add(id(source))
            source.refresh()


@runtime_checkable
class WarningSource(Protocol):
    """A source with warnings from reading (e.g. List items a manifest file held that are not
    objects); the engine adds them to the result."""

    def take_warnings(self) -> list[str]:
        """The warnings since the last call, each handed out once."""
        ...


@runtime_checkable
class ScoringSource(Protocol):
    """A source that ranks its objects against a text (the knowledge source: ``search("TEXT")`` in
    queries, core/query/evaluate.py, asks it once per distinct text in a run).

    scored_kinds: the (group, Kind) pairs whose objects it scores (``("tessera.dev", "Chunk")``).
    """

    scored_kinds: tuple[tuple[str, str], ...]

    def text_scores(self, text: str) -> dict[str, float]:
        """metadata.uid -> score in (0, 1] (higher is better) of every object matching ``text``;
        objects that do not match are left out (they score 0).

        Raises:
            QueryError (exit 1) for text the source cannot search (bad full-text syntax).
        """
        ...


@runtime_checkable
class ContextCatalog(Protocol):
    """A source class that can name the contexts it could open (``tessera info``); tested on the
    class from the registry, so nothing is opened."""

    def available_contexts(self, kubeconfig: str | None = None) -> tuple[list[str], str | None]:
        """(context names, the current one or None); raises SourceUnavailable when there is no
        readable configuration."""
        ...


@runtime_checkable
class LabelledSource(Protocol):
    """A source that names the column labelling its rows in a fan-out (stores and peers'
    replicas: ``source``); the rows of sources without it are labelled ``context``."""

    fan_out_column: str


def fan_out_column(sources: Any) -> str:
    """The leading column of a fan-out's rows: the first LabelledSource's choice, else ``context``
    (kube contexts, recordings)."""
    for source in sources:
        if isinstance(source, LabelledSource):
            return source.fan_out_column
    return "context"


def default_namespace(source: Any) -> str | None:
    """The source's own namespace scope (None: all namespaces, also for sources without one)."""
    return source.default_namespace if isinstance(source, DefaultNamespaceSource) else None


def can_write(source: Any) -> bool:
    """True when the source takes writes: it has the write methods and says it is writable."""
    return isinstance(source, WritableSource) and bool(source.writable)
