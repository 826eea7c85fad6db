"""What ``tessera info`` reports: paths, settings, versions and the sources found."""

from __future__ import annotations

import sys

from tessera.core.errors import TesseraError


def settings_in_force() -> dict:
    """The settings in force (config.toml and TESSERA_* variables); a bad one shows its error."""
    from tessera.core import config
    from tessera.core.secrets import secrets_shown

    out: dict = {}
    for name, read in (("read_only", config.read_only), ("show_secrets", secrets_shown),
                       ("store_lock_timeout", config.store_lock_timeout)):
        try:
            out[name] = read()
        except TesseraError as exc:
            out[name] = f"error: {exc.one_line()}"
    return out


def node_identity() -> dict:
    """This node's id, short id and name (core/peers/identity.py), or the error that hides them."""
    from tessera.core import config
    from tessera.core.peers import identity

    try:
        return identity.describe(config.database_path())
    except TesseraError as exc:
        return {"error": exc.one_line()}


def info() -> dict:
    """Paths, settings, versions and sources found, for ``tessera info``."""
    from importlib.metadata import PackageNotFoundError, version

    from tessera.core import config

    def ver(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    contexts: list[str] = []
    current = None
    from tessera.core.sources.protocol import ContextCatalog
    from tessera.core.sources.registry import source_class, source_names

    try:
        kube = source_class("kubernetes")
        if isinstance(kube, ContextCatalog):
            contexts, current = kube.available_contexts()
    except TesseraError:
        pass
    return {
        "version": ver("tessera"),
        "python": sys.version.split()[0],
        "paths": {
            "data_home": str(config.data_home()),
            "database": str(config.database_path()),
            "config_dir": str(config.config_dir()),
            "relationships_file": str(config.relationships_file()),
            "macros_file": str(config.macros_file()),
            "config_file": str(config.config_file()),
            "cache_dir": str(config.cache_dir()),
            "kubeconfig": str(config.kubeconfig_path()),
        },
        "settings": settings_in_force(),
        "node": node_identity(),
        "kube_contexts": contexts,
        "current_context": current,
        "source_plugins": source_names(),
        "libraries": {p: ver(p) for p in ("typer", "rich", "PyYAML", "orjson", "kubernetes", "platformdirs")},
    }
