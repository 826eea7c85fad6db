"""Module boundaries that a linter does not check: no module uses another module's private
names (``from tessera.x import _name``, or ``module._name`` on a tessera module it imported).

A name shared between modules is public (no underscore) or the code moves to where it is used;
the import layers themselves are import-linter contracts (pyproject.toml, ``make lint``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("cli", "core", "plugins")  # the tessera.cli, tessera.core and tessera.plugins packages


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_path(dotted: str) -> Path | None:
    """The file of a tessera module (``tessera.core.query.engine`` -> core/query/engine.py)."""
    parts = dotted.split(".")
    if len(parts) < 2 or parts[0] != "tessera" or parts[1] not in LAYERS:
        return None
    base = REPO.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _absolute(node: ast.ImportFrom, module: str) -> str:
    """The module an ``from X import ...`` in ``module`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module.split(".")[: -node.level]
    return ".".join(package + ([node.module] if node.module else []))


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(("tessera", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def private_uses(text: str, module: str, where: str) -> list[str]:
    """Where the source ``text`` of ``module`` uses a private name of another tessera module."""
    tree = ast.parse(text, where)
    own = _module_path(module)
    own = own.resolve() if own is not None else None
    found: list[str] = []
    modules: dict[str, str] = {}  # local name -> the tessera module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(node, module)
            source_file = _module_path(source)
            if source_file is None or source_file.resolve() == own:
                continue
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{where}:{node.lineno}: from {source} import {alias.name}")
                elif _module_path(f"{source}.{alias.name}") is not None:
                    modules[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname is None:  # ``import tessera.core.x`` binds ``tessera``
                    head = alias.name.split(".")[0]
                    modules[head] = head
                elif _module_path(alias.name) is not None:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            target = _dotted(node.value)
            if target is None:
                continue
            head, _, rest = target.partition(".")
            if head in modules:
                module_file = _module_path(modules[head] + (f".{rest}" if rest else ""))
                if module_file is not None and module_file.resolve() != own:
                    found.append(f"{where}:{node.lineno}: {target}.{node.attr}")
    return found


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names, else None (a call, a subscript, ``self``...)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


PROBE = "tessera.core.query.probe"  # a module that does not exist, placed beside engine.py


def _sources() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (REPO / layer).rglob("*.py"))


def test_the_scan_sees_the_package():
    files = _sources()
    assert REPO / "core" / "query" / "engine.py" in files and len(files) > 50


def test_no_module_uses_another_modules_private_names():
    found = [hit for path in _sources()
             for hit in private_uses(path.read_text(encoding="utf-8"), _module_name(path), str(path.relative_to(REPO)))]
    assert not found, "private names used across modules:\n" + "\n".join(found)


@pytest.mark.parametrize("code, hit", [
    ("from tessera.core.query.engine import _cross\n", "from tessera.core.query.engine import _cross"),
    ("from tessera.core.query import engine\nengine._cross([])\n", "engine._cross"),
    ("import tessera.core.query.engine\ntessera.core.query.engine._cross([])\n", "tessera.core.query.engine._cross"),
    ("from tessera.core import query as q\nq.engine._cross([])\n", "q.engine._cross"),
    ("from .engine import _cross\n", "from tessera.core.query.engine import _cross"),
])
def test_the_scan_finds_each_way_of_reaching_in(code, hit):
    assert [h.split(": ", 1)[1] for h in private_uses(code, PROBE, "probe.py")] == [hit]


@pytest.mark.parametrize("code", [
    "from tessera.core.query.engine import cross_product\n",
    "import os\nos._exit\n",  # not a tessera module
    "from tessera.core.query import ast\nast.Query.__init__\n",  # dunder names are not private
    "def _own():\n    pass\n\n\n_own()\n",
])
def test_the_scan_leaves_public_and_foreign_names_alone(code):
    assert private_uses(code, PROBE, "probe.py") == []


def test_core_api_only_re_exports():
    """core/api.py is the front ends' facade: imports, its docstring and ``__all__``, no logic."""
    tree = ast.parse((REPO / "core" / "api.py").read_text(encoding="utf-8"))
    allowed = (ast.Import, ast.ImportFrom)
    for node in tree.body:
        if isinstance(node, allowed):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and node is tree.body[0]:
            continue  # the module docstring
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]:
            continue
        raise AssertionError(f"core/api.py:{node.lineno}: {type(node).__name__} - move it to the module that owns it")
    from tessera.core import api

    assert sorted(api.__all__) == sorted(n for n in vars(api) if not n.startswith("_") and n != "annotations")
