"""The source flags: declared once (cli/options.py source_options / live_options), so every
command that reads sources spells, documents and checks them the same way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TSR = [sys.executable, "-m", "tessera.cli.main"]

# every command that reads sources, with the arguments it needs besides the flags
SOURCE_COMMANDS = [
    (("query",), ("MATCH (n:Namespace) RETURN n.metadata.name",)),
    (("shell",), ()),
    (("notebook", "run"), ("ops",)),
    (("record",), ("-o", "never-written.jsonl")),
    (("dash",), ("ops",)),
    (("pane",), ("ops/1",)),
    (("tmux",), ("ops",)),
]
IDS = [" ".join(words) for words, _ in SOURCE_COMMANDS]


def run(*args, tmp_path):
    return subprocess.run([*TSR, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "TESSERA_HOME": str(tmp_path)})


@pytest.mark.parametrize("words, args", SOURCE_COMMANDS, ids=IDS)
def test_namespace_with_all_namespaces_is_one_usage_error_everywhere(words, args, tmp_path):
    """-n with -A is refused by the shared flags (SourceFlags) before the command opens anything."""
    proc = run(*words, *args, "-n", "shop", "-A", tmp_path=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr == "tessera: -n/--namespace and -A/--all-namespaces cannot be used together\n"
    assert proc.stdout == ""
    assert not (tmp_path / "never-written.jsonl").exists()


@pytest.mark.parametrize("words, args", SOURCE_COMMANDS, ids=IDS)
def test_every_source_command_documents_the_same_flags(words, args, tmp_path):
    proc = run(*words, "--help", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for flag in ("--namespace", "--all-namespaces", "--kubeconfig", "--request-timeout"):
        assert flag in proc.stdout, f"{' '.join(words)} --help lacks {flag}"


def test_source_flags_are_declared_only_in_options():
    """No command module declares a source flag of its own (``record``'s single ``--context`` is
    its own on purpose: it records one cluster)."""
    declared = re.compile(r'"--(namespace|all-namespaces|kubeconfig|request-timeout|speed|loop)"')
    offenders = [str(path.relative_to(REPO)) for path in sorted((REPO / "cli").rglob("*.py"))
                 if path.name != "options.py" and declared.search(path.read_text())]
    assert offenders == []
