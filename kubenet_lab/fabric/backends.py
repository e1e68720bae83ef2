"""The one reconciler of the backends' data (dataplane/backends): a node namespace holds exactly
the devices, neighbours, FDB entries and routes its backend gives it, and its bridge the MTU,
over one netlink socket opened inside it.

The backends compute; this applies, idempotently: what is there and wanted stays, what is
wanted and missing is made, what is lab-made and no longer wanted goes (a node that left takes
its routes and entries with it; a backend switched away from takes its device). A VXLAN device
whose identity (VNI, port, local address, learning, MAC) differs is made anew; its MTU, master
and address are set in place. Every device made here carries the lab's mark, as every other
link of the lab does. Routes with a gateway in the main table are all the lab's (a node
namespace has nothing else); connected routes belong to the kernel.
"""
from __future__ import annotations

import socket
from ipaddress import IPv4Interface
from typing import Collection, Iterable

from kubenet_lab.dataplane.backends.base import NODE_BRIDGE, UPLINK, NodeNetwork, Route, Vxlan
from kubenet_lab.errors import LabError
from kubenet_lab.kernel import rtnl


def _index(nl: rtnl.Rtnl, name: str) -> int:
    found = nl.link(name=name)
    if found is None:
        raise LabError(f"no link {name} in the node")
    return found["index"]


def ensure_routes(nl: rtnl.Rtnl, routes: Iterable[Route]) -> None:
    """Routes via a gateway in the main table are exactly `routes` (no default route)."""
    indexes: dict[str, int] = {}
    wanted = {}
    for r in routes:
        if r.dev not in indexes:
            indexes[r.dev] = _index(nl, r.dev)
        wanted[r.dst] = (r.via, indexes[r.dev], r.onlink)
    have = set()
    stale = []
    for route in map(rtnl.route_info, nl.query(rtnl.route_dump())):
        if route.table != rtnl.MAIN_TABLE or route.gateway is None:
            continue  # connected routes belong to the kernel
        if wanted.get(route.dst) == (route.gateway, route.oif, route.onlink):
            have.add(route.dst)
        elif route.dst not in wanted or wanted[route.dst][1:] != (route.oif, route.onlink):
            stale.append(rtnl.route_del(route.dst, route.gateway))
    nl.batch(stale + [rtnl.route_add(dst, via, oif, replace=True, onlink=onlink)
                      for dst, (via, oif, onlink) in wanted.items() if dst not in have])


def _vxlan_matches(found, want: Vxlan, uplink: int) -> bool:
    info = found.get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_KIND") != "vxlan":
        return False
    data = info.get_attr("IFLA_INFO_DATA")
    return (data.get_attr("IFLA_VXLAN_ID"), data.get_attr("IFLA_VXLAN_PORT"), data.get_attr("IFLA_VXLAN_LOCAL"),
            bool(data.get_attr("IFLA_VXLAN_LEARNING")), data.get_attr("IFLA_VXLAN_LINK"),
            found.get_attr("IFLA_ADDRESS")) == (want.vni, want.port, str(want.local), want.learning, uplink, want.mac)


def _ensure_device(nl: rtnl.Rtnl, want: Vxlan, uplink: int, bridge: int, mark: str) -> int:
    found = nl.link(name=want.name)
    if found is not None and not _vxlan_matches(found, want, uplink):
        nl.batch([rtnl.link_del(found["index"])])
        found = None
    if found is None:
        nl.batch([rtnl.vxlan_add(want.name, want.vni, want.port, want.local, uplink, want.learning, want.mac,
                                 want.mtu)])
    index = _index(nl, want.name)
    nl.batch([rtnl.link_set(index, alias=mark, mtu=want.mtu, master=bridge if want.master else None)])
    wanted = {IPv4Interface(want.address)} if want.address else set()
    have = {a for i, a, _label in map(rtnl.addr_info, nl.query(rtnl.addr_dump())) if i == index and a}
    nl.batch([rtnl.addr_del(index, a.ip, a.network.prefixlen) for a in have - wanted]
             + [rtnl.addr_add(index, a.ip, a.network.prefixlen) for a in wanted - have])
    return index


def _ensure_devices(nl: rtnl.Rtnl, network: NodeNetwork, mark: str, known: Collection[str]) -> dict[str, int]:
    """The backend's devices, and no other lab-made one of the `known` names (any backend's);
    their indexes by name. Looked up by name: a dump would decode every pod's veth."""
    wanted = {d.name for d in network.devices}
    for name in sorted(set(known) - wanted):
        found = nl.link(name=name)
        if found is not None and found.get_attr("IFLA_IFALIAS") == mark:
            nl.batch([rtnl.link_del(found["index"])])
    if not network.devices:
        return {}
    uplink, bridge = _index(nl, UPLINK), _index(nl, NODE_BRIDGE)
    return {d.name: _ensure_device(nl, d, uplink, bridge, mark) for d in network.devices}


def _ensure_neighbours(nl: rtnl.Rtnl, network: NodeNetwork, devices: dict[str, int]) -> None:
    """Permanent neighbour entries on the backend's devices are exactly the backend's."""
    wanted = {(devices[n.dev], n.ip): n.mac for n in network.neighbours}
    have = {}
    stale = []
    for entry in map(rtnl.neigh_info, nl.query(rtnl.neigh_dump())):
        if entry.ifindex not in devices.values() or not entry.permanent or entry.ip is None:
            continue
        if (entry.ifindex, entry.ip) in wanted:
            have[(entry.ifindex, entry.ip)] = entry.mac
        else:
            stale.append(rtnl.neigh_del(entry.ifindex, entry.ip))
    nl.batch(stale + [rtnl.neigh_set(index, ip, mac) for (index, ip), mac in wanted.items()
                      if have.get((index, ip)) != mac])


def _ensure_fdb(nl: rtnl.Rtnl, network: NodeNetwork, devices: dict[str, int]) -> None:
    """Permanent FDB entries with a remote on the backend's devices are exactly the backend's
    (the entries a learning device learns are the kernel's)."""
    wanted = {(devices[f.dev], f.mac, f.dst) for f in network.fdb}
    have = set()
    for entry in map(rtnl.neigh_info, nl.query(rtnl.neigh_dump(socket.AF_BRIDGE))):
        if entry.ifindex in devices.values() and entry.permanent and entry.ip is not None:
            have.add((entry.ifindex, entry.mac, entry.ip))
    nl.batch([rtnl.fdb_del(*e) for e in sorted(have - wanted, key=str)]
             + [rtnl.fdb_set(*e) for e in sorted(wanted - have, key=str)])


def ensure_network(nl: rtnl.Rtnl, network: NodeNetwork, routes: Iterable[Route], mark: str,
                   known: Collection[str]) -> None:
    """The node holds `network` (its bridge's MTU, devices, neighbours, FDB), none of the other
    `known` devices, and exactly `routes`. Without devices (host-gw) nothing is dumped but the
    routes: the entries of a device that goes go with it."""
    nl.batch([rtnl.link_set(_index(nl, NODE_BRIDGE), mtu=network.mtu)])
    devices = _ensure_devices(nl, network, mark, known)
    if devices:
        _ensure_neighbours(nl, network, devices)
        _ensure_fdb(nl, network, devices)
    ensure_routes(nl, routes)
