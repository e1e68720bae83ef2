"""How each pod is wired into its node (networking.wiring): the lab's own veths over netlink, or
the reference CNI plugins. Both give a pod the same interface (base.PodInterface)."""
from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from ...model.objects import ClusterConfig, Plan, PlannedNode, PlannedPod
from .. import backends
from .base import POD_IFNAME, PodInterface

NETLINK, CNI = "netlink", "cni"
WIRINGS = (NETLINK, CNI)

__all__ = ["CNI", "NETLINK", "POD_IFNAME", "PodInterface", "WIRINGS", "bridge_mac", "node_interface", "pod_interface",
           "pods_rewired", "switch_summary", "wiring_changed"]


def pod_interface(plan: Plan, node: PlannedNode, pod: PlannedPod) -> PodInterface:
    """What `pod`'s eth0 must be on `node` under the plan's backend."""
    return _interface(plan, node, pod.ip)


def node_interface(plan: Plan, node: PlannedNode) -> PodInterface:
    """The same for the node's side of its pods' subnet: cbr0's address, the gateway."""
    return _interface(plan, node, node.gateway)


def bridge_mac(node: PlannedNode) -> str:
    """The MAC the CNI wiring sets on the node's cbr0 (locally administered, unicast, from the
    node's underlay address, as the backends derive their VTEP MACs): the bridge plugin's result
    records the bridge's MAC and its CHECK compares it, while a bridge whose MAC the kernel chose
    takes the lowest of its ports' as pods come and go, and all zeros once the last one left."""
    return ":".join(f"{b:02x}" for b in (0x16, 0xFB, *node.ip.packed))


def _interface(plan: Plan, node: PlannedNode, ip: IPv4Address) -> PodInterface:
    network = backends.node_network(plan, node)
    prefix = (network.pod_network or node.pod_cidr).prefixlen
    return PodInterface(IPv4Interface((ip, prefix)), node.gateway, network.mtu)


def wiring_changed(previous: Plan | None, plan: Plan) -> bool:
    """networking.wiring (or the user's conflist) changed on a running lab."""
    return previous is not None and (previous.cluster.wiring, previous.cluster.cni_config) != (
        plan.cluster.wiring, plan.cluster.cni_config)


def pods_rewired(previous: Plan | None, plan: Plan) -> bool:
    """Whether existing pods must be made anew: a pod is wired once, when it is made, so a new
    wiring (or conflist), like a backend's new MTU or subnet, reaches only pods made after."""
    return backends.pods_rewired(previous, plan) or wiring_changed(previous, plan)


def switch_summary(previous: Plan, plan: Plan) -> str:
    """A wiring switch on a running lab, in a sentence."""
    def shown(cluster: ClusterConfig) -> str:
        return cluster.wiring + (f" ({cluster.cni_config})" if cluster.cni_config else "")
    return f"networking.wiring changed from {shown(previous.cluster)} to {shown(plan.cluster)}: every pod made anew"
