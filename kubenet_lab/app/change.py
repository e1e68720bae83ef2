"""The verbs that change a running lab, as kubectl's do: apply, delete, scale.

Each works on the objects the lab holds (manifests.store), under the lab's lock, and goes through
build.change: the whole lab is planned again from its objects, and only what differs is built,
removed or reloaded. What a controller owns is not an object of the lab: deleting a pod a
ReplicaSet owns lets go of its name (plan.replicas), so the controller makes a new pod; deleting a
StatefulSet's pod lets go of its address, so it is made anew under the same name.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Sequence, TextIO

from ..errors import InputError, LabError
from ..manifests import generate, store
from ..manifests.fields import Sink, plain
from ..manifests.load import model_of, read_docs
from ..model.objects import Plan, PlannedPod
from ..plan import replicas
from ..plan.naming import check_lab_name
from . import build

# kubectl's resource names and short names for delete and scale -> the kind.
KINDS = {
    **dict.fromkeys(("pod", "pods", "po"), "Pod"),
    **dict.fromkeys(("service", "services", "svc"), "Service"),
    **dict.fromkeys(("deployment", "deployments", "deploy", "deployment.apps"), "Deployment"),
    **dict.fromkeys(("replicaset", "replicasets", "rs", "replicaset.apps"), "ReplicaSet"),
    **dict.fromkeys(("replicationcontroller", "replicationcontrollers", "rc"), "ReplicationController"),
    **dict.fromkeys(("statefulset", "statefulsets", "sts", "statefulset.apps"), "StatefulSet"),
    **dict.fromkeys(("daemonset", "daemonsets", "ds", "daemonset.apps"), "DaemonSet"),
    **dict.fromkeys(("job", "jobs", "job.batch"), "Job"),
    **dict.fromkeys(("namespace", "namespaces", "ns"), "Namespace"),
    **dict.fromkeys(("node", "nodes", "no"), "Node"),
    **dict.fromkeys(("configmap", "configmaps", "cm"), "ConfigMap"),
    **dict.fromkeys(("secret", "secrets"), "Secret"),
    **dict.fromkeys(("endpointslice", "endpointslices", "endpointslice.discovery.k8s.io"), "EndpointSlice"),
    **dict.fromkeys(("endpoints", "ep"), "Endpoints"),
    **dict.fromkeys(("networkpolicy", "networkpolicies", "netpol", "networkpolicy.networking.k8s.io"),
                    "NetworkPolicy"),
}
SCALABLE = ("Deployment", "ReplicaSet", "ReplicationController", "StatefulSet")
# The plural kubectl names a kind by in "not found" messages.
PLURALS = {"Pod": "pods", "Service": "services", "Deployment": "deployments.apps", "ReplicaSet": "replicasets.apps",
           "ReplicationController": "replicationcontrollers", "StatefulSet": "statefulsets.apps",
           "DaemonSet": "daemonsets.apps", "Job": "jobs.batch", "Namespace": "namespaces", "Node": "nodes",
           "ConfigMap": "configmaps", "Secret": "secrets", "EndpointSlice": "endpointslices.discovery.k8s.io",
           "Endpoints": "endpoints", "NetworkPolicy": "networkpolicies.networking.k8s.io"}


@dataclass
class ChangeResult:
    """What kubectl prints (`lines` on stdout, `errors` on stderr; any error: exit 1) and the change."""
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    up: build.UpResult | None = None


def kind_of(resource: str) -> str:
    kind = KINDS.get(resource.lower())
    if kind is None:
        raise InputError(f'the server doesn\'t have a resource type "{resource}"')
    return kind


def not_found(kind: str, name: str) -> str:
    return f'Error from server (NotFound): {PLURALS[kind]} "{name}" not found'


def _resource(kind: str) -> str:
    return store.RESOURCE_NAMES.get(kind, kind.lower())


# ----------------------------------------------------------------------------------------- apply

def apply(lab: str, paths: Sequence[str], stdin: TextIO | None = None, dry_run: bool = False) -> ChangeResult:
    """kubectl apply -f: the files' objects added to the lab or changed in it, in order."""
    check_lab_name(lab)
    if not paths:
        raise InputError("must specify one of -f and -k")
    sink = Sink()
    docs = store.flatten(read_docs(list(paths), stdin, sink))
    new = store.stored(docs)
    others = [(raw, at) for raw, at in docs if store.identify(raw) is None]  # the builder says what they are
    files = {at.file for _, at in docs}
    out = ChangeResult()

    def decide(previous: Plan | None, held_mode: tuple[list[store.Stored], str | None]) -> build.Change:
        held, mode = held_mode
        merged, twice = store.merge(held, new)
        model = build.with_proxy_mode(model_of([(s.data, s.at(sink)) for s in merged] + others, sink), mode)
        model = dataclasses.replace(model, warnings=tuple(w for w in model.warnings
                                                          if w.split(":", 1)[0] in files))
        now = {s.key: s for s in held}
        for s in new:
            old = now.get(s.key)
            status = "created" if old is None else ("unchanged" if plain(old.data) == plain(s.data) else "configured")
            out.lines.append(f"{s.ref} {status}")
            now[s.key] = s
        return build.Change(model, merged, mode, previous, tuple(twice))

    out.up = build.change(lab, decide, "apply", dry_run)
    return out


# ---------------------------------------------------------------------------------------- delete

def _let_go(previous: Plan, pod: PlannedPod) -> Plan:
    """`previous` as the planner is to see it once `pod`, owned by a controller, is deleted: a
    ReplicaSet's or ReplicationController's pod gives up its index (the replacement gets a new
    name); another controller's pod gives up its address (made anew under its name)."""
    alloc = previous.allocations
    owner = f"{pod.namespace}/{pod.owner}"
    if owner in alloc.replicas:
        index = replicas.index_of(pod.owner.split("/", 1)[1], owner, pod.name, alloc.replicas[owner])
        if index is not None:
            alloc = dataclasses.replace(alloc, replicas=replicas.without_index(alloc.replicas, owner, index))
    else:
        alloc = dataclasses.replace(alloc, pod_ips={k: v for k, v in alloc.pod_ips.items() if k != pod.key},
                                    created={k: v for k, v in alloc.created.items() if k != f"Pod/{pod.key}"})
    return dataclasses.replace(previous, allocations=alloc)


def delete(lab: str, resource: str, names: Sequence[str], namespace: str = "default",
           dry_run: bool = False) -> ChangeResult:
    """kubectl delete KIND NAME...: objects of the lab go; a controller's pod is replaced."""
    check_lab_name(lab)
    kind = kind_of(resource)
    if not names:
        raise InputError("resource(s) were provided, but no name was specified")
    out = ChangeResult()

    def decide(previous: Plan | None, held_mode: tuple[list[store.Stored], str | None]) -> build.Change:
        held, mode = held_mode
        if previous is None:
            raise LabError(f"lab {lab!r} is not up; start it with `kubenet-lab --lab {lab} up`")
        objects, plan = list(held), previous
        if kind == "Node" and not any(s.kind == "Node" for s in objects):
            objects += _implicit_nodes(previous)  # node1, node2 without manifests: objects now
        for name in names:
            found = store.find(objects, kind, namespace, name)
            if found is not None:
                gone = {found.key}
                if kind == "Namespace":
                    gone |= {s.key for s in objects if s.namespace == name}
                if kind == "Node":  # its pods go: bare ones for good, a controller's are made anew elsewhere
                    on_node = {p.key for p in plan.pods if p.node == name and not p.owner}
                    gone |= {s.key for s in objects if s.kind == "Pod" and f"{s.namespace}/{s.name}" in on_node}
                    for pod in [p for p in plan.pods if p.node == name and p.owner]:
                        plan = _let_go(plan, pod)
                objects = store.without(objects, gone)
                out.lines.append(f'{_resource(kind).split(".")[0]} "{name}" deleted')
                continue
            pod = next((p for p in plan.pods if kind == "Pod" and p.key == f"{namespace}/{name}" and p.owner), None)
            rs = next((w for w in plan.workloads if kind == "ReplicaSet" and w.key == f"{namespace}/{name}"
                       and w.owner), None)
            if pod is not None:
                plan = _let_go(plan, pod)
            elif rs is not None:  # its Deployment makes it again, with new pods
                owner = f"{namespace}/ReplicaSet/{name}"
                alloc = dataclasses.replace(plan.allocations, replicas={
                    k: v for k, v in plan.allocations.replicas.items() if k != owner})
                plan = dataclasses.replace(plan, allocations=alloc)
            else:
                out.errors.append(not_found(kind, name))
                continue
            out.lines.append(f'{_resource(kind).split(".")[0]} "{name}" deleted')
        if not out.lines:
            raise NothingToDo()
        model = build.with_proxy_mode(model_of([(s.data, s.at(sink)) for s in objects], sink), mode)
        return build.Change(dataclasses.replace(model, warnings=()), objects, mode, plan)

    sink = Sink()
    try:
        out.up = build.change(lab, decide, "delete", dry_run)
    except NothingToDo:
        pass
    return out


def remake(lab: str, keys: Sequence[str]) -> ChangeResult:
    """Pods whose sandbox (network namespace) is gone, made anew: a ReplicaSet's with a new
    name, others under theirs with a new address (their previous allocation let go)."""
    out = ChangeResult()

    def edit(previous: Plan, held: list[store.Stored]):
        plan = previous
        for pod in (p for p in previous.pods if p.key in set(keys)):
            plan = _let_go(plan, pod)
            out.lines.append(pod.key)
        if not out.lines:
            raise NothingToDo()
        return held, plan

    out.up = change_objects(lab, edit, "remake")
    return out


IMPLICIT = "<default nodes>"


def _implicit_nodes(plan: Plan) -> list[store.Stored]:
    """The lab's nodes as Node objects, for a lab whose nodes came from no manifest (the default
    node1 and node2): deleting one leaves the others as objects of the lab, as a cluster's are."""
    return [store.Stored("Node", "", n.name, generate.tree({"apiVersion": "v1", "kind": "Node",
                                                             "metadata": {"name": n.name}}), IMPLICIT, 1)
            for n in plan.nodes]


def delete_files(lab: str, paths: Sequence[str], stdin: TextIO | None = None, dry_run: bool = False) -> ChangeResult:
    """kubectl delete -f: the objects the files name go from the lab."""
    check_lab_name(lab)
    sink = Sink()
    named = store.stored(store.flatten(read_docs(list(paths), stdin, sink)))
    if sink.problems:
        raise InputError(sink.problems)
    out = ChangeResult()

    def decide(previous: Plan | None, held_mode: tuple[list[store.Stored], str | None]) -> build.Change:
        held, mode = held_mode
        keys = {s.key for s in held}
        seen = set()
        for s in named:
            if s.key in seen:
                continue
            seen.add(s.key)
            if s.key in keys:
                out.lines.append(f'{_resource(s.kind).split(".")[0]} "{s.name}" deleted')
            else:
                out.errors.append(not_found(s.kind, s.name))
        if not out.lines:
            raise NothingToDo()
        objects = store.without(held, seen)
        model = build.with_proxy_mode(model_of([(o.data, o.at(sink)) for o in objects], sink), mode)
        return build.Change(dataclasses.replace(model, warnings=()), objects, mode, previous)

    try:
        out.up = build.change(lab, decide, "delete", dry_run)
    except NothingToDo:
        pass
    return out


class NothingToDo(Exception):
    """Nothing named exists (or nothing changes): the lab is left as it is."""


# ----------------------------------------------------------------------------------------- scale

def scale(lab: str, resource: str, name: str, count: int, namespace: str = "default",
          dry_run: bool = False) -> ChangeResult:
    """kubectl scale KIND NAME --replicas N."""
    check_lab_name(lab)
    kind = kind_of(resource)
    if kind not in SCALABLE:
        raise InputError(f'cannot scale {_resource(kind)}: only deployments, replicasets, replicationcontrollers '
                         f'and statefulsets have replicas')
    if count < 0:
        raise InputError("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    out = ChangeResult()

    def edit(previous: Plan, held: list[store.Stored]) -> tuple[list[store.Stored], Plan]:
        found = store.find(held, kind, namespace, name)
        if found is None:
            raise LabError(not_found(kind, name))
        out.lines.append(f"{found.ref} scaled")
        return [store.edited(s, ("spec", "replicas"), count) if s.key == found.key else s for s in held], previous

    out.up = change_objects(lab, edit, "scale", dry_run=dry_run)
    return out


# ---------------------------------------------------------------------------- one edit of the objects

def change_objects(lab: str, edit, verb: str, keep_warnings: Callable[[str], bool] | None = None,
                   dry_run: bool = False) -> build.UpResult:
    """The lab with its objects edited: `edit(previous plan, held objects)` -> (the objects the
    lab is to hold, the previous plan as the planner is to see it), under the lab's lock; the
    whole lab is planned again from them. Raising NothingToDo in `edit` leaves the lab as it is
    (and returns None). Only the model's warnings `keep_warnings` keeps are said (none by default:
    they were said when the objects came)."""
    sink = Sink()

    def decide(previous: Plan | None, held_mode: tuple[list[store.Stored], str | None]) -> build.Change:
        held, mode = held_mode
        if previous is None:
            raise LabError(f"lab {lab!r} is not up; start it with `kubenet-lab --lab {lab} up`")
        objects, seen = edit(previous, list(held))
        model = build.with_proxy_mode(model_of([(s.data, s.at(sink)) for s in objects], sink), mode)
        warnings = tuple(w for w in model.warnings if keep_warnings is not None and keep_warnings(w))
        return build.Change(dataclasses.replace(model, warnings=warnings), objects, mode, seen)

    try:
        return build.change(lab, decide, verb, dry_run)
    except NothingToDo:
        return None
