"""RETURN projection with Cypher semantics: one row per match, implicit grouping for aggregates,
DISTINCT, then a stable, deterministic ORDER BY, SKIP and LIMIT."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from tessera.core.errors import QueryError
from tessera.core.query import ast
from tessera.core.query.evaluate import Evaluator, jsonable
from tessera.core.result import Result

Binding = dict[str, dict]


def sort_key(value: Any) -> tuple:
    """A total order over JSON values: booleans < numbers < strings < other, nulls last."""
    if value is None:
        return (9, 0)
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True, default=str))


def order_rows(rows: list, keys: list[tuple[Callable[[Any], Any], bool]]) -> list:
    """Stable multi-key sort: ``keys`` is [(value_of(row), descending)], most significant first.

    Nulls sort last ascending and first descending, as in Cypher; ties keep input order.
    """
    out = list(rows)
    for value_of, descending in reversed(keys):
        out.sort(key=lambda r: sort_key(value_of(r)), reverse=descending)
    return out


def aggregate(func: str, values: list[Any], *, distinct: bool = False) -> Any:
    """Fold the non-null values of one group.

    Args:
        func: count, sum, avg, min, max or collect.
        values: the values (already flattened for wildcard paths where that applies).
        distinct: drop duplicate values first.
    Returns:
        the aggregate; SUM adds numbers, or CPU/memory quantities (keeping their unit style).
    """
    vals = [v for v in values if v is not None]
    if distinct:
        seen, uniq = set(), []
        for v in vals:
            k = json.dumps(v, sort_keys=True, default=str) if isinstance(v, (dict, list)) else (type(v), v)
            if k not in seen:
                seen.add(k)
                uniq.append(v)
        vals = uniq
    if func == "count":
        return len(vals)
    if func == "collect":
        return vals
    if func == "sum":
        if not vals:
            return 0
        from tessera.core.quantity import sum_values

        return sum_values(vals)
    if func == "avg":
        if not vals:
            return None
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            raise QueryError("AVG needs numbers", hint="use SUM for CPU and memory quantities")
        return sum(vals) / len(vals)
    if func in ("min", "max"):
        if not vals:
            return None
        ranked = sorted(vals, key=sort_key)
        return ranked[0] if func == "min" else ranked[-1]
    raise QueryError(f"unknown aggregate {func.upper()}")


def group_key(expr: ast.Expr, value: Any) -> Any:
    """The grouping identity of one non-aggregate value: a whole resource by identity, nested
    values by their JSON text, scalars by type and value (so 1 and "1" are two groups)."""
    if isinstance(expr, ast.Variable) and isinstance(value, dict):
        return ("id", id(value))
    if isinstance(value, (dict, list)):
        return ("json", json.dumps(value, sort_keys=True, default=str))
    return ("v", type(value).__name__, value)


def aggregate_inputs(evaluator: Evaluator, agg: ast.Aggregate, binding: Binding) -> Iterable[Any]:
    """What one binding adds to an aggregate: a whole resource (by identity for COUNT), or the
    argument's value, spread when it is a path through ``[*]`` (except for COLLECT)."""
    if isinstance(agg.arg, ast.Variable):
        obj = binding.get(agg.arg.name)
        if agg.arg.name not in binding:
            raise QueryError(f"unknown variable '{agg.arg.name}' in {agg.func.upper()}")
        # Whole resources are counted by identity, so DISTINCT counts resources, not contents.
        return [("obj", id(obj))] if agg.func == "count" and obj is not None else [obj]
    value = evaluator.value(agg.arg, binding)
    wildcard = isinstance(agg.arg, ast.Property) and any(isinstance(s, ast.Wildcard) for s in agg.arg.path)
    if wildcard and isinstance(value, list) and agg.func != "collect":
        return value
    return [value]


def project_rows(query: ast.Query, bindings: list[Binding], evaluator: Evaluator) -> Result:
    """Project bindings through RETURN / DISTINCT / ORDER BY / SKIP / LIMIT.

    Args:
        query: the parsed query (its RETURN items, ordering and paging).
        bindings: one dict variable -> resource per match.
        evaluator: evaluates expressions (with sub-pattern sets filled in).
    Returns:
        a Result with columns and rows (graph fields are filled by the engine).
    """
    items = list(query.returns)
    columns = [i.column for i in items]
    dupes = {c for c in columns if columns.count(c) > 1}
    if dupes:
        raise QueryError(f"duplicate column name {sorted(dupes)[0]!r} in RETURN", hint="add AS aliases")
    aggs = [i for i in items if isinstance(i.expr, ast.Aggregate)]
    rows: list[dict[str, Any]] = []
    envs: list[Binding] = []
    if not aggs:
        for b in bindings:
            rows.append({i.column: jsonable(evaluator.value(i.expr, b)) for i in items})
            envs.append(b)
    else:
        keyed = [i for i in items if not isinstance(i.expr, ast.Aggregate)]
        groups: dict[tuple, tuple[dict, Binding, dict[str, list]]] = {}
        for b in bindings:
            values = {i.column: evaluator.value(i.expr, b) for i in keyed}
            key = tuple(group_key(i.expr, values[i.column]) for i in keyed)
            group = groups.get(key)
            if group is None:
                group = ({c: jsonable(v) for c, v in values.items()}, b, {a.column: [] for a in aggs})
                groups[key] = group
            for a in aggs:
                group[2][a.column].extend(aggregate_inputs(evaluator, a.expr, b))
        if not groups and not keyed:
            groups[()] = ({}, {}, {a.column: [] for a in aggs})
        for partial, b, inputs in groups.values():
            row = dict(partial)
            for a in aggs:
                row[a.column] = jsonable(aggregate(a.expr.func, inputs[a.column], distinct=a.expr.distinct))
            rows.append({c: row[c] for c in columns})
            envs.append(b)
    pairs = list(zip(rows, envs, strict=True))
    if query.distinct:
        seen, uniq = set(), []
        for row, env in pairs:
            k = json.dumps(row, sort_keys=True, default=str)
            if k not in seen:
                seen.add(k)
                uniq.append((row, env))
        pairs = uniq
    if query.order_by:
        keys = []
        for item in query.order_by:
            def value_of(pair, expr=item.expr):
                row, env = pair
                return jsonable(evaluator.value(expr, env, columns=row))

            keys.append((value_of, item.descending))
        pairs = order_rows(pairs, keys)
    start = query.skip or 0
    end = start + query.limit if query.limit is not None else None
    pairs = pairs[start:end]
    keyed_columns = [i.column for i in items if not isinstance(i.expr, ast.Aggregate)] if aggs else None
    return Result(
        columns=columns,
        rows=[r for r, _ in pairs],
        keys=[row_key(r, env, keyed_columns, query.distinct) for r, env in pairs],
    )


def row_key(row: dict, env: Binding, group_columns: list[str] | None, distinct: bool) -> str:
    """A row's identity across re-runs of a query, so live views report changes, not churn.

    Args:
        row: the projected row.
        env: the binding it came from.
        group_columns: the grouping columns of an aggregate query (None when not aggregated).
        distinct: RETURN DISTINCT (rows are identified by their content).
    Returns:
        the resources bound (``var=Kind/ns/name``) for plain rows; the grouping values for
        aggregates; the whole row for DISTINCT.
    """
    if group_columns is not None:
        return json.dumps([row[c] for c in group_columns], sort_keys=True, default=str)
    if distinct:
        return json.dumps(row, sort_keys=True, default=str)
    parts = []
    for var in sorted(env):
        meta = env[var].get("metadata") or {}
        parts.append(f"{var}={env[var].get('kind', '')}/{meta.get('namespace') or ''}/{meta.get('name', '')}")
    return " ".join(parts)
