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
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

import kmock
from kmock._internal import rendering

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


@attrs.define(kw_only=True)
class TesseraEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus list kinds, selectors, 403s and a request log."""

    log: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    forbidden: set[str] = attrs.field(factory=set, init=False)
    kinds: dict[tuple[str, str], tuple[str, str]] = attrs.field(factory=dict, init=False)

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_version(request)
        # kmock writes "/v1" for the core group; kubectl needs "v1".
        payload["groupVersion"] = payload["groupVersion"].lstrip("/")
        return payload

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        res = request.resource
        if res is not None and res.plural in self.forbidden:
            raise _Forbidden(
                message=f'{res.plural} is forbidden: User "tester" cannot list resource "{res.plural}"'
            )
        payload = await super()._serve_list(request)
        query = dict(request.params)
        items = payload["items"]
        if query.get("labelSelector"):
            items = [o for o in items if selector_matches(query["labelSelector"], (o.get("metadata") or {}).get("labels") or {})]
        if query.get("fieldSelector"):
            items = [o for o in items if _field_matches(query["fieldSelector"], o)]
        group, version = (res.group or ""), res.version
        kind, _ = self.kinds.get((group, res.plural), (res.plural.capitalize(), ""))
        api_version = f"{group}/{version}" if group else version
        items = sorted(items, key=lambda o: ((o.get("metadata") or {}).get("namespace") or "", o["metadata"]["name"]))
        return {
            "kind": f"{kind}List",
            "apiVersion": api_version,
            "metadata": {"resourceVersion": "1"},
            "items": [{"apiVersion": api_version, "kind": kind, **o} for o in items],
        }


@attrs.frozen
class _Forbidden(kmock.KubernetesError):
    status: int = 403
    reason: str = "Forbidden"
    message: str = "forbidden"


class Emulator:
    """A running emulator: ``url``, ``add(obj)``, ``requests`` (the log), ``forbid(plural)``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.handler: TesseraEmulator = self._call(self._start())
        self.url = str(self.server.url).rstrip("/")
        self.requests: list[dict[str, Any]] = []
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

    def add(self, obj: dict) -> None:
        """Store an object (its kind must be declared)."""
        api_version = obj["apiVersion"]
        group, version = api_version.rsplit("/", 1) if "/" in api_version else ("", api_version)
        plural = next(p for (g, p), (k, _) in self.handler.kinds.items() if g == group and k == obj["kind"])
        key = f"{group}/{version}/{plural}" if group else f"{version}/{plural}"
        meta = obj["metadata"]
        self.handler.objects[key, meta.get("namespace"), meta["name"]] = obj

    def forbid(self, plural: str) -> None:
        """Answer 403 to list calls for this resource."""
        self.handler.forbidden.add(plural)

    def list_requests(self) -> list[dict[str, Any]]:
        """Every list request served so far: {path, params}."""
        out = []
        for req in list(self.handler._requests):
            if req.action == kmock.action.LIST and req.resource is not None and req.resource.plural:
                out.append({"path": req.url.path, "params": dict(req.params)})
        return out

    def close(self) -> None:
        async def stop() -> None:
            await self.server.__aexit__(None, None, None)
            await self.handler.__aexit__(None, None, None)

        try:
            self._call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


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
