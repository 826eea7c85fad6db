"""The kinds of a stock Kubernetes 1.30 API server, as ``kubectl api-resources`` lists them.

Manifest sources have no discovery endpoint, so they resolve kind names against this table plus
the CRDs found among the manifests.
"""

from __future__ import annotations

from tessera.core.kinds import KindInfo


def _k(group: str, version: str, kind: str, plural: str, shorts: str = "", namespaced: bool = True) -> KindInfo:
    return KindInfo(group, version, kind, plural, kind.lower(), tuple(s for s in shorts.split(",") if s), namespaced)


BUILTIN_KINDS: list[KindInfo] = [
    # core
    _k("", "v1", "Binding", "bindings"),
    _k("", "v1", "ComponentStatus", "componentstatuses", "cs", False),
    _k("", "v1", "ConfigMap", "configmaps", "cm"),
    _k("", "v1", "Endpoints", "endpoints", "ep"),
    _k("", "v1", "Event", "events", "ev"),
    _k("", "v1", "LimitRange", "limitranges", "limits"),
    _k("", "v1", "Namespace", "namespaces", "ns", False),
    _k("", "v1", "Node", "nodes", "no", False),
    _k("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "pvc"),
    _k("", "v1", "PersistentVolume", "persistentvolumes", "pv", False),
    _k("", "v1", "Pod", "pods", "po"),
    _k("", "v1", "PodTemplate", "podtemplates"),
    _k("", "v1", "ReplicationController", "replicationcontrollers", "rc"),
    _k("", "v1", "ResourceQuota", "resourcequotas", "quota"),
    _k("", "v1", "Secret", "secrets"),
    _k("", "v1", "ServiceAccount", "serviceaccounts", "sa"),
    _k("", "v1", "Service", "services", "svc"),
    # admissionregistration.k8s.io
    _k("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "", False),
    _k("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", "", False),
    _k("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", "", False),
    _k("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "", False),
    # apiextensions.k8s.io
    _k("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", "crd,crds", False),
    # apiregistration.k8s.io
    _k("apiregistration.k8s.io", "v1", "APIService", "apiservices", "", False),
    # apps
    _k("apps", "v1", "ControllerRevision", "controllerrevisions"),
    _k("apps", "v1", "DaemonSet", "daemonsets", "ds"),
    _k("apps", "v1", "Deployment", "deployments", "deploy"),
    _k("apps", "v1", "ReplicaSet", "replicasets", "rs"),
    _k("apps", "v1", "StatefulSet", "statefulsets", "sts"),
    # authentication / authorization
    _k("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "", False),
    _k("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "", False),
    _k("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews"),
    _k("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "", False),
    _k("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", "", False),
    _k("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "", False),
    # autoscaling
    _k("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "hpa"),
    # batch
    _k("batch", "v1", "CronJob", "cronjobs", "cj"),
    _k("batch", "v1", "Job", "jobs"),
    # certificates
    _k("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", "csr", False),
    # coordination
    _k("coordination.k8s.io", "v1", "Lease", "leases"),
    # discovery
    _k("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    # events.k8s.io (Event also exists in core; the bare name resolves to core, as kubectl does)
    _k("events.k8s.io", "v1", "Event", "events", "ev"),
    # flowcontrol
    _k("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", "", False),
    _k("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations", "", False),
    # networking
    _k("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "", False),
    _k("networking.k8s.io", "v1", "Ingress", "ingresses", "ing"),
    _k("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "netpol"),
    # node
    _k("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", "", False),
    # policy
    _k("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "pdb"),
    # rbac
    _k("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "", False),
    _k("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "", False),
    _k("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    _k("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    # scheduling
    _k("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "pc", False),
    # storage
    _k("storage.k8s.io", "v1", "CSIDriver", "csidrivers", "", False),
    _k("storage.k8s.io", "v1", "CSINode", "csinodes", "", False),
    _k("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities"),
    _k("storage.k8s.io", "v1", "StorageClass", "storageclasses", "sc", False),
    _k("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", "", False),
]
