"""The verdict of the policies on one connection, and what decided it: the oracle that `check`,
`trace` and the tests read, and that the nftables rules (policy.nftables) implement.

As the API specifies: a connection needs the source pod's egress AND the destination pod's
ingress to allow it; a pod no policy isolates in a direction is not isolated there; policies
add up (any rule of any isolating policy allows); replies of allowed connections pass (the
verdict is about who opens it). Traffic between a pod and its own node is always allowed
(kubelet's probes). A connection through a Service is judged by the endpoint pod it reaches
after DNAT: the caller names that pod.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Mapping

from ..model.objects import NetworkPolicy, Plan, PlannedPod
from .select import EGRESS, INGRESS, isolating, namespace_labels, peer_matches, port_matches


@dataclass(frozen=True)
class End:
    """One end of a connection: a pod of the pod network, or an address (`node`: the node it
    belongs to, for a node's own address; a hostNetwork pod is its node)."""

    ip: IPv4Address
    pod: PlannedPod | None = None
    node: str | None = None

    def __str__(self) -> str:
        return self.pod.key if self.pod else (f"node/{self.node}" if self.node else str(self.ip))


@dataclass(frozen=True)
class Decision:
    """One direction's answer. `policy`/`rule`: the first rule (policies by name, rules in
    order) that allowed it; `isolating`: the policies that isolate the pod in this direction
    (none: not isolated, so allowed); `reason`: a sentence for people."""

    direction: str
    allowed: bool
    reason: str
    policy: str | None = None
    rule: int | None = None
    isolating: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    egress: Decision
    ingress: Decision

    @property
    def reason(self) -> str:
        """What decided: the denying side's reason, else both sides'."""
        denied = [d for d in (self.egress, self.ingress) if not d.allowed]
        return "; ".join(d.reason for d in denied or (self.egress, self.ingress))


def _decide(direction: str, pod: PlannedPod | None, other: End, protocol: str, port: int,
            destination: PlannedPod | None, policies: tuple[NetworkPolicy, ...],
            ns_labels: Mapping[str, Mapping[str, str]], same_node: bool) -> Decision:
    """The answer of `pod`'s policies in `direction` for a connection with `other` (its peer)."""
    word = "ingress" if direction == INGRESS else "egress"
    if pod is None:
        return Decision(direction, True, f"{word}: not a pod, no policy applies")
    if same_node:
        return Decision(direction, True, f"{word}: traffic between {pod.key} and its own node is always allowed")
    chosen = isolating(policies, pod, direction)
    names = tuple(p.key for p in chosen)
    if not chosen:
        return Decision(direction, True, f"{word}: no policy isolates {pod.key}")
    for policy in chosen:
        rules = policy.ingress if direction == INGRESS else policy.egress
        for i, rule in enumerate(rules):
            peers_ok = not rule.peers or any(
                peer_matches(peer, policy.namespace, other.ip, other.pod, ns_labels) for peer in rule.peers)
            ports_ok = not rule.ports or any(port_matches(p, protocol, port, destination) for p in rule.ports)
            if peers_ok and ports_ok:
                field = "from" if direction == INGRESS else "to"
                return Decision(direction, True, f"{word} allowed by networkpolicy {policy.key} {word}[{i}] "
                                f"({field} {other}, {protocol}/{port})", policy.key, i, names)
    return Decision(direction, False, f"{word} of {pod.key} denied: isolated by networkpolicy "
                    f"{', '.join(names)}, whose {word} rules do not allow {other} on {protocol}/{port}",
                    isolating=names)


def verdict(plan: Plan, source: End, destination: End, protocol: str, port: int,
            ns_labels: Mapping[str, Mapping[str, str]] | None = None) -> Verdict:
    """Whether `source` may open a connection to `destination` on `port`/`protocol`."""
    labels = namespace_labels(plan) if ns_labels is None else ns_labels
    policies = plan.network_policies
    src_pod, dst_pod = source.pod, destination.pod
    egress = _decide(EGRESS, src_pod, destination, protocol, port, dst_pod, policies, labels,
                     same_node=src_pod is not None and destination.node == src_pod.node)
    ingress = _decide(INGRESS, dst_pod, source, protocol, port, dst_pod, policies, labels,
                      same_node=dst_pod is not None and source.node == dst_pod.node)
    return Verdict(egress.allowed and ingress.allowed, egress, ingress)


def ends(plan: Plan) -> dict[IPv4Address, End]:
    """Every address the plan knows as an end: its pods' (policy pods), and each node's (on the
    underlay, and its gateway on cbr0, which the node's own traffic to its pods comes from)."""
    out = {n.ip: End(n.ip, node=n.name) for n in plan.nodes}
    out.update({n.gateway: End(n.gateway, node=n.name) for n in plan.nodes})
    out.update({p.ip: End(p.ip, pod=p) for p in plan.pods if not p.host_network})
    return out


def pod_end(pod: PlannedPod) -> End:
    """A pod as an end: a hostNetwork pod is its node's address."""
    return End(pod.ip, node=pod.node) if pod.host_network else End(pod.ip, pod=pod)
