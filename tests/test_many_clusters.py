"""Several contexts at once, failures per context, credentials, RBAC, discovery cache and CRDs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from kube_emulator import write_kubeconfig

TSR = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args, kubeconfig, env=None):
    import os

    return subprocess.run([*TSR, "query", *args, "--kubeconfig", str(kubeconfig)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_repeated_context_rows_carry_context(kubeconfig):
    r = tessera("--context", "emu-a", "--context", "emu-b", "-A", "-o", "jsonl",
                "MATCH (d:Deployment) RETURN d.metadata.name AS n ORDER BY n", kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert rows == [{"context": "emu-a", "n": "api"}, {"context": "emu-a", "n": "cart"}, {"context": "emu-a", "n": "web"},
                    {"context": "emu-b", "n": "api-b"}, {"context": "emu-b", "n": "cart-b"}, {"context": "emu-b", "n": "web-b"}]


def test_cyphernetes_shape_prefixes_context(kubeconfig):
    r = tessera("-o", "cyphernetes", "IN emu-a, emu-b MATCH (d:Deployment) RETURN d.metadata.name", kubeconfig=kubeconfig)
    data = json.loads(r.stdout)
    assert sorted(data) == ["emu-a_d", "emu-b_d"]
    assert sorted(d["name"] for d in data["emu-a_d"]) == ["cart", "web"]


def test_one_unreachable_context_is_one_warning(tmp_path, kube_api):
    kc = write_kubeconfig(tmp_path / "kc", {"up": (kube_api.url, "shop"), "down": (dead_url(), "shop")}, "up")
    r = tessera("-o", "jsonl", "IN up, down MATCH (d:Deployment) RETURN d.metadata.name AS n ORDER BY n", kubeconfig=kc)
    assert r.returncode == 0
    assert [json.loads(x) for x in r.stdout.splitlines()] == [{"context": "up", "n": "cart"}, {"context": "up", "n": "web"}]
    (line,) = r.stderr.splitlines()
    assert line.startswith("tessera: warning: cannot reach the Kubernetes API") and "context down" in line


def test_all_unreachable_exits_3(tmp_path):
    kc = write_kubeconfig(tmp_path / "kc", {"a": (dead_url(), "x"), "b": (dead_url(), "x")}, "a")
    r = tessera("--context", "a", "--context", "b", "MATCH (d:Deployment) RETURN d", kubeconfig=kc)
    assert r.returncode == 3 and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


def test_bad_credentials_exit_5_naming_the_context(kubeconfig, kube_api):
    kube_api.require_token("the-real-one")
    r = tessera("MATCH (p:Pod) RETURN p", kubeconfig=kubeconfig)
    assert r.returncode == 5
    (line,) = r.stderr.splitlines()
    assert "context 'emu-a'" in line and "credentials" in line and "expired" in line


def test_kindless_query_skips_forbidden_kinds(kubeconfig, kube_api):
    kube_api.forbid("secrets")
    r = tessera("-o", "jsonl", 'MATCH (p:Pod {name: "web-5d8f-0"})->(x) RETURN x.kind AS kind, x.metadata.name AS name',
                kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert {"kind": "ReplicaSet", "name": "web-5d8f"} in rows
    warnings = [line for line in r.stderr.splitlines() if "Secret" in line]
    assert len(warnings) == 1 and warnings[0].startswith("tessera: warning: skipped Secret (forbidden)")


def test_discovery_is_cached_per_context_and_refreshed_for_new_crds(kubeconfig, kube_api):
    q = "MATCH (c:Certificate) RETURN c.metadata.name AS n"
    assert tessera("-o", "jsonl", q, kubeconfig=kubeconfig).returncode == 0
    discovery = [p for p in kube_api.paths() if p.startswith("/api") and p.count("/") <= 3]
    assert discovery, "the first run discovers"
    before = len(kube_api.paths())
    assert tessera("-o", "jsonl", q, kubeconfig=kubeconfig).returncode == 0
    again = [p for p in kube_api.paths()[before:] if p.startswith("/api") and p.count("/") <= 3]
    assert again == [], f"second run used the disk cache, but asked {again}"
    # a CRD installed after the cache was written is found by rediscovering once
    kube_api.declare("example.com", "v1", "widgets", "Widget", True, ("wdg",))
    kube_api.add({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "shop"}})
    r = tessera("-o", "jsonl", "MATCH (w:wdg) RETURN w.metadata.name AS n", kubeconfig=kubeconfig)
    assert r.returncode == 0, r.stderr
    assert [json.loads(x) for x in r.stdout.splitlines()] == [{"n": "w1"}]


def test_unknown_kind_suggests_close_names(kubeconfig):
    r = tessera("MATCH (d:Deploymnt) RETURN d", kubeconfig=kubeconfig)
    assert r.returncode == 1
    assert r.stderr.strip().startswith('tessera: resource "Deploymnt" not found (did you mean deployment')


def test_discovery_ttl_zero_always_asks(kubeconfig, kube_api):
    q = "MATCH (c:Certificate) RETURN c.metadata.name AS n"
    tessera(q, kubeconfig=kubeconfig)
    before = len(kube_api.paths())
    tessera(q, kubeconfig=kubeconfig, env={"TESSERA_DISCOVERY_TTL": "0"})
    assert "/apis" in kube_api.paths()[before:]
