"""Manifest files as a source: a file, a directory (recursive) or stdin.

Reads multi-document YAML, JSON, ``kind: List`` and ``kubectl get -o json`` output (``XxxList``
whose items lack apiVersion/kind). Objects are indexed by (group, kind) once, so ``list`` costs
only the matches. Namespaced objects without a namespace get ``default``, as kubectl apply would.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Any, Iterator, TextIO

from tessera.core.errors import InputError, SourceUnavailable
from tessera.core.kinds import KindInfo
from tessera.core.resources import select_resources

_SUFFIXES = (".yaml", ".yml", ".json")


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


class ManifestSource:
    """Resources read from manifests.

    Args:
        spec: a file, a directory (every *.yaml, *.yml, *.json below it, hidden ones skipped) or
            ``-`` for stdin.
        stdin: the stream ``-`` reads (default sys.stdin).
    Raises:
        SourceUnavailable when the path does not exist; InputError (with path:line:column) when a
        file is not valid YAML/JSON.
    """

    writable = False
    concurrent = False
    default_namespace = None

    def __init__(self, spec: str, *, stdin: TextIO | None = None):
        self.spec = spec
        self.name = "stdin" if spec == "-" else spec
        self._stdin = stdin
        self._objects: list[dict] | None = None
        self._index: dict[tuple[str, str], list[dict]] = {}
        self._kinds: list[KindInfo] | None = None

    # --- loading -------------------------------------------------------------------------

    def _files(self) -> Iterator[Path]:
        path = Path(self.spec)
        if not path.exists():
            raise SourceUnavailable(
                f"no such file or directory: {self.spec}", hint="-s takes a manifest file, a directory, '-' or 'demo'"
            )
        if path.is_file():
            yield path
            return
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and name.endswith(_SUFFIXES):
                    yield Path(root) / name

    def refresh(self) -> None:
        """Forget what was read, so the next list reads the files again (stdin cannot be re-read)."""
        if self.spec != "-":
            self._objects = None
            self._index = {}
            self._kinds = None

    def _load(self) -> list[dict]:
        if self._objects is not None:
            return self._objects
        objects: list[dict] = []
        # Millions of fresh dicts would trigger many useless cyclic-GC passes while parsing.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._read_all(objects)
        finally:
            if gc_was_enabled:
                gc.enable()
        self._objects = objects
        self._build_index()
        return objects

    def _read_all(self, objects: list[dict]) -> None:
        if self.spec == "-":
            stream = self._stdin or sys.stdin
            data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
            objects.extend(parse_documents(data, "stdin"))
        else:
            for file in self._files():
                try:
                    data = file.read_bytes()
                except OSError as exc:
                    raise SourceUnavailable(f"cannot read {file}: {exc.strerror}") from None
                objects.extend(parse_documents(data, str(file)))

    def _build_index(self) -> None:
        from tessera.core.builtin_kinds import BUILTIN_KINDS
        from tessera.core.kinds import kinds_from_crds

        assert self._objects is not None
        kinds = list(BUILTIN_KINDS) + kinds_from_crds(self._objects)
        known = {(k.group, k.kind): k for k in kinds}
        seen_ns: dict[tuple[str, str], bool] = {}
        for obj in self._objects:
            key = (_group(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")))
            self._index.setdefault(key, []).append(obj)
            meta = obj.get("metadata")
            seen_ns[key] = seen_ns.get(key, False) or bool(isinstance(meta, dict) and meta.get("namespace"))
        for key, namespaced in seen_ns.items():
            if key not in known:
                group, kind = key
                version = str(self._index[key][0].get("apiVersion", "v1")).rsplit("/", 1)[-1]
                info = KindInfo(group, version, kind, kind.lower() + "s", kind.lower(), (), namespaced)
                known[key] = info
                kinds.append(info)
        for (group, kind), objs in self._index.items():
            info = known[(group, kind)]
            if info.namespaced:
                for obj in objs:
                    meta = obj.setdefault("metadata", {})
                    if isinstance(meta, dict) and not meta.get("namespace"):
                        meta["namespace"] = "default"
        self._kinds = kinds

    # --- protocol ------------------------------------------------------------------------

    def objects(self) -> list[dict]:
        """Every resource read, in file order."""
        return self._load()

    def kinds(self) -> list[KindInfo]:
        """Built-in kinds, CRDs found among the manifests, and any other kind seen in them."""
        self._load()
        assert self._kinds is not None
        return self._kinds

    def list(
        self,
        kind: KindInfo,
        *,
        namespace: str | None = None,
        name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Resources of ``kind``, filtered by namespace, name and labels (see base.Source)."""
        self._load()
        objs = self._index.get((kind.group, kind.kind), [])
        return select_resources(objs, kind, namespace=namespace, name=name, labels=labels)


def parse_documents(data: bytes | str, where: str) -> list[dict]:
    """Resources from one file's content: JSON or (multi-document) YAML, Lists flattened.

    Args:
        data: the file content.
        where: the file name, for error messages.
    Returns:
        the resources (mappings with a ``kind``); empty and non-resource documents are dropped.
    Raises:
        InputError naming ``where`` and the line and column at fault.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    stripped = text.lstrip()
    docs: list[Any]
    if stripped.startswith(("{", "[")):
        import orjson

        try:
            docs = [orjson.loads(data if isinstance(data, bytes) else data.encode())]
        except orjson.JSONDecodeError as exc:
            line = text.count("\n", 0, exc.pos) + 1
            column = exc.pos - (text.rfind("\n", 0, exc.pos) + 1) + 1
            raise InputError(f"{where}:{line}:{column}: invalid JSON: {exc.msg}", hint="fix the file or leave it out") from None
        if isinstance(docs[0], list):
            docs = docs[0]
    else:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            docs = list(yaml.load_all(text, Loader=loader))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            pos = f"{mark.line + 1}:{mark.column + 1}:" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).split("\n")[0]
            raise InputError(f"{where}:{pos} invalid YAML: {problem}", hint="fix the file or leave it out") from None
    out: list[dict] = []
    for doc in docs:
        _flatten(doc, out)
    return out


def _flatten(doc: Any, out: list[dict]) -> None:
    if not isinstance(doc, dict) or not doc.get("kind"):
        return
    kind = str(doc["kind"])
    items = doc.get("items")
    if kind.endswith("List") and isinstance(items, list):
        item_kind = kind[: -len("List")] if kind != "List" else None
        api_version = doc.get("apiVersion")
        for item in items:
            if isinstance(item, dict):
                if item_kind and "kind" not in item:
                    item["kind"] = item_kind
                if item_kind and "apiVersion" not in item and api_version:
                    item["apiVersion"] = api_version
                _flatten(item, out)
        return
    out.append(doc)
