"""Kinds: what a source can list, and how user spellings resolve to them.

A kind is known by its Kind name, singular, plural, short names, and group-qualified spellings
(``deployments.apps``, ``pods.v1.core``, ``core.Endpoints``), all case-insensitive. Resolution
prefers an exact Kind/singular/plural/short-name match; a name shared by two groups is ambiguous
and the error lists the qualified choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


class KindRegistry:
    """Resolves user spellings of kinds to KindInfo, case-insensitively.

    Args:
        kinds: every kind a source offers (a later duplicate of the same group/kind is ignored).
    """

    def __init__(self, kinds: list[KindInfo]):
        self._kinds: list[KindInfo] = []
        seen: set[tuple[str, str]] = set()
        for k in kinds:
            if (k.group, k.kind) not in seen:
                seen.add((k.group, k.kind))
                self._kinds.append(k)
        self._by_name: dict[str, list[KindInfo]] = {}
        for k in self._kinds:
            for name in k.names():
                self._by_name.setdefault(name, []).append(k)
        self._by_kind: dict[str, list[KindInfo]] = {}
        for k in self._kinds:
            self._by_kind.setdefault(k.kind.lower(), []).append(k)

    def all(self) -> list[KindInfo]:
        """Every kind, in the order given."""
        return list(self._kinds)

    def resolve(self, name: str) -> KindInfo:
        """The kind a spelling names (``po``, ``Pods``, ``deployments.apps``, ``core.Endpoints``).

        Raises:
            QueryError: unknown (with close matches) or ambiguous (with the qualified choices).
        """
        from tessera.core.errors import QueryError, UnknownKind

        matches = self._by_name.get(name.lower(), [])
        if len(matches) > 1:
            # Core-group kinds win over same-named kinds elsewhere only when the spelling is the
            # exact Kind name of exactly one of them; otherwise the user must qualify.
            exact = [k for k in matches if k.kind == name]
            core = [k for k in matches if not k.group]
            if len(core) == 1 and len(exact) != 1:
                matches = core
            elif len(exact) == 1:
                matches = exact
        if len(matches) == 1:
            return matches[0]
        if matches:
            choices = ", ".join(sorted(k.qualified for k in matches))
            raise QueryError(
                f'kind "{name}" is ambiguous: it could be {choices}',
                hint="write the group-qualified name",
            )
        import difflib

        close = difflib.get_close_matches(name.lower(), list(self._by_name), n=3, cutoff=0.75)
        hint = f"did you mean {', '.join(close)}?" if close else "run `tessera kinds` to list the kinds"
        raise UnknownKind(f'resource "{name}" not found', hint=hint)

    def by_kind(self, kind: str, group: str | None = None) -> KindInfo:
        """The KindInfo for an exact Kind name (``ReplicaSet``), as relationship rules name kinds.

        Raises:
            QueryError when this source does not offer that kind.
        """
        from tessera.core.errors import QueryError

        matches = self._by_kind.get(kind.lower(), [])
        if group is not None:
            matches = [k for k in matches if k.group == group]
        if not matches:
            raise QueryError(f'resource "{kind}" not found', hint="run `tessera kinds` to list the kinds")
        core = [k for k in matches if not k.group]
        return core[0] if core else matches[0]

    def has_kind(self, kind: str) -> bool:
        """True when some group offers this exact Kind name."""
        return kind.lower() in self._by_kind


def kinds_from_crds(objs: list[dict]) -> list[KindInfo]:
    """KindInfo for every CustomResourceDefinition among ``objs`` (its storage version).

    Args:
        objs: resources; only ``kind: CustomResourceDefinition`` ones are read.
    Returns:
        one KindInfo per CRD.
    """
    out: list[KindInfo] = []
    for obj in objs:
        if obj.get("kind") != "CustomResourceDefinition":
            continue
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        versions = spec.get("versions") or []
        version = next((v.get("name") for v in versions if v.get("storage")), None)
        version = version or next((v.get("name") for v in versions if v.get("served")), None)
        version = version or spec.get("version") or "v1"
        if not names.get("kind") or not spec.get("group"):
            continue
        out.append(
            KindInfo(
                group=spec["group"],
                version=version,
                kind=names["kind"],
                plural=names.get("plural") or names["kind"].lower() + "s",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=tuple(names.get("shortNames") or ()),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            )
        )
    return out


def kind_rows(sources: list[Any]) -> list[dict]:
    """Every kind each source offers, with all the names it answers to (``tessera kinds``).

    Returns:
        rows of {source, kind, group, version, plural, singular, short_names, namespaced}.
    """
    rows = []
    for source in sources:
        for k in sorted(source.kinds(), key=lambda k: (k.kind, k.group)):
            rows.append(
                {
                    "source": source.name,
                    "kind": k.kind,
                    "group": k.group,
                    "version": k.version,
                    "plural": k.plural,
                    "singular": k.singular or k.kind.lower(),
                    "short_names": list(k.short_names),
                    "namespaced": k.namespaced,
                }
            )
    return rows
