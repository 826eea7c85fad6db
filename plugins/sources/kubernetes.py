"""A live Kubernetes cluster as a source, through the official ``kubernetes`` client.

Discovery gives the kinds (with short names and scope); each ``list`` is one HTTP list call with
namespace, name (fieldSelector) and labels (labelSelector) pushed down. Responses are read raw and
parsed with orjson, which is several times faster than the client's model deserialisation. The
``kubernetes`` package is imported only when a live source is opened (it costs ~0.3 s).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tessera.core.errors import NotAuthorized, QueryError, SourceTimeout, SourceUnavailable
from tessera.core.kinds import KindInfo

_TIMEOUT = (5, 60)  # connect, read (seconds)


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
    import yaml

    path = _kubeconfig_path(kubeconfig)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        raise SourceUnavailable(
            f"no kubeconfig at {path}", hint="pass --kubeconfig, set KUBECONFIG, or query manifests with -s"
        ) from None
    except yaml.YAMLError as exc:
        raise SourceUnavailable(f"cannot read kubeconfig {path}: {str(exc).splitlines()[0]}") from None
    names = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict) and c.get("name")]
    return names, data.get("current-context")


class KubernetesSource:
    """One kube context.

    Args:
        context: the context name (default: the kubeconfig's current context).
        kubeconfig: the kubeconfig path (default: $KUBECONFIG, then ~/.kube/config).
    Raises:
        SourceUnavailable when the kubeconfig or the context cannot be used.
    """

    writable = True
    concurrent = True

    def __init__(self, context: str | None = None, kubeconfig: str | None = None):
        self.kubeconfig = str(_kubeconfig_path(kubeconfig))
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
        self._server = configuration.host
        self._client = client.ApiClient(configuration)
        namespace = (loader.current_context.get("context") or {}).get("namespace")
        self.default_namespace = namespace or "default"

    # --- HTTP ----------------------------------------------------------------------------

    def _get(self, path: str, query: list[tuple[str, str]] | None = None, *, what: str) -> Any:
        """GET ``path`` and parse the JSON body, mapping every failure to a typed error."""
        import orjson
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            method, url, headers, _, _ = self._client.param_serialize(
                method="GET",
                resource_path=path,
                query_params=query or [],
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            response = self._client.call_api(method, url, header_params=headers, _request_timeout=_TIMEOUT)
            body = response.read()
            if not 200 <= response.status < 300:
                raise ApiException(status=response.status, reason=response.reason, body=body)
            return orjson.loads(body)
        except ApiException as exc:
            message = _status_message(exc.body) or exc.reason
            if exc.status in (401, 403):
                raise NotAuthorized(f"context '{self.name}': not allowed to {what}: {message}") from None
            if exc.status == 404:
                raise QueryError(f"context '{self.name}': {what}: not found on the server") from None
            raise SourceUnavailable(f"context '{self.name}': {what} failed: HTTP {exc.status} {message}") from None
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ConnectTimeoutError, TimeoutError):
            raise SourceTimeout(
                f"context '{self.name}': {what} timed out at {self._server}", hint="is the API server overloaded?"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if "timed out" in str(exc).lower():
                raise SourceTimeout(f"context '{self.name}': {what} timed out at {self._server}") from None
            raise SourceUnavailable(
                f"cannot reach the Kubernetes API at {self._server} (context {self.name})",
                hint="check the cluster is running and --context/--kubeconfig",
            ) from None
        except orjson.JSONDecodeError:
            raise SourceUnavailable(f"context '{self.name}': {what}: the server sent something that is not JSON") from None

    # --- protocol ------------------------------------------------------------------------

    def kinds(self) -> list[KindInfo]:
        """Every listable resource from discovery (preferred versions; subresources skipped)."""
        with self._lock:
            if self._kinds is None:
                self._kinds = self._discover()
            return self._kinds

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

    def list(
        self,
        kind: KindInfo,
        *,
        namespace: str | None = None,
        name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """One list call for ``kind`` with the filters pushed down (see base.Source)."""
        base = "/api/v1" if not kind.group else f"/apis/{kind.group}/{kind.version}"
        if namespace is not None and kind.namespaced:
            path = f"{base}/namespaces/{quote(namespace, safe='')}/{kind.plural}"
        else:
            path = f"{base}/{kind.plural}"
        query = []
        if name is not None:
            query.append(("fieldSelector", f"metadata.name={name}"))
        if labels:
            query.append(("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(labels.items()))))
        where = f" in namespace {namespace}" if namespace and kind.namespaced else ""
        data = self._get(path, query, what=f"list {kind.qualified}{where}")
        items = data.get("items") or []
        for item in items:
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items


def _status_message(body: Any) -> str | None:
    try:
        import orjson

        return orjson.loads(body).get("message")
    except Exception:  # noqa: BLE001 - a non-JSON error body just has no message
        return None


