"""How a chunk's mentions become ``MENTIONS`` relationships (docs/knowledge.md "One graph").

A chunk stores the mentions core/knowledge/mentions.py found in its text. The knowledge source
(plugins/sources/knowledge_source.py) puts three derived fields on each ``Chunk`` object (and on each
``Document``, over all its chunks), and the rules
here join them to the cluster's resources with ordinary hash joins (core/query/joins.py):

- ``mentioned``: ``{Kind: [name, ...]}``, every kind-qualified mention's name (``deployment/web``,
  ``kubectl get svc api``, "the `web` deployment", a YAML manifest's kind and name). A pod name
  with a placeholder (``web-…``, ``web-xxxxx``, ``web-<hash>``) names the workload ``web``: it is
  listed under each of WORKLOAD_KINDS.
- ``mentioned_scoped``: ``{Kind: ["shop/web", "*/api"]}``, the same mentions with the namespace
  they were given (``-n shop``), ``*`` when none: the rule's second criterion (comparison
  ``scoped_name``) keeps a mention that names a namespace from linking the same name elsewhere.
- ``candidates``: bare names (a backticked or distinctive DNS-1123 name) that link to a resource
  of any LINKED_KINDS with exactly that name, when one exists in the queried sources.

Kept outside core/knowledge/ so the rules (core/rules.py, read by core.query) import nothing of
ingestion or search.
"""

from __future__ import annotations

from typing import Any

from tessera.core.relationships import Criterion, Rule

CHUNK_KIND = "Chunk"
DOCUMENT_KIND = "Document"
MENTIONS = "MENTIONS"
PART_OF = "PART_OF"  # a Chunk -> its Document

# The kinds a chunk can name and link to (kinds a runbook talks about).
LINKED_KINDS = (
    "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod", "Service", "Endpoints", "Ingress",
    "ConfigMap", "Secret", "ServiceAccount", "PersistentVolumeClaim", "PersistentVolume", "StorageClass",
    "Namespace", "Node", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Role", "RoleBinding",
    "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
)
# The kinds whose pods are named NAME-<random>: a pod name with a placeholder names one of them.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
POD_OF_WORKLOAD = "pod-name"  # the form of a mention that names a workload through its pods' names
ANY_NAMESPACE = "*"


def link_fields(mentions: list[dict[str, Any]]) -> dict[str, Any]:
    """The derived fields a Chunk object carries for the MENTIONS rules (see the module note).

    Args:
        mentions: a chunk's stored mentions (``{"kind", "name", "namespace", "form"}``).
    Returns:
        ``{"mentioned": {...}, "mentioned_scoped": {...}, "candidates": [...]}``, each list in
        mention order without repeats.
    """
    names: dict[str, list[str]] = {}
    scoped: dict[str, list[str]] = {}
    candidates: list[str] = []
    for m in mentions:
        if not isinstance(m, dict) or not isinstance(m.get("name"), str):
            continue
        name, kind = m["name"], m.get("kind")
        namespace = m.get("namespace") or ANY_NAMESPACE
        if kind is None and m.get("form") == POD_OF_WORKLOAD:
            kinds: tuple[str, ...] = WORKLOAD_KINDS
        elif kind is None:
            if name not in candidates:
                candidates.append(name)
            continue
        else:
            kinds = (str(kind),)
        for k in kinds:
            _add(names.setdefault(k, []), name)
            _add(scoped.setdefault(k, []), f"{namespace}/{name}")
    return {"mentioned": names, "mentioned_scoped": scoped, "candidates": candidates}


def _add(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)


def scoped_name_holds(scoped: list[Any], names: list[Any], namespace: str) -> bool:
    """The ``scoped_name`` comparison: some ``NS/NAME`` or ``*/NAME`` in ``scoped`` names one of
    ``names`` in ``namespace`` ("" for a cluster-scoped resource, which only ``*`` reaches)."""
    wanted = set(v for v in scoped if isinstance(v, str))
    for name in names:
        if f"{ANY_NAMESPACE}/{name}" in wanted or (namespace and f"{namespace}/{name}" in wanted):
            return True
    return False


def mention_rules() -> list[Rule]:
    """Chunk (and Document: its chunks' mentions together) -MENTIONS-> each of LINKED_KINDS, by
    kind and name (and namespace when the mention gives one), and by a bare name that exists as a
    resource of that kind; and Chunk -PART_OF-> its Document."""
    rules = [Rule(CHUNK_KIND, DOCUMENT_KIND, PART_OF, (Criterion("document_uid", "metadata.uid", "exact"),),
                  same_namespace=False, origin="knowledge")]
    for source_kind in (CHUNK_KIND, DOCUMENT_KIND):
        for kind in LINKED_KINDS:
            rules.append(Rule(source_kind, kind, MENTIONS, (
                Criterion(f"mentioned.{kind}[]", "metadata.name", "exact"),
                Criterion(f"mentioned_scoped.{kind}[]", "metadata.name", "scoped_name"),
            ), same_namespace=False, origin="knowledge"))
            rules.append(Rule(source_kind, kind, MENTIONS, (Criterion("candidates[]", "metadata.name", "exact"),),
                              same_namespace=False, origin="knowledge"))
    return rules
