"""The Cyphernetes result shape (``-o cyphernetes``): ``{var: [...], "aggregate": {...}}``.

How it differs from rows (reproducing the reference engine, minus its bugs):

- each returned variable lists the distinct resources that take part in at least one match,
  each entry carrying ``name`` plus the returned paths (nested: ``d.metadata.name`` becomes
  ``{"metadata": {"name": …}}``; an ``AS`` alias is flat; a whole node goes under ``"$"``);
- separate MATCH components are not crossed: their match lists are concatenated, and ORDER BY /
  SKIP / LIMIT apply to that concatenation (nulls last ascending), deterministically;
- aggregates fold over the distinct resources of their variable across all matches; SUM over a
  path through ``[*]`` followed by a field returns the list of values (upstream behaviour), SUM
  over a path ending in ``[*]`` is refused;
- when nothing matches, as upstream: every aggregate is null (never ``0`` or ``[]``), and each
  returned variable is listed with no entries (``"d": []``), except that a variable with no
  entries is left out (so an empty answer is ``{}``) in a query with a kindless node, a pattern of
  two or more relationships, or ORDER BY / SKIP / LIMIT (upstream rebuilds the map from the
  matched rows there).
"""

from __future__ import annotations

from typing import Any

from tessera.core.errors import QueryError
from tessera.core.query import ast
from tessera.core.query.evaluate import Evaluator, jsonable
from tessera.core.query.project import aggregate, order_rows


def _var_of(expr: ast.Expr) -> str | None:
    if isinstance(expr, ast.Property):
        return expr.var
    if isinstance(expr, ast.Variable):
        return expr.name
    if isinstance(expr, ast.Aggregate):
        return _var_of(expr.arg)
    return None


def _nest(entry: dict, prop: ast.Property, value: Any) -> None:
    keys: list[str] = []
    for seg in prop.path:
        if isinstance(seg, ast.Key):
            keys.append(seg.name)
        elif isinstance(seg, ast.Index):
            keys[-1 if keys else 0:] = [f"{keys[-1] if keys else ''}[{seg.index}]"]
        else:
            keys[-1 if keys else 0:] = [f"{keys[-1] if keys else ''}[*]"]
    cur = entry
    for k in keys[:-1]:
        nxt = cur.get(k)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[k] = nxt
        cur = nxt
    if keys:
        cur[keys[-1]] = value


def _entry(obj: dict, items: list[ast.ReturnItem], evaluator: Evaluator, var: str) -> dict:
    entry: dict[str, Any] = {}
    for item in items:
        expr = item.expr
        if isinstance(expr, ast.Variable):
            entry["$"] = obj
        elif isinstance(expr, ast.Property):
            value = jsonable(evaluator.property_value(expr, {var: obj}))
            if item.alias is not None:
                entry[item.alias] = value
            else:
                _nest(entry, expr, value)
    entry["name"] = (obj.get("metadata") or {}).get("name")
    return entry


def _sum(agg: ast.Aggregate, objs: list[dict], evaluator: Evaluator) -> Any:
    if isinstance(agg.arg, ast.Variable):
        raise QueryError("unsupported type for SUM: a whole resource", hint="SUM a field, e.g. SUM{p.spec.replicas}")
    prop = agg.arg
    if not isinstance(prop, ast.Property):
        raise QueryError("SUM takes a field path")
    wild = [i for i, s in enumerate(prop.path) if isinstance(s, ast.Wildcard)]
    if wild:
        if wild[-1] == len(prop.path) - 1:
            raise QueryError("unsupported type for SUM: slice", hint="SUM a field below the list, e.g. [*].x")
        out: list[Any] = []
        for obj in objs:
            out.extend(evaluator.path_values(prop, obj))
        return out or None  # upstream turns an empty list into null
    values = [v for v in (evaluator.property_value(prop, {prop.var: o}) for o in objs) if v is not None]
    return aggregate("sum", values) if values else None  # upstream: no value was ever added


def shape_result(query: ast.Query, components: list, evaluator: Evaluator) -> dict[str, Any]:
    """Build the Cyphernetes data map from the engine's match components.

    Args:
        query: the parsed query.
        components: objects with ``vars`` (set of names) and ``rows`` (list of bindings).
        evaluator: for paths and sub-patterns.
    Returns:
        ``{var: [entries...], "aggregate": {...}}`` (aggregate only when there are aggregates).
    """
    items = list(query.returns)
    by_var: dict[str, list[ast.ReturnItem]] = {}
    for item in items:
        var = _var_of(item.expr)
        if var is not None:
            by_var.setdefault(var, [])
            if not isinstance(item.expr, ast.Aggregate):
                by_var[var].append(item)

    # the rows the limit applies to: each component's matches, concatenated
    listed: list[tuple[dict, dict]] = []  # (binding, projected alias values)
    for comp in components:
        for binding in comp.rows:
            cols: dict[str, Any] = {}
            for item in items:
                var = _var_of(item.expr)
                if var in binding and not isinstance(item.expr, ast.Aggregate):
                    cols[item.column] = jsonable(evaluator.value(item.expr, binding))
            listed.append((binding, cols))
    if query.order_by:
        keys = []
        for order in query.order_by:
            def value_of(pair, expr=order.expr):
                binding, cols = pair
                if isinstance(expr, ast.Variable) and expr.name in cols:
                    return cols[expr.name]
                if isinstance(expr, ast.Property) and expr.text in cols:
                    return cols[expr.text]
                if _var_of(expr) in binding:
                    return jsonable(evaluator.value(expr, binding))
                return None

            keys.append((value_of, order.descending))
        listed = order_rows(listed, keys)
    start = query.skip or 0
    if query.skip is not None or query.limit is not None:
        end = start + query.limit if query.limit is not None else None
        listed = listed[start:end]

    # Upstream answers a kindless query by merging expanded queries and applies ORDER BY / SKIP /
    # LIMIT to a table of the matched rows: both rebuild the map from rows, dropping variables
    # without any; a pattern of several relationships ends the same way.
    kindless = any(n.kind is None for p in query.match for n in p.nodes)
    chained = any(len(p.rels) > 1 for p in query.match)
    paged = bool(query.order_by) or query.skip is not None or query.limit is not None
    rebuilt_from_rows = kindless or chained or paged
    data: dict[str, Any] = {}
    for var, var_items in by_var.items():
        seen: set[int] = set()
        entries = []
        for binding, _ in listed:
            obj = binding.get(var)
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            entries.append(_entry(obj, var_items, evaluator, var))
        if any(var in c.vars for c in components) and (entries or not rebuilt_from_rows):
            data[var] = entries

    aggs = [i for i in items if isinstance(i.expr, ast.Aggregate)]
    if aggs:
        out: dict[str, Any] = {}
        for item in aggs:
            agg = item.expr
            var = _var_of(agg)
            objs, seen = [], set()
            for comp in components:
                for binding in comp.rows:
                    obj = binding.get(var)
                    if obj is not None and id(obj) not in seen:
                        seen.add(id(obj))
                        objs.append(obj)
            if not objs:
                value = None  # upstream leaves an aggregate over nothing unset: null, even COUNT
            elif agg.func == "sum":
                value = _sum(agg, objs, evaluator)
            elif agg.func == "count":
                value = len(objs)
            else:
                values = [
                    evaluator.value(agg.arg, {var: o}) if not isinstance(agg.arg, ast.Variable) else o
                    for o in objs
                ]
                value = aggregate(agg.func, values, distinct=agg.distinct)
            out[item.column] = jsonable(value)
        data["aggregate"] = out
    return data
