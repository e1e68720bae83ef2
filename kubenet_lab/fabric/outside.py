"""The world outside the cluster, on the underlay: two external clients and a load balancer.

  <lab>.external: eth0 = external client IP; `<externalIP>/32 via <first node>` (as an upstream
                  router would send a service's external IPs to a node); no default route.
  <lab>.external2: a second client, made as the first, at its own address (ipam.second_client_ip),
                  so that one source can be in a Service's loadBalancerSourceRanges and another not.
  <lab>.lb:       eth0 = balancer IP plus every LoadBalancer ingress IP as a /32 (so it answers
                  ARP for them); forwards, sends no ICMP redirects; rules from proxy/lb.py.
                  While a LoadBalancer without NodePorts (allocateLoadBalancerNodePorts: false)
                  has an address, `<podCIDR> via <node>` for every node, as a cloud network
                  routes pod addresses, so that the balancer can send to the pods themselves;
                  so too while an ipMode Proxy address exists, to answer the pods asking for it.
  every node:     `<external client IP>/32 via <balancer IP>`, for both clients (planned with the node's other
                  routes, see plan/cluster.py), so that replies to the client go back through
                  the balancer that DNATed the request.

All three namespaces hang off the underlay bridge exactly as nodes do: veth made from the underlay
side with its peer created directly inside them, the ownership mark on both ends and on `lo`,
so `down` finds and removes them with the rest of the lab. Nothing here touches the root
namespace: sysctls are written by a thread inside the namespace they belong to.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from ..errors import LabError
from ..plan import ipam, naming
from ..model.objects import Plan
from ..proxy.lb import direct
from ..kernel import netns, rtnl
from .netlink import ensure_addresses, ensure_routes, ensure_uplink, link_index, socket_in, write_sysctls
from ..kernel.nsenter import in_netns

ETH0 = "eth0"
EXTERNAL, LB, EXTERNAL2 = "external", "lb", "external2"
LB_SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/ipv4/conf/all/send_redirects": "0",
    "net/ipv4/conf/default/send_redirects": "0",
    "net/ipv4/conf/eth0/send_redirects": "0",
}


@dataclass(frozen=True)
class Host:
    """One namespace outside the cluster, as the plan implies it."""

    role: str  # EXTERNAL, LB or EXTERNAL2
    netns: str
    underlay_veth: str
    addresses: frozenset[IPv4Interface]
    routes: dict[IPv4Network, IPv4Address]
    sysctls: dict[str, str]


def namespaces(lab: str) -> tuple[str, str, str]:
    return naming.external_netns(lab), naming.lb_netns(lab), naming.external2_netns(lab)


def hosts(plan: Plan) -> tuple[Host, Host, Host]:
    """(the external client, the balancer, the second external client)."""
    subnet = plan.cluster.node_subnet
    client = IPv4Interface((ipam.external_client_ip(subnet), subnet.prefixlen))
    second = IPv4Interface((ipam.second_client_ip(subnet), subnet.prefixlen))
    external_ips = {ip for svc in plan.services for ip in svc.external_ips}
    first_node = plan.nodes[0].ip
    balancer = IPv4Interface((ipam.load_balancer_ip(subnet), subnet.prefixlen))
    ingress = {IPv4Interface((ip, 32)) for svc in plan.services if svc.type == "LoadBalancer"
               for ip in svc.load_balancer_ips}
    # routes to the pods when the balancer sends to them, or answers them (a pod asking for an
    # ipMode Proxy address is a client of the balancer's)
    to_pods = {n.pod_cidr: n.ip for n in plan.nodes} if any(
        (direct(svc) and svc.load_balancer_ips) or svc.proxied_lb_ips for svc in plan.services) else {}
    # A balancer address outside the node network (a manifest's status.loadBalancer.ingress):
    # the client reaches it through the balancer, as a cloud routes it.
    beyond = {IPv4Network((i.ip, 32)): balancer.ip for i in ingress if i.ip not in subnet}
    lab = plan.lab
    client_routes = {**{IPv4Network((ip, 32)): first_node for ip in sorted(external_ips)}, **beyond}
    return (
        Host(EXTERNAL, naming.external_netns(lab), naming.outside_underlay_veth(lab, EXTERNAL), frozenset({client}),
             client_routes, {}),
        Host(LB, naming.lb_netns(lab), naming.outside_underlay_veth(lab, LB), frozenset({balancer, *ingress}),
             to_pods, LB_SYSCTLS),
        Host(EXTERNAL2, naming.external2_netns(lab), naming.outside_underlay_veth(lab, EXTERNAL2),
             frozenset({second}), dict(client_routes), {}),
    )


def _ensure_host(under: rtnl.Rtnl, bridge: int, host: Host, mark: str) -> None:
    netns.ensure(host.netns)
    with socket_in(host.netns) as nl:
        nl.batch([rtnl.link_set(1, alias=mark)])  # owned from the start: `down` finds it even half-made
        with in_netns(host.netns):
            # `default` first, so an eth0 made below starts with it
            write_sysctls({k: v for k, v in host.sysctls.items() if "/eth0/" not in k})
        eth0 = ensure_uplink(under, bridge, nl, host.netns, host.underlay_veth, mark)
        with in_netns(host.netns):
            write_sysctls(host.sysctls)
        ensure_addresses(nl, eth0, host.addresses)
        ensure_routes(nl, eth0, host.routes)


def ensure_outside(plan: Plan) -> None:
    """The external clients and the load balancer; idempotent, and the balancer's addresses and
    the clients' routes follow the current services. (The nodes' route back to the client is
    planned with their other routes.)"""
    mark = naming.mark(plan.lab)
    netns.prepare_run_dir()
    with socket_in(plan.underlay_netns) as under:
        bridge = link_index(under, plan.underlay_bridge)
        if bridge is None:
            raise LabError(f"{plan.underlay_netns} has no {plan.underlay_bridge} (ensure_base first)")
        for host in hosts(plan):
            try:
                _ensure_host(under, bridge, host, mark)
            except OSError as e:
                raise LabError(f"setting up the {host.role} namespace {host.netns}: {e.strerror or e}") from e
