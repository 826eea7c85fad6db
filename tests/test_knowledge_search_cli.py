"""``tessera search`` as a user runs it: real ``tessera ingest`` and ``tessera search`` processes
over tests/knowledge_helpers.py's runbook tree, JSONL in a pipe, lines on a terminal (a pty),
one-line errors with typed exit codes, and no model download ever attempted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from knowledge_helpers import notes, write_notes  # noqa: F401  (notes: a fixture)
from tests.process_lines import stdout_on_a_terminal

TSR = [sys.executable, "-m", "tessera.cli.main"]


def tsr(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


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


def test_other_formats_and_no_hits(notes):
    jsonl = rows(tsr("search", "kubectl", "--mode", "bm25"))
    as_json = tsr("search", "kubectl", "--mode", "bm25", "-o", "json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == jsonl
    table = tsr("search", "kubectl", "--mode", "bm25", "-o", "table", "-n", "1")
    assert table.returncode == 0
    header = table.stdout.splitlines()[0].split()
    assert header == ["source", "score", "path", "title", "heading", "snippet"]
    assert tsr("search", "kubectl", "-n", "0").stdout == ""
    none = tsr("search", "nosuchwordanywhere", "--mode", "bm25")
    assert none.returncode == 0 and none.stdout == "" and none.stderr == ""


def test_control_characters_in_the_text_are_escaped_in_errors(notes):
    r = tsr("search", "web\x1b[2J AND")
    assert r.returncode == 1 and "\x1b" not in r.stderr and "web\\x1b[2J AND" in r.stderr
    assert r.stderr.count("\n") == 1


def test_paraphrase_finds_the_crashloop_note_under_semantic_and_hybrid(notes):
    for mode in ("semantic", "hybrid"):
        found = rows(tsr("search", "pod stuck restarting over and over", "--mode", mode))
        assert found[0]["path"] == "notes/crashloop.txt", (mode, found)


def on_a_terminal(*args: str, env: dict | None = None) -> str:
    """What ``tessera ARGS`` prints with its stdout on a pty (exit 0 asserted)."""
    return stdout_on_a_terminal([*TSR, *args], {**os.environ, **(env or {})})


def test_lines_on_a_terminal(notes):
    line = on_a_terminal("search", "rollout undo", "--mode", "bm25", "-n", "1", "--color", "never")
    assert line.startswith("[local] (0.") and ") runbooks/web.md — Web frontend runbook › Web frontend > Remediation: " in line
    assert "«" not in line and "rollout undo" in line  # the marks become bold, and without colour nothing


def test_matched_words_bold_on_a_terminal_unless_no_color(notes):
    env = {k: "" for k in ("NO_COLOR",)}
    coloured = on_a_terminal("search", "rollout undo", "--mode", "bm25", "-n", "1", env=env)
    assert "\x1b[1mrollout\x1b[0m" in coloured and "«" not in coloured
    plain = on_a_terminal("search", "rollout undo", "--mode", "bm25", "-n", "1", env={"NO_COLOR": "1"})
    assert "\x1b[" not in plain and "rollout undo" in plain and "«" not in plain


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
                 "and or not", "near", "title: web", "Kubernetes Enhancement Proposals (KEPs)",
                 "can it be disabled (i.e. rolled back)?"):
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


def test_a_damaged_store_is_one_line_and_left_as_it_is(tmp_path):
    from tessera.core.store.db import db_path

    store = db_path()
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_bytes(b"not a database at all " * 300)
    before = store.read_bytes()
    for args in (["search", "web"], ["search", "web", "--peers"]):
        r = tsr(*args)
        assert r.returncode != 0 and r.stdout == ""
        assert r.stderr.startswith(f"tessera: the store {store} is damaged: ") and r.stderr.count("\n") == 1, r.stderr
        assert "internal error" not in r.stderr
    assert store.read_bytes() == before


def test_a_broken_model_install_is_exit_3_in_one_line(notes, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text("import sys\nsys.modules['wordllama'] = None  # the import fails\n")
    env = {**os.environ, "PYTHONPATH": str(hook)}
    r = subprocess.run([*TSR, "search", "restarting", "--mode", "semantic"], capture_output=True, text=True,
                       timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 3 and r.stdout == ""
    assert r.stderr.startswith("tessera: cannot load the bundled embedding model: ") and r.stderr.count("\n") == 1
    bm25 = subprocess.run([*TSR, "search", "restarting", "--mode", "bm25"], capture_output=True, text=True,
                          timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert bm25.returncode == 0 and bm25.stdout, "words alone need no model"


# --- --peers ---------------------------------------------------------------------------------------

WHEN = "2026-12-01T00:00:00.000Z"


def add_peer(name: str, node_id: str, *, knowledge: Path | None, tables: bool = True) -> Path:
    """A peer in this node's peer list and its replica file: a store whose knowledge tables hold
    what ``knowledge`` ingests to (what filing the peer's pages writes through index.py), or a
    replica from before knowledge (``tables=False``: events and notebooks only)."""
    import sqlite3

    from tessera.core.knowledge.ingest import ingest_paths
    from tessera.core.peers import peer_list, replica_files
    from tessera.core.store import db

    local = db.connect()
    with db.transaction(local):
        peer_list.add(local, node_id, name, publish=True, subscribe=True, added_at=WHEN)
    local.close()
    path = replica_files.replica_path(node_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tables:
        replica = db.connect(path)
        if knowledge is not None:
            ingest_paths(replica, [str(knowledge)])
    else:
        replica = sqlite3.connect(path)
        replica.execute("CREATE TABLE events(seq)")
        replica.execute("CREATE TABLE notebooks(id)")
        replica.commit()
    replica.close()
    return path


def test_peers_fan_out_merges_by_score_and_labels_each_row(notes, tmp_path):
    theirs = tmp_path / "alice-notes"
    (theirs / "runbooks").mkdir(parents=True)
    (theirs / "runbooks" / "crashloop.md").write_text(
        "# CrashLoopBackOff\n\nA pod in CrashLoopBackOff: the container exits, the kubelet restarts it with a "
        "growing back-off. CrashLoopBackOff means look at the logs of the previous container.\n")
    (theirs / "runbooks" / "dns.md").write_text("# DNS\n\nCoreDNS answers the cluster's DNS queries.\n")
    add_peer("alice", "a" * 64, knowledge=theirs)
    add_peer("bob", "b" * 64, knowledge=None, tables=False)
    mine = rows(tsr("search", "crashloopbackoff", "--mode", "bm25"))
    r = tsr("search", "crashloopbackoff", "--mode", "bm25", "--peers")
    found = rows(r)
    assert {row["source"] for row in found} == {"local", "alice"}
    assert [row["score"] for row in found] == sorted((row["score"] for row in found), reverse=True)
    assert ("alice", "runbooks/crashloop.md") in {(row["source"], row["path"]) for row in found}
    assert [row for row in found if row["source"] == "local"] == mine
    assert r.stderr == "tessera: warning: bob has no knowledge to search (nothing shared as knowledge:PATH)\n"
    quiet = tsr("search", "crashloopbackoff", "--mode", "bm25", "--peers", "-q")
    assert quiet.stderr == "" and rows(quiet) == found


def test_peers_on_a_terminal_label_lines_with_the_peer_name(notes, tmp_path):
    theirs = tmp_path / "alice-notes"
    theirs.mkdir()
    (theirs / "zanzibar.md").write_text("# Zanzibar\n\nThe zanzibar cluster runbook.\n")
    add_peer("al\x1b[31mice", "c" * 64, knowledge=theirs)
    line = on_a_terminal("search", "zanzibar", "--peers", "--color", "never")
    assert line.startswith("[al\\x1b[31mice] (") and ") zanzibar.md — Zanzibar: " in line, line  # the name escaped


def test_peers_without_any_replica_searches_local_with_a_note(notes):
    r = tsr("search", "rollout", "--peers", "--mode", "bm25")
    assert rows(r) and {row["source"] for row in rows(r)} == {"local"}
    assert r.stderr == "tessera: no peer has sent anything yet (see `tessera peer list`)\n"
