"""`tessera record` against the emulator, and its recordings replayed: AT, --watch, --speed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from tessera.core.recording_file import load_recording, state_at

TSR = [sys.executable, "-m", "tessera.cli.main"]


def pod(name, phase="Running"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "uid": f"u-{name}", "labels": {"app": "web", "pod-template-hash": "5d8f"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f",
                                              "uid": "rs-shop-web", "controller": True}]},
            "spec": {"containers": [{"name": "web", "image": "acme/web:1"}]}, "status": {"phase": phase}}


def wait_for_file_lines(path, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return True
        time.sleep(0.05)
    return False


def test_record_then_replay_and_query_at(kubeconfig, kube_api, tmp_path):
    out = tmp_path / "rec.jsonl"
    proc = subprocess.Popen([*TSR, "record", "--kubeconfig", str(kubeconfig), "deploy", "rs", "pods", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # header + 3 deployments + 3 replicasets + 4 pods
        assert wait_for_file_lines(out, 11), proc.stderr.read() if proc.poll() is not None else "no initial list"
        time.sleep(1.1)
        kube_api.add(pod("web-5d8f-9"))
        kube_api.update(pod("web-5d8f-0", phase="Failed"))
        assert wait_for_file_lines(out, 13)
        middle = time.time()
        time.sleep(1.1)
        kube_api.remove(pod("web-5d8f-1"))
        assert wait_for_file_lines(out, 14)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "recorded 13 events of 3 kinds" in err

    rec = load_recording(out)
    assert rec.header["context"] == "emu-a"
    types = [t for _, t, _ in rec.events]
    assert types[:10] == ["ADDED"] * 10 and types[10:] == ["ADDED", "MODIFIED", "DELETED"]
    assert all(ts == rec.start for ts, _, _ in rec.events[:10])
    final = state_at(rec, rec.end)
    assert sorted(k[-1] for k in final if k[1] == "Pod") == sorted(
        o["metadata"]["name"] for o in kube_api.objects("Pod"))

    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle)) + f".{int(middle * 1000) % 1000:03d}Z"
    q = subprocess.run([*TSR, "query", "-s", f"replay:{out}", "-o", "jsonl",
                        f'AT "{when}" MATCH (rs:ReplicaSet)->(p:Pod) WHERE rs.metadata.name = "web-5d8f" '
                        'RETURN p.metadata.name AS pod, p.status.phase AS phase ORDER BY pod'],
                       capture_output=True, text=True, timeout=60)
    assert q.returncode == 0, q.stderr
    assert [json.loads(x) for x in q.stdout.splitlines()] == [
        {"pod": "web-5d8f-0", "phase": "Failed"}, {"pod": "web-5d8f-1", "phase": "Running"},
        {"pod": "web-5d8f-9", "phase": "Running"}]


def test_record_stops_on_a_sigterm_that_a_watch_thread_receives(kubeconfig, kube_api, tmp_path):
    from tests.process_lines import signal_a_worker_thread

    out = tmp_path / "rec.jsonl"
    proc = subprocess.Popen([*TSR, "record", "--kubeconfig", str(kubeconfig), "pods", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_file_lines(out, 5), proc.stderr.read() if proc.poll() is not None else "no initial list"
        signal_a_worker_thread(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "recorded 4 events of 1 kind" in err


def test_record_skips_forbidden_kinds_with_a_warning(kubeconfig, kube_api, tmp_path):
    kube_api.forbid("secrets")
    out = tmp_path / "rec.jsonl.gz"
    r = subprocess.run([*TSR, "record", "--kubeconfig", str(kubeconfig), "pods", "secrets", "-o", str(out), "--duration", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert any(line.startswith("tessera: warning: not recording Secret") for line in r.stderr.splitlines())
    assert {o["kind"] for _, _, o in load_recording(out).events} == {"Pod"}


def test_record_default_kinds_leave_out_secrets(kubeconfig, kube_api, tmp_path):
    kube_api.add({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"}, "data": {"k": "djE="}})
    out = tmp_path / "rec.jsonl"
    r = subprocess.run([*TSR, "record", "--kubeconfig", str(kubeconfig), "-o", str(out), "--duration", "1.5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kinds = {o["kind"] for _, _, o in load_recording(out).events}
    assert {"Pod", "Deployment", "Service", "ConfigMap", "Certificate"} <= kinds and "Secret" not in kinds


def test_record_unreachable_exits_3(tmp_path):
    import socket

    from kube_emulator import write_kubeconfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    kc = write_kubeconfig(tmp_path / "kc", {"dead": (url, "x")}, "dead")
    r = subprocess.run([*TSR, "record", "--kubeconfig", str(kc), "pods", "-o", str(tmp_path / "r.jsonl")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and len(r.stderr.splitlines()) == 1 and "context dead" in r.stderr


def test_watch_over_the_demo_recording_sees_a_new_pod_through_relationships():
    proc = subprocess.Popen(
        [*TSR, "query", "--watch", "-s", "replay:demo", "--speed", "200",
         "MATCH (d:Deployment)->(rs:ReplicaSet)->(p:Pod) RETURN d.metadata.name AS d, p.metadata.name AS p"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())  # the initial rows share one timestamp
        added_later = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and added_later is None:
            change = json.loads(proc.stdout.readline())
            if change["op"] == "added" and change["ts"] != first["ts"]:
                added_later = change
        assert added_later is not None and added_later["row"]["d"]
    finally:
        proc.terminate()
        proc.wait(10)
