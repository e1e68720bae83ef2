"""l2: every pod of the cluster in one broadcast domain, the article's advice.

Each node's cbr0 gets a VXLAN port, `vxlan0` (VNI 1, UDP 4789, the IANA port, so that a capture
tells it from flannel's 8472; local = the node's underlay address, over eth0, learning on, MTU
= the underlay's - 50), and the segment is joined by head-end replication: one all-zeros FDB
entry per remote node, so a broadcast (an ARP request) is copied to every other node, and the
remote pods' MACs are learnt from the frames that come back, as a switch learns them.

All pods share the podSubnet as one subnet (cbr0 and each pod's eth0 carry the podSubnet's
prefix) while each node still hands out addresses from its own podCIDR, and its gateway stays
its own cbr0 address. A pod on node1 resolves a pod on node2 by ARP, through the tunnel; there
are no routes between nodes for pods, only the subnet's connected route on cbr0.
"""
from __future__ import annotations

from typing import Sequence

from ...model.objects import ClusterConfig, PlannedNode
from .base import UNDERLAY_MTU, Fdb, NodeNetwork, Vxlan
from .vxlan import ENCAP_OVERHEAD, vtep_mac

NAME = "l2"
DEVICE = "vxlan0"
VNI = 1
PORT = 4789
MTU = UNDERLAY_MTU - ENCAP_OVERHEAD
FLOOD = "00:00:00:00:00:00"  # the FDB's default entry: where frames to unknown MACs (and broadcasts) go


def node_network(cluster: ClusterConfig, nodes: Sequence[PlannedNode], node: PlannedNode) -> NodeNetwork:
    device = Vxlan(DEVICE, VNI, PORT, local=node.ip, mac=vtep_mac(node, prefix=0x12), learning=True, mtu=MTU,
                   master="cbr0")
    return NodeNetwork(devices=(device,),
                       fdb=tuple(Fdb(FLOOD, o.ip, DEVICE) for o in nodes if o.name != node.name),
                       mtu=MTU, pod_network=cluster.pod_subnet)
