"""trace across the backends' VXLAN devices, without root: a snapshot of two nodes as the vxlan
backend wires them (flannel.1 holding its podCIDR's .0/32, the remote podCIDR via that address)
and as l2 wires them (a VXLAN port on each cbr0, the pods on one /16), with a small router over
the routes each backend installs (the integration tests ask the kernel)."""
from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network, ip_address

from kubenet_lab.inspect import path as paths
from kubenet_lab.inspect.snapshot import Link, Route, Snapshot, Space

NODE_IP = {"node1": "172.18.0.2", "node2": "172.18.0.3"}
CIDR = {"node1": "10.244.0.0/24", "node2": "10.244.1.0/24"}
GW = {"node1": "10.244.0.1", "node2": "10.244.1.1"}
PODS = {"client": ("10.244.0.2", "node1"), "server": ("10.244.1.2", "node2")}


def _iface(text: str) -> tuple[IPv4Interface, ...]:
    return (IPv4Interface(text),)


def snapshot(backend: str, without: str | None = None) -> Snapshot:
    prefix = 16 if backend == "l2" else 24
    spaces: dict[str, Space] = {"u": Space("u", "underlay", "underlay", links={"br0": Link("br0", 1, "bridge")})}
    for node in ("node1", "node2"):
        links = {"lo": Link("lo", 1, "loopback", addresses=_iface("127.0.0.1/8")),
                 "cbr0": Link("cbr0", 2, "bridge", addresses=_iface(f"{GW[node]}/{prefix}")),
                 "eth0": Link("eth0", 3, "veth", peer=("u", f"u-{node}"), addresses=_iface(f"{NODE_IP[node]}/24"))}
        if node != without:
            if backend == "vxlan":
                net = CIDR[node].split("/")[0]
                links["flannel.1"] = Link("flannel.1", 4, "vxlan", addresses=_iface(f"{net}/32"))
            else:
                links["vxlan0"] = Link("vxlan0", 4, "vxlan", master="cbr0")
        spaces[node] = Space(node, "node", node, links=links)
        spaces["u"].links[f"u-{node}"] = Link(f"u-{node}", 10, "veth", master="br0", peer=(node, "eth0"))
    for name, (ip, node) in PODS.items():
        spaces[name] = Space(name, "pod", f"default/{name}", node, {
            "lo": Link("lo", 1, "loopback", addresses=_iface("127.0.0.1/8")),
            "eth0": Link("eth0", 2, "veth", peer=(node, f"v-{name}"), addresses=_iface(f"{ip}/{prefix}"))})
        spaces[node].links[f"v-{name}"] = Link(f"v-{name}", 20, "veth", master="cbr0", peer=(name, "eth0"))
    return Snapshot(spaces, ask=lambda *key: _route(spaces, backend, *key))


def _route(spaces, backend, netns, dst, src, iif) -> Route:
    space = spaces[netns]
    local = {str(a.ip) for l in space.links.values() for a in l.addresses}
    if dst in local:
        return Route("local", "lo", prefsrc=dst)
    if space.role == "pod":
        own = space.links["eth0"].addresses[0]
        if ip_address(dst) in own.network:
            return Route("unicast", "eth0", prefsrc=str(own.ip))
        return Route("unicast", "eth0", GW[space.node], str(own.ip))
    me, other = space.netns, "node2" if space.netns == "node1" else "node1"
    if ip_address(dst) in space.links["cbr0"].addresses[0].network:
        return Route("unicast", "cbr0", prefsrc=GW[me])
    if backend == "vxlan" and ip_address(dst) in IPv4Network(CIDR[other]) and "flannel.1" in space.links:
        return Route("unicast", "flannel.1", CIDR[other].split("/")[0], CIDR[me].split("/")[0])
    return Route("error", error="Network is unreachable")


def trace(snap: Snapshot):
    pkt = paths.Packet("", PODS["server"][0], 8080)
    return paths.trace(snap, "client", pkt, "pod/client", "pod/server")


def test_vxlan_crosses_from_flannel_1_to_the_remote_nodes_flannel_1():
    (branch,) = trace(snapshot("vxlan")).branches
    assert branch.outcome == "delivered" and branch.reached == "default/server"
    assert [h.name for h in branch.hops] == ["default/client", "node1", "node2", "default/server"]
    assert branch.hops[1].out == "flannel.1 (VXLAN over the underlay) -> flannel.1 (node2)"
    assert branch.hops[2].iif == "flannel.1"
    assert branch.seen_source == PODS["client"][0]


def test_vxlan_without_the_remote_device_is_lost_at_the_tunnel():
    (branch,) = trace(snapshot("vxlan", without="node2")).branches
    assert branch.outcome == "lost"
    assert "nothing on flannel.1's segment holds 10.244.1.0" in branch.hops[-1].end


def test_l2_bridges_the_frame_through_the_vxlan_port_to_the_remote_pod():
    (branch,) = trace(snapshot("l2")).branches
    assert branch.outcome == "delivered" and branch.reached == "default/server"
    assert branch.hops[0].out == ("eth0 -> v-client (node1) -> bridge cbr0 -> port vxlan0 (VXLAN over the "
                                  "underlay) -> bridge cbr0 (node/node2) -> eth0 (default/server)")
    assert branch.hops[0].route.gateway is None  # on-link: one subnet, no router between the pods


def test_l2_without_the_remote_port_finds_nobody():
    (branch,) = trace(snapshot("l2", without="node2")).branches
    assert branch.outcome == "lost"
