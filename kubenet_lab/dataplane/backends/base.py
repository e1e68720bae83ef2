"""What a backend computes for one node, as plain data (flannel's pkg/backend shape).

A backend is a module with `NAME` and `node_network(cluster, nodes, node) -> NodeNetwork`, a
pure function of the plan's nodes: the routes, devices, neighbours and FDB entries the node
namespace holds for the pod network, and the MTU its pods get. One shared reconciler
(fabric/backends.py) makes a node namespace hold exactly that; the backends never touch the
kernel, so each is tested without root.

Not here: the routes every node has whatever the backend (the service subnet and the external
clients via the underlay's router, PlannedNode.routes), the node's own address and its bridge.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol, Sequence

from ...model.objects import ClusterConfig, PlannedNode

# The lab's underlay is veths on a bridge: Ethernet's 1500.
UNDERLAY_MTU = 1500
UPLINK = "eth0"  # the node's interface on the underlay
NODE_BRIDGE = "cbr0"  # the node's pod bridge


@dataclass(frozen=True)
class Route:
    """`dst via <via> dev <dev> [onlink]` in the node's main table."""
    dst: IPv4Network
    via: IPv4Address
    dev: str = UPLINK
    onlink: bool = False


@dataclass(frozen=True)
class Vxlan:
    """A VXLAN device in the node namespace (`ip link add <name> type vxlan id <vni> dstport
    <port> local <local> dev eth0 [nolearning]`), with its address and MAC set, optionally a
    port of bridge `master`."""
    name: str
    vni: int
    port: int
    local: IPv4Address
    mac: str
    learning: bool
    mtu: int
    address: IPv4Network | None = None  # an address of its own (flannel's <subnet>.0/32)
    master: str | None = None


@dataclass(frozen=True)
class Neighbour:
    """A permanent neighbour entry: `ip neigh replace <ip> lladdr <mac> dev <dev> nud permanent`."""
    ip: IPv4Address
    mac: str
    dev: str


@dataclass(frozen=True)
class Fdb:
    """A permanent forwarding entry of a VXLAN device: `bridge fdb append <mac> dev <dev> dst <dst>`
    (00:00:00:00:00:00: flood to `dst`, head-end replication)."""
    mac: str
    dst: IPv4Address
    dev: str


@dataclass(frozen=True)
class NodeNetwork:
    """Everything one node namespace holds for the pod network, beyond its uplink and bridge."""
    routes: tuple[Route, ...] = ()
    devices: tuple[Vxlan, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    fdb: tuple[Fdb, ...] = ()
    mtu: int = UNDERLAY_MTU  # of cbr0 and every pod's eth0
    pod_network: IPv4Network | None = None  # the subnet a pod sees as on-link; None: the node's podCIDR


class Backend(Protocol):
    """The interface: a backend module has a NAME (networking.backend's value) and this function."""
    NAME: str

    def node_network(self, cluster: ClusterConfig, nodes: Sequence[PlannedNode], node: PlannedNode) -> NodeNetwork:
        ...
