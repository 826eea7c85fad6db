"""Shared fixtures. Feature fixtures live in their own modules, listed in pytest_plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TESSERA_SHARED", REPO.parent / "shared"))

pytest_plugins: list[str] = ["kube_emulator"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout."""
    return REPO


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """../shared/conformance, or skip when the checkout has no shared/ beside it."""
    path = SHARED / "conformance"
    if not path.is_dir():
        pytest.skip(f"conformance data absent: {path} not found (it lives in ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def realworld_dir() -> Path:
    """../shared/realworld, or skip when absent."""
    path = SHARED / "realworld"
    if not path.is_dir():
        pytest.skip(f"real-world manifests absent: {path} not found")
    return path


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own data home and config dir (subprocesses inherit them)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("TESSERA_HOME", str(home / "data"))
    monkeypatch.setenv("TESSERA_CONFIG_DIR", str(home / "config"))
    return home
