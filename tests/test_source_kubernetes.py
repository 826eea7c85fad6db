"""The live source against the kmock-based emulator, over HTTP, with the official client and kubectl."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from kube_emulator import write_kubeconfig
from tessera.core.errors import NotAuthorized, SourceUnavailable
from tessera.core.kinds import KindRegistry
from tessera.plugins.sources.kubernetes import KubernetesSource, available_contexts

TSR = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args, kubeconfig):
    return subprocess.run([*TSR, *args, "--kubeconfig", str(kubeconfig)], capture_output=True, text=True, timeout=60)


def test_discovery_names_and_scopes(kubeconfig):
    src = KubernetesSource(kubeconfig=str(kubeconfig))
    assert src.name == "emu-a" and src.default_namespace == "shop"
    reg = KindRegistry(src.kinds())
    assert reg.resolve("po").namespaced and reg.resolve("po").kind == "Pod"
    assert reg.resolve("deploy").group == "apps"
    assert not reg.resolve("nodes").namespaced
    cert = reg.resolve("cert")
    assert (cert.kind, cert.group, cert.version) == ("Certificate", "cert-manager.io", "v1")


def test_list_pushes_filters_down_in_one_call(kubeconfig, kube_api):
    src = KubernetesSource(kubeconfig=str(kubeconfig))
    pod = KindRegistry(src.kinds()).resolve("pods")
    before = len(kube_api.list_requests())
    items = src.list(pod, namespace="shop", labels={"app": "web"})
    calls = kube_api.list_requests()[before:]
    assert calls == [{"path": "/api/v1/namespaces/shop/pods", "params": {"labelSelector": "app=web", "limit": "500"}}]
    assert sorted(i["metadata"]["name"] for i in items) == ["web-5d8f-0", "web-5d8f-1"]
    assert all(i["kind"] == "Pod" and i["apiVersion"] == "v1" for i in items)
    (one,) = src.list(pod, name="cart-5d8f-0")
    assert one["metadata"]["namespace"] == "shop"
    assert kube_api.list_requests()[-1]["params"] == {"fieldSelector": "metadata.name=cart-5d8f-0", "limit": "500"}
    assert {i["metadata"]["namespace"] for i in src.list(pod)} == {"shop", "payments"}


def test_query_end_to_end_one_list_per_kind(kubeconfig, kube_api):
    before = len(kube_api.list_requests())
    proc = tessera("query", "-o", "json", "MATCH (d:Deployment)->(:ReplicaSet)->(p:Pod) RETURN d.metadata.name AS d, COUNT{p} AS pods ORDER BY d", kubeconfig=kubeconfig)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"d": "cart", "pods": 1}, {"d": "web", "pods": 2}]  # namespace shop
    paths = [c["path"] for c in kube_api.list_requests()[before:]]
    assert sorted(paths) == sorted(["/apis/apps/v1/namespaces/shop/deployments", "/apis/apps/v1/namespaces/shop/replicasets", "/api/v1/namespaces/shop/pods"])


def test_all_namespaces_and_namespace_flag(kubeconfig):
    proc = tessera("query", "-A", "-o", "jsonl", "MATCH (d:deploy) RETURN d.metadata.name AS n ORDER BY n", kubeconfig=kubeconfig)
    assert [json.loads(x)["n"] for x in proc.stdout.splitlines()] == ["api", "cart", "web"]
    proc = tessera("query", "-n", "payments", "-o", "jsonl", "MATCH (d:deploy) RETURN d.metadata.name AS n", kubeconfig=kubeconfig)
    assert [json.loads(x)["n"] for x in proc.stdout.splitlines()] == ["api"]


def test_name_and_label_pushdown_from_pattern(kubeconfig, kube_api):
    before = len(kube_api.list_requests())
    proc = tessera("query", "-o", "jsonl", 'MATCH (p:Pod {app: "web"}) RETURN p.metadata.name AS n', kubeconfig=kubeconfig)
    assert proc.returncode == 0, proc.stderr
    assert kube_api.list_requests()[before:] == [{"path": "/api/v1/namespaces/shop/pods", "params": {"labelSelector": "app=web", "limit": "500"}}]


def test_two_contexts_with_in(kubeconfig):
    proc = tessera("query", "-o", "jsonl", "IN emu-a, emu-b MATCH (d:Deployment) RETURN d.metadata.name AS n ORDER BY n", kubeconfig=kubeconfig)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert rows == [{"context": "emu-a", "n": "cart"}, {"context": "emu-a", "n": "web"}, {"context": "emu-b", "n": "api-b"}]


def test_repeated_context_flag(kubeconfig):
    proc = tessera("query", "--context", "emu-b", "-o", "jsonl", "MATCH (s:svc) RETURN s.metadata.name AS n", kubeconfig=kubeconfig)
    assert [json.loads(x) for x in proc.stdout.splitlines()] == [{"n": "api-b"}]


def test_forbidden_is_not_authorized(kubeconfig, kube_api):
    kube_api.forbid("secrets")
    src = KubernetesSource(kubeconfig=str(kubeconfig))
    with pytest.raises(NotAuthorized, match="not allowed to list secrets"):
        src.list(KindRegistry(src.kinds()).resolve("secrets"))
    proc = tessera("query", "MATCH (s:Secret) RETURN s", kubeconfig=kubeconfig)
    assert proc.returncode == 5 and proc.stderr.startswith("tessera: ") and len(proc.stderr.splitlines()) == 1


def test_unreachable_server(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kc = write_kubeconfig(tmp_path / "kc", {"dead": (f"http://127.0.0.1:{port}", "default")}, "dead")
    src = KubernetesSource(kubeconfig=str(kc))
    with pytest.raises(SourceUnavailable, match="cannot reach the Kubernetes API"):
        src.kinds()
    proc = tessera("query", "MATCH (p:Pod) RETURN p", kubeconfig=kc)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr


def test_unknown_context_and_missing_kubeconfig(kubeconfig, tmp_path):
    with pytest.raises(SourceUnavailable) as info:
        KubernetesSource(context="nope", kubeconfig=str(kubeconfig))
    assert info.value.one_line().endswith("(contexts: emu-a, emu-b)")
    with pytest.raises(SourceUnavailable, match="no kubeconfig"):
        available_contexts(str(tmp_path / "missing"))
    assert available_contexts(str(kubeconfig)) == (["emu-a", "emu-b"], "emu-a")


def test_kinds_command_over_live(kubeconfig):
    proc = tessera("kinds", "-o", "jsonl", kubeconfig=kubeconfig)
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    pod = next(r for r in rows if r["kind"] == "Pod")
    assert pod["short_names"] == "po" and pod["source"] == "emu-a"


@pytest.mark.skipif(__import__("shutil").which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_talks_to_the_emulator(kubeconfig):
    proc = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "pods", "-n", "shop", "-l", "app=web", "-o", "json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(i["metadata"]["name"] for i in json.loads(proc.stdout)["items"]) == ["web-5d8f-0", "web-5d8f-1"]


def test_module_import_does_not_import_kubernetes():
    code = "import sys, tessera.plugins.sources.kubernetes; print('kubernetes' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_list_follows_continue_tokens(kubeconfig, kube_api, monkeypatch):
    import tessera.plugins.sources.kubernetes as kube

    monkeypatch.setattr(kube, "_PAGE", 2)
    src = KubernetesSource(kubeconfig=str(kubeconfig))
    pod = KindRegistry(src.kinds()).resolve("pods")
    before = len(kube_api.list_requests())
    items = src.list(pod)
    calls = kube_api.list_requests()[before:]
    assert len(items) == 4 and len({i["metadata"]["name"] for i in items}) == 4
    assert [c["params"].get("continue") for c in calls] == [None, "2"]


def test_kindless_neighbours_of_a_namespace_on_a_live_cluster(kubeconfig, kube_api):
    # Namespace -> (x): every namespaced kind discovery offers, joined on the namespace's name;
    # (d)->(x) lists the Deployment's Namespace after its ReplicaSet and Service.
    proc = tessera("query", "-A", "-o", "jsonl",
                   'MATCH (n:Namespace {name: "payments"})->(x) RETURN x.kind AS k, x.metadata.name AS n ORDER BY k, n',
                   kubeconfig=kubeconfig)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [
        {"k": "Deployment", "n": "api"}, {"k": "Pod", "n": "api-5d8f-0"},
        {"k": "ReplicaSet", "n": "api-5d8f"}, {"k": "Service", "n": "api"}]
    proc = tessera("query", "-o", "jsonl", 'MATCH (d:Deployment {name: "web"})->(x) RETURN x.kind AS k, x.metadata.name AS n',
                   kubeconfig=kubeconfig)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [
        {"k": "ReplicaSet", "n": "web-5d8f"}, {"k": "Service", "n": "web"}, {"k": "Namespace", "n": "shop"}]
