"""The alert condition language (`job add --alert COND`, docs/jobs.md "Alerts"): the query
language's WHERE expressions (core/query/parser.py, evaluated by core/query/evaluate.py), read
against one finished run.

- ``rows``, ``exit_code`` and ``duration`` (seconds) are the run's figures;
- ``count(*)``, ``count(col)``, ``sum``, ``avg``, ``min``, ``max`` and ``collect`` fold a column over
  every row of the result;
- any other name is a column of the result (``restarts``, ``status``, or a query's own column
  name such as ``p.metadata.name``); ``row.NAME`` reaches a column whose name is a figure's. A
  condition that names a column holds when at least one row makes it true (so never on a result
  with no rows); one that names none is read once, on the figures and aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tessera.core.errors import ParseError, QueryError, UsageError, printable
from tessera.core.query import ast
from tessera.core.query.evaluate import Evaluator, jsonable

FIGURES = ("rows", "exit_code", "duration")
ROW = "row"  # row.NAME: the column NAME of the row being read
FUNCTIONS = ("datetime", "duration")
_PREDICATES = (ast.Comparison, ast.IsNull, ast.Not, ast.And, ast.Or)
MAX_CONDITION_CHARS = 2000  # a condition is a line a person writes; checked before it is parsed
_EXAMPLES = "'rows > 0', 'max(restarts) > 5', 'status = \"Failed\"' or 'exit_code != 0'"


@dataclass(frozen=True)
class Condition:
    """A parsed condition: its text, its expression, and whether it reads the run's result (rows
    or columns) rather than the exit code and duration alone."""

    text: str
    expr: ast.Expr
    names_columns: bool
    reads_result: bool
    aggregates: tuple[ast.Aggregate, ...] = field(default=())


@dataclass(frozen=True)
class Reading:
    """A condition read against one run: whether it holds, the rows that made it hold (a column
    condition), and ``value``: the left side of its first comparison (the figure, the aggregate,
    or the column in the first row that matched)."""

    holds: bool
    matched: list[dict[str, Any]]
    value: Any


def _refuse(text: str, pos: int, what: str) -> UsageError:
    where = f"at character {pos + 1}" if pos >= 0 else "in it"
    return UsageError(f"alert condition '{printable(text)}' {where}: {what}",
                      hint=f"write a condition such as {_EXAMPLES} (docs/jobs.md, Alerts)")


def parse(text: str) -> Condition:
    """The condition ``text`` says.

    Raises:
        UsageError (one line: the condition, the character position, what was wrong there, and
        examples) for text that does not parse or is not a condition.
    """
    from tessera.core.query.lexer import END_OF_QUERY
    from tessera.core.query.parser import parse_expression

    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    if len(stripped) > MAX_CONDITION_CHARS:
        raise UsageError(f"the alert condition is {len(stripped):,} characters long, over the {MAX_CONDITION_CHARS:,} "
                         "an alert condition may have", hint=f"write a shorter condition, such as {_EXAMPLES}")
    try:
        expr = parse_expression(stripped)
    except ParseError as err:
        found = "the end of the condition" if err.found == END_OF_QUERY else err.found
        what = f"{err.message}: " if err.message else ""
        what += f"expected {err.expected}, got {found}" if err.expected else f"at {found}"
        raise _refuse(text, lead + err.offset, what) from None
    names_columns, reads_result = False, False
    aggregates: list[ast.Aggregate] = []
    inside_aggregate: set[int] = set()
    for node in ast.walk(expr):
        pos = lead + getattr(node, "pos", -1)
        if isinstance(node, ast.Aggregate):
            if id(node) in inside_aggregate:
                raise _refuse(text, pos, f"{node.func}() inside another aggregate")
            inner = list(ast.walk(node.arg))
            inside_aggregate.update(id(n) for n in inner)
            if any(isinstance(n, ast.Variable) and n.name in FIGURES for n in inner):
                raise _refuse(text, pos, f"{node.func}() folds a column of the result, not one of the run's figures "
                                         f"({', '.join(FIGURES)})")
            aggregates.append(node)
            reads_result = True
        elif isinstance(node, ast.PatternPredicate):
            raise _refuse(text, pos, "a graph pattern is not a condition on a run")
        elif isinstance(node, ast.FunctionCall) and node.name not in FUNCTIONS:
            raise _refuse(text, pos, f"unknown function {printable(node.name)}(); the functions are datetime() and "
                                     "duration(), the aggregates count, sum, avg, min, max and collect")
        elif isinstance(node, ast.Variable) and id(node) not in inside_aggregate:
            if node.name == "rows":
                reads_result = True
            elif node.name not in FIGURES:
                names_columns = reads_result = True
        elif isinstance(node, ast.Property) and id(node) not in inside_aggregate:
            names_columns = reads_result = True
    if not isinstance(expr, _PREDICATES) and not (isinstance(expr, ast.Literal) and isinstance(expr.value, bool)):
        raise _refuse(text, lead + expr.pos, "this is a value, not a condition; compare it with something")
    return Condition(stripped, expr, names_columns, reads_result, tuple(aggregates))


class _RunEvaluator(Evaluator):
    """The query evaluator with each aggregate's value over the whole result filled in."""

    def __init__(self, folded: dict[int, Any]):
        super().__init__()
        self.folded = folded

    def value(self, expr: ast.Expr, env: dict, columns: dict[str, Any] | None = None) -> Any:
        if isinstance(expr, ast.Aggregate):
            return self.folded[id(expr)]
        return super().value(expr, env, columns)


class _RowColumns(dict):
    """One row's columns and the run's figures, as the evaluator reads bare names and paths: a
    column the row lacks is null (as a missing field is in a query), never an unknown name;
    ``row`` and ``row.NAME`` are left to the evaluator's binding of the row."""

    def __contains__(self, name: object) -> bool:
        return not (name == ROW or (isinstance(name, str) and name.startswith(ROW + ".")))

    def __missing__(self, name: str) -> None:
        return None


def _columns(row: dict[str, Any], figures: dict[str, Any]) -> _RowColumns:
    return _RowColumns({**row, **figures})


def read(condition: Condition, *, rows: list[dict[str, Any]] | None, exit_code: int | None,
         duration_s: float | None, row_count: int | None = None) -> Reading:
    """Read the condition against one run's figures and result rows (``row_count``: how many
    the run returned, when ``rows`` holds only the first of them; None: len(rows)).

    Raises:
        QueryError for a value the condition cannot use (AVG over text, a bad timestamp...).
    """
    result = [r if isinstance(r, dict) else {"value": r} for r in (rows or [])]
    count = row_count if row_count is not None else (len(result) if rows is not None else None)
    figures = {"rows": count, "exit_code": exit_code, "duration": duration_s}
    try:
        return _read(condition, result, figures)
    except QueryError as err:
        raise QueryError(f"alert condition '{printable(condition.text)}': {err.message}", hint=err.hint) from None


def _read(condition: Condition, result: list[dict[str, Any]], figures: dict[str, Any]) -> Reading:
    from tessera.core.query.project import aggregate

    plain = Evaluator()
    folded: dict[int, Any] = {}
    for agg in condition.aggregates:
        if agg.func == "count" and isinstance(agg.arg, ast.Literal) and agg.arg.value == "*":
            folded[id(agg)] = figures["rows"] or 0
            continue
        values = [plain.value(agg.arg, {ROW: row}, _columns(row, {})) for row in result]
        folded[id(agg)] = aggregate(agg.func, values, distinct=agg.distinct)
    evaluator = _RunEvaluator(folded)
    first = next((n for n in ast.walk(condition.expr) if isinstance(n, ast.Comparison)), None)

    def left_value(env: dict, columns: dict[str, Any]) -> Any:
        return jsonable(evaluator.value(first.left, env, columns)) if first is not None else None

    if not condition.names_columns:
        return Reading(evaluator.test(condition.expr, {}, figures), [], left_value({}, figures))
    matched = [row for row in result if evaluator.test(condition.expr, {ROW: row}, _columns(row, figures))]
    value = left_value({ROW: matched[0]}, _columns(matched[0], figures)) if matched else None
    return Reading(bool(matched), matched, value)
