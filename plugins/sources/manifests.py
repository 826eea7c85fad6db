"""Manifest files as a source: a file, a directory (recursive) or stdin.

Reads multi-document YAML, JSON, ``kind: List`` and ``kubectl get -o json`` output (``XxxList``
whose items lack apiVersion/kind). Objects are indexed by (group, kind) once, so ``list`` costs
only the matches. Namespaced objects without a namespace get ``default``, as kubectl apply would.

Input is read with limits (docs/limits.md): at most ``TESSERA_MAX_INPUT_BYTES`` per source,
checked before reading; UTF-8 only; YAML nesting and alias expansion capped (core/documents.py).
Input that yields no object is an error, not an empty answer.
"""

from __future__ import annotations

import codecs
import gc
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from tessera.core.errors import InputError, SourceUnavailable
from tessera.core.kinds import KindInfo
from tessera.core.resources import select_resources
from tessera.core.sources.protocol import ConcurrentSource, DefaultNamespaceSource, RefreshableSource, Source, WarningSource

_SUFFIXES = (".yaml", ".yml", ".json")


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


class ManifestSource(Source, DefaultNamespaceSource, ConcurrentSource, RefreshableSource, WarningSource):
    """Resources read from manifests.

    Args:
        spec: a file, a directory (every *.yaml, *.yml, *.json below it, hidden ones skipped) or
            ``-`` for stdin.
        stdin: the stream ``-`` reads (default sys.stdin).
    Raises:
        SourceUnavailable when the path does not exist or cannot be read; InputError (exit 2) when
        a file is not valid UTF-8 YAML/JSON (with path:line:column), is over the size limit, or
        when the whole input holds no Kubernetes object.
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
        self._warnings: list[str] = []
        self._warned: set[str] = set()
        # Input that held no object is an error once something is listed, not before: the
        # built-in kinds stay known, so a query that is wrong in itself (a standalone kindless
        # node, an unknown kind) says so first, as it would over a cluster.
        self._nothing_read: InputError | None = None

    # --- loading -------------------------------------------------------------------------

    def _files(self) -> Iterator[Path]:
        path = Path(self.spec)
        if not path.exists():
            raise SourceUnavailable(
                f"no such file or directory: {self.spec}", hint="-s takes a manifest file, a directory, '-' or 'demo'"
            )
        if not path.is_dir():
            yield path  # a file, or a pipe such as <(kubectl get pods -o yaml)
            return
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and name.endswith(_SUFFIXES) and _is_regular(Path(root) / name):
                    yield Path(root) / name

    def refresh(self) -> None:
        """Forget what was read, so the next list reads the files again (stdin cannot be re-read)."""
        if self.spec != "-":
            self._objects = None
            self._index = {}
            self._kinds = None
            self._nothing_read = None

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

    def _loaded(self) -> list[dict]:
        """The objects read, for a caller that needs some: raises when the input held none."""
        objects = self._load()
        if self._nothing_read is not None:
            raise self._nothing_read
        return objects

    def _read_all(self, objects: list[dict]) -> None:
        from tessera.core.config import max_input_bytes
        from tessera.core.inputs import read_path, read_stream

        limit = max_input_bytes()  # for the whole source: a directory's files together
        dropped = 0
        files = 0
        if self.spec == "-":
            data = read_stream(self._stdin or sys.stdin, where="stdin", limit=limit)
            files = 1
            dropped += parse_documents(data, "stdin", objects, decode=lambda: self._decode(data, "stdin"))
        else:
            used = 0
            for file in self._files():
                data = read_path(file, limit=limit, used=used, total_of=self.spec)
                used += len(data)
                files += 1
                dropped += parse_documents(data, str(file), objects,
                                           decode=lambda data=data, file=file: self._decode(data, str(file)))
        if dropped:
            what = "item that is not a Kubernetes object" if dropped == 1 else "items that are not Kubernetes objects"
            self._warn(f"{self.name}: skipped {dropped} {what} (each must be a mapping with a kind, and its metadata a mapping)")
        if not objects:
            self._nothing_read = InputError(f"no Kubernetes objects read from {self.name}",
                                            hint=self._why_empty(files, dropped))

    def _decode(self, data: bytes | str, where: str) -> str:
        """The text of one file; bytes that are not UTF-8 mean nothing is read from this source."""
        from tessera.core.inputs import decode_text

        if isinstance(data, str):
            return data
        try:
            return decode_text(data, where)
        except InputError as exc:
            raise InputError(f"no Kubernetes objects read from {self.name}: {exc.message}", hint=exc.hint) from None

    def _why_empty(self, files: int, dropped: int) -> str:
        if dropped:
            return f"{dropped} item{'s' if dropped != 1 else ''} skipped: each must be a mapping with a kind, and its metadata a mapping"
        if self.spec == "-":
            return "stdin was empty or held no mapping with apiVersion and kind"
        if files == 0:
            return "the directory holds no *.yaml, *.yml or *.json file; hidden ones are skipped"
        what = "the file holds" if Path(self.spec).is_file() else f"its {files} file{'s' if files != 1 else ''} hold"
        return f"{what} no mapping with apiVersion and kind"

    def _warn(self, message: str) -> None:
        if message not in self._warned:  # a watch re-reads the files: say it once, not every interval
            self._warned.add(message)
            self._warnings.append(message)

    def take_warnings(self) -> list[str]:
        """Warnings from reading (items skipped), each handed out once."""
        out, self._warnings = self._warnings, []
        return out

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
        return self._loaded()

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
        self._loaded()
        objs = self._index.get((kind.group, kind.kind), [])
        return select_resources(objs, kind, namespace=namespace, name=name, labels=labels)


def _is_regular(path: Path) -> bool:
    """A regular file (or a link to one): a FIFO or socket met in a directory walk is skipped, as
    ``find -type f`` would, since reading it could wait forever."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return True  # let the read report why (a dangling link, no permission)


def parse_documents(data: bytes | str, where: str, out: list[dict], *, text: str | None = None,
                    decode: Callable[[], str] | None = None) -> int:
    """Resources from one file's content: JSON or (multi-document) YAML, Lists flattened.

    Args:
        data: the file content (bytes must be UTF-8, or UTF-16 with a byte-order mark).
        where: the file name, for error messages.
        text: ``data`` already decoded, when the caller has it.
        decode: how to decode ``data`` when the text is needed (default: core.inputs.decode_text).
            JSON in plain UTF-8 is parsed from the bytes and decoded only to report an error (a
            10k-pod dump: 50-80 ms saved); orjson refuses bytes that are not UTF-8, so a file that
            is not is reported as such first, as for YAML.
        out: the list the resources (mappings with a ``kind``) are appended to; empty and
            non-resource documents are left out.
    Returns:
        how many items of a List were dropped because they are not objects with a kind.
    Raises:
        InputError naming ``where`` and the line and column at fault (not UTF-8, invalid
        YAML/JSON, nested too deep, an alias bomb).
    """
    from tessera.core.documents import check_json_depth, load_yaml_documents
    from tessera.core.inputs import decode_text

    if text is None and isinstance(data, str):
        text = data
    if decode is None:
        def decode() -> str:
            return decode_text(data, where) if isinstance(data, bytes) else data
    plain_utf8 = isinstance(data, bytes) and not data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if text is None and plain_utf8:
        first = _LEADING_SPACE.match(data).end()
        is_json = data[first:first + 1] in (b"{", b"[")
    else:
        text = text if text is not None else decode()
        is_json = text.lstrip().startswith(("{", "["))
    docs: list[Any]
    if is_json:
        import orjson

        raw = data if plain_utf8 else text.encode()
        try:
            check_json_depth(raw, where)  # before parsing: orjson itself allows 1024 levels
            docs = [orjson.loads(raw)]
        except (InputError, orjson.JSONDecodeError) as exc:
            text = text if text is not None else decode()  # bytes that are not UTF-8 say so first
            if isinstance(exc, InputError):
                raise
            line = text.count("\n", 0, exc.pos) + 1
            column = exc.pos - (text.rfind("\n", 0, exc.pos) + 1) + 1
            raise InputError(f"{where}:{line}:{column}: invalid JSON: {exc.msg}", hint="fix the file or leave it out") from None
        if isinstance(docs[0], list):
            docs = docs[0]
            dropped = sum(1 for d in docs if not (isinstance(d, dict) and d.get("kind")))  # _flatten counts the rest
        else:
            dropped = 0
    else:
        docs = load_yaml_documents(text if text is not None else decode(), where)
        dropped = 0
    for doc in docs:
        dropped += _flatten(doc, out)
    return dropped


_LEADING_SPACE = re.compile(rb"[ \t\r\n]*")  # what JSON allows before a value


def _is_object(value: Any) -> bool:
    """A Kubernetes object: a mapping with a kind, whose metadata (if any) is a mapping."""
    return isinstance(value, dict) and bool(value.get("kind")) and isinstance(value.get("metadata", {}), dict)


def _flatten(doc: Any, out: list[dict]) -> int:
    """Append ``doc`` (a List's items, in order) to ``out``; returns how many objects were dropped.

    A document that is not a mapping with a kind (a values file, a comment-only document) is
    left out silently, as before; one with a kind but a metadata that is not a mapping, and a
    List item that is not an object, count as dropped (the query engine reads metadata as a mapping).
    """
    if not isinstance(doc, dict) or not doc.get("kind"):
        return 0
    if not _is_object(doc):
        return 1
    kind = str(doc["kind"])
    items = doc.get("items")
    if kind.endswith("List") and isinstance(items, list):
        item_kind = kind[: -len("List")] if kind != "List" else None
        api_version = doc.get("apiVersion")
        dropped = 0
        for item in items:
            if not isinstance(item, dict):
                dropped += 1
                continue
            if item_kind and "kind" not in item:
                item["kind"] = item_kind
            if item_kind and "apiVersion" not in item and api_version:
                item["apiVersion"] = api_version
            dropped += 1 if not _is_object(item) else _flatten(item, out)
        return dropped
    out.append(doc)
    return 0
