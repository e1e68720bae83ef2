"""Which pods a NetworkPolicy isolates and which peers and ports its rules admit, as the API
documents them (networking.k8s.io/v1 NetworkPolicySpec, NetworkPolicyPeer, NetworkPolicyPort).

A pod here is one in the pod network: hostNetwork pods have their node's address and are no
policy's pods, as peers or as targets (the API leaves them undefined; implementations treat
them as their node). The pod-network pods of a plan are `policy_pods`.
"""
from __future__ import annotations

from ipaddress import IPv4Address, ip_network
from typing import Iterable, Mapping

from ..model.objects import NetworkPolicy, Plan, PlannedPod, PolicyPeer, PolicyPort

INGRESS, EGRESS = "Ingress", "Egress"


def policy_pods(plan: Plan) -> tuple[PlannedPod, ...]:
    """The pods policies apply to: those with an address of the pod network."""
    return tuple(p for p in plan.pods if not p.host_network)


def namespace_labels(plan: Plan) -> dict[str, Mapping[str, str]]:
    return {n.name: n.labels for n in plan.namespace_objects}


def selects(policy: NetworkPolicy, pod: PlannedPod) -> bool:
    """Whether `policy` applies to `pod`: its namespace, and its podSelector (empty: every pod)."""
    return pod.namespace == policy.namespace and not pod.host_network and policy.pod_selector.matches(pod.labels)


def isolating(policies: Iterable[NetworkPolicy], pod: PlannedPod, direction: str) -> list[NetworkPolicy]:
    """The policies that isolate `pod` in `direction` (INGRESS or EGRESS): those selecting it
    with that direction among their policyTypes, by name."""
    return sorted((p for p in policies if direction in p.policy_types and selects(p, pod)), key=lambda p: p.key)


def selected_pods(plan: Plan, policy: NetworkPolicy) -> list[PlannedPod]:
    return sorted((p for p in policy_pods(plan) if selects(policy, p)), key=lambda p: p.key)


def peer_matches(peer: PolicyPeer, policy_namespace: str, ip: IPv4Address, pod: PlannedPod | None,
                 ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
    """Whether the other end of a connection (address `ip`; `pod`, or None for an address that is
    no policy pod's) is `peer` of a rule of a policy in `policy_namespace`. A podSelector alone
    picks pods of the policy's namespace; a namespaceSelector alone every pod of the namespaces it
    matches; both together the pods matching the first in the namespaces matching the second.
    ipBlock matches addresses, pods' included, outside its except ranges."""
    if peer.ip_block is not None:
        block = peer.ip_block
        return _inside(ip, block.cidr) and not any(_inside(ip, e) for e in block.except_)
    if pod is None or pod.host_network:
        return False
    if peer.namespace_selector is None:
        in_namespace = pod.namespace == policy_namespace
    else:
        in_namespace = peer.namespace_selector.matches(ns_labels.get(pod.namespace, {}))
    return in_namespace and (peer.pod_selector is None or peer.pod_selector.matches(pod.labels))


def peer_pods(plan: Plan, peer: PolicyPeer, policy_namespace: str,
              ns_labels: Mapping[str, Mapping[str, str]]) -> list[PlannedPod]:
    """The pods a podSelector/namespaceSelector peer admits (none for an ipBlock peer: it admits
    addresses, see peer_matches)."""
    if peer.ip_block is not None:
        return []
    return [p for p in policy_pods(plan) if peer_matches(peer, policy_namespace, p.ip, p, ns_labels)]


def _inside(ip: IPv4Address, cidr: str) -> bool:
    net = ip_network(cidr, strict=False)
    return net.version == ip.version and ip in net


def named_port(pod: PlannedPod | None, name: str, protocol: str) -> int | None:
    """The number of `pod`'s container port `name` with `protocol` (the first container's to
    declare it); None when it has none."""
    for c in (pod.containers + pod.init_containers) if pod else ():
        for p in c.ports:
            if p.name == name and p.protocol == protocol:
                return p.container_port
    return None


def port_matches(entry: PolicyPort, protocol: str, port: int, destination: PlannedPod | None) -> bool:
    """Whether a connection to `port`/`protocol` of `destination` (the pod it reaches, None for
    an address) is within a rule's ports entry: a number (to endPort when given), a name resolved
    on the destination pod, or no port (every port of the protocol)."""
    if entry.protocol != protocol:
        return False
    if entry.port is None:
        return True
    if isinstance(entry.port, str):
        return named_port(destination, entry.port, protocol) == port
    return entry.port <= port <= (entry.end_port or entry.port)

