"""Expression evaluation over one binding (variable -> resource) for WHERE, RETURN and ORDER BY.

Semantics chosen for Kubernetes objects (see docs/language.md):

- A path through ``[*]`` yields a list; ``=``, ``=~``, ``CONTAINS``, ``<`` … over such a list hold
  when they hold for any element (Cyphernetes does the same).
- ``= NULL`` means "is missing or null" and ``!= NULL`` "is present" (Cyphernetes compatibility);
  ``IS NULL`` / ``IS NOT NULL`` are the Cypher spellings.
- A missing field compared with ``!=`` is true: a pod with no phase is "not Running".
- Ordering comparisons only hold between numbers, between strings, or between timestamps;
  a string compared with a ``datetime()`` value is parsed as an RFC 3339 timestamp.
- ``=~`` searches (Go's MatchString, as Cyphernetes), so anchor with ``^…$`` for a full match; the
  pattern is RE2 syntax and runs in linear time (core/query/regex.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from tessera.core.errors import QueryError
from tessera.core.query import ast
from tessera.core.query.functions import call_function
from tessera.core.query.regex import search

Env = dict[str, dict]  # variable -> resource object
SEARCH = "search"  # search("TEXT") / search(var, "TEXT"): the engine checks its arguments and scope

_MISSING = object()


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _order_pair(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Return two comparable values, or None when a and b cannot be ordered."""
    if _is_number(a) and _is_number(b):
        return a, b
    if isinstance(a, datetime) or isinstance(b, datetime):
        da, db = _as_datetime(a), _as_datetime(b)
        return (da, db) if da is not None and db is not None else None
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    return None


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, datetime) or isinstance(b, datetime):
        da, db = _as_datetime(a), _as_datetime(b)
        return da is not None and da == db
    return type(a) is type(b) and a == b


def _compare_scalar(op: str, a: Any, b: Any) -> bool:
    if op == "=":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op in ("<", ">", "<=", ">="):
        pair = _order_pair(a, b)
        if pair is None:
            return False
        x, y = pair
        return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]
    if op == "=~":
        return isinstance(a, str) and isinstance(b, str) and search(b, a)
    if op == "CONTAINS":
        if isinstance(a, str) and isinstance(b, str):
            return b in a
        if isinstance(a, dict) and isinstance(b, str):
            return b in a
        return False
    if op == "STARTS_WITH":
        return isinstance(a, str) and isinstance(b, str) and a.startswith(b)
    if op == "ENDS_WITH":
        return isinstance(a, str) and isinstance(b, str) and a.endswith(b)
    if op == "IN":
        if not isinstance(b, list):
            return False
        return any(_equal(a, item) for item in b)
    raise QueryError(f"unsupported operator {op}")


class Evaluator:
    """Evaluates expressions against an environment of bound resources.

    Args:
        pattern_sets: for each PatternPredicate (by id), the ids of resources (``id(obj)``) of
            the referenced variable for which the sub-pattern has a match; filled by the engine.
        columns: during ORDER BY after projection, alias -> value of the current row.
        text_scores: ``search()``'s scores: text -> {metadata.uid: score} (the source's
            ScoringSource.text_scores), asked once per distinct text for this evaluator's run;
            None when the source scores nothing.
        search_var: the variable ``search("TEXT")`` (one argument) scores (engine.py decides).
    """

    def __init__(self, pattern_sets: dict[int, tuple[str, set[int]]] | None = None, *,
                 text_scores: Callable[[str], dict[str, float]] | None = None, search_var: str | None = None):
        self.pattern_sets = pattern_sets or {}
        self._compiled: dict[int, Callable[[dict], list]] = {}
        self.text_scores = text_scores
        self.search_var = search_var
        self._scores: dict[str, dict[str, float]] = {}

    # -- values --------------------------------------------------------------------------------

    def path_values(self, prop: ast.Property, obj: dict) -> list:
        """Every value reached by ``prop``'s path in ``obj`` (fan-out over ``[*]``)."""
        fn = self._compiled.get(id(prop))
        if fn is None:
            from tessera.core.paths import compile_path

            fn = compile_path(prop.path)
            self._compiled[id(prop)] = fn
        return fn(obj)

    def property_value(self, prop: ast.Property, env: Env) -> Any:
        """The value of ``var.path``: a scalar, a list for wildcard paths, None when missing."""
        obj = env.get(prop.var)
        if obj is None:
            return None
        values = self.path_values(prop, obj)
        if any(isinstance(s, ast.Wildcard) for s in prop.path):
            return values
        return values[0] if values else None

    def value(self, expr: ast.Expr, env: Env, columns: dict[str, Any] | None = None) -> Any:
        """Evaluate a value expression (not a predicate) in ``env``.

        Args:
            expr: the expression.
            env: variable -> bound resource.
            columns: projected row values by column name, consulted for bare names (aliases).
        Returns:
            a JSON-like value, or a datetime/timedelta for temporal functions.
        """
        if isinstance(expr, ast.Literal):
            return expr.value
        if isinstance(expr, ast.Property):
            if columns is not None and expr.text in columns:
                return columns[expr.text]
            return self.property_value(expr, env)
        if isinstance(expr, ast.Variable):
            if columns is not None and expr.name in columns:
                return columns[expr.name]
            if expr.name in env:
                return env[expr.name]
            raise QueryError(f"unknown variable or alias '{expr.name}'")
        if isinstance(expr, ast.ListLiteral):
            return [self.value(i, env, columns) for i in expr.items]
        if isinstance(expr, ast.MapLiteral):
            return {k: self.value(v, env, columns) for k, v in expr.items}
        if isinstance(expr, ast.FunctionCall) and expr.name == SEARCH:
            return self._search(expr, env, columns)
        if isinstance(expr, ast.FunctionCall):
            return call_function(expr.name, [self.value(a, env, columns) for a in expr.args])
        if isinstance(expr, ast.Binary):
            return _arith(expr.op, self.value(expr.left, env, columns), self.value(expr.right, env, columns))
        if isinstance(expr, ast.Aggregate):
            raise QueryError("aggregates are only allowed in RETURN")
        # predicates used as values
        return self.test(expr, env, columns)

    def _search(self, expr: ast.FunctionCall, env: Env, columns: dict[str, Any] | None) -> float:
        """``search("TEXT")`` / ``search(var, "TEXT")``: the bound Chunk's or Document's score for
        TEXT (0 when it does not match)."""
        if self.text_scores is None:
            raise QueryError("search() needs the knowledge source", hint="add -s knowledge to the sources")
        if len(expr.args) == 2:
            obj = self.value(expr.args[0], env, columns)
        else:
            obj = env.get(self.search_var) if self.search_var is not None else None
        text = self.value(expr.args[-1], env, columns)
        if not isinstance(text, str) or not text.strip():
            raise QueryError("search() takes the text to search for as a string", hint='search("crash loop")')
        if not isinstance(obj, dict):
            return 0.0
        scores = self._scores.get(text)
        if scores is None:
            scores = self._scores[text] = self.text_scores(text)
        uid = (obj.get("metadata") or {}).get("uid")
        return float(scores.get(uid, 0.0)) if isinstance(uid, str) else 0.0

    # -- predicates ------------------------------------------------------------------------------

    def test(self, expr: ast.Expr, env: Env, columns: dict[str, Any] | None = None) -> bool:
        """Evaluate a WHERE predicate to True/False."""
        if isinstance(expr, ast.And):
            return all(self.test(i, env, columns) for i in expr.items)
        if isinstance(expr, ast.Or):
            return any(self.test(i, env, columns) for i in expr.items)
        if isinstance(expr, ast.Not):
            return not self.test(expr.expr, env, columns)
        if isinstance(expr, ast.IsNull):
            v = self.value(expr.expr, env, columns)
            missing = v is None or v == []
            return not missing if expr.negated else missing
        if isinstance(expr, ast.PatternPredicate):
            var, matched = self.pattern_sets[id(expr)]
            obj = env.get(var)
            return obj is not None and id(obj) in matched
        if isinstance(expr, ast.Comparison):
            return self._comparison(expr, env, columns)
        v = self.value(expr, env, columns)
        return bool(v)

    def _comparison(self, expr: ast.Comparison, env: Env, columns: dict[str, Any] | None) -> bool:
        left = self.value(expr.left, env, columns)
        right = self.value(expr.right, env, columns)
        op = expr.op
        if isinstance(expr.right, ast.Literal) and expr.right.value is None and op in ("=", "!="):
            missing = left is None or left == []
            return missing if op == "=" else not missing
        fans_out = isinstance(expr.left, ast.Property) and any(
            isinstance(s, ast.Wildcard) for s in expr.left.path
        )
        if fans_out and isinstance(left, list):
            if op == "!=":
                return all(_compare_scalar("!=", item, right) for item in left)
            return any(_compare_scalar(op, item, right) for item in left)
        if left is None:
            return op == "!=" and right is not None
        if op == "CONTAINS" and isinstance(left, list):
            return any(_equal(item, right) for item in left)
        return _compare_scalar(op, left, right)


def _arith(op: str, a: Any, b: Any) -> Any:
    try:
        return _arith_values(op, a, b)
    except OverflowError:
        shown = [str(v) if isinstance(v, timedelta) else repr(jsonable(v)) for v in (a, b)]
        raise QueryError(f"{shown[0]} {op} {shown[1]} is out of range", hint="timestamps run from year 1 to 9999") from None


def _arith_values(op: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, datetime) or isinstance(b, datetime):
        da = a if isinstance(a, (datetime, timedelta)) else _as_datetime(a)
        db = b if isinstance(b, (datetime, timedelta)) else _as_datetime(b)
        if da is None or db is None:
            raise QueryError(f"cannot compute {a!r} {op} {b!r}: not a timestamp")
        return da - db if op == "-" else da + db
    if isinstance(a, timedelta) and isinstance(b, timedelta):
        return a - b if op == "-" else a + b
    if _is_number(a) and _is_number(b):
        return a - b if op == "-" else a + b
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    raise QueryError(f"cannot compute {a!r} {op} {b!r}")


def jsonable(value: Any) -> Any:
    """Convert evaluation results (datetimes, durations) into JSON-able output values."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value
