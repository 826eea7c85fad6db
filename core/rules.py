"""The built-in relationship rules, and user rules read from ``relationships.yaml``.

``BUILTIN_RULES`` holds, in this order:

1. the rules of Cyphernetes (``origin="cyphernetes"``): the hard-coded table of
   ``pkg/core/relationship_types.go`` (``relationshipRules``), then the rules that table had in
   ``pkg/parser/relationship_types.go`` before Cyphernetes moved them to its dynamic
   "name-reference" discovery (PV/PVC, Node, RBAC, StorageClass, ConfigMap/Secret/ServiceAccount
   volumes). Kind pairs, type names, field paths and comparisons are kept as upstream has them,
   except that selector matches on a Kubernetes LabelSelector (NetworkPolicy, PDB) use
   ``label_selector`` (matchLabels + matchExpressions, in the right direction) instead of
   Cyphernetes' ``ContainsAll`` on ``matchLabels``.
2. rules Tessera adds (``origin="builtin"``): the references a pod spec makes to ConfigMaps,
   Secrets, ServiceAccounts and PersistentVolumeClaims, from Pods and from the pod templates of
   Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs.
3. the knowledge rules (``origin="knowledge"``, core/mention_links.py): Chunk and Document
   -MENTIONS-> the resources their text names, Chunk -PART_OF-> Document. Their second criterion's
   ``scoped_name`` comparison is theirs alone (not offered to relationships.yaml).

Cyphernetes ORs the criteria of one rule; a Tessera ``Rule`` ANDs them. A Cyphernetes rule with
several alternative paths is therefore several Tessera rules sharing one ``type``; the engine
unions the pairs of every rule between two kinds.

See docs/relationships.md for the table and the ``relationships.yaml`` schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tessera.core.errors import InputError
from tessera.core.relationships import Criterion, Rule

COMPARISONS = ("exact", "contains_all", "label_selector")

_OWNER = "metadata.ownerReferences[].name"
_NAME = "metadata.name"


def _exact(kind_a: str, kind_b: str, rtype: str, field_a: str, field_b: str, *, origin: str,
           same_namespace: bool = True) -> Rule:
    return Rule(kind_a, kind_b, rtype, (Criterion(field_a, field_b, "exact"),), same_namespace, origin)


def _select(kind_a: str, kind_b: str, rtype: str, labels: str, selector: str, comparison: str, *,
            origin: str) -> Rule:
    return Rule(kind_a, kind_b, rtype, (Criterion(labels, selector, comparison),), True, origin)


def _cyphernetes_rules() -> list[Rule]:
    o = "cyphernetes"
    return [
        # --- pkg/core/relationship_types.go, var relationshipRules (current upstream), in order.
        _exact("Pod", "ReplicaSet", "REPLICASET_OWN_POD", _OWNER, _NAME, origin=o),
        _exact("ReplicaSet", "Deployment", "DEPLOYMENT_OWN_REPLICASET", _OWNER, _NAME, origin=o),
        _exact("Pod", "CronJob", "CRONJOB_OWN_POD", _OWNER, _NAME, origin=o),
        _exact("Job", "CronJob", "CRONJOB_OWN_JOB", _OWNER, _NAME, origin=o),
        _exact("Endpoints", "Service", "SERVICE_HAS_ENDPOINTS", _NAME, _NAME, origin=o),
        # Upstream: networkpolicies.spec.podSelector.matchLabels ContainsAll pods.metadata.labels
        # (which, as written, requires the pod's labels to be a subset of the selector). Here:
        # the pod's labels are selected by the policy's podSelector, as Kubernetes does it.
        _select("Pod", "NetworkPolicy", "NETWORKPOLICY_APPLY_POD", "metadata.labels", "spec.podSelector",
                "label_selector", origin=o),
        _exact("HorizontalPodAutoscaler", "Deployment", "HPA_SCALE_DEPLOYMENT", "spec.scaleTargetRef.name",
               _NAME, origin=o),
        _select("Pod", "Service", "SERVICE_EXPOSE_POD", "metadata.labels", "spec.selector", "contains_all",
                origin=o),
        _exact("Pod", "StatefulSet", "STATEFULSET_OWN_POD", _OWNER, _NAME, origin=o),
        _exact("Pod", "DaemonSet", "DAEMONSET_OWN_POD", _OWNER, _NAME, origin=o),
        _exact("Pod", "Job", "JOB_OWN_POD", _OWNER, _NAME, origin=o),
        _exact("Ingress", "Service", "ROUTE", "spec.rules[].http.paths[].backend.service.name", _NAME, origin=o),
        _select("ReplicaSet", "Service", "SERVICE_EXPOSE_REPLICASET", "spec.template.metadata.labels",
                "spec.selector", "contains_all", origin=o),
        _select("StatefulSet", "Service", "SERVICE_EXPOSE_STATEFULSET", "spec.template.metadata.labels",
                "spec.selector", "contains_all", origin=o),
        _select("DaemonSet", "Service", "SERVICE_EXPOSE_DAEMONSET", "spec.template.metadata.labels",
                "spec.selector", "contains_all", origin=o),
        _select("Deployment", "Service", "SERVICE_EXPOSE_DEPLOYMENT", "spec.selector.matchLabels",
                "spec.selector", "contains_all", origin=o),
        _exact("MutatingWebhookConfiguration", "Service", "MUTATINGWEBHOOK_TARGET_SERVICE",
               "webhooks[].clientConfig.service.name", _NAME, origin=o),
        _exact("ValidatingWebhookConfiguration", "Service", "VALIDATINGWEBHOOK_TARGET_SERVICE",
               "webhooks[].clientConfig.service.name", _NAME, origin=o),
        # Upstream: spec.selector.matchLabels ContainsAll pods.metadata.labels (see NetworkPolicy).
        _select("Pod", "PodDisruptionBudget", "PDB_PROTECT_POD", "metadata.labels", "spec.selector",
                "label_selector", origin=o),
        # Upstream kindB is "*": a Namespace relates to every namespaced resource in it. The engine
        # must treat kind_b "*" as "any namespaced kind"; the criterion itself is the namespace.
        _exact("Namespace", "*", "NAMESPACE_HAS_RESOURCE", _NAME, "metadata.namespace", origin=o,
               same_namespace=False),
        # --- pkg/parser/relationship_types.go (earlier releases): hard-coded rules that current
        # upstream derives at start-up from name-reference fields (spec.volumeName, spec.nodeName,
        # roleRef, storageClassName, volumes[].configMap.name, ...) instead.
        _exact("PersistentVolumeClaim", "PersistentVolume", "PV_BOUND_PVC", "spec.volumeName", _NAME, origin=o),
        _exact("ConfigMap", "Pod", "POD_USE_CONFIGMAP", _NAME, "spec.volumes[].configMap.name", origin=o),
        _exact("Secret", "Pod", "POD_USE_SECRET", _NAME, "spec.volumes[].secret.secretName", origin=o),
        _exact("Pod", "Node", "NODE_RUN_POD", "spec.nodeName", _NAME, origin=o),
        _exact("ServiceAccount", "Pod", "POD_USE_SERVICEACCOUNT", _NAME, "spec.serviceAccountName", origin=o),
        _exact("Role", "RoleBinding", "ROLEBINDING_REFERENCE_ROLE", _NAME, "roleRef.name", origin=o),
        _exact("ClusterRole", "ClusterRoleBinding", "CLUSTERROLEBINDING_REFERENCE_CLUSTERROLE", _NAME,
               "roleRef.name", origin=o),
        _exact("StorageClass", "PersistentVolumeClaim", "PVC_USE_STORAGECLASS", _NAME, "spec.storageClassName",
               origin=o),
    ]


# Where each workload kind keeps its pod spec, and the prefix of its relationship type names.
POD_SPEC_PATHS: dict[str, tuple[str, str]] = {
    "Pod": ("spec", "POD"),
    "Deployment": ("spec.template.spec", "DEPLOYMENT"),
    "StatefulSet": ("spec.template.spec", "STATEFULSET"),
    "DaemonSet": ("spec.template.spec", "DAEMONSET"),
    "ReplicaSet": ("spec.template.spec", "REPLICASET"),
    "Job": ("spec.template.spec", "JOB"),
    "CronJob": ("spec.jobTemplate.spec.template.spec", "CRONJOB"),
}


def _container_lists(kind: str) -> tuple[str, ...]:
    # Ephemeral containers exist on Pods only (templates cannot carry them).
    return ("containers", "initContainers", "ephemeralContainers") if kind == "Pod" else (
        "containers", "initContainers")


def pod_spec_references(kind: str) -> dict[str, list[str]]:
    """The paths (relative to the pod spec) naming ConfigMaps, Secrets, ServiceAccounts and PVCs."""
    configmap = ["volumes[].configMap.name", "volumes[].projected.sources[].configMap.name"]
    secret = ["volumes[].secret.secretName", "volumes[].projected.sources[].secret.name"]
    for c in _container_lists(kind):
        configmap += [f"{c}[].envFrom[].configMapRef.name", f"{c}[].env[].valueFrom.configMapKeyRef.name"]
        secret += [f"{c}[].envFrom[].secretRef.name", f"{c}[].env[].valueFrom.secretKeyRef.name"]
    secret.append("imagePullSecrets[].name")
    return {
        "ConfigMap": configmap,
        "Secret": secret,
        "ServiceAccount": ["serviceAccountName"],
        "PersistentVolumeClaim": ["volumes[].persistentVolumeClaim.claimName"],
    }


_TARGET_SUFFIX = {
    "ConfigMap": "USE_CONFIGMAP",
    "Secret": "USE_SECRET",
    "ServiceAccount": "USE_SERVICEACCOUNT",
    "PersistentVolumeClaim": "USE_PVC",
}


def _pod_reference_rules(existing: list[Rule]) -> list[Rule]:
    """One rule per reference path; all rules of a kind pair share its type.

    Where Cyphernetes already links the pair (Pod-ConfigMap, Pod-Secret, Pod-ServiceAccount), its
    type is reused and its path is not repeated.
    """
    pair_type: dict[frozenset, str] = {}
    known: set[tuple] = set()
    for r in existing:
        pair_type.setdefault(frozenset((r.kind_a, r.kind_b)), r.type)
        for c in r.criteria:
            known.add((r.kind_a, c.field_a, r.kind_b, c.field_b))
            known.add((r.kind_b, c.field_b, r.kind_a, c.field_a))
    out: list[Rule] = []
    for kind, (spec, prefix) in POD_SPEC_PATHS.items():
        for target, paths in pod_spec_references(kind).items():
            rtype = pair_type.get(frozenset((kind, target)), f"{prefix}_{_TARGET_SUFFIX[target]}")
            for rel in paths:
                path = f"{spec}.{rel}"
                if (kind, path, target, _NAME) in known:
                    continue
                out.append(_exact(kind, target, rtype, path, _NAME, origin="builtin"))
    return out


def _builtin_rules() -> list[Rule]:
    from tessera.core.mention_links import mention_rules

    cyph = _cyphernetes_rules()
    return cyph + _pod_reference_rules(cyph) + mention_rules()


BUILTIN_RULES: list[Rule] = _builtin_rules()


# ---------------------------------------------------------------------------- relationships.yaml

_KIND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RULE_KEYS = {"from", "to", "type", "match", "same_namespace"}
_MATCH_KEYS = {"from", "to", "compare"}


def _fail(path: Path, node: Any, what: str) -> InputError:
    line = node.start_mark.line + 1 if node is not None and getattr(node, "start_mark", None) else 1
    return InputError(f"{path}:{line}: {what}", hint="see docs/relationships.md for the relationships.yaml schema")


def _mapping(path: Path, node: Any, what: str, allowed: set[str], required: set[str]) -> dict[str, tuple]:
    """A mapping node's entries as {key: (key_node, value_node)}, checking keys."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise _fail(path, node, f"{what} must be a mapping")
    out: dict[str, tuple] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _fail(path, key_node, f"{what}: keys must be plain words")
        key = key_node.value
        if key not in allowed:
            raise _fail(path, key_node, f"{what}: unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")
        if key in out:
            raise _fail(path, key_node, f"{what}: duplicate key '{key}'")
        out[key] = (key_node, value_node)
    missing = sorted(required - set(out))
    if missing:
        raise _fail(path, node, f"{what}: missing key '{missing[0]}'")
    return out


def _string(path: Path, node: Any, what: str) -> str:
    import yaml

    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str" or not node.value.strip():
        raise _fail(path, node, f"{what} must be a non-empty string")
    return node.value.strip()


def _check_path(path: Path, node: Any, text: str, what: str) -> str:
    from tessera.core.errors import TesseraError
    from tessera.core.paths import parse_path

    if text.startswith("$."):  # Cyphernetes spelling: $.metadata.name
        text = text[2:]
    try:
        parse_path(text)
    except TesseraError as err:
        raise _fail(path, node, f"{what}: {err.message}") from None
    return text


def load_user_rules(path: Path) -> list[Rule]:
    """Read user relationship rules from a relationships.yaml file.

    Args:
        path: the file. Schema (docs/relationships.md)::

            relationships:
              - from: Deployment            # Kind name of one side (kind_a)
                to: ConfigMap               # Kind name of the other side (kind_b)
                type: DEPLOYMENT_USE_CONFIGMAP
                match:                      # all must hold
                  - from: spec.template.spec.volumes[].configMap.name   # path on `from`
                    to: metadata.name                                   # path on `to`
                    compare: exact          # exact (default) | contains_all | label_selector
                same_namespace: true        # optional, default true

    Returns:
        the rules, in file order, each with ``origin`` = the file path.
    Raises:
        InputError ``PATH:LINE: what`` (exit 2) when the file cannot be read or breaks the schema.
    """
    import yaml

    from tessera.core.documents import check_yaml_depth
    from tessera.core.inputs import decode_text

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}:1: cannot read relationships file: {err.strerror}") from None
    text = decode_text(data, str(path))  # InputError PATH:LINE:COLUMN at the first byte that is not UTF-8
    check_yaml_depth(text, str(path))  # the composer below recurses once per level
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        line = (err.problem_mark or err.context_mark).line + 1 if (err.problem_mark or err.context_mark) else 1
        raise InputError(f"{path}:{line}: not valid YAML: {err.problem or err}") from None
    except yaml.YAMLError as err:  # e.g. several documents
        raise InputError(f"{path}:1: not valid YAML: {err}") from None
    if root is None:
        return []
    top = _mapping(path, root, "the file", {"relationships"}, set())
    if "relationships" not in top:
        return []
    seq = top["relationships"][1]
    if isinstance(seq, yaml.ScalarNode) and seq.tag == "tag:yaml.org,2002:null":
        return []
    if not isinstance(seq, yaml.SequenceNode):
        raise _fail(path, seq, "'relationships' must be a list of rules")
    origin = str(path)
    rules: list[Rule] = []
    for i, rnode in enumerate(seq.value, 1):
        what = f"relationship {i}"
        entries = _mapping(path, rnode, what, _RULE_KEYS, {"from", "to", "type", "match"})
        kinds = []
        for key in ("from", "to"):
            node = entries[key][1]
            kind = _string(path, node, f"{what}: '{key}'")
            if not _KIND_RE.match(kind):
                raise _fail(path, node, f"{what}: '{key}' must be a Kind name such as ConfigMap, got '{kind}'")
            kinds.append(kind)
        tnode = entries["type"][1]
        rtype = _string(path, tnode, f"{what}: 'type'")
        if not _TYPE_RE.match(rtype):
            raise _fail(path, tnode, f"{what}: 'type' must be a word such as USES_CONFIGMAP, got '{rtype}'")
        same_ns = True
        if "same_namespace" in entries:
            snode = entries["same_namespace"][1]
            if not isinstance(snode, yaml.ScalarNode) or snode.tag != "tag:yaml.org,2002:bool":
                raise _fail(path, snode, f"{what}: 'same_namespace' must be true or false")
            same_ns = snode.value.lower() in ("true", "yes", "on", "y")
        mnode = entries["match"][1]
        if not isinstance(mnode, yaml.SequenceNode) or not mnode.value:
            raise _fail(path, mnode, f"{what}: 'match' must be a non-empty list of criteria")
        criteria = []
        for j, cnode in enumerate(mnode.value, 1):
            cwhat = f"{what}, match {j}"
            centries = _mapping(path, cnode, cwhat, _MATCH_KEYS, {"from", "to"})
            fnode, tonode = centries["from"][1], centries["to"][1]
            field_a = _check_path(path, fnode, _string(path, fnode, f"{cwhat}: 'from'"), f"{cwhat}: 'from'")
            field_b = _check_path(path, tonode, _string(path, tonode, f"{cwhat}: 'to'"), f"{cwhat}: 'to'")
            comparison = "exact"
            if "compare" in centries:
                cmp_node = centries["compare"][1]
                comparison = _string(path, cmp_node, f"{cwhat}: 'compare'")
                if comparison not in COMPARISONS:
                    raise _fail(
                        path, cmp_node,
                        f"{cwhat}: unknown comparison '{comparison}' (use {', '.join(COMPARISONS)})",
                    )
            criteria.append(Criterion(field_a, field_b, comparison))
        rules.append(Rule(kinds[0], kinds[1], rtype, tuple(criteria), same_ns, origin))
    return rules


def all_rules(path: Path | None = None) -> list[Rule]:
    """The built-in rules followed by the user's rules from ``path`` (when given)."""
    rules = list(BUILTIN_RULES)
    if path is not None:
        rules.extend(load_user_rules(Path(path)))
    return rules


def rules_in_force() -> list[Rule]:
    """The relationship rules in force: the built-in ones, then the user's relationships.yaml.

    Read once per process and again only when that file changes (its size or modification time),
    so a command or a live view does not parse it on every run.
    """
    from tessera.core import config

    path = config.relationships_file()
    try:
        stat = path.stat()
        stamp: tuple | None = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = (str(path), None, None)
    cached = _RULES_READ.get("stamp")
    if cached is not None and cached == stamp:
        return list(_RULES_READ["rules"])
    rules = all_rules(path if stamp[1] is not None else None)
    _RULES_READ.update(stamp=stamp, rules=rules)
    return list(rules)


_RULES_READ: dict[str, Any] = {}  # the last rules_in_force answer and the file state it was read at
