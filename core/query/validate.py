"""Semantic checks after parsing: every variable used is bound, aliases are unique, aggregates
are not nested, ``=~`` patterns written as literals compile. These are QueryErrors (exit 1) that
point at the line and column at fault.
"""

from __future__ import annotations

from typing import Iterator

from tessera.core.errors import QueryError
from tessera.core.query import ast


def _where(text: str, pos: int) -> str:
    if pos < 0:
        return ""
    before = text[:pos]
    line = before.count("\n") + 1
    column = pos - (before.rfind("\n") + 1) + 1
    return f" at line {line}, column {column}"


def _used_vars(expr: ast.Expr | None) -> Iterator[tuple[str, int]]:
    for node in ast.walk(expr):
        if isinstance(node, ast.Variable):
            yield node.name, node.pos
        elif isinstance(node, ast.Property):
            yield node.var, node.pos


def validate(query: ast.Query, text: str) -> None:
    """Check a parsed query makes sense before anything is fetched.

    Args:
        query: the parsed Query.
        text: its source (for positions in messages).
    Raises:
        QueryError naming the problem, where it is, and how to fix it.
    """
    nodes = {n.var for p in query.match + query.create for n in p.nodes if n.var}
    rels = {r.var for p in query.match + query.create for r in p.rels if r.var}
    bound = nodes | rels
    hint = f"variables here: {', '.join(sorted(bound))}" if bound else "name a node in MATCH, e.g. (p:Pod)"

    def check(expr: ast.Expr | None, clause: str, extra: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        for name, pos in _used_vars(expr):
            if name not in bound and name not in extra:
                raise QueryError(f"unknown variable '{name}' in {clause}{_where(text, pos)}", hint=hint)

    check(query.where, "WHERE")
    _check_patterns(query.where, text)
    aliases: set[str] = set()
    for item in query.returns:
        check(item.expr, "RETURN")
        for node in ast.walk(item.expr):
            if isinstance(node, ast.Aggregate):
                if any(isinstance(inner, ast.Aggregate) for inner in ast.walk(node.arg)):
                    raise QueryError(f"aggregates cannot be nested{_where(text, node.pos)}")
        if item.column in aliases:
            raise QueryError(
                f"column '{item.column}' is returned twice{_where(text, item.pos)}", hint="give one of them an AS alias"
            )
        aliases.add(item.column)
    for key in query.order_by:
        check(key.expr, "ORDER BY", {i.alias for i in query.returns if i.alias} | {i.text for i in query.returns})
    for item in query.set:
        check(item.target, "SET")
        check(item.value, "SET")
    for name in query.delete:
        if name not in nodes:
            raise QueryError(f"unknown variable '{name}' in DELETE", hint=hint)
    for pattern in query.match:
        for node in pattern.nodes:
            if node.var and node.var in rels:
                raise QueryError(f"'{node.var}' names both a node and a relationship{_where(text, node.pos)}")


def _check_patterns(where: ast.Expr | None, text: str) -> None:
    """A literal ``=~`` pattern that RE2 refuses is an error before anything is fetched."""
    from tessera.core.query.regex import check_pattern

    for node in ast.walk(where):
        if isinstance(node, ast.Comparison) and node.op == "=~" and isinstance(node.right, ast.Literal):
            if isinstance(node.right.value, str):
                try:
                    check_pattern(node.right.value)
                except QueryError as err:
                    raise QueryError(f"{err.message}{_where(text, node.right.pos)}", hint=err.hint) from None
