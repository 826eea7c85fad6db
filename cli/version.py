"""``tessera --version``: the installed distribution's version, read without importing typer
(cli/main.py answers a bare ``--version`` before building any command)."""

from __future__ import annotations


def print_version() -> None:
    """``tessera X.Y.Z`` on stdout."""
    from importlib.metadata import version

    print(f"tessera {version('tessera')}")
