"""The query AST: what the parser produces and the planner/executor consume.

Every node is a frozen value object (a ``Node``: fields from its annotations, compared and hashed
by value, immutable) with a ``pos`` (character offset into the source text, -1 when
synthesised) so that runtime errors can point back at the query. ``to_dict`` gives the JSON form
printed by ``tessera explain``.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator, Union

_NO_DEFAULT = object()


class FrozenNodeError(AttributeError):
    """An AST node was assigned to: nodes are values, shared between queries and caches."""


class Node:
    """The base of every AST node: what ``@dataclass(frozen=True)`` gave them — an ``__init__``
    taking the annotated fields in order (positional or by name, defaults from the class body),
    equality and hashing by type and field values, a readable repr, no assignment after
    creation — from one generic implementation. Generating those methods per class, as
    dataclasses do, was 12 ms of every command that parses a query (24 classes)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _field_types: dict[str, str] = {}
    _defaults: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = {k: v for k, v in cls.__dict__.get("__annotations__", {}).items()}
        types = {**cls._field_types, **{k: str(v) for k, v in own.items()}}
        cls._field_types = types
        cls._fields = tuple(types)
        cls._defaults = {**cls._defaults, **{k: cls.__dict__[k] for k in own if k in cls.__dict__}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self._fields
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} fields, got {len(args)}")
        values = dict(zip(names, args, strict=False))  # fewer args than fields: the rest by name or default
        for key, value in kwargs.items():
            if key not in self._field_types:
                raise TypeError(f"{type(self).__name__} has no field {key!r}")
            if key in values:
                raise TypeError(f"{type(self).__name__} got {key!r} twice")
            values[key] = value
        set_attr = object.__setattr__
        for name in names:
            value = values.get(name, self._defaults.get(name, _NO_DEFAULT))
            if value is _NO_DEFAULT:
                raise TypeError(f"{type(self).__name__} needs {name!r}")
            set_attr(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({inner})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenNodeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenNodeError(f"cannot delete field {name!r}")

# --- property paths -------------------------------------------------------------------------


class Key(Node):
    """One dotted path segment (``metadata``, or ``kubernetes.io/name`` after unescaping ``\\.``)."""

    name: str


class Index(Node):
    """A ``[n]`` list index segment."""

    index: int


class Wildcard(Node):
    """A ``[*]`` segment: fan out over every element of a list."""


Segment = Union[Key, Index, Wildcard]


# --- expressions ----------------------------------------------------------------------------


class Literal(Node):
    """A string, number, boolean or null literal (``NULL`` -> None)."""

    value: Any
    pos: int = -1


class ListLiteral(Node):
    """``[a, b, c]``."""

    items: tuple["Expr", ...]
    pos: int = -1


class MapLiteral(Node):
    """``{key: value, "quoted key": value}``: node properties, CREATE bodies, SET values."""

    items: tuple[tuple[str, "Expr"], ...]
    pos: int = -1
    # ``{..., ...}``: ended with a ``...`` placeholder (Cyphernetes' docs write it; it parses, but
    # a query that would write an open map is refused).
    open: bool = False


class Variable(Node):
    """A bare variable reference: ``d`` in ``RETURN d``, or an alias in ``ORDER BY name``."""

    name: str
    pos: int = -1


class Property(Node):
    """``var.seg.seg[0].seg[*]``: a path into the resource bound to ``var``.

    ``text`` is the source spelling (``d.metadata.name``), used as the default column name.
    """

    var: str
    path: tuple[Segment, ...]
    text: str
    pos: int = -1


class FunctionCall(Node):
    """``datetime()``, ``datetime("2024-01-01T00:00:00Z")``, ``duration("PT1H")``, ``search(..)``.

    ``name`` is lower-cased.
    """

    name: str
    args: tuple["Expr", ...]
    pos: int = -1


class Aggregate(Node):
    """``COUNT{p}``, ``SUM{p.x}``, ``count(p)``, ``avg(..)``, ``min``, ``max``, ``collect``.

    ``func`` is lower-case: count, sum, avg, min, max, collect. ``braces`` records the spelling
    (``COUNT{x}`` versus ``count(x)``) for explain output only; semantics are identical.
    """

    func: str
    arg: "Expr"
    distinct: bool = False
    braces: bool = True
    pos: int = -1


class Binary(Node):
    """Arithmetic: ``+`` or ``-`` (datetime() - duration("P7D"), numbers)."""

    op: str
    left: "Expr"
    right: "Expr"
    pos: int = -1


class Comparison(Node):
    """``left OP right`` with OP one of: = != <> < > <= >= =~ CONTAINS STARTS_WITH ENDS_WITH IN.

    ``<>`` is normalised to ``!=``; ``STARTS WITH`` to ``STARTS_WITH``.
    """

    op: str
    left: "Expr"
    right: "Expr"
    pos: int = -1


class IsNull(Node):
    """``expr IS NULL`` / ``expr IS NOT NULL`` (negated=True)."""

    expr: "Expr"
    negated: bool = False
    pos: int = -1


class Not(Node):
    """``NOT expr``."""

    expr: "Expr"
    pos: int = -1


class And(Node):
    """``a AND b AND c`` (the comma in WHERE also means AND)."""

    items: tuple["Expr", ...]
    pos: int = -1


class Or(Node):
    """``a OR b OR c``."""

    items: tuple["Expr", ...]
    pos: int = -1


class PatternPredicate(Node):
    """A sub-pattern used as a boolean in WHERE: ``(d)->(:Service)``; wrap in Not for ``NOT``.

    The parser guarantees exactly one node of the pattern is a bare reference to a MATCH
    variable (no kind, no properties) and the other nodes are anonymous.
    """

    pattern: "PathPattern"
    pos: int = -1


Expr = Union[
    Literal,
    ListLiteral,
    MapLiteral,
    Variable,
    Property,
    FunctionCall,
    Aggregate,
    Binary,
    Comparison,
    IsNull,
    Not,
    And,
    Or,
    PatternPredicate,
]


# --- patterns -------------------------------------------------------------------------------


class NodePattern(Node):
    """``(var:Kind {props})``; var, kind and props are each optional.

    ``kind`` keeps the user's spelling (resolved to a real kind by the engine). ``props`` is the
    MapLiteral of the braces, or None.
    """

    var: str | None
    kind: str | None
    props: MapLiteral | None = None
    pos: int = -1


class RelPattern(Node):
    """The link between two nodes: ``->``, ``<-``, ``--``, or ``-[r:TYPE {props}]->``.

    direction: "right" (a->b), "left" (a<-b) or "both" (a--b).
    """

    direction: str
    var: str | None = None
    type: str | None = None
    props: MapLiteral | None = None
    pos: int = -1


class PathPattern(Node):
    """A chain: nodes[0] rels[0] nodes[1] rels[1] nodes[2] ... (len(rels) == len(nodes) - 1)."""

    nodes: tuple[NodePattern, ...]
    rels: tuple[RelPattern, ...] = ()
    pos: int = -1


# --- clauses --------------------------------------------------------------------------------


class ReturnItem(Node):
    """One RETURN item. ``text`` is the source text of the expression (default column name)."""

    expr: Expr
    alias: str | None
    text: str
    pos: int = -1

    @property
    def column(self) -> str:
        """The output column name: the alias if given, else the expression's source text."""
        return self.alias if self.alias is not None else self.text


class OrderItem(Node):
    """One ORDER BY key: an alias (Variable), a path (Property) or any expression."""

    expr: Expr
    descending: bool = False
    text: str = ""
    pos: int = -1


class SetItem(Node):
    """``var.path = value`` in SET."""

    target: Property
    value: Expr
    pos: int = -1


class Query(Node):
    """A whole statement.

    contexts: from a leading ``IN ctx1, ctx2``.
    match: the MATCH patterns (empty for a bare CREATE).
    where: the WHERE expression, or None.
    create: CREATE patterns; set: SET items; delete: DELETE variables.
    returns: RETURN items (empty when there is no RETURN); distinct: RETURN DISTINCT.
    order_by / skip / limit: row shaping after RETURN. ``at``: ``AT "<time>"`` (recordings).
    """

    match: tuple[PathPattern, ...] = ()
    where: Expr | None = None
    create: tuple[PathPattern, ...] = ()
    set: tuple[SetItem, ...] = ()
    delete: tuple[str, ...] = ()
    returns: tuple[ReturnItem, ...] = ()
    distinct: bool = False
    order_by: tuple[OrderItem, ...] = ()
    skip: int | None = None
    limit: int | None = None
    contexts: tuple[str, ...] = ()
    at: str | None = None

    @property
    def is_mutation(self) -> bool:
        """True when the statement would CREATE, SET or DELETE anything."""
        return bool(self.create or self.set or self.delete)


_EXPRESSION_TYPES = (Literal, ListLiteral, MapLiteral, Variable, Property, FunctionCall, Aggregate, Binary,
                     Comparison, IsNull, Not, And, Or, PatternPredicate)


def _sub_expressions(value: Any) -> Iterator[Any]:
    """The expressions directly inside one field's value: an expression, or a tuple of them (or
    of ``(key, expression)`` pairs, as a MapLiteral holds)."""
    if isinstance(value, _EXPRESSION_TYPES):
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from _sub_expressions(item)


@functools.cache
def _child_fields(cls: type) -> tuple[str, ...]:
    """The fields of an expression class declared to hold expressions (``"Expr"`` in the field's
    type): not names, positions or path segments; a PatternPredicate's pattern is a pattern."""
    return tuple(name for name, type_ in cls._field_types.items() if "Expr" in type_)


def children(expr: Any) -> Iterator[Any]:
    """The expressions directly inside ``expr``, in source order."""
    for name in _child_fields(type(expr)):
        yield from _sub_expressions(getattr(expr, name))


def walk(expr: Any) -> Iterator[Any]:
    """Every expression inside ``expr`` (itself included), depth first, in source order; None
    gives nothing. The one walk over expressions: the parser, validation and the engine use it.
    A PatternPredicate is yielded but not entered (its nodes are patterns, not expressions)."""
    if expr is None:
        return
    stack = [expr]
    while stack:  # iterative: a long AND chain or deep nesting cannot exhaust the call stack
        node = stack.pop()
        yield node
        stack.extend(reversed(list(children(node))))


def variables(expr: Any) -> set[str]:
    """The variables an expression refers to: properties' and bare variables', and the MATCH
    variable a sub-pattern hangs off."""
    out: set[str] = set()
    for node in walk(expr):
        if isinstance(node, Property):
            out.add(node.var)
        elif isinstance(node, Variable):
            out.add(node.name)
        elif isinstance(node, PatternPredicate):
            out |= {n.var for n in node.pattern.nodes if n.var}
    return out


def pattern_predicates(expr: Any) -> list[PatternPredicate]:
    """Every sub-pattern used as a condition inside ``expr`` (``WHERE NOT (d)->(:Service)``)."""
    return [node for node in walk(expr) if isinstance(node, PatternPredicate)]


def has_aggregate(expr: Any) -> bool:
    """Whether ``expr`` holds an aggregate (COUNT{x}, sum(..), ...)."""
    return any(isinstance(node, Aggregate) for node in walk(expr))


def to_dict(node: Any) -> Any:
    """Convert an AST node (or tuple/list/scalar) into plain JSON-able data for ``explain``.

    Args:
        node: any AST node, tuple of nodes, or scalar.
    Returns:
        dicts with a ``"type"`` key naming the node class; tuples become lists.
    """
    if isinstance(node, Node):
        out: dict[str, Any] = {"type": type(node).__name__}
        for name in node._fields:
            out[name] = to_dict(getattr(node, name))
        return out
    if isinstance(node, (list, tuple)):
        return [to_dict(x) for x in node]
    return node


__all__ = [name for name in dir() if not name.startswith("_")]
