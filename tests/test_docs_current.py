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

    def names(prefix, command):
        yield f"{prefix}.1"
        for sub, child in (getattr(command, "commands", None) or {}).items():
            yield from names(f"{prefix}-{sub}", child)

    commands = get_command(app).commands
    assert {"query", "explain", "kinds", "info", "record", "events", "notebook", "cell"} <= set(commands)
    assert set(pages) == set(names("tessera", get_command(app)))
    assert "tessera-notebook-new.1" in pages and "tessera-events-tail.1" in pages
    # every page a COMMANDS section points to exists
    import re

    for text in pages.values():
        for ref in re.findall(r"See \\fB(.+?)\\fR\(1\)", text):
            assert ref.replace("\\-", "-") + ".1" in pages, ref
    assert "\\-\\-all\\-namespaces" in pages["tessera-query.1"]
