"""The executor: resolve kinds, fetch candidates (filters pushed down), hash-join relationships,
filter, then project rows (Cypher semantics) or the Cyphernetes-shaped map.

Plan of one run:
1. name every node (anonymous ones get ``_anonN``) and resolve kinds; kindless nodes expand to
   every kind a rule links to their neighbour's kind;
2. one list request per (kind, namespace, name, labels), deduplicated, fetched concurrently;
3. WHERE conjuncts over a single variable filter its candidates before any join; sub-patterns
   (``(d)->(:Service)``) become semi-join sets computed once;
4. each MATCH path is enumerated through hash joins (core/query/joins.py) in the order the join
   planner (core/query/planner.py) gives: from its first node, or from a restricted one;
   connected paths are joined on their shared variables; separate components are combined as
   a cross product for rows, and kept apart for the Cyphernetes shape (as Cyphernetes does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from tessera.core.errors import NotAuthorized, QueryError, TesseraError
from tessera.core.kinds import KindInfo
from tessera.core.query import ast
from tessera.core.query.evaluate import SEARCH, Evaluator
from tessera.core.query.joins import namespace_of, rule_pairs
from tessera.core.query.planner import JoinPlanner, hops, start_node
from tessera.core.relationships import Rule
from tessera.core.result import GraphEdge, GraphNode, Result
from tessera.core.sources.protocol import ConcurrentSource, ScoringSource, TimeTravelSource, WarningSource

Binding = dict[str, dict]  # variable -> resource


def search_calls(query: ast.Query) -> list[ast.FunctionCall]:
    """Every ``search(...)`` call in the query's WHERE, RETURN and ORDER BY."""
    exprs = [query.where, *(i.expr for i in query.returns), *(o.expr for o in query.order_by)]
    return [node for e in exprs for node in ast.walk(e)
            if isinstance(node, ast.FunctionCall) and node.name == SEARCH]


def _variables_used(expr: Any, search_var: str | None) -> set[str]:
    """The variables ``expr`` depends on; ``search("TEXT")`` depends on the one it scores."""
    used = ast.variables(expr)
    if search_var is not None and any(isinstance(n, ast.FunctionCall) and n.name == SEARCH and len(n.args) == 1
                                      for n in ast.walk(expr)):
        used.add(search_var)
    return used


@dataclass
class NodePlan:
    """One distinct pattern variable: its kinds, pushed-down filters and candidate resources."""

    name: str
    anonymous: bool
    kinds: list[KindInfo] = field(default_factory=list)
    kind_spelling: str | None = None
    name_filter: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    fields: list[tuple[tuple[str, ...], Any]] = field(default_factory=list)
    candidates: list[dict] = field(default_factory=list)
    pos: int = -1


@dataclass
class EngineContext:
    """What one run needs from outside: the source, its kinds, the rules, the namespace scope."""

    source: Any
    registry: Any
    rules: list[Rule]
    namespace: str | None  # None: all namespaces


class Engine:
    """Runs one parsed query against one source.

    Args:
        ctx: the source, its kind registry, relationship rules and namespace scope.
    """

    def __init__(self, ctx: EngineContext):
        self.ctx = ctx
        self.kind_of: dict[int, KindInfo] = {}
        self.nodes: dict[str, NodePlan] = {}
        self._anon = 0
        self._fetch_cache: dict[tuple, list[dict]] = {}
        self.warnings: list[str] = []
        self._expanded: set[tuple[str, str]] = set()
        self.planner = JoinPlanner(ctx.rules, ctx.registry)

    # ------------------------------------------------------------------ planning

    def _node(self, pattern: ast.NodePattern) -> str:
        if pattern.var is None:
            self._anon += 1
            name = f"_anon{self._anon}"
            self.nodes[name] = NodePlan(name=name, anonymous=True, pos=pattern.pos)
        else:
            name = pattern.var
            self.nodes.setdefault(name, NodePlan(name=name, anonymous=False, pos=pattern.pos))
        plan = self.nodes[name]
        if pattern.kind is not None:
            if plan.kind_spelling is not None and plan.kind_spelling.lower() != pattern.kind.lower():
                resolved = self._resolve(pattern.kind)
                if {k.kind for k in plan.kinds} != {resolved.kind}:
                    raise QueryError(
                        f"variable '{name}' is given two kinds: {plan.kind_spelling} and {pattern.kind}"
                    )
            plan.kind_spelling = pattern.kind
            plan.kinds = [self._resolve(pattern.kind)]
        if pattern.props is not None:
            self._apply_props(plan, pattern.props)
        return name

    def _resolve(self, spelling: str) -> KindInfo:
        return self.ctx.registry.resolve(spelling)

    def _apply_props(self, plan: NodePlan, props: ast.MapLiteral) -> None:
        for key, value_expr in props.items:
            value = _literal(value_expr)
            if key == "name" and not isinstance(value, dict):
                plan.name_filter = str(value)
            elif key == "namespace" and not isinstance(value, dict):
                plan.namespace = str(value)
            elif isinstance(value, dict):
                for path, leaf in _flatten(value, (key,)):
                    plan.fields.append((path, leaf))
            else:
                plan.labels[key] = value if isinstance(value, str) else _label_text(value)
        if plan.name_filter is not None and plan.labels:
            # Cyphernetes refuses this too: a name identifies one object already.
            raise QueryError(
                f"node '{plan.name}': the 'name' selector can be used by itself or combined with "
                f"'namespace', but not with other label selectors ({', '.join(plan.labels)})",
                hint="drop the labels, or match them in WHERE",
            )

    def _neighbours(self, paths: Iterable[tuple[list[str], list[ast.RelPattern]]]) -> dict[str, list]:
        out: dict[str, list] = {}
        for names, rels in paths:
            for i, rel in enumerate(rels):
                out.setdefault(names[i], []).append((names[i + 1], rel))
                out.setdefault(names[i + 1], []).append((names[i], rel))
        return out

    def _expand_kindless(self, paths: list[tuple[list[str], list[ast.RelPattern]]]) -> None:
        """Give each kindless node every kind that a rule links to all of its neighbours' kinds.

        Kinds linked by a rule naming both kinds come first (sorted), then those linked only by
        the Namespace rule (a Namespace relates to every namespaced resource in it): rows and the
        Cyphernetes shape list a Deployment's ReplicaSets before its Namespace.
        """
        neighbours = self._neighbours(paths)
        kindless = [n for n, p in self.nodes.items() if not p.kinds and n in _names_in(paths)]
        for name in kindless:
            near = neighbours.get(name, [])
            if not near:
                raise QueryError(
                    f"kindless nodes may only be used in a relationship: give '{name}' a kind",
                    hint="e.g. (x:Pod), or relate it: (d:Deployment)->(x)",
                )
            allowed: set[str] | None = None
            direct: set[str] | None = None  # linked to every neighbour by a rule naming both kinds
            for other, rel in near:
                other_plan = self.nodes[other]
                if not other_plan.kinds:
                    raise QueryError(
                        "chaining two unknown nodes (kindless-to-kindless) is not supported - at least "
                        f"one node in a relationship must have a known kind ('{name}' and '{other}')"
                    )
                linked, by_name = set(), set()
                for k in other_plan.kinds:
                    pair_rules, namespace_rule = self.planner.linked_kinds(k, rel.type)
                    linked |= pair_rules | namespace_rule
                    by_name |= pair_rules
                allowed = linked if allowed is None else allowed & linked
                direct = by_name if direct is None else direct & by_name
            allowed, direct = allowed or set(), direct or set()
            if not allowed:
                spelled = " or ".join(sorted({k.kind for other, _ in near for k in self.nodes[other].kinds}))
                typed = {rel.type for _, rel in near if rel.type}
                raise QueryError(
                    f"no kind is related to {spelled}{' by ' + ', '.join(sorted(typed)) if typed else ''}, "
                    f"so '{name}' cannot match anything",
                    hint="give it a kind, or see docs/relationships.md for the relationships that exist",
                )
            kinds = []
            for kind_name in sorted(allowed & direct) + sorted(allowed - direct):
                info = self._kind_by_name(kind_name)
                if info is not None:
                    kinds.append(info)
            self.nodes[name].kinds = kinds
            self._expanded.update((k.group, k.kind) for k in kinds)

    def _kind_by_name(self, kind: str) -> KindInfo | None:
        try:
            return self.ctx.registry.by_kind(kind)
        except QueryError:
            return None

    # ------------------------------------------------------------------ fetching

    def _requests(self, plan: NodePlan) -> list[tuple]:
        reqs = []
        for kind in plan.kinds:
            ns = plan.namespace if plan.namespace is not None else self.ctx.namespace
            if not kind.namespaced:
                ns = None
            labels = tuple(sorted(plan.labels.items())) if plan.labels else None
            reqs.append((kind, ns, plan.name_filter, labels))
        return reqs

    def _fetch(self, plans: list[NodePlan], restrict: dict[str, list[dict]] | None = None) -> None:
        restrict = restrict or {}
        for plan in plans:
            if plan.name in restrict:
                self._take(plan, restrict[plan.name])
        plans = [p for p in plans if p.name not in restrict]
        wanted: list[tuple] = []
        for plan in plans:
            for req in self._requests(plan):
                if req not in self._fetch_cache and req not in wanted:
                    wanted.append(req)
        if wanted:
            results = self._list_many(wanted)
            for req, objs in zip(wanted, results, strict=True):
                for obj in objs:
                    self.kind_of[id(obj)] = req[0]
                self._fetch_cache[req] = objs
        for plan in plans:
            lists = [self._fetch_cache[req] for req in self._requests(plan)]
            # one list is passed on as it came (a watch cache's snapshot lends its join indexes)
            objs = lists[0] if len(lists) == 1 else [o for objs in lists for o in objs]
            filtered = (plan.name_filter is not None or plan.namespace is not None or plan.labels or plan.fields)
            plan.candidates = [o for o in objs if _local_match(plan, o)] if filtered else objs

    def _take(self, plan: NodePlan, objs: list[dict]) -> None:
        """Bind ``plan`` to exactly these resources, as far as its kinds, scope and filters allow."""
        kinds = {(k.group, k.kind): k for k in plan.kinds}
        ns = plan.namespace if plan.namespace is not None else self.ctx.namespace
        plan.candidates = []
        for obj in objs:
            api_version = obj.get("apiVersion") or ""
            kind = kinds.get((api_version.rsplit("/", 1)[0] if "/" in api_version else "", obj.get("kind")))
            if kind is None:
                continue
            if kind.namespaced and ns is not None and (obj.get("metadata") or {}).get("namespace") != ns:
                continue
            if _local_match(plan, obj):
                self.kind_of[id(obj)] = kind
                plan.candidates.append(obj)

    def _list_many(self, reqs: list[tuple]) -> list[list[dict]]:
        source = self.ctx.source

        failures: list[TesseraError] = []

        def one(req: tuple) -> list[dict]:
            kind, ns, name, labels = req
            try:
                return source.list(kind, namespace=ns, name=name, labels=dict(labels) if labels else None)
            except TesseraError as exc:
                if (kind.group, kind.kind) not in self._expanded:
                    raise
                # A kindless node tries every linked kind (every namespaced kind, next to a
                # Namespace): RBAC hiding one, or one API the server cannot serve (an aggregated
                # API that is down, a CRD just removed), must not sink the query.
                failures.append(exc)
                why = "forbidden" if isinstance(exc, NotAuthorized) else "cannot list it"
                self.warnings.append(f"skipped {kind.kind} ({why}): {exc.one_line()}")
                return []

        if len(reqs) == 1 or not (isinstance(source, ConcurrentSource) and source.concurrent):
            results = [one(r) for r in reqs]
        else:
            from concurrent.futures import ThreadPoolExecutor  # only here: 3 ms of every start-up

            with ThreadPoolExecutor(max_workers=min(8, len(reqs))) as pool:
                results = list(pool.map(one, reqs))
        if failures and len(failures) == len(reqs):
            raise failures[0]  # nothing answered: the source is at fault, not one kind
        return results

    # ------------------------------------------------------------------ joining

    def adjacency(
        self, left: NodePlan, right: NodePlan, rel: ast.RelPattern, left_objs: list[dict]
    ) -> dict[int, list[tuple[dict, str]]]:
        """For each left resource (by id), the related right resources and the relationship type."""
        if rel.props is not None and rel.props.items:
            raise QueryError("properties on relationships are not supported", hint="filter in WHERE")
        adj: dict[int, list[tuple[dict, str]]] = {}
        left_by_kind = _group_by_kind(left_objs, left, self.kind_of)
        right_by_kind = _group_by_kind(right.candidates, right, self.kind_of)
        any_rule = False
        for lk in left.kinds:
            for rk in right.kinds:
                rules = self.planner.rules_between(lk, rk, rel)
                any_rule = any_rule or bool(rules)
                ls, rs = left_by_kind.get(lk.kind, []), right_by_kind.get(rk.kind, [])
                for rule, left_is_a in rules:
                    memo = getattr(self.ctx.source, "join_memo", None)
                    pairs = (rule_pairs(rule, ls, rs, memo) if left_is_a
                             else ((a, b) for b, a in rule_pairs(rule, rs, ls, memo)))
                    for a, b in pairs:
                        bucket = adj.setdefault(id(a), [])
                        if all(existing is not b for existing, _ in bucket):
                            bucket.append((b, rule.type))
        if not any_rule and left.kinds and right.kinds and len(left.kinds) == 1 and len(right.kinds) == 1:
            lk, rk = left.kinds[0], right.kinds[0]
            related = sorted(set().union(*self.planner.linked_kinds(lk, None)))
            raise QueryError(
                f"no relationship{' of type ' + rel.type if rel.type else ''} between {lk.kind} and {rk.kind}",
                hint=f"{lk.kind} relates to: {', '.join(related) or 'nothing'}",
            )
        return adj

    def enumerate_path(self, names: list[str], rels: list[ast.RelPattern], edges: list | None = None,
                       start: int = 0, *, stop: int | None = None) -> list[Binding]:
        """All bindings of one path, in the order of the ``start`` node's candidates.

        Args:
            names: the path's node names; rels: the relationships between them.
            edges: where to append the matched (source, target, type) edges.
            start: the node to walk from (forwards to the end, then backwards to the first): a
                node with few candidates (a live query's changed resources) keeps every join small.
            stop: only the first this many bindings are wanted (the last join stops there).
        """
        first = self.nodes[names[start]]
        rows: list[Binding] = [{names[start]: obj} for obj in first.candidates]
        order = hops(len(rels), start)
        if not order and stop is not None:
            return rows[:stop]
        for n, (i, forward) in enumerate(order):
            known, new = (names[i], names[i + 1]) if forward else (names[i + 1], names[i])
            rows = self._extend(rows, self.nodes[known], self.nodes[new], rels[i], edges, forward=forward,
                                stop=stop if n == len(order) - 1 else None)
        return rows

    def _extend(self, rows: list[Binding], known: NodePlan, new: NodePlan, rel: ast.RelPattern, edges: list | None,
                *, forward: bool, stop: int | None = None) -> list[Binding]:
        """The bindings extended over ``rel`` from the bound node ``known`` to ``new`` (which
        follows it in the pattern when ``forward``, else precedes it); at most ``stop`` of them."""
        adj = self.adjacency(known, new, rel, _unique(row[known.name] for row in rows))
        out: list[Binding] = []
        for row in rows:
            if stop is not None and len(out) >= stop:
                break
            for obj, rtype in adj.get(id(row[known.name]), ()):
                bound = row.get(new.name)
                if bound is not None and bound is not obj:
                    continue
                grown = dict(row)
                grown[new.name] = obj
                out.append(grown)
                if edges is not None:
                    left, right = (row[known.name], obj) if forward else (obj, row[known.name])
                    edges.append((left, right, rtype) if rel.direction != "left" else (right, left, rtype))
        return out if stop is None else out[:stop]

    # ------------------------------------------------------------------ running

    def run(self, query: ast.Query, *, shape: str = "graph", limit: int | None = None) -> Result:
        """Execute a read ``query``.

        Args:
            query: the parsed query.
            shape: "rows" (Cypher rows), "graph" (rows and the matched subgraph) or "cyphernetes"
                (the ``-o cyphernetes`` map; ``limit`` does not apply to it).
            limit: at most this many rows. In the "rows" shape, without ORDER BY, DISTINCT or
                aggregates, matching stops once enough bindings are found; otherwise the rows
                are cut after projection (the subgraph keeps every match, as the views show it).
        """
        if query.is_mutation:
            raise QueryError("mutations run through core.mutate (tessera query plans and applies them)")
        if not query.match:
            raise QueryError("a read query needs a MATCH clause")
        enough = bindings_needed(query, limit) if shape == "rows" else None
        components, evaluator, edges = self.match(query, enough=enough)
        if isinstance(self.ctx.source, WarningSource):  # e.g. List items a file reader skipped
            self.warnings.extend(self.ctx.source.take_warnings())
        if shape == "cyphernetes":
            from tessera.core.query.cyphernetes import shape_result

            return Result(cyphernetes=shape_result(query, components, evaluator), warnings=self.warnings)
        from tessera.core.query.project import project_rows

        bindings = cross_product([c.rows for c in components], enough)
        result = project_rows(query, bindings, evaluator)
        if limit is not None:
            result.rows, result.keys = result.rows[:limit], result.keys[:limit]
        if shape == "graph":
            self._graph(result, bindings, edges)
        result.warnings.extend(self.warnings)
        return result

    def match(
        self, query: ast.Query, restrict: dict[str, list[dict]] | None = None, *, enough: int | None = None
    ) -> tuple[list["_Component"], Evaluator, list]:
        """Run MATCH and WHERE: the connected components of matches, the evaluator used, and the
        matched edges. Mutations use the components' bindings as their targets.

        Args:
            query: the parsed query.
            restrict: variable -> the only resources it may bind (live queries re-match only what
                changed); nothing is listed for that variable.
            enough: the caller needs only this many bindings (in enumeration order): a single
                path with no filter left after its joins stops there.
        """
        if query.at is not None and not isinstance(self.ctx.source, TimeTravelSource):
            raise QueryError(
                f"AT needs a recording source (replay:FILE); '{self.ctx.source.name}' is not one",
                hint="query a recording: -s replay:FILE (or -s replay:demo)",
            )
        if query.at is not None:
            from tessera.core.recording_file import parse_time

            self.ctx.source.set_at(parse_time(query.at))
        if not query.match:
            return [_Component(set(), [{}])], Evaluator(), []
        paths = [([self._node(n) for n in p.nodes], list(p.rels)) for p in query.match]
        self._expand_kindless(paths)
        conjuncts = _conjuncts(query.where)
        predicates = ast.pattern_predicates(query.where)
        sub_paths = []
        for pred in predicates:
            names = [self._sub_node(n) for n in pred.pattern.nodes]
            sub_paths.append((pred, names, list(pred.pattern.rels)))
        self._expand_kindless([(n, r) for _, n, r in sub_paths])
        self._fetch([self.nodes[n] for n in self.nodes], restrict)

        evaluator = self._evaluator(query)
        search_var = evaluator.search_var
        for pred, names, rels in sub_paths:
            ref = next(n for n, node in zip(names, pred.pattern.nodes, strict=True) if node.var is not None)
            matched = {id(b[ref]) for b in self.enumerate_path(names, rels)}
            evaluator.pattern_sets[id(pred)] = (ref, matched)

        # single-variable conjuncts filter candidates before joining
        residual = []
        for conj in conjuncts:
            used = _variables_used(conj, search_var)
            if len(used) == 1 and not ast.has_aggregate(conj):
                (var,) = used
                if var not in self.nodes:
                    raise QueryError(f"unknown variable '{var}' in WHERE")
                plan = self.nodes[var]
                plan.candidates = [o for o in plan.candidates if evaluator.test(conj, {var: o})]
            else:
                residual.append(conj)

        edges: list[tuple[dict, dict, str]] = []
        stop = enough if len(paths) == 1 and not residual else None
        components = self._components(paths, edges, set(restrict or ()), stop)
        for conj in residual:
            used = _variables_used(conj, search_var)
            for comp in components:
                if used <= comp.vars:
                    comp.rows = [b for b in comp.rows if evaluator.test(conj, b)]
                    break
            else:
                comp_rows = cross_product([c.rows for c in components])
                components = [_Component(set().union(*(c.vars for c in components)), [b for b in comp_rows if evaluator.test(conj, b)])]

        return components, evaluator, edges

    def _evaluator(self, query: ast.Query) -> Evaluator:
        """The run's Evaluator; with ``search()`` in the query, its scores (the source's
        ScoringSource, once per distinct text) and the variable a one-argument call scores.

        Raises:
            QueryError when the source scores nothing, a call's arguments are wrong, or no (or
            more than one) Chunk/Document variable is there for ``search("TEXT")`` to score.
        """
        calls = search_calls(query)
        if not calls:
            return Evaluator()
        source = self.ctx.source
        if not isinstance(source, ScoringSource):
            raise QueryError(f"search() scores ingested knowledge, and '{source.name}' has none",
                             hint="add -s knowledge to the sources (see docs/knowledge.md)")
        scored = {tuple(k) for k in source.scored_kinds}
        spelled = " or ".join(k for _, k in sorted(scored)) or "nothing"
        scorable = [name for name, plan in self.nodes.items()
                    if plan.kinds and all((k.group, k.kind) in scored for k in plan.kinds)]
        search_var = None
        for call in calls:
            if len(call.args) == 2:
                var = call.args[0]
                if not isinstance(var, ast.Variable) or var.name not in scorable:
                    raise QueryError(f"search(VAR, TEXT) scores a {spelled} variable of the MATCH",
                                     hint='write search(c, "TEXT") with c bound to (c:Chunk)')
            elif len(call.args) == 1:
                named = [n for n in scorable if not self.nodes[n].anonymous] or scorable
                if not named:
                    raise QueryError(f"search(\"TEXT\") scores a {spelled}, and this MATCH has none",
                                     hint='MATCH (c:Chunk) WHERE search("TEXT") > 0 RETURN c.path')
                if len(named) > 1:
                    raise QueryError(f"search(\"TEXT\") could score {' or '.join(named)}",
                                     hint=f'name the one: search({named[0]}, "TEXT")')
                search_var = named[0]
            else:
                raise QueryError("search() takes the text, or a variable and the text",
                                 hint='search("crash loop") or search(c, "crash loop")')
        return Evaluator(text_scores=source.text_scores, search_var=search_var)

    def _sub_node(self, pattern: ast.NodePattern) -> str:
        if pattern.var is not None:
            if pattern.var not in self.nodes:
                raise QueryError(f"sub-pattern refers to '{pattern.var}', which MATCH does not define")
            return pattern.var
        return self._node(pattern)

    def _components(self, paths: list, edges: list, restricted: set[str] = frozenset(),
                    stop: int | None = None) -> list["_Component"]:
        comps: list[_Component] = []
        for names, rels in paths:
            start = start_node(names, restricted)
            rows = self.enumerate_path(names, rels, edges, start, stop=stop)
            vars_ = set(names)
            joined = [c for c in comps if c.vars & vars_]
            for c in joined:
                shared = sorted(c.vars & vars_)
                index: dict[tuple, list[Binding]] = {}
                for r in c.rows:
                    index.setdefault(tuple(id(r[v]) for v in shared), []).append(r)
                rows = [
                    {**left, **row}
                    for row in rows
                    for left in index.get(tuple(id(row[v]) for v in shared), ())
                ]
                vars_ |= c.vars
                comps.remove(c)
            comps.append(_Component(vars_, rows))
        return comps

    def _graph(self, result: Result, bindings: list[Binding], edges: list) -> None:
        seen: dict[int, GraphNode] = {}
        src = self.ctx.source.name
        for b in bindings:
            for var, obj in b.items():
                node = seen.get(id(obj))
                if node is None:
                    kind = self.kind_of.get(id(obj))
                    meta = obj.get("metadata") or {}
                    node = GraphNode(
                        id=f"{src}/{kind.kind if kind else obj.get('kind', '')}/{meta.get('namespace') or ''}/{meta.get('name', '')}",
                        kind=kind.kind if kind else obj.get("kind", ""),
                        name=meta.get("name", ""),
                        namespace=meta.get("namespace") or "",
                        source=src,
                    )
                    seen[id(obj)] = node
                if not var.startswith("_anon") and var not in node.variables:
                    node.variables.append(var)
        pairs = set()
        for a, b, t in edges:
            if id(a) in seen and id(b) in seen:
                key = (seen[id(a)].id, seen[id(b)].id, t)
                if key not in pairs:
                    pairs.add(key)
                    result.edges.append(GraphEdge(*key))
        result.nodes = sorted(seen.values(), key=lambda n: n.id)
        result.edges.sort(key=lambda e: (e.source, e.target, e.type))


@dataclass
class _Component:
    vars: set[str]
    rows: list[Binding]


def cross_product(parts: list[list[Binding]], enough: int | None = None) -> list[Binding]:
    """Every combination of one binding from each part (separate MATCH components), in order;
    only the first ``enough`` when that is given."""
    if enough is not None:
        from itertools import islice, product

        return [{k: v for part in combo for k, v in part.items()} for combo in islice(product(*parts), enough)]
    rows: list[Binding] = [{}]
    for part in parts:
        rows = [{**a, **b} for a in rows for b in part]
    return rows


def bindings_needed(query: ast.Query, limit: int | None) -> int | None:
    """How many bindings (in match order) give the first ``limit`` rows of ``query``: None when
    there is no limit, or when ORDER BY, DISTINCT or an aggregate needs every match."""
    if limit is None or query.order_by or query.distinct:
        return None
    if any(ast.has_aggregate(item.expr) for item in query.returns):
        return None
    shown = limit if query.limit is None else min(limit, query.limit)
    return (query.skip or 0) + shown


def _unique(objs: Iterable[dict]) -> list[dict]:
    seen: set[int] = set()
    out = []
    for o in objs:
        if id(o) not in seen:
            seen.add(id(o))
            out.append(o)
    return out


def _group_by_kind(objs: list[dict], plan: NodePlan, kind_of: dict[int, KindInfo]) -> dict[str, list[dict]]:
    if len(plan.kinds) == 1:
        return {plan.kinds[0].kind: objs}  # as it is: a cache snapshot keeps its join indexes
    out: dict[str, list[dict]] = {}
    for o in objs:
        k = kind_of.get(id(o))
        out.setdefault(k.kind if k else o.get("kind", ""), []).append(o)
    return out


def _names_in(paths: list) -> set[str]:
    return {n for names, _ in paths for n in names}


def _literal(expr: ast.Expr) -> Any:
    if isinstance(expr, ast.Literal):
        return expr.value
    if isinstance(expr, ast.MapLiteral):
        return {k: _literal(v) for k, v in expr.items}
    if isinstance(expr, ast.ListLiteral):
        return [_literal(v) for v in expr.items]
    raise QueryError("node properties must be literal values")


def _label_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _flatten(value: dict, prefix: tuple[str, ...]) -> Iterable[tuple[tuple[str, ...], Any]]:
    for k, v in value.items():
        if isinstance(v, dict) and v:
            yield from _flatten(v, prefix + (k,))
        else:
            yield prefix + (k,), v


def _local_match(plan: NodePlan, obj: dict) -> bool:
    meta = obj.get("metadata") or {}
    if plan.name_filter is not None and meta.get("name") != plan.name_filter:
        return False
    if plan.namespace is not None and meta.get("namespace") and meta.get("namespace") != plan.namespace:
        return False
    if plan.labels:
        labels = meta.get("labels") or {}
        if any(labels.get(k) != v for k, v in plan.labels.items()):
            return False
    for path, want in plan.fields:
        cur: Any = obj
        for key in path:
            cur = cur.get(key) if isinstance(cur, dict) else None
        if cur != want:
            return False
    return True


def _conjuncts(expr: ast.Expr | None) -> list[ast.Expr]:
    if expr is None:
        return []
    if isinstance(expr, ast.And):
        out = []
        for item in expr.items:
            out.extend(_conjuncts(item))
        return out
    return [expr]


def namespace_scope(default: str | None, all_namespaces: bool) -> str | None:
    """None means every namespace."""
    return None if all_namespaces else default


__all__ = ["Engine", "EngineContext", "NodePlan", "bindings_needed", "cross_product", "namespace_of"]
