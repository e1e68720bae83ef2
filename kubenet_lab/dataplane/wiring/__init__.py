"""How each pod is wired into its node (networking.wiring): the lab's own veths over netlink, or
the reference CNI plugins. Both give a pod the same interface (base.PodInterface)."""
from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from ...model.objects import Plan, PlannedNode, PlannedPod
from .. import backends
from .base import POD_IFNAME, PodInterface

NETLINK, CNI = "netlink", "cni"
WIRINGS = (NETLINK, CNI)

__all__ = ["CNI", "NETLINK", "POD_IFNAME", "PodInterface", "WIRINGS", "node_interface", "pod_interface"]


def pod_interface(plan: Plan, node: PlannedNode, pod: PlannedPod) -> PodInterface:
    """What `pod`'s eth0 must be on `node` under the plan's backend."""
    return _interface(plan, node, pod.ip)


def node_interface(plan: Plan, node: PlannedNode) -> PodInterface:
    """The same for the node's side of its pods' subnet: cbr0's address, the gateway."""
    return _interface(plan, node, node.gateway)


def _interface(plan: Plan, node: PlannedNode, ip: IPv4Address) -> PodInterface:
    network = backends.node_network(plan, node)
    prefix = (network.pod_network or node.pod_cidr).prefixlen
    return PodInterface(IPv4Interface((ip, prefix)), node.gateway, network.mtu)
