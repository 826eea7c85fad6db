"""The join planner: which relationship rules join two kinds, which kinds a kindless node can
take, and in what order a path's joins run (from which node, in which direction).

The engine (core/query/engine.py) fetches candidates and executes the plan: hash joins through
core/query/joins.py, which use a source's join indexes (core/query/join_index.py) when it lends
them.
"""

from __future__ import annotations

from typing import Any

from tessera.core.kinds import KindInfo
from tessera.core.query import ast
from tessera.core.relationships import Rule

Hop = tuple[int, bool]  # (index of the relationship in the path, walked forwards)


class JoinPlanner:
    """The relationship rules, indexed by the pair of kinds they link.

    Args:
        rules: the rules in force (core/rules.py).
        registry: the source's kinds (a core.kinds.KindRegistry): a ``*`` rule (Namespace -> every
            namespaced resource in it) links a Namespace to each namespaced, listable one.
    """

    def __init__(self, rules: list[Rule], registry: Any):
        self.by_pair: dict[tuple[str, str], list[Rule]] = {}
        for rule in rules:
            self.by_pair.setdefault((rule.kind_a.lower(), rule.kind_b.lower()), []).append(rule)
        self.registry = registry

    def namespaced_kinds(self) -> list[KindInfo]:
        """The source's namespaced kinds that can be listed."""
        return [k for k in self.registry.all() if k.namespaced and "list" in k.verbs]

    def rules_between(self, left: KindInfo, right: KindInfo, rel: ast.RelPattern) -> list[tuple[Rule, bool]]:
        """Rules linking two kinds, each with whether ``left`` plays the rule's kind_a."""
        out = []
        lk, rk = left.kind.lower(), right.kind.lower()
        for rule in self.by_pair.get((lk, rk), []):
            out.append((rule, True))
        if lk != rk:
            for rule in self.by_pair.get((rk, lk), []):
                out.append((rule, False))
        # kind_b "*" (Namespace -> every namespaced resource in it)
        if right.namespaced:
            out.extend((rule, True) for rule in self.by_pair.get((lk, "*"), []))
        if left.namespaced:
            out.extend((rule, False) for rule in self.by_pair.get((rk, "*"), []))
        if rel.type:
            out = [(r, a) for r, a in out if r.type.lower() == rel.type.lower()]
        return out

    def linked_kinds(self, kind: KindInfo, rel_type: str | None) -> tuple[set[str], set[str]]:
        """The kinds rules link to ``kind``: (by rules naming both kinds, by a ``*`` rule).

        A ``*`` rule (Namespace -> every namespaced kind) links a Namespace to every namespaced,
        listable kind the source offers, and every namespaced kind to Namespace.
        """
        pair_rules: set[str] = set()
        namespace_rule: set[str] = set()
        name = kind.kind.lower()
        for (a, b), rules in self.by_pair.items():
            for rule in rules:
                if rel_type and rule.type.lower() != rel_type.lower():
                    continue
                if rule.kind_b == "*":
                    if a == name:
                        namespace_rule |= {k.kind for k in self.namespaced_kinds()}
                    elif kind.namespaced:
                        namespace_rule.add(rule.kind_a)
                    continue
                if a == name:
                    pair_rules.add(rule.kind_b)
                if b == name:
                    pair_rules.add(rule.kind_a)
        return pair_rules, namespace_rule - pair_rules


def start_node(names: list[str], restricted: set[str]) -> int:
    """The node a path is walked from: the first restricted one (a live query's changed
    resources: few candidates keep every join small), else the first."""
    return next((i for i, n in enumerate(names) if n in restricted), 0)


def hops(relationships: int, start: int) -> list[Hop]:
    """The order a path's joins run in: from ``start`` forwards to the end, then backwards from
    ``start`` to the first node."""
    return [(i, True) for i in range(start, relationships)] + [(i, False) for i in range(start - 1, -1, -1)]
