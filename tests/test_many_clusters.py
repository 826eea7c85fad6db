"""Several contexts at once, failures per context, credentials, RBAC, discovery cache and CRDs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
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


@pytest.fixture
def silent_url():
    """A server that accepts connections (the kernel completes them) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def test_a_context_that_never_answers_is_one_warning_after_the_request_timeout(tmp_path, kube_api, silent_url):
    kc = write_kubeconfig(tmp_path / "kc", {"up": (kube_api.url, "shop"), "silent": (silent_url, "shop")}, "up")
    r = tessera("-o", "jsonl", "--request-timeout", "1s",
                "IN up, silent MATCH (d:Deployment) RETURN d.metadata.name AS n ORDER BY n", kubeconfig=kc)
    assert r.returncode == 0, r.stderr
    assert [json.loads(x) for x in r.stdout.splitlines()] == [{"context": "up", "n": "cart"}, {"context": "up", "n": "web"}]
    (line,) = r.stderr.splitlines()
    assert line.startswith("tessera: warning: context 'silent': ") and "timed out" in line and "no answer in 1s" in line


@pytest.mark.parametrize("value", ["1", "1s", "0.5", "500ms"])
def test_request_timeout_values_and_exit_4_when_no_context_answers(tmp_path, silent_url, value):
    kc = write_kubeconfig(tmp_path / "kc", {"silent": (silent_url, "shop")}, "silent")
    r = tessera("--request-timeout", value, "MATCH (d:Deployment) RETURN d", kubeconfig=kc)
    assert r.returncode == 4, r.stderr
    (line,) = r.stderr.splitlines()
    assert "context 'silent'" in line and "timed out" in line and "--request-timeout" in line


def test_request_timeout_from_the_environment(tmp_path, silent_url):
    kc = write_kubeconfig(tmp_path / "kc", {"silent": (silent_url, "shop")}, "silent")
    r = tessera("MATCH (d:Deployment) RETURN d", kubeconfig=kc, env={"TESSERA_REQUEST_TIMEOUT": "1s"})
    assert r.returncode == 4 and "no answer in 1s" in r.stderr


@pytest.mark.parametrize("value", ["soon", "-1s", "1x", "s"])
def test_bad_request_timeout_is_a_usage_error(kubeconfig, value):
    r = tessera("--request-timeout", value, "MATCH (d:Deployment) RETURN d", kubeconfig=kubeconfig)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "duration" in r.stderr


def test_request_timeout_zero_means_no_limit(kubeconfig):
    r = tessera("--request-timeout", "0", "-o", "jsonl", "MATCH (d:Deployment) RETURN d.metadata.name AS n ORDER BY n",
                kubeconfig=kubeconfig)
    assert r.returncode == 0 and [json.loads(x)["n"] for x in r.stdout.splitlines()] == ["cart", "web"]


def test_help_documents_request_timeout_and_exit_4():
    r = subprocess.run([*TSR, "query", "--help"], capture_output=True, text=True, timeout=60,
                       env={**__import__("os").environ, "COLUMNS": "200"})
    assert "--request-timeout" in r.stdout and "exit 4" in r.stdout


def test_watch_over_a_silent_context_warns_once_and_follows_the_others(tmp_path, kube_api, silent_url):
    import threading
    import time

    from process_lines import json_lines
    from test_watch import pod

    kc = write_kubeconfig(tmp_path / "kc", {"up": (kube_api.url, "shop"), "silent": (silent_url, "shop")}, "up")
    proc = subprocess.Popen(
        [*TSR, "query", "--watch", "--kubeconfig", str(kc), "--request-timeout", "1s",
         "IN up, silent MATCH (p:Pod) RETURN p.metadata.name AS pod"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True).start()
    try:
        initial = json_lines(proc, 3, timeout=60)
        assert sorted(c["row"]["pod"] for c in initial) == ["cart-5d8f-0", "web-5d8f-0", "web-5d8f-1"]
        assert all(c["row"]["context"] == "up" for c in initial)
        for name in ("web-5d8f-5", "web-5d8f-6", "web-5d8f-7"):  # each change re-runs the query
            kube_api.add(pod(name))
            (added,) = json_lines(proc, 1, timeout=60)
            assert added["op"] == "added" and added["row"] == {"context": "up", "pod": name}
    finally:
        proc.terminate()
        proc.wait(10)
    deadline = time.monotonic() + 60
    while not any("silent" in e for e in errors) and time.monotonic() < deadline:
        time.sleep(0.05)
    about_silent = [e for e in errors if "silent" in e]
    assert len(about_silent) == 1, errors
    assert "timed out" in about_silent[0] and "retrying" in about_silent[0]


def test_kube_durations_parse_as_kubectl_reads_them():
    from tessera.core.errors import UsageError
    from tessera.core.times import parse_kube_duration

    assert [parse_kube_duration(v) for v in ("0", "30", "2.5", "30s", "1m", "1m30s", "500ms", "1h", "1.5m")] == [
        0, 30, 2.5, 30, 60, 90, 0.5, 3600, 90]
    for bad in ("", "soon", "-1s", "1x", "m", "1 m", "inf", "nan"):
        with pytest.raises(UsageError):
            parse_kube_duration(bad)


def test_a_bad_request_timeout_in_the_environment_names_the_variable(kubeconfig):
    r = tessera("MATCH (d:Deployment) RETURN d", kubeconfig=kubeconfig, env={"TESSERA_REQUEST_TIMEOUT": "soon"})
    assert r.returncode == 2
    assert r.stderr.startswith("tessera: TESSERA_REQUEST_TIMEOUT: 'soon' is not a duration") and "Traceback" not in r.stderr
