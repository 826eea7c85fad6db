"""Writes the demo cluster YAML: python tools/demo/generate_cluster.py plugins/sources/demo_data"""
import hashlib, yaml, os, sys
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
T0 = "2026-11-20T08:00:00Z"
def uid(*parts):
    h = hashlib.sha1("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
def h(s, n):
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    d = hashlib.sha1(s.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in d[:n])
def meta(kind, name, ns=None, labels=None, owner=None, ts=T0, annotations=None):
    m = {"name": name}
    if ns: m["namespace"] = ns
    m["uid"] = uid(kind, ns or "", name)
    m["creationTimestamp"] = ts
    if labels: m["labels"] = dict(labels)
    if annotations: m["annotations"] = annotations
    if owner:
        m["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
                                 "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    return m
files = {}
def add(fname, obj): files.setdefault(fname, []).append(obj)
NODES = ["node-a", "node-b", "node-c"]
ip_counter = [10]
def ip():
    ip_counter[0] += 1
    return f"10.244.{ip_counter[0] // 250}.{ip_counter[0] % 250}"
for i, n in enumerate(NODES):
    add("00-cluster.yaml", {"apiVersion": "v1", "kind": "Node", "metadata": meta("Node", n, labels={"kubernetes.io/hostname": n, "topology.kubernetes.io/zone": f"eu-west-1{'abc'[i]}", "node-role.kubernetes.io/worker": ""}),
        "status": {"capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"}, "allocatable": {"cpu": "7910m", "memory": "31Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}], "nodeInfo": {"kubeletVersion": "v1.30.4", "osImage": "Ubuntu 24.04 LTS"}}})
NS = {"shop": "storefront", "payments": "payments", "platform": "platform", "monitoring": "observability"}
for ns, team in NS.items():
    add("00-cluster.yaml", {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("Namespace", ns, labels={"team": team, "kubernetes.io/metadata.name": ns}), "status": {"phase": "Active"}})
    add(f"{ns}.yaml", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("ServiceAccount", "default", ns)})
# storage class
add("00-cluster.yaml", {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": meta("StorageClass", "standard", annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
    "provisioner": "ebs.csi.aws.com", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"})

def container(name, image, cpu, mem, port=None, env=None, envFrom=None, mounts=None, limits=True):
    c = {"name": name, "image": image, "resources": {"requests": {"cpu": cpu, "memory": mem}}}
    if limits:
        c["resources"]["limits"] = {"memory": mem}
    if port: c["ports"] = [{"containerPort": port, "name": "http", "protocol": "TCP"}]
    if env: c["env"] = env
    if envFrom: c["envFrom"] = envFrom
    if mounts: c["volumeMounts"] = mounts
    return c

def pod_status(phase, containers, node, state="running", restarts=0, reason=None, message=None, ts=T0):
    st = {"phase": phase, "startTime": ts, "qosClass": "Burstable"}
    if phase == "Pending" and state == "unschedulable":
        st["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                             "message": message or "0/3 nodes are available: 3 Insufficient cpu."}]
        st.pop("startTime")
        return st
    st["hostIP"] = f"192.168.1.{NODES.index(node) + 10}"
    st["podIP"] = ip()
    ready = state == "running"
    st["conditions"] = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True" if ready else "False"},
                        {"type": "ContainersReady", "status": "True" if ready else "False"}, {"type": "PodScheduled", "status": "True"}]
    cs = []
    for c in containers:
        s = {"name": c["name"], "image": c["image"], "ready": ready, "restartCount": restarts, "started": ready}
        if state == "running":
            s["state"] = {"running": {"startedAt": ts}}
        elif state == "crashloop":
            s["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}
            s["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-11-21T09:58:00Z"}}
        elif state == "imagepull":
            s["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{c["image"]}"'}}
        elif state == "completed":
            s["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ts}}
            s["ready"] = False
        elif state == "failed":
            s["state"] = {"terminated": {"exitCode": 2, "reason": "Error", "finishedAt": ts}}
            s["ready"] = False
        cs.append(s)
    st["containerStatuses"] = cs
    return st

DEPLOYS = [
    # ns, name, replicas, image, cpu, mem, extra
    ("shop", "frontend", 3, "ghcr.io/acme/frontend:2.14.1", "250m", "256Mi", {"sa": "frontend", "envFrom": [{"configMapRef": {"name": "frontend-config"}}], "old_rs": True, "hpa": (3, 10), "pdb": 2, "pull": "registry-credentials"}),
    ("shop", "cart", 2, "ghcr.io/acme/cart:1.8.0", "200m", "256Mi", {"env": [{"name": "REDIS_URL", "value": "redis://redis:6379"}]}),
    ("shop", "catalog", 2, "ghcr.io/acme/catalog:3.2.0", "100m", "128Mi", {"volumes_cm": "catalog-data"}),
    ("shop", "checkout", 2, "ghcr.io/acme/checkout:1.21.3", "300m", "384Mi", {"hpa": (2, 6)}),
    ("shop", "recommendations", 1, "ghcr.io/acme/recommendations:0.9.2", "500m", "1Gi", {"state": "crashloop", "restarts": 14}),
    ("shop", "ads", 1, "ghcr.io/acme/ads:5.0.0-rc1", "100m", "128Mi", {"state": "imagepull"}),
    ("payments", "payments-api", 2, "ghcr.io/acme/payments-api:4.3.2", "500m", "512Mi", {"sa": "payments-api", "secret_env": "payments-db-credentials", "cm_key": "payments-config", "hpa": (2, 8), "pdb": 1}),
    ("payments", "ledger", 2, "ghcr.io/acme/ledger:2.0.7", "250m", "512Mi", {"secret_env": "payments-db-credentials"}),
    ("payments", "fraud-detector", 1, "ghcr.io/acme/fraud-detector:1.4.0", "16", "8Gi", {"state": "unschedulable"}),
    ("platform", "auth", 2, "ghcr.io/acme/auth:7.1.0", "200m", "256Mi", {"secret_vol": "auth-jwt-key"}),
    ("platform", "gateway", 2, "envoyproxy/envoy:v1.31.2", "500m", "256Mi", {"volumes_cm": "gateway-routes"}),
    ("platform", "config-server", 1, "ghcr.io/acme/config-server:1.0.3", "100m", "128Mi", {}),
    ("monitoring", "grafana", 1, "grafana/grafana:11.3.0", "200m", "512Mi", {"sa": "grafana", "pvc": "grafana-storage", "secret_env": "grafana-admin", "volumes_cm": "grafana-dashboards"}),
    ("monitoring", "kube-state-metrics", 1, "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0", "100m", "128Mi", {}),
]
node_rr = [0]
def next_node():
    node_rr[0] += 1
    return NODES[node_rr[0] % 3]

def pod_spec(name, image, cpu, mem, extra, port=8080):
    env = list(extra.get("env", []))
    if extra.get("secret_env"):
        env.append({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": extra["secret_env"], "key": "password"}}})
    if extra.get("cm_key"):
        env.append({"name": "CURRENCY", "valueFrom": {"configMapKeyRef": {"name": extra["cm_key"], "key": "currency"}}})
    volumes, mounts = [], []
    if extra.get("volumes_cm"):
        volumes.append({"name": "config", "configMap": {"name": extra["volumes_cm"]}})
        mounts.append({"name": "config", "mountPath": "/etc/app"})
    if extra.get("secret_vol"):
        volumes.append({"name": "keys", "secret": {"secretName": extra["secret_vol"]}})
        mounts.append({"name": "keys", "mountPath": "/var/run/keys", "readOnly": True})
    if extra.get("pvc"):
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": extra["pvc"]}})
        mounts.append({"name": "data", "mountPath": "/var/lib/data"})
    spec = {"containers": [container(name, image, cpu, mem, port, env or None, extra.get("envFrom"), mounts or None)]}
    if extra.get("sa"):
        spec["serviceAccountName"] = extra["sa"]
    if extra.get("pull"):
        spec["imagePullSecrets"] = [{"name": extra["pull"]}]
    if volumes:
        spec["volumes"] = volumes
    return spec

for ns, name, replicas, image, cpu, mem, extra in DEPLOYS:
    labels = {"app": name, "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": NS[ns], "tier": "backend" if ns != "shop" or name != "frontend" else "web"}
    tpl_spec = pod_spec(name, image, cpu, mem, extra)
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("Deployment", name, ns, labels, annotations={"deployment.kubernetes.io/revision": "2" if extra.get("old_rs") else "1"}),
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                    "template": {"metadata": {"labels": {"app": name, "app.kubernetes.io/name": name}}, "spec": tpl_spec}}}
    state = extra.get("state", "running")
    ready = 0 if state != "running" else replicas
    dep["status"] = {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": replicas, "observedGeneration": 2 if extra.get("old_rs") else 1,
                     "conditions": [{"type": "Available", "status": "True" if ready == replicas else "False", "reason": "MinimumReplicasAvailable" if ready == replicas else "MinimumReplicasUnavailable"}]}
    if not ready:
        dep["status"].pop("readyReplicas"); dep["status"].pop("availableReplicas")
        dep["status"]["unavailableReplicas"] = replicas
    add(f"{ns}.yaml", dep)
    rs_list = [(h(name + "v2", 10), replicas, True)]
    if extra.get("old_rs"):
        rs_list.append((h(name + "v1", 10), 0, False))
    pods = []
    for hash_, count, current in rs_list:
        rs_name = f"{name}-{hash_}"
        rs_labels = {"app": name, "app.kubernetes.io/name": name, "pod-template-hash": hash_}
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("ReplicaSet", rs_name, ns, rs_labels, owner=dep, annotations={"deployment.kubernetes.io/revision": "2" if current and extra.get("old_rs") else "1"}),
              "spec": {"replicas": count, "selector": {"matchLabels": {"app": name, "pod-template-hash": hash_}},
                       "template": {"metadata": {"labels": rs_labels}, "spec": tpl_spec}},
              "status": {"replicas": count, "readyReplicas": count if state == "running" else 0, "availableReplicas": count if state == "running" else 0}}
        add(f"{ns}.yaml", rs)
        for i in range(count):
            pod_name = f"{rs_name}-{h(rs_name + str(i), 5)}"
            node = next_node()
            spec = dict(tpl_spec)
            if state != "unschedulable":
                spec = {**tpl_spec, "nodeName": node}
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta("Pod", pod_name, ns, rs_labels, owner=rs, ts="2026-11-21T07:30:00Z"),
                   "spec": spec, "status": pod_status("Pending" if state in ("unschedulable", "imagepull") else "Running", spec["containers"], node, state, extra.get("restarts", 0))}
            add(f"{ns}.yaml", pod)
            pods.append(pod)
    # service + endpoints
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": meta("Service", name, ns, {"app": name}),
           "spec": {"type": "ClusterIP", "clusterIP": f"10.96.{len(files)}.{DEPLOYS.index((ns, name, replicas, image, cpu, mem, extra)) + 10}", "selector": {"app": name},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}
    add(f"{ns}.yaml", svc)
    ready_pods = [p for p in pods if p["status"].get("podIP") and p["status"]["conditions"][1]["status"] == "True"]
    not_ready = [p for p in pods if p["status"].get("podIP") and p["status"]["conditions"][1]["status"] != "True"]
    subset = {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    if ready_pods:
        subset["addresses"] = [{"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"], "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": ns, "uid": p["metadata"]["uid"]}} for p in ready_pods]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": p["status"]["podIP"], "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": ns}} for p in not_ready]
    add(f"{ns}.yaml", {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("Endpoints", name, ns, {"app": name}), "subsets": [subset] if (ready_pods or not_ready) else []})
    if extra.get("hpa"):
        mn, mx = extra["hpa"]
        add(f"{ns}.yaml", {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta("HorizontalPodAutoscaler", name, ns),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}, "minReplicas": mn, "maxReplicas": mx,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]},
            "status": {"currentReplicas": replicas, "desiredReplicas": replicas}})
    if extra.get("pdb"):
        add(f"{ns}.yaml", {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta("PodDisruptionBudget", f"{name}-pdb", ns),
            "spec": {"minAvailable": extra["pdb"], "selector": {"matchLabels": {"app": name}}},
            "status": {"currentHealthy": replicas, "desiredHealthy": extra["pdb"], "disruptionsAllowed": replicas - extra["pdb"], "expectedPods": replicas}})

# service without pods
add("payments.yaml", {"apiVersion": "v1", "kind": "Service", "metadata": meta("Service", "legacy-billing", "payments", {"app": "legacy-billing"}),
     "spec": {"type": "ClusterIP", "clusterIP": "10.96.9.9", "selector": {"app": "legacy-billing"}, "ports": [{"port": 80, "targetPort": 8080}]}})
add("payments.yaml", {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("Endpoints", "legacy-billing", "payments"), "subsets": []})

# StatefulSets
def statefulset(ns, name, replicas, image, cpu, mem, storage, port):
    labels = {"app": name, "app.kubernetes.io/name": name}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("StatefulSet", name, ns, labels),
           "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [container(name, image, cpu, mem, port, mounts=[{"name": "data", "mountPath": "/data"}])]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard", "resources": {"requests": {"storage": storage}}}}]},
           "status": {"replicas": replicas, "readyReplicas": replicas, "currentReplicas": replicas}}
    f = f"{ns}.yaml"
    add(f, sts)
    add(f, {"apiVersion": "v1", "kind": "Service", "metadata": meta("Service", name, ns, labels),
            "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"port": port, "targetPort": port}]}})
    addrs = []
    for i in range(replicas):
        pname = f"{name}-{i}"
        pvc_name = f"data-{name}-{i}"
        pv_name = f"pvc-{uid('PersistentVolumeClaim', ns, pvc_name)}"
        node = NODES[i % 3]
        spec = {"containers": sts["spec"]["template"]["spec"]["containers"], "hostname": pname, "subdomain": name, "nodeName": node,
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": pvc_name}}]}
        plabels = {**labels, "statefulset.kubernetes.io/pod-name": pname, "controller-revision-hash": f"{name}-{h(name, 10)}"}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta("Pod", pname, ns, plabels, owner=sts), "spec": spec, "status": pod_status("Running", spec["containers"], node)}
        add(f, pod)
        addrs.append({"ip": pod["status"]["podIP"], "hostname": pname, "targetRef": {"kind": "Pod", "name": pname, "namespace": ns}})
        add(f, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("PersistentVolumeClaim", pvc_name, ns, {"app": name}),
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard", "resources": {"requests": {"storage": storage}}, "volumeName": pv_name, "volumeMode": "Filesystem"},
                "status": {"phase": "Bound", "capacity": {"storage": storage}, "accessModes": ["ReadWriteOnce"]}})
        add("00-cluster.yaml", {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta("PersistentVolume", pv_name),
                "spec": {"capacity": {"storage": storage}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
                         "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": pvc_name, "uid": uid("PersistentVolumeClaim", ns, pvc_name)},
                         "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": f"vol-{h(pv_name, 12)}"}},
                "status": {"phase": "Bound"}})
    add(f, {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("Endpoints", name, ns, labels), "subsets": [{"addresses": addrs, "ports": [{"port": port}]}]})
statefulset("payments", "postgres", 2, "postgres:16.4", "1", "2Gi", "50Gi", 5432)
statefulset("shop", "redis", 1, "redis:7.4", "250m", "512Mi", "5Gi", 6379)
add("payments.yaml", {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta("PodDisruptionBudget", "postgres-pdb", "payments"),
    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "postgres"}}}})

# grafana PVC + PV, and an unbound PVC
for ns, pvc, size, bound in [("monitoring", "grafana-storage", "10Gi", True), ("shop", "scratch", "20Gi", False)]:
    pv_name = f"pvc-{uid('PersistentVolumeClaim', ns, pvc)}"
    spec = {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard", "resources": {"requests": {"storage": size}}}
    if bound: spec["volumeName"] = pv_name
    add(f"{ns}.yaml", {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("PersistentVolumeClaim", pvc, ns), "spec": spec, "status": {"phase": "Bound" if bound else "Pending"}})
    if bound:
        add("00-cluster.yaml", {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta("PersistentVolume", pv_name),
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": "standard", "persistentVolumeReclaimPolicy": "Delete",
                     "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": pvc}}, "status": {"phase": "Bound"}})

# DaemonSet
ds_labels = {"app": "node-exporter", "app.kubernetes.io/name": "node-exporter"}
ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta("DaemonSet", "node-exporter", "monitoring", ds_labels),
      "spec": {"selector": {"matchLabels": {"app": "node-exporter"}}, "template": {"metadata": {"labels": ds_labels},
               "spec": {"serviceAccountName": "node-exporter", "hostNetwork": True, "containers": [container("node-exporter", "quay.io/prometheus/node-exporter:v1.8.2", "50m", "64Mi", 9100)]}}},
      "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 3}}
add("monitoring.yaml", ds)
for node in NODES:
    pname = f"node-exporter-{h(node, 5)}"
    spec = {**ds["spec"]["template"]["spec"], "nodeName": node}
    add("monitoring.yaml", {"apiVersion": "v1", "kind": "Pod", "metadata": meta("Pod", pname, "monitoring", {**ds_labels, "controller-revision-hash": h("ne", 10)}, owner=ds), "spec": spec, "status": pod_status("Running", spec["containers"], node)})
add("monitoring.yaml", {"apiVersion": "v1", "kind": "Service", "metadata": meta("Service", "node-exporter", "monitoring", ds_labels),
    "spec": {"clusterIP": "10.96.50.5", "selector": {"app": "node-exporter"}, "ports": [{"port": 9100, "targetPort": 9100}]}})

# CronJob + Jobs
cj_tpl = {"spec": {"restartPolicy": "OnFailure", "serviceAccountName": "payments-api", "containers": [container("report", "ghcr.io/acme/reports:1.2.0", "200m", "256Mi",
          env=[{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "payments-db-credentials", "key": "password"}}}])]}}
cj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("CronJob", "nightly-report", "payments", {"app": "nightly-report"}),
      "spec": {"schedule": "0 2 * * *", "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
               "jobTemplate": {"spec": {"backoffLimit": 1, "template": {"metadata": {"labels": {"app": "nightly-report"}}, **cj_tpl}}}},
      "status": {"lastScheduleTime": "2026-11-21T02:00:00Z", "lastSuccessfulTime": "2026-11-20T02:04:11Z"}}
add("payments.yaml", cj)
for day, ok in [("20", True), ("21", False)]:
    jname = f"nightly-report-291{day}0"
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("Job", jname, "payments", {"app": "nightly-report"}, owner=cj, ts=f"2026-11-{day}T02:00:00Z"),
           "spec": {"backoffLimit": 1, "template": {"metadata": {"labels": {"app": "nightly-report", "job-name": jname}}, **cj_tpl}},
           "status": ({"succeeded": 1, "completionTime": f"2026-11-{day}T02:04:11Z", "conditions": [{"type": "Complete", "status": "True"}]} if ok else
                      {"failed": 2, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}),}
    add("payments.yaml", job)
    pname = f"{jname}-{h(jname, 5)}"
    spec = {**cj_tpl["spec"], "nodeName": "node-b"}
    add("payments.yaml", {"apiVersion": "v1", "kind": "Pod", "metadata": meta("Pod", pname, "payments", {"app": "nightly-report", "job-name": jname}, owner=job, ts=f"2026-11-{day}T02:00:00Z"),
        "spec": spec, "status": pod_status("Succeeded" if ok else "Failed", spec["containers"], "node-b", "completed" if ok else "failed", 0 if ok else 1, ts=f"2026-11-{day}T02:00:05Z")})

# ConfigMaps / Secrets
CMS = [("shop", "frontend-config", {"API_URL": "http://checkout", "THEME": "autumn"}), ("shop", "catalog-data", {"products.json": '[{"id": 1, "name": "mug"}]'}),
       ("shop", "old-feature-flags", {"flags": "beta_cart=false"}), ("payments", "payments-config", {"currency": "EUR", "region": "eu-west-1"}),
       ("platform", "gateway-routes", {"envoy.yaml": "static_resources: {}"}), ("monitoring", "grafana-dashboards", {"cluster.json": "{}"})]
for ns, name, data in CMS:
    add(f"{ns}.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("ConfigMap", name, ns), "data": data})
for ns in NS:
    add(f"{ns}.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("ConfigMap", "kube-root-ca.crt", ns), "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIDemo\n-----END CERTIFICATE-----\n"}})
SECRETS = [("shop", "registry-credentials", "kubernetes.io/dockerconfigjson", {".dockerconfigjson": "eyJhdXRocyI6e319"}), ("payments", "payments-db-credentials", "Opaque", {"username": "cGF5bWVudHM=", "password": "ZGVtby1vbmx5"}),
           ("platform", "auth-jwt-key", "Opaque", {"jwt.key": "ZGVtby1vbmx5"}), ("monitoring", "grafana-admin", "Opaque", {"password": "ZGVtby1vbmx5"}),
           ("shop", "shop-tls", "kubernetes.io/tls", {"tls.crt": "ZGVtbw==", "tls.key": "ZGVtbw=="}), ("platform", "gateway-tls", "kubernetes.io/tls", {"tls.crt": "ZGVtbw==", "tls.key": "ZGVtbw=="})]
for ns, name, typ, data in SECRETS:
    add(f"{ns}.yaml", {"apiVersion": "v1", "kind": "Secret", "metadata": meta("Secret", name, ns), "type": typ, "data": data})
# ServiceAccounts
for ns, name in [("shop", "frontend"), ("payments", "payments-api"), ("monitoring", "grafana"), ("monitoring", "node-exporter")]:
    add(f"{ns}.yaml", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("ServiceAccount", name, ns, {"app": name})})
# RBAC
add("payments.yaml", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("Role", "payments-reader", "payments"),
    "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list", "watch"]}]})
add("payments.yaml", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("RoleBinding", "payments-api-reader", "payments"),
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "payments-reader"}, "subjects": [{"kind": "ServiceAccount", "name": "payments-api", "namespace": "payments"}]})
add("shop.yaml", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("Role", "config-reader", "shop"),
    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
add("shop.yaml", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("RoleBinding", "frontend-config-reader", "shop"),
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "config-reader"}, "subjects": [{"kind": "ServiceAccount", "name": "frontend", "namespace": "shop"}]})
add("monitoring.yaml", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta("ClusterRole", "kube-state-metrics"),
    "rules": [{"apiGroups": ["", "apps", "batch"], "resources": ["*"], "verbs": ["list", "watch"]}]})
add("monitoring.yaml", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta("ClusterRoleBinding", "kube-state-metrics"),
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kube-state-metrics"}, "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "monitoring"}]})
# Ingresses
for ns, name, host, svc, tls in [("shop", "storefront", "shop.acme.example", "frontend", "shop-tls"), ("platform", "api-gateway", "api.acme.example", "gateway", "gateway-tls"), ("platform", "auth", "auth.acme.example", "auth", None)]:
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta("Ingress", name, ns, annotations={"cert-manager.io/cluster-issuer": "letsencrypt"}),
           "spec": {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}}
    if tls: ing["spec"]["tls"] = [{"hosts": [host], "secretName": tls}]
    add(f"{ns}.yaml", ing)
add("00-cluster.yaml", {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta("IngressClass", "nginx"), "spec": {"controller": "k8s.io/ingress-nginx"}})
# NetworkPolicies
add("payments.yaml", {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("NetworkPolicy", "default-deny-ingress", "payments"),
    "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
add("payments.yaml", {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("NetworkPolicy", "allow-checkout-to-payments-api", "payments"),
    "spec": {"podSelector": {"matchLabels": {"app": "payments-api"}}, "policyTypes": ["Ingress"],
             "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}, "podSelector": {"matchLabels": {"app": "checkout"}}}], "ports": [{"port": 8080}]}]}})
add("shop.yaml", {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("NetworkPolicy", "cart-from-frontend", "shop"),
    "spec": {"podSelector": {"matchLabels": {"app": "cart"}}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}]}]}})
# CRD + custom objects
add("00-cluster.yaml", {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": meta("CustomResourceDefinition", "certificates.cert-manager.io"),
    "spec": {"group": "cert-manager.io", "scope": "Namespaced", "names": {"kind": "Certificate", "listKind": "CertificateList", "plural": "certificates", "singular": "certificate", "shortNames": ["cert", "certs"]},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})
for ns, name, host, secret, ready in [("shop", "shop-tls", "shop.acme.example", "shop-tls", True), ("platform", "gateway-tls", "api.acme.example", "gateway-tls", True), ("payments", "payments-internal-tls", "payments.internal", "payments-internal-tls", False)]:
    add(f"{ns}.yaml", {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": meta("Certificate", name, ns),
        "spec": {"secretName": secret, "dnsNames": [host], "issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt"}, "duration": "2160h"},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "Ready" if ready else "DoesNotExist", "message": "Certificate is up to date and has not expired" if ready else "Issuing certificate as Secret does not exist"}],
                   **({"notAfter": "2027-02-18T08:00:00Z"} if ready else {})}})

class Dumper(yaml.SafeDumper):
    pass
for fname, objs in files.items():
    with open(os.path.join(OUT, fname), "w") as fh:
        fh.write(f"# Tessera demo cluster: {fname[:-5]} (written by generate.py beside this file; deterministic)\n")
        yaml.dump_all(objs, fh, Dumper=Dumper, sort_keys=False, default_flow_style=False, explicit_start=True, width=120)
print({k: len(v) for k, v in files.items()})
