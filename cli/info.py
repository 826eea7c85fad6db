"""``tessera info``: every path in use, versions, and the sources found."""

from __future__ import annotations

import json

import typer


def info() -> None:
    """Print paths (data home, config, relationships, kubeconfig), versions and sources as JSON."""
    from tessera.core import api

    print(json.dumps(api.info(), indent=2))


def register(app: typer.Typer) -> None:
    """Add the info command to ``app``."""
    app.command("info")(info)
