"""Kinds: what a source can list, and how user spellings resolve to them.

A kind is known by its Kind name, singular, plural, short names, and group-qualified spellings
(``deployments.apps``, ``pods.v1.core``, ``core.Endpoints``), all case-insensitive. Resolution
prefers an exact Kind/singular/plural/short-name match; a name shared by two groups is ambiguous
and the error lists the qualified choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KindInfo:
    """One listable resource type.

    group: API group ("" for core), version: e.g. "v1", kind: "Deployment",
    plural: "deployments", singular: "deployment", short_names: ("deploy",),
    namespaced: True for namespaced resources.
    """

    group: str
    version: str
    kind: str
    plural: str
    singular: str = ""
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    verbs: tuple[str, ...] = field(default=("list", "watch", "get"), compare=False)

    @property
    def api_version(self) -> str:
        """``apps/v1`` or ``v1`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` (``pods`` for the core group): the unambiguous spelling."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def names(self) -> set[str]:
        """Every lower-cased spelling that resolves to this kind."""
        base = {self.kind.lower(), self.plural.lower(), (self.singular or self.kind).lower()}
        base |= {s.lower() for s in self.short_names}
        group = self.group or "core"
        out = set(base)
        for b in base:
            out.add(f"{b}.{group}")
            out.add(f"{b}.{self.version}.{group}")
            out.add(f"{group}.{b}")
        if not self.group:
            out |= {f"{b}.{self.version}" for b in base}
        return out
