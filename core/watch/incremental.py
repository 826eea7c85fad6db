"""Keeping one query's result current from object changes, without re-running it in full.

The result is kept as the set of its bindings (one per match: variable -> resource). When some
resources change, every binding that holds one of them is dropped, and the query is matched
again with each variable in turn restricted to the changed resources (the delta rule for joins:
a new match must bind at least one changed resource). Aggregates keep each binding's inputs per
group, so only the groups a change touches are folded again.

Queries this cannot follow exactly fall back to full re-evaluation (``eligible`` says which):
sub-pattern predicates (``NOT (d)->(:Service)`` depends on resources no binding holds), DISTINCT,
SKIP and LIMIT (a change elsewhere can move a row in or out), AT, and mutations.
"""

from __future__ import annotations

from typing import Any, Callable

from tessera.core.query import ast
from tessera.core.result import Result

Oid = tuple[str, str, str, str]  # (group, kind, namespace, name)
Bkey = tuple[Oid, ...]


class _Row:
    """A plain query's row as result() lists it: its ORDER BY sort keys, the row, its identity
    text, and whether it is still current (a removed row is marked, not looked up, so keeping
    the order between changes hashes no binding keys)."""

    __slots__ = ("sort", "row", "text", "current")

    def __init__(self, sort: list, row: dict, text: str):
        self.sort, self.row, self.text, self.current = sort, row, text, True


def _sort_of(entry: _Row) -> list:
    return entry.sort


def eligible(query: ast.Query) -> bool:
    """True when ``query`` can be kept current from deltas (see the module docstring)."""

    return (
        bool(query.match)
        and not query.is_mutation
        and query.at is None
        and not query.distinct
        and query.skip is None
        and query.limit is None
        and not ast.pattern_predicates(query.where)
        and not _searches(query)
    )


def _searches(query: ast.Query) -> bool:
    """search("TEXT") scores change with the knowledge, not with the bound object: run whole."""
    from tessera.core.query.engine import search_calls

    return bool(search_calls(query))


def oid(obj: dict) -> Oid:
    """A resource's identity across versions."""
    api_version = obj.get("apiVersion") or ""
    meta = obj.get("metadata") or {}
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return group, obj.get("kind") or "", meta.get("namespace") or "", meta.get("name") or ""


class IncrementalQuery:
    """One read query over one source, kept as bindings and updated from changes.

    Args:
        query: a parsed query for which ``eligible`` holds.
        make_engine: returns a fresh Engine over the (cached) source for each match.
        lookup: returns the current objects for a set of identities (CachedSource.current).
    """

    def __init__(self, query: ast.Query, make_engine: Callable[[], Any], lookup: Callable[[set], list[dict]]):
        from tessera.core.query.evaluate import Evaluator

        self.query = query
        self.make_engine = make_engine
        self.lookup = lookup
        self.evaluator = Evaluator()
        self.items = list(query.returns)
        self.aggs = [i for i in self.items if isinstance(i.expr, ast.Aggregate)]
        self.keyed = [i for i in self.items if not isinstance(i.expr, ast.Aggregate)]
        self.order_free = all(i.expr.func in ("count", "min", "max") for i in self.aggs)
        self.columns = [i.column for i in self.items]
        self.bindings: dict[Bkey, dict] = {}
        self.by_oid: dict[Oid, set[Bkey]] = {}
        self.rows: dict[Bkey, dict] = {}  # plain queries: the projected row of each binding
        self.groups: dict[tuple, dict] = {}  # aggregates: key -> {"values", "env", "members"}
        self.group_of: dict[Bkey, tuple] = {}
        self.var_kinds: dict[str, set[tuple[str, str]]] = {}
        self.var_names: list[str] = []
        self.rows_by_key: dict[str, dict] = {}  # what was last reported, by row identity
        # plain queries: each binding's ORDER BY sort keys and row identity, worked out once when
        # it is added, so result() sorts 10,000 rows without evaluating anything
        self.order_keys: dict[Bkey, list] = {}
        self.key_texts: dict[Bkey, str] = {}
        self._entries: dict[Bkey, _Row] = {}  # plain queries: each binding's row, as result() lists it
        self._sorted: list[_Row] | None = None  # the last ORDER BY order (ascending keys)
        self._dirty: set[Bkey] = set()  # bindings added or removed since

    # --- building ---------------------------------------------------------------------------

    def _match(self, restrict: dict[str, list[dict]] | None = None) -> list[dict]:
        from tessera.core.query.engine import cross_product

        engine = self.make_engine()
        components, _, _ = engine.match(self.query, restrict)
        if not self.var_kinds:
            self.var_kinds = {name: {(k.group, k.kind) for k in plan.kinds} for name, plan in engine.nodes.items()}
        return cross_product([c.rows for c in components])

    def full(self) -> Result:
        """Match from scratch and return the whole result (``current`` is reset to it)."""
        self.bindings.clear()
        self.by_oid.clear()
        self.rows.clear()
        self.order_keys.clear()
        self.key_texts.clear()
        self._entries.clear()
        self._sorted, self._dirty = None, set()
        self.groups.clear()
        self.group_of.clear()
        self.var_kinds = {}
        for binding in self._match():
            self._add(binding)
        if self.aggs:
            self._refold(set(self.groups) | ({()} if not self.keyed else set()))
        result = self.result()
        self.rows_by_key = dict(zip(result.keys, result.rows, strict=False))
        return result

    def apply(self, changed: set[Oid], ts: str) -> list[dict]:
        """Update from the resources (by identity) that were added, modified or deleted.

        Returns:
            the row changes, as core.watch.live_query.diff_rows gives them, worked out for the touched
            rows only.
        """
        touched_groups: set[tuple] = set()
        touched_bkeys: set[Bkey] = set()
        for o in changed:
            for bkey in list(self.by_oid.get(o, ())):
                touched_bkeys.add(bkey)
                touched_groups.add(self._remove(bkey))
        kinds_changed = {(g, k) for g, k, _, _ in changed}
        fresh: dict[Bkey, dict] = {}
        now = None
        for var, kinds in self.var_kinds.items():
            if not kinds & kinds_changed:
                continue
            if now is None:
                now = self.lookup(changed)
            for binding in self._match({var: now}):
                fresh.setdefault(self._bkey(binding), binding)
        for bkey, binding in fresh.items():
            touched_bkeys.add(bkey)
            touched_groups.add(self._add(binding))
        if self.aggs:
            touched_groups.discard(None)
            return self._changes(self._refold(touched_groups), ts)
        return self._changes([(self._binding_key(b), self.rows.get(b)) for b in touched_bkeys], ts)

    def _ordered(self) -> list[_Row]:
        """The rows of a plain query in ORDER BY order (stable: ties in insertion order).

        With ascending keys only, the order is kept from one call to the next: the rows of the
        bindings removed since are dropped (they are marked), those added (``_dirty``) put in
        place with bisect, instead of sorting 10,000 rows after every change.
        """
        import bisect

        order = self.query.order_by or []
        dirty, self._dirty = self._dirty, set()
        if not order:
            return list(self._entries.values())
        if any(item.descending for item in order):
            entries = list(self._entries.values())
            for i, item in reversed(list(enumerate(order))):
                entries.sort(key=lambda e: e.sort[i], reverse=item.descending)
            return entries
        if self._sorted is None or len(dirty) * 8 > len(self.rows):
            self._sorted = sorted(self._entries.values(), key=_sort_of)
        else:
            kept = [e for e in self._sorted if e.current]
            for b in dirty:
                entry = self._entries.get(b)
                if entry is not None:  # added since (a binding added and removed again has none)
                    bisect.insort_right(kept, entry, key=_sort_of)
            self._sorted = kept
        return list(self._sorted)

    def _binding_key(self, bkey: Bkey) -> str:
        # the same text core.query.project.row_key gives for the binding
        return " ".join(f"{var}={o[1]}/{o[2]}/{o[3]}" for var, o in zip(self.var_names, bkey, strict=False))

    def _changes(self, touched: list[tuple[str, dict | None]], ts: str) -> list[dict]:
        """The changes among the touched rows (row None: gone); ``rows_by_key`` follows them."""
        from tessera.core.watch.live_query import diff_rows

        now = dict(touched)
        old = {k: self.rows_by_key.pop(k) for k in now if k in self.rows_by_key}
        new = {k: row for k, row in now.items() if row is not None}
        self.rows_by_key.update(new)
        return diff_rows(old, new, ts)

    # --- bookkeeping ------------------------------------------------------------------------

    def _bkey(self, binding: dict) -> Bkey:
        if not self.var_names:
            self.var_names = sorted(binding)
        return tuple(oid(binding[v]) for v in self.var_names)

    def _add(self, binding: dict) -> tuple | None:
        from tessera.core.query.evaluate import jsonable
        from tessera.core.query.project import aggregate_inputs, group_key

        bkey = self._bkey(binding)
        if bkey in self.bindings:
            return None
        self.bindings[bkey] = binding
        for o in bkey:
            self.by_oid.setdefault(o, set()).add(bkey)
        if not self.aggs:
            row = {i.column: jsonable(self.evaluator.value(i.expr, binding)) for i in self.items}
            self.rows[bkey] = row
            self.key_texts[bkey] = self._binding_key(bkey)
            self._dirty.add(bkey)
            if self.query.order_by:
                from tessera.core.query.project import sort_key

                self.order_keys[bkey] = [sort_key(jsonable(self.evaluator.value(item.expr, binding, columns=row)))
                                         for item in self.query.order_by]
            self._entries[bkey] = _Row(self.order_keys.get(bkey, []), row, self.key_texts[bkey])
            return None
        values = {i.column: self.evaluator.value(i.expr, binding) for i in self.keyed}
        gkey = tuple(group_key(i.expr, values[i.column]) for i in self.keyed)
        group = self.groups.get(gkey) or self._new_group(gkey, values, binding)
        group["members"][bkey] = {a.column: list(aggregate_inputs(self.evaluator, a.expr, binding)) for a in self.aggs}
        self.group_of[bkey] = gkey
        return gkey

    def _remove(self, bkey: Bkey) -> tuple | None:
        self.bindings.pop(bkey, None)
        for o in bkey:
            keys = self.by_oid.get(o)
            if keys is not None:
                keys.discard(bkey)
                if not keys:
                    del self.by_oid[o]
        if self.rows.pop(bkey, None) is not None:
            self._dirty.add(bkey)
        entry = self._entries.pop(bkey, None)
        if entry is not None:
            entry.current = False
        self.order_keys.pop(bkey, None)
        self.key_texts.pop(bkey, None)
        gkey = self.group_of.pop(bkey, None)
        if gkey is not None:
            self.groups[gkey]["members"].pop(bkey, None)
        return gkey

    def _refold(self, gkeys: set[tuple]) -> list[tuple[str, dict | None]]:
        """Fold the touched groups again; returns (row identity, row or None when gone) for each."""
        from tessera.core.query.evaluate import jsonable
        from tessera.core.query.project import aggregate

        out = []
        for gkey in gkeys:
            group = self.groups.get(gkey)
            if group is None and gkey == () and not self.keyed:
                group = self._new_group((), {}, {})
            if group is None:
                continue
            if not group["members"] and self.keyed:
                del self.groups[gkey]  # no binding left in this group: its row goes
                out.append((group["key"], None))
                continue
            row = dict(group["values"])
            # members in identity order, so COLLECT lists (and float sums) do not depend on the
            # order changes came in; COUNT, MIN and MAX do not care, and skip the sort
            members = (list(group["members"].values()) if self.order_free
                       else [group["members"][k] for k in sorted(group["members"])])
            for a in self.aggs:
                inputs = [v for member in members for v in member[a.column]]
                row[a.column] = jsonable(aggregate(a.expr.func, inputs, distinct=a.expr.distinct))
            group["row"] = {c: row[c] for c in self.columns}
            out.append((group["key"], group["row"]))
        return out

    def _new_group(self, gkey: tuple, values: dict, env: dict) -> dict:
        from tessera.core.query.evaluate import jsonable
        from tessera.core.query.project import row_key

        shown = {c: jsonable(v) for c, v in values.items()}
        group = {"values": shown, "env": env, "members": {}, "row": None,
                 "key": row_key(shown, env, [i.column for i in self.keyed], False)}
        self.groups[gkey] = group
        return group

    # --- output -----------------------------------------------------------------------------

    def result(self) -> Result:
        """The current rows (ordered by ORDER BY when given) with their identities."""
        from tessera.core.query.project import order_rows, row_key

        if not self.aggs:
            entries = self._ordered()
            return Result(columns=list(self.columns), rows=[e.row for e in entries], keys=[e.text for e in entries])
        pairs = [(g["row"], g["env"]) for g in self.groups.values() if g["row"] is not None]
        group_columns = [i.column for i in self.keyed]
        if self.query.order_by:
            from tessera.core.query.evaluate import jsonable

            keys = []
            for item in self.query.order_by:
                def value_of(pair, expr=item.expr):
                    row, env = pair
                    return jsonable(self.evaluator.value(expr, env, columns=row))

                keys.append((value_of, item.descending))
            pairs = order_rows(pairs, keys)
        return Result(
            columns=list(self.columns),
            rows=[r for r, _ in pairs],
            keys=[row_key(r, env, group_columns, False) for r, env in pairs],
        )
