"""CREATE / SET / DELETE against the emulator: its state is checked after every mutation."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time


TSR = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args, kubeconfig, env=None, stdin=None):
    return subprocess.run([*TSR, "query", *args, "--kubeconfig", str(kubeconfig)], capture_output=True, text=True,
                          timeout=60, input=stdin, env={**os.environ, **(env or {})})


def deployment(kube_api, name="web", ns="shop"):
    return kube_api.get("apps/v1", "Deployment", ns, name)


def test_set_scalar_and_map_and_new_path(kubeconfig, kube_api):
    r = tessera('MATCH (d:Deployment {name: "web"}) SET d.spec.replicas = 3, d.metadata.annotations = {"team": "a b"}, '
                'd.spec.strategy.type = "Recreate"', "-o", "json", kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"context": "emu-a", "op": "patched", "kind": "Deployment", "namespace": "shop", "name": "web"}]
    dep = deployment(kube_api)
    assert dep["spec"]["replicas"] == 3 and dep["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert dep["metadata"]["annotations"] == {"team": "a b"} and dep["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment(kube_api, "cart")["spec"]["replicas"] == 1, "only the matched object changes"


def test_set_indexed_and_wildcard_paths(kubeconfig, kube_api):
    pod = kube_api.get("v1", "Pod", "shop", "web-5d8f-0")
    pod["spec"]["containers"].append({"name": "sidecar", "image": "acme/side:1"})
    kube_api.update(pod)
    r = tessera('MATCH (p:Pod {name: "web-5d8f-0"}) SET p.spec.containers[1].image = "acme/side:2"', kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    images = [c["image"] for c in kube_api.get("v1", "Pod", "shop", "web-5d8f-0")["spec"]["containers"]]
    assert images == ["acme/web:1", "acme/side:2"]
    r = tessera('MATCH (p:Pod {name: "web-5d8f-0"}) SET p.spec.containers[*].imagePullPolicy = "Always"', kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    containers = kube_api.get("v1", "Pod", "shop", "web-5d8f-0")["spec"]["containers"]
    assert [c["imagePullPolicy"] for c in containers] == ["Always", "Always"]
    assert [c["image"] for c in containers] == ["acme/web:1", "acme/side:2"]


def test_set_out_of_range_index_changes_nothing(kubeconfig, kube_api):
    before = kube_api.get("v1", "Pod", "shop", "web-5d8f-0")
    r = tessera('MATCH (p:Pod {name: "web-5d8f-0"}) SET p.spec.containers[5].image = "x"', kubeconfig=kubeconfig)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "out of range" in r.stderr
    assert kube_api.get("v1", "Pod", "shop", "web-5d8f-0") == before


def test_delete(kubeconfig, kube_api):
    r = tessera('MATCH (p:Pod) WHERE p.metadata.name = "web-5d8f-1" DELETE p', kubeconfig=kubeconfig, env={})
    assert r.returncode == 0, r.stderr
    assert kube_api.get("v1", "Pod", "shop", "web-5d8f-1") is None
    assert kube_api.get("v1", "Pod", "shop", "web-5d8f-0") is not None


def test_create_from_properties(kubeconfig, kube_api):
    r = tessera('CREATE (c:ConfigMap {name: "flags", labels: {tier: "web"}, data: {beta: "on"}})', kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    cm = kube_api.get("v1", "ConfigMap", "shop", "flags")  # the context's namespace
    assert cm["data"] == {"beta": "on"} and cm["metadata"]["labels"] == {"tier": "web"}
    body = ('CREATE (d:Deployment {"metadata": {"name": "nginx", "namespace": "payments", "labels": {"app": "nginx"}}, '
            '"spec": {"selector": {"matchLabels": {"app": "nginx"}}, "template": {"metadata": {"labels": {"app": "nginx"}}, '
            '"spec": {"containers": [{"name": "nginx", "image": "nginx:latest", "ports": [{"containerPort": 8080}]}]}}}})')
    assert tessera(body, kubeconfig=kubeconfig).returncode == 0
    assert deployment(kube_api, "nginx", "payments")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:latest"
    again = tessera(body, kubeconfig=kubeconfig)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_create_service_by_relationship_like_kubectl_expose(kubeconfig, kube_api):
    dep = deployment(kube_api, "cart")
    dep["spec"]["template"] = {"metadata": {"labels": {"app": "cart"}}, "spec": {"containers": [
        {"name": "cart", "image": "acme/cart:1", "ports": [{"containerPort": 8080, "name": "http"}]}]}}
    kube_api.update(dep)
    kube_api.remove(kube_api.get("v1", "Service", "shop", "cart"))
    r = tessera('MATCH (d:Deployment {name: "cart"}) CREATE (d)->(s:Service)', kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    svc = kube_api.get("v1", "Service", "shop", "cart")
    assert svc["spec"]["selector"] == {"app": "cart"}
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}]
    # and the new service relates back to the deployment's pods
    q = subprocess.run([*TSR, "query", "--kubeconfig", str(kubeconfig), "-o", "json",
                        'MATCH (s:Service {name: "cart"})->(p:Pod) RETURN p.metadata.name AS pod'],
                       capture_output=True, text=True, timeout=60)
    assert json.loads(q.stdout) == [{"pod": "cart-5d8f-0"}]


def test_create_ingress_from_service(kubeconfig, kube_api):
    r = tessera('MATCH (s:Service {name: "web"}) CREATE (s)->(i:Ingress {"spec": {"rules": [{"host": "web.example.com"}]}})',
                kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    ing = kube_api.get("networking.k8s.io/v1", "Ingress", "shop", "web")
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "web.example.com"
    assert rule["http"]["paths"][0]["backend"] == {"service": {"name": "web", "port": {"number": 80}}}


def test_dry_run_prints_exact_calls_and_changes_nothing(kubeconfig, kube_api):
    before = deployment(kube_api)
    r = tessera('MATCH (d:Deployment {name: "web"}) SET d.spec.replicas = 4', "--dry-run", kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    assert [json.loads(line) for line in r.stdout.splitlines()] == [{
        "context": "emu-a", "method": "PATCH", "path": "/apis/apps/v1/namespaces/shop/deployments/web",
        "content_type": "application/json-patch+json", "body": [{"op": "replace", "path": "/spec/replicas", "value": 4}],
    }]
    r = tessera('MATCH (p:Pod {name: "web-5d8f-0"}) DELETE p', "--dry-run", kubeconfig=kubeconfig)
    assert json.loads(r.stdout) == {"context": "emu-a", "method": "DELETE", "path": "/api/v1/namespaces/shop/pods/web-5d8f-0"}
    assert deployment(kube_api) == before and kube_api.get("v1", "Pod", "shop", "web-5d8f-0") is not None


def test_read_only_flag_env_and_config(kubeconfig, kube_api, isolated_home):
    q = 'MATCH (d:Deployment {name: "web"}) SET d.spec.replicas = 9'
    r = tessera(q, "--read-only", kubeconfig=kubeconfig)
    assert r.returncode == 1 and "read-only mode refuses writes" in r.stderr
    assert tessera(q, kubeconfig=kubeconfig, env={"TESSERA_READ_ONLY": "1"}).returncode == 1
    config = isolated_home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text("read_only = true\n")
    assert tessera(q, kubeconfig=kubeconfig).returncode == 1
    assert deployment(kube_api)["spec"]["replicas"] == 2


def test_files_and_recordings_refuse_writes():
    r = subprocess.run([*TSR, "query", "-s", "demo", 'MATCH (d:Deployment) SET d.spec.replicas = 1'],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("tessera: source 'demo' is read-only: files, recordings, stores and peers' replicas cannot be changed")


def test_terminal_lists_and_confirms(kubeconfig, kube_api):
    master, slave = pty.openpty()
    proc = subprocess.Popen([*TSR, "query", "--kubeconfig", str(kubeconfig), "-o", "json",
                             'MATCH (d:Deployment {name: "web"}) SET d.spec.replicas = 7'],
                            stdin=slave, stderr=slave, stdout=subprocess.PIPE, text=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    while b"Apply?" not in seen and time.monotonic() < deadline:
        seen += os.read(master, 4096)
    assert b"patch  Deployment shop/web" in seen and b"/spec/replicas = 7" in seen
    os.write(master, b"n\n")
    out, _ = proc.communicate(timeout=30)
    os.close(master)
    assert proc.returncode == 1 and out == ""
    assert deployment(kube_api)["spec"]["replicas"] == 2, "declined: nothing changed"
    r = tessera('MATCH (d:Deployment {name: "web"}) SET d.spec.replicas = 7', "--yes", kubeconfig=kubeconfig)
    assert r.returncode == 0 and deployment(kube_api)["spec"]["replicas"] == 7


def test_return_after_a_write_shows_the_written_objects(kubeconfig, kube_api):
    r = tessera('MATCH (d:Deployment) WHERE d.metadata.name = "web" SET d.spec.replicas = 5 '
                'RETURN d.metadata.name AS name, d.spec.replicas AS replicas', "-o", "json", kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"name": "web", "replicas": 5}]
    r = tessera('CREATE (c:ConfigMap {name: "made", data: {k: "v"}}) RETURN c.metadata.namespace AS ns, c.data.k AS k',
                "-o", "json", kubeconfig=kubeconfig)
    assert json.loads(r.stdout) == [{"ns": "shop", "k": "v"}]
    r = tessera("-o", "json", "-A", 'IN emu-a, emu-b MATCH (d:Deployment) WHERE d.metadata.name STARTS WITH "cart" '
                'SET d.spec.paused = true RETURN d.metadata.name AS name, d.spec.paused AS paused', kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"context": "emu-a", "name": "cart", "paused": True},
                                    {"context": "emu-b", "name": "cart-b", "paused": True}]
