"""``tessera search`` as a user runs it: real ``tessera ingest`` and ``tessera search`` processes
over tests/knowledge_helpers.py's runbook tree, JSONL in a pipe, lines on a terminal (a pty),
one-line errors with typed exit codes, and no model download ever attempted."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from knowledge_helpers import write_notes

TSR = [sys.executable, "-m", "tessera.cli.main"]


def tsr(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def notes(tmp_path) -> Path:
    root = write_notes(tmp_path)
    r = tsr("ingest", str(root))
    assert r.returncode == 0, r.stderr
    return root


def rows(r: subprocess.CompletedProcess) -> list[dict]:
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_jsonl_rows_in_a_pipe(notes):
    found = rows(tsr("search", "rollout undo", "--mode", "bm25"))
    assert found and found[0]["path"] == "runbooks/web.md"
    first = found[0]
    assert {"source", "path", "title", "heading", "score", "snippet"} <= set(first)
    assert first["source"] == "local" and first["root_given"] == str(notes)
    assert first["title"] == "Web frontend runbook" and first["heading"] == "Web frontend > Remediation"
    assert "«rollout»" in first["snippet"] and "«undo»" in first["snippet"]
    assert 0 < first["score"] < 1


def test_number_of_hits_mode_and_chunks(notes):
    assert len(rows(tsr("search", "kubectl", "-n", "2", "--mode", "bm25"))) == 2
    assert len(rows(tsr("search", "kubectl", "--limit", "1", "-n", "3", "--mode", "bm25"))) == 1
    by_doc = rows(tsr("search", "kubectl", "--mode", "bm25", "-n", "50"))
    by_chunk = rows(tsr("search", "kubectl", "--mode", "bm25", "-n", "50", "--chunks"))
    assert len({r["path"] for r in by_doc}) == len(by_doc) < len(by_chunk)
    assert {r["path"] for r in by_chunk} == {r["path"] for r in by_doc}


def test_paraphrase_finds_the_crashloop_note_under_semantic_and_hybrid(notes):
    for mode in ("semantic", "hybrid"):
        found = rows(tsr("search", "pod stuck restarting over and over", "--mode", mode))
        assert found[0]["path"] == "notes/crashloop.txt", (mode, found)


def test_lines_on_a_terminal(notes):
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*TSR, "search", "rollout undo", "--mode", "bm25", "-n", "1", "--color", "never"],
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE, env=dict(os.environ))
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the process closed its end
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.returncode == 0
    line = seen.decode().replace("\r\n", "\n").strip()
    assert line.startswith("[local] (0.") and ") runbooks/web.md — Web frontend runbook › Web frontend > Remediation: " in line
    assert "«" not in line and "rollout undo" in line  # the marks become bold, and without colour nothing


@pytest.mark.parametrize("text, what", [
    ("web AND", "bad search text 'web AND': the text ends where a term was expected"),
    ('"unclosed', "bad search text '\"unclosed': quote not closed"),
    ("(web", "bad search text '(web': '(' not closed"),
])
def test_bad_syntax_is_one_line_and_exit_1(notes, text, what):
    r = tsr("search", text)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"tessera: {what}") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_plain_text_never_trips_fts_syntax(notes):
    for text in ("crash-loop", "kube-proxy", "deployment/web", "api-config", "app.kubernetes.io/name",
                 "don't", "what's 502?", "web-7d9f8c6b5-x2x9q", "f(x)", "a -- b", "50%", "c++", "#oncall",
                 "and or not", "near", "title: web"):
        r = tsr("search", text, "--mode", "bm25")
        assert r.returncode == 0, (text, r.stderr)
    assert rows(tsr("search", "deployment/web", "--mode", "bm25"))[0]["path"] in ("runbooks/web.md", "tools/restart.py")


def test_usage_errors(notes):
    for args, what in ((["search", "  "], "the search text is empty"),
                       (["search", "web", "--mode", "fuzzy"], "'fuzzy' is not a search mode"),
                       (["search", "web", "-o", "tree"], "search results cannot be shown as tree")):
        r = tsr(*args)
        assert r.returncode == 2 and what in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)


def test_nothing_ingested_is_a_note_and_no_rows(tmp_path):
    r = tsr("search", "web")
    assert r.returncode == 0 and r.stdout == ""
    assert r.stderr == "tessera: nothing is ingested here yet (run `tessera ingest PATH` first)\n"
    assert not Path(os.environ["TESSERA_HOME"]).exists(), "a search creates no data home"
    r = tsr("search", "web AND")
    assert r.returncode == 1 and "bad search text" in r.stderr


NETWORK_HOOK = """\
import socket, requests

def refuse(*args, **kwargs):
    with open(%r, "a") as log:
        log.write(repr(args[1:2] or kwargs) + "\\n")
    raise OSError("network use refused by the test")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
requests.get = requests.request = requests.Session.request = refuse
try:
    import huggingface_hub
    huggingface_hub.hf_hub_download = huggingface_hub.snapshot_download = refuse
except ImportError:
    pass
"""


def test_no_model_download_is_ever_attempted(notes, tmp_path):
    """In the search process every way out (sockets, requests, the hub) is refused and logged by a
    sitecustomize that runs first, HF_HUB_OFFLINE is unset and the model caches are empty folders:
    semantic and hybrid search still work, and nothing tried the network."""
    hook, attempts = tmp_path / "hook", tmp_path / "attempts.log"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(NETWORK_HOOK % str(attempts))
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update({"PYTHONPATH": str(hook), "HF_HOME": str(tmp_path / "hf"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
                "HOME": str(tmp_path)})
    probe = subprocess.run([sys.executable, "-c", "import requests; requests.get('http://example.com')"],
                           capture_output=True, text=True, timeout=60, env=env)
    assert probe.returncode != 0 and attempts.read_text(), "the hook is in force in a child process"
    attempts.unlink()
    for mode in ("semantic", "hybrid"):
        r = subprocess.run([*TSR, "search", "my container keeps restarting", "--mode", mode], capture_output=True,
                           text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.splitlines()[0])["path"] == "notes/crashloop.txt"
    assert not attempts.exists(), attempts.read_text()
    assert not (tmp_path / "hf").exists() and not (tmp_path / "cache").exists(), "no model cache was made"
