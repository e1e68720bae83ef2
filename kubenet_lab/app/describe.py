"""`describe`: kubectl's details of a pod, service, node or controller, from the lab's objects
and events, plus the network view read from the live kernel (fabric/netdump.py). The printing is
inspect/describe.py and inspect/netview.py (pure); this module gathers what they print."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

from .. import output
from ..errors import InputError, LabError
from ..inspect import describe as text
from ..inspect import netview
from ..model.objects import PendingPod, Plan, PlannedContainer, PlannedPod, PlannedVolume, RunExec
from ..fabric import netdump as live
from . import query

KINDS = {
    "pods": "pods", "pod": "pods", "po": "pods",
    "services": "services", "service": "services", "svc": "services",
    "nodes": "nodes", "node": "nodes", "no": "nodes",
    "deployments": "Deployment", "deployment": "Deployment", "deploy": "Deployment",
    "replicasets": "ReplicaSet", "replicaset": "ReplicaSet", "rs": "ReplicaSet",
    "replicationcontrollers": "ReplicationController", "replicationcontroller": "ReplicationController",
    "rc": "ReplicationController",
    "statefulsets": "StatefulSet", "statefulset": "StatefulSet", "sts": "StatefulSet",
    "daemonsets": "DaemonSet", "daemonset": "DaemonSet", "ds": "DaemonSet",
    "jobs": "Job", "job": "Job",
    "endpoints": "endpoints", "ep": "endpoints",
    "networkpolicies": "networkpolicies", "networkpolicy": "networkpolicies", "netpol": "networkpolicies",
}
RESOURCE_NAMES = {"pods": "pods", "services": "services", "nodes": "nodes", "endpoints": "endpoints",
                  "Deployment": "deployments.apps", "ReplicaSet": "replicasets.apps",
                  "ReplicationController": "replicationcontrollers", "StatefulSet": "statefulsets.apps",
                  "DaemonSet": "daemonsets.apps", "Job": "jobs.batch",
                  "networkpolicies": "networkpolicies.networking.k8s.io"}


class NotFound(LabError):
    """kubectl's `Error from server (NotFound): pods "x" not found`."""


def parse_target(args: tuple[str, ...]) -> tuple[str, list[str]]:
    """`KIND`, `KIND NAME...` or `KIND/NAME...` (one kind) -> (kind key, names; none: all)."""
    if not args:
        raise InputError("You must specify the type of resource to describe. Use \"kubenet-lab describe pod NAME\", "
                         "service, node, deployment, replicaset, replicationcontroller, statefulset, daemonset, job, "
                         "endpoints or networkpolicy")
    if all("/" in a for a in args):
        kinds = {a.split("/", 1)[0] for a in args}
        if len(kinds) > 1:
            raise InputError(f"describe: name objects of one kind at a time (got {', '.join(sorted(kinds))})")
        kind, names = kinds.pop(), [a.split("/", 1)[1] for a in args]
    elif any("/" in a for a in args):
        raise InputError("there is no need to specify a resource type as a separate argument when passing "
                         "arguments in resource/name form")
    else:
        kind, names = args[0], list(args[1:])
    if kind.lower() not in KINDS:
        raise InputError(f'the server doesn\'t have a resource type "{kind}"')
    return KINDS[kind.lower()], names


def event_rows(lab: str, kind: str, namespace: str, name: str, now: float | None = None) -> list[text.EventRow]:
    """The events about kind/name, aggregated as the API server keeps them, oldest first."""
    now = time.time() if now is None else now
    records, _ = query.events(lab, mentioning=name)
    rows = []
    for x in output.aggregate_events(records):
        e = x.event
        if e.kind != kind or e.name != name or (kind != "Node" and (e.namespace or "default") != namespace):
            continue
        rows.append(text.EventRow(e.type, e.reason, text.event_age(x.count, output.age(x.first, now),
                                                                    output.age(x.last, now)), e.source, e.message))
    return rows


def _planned(containers) -> dict[str, PlannedContainer]:
    return {c.name: c for c in containers}


def _container_specs(pod: PlannedPod, key: str) -> list[dict]:
    out = []
    for c in getattr(pod, key):
        spec = output._container_spec(c)
        if isinstance(c.run, RunExec) and c.run.argv:
            spec["command"] = list(c.run.argv)  # what runs, as the lab resolved command and args
        out.append(spec)
    return out


def volume_spec(v: PlannedVolume) -> dict:
    """A planned volume as the pod's spec.volumes entry (what describe lists)."""
    if v.kind == "configMap":
        return {"name": v.name, "configMap": {"name": v.source, "optional": v.optional}}
    if v.kind == "secret":
        return {"name": v.name, "secret": {"secretName": v.source, "optional": v.optional}}
    if v.kind == "hostPath":
        return {"name": v.name, "hostPath": {"path": v.host_path}}
    if v.kind == "downwardAPI":
        return {"name": v.name, "downwardAPI": {}}
    return {"name": v.name, "emptyDir": {"medium": v.medium} if v.medium else {}}


@dataclass
class Described:
    """What `describe` prints: the descriptions, kubectl's errors for names not found, and
    kubectl's note when a bare KIND finds nothing."""

    text: str = ""
    errors: list[str] = field(default_factory=list)
    none_found: str | None = None


def _names(plan: Plan, kind: str, namespace: str) -> list[str]:
    if kind == "nodes":
        return [n.name for n in plan.nodes]
    if kind == "pods":
        return sorted(p.name for p in plan.pods + plan.pending if p.namespace == namespace)
    if kind in ("services", "endpoints"):
        return sorted(s.name for s in plan.services if s.namespace == namespace)
    if kind == "networkpolicies":
        return sorted(n.name for n in plan.network_policies if n.namespace == namespace)
    return sorted(w.name for w in plan.workloads if w.kind == kind and w.namespace == namespace)


def _pod_names(lab: str, data: dict, status: dict, namespace: str) -> list[str]:
    """The names of the pods of `namespace` in the plan's JSON (query.plan_data) that exist (as
    query.existing: not those the supervisor has not created yet), sorted."""
    gone = {k for k, st in status.items() if isinstance(st, dict) and st.get("created") is False}
    try:
        return sorted([p["name"] for p in data["pods"] if p["namespace"] == namespace
                       and f"{namespace}/{p['name']}" not in gone]
                      + [p["name"] for p in data["pending"] if p["namespace"] == namespace])
    except (KeyError, TypeError) as e:
        from ..fabric import state

        raise state.unreadable(lab, e) from e


def _described(names: list[str], known: list[str]) -> list[str]:
    """The objects `describe` shows of those it was given: all without names; a single name that
    is no object's names those that start with it; otherwise the names that are objects'."""
    if not names:
        return known
    if len(names) == 1 and names[0] not in known:
        return [n for n in known if n.startswith(names[0])]
    return [n for n in names if n in known]


def describe(lab: str, args: tuple[str, ...], namespace: str) -> Described:
    """As kubectl describe: every object named (all of the kind when none is), one after another
    with a blank line between; a single name not found describes every object whose name starts
    with it (`describe pods web`)."""
    kind, names = parse_target(args)
    if kind == "pods":  # only the pods described are decoded and asked about: most of a big lab is the others
        data = query.plan_data(lab)
        named = [n for n in _pod_names(lab, data, {}, namespace) if not names or any(n.startswith(x) for x in names)]
        status = query.pod_status(lab, {f"{namespace}/{n}" for n in named})
        known = _pod_names(lab, data, status, namespace)
        plan = query.running_plan(lab, {f"{namespace}/{n}" for n in _described(names, known)}, data)
    else:
        plan = query.running_plan(lab)
        status = query.pod_status(lab) if kind not in ("nodes", "services", "endpoints", "networkpolicies") else {}
        known = _names(plan, kind, namespace)
    plan = query.existing(plan, status) if status else plan
    out = Described()
    if not names:
        if not known:
            out.none_found = ("No resources found" if kind == "nodes"
                              else f"No resources found in {namespace} namespace.")
        out.text = "\n\n".join(_one(lab, plan, status, kind, namespace, n) for n in known)
        return out
    if len(names) == 1 and names[0] not in known:
        matching = [n for n in known if n.startswith(names[0])]
        if not matching:
            out.errors.append(str(_not_found(kind, names[0])))
        out.text = "".join(_one(lab, plan, status, kind, namespace, n) + "\n" for n in matching)
        return out
    texts = []
    for name in names:
        if name in known:
            texts.append(_one(lab, plan, status, kind, namespace, name))
        else:
            out.errors.append(str(_not_found(kind, name)))
    out.text = "\n\n".join(texts)
    return out


def _one(lab: str, plan: Plan, status: dict, kind: str, namespace: str, name: str) -> str:
    if kind == "pods":
        return _pod(lab, plan, status, namespace, name)
    if kind in ("services", "endpoints"):
        return _service(lab, plan, namespace, name, endpoints_only=kind == "endpoints")
    if kind == "nodes":
        return _node(lab, plan, name)
    if kind == "networkpolicies":
        from ..inspect.netpoldescribe import describe_network_policy

        found = next(n for n in plan.network_policies if n.key == f"{namespace}/{name}")
        return describe_network_policy(output.network_policy_object(plan, found))
    return _workload(lab, plan, status, kind, namespace, name)


def _not_found(kind: str, name: str) -> NotFound:
    return NotFound(f'{RESOURCE_NAMES[kind]} "{name}" not found')


def _pod(lab: str, plan: Plan, status: dict, namespace: str, name: str) -> str:
    pod = next((p for p in plan.pods + plan.pending if p.namespace == namespace and p.name == name), None)
    if pod is None:
        raise _not_found("pods", name)
    obj = output.pod_object(plan, pod, status)
    spec, st = obj["spec"], obj["status"]
    spec.setdefault("priority", 0)
    spec.setdefault("serviceAccountName", "default")
    st.setdefault("qosClass", "BestEffort")
    events = event_rows(lab, "Pod", namespace, name)
    if isinstance(pod, PendingPod):
        return text.describe_pod(obj, {}, events)
    st["startTime"] = obj["metadata"].get("creationTimestamp")
    spec["containers"] = _container_specs(pod, "containers")
    if pod.init_containers:
        spec["initContainers"] = _container_specs(pod, "init_containers")
    spec["volumes"] = [volume_spec(v) for v in pod.volumes]
    planned = _planned(pod.containers + pod.init_containers)
    node = plan.node(pod.node)
    if pod.host_veth is None or pod.host_network:  # no node side to show
        pod_ns, node_ns = live.namespace(pod.netns), None
    else:  # of the node, the pod's veth alone
        pod_ns, node_ns = live.pod_and_peer(pod.netns, node.netns, pod.host_veth)
    network = netview.pod_network(pod_ns, node_ns, pod.host_veth, node.name, pod.host_network)
    return text.describe_pod(obj, planned, events, network)


def _service(lab: str, plan: Plan, namespace: str, name: str, endpoints_only: bool = False) -> str:
    if endpoints_only:  # the controller's of a selecting Service, or one written
        from ..plan.endpointslices import endpoints_objects

        obj = next((e for e in endpoints_objects(plan) if e.namespace == namespace and e.name == name), None)
        if obj is None:
            raise _not_found("endpoints", name)
        return text.describe_endpoints(output.endpoints_object(plan, obj),
                                       event_rows(lab, "Endpoints", namespace, name))
    svc = next((s for s in plan.services if s.namespace == namespace and s.name == name), None)
    if svc is None:
        raise _not_found("services", name)
    endpoints = output.endpoints_object(plan, svc)
    events = event_rows(lab, "Service", namespace, name)
    rules = live.all_node_rules([(n.name, n.netns) for n in plan.nodes], plan.cluster.kube_proxy_mode)
    network = netview.service_network(rules, namespace, name)
    return text.describe_service(output.service_object(plan, svc), endpoints, events, network)


def _node(lab: str, plan: Plan, name: str) -> str:
    try:
        node = plan.node(name)
    except KeyError:
        raise _not_found("nodes", name) from None
    obj = output.node_object(plan, node)
    info = obj["status"]["nodeInfo"]
    info.update({"osImage": "kubenet-lab netns", "operatingSystem": "linux",
                 "architecture": node.labels.get("kubernetes.io/arch", ""),
                 "containerRuntimeVersion": "kubenet-lab"})
    for key, path in (("machineID", "/etc/machine-id"), ("bootID", "/proc/sys/kernel/random/boot_id")):
        try:  # the nodes are namespaces of this machine: its machine and boot
            with open(path) as f:
                info[key] = f.read().strip()
        except OSError:
            pass
    pods = sorted((p for p in plan.pods if p.node == name), key=lambda p: (p.namespace, p.name))
    rows = [(p.namespace, p.name, output.age(output.pod_created(plan, p))) for p in pods]
    events = event_rows(lab, "Node", "", name)
    ns = live.namespace(node.netns, neighbours=True)
    rules = live.node_rules(node.name, node.netns, plan.cluster.kube_proxy_mode)
    return text.describe_node(obj, rows, events, netview.node_network(ns, rules))


def _workload(lab: str, plan: Plan, status: dict, kind: str, namespace: str, name: str) -> str:
    w = next((x for x in plan.workloads if x.kind == kind and x.namespace == namespace and x.name == name), None)
    if w is None:
        raise _not_found(kind, name)
    obj = output.workload_object(plan, w, status)
    pods = [p for p in output.workload_pods(plan, w) if isinstance(p, PlannedPod)]
    current = [p for p in pods if w.current_set is None or p.owner == f"ReplicaSet/{w.current_set}"] or pods
    template = obj["spec"]["template"]
    stored = plan.allocations.rs_templates.get(f"{namespace}/{w.current_set}") if w.current_set else None
    labels = dict(stored.template_labels) if stored is not None else dict(w.selector.match_labels)
    template.setdefault("metadata", {})["labels"] = labels
    planned: Mapping[str, PlannedContainer] = {}
    if current:
        template["spec"]["containers"] = _container_specs(current[0], "containers")
        planned = _planned(current[0].containers + current[0].init_containers)
    if w.node_selector:
        template["spec"]["nodeSelector"] = dict(w.node_selector)
    events = event_rows(lab, kind, namespace, name)
    if kind == "Deployment":
        sets = sorted((x for x in plan.workloads if x.owner == f"Deployment/{name}" and x.namespace == namespace),
                      key=lambda x: x.revision)

        def created(x) -> tuple[str, int, int]:
            return x.name, output.workload_status(plan, x, status).current, x.replicas
        new = [created(x) for x in sets if x.name == w.current_set]
        old = [created(x) for x in sets if x.name != w.current_set and output.workload_status(plan, x, status).current]
        strategy = ("RollingUpdate", "25%", "25%")
        if stored is not None:
            strategy = (stored.strategy, str(stored.max_unavailable), str(stored.max_surge))
        available = obj["status"].get("availableReplicas", 0)
        obj["status"]["conditions"] = [
            {"type": "Available", "status": "True" if available >= w.replicas else "False",
             "reason": "MinimumReplicasAvailable" if available >= w.replicas else "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"
             if obj["status"].get("updatedReplicas", 0) == w.replicas and available >= w.replicas
             else "ReplicaSetUpdated"}]
        return text.describe_deployment(obj, old, new, planned, events, strategy)
    phases = [0, 0, 0, 0]
    for p in output.workload_pods(plan, w):
        phase = "Pending" if isinstance(p, PendingPod) else output.pod_state(p, status).phase
        index = {"Running": 0, "Pending": 1, "Succeeded": 2, "Failed": 3}.get(phase)
        if index is not None:
            phases[index] += 1
    if kind == "StatefulSet":
        return text.describe_statefulset(obj, tuple(phases), planned, events)
    if kind == "DaemonSet":
        return text.describe_daemonset(obj, tuple(phases), planned, events)
    if kind == "Job":
        st = obj["status"]
        obj["spec"].update({"suspend": False})
        started, finished = output.workload_status(plan, w, status).started, None
        if st.get("completionTime"):
            finished = output.workload_status(plan, w, status).finished
        duration = output.age(started, finished) if started and finished else None
        return text.describe_job(obj, planned, events, duration)
    return text.describe_replicaset(obj, tuple(phases), planned, events)
