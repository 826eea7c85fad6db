"""Secret values are "<redacted>" everywhere Tessera shows or keeps them (query output, cell
results, events, recordings) unless the user opts in, mutations never write the hidden form back,
and files holding cluster data are 0600 whatever the umask."""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys
import threading

import pytest

from tessera.core.recording_file import load_recording
from tessera.core.store import db

TSR = [sys.executable, "-m", "tessera.cli.main"]
PASSWORD = "aHVudGVyMg=="  # base64 of hunter2
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def secret(name="db", ns="shop"):
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": ns, "uid": f"sec-{name}",
                         "annotations": {LAST_APPLIED: json.dumps({"data": {"password": PASSWORD}})}},
            "data": {"password": PASSWORD, "user": "YWRtaW4="}, "stringData": {"token": "plain-token"}}


def tsr(*args, env=None, input=None, umask=None):
    return subprocess.run([*TSR, *args], capture_output=True, text=True, input=input, timeout=120,
                          env={**os.environ, **(env or {})},
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


@pytest.fixture
def secret_file(tmp_path):
    import yaml

    path = tmp_path / "secret.yaml"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}, "data": {"password": PASSWORD}}
    path.write_text(yaml.safe_dump_all([secret(), cm]))
    return path


def _hidden(obj):
    return obj["data"] == {"password": "<redacted>", "user": "<redacted>"} and obj["stringData"] == {"token": "<redacted>"} \
        and obj["metadata"]["annotations"][LAST_APPLIED] == "<redacted>"


# --- query output -------------------------------------------------------------------------------


def test_query_output_hides_secret_values_in_every_format(secret_file):
    r = tsr("query", "-s", str(secret_file), "-o", "json", "MATCH (s:Secret) RETURN s")
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert _hidden(row["s"])
    assert row["s"]["metadata"]["name"] == "db" and row["s"]["type"] == "Opaque"
    for fmt in ("table", "yaml", "jsonl", "csv", "tree", "graph"):
        r = tsr("query", "-s", str(secret_file), "-o", fmt, "MATCH (s:Secret) RETURN s, s.data.password AS p")
        assert r.returncode == 0, r.stderr
        assert PASSWORD not in r.stdout and "plain-token" not in r.stdout, fmt
    # a manifest that leaves out apiVersion is still a core Secret
    bare = secret_file.with_name("bare.yaml")
    bare.write_text(f"kind: Secret\nmetadata: {{name: bare, namespace: shop}}\ndata: {{password: {PASSWORD}}}\n")
    r = tsr("query", "-s", str(bare), "-o", "jsonl", "MATCH (s:Secret) RETURN s.data AS data")
    assert json.loads(r.stdout) == {"data": {"password": "<redacted>"}}
    # only Secrets are touched: a ConfigMap's data is shown as it is
    r = tsr("query", "-s", str(secret_file), "-o", "jsonl", "MATCH (c:ConfigMap) RETURN c.data.password AS p")
    assert json.loads(r.stdout) == {"p": PASSWORD}


def test_the_demo_cluster_secrets_are_hidden():
    r = tsr("query", "-s", "demo", "-o", "jsonl", "MATCH (s:Secret) RETURN s.data AS data")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert rows and all(set(row["data"].values()) == {"<redacted>"} for row in rows)


def test_show_secrets_opt_in_flag_env_and_config(secret_file, isolated_home):
    query = ["-s", str(secret_file), "-o", "jsonl", "MATCH (s:Secret) RETURN s.data.password AS p"]
    shown, hidden = {"p": PASSWORD}, {"p": "<redacted>"}
    assert json.loads(tsr("query", *query).stdout) == hidden
    assert json.loads(tsr("query", "--show-secrets", *query).stdout) == shown
    assert json.loads(tsr("--show-secrets", "query", *query).stdout) == shown
    assert json.loads(tsr("query", *query, env={"TESSERA_SHOW_SECRETS": "1"}).stdout) == shown
    (isolated_home / "config").mkdir()
    (isolated_home / "config" / "config.toml").write_text("show_secrets = true\n")
    assert json.loads(tsr("query", *query).stdout) == shown
    assert json.loads(tsr("query", *query, env={"TESSERA_SHOW_SECRETS": "0"}).stdout) == hidden, "the variable wins"
    assert json.loads(tsr("info").stdout)["settings"]["show_secrets"] is True


# --- what is kept: cell results, events -----------------------------------------------------------


def _store_bytes():
    path = db.db_path()
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_cell_results_and_events_keep_only_the_hidden_form(secret_file):
    assert tsr("notebook", "new", "ops").returncode == 0
    assert tsr("cell", "add", "ops", "-s", str(secret_file), "MATCH (s:Secret) RETURN s, s.data AS data").returncode == 0
    r = tsr("notebook", "run", "ops", "-o", "jsonl")
    assert r.returncode == 0, r.stderr
    (row,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert _hidden(row["s"]) and row["data"] == {"password": "<redacted>", "user": "<redacted>"}
    conn = db.connect()
    (stored,) = conn.execute("SELECT rows FROM cell_results").fetchone()
    assert "<redacted>" in stored and PASSWORD not in stored
    changed = conn.execute("SELECT data FROM events WHERE subject LIKE 'query.ops.%'").fetchall()
    assert changed and all("<redacted>" in d and PASSWORD not in d for (d,) in changed)
    conn.close()
    assert PASSWORD.encode() not in _store_bytes() and b"plain-token" not in _store_bytes()


# --- recordings -------------------------------------------------------------------------------------


def test_recorded_secrets_are_hidden_and_the_file_private(kubeconfig, kube_api, tmp_path):
    kube_api.add(secret())
    out = tmp_path / "rec.jsonl"
    r = tsr("record", "--kubeconfig", str(kubeconfig), "secrets", "-o", str(out), "--duration", "1", umask=0)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert PASSWORD not in text and "plain-token" not in text
    (obj,) = [o for _, _, o in load_recording(out).events if o["kind"] == "Secret"]
    assert _hidden(obj)
    # opted in: the real values are recorded, and a replay still hides them unless asked
    real = tmp_path / "real.jsonl.gz"
    r = tsr("record", "--kubeconfig", str(kubeconfig), "secrets", "--show-secrets", "-o", str(real), "--duration", "1",
            umask=0)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    (obj,) = [o for _, _, o in load_recording(real).events if o["kind"] == "Secret"]
    assert obj["data"]["password"] == PASSWORD
    query = ["-s", f"replay:{real}", "-o", "jsonl", "MATCH (s:Secret) RETURN s.data.password AS p"]
    assert json.loads(tsr("query", *query).stdout) == {"p": "<redacted>"}
    assert json.loads(tsr("query", "--show-secrets", *query).stdout) == {"p": PASSWORD}


def test_live_cluster_query_and_watch_hide_secret_values(kubeconfig, kube_api):
    kube_api.add(secret())
    r = tsr("query", "--kubeconfig", str(kubeconfig), "-o", "jsonl", "MATCH (s:Secret) RETURN s")
    assert r.returncode == 0, r.stderr
    assert _hidden(json.loads(r.stdout)["s"])
    proc = subprocess.Popen([*TSR, "query", "--kubeconfig", str(kubeconfig), "--watch",
                             "MATCH (s:Secret) RETURN s.data AS data"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        first = lines.get(timeout=60)
        assert PASSWORD not in first and "<redacted>" in first
        changed = secret()
        changed["data"]["password"] = "bmV3LXBhc3M="  # hidden, this alone changes no row
        changed["data"]["extra"] = "ZXh0cmE="
        kube_api.update(changed)
        second = json.loads(lines.get(timeout=60))  # the change, seen through the watch
        assert second["op"] == "changed"
        assert second["row"]["data"] == {"password": "<redacted>", "user": "<redacted>", "extra": "<redacted>"}
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# --- mutations --------------------------------------------------------------------------------------


def _query(kubeconfig, *args, env=None):
    return tsr("query", *args, "--kubeconfig", str(kubeconfig), env=env)


def test_set_on_a_secret_never_writes_the_hidden_form_back(kubeconfig, kube_api):
    kube_api.add(secret())
    r = _query(kubeconfig, 'MATCH (s:Secret {name: "db"}) SET s.metadata.labels.team = "pay" RETURN s', "-o", "json")
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert _hidden(row["s"]) and row["s"]["metadata"]["labels"] == {"team": "pay"}, "the server's copy, hidden"
    after = kube_api.get("v1", "Secret", "shop", "db")
    assert after["data"] == secret()["data"] and after["metadata"]["labels"] == {"team": "pay"}
    # setting a value of one's own is fine; copying a hidden one is refused, nothing written
    r = _query(kubeconfig, 'MATCH (s:Secret {name: "db"}) SET s.data.api = "YXBp"')
    assert r.returncode == 0, r.stderr
    assert kube_api.get("v1", "Secret", "shop", "db")["data"]["api"] == "YXBp"
    before = kube_api.get("v1", "Secret", "shop", "db")
    for statement in ('MATCH (s:Secret {name: "db"}) SET s.data.copy = s.data.password',
                      'MATCH (s:Secret {name: "db"}) SET s.data = s.data',
                      'MATCH (s:Secret {name: "db"}) SET s.metadata.annotations.p = "x" + s.data.password'):
        r = _query(kubeconfig, statement, "--dry-run")
        assert r.returncode == 1, (statement, r.stdout)
        assert len(r.stderr.splitlines()) == 1 and "would write '<redacted>'" in r.stderr and "--show-secrets" in r.stderr
        r = _query(kubeconfig, statement)
        assert r.returncode == 1 and "would write '<redacted>'" in r.stderr
    assert kube_api.get("v1", "Secret", "shop", "db") == before
    # opted in, the real value is read and copied
    r = _query(kubeconfig, 'MATCH (s:Secret {name: "db"}) SET s.data.copy = s.data.password', "--show-secrets")
    assert r.returncode == 0, r.stderr
    assert kube_api.get("v1", "Secret", "shop", "db")["data"]["copy"] == PASSWORD


# --- private files ----------------------------------------------------------------------------------


def test_notebook_export_is_private_whatever_the_umask(tmp_path):
    assert tsr("notebook", "new", "ops").returncode == 0
    assert tsr("cell", "add", "ops", "-s", "demo", "MATCH (n:Namespace) RETURN n.metadata.name").returncode == 0
    for name in ("ops.md", "ops.ipynb"):
        out = tmp_path / name
        out.write_text("old")
        os.chmod(out, 0o644)  # an existing file is made private too: it now holds cluster data
        r = tsr("notebook", "export", "ops", str(out), umask=0)
        assert r.returncode == 0, r.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_text() != "old"
    fresh = tmp_path / "fresh.md"
    assert tsr("notebook", "export", "ops", str(fresh), umask=0).returncode == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_discovery_cache_is_private_whatever_the_umask(kubeconfig, kube_api, isolated_home):
    r = tsr("kinds", "--kubeconfig", str(kubeconfig), "-o", "jsonl", umask=0)
    assert r.returncode == 0, r.stderr
    cached = list((isolated_home / "data" / "cache" / "discovery").glob("*.json"))
    assert cached and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in cached)
