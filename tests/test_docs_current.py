"""completions/ and man/ are generated from the CLI; this fails when they are stale (run `make docs`)."""

from __future__ import annotations

import subprocess
import sys

from tessera.cli import docgen


def test_generated_files_are_current():
    stale = docgen.stale_files()
    assert stale == [], f"stale generated files (run `make docs`): {stale}"


def test_completion_scripts_cover_three_shells():
    scripts = docgen.completion_scripts()
    assert set(scripts) == {"tessera.bash", "_tessera", "tessera.fish"}
    assert all("_TESSERA_COMPLETE" in text for text in scripts.values())


def test_completion_runtime_answers(tmp_path):
    env = {"_TESSERA_COMPLETE": "complete_bash", "COMP_WORDS": "tessera qu", "COMP_CWORD": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "tessera.cli.main"], env=env, capture_output=True, text=True)
    assert "query" in proc.stdout.split()


def test_man_pages_render():
    pages = docgen.man_pages()
    from typer.main import get_command

    from tessera.cli.main import app

    commands = get_command(app).commands
    assert {"query", "explain", "kinds", "info", "record"} <= set(commands)
    assert set(pages) == {"tessera.1"} | {f"tessera-{name}.1" for name in commands}
    assert "\\-\\-all\\-namespaces" in pages["tessera-query.1"]
