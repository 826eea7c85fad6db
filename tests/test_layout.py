"""The package's layout explains itself: docs/architecture.md lists every module, and no two
modules share a name for different things."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("cli", "core", "plugins")
ARCHITECTURE = REPO / "docs" / "architecture.md"


def package_modules() -> set[str]:
    """Every module file of the package, as a repository path (cli/tui/app.py)."""
    return {str(path.relative_to(REPO)) for top in PACKAGE_DIRS for path in (REPO / top).rglob("*.py")
            if "__pycache__" not in path.parts}


def test_architecture_lists_every_module_and_only_those():
    listed = set(re.findall(r"\b((?:cli|core|plugins)/[\w/]*\w\.py)\b", ARCHITECTURE.read_text()))
    modules = package_modules()
    assert sorted(modules - listed) == [], "modules missing from docs/architecture.md"
    assert sorted(listed - modules) == [], "docs/architecture.md names modules that do not exist"


def test_no_two_modules_share_a_name_for_different_things():
    """A name is used once across cli/, core/ and plugins/ (files and packages alike), with two
    exceptions, both one thing seen from two layers: a command module cli/NAME.py may share the
    name of the top-level core concern it fronts (core/NAME.py or core/NAME/: cli/events.py over
    core/events.py), and a plugin folder plugins/NAME/ the name of the core module that defines
    what its plugins implement (plugins/sources/ for core/sources/, plugins/cells/ for
    core/notebook/cells.py)."""
    places: dict[str, list[str]] = defaultdict(list)
    for top in PACKAGE_DIRS:
        for path in (REPO / top).rglob("*"):
            if "__pycache__" in path.parts or path.name == "__init__.py":
                continue
            if path.suffix == ".py":
                places[path.stem].append(str(path.relative_to(REPO)))
            elif path.is_dir() and (path / "__init__.py").exists():
                places[path.name].append(str(path.relative_to(REPO)) + "/")
    shared = {}
    for name, where in places.items():
        if len(where) < 2:
            continue
        fronts = {f"cli/{name}.py", f"core/{name}.py", f"core/{name}/"}
        if len(where) == 2 and set(where) <= fronts and f"cli/{name}.py" in where:
            continue
        implemented = [w for w in where if w.startswith("core/")]
        if len(where) == 2 and f"plugins/{name}/" in where and len(implemented) == 1:
            continue
        shared[name] = sorted(where)
    assert shared == {}
