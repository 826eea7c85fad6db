"""API discovery results kept on disk per context for a short time, so each command does not
pay a dozen discovery requests. Stale or unreadable entries are simply fetched again."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from tessera.core.kinds import KindInfo


def _path(context: str, server: str) -> Path:
    from tessera.core.config import cache_dir

    digest = hashlib.sha256(f"{context}\0{server}".encode()).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in context)[:60]
    return cache_dir() / "discovery" / f"{safe}-{digest}.json"


def load(context: str, server: str, ttl: float) -> list[KindInfo] | None:
    """The cached kinds of a context's server, or None when absent, stale or unreadable."""
    path = _path(context, server)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if time.time() - float(data["fetched"]) > ttl or data.get("server") != server:
            return None
        return [KindInfo(**{**k, "short_names": tuple(k["short_names"]), "verbs": tuple(k["verbs"])}) for k in data["kinds"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(context: str, server: str, kinds: list[KindInfo]) -> None:
    """Write the kinds atomically (a reader never sees half a file); failures are ignored."""
    path = _path(context, server)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".discovery-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"server": server, "fetched": time.time(), "kinds": [asdict(k) for k in kinds]}, fh)
        os.replace(tmp, path)
    except OSError:
        pass


def forget(context: str, server: str) -> None:
    """Remove a context's entry (after a kind was not found in it: a CRD may be new)."""
    try:
        _path(context, server).unlink()
    except OSError:
        pass
