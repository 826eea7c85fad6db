"""A document and its chunks as ingestion makes them and core/knowledge/index.py stores them;
the same shape travels as JSONL (``ingest --emit`` / ``ingest -``) and in peers' pages
(``as_dict`` / ``from_dict``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

DOCUMENT_KINDS = ("markdown", "code", "text")


@dataclass
class ChunkRecord:
    """One part of a document: a markdown section, a top-level definition, a paragraph.

    heading: the section's heading path ("Design > Risks"; '' before the first heading);
    start_line / end_line: 1-based, inclusive, in the document's text; mentions: the Kubernetes
    resources the text names (core/knowledge/mentions.py); embedding: float32 bytes from
    core/knowledge/embedding.py, or None.
    """

    ordinal: int
    heading: str
    start_line: int
    end_line: int
    text: str
    mentions: list[dict[str, Any]] = field(default_factory=list)
    embedding: bytes | None = None


@dataclass
class DocumentRecord:
    """One ingested file: ``root`` canonical (absolute, symlinks resolved), ``path`` relative to it
    ('/'-separated), ``root_given`` the root as typed; ``hash`` the SHA-256 hex of the content;
    ``mtime`` RFC 3339 (core/times.py)."""

    root: str
    root_given: str
    path: str
    kind: str
    title: str
    size: int
    mtime: str
    hash: str
    language: str | None = None
    tags: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    front_matter: dict[str, Any] = field(default_factory=dict)
    chunks: list[ChunkRecord] = field(default_factory=list)

    def as_dict(self, *, embeddings: bool = False) -> dict[str, Any]:
        """A plain dict (JSON-able without embeddings; the embeddings stay bytes when asked for)."""
        out = asdict(self)
        for chunk in out["chunks"]:
            if not embeddings:
                chunk.pop("embedding", None)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DocumentRecord:
        """The record ``as_dict`` gave (extra keys ignored). Raises KeyError / TypeError /
        ValueError on a malformed dict: callers reading untrusted input turn those into their own
        one-line errors."""
        chunks = [ChunkRecord(ordinal=int(c["ordinal"]), heading=str(c.get("heading") or ""),
                              start_line=int(c["start_line"]), end_line=int(c["end_line"]), text=str(c["text"]),
                              mentions=list(c.get("mentions") or []), embedding=c.get("embedding"))
                  for c in data.get("chunks") or []]
        kind = str(data["kind"])
        if kind not in DOCUMENT_KINDS:
            raise ValueError(f"document kind must be one of {', '.join(DOCUMENT_KINDS)}")
        return cls(root=str(data["root"]), root_given=str(data.get("root_given") or data["root"]),
                   path=str(data["path"]), kind=kind, title=str(data.get("title") or ""), size=int(data["size"]),
                   mtime=str(data["mtime"]), hash=str(data["hash"]), language=data.get("language"),
                   tags=[str(t) for t in data.get("tags") or []], links=[str(x) for x in data.get("links") or []],
                   front_matter=dict(data.get("front_matter") or {}), chunks=chunks)
