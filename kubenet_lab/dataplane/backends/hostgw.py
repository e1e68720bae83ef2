"""host-gw (flannel's pkg/backend/hostgw): every other node's podCIDR via that node's address
on the underlay. No encapsulation, so the full MTU; it needs the nodes on one L2 segment, which
the lab's underlay bridge is."""
from __future__ import annotations

from typing import Sequence

from ...model.objects import ClusterConfig, PlannedNode
from .base import NodeNetwork, Route

NAME = "host-gw"


def node_network(cluster: ClusterConfig, nodes: Sequence[PlannedNode], node: PlannedNode) -> NodeNetwork:
    return NodeNetwork(routes=tuple(Route(o.pod_cidr, o.ip) for o in nodes if o.name != node.name))
