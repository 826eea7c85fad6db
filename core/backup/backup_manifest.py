"""The manifest: the first member of a backup's payload, saying what it holds.

::

    {"format": 1, "tessera_version": "0.17.0", "created_at": "2026-12-01T23:40:00.123456Z",
     "components": {"store": 1, "events": 2, ...},          # the store's, db.component_versions
     "replicas": false,
     "files": [{"path": "tessera.db", "size": 123, "sha256": "...", "sqlite": true,
                "components": {...}}, {"path": "tessera.db.key", ...}, ...]}

Paths are relative to the data home, with ``/`` between parts; each is checked (no ``..``, no
absolute path, no hidden part, no repeat) before anything is written where it names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tessera.core.errors import TesseraError

MANIFEST_NAME = "manifest.json"
MANIFEST_MAX = 16 * 1024 * 1024
STORE_FILE = "tessera.db"
_PART = re.compile(r"[^/\x00]+")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class NewerSchema(TesseraError):
    """A backup made by a Tessera whose schema is newer than this one's (exit 1)."""


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str
    sqlite: bool = False
    components: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "size": self.size, "sha256": self.sha256, "sqlite": self.sqlite}
        if self.sqlite:
            out["components"] = dict(self.components)
        return out


@dataclass(frozen=True)
class Manifest:
    tessera_version: str
    created_at: str
    components: dict[str, int]
    replicas: bool
    files: tuple[FileEntry, ...]

    def as_bytes(self) -> bytes:
        return json.dumps({"format": 1, "tessera_version": self.tessera_version, "created_at": self.created_at,
                           "components": self.components, "replicas": self.replicas,
                           "files": [f.as_dict() for f in self.files]}, indent=1).encode("utf-8")

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def entry(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)


def safe_path(path: Any) -> bool:
    """Whether ``path`` may name a file inside the data home: relative, ``/``-separated, no
    empty, ``.``, ``..`` or hidden part."""
    if not isinstance(path, str) or not path or len(path) > 4096 or path == MANIFEST_NAME:
        return False
    parts = path.split("/")
    return all(_PART.fullmatch(p) and not p.startswith(".") for p in parts)


def _versions(value: Any) -> dict[str, int] | None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in value.items()):
        return None
    return dict(value)


def parse(data: bytes, *, where: str) -> Manifest:
    """The manifest in ``data``, every field checked.

    Raises:
        TesseraError naming ``where`` when it is not a manifest this Tessera understands.
    """
    def damaged(what: str) -> TesseraError:
        return TesseraError(f"{where}: its manifest {what}; nothing was restored", hint="use another copy of the backup")

    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise damaged("is not JSON (the file was changed)") from None
    if not isinstance(value, dict) or value.get("format") != 1:
        raise damaged("is not in format 1")
    components = _versions(value.get("components"))
    files_value = value.get("files")
    if components is None or not isinstance(files_value, list) or not isinstance(value.get("replicas"), bool) \
            or not isinstance(value.get("tessera_version"), str) or not isinstance(value.get("created_at"), str):
        raise damaged("lacks a field or has one of the wrong type")
    files, seen = [], set()
    for item in files_value:
        if not isinstance(item, dict):
            raise damaged("lists a file that is not an object")
        path, size, digest, sqlite = item.get("path"), item.get("size"), item.get("sha256"), item.get("sqlite")
        file_components = _versions(item.get("components", {}))
        if not safe_path(path) or path in seen:
            raise damaged(f"names a path that cannot be restored: {str(path)[:80]!r}")
        if type(size) is not int or size < 0 or not isinstance(digest, str) or not _HEX64.fullmatch(digest) \
                or not isinstance(sqlite, bool) or file_components is None:
            raise damaged(f"describes {path} wrongly")
        seen.add(path)
        files.append(FileEntry(path, size, digest, sqlite, file_components))
    if STORE_FILE not in seen:
        raise damaged(f"lists no {STORE_FILE}")
    return Manifest(value["tessera_version"], value["created_at"], components, value["replicas"], tuple(files))


def refuse_newer(versions: dict[str, int], *, what: str, made_by: str) -> None:
    """Refuse schema ``versions`` (of the store file ``what``) with a component newer than this
    Tessera knows; one it does not know at all is left alone (as the store itself does).

    Raises:
        NewerSchema naming the component and both versions.
    """
    from tessera.core.store.migrations import latest_versions

    known = latest_versions()
    for name, version in sorted(versions.items()):
        if name in known and version > known[name]:
            raise NewerSchema(
                f"the backup's {what} has the {name} schema at version {version}, newer than this Tessera "
                f"understands ({known[name]}); it was made by Tessera {made_by}; nothing was restored",
                hint="restore it with that Tessera or a newer one")
