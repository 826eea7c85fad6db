"""Resource paths: ``metadata.labels.app``, ``spec.containers[*].image``, ``metadata.ownerReferences[].name``.

Queries carry paths already split into segments by the parser; relationship rules and user files
carry them as text, which ``parse_path`` splits. ``compile_path`` turns segments into a getter that
returns every value found (a list: empty when missing, several when a wildcard fans out).
"""

from __future__ import annotations

from typing import Any, Callable

from tessera.core.errors import QueryError
from tessera.core.query.ast import Index, Key, Segment, Wildcard


def parse_path(text: str) -> tuple[Segment, ...]:
    """Split a dotted path into segments.

    Args:
        text: ``a.b[].c``, ``a.b[*].c``, ``a.b[0]`` or ``metadata.labels.app\\.kubernetes\\.io/name``
            (``\\.`` keeps a dot inside a key).
    Returns:
        a tuple of Key / Index / Wildcard.
    Raises:
        QueryError on an empty path or a malformed bracket.
    """
    segments: list[Segment] = []
    key: list[str] = []
    i, n = 0, len(text)

    def flush() -> None:
        if key:
            segments.append(Key("".join(key)))
            key.clear()

    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            key.append(text[i + 1])
            i += 2
            continue
        if ch == ".":
            flush()
            i += 1
            continue
        if ch == "[":
            flush()
            end = text.find("]", i)
            if end < 0:
                raise QueryError(f"path '{text}': unclosed '['", hint="write [n], [] or [*]")
            inner = text[i + 1 : end].strip()
            if inner in ("", "*"):
                segments.append(Wildcard())
            elif inner.lstrip("-").isdigit():
                segments.append(Index(int(inner)))
            else:
                raise QueryError(f"path '{text}': bad index '[{inner}]'", hint="write [n], [] or [*]")
            i = end + 1
            continue
        key.append(ch)
        i += 1
    flush()
    if not segments:
        raise QueryError(f"empty path '{text}'")
    return tuple(segments)


def compile_path(segments: tuple[Segment, ...] | list[Segment]) -> Callable[[Any], list]:
    """A getter for a path: ``fn(obj) -> list`` of every value at the path (``[]`` when missing).

    A path without wildcards yields at most one value; ``[*]`` fans out over list elements.
    """
    segs = tuple(segments)
    if all(isinstance(s, Key) for s in segs):
        keys = tuple(s.name for s in segs)  # type: ignore[union-attr]

        def get_keys(obj: Any) -> list:
            for k in keys:
                if not isinstance(obj, dict):
                    return []
                obj = obj.get(k)
                if obj is None:
                    return []
            return [obj]

        return get_keys

    def get(obj: Any) -> list:
        current = [obj]
        for seg in segs:
            nxt: list = []
            for value in current:
                if isinstance(seg, Key):
                    if isinstance(value, dict) and value.get(seg.name) is not None:
                        nxt.append(value[seg.name])
                elif isinstance(seg, Index):
                    if isinstance(value, list) and -len(value) <= seg.index < len(value):
                        nxt.append(value[seg.index])
                elif isinstance(value, list):
                    nxt.extend(v for v in value if v is not None)
            current = nxt
            if not current:
                break
        return current

    return get


def has_wildcard(segments: tuple[Segment, ...] | list[Segment]) -> bool:
    """True when the path fans out (contains ``[*]``)."""
    return any(isinstance(s, Wildcard) for s in segments)


def format_path(segments: tuple[Segment, ...] | list[Segment]) -> str:
    """The text form of segments (inverse of parse_path, ``[*]`` for wildcards)."""
    out = ""
    for seg in segments:
        if isinstance(seg, Key):
            name = seg.name.replace(".", "\\.")
            out += f".{name}" if out else name
        elif isinstance(seg, Index):
            out += f"[{seg.index}]"
        else:
            out += "[*]"
    return out
