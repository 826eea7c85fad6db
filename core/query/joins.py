"""Hash joins on relationship rules: which resources of two kinds are related, without all-pairs.

Each rule is joined by its first criterion through a hash index on one side (exact values, or
label pairs for selectors); the remaining criteria are checked only on the candidate pairs.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from itertools import chain
from typing import Any, Callable, Iterable, Iterator

from tessera.core.relationships import Criterion, Rule

PathFn = Callable[[Any], list]


@lru_cache(maxsize=512)
def path_fn(path: str) -> PathFn:
    """A compiled getter for a rule field path (``metadata.ownerReferences[].name``)."""
    from tessera.core.paths import compile_path, parse_path

    return compile_path(parse_path(path))


def namespace_of(obj: dict) -> str:
    """metadata.namespace, or "" for cluster-scoped resources."""
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or ""


def hashable_values(values: Iterable[Any]) -> list:
    """The values a hash join can key on (scalars; lists and maps never equal a scalar field)."""
    return [v for v in values if isinstance(v, (str, int, float, bool))]


def _selector_matches(selector: Any, labels: dict) -> bool:
    """A Kubernetes LabelSelector (matchLabels + matchExpressions) against a label map."""
    if not isinstance(selector, dict):
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and key in labels and labels[key] in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def criterion_holds(crit: Criterion, a: dict, b: dict) -> bool:
    """Check one criterion on a candidate pair (a of rule.kind_a, b of rule.kind_b)."""
    if crit.comparison == "exact":
        left = set(hashable_values(path_fn(crit.field_a)(a)))
        return any(v in left for v in hashable_values(path_fn(crit.field_b)(b)))
    if crit.comparison == "scoped_name":  # a mention's NS/NAME or */NAME (core/mention_links.py)
        from tessera.core.mention_links import scoped_name_holds

        return scoped_name_holds(path_fn(crit.field_a)(a), hashable_values(path_fn(crit.field_b)(b)),
                                 namespace_of(b))
    labels = next(iter(path_fn(crit.field_a)(a)), None) or {}
    selector = next(iter(path_fn(crit.field_b)(b)), None)
    if not isinstance(labels, dict):
        return False
    if crit.comparison == "contains_all":
        return isinstance(selector, dict) and bool(selector) and all(
            labels.get(k) == v for k, v in selector.items()
        )
    if crit.comparison == "label_selector":
        return _selector_matches(selector, labels)
    raise ValueError(f"unknown comparison {crit.comparison!r}")


class JoinMemo:
    """The join values of resources, worked out once per resource object and field.

    Live queries match the same cached objects again and again (a watch cache replaces an
    object when it changes, never edits it), so a long-running process keeps one JoinMemo per
    source. Entries are checked by identity; the whole memo is dropped when it grows past
    ``limit`` entries (objects replaced long ago would otherwise stay alive in it).
    """

    def __init__(self, limit: int = 400_000):
        self.limit = limit
        self._values: dict[tuple[str, int], tuple[dict, list]] = {}

    def values(self, field: str, obj: dict) -> tuple[str, list]:
        """``obj``'s namespace and the hashable values of ``field`` in it."""
        key = (field, id(obj))
        hit = self._values.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        if len(self._values) >= self.limit:
            self._values.clear()
        found = (namespace_of(obj), hashable_values(path_fn(field)(obj)))
        self._values[key] = (obj, found)
        return found


def rule_pairs(rule: Rule, a_objs: list[dict], b_objs: list[dict], memo: JoinMemo | None = None
               ) -> Iterator[tuple[dict, dict]]:
    """Every (a, b) pair satisfying ``rule``, found through a hash index on its first criterion.

    Args:
        rule: the relationship rule.
        a_objs: candidate resources of rule.kind_a; b_objs: of rule.kind_b.
        memo: where long-running callers keep field values between calls.
    Yields:
        related pairs, each once, in a_objs order then b_objs order.
    """
    if not a_objs or not b_objs or not rule.criteria:
        return
    first, rest = rule.criteria[0], rule.criteria[1:]
    for a, b in _first_criterion_pairs(rule, first, a_objs, b_objs, memo):
        if all(criterion_holds(c, a, b) for c in rest):
            yield a, b


def _first_criterion_pairs(
    rule: Rule, crit: Criterion, a_objs: list[dict], b_objs: list[dict], memo: JoinMemo | None = None
) -> Iterator[tuple[dict, dict]]:
    same_ns = rule.same_namespace
    if crit.comparison == "exact":
        if memo is not None:
            def get_a(obj: dict, field: str = crit.field_a) -> tuple[str, list]:
                return memo.values(field, obj)

            def get_b(obj: dict, field: str = crit.field_b) -> tuple[str, list]:
                return memo.values(field, obj)
        else:
            path_a, path_b = path_fn(crit.field_a), path_fn(crit.field_b)

            def get_a(obj: dict) -> tuple[str, list]:
                return namespace_of(obj), hashable_values(path_a(obj))

            def get_b(obj: dict) -> tuple[str, list]:
                return namespace_of(obj), hashable_values(path_b(obj))
        kept = _pairs_from_kept_index(crit.field_a, crit.field_b, same_ns, a_objs, b_objs, get_a, get_b)
        if kept is not None:
            yield from kept
            return
        yield from _probe_b_index(_HashedSide(b_objs, get_b, same_ns), same_ns, a_objs, get_a)
        return
    # Selector comparisons: index the labelled side (a) by (namespace, key, value).
    get_labels, get_selector = path_fn(crit.field_a), path_fn(crit.field_b)
    by_pair: dict[tuple, list[dict]] = defaultdict(list)
    by_ns: dict[str, list[dict]] = defaultdict(list)
    order = {id(a): i for i, a in enumerate(a_objs)}
    for a in a_objs:
        labels = next(iter(get_labels(a)), None)
        ns = namespace_of(a) if same_ns else ""
        by_ns[ns].append(a)
        if isinstance(labels, dict):
            for k, v in labels.items():
                by_pair[(ns, k, v)].append(a)
    out: list[tuple[dict, dict]] = []
    for b in b_objs:
        selector = next(iter(get_selector(b)), None)
        if not isinstance(selector, dict):
            continue
        ns = namespace_of(b) if same_ns else ""
        if crit.comparison == "contains_all":
            required = selector
            if not required:
                continue
        else:
            required = selector.get("matchLabels") or {}
        if required:
            postings = sorted((by_pair.get((ns, k, v), []) for k, v in required.items()), key=len)
            candidates = postings[0]
            others = [set(map(id, p)) for p in postings[1:]]
            matched = [a for a in candidates if all(id(a) in o for o in others)]
        else:
            matched = list(by_ns.get(ns, []))
        if crit.comparison == "label_selector":
            matched = [
                a for a in matched if _selector_matches(selector, next(iter(get_labels(a)), None) or {})
            ]
        for a in matched:
            out.append((a, b))
    out.sort(key=lambda pair: order[id(pair[0])])
    yield from out


class _HashedSide:
    """The b side of one join hashed on the spot, probed like a kept JoinIndex."""

    def __init__(self, b_objs: list[dict], get_b: Callable[[dict], tuple[str, list]], same_ns: bool):
        self._by_ns_value: dict[tuple[str, Any], list[dict]] = defaultdict(list)
        self._by_value: dict[Any, list[dict]] = defaultdict(list)  # for cluster-scoped a
        for b in b_objs:
            ns, values = get_b(b)
            if not same_ns:
                ns = ""
            for v in set(values):
                self._by_ns_value[(ns, v)].append(b)
                if same_ns:
                    self._by_value[v].append(b)

    def matching(self, ns: str, value: Any) -> list[dict]:
        return self._by_ns_value.get((ns, value), [])

    def matching_any_namespace(self, value: Any) -> list[dict]:
        return self._by_value.get(value, [])


def _pairs_from_kept_index(
    field_a: str, field_b: str, same_ns: bool, a_objs: list[dict], b_objs: list[dict],
    get_a: Callable[[dict], tuple[str, list]], get_b: Callable[[dict], tuple[str, list]],
) -> list[tuple[dict, dict]] | None:
    """The pairs of an exact criterion from an index a watch cache keeps on one side (the side
    that is a whole-cache snapshot; the smaller other side probes it), in the order the hash
    join gives them; None when neither side has a current index."""
    lend_b = getattr(b_objs, "join_index", None)
    lend_a = getattr(a_objs, "join_index", None)
    if lend_b is not None and (lend_a is None or len(a_objs) <= len(b_objs)):
        with lend_b(field_b, same_ns) as index:
            if index is not None:
                return _probe_b_index(index, same_ns, a_objs, get_a)
    if lend_a is not None:
        with lend_a(field_a, same_ns) as index:
            if index is not None:
                return _probe_a_index(index, same_ns, a_objs, b_objs, get_a, get_b)
    return None


def _probe_b_index(index: Any, same_ns: bool, a_objs: list[dict],
                   get_a: Callable[[dict], tuple[str, list]]) -> list[tuple[dict, dict]]:
    out = []
    for a in a_objs:
        a_ns, values = get_a(a)
        if not same_ns:
            a_ns = ""
        seen: set[int] = set()
        for v in values:
            if same_ns and not a_ns:
                bucket: Iterable[dict] = index.matching_any_namespace(v)
            else:
                bucket = chain(index.matching(a_ns, v), index.matching("", v) if a_ns else ())
            for b in bucket:
                if id(b) not in seen:
                    seen.add(id(b))
                    out.append((a, b))
    return out


def _probe_a_index(index: Any, same_ns: bool, a_objs: list[dict], b_objs: list[dict],
                   get_a: Callable[[dict], tuple[str, list]], get_b: Callable[[dict], tuple[str, list]],
                   ) -> list[tuple[dict, dict]]:
    # Found from the b side, then put in the order the a-side hash join yields: a's place in
    # its list, then the first of a's values that b holds, then b's place.
    found: dict[tuple[int, int], tuple[dict, dict, set]] = {}
    for b_place, b in enumerate(b_objs):
        b_ns, values = get_b(b)
        if not same_ns:
            b_ns = ""
        for v in set(values):
            if not same_ns:
                bucket: Iterable[dict] = index.matching("", v)
            elif not b_ns:
                bucket = index.matching_any_namespace(v)
            else:
                bucket = chain(index.matching(b_ns, v), index.matching("", v))
            for a in bucket:
                hit = found.setdefault((id(a), b_place), (a, b, set()))
                hit[2].add(v)
    keyed = []
    for (_, b_place), (a, b, shared) in found.items():
        first = next(i for i, v in enumerate(get_a(a)[1]) if v in shared)
        keyed.append(((index.position(a), first, b_place), a, b))
    keyed.sort(key=lambda k: k[0])
    return [(a, b) for _, a, b in keyed]
