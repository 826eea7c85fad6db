"""core/knowledge/mentions.py: the Kubernetes resources a chunk of text names, each form, the
namespaces, and the prose that must name nothing (docs/knowledge.md "One graph")."""

from __future__ import annotations

import pytest

from tessera.core.knowledge.mentions import extract
from tessera.core.mention_links import WORKLOAD_KINDS, link_fields, scoped_name_holds


def named(text: str) -> set[tuple]:
    """(kind, name, namespace) of every mention."""
    return {(m["kind"], m["name"], m["namespace"]) for m in extract(text)}


def forms(text: str) -> dict[tuple, str]:
    return {(m["kind"], m["name"]): m["form"] for m in extract(text)}


@pytest.mark.parametrize("text, kind, name", [
    ("Restart deployment/web first.", "Deployment", "web"),
    ("then deploy/web", "Deployment", "web"),
    ("svc/api answers on 8080", "Service", "api"),
    ("look at deployments.apps/checkout", "Deployment", "checkout"),
    ("sts/postgres-primary is the leader", "StatefulSet", "postgres-primary"),
    ("cm/app-config.v2 holds it", "ConfigMap", "app-config.v2"),
    ("ns/shop", "Namespace", "shop"),
    ("node/worker-3 is cordoned", "Node", "worker-3"),
    ("pvc/data-postgres-0 filled up", "PersistentVolumeClaim", "data-postgres-0"),
])
def test_kind_slash_name(text, kind, name):
    assert (kind, name, None) in named(text)
    assert forms(text)[(kind, name)] == "kind/name"


def test_kubectl_commands_with_namespaces():
    assert named("kubectl -n shop get pod web-7d9f8c6b5-x2x9q") == {
        ("Pod", "web-7d9f8c6b5-x2x9q", "shop"), (None, "web", "shop")}
    assert named("kubectl --namespace payments describe deployment ledger api") == {
        ("Deployment", "ledger", "payments"), ("Deployment", "api", "payments")}
    assert named("kubectl --namespace=payments logs deploy/ledger --tail 50") == {
        ("Deployment", "ledger", "payments")}
    assert named("kubectl rollout restart deployment web -n shop") == {("Deployment", "web", "shop")}
    assert named("kubectl -nshop rollout status deploy/web") == {("Deployment", "web", "shop")}
    assert named("kubectl scale --replicas=3 statefulset/redis") == {("StatefulSet", "redis", None)}
    assert named("kubectl get svc api -o yaml | grep selector") == {("Service", "api", None)}
    assert named("kubectl drain worker-2 --ignore-daemonsets") == {("Node", "worker-2", None)}
    # the words after a pipe are not kubectl's
    assert ("Deployment", "yaml", None) not in named("kubectl get deploy web -o yaml | less")


def test_kubectl_in_a_code_span_ends_with_it():
    assert named("Roll back with `kubectl -n shop rollout undo deployment/web`. Then wait") == {
        ("Deployment", "web", "shop")}


def test_the_prose_after_a_kubectl_command_on_its_line_is_read():
    # the command ends with its code span or statement; what follows on the line is prose
    assert named("Undo it: `kubectl -n payments rollout undo deployment/ledger`. Check the service "
                 "`payments-api` still has endpoints.") == {
        ("Deployment", "ledger", "payments"), ("Service", "payments-api", None)}
    assert named("kubectl -n shop get pods; then look at the Service `cart-api`") == {("Service", "cart-api", None)}


def test_kubectl_over_continued_lines():
    text = "kubectl -n shop \\\n  rollout restart \\\n  deployment/web\n"
    assert named(text) == {("Deployment", "web", "shop")}


def test_kubectl_logs_names_a_pod():
    assert ("Pod", "checkout-0", None) in named("kubectl logs checkout-0 -c app")
    assert ("Pod", "checkout-0", "shop") in named("kubectl exec -n shop -it checkout-0 -- sh")


@pytest.mark.parametrize("pod", ["web-…", "web-...", "web-xxxxx", "web-XXXXX", "web-<hash>", "web-<pod>", "web-*"])
def test_a_pod_name_with_a_placeholder_names_its_workload(pod):
    found = extract(f"kubectl -n shop get pod {pod}")
    assert [(m["kind"], m["name"], m["namespace"], m["form"]) for m in found] == [(None, "web", "shop", "pod-name")]
    # also in prose, without a namespace, when the placeholder reads as a pod's suffix
    if pod != "web-*":  # in prose, name-* is a pattern of other names (verify-*.sh)
        assert (None, "web", None) in named(f"the pods ({pod}) restart every minute")
    fields = link_fields(found)
    assert set(fields["mentioned"]) == set(WORKLOAD_KINDS)
    assert fields["mentioned_scoped"]["Deployment"] == ["shop/web"]
    assert fields["candidates"] == []


def test_prose_forms():
    assert ("Deployment", "web", None) in named("Scale the web Deployment to three replicas.")
    assert ("Deployment", "web", None) in named("The web Deployment is old.")
    assert ("Deployment", "web", None) in named("Deployment `web` runs the shop")
    assert ("Deployment", "web", None) in named("then restart the `web` deployment")
    assert named("the `web` pods restart") == {(None, "web", None)}  # the pods of the workload web
    assert ("Service", "api", None) in named("the service `api` selects them")
    assert ("ConfigMap", "app-settings", None) in named("edit the `app-settings` configmap")
    assert ("Deployment", "web-frontend", None) in named("Deployment web-frontend rolls out")
    assert named("Checks that the api Service answers.") == {("Service", "api", None)}
    assert named("Namespace kube-system and ClusterRole cluster-admin") == {
        ("Namespace", "kube-system", None), ("ClusterRole", "cluster-admin", None)}
    # a plain word after a Kind is prose ("Service account"): only a distinctive name is taken
    assert named("The Service api routes; the Deployment creates a ReplicaSet") == set()


def test_yaml_manifests():
    text = ("```yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n"
            "  labels:\n    app: web\nspec:\n  template:\n    metadata:\n      name: ignored\n---\n"
            "kind: Service\nmetadata:\n  name: api\n```\n")
    assert named(text) >= {("Deployment", "web", "shop"), ("Service", "api", None)}
    assert ("Deployment", "ignored", "shop") not in named(text)


def test_bare_candidates_are_backticked_or_distinctive():
    found = named("Check `ledger` and redis-cache-0; kube-proxy too; plain words like web stay out.")
    assert {(None, "ledger", None), (None, "redis-cache-0", None), (None, "kube-proxy", None)} <= found
    assert not any(name == "web" for _, name, _ in found)
    assert forms("see `ledger`")[(None, "ledger")] == "bare"
    fields = link_fields(extract("see `ledger`"))
    assert fields == {"mentioned": {}, "mentioned_scoped": {}, "candidates": ["ledger"]}


def test_a_name_named_with_a_kind_is_not_also_bare():
    assert extract("deployment/web-frontend, and again web-frontend") == [
        {"kind": "Deployment", "name": "web-frontend", "namespace": None, "form": "kind/name"}]


@pytest.mark.parametrize("text", [
    "the web of dependencies grows",
    "a Service mesh such as Istio",
    "the new Deployment replaces the old Deployment",
    "Pod Security Admission and the Pod lifecycle",
    "see docs/deploy/web.md and https://example.com/pods/foo",
    "RBAC on pods/exec, pods/log and deployments/scale",
    "versions v1beta1, 1.30, 2024-05-01 and commit 4f77479ab",
    "a built-in, long-running, read-only, non-zero thing",
    "kubectl get pods -n shop",
    "the secret of a good job is a service to the node",
    "the Pod specification, Node affinity and a Service account",
    "title: Consider terminating pods in Deployment\nkep-number: 3973\n",
    "Any test that checks Deployment and ReplicaSet status",
    "operators deploy/upgrade the driver; deployment/rollout gets easier",
    "the `verify-*.sh` scripts and x-kubernetes-* extensions, checkpoint-<container>.tar",
    "",
])
def test_prose_that_names_nothing(text):
    assert extract(text) == []


def test_each_mention_once_in_text_order():
    text = "deployment/web, deploy/web, svc/api, deployment/web again"
    assert [(m["kind"], m["name"]) for m in extract(text)] == [("Deployment", "web"), ("Service", "api")]


def test_link_fields_and_the_scoped_name_comparison():
    fields = link_fields(extract("kubectl -n shop get deploy web\nsvc/api\n`cache-7`"))
    assert fields["mentioned"] == {"Deployment": ["web"], "Service": ["api"]}
    assert fields["mentioned_scoped"] == {"Deployment": ["shop/web"], "Service": ["*/api"]}
    assert fields["candidates"] == ["cache-7"]
    assert scoped_name_holds(fields["mentioned_scoped"]["Deployment"], ["web"], "shop")
    assert not scoped_name_holds(fields["mentioned_scoped"]["Deployment"], ["web"], "payments")
    assert scoped_name_holds(fields["mentioned_scoped"]["Service"], ["api"], "anywhere")
    assert not scoped_name_holds(fields["mentioned_scoped"]["Deployment"], ["web"], "")  # cluster-scoped
