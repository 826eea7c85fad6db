"""The bundled demo cluster holds what the README tour and the issue promise, consistently."""

from __future__ import annotations

from collections import Counter

import pytest

from tessera.plugins.sources.demo import DemoSource


@pytest.fixture(scope="module")
def objs():
    return DemoSource().objects()


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def test_required_content(objs):
    counts = Counter(o["kind"] for o in objs)
    assert len({o["metadata"].get("namespace") for o in objs if o["metadata"].get("namespace")}) >= 3
    assert counts["Deployment"] >= 12
    for kind in ["StatefulSet", "DaemonSet", "CronJob", "Job", "Service", "Endpoints", "Ingress", "ConfigMap",
                 "Secret", "PersistentVolumeClaim", "PersistentVolume", "HorizontalPodAutoscaler",
                 "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding",
                 "CustomResourceDefinition", "Certificate", "Node", "Namespace"]:
        assert counts[kind] >= 1, kind


def test_owner_references_point_at_real_objects(objs):
    uids = {o["metadata"]["uid"]: o for o in objs}
    refs = 0
    for o in objs:
        for ref in o["metadata"].get("ownerReferences", []):
            owner = uids[ref["uid"]]
            assert (owner["kind"], owner["metadata"]["name"]) == (ref["kind"], ref["name"])
            assert owner["metadata"].get("namespace") == o["metadata"].get("namespace")
            refs += 1
    assert refs > 30


def test_every_deployment_has_replicasets_and_pods_with_template_hash(objs):
    rs_by_owner = Counter(r["metadata"]["ownerReferences"][0]["name"] for r in by_kind(objs, "ReplicaSet"))
    for d in by_kind(objs, "Deployment"):
        assert rs_by_owner[d["metadata"]["name"]] >= 1
    for rs in by_kind(objs, "ReplicaSet"):
        h = rs["metadata"]["labels"]["pod-template-hash"]
        assert rs["metadata"]["name"].endswith(h)
        assert rs["spec"]["selector"]["matchLabels"]["pod-template-hash"] == h
        pods = [p for p in by_kind(objs, "Pod") if any(r["uid"] == rs["metadata"]["uid"] for r in p["metadata"].get("ownerReferences", []))]
        assert len(pods) == rs["spec"]["replicas"]
        assert all(p["metadata"]["labels"]["pod-template-hash"] == h for p in pods)


def test_services_select_pods_except_the_orphan(objs):
    pods = by_kind(objs, "Pod")
    empty = []
    for svc in by_kind(objs, "Service"):
        sel = svc["spec"].get("selector") or {}
        ns = svc["metadata"]["namespace"]
        hit = [p for p in pods if p["metadata"]["namespace"] == ns and sel.items() <= p["metadata"]["labels"].items()]
        if not hit:
            empty.append(svc["metadata"]["name"])
    assert empty == ["legacy-billing"]


def test_unhealthy_pods_exist(objs):
    reasons = set()
    for p in by_kind(objs, "Pod"):
        for cs in p["status"].get("containerStatuses", []):
            reasons.add((cs.get("state", {}).get("waiting") or {}).get("reason"))
        if p["status"]["phase"] in ("Pending", "Failed"):
            reasons.add(p["status"]["phase"])
    assert {"CrashLoopBackOff", "ImagePullBackOff", "Pending", "Failed"} <= reasons


def test_pod_template_references_resolve(objs):
    names = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs}
    for d in by_kind(objs, "Deployment"):
        ns = d["metadata"]["namespace"]
        spec = d["spec"]["template"]["spec"]
        for v in spec.get("volumes", []):
            if "configMap" in v:
                assert ("ConfigMap", ns, v["configMap"]["name"]) in names
            if "secret" in v:
                assert ("Secret", ns, v["secret"]["secretName"]) in names
            if "persistentVolumeClaim" in v:
                assert ("PersistentVolumeClaim", ns, v["persistentVolumeClaim"]["claimName"]) in names
        if "serviceAccountName" in spec:
            assert ("ServiceAccount", ns, spec["serviceAccountName"]) in names


def test_demo_reads_its_json_snapshot_of_the_yaml():
    # -s demo reads demo_objects.json for start-up; it must hold exactly what the YAML says
    # (regenerate with `make docs` after changing demo_data/*.yaml).
    import orjson

    from tessera.plugins.sources.demo import DEMO_DIR, DEMO_SNAPSHOT, snapshot_text
    from tessera.plugins.sources.manifests import ManifestSource

    assert DEMO_SNAPSHOT.read_text(encoding="utf-8") == snapshot_text(), "stale: run `make docs`"
    demo = DemoSource()
    assert demo.spec == str(DEMO_SNAPSHOT)
    from_yaml = ManifestSource(str(DEMO_DIR))
    assert demo.objects() == from_yaml.objects() == orjson.loads(DEMO_SNAPSHOT.read_bytes())["items"]
    assert demo.kinds() == from_yaml.kinds()
