"""Which node a pod goes to, as kube-scheduler's default filters decide it, and why none can take it.

Filters, in kube-scheduler's order, the first that fails naming the node's reason:
- NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods tolerating
  `node.kubernetes.io/unschedulable:NoSchedule`;
- TaintToleration: every NoSchedule and NoExecute taint of the node must be tolerated;
- NodeAffinity: `nodeSelector` (every label) and the required node affinity (any term, each term
  all of its requirements);
- NodePorts: no container port's hostPort (hostIP, protocol, port) may be taken on the node by a
  pod already there (an unset or 0.0.0.0 hostIP takes the port on every address);
- InterPodAffinity: the required pod affinity and anti-affinity of the pod over the pods already
  placed, and the required anti-affinity of those pods towards it.
Among the nodes left the pod goes to the best score (preferred node and pod affinity weights,
PreferNoSchedule taints not tolerated count against), then the fewest pods, then node order.
A pod no node takes is Pending, with the scheduler's own FailedScheduling message.

Pure: nodes and pods in, decisions out.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..model.objects import (LabelSelector, MatchExpression, NodeSelectorTerm, Pod, PodAffinityTerm, PlannedNode, Taint,
                    Toleration)

UNSCHEDULABLE = Taint("node.kubernetes.io/unschedulable", "NoSchedule")
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}.get(
    platform.machine(), platform.machine())

# The reasons kube-scheduler's filter plugins give, and whether preemption could help.
NOT_SCHEDULABLE = "node(s) were unschedulable"
NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
POD_AFFINITY = "node(s) didn't match pod affinity rules"
POD_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
NODE_PORTS = "node(s) didn't have free ports for the requested pod ports"
_RESOLVABLE = (POD_ANTI_AFFINITY, EXISTING_ANTI_AFFINITY, NODE_PORTS)
# A pod with spec.schedulingGates: the PodScheduled condition's message (its reason is
# SchedulingGated, which `get pods` shows as its STATUS).
SCHEDULING_GATED = "Scheduling is blocked due to non-empty scheduling gates"


def node_labels(name: str, labels: Mapping[str, str]) -> dict[str, str]:
    """What kubelet labels its node with, then the Node object's own labels."""
    return {"kubernetes.io/arch": ARCH, "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **labels}


def tolerates(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    for t in tolerations:
        if t.effect and t.effect != taint.effect:
            continue
        if not t.key and t.operator == "Exists":
            return True
        if t.key == taint.key and (t.operator == "Exists" or t.value == taint.value):
            return True
    return False


def _requirement(e: MatchExpression, value: str | None) -> bool:
    if e.operator == "In":
        return value is not None and value in e.values
    if e.operator == "NotIn":
        return value is None or value not in e.values
    if e.operator == "Exists":
        return value is not None
    if e.operator == "DoesNotExist":
        return value is None
    try:  # Gt, Lt: integers
        number, bound = int(value), int(e.values[0])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return number > bound if e.operator == "Gt" else number < bound


def term_matches(term: NodeSelectorTerm, node: PlannedNode) -> bool:
    """All of a term's requirements hold; a term with none matches no node (as the API says)."""
    if not term.match_expressions and not term.match_fields:
        return False
    fields = {"metadata.name": node.name}
    return (all(_requirement(e, node.labels.get(e.key)) for e in term.match_expressions)
            and all(_requirement(e, fields.get(e.key)) for e in term.match_fields))


@dataclass
class Placed:
    """The pods placed so far, for inter-pod affinity."""
    pods: list[tuple[Pod, PlannedNode]] = field(default_factory=list)

    def in_domain(self, term: PodAffinityTerm, owner: Pod, node: PlannedNode) -> list[Pod]:
        """Pods the term selects that run in `node`'s topology domain."""
        if term.topology_key not in node.labels:
            return []
        value = node.labels[term.topology_key]
        return [p for p, n in self.pods if n.labels.get(term.topology_key) == value and _selects(term, owner, p)]

    def anywhere(self, term: PodAffinityTerm, owner: Pod) -> bool:
        return any(_selects(term, owner, p) for p, _ in self.pods)


def _selects(term: PodAffinityTerm, owner: Pod, pod: Pod) -> bool:
    namespaces = term.namespaces or (() if term.all_namespaces else (owner.namespace,))
    return (not namespaces or pod.namespace in namespaces) and term.selector.matches(pod.labels)


HostPort = tuple[str, str, int]  # (hostIP, protocol, hostPort), the hostIP "0.0.0.0" when unset


def host_ports(pod: Pod) -> list[HostPort]:
    """The host ports of a pod's containers, as the NodePorts filter counts them: a hostNetwork
    pod's container ports are its node's (the API server defaults hostPort to containerPort)."""
    return [(p.host_ip or "0.0.0.0", p.protocol, p.host_port or p.container_port)
            for c in pod.spec.containers for p in c.ports if p.host_port or pod.spec.host_network]


def _conflict(a: HostPort, b: HostPort) -> bool:
    return a[1:] == b[1:] and (a[0] == b[0] or "0.0.0.0" in (a[0], b[0]))


def port_holder(pod: Pod, node: str, placed: Placed) -> tuple[Pod, HostPort] | None:
    """A pod placed on `node` holding one of `pod`'s host ports, and that port."""
    wanted = host_ports(pod)
    if not wanted:
        return None
    for other, other_node in placed.pods:
        if other_node.name == node and other.key != pod.key:
            for port in host_ports(other):
                if any(_conflict(port, w) for w in wanted):
                    return other, port
    return None


def why_not(pod: Pod, node: PlannedNode, placed: Placed) -> str | None:
    """The reason kube-scheduler gives for `node` not taking `pod`, or None when it can."""
    spec = pod.spec
    if node.unschedulable and not tolerates(spec.tolerations, UNSCHEDULABLE):
        return NOT_SCHEDULABLE
    for taint in node.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not tolerates(spec.tolerations, taint):
            return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"
    if any(node.labels.get(k) != v for k, v in spec.node_selector.items()):
        return NODE_AFFINITY
    affinity = spec.affinity
    if affinity and affinity.node_required is not None and not any(
            term_matches(t, node) for t in affinity.node_required):
        return NODE_AFFINITY
    if port_holder(pod, node.name, placed):
        return NODE_PORTS
    if affinity:
        for term in affinity.pod_required:
            # the first pod of a group that selects itself may go anywhere
            alone = not placed.anywhere(term, pod) and _selects(term, pod, pod)
            if not placed.in_domain(term, pod, node) and not alone:
                return POD_AFFINITY
        if any(placed.in_domain(term, pod, node) for term in affinity.anti_required):
            return POD_ANTI_AFFINITY
    for other, other_node in placed.pods:
        anti = other.spec.affinity.anti_required if other.spec.affinity else ()
        for term in anti:
            key = term.topology_key
            if (key in node.labels and other_node.labels.get(key) == node.labels[key]
                    and _selects(term, other, pod)):
                return EXISTING_ANTI_AFFINITY
    return None


def score(pod: Pod, node: PlannedNode, placed: Placed) -> int:
    """Preferred affinities met (weights), less one point per PreferNoSchedule taint not tolerated."""
    affinity, total = pod.spec.affinity, 0
    if affinity:
        total += sum(w for w, t in affinity.node_preferred if term_matches(t, node))
        total += sum(w for w, t in affinity.pod_preferred if placed.in_domain(t, pod, node))
        total -= sum(w for w, t in affinity.anti_preferred if placed.in_domain(t, pod, node))
    total -= sum(1 for t in node.taints if t.effect == "PreferNoSchedule" and not tolerates(pod.spec.tolerations, t))
    return total


def failed_scheduling(reasons: Mapping[str, int], nodes: int) -> str:
    """kube-scheduler's FailedScheduling message for `reasons` (reason -> number of nodes)."""
    found = ", ".join(sorted(f"{n} {reason}" for reason, n in reasons.items()))
    resolvable = sum(n for reason, n in reasons.items() if reason in _RESOLVABLE)
    preemption = ", ".join(sorted(
        ([f"{resolvable} No preemption victims found for incoming pod"] if resolvable else [])
        + ([f"{nodes - resolvable} Preemption is not helpful for scheduling"] if nodes - resolvable else [])))
    return f"0/{nodes} nodes are available: {found}. preemption: 0/{nodes} nodes are available: {preemption}."


def selector_text(selector: LabelSelector) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.match_labels.items())
