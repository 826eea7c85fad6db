"""Alerts end to end through `tessera job add … --alert … --notify …` and `tessera job run`
(real subprocesses, a real store, a manifest file the query reads, a notify command writing its
stdin to a file)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.job_helpers import tsr

from tessera.core import events
from tessera.core.store.db import connect

QUERY = "MATCH (p:Pod) RETURN p.metadata.name AS pod, p.status.containerStatuses[0].restartCount AS restarts ORDER BY pod"


def write_pods(path: Path, restarts: dict[str, int]) -> None:
    docs = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
             "status": {"phase": "Running", "containerStatuses": [{"name": "c", "restartCount": n}]}}
            for name, n in restarts.items()]
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def test_job_add_with_an_alert_fires_resolves_and_fires_again_through_job_run(tmp_path):
    pods, notified = tmp_path / "pods.json", tmp_path / "notified.jsonl"
    write_pods(pods, {"api": 1, "web": 0})
    added = tsr("job", "add", "restarts", "--cron", "*/5 * * * *", "--query", QUERY, "-s", str(pods),
                "--alert", "restarts > 5", "--notify", f"cat >> '{notified}'")
    assert added.returncode == 0, added.stderr
    for restarts, code in [({"api": 1, "web": 0}, 0), ({"api": 9, "web": 0}, 0), ({"api": 12, "web": 0}, 0),
                           ({"api": 0, "web": 0}, 0), ({"api": 0, "web": 6}, 0)]:
        write_pods(pods, restarts)
        ran = tsr("job", "run", "restarts")
        assert ran.returncode == code, ran.stderr
    conn = connect()
    found = events.read(conn, pattern="alert.restarts.>")
    assert [e.subject for e in found] == ["alert.restarts.firing", "alert.restarts.resolved", "alert.restarts.firing"]
    notes = [json.loads(line) for line in notified.read_text().splitlines()]
    assert [n["state"] for n in notes] == ["firing", "resolved", "firing"]
    assert notes[0]["rows"] == [{"pod": "api", "restarts": 9}] and notes[0]["value"] == 9
    assert notes[2]["rows"] == [{"pod": "web", "restarts": 6}] and notes[2]["run"] == found[2].data["run"]
    [shown] = json.loads(tsr("job", "show", "restarts", "-o", "json").stdout)
    assert shown["alert_state"]["state"] == "firing" and shown["alert_state"]["run_id"] == found[2].data["run"]


def test_job_add_refuses_a_bad_alert_in_one_line_and_stores_nothing():
    bad = tsr("job", "add", "j", "--cron", "* * * * *", "--query", QUERY, "-s", "demo", "--alert", "restarts >")
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("tessera: alert condition 'restarts >' at character 11: expected value, got the end "
                                  "of the condition (write a condition such as 'rows > 0', 'max(restarts) > 5', "
                                  "'status = \"Failed\"' or 'exit_code != 0' (docs/jobs.md, Alerts))")
    assert json.loads(tsr("job", "list", "-o", "json").stdout) == []
