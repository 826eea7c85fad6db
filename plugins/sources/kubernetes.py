"""A live Kubernetes cluster as a source, through the official ``kubernetes`` client.

Discovery gives the kinds (with short names and scope); each ``list`` is one HTTP list call with
namespace, name (fieldSelector) and labels (labelSelector) pushed down. Responses are read raw and
parsed with orjson, which is several times faster than the client's model deserialisation. The
``kubernetes`` package is imported only when a live source is opened (it costs ~0.3 s).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from tessera.core.errors import NotAuthorized, QueryError, SourceTimeout, SourceUnavailable, WatchExpired
from tessera.core.kinds import KindInfo
from tessera.core.sources.protocol import (
    BoundedRequestsSource,
    ClosableSource,
    ConcurrentSource,
    ContextCatalog,
    DefaultNamespaceSource,
    PingableSource,
    RediscoverableSource,
    Source,
    WatchableSource,
    WritableSource,
)

_CONNECT_TIMEOUT = 5.0  # seconds to open a connection (at most the request timeout)
_PAGE = 500  # items per list page, as kubectl uses
# TCP keepalive on every connection: an idle watch whose server vanished without closing it (a
# dead node, a dropped network) fails after about KEEPALIVE_IDLE + KEEPALIVE_INTERVAL *
# KEEPALIVE_PROBES = 4 s, instead of when the next event is overdue (minutes). Probes are a few
# bytes each and only flow on idle connections.
KEEPALIVE_IDLE = 2
KEEPALIVE_INTERVAL = 1
KEEPALIVE_PROBES = 2


def _kubeconfig_path(kubeconfig: str | None) -> Path:
    from tessera.core.config import kubeconfig_path

    return kubeconfig_path(kubeconfig)


def available_contexts(kubeconfig: str | None = None) -> tuple[list[str], str | None]:
    """The context names of a kubeconfig, and the current one (read without the kubernetes package).

    Args:
        kubeconfig: a path; default $KUBECONFIG, then ~/.kube/config.
    Returns:
        (names, current context or None).
    Raises:
        SourceUnavailable when there is no readable kubeconfig.
    """
    contexts, current = kubeconfig_contexts(kubeconfig)
    return [c["name"] for c in contexts], current


def kubeconfig_contexts(kubeconfig: str | None = None) -> tuple[list[dict[str, str]], str | None]:
    """The contexts of a kubeconfig, each ``{"name", "cluster", "user", "namespace"}`` ("" when
    unset), and the current context's name (read with PyYAML alone: shell completion uses it).

    Args:
        kubeconfig: a path; default $KUBECONFIG, then ~/.kube/config.
    Raises:
        SourceUnavailable when there is no readable kubeconfig.
    """
    from tessera.core.config import max_input_bytes
    from tessera.core.documents import load_yaml_documents
    from tessera.core.errors import InputError
    from tessera.core.inputs import decode_text, read_path

    path = _kubeconfig_path(kubeconfig)
    try:
        # The same limits as manifests (size, UTF-8, depth, aliases): a hostile file is refused
        # here, before the kubernetes package parses it without them.
        docs = load_yaml_documents(decode_text(read_path(path, limit=max_input_bytes()), str(path)), str(path))
    except SourceUnavailable:
        raise SourceUnavailable(
            f"no kubeconfig at {path}", hint="pass --kubeconfig, set KUBECONFIG, or query manifests with -s"
        ) from None
    except InputError as exc:
        raise SourceUnavailable(f"cannot read kubeconfig: {exc.message}", hint=exc.hint) from None
    data = docs[0] if docs and isinstance(docs[0], dict) else {}
    entries = data.get("contexts") if isinstance(data.get("contexts"), list) else []
    contexts = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        fields = entry.get("context") if isinstance(entry.get("context"), dict) else {}
        contexts.append({"name": str(entry["name"]),
                         **{k: str(fields.get(k) or "") for k in ("cluster", "user", "namespace")}})
    current = data.get("current-context")
    return contexts, str(current) if current else None


class KubernetesSource(Source, WatchableSource, WritableSource, RediscoverableSource, DefaultNamespaceSource,
                       ClosableSource, PingableSource, BoundedRequestsSource, ConcurrentSource, ContextCatalog):
    """One kube context.

    Args:
        context: the context name (default: the kubeconfig's current context).
        kubeconfig: the kubeconfig path (default: $KUBECONFIG, then ~/.kube/config).
        request_timeout: seconds one API request may take, 0 for no limit (default:
            config.request_timeout(), which --request-timeout sets). A watch is bounded while it
            waits for the server to accept it; once open it may stay quiet.
    Raises:
        SourceUnavailable when the kubeconfig or the context cannot be used.
    """

    # ContextCatalog (core/sources/protocol.py): `tessera info` lists the contexts through the class
    available_contexts = staticmethod(available_contexts)

    writable = True
    concurrent = True

    def __init__(self, context: str | None = None, kubeconfig: str | None = None,
                 request_timeout: float | None = None):
        from tessera.core.config import request_timeout as configured_timeout

        self.kubeconfig = str(_kubeconfig_path(kubeconfig))
        self.request_timeout = (configured_timeout() if request_timeout is None else request_timeout) or None
        names, current = available_contexts(self.kubeconfig)
        name = context or current
        if not name:
            raise SourceUnavailable(
                f"kubeconfig {self.kubeconfig} has no current context", hint="pass --context NAME"
            )
        if name not in names:
            raise SourceUnavailable(
                f"no context named '{name}' in {self.kubeconfig}",
                hint=f"contexts: {', '.join(names) or 'none'}",
            )
        self.name = name
        self._client: Any = None
        self._lock = threading.Lock()
        self._kinds: list[KindInfo] | None = None
        self._streams: set[Any] = set()
        self.kinds_cached = False
        self.default_namespace = "default"
        self._open()

    def _open(self) -> None:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        configuration = client.Configuration()
        try:
            loader = config.kube_config._get_kube_config_loader(  # noqa: SLF001 - the public helper hides the context
                filename=self.kubeconfig, active_context=self.name
            )
            loader.load_and_set(configuration)
        except (ConfigException, OSError, KeyError, ValueError) as exc:
            raise SourceUnavailable(f"cannot use context '{self.name}' from {self.kubeconfig}: {exc}") from None
        configuration.retries = 0
        from kubernetes.utils.keepalive import tcp_keepalive_socket_options

        configuration.socket_options = tcp_keepalive_socket_options(KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES)
        self._server = configuration.host
        self._client = client.ApiClient(configuration)
        namespace = (loader.current_context.get("context") or {}).get("namespace")
        self.default_namespace = namespace or "default"

    # --- HTTP ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        *,
        what: str,
        body: Any = None,
        content_type: str = "application/json",
        stream: bool = False,
        limit: float | None = None,
    ) -> Any:
        """One API call, bounded by ``request_timeout`` (connecting, then each wait for the
        server), or by ``limit`` when that is shorter; returns the parsed JSON body (or the raw
        response when ``stream``).

        Every failure becomes a typed error naming the context: 401/403 NotAuthorized, 404
        QueryError, 410 WatchExpired, timeouts SourceTimeout, anything else SourceUnavailable.
        """
        import orjson
        import urllib3
        from kubernetes.client.exceptions import ApiException

        if self.request_timeout and (limit is None or self.request_timeout < limit):
            limit = self.request_timeout
        timeout = (min(_CONNECT_TIMEOUT, limit) if limit else _CONNECT_TIMEOUT, limit)
        try:
            headers = {"Accept": "application/json"}
            if body is not None:
                headers["Content-Type"] = content_type
            method, url, headers, _, _ = self._client.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params=headers,
                auth_settings=["BearerToken"],
            )
            response = self._client.call_api(
                method, url, header_params=headers,
                body=body,
                _request_timeout=timeout,
            )
            if not 200 <= response.status < 300:
                raise ApiException(status=response.status, reason=response.reason, body=response.read())
            if stream:
                return response.response
            return orjson.loads(response.read())
        except ApiException as exc:
            message = _status_message(exc.body) or exc.reason
            if exc.status == 401:
                raise NotAuthorized(
                    f"context '{self.name}': the server refused our credentials (401 {message}) when trying to {what}",
                    hint="the token or certificate may be wrong or expired; log in again",
                ) from None
            if exc.status == 403:
                raise NotAuthorized(f"context '{self.name}': not allowed to {what}: {message}") from None
            if exc.status == 404:
                raise QueryError(f"context '{self.name}': {what}: not found on the server") from None
            if exc.status == 409:
                raise QueryError(f"context '{self.name}': cannot {what}: {message}") from None
            if exc.status == 410:
                raise WatchExpired(f"context '{self.name}': {what}: {message}") from None
            if exc.status in (400, 422):
                raise QueryError(f"context '{self.name}': the server rejected '{what}': {message}") from None
            raise SourceUnavailable(f"context '{self.name}': {what} failed: HTTP {exc.status} {message}") from None
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ConnectTimeoutError, TimeoutError):
            raise self._timed_out(what, limit) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if "timed out" in str(exc).lower():
                raise self._timed_out(what, limit) from None
            raise SourceUnavailable(
                f"cannot reach the Kubernetes API at {self._server} (context {self.name})",
                hint="check the cluster is running and --context/--kubeconfig",
            ) from None
        except orjson.JSONDecodeError:
            raise SourceUnavailable(f"context '{self.name}': {what}: the server sent something that is not JSON") from None

    def _timed_out(self, what: str, limit: float | None) -> SourceTimeout:
        within = f" (no answer in {limit:g}s)" if limit else ""
        return SourceTimeout(f"context '{self.name}': {what} timed out at {self._server}{within}",
                             hint="is the API server overloaded? --request-timeout sets the limit, 0 for none")

    def _get(self, path: str, query: list[tuple[str, str]] | None = None, *, what: str) -> Any:
        return self._call("GET", path, query, what=what)

    # --- protocol ------------------------------------------------------------------------

    def kinds(self) -> list[KindInfo]:
        """Every listable resource from discovery (preferred versions; subresources skipped),
        cached on disk per context for TESSERA_DISCOVERY_TTL seconds (default 300)."""
        with self._lock:
            if self._kinds is None:
                from tessera.core import discovery_cache
                from tessera.core.config import discovery_ttl

                self._kinds = discovery_cache.load(self.name, self._server, discovery_ttl())
                self.kinds_cached = self._kinds is not None
                if self._kinds is None:
                    self._kinds = self._discover()
                    discovery_cache.save(self.name, self._server, self._kinds)
            return self._kinds

    def ping(self, timeout: float) -> None:
        """Ask the server for its version (``GET /version``), waiting at most ``timeout``
        seconds: the watch caches' heartbeat (core/watch/cache.py).

        Raises:
            SourceTimeout, SourceUnavailable (or NotAuthorized) as any call does.
        """
        try:
            self._call("GET", "/version", what="heartbeat (GET /version)", limit=timeout)
        except SourceTimeout:
            raise SourceTimeout(f"context '{self.name}': the API server at {self._server} stopped answering "
                                f"(no answer to a heartbeat in {timeout:g}s)",
                                hint="it keeps the connection open: hung, overloaded, or behind a proxy") from None

    def rediscover(self) -> None:
        """Drop the discovered kinds (memory and disk cache): the next kinds() asks the server."""
        with self._lock:
            self._kinds = None
            self.kinds_cached = False
        from tessera.core import discovery_cache

        discovery_cache.forget(self.name, self._server)

    def _discover(self) -> list[KindInfo]:
        from concurrent.futures import ThreadPoolExecutor

        versions = [("", "v1", "/api/v1")]
        groups = self._get("/apis", what="discover API groups").get("groups") or []
        for group in groups:
            preferred = (group.get("preferredVersion") or {}).get("version")
            if not preferred and group.get("versions"):
                preferred = group["versions"][0].get("version")
            if preferred:
                versions.append((group["name"], preferred, f"/apis/{group['name']}/{preferred}"))

        def fetch(entry: tuple[str, str, str]) -> list[KindInfo]:
            group, version, path = entry
            try:
                listing = self._get(path, what=f"discover {path}")
            except QueryError:
                return []
            out = []
            for res in listing.get("resources") or []:
                name = res.get("name", "")
                if "/" in name or "list" not in (res.get("verbs") or []):
                    continue
                out.append(
                    KindInfo(
                        group=group,
                        version=version,
                        kind=res.get("kind") or name,
                        plural=name,
                        singular=res.get("singularName") or (res.get("kind") or name).lower(),
                        short_names=tuple(res.get("shortNames") or ()),
                        namespaced=bool(res.get("namespaced")),
                        verbs=tuple(res.get("verbs") or ()),
                    )
                )
            return out

        with ThreadPoolExecutor(max_workers=8) as pool:
            return [k for chunk in pool.map(fetch, versions) for k in chunk]

    def _collection(self, kind: KindInfo, namespace: str | None) -> str:
        base = "/api/v1" if not kind.group else f"/apis/{kind.group}/{kind.version}"
        if namespace is not None and kind.namespaced:
            return f"{base}/namespaces/{quote(namespace, safe='')}/{kind.plural}"
        return f"{base}/{kind.plural}"

    def _list_pages(self, kind: KindInfo, namespace: str | None, query: list[tuple[str, str]]) -> tuple[list[dict], str]:
        """Follow ``continue`` tokens in pages of ``_PAGE`` items; returns items and resourceVersion."""
        path = self._collection(kind, namespace)
        where = f" in namespace {namespace}" if namespace and kind.namespaced else ""
        items: list[dict] = []
        token = None
        while True:
            page = list(query) + [("limit", str(_PAGE))] + ([("continue", token)] if token else [])
            data = self._get(path, page, what=f"list {kind.qualified}{where}")
            items.extend(data.get("items") or [])
            meta = data.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                break
        for item in items:
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items, str(meta.get("resourceVersion") or "")

    def list(
        self,
        kind: KindInfo,
        *,
        namespace: str | None = None,
        name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """List ``kind`` with the filters pushed down, page by page (see base.Source)."""
        query = []
        if name is not None:
            query.append(("fieldSelector", f"metadata.name={name}"))
        if labels:
            query.append(("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(labels.items()))))
        return self._list_pages(kind, namespace, query)[0]

    def list_versioned(self, kind: KindInfo, *, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """Every resource of ``kind`` and the resourceVersion of the list (see base.WatchableSource)."""
        return self._list_pages(kind, namespace, [])

    def watch(
        self, kind: KindInfo, *, namespace: str | None, resource_version: str, stop: Any, timeout: float = 30.0
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Open a stream of changes after ``resource_version`` (see base.WatchableSource).

        The request is made here (it raises when the server cannot be reached or refuses), so a
        caller knows the server answered before any change arrives. The server closes the
        stream after ``timeout`` seconds; ``stop`` is checked between events.
        """
        path = self._collection(kind, namespace)
        query = [("watch", "true"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(int(timeout)))]
        response = self._call("GET", path, query, what=f"watch {kind.qualified}", stream=True)
        self._streams.add(response)
        # Open, a watch may stay quiet until the server ends it: the request timeout no longer
        # applies (keepalive notices a vanished server).
        sock = getattr(response.connection, "sock", None)
        if sock is not None:
            sock.settimeout(timeout + 10)
        return self._events(response, kind, stop)

    def _events(self, response: Any, kind: KindInfo, stop: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        import orjson

        try:
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    etype, obj = event.get("type"), event.get("object") or {}
                    if etype == "ERROR":
                        if obj.get("code") == 410:
                            raise WatchExpired(f"context '{self.name}': watch {kind.qualified}: {obj.get('message')}")
                        raise SourceUnavailable(f"context '{self.name}': watch {kind.qualified}: {obj.get('message')}")
                    obj.setdefault("apiVersion", kind.api_version)
                    obj.setdefault("kind", kind.kind)
                    yield etype, obj
                if stop.is_set():
                    return
        except (WatchExpired, SourceUnavailable):
            if stop.is_set():
                return
            raise
        except Exception as exc:  # noqa: BLE001 - a cut stream surfaces as many transport errors
            if stop.is_set():
                return  # close() cut it on purpose
            raise SourceUnavailable(f"context '{self.name}': the watch of {kind.plural} at {self._server} was cut "
                                    f"({type(exc).__name__})") from None
        finally:
            self._streams.discard(response)
            response.release_conn()

    def close(self) -> None:
        """Cut open watch streams, so watcher threads end promptly."""
        for response in list(self._streams):
            try:
                response.shutdown()
            except Exception:  # noqa: BLE001 - already closed
                pass

    # --- writes ---------------------------------------------------------------------------

    def create(self, kind: KindInfo, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """POST a new object (namespace from its metadata); returns the server's copy."""
        ns = (obj.get("metadata") or {}).get("namespace")
        query = [("dryRun", "All")] if dry_run else []
        name = (obj.get("metadata") or {}).get("name")
        return self._call("POST", self._collection(kind, ns), query, body=obj,
                          what=f"create {kind.kind} {ns + '/' if ns else ''}{name}")

    def patch(self, kind: KindInfo, namespace: str | None, name: str, ops: list[dict[str, Any]], *,
              dry_run: bool = False) -> dict[str, Any]:
        """Apply a JSON patch (RFC 6902) to one object; returns the server's copy."""
        query = [("dryRun", "All")] if dry_run else []
        path = f"{self._collection(kind, namespace)}/{quote(name, safe='')}"
        return self._call("PATCH", path, query, body=ops, content_type="application/json-patch+json",
                          what=f"patch {kind.kind} {namespace + '/' if namespace else ''}{name}")

    def delete(self, kind: KindInfo, namespace: str | None, name: str, *, dry_run: bool = False) -> dict[str, Any]:
        """DELETE one object; returns the server's answer."""
        query = [("dryRun", "All")] if dry_run else []
        path = f"{self._collection(kind, namespace)}/{quote(name, safe='')}"
        return self._call("DELETE", path, query, what=f"delete {kind.kind} {namespace + '/' if namespace else ''}{name}")

    def api_path(self, kind: KindInfo, namespace: str | None, name: str | None = None) -> str:
        """The URL path of a collection or one object (for dry-run listings)."""
        path = self._collection(kind, namespace)
        return f"{path}/{quote(name, safe='')}" if name else path


def _status_message(body: Any) -> str | None:
    try:
        import orjson

        return orjson.loads(body).get("message")
    except Exception:  # noqa: BLE001 - a non-JSON error body just has no message
        return None


