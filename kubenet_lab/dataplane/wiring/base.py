"""What wiring a pod must give it, whoever wires it, as plain data.

A wiring (networking.wiring) puts a pod's namespace on its node's pod network: `netlink`, the
lab's own veth made over netlink (fabric/netlink.py), or `cni`, the reference CNI plugins run as a
container runtime runs them (cni.py here for the pure parts, fabric/cni.py for running them).
Either must end with the same `PodInterface`, so that the plan's addresses, the proxy's rules and
the cluster DNS stay right whichever made it.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

POD_IFNAME = "eth0"  # CNI_IFNAME: the pod's interface, as kubelet names it


@dataclass(frozen=True)
class PodInterface:
    """A pod's eth0 once wired: the plan's address with the prefix of the subnet the pod sees as
    on-link (its node's podCIDR, or the backend's one subnet), the default route via its node's
    cbr0 address, and the backend's MTU."""
    address: IPv4Interface
    gateway: IPv4Address
    mtu: int

    @property
    def subnet(self) -> IPv4Network:
        return self.address.network
