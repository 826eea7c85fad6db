"""Mutations: CREATE, SET and DELETE over matched resources become a list of API calls.

Planning never writes: ``plan_mutation`` runs MATCH/WHERE, then turns each clause into
``ApiCall``s (JSON patches for SET, so the server changes exactly the paths named). The front end
shows the plan (``--dry-run`` prints the exact requests), asks for confirmation on a terminal, and
``apply`` sends it. Sources that are files or recordings refuse writes, as does read-only mode.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tessera.core.errors import QueryError, ReadOnly
from tessera.core.secrets import refuse_redacted
from tessera.core.sources.protocol import can_write, default_namespace

if TYPE_CHECKING:  # the query AST costs 17 ms to import: commands that never mutate skip it
    from tessera.core.query import ast

_WORKLOADS = {"deployment", "statefulset", "daemonset", "replicaset", "pod", "replicationcontroller"}


@dataclass
class ApiCall:
    """One write: verb (create, patch, delete) on one object of one source.

    body: the new object for create, the JSON patch operations for patch, None for delete.
    after: the object as it would look once written (for listings and RETURN).
    """

    verb: str
    source: Any
    kind: Any
    namespace: str | None
    name: str
    body: Any = None
    after: dict | None = None
    before: dict | None = field(default=None, repr=False)

    def target(self) -> str:
        """``Kind namespace/name`` (or ``Kind name`` when cluster-scoped)."""
        return f"{self.kind.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"

    def request(self) -> dict[str, Any]:
        """The exact HTTP request this call makes: context, method, path, content type, body."""
        method = {"create": "POST", "patch": "PATCH", "delete": "DELETE"}[self.verb]
        name = None if self.verb == "create" else self.name
        out: dict[str, Any] = {
            "context": self.source.name,
            "method": method,
            "path": self.source.api_path(self.kind, self.namespace, name),
        }
        if self.verb == "patch":
            out["content_type"] = "application/json-patch+json"
        if self.body is not None:
            out["body"] = self.body
        return out


def check_writable(source: Any, *, read_only: bool) -> None:
    """Refuse writes to files, recordings, or anything while read-only mode is on.

    Raises:
        ReadOnly naming the source and how to get out of the situation.
    """
    if read_only:
        raise ReadOnly(
            f"read-only mode refuses writes (to '{source.name}')",
            hint="drop --read-only / unset read_only in config.toml or TESSERA_READ_ONLY",
        )
    if not can_write(source):
        raise ReadOnly(
            f"source '{source.name}' is read-only: files, recordings, stores and peers' replicas cannot be changed",
            hint="run the mutation against a live cluster (--context)",
        )


@dataclass
class MutationPlan:
    """What a mutating statement will do on one source: the calls, in the order they are sent,
    and the matches they came from (for a RETURN after the write)."""

    source: Any
    query: ast.Query
    calls: list[ApiCall]
    bindings: list[dict]
    evaluator: Any

    def returned(self, written: dict[int, dict]) -> Any:
        """The RETURN rows over the matches, each resource replaced by the server's copy after
        the write (``written`` maps id(resource before) -> copy); a Result."""
        from tessera.core.query.project import project_rows

        after = [{var: written.get(id(obj), obj) for var, obj in b.items()} for b in self.bindings]
        return project_rows(self.query, after, self.evaluator)


def plan_mutation(query: ast.Query, engine: Any) -> MutationPlan:
    """The API calls a CREATE / SET / DELETE statement makes on the engine's source.

    Args:
        query: a parsed mutating query.
        engine: a core.query.engine.Engine bound to one writable source.
    Returns:
        a MutationPlan: creates first, then patches (one per object, all its SET paths), then
        deletes.
    Raises:
        QueryError for a path that cannot be set, an unsupported CREATE relationship...
    """
    from tessera.core.query import ast
    from tessera.core.query.engine import cross_product

    for expr in [n.props for p in query.create for n in p.nodes] + [i.value for i in query.set]:
        if isinstance(expr, ast.MapLiteral) and _is_open(expr):
            raise QueryError("a map ending in '...' is a placeholder from the docs; write every key to write it",
                             hint='e.g. {"k": "v", "k2": "v2"}')
    components, evaluator, _ = engine.match(query)
    bindings = cross_product([c.rows for c in components])
    source = engine.ctx.source
    calls: list[ApiCall] = []
    for binding in bindings:
        for path in query.create:
            calls.extend(_creates(path, binding, engine, evaluator))
    patches: dict[int, ApiCall] = {}
    for binding in bindings:
        for item in query.set:
            obj = binding.get(item.target.var)
            if obj is None:
                raise QueryError(f"SET: unknown variable '{item.target.var}'")
            call = patches.get(id(obj))
            if call is None:
                kind = engine.kind_of.get(id(obj)) or engine.ctx.registry.by_kind(obj.get("kind", ""))
                meta = obj.get("metadata") or {}
                call = ApiCall("patch", source, kind, meta.get("namespace"), meta.get("name", ""), body=[],
                               after=copy.deepcopy(obj), before=obj)
                patches[id(obj)] = call
            value = _jsonable(evaluator.value(item.value, binding))
            call.body.extend(set_operations(call.after, item.target, value))
    calls.extend(c for c in patches.values() if c.body)
    for call in calls:
        # a value read from a Secret is "<redacted>" (core/secrets.py): never send that as data
        refuse_redacted(call.body, f"{call.verb.upper() if call.verb == 'create' else 'SET'} on {call.target()}")
    deleted: set[int] = set()
    for binding in bindings:
        for var in query.delete:
            obj = binding.get(var)
            if obj is None or id(obj) in deleted:
                continue
            deleted.add(id(obj))
            kind = engine.kind_of.get(id(obj)) or engine.ctx.registry.by_kind(obj.get("kind", ""))
            meta = obj.get("metadata") or {}
            calls.append(ApiCall("delete", source, kind, meta.get("namespace"), meta.get("name", ""), before=obj))
    return MutationPlan(source, query, calls, bindings, evaluator)


def plan_mutations(
    text: str | ast.Query,
    sources: list[Any],
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    read_only: bool = False,
) -> list[MutationPlan]:
    """What a CREATE / SET / DELETE statement would do, without doing it.

    Args:
        text: the mutating query (text, or a parsed Query).
        sources: from open_sources(); ``IN`` picks among them as for reads.
        namespace / all_namespaces: the MATCH scope, as in run_query; new objects without a
            namespace go to ``namespace`` or the context's default.
        read_only: refuse (read-only mode: the flag or the config setting).
    Returns:
        one MutationPlan per source: its ApiCalls (``plan.calls``, in the order they are sent)
        and the matches, for a RETURN after the write.
    Raises:
        ReadOnly for files, recordings or read-only mode; QueryError for a bad target path.
    """
    from tessera.core.query.run import engine_for, parse_query, pick_sources
    from tessera.core.rules import rules_in_force

    query = parse_query(text) if isinstance(text, str) else text
    if not query.is_mutation:
        raise QueryError("not a mutation: there is no CREATE, SET or DELETE")
    targets = pick_sources(query.contexts, sources)
    rules = rules_in_force()
    plans = []
    for source in targets:
        check_writable(source, read_only=read_only)
        engine = engine_for(source, namespace=namespace, all_namespaces=all_namespaces, rules=rules)
        plans.append(plan_mutation(query, engine))
    return plans


def _is_open(expr: ast.MapLiteral) -> bool:
    from tessera.core.query import ast

    return expr.open or any(isinstance(v, ast.MapLiteral) and _is_open(v) for _, v in expr.items)


def apply(call: ApiCall) -> dict:
    """Send one call; returns the server's copy of the object (the deleted object for a delete)."""
    if call.verb == "create":
        return call.source.create(call.kind, call.body)
    if call.verb == "patch":
        return call.source.patch(call.kind, call.namespace, call.name, call.body)
    return call.source.delete(call.kind, call.namespace, call.name)


def written_key(call: ApiCall) -> int:
    """The id under which a call's resource sits in the plan's bindings (see MutationPlan.returned)."""
    return id(call.before if call.before is not None else call.after)


# --- SET -------------------------------------------------------------------------------------


def _pointer(parts: list[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def set_operations(obj: dict, target: ast.Property, value: Any) -> list[dict]:
    """JSON patch operations setting ``target`` to ``value`` in ``obj``; ``obj`` is updated too.

    ``[n]`` addresses one element (it must exist), ``[*]`` every element; missing keys are
    created with the nested maps they need.
    """
    if not target.path:
        raise QueryError(f"SET {target.text}: give a path below the variable, e.g. {target.var}.spec.replicas")
    ops: list[dict] = []
    _walk(obj, list(target.path), [], value, ops, target.text)
    return ops


def _walk(current: Any, segments: list[Any], at: list[Any], value: Any, ops: list[dict], text: str) -> None:
    from tessera.core.query import ast

    seg, rest = segments[0], segments[1:]
    if isinstance(seg, ast.Wildcard):
        if not isinstance(current, list):
            raise QueryError(f"SET {text}: [*] needs a list at /{'/'.join(map(str, at))}")
        for i, element in enumerate(current):
            if rest:
                _walk(element, rest, at + [i], value, ops, text)
            else:
                current[i] = copy.deepcopy(value)
                ops.append({"op": "replace", "path": _pointer(at + [i]), "value": value})
        return
    if isinstance(seg, ast.Index):
        if not isinstance(current, list) or not -len(current) <= seg.index < len(current):
            size = len(current) if isinstance(current, list) else 0
            raise QueryError(f"SET {text}: index [{seg.index}] is out of range (the list has {size} items)")
        index = seg.index % len(current)
        if rest:
            _walk(current[index], rest, at + [index], value, ops, text)
        else:
            current[index] = copy.deepcopy(value)
            ops.append({"op": "replace", "path": _pointer(at + [index]), "value": value})
        return
    if not isinstance(current, dict):
        raise QueryError(f"SET {text}: /{'/'.join(map(str, at))} is not a map")
    key = seg.name
    if key in current and current[key] is not None and rest:
        _walk(current[key], rest, at + [key], value, ops, text)
        return
    if rest:
        if any(not isinstance(s, ast.Key) for s in rest):
            raise QueryError(f"SET {text}: cannot index into '{key}', which does not exist")
        nested: Any = copy.deepcopy(value)
        for s in reversed(rest):
            nested = {s.name: nested}
        op = "replace" if key in current else "add"
        current[key] = nested
        ops.append({"op": op, "path": _pointer(at + [key]), "value": copy.deepcopy(nested)})
        return
    ops.append({"op": "replace" if key in current else "add", "path": _pointer(at + [key]), "value": value})
    current[key] = copy.deepcopy(value)


def _jsonable(value: Any) -> Any:
    from tessera.core.query.evaluate import jsonable

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return jsonable(value)


# --- CREATE ----------------------------------------------------------------------------------


def _creates(path: ast.PathPattern, binding: dict, engine: Any, evaluator: Any) -> list[ApiCall]:
    source = engine.ctx.source
    calls = []
    for i, node in enumerate(path.nodes):
        if node.var is not None and node.var in binding:
            continue  # an existing, matched resource
        if node.kind is None:
            raise QueryError(f"CREATE: give '{node.var or 'the new node'}' a kind, e.g. (x:ConfigMap {{...}})")
        kind = engine.ctx.registry.resolve(node.kind)
        props = _jsonable(evaluator.value(node.props, binding)) if node.props is not None else {}
        neighbour = None
        for j in (i - 1, i + 1):
            if 0 <= j < len(path.nodes) and path.nodes[j].var in binding:
                neighbour = binding[path.nodes[j].var]
        body = _from_relationship(kind, neighbour, props) if neighbour is not None else _from_properties(kind, props)
        meta = body.setdefault("metadata", {})
        if kind.namespaced and not meta.get("namespace"):
            meta["namespace"] = engine.ctx.namespace or default_namespace(source) or "default"
        if not kind.namespaced:
            meta.pop("namespace", None)
        if not meta.get("name"):
            raise QueryError(f"CREATE {kind.kind}: no name given", hint='add {name: "..."} to the node')
        body = {"apiVersion": kind.api_version, "kind": kind.kind, **{k: v for k, v in body.items() if k not in ("apiVersion", "kind")}}
        calls.append(ApiCall("create", source, kind, meta.get("namespace"), meta["name"], body=body, after=body))
        if node.var is not None:
            binding[node.var] = body
    return calls


def _from_properties(kind: Any, props: dict) -> dict:
    """A new object from node properties: ``name``/``namespace``/``labels`` shortcuts or a full body."""
    body = copy.deepcopy(props)
    meta = body.setdefault("metadata", {})
    for short in ("name", "namespace"):
        if short in body and not isinstance(body[short], dict):
            meta.setdefault(short, body.pop(short))
    if isinstance(body.get("labels"), dict):
        meta.setdefault("labels", {}).update(body.pop("labels"))
    return body


def _deep_merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for k, v in extra.items():
            out[k] = _deep_merge(base.get(k), v) if k in base else v
        return out
    return copy.deepcopy(extra)


def _from_relationship(kind: Any, other: dict, props: dict) -> dict:
    """A new object derived from the resource it is related to (as ``kubectl expose`` does).

    Supported: workload -> Service (selector from the workload's labels, ports from its
    containers), Service -> Ingress (a rule per host sending ``/`` to the service).
    """
    other_kind = (other.get("kind") or "").lower()
    meta = other.get("metadata") or {}
    base: dict[str, Any] = {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")}}
    if kind.kind == "Service" and other_kind in _WORKLOADS:
        spec = other.get("spec") or {}
        if other_kind == "pod":
            selector, pod_spec = dict(meta.get("labels") or {}), spec
        else:
            selector = dict((spec.get("selector") or {}).get("matchLabels") or spec.get("selector") or {})
            pod_spec = (spec.get("template") or {}).get("spec") or {}
        if not selector:
            raise QueryError(f"CREATE Service from {other.get('kind')} {meta.get('name')}: it has no labels to select")
        ports = []
        for container in pod_spec.get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("containerPort"):
                    entry = {"name": port.get("name"), "port": port["containerPort"], "targetPort": port["containerPort"],
                             "protocol": port.get("protocol", "TCP")}
                    ports.append({k: v for k, v in entry.items() if v is not None})
        if len(ports) > 1:
            for i, p in enumerate(ports):
                p.setdefault("name", f"port-{i}")
        base["spec"] = {"selector": selector, "ports": ports or [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}
    elif kind.kind == "Ingress" and other_kind == "service":
        ports = (other.get("spec") or {}).get("ports") or [{"port": 80}]
        backend = {"service": {"name": meta.get("name"), "port": {"number": ports[0].get("port", 80)}}}
        http = {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}
        rules = ((props.get("spec") or {}).get("rules")) or [{}]
        props = _deep_merge(props, {"spec": {"rules": [{**r, "http": r.get("http") or http} for r in rules]}})
    else:
        raise QueryError(
            f"CREATE ({other.get('kind')})->({kind.kind}) is not supported",
            hint="supported: a workload -> Service, a Service -> Ingress; or CREATE the object from full properties",
        )
    return _deep_merge(base, _from_properties(kind, props) if props else {})
