"""Address allocation, like the CNI host-local plugin, and the service IP / NodePort allocators.

host-local: the first address of a node's podCIDR is the gateway and is skipped; addresses are
handed out round-robin after the last one reserved, wrapping at the end of the range; an address
is not reused while its pod exists. Allocators are pure: they take what is in use and return
new assignments; the caller keeps them in `Allocations` from one run to the next.
"""
from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Iterable

from ..model.objects import PortRange


class Exhausted(Exception):
    pass


def pod_range(cidr: IPv4Network) -> tuple[int, int]:
    """First and last allocatable address (as ints): after the gateway, before the broadcast."""
    first = int(cidr.network_address) + 2
    last = int(cidr.broadcast_address) - 1
    return first, last


def pod_capacity(cidr: IPv4Network) -> int:
    first, last = pod_range(cidr)
    return max(0, last - first + 1)


def gateway(cidr: IPv4Network) -> IPv4Address:
    return cidr.network_address + 1


class HostLocal:
    """One node's pod address pool."""

    def __init__(self, cidr: IPv4Network, in_use: Iterable[IPv4Address] = (), last_reserved: IPv4Address | None = None):
        self.cidr = cidr
        self.first, self.last = pod_range(cidr)
        self.in_use = {int(a) for a in in_use}
        self.last_reserved = int(last_reserved) if last_reserved is not None and last_reserved in cidr else None

    def owns(self, addr: IPv4Address) -> bool:
        return self.first <= int(addr) <= self.last

    def reserve(self, addr: IPv4Address) -> bool:
        """Keep an address a pod already has; False when it is not this pool's or is taken."""
        if not self.owns(addr) or int(addr) in self.in_use:
            return False
        self.in_use.add(int(addr))
        return True

    def allocate(self) -> IPv4Address:
        size = self.last - self.first + 1
        start = self.first if self.last_reserved is None else self.last_reserved + 1
        for step in range(size):
            candidate = self.first + (start - self.first + step) % size
            if candidate not in self.in_use:
                self.in_use.add(candidate)
                self.last_reserved = candidate
                return IPv4Address(candidate)
        raise Exhausted(str(self.cidr))


class Sequential:
    """Lowest free value in [first, last]; used for service IPs, NodePorts and LB addresses."""

    def __init__(self, first: int, last: int, in_use: Iterable[int] = ()):
        self.first, self.last = first, last
        self.in_use = set(in_use)
        self._next = first

    def take(self, value: int) -> bool:
        if value in self.in_use or not self.first <= value <= self.last:
            return False
        self.in_use.add(value)
        return True

    def allocate(self) -> int:
        v = self._next
        while v <= self.last:
            if v not in self.in_use:
                self.in_use.add(v)
                self._next = v + 1
                return v
            v += 1
        raise Exhausted(f"{self.first}-{self.last}")


def node_port_band(size: int) -> int:
    """How many ports at the bottom of a NodePort range of `size` ports dynamic allocation leaves
    to requested ones until the rest is full: kube-apiserver's portallocator offset
    (calculateRangeOffset), min(max(16, size/32), 128), and none in a range of 16 ports or
    fewer: 86 of the default 30000-32767."""
    if size <= 16:
        return 0
    return min(max(16, size // 32), 128)


class NodePorts:
    """kube-apiserver's NodePort allocator (portallocator on an offset bitmap): a requested port
    may be any free one of the range; dynamic allocation takes from the upper band (the range
    above the lower `node_port_band`), and from the lower band only once the upper one is full,
    so that requested ports rarely find theirs taken. The API server picks at random within a
    band; the lab takes the lowest free port of it, so the same manifests get the same ports."""

    def __init__(self, ports: PortRange, in_use: Iterable[int] = ()):
        self.ports = ports
        self.band = node_port_band(ports.size)
        self.in_use = set(in_use)
        # The lowest port of each band that may be free (ports are never given back in a plan).
        self._next = [ports.first + self.band, ports.first]

    def take(self, port: int) -> bool:
        """Reserve a requested port; False when it is outside the range or taken."""
        if port in self.in_use or port not in self.ports:
            return False
        self.in_use.add(port)
        return True

    def allocate(self) -> int:
        ends = (self.ports.last, self.ports.first + self.band - 1)
        for band, end in enumerate(ends):
            port = self._next[band]
            while port <= end and port in self.in_use:
                port += 1
            self._next[band] = port
            if port <= end:
                self.in_use.add(port)
                return port
        raise Exhausted(str(self.ports))


def service_ip_range(subnet: IPv4Network) -> tuple[int, int]:
    return int(subnet.network_address) + 1, int(subnet.broadcast_address) - 1


def kubernetes_service_ip(subnet: IPv4Network) -> IPv4Address:
    """The first address of the service CIDR belongs to `kubernetes.default`."""
    return subnet.network_address + 1


def dns_service_ip(subnet: IPv4Network) -> IPv4Address:
    """The cluster DNS service conventionally has the tenth address."""
    return subnet.network_address + 10


def node_ip(subnet: IPv4Network, index: int) -> IPv4Address:
    """Nodes from .2 on, as kind's nodes sit on its docker network (.1 is the gateway's)."""
    return subnet.network_address + 2 + index


def external_client_ip(subnet: IPv4Network) -> IPv4Address:
    return subnet.broadcast_address - 1


def second_client_ip(subnet: IPv4Network) -> IPv4Address:
    """The second client outside the cluster (`external2`), below the balancer's address."""
    return subnet.broadcast_address - 3


def load_balancer_ip(subnet: IPv4Network) -> IPv4Address:
    """The external load balancer's own address on the underlay."""
    return subnet.broadcast_address - 2


def default_lb_pool(subnet: IPv4Network) -> tuple[IPv4Address, IPv4Address]:
    """The last quarter of the underlay, below the external clients' and the balancer's addresses."""
    first = int(subnet.network_address) + subnet.num_addresses * 3 // 4
    return IPv4Address(first), IPv4Address(int(subnet.broadcast_address) - 4)
