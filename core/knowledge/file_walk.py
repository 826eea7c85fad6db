"""Which files under an ingested root are candidates (docs/knowledge.md "Ingesting").

- ``.gitignore`` files are respected at every level, each applying below its own folder, a deeper
  one overriding a shallower one (negations ``!`` included), as git does (pathspec's gitignore
  rules). A .gitignore above the root is not read: the root is what the user asked for.
- Hidden entries (a name starting with ``.``: .git/, .venv/, .cache/, .env, .gitignore itself)
  are skipped: they are tool state, secrets or editor droppings, not knowledge.
- Symbolic links to files are followed (the file is read through the link, under the link's
  path); links to folders are not, so a link loop or a link to / cannot run the walk away.
- A file whose name is not UTF-8 cannot be stored as a path: it is reported "unreadable".
- Image, PDF and archive suffixes are reported without being read: they are binary whatever
  their first bytes say (an SVG is XML, but a drawing, not prose).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

# Suffixes never read: binary by kind (counted as "binary" skips).
BINARY_SUFFIXES = frozenset({
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".ico", ".webp", ".svg", ".avif", ".heic", ".psd",
    ".pdf", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".tar", ".jar", ".whl", ".so", ".dylib", ".dll",
    ".exe", ".o", ".a", ".pyc", ".class", ".wasm", ".woff", ".woff2", ".ttf", ".otf", ".mp3", ".mp4", ".mov",
    ".avi", ".webm", ".wav", ".flac", ".ogg", ".sqlite", ".db", ".excalidraw",
})


@dataclass(frozen=True)
class Candidate:
    """A file the walk found: its path relative to the root ('/'-separated), absolute path, and
    ``skip`` ("binary", "unreadable") when it is known unusable without reading it."""

    path: str
    absolute: str
    skip: str | None = None


class IgnoreRules:
    """The .gitignore files from a root down to one folder, read once each."""

    def __init__(self, root: Path):
        self.root = root
        self._specs: dict[str, Any] = {}  # folder relative to root ('' for the root) -> spec or None

    def _spec(self, folder: str) -> Any:
        if folder not in self._specs:
            spec = None
            try:
                text = (self.root / folder / ".gitignore").read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = None
            if text is not None:
                import pathspec

                spec = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
            self._specs[folder] = spec
        return self._specs[folder]

    def forget(self, folder: str) -> None:
        """Read ``folder``'s .gitignore again next time (it changed)."""
        self._specs.pop(folder, None)

    def ignored(self, path: str, *, is_dir: bool = False) -> bool:
        """Whether ``path`` (relative to the root) is ignored by the .gitignore files above it
        (not by its parents being ignored: the walk never enters an ignored folder)."""
        parts = path.split("/")
        verdict = False
        for depth in range(len(parts)):
            folder = "/".join(parts[:depth])
            spec = self._spec(folder)
            if spec is None:
                continue
            rel = "/".join(parts[depth:]) + ("/" if is_dir else "")
            result = spec.check_file(rel)
            if result.include is not None:
                verdict = result.include
        return verdict

    def excluded(self, path: str, *, is_dir: bool = False) -> bool:
        """Whether ``path`` (relative to the root) is left out: hidden, or ignored itself or
        through one of its folders."""
        parts = path.split("/")
        if any(part.startswith(".") for part in parts):
            return True
        for depth in range(1, len(parts)):
            if self.ignored("/".join(parts[:depth]), is_dir=True):
                return True
        return self.ignored(path, is_dir=is_dir)


def walk(root: Path, rules: IgnoreRules | None = None, *, start: str = "") -> Iterator[Candidate]:
    """Every candidate file under ``root`` (canonical; only below its folder ``start`` when
    given, which the caller has checked is not excluded), in sorted order, pruning hidden and
    ignored folders. A folder that cannot be listed is left out silently: its files are then
    not candidates, and (because a folder vanishing mid-walk looks the same) not removed
    either: ingest only removes documents whose file is known to be gone."""
    rules = rules or IgnoreRules(root)
    stack = [start]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(root / folder if folder else root) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in listed:
            if entry.name.startswith("."):
                continue
            rel = f"{folder}/{entry.name}" if folder else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                linked_dir = not is_dir and entry.is_symlink() and entry.is_dir()
            except OSError:
                is_dir = linked_dir = False
            if linked_dir:  # not followed (see the module's docstring)
                continue
            if is_dir:
                if not rules.ignored(rel, is_dir=True):
                    subfolders.append(rel)
                continue
            if rules.ignored(rel):
                continue
            yield candidate(root, rel)
        stack.extend(reversed(subfolders))


def candidate(root: Path, rel: str) -> Candidate:
    """``rel`` under ``root`` as a Candidate, with the skip its name or file type already tells."""
    absolute = os.path.join(root, *rel.split("/"))
    if not _is_text(rel):  # a name that is not UTF-8 (os gives it with surrogates): not storable as a path
        shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return Candidate(shown, absolute, "unreadable")
    if os.path.splitext(rel)[1].lower() in BINARY_SUFFIXES:
        return Candidate(rel, absolute, "binary")
    try:
        mode = os.stat(absolute).st_mode
    except OSError:
        return Candidate(rel, absolute, "unreadable")
    if stat.S_ISDIR(mode):  # a symbolic link to a folder: not followed
        return Candidate(rel, absolute, "unreadable")
    if not stat.S_ISREG(mode):  # a FIFO, a socket, a device: reading could block or never end
        return Candidate(rel, absolute, "unreadable")
    return Candidate(rel, absolute)


def _is_text(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
