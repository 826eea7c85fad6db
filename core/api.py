"""The facade every front end calls. The CLI, dashboard and shell use only these functions.

Sources are plugins found through the ``tessera.sources`` entry point group, so a third party
can add one without touching this package.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tessera.core.errors import QueryError, SourceUnavailable, TesseraError, UnknownKind, UsageError
from tessera.core.result import Result


def _source_plugin(name: str) -> Any:
    """Load a source class registered under ``tessera.sources`` (core/sources/registry.py)."""
    from tessera.core.sources.registry import source_class

    return source_class(name)


def open_sources(
    specs: list[str] | tuple[str, ...] = (),
    *,
    contexts: list[str] | tuple[str, ...] = (),
    kubeconfig: str | None = None,
    stdin: TextIO | None = None,
    speed: float = 1.0,
    loop: bool = False,
) -> list[Any]:
    """Open the sources a command names.

    Args:
        specs: ``-s`` values: a file, a directory, ``-`` (stdin), ``demo`` (the bundled cluster)
            or ``replay:FILE`` / ``replay:demo`` (a recording, each its own source).
            Several manifest specs merge into one source, so relationships cross files.
        contexts: kube contexts (``--context``), each a live source; none and no specs means the
            kubeconfig's current context.
        kubeconfig: path to a kubeconfig (else KUBECONFIG, else ~/.kube/config).
        stdin: the stream ``-`` reads.
        speed, loop: how recordings play (recording seconds per second; start over at the end).
    Returns:
        a list of sources (objects implementing core/sources/protocol.py's Source), each
        hiding its Secrets' values unless the user opted in (core/secrets.py).
    """
    from tessera.core.secrets import guard

    sources: list[Any] = []
    replays = [s for s in specs if s.startswith("replay:")]
    for spec in replays:
        if not spec[len("replay:"):]:
            raise UsageError("replay: needs a recording file", hint="-s replay:FILE, or -s replay:demo")
        sources.append(_source_plugin("replay")(spec[len("replay:"):], speed=speed, loop=loop))
    specs = [s for s in specs if not s.startswith("replay:")]
    if specs:
        if list(specs).count("-") > 1:
            raise UsageError("stdin ('-') can be given as a source only once")
        manifests = _source_plugin("manifests")
        parts = []
        for spec in specs:
            if spec == "demo":
                parts.append(_source_plugin("demo")())
            else:
                parts.append(manifests(spec, stdin=stdin if spec == "-" else None))
        from tessera.core.sources.union import UnionSource

        sources.append(parts[0] if len(parts) == 1 else UnionSource(parts))
    if contexts or not (specs or replays):
        kube = _source_plugin("kubernetes")
        for ctx in contexts or [None]:
            sources.append(kube(context=ctx, kubeconfig=kubeconfig))
    return [guard(s) for s in sources]


def relationship_rules() -> list:
    """The relationship rules in force: the built-in ones, then the user's relationships.yaml."""
    from tessera.core import config
    from tessera.core.rules import all_rules

    path = config.relationships_file()
    return all_rules(path if path.exists() else None)


def parse_query(text: str):
    """Parse and validate query text; raises ParseError / QueryError with positions."""
    from tessera.core.query.parser import parse
    from tessera.core.query.validate import validate

    query = parse(text)
    validate(query, text)
    return query


def run_query(
    text: str,
    sources: list[Any],
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    shape: str = "rows",
) -> Result:
    """Parse and run a query over one or more sources.

    Args:
        text: the query.
        sources: from open_sources(); a leading ``IN a, b`` picks sources by name (kube contexts
            not yet open are opened with the same kubeconfig).
        namespace: restrict to one namespace; default: the source's own default (the kube
            context's namespace; all namespaces for manifests).
        all_namespaces: every namespace (``-A``).
        shape: "rows" (Cypher rows + subgraph) or "cyphernetes" (the ``-o cyphernetes`` map).
    Returns:
        a Result; with several sources, rows gain a leading ``context`` column.
    Raises:
        ParseError, QueryError, SourceUnavailable, NotAuthorized, SourceTimeout.
    """
    if namespace is not None and all_namespaces:
        raise UsageError("-n/--namespace and -A/--all-namespaces are mutually exclusive")
    query = parse_query(text)
    targets = _pick_sources(query.contexts, sources)
    rules = relationship_rules()
    from tessera.core.sources.protocol import RediscoverableSource

    def one(source: Any) -> Result:
        for attempt in (1, 2):
            engine = engine_for(source, namespace=namespace, all_namespaces=all_namespaces, rules=rules)
            try:
                return engine.run(query, shape=shape)
            except UnknownKind:
                # Kinds may come from a discovery cache a few minutes old; a new CRD is not in it.
                if attempt == 2 or not (isinstance(source, RediscoverableSource) and source.kinds_cached):
                    raise
                source.rediscover()
        raise AssertionError("unreachable")

    if len(targets) == 1:
        results = [(targets[0].name, one(targets[0]))]
        failures: list[TesseraError] = []
    else:
        results, failures = _run_each(targets, one)
    if not results:
        raise failures[0]
    result = results[0][1] if len(targets) == 1 else _merge(results, shape)
    result.warnings.extend(f.one_line() for f in failures)
    return result


def plan_mutation(
    text: str,
    sources: list[Any],
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    read_only: bool = False,
) -> list[Any]:
    """What a CREATE / SET / DELETE statement would do, without doing it.

    Args:
        text: the mutating query.
        sources: from open_sources(); ``IN`` picks among them as for reads.
        namespace / all_namespaces: the MATCH scope, as in run_query; new objects without a
            namespace go to ``namespace`` or the context's default.
        read_only: refuse (read-only mode: the flag or the config setting).
    Returns:
        one core.mutate.MutationPlan per source: its ApiCalls (``plan.calls``, in the order
        they are sent) and the matches, for a RETURN after the write.
    Raises:
        ReadOnly for files, recordings or read-only mode; QueryError for a bad target path.
    """
    from tessera.core.mutate import check_writable, plan_mutation as plan

    query = parse_query(text)
    if not query.is_mutation:
        raise QueryError("not a mutation: there is no CREATE, SET or DELETE")
    targets = _pick_sources(query.contexts, sources)
    rules = relationship_rules()
    plans = []
    for source in targets:
        check_writable(source, read_only=read_only)
        engine = engine_for(source, namespace=namespace, all_namespaces=all_namespaces, rules=rules)
        plans.append(plan(query, engine))
    return plans


def apply_mutation(call: Any) -> dict:
    """Send one planned call (see plan_mutation); returns the server's copy of the object."""
    from tessera.core.mutate import apply

    return apply(call)


def engine_for(source: Any, *, namespace: str | None = None, all_namespaces: bool = False,
               rules: list | None = None) -> Any:
    """A query engine over one source with the namespace scope run_query would use.

    Returns:
        a core.query.engine.Engine (one per run: it keeps per-run state).
    """
    from tessera.core.kinds import KindRegistry
    from tessera.core.query.engine import Engine, EngineContext
    from tessera.core.sources.protocol import default_namespace

    scope = None if all_namespaces else (namespace if namespace is not None else default_namespace(source))
    registry = KindRegistry(source.kinds())
    return Engine(EngineContext(source=source, registry=registry, rules=relationship_rules() if rules is None else rules,
                                namespace=scope))


def _run_each(targets: list[Any], one: Any) -> tuple[list[tuple[str, Result]], list[TesseraError]]:
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


def _pick_sources(contexts: tuple[str, ...], sources: list[Any]) -> list[Any]:
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
        from tessera.core.secrets import guard

        kube = _source_plugin("kubernetes")
        picked.append(guard(kube(context=ctx, kubeconfig=getattr(live[0], "kubeconfig", None))))
    return picked


def merge_results(results: list[tuple[str, Result]]) -> Result:
    """Rows of several sources as one Result with a leading ``context`` column."""
    return _merge(results, "rows")


def _merge(results: list[tuple[str, Result]], shape: str) -> Result:
    merged = Result()
    if shape == "cyphernetes":
        for name, res in results:
            for key, value in res.cyphernetes.items():
                if key == "aggregate":
                    merged.cyphernetes.setdefault("aggregate", {}).update(
                        {f"{name}_{k}": v for k, v in value.items()}
                    )
                else:
                    merged.cyphernetes[f"{name}_{key}"] = value
        return merged
    merged.columns = ["context"] + results[0][1].columns
    for name, res in results:
        merged.rows.extend({"context": name, **row} for row in res.rows)
        merged.keys.extend(f"{name} {key}" for key in res.keys)
        merged.nodes.extend(res.nodes)
        merged.edges.extend(res.edges)
    return merged


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


def list_kinds(sources: list[Any]) -> list[dict]:
    """Every kind each source offers, with all the names it answers to.

    Returns:
        rows of {source, kind, group, version, plural, singular, short_names, namespaced}.
    """
    rows = []
    for source in sources:
        for k in sorted(source.kinds(), key=lambda k: (k.kind, k.group)):
            rows.append(
                {
                    "source": source.name,
                    "kind": k.kind,
                    "group": k.group,
                    "version": k.version,
                    "plural": k.plural,
                    "singular": k.singular or k.kind.lower(),
                    "short_names": list(k.short_names),
                    "namespaced": k.namespaced,
                }
            )
    return rows


def _settings() -> dict:
    """The settings in force (config.toml and TESSERA_* variables); a bad one shows its error."""
    from tessera.core import config
    from tessera.core.secrets import secrets_shown

    out: dict = {}
    for name, read in (("read_only", config.read_only), ("show_secrets", secrets_shown),
                       ("store_lock_timeout", config.store_lock_timeout)):
        try:
            out[name] = read()
        except TesseraError as exc:
            out[name] = f"error: {exc.one_line()}"
    return out


def info() -> dict:
    """Paths, settings, versions and sources found, for ``tessera info``."""
    from importlib.metadata import PackageNotFoundError, version

    from tessera.core import config

    def ver(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    contexts: list[str] = []
    current = None
    from tessera.core.sources.protocol import ContextCatalog
    from tessera.core.sources.registry import source_class, source_names

    try:
        kube = source_class("kubernetes")
        if isinstance(kube, ContextCatalog):
            contexts, current = kube.available_contexts()
    except TesseraError:
        pass
    return {
        "version": ver("tessera"),
        "python": sys.version.split()[0],
        "paths": {
            "data_home": str(config.data_home()),
            "database": str(config.database_path()),
            "config_dir": str(config.config_dir()),
            "relationships_file": str(config.relationships_file()),
            "macros_file": str(config.macros_file()),
            "config_file": str(config.config_file()),
            "cache_dir": str(config.cache_dir()),
            "kubeconfig": str(config.kubeconfig_path()),
        },
        "settings": _settings(),
        "kube_contexts": contexts,
        "current_context": current,
        "source_plugins": source_names(),
        "libraries": {p: ver(p) for p in ("typer", "rich", "PyYAML", "orjson", "kubernetes", "platformdirs")},
    }
