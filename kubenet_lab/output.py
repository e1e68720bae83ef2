"""What `get` prints: kubectl-like tables, and kubectl-style JSON/YAML objects built from the plan."""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from typing import Iterable, Sequence

import yaml

from . import __version__
from .plan.model import Plan, PlannedNode, PlannedPod, PlannedService, RunExec
from .system import nsenter, state

KUBELET_VERSION = f"v1.31.0-kubenet-lab.{__version__}"


def _created(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


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
    rows = [list(map(str, r)) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [list(headers)] + rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# Pods
# ------------------------------------------------------------------------------------------


def pod_created(plan: Plan, pod: PlannedPod) -> float | None:
    """When its network namespace was made (a hostNetwork pod's is its node's: pod.netns)."""
    return _created(nsenter.netns_path(pod.netns))


def container_states(pod: PlannedPod, status: dict) -> list[dict]:
    """Each container's state; built-in servers are running while the supervisor is."""
    got = status.get(pod.key, {}).get("containers", {})
    out = []
    for c in pod.containers:
        st = got.get(c.name)
        if st is None:
            st = {"state": "waiting", "reason": "ContainerCreating" if isinstance(c.run, RunExec) else "SupervisorDown",
                  "restarts": 0}
        out.append({"name": c.name, **st})
    return out


def _has_ended(s: dict) -> bool:
    """The container ran (or tried to) and ended at least once: kubelet has a last state for it."""
    return int(s.get("restarts", 0)) > 0 or s.get("exitCode") is not None


def pod_phase(states: list[dict]) -> tuple[str, str]:
    """(phase, STATUS column), as kubelet decides them for restartPolicy Always: Pending while a
    container waits for its first start; a container waiting to be restarted (CrashLoopBackOff)
    leaves the pod Running, and the STATUS column shows why it waits."""
    if not states:
        return "Running", "Running"
    for s in states:
        if s.get("state") == "waiting" and not _has_ended(s):
            return "Pending", s.get("reason") or "Pending"
    for s in states:
        if s.get("state") == "waiting":
            return "Running", s.get("reason") or "Waiting"
    terminated = [s for s in states if s.get("state") == "terminated"]
    if terminated:
        if all(s.get("exitCode") == 0 for s in terminated) and len(terminated) == len(states):
            return "Succeeded", "Completed"
        return "Running", "CrashLoopBackOff" if any(s.get("restarts", 0) for s in terminated) else "Error"
    return "Running", "Running"


def pod_rows(plan: Plan, pods: list[PlannedPod], status: dict, wide: bool, all_ns: bool):
    headers = (["NAMESPACE"] if all_ns else []) + ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    if wide:
        headers += ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    rows = []
    for pod in pods:
        states = container_states(pod, status)
        ready = sum(1 for s in states if s.get("state") == "running")
        _, st = pod_phase(states)
        restarts = sum(int(s.get("restarts", 0)) for s in states)
        row = ([pod.namespace] if all_ns else []) + [
            pod.name, f"{ready}/{len(states)}", st, str(restarts), age(pod_created(plan, pod))]
        if wide:
            row += [str(pod.ip), pod.node, "<none>", "<none>"]
        rows.append(row)
    return headers, rows


def pod_object(plan: Plan, pod: PlannedPod, status: dict) -> dict:
    node = plan.node(pod.node)
    states = container_states(pod, status)
    phase, _ = pod_phase(states)
    created = pod_created(plan, pod)
    meta = {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid, "labels": dict(pod.labels),
            "creationTimestamp": iso(created)}
    if pod.owner:
        kind, name = pod.owner.split("/", 1)
        meta["ownerReferences"] = [{"apiVersion": "v1" if kind == "ReplicationController" else "apps/v1",
                                    "kind": kind, "name": name, "controller": True}]
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": pod.node, "hostNetwork": pod.host_network,
                 "containers": [{"name": c.name, "image": c.image,
                                 "ports": [{"containerPort": p.container_port, "protocol": p.protocol,
                                            **({"name": p.name} if p.name else {})} for p in c.ports]}
                                for c in pod.containers]},
        "status": {"phase": phase, "podIP": str(pod.ip), "podIPs": [{"ip": str(pod.ip)}],
                   "hostIP": str(node.ip), "hostIPs": [{"ip": str(node.ip)}],
                   "containerStatuses": [_container_status(c, s) for c, s in zip(pod.containers, states)]},
    }


def _container_status(c, s: dict) -> dict:
    st = s.get("state", "waiting")
    detail = {"running": {"startedAt": s.get("startedAt")},
              "terminated": {"exitCode": s.get("exitCode"), "reason": "Completed" if s.get("exitCode") == 0 else "Error"},
              "waiting": {"reason": s.get("reason", "ContainerCreating")}}[st]
    if st == "waiting" and s.get("message"):
        detail["message"] = s["message"]
    out = {"name": c.name, "image": c.image, "ready": st == "running", "restartCount": int(s.get("restarts", 0)),
           "started": st == "running", "state": {st: detail}}
    if s.get("exitCode") is not None and st != "terminated":
        out["lastState"] = {"terminated": {"exitCode": s["exitCode"],
                                           "reason": "Completed" if s["exitCode"] == 0 else "Error"}}
    return out


# ------------------------------------------------------------------------------------------
# Nodes
# ------------------------------------------------------------------------------------------


def node_rows(plan: Plan, nodes: list[PlannedNode], wide: bool):
    headers = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    if wide:
        headers += ["INTERNAL-IP", "EXTERNAL-IP", "POD-CIDR", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    rows = []
    kernel = os.uname().release
    for n in nodes:
        row = [n.name, "Ready", "<none>", age(_created(nsenter.netns_path(n.netns))), KUBELET_VERSION]
        if wide:
            row += [str(n.ip), "<none>", str(n.pod_cidr), "kubenet-lab netns", kernel, "kubenet-lab"]
        rows.append(row)
    return headers, rows


def node_object(plan: Plan, n: PlannedNode) -> dict:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": n.name, "labels": {"kubernetes.io/hostname": n.name, **dict(n.labels)},
                     "creationTimestamp": iso(_created(nsenter.netns_path(n.netns)))},
        "spec": {"podCIDR": str(n.pod_cidr), "podCIDRs": [str(n.pod_cidr)]},
        "status": {"addresses": [{"type": "InternalIP", "address": str(n.ip)}, {"type": "Hostname", "address": n.name}],
                   "conditions": [{"type": "Ready", "status": "True"}],
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
    ips = [str(a) for a in svc.load_balancer_ips + svc.external_ips]
    if ips:
        return ",".join(ips)
    return "<pending>" if svc.type == "LoadBalancer" else "<none>"


def service_rows(plan: Plan, services: list[PlannedService], wide: bool, all_ns: bool):
    created = _created(os.path.join(state.state_dir(plan.lab), state.PLAN_FILE))
    headers = (["NAMESPACE"] if all_ns else []) + ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    if wide:
        headers.append("SELECTOR")
    rows = []
    for s in services:
        row = ([s.namespace] if all_ns else []) + [
            s.name, s.type, str(s.cluster_ip) if s.cluster_ip else "None", external_ip_column(s), ports_column(s),
            age(created)]
        if wide:
            row.append(",".join(f"{k}={v}" for k, v in (s.selector or {}).items()) or "<none>")
        rows.append(row)
    return headers, rows


def service_object(plan: Plan, s: PlannedService) -> dict:
    spec = {"type": s.type, "clusterIP": str(s.cluster_ip) if s.cluster_ip else "None",
            "clusterIPs": [str(s.cluster_ip) if s.cluster_ip else "None"],
            "ports": [{k: v for k, v in {"name": p.name, "port": p.port, "targetPort": p.target_port,
                                         "nodePort": p.node_port, "protocol": p.protocol}.items() if v is not None}
                      for p in s.ports],
            "sessionAffinity": s.session_affinity}
    if s.selector is not None:
        spec["selector"] = dict(s.selector)
    if s.session_affinity == "ClientIP":
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": s.affinity_timeout}}
    if s.type in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = s.external_traffic_policy
    spec["internalTrafficPolicy"] = s.internal_traffic_policy
    if s.external_ips:
        spec["externalIPs"] = [str(a) for a in s.external_ips]
    status = {"loadBalancer": {"ingress": [{"ip": str(a)} for a in s.load_balancer_ips]} if s.load_balancer_ips
              else {}}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": s.name, "namespace": s.namespace},
            "spec": spec, "status": status}


def endpoints_column(s: PlannedService, limit: int = 3) -> str:
    eps = [f"{e.ip}:{e.port}" for p in s.ports for e in p.endpoints if e.ready]
    if not eps:
        return "<none>"
    shown = ",".join(eps[:limit])
    return shown + (f" + {len(eps) - limit} more..." if len(eps) > limit else "")


def endpoint_rows(plan: Plan, services: list[PlannedService], wide: bool, all_ns: bool):
    created = _created(os.path.join(state.state_dir(plan.lab), state.PLAN_FILE))
    headers = (["NAMESPACE"] if all_ns else []) + ["NAME", "ENDPOINTS", "AGE"]
    rows = [([s.namespace] if all_ns else []) + [s.name, endpoints_column(s, limit=10 ** 6 if wide else 3),
                                                  age(created)] for s in services]
    return headers, rows


def endpoints_object(plan: Plan, s: PlannedService) -> dict:
    subsets = []
    def address(e) -> dict:
        namespace, name = e.pod.split("/")
        return {"ip": str(e.ip), "nodeName": e.node, "targetRef": {"kind": "Pod", "namespace": namespace, "name": name}}
    for p in s.ports:
        if p.endpoints:
            subset = {"addresses": [address(e) for e in p.endpoints if e.ready]}
            if not_ready := [address(e) for e in p.endpoints if not e.ready]:
                subset["notReadyAddresses"] = not_ready
            if not subset["addresses"]:
                del subset["addresses"]
            subsets.append({**subset, "ports": [{k: v for k, v in {"name": p.name, "port": p.endpoints[0].port,
                                                                    "protocol": p.protocol}.items() if v is not None}]})
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": s.name, "namespace": s.namespace},
            "subsets": subsets}


# ------------------------------------------------------------------------------------------


def as_list(items: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def dump(obj: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=4) + "\n"
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)

