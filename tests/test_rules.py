"""Built-in relationship rules (core/rules.py) and relationships.yaml loading.

The pair checks run the rules through the real hash join (``rule_pairs``), the way the engine
does: every rule between two kinds, in either orientation, and the union of their pairs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import SHARED
from tessera.core.errors import EXIT_USAGE, InputError
from tessera.core.query.joins import rule_pairs
from tessera.core.relationships import Criterion, Rule
from tessera.core.rules import BUILTIN_RULES, COMPARISONS, all_rules, load_user_rules

NS = "default"

# (kind_a, kind_b, type) of every Cyphernetes rule: the 20 of pkg/core/relationship_types.go, then
# the 8 that pkg/parser/relationship_types.go hard-coded before upstream made them dynamic.
CYPHERNETES = {
    ("Pod", "ReplicaSet", "REPLICASET_OWN_POD"),
    ("ReplicaSet", "Deployment", "DEPLOYMENT_OWN_REPLICASET"),
    ("Pod", "CronJob", "CRONJOB_OWN_POD"),
    ("Job", "CronJob", "CRONJOB_OWN_JOB"),
    ("Endpoints", "Service", "SERVICE_HAS_ENDPOINTS"),
    ("Pod", "NetworkPolicy", "NETWORKPOLICY_APPLY_POD"),
    ("HorizontalPodAutoscaler", "Deployment", "HPA_SCALE_DEPLOYMENT"),
    ("Pod", "Service", "SERVICE_EXPOSE_POD"),
    ("Pod", "StatefulSet", "STATEFULSET_OWN_POD"),
    ("Pod", "DaemonSet", "DAEMONSET_OWN_POD"),
    ("Pod", "Job", "JOB_OWN_POD"),
    ("Ingress", "Service", "ROUTE"),
    ("ReplicaSet", "Service", "SERVICE_EXPOSE_REPLICASET"),
    ("StatefulSet", "Service", "SERVICE_EXPOSE_STATEFULSET"),
    ("DaemonSet", "Service", "SERVICE_EXPOSE_DAEMONSET"),
    ("Deployment", "Service", "SERVICE_EXPOSE_DEPLOYMENT"),
    ("MutatingWebhookConfiguration", "Service", "MUTATINGWEBHOOK_TARGET_SERVICE"),
    ("ValidatingWebhookConfiguration", "Service", "VALIDATINGWEBHOOK_TARGET_SERVICE"),
    ("Pod", "PodDisruptionBudget", "PDB_PROTECT_POD"),
    ("Namespace", "*", "NAMESPACE_HAS_RESOURCE"),
    ("PersistentVolumeClaim", "PersistentVolume", "PV_BOUND_PVC"),
    ("ConfigMap", "Pod", "POD_USE_CONFIGMAP"),
    ("Secret", "Pod", "POD_USE_SECRET"),
    ("Pod", "Node", "NODE_RUN_POD"),
    ("ServiceAccount", "Pod", "POD_USE_SERVICEACCOUNT"),
    ("Role", "RoleBinding", "ROLEBINDING_REFERENCE_ROLE"),
    ("ClusterRole", "ClusterRoleBinding", "CLUSTERROLEBINDING_REFERENCE_CLUSTERROLE"),
    ("StorageClass", "PersistentVolumeClaim", "PVC_USE_STORAGECLASS"),
}


# ----------------------------------------------------------------------------- helpers


def obj(kind: str, name: str, ns: str | None = NS, **body) -> dict:
    meta = {"name": name}
    if ns:
        meta["namespace"] = ns
    meta.update(body.pop("metadata", {}))
    return {"kind": kind, "metadata": meta, **body}


def owned(kind: str, name: str, owner: str, **body) -> dict:
    return obj(kind, name, metadata={"ownerReferences": [{"kind": "X", "name": owner, "uid": "u"}]}, **body)


def pod_template(spec: dict, labels: dict | None = None) -> dict:
    return {"template": {"metadata": {"labels": labels or {}}, "spec": spec}}


def related(left_kind: str, right_kind: str, lefts: list[dict], rights: list[dict], rules=None) -> set:
    """(left name, right name, type) for every pair any rule between the kinds finds."""
    out = set()
    for rule in rules if rules is not None else BUILTIN_RULES:
        if (rule.kind_a, rule.kind_b) == (left_kind, right_kind):
            pairs = rule_pairs(rule, lefts, rights)
        elif (rule.kind_b, rule.kind_a) == (left_kind, right_kind):
            pairs = ((a, b) for b, a in rule_pairs(rule, rights, lefts))
        else:
            continue
        for a, b in pairs:
            out.add((a["metadata"]["name"], b["metadata"]["name"], rule.type))
    return out


def names(pairs: set) -> set:
    return {(a, b) for a, b, _ in pairs}


# ----------------------------------------------------------------------------- the table


def test_cyphernetes_rules_are_all_there_and_marked():
    cyph = [r for r in BUILTIN_RULES if r.origin == "cyphernetes"]
    assert len(cyph) == 28
    assert {(r.kind_a, r.kind_b, r.type) for r in cyph} == CYPHERNETES
    # current upstream table first, in its order
    assert [r.type for r in cyph[:3]] == ["REPLICASET_OWN_POD", "DEPLOYMENT_OWN_REPLICASET", "CRONJOB_OWN_POD"]
    assert cyph[19].type == "NAMESPACE_HAS_RESOURCE"


def test_every_builtin_rule_is_well_formed():
    from tessera.core.paths import parse_path

    origins = Counter(r.origin for r in BUILTIN_RULES)
    assert set(origins) == {"cyphernetes", "builtin", "knowledge"}
    for r in BUILTIN_RULES:
        assert r.criteria and r.type.isupper()
        for c in r.criteria:
            # scoped_name (a mention's NS/NAME, core/mention_links.py) is the knowledge rules' own
            assert c.comparison in COMPARISONS or (r.origin == "knowledge" and c.comparison == "scoped_name"
                                                   and c is not r.criteria[0])
            parse_path(c.field_a), parse_path(c.field_b)
    # no two rules are the same
    assert len(set(BUILTIN_RULES)) == len(BUILTIN_RULES)


def test_cyphernetes_criteria_match_upstream():
    by_type = {r.type: r for r in BUILTIN_RULES if r.origin == "cyphernetes"}
    owner = Criterion("metadata.ownerReferences[].name", "metadata.name", "exact")
    for t in ("REPLICASET_OWN_POD", "DEPLOYMENT_OWN_REPLICASET", "CRONJOB_OWN_POD", "CRONJOB_OWN_JOB",
              "STATEFULSET_OWN_POD", "DAEMONSET_OWN_POD", "JOB_OWN_POD"):
        assert by_type[t].criteria == (owner,)
    assert by_type["ROUTE"].criteria == (
        Criterion("spec.rules[].http.paths[].backend.service.name", "metadata.name", "exact"),)
    assert by_type["SERVICE_EXPOSE_POD"].criteria == (Criterion("metadata.labels", "spec.selector", "contains_all"),)
    assert by_type["SERVICE_EXPOSE_DEPLOYMENT"].criteria == (
        Criterion("spec.selector.matchLabels", "spec.selector", "contains_all"),)
    for t in ("SERVICE_EXPOSE_REPLICASET", "SERVICE_EXPOSE_STATEFULSET", "SERVICE_EXPOSE_DAEMONSET"):
        assert by_type[t].criteria == (Criterion("spec.template.metadata.labels", "spec.selector", "contains_all"),)
    assert by_type["NETWORKPOLICY_APPLY_POD"].criteria[0].comparison == "label_selector"
    assert by_type["PDB_PROTECT_POD"].criteria[0].comparison == "label_selector"
    assert by_type["HPA_SCALE_DEPLOYMENT"].criteria == (Criterion("spec.scaleTargetRef.name", "metadata.name"),)
    assert by_type["PV_BOUND_PVC"].criteria == (Criterion("spec.volumeName", "metadata.name"),)


def test_added_rules_share_one_type_per_kind_pair_and_never_repeat_cyphernetes():
    types: dict[frozenset, set] = {}
    for r in BUILTIN_RULES:
        types.setdefault(frozenset((r.kind_a, r.kind_b)), set()).add(r.type)
    assert all(len(t) == 1 for t in types.values()), {k: v for k, v in types.items() if len(v) > 1}
    # the Pod-ConfigMap/Secret/ServiceAccount pairs keep Cyphernetes' type names
    assert types[frozenset(("Pod", "ConfigMap"))] == {"POD_USE_CONFIGMAP"}
    assert types[frozenset(("Pod", "Secret"))] == {"POD_USE_SECRET"}
    assert types[frozenset(("Pod", "ServiceAccount"))] == {"POD_USE_SERVICEACCOUNT"}
    # and no added rule repeats a path Cyphernetes already has
    added = [r for r in BUILTIN_RULES if r.origin == "builtin"]
    assert not any(r.kind_a == "Pod" and r.kind_b == "ServiceAccount" for r in added)
    assert not any(r.criteria[0].field_a == "spec.volumes[].configMap.name" and r.kind_a == "Pod" for r in added)
    for kind in ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"):
        for target in ("ConfigMap", "Secret", "ServiceAccount", "PersistentVolumeClaim"):
            assert frozenset((kind, target)) in types, (kind, target)


# ----------------------------------------------------------------------------- pairs


def test_deployment_owns_replicaset_and_replicaset_owns_pod():
    deps = [obj("Deployment", "web"), obj("Deployment", "api")]
    rss = [owned("ReplicaSet", "web-1", "web"), owned("ReplicaSet", "api-1", "api"), obj("ReplicaSet", "orphan")]
    assert related("Deployment", "ReplicaSet", deps, rss) == {
        ("web", "web-1", "DEPLOYMENT_OWN_REPLICASET"), ("api", "api-1", "DEPLOYMENT_OWN_REPLICASET")}
    pods = [owned("Pod", "web-1-a", "web-1"), owned("Pod", "web-1-b", "web-1"), obj("Pod", "lonely")]
    assert names(related("ReplicaSet", "Pod", rss, pods)) == {("web-1", "web-1-a"), ("web-1", "web-1-b")}
    # no direct Deployment-Pod rule (Cyphernetes goes through the ReplicaSet)
    assert related("Deployment", "Pod", deps, pods) == set()


def test_owner_references_stay_in_their_namespace():
    deps = [obj("Deployment", "web", ns="a")]
    rss = [owned("ReplicaSet", "web-1", "web") | {"metadata": {"name": "web-1", "namespace": "b",
                                                                 "ownerReferences": [{"name": "web"}]}}]
    assert related("Deployment", "ReplicaSet", deps, rss) == set()


def test_service_selects_pods_by_labels():
    svc = [obj("Service", "web", spec={"selector": {"app": "web"}}),
           obj("Service", "headless", spec={}),
           obj("Service", "both", spec={"selector": {"app": "web", "tier": "fe"}})]
    pods = [obj("Pod", "p1", metadata={"labels": {"app": "web", "tier": "fe"}}),
            obj("Pod", "p2", metadata={"labels": {"app": "web"}}),
            obj("Pod", "p3", metadata={"labels": {"app": "db"}}),
            obj("Pod", "p4")]
    assert names(related("Service", "Pod", svc, pods)) == {("web", "p1"), ("web", "p2"), ("both", "p1")}


def test_service_exposes_workloads_through_their_selectors_and_templates():
    svc = [obj("Service", "web", spec={"selector": {"app": "web"}})]
    dep = [obj("Deployment", "web", spec={"selector": {"matchLabels": {"app": "web"}}}),
           obj("Deployment", "other", spec={"selector": {"matchLabels": {"app": "other"}}})]
    assert related("Deployment", "Service", dep, svc) == {("web", "web", "SERVICE_EXPOSE_DEPLOYMENT")}
    sts = [obj("StatefulSet", "db", spec=pod_template({}, {"app": "web", "x": "y"}))]
    assert names(related("StatefulSet", "Service", sts, svc)) == {("db", "web")}


def test_ingress_routes_to_services():
    ing = [obj("Ingress", "front", spec={"rules": [
        {"http": {"paths": [{"backend": {"service": {"name": "web"}}},
                            {"backend": {"service": {"name": "api"}}}]}},
        {"host": "x", "http": {"paths": [{"backend": {"service": {"name": "docs"}}}]}}]})]
    svc = [obj("Service", n) for n in ("web", "api", "docs", "unrelated")]
    assert related("Ingress", "Service", ing, svc) == {
        ("front", "web", "ROUTE"), ("front", "api", "ROUTE"), ("front", "docs", "ROUTE")}


def test_hpa_scales_deployment():
    hpa = [obj("HorizontalPodAutoscaler", "web", spec={"scaleTargetRef": {"kind": "Deployment", "name": "web"}})]
    deps = [obj("Deployment", "web"), obj("Deployment", "api")]
    assert related("HorizontalPodAutoscaler", "Deployment", hpa, deps) == {("web", "web", "HPA_SCALE_DEPLOYMENT")}


def test_pvc_bound_to_cluster_scoped_pv():
    pvcs = [obj("PersistentVolumeClaim", "data", spec={"volumeName": "pv-1"}),
            obj("PersistentVolumeClaim", "pending", spec={})]
    pvs = [obj("PersistentVolume", "pv-1", ns=None), obj("PersistentVolume", "pv-2", ns=None)]
    assert related("PersistentVolumeClaim", "PersistentVolume", pvcs, pvs) == {("data", "pv-1", "PV_BOUND_PVC")}
    assert related("PersistentVolume", "PersistentVolumeClaim", pvs, pvcs) == {("pv-1", "data", "PV_BOUND_PVC")}


def test_endpoints_share_the_service_name():
    eps = [obj("Endpoints", "web"), obj("Endpoints", "kubernetes")]
    svc = [obj("Service", "web")]
    assert related("Service", "Endpoints", svc, eps) == {("web", "web", "SERVICE_HAS_ENDPOINTS")}


def test_network_policy_and_pdb_use_label_selectors():
    pods = [obj("Pod", "p1", metadata={"labels": {"app": "web", "pod-template-hash": "abc"}}),
            obj("Pod", "p2", metadata={"labels": {"app": "db"}})]
    pols = [obj("NetworkPolicy", "web-only", spec={"podSelector": {"matchLabels": {"app": "web"}}}),
            obj("NetworkPolicy", "all", spec={"podSelector": {}}),
            obj("NetworkPolicy", "not-db", spec={"podSelector": {"matchExpressions": [
                {"key": "app", "operator": "NotIn", "values": ["db"]}]}})]
    assert names(related("NetworkPolicy", "Pod", pols, pods)) == {
        ("web-only", "p1"), ("all", "p1"), ("all", "p2"), ("not-db", "p1")}
    pdbs = [obj("PodDisruptionBudget", "db", spec={"selector": {"matchLabels": {"app": "db"}}})]
    assert related("PodDisruptionBudget", "Pod", pdbs, pods) == {("db", "p2", "PDB_PROTECT_POD")}


def test_webhooks_and_rbac():
    hooks = [obj("ValidatingWebhookConfiguration", "v", ns=None,
                 webhooks=[{"clientConfig": {"service": {"name": "hook-svc", "namespace": NS}}}])]
    svc = [obj("Service", "hook-svc"), obj("Service", "web")]
    assert names(related("ValidatingWebhookConfiguration", "Service", hooks, svc)) == {("v", "hook-svc")}
    roles = [obj("Role", "reader"), obj("Role", "writer")]
    rbs = [obj("RoleBinding", "rb", roleRef={"kind": "Role", "name": "reader"})]
    assert related("RoleBinding", "Role", rbs, roles) == {("rb", "reader", "ROLEBINDING_REFERENCE_ROLE")}


def test_pod_template_references_configmaps_secrets_serviceaccounts_and_pvcs():
    spec = {
        "serviceAccountName": "runner",
        "imagePullSecrets": [{"name": "regcred"}],
        "containers": [{
            "name": "app",
            "envFrom": [{"configMapRef": {"name": "env-cm"}}, {"secretRef": {"name": "env-secret"}}],
            "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "key-cm", "key": "k"}}},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "key-secret", "key": "s"}}}],
        }],
        "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "init-cm"}}]}],
        "volumes": [
            {"name": "v1", "configMap": {"name": "vol-cm"}},
            {"name": "v2", "secret": {"secretName": "vol-secret"}},
            {"name": "v3", "projected": {"sources": [{"configMap": {"name": "proj-cm"}},
                                                     {"secret": {"name": "proj-secret"}}]}},
            {"name": "v4", "persistentVolumeClaim": {"claimName": "data"}},
        ],
    }
    cms = [obj("ConfigMap", n) for n in ("env-cm", "key-cm", "init-cm", "vol-cm", "proj-cm", "unused-cm")]
    secrets = [obj("Secret", n) for n in ("env-secret", "key-secret", "regcred", "vol-secret", "proj-secret", "x")]
    sas = [obj("ServiceAccount", "runner"), obj("ServiceAccount", "default")]
    pvcs = [obj("PersistentVolumeClaim", "data"), obj("PersistentVolumeClaim", "other")]
    want_cm = {"env-cm", "key-cm", "init-cm", "vol-cm", "proj-cm"}
    want_secret = {"env-secret", "key-secret", "regcred", "vol-secret", "proj-secret"}
    workloads = {
        "Pod": obj("Pod", "w", spec=spec),
        "Deployment": obj("Deployment", "w", spec=pod_template(spec)),
        "StatefulSet": obj("StatefulSet", "w", spec=pod_template(spec)),
        "DaemonSet": obj("DaemonSet", "w", spec=pod_template(spec)),
        "ReplicaSet": obj("ReplicaSet", "w", spec=pod_template(spec)),
        "Job": obj("Job", "w", spec=pod_template(spec)),
        "CronJob": obj("CronJob", "w", spec={"jobTemplate": {"spec": pod_template(spec)}}),
    }
    for kind, w in workloads.items():
        got = related(kind, "ConfigMap", [w], cms)
        assert {b for _, b, _ in got} == want_cm, kind
        assert len({t for _, _, t in got}) == 1
        assert {b for _, b, _ in related(kind, "Secret", [w], secrets)} == want_secret, kind
        assert names(related(kind, "ServiceAccount", [w], sas)) == {("w", "runner")}, kind
        assert names(related(kind, "PersistentVolumeClaim", [w], pvcs)) == {("w", "data")}, kind
    # other namespace: nothing
    far = [obj("ConfigMap", "env-cm", ns="elsewhere")]
    assert related("Deployment", "ConfigMap", [workloads["Deployment"]], far) == set()


def test_pod_configmap_pairs_come_from_both_the_cyphernetes_and_the_added_rules():
    pod = obj("Pod", "p", spec={"volumes": [{"name": "v", "configMap": {"name": "a"}}],
                                "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "b"}}]}]})
    cms = [obj("ConfigMap", "a"), obj("ConfigMap", "b")]
    assert related("ConfigMap", "Pod", cms, [pod]) == {("a", "p", "POD_USE_CONFIGMAP"), ("b", "p", "POD_USE_CONFIGMAP")}


# ----------------------------------------------------------------------------- relationships.yaml


GOOD = """\
# my rules
relationships:
  - from: Deployment
    to: ConfigMap
    type: USES_CONFIG
    match:
      - from: spec.template.metadata.annotations.config\\.example\\.com/name
        to: metadata.name
  - from: Widget
    to: Pod
    type: WIDGET_SELECTS_POD
    same_namespace: false
    match:
      - from: $.spec.podSelector
        to: metadata.labels
        compare: label_selector
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "relationships.yaml"
    p.write_text(text)
    return p


def test_user_rules_load(tmp_path):
    p = write(tmp_path, GOOD)
    rules = load_user_rules(p)
    assert rules == [
        Rule("Deployment", "ConfigMap", "USES_CONFIG",
             (Criterion("spec.template.metadata.annotations.config\\.example\\.com/name", "metadata.name", "exact"),),
             True, str(p)),
        Rule("Widget", "Pod", "WIDGET_SELECTS_POD",
             (Criterion("spec.podSelector", "metadata.labels", "label_selector"),), False, str(p)),
    ]
    combined = all_rules(p)
    assert combined[: len(BUILTIN_RULES)] == BUILTIN_RULES and combined[len(BUILTIN_RULES):] == rules
    assert all_rules(None) == BUILTIN_RULES


def test_user_rule_joins_with_an_escaped_dot_key(tmp_path):
    rule = load_user_rules(write(tmp_path, GOOD))[0]
    dep = obj("Deployment", "web", spec={"template": {"metadata": {"annotations": {"config.example.com/name": "cfg"}}}})
    assert related("Deployment", "ConfigMap", [dep], [obj("ConfigMap", "cfg"), obj("ConfigMap", "x")],
                   rules=[rule]) == {("web", "cfg", "USES_CONFIG")}


@pytest.mark.parametrize("text", ["", "# nothing\n", "relationships:\n", "relationships: []\n"])
def test_empty_files_have_no_rules(tmp_path, text):
    assert load_user_rules(write(tmp_path, text)) == []


def bad(tmp_path, text: str) -> str:
    p = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_user_rules(p)
    assert info.value.exit_code == EXIT_USAGE
    assert info.value.message.startswith(f"{p}:")
    return info.value.message[len(str(p)) + 1:]


def test_unknown_comparison_is_rejected_with_its_line(tmp_path):
    msg = bad(tmp_path, GOOD.replace("compare: label_selector", "compare: fuzzy"))
    assert msg.startswith("16: ") and "unknown comparison 'fuzzy'" in msg and "label_selector" in msg


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("relationships:\n  - from: A\n    to: B\n    type: T\n    match:\n      - from: a\n        to: b\n"
         "        kind: exact\n", 8, "unknown key 'kind'"),
        ("relationships:\n  - from: A\n    to: B\n    typ: T\n", 4, "unknown key 'typ'"),
        ("relationships:\n  - from: A\n    to: B\n    match:\n      - {from: a, to: b}\n", 2, "missing key 'type'"),
        ("relationships:\n  - from: A\n    to: B\n    type: T\n    match: []\n", 5, "non-empty list"),
        ("relationships:\n  - from: A\n    to: B\n    type: T\n    match:\n      - {from: 'a[x]', to: b}\n",
         6, "bad index"),
        ("relationships:\n  - from: my pods\n    to: B\n    type: T\n    match:\n      - {from: a, to: b}\n",
         2, "Kind name"),
        ("relationships:\n  - from: A\n    to: B\n    type: T\n    same_namespace: maybe\n    match:\n"
         "      - {from: a, to: b}\n", 5, "true or false"),
        ("relationships:\n  from: A\n", 2, "must be a list"),
        ("rules: []\n", 1, "unknown key 'rules'"),
        ("relationships:\n  - from: A\n    to: [B\n", 4, "not valid YAML"),
        ("relationships:\n  - 42\n", 2, "must be a mapping"),
    ],
)
def test_bad_files_name_the_line(tmp_path, text, line, fragment):
    msg = bad(tmp_path, text)
    assert msg.startswith(f"{line}: "), msg
    assert fragment in msg, msg


def test_unreadable_file(tmp_path):
    with pytest.raises(InputError) as info:
        load_user_rules(tmp_path / "missing.yaml")
    assert "missing.yaml:1:" in info.value.message


# ----------------------------------------------------------------------------- upstream cases


CASES = SHARED / "conformance" / "cyphernetes-e2e"


def manifests(case: str) -> list[dict]:
    path = CASES / case / "manifests.yaml"
    if not path.exists():
        pytest.skip(f"conformance case absent: {path}")
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def neighbours(objs: list[dict], of: dict) -> set[tuple[str, str]]:
    """(kind, name) of every object some built-in rule relates to ``of``."""
    by_kind: dict[str, list[dict]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    out = set()
    for kind, group in by_kind.items():
        for _a, b, _ in related(of["kind"], kind, [of], group):
            out.add((kind, b))
    return out


def find(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def test_upstream_kindless_deployment_neighbours():
    # 029: MATCH (d:Deployment)->(x) gives the ReplicaSet and the Service, not the Pods
    objs = manifests("029-kindless-return-with-lowercase-as")
    dep = find(objs, "Deployment", "test-delete-kindless")
    assert neighbours(objs, dep) == {("ReplicaSet", "test-delete-kindless-7c9d8b6f0"),
                                     ("Service", "test-delete-kindless-svc")}


def test_upstream_kindless_service_neighbours():
    # 038: MATCH (x)->(y:Service) gives the Deployment, its ReplicaSet and both Pods
    objs = manifests("038-kindless-node-to-service")
    svc = find(objs, "Service", "test-rel-service")
    assert neighbours(objs, svc) == {
        ("Deployment", "test-rel-deployment"), ("ReplicaSet", "test-rel-deployment-7c9d8b6f0"),
        ("Pod", "test-rel-deployment-7c9d8b6f0-abcde"), ("Pod", "test-rel-deployment-7c9d8b6f0-fghij")}


def test_upstream_four_node_chain():
    # 041: (p:Pod)->(rs:ReplicaSet)->(d:Deployment)->(s:Service), two separate chains
    objs = manifests("041-four-node-chain")
    of = lambda kind: [o for o in objs if o["kind"] == kind]  # noqa: E731
    chain = {}
    for p, rs, _ in related("Pod", "ReplicaSet", of("Pod"), of("ReplicaSet")):
        for rs2, d, _ in related("ReplicaSet", "Deployment", of("ReplicaSet"), of("Deployment")):
            for d2, s, _ in related("Deployment", "Service", of("Deployment"), of("Service")):
                if rs == rs2 and d == d2:
                    chain[p] = (rs, d, s)
    assert sorted(v[1:] for v in chain.values()) == [
        ("test-deployment-chain-1", "test-service-chain-1"), ("test-deployment-chain-2", "test-service-chain-2")]


def test_upstream_middle_of_chain_is_the_replicaset():
    # 028: (p:Pod)->(x)->(:Deployment): x is a ReplicaSet
    objs = manifests("028-kindless-middle-node-with-sum")
    middle = set()
    for pod in (o for o in objs if o["kind"] == "Pod"):
        for kind, name in neighbours(objs, pod):
            if any(k == "Deployment" for k, _ in neighbours(objs, find(objs, kind, name))):
                middle.add(kind)
    assert middle == {"ReplicaSet"}
