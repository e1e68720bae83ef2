"""Which endpoints a node's proxy uses for each service port, as kube-proxy decides it.

Both renderers need the same answer (kube-proxy's `CategorizeEndpoints` plus the traffic-policy
flags derived from it), so it is computed once here, per service port and per node.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from kubenet_lab.model.objects import Endpoint, Plan, PlannedService, PlannedServicePort
from kubenet_lab.proxy import names

EXTERNAL_TYPES = ("NodePort", "LoadBalancer")


@dataclass(frozen=True)
class PortView:
    """One service port as one node's proxy sees it."""

    svc: PlannedService
    port: PlannedServicePort
    proto: str  # lower case, as in chain names and rules
    spn: str  # "ns/name" or "ns/name:port": kube-proxy's ServicePortName.String()
    cluster_ip: str
    node_port: int | None
    external_ips: tuple[str, ...]
    lb_ips: tuple[str, ...]
    cluster_eps: tuple[Endpoint, ...]  # endpoints behind the cluster-policy chain
    local_eps: tuple[Endpoint, ...]  # endpoints on this node
    reachable: tuple[Endpoint, ...]  # endpoints that get an endpoint chain on this node
    has_endpoints: bool  # any usable endpoint anywhere (ready, else serving and terminating)
    internal_local: bool
    external_local: bool
    node: str = ""  # the node whose proxy sees it so

    @property
    def source_ranges(self) -> tuple[str, ...]:
        """loadBalancerSourceRanges as kube-proxy reads them (spaces trimmed, each the network
        of its CIDR) when they apply: a LoadBalancer with addresses and an endpoint to go to."""
        if not (self.lb_ips and self.has_endpoints):
            return ()
        return tuple(str(r) for r in self.svc.ipv4_source_ranges)

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.lb_ips)

    @property
    def uses_cluster(self) -> bool:
        return _policy(self.svc, self.externally_accessible)[2]

    @property
    def uses_local(self) -> bool:
        return _policy(self.svc, self.externally_accessible)[3]

    @property
    def has_internal(self) -> bool:
        """Cluster-IP traffic has somewhere to go (else: reject, or drop for a Local policy)."""
        return self.has_endpoints and (not self.internal_local or bool(self.local_eps))

    @property
    def has_external(self) -> bool:
        return self.has_endpoints and (not self.external_local or bool(self.local_eps))

    @property
    def uses_cluster_chain(self) -> bool:
        return bool(self.cluster_eps) and self.uses_cluster

    @property
    def uses_local_chain(self) -> bool:
        return bool(self.local_eps) and self.uses_local

    @property
    def uses_external_chain(self) -> bool:
        return self.has_endpoints and self.externally_accessible


def ep_string(ep: Endpoint) -> str:
    return f"{ep.ip}:{ep.port}"


def total_endpoints(plan: Plan) -> int:
    return sum(len(p.endpoints) for s in plan.services if not s.headless for p in s.ports)


def proxied_ports(plan: Plan) -> Iterator[tuple[PlannedService, PlannedServicePort]]:
    """The service ports a proxy writes rules for, in render order."""
    for svc in plan.services:
        if svc.headless or svc.type == "ExternalName":
            continue
        for port in svc.ports:
            yield svc, port


def port_views(plan: Plan, node: str) -> Iterator[PortView]:
    for svc, port in proxied_ports(plan):
        yield port_view(svc, port, node)


def _exposure(svc: PlannedService, port: PlannedServicePort) -> tuple[int | None, tuple[str, ...], tuple[str, ...]]:
    """(node port, external IPs, LB IPs) the port is reachable on from outside, as its type allows."""
    node_port = port.node_port if svc.type in EXTERNAL_TYPES else None
    ext_ips = tuple(str(ip) for ip in svc.external_ips)
    # an ipMode Proxy address is the balancer's alone: kube-proxy writes nothing for it
    lb_ips = tuple(str(ip) for ip in svc.load_balancer_ips if ip not in svc.proxied_lb_ips) \
        if svc.type == "LoadBalancer" else ()
    return node_port, ext_ips, lb_ips


def _policy(svc: PlannedService, accessible: bool) -> tuple[bool, bool, bool, bool]:
    """(internal_local, external_local, uses_cluster, uses_local). Even with
    externalTrafficPolicy Local, the cluster endpoints serve the short-circuit of pod and node
    traffic to external destinations."""
    internal_local = svc.internal_traffic_policy == "Local"
    external_local = accessible and svc.external_traffic_policy == "Local"
    return internal_local, external_local, not internal_local or accessible, internal_local or external_local


def node_dependent(svc: PlannedService, port: PlannedServicePort) -> bool:
    """Whether the view differs between nodes: only a Local policy makes which endpoints are on
    this node matter (`PortView.uses_local`); otherwise every node sees the same view."""
    return _policy(svc, any(_exposure(svc, port)))[3]


def port_view(svc: PlannedService, port: PlannedServicePort, node: str) -> PortView:
    """CategorizeEndpoints: the ready endpoints, or when there is none (in the cluster, and
    independently on this node for a Local policy) those that are serving and terminating (only
    a written EndpointSlice has them here: the lab's own endpoints never terminate)."""
    ready = tuple(ep for ep in port.endpoints if ep.ready)
    fallback = tuple(ep for ep in port.endpoints if not ep.ready and ep.serving and ep.terminating)
    local_ready = tuple(ep for ep in ready if ep.node == node)
    local = local_ready or tuple(ep for ep in fallback if ep.node == node)
    node_port, ext_ips, lb_ips = _exposure(svc, port)
    internal_local, external_local, uses_cluster, uses_local = _policy(svc, bool(node_port or ext_ips or lb_ips))
    cluster = (ready or fallback) if uses_cluster else ()
    if not uses_cluster:
        reachable = local
    elif uses_local and local and not local_ready and ready:  # ready ones elsewhere, terminating ones here
        reachable = tuple(sorted({*cluster, *local}, key=lambda ep: (int(ep.ip), ep.port)))
    else:
        reachable = cluster  # it holds every usable endpoint
    name = names.port_name(svc.namespace, svc.name, port.name)
    return PortView(
        svc=svc, port=port, proto=port.protocol.lower(), spn=name,
        cluster_ip=str(svc.cluster_ip), node_port=node_port, external_ips=ext_ips, lb_ips=lb_ips,
        cluster_eps=cluster, local_eps=local if uses_local else (), reachable=reachable,
        has_endpoints=bool(ready or fallback), internal_local=internal_local, external_local=external_local,
        node=node,
    )
