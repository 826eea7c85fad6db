"""A Kubernetes API emulator on 127.0.0.1, built on kmock, for the official client and kubectl.

kmock's KubernetesEmulator keeps objects and serves discovery; this subclass adds what Tessera
needs from a real API server: ``kind``/``apiVersion`` on list responses, labelSelector and
fieldSelector filtering, resources declared with full discovery info (kind, short names,
namespaced, verbs), 403s for chosen resources, and a plain request log for assertions.

The aiohttp server runs on its own event loop in a daemon thread, so synchronous clients (the
kubernetes package, kubectl subprocesses) talk to it over real HTTP.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

import kmock
from kmock._internal import parsing, rendering
from kmock._internal.k8s import KubernetesObjectConflictError

from tessera.core.builtin_kinds import BUILTIN_KINDS


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Evaluate a Kubernetes label selector string (``a=b,c!=d,e in (x,y),!f,g``) on labels."""
    import re

    for term in _split_terms(selector):
        term = term.strip()
        if not term:
            continue
        m = re.match(r"^([\w./-]+)\s+(in|notin)\s+\((.*)\)$", term)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and labels.get(key) in values:
                return False
            continue
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "==" in term or "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return terms


def _field_matches(selector: str, obj: dict) -> bool:
    meta = obj.get("metadata") or {}
    for term in selector.split(","):
        if not term.strip():
            continue
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        actual = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}.get(key.strip())
        if (actual == value.strip()) == negate:
            return False
    return True


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def _json_patch(doc: dict, ops: list[dict]) -> dict:
    """RFC 6902 JSON patch (add, replace, remove, test); raises ValueError on a bad path."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, op["value"])
            elif kind == "replace":
                parent[index] = op["value"]
            elif kind == "remove":
                del parent[index]
            elif kind == "test" and parent[index] != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        else:
            if kind in ("add", "replace"):
                if kind == "replace" and last not in parent:
                    raise ValueError(f"no value at {op['path']}")
                parent[last] = op["value"]
            elif kind == "remove":
                del parent[last]
            elif kind == "test" and parent.get(last) != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
    return doc


def _parse_path_with_namespaces(path: str, _parse=parsing.parse_path) -> parsing.ParsedPath:
    """kmock reads ``/api/v1/namespaces[/NAME]`` as a namespace prefix with nothing after it (and
    fails); an API server reads it as the cluster-scoped ``namespaces`` resource."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
        return parsing.ParsedPath("", "v1", "namespaces", None, parts[3] if len(parts) == 4 else None, None)
    return _parse(path)


parsing.parse_path = _parse_path_with_namespaces


def _res_key(resource: Any) -> str:
    return f"{resource.group}/{resource.version}/{resource.plural}" if resource.group else f"{resource.version}/{resource.plural}"


@attrs.define(kw_only=True)
class TesseraEmulator(kmock.KubernetesEmulator):
    """kmock's discovery and routing, with a store that behaves like an API server's.

    Every write gets the next resourceVersion and is kept in a history, so watches resume from a
    resourceVersion; ``compact()`` drops the history, after which older watches get 410 Gone.
    """

    log: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    forbidden: set[str] = attrs.field(factory=set, init=False)
    kinds: dict[tuple[str, str], tuple[str, str]] = attrs.field(factory=dict, init=False)
    store: dict[tuple[str, str | None, str], dict] = attrs.field(factory=dict, init=False)
    history: list[tuple[int, str, str, dict]] = attrs.field(factory=list, init=False)
    history_floor: int = attrs.field(default=0, init=False)
    rv: int = attrs.field(default=0, init=False)
    token: str | None = attrs.field(default=None, init=False)
    changed: Any = attrs.field(default=None, init=False)
    closing: bool = attrs.field(default=False, init=False)

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_version(request)
        # kmock writes "/v1" for the core group; kubectl needs "v1".
        payload["groupVersion"] = payload["groupVersion"].lstrip("/")
        return payload

    async def _handle(self, request: rendering.Request):  # type: ignore[override]
        # Skip kmock's own object tracking: this class keeps the store (with resourceVersions).
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            if request.resource is not None or request.url.path.startswith("/api"):
                raise _Unauthorized()
        return await kmock.KubernetesScaffold._handle(self, request)

    # --- store ------------------------------------------------------------------------------

    def _kind(self, resource: Any) -> tuple[str, str]:
        group, version = (resource.group or ""), resource.version
        kind, _ = self.kinds.get((group, resource.plural), (resource.plural.capitalize(), ""))
        return kind, (f"{group}/{version}" if group else version)

    async def put(self, key: str, event: str, obj: dict) -> dict:
        """Apply one change, stamping the next resourceVersion, and wake the watchers."""
        if self.changed is None:
            self.changed = asyncio.Condition()
        meta = obj.setdefault("metadata", {})
        skey = (key, meta.get("namespace"), meta["name"])
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if event == "DELETED":
            self.store.pop(skey, None)
        else:
            self.store[skey] = obj
        self.history.append((self.rv, key, event, obj))
        async with self.changed:
            self.changed.notify_all()
        return obj

    def _check_known(self, request: rendering.Request) -> None:
        res = request.resource
        if not any(r == res for r in self._get_resources()):
            raise kmock.KubernetesResourceNotFoundError()
        if res.plural in self.forbidden:
            verb = {"WATCH": "watch", "LIST": "list"}.get(str(request.action.value) if request.action else "", "access")
            raise _Forbidden(message=f'{res.plural} is forbidden: User "tester" cannot {verb} resource "{res.plural}"')

    def _selected(self, request: rendering.Request, key: str, obj: dict) -> bool:
        meta = obj.get("metadata") or {}
        if request.namespace is not None and meta.get("namespace") != request.namespace:
            return False
        query = dict(request.params)
        if query.get("labelSelector") and not selector_matches(query["labelSelector"], meta.get("labels") or {}):
            return False
        if query.get("fieldSelector") and not _field_matches(query["fieldSelector"], obj):
            return False
        return True

    def _typed(self, resource: Any, obj: dict) -> dict:
        kind, api_version = self._kind(resource)
        return {"apiVersion": api_version, "kind": kind, **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}}

    # --- verbs ------------------------------------------------------------------------------

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        self._check_known(request)
        res = request.resource
        key = _res_key(res)
        items = [o for (k, _, _), o in self.store.items() if k == key and self._selected(request, key, o)]
        items.sort(key=lambda o: ((o.get("metadata") or {}).get("namespace") or "", o["metadata"]["name"]))
        query = dict(request.params)
        meta: dict[str, Any] = {"resourceVersion": str(self.rv)}
        if query.get("limit"):
            start = int(query.get("continue") or 0)
            stop = start + int(query["limit"])
            if stop < len(items):
                meta["continue"] = str(stop)
            items = items[start:stop]
        kind, api_version = self._kind(res)
        return {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta,
                "items": [self._typed(res, o) for o in items]}

    async def _serve_watch(self, request: rendering.Request):  # type: ignore[override]
        self._check_known(request)
        if self.changed is None:
            self.changed = asyncio.Condition()
        yield b""
        res = request.resource
        key = _res_key(res)
        query = dict(request.params)
        deadline = asyncio.get_running_loop().time() + float(query.get("timeoutSeconds") or 1800)
        since_text = query.get("resourceVersion") or "0"
        if since_text == "0":
            since = self.rv
            for (k, _, _), obj in list(self.store.items()):
                if k == key and self._selected(request, key, obj):
                    yield {"type": "ADDED", "object": self._typed(res, obj)}
        else:
            since = int(since_text)
            if since < self.history_floor:
                yield {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "code": 410, "reason": "Expired", "message": f"too old resource version: {since} ({self.history_floor})"}}
                return
        index = 0
        while True:
            while index < len(self.history) and self.history[index][0] <= since:
                index += 1
            while index < len(self.history):
                rv, k, event, obj = self.history[index]
                index += 1
                since = rv
                if k == key and self._selected(request, key, obj):
                    yield {"type": event, "object": self._typed(res, obj)}
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self.closing:
                return
            async with self.changed:
                try:
                    await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 5))
                except asyncio.TimeoutError:
                    pass
            if since < self.history_floor or self.closing:
                return

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        self._check_known(request)
        obj = self.store.get((_res_key(request.resource), request.namespace, request.name))
        if obj is None:
            raise kmock.KubernetesObjectNotFoundError()
        return self._typed(request.resource, obj)

    def _dry(self, request: rendering.Request) -> bool:
        return dict(request.params).get("dryRun") == "All"

    async def _serve_create(self, request: rendering.Request) -> rendering.Payload:
        self._check_known(request)
        obj = copy.deepcopy(request.data or {})
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise _Invalid(message="metadata.name: Required value")
        if request.namespace:
            meta["namespace"] = request.namespace
        key = _res_key(request.resource)
        if (key, meta.get("namespace"), meta["name"]) in self.store:
            raise KubernetesObjectConflictError(message=f'"{meta["name"]}" already exists')
        meta.setdefault("uid", f"uid-{self.rv + 1}")
        meta.setdefault("creationTimestamp", "2026-11-23T00:00:00Z")
        if self._dry(request):
            return self._typed(request.resource, obj)
        return self._typed(request.resource, await self.put(key, "ADDED", obj))

    async def _serve_update(self, request: rendering.Request) -> rendering.Payload:
        self._check_known(request)
        key = _res_key(request.resource)
        current = self.store.get((key, request.namespace, request.name))
        if current is None:
            raise kmock.KubernetesObjectNotFoundError()
        ctype = request.headers.get("Content-Type", "")
        body = orjson_loads(request.body)
        try:
            updated = _json_patch(current, body) if "json-patch" in ctype else _merge_patch(current, body)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise _Invalid(message=f"the patch cannot be applied: {exc}") from None
        if self._dry(request):
            return self._typed(request.resource, updated)
        return self._typed(request.resource, await self.put(key, "MODIFIED", updated))

    async def _serve_delete(self, request: rendering.Request) -> rendering.Payload:
        self._check_known(request)
        key = _res_key(request.resource)
        current = self.store.get((key, request.namespace, request.name))
        if current is None:
            raise kmock.KubernetesObjectNotFoundError()
        if self._dry(request):
            return self._typed(request.resource, current)
        return self._typed(request.resource, await self.put(key, "DELETED", current))


def orjson_loads(body: bytes) -> Any:
    import json

    return json.loads(body or b"null")


@attrs.frozen
class _Forbidden(kmock.KubernetesError):
    status: int = 403
    reason: str = "Forbidden"
    message: str = "forbidden"


@attrs.frozen
class _Unauthorized(kmock.KubernetesError):
    status: int = 401
    reason: str = "Unauthorized"
    message: str = "Unauthorized"


@attrs.frozen
class _Invalid(kmock.KubernetesError):
    status: int = 422
    reason: str = "Invalid"
    message: str = "invalid"


class Emulator:
    """A running emulator: ``url``, ``add/update/remove(obj)``, ``forbid(plural)``, ``stop()/start()``.

    Writes from the test thread go through the server's event loop, so watchers see them in order.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.handler: TesseraEmulator = self._call(self._start())
        self.url = str(self.server.url).rstrip("/")
        self.port = self.server.port
        for info in BUILTIN_KINDS:
            self.declare(info.group, info.version, info.plural, info.kind, info.namespaced, info.short_names)

    async def _start(self) -> TesseraEmulator:
        handler = TesseraEmulator()
        await handler.__aenter__()
        self.server = kmock.Server(handler)
        await self.server.__aenter__()
        return handler

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def declare(self, group: str, version: str, plural: str, kind: str, namespaced: bool = True,
                short_names: tuple[str, ...] = ()) -> None:
        """Make a resource discoverable with full info."""
        key = f"{group}/{version}/{plural}" if group else f"{version}/{plural}"
        self.handler.resources[key] = kmock.ResourceInfo(
            kind=kind, singular=kind.lower(), namespaced=namespaced,
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"}, shortnames=set(short_names),
        )
        self.handler.kinds[(group, plural)] = (kind, version)

    def _key(self, obj: dict) -> str:
        api_version = obj["apiVersion"]
        group, version = api_version.rsplit("/", 1) if "/" in api_version else ("", api_version)
        plural = next(p for (g, p), (k, _) in self.handler.kinds.items() if g == group and k == obj["kind"])
        return f"{group}/{version}/{plural}" if group else f"{version}/{plural}"

    def add(self, obj: dict) -> dict:
        """Store (create or replace) an object; its kind must be declared. Returns it as stored."""
        key = self._key(obj)
        meta = obj["metadata"]
        event = "MODIFIED" if (key, meta.get("namespace"), meta["name"]) in self.handler.store else "ADDED"
        return self._call(self.handler.put(key, event, obj))

    update = add

    def remove(self, obj: dict) -> None:
        """Delete an object (matched by apiVersion, kind, namespace, name)."""
        self._call(self.handler.put(self._key(obj), "DELETED", obj))

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict | None:
        """The stored object, or None."""
        key = self._key({"apiVersion": api_version, "kind": kind})
        return self.handler.store.get((key, namespace, name))

    def objects(self, kind: str) -> list[dict]:
        """Every stored object of a kind."""
        plurals = {f"{g}/{v}/{p}" if g else f"{v}/{p}" for (g, p), (k, v) in self.handler.kinds.items() if k == kind}
        return [o for (k, _, _), o in self.handler.store.items() if k in plurals]

    def compact(self) -> None:
        """Forget the history: watches resuming from an older resourceVersion get 410 Gone."""
        self.handler.history_floor = self.handler.rv
        self.handler.history.clear()
        self._wake()

    def _wake(self) -> None:
        async def wake() -> None:
            if self.handler.changed is not None:
                async with self.handler.changed:
                    self.handler.changed.notify_all()

        self._call(wake())

    def require_token(self, token: str | None) -> None:
        """Answer 401 to requests without ``Authorization: Bearer <token>`` (None: accept all)."""
        self.handler.token = token

    def forbid(self, plural: str) -> None:
        """Answer 403 to list and watch calls for this resource."""
        self.handler.forbidden.add(plural)

    def stop(self) -> None:
        """Stop serving (open watches are cut, new connections refused); the store is kept."""
        # Only the HTTP server restarts; kmock's DNS interceptor chain stays as it is.
        self.handler.closing = True
        self._wake()
        self._call(self.server._managed_server.close())
        self.handler.closing = False

    def start(self) -> None:
        """Serve again on the same port after ``stop()``."""

        async def again() -> None:
            import aiohttp.test_utils

            fresh = aiohttp.test_utils.RawTestServer(self.handler, host="127.0.0.1", port=self.port)
            await fresh.start_server()
            self.server._managed_server = fresh

        self._call(again())

    def list_requests(self) -> list[dict[str, Any]]:
        """Every list request served so far: {path, params}."""
        out = []
        for req in list(self.handler._requests):
            if req.action == kmock.action.LIST and req.resource is not None and req.resource.plural:
                out.append({"path": req.url.path, "params": dict(req.params)})
        return out

    def paths(self) -> list[str]:
        """The URL path of every request served so far."""
        return [r.url.path for r in list(self.handler._requests)]

    def watch_requests(self) -> list[dict[str, Any]]:
        """Every watch request served so far: {path, params}."""
        return [{"path": r.url.path, "params": dict(r.params)} for r in list(self.handler._requests)
                if r.action == kmock.action.WATCH]

    def close(self) -> None:
        self.handler.closing = True
        self._wake()

        async def stop() -> None:
            try:
                await self.server.__aexit__(None, None, None)
            except Exception:  # noqa: BLE001 - already stopped by the test
                pass
            await self.handler.__aexit__(None, None, None)

        try:
            self._call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


def wait_quiet(predicate, timeout: float) -> bool:
    """Poll ``predicate`` every 10 ms until true or ``timeout`` seconds; returns its last value."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def write_kubeconfig(path: Path, contexts: dict[str, tuple[str, str]], current: str) -> Path:
    """A kubeconfig with one cluster+context per entry: name -> (server url, namespace)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [{"name": n, "cluster": {"server": url}} for n, (url, _) in contexts.items()],
        "users": [{"name": "tester", "user": {"token": "emulator"}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "tester", "namespace": ns}} for n, (_, ns) in contexts.items()],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def seed(emu: Emulator, *, suffix: str = "") -> None:
    """A small realistic cluster: shop and payments, deployments with RS and pods, services, a CRD."""
    emu.declare("cert-manager.io", "v1", "certificates", "Certificate", True, ("cert",))

    def owner(o):
        return [{"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"],
                 "uid": o["metadata"]["uid"], "controller": True}]

    emu.add({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "uid": "n1"}})
    for ns in ("shop", "payments"):
        emu.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "uid": f"ns-{ns}"}})
    for ns, app, replicas in (("shop", "web", 2), ("shop", "cart", 1), ("payments", "api", 1)):
        dep = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": app + suffix, "namespace": ns, "uid": f"d-{ns}-{app}", "labels": {"app": app}},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}}}}
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": f"{app}{suffix}-5d8f", "namespace": ns, "uid": f"rs-{ns}-{app}",
                           "labels": {"app": app, "pod-template-hash": "5d8f"}, "ownerReferences": owner(dep)},
              "spec": {"replicas": replicas}}
        emu.add(dep)
        emu.add(rs)
        for i in range(replicas):
            emu.add({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"{app}{suffix}-5d8f-{i}", "namespace": ns, "uid": f"p-{ns}-{app}-{i}",
                                  "labels": {"app": app, "pod-template-hash": "5d8f"}, "ownerReferences": owner(rs)},
                     "spec": {"nodeName": "node-1", "containers": [{"name": app, "image": f"acme/{app}:1",
                              "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
                     "status": {"phase": "Running"}})
        emu.add({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": app + suffix, "namespace": ns, "uid": f"s-{ns}-{app}"},
                 "spec": {"selector": {"app": app}, "ports": [{"port": 80}]}})
    emu.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop", "uid": "cm1"},
             "data": {"a": "b"}})
    emu.add({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
             "metadata": {"name": "shop-tls", "namespace": "shop", "uid": "c1"}, "spec": {"secretName": "shop-tls"}})


@pytest.fixture
def kube_api():
    """A seeded emulator (namespaces shop and payments), closed after the test."""
    emu = Emulator()
    seed(emu)
    yield emu
    emu.close()


@pytest.fixture
def kube_api_b():
    """A second, independent emulator (object names suffixed ``-b``)."""
    emu = Emulator()
    seed(emu, suffix="-b")
    yield emu
    emu.close()


@pytest.fixture
def kubeconfig(tmp_path, kube_api, kube_api_b) -> Path:
    """A kubeconfig: context ``emu-a`` (namespace shop, current) and ``emu-b`` (namespace payments)."""
    return write_kubeconfig(
        tmp_path / "kubeconfig",
        {"emu-a": (kube_api.url, "shop"), "emu-b": (kube_api_b.url, "payments")},
        current="emu-a",
    )
