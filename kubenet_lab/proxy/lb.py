"""The external load balancer's ruleset, as a cloud provider's L4 balancer would forward.

For every port of every LoadBalancer service, LB-IP:port is DNATed to one of the eligible nodes'
IP:nodePort, chosen by `numgen random`. Eligible are all nodes for externalTrafficPolicy Cluster
(the node's kube-proxy forwards again if it has no endpoint), and for Local the nodes that passed
the balancer's last health check of the Service, as a cloud balancer chooses them: an HTTP GET
of the node's healthCheckNodePort, which kube-proxy answers 200 while the node has a local ready
endpoint of the Service and 503 without one (`health_checks` says what to probe, `passes` reads
an answer; fabric/lbhealth.py probes, the supervisor probes again every second and has this
table made anew when a result changes). A node not probed yet is not chosen. There is no SNAT,
so with Local the backend sees the external client's own address; the nodes route the replies
back through the balancer, which undoes the DNAT.

A Service with allocateLoadBalancerNodePorts false has no NodePorts to send to: the balancer
sends its traffic straight to the ready endpoints (pod IP:target port), as the cloud balancers
that target pods do (the reason that field exists), through the routes to the nodes' pod CIDRs
it then has (fabric/outside.py). The backend sees the client's own address, whatever the
externalTrafficPolicy; the reply goes back through the balancer as above.

loadBalancerSourceRanges are enforced by the balancer, as a cloud's balancer (or its security
group) enforces them: a packet to the LB IP from outside the ranges is dropped before it is
forwarded. (kube-proxy's own KUBE-FW rules in the nodes only see the LB IP as destination from
the cluster's pods and nodes: this balancer forwards to NodePorts.)

An address whose status.loadBalancer.ingress[].ipMode is Proxy is proxied, as such balancers do
(a cloud's proxy in front of the nodes, kube-proxy leaving the address alone): the same choice of
node and NodePort, and the source masqueraded to the balancer's own address, so the backend sees
the balancer, and a pod that asks for the address is answered through the balancer too.

A port with no eligible node (or ready endpoint) is rejected by the balancer itself. The
transaction adds, deletes and re-adds the table, so the previous ruleset goes in the same atomic
step.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Mapping

from kubenet_lab.model.objects import Plan, PlannedService
from kubenet_lab.proxy import names
from kubenet_lab.proxy.healthcheck import has_health_check

# What the balancer's health checks found: "ns/name" -> the names of the nodes that passed.
Passing = Mapping[str, frozenset[str]]
HEALTH_CHECK_PATH = "/healthz"  # the path cloud providers' balancers ask kube-proxy for

TABLE = "ip kubenet-lb"
COMMENT = "kubenet-lab external load balancer"


@dataclass(frozen=True)
class Forward:
    """One LB-IP:port/proto and where the balancer may send it (empty: nowhere, reject)."""

    spn: str  # "ns/name" or "ns/name:port", as kube-proxy names a service port
    ip: IPv4Address
    proto: str  # lower case, as nft writes it
    port: int
    node_port: int | None  # None: straight to the endpoints
    nodes: tuple[IPv4Address, ...]
    endpoints: tuple[tuple[IPv4Address, int], ...] = ()  # without a node port: the ready ones
    source_ranges: tuple[str, ...] = ()  # loadBalancerSourceRanges: only these sources get through
    proxied: bool = False  # ipMode Proxy: the source becomes the balancer's address

    @property
    def targets(self) -> tuple[tuple[IPv4Address, int], ...]:
        if self.node_port is None:
            return self.endpoints
        return tuple((node, self.node_port) for node in self.nodes)


def direct(svc: PlannedService) -> bool:
    """Whether the balancer sends a LoadBalancer's traffic straight to its endpoints."""
    return svc.type == "LoadBalancer" and not svc.allocate_load_balancer_node_ports


@dataclass(frozen=True)
class HealthCheck:
    """One probe the balancer makes: a Service's healthCheckNodePort on one node."""

    service: str  # "ns/name"
    node: str
    ip: IPv4Address
    port: int

    def request(self) -> bytes:
        return (f"GET {HEALTH_CHECK_PATH} HTTP/1.1\r\nHost: {self.ip}:{self.port}\r\n"
                f"User-Agent: kubenet-lab-lb/1.0\r\nConnection: close\r\n\r\n").encode()


def health_checks(plan: Plan) -> tuple[HealthCheck, ...]:
    """What the balancer probes: every node, for every LoadBalancer it sends to NodePorts whose
    nodes it chooses by their health check (externalTrafficPolicy Local)."""
    return tuple(HealthCheck(svc.key, n.name, n.ip, int(svc.health_check_node_port or 0))
                 for svc in plan.services
                 if has_health_check(svc) and svc.load_balancer_ips and not direct(svc)
                 for n in plan.nodes)


def passes(answer: bytes) -> bool:
    """Whether an HTTP answer passes a health check: status 200, as cloud balancers take it."""
    line = answer.split(b"\r\n", 1)[0].split()
    return len(line) >= 2 and line[0].startswith(b"HTTP/1.") and line[1] == b"200"


def passing(results: Mapping[HealthCheck, bool]) -> dict[str, frozenset[str]]:
    """The health checks' results as the nodes that passed, per Service (every probed Service
    listed, with no node when none passed)."""
    out: dict[str, set[str]] = {}
    for check, ok in results.items():
        out.setdefault(check.service, set())
        if ok:
            out[check.service].add(check.node)
    return {k: frozenset(v) for k, v in sorted(out.items())}


def eligible_nodes(plan: Plan, svc: PlannedService, healthy: Passing) -> tuple[IPv4Address, ...]:
    """The node IPs the balancer may choose for a Service, in the plan's node order: every node
    for externalTrafficPolicy Cluster, the nodes that passed its health check for Local."""
    if svc.external_traffic_policy != "Local":
        return tuple(n.ip for n in plan.nodes)
    up = healthy.get(svc.key, frozenset())
    return tuple(n.ip for n in plan.nodes if n.name in up)


def forwards(plan: Plan, healthy: Passing) -> list[Forward]:
    out = []
    for svc in plan.services:
        if svc.type != "LoadBalancer":
            continue
        ranges = tuple(str(r) for r in svc.ipv4_source_ranges)
        for port in svc.ports:
            spn = names.port_name(svc.namespace, svc.name, port.name)
            if direct(svc):
                eps = tuple((ep.ip, ep.port) for ep in port.endpoints if ep.ready)
                out += [Forward(spn, ip, port.protocol.lower(), port.port, None, (), eps, ranges,
                                ip in svc.proxied_lb_ips) for ip in svc.load_balancer_ips]
                continue
            if port.node_port is None:
                continue
            nodes = eligible_nodes(plan, svc, healthy)
            out += [Forward(spn, ip, port.protocol.lower(), port.port, port.node_port, nodes, (), ranges,
                            ip in svc.proxied_lb_ips) for ip in svc.load_balancer_ips]
    return out


def _match(f: Forward) -> str:
    return f"ip daddr {f.ip} {f.proto} dport {f.port}"


def _dnat(f: Forward) -> str:
    targets = ", ".join(f"{i} : {ip} . {port}" for i, (ip, port) in enumerate(f.targets))
    return (f"\t\t{_match(f)} dnat ip to numgen random mod {len(f.targets)} map {{ {targets} }} "
            f'comment "{f.spn}"')


def _reject(f: Forward) -> str:
    how = "reject with tcp reset" if f.proto == "tcp" else "reject"
    what = "eligible node" if f.node_port is not None else "ready endpoint"
    return f'\t\t{_match(f)} {how} comment "{f.spn} has no {what}"'


def _firewall(f: Forward) -> str:
    return (f"\t\t{_match(f)} ip saddr != {{ {', '.join(f.source_ranges)} }} drop "
            f'comment "{f.spn} loadBalancerSourceRanges"')


def render_lb(plan: Plan, healthy: Passing) -> str:
    """The whole table as one `nft -f` transaction, with the nodes that passed the health checks."""
    fs = forwards(plan, healthy)
    guarded = [f for f in fs if f.source_ranges]
    proxied = sorted({f.ip for f in fs if f.proxied and f.targets})
    return "\n".join([
        f"add table {TABLE}",
        f"delete table {TABLE}",
        f"table {TABLE} {{",
        f'\tcomment "{COMMENT}"',
        *(["\tchain firewall {", "\t\ttype filter hook prerouting priority dstnat - 10; policy accept;",
           *(_firewall(f) for f in guarded), "\t}"] if guarded else []),
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        *(_dnat(f) for f in fs if f.targets),
        "\t}",
        *(["\tchain postrouting {", "\t\ttype nat hook postrouting priority srcnat; policy accept;",
           f"\t\tct original ip daddr {{ {', '.join(map(str, proxied))} }} masquerade "
           f'comment "ipMode Proxy: the balancer proxies"', "\t}"] if proxied else []),
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        *(_reject(f) for f in fs if not f.targets),
        "\t}",
        "}",
        "",
    ])
