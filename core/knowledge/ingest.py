"""Ingestion: files (``tessera ingest PATH…``) and JSONL documents (``tessera ingest -``) into the
knowledge tables, through core/knowledge/index.py (docs/knowledge.md "Ingesting").

A run walks each root (core/knowledge/file_walk.py), reads each candidate (size checked with
stat before reading, binary and unreadable files skipped and counted), hashes it and leaves it
alone when the stored document has the same hash; the rest are split (core/knowledge/splitting.py),
their chunks' mentions extracted (core/knowledge/mentions.py) and embedded in batches
(core/knowledge/embedding.py), and each document written in its own transaction. Documents under
the root whose file is gone (or now ignored, binary or oversized) are removed. Because every
document is written whole or not at all and dedupe is by content, a run killed at any moment
leaves a consistent index, and the next run finishes the job.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable

from tessera.core.errors import InputError, UsageError, printable
from tessera.core.knowledge import index, splitting
from tessera.core.knowledge.file_walk import Candidate, IgnoreRules, candidate, walk
from tessera.core.knowledge.records import ChunkRecord, DocumentRecord

EMBED_BATCH = 512  # chunks embedded in one call (one model call per batch, then one write per document)
EVENT_SUBJECT = "knowledge.ingest.done"
STDIN_ROOT = "-"  # the root of a JSONL document that names none

OnChange = Callable[[dict[str, Any]], None]
OnProgress = Callable[[int, int, str], None]  # (files done, files in all, path just done)
OnWarning = Callable[[str], None]


@dataclass
class IngestSummary:
    """What one run did. ``roots`` are as given; ``skipped`` counts by reason (binary,
    unreadable, oversized, ...); ``seconds`` is the wall time."""

    roots: list[str] = field(default_factory=list)
    scanned: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    chunks_written: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"roots": list(self.roots), "scanned": self.scanned, "added": self.added, "updated": self.updated,
                "unchanged": self.unchanged, "removed": self.removed, "skipped": dict(sorted(self.skipped.items())),
                "chunks_written": self.chunks_written, "seconds": round(self.seconds, 3)}

    def line(self) -> str:
        """``ingested notes: 12 added, 3 updated, 640 unchanged, 2 removed; skipped 4 (3 binary,
        1 oversized) in 1.2 s`` (roots escaped for the terminal)."""
        text = (f"ingested {printable(', '.join(self.roots)) or 'no documents'}: {self.added} added, {self.updated} updated, "
                f"{self.unchanged} unchanged, {self.removed} removed")
        total = sum(self.skipped.values())
        if total:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])))
            text += f"; skipped {total} ({reasons})"
        return text + f" in {self.seconds:.1f} s"


@dataclass
class Target:
    """One PATH of a run: its canonical root and the root as typed; for a file PATH the one path
    under that root it covers (``only``), for a folder inside an ingested root the folder under
    that root (``under``). Removals are limited to what the target covers."""

    root: Path
    root_given: str
    only: str | None = None
    under: str | None = None

    def covers(self, path: str) -> bool:
        """Whether ``path`` (relative to the root) is this target's to add or remove."""
        if self.only is not None:
            return path == self.only
        return self.under is None or path.startswith(self.under + "/")


def resolve_targets(paths: list[str], *, known_roots: dict[str, str] | None = None) -> list[Target]:
    """Each PATH canonicalised (symlinks resolved); all are checked before anything is done.

    A PATH inside a root already ingested (``known_roots``: canonical -> as given; the deepest
    one holding it) is ingested as part of that root: ``tessera ingest notes/runbooks/web.md``
    after ``tessera ingest notes`` updates that document instead of making a second copy under
    a new root. Otherwise a folder is its own root and a file's root is its folder. Either way
    the root's .gitignore files and hidden folders apply (a file they leave out is skipped as
    "ignored", as ``git add`` refuses one).

    Raises:
        UsageError (exit 2) for a path that does not exist or is neither a file nor a folder.
    """
    known = known_roots or {}
    targets: list[Target] = []
    for given in paths:
        try:
            real = Path(given).expanduser().resolve(strict=True)
            mode = real.stat().st_mode
        except (OSError, RuntimeError) as exc:
            reason = getattr(exc, "strerror", None) or "no such file or folder"
            raise UsageError(f"cannot ingest '{printable(given)}': {reason}",
                             hint="give an existing file or folder; nothing was ingested") from None
        try:
            str(real).encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"cannot ingest '{printable(given.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace'))}':"
                             " its path is not UTF-8", hint="rename it; nothing was ingested") from None
        is_dir = stat.S_ISDIR(mode)
        if not is_dir and not stat.S_ISREG(mode):
            raise UsageError(f"cannot ingest '{printable(given)}': not a regular file or folder",
                             hint="give a file or folder; nothing was ingested")
        holder = _holding_root(real, known)
        if holder is not None:
            rel = real.relative_to(holder).as_posix()
            targets.append(Target(holder, known[str(holder)], only=None if is_dir else rel, under=rel if is_dir else None))
        elif is_dir:
            targets.append(Target(real, given))
        else:
            targets.append(Target(real.parent, os.path.dirname(given.rstrip("/")) or ".", real.name))
    return targets


def _holding_root(real: Path, known: dict[str, str]) -> Path | None:
    """The deepest ingested root strictly above ``real``."""
    if str(real) in known:
        return None  # a root itself
    holders = [Path(r) for r in known if r.startswith("/") and real.is_relative_to(r)]
    return max(holders, key=lambda r: len(r.parts)) if holders else None


def ingest_paths(conn: sqlite3.Connection, paths: list[str], *, on_progress: OnProgress | None = None,
                 on_change: OnChange | None = None, on_warning: OnWarning | None = None,
                 now: Callable[[], str] | None = None, reindex: bool = False) -> IngestSummary:
    """Ingest the files under ``paths`` (folders, or single files under their parent as root).

    Args:
        on_progress: called after each file with (done, total, path).
        on_change: called with each change as ``--emit`` writes it (see change_line).
        on_warning: called with a one-line warning (a bad front matter) for a file still ingested.
        now: the clock for ingested_at and the change log (default core/times.now).
        reindex: split, extract mentions, embed and write unchanged files too (after an upgrade
            changed how that is done: stored documents are otherwise kept while their file is).
    Raises:
        UsageError when a path does not exist (nothing is written).
    """
    return ingest_targets(conn, resolve_paths(conn, paths), on_progress=on_progress, on_change=on_change,
                          on_warning=on_warning, now=now, reindex=reindex)


def resolve_paths(conn: sqlite3.Connection, paths: list[str]) -> list[Target]:
    """``resolve_targets`` with the roots already ingested in this store."""
    return resolve_targets(paths, known_roots={r["root"]: r["root_given"] for r in index.roots(conn)})


def ingest_targets(conn: sqlite3.Connection, targets: list[Target], *, on_progress: OnProgress | None = None,
                   on_change: OnChange | None = None, on_warning: OnWarning | None = None,
                   now: Callable[[], str] | None = None, reindex: bool = False) -> IngestSummary:
    """``ingest_paths`` for targets already resolved (``--watch`` re-scans a root with it)."""
    run = _Run(conn, on_change, on_warning, now, reindex=reindex)
    run.summary.roots = [t.root_given for t in targets]
    plans = [(target, _candidates(target)) for target in targets]
    total = sum(len(found) for _, found in plans)
    done = 0
    for target, found in plans:
        stored = index.stored_hashes(conn, str(target.root))
        kept: set[str] = set()
        for item in found:
            if run.file(target, item, stored):
                kept.add(item.path)
            done += 1
            if on_progress is not None:
                on_progress(done, total, item.path)
        run.flush()
        for path in list(stored):
            if target.covers(path) and path not in kept:
                run.remove(str(target.root), path)
    return run.finish(compact=True)


def ingest_changed(conn: sqlite3.Connection, root: Path, root_given: str, paths: Iterable[str], *,
                   rules: IgnoreRules, on_change: OnChange | None = None, on_warning: OnWarning | None = None,
                   now: Callable[[], str] | None = None) -> IngestSummary:
    """Bring the documents at ``paths`` (relative to ``root``, files or folders, existing or not)
    up to date: what ``--watch`` does with one batch of file changes. A path gone (or now
    ignored) removes its document, or every document below it for a folder."""
    run = _Run(conn, on_change, on_warning, now)
    run.summary.roots = [root_given]
    target = Target(root, root_given)
    stored = index.stored_hashes(conn, str(root))
    for rel in sorted(set(paths)):
        absolute = os.path.join(root, *rel.split("/"))
        exists = os.path.lexists(absolute)
        below = [p for p in stored if p.startswith(rel + "/")]
        if exists and os.path.isdir(absolute) and not os.path.islink(absolute):
            # a folder made, moved in or changed: its files as the walk finds them now
            present = {} if rules.excluded(rel, is_dir=True) else {c.path: c for c in walk(root, rules, start=rel)}
            kept = {c.path for c in present.values() if run.file(target, c, stored)}
            for path in below:
                if path not in kept:
                    run.remove(str(root), path)
            continue
        for path in below:  # a folder gone (or moved away): its documents go with it
            run.remove(str(root), path)
        if exists and not rules.excluded(rel) and run.file(target, candidate(root, rel), stored):
            continue
        if rel in stored:
            run.remove(str(root), rel)
    run.flush()
    return run.finish()


def ingest_jsonl(conn: sqlite3.Connection, lines: Iterable[str | bytes], *, on_change: OnChange | None = None,
                 now: Callable[[], str] | None = None, where: str = "stdin",
                 max_line_bytes: int | None = None) -> IngestSummary:
    """Ingest JSONL documents (``tessera ingest -``): each line an ``--emit`` line, or a document
    ``{"path": ..., "text": ...}`` with optional root, root_given, title, kind, language, tags,
    links, front_matter, mtime (split as a file of that name would be).

    Lines may be bytes (UTF-8) or text; a line longer than ``max_line_bytes`` (default the input
    limit, core/config.py) is refused (read them with ``readline(limit + 1)`` so that a longer
    one arrives cut, not whole in memory).

    Raises:
        InputError naming the line for a bad line: nothing of it is written, earlier lines are kept.
    """
    from tessera.core.config import max_input_bytes

    limit = max_line_bytes or max_input_bytes()
    run = _Run(conn, on_change, None, now)
    stored: dict[str, dict[str, str]] = {}
    roots: dict[str, None] = {}
    for number, line in enumerate(lines, start=1):
        if len(line) > limit:
            run.summary.roots = list(roots)
            run.finish()
            raise InputError(f"{where}:{number}: the line is over the {limit:,}-byte input limit",
                             hint="set TESSERA_MAX_INPUT_BYTES to raise it; earlier lines were ingested")
        if not line.strip():
            continue
        try:
            if isinstance(line, bytes):
                try:
                    line = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ValueError(f"not UTF-8 (byte {exc.start + 1})") from None
            op, value = _parse_line(line, run.now)
        except (ValueError, KeyError, TypeError) as exc:
            run.summary.roots = list(roots)
            run.finish()  # what the earlier lines changed is stored, and its event appended
            message = exc.args[0] if isinstance(exc, (ValueError, TypeError)) and exc.args else f"missing {exc}"
            raise InputError(f"{where}:{number}: {printable(str(message))}",
                             hint="each line is one JSON document: {\"path\": ..., \"text\": ...} or a line of "
                                  "`tessera ingest --emit`; earlier lines were ingested") from None
        run.summary.scanned += 1
        if op == "delete":
            root, path = value
            roots.setdefault(root)
            run.flush()
            if not run.remove(root, path):
                run.summary.unchanged += 1
        else:
            doc: DocumentRecord = value
            roots.setdefault(doc.root_given)
            hashes = stored.setdefault(doc.root, index.stored_hashes(conn, doc.root))
            run.pending_document(doc, existed=doc.path in hashes, stored_hash=hashes.get(doc.path))
            hashes[doc.path] = doc.hash
    run.flush()
    run.summary.roots = list(roots)
    return run.finish(compact=True)


def change_line(op: str, *, doc: DocumentRecord | None = None, root: str = "", path: str = "") -> dict[str, Any]:
    """One change as ``--emit`` writes it: ``{"op": "upsert", ...document}`` (chunks without
    embeddings) or ``{"op": "delete", "root": ..., "path": ...}``."""
    if op == "upsert" and doc is not None:
        return {"op": "upsert", **doc.as_dict()}
    return {"op": "delete", "root": root, "path": path}


def embedding_text(doc: DocumentRecord, chunk: ChunkRecord) -> str:
    """What a chunk's vector is made from: its document's title, its heading path and its text,
    so a section is found by what its document and heading are about, too."""
    return "\n".join(part for part in (doc.title, chunk.heading, chunk.text) if part)


def embed_documents(docs: list[DocumentRecord]) -> None:
    """Every chunk's embedding (of ``embedding_text``), the documents' chunks in one model call."""
    from tessera.core.knowledge import embedding

    pairs = [(doc, chunk) for doc in docs for chunk in doc.chunks]
    if not pairs:
        return
    vectors = embedding.embed([embedding_text(doc, chunk) for doc, chunk in pairs])
    for (_, chunk), vector in zip(pairs, vectors, strict=True):
        chunk.embedding = embedding.to_blob(vector)


# -- the work of one run -------------------------------------------------------------------------


class _Run:
    def __init__(self, conn: sqlite3.Connection, on_change: OnChange | None, on_warning: OnWarning | None,
                 now: Callable[[], str] | None, *, reindex: bool = False):
        from tessera.core.config import max_knowledge_file_bytes
        from tessera.core.times import now as clock

        self.conn = conn
        self.on_change = on_change
        self.on_warning = on_warning
        self.now = now or clock
        self.limit = max_knowledge_file_bytes()
        self.summary = IngestSummary()
        self.started = time.monotonic()
        self.reindex = reindex  # unchanged files are split, embedded and written again
        self.pending: list[tuple[DocumentRecord, bool]] = []  # (document, whether one was stored)
        self.pending_chunks = 0

    def file(self, target: Target, item: Candidate, stored: dict[str, str]) -> bool:
        """Read, and unless unchanged queue, one candidate. Returns whether its stored document
        (if any) stays: False for a file that is now binary or oversized."""
        self.summary.scanned += 1
        if item.skip is not None:
            self.summary.skip(item.skip)
            return item.skip == "unreadable"  # maybe a passing state: what is stored is kept
        read = _read(item.absolute, self.limit)
        if isinstance(read, str):
            self.summary.skip(read)
            return read == "unreadable"
        data, mtime = read
        digest = hashlib.sha256(data).hexdigest()
        if stored.get(item.path) == digest and not self.reindex:
            self.summary.unchanged += 1
            return True
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self.summary.skip("binary")
            return False
        if "\x00" in text:
            self.summary.skip("binary")
            return False
        text = text.removeprefix("\ufeff")
        parts = splitting.split(item.path, text)
        for warning in parts.warnings:
            if self.on_warning is not None:
                self.on_warning(f"{target.root_given.rstrip('/')}/{warning}" if target.root_given != "." else warning)
        doc = DocumentRecord(root=str(target.root), root_given=target.root_given, path=item.path, kind=parts.kind,
                             title=parts.title, size=len(data), mtime=mtime, hash=digest, language=parts.language,
                             tags=parts.tags, links=parts.links, front_matter=parts.front_matter, chunks=parts.chunks)
        self.pending_document(doc, existed=item.path in stored, stored_hash=stored.get(item.path))
        return True

    def pending_document(self, doc: DocumentRecord, *, existed: bool, stored_hash: str | None) -> None:
        from tessera.core.knowledge import mentions

        if stored_hash == doc.hash and not self.reindex:
            self.summary.unchanged += 1
            return
        for chunk in doc.chunks:
            if not chunk.mentions:
                chunk.mentions = mentions.extract(chunk.text)
        self.pending.append((doc, existed))
        self.pending_chunks += len(doc.chunks)
        if self.pending_chunks >= EMBED_BATCH:
            self.flush()

    def flush(self) -> None:
        """Embed the queued documents' chunks in one call, then write each document in its own
        transaction."""
        if not self.pending:
            return
        pending, self.pending, self.pending_chunks = self.pending, [], 0
        embed_documents([doc for doc, _ in pending])
        for doc, existed in pending:
            if not self._write(doc):
                self.summary.unchanged += 1
                continue
            if existed:
                self.summary.updated += 1
            else:
                self.summary.added += 1
            self.summary.chunks_written += len(doc.chunks)
            if self.on_change is not None:
                self.on_change(change_line("upsert", doc=doc))

    def _write(self, doc: DocumentRecord) -> bool:
        if not self.reindex:
            return index.write_document(self.conn, doc, at=self.now())
        from tessera.core.store.db import transaction

        with transaction(self.conn):  # the old version out and the new in, as one change
            index.remove_document(self.conn, doc.root, doc.path, at=self.now())
            return index.write_document(self.conn, doc, at=self.now())

    def remove(self, root: str, path: str) -> bool:
        if not index.remove_document(self.conn, root, path, at=self.now()):
            return False
        self.summary.removed += 1
        if self.on_change is not None:
            self.on_change(change_line("delete", root=root, path=path))
        return True

    def finish(self, *, compact: bool = False) -> IngestSummary:
        """Write what is pending and append the ingest's event; ``compact``: then merge the
        full-text index (index.compact_text_index) when anything changed. A store too full to
        take the merged copy keeps its index as it was: searches are slower, nothing is lost."""
        self.flush()
        if compact and self.summary.changed:
            from tessera.core.store.db import StoreError

            try:
                index.compact_text_index(self.conn)
            except StoreError as exc:
                if self.on_warning is not None:
                    self.on_warning(f"the full-text index was not compacted (searches stay slower until the next ingest): {exc}")
        self.summary.seconds = time.monotonic() - self.started
        if self.summary.changed:
            from tessera.core import events

            events.append(self.conn, EVENT_SUBJECT, self.summary.as_dict())
        return self.summary


def _candidates(target: Target) -> list[Candidate]:
    rules = IgnoreRules(target.root)
    if target.only is not None:
        if rules.excluded(target.only):
            return [Candidate(target.only, str(target.root / target.only), "ignored")]
        return [candidate(target.root, target.only)]
    if target.under is not None and rules.excluded(target.under, is_dir=True):
        return []
    return list(walk(target.root, rules, start=target.under or ""))


def _read(path: str, limit: int) -> tuple[bytes, str] | str:
    """(content, mtime RFC 3339), or the reason it is skipped: "oversized" (checked with stat
    before the file is opened, and again while reading in case it grew), "unreadable" (no
    permission, gone, not a regular file any more)."""
    try:
        if os.stat(path).st_size > limit:
            return "oversized"
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return "unreadable"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced by a FIFO or device since the walk saw it
            return "unreadable"
        if info.st_size > limit:
            return "oversized"
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(limit + 1)
    except OSError:
        return "unreadable"
    finally:
        os.close(fd)
    if len(data) > limit:
        return "oversized"
    from tessera.core.times import format_time

    return data, format_time(datetime.fromtimestamp(info.st_mtime, tz=timezone.utc))


def _parse_line(line: str, now: Callable[[], str]) -> tuple[str, Any]:
    """("upsert", DocumentRecord) or ("delete", (root, path)) from one JSONL line; ValueError,
    KeyError or TypeError (with a message for the user) when it is not a document."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:  # a "\ud800" escape: JSON can say it, no text can hold it
        raise ValueError(f"holds a lone surrogate (\\u{ord(exc.object[exc.start]):04x}), which is not text") from None
    op = data.get("op", "upsert")
    if op not in ("upsert", "delete"):
        raise ValueError(f"\"op\" must be \"upsert\" or \"delete\", not {json.dumps(op)[:40]}")
    root = data.get("root", STDIN_ROOT)
    if not isinstance(root, str) or not root:
        raise ValueError("\"root\" must be a non-empty string")
    path = _check_path(data.get("path"))
    if op == "delete":
        return "delete", (root, path)
    if "chunks" in data:
        doc = DocumentRecord.from_dict({**data, "root": root, "path": path})
        _check_chunks(doc)
        return "upsert", doc
    text = data.get("text")
    if not isinstance(text, str):
        raise ValueError("\"text\" must be a string (or give \"chunks\" as --emit writes them)")
    kind = data.get("kind")
    if kind is not None and kind not in ("markdown", "code", "text"):
        raise ValueError("\"kind\" must be markdown, code or text")
    language = data.get("language")
    if kind is None:
        kind, guessed = splitting.kind_of(path)
        language = language or guessed
    parts = splitting.split(path, text, kind=kind, language=language)
    encoded = text.encode("utf-8")
    title = data.get("title") or parts.title
    tags = data.get("tags", parts.tags)
    links = data.get("links", parts.links)
    front = data.get("front_matter", parts.front_matter)
    if not isinstance(tags, list) or not isinstance(links, list) or not isinstance(front, dict):
        raise ValueError("\"tags\" and \"links\" must be lists, \"front_matter\" an object")
    return "upsert", DocumentRecord(
        root=root, root_given=str(data.get("root_given") or root), path=path, kind=kind, title=str(title),
        size=len(encoded), mtime=str(data.get("mtime") or now()), hash=hashlib.sha256(encoded).hexdigest(),
        language=language, tags=[str(t) for t in tags], links=[str(x) for x in links], front_matter=front,
        chunks=parts.chunks)


def _check_path(path: Any) -> str:
    if not isinstance(path, str) or not path:
        raise ValueError("\"path\" must be a non-empty string")
    parts = PurePosixPath(path).parts
    if path.startswith("/") or "\\" in path or any(p in ("..", ".") for p in path.split("/")) or not parts:
        raise ValueError(f"\"path\" must be relative to its root, '/'-separated, without . or ..: {path[:80]}")
    return path


def _check_chunks(doc: DocumentRecord) -> None:
    ordinals = [c.ordinal for c in doc.chunks]
    if len(set(ordinals)) != len(ordinals):
        raise ValueError("two chunks have the same ordinal")
    if any(c.start_line < 1 or c.end_line < c.start_line for c in doc.chunks):
        raise ValueError("a chunk's lines must be 1 <= start_line <= end_line")
    if any(not isinstance(m, dict) for c in doc.chunks for m in c.mentions):
        raise ValueError("a chunk's mentions must be objects")
