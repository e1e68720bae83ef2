"""vxlan, as flannel's pkg/backend/vxlan makes it (its "v2" design, no L2/L3-miss daemon):

- a VXLAN device `flannel.1` (VNI 1, UDP 8472, the kernel's VXLAN port and flannel's default,
  local = the node's underlay address, over eth0, nolearning, MTU = the underlay's - 50, the
  outer Ethernet, IP, UDP and VXLAN headers) holding its podCIDR's network address as a /32
  (so that no broadcast routes appear);
- for every other node: its podCIDR `via <that CIDR's network address> dev flannel.1 onlink`, a
  permanent neighbour entry (that network address -> the remote VTEP's MAC, so the kernel never
  ARPs across the tunnel) and a permanent FDB entry (the remote VTEP's MAC -> the remote node's
  underlay address, where the encapsulated frame goes);
- the pods get the smaller MTU (cbr0 and every eth0), as flannel's subnet.env gives the CNI
  plugin.

flannel picks a random VTEP MAC once and keeps it in the node's annotation
(flannel.alpha.coreos.com/backend-data) so it survives restarts; the lab's plan plays that role
by deriving it: locally administered, unicast, from the node's underlay address (unique within
the lab's underlay, the same every run).
"""
from __future__ import annotations

import json
from ipaddress import IPv4Network
from typing import Sequence

from ...model.objects import ClusterConfig, PlannedNode
from .base import UNDERLAY_MTU, Fdb, Neighbour, NodeNetwork, Route, Vxlan

NAME = "vxlan"
DEVICE = "flannel.1"
VNI = 1
PORT = 8472
ENCAP_OVERHEAD = 50  # flannel's encapOverhead: 14 (inner Ethernet) + 8 (VXLAN) + 8 (UDP) + 20 (IPv4)
MTU = UNDERLAY_MTU - ENCAP_OVERHEAD


def vtep_mac(node: PlannedNode, prefix: int = 0x0E) -> str:
    """The node's VTEP MAC: `prefix` (locally administered, unicast: bits 1 set and 0 clear)
    then a fixed byte and the node's four address bytes."""
    assert prefix & 0x03 == 0x02
    return ":".join(f"{b:02x}" for b in (prefix, 0xFA, *node.ip.packed))


def node_network(cluster: ClusterConfig, nodes: Sequence[PlannedNode], node: PlannedNode) -> NodeNetwork:
    others = [o for o in nodes if o.name != node.name]
    device = Vxlan(DEVICE, VNI, PORT, local=node.ip, mac=vtep_mac(node), learning=False, mtu=MTU,
                   address=IPv4Network((node.pod_cidr.network_address, 32)))
    return NodeNetwork(
        routes=tuple(Route(o.pod_cidr, o.pod_cidr.network_address, DEVICE, onlink=True) for o in others),
        devices=(device,),
        neighbours=tuple(Neighbour(o.pod_cidr.network_address, vtep_mac(o), DEVICE) for o in others),
        fdb=tuple(Fdb(vtep_mac(o), o.ip, DEVICE) for o in others),
        mtu=MTU)


ANNOTATION_PREFIX = "flannel.alpha.coreos.com/"


def node_annotations(node: PlannedNode) -> dict[str, str]:
    """What flanneld writes on its Node (pkg/subnet/kube): the lease's backend type, its data
    (vxlanLeaseAttrs as Go's json.Marshal writes it: the VNI and the VTEP MAC the other nodes'
    neighbour and FDB entries name), the public IP their FDB entries send to, and that the
    subnet is the Node's podCIDR (kube-subnet-manager)."""
    data = json.dumps({"VNI": VNI, "VtepMAC": vtep_mac(node)}, separators=(",", ":"))
    return {f"{ANNOTATION_PREFIX}backend-data": data, f"{ANNOTATION_PREFIX}backend-type": NAME,
            f"{ANNOTATION_PREFIX}kube-subnet-manager": "true", f"{ANNOTATION_PREFIX}public-ip": str(node.ip)}
