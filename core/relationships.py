"""Relationship rules: how two kinds are linked, and the criteria the hash join keys on.

A rule says resources of ``kind_a`` and ``kind_b`` are related (type ``type``) when every
criterion holds. Paths use the resource path syntax with ``[]`` meaning "any element"
(``metadata.ownerReferences[].name``). Comparisons:

- ``exact``: some value at ``field_a`` equals some value at ``field_b``.
- ``contains_all``: the map at ``field_b`` (a selector, non-empty) is a subset of the map at
  ``field_a`` (labels).
- ``label_selector``: the object at ``field_b`` is a Kubernetes LabelSelector
  (matchLabels + matchExpressions) that selects the labels at ``field_a``; an empty selector ``{}``
  selects everything in the namespace.

Direction does not matter when matching (``(a)->(b)`` and ``(a)<-(b)`` find the same pairs, as in
Cyphernetes). ``same_namespace`` restricts pairs to one namespace when both kinds are namespaced.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Criterion:
    """One join condition between a field of kind_a and a field of kind_b."""

    field_a: str
    field_b: str
    comparison: str = "exact"


@dataclass(frozen=True)
class Rule:
    """kind_a and kind_b are Kind names (``ReplicaSet``); ``type`` is an UPPER_SNAKE name."""

    kind_a: str
    kind_b: str
    type: str
    criteria: tuple[Criterion, ...]
    same_namespace: bool = True
    origin: str = "builtin"
