"""The world outside the cluster, on the underlay: an external client and a load balancer.

  <lab>.external: eth0 = external client IP; `<externalIP>/32 via <first node>` (as an upstream
                  router would send a service's external IPs to a node); no default route.
  <lab>.lb:       eth0 = balancer IP plus every LoadBalancer ingress IP as a /32 (so it answers
                  ARP for them); forwards, sends no ICMP redirects; rules from render/lb.py.
  every node:     `<external client IP>/32 via <balancer IP>`, so that replies to the client go
                  back through the balancer that DNATed the request (else the client would get
                  them straight from the node and drop them), and no ICMP redirect accepted,
                  so that the balancer's redirects cannot short-cut that route.

Both namespaces hang off the underlay bridge exactly as nodes do: veth made from the underlay
side with its peer created directly inside them, the ownership mark on both ends and on `lo`,
so `down` finds and removes them with the rest of the lab. Nothing here touches the root
namespace: sysctls are written by a thread inside the namespace they belong to.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Iterator

from kubenet_lab.errors import LabError
from kubenet_lab.plan import ipam, naming
from kubenet_lab.plan.model import Plan
from kubenet_lab.system import netns, rtnl
from kubenet_lab.system.nsenter import in_netns, netns_path

ETH0 = "eth0"
EXTERNAL, LB = "external", "lb"
LB_SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/ipv4/conf/all/send_redirects": "0",
    "net/ipv4/conf/default/send_redirects": "0",
    "net/ipv4/conf/eth0/send_redirects": "0",
}
NODE_SYSCTLS = {
    "net/ipv4/conf/all/accept_redirects": "0",
    "net/ipv4/conf/default/accept_redirects": "0",
    "net/ipv4/conf/eth0/accept_redirects": "0",
}


@dataclass(frozen=True)
class Host:
    """One namespace outside the cluster, as the plan implies it."""

    role: str  # EXTERNAL or LB
    netns: str
    underlay_veth: str
    addresses: frozenset[IPv4Interface]
    routes: dict[IPv4Network, IPv4Address]
    sysctls: dict[str, str]


def namespaces(lab: str) -> tuple[str, str]:
    return naming.external_netns(lab), naming.lb_netns(lab)


def underlay_veth(lab: str, role: str) -> str:
    """The underlay side of the host's eth0: `veth` + 8 hex characters, like a node's, hashed
    from a different input so that no node name can collide with it."""
    return "veth" + hashlib.sha256(f"{lab}\0outside\0{role}".encode()).hexdigest()[:8]


def hosts(plan: Plan) -> tuple[Host, Host]:
    subnet = plan.cluster.node_subnet
    client = IPv4Interface((ipam.external_client_ip(subnet), subnet.prefixlen))
    external_ips = {ip for svc in plan.services for ip in svc.external_ips}
    first_node = plan.nodes[0].ip
    balancer = IPv4Interface((ipam.load_balancer_ip(subnet), subnet.prefixlen))
    ingress = {IPv4Interface((ip, 32)) for svc in plan.services if svc.type == "LoadBalancer"
               for ip in svc.load_balancer_ips}
    return (
        Host(EXTERNAL, naming.external_netns(plan.lab), underlay_veth(plan.lab, EXTERNAL), frozenset({client}),
             {IPv4Network((ip, 32)): first_node for ip in sorted(external_ips)}, {}),
        Host(LB, naming.lb_netns(plan.lab), underlay_veth(plan.lab, LB), frozenset({balancer, *ingress}),
             {}, LB_SYSCTLS),
    )


# --- small netlink steps (over rtnl's public requests) -------------------------------------------


@contextlib.contextmanager
def _socket(name: str) -> Iterator[rtnl.Rtnl]:
    with in_netns(name):
        nl = rtnl.Rtnl()
    with nl:
        yield nl


def _index(nl: rtnl.Rtnl, ifname: str) -> int | None:
    found = nl.link(name=ifname)
    return found["index"] if found else None


def _write_sysctls(values: dict[str, str]) -> None:
    """Only from a thread inside the target namespace: /proc/sys/net is the opener's."""
    for key, value in values.items():
        path = f"/proc/sys/{key}"
        with open(path) as f:
            if f.read().strip() == value:
                continue
        with open(path, "w") as f:
            f.write(value)


def _ensure_uplink(under: rtnl.Rtnl, bridge: int, nl: rtnl.Rtnl, host: Host, mark: str) -> int:
    """The veth pair to the underlay bridge (a half pair is made again); returns eth0's index."""
    uplink, eth0 = _index(under, host.underlay_veth), _index(nl, ETH0)
    if (uplink is None) != (eth0 is None):
        if uplink is not None:
            under.batch([rtnl.link_del(uplink)])
        else:
            nl.batch([rtnl.link_del(eth0)])
        uplink = eth0 = None
    if uplink is None:
        fd = os.open(netns_path(host.netns), os.O_RDONLY | os.O_CLOEXEC)
        try:
            under.batch([rtnl.veth_add(host.underlay_veth, ETH0, fd, master=bridge)])
        finally:
            os.close(fd)
        uplink, eth0 = _index(under, host.underlay_veth), _index(nl, ETH0)
    under.batch([rtnl.link_set(uplink, master=bridge, alias=mark)])
    nl.batch([rtnl.link_set(eth0, alias=mark)])
    return eth0


def _ensure_addresses(nl: rtnl.Rtnl, index: int, wanted: frozenset[IPv4Interface]) -> None:
    have = set()
    for msg in nl.query(rtnl.addr_dump()):
        found, address, _label = rtnl.addr_info(msg)
        if found == index and address is not None:
            have.add(address)
    nl.batch([rtnl.addr_del(index, i.ip, i.network.prefixlen) for i in have - wanted]
             + [rtnl.addr_add(index, i.ip, i.network.prefixlen) for i in wanted - have])


def _ensure_routes(nl: rtnl.Rtnl, oif: int, wanted: dict[IPv4Network, IPv4Address]) -> None:
    """Gateway routes of the main table are exactly `wanted` (connected ones are the kernel's)."""
    have, stale = {}, []
    for route in map(rtnl.route_info, nl.query(rtnl.route_dump())):
        if route.table != rtnl.MAIN_TABLE or route.gateway is None:
            continue
        if route.dst in wanted and route.oif == oif:
            have[route.dst] = route.gateway
        else:
            stale.append(rtnl.route_del(route.dst, route.gateway))
    nl.batch(stale + [rtnl.route_add(dst, via, oif, replace=True)
                      for dst, via in wanted.items() if have.get(dst) != via])


def _ensure_host(under: rtnl.Rtnl, bridge: int, host: Host, mark: str) -> None:
    netns.ensure(host.netns)
    with in_netns(host.netns):
        nl = rtnl.Rtnl()
    with nl:
        nl.batch([rtnl.link_set(1, alias=mark)])  # owned from the start: `down` finds it even half-made
        with in_netns(host.netns):
            # `default` first, so an eth0 made below starts with it
            _write_sysctls({k: v for k, v in host.sysctls.items() if "/eth0/" not in k})
        eth0 = _ensure_uplink(under, bridge, nl, host, mark)
        with in_netns(host.netns):
            _write_sysctls(host.sysctls)
        _ensure_addresses(nl, eth0, host.addresses)
        _ensure_routes(nl, eth0, host.routes)


def _ensure_return_path(node_netns: str, client: IPv4Address, balancer: IPv4Address) -> None:
    with in_netns(node_netns):
        _write_sysctls(NODE_SYSCTLS)
    with _socket(node_netns) as nl:
        eth0 = _index(nl, ETH0)
        if eth0 is None:
            raise LabError(f"{node_netns} has no {ETH0} (ensure_nodes first)")
        nl.batch([rtnl.route_add(IPv4Network((client, 32)), balancer, eth0, replace=True)])


def ensure_outside(plan: Plan) -> None:
    """The external client, the load balancer and the nodes' return path; idempotent, and the
    balancer's addresses and the client's routes follow the current services."""
    mark = naming.mark(plan.lab)
    netns.prepare_run_dir()
    with _socket(plan.underlay_netns) as under:
        bridge = _index(under, plan.underlay_bridge)
        if bridge is None:
            raise LabError(f"{plan.underlay_netns} has no {plan.underlay_bridge} (ensure_base first)")
        for host in hosts(plan):
            try:
                _ensure_host(under, bridge, host, mark)
            except OSError as e:
                raise LabError(f"setting up the {host.role} namespace {host.netns}: {e.strerror or e}") from e
    subnet = plan.cluster.node_subnet
    client, balancer = ipam.external_client_ip(subnet), ipam.load_balancer_ip(subnet)
    for node in plan.nodes:
        try:
            _ensure_return_path(node.netns, client, balancer)
        except OSError as e:
            raise LabError(f"routing node {node.name} back to the external client: {e.strerror or e}") from e
