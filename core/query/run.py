"""Running a query over sources: parse once, resolve ``IN`` once, run the engine per source
(concurrently when there are several), in the result shape the output format needs, stopping
at a row limit where the query's semantics allow.

The front ends (``tessera query``, the shell, notebook cells, live views) call ``run_query``
through core/api.py; nothing in cli/ reshapes or slices its answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from tessera.core.errors import QueryError, SourceUnavailable, TesseraError, UnknownKind, UsageError
from tessera.core.result import Result, merge_results

if TYPE_CHECKING:  # imported where a query is parsed: core/api.py stays cheap for commands that do not
    from tessera.core.query import ast

# What a run builds: "rows" (Cypher rows only), "graph" (rows plus the matched subgraph, for the
# tree/graph/dot/mermaid views and live views) or "cyphernetes" (the ``-o cyphernetes`` map).
SHAPES = ("rows", "graph", "cyphernetes")
_GRAPH_FORMATS = ("tree", "graph", "dot", "mermaid")


def shape_for_format(fmt: str) -> str:
    """The result shape an output format renders: the subgraph is built only for the graph views."""
    if fmt == "cyphernetes":
        return "cyphernetes"
    return "graph" if fmt in _GRAPH_FORMATS else "rows"


def parse_query(text: str) -> ast.Query:
    """Parse and validate query text; raises ParseError / QueryError with positions."""
    from tessera.core.query.parser import parse
    from tessera.core.query.validate import validate

    query = parse(text)
    validate(query, text)
    return query


def run_query(
    query: str | ast.Query,
    sources: list[Any],
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    shape: str = "graph",
    limit: int | None = None,
) -> Result:
    """Run a query over one or more sources.

    Args:
        query: the query text, or a Query parse_query already gave (it is not parsed again).
        sources: from open_sources(); a leading ``IN a, b`` picks sources by name (kube contexts
            not yet open are opened with the same kubeconfig).
        namespace: restrict to one namespace; default: the source's own default (the kube
            context's namespace; all namespaces for manifests).
        all_namespaces: every namespace (``-A``).
        shape: one of SHAPES (see shape_for_format).
        limit: at most this many rows (``--limit``): the engine stops producing rows there when
            the query has no ORDER BY, DISTINCT or aggregate (those need every match first).
    Returns:
        a Result; with several sources, rows gain a leading ``context`` column (``source`` for
        stores and peers' replicas) and the limit applies to the merged rows.
    Raises:
        UsageError for -n with -A or an unknown shape; ParseError, QueryError, SourceUnavailable,
        NotAuthorized, SourceTimeout.
    """
    if namespace is not None and all_namespaces:
        raise UsageError("-n/--namespace and -A/--all-namespaces are mutually exclusive")
    if shape not in SHAPES:
        raise UsageError(f"unknown result shape '{shape}'", hint=f"one of {', '.join(SHAPES)}")
    parsed = parse_query(query) if isinstance(query, str) else query
    targets = pick_sources(parsed.contexts, sources)
    from tessera.core.rules import rules_in_force
    from tessera.core.sources.protocol import RediscoverableSource

    rules = rules_in_force()

    def one(source: Any) -> Result:
        for attempt in (1, 2):
            engine = engine_for(source, namespace=namespace, all_namespaces=all_namespaces, rules=rules)
            try:
                return engine.run(parsed, shape=shape, limit=limit)
            except UnknownKind:
                # Kinds may come from a discovery cache a few minutes old; a new CRD is not in it.
                if attempt == 2 or not (isinstance(source, RediscoverableSource) and source.kinds_cached):
                    raise
                source.rediscover()
        raise AssertionError("unreachable")

    if len(targets) == 1:
        result = one(targets[0])
        failures: list[TesseraError] = []
    else:
        results, failures = run_each(targets, one)
        if not results:
            raise failures[0]
        from tessera.core.sources.protocol import fan_out_column

        result = merge_results(results, shape, fan_out_column(targets))
        if limit is not None:
            result.rows, result.keys = result.rows[:limit], result.keys[:limit]
    result.warnings.extend(f.one_line() for f in failures)
    return result


def engine_for(source: Any, *, namespace: str | None = None, all_namespaces: bool = False,
               rules: list | None = None) -> Any:
    """A query engine over one source with the namespace scope run_query would use.

    Returns:
        a core.query.engine.Engine (one per run: it keeps per-run state).
    """
    from tessera.core.kinds import KindRegistry
    from tessera.core.query.engine import Engine, EngineContext
    from tessera.core.rules import rules_in_force
    from tessera.core.sources.protocol import default_namespace

    scope = None if all_namespaces else (namespace if namespace is not None else default_namespace(source))
    registry = KindRegistry(source.kinds())
    return Engine(EngineContext(source=source, registry=registry, rules=rules_in_force() if rules is None else rules,
                                namespace=scope))


def pick_sources(contexts: tuple[str, ...], sources: list[Any]) -> list[Any]:
    """The sources a query's ``IN`` names (all of them without one); a kube context that is not
    open yet is opened with the kubeconfig of the live sources given.

    Raises:
        QueryError naming the context when it is neither open nor openable (no live source).
    """
    if not contexts:
        return sources
    by_name = {s.name: s for s in sources}
    picked = []
    for ctx in contexts:
        if ctx in by_name:
            picked.append(by_name[ctx])
            continue
        from tessera.core.sources.protocol import can_write

        live = [s for s in sources if can_write(s)]
        if not live:
            raise QueryError(
                f"IN {ctx}: no source named '{ctx}'",
                hint=f"sources here: {', '.join(by_name) or 'none'}",
            )
        from tessera.core.sources.opening import open_context

        picked.append(open_context(ctx, getattr(live[0], "kubeconfig", None)))
    return picked


def run_each(targets: list[Any], one: Callable[[Any], Result]) -> tuple[list[tuple[str, Result]], list[TesseraError]]:
    """Run ``one(source)`` for every source at once; a source that cannot answer (unreachable,
    timed out, refused) becomes a failure, so the others still answer."""
    from concurrent.futures import ThreadPoolExecutor

    from tessera.core.errors import NotAuthorized, SourceTimeout

    def attempt(source: Any) -> tuple[str, Result | TesseraError]:
        try:
            return source.name, one(source)
        except (SourceUnavailable, SourceTimeout, NotAuthorized) as exc:
            return source.name, exc

    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        outcomes = list(pool.map(attempt, targets))
    results = [(name, r) for name, r in outcomes if isinstance(r, Result)]
    failures = [r for _, r in outcomes if isinstance(r, TesseraError)]
    return results, failures


def explain(text: str) -> dict:
    """The parsed plan of a query as JSON-able data (``tessera explain``).

    Returns:
        ``{"query": <AST as dicts>, "mutation": bool, "contexts": [...]}``.
    Raises:
        ParseError / QueryError on a bad query.
    """
    from tessera.core.query.ast import to_dict

    query = parse_query(text)
    return {"query": to_dict(query), "mutation": query.is_mutation, "contexts": list(query.contexts)}
