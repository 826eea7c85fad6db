"""Selecting resources the way a list call does, for sources that hold objects in memory."""

from __future__ import annotations

from typing import Any, Iterable


def filters_nothing(kind: Any, *, namespace: str | None = None, name: str | None = None,
                    labels: dict[str, str] | None = None) -> bool:
    """True when a list call with these filters returns every resource of ``kind``."""
    return not labels and name is None and (namespace is None or not kind.namespaced)


def select_resources(
    objs: Iterable[dict[str, Any]],
    kind: Any,
    *,
    namespace: str | None = None,
    name: str | None = None,
    labels: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The objects a list call with these filters would return.

    Args:
        objs: resources of ``kind``.
        kind: their KindInfo (the namespace filter applies only to namespaced kinds).
        namespace: only this namespace (None: all).
        name: only this metadata.name.
        labels: only objects whose labels include all these pairs.
    Returns:
        the matching objects, in input order.
    """
    if filters_nothing(kind, namespace=namespace, name=name, labels=labels):
        return list(objs)
    out = []
    for obj in objs:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):  # a hand-written file may hold anything here
            meta = {}
        if namespace is not None and kind.namespaced and meta.get("namespace") != namespace:
            continue
        if name is not None and meta.get("name") != name:
            continue
        if labels:
            have = meta.get("labels")
            if not isinstance(have, dict):
                have = {}
            if any(have.get(k) != v for k, v in labels.items()):
                continue
        out.append(obj)
    return out
