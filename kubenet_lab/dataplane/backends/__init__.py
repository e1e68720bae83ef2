"""How nodes reach each other's pods: one small module per backend behind one interface
(base.py), chosen by the Cluster config's networking.backend."""
from __future__ import annotations

from ipaddress import IPv4Network

from ...model.objects import Plan, PlannedNode
from . import hostgw, l2, vxlan
from .base import Backend, NodeNetwork, Route

BACKENDS: dict[str, Backend] = {hostgw.NAME: hostgw, vxlan.NAME: vxlan, l2.NAME: l2}
# Every device a backend makes in a node: what a switch of backend may leave behind.
DEVICES = (vxlan.DEVICE, l2.DEVICE)


def node_network(plan: Plan, node: PlannedNode) -> NodeNetwork:
    """What `node`'s namespace holds for the pod network under the plan's backend."""
    return BACKENDS[plan.cluster.backend].node_network(plan.cluster, plan.nodes, node)


def node_annotations(plan: Plan, node: PlannedNode) -> dict[str, str]:
    """The annotations the backend's agent writes on the Node: flanneld's with vxlan (where it
    keeps the VTEP MAC); none for host-gw and l2, which run no agent of their own."""
    return vxlan.node_annotations(node) if plan.cluster.backend == vxlan.NAME else {}


def node_routes(plan: Plan, node: PlannedNode) -> tuple[Route, ...]:
    """Every route the node holds: the backend's, then those via the underlay's router."""
    return node_network(plan, node).routes + tuple(Route(dst, via) for dst, via in node.routes)


def pods_rewired(previous: Plan | None, plan: Plan) -> bool:
    """Whether existing pods must be made anew: their wiring (the MTU of their veth, the prefix
    of their address) follows the backend, and, as with a CNI plugin's new MTU, only a pod
    created after the change gets it."""
    if previous is None or previous.cluster.backend == plan.cluster.backend:
        return False
    kept = {n.name for n in plan.nodes}
    return any(_wiring(previous, n) != _wiring(plan, plan.node(n.name)) for n in previous.nodes if n.name in kept)


def _wiring(plan: Plan, node: PlannedNode) -> tuple[int, IPv4Network | None]:
    network = node_network(plan, node)
    return network.mtu, network.pod_network


def switch_summary(previous: Plan, plan: Plan) -> str:
    """What a backend switch on a running lab rebuilds, in a sentence."""
    old, new = previous.cluster.backend, plan.cluster.backend
    if not plan.nodes:
        return f"networking.backend changed from {old} to {new}"
    before, after = node_network(previous, previous.nodes[0]), node_network(plan, plan.nodes[0])
    gone = sorted({d.name for d in before.devices} - {d.name for d in after.devices})
    made = sorted({d.name for d in after.devices} - {d.name for d in before.devices})
    parts = [f"{', '.join(gone)} removed" if gone else "", f"{', '.join(made)} made" if made else ""]
    devices = " and ".join(p for p in parts if p)
    mtu = f"MTU {before.mtu} -> {after.mtu}" if before.mtu != after.mtu else f"MTU {after.mtu}"
    return (f"networking.backend changed from {old} to {new}: every node's pod network rebuilt"
            + (f" ({devices})" if devices else "") + f", every pod made anew on it ({mtu}"
            + (f", one subnet {after.pod_network}" if after.pod_network else
               ", each node's podCIDR its own subnet" if before.pod_network else "") + ")")
