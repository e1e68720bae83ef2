"""What `get` prints: kubectl-like tables, and kubectl-style JSON/YAML objects built from the plan;
the other output formats (jsonpath, custom-columns) and the label selectors of `get -l`."""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

from . import KUBERNETES_VERSION, __version__
from .errors import InputError, LabError
from .plan import podstatus

if TYPE_CHECKING:
    from . import jsonpath
    from .model.objects import (ConfigMap, Event, PendingPod, Plan, PlannedNode, PlannedPod, PlannedService,
                                PlannedWorkload)
    from .model.objects import LabelSelector, Namespace, NetworkPolicy, PolicyPeer, PolicyRule

# The model is imported by the functions that look into its objects: `get pods` prints its table
# from PodLines made of the plan's JSON (app/query.py) and starts without it (bench/bench_cli.py).

# What every node's kubelet reports as its version: the Kubernetes release the lab emulates
# (kubenet_lab.KUBERNETES_VERSION, which the probes' User-Agent follows too), marked as this lab's.
KUBELET_VERSION = f"v{KUBERNETES_VERSION}-kubenet-lab.{__version__}"


# yaml, jsonpath, the kernel and the lab's state are imported where a format or a column needs
# them: `get pods` and `exec` start without them.


def _created(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _netns_created(name: str) -> float | None:
    from .kernel.nsenter import netns_path

    return _created(netns_path(name))


def age(ts: float | None, now: float | None = None) -> str:
    """kubectl's short durations: 45s, 12m, 3h4m, 2d."""
    if ts is None:
        return "<unknown>"
    s = max(0, int((now or time.time()) - ts))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m" if m < 60 else (f"{m // 60}h{m % 60}m" if m % 60 else f"{m // 60}h")
    h = m // 60
    if h < 48:
        return f"{h}h"
    return f"{h // 24}d"


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else None


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """kubectl's tabwriter: columns 3 spaces apart, each at least 6 wide with its padding."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max([len(h), 3] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [list(headers)] + rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# Pods
# ------------------------------------------------------------------------------------------


def pod_created(plan: Plan, pod: PlannedPod | PodLine) -> float | None:
    """When its network namespace was made (a hostNetwork pod's is its node's: pod.netns)."""
    return _netns_created(pod.netns)


class PodLine:
    """What a line of `get pods` (and a pod's state) needs of a pod: made of a planned or pending
    pod by pod_line, or of the plan's JSON by app.query.pod_lines without decoding the plan.
    `containers`: (name, runs a process (RunExec)); `init_containers`: (name, runs a process,
    sidecar); a pending pod's: (name, False)."""

    __slots__ = ("namespace", "name", "labels", "pending", "reason", "containers", "init_containers",
                 "restart_policy", "netns", "ip", "node")

    def __init__(self, namespace: str, name: str, labels: Mapping[str, str], *, pending: bool = False,
                 reason: str = "", containers: tuple[tuple[str, bool], ...] = (),
                 init_containers: tuple[tuple[str, bool, bool], ...] = (), restart_policy: str = "Always",
                 netns: str = "", ip: str = "", node: str = ""):
        self.namespace, self.name, self.labels, self.pending, self.reason = namespace, name, labels, pending, reason
        self.containers, self.init_containers, self.restart_policy = containers, init_containers, restart_policy
        self.netns, self.ip, self.node = netns, ip, node

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _fields(self) -> tuple:
        return tuple(getattr(self, f) for f in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PodLine) and self._fields() == other._fields()

    def __repr__(self) -> str:
        return "PodLine(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__) + ")"


def pod_line(pod: PlannedPod | PendingPod | PodLine) -> PodLine:
    if isinstance(pod, PodLine):
        return pod
    from .model.objects import PendingPod, RunExec

    if isinstance(pod, PendingPod):
        return PodLine(pod.namespace, pod.name, dict(pod.labels), pending=True, reason=pod.reason,
                       containers=tuple((name, False) for name, _ in pod.containers))
    return PodLine(pod.namespace, pod.name, dict(pod.labels),
                   containers=tuple((c.name, isinstance(c.run, RunExec)) for c in pod.containers),
                   init_containers=tuple((c.name, isinstance(c.run, RunExec), c.sidecar) for c in pod.init_containers),
                   restart_policy=pod.restart_policy, netns=pod.netns, ip=str(pod.ip), node=pod.node)


def _states(pod: PodLine, containers: Sequence[tuple], got: dict) -> list[dict]:
    out = []
    for name, runs_process, *_ in containers:
        st = got.get(name)
        if st is None:  # built-in servers run while the supervisor does
            waiting = "PodInitializing" if pod.init_containers else "ContainerCreating"
            st = {"state": "waiting", "reason": waiting if runs_process else "SupervisorDown", "restarts": 0}
        out.append({"name": name, **st})
    return out


def container_states(pod: PlannedPod | PodLine, status: dict) -> list[dict]:
    """Each container's state, as the supervisor reports it."""
    line = pod_line(pod)
    return _states(line, line.containers, status.get(line.key, {}).get("containers", {}))


def init_container_states(pod: PlannedPod | PodLine, status: dict) -> list[dict]:
    line = pod_line(pod)
    return _states(line, line.init_containers, status.get(line.key, {}).get("initContainers", {}))


def pod_state(pod: PlannedPod | PodLine, status: dict) -> podstatus.PodStatus:
    """Phase, readiness and the READY/STATUS/RESTARTS columns from the supervisor's status."""
    line = pod_line(pod)
    got = status.get(line.key, {})
    inits = [(s, sidecar) for (_, _, sidecar), s in zip(line.init_containers, init_container_states(line, status))]
    initialized = got.get("initialized")
    return podstatus.pod_status(container_states(line, status), inits, line.restart_policy,
                                initialized if isinstance(initialized, bool) else None)


def pod_phase(states: list[dict], init: list[tuple[dict, bool]] = (), restart_policy: str = "Always",
              initialized: bool | None = None) -> tuple[str, str]:
    """(phase, STATUS column) as kubelet and kubectl make them of the containers' states (and
    the init containers', each with whether it is a sidecar); see plan.podstatus."""
    st = podstatus.pod_status(states, init, restart_policy, initialized)
    return st.phase, st.status


def restarts_column(st: podstatus.PodStatus, now: float | None = None) -> str:
    """kubectl's RESTARTS: the count, and how long ago the latest restart it counts was."""
    if st.restarts and st.last_restart:
        try:
            when = datetime.strptime(st.last_restart, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return str(st.restarts)
        return f"{st.restarts} ({age(when.timestamp(), now)} ago)"
    return str(st.restarts)


def pod_rows(plan: Plan, pods: list[PlannedPod | PendingPod | PodLine], status: dict, wide: bool, all_ns: bool):
    return pod_line_rows([pod_line(p) for p in pods], status, wide, all_ns, lambda ref: created_at(plan, ref))


def pod_line_rows(pods: list[PodLine], status: dict, wide: bool, all_ns: bool,
                  created: Callable[[str], float | None]):
    """`get pods`' table; `created`: when an object ("Kind/ns/name") was created, as the plan
    keeps it (created_at), for the pods no node takes."""
    headers = (["NAMESPACE"] if all_ns else []) + ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    if wide:
        headers += ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    rows = []
    for pod in pods:
        if pod.pending:  # no node takes it: kubectl's row for an unscheduled pod
            row = ([pod.namespace] if all_ns else []) + [
                pod.name, f"0/{len(pod.containers)}",
                "SchedulingGated" if pod.reason == "SchedulingGated" else "Pending", "0",
                age(created(f"Pod/{pod.key}"))]
            rows.append(row + (["<none>", "<none>", "<none>", "<none>"] if wide else []))
            continue
        st = pod_state(pod, status)
        row = ([pod.namespace] if all_ns else []) + [
            pod.name, f"{st.ready_count}/{st.total}", st.status, restarts_column(st), age(_netns_created(pod.netns))]
        if wide:
            row += [pod.ip, pod.node, "<none>", "<none>"]
        rows.append(row)
    return headers, rows


def watch_state(headers: Sequence[str], row: Sequence[str]) -> tuple[str, ...]:
    """What of a row `get -w` watches: everything but the passing of time (AGE, and the
    `(5s ago)` of RESTARTS), so a row is printed again when the object changed, not each second."""
    return tuple(re.sub(r" \(.* ago\)$", "", c) if h == "RESTARTS" else c
                 for h, c in zip(headers, row) if h != "AGE")


def watch_changes(headers: Sequence[str], before: Mapping[str, Sequence[str]],
                  after: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The rows `get -w` prints between two looks (rows by object): a new object's row, a changed
    one's, and a gone one's last row with STATUS Terminating (the printer's word for an object
    being deleted, as kubectl shows its DELETED event), in the order of `after`, gone ones last."""
    out = [list(row) for key, row in after.items()
           if key not in before or watch_state(headers, before[key]) != watch_state(headers, row)]
    status = list(headers).index("STATUS") if "STATUS" in headers else None
    for key, row in before.items():
        if key not in after:
            gone = list(row)
            if status is not None:
                gone[status] = "Terminating"
            out.append(gone)
    return out


def aligned(row: Sequence[str], widths: list[int]) -> str:
    """A row in columns at least `widths` wide (widened for it), 3 spaces apart, as `table` lays them."""
    for i, c in enumerate(row):
        widths[i] = max(widths[i], len(c))
    return "   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()


API_VERSIONS = {"ReplicationController": "v1", "Job": "batch/v1"}


def plan_saved(lab: str) -> float | None:
    """When the lab's plan was last saved: the time a pending pod has been waiting for at least."""
    from .fabric import state

    return _created(state.plan_path(lab))


def created_at(plan: Plan, ref: str) -> float | None:
    """An object's creation time ("Kind/ns/name"): as the plan keeps it, else the plan's."""
    return plan.allocations.created.get(ref) or plan_saved(plan.lab)


def _meta(pod: PlannedPod | PendingPod, created: float | None) -> dict:
    from .model.objects import PlannedPod

    meta = {"name": pod.name, "namespace": pod.namespace, "labels": dict(pod.labels), "creationTimestamp": iso(created)}
    if isinstance(pod, PlannedPod):
        meta["uid"] = pod.uid
    if pod.owner:
        kind, name = pod.owner.split("/", 1)
        meta["ownerReferences"] = [{"apiVersion": API_VERSIONS.get(kind, "apps/v1"),
                                    "kind": kind, "name": name, "controller": True}]
    return meta


def pending_pod_object(plan: Plan, pod: PendingPod) -> dict:
    """As the API server shows a pod the scheduler could not place."""
    created = created_at(plan, f"Pod/{pod.key}")
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": _meta(pod, created),
        "spec": {"containers": [{"name": name, "image": image} for name, image in pod.containers]},
        "status": {"phase": "Pending", "qosClass": "BestEffort", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": pod.reason, "message": pod.message,
            "lastProbeTime": None, "lastTransitionTime": iso(created)}]},
    }


def pod_object(plan: Plan, pod: PlannedPod | PendingPod, status: dict) -> dict:
    from .model.objects import PendingPod

    if isinstance(pod, PendingPod):
        return pending_pod_object(plan, pod)
    node = plan.node(pod.node)
    states, inits = container_states(pod, status), init_container_states(pod, status)
    st = pod_state(pod, status)
    meta = _meta(pod, pod_created(plan, pod))
    spec = {"nodeName": pod.node, "hostNetwork": pod.host_network, "restartPolicy": pod.restart_policy,
            "terminationGracePeriodSeconds": pod.termination_grace_period,
            "containers": [_container_spec(c) for c in pod.containers]}
    spec.update({k: v for k, v in (("hostname", pod.hostname), ("subdomain", pod.subdomain),
                                   ("setHostnameAsFQDN", pod.set_hostname_as_fqdn or None)) if v})
    if pod.init_containers:
        spec["initContainers"] = [_container_spec(c) for c in pod.init_containers]
    status_ = {"phase": st.phase, "conditions": _conditions(st), "podIP": str(pod.ip), "podIPs": [{"ip": str(pod.ip)}],
               "hostIP": str(node.ip), "hostIPs": [{"ip": str(node.ip)}]}
    if pod.init_containers:
        status_["initContainerStatuses"] = [_container_status(c, s, st.terminal)
                                            for c, s in zip(pod.init_containers, inits)]
    status_["containerStatuses"] = [_container_status(c, s, st.terminal) for c, s in zip(pod.containers, states)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status_}


def _container_spec(c) -> dict:
    out = {"name": c.name, "image": c.image,
           "ports": [{"containerPort": p.container_port, "protocol": p.protocol, **({"name": p.name} if p.name else {}),
                      **({"hostPort": p.host_port} if p.host_port else {}),
                      **({"hostIP": p.host_ip} if p.host_ip else {})}
                     for p in c.ports]}
    if getattr(c, "sidecar", False):
        out["restartPolicy"] = "Always"
    return out


def _conditions(st: podstatus.PodStatus) -> list[dict]:
    """kubelet's pod conditions (without transition times, which the lab does not keep)."""
    def condition(kind: str, true: bool, reason: str) -> dict:
        out = {"type": kind, "status": "True" if true else "False"}
        if st.phase == "Succeeded" and kind != "PodScheduled":
            out["reason"] = "PodCompleted"
        elif not true:
            out["reason"] = reason
        return out
    return [condition("Initialized", st.initialized, "ContainersNotInitialized"),
            condition("Ready", st.ready, "ContainersNotReady"),
            condition("ContainersReady", st.ready, "ContainersNotReady"),
            condition("PodScheduled", True, "")]


def _container_status(c, s: dict, terminal: bool = False) -> dict:
    st = s.get("state", "waiting")
    if st == "terminated":
        detail = {"exitCode": s.get("exitCode"), "reason": podstatus.terminated_reason(s)}
        detail.update({k: s[k] for k in ("message", "startedAt", "finishedAt") if s.get(k)})
    elif st == "running":
        detail = {"startedAt": s.get("startedAt")}
    else:
        detail = {"reason": s.get("reason", "ContainerCreating")}
        if s.get("message"):
            detail["message"] = s["message"]
    out = {"name": c.name, "image": c.image, "ready": podstatus.is_ready(s) and not terminal,
           "restartCount": int(s.get("restarts", 0)), "started": podstatus.is_started(s), "state": {st: detail}}
    last = podstatus.last_termination(s)
    if last is not None:
        code, finished = last
        out["lastState"] = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                           **({"finishedAt": finished} if finished else {})}}
    return out


# ------------------------------------------------------------------------------------------
# Nodes
# ------------------------------------------------------------------------------------------


def node_up(n: PlannedNode) -> bool:
    """Whether the node's kubelet would be posting its status: a node is its network namespace,
    so it is up while /run/netns/<node> holds one (a stat, no netlink). A namespace deleted by
    hand (`ip netns delete LAB.node.node1`) leaves a node nothing reports for."""
    from .kernel import netns

    return netns.exists(n.netns)


# The node lifecycle controller's words for a node whose kubelet stopped posting its status
# (pkg/controller/nodelifecycle: tryUpdateNodeHealth), and the taints it then puts on the node.
NODE_STATUS_UNKNOWN = {"status": "Unknown", "reason": "NodeStatusUnknown",
                       "message": "Kubelet stopped posting node status."}
UNREACHABLE_TAINTS = ({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                      {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"})


def node_ready_condition(up: bool, created: float | None, now: float | None = None) -> dict:
    """The node's Ready condition: kubelet's while the node is up (posting now, Ready since the
    node was made); otherwise the lifecycle controller's Unknown, without times (the lab does not
    know when the node went)."""
    if not up:
        return {"type": "Ready", **NODE_STATUS_UNKNOWN}
    return {"type": "Ready", "status": "True", "lastHeartbeatTime": iso(now or time.time()),
            **({"lastTransitionTime": iso(created)} if created else {}), "reason": "KubeletReady",
            "message": "kubelet is posting ready status"}


def node_status_column(conditions: Sequence[Mapping], unschedulable: bool) -> str:
    """kubectl's STATUS of a node (printers.printNode): Ready or NotReady from the Ready
    condition (Unknown without one), then SchedulingDisabled for a cordoned node."""
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    status = ["Unknown" if ready is None else "Ready" if ready.get("status") == "True" else "NotReady"]
    if unschedulable:
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_rows(plan: Plan, nodes: list[PlannedNode], wide: bool):
    headers = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    if wide:
        headers += ["INTERNAL-IP", "EXTERNAL-IP", "POD-CIDR", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    from .model.objects import node_roles

    rows = []
    kernel = os.uname().release
    for n in nodes:
        created = _netns_created(n.netns)
        status = node_status_column([node_ready_condition(node_up(n), created)], n.unschedulable)
        row = [n.name, status, ",".join(node_roles(node_labels(n))) or "<none>", age(created), KUBELET_VERSION]
        if wide:
            row += [str(n.ip), "<none>", str(n.pod_cidr), "kubenet-lab netns", kernel, "kubenet-lab"]
        rows.append(row)
    return headers, rows


def node_labels(n: PlannedNode) -> dict[str, str]:
    return dict(n.labels)  # kubelet's own (plan.scheduling.node_labels), then the Node object's


def node_object(plan: Plan, n: PlannedNode) -> dict:
    """The Node as the API server would hold it: its Node object's taints and cordon, and the
    status kubelet posts while the node is up (node_up) or the lifecycle controller's Unknown
    and unreachable taints once it is not."""
    created = _netns_created(n.netns)
    up = node_up(n)
    spec: dict = {"podCIDR": str(n.pod_cidr), "podCIDRs": [str(n.pod_cidr)]}
    taints = [{"key": t.key, **({"value": t.value} if t.value else {}), "effect": t.effect} for t in n.taints]
    taints += [] if up else [dict(t) for t in UNREACHABLE_TAINTS]
    if taints:
        spec["taints"] = taints
    if n.unschedulable:
        spec["unschedulable"] = True
    metadata = {"name": n.name, "labels": node_labels(n), "creationTimestamp": iso(created)}
    from .dataplane.backends import node_annotations  # the model with it: not on `get pods`' path
    if annotations := node_annotations(plan, n):
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": metadata,
        "spec": spec,
        "status": {"addresses": [{"type": "InternalIP", "address": str(n.ip)}, {"type": "Hostname", "address": n.name}],
                   "conditions": [node_ready_condition(up, created)],
                   "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kernelVersion": os.uname().release}},
    }


# ------------------------------------------------------------------------------------------
# Services and endpoints
# ------------------------------------------------------------------------------------------


def ports_column(svc: PlannedService) -> str:
    if not svc.ports:
        return "<none>"
    return ",".join(f"{p.port}:{p.node_port}/{p.protocol}" if p.node_port else f"{p.port}/{p.protocol}"
                    for p in svc.ports)


def external_ip_column(svc: PlannedService) -> str:
    if svc.type == "ExternalName":
        return svc.external_name or "<none>"
    ips = [str(a) for a in svc.load_balancer_ips + svc.external_ips]
    if ips:
        return ",".join(ips)
    return "<pending>" if svc.type == "LoadBalancer" else "<none>"


def cluster_ip_column(svc: PlannedService) -> str:
    """kubectl's CLUSTER-IP: the address, None for a headless Service, <none> for an ExternalName
    one (which has no spec.clusterIP at all)."""
    if svc.type == "ExternalName":
        return "<none>"
    return str(svc.cluster_ip) if svc.cluster_ip else "None"


def service_rows(plan: Plan, services: list[PlannedService], wide: bool, all_ns: bool):
    headers = (["NAMESPACE"] if all_ns else []) + ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    if wide:
        headers.append("SELECTOR")
    rows = []
    for s in services:
        row = ([s.namespace] if all_ns else []) + [
            s.name, s.type, cluster_ip_column(s), external_ip_column(s), ports_column(s),
            age(created_at(plan, f"Service/{s.key}"))]
        if wide:
            row.append(",".join(f"{k}={v}" for k, v in (s.selector or {}).items()) or "<none>")
        rows.append(row)
    return headers, rows


def service_object(plan: Plan, s: PlannedService) -> dict:
    spec = {"type": s.type, "clusterIP": str(s.cluster_ip) if s.cluster_ip else "None",
            "clusterIPs": [str(s.cluster_ip) if s.cluster_ip else "None"],
            "ports": [{k: v for k, v in {"name": p.name, "port": p.port, "targetPort": p.target_port,
                                         "nodePort": p.node_port, "protocol": p.protocol,
                                         "appProtocol": p.app_protocol}.items() if v is not None}
                      for p in s.ports],
            "sessionAffinity": s.session_affinity,
            "ipFamilies": list(s.ip_families), "ipFamilyPolicy": s.ip_family_policy}
    if s.selector is not None:
        spec["selector"] = dict(s.selector)
    if s.session_affinity == "ClientIP":
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": s.affinity_timeout}}
    if s.type in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = s.external_traffic_policy
    spec["internalTrafficPolicy"] = s.internal_traffic_policy
    if s.external_ips:
        spec["externalIPs"] = [str(a) for a in s.external_ips]
    if s.type == "ExternalName":  # as the API server keeps it: the name, no address or families
        spec = {"type": s.type, "externalName": s.external_name, **({"ports": spec["ports"]} if s.ports else {}),
                **({"selector": spec["selector"]} if "selector" in spec else {}), "sessionAffinity": s.session_affinity}
    if s.type == "LoadBalancer":  # the API server defaults it for a LoadBalancer
        spec["allocateLoadBalancerNodePorts"] = s.allocate_load_balancer_node_ports
    optional = {"publishNotReadyAddresses": s.publish_not_ready_addresses or None,
                "loadBalancerClass": s.load_balancer_class, "healthCheckNodePort": s.health_check_node_port,
                "loadBalancerSourceRanges": list(s.load_balancer_source_ranges) or None,
                "trafficDistribution": s.traffic_distribution}
    spec.update({k: v for k, v in optional.items() if v is not None})
    status = {"loadBalancer": {"ingress": [{"ip": str(a), "ipMode": "Proxy" if a in s.proxied_lb_ips else "VIP"}
                                           for a in s.load_balancer_ips]} if s.load_balancer_ips else {}}
    return {"apiVersion": "v1", "kind": "Service", "metadata": _object_meta(plan, s), "spec": spec, "status": status}


def _object_meta(plan: Plan, obj) -> dict:
    """metadata of a Service, its Endpoints or a controller: name, namespace, the labels and
    annotations it was given, creationTimestamp."""
    from .model.objects import PlannedService

    kind = "Service" if isinstance(obj, PlannedService) else obj.kind
    meta = {"name": obj.name, "namespace": obj.namespace,
            "creationTimestamp": iso(created_at(plan, f"{kind}/{obj.namespace}/{obj.name}"))}
    if getattr(obj, "labels", None):
        meta["labels"] = dict(obj.labels)
    if getattr(obj, "annotations", None):
        meta["annotations"] = dict(obj.annotations)
    return meta


def endpoints_column(plan: Plan, s: PlannedService, limit: int = 3) -> str:
    """kubectl's ENDPOINTS column: ip:port of the ready addresses, subset by subset, port by port."""
    eps = [f"{a['ip']}:{p['port']}" if p else a["ip"] for ss in endpoint_subsets(plan, s)
           for p in ss.get("ports") or [None] for a in ss.get("addresses", [])]  # portless: the IPs
    if not eps:
        return "<none>"
    shown = ",".join(eps[:limit])
    return shown + (f" + {len(eps) - limit} more..." if len(eps) > limit else "")


def endpoint_rows(plan: Plan, services: list, wide: bool, all_ns: bool):
    """The Endpoints table: those the controller makes of Services (PlannedService) and those
    written (model Endpoints, for a Service without a selector)."""
    headers = (["NAMESPACE"] if all_ns else []) + ["NAME", "ENDPOINTS", "AGE"]
    rows = [([s.namespace] if all_ns else []) + [s.name, endpoints_column(plan, s, limit=10 ** 6 if wide else 3),
                                                  age(created_at(plan, _endpoints_ref(s)))] for s in services]
    return headers, rows


def _endpoints_ref(obj) -> str:
    """The key the plan keeps an Endpoints' creation time under: its Service's for the
    controller's, its own for a written one."""
    from .model.objects import PlannedService

    return f"Service/{obj.key}" if isinstance(obj, PlannedService) else f"Endpoints/{obj.key}"


def endpoint_subsets(plan: Plan, s: PlannedService) -> list[dict]:
    """The subsets as the endpoints controller writes them (RepackSubsets): the ports whose
    addresses, each with its readiness, are the same share one subset. A named targetPort that
    resolves to different numbers on different pods thus gives one subset per number.

    Kubernetes orders subsets and their ports by a hash of their content (stable, meaningless);
    here subsets come in the order of their first port in spec.ports, ports in spec.ports order.
    Addresses are sorted as Kubernetes sorts them: by IP as text, then by pod UID. A headless
    Service without ports has its selected pods in one subset without ports."""
    from .model.objects import Endpoints

    if isinstance(s, Endpoints):
        return written_subsets(s)
    uids = {p.key: p.uid for p in plan.pods}
    hostnames = endpoint_hostnames(plan, s)
    if s.addresses:
        keyed = {(str(e.ip), uids.get(e.pod) or e.pod): e for e in s.addresses}
        subset = {}
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            if chosen := sorted(k for k, e in keyed.items() if e.ready == ready):
                subset[field] = [_address(keyed[k], uids, hostnames) for k in chosen]
        return [subset]
    endpoint_of: dict[tuple[str, str], object] = {}
    by_port: dict[tuple, frozenset] = {}  # (name, port, protocol, appProtocol) -> {(address key, ready)}
    for p in s.ports:
        members: dict[tuple, set] = {}
        for e in p.endpoints:
            key = (str(e.ip), uids.get(e.pod) or e.pod)
            endpoint_of[key] = e
            members.setdefault((p.name, e.port, p.protocol, p.app_protocol), set()).add((key, e.ready))
        for port, addrs in members.items():
            by_port[port] = by_port.get(port, frozenset()) | frozenset(addrs)
    groups: dict[frozenset, list[tuple]] = {}
    for port, addrs in by_port.items():
        groups.setdefault(addrs, []).append(port)
    subsets = []
    for addrs, ports in groups.items():
        ready = sorted(k for k, r in addrs if r)
        not_ready = sorted(k for k, r in addrs if not r)
        subset: dict = {}
        if ready:
            subset["addresses"] = [_address(endpoint_of[k], uids, hostnames) for k in ready]
        if not_ready:
            subset["notReadyAddresses"] = [_address(endpoint_of[k], uids, hostnames) for k in not_ready]
        subset["ports"] = [{k: v for k, v in {"name": name, "port": number, "protocol": protocol,
                                              "appProtocol": app_protocol}.items()
                            if v is not None} for name, number, protocol, app_protocol in ports]
        subsets.append(subset)
    return subsets


def _address(e, uids: Mapping[str, str], hostnames: Mapping[str, str]) -> dict:
    """A fresh EndpointAddress (each subset its own: YAML would print shared dicts as anchors),
    with the pod's hostname when the endpoints controller sets it (`hostnames`)."""
    if not e.pod:  # an address of a written EndpointSlice that names no pod
        return {"ip": str(e.ip), **({"nodeName": e.node} if e.node else {})}
    namespace, name = e.pod.split("/", 1)
    ref = {"kind": "Pod", "namespace": namespace, "name": name}
    if uids.get(e.pod):
        ref["uid"] = uids[e.pod]
    host = {"hostname": hostnames[e.pod]} if e.pod in hostnames else {}
    return {"ip": str(e.ip), **host, **({"nodeName": e.node} if e.node else {}), "targetRef": ref}


def endpoint_hostnames(plan: Plan, s: PlannedService) -> dict[str, str]:
    """Pod key -> the hostname its endpoint address carries: spec.hostname of a pod whose
    spec.subdomain names the Service, in its namespace (the controllers' ShouldSetHostname)."""
    return {p.key: p.hostname for p in plan.pods
            if p.hostname and p.subdomain == s.name and p.namespace == s.namespace}


def written_subsets(ep) -> list[dict]:
    """The subsets of a written Endpoints, as the API server returns them (protocol defaulted)."""
    def address(a) -> dict:
        out: dict = {"ip": a.ip}
        if a.hostname:
            out["hostname"] = a.hostname
        if a.node_name:
            out["nodeName"] = a.node_name
        if a.target_ref:
            out["targetRef"] = _object_ref(a.target_ref)
        return out
    subsets = []
    for ss in ep.subsets:
        subset: dict = {}
        if ss.addresses:
            subset["addresses"] = [address(a) for a in ss.addresses]
        if ss.not_ready_addresses:
            subset["notReadyAddresses"] = [address(a) for a in ss.not_ready_addresses]
        if ss.ports:
            subset["ports"] = [_slice_port(p, v1=True) for p in ss.ports]
        subsets.append(subset)
    return subsets


def _object_ref(ref) -> dict:
    return {k: v for k, v in (("kind", ref.kind), ("namespace", ref.namespace), ("name", ref.name),
                              ("uid", ref.uid)) if v}


def _slice_port(p, v1: bool = False) -> dict:
    """An EndpointSlice's port (its name defaulted to "", shown), or with `v1` an Endpoints'
    (an empty name left out)."""
    out: dict = {"name": p.name} if p.name or not v1 else {}
    if p.port is not None:
        out["port"] = p.port
    out["protocol"] = p.protocol
    if p.app_protocol:
        out["appProtocol"] = p.app_protocol
    return out


def endpoints_object(plan: Plan, s) -> dict:
    """The endpoints controller copies the Service's labels (and marks a headless one's); a
    written Endpoints is shown as written."""
    from .model.objects import Endpoints

    if isinstance(s, Endpoints):
        meta = {"name": s.name, "namespace": s.namespace, "creationTimestamp": iso(created_at(plan, _endpoints_ref(s)))}
        if s.labels:
            meta["labels"] = dict(s.labels)
        if s.annotations:
            meta["annotations"] = dict(s.annotations)
        return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": written_subsets(s) or None}
    meta = {"name": s.name, "namespace": s.namespace, "creationTimestamp": iso(created_at(plan, f"Service/{s.key}"))}
    if labels := endpoints_labels(s):
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": endpoint_subsets(plan, s)}


def endpoints_labels(s) -> dict[str, str]:
    from .model.objects import Endpoints

    if isinstance(s, Endpoints):
        return dict(s.labels)
    return {**s.labels, **({"service.kubernetes.io/headless": ""} if s.headless else {})}


# ------------------------------------------------------------------------------------------
# EndpointSlices
# ------------------------------------------------------------------------------------------


def _more(items: list[str], limit: int = 3) -> str:
    """kubectl's listWithMoreString: the first `limit`, `+ N more...`, <unset> for none."""
    if not items:
        return "<unset>"
    shown = ",".join(items[:limit])
    return shown + (f" + {len(items) - limit} more..." if len(items) > limit else "")


def _slice_ref(sl) -> str:
    """The key the plan keeps a slice's creation time under: its own for a written or mirrored
    one, its Service's for the EndpointSlice controller's (made with it)."""
    return f"EndpointSlice/{sl.key}"


def _slice_created(plan: Plan, sl) -> float | None:
    return plan.allocations.created.get(_slice_ref(sl)) or created_at(plan, f"Service/{sl.namespace}/{sl.service}")


def endpointslice_rows(plan: Plan, slices: list, wide: bool, all_ns: bool):
    """kubectl's EndpointSlice table (printEndpointSlice): NAME ADDRESSTYPE PORTS ENDPOINTS AGE;
    PORTS the port numbers (`*` for a port without one), ENDPOINTS every address, ready or not."""
    headers = (["NAMESPACE"] if all_ns else []) + ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    rows = [([sl.namespace] if all_ns else [])
            + [sl.name, sl.address_type, _more([str(p.port) if p.port is not None else (p.name or "*")
                                                for p in sl.ports]),
               _more([a for e in sl.endpoints for a in e.addresses]), age(_slice_created(plan, sl))]
            for sl in slices]
    return headers, rows


def endpointslice_object(plan: Plan, sl) -> dict:
    """An EndpointSlice as the API server returns it: a written one as written (the API's
    defaults filled in), a controller's with its generateName and its Service as owner."""
    meta: dict = {"name": sl.name, "namespace": sl.namespace}
    made = bool(sl.owner)
    if made:
        meta["generateName"] = f"{sl.service}-"
    meta["creationTimestamp"] = iso(_slice_created(plan, sl))
    if sl.labels:
        meta["labels"] = dict(sl.labels)
    if sl.annotations:
        meta["annotations"] = dict(sl.annotations)
    if made:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": sl.owner, "name": sl.service,
                                    "controller": True, "blockOwnerDeletion": True}]
    uids = {p.key: p.uid for p in plan.pods}

    def endpoint(e) -> dict:
        out: dict = {"addresses": list(e.addresses)}
        conditions = {k: v for k, v in (("ready", e.ready), ("serving", e.serving), ("terminating", e.terminating))
                      if v is not None}
        out["conditions"] = conditions
        if e.hostname:
            out["hostname"] = e.hostname
        if e.node_name:
            out["nodeName"] = e.node_name
        if e.target_ref:
            ref = _object_ref(e.target_ref)
            if sl.owner == "Service" and ref.get("kind") == "Pod":
                ref["uid"] = uids.get(f"{ref['namespace']}/{ref['name']}", "")
                ref = {k: v for k, v in ref.items() if v}
            out["targetRef"] = ref
        return out
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": sl.address_type, "endpoints": [endpoint(e) for e in sl.endpoints] or None,
            "ports": [_slice_port(p) for p in sl.ports] or None}


# ------------------------------------------------------------------------------------------
# ConfigMaps and Secrets
# ------------------------------------------------------------------------------------------

CONFIG_KINDS = {"configmaps": "ConfigMap", "secrets": "Secret"}


def config_map_rows(plan: Plan, items: list[ConfigMap], all_ns: bool):
    """kubectl's columns: NAME DATA AGE for ConfigMaps (data and binaryData keys), NAME TYPE DATA
    AGE for Secrets."""
    secrets = bool(items) and items[0].kind == "Secret"
    headers = (["NAMESPACE"] if all_ns else []) + ["NAME"] + (["TYPE"] if secrets else []) + ["DATA", "AGE"]
    rows = [([c.namespace] if all_ns else []) + [c.name] + ([c.type] if secrets else [])
            + [str(len(c.data) + len(c.binary_data)), age(created_at(plan, f"{c.kind}/{c.key}"))] for c in items]
    return headers, rows


def config_map_object(plan: Plan, c: ConfigMap) -> dict:
    """As the API server returns it: a Secret's data stays base64, as kubectl shows it."""
    meta = {"name": c.name, "namespace": c.namespace, "creationTimestamp": iso(created_at(plan, f"{c.kind}/{c.key}"))}
    if c.labels:
        meta["labels"] = dict(c.labels)
    out: dict = {"apiVersion": "v1", "kind": c.kind, "metadata": meta}
    if c.data:
        out["data"] = {k: c.data[k] for k in sorted(c.data)}
    if c.binary_data:
        out["binaryData"] = {k: c.binary_data[k] for k in sorted(c.binary_data)}
    if c.immutable:
        out["immutable"] = True
    if c.kind == "Secret":
        out["type"] = c.type
    return out


# ------------------------------------------------------------------------------------------
# Namespaces and NetworkPolicies
# ------------------------------------------------------------------------------------------


def namespace_rows(plan: Plan, items: list[Namespace]):
    """kubectl's columns: NAME STATUS AGE (a lab's namespaces are all Active)."""
    return ["NAME", "STATUS", "AGE"], [[n.name, "Active", age(created_at(plan, f"Namespace/{n.name}"))]
                                       for n in items]


def namespace_object(plan: Plan, n: Namespace) -> dict:
    meta = {"name": n.name, "creationTimestamp": iso(created_at(plan, f"Namespace/{n.name}")),
            "labels": dict(n.labels)}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta, "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}}


def network_policy_rows(plan: Plan, items: list[NetworkPolicy], wide: bool, all_ns: bool):
    """kubectl's columns: NAME POD-SELECTOR AGE (the selector as kubectl formats it, <none> when
    empty: every pod); -o wide adds the lab's PODS, the pods the policy selects now."""
    from .inspect.netpoldescribe import format_selector
    from .policy.select import selected_pods

    headers = (["NAMESPACE"] if all_ns else []) + ["NAME", "POD-SELECTOR", "AGE"] + (["PODS"] if wide else [])
    rows = []
    for n in items:
        row = ([n.namespace] if all_ns else []) + [n.name, format_selector(_selector_object(n.pod_selector)),
                                                   age(created_at(plan, f"NetworkPolicy/{n.key}"))]
        if wide:
            row.append(",".join(p.name for p in selected_pods(plan, n)) or "<none>")
        rows.append(row)
    return headers, rows


def _selector_object(s: LabelSelector) -> dict:
    out: dict = {}
    if s.match_labels:
        out["matchLabels"] = dict(s.match_labels)
    if s.match_expressions:
        out["matchExpressions"] = [{"key": e.key, "operator": e.operator, **({"values": list(e.values)}
                                                                              if e.values else {})}
                                   for e in s.match_expressions]
    return out


def _peer_object(p: PolicyPeer) -> dict:
    out: dict = {}
    if p.pod_selector is not None:
        out["podSelector"] = _selector_object(p.pod_selector)
    if p.namespace_selector is not None:
        out["namespaceSelector"] = _selector_object(p.namespace_selector)
    if p.ip_block is not None:
        out["ipBlock"] = {"cidr": p.ip_block.cidr, **({"except": list(p.ip_block.except_)}
                                                       if p.ip_block.except_ else {})}
    return out


def _rule_object(r: PolicyRule, peers: str) -> dict:
    out: dict = {}
    if r.ports:
        out["ports"] = [{"protocol": p.protocol, **({"port": p.port} if p.port is not None else {}),
                         **({"endPort": p.end_port} if p.end_port is not None else {})} for p in r.ports]
    if r.peers:
        out[peers] = [_peer_object(p) for p in r.peers]
    return out


def network_policy_object(plan: Plan, n: NetworkPolicy) -> dict:
    """As the API server returns it: defaulted (policyTypes, protocol), empty lists left out."""
    meta: dict = {"name": n.name, "namespace": n.namespace,
                  "creationTimestamp": iso(created_at(plan, f"NetworkPolicy/{n.key}"))}
    if n.labels:
        meta["labels"] = dict(n.labels)
    if n.annotations:
        meta["annotations"] = dict(n.annotations)
    spec: dict = {"podSelector": _selector_object(n.pod_selector)}
    if n.ingress:
        spec["ingress"] = [_rule_object(r, "from") for r in n.ingress]
    if n.egress:
        spec["egress"] = [_rule_object(r, "to") for r in n.egress]
    spec["policyTypes"] = list(n.policy_types)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec}


# ------------------------------------------------------------------------------------------
# Controllers: deployments, replicasets, replicationcontrollers, statefulsets, daemonsets, jobs
# ------------------------------------------------------------------------------------------

WORKLOAD_KINDS = {"deployments": "Deployment", "replicasets": "ReplicaSet",
                  "replicationcontrollers": "ReplicationController", "statefulsets": "StatefulSet",
                  "daemonsets": "DaemonSet", "jobs": "Job"}
WORKLOAD_API = {"Deployment": "apps/v1", "ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
                "ReplicationController": "v1", "Job": "batch/v1"}


@dataclass(frozen=True)
class WorkloadStatus:
    """What a controller's status counts, from its pods as the lab runs them."""
    current: int
    ready: int
    succeeded: int
    failed: int
    started: float | None  # the first pod's start
    finished: float | None  # the last pod's end, when every pod has ended
    updated: int = 0  # a Deployment's pods of its current template (UP-TO-DATE)
    updated_ready: int = 0


def workload_pods(plan: Plan, w: PlannedWorkload) -> list[PlannedPod | PendingPod]:
    refs = {w.ref} | {o.ref for o in plan.workloads if o.owner == w.ref and o.namespace == w.namespace}
    return [p for p in plan.pods + plan.pending if p.namespace == w.namespace and p.owner in refs]


def workload_status(plan: Plan, w: PlannedWorkload, status: dict) -> WorkloadStatus:
    from .model.objects import PendingPod

    current = ready = succeeded = failed = updated = updated_ready = 0
    starts, ends = [], []
    for pod in workload_pods(plan, w):
        current += 1
        is_updated = w.current_set is not None and pod.owner == f"ReplicaSet/{w.current_set}"
        updated += is_updated
        if isinstance(pod, PendingPod):
            continue
        states = container_states(pod, status)
        st = pod_state(pod, status)
        ready += st.ready
        updated_ready += st.ready and is_updated
        succeeded += st.phase == "Succeeded"
        failed += st.phase == "Failed"
        starts += [_epoch(st.get("startedAt")) for st in states if st.get("startedAt")]
        ends += [_epoch(st.get("finishedAt")) for st in states if st.get("state") == "terminated"]
    done = succeeded + failed == current and current > 0
    return WorkloadStatus(current, ready, succeeded, failed, min(starts) if starts else None,
                          max(ends) if done and ends else None, updated, updated_ready)


def _epoch(value) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def job_state(w: PlannedWorkload, st: WorkloadStatus) -> tuple[str, str]:
    """(STATUS, COMPLETIONS) as kubectl prints a Job."""
    wanted = w.completions if w.completions is not None else 1
    complete = st.succeeded >= wanted
    status = "Complete" if complete else ("Failed" if st.failed and not st.current - st.failed - st.succeeded
                                          else "Running")
    if w.completions is None and w.parallelism > 1:
        return status, f"{st.succeeded}/1 of {w.parallelism}"
    return status, f"{st.succeeded}/{wanted}"


def workload_rows(plan: Plan, kind: str, items: list[PlannedWorkload], status: dict, wide: bool, all_ns: bool):
    headers = {
        "Deployment": ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "ReplicaSet": ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "ReplicationController": ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "StatefulSet": ["NAME", "READY", "AGE"],
        "DaemonSet": ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
        "Job": ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
    }[kind]
    headers = (["NAMESPACE"] if all_ns else []) + headers
    if wide:
        headers += ["CONTAINERS", "IMAGES"] + ([] if kind == "StatefulSet" else ["SELECTOR"])
    rows = []

    def created(w: PlannedWorkload) -> str:
        return age(created_at(plan, f"{w.kind}/{w.key}"))
    for w in items:
        st = workload_status(plan, w, status)
        if kind == "Deployment":
            row = [w.name, f"{st.ready}/{w.replicas}", str(st.updated), str(st.ready), created(w)]
        elif kind in ("ReplicaSet", "ReplicationController"):
            row = [w.name, str(w.replicas), str(st.current), str(st.ready), created(w)]
        elif kind == "StatefulSet":
            row = [w.name, f"{st.ready}/{w.replicas}", created(w)]
        elif kind == "DaemonSet":
            selector = ",".join(f"{k}={v}" for k, v in w.node_selector.items()) or "<none>"
            row = [w.name, str(w.replicas), str(st.current), str(st.ready), str(st.current), str(st.ready),
                   selector, created(w)]
        else:
            state, completions = job_state(w, st)
            duration = age(st.started, st.finished) if st.started else "<unknown>"
            row = [w.name, state, completions, duration, created(w)]
        if wide:
            row += [",".join(n for n, _ in w.containers), ",".join(i for _, i in w.containers)]
            if kind != "StatefulSet":
                row.append(w.selector.show())
        rows.append(([w.namespace] if all_ns else []) + row)
    return headers, rows


def workload_object(plan: Plan, w: PlannedWorkload, status: dict) -> dict:
    st = workload_status(plan, w, status)
    meta = _object_meta(plan, w)
    if w.owner:
        kind, name = w.owner.split("/", 1)
        meta["ownerReferences"] = [{"apiVersion": WORKLOAD_API[kind], "kind": kind, "name": name, "controller": True}]
    selector: dict = {}
    if w.selector.match_labels:
        selector["matchLabels"] = dict(w.selector.match_labels)
    if w.selector.match_expressions:
        selector["matchExpressions"] = [{"key": e.key, "operator": e.operator, "values": list(e.values)}
                                        for e in w.selector.match_expressions]
    template = {"spec": {"containers": [{"name": n, "image": i} for n, i in w.containers]}}
    spec: dict = {"selector": selector, "template": template}
    if w.kind == "Job":
        spec.update({"completions": w.completions, "parallelism": w.parallelism})
        state, _ = job_state(w, st)
        stat = {"active": st.current - st.succeeded - st.failed, "succeeded": st.succeeded, "failed": st.failed,
                "ready": st.ready, "startTime": iso(st.started)}
        if state == "Complete":
            stat["completionTime"] = iso(st.finished)
            stat["conditions"] = [{"type": "Complete", "status": "True"}]
    elif w.kind == "DaemonSet":
        stat = {"desiredNumberScheduled": w.replicas, "currentNumberScheduled": st.current,
                "numberReady": st.ready, "numberAvailable": st.ready, "updatedNumberScheduled": st.current}
    else:
        spec["replicas"] = w.replicas
        stat = {"replicas": st.current, "readyReplicas": st.ready, "availableReplicas": st.ready}
        if w.kind == "Deployment":
            stat["updatedReplicas"] = st.updated
        elif w.kind == "StatefulSet":
            stat["updatedReplicas"] = st.current
        if w.revision:  # a Deployment's and its ReplicaSets' revision, as the controller annotates them
            meta.setdefault("annotations", {})["deployment.kubernetes.io/revision"] = str(w.revision)
    return {"apiVersion": WORKLOAD_API[w.kind], "kind": w.kind, "metadata": meta, "spec": spec,
            "status": {k: v for k, v in stat.items() if v is not None}}


# ------------------------------------------------------------------------------------------
# Labels: --show-labels and -l/--selector
# ------------------------------------------------------------------------------------------


def labels_of(kind: str, obj) -> dict[str, str]:
    """metadata.labels of the object `get` shows for a planned node, pod, service, endpoints or
    controller."""
    if kind == "nodes":
        return node_labels(obj)
    if kind == "endpoints":
        return endpoints_labels(obj)
    return dict(obj.labels)


def format_labels(labels: Mapping[str, str]) -> str:
    """kubectl's LABELS column: k=v pairs sorted by key, comma-separated; <none> without any."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels)) or "<none>"


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op in ("=", "==", "in"):
            return present and labels[self.key] in self.values
        if self.op in ("!=", "notin"):
            return not present or labels[self.key] not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if not present or not re.fullmatch(r"[+-]?[0-9]+", labels[self.key]):
            return False
        value, bound = int(labels[self.key]), int(self.values[0])
        return value > bound if self.op == "gt" else value < bound


@dataclass(frozen=True)
class Selector:
    """A parsed label selector; every requirement must hold (the comma is AND)."""
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


_SYMBOLS = "=!(),<>"
_TOKENS = {")": ")", ",": ",", "!": "!", "==": "==", "=": "=", ">": ">", "<": "<", "!=": "!=", "(": "(",
           "in": "in", "notin": "notin"}
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_NAME_MESSAGE = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                 "alphanumeric character")


def _regex_error(message: str, regex: str, *examples: str) -> str:
    return message + " (e.g. " + " or ".join(f"'{e}', " for e in examples) + \
        f"regex used for validation is '{regex}')"


def _key_problems(key: str) -> list[str]:
    """apimachinery's IsQualifiedName: [DNS subdomain '/'] name of at most 63 characters."""
    problems = []
    prefix, slash, name = key.rpartition("/") if key.count("/") == 1 else ("", "", key)
    if key.count("/") > 1:
        return ["a qualified name " + _regex_error(_NAME_MESSAGE, _QUALIFIED_NAME, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if slash:
        if not prefix:
            problems.append("prefix part must be non-empty")
        elif len(prefix) > 253:
            problems.append("prefix part must be no more than 253 characters")
        elif not re.fullmatch(_DNS_SUBDOMAIN, prefix):
            problems.append("prefix part " + _regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character", _DNS_SUBDOMAIN, "example.com"))
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    elif not re.fullmatch(_QUALIFIED_NAME, name):
        problems.append("name part " + _regex_error(_NAME_MESSAGE, _QUALIFIED_NAME, "MyName", "my.name", "123-abc"))
    return problems


def _value_problems(value: str) -> list[str]:
    if len(value) > 63:
        return ["must be no more than 63 characters"]
    if not re.fullmatch(_LABEL_VALUE, value):
        return [_regex_error("a valid label must be an empty string or consist of alphanumeric characters, '-', "
                             "'_' or '.', and must start and end with an alphanumeric character", _LABEL_VALUE,
                             "MyValue", "my_value", "12345")]
    return []


def _lex(text: str) -> list[tuple[str, str]]:
    """(token, literal) pairs as apimachinery's label selector lexer yields them."""
    out, i = [], 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            out.append(("end", ""))
            return out
        if text[i] in _SYMBOLS:
            best, j = None, i
            while j < len(text) and text[j] in _SYMBOLS:
                if text[i:j + 1] in _TOKENS:
                    best = text[i:j + 1]
                elif best:
                    break
                j += 1
            out.append((_TOKENS[best], best))
            i += len(best)
        else:
            j = i
            while j < len(text) and text[j] not in _SYMBOLS and text[j] not in " \t\r\n":
                j += 1
            word = text[i:j]
            out.append((_TOKENS.get(word, "id"), word))
            i = j


class _SelectorError(Exception):
    pass


def parse_selector(text: str) -> Selector:
    """A `-l` selector as kubectl (apimachinery's labels.Parse) reads it: `app=web`, `app==web`,
    `app!=web`, `env in (a,b)`, `env notin (a)`, `key`, `!key`, `n>3`, `n<3`, joined by commas
    (AND). InputError, worded as Kubernetes words it, when it does not parse."""
    try:
        return Selector(tuple(sorted(_parse_requirements(_lex(text)), key=lambda r: r.key)))
    except _SelectorError as e:
        raise InputError(f"label selector {json.dumps(text)}: {e}") from None


def _parse_requirements(tokens: list[tuple[str, str]]) -> list[Requirement]:
    pos = 0

    def peek(values: bool = True) -> tuple[str, str]:
        tok, lit = tokens[pos]
        return ("id", lit) if values and tok in ("in", "notin") else (tok, lit)

    def take(values: bool = True) -> tuple[str, str]:
        nonlocal pos
        item = peek(values)
        pos += 1
        return item

    def requirement() -> Requirement:
        tok, key = take()
        negated = tok == "!"
        if negated:
            tok, key = take()
        if tok != "id":
            raise _SelectorError(f"found '{key}', expected: identifier")
        if problems := _key_problems(key):
            raise _SelectorError(f"<nil>: Invalid value: {json.dumps(key)}: {'; '.join(problems)}")
        if negated or peek()[0] in ("end", ","):
            return Requirement(key, "!" if negated else "exists")
        tok, lit = take(values=False)
        ops = {"in": "in", "notin": "notin", "=": "=", "==": "==", "!=": "!=", ">": "gt", "<": "lt"}
        if tok not in ops:
            raise _SelectorError(f"found '{lit}', expected: in, notin, =, ==, !=, gt, lt")
        op = ops[tok]
        values = value_set() if op in ("in", "notin") else exact_value()
        problems = []
        if op in ("gt", "lt") and not re.fullmatch(r"[+-]?[0-9]+", values[0]):
            problems.append(f"values[0]: Invalid value: {json.dumps(values[0])}: for 'Gt', 'Lt' operators, "
                            f"the value must be an integer")
        for i, v in enumerate(values):
            if p := _value_problems(v):
                problems.append(f"values[{i}][{key}]: Invalid value: {json.dumps(v)}: {'; '.join(p)}")
        if problems:
            raise _SelectorError(problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]")
        return Requirement(key, op, values)

    def value_set() -> tuple[str, ...]:
        tok, lit = take()
        if tok != "(":
            raise _SelectorError(f"found '{lit}' expected: '('")
        tok, lit = peek()
        if tok == ")":
            take()
            return ("",)
        if tok not in ("id", ","):
            raise _SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            tok, lit = take()
            if tok == "id":
                values.add(lit)
                nxt, nlit = peek()
                if nxt == ")":
                    break
                if nxt != ",":
                    raise _SelectorError(f"found '{nlit}', expected: ',' or ')'")
            elif tok == ",":
                if not values:
                    values.add("")
                nxt, _ = peek()
                if nxt == ")":
                    values.add("")
                    break
                if nxt == ",":
                    take()
                    values.add("")
            else:
                raise _SelectorError(f"found '{lit}', expected: ',', or identifier")
        take()  # the closing parenthesis
        return tuple(sorted(values))

    def exact_value() -> tuple[str, ...]:
        tok, lit = peek()
        if tok in ("end", ","):
            return ("",)
        tok, lit = take()
        if tok != "id":
            raise _SelectorError(f"found '{lit}', expected: identifier")
        return (lit,)

    requirements = []
    while True:
        tok, lit = peek()
        if tok == "end":
            return requirements
        if tok not in ("id", "!"):
            raise _SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
        try:
            requirements.append(requirement())
        except _SelectorError as e:
            raise _SelectorError(f"unable to parse requirement: {e}") from None
        tok, lit = take()
        if tok == "end":
            return requirements
        if tok != ",":
            raise _SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
        if peek()[0] not in ("id", "!"):
            raise _SelectorError(f"found '{peek()[1]}', expected: identifier after ','")


# ------------------------------------------------------------------------------------------
# Output formats: -o wide|json|yaml|jsonpath=...|jsonpath-as-json=...|custom-columns=...
# ------------------------------------------------------------------------------------------

FORMATS = ("custom-columns", "json", "jsonpath", "jsonpath-as-json", "name", "wide", "yaml")
# -o name: KIND[.GROUP]/NAME, as kubectl names each kind.
NAME_PREFIXES = {"nodes": "node", "pods": "pod", "services": "service", "endpoints": "endpoints", "events": "event",
                 "configmaps": "configmap", "secrets": "secret", "endpointslices": "endpointslice.discovery.k8s.io",
                 "namespaces": "namespace", "networkpolicies": "networkpolicy.networking.k8s.io"}


def name_prefix(kind: str) -> str:
    """-o name's KIND[.GROUP] of a kind `get` lists (its plural: pods, deployments)."""
    if kind in WORKLOAD_KINDS:
        from .model.objects import RESOURCE_NAMES

        return RESOURCE_NAMES[WORKLOAD_KINDS[kind]]
    return NAME_PREFIXES[kind]


@dataclass(frozen=True)
class OutputFormat:
    name: str  # "" (the table), or one of FORMATS
    template: jsonpath.JSONPath | None = None  # (annotations only: jsonpath is imported when used)
    columns: tuple[jsonpath.Column, ...] = ()

    @property
    def table(self) -> bool:
        return self.name in ("", "wide")


def output_format(value: str | None, template: str | None = None) -> OutputFormat:
    """`-o` as kubectl reads it: `jsonpath=TEMPLATE` (or `-o jsonpath --template TEMPLATE`),
    `custom-columns=SPEC`, `-o=json`. An unknown format is bad input (InputError); a template
    or column spec that does not parse is an error as kubectl reports it (LabError)."""
    value = (value or "").removeprefix("=")
    name, _, arg = value.partition("=")

    if name not in FORMATS + ("",):
        raise InputError(f'unable to match a printer suitable for the output format "{value}", '
                         f'allowed formats are: {",".join(FORMATS)}')
    if name in ("custom-columns", "jsonpath", "jsonpath-as-json"):
        from . import jsonpath
    if name in ("jsonpath", "jsonpath-as-json"):
        text = arg or template or ""
        if not text:
            raise InputError("template format specified but no template given")
        try:
            return OutputFormat(name, template=jsonpath.parse(text))
        except jsonpath.JSONPathError as e:
            raise LabError(f"error parsing jsonpath {text}, {e}") from None
    if name == "custom-columns":
        try:
            return OutputFormat(name, columns=tuple(jsonpath.custom_columns(arg)))
        except jsonpath.JSONPathError as e:
            raise LabError(str(e)) from None
    return OutputFormat(name)


def render(obj: dict, fmt: OutputFormat, allow_missing_keys: bool = True) -> str:
    """A JSON-shaped object (one object, or a List when `get` lists) in a non-table format.
    jsonpath applies to the object as given, so a list's template starts at the List
    (`{.items[*]...}`); custom-columns makes a row of each item of a List."""
    if fmt.name in ("json", "yaml"):
        return dump(obj, fmt.name)
    from . import jsonpath
    data = json.loads(json.dumps(obj))  # plain JSON data, as kubectl hands the engine
    if fmt.template is not None:
        try:
            if fmt.name == "jsonpath-as-json":
                return fmt.template.execute_as_json(data, allow_missing_keys)
            return fmt.template.execute(data, allow_missing_keys)
        except jsonpath.JSONPathError as e:
            raw = fmt.template.template
            raise LabError(f"error executing jsonpath {json.dumps(raw, ensure_ascii=False)}: Error executing "
                           f"template: {e}. Printing more information for debugging the template:\n"
                           f"\ttemplate was:\n\t\t{raw}") from None
    items = data["items"] if data.get("kind") == "List" else [data]
    try:
        rows = [[jsonpath.column_value(c, item) for c in fmt.columns] for item in items]
    except jsonpath.JSONPathError as e:
        raise LabError(str(e)) from None
    return table([c.header for c in fmt.columns], rows)


# ------------------------------------------------------------------------------------------


def as_list(items: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def dump(obj: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=4) + "\n"
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)



# ------------------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EventEntry:
    """One Event as the API server keeps it: repeats of the same event folded into a count."""
    event: Event
    count: int
    first: float
    last: float


def aggregate_events(records: Iterable[tuple[float, Event]]) -> list[EventEntry]:
    """The same event (object, reason, message, type, source) happening again raises its count
    and moves its lastTimestamp, as the kubelet's event recorder does; ordered by lastTimestamp."""
    seen: dict[Event, EventEntry] = {}
    for when, e in records:
        old = seen.get(e)
        seen[e] = EventEntry(e, 1, when, when) if old is None else EventEntry(e, old.count + 1, old.first, when)
    return sorted(seen.values(), key=lambda x: (x.last, x.first))


def _event_object_column(e: Event) -> str:
    return f"{e.kind.lower()}/{e.name}"


def event_rows(entries: list[EventEntry], all_ns: bool, now: float | None = None):
    """kubectl get events: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE (NAMESPACE first with -A)."""
    headers = (["NAMESPACE"] if all_ns else []) + ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    rows = [([x.event.namespace or "default"] if all_ns else [])
            + [age(x.last, now), x.event.type, x.event.reason, _event_object_column(x.event), x.event.message]
            for x in entries]
    return headers, rows


def event_object(x: EventEntry) -> dict:
    e = x.event
    involved = {"kind": e.kind, "name": e.name}
    if e.namespace:
        involved["namespace"] = e.namespace
    api = API_VERSIONS.get(e.kind) or WORKLOAD_API.get(e.kind) or "v1"
    involved["apiVersion"] = api
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{e.name}.{int(x.first * 1e9):x}", "namespace": e.namespace or "default",
                         "creationTimestamp": iso(x.first)},
            "involvedObject": involved, "reason": e.reason, "message": e.message, "type": e.type,
            "count": x.count, "firstTimestamp": iso(x.first), "lastTimestamp": iso(x.last),
            "source": {"component": e.source, **({"host": e.host} if e.host else {})},
            "reportingComponent": e.source, "reportingInstance": e.host}


def event_in_namespace(e: Event, namespace: str) -> bool:
    """A Node's events live in the default namespace, as the node controller records them."""
    return (e.namespace or "default") == namespace
