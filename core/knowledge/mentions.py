"""The Kubernetes resources a chunk of text names (docs/knowledge.md "One graph").

``extract(text)`` returns the mentions stored with each chunk (knowledge_chunks.mentions), each
``{"kind": "Deployment" | None, "name": "web", "namespace": "shop" | None, "form": ...}``.
"""

from __future__ import annotations

from typing import Any


def extract(text: str) -> list[dict[str, Any]]:
    """The mentions in ``text`` (filled in by issue 16's graph work; empty until then)."""
    return []
