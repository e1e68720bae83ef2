"""Writes cluster.yaml beside it: a hand-made export of a kubeadm cluster (Kubernetes 1.31, three
nodes, flannel's 10.244.0.0/16 with a /24 per node, kubeadm's service CIDR 10.96.0.0/12, MetalLB
for LoadBalancers), as

    kubectl get nodes,svc,endpointslices -A -o yaml --show-managed-fields > cluster.yaml

writes it: one `v1 List`, Nodes then Services then EndpointSlices, each group ordered by namespace
and name; every map's keys sorted and strings quoted as kubectl's YAML printer does (double
quotes, only where a plain scalar would read as something else; a value ending in a newline, as
kubectl's last-applied-configuration, as a literal block); the server's fields (uid,
resourceVersion, creationTimestamp, managedFields, status) on everything. Nothing here is read by
the tests: they read the committed cluster.yaml. Run it again only to change the dump
(`python3 make_dump.py`), and review the diff.

The world, so that the tests have something to look for: Services of every type in eight
namespaces, ClusterIPs drawn at random from the /12 (but kubernetes .1 and kube-dns .10, as kubeadm
fixes them), NodePorts at random from 30000-32767 unless the Service asks for one, endpoints on the
pod CIDR of the node they run on (the workers' CIDRs out of order, as the node IPAM controller
handed them out), hostNetwork endpoints on the nodes' own addresses, three selector-less Services
(a written slice, and two mirrored from Endpoints), a Service that selects no pod (the controller's
empty slice), not-ready and terminating endpoints, three ExternalName Services.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import yaml

OUT = Path(__file__).with_name("cluster.yaml")
RNG = random.Random(1031)
TRIGGER = 60 * 24 + 95  # minutes after the first node: the pods' last changes, a day after the Services
K8S = "v1.31.2"
CONTROLLER = "endpointslice-controller.k8s.io"
MIRRORING = "endpointslicemirroring-controller.k8s.io"

NODES = [  # name, InternalIP, podCIDR (the node IPAM controller gave worker-2 the second /24)
    ("k8s-cp-1", "192.168.56.10", "10.244.0.0/24"),
    ("k8s-worker-1", "192.168.56.11", "10.244.2.0/24"),
    ("k8s-worker-2", "192.168.56.12", "10.244.1.0/24"),
]
NODE_OF_CIDR = {cidr.rsplit(".", 2)[0] + "." + cidr.split(".")[2]: name for name, _, cidr in NODES}
_serial = iter(range(1, 10**6))


def uid(*parts: str) -> str:
    h = hashlib.sha1("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def rv() -> str:
    return str(48000 + next(_serial) * 37)


def stamp(minutes: int) -> str:
    day, rest = divmod(minutes, 24 * 60)
    return f"2025-09-{14 + day:02d}T{8 + rest // 60 % 16:02d}:{rest % 60:02d}:11Z"


def fields(keys: dict) -> dict:
    """A fieldsV1 tree: {"f:a": {"f:b": {}}} from {"a": {"b": {}}}."""
    return {(k if k.startswith(("k:", ".", "v:")) else f"f:{k}"): fields(v) for k, v in keys.items()}


def managed(manager: str, op: str, when: str, keys: dict, sub: str | None = None) -> dict:
    entry = {"apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields(keys), "manager": manager,
             "operation": op, "time": when}
    if sub:
        entry["subresource"] = sub
    return entry


# ------------------------------------------------------------------------------------- nodes

def node(name: str, ip: str, cidr: str, index: int) -> dict:
    control = index == 0
    labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if control:
        labels.update({"node-role.kubernetes.io/control-plane": "",
                       "node.kubernetes.io/exclude-from-external-load-balancers": ""})
    created = stamp(index * 3)
    heartbeat = "2025-10-02T11:47:3%dZ" % index
    conditions = [
        ("NetworkUnavailable", "False", "FlannelIsUp", "Flannel is running on this node"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    resources = {"cpu": "4", "ephemeral-storage": "61202244Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                 "memory": "8131868Ki", "pods": "110"}
    spec: dict = {"podCIDR": cidr, "podCIDRs": [cidr]}
    if control:
        spec["taints"] = [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]
    annotations = {"flannel.alpha.coreos.com/backend-data": json.dumps({"VNI": 1, "VtepMAC": "4a:1c:%02x:9e:21:7b"
                                                                         % (index + 16)}, separators=(",", ":")),
                   "flannel.alpha.coreos.com/backend-type": "vxlan", "flannel.alpha.coreos.com/kube-subnet-manager":
                   "true", "flannel.alpha.coreos.com/public-ip": ip,
                   "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                   "node.alpha.kubernetes.io/ttl": "0",
                   "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "annotations": annotations, "creationTimestamp": created, "labels": labels,
            "managedFields": [
                managed("kubelet", "Update", created, {"metadata": {"annotations": {
                    ".": {}, "volumes.kubernetes.io/controller-managed-attach-detach": {}}, "labels": {
                    ".": {}, "beta.kubernetes.io/arch": {}, "beta.kubernetes.io/os": {}, "kubernetes.io/arch": {},
                    "kubernetes.io/hostname": {}, "kubernetes.io/os": {}}}}),
                managed("kube-controller-manager", "Update", stamp(index * 3 + 1), {
                    "metadata": {"annotations": {"node.alpha.kubernetes.io/ttl": {}}},
                    "spec": {"podCIDR": {}, "podCIDRs": {".": {}, f'v:"{cidr}"': {}}}}),
                managed("flanneld", "Update", stamp(index * 3 + 2), {"metadata": {"annotations": {
                    "flannel.alpha.coreos.com/backend-data": {}, "flannel.alpha.coreos.com/backend-type": {},
                    "flannel.alpha.coreos.com/kube-subnet-manager": {}, "flannel.alpha.coreos.com/public-ip": {}}},
                    "status": {"conditions": {'k:{"type":"NetworkUnavailable"}': {
                        ".": {}, "lastHeartbeatTime": {}, "lastTransitionTime": {}, "message": {}, "reason": {},
                        "status": {}, "type": {}}}}}, sub="status"),
                managed("kubelet", "Update", heartbeat, {"status": {"conditions": {
                    'k:{"type":"Ready"}': {"lastHeartbeatTime": {}, "lastTransitionTime": {}, "message": {},
                                           "reason": {}, "status": {}}}, "images": {}, "nodeInfo": {
                    "bootID": {}, "containerRuntimeVersion": {}, "kernelVersion": {}, "kubeletVersion": {}}}},
                        sub="status"),
            ],
            "name": name, "resourceVersion": rv(), "uid": uid("node", name),
        },
        "spec": spec,
        "status": {
            "addresses": [{"address": ip, "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
            "allocatable": resources, "capacity": resources,
            "conditions": [{"lastHeartbeatTime": heartbeat if t != "NetworkUnavailable" else stamp(index * 3 + 2),
                            "lastTransitionTime": stamp(index * 3 + 2), "message": m, "reason": r, "status": s,
                            "type": t} for t, s, r, m in conditions],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "features": {"supplementalGroupsPolicy": True},
            "images": [{"names": ["docker.io/flannel/flannel@sha256:c951947891d7811a4acd07fa2b25b0b4a20e7b9f1c0fd9"
                                  "bd3bc3f7e5b7d9e8b51", "docker.io/flannel/flannel:v0.25.6"],
                        "sizeBytes": 31425237},
                       {"names": ["registry.k8s.io/kube-proxy@sha256:22535649599e9f22b1b857afcbd9a8b36be238b2b3ea6"
                                  "8e3bbc4a9c6e0ce0a14", f"registry.k8s.io/kube-proxy:{K8S}"],
                        "sizeBytes": 30207900}],
            "nodeInfo": {"architecture": "amd64", "bootID": uid("boot", name),
                         "containerRuntimeVersion": "containerd://1.7.22", "kernelVersion": "6.8.0-45-generic",
                         "kubeProxyVersion": K8S, "kubeletVersion": K8S,
                         "machineID": hashlib.md5(name.encode()).hexdigest(), "operatingSystem": "linux",
                         "osImage": "Ubuntu 24.04.1 LTS", "systemUUID": uid("system", name)},
            "runtimeHandlers": [{"features": {"recursiveReadOnlyMounts": True, "userNamespaces": True},
                                 "name": "runc"},
                                {"features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}, "name": ""}],
        },
    }


# ------------------------------------------------------------------------------------- services

class Pods:
    """Pod addresses handed out per node, as host-local does (from .2 up)."""

    def __init__(self):
        self.next = {name: 2 for name, _, _ in NODES}
        self.cidr = {name: cidr for name, _, cidr in NODES}

    def ip(self, node_name: str) -> str:
        base = self.cidr[node_name].split("/")[0].rsplit(".", 1)[0]
        n = self.next[node_name]
        self.next[node_name] += 1
        return f"{base}.{n}"


PODS = Pods()
USED_IPS = {"10.96.0.1", "10.96.0.10"}
USED_PORTS: set[int] = set()


def cluster_ip() -> str:
    while True:  # kubeadm's 10.96.0.0/12, at random
        ip = f"10.{RNG.randint(96, 111)}.{RNG.randint(0, 255)}.{RNG.randint(1, 254)}"
        if ip not in USED_IPS:
            USED_IPS.add(ip)
            return ip


def node_port() -> int:
    while True:  # the upper band first: 30086-32767
        p = RNG.randint(30086, 32767)
        if p not in USED_PORTS:
            USED_PORTS.add(p)
            return p


def last_applied(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n"


def port_doc(p: dict, kind: str) -> dict:
    out = {"port": p["port"], "protocol": p.get("protocol", "TCP")}
    for key in ("name", "appProtocol"):
        if key in p:
            out[key] = p[key]
    if kind != "ExternalName":
        out["targetPort"] = p.get("targetPort", p["port"])
    if kind in ("NodePort", "LoadBalancer"):
        out["nodePort"] = p.get("nodePort") or node_port()
    return out


SERVICES: list[dict] = []
SLICES: list[dict] = []


def service(ns: str, name: str, ports: list[dict], *, kind: str = "ClusterIP", selector: dict | None = None,
            ip: str | None = None, labels: dict | None = None, annotations: dict | None = None,
            applied: bool = True, endpoints: list | None = None, slice_ports: list[dict] | None = None,
            manager: str = "kubectl-client-side-apply", **spec_extra) -> dict:
    """A Service and, for one with a selector, the EndpointSlice the controller made of `endpoints`
    [(node, target port overrides {port name: number} or None, hostname or None, conditions or None)]."""
    created = stamp(60 + len(SERVICES) * 7)
    headless = ip == "None"
    written: dict = {"ports": [{k: v for k, v in p.items()} for p in ports]}
    if selector:
        written["selector"] = selector
    if kind != "ClusterIP":
        written["type"] = kind
    if headless:
        written["clusterIP"] = "None"
    written.update(spec_extra)
    meta: dict = {"creationTimestamp": created, "name": name, "namespace": ns, "resourceVersion": rv(),
                  "uid": uid("svc", ns, name)}
    if labels:
        meta["labels"] = labels
    annotations = dict(annotations or {})
    if applied:
        applied_meta = {"annotations": dict(annotations), "labels": labels, "name": name, "namespace": ns}
        applied_meta = {k: v for k, v in applied_meta.items() if v}
        annotations["kubectl.kubernetes.io/last-applied-configuration"] = last_applied(
            {"apiVersion": "v1", "kind": "Service", "metadata": applied_meta, "spec": written})
    if annotations:
        meta["annotations"] = annotations
    spec: dict = {"ports": [port_doc(p, kind) for p in ports], "sessionAffinity": "None", "type": kind}
    if kind == "ExternalName":
        spec = {"externalName": spec_extra["externalName"], "sessionAffinity": "None", "type": kind}
        spec_extra = {}
        if ports:
            spec["ports"] = [port_doc(p, kind) for p in ports]
    else:
        address = ip or cluster_ip()
        spec.update({"clusterIP": address, "clusterIPs": [address], "internalTrafficPolicy": "Cluster",
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})
        if kind in ("NodePort", "LoadBalancer"):
            spec["externalTrafficPolicy"] = "Cluster"
        if kind == "LoadBalancer":
            spec["allocateLoadBalancerNodePorts"] = True
    if selector:
        spec["selector"] = selector
    spec.update({k: v for k, v in spec_extra.items() if k != "status"})
    status = spec_extra.get("status") or {"loadBalancer": {}}
    spec.pop("status", None)
    field_keys: dict = {"metadata": {"annotations": {".": {}, "kubectl.kubernetes.io/last-applied-configuration":
                                                     {}}} if applied else {}}
    field_keys["spec"] = {key: {} for key in sorted(spec) if key not in ("clusterIP", "clusterIPs", "ipFamilies")}
    meta["managedFields"] = [managed(manager, "Update", created, field_keys)]
    if kind == "LoadBalancer" and status.get("loadBalancer"):
        meta["managedFields"].append(managed("controller", "Update", stamp(61 + len(SERVICES) * 7),
                                             {"status": {"loadBalancer": {"ingress": {}}}}, sub="status"))
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec, "status": status}
    SERVICES.append(svc)
    if selector is not None and kind != "ExternalName":
        controller_slice(svc, endpoints or [], slice_ports, WORKLOAD_OF.get(name, name))
    return svc


# Services in front of the same pods as another one (named after their workload)
WORKLOAD_OF = {
    "ingress-nginx-controller-admission": "ingress-nginx-controller",
    "ingress-nginx-controller-metrics": "ingress-nginx-controller",
    "prometheus-operated": "prometheus",
    "prometheus-k8s": "prometheus",
    "alertmanager-operated": "alertmanager",
    "alertmanager-main": "alertmanager",
    "frontend-external": "frontend",
    "postgres-hl": "postgres",
    "ledger-public": "ledger",
    "kafka-headless": "kafka",
    "keycloak-headless": "keycloak",
}
POD_OF: dict[tuple[str, str, int], tuple[str, str]] = {}  # (namespace, workload, index) -> (pod, address)


def controller_slice(svc: dict, endpoints: list, slice_ports: list[dict] | None, workload: str) -> None:
    meta, spec = svc["metadata"], svc["spec"]
    ns, name = meta["namespace"], meta["name"]
    suffix = "".join(RNG.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
    headless = spec.get("clusterIP") == "None"
    labels = {**meta.get("labels", {}), "endpointslice.kubernetes.io/managed-by": CONTROLLER,
              "kubernetes.io/service-name": name}
    if headless:
        labels["service.kubernetes.io/headless"] = ""
    eps = []
    template_hash = "".join(RNG.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(10))
    for i, (node_name, _, hostname, conditions) in enumerate(endpoints):
        host_network = node_name.startswith("@")
        node_name = node_name.lstrip("@")
        if (ns, workload, i) not in POD_OF:  # the pods of one workload behind several Services
            address = next(a for n, a, _ in NODES if n == node_name) if host_network else PODS.ip(node_name)
            POD_OF[ns, workload, i] = (hostname or f"{workload}-{template_hash}-" + "".join(
                RNG.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)), address)
        pod, address = POD_OF[ns, workload, i]
        ep = {"addresses": [address],
              "conditions": conditions or {"ready": True, "serving": True, "terminating": False},
              "nodeName": node_name, "targetRef": {"kind": "Pod", "name": pod, "namespace": ns,
                                                   "uid": uid("pod", ns, pod)}}
        if hostname and headless:
            ep["hostname"] = hostname
        eps.append(ep)
    ports = None
    if endpoints:
        ports = []
        for p in slice_ports or spec.get("ports", []):
            target = p.get("targetPort", p.get("port"))
            port = {"name": p.get("name", ""), "port": p.get("number", target if isinstance(target, int) else None),
                    "protocol": p.get("protocol", "TCP")}
            if "appProtocol" in p:
                port["appProtocol"] = p["appProtocol"]
            ports.append(port)
    created = meta["creationTimestamp"]
    slice_meta = {
        "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": stamp(TRIGGER + len(SLICES) * 5)},
        "creationTimestamp": created, "generateName": f"{name}-", "generation": 1 + len(eps), "labels": labels,
        "managedFields": [{"apiVersion": "discovery.k8s.io/v1", "fieldsType": "FieldsV1", "fieldsV1": fields({
            "addressType": {}, "endpoints": {}, "metadata": {"annotations": {".": {},
            "endpoints.kubernetes.io/last-change-trigger-time": {}}, "generateName": {}, "labels": {
                ".": {}, "endpointslice.kubernetes.io/managed-by": {}, "kubernetes.io/service-name": {}},
            "ownerReferences": {".": {}, f'k:{{"uid":"{meta["uid"]}"}}': {}}}, "ports": {}}),
            "manager": "kube-controller-manager", "operation": "Update", "time": stamp(TRIGGER + len(SLICES) * 5)}],
        "name": f"{name}-{suffix}", "namespace": ns,
        "ownerReferences": [{"apiVersion": "v1", "blockOwnerDeletion": True, "controller": True, "kind": "Service",
                             "name": name, "uid": meta["uid"]}],
        "resourceVersion": rv(), "uid": uid("slice", ns, name)}
    SLICES.append({"addressType": "IPv4", "apiVersion": "discovery.k8s.io/v1", "endpoints": eps or None,
                   "kind": "EndpointSlice", "metadata": slice_meta, "ports": ports})


def written_slice(ns: str, name: str, service_name: str, addresses: list[tuple[str, bool]], ports: list[dict],
                  manager_label: str | None, annotations: dict | None = None) -> None:
    labels = {"kubernetes.io/service-name": service_name}
    if manager_label:
        labels["endpointslice.kubernetes.io/managed-by"] = manager_label
    meta = {"creationTimestamp": stamp(200 + len(SLICES)), "generation": 1, "labels": labels, "name": name,
            "namespace": ns, "resourceVersion": rv(), "uid": uid("slice", ns, name),
            "managedFields": [{"apiVersion": "discovery.k8s.io/v1", "fieldsType": "FieldsV1", "fieldsV1": fields(
                {"addressType": {}, "endpoints": {}, "metadata": {"labels": {".": {}, "kubernetes.io/service-name":
                                                                             {}}}, "ports": {}}),
                "manager": "kube-controller-manager" if manager_label == MIRRORING else
                ("kube-apiserver" if name == "kubernetes" else "kubectl-client-side-apply"),
                "operation": "Update", "time": stamp(200 + len(SLICES))}]}
    if annotations:
        meta["annotations"] = annotations
    if manager_label == MIRRORING:
        meta["generateName"] = f"{service_name}-"
        meta["ownerReferences"] = [{"apiVersion": "v1", "blockOwnerDeletion": True, "controller": True,
                                    "kind": "Endpoints", "name": service_name,
                                    "uid": uid("endpoints", ns, service_name)}]
    SLICES.append({"addressType": "IPv4", "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": meta, "ports": ports,
                   "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a, ready in addresses]})


READY = None
NOT_READY = {"ready": False, "serving": False, "terminating": False}
TERMINATING = {"ready": False, "serving": True, "terminating": True}
CP, W1, W2 = (n for n, _, _ in NODES)


def on(*nodes: str, hostnames: list[str] | None = None, conditions: list | None = None) -> list:
    return [(n, None, (hostnames or [None] * len(nodes))[i], (conditions or [None] * len(nodes))[i])
            for i, n in enumerate(nodes)]


def world() -> None:
    # default
    service("default", "kubernetes", [{"name": "https", "port": 443, "targetPort": 6443}], ip="10.96.0.1",
            labels={"component": "apiserver", "provider": "kubernetes"}, applied=False, manager="kube-apiserver")
    written_slice("default", "kubernetes", "kubernetes", [("192.168.56.10", True)],
                  [{"name": "https", "port": 6443, "protocol": "TCP"}], None)
    service("default", "echo", [{"name": "dns-udp", "port": 53, "protocol": "UDP", "targetPort": 5353,
                                 "nodePort": 30053},
                                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 5353,
                                 "nodePort": 30053}],
            kind="NodePort", selector={"app": "echo"}, endpoints=on(W1, W2))
    service("default", "web-canary", [{"name": "http", "port": 80, "targetPort": 8080}],
            selector={"app": "web", "track": "canary"},
            endpoints=on(W1, W2, W2, conditions=[None, NOT_READY, TERMINATING]))
    service("default", "orphan", [{"name": "http", "port": 80, "targetPort": 8080}], selector={"app": "gone"})
    # kube-system
    service("kube-system", "kube-dns", [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                                        {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}],
            ip="10.96.0.10", selector={"k8s-app": "kube-dns"},
            labels={"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            annotations={"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}, applied=False,
            manager="kubeadm", endpoints=on(CP, CP))
    service("kube-system", "metrics-server", [{"name": "https", "port": 443, "targetPort": "https",
                                              "appProtocol": "https"}],
            selector={"k8s-app": "metrics-server"}, labels={"k8s-app": "metrics-server"},
            endpoints=on(W2), slice_ports=[{"name": "https", "number": 10250, "appProtocol": "https"}])
    service("kube-system", "kubelet", [{"name": "https-metrics", "port": 10250},
                                       {"name": "http-metrics", "port": 10255},
                                       {"name": "cadvisor", "port": 4194}],
            ip="None", applied=False, manager="prometheus-operator",
            labels={"app.kubernetes.io/managed-by": "prometheus-operator", "app.kubernetes.io/name": "kubelet",
                    "k8s-app": "kubelet"})
    written_slice("kube-system", "kubelet-x7k2p", "kubelet", [(ip, True) for _, ip, _ in NODES],
                  [{"name": "https-metrics", "port": 10250, "protocol": "TCP"},
                   {"name": "http-metrics", "port": 10255, "protocol": "TCP"},
                   {"name": "cadvisor", "port": 4194, "protocol": "TCP"}], MIRRORING)
    # ingress-nginx
    ingress_labels = {"app.kubernetes.io/component": "controller", "app.kubernetes.io/instance": "ingress-nginx",
                      "app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/part-of": "ingress-nginx",
                      "app.kubernetes.io/version": "1.11.2"}
    ingress_selector = {k: v for k, v in ingress_labels.items() if k != "app.kubernetes.io/version"
                        and k != "app.kubernetes.io/part-of"}
    service("ingress-nginx", "ingress-nginx-controller",
            [{"name": "http", "port": 80, "targetPort": "http", "appProtocol": "http"},
             {"name": "https", "port": 443, "targetPort": "https", "appProtocol": "https"}],
            kind="LoadBalancer", selector=ingress_selector, labels=ingress_labels,
            annotations={"metallb.universe.tf/ip-allocated-from-pool": "first-pool"},
            endpoints=on(W1, W2), slice_ports=[{"name": "http", "number": 80, "appProtocol": "http"},
                                               {"name": "https", "number": 443, "appProtocol": "https"}],
            externalTrafficPolicy="Cluster",
            status={"loadBalancer": {"ingress": [{"ip": "192.168.56.240", "ipMode": "VIP"}]}})
    service("ingress-nginx", "ingress-nginx-controller-admission",
            [{"name": "https-webhook", "port": 443, "targetPort": "webhook", "appProtocol": "https"}],
            selector=ingress_selector, labels=ingress_labels, endpoints=on(W1, W2),
            slice_ports=[{"name": "https-webhook", "number": 8443, "appProtocol": "https"}])
    service("ingress-nginx", "ingress-nginx-controller-metrics", [{"name": "metrics", "port": 10254,
                                                                   "targetPort": "metrics"}],
            selector=ingress_selector, labels=ingress_labels, endpoints=on(W1, W2),
            slice_ports=[{"name": "metrics", "number": 10254}])
    # monitoring
    mon = "monitoring"
    service(mon, "prometheus-operated", [{"name": "web", "port": 9090, "targetPort": "web"}], ip="None",
            selector={"app.kubernetes.io/name": "prometheus"}, applied=False, manager="PrometheusOperator",
            labels={"managed-by": "prometheus-operator", "operated-prometheus": "true"},
            endpoints=on(W1, W2, hostnames=["prometheus-k8s-0", "prometheus-k8s-1"]),
            slice_ports=[{"name": "web", "number": 9090}])
    service(mon, "prometheus-k8s", [{"name": "web", "port": 9090, "targetPort": "web"},
                                    {"name": "reloader-web", "port": 8080, "targetPort": "reloader-web"}],
            selector={"app.kubernetes.io/component": "prometheus", "app.kubernetes.io/name": "prometheus"},
            labels={"app.kubernetes.io/component": "prometheus", "app.kubernetes.io/name": "prometheus"},
            endpoints=on(W1, W2), slice_ports=[{"name": "web", "number": 9090},
                                               {"name": "reloader-web", "number": 8080}],
            sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}})
    service(mon, "alertmanager-operated", [{"name": "web", "port": 9093, "targetPort": "web"},
                                           {"name": "tcp-mesh", "port": 9094, "targetPort": 9094},
                                           {"name": "udp-mesh", "port": 9094, "protocol": "UDP", "targetPort": 9094}],
            ip="None", selector={"app.kubernetes.io/name": "alertmanager"}, applied=False,
            manager="PrometheusOperator", labels={"managed-by": "prometheus-operator",
                                                  "operated-alertmanager": "true"},
            endpoints=on(W1, W2, CP, hostnames=["alertmanager-main-0", "alertmanager-main-1",
                                                "alertmanager-main-2"]),
            slice_ports=[{"name": "web", "number": 9093}, {"name": "tcp-mesh", "number": 9094},
                         {"name": "udp-mesh", "number": 9094, "protocol": "UDP"}])
    service(mon, "alertmanager-main", [{"name": "web", "port": 9093, "targetPort": "web"},
                                       {"name": "reloader-web", "port": 8080, "targetPort": "reloader-web"}],
            selector={"app.kubernetes.io/component": "alert-router", "app.kubernetes.io/name": "alertmanager"},
            endpoints=on(W1, W2, CP), slice_ports=[{"name": "web", "number": 9093},
                                                   {"name": "reloader-web", "number": 8080}],
            sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}})
    service(mon, "grafana", [{"name": "http", "port": 3000, "targetPort": "http", "nodePort": 32000}],
            kind="NodePort", selector={"app.kubernetes.io/name": "grafana"}, endpoints=on(W2),
            slice_ports=[{"name": "http", "number": 3000}])
    service(mon, "node-exporter", [{"name": "https", "port": 9100, "targetPort": "https"}], ip="None",
            selector={"app.kubernetes.io/name": "node-exporter"},
            endpoints=on("@" + CP, "@" + W1, "@" + W2), slice_ports=[{"name": "https", "number": 9100}])
    service(mon, "kube-state-metrics", [{"name": "https-main", "port": 8443, "targetPort": "https-main"},
                                        {"name": "https-self", "port": 9443, "targetPort": "https-self"}],
            ip="None", selector={"app.kubernetes.io/name": "kube-state-metrics"}, endpoints=on(W1),
            slice_ports=[{"name": "https-main", "number": 8443}, {"name": "https-self", "number": 9443}])
    service(mon, "prometheus-operator", [{"name": "https", "port": 8443, "targetPort": "https"}], ip="None",
            selector={"app.kubernetes.io/name": "prometheus-operator"}, endpoints=on(W2),
            slice_ports=[{"name": "https", "number": 8443}])
    service(mon, "blackbox-exporter", [{"name": "https", "port": 9115, "targetPort": "https"},
                                       {"name": "probe", "port": 19115, "targetPort": "http"}],
            selector={"app.kubernetes.io/name": "blackbox-exporter"}, endpoints=on(W1),
            slice_ports=[{"name": "https", "number": 9115}, {"name": "probe", "number": 19115}])
    service(mon, "prometheus-adapter", [{"name": "https", "port": 443, "targetPort": 6443}],
            selector={"app.kubernetes.io/name": "prometheus-adapter"}, endpoints=on(W1, W2))
    service(mon, "slack", [], kind="ExternalName", externalName="hooks.slack.com")
    # cert-manager
    cm = {"app.kubernetes.io/instance": "cert-manager"}
    service("cert-manager", "cert-manager", [{"name": "tcp-prometheus-servicemonitor", "port": 9402,
                                              "targetPort": "http-metrics"}],
            selector={**cm, "app.kubernetes.io/component": "controller"}, endpoints=on(W1),
            slice_ports=[{"name": "tcp-prometheus-servicemonitor", "number": 9402}], manager="helm")
    service("cert-manager", "cert-manager-webhook", [{"name": "https", "port": 443, "targetPort": "https"},
                                                     {"name": "metrics", "port": 9402,
                                                      "targetPort": "http-metrics"}],
            selector={**cm, "app.kubernetes.io/component": "webhook"}, endpoints=on(W2), manager="helm",
            slice_ports=[{"name": "https", "number": 10250}, {"name": "metrics", "number": 9402}])
    # shop: an online boutique
    shop = "shop"
    service(shop, "frontend", [{"name": "http", "port": 80, "targetPort": 8080}],
            selector={"app": "frontend"}, endpoints=on(W1, W2))
    service(shop, "frontend-external", [{"name": "http", "port": 80, "targetPort": 8080}], kind="LoadBalancer",
            selector={"app": "frontend"}, endpoints=on(W1, W2),
            annotations={"metallb.universe.tf/ip-allocated-from-pool": "first-pool"},
            status={"loadBalancer": {"ingress": [{"ip": "192.168.56.241", "ipMode": "VIP"}]}})
    for name, port, target in (("cartservice", 7070, 7070), ("productcatalogservice", 3550, 3550),
                               ("checkoutservice", 5050, 5050), ("currencyservice", 7000, 7000),
                               ("emailservice", 5000, 8080), ("recommendationservice", 8080, 8080),
                               ("shippingservice", 50051, 50051), ("adservice", 9555, 9555),
                               ("paymentservice", 50051, 50051)):
        service(shop, name, [{"name": "grpc", "port": port, "targetPort": target, "appProtocol": "grpc"}],
                selector={"app": name}, endpoints=on(RNG.choice((W1, W2))))
    service(shop, "redis-cart", [{"name": "tcp-redis", "port": 6379, "targetPort": 6379}],
            selector={"app": "redis-cart"}, endpoints=on(W1))
    service(shop, "postgres", [{"name": "tcp-postgresql", "port": 5432, "targetPort": "tcp-postgresql"}],
            selector={"app.kubernetes.io/name": "postgresql"}, endpoints=on(W2, hostnames=["postgres-0"]),
            slice_ports=[{"name": "tcp-postgresql", "number": 5432}])
    service(shop, "postgres-hl", [{"name": "tcp-postgresql", "port": 5432, "targetPort": "tcp-postgresql"}],
            ip="None", selector={"app.kubernetes.io/name": "postgresql"}, publishNotReadyAddresses=True,
            endpoints=on(W2, hostnames=["postgres-0"]), slice_ports=[{"name": "tcp-postgresql", "number": 5432}])
    service(shop, "legacy-inventory", [{"name": "http", "port": 8080}])
    written_slice(shop, "legacy-inventory-1", "legacy-inventory", [("192.168.70.15", True), ("192.168.70.16", True)],
                  [{"name": "http", "port": 8080, "protocol": "TCP"}], "staff",
                  annotations={"owner": "platform-team"})
    service(shop, "loadgen-metrics", [{"name": "metrics", "port": 9090}], kind="NodePort",
            selector={"app": "loadgenerator"}, externalTrafficPolicy="Local", endpoints=on(W1))
    # payments
    pay = "payments"
    service(pay, "payments-api", [{"name": "http", "port": 80, "targetPort": 8080},
                                  {"name": "https", "port": 443, "targetPort": 8443}],
            selector={"app": "payments-api"}, endpoints=on(W1, W2, W1))
    service(pay, "payments-worker-metrics", [{"name": "metrics", "port": 9090}], selector={"app": "payments-worker"},
            endpoints=on(W2))
    service(pay, "fraud-detector", [{"name": "grpc", "port": 50051, "appProtocol": "grpc"}],
            selector={"app": "fraud-detector"}, internalTrafficPolicy="Local", endpoints=on(W1))
    service(pay, "ledger", [{"name": "tcp", "port": 7000}], ip="None", selector={"app": "ledger"},
            endpoints=on(W1, W2, hostnames=["ledger-0", "ledger-1"]))
    service(pay, "ledger-public", [{"name": "tcp", "port": 7000, "nodePort": 31200}], kind="LoadBalancer",
            selector={"app": "ledger"}, endpoints=on(W1, W2), loadBalancerSourceRanges=["10.0.0.0/8"],
            status={"loadBalancer": {"ingress": [{"ip": "192.168.56.242", "ipMode": "VIP"}]}})
    service(pay, "kafka", [{"name": "tcp-client", "port": 9092}], selector={"app.kubernetes.io/name": "kafka"},
            endpoints=on(W1, W2, CP, hostnames=["kafka-0", "kafka-1", "kafka-2"]))
    service(pay, "kafka-headless", [{"name": "tcp-client", "port": 9092}, {"name": "tcp-internal", "port": 9094}],
            ip="None", selector={"app.kubernetes.io/name": "kafka"}, publishNotReadyAddresses=True,
            endpoints=on(W1, W2, CP, hostnames=["kafka-0", "kafka-1", "kafka-2"]))
    service(pay, "zookeeper", [{"name": "client", "port": 2181}, {"name": "follower", "port": 2888},
                               {"name": "election", "port": 3888}],
            selector={"app.kubernetes.io/name": "zookeeper"}, endpoints=on(W1, W2, CP))
    service(pay, "partner-bank", [], kind="ExternalName", externalName="api.bank.example.com")
    service(pay, "stripe", [{"name": "https", "port": 443}], kind="ExternalName", externalName="api.stripe.com.")
    service(pay, "mainframe", [{"name": "tn3270", "port": 3270}])
    written_slice(pay, "mainframe-8fq2v", "mainframe", [("10.20.30.40", True)],
                  [{"name": "tn3270", "port": 3270, "protocol": "TCP"}], MIRRORING)
    service(pay, "statsd", [{"name": "statsd", "port": 8125, "protocol": "UDP"}], kind="NodePort",
            selector={"app": "statsd"}, endpoints=on(CP))
    # auth: an app namespace with a session-affine login
    service("auth", "keycloak", [{"name": "http", "port": 80, "targetPort": "http"}],
            selector={"app.kubernetes.io/name": "keycloak"}, sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}},
            endpoints=on(W1, W2, hostnames=["keycloak-0", "keycloak-1"]),
            slice_ports=[{"name": "http", "number": 8080}])
    service("auth", "keycloak-headless", [{"name": "http", "port": 8080, "targetPort": "http"}], ip="None",
            selector={"app.kubernetes.io/name": "keycloak"}, endpoints=on(W1, W2, hostnames=["keycloak-0",
                                                                                            "keycloak-1"]),
            slice_ports=[{"name": "http", "number": 8080}])
    service("auth", "oauth2-proxy", [{"name": "http", "port": 4180, "targetPort": 4180}], kind="NodePort",
            selector={"app": "oauth2-proxy"}, endpoints=on(CP, W1))


class _Dumper(yaml.SafeDumper):
    """kubectl's YAML printer (sigs.k8s.io/yaml over go-yaml v2): keys sorted, no anchors, double
    quotes for a string that would read back as another type ("0", "true", a timestamp, ""),
    single quotes where a plain scalar is not allowed, a literal block for text with a newline."""

    def ignore_aliases(self, data):
        return True


def _str(dumper: yaml.SafeDumper, value: str):
    if "\n" in value:
        style = "|"
    elif dumper.resolve(yaml.ScalarNode, value, (True, False)) != "tag:yaml.org,2002:str":
        style = '"'
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def main() -> None:
    nodes = [node(n, ip, cidr, i) for i, (n, ip, cidr) in enumerate(NODES)]
    world()
    by_place = lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])  # noqa: E731
    items = nodes + sorted(SERVICES, key=by_place) + sorted(SLICES, key=by_place)
    text = yaml.dump({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}},
                     Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=80, allow_unicode=True)
    OUT.write_text(text)
    print(f"{OUT}: {len(nodes)} nodes, {len(SERVICES)} services, {len(SLICES)} endpointslices, "
          f"{text.count(chr(10))} lines")


if __name__ == "__main__":
    main()
