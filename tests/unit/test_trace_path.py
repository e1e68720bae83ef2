"""trace's hop-by-hop path over a snapshot, without root: the rules are the renderers' own for a
plan, the links and addresses those the lab wires, and the routing answers come from a small
longest-prefix router over the routes the lab installs (the integration tests ask the kernel)."""
from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network, ip_address

import pytest

from kubenet_lab.inspect import path as paths
from kubenet_lab.inspect import traceview
from kubenet_lab.inspect.snapshot import Link, Route, Snapshot, Space
from kubenet_lab.proxy.iptables import render_iptables
from kubenet_lab.proxy.nftables import render_nftables
from tests.unit.test_render_fixtures import NODE1_IP, NODE2_IP, ep, plan, port, service

CIP = "10.96.0.20"
CLIENT, E1, E2, E3 = "10.244.1.50", "10.244.1.10", "10.244.1.11", "10.244.2.10"
PODS = {"client": (CLIENT, "node1"), "e1": (E1, "node1"), "e2": (E2, "node1"), "e3": (E3, "node2")}
GW = {"node1": "10.244.1.1", "node2": "10.244.2.1"}
NODE_IP = {"node1": NODE1_IP, "node2": NODE2_IP}


def web(*eps, **kw):
    return service("default", "web", CIP, port(80, "http", eps, target=8080), **kw)


def _iface(ip: str, prefix: int) -> tuple[IPv4Interface, ...]:
    return (IPv4Interface(f"{ip}/{prefix}"),)


def snapshot(p, mode: str) -> Snapshot:
    spaces: dict[str, Space] = {"u": Space("u", "underlay", "underlay", links={"br0": Link("br0", 1, "bridge")})}
    for node in ("node1", "node2"):
        text = render_iptables(p, node) if mode == "iptables" else render_nftables(p, node)
        links = {"lo": Link("lo", 1, "loopback", addresses=_iface("127.0.0.1", 8)),
                 "cbr0": Link("cbr0", 2, "bridge", addresses=_iface(GW[node], 24)),
                 "eth0": Link("eth0", 3, "veth", peer=("u", f"u-{node}"), addresses=_iface(NODE_IP[node], 24))}
        spaces[node] = Space(node, "node", f"node/{node}", links=links, rules=text,
                             syntax="iptables" if mode == "iptables" else "nft-tx")
        spaces["u"].links[f"u-{node}"] = Link(f"u-{node}", 10, "veth", master="br0", peer=(node, "eth0"))
    for name, (ip, node) in PODS.items():
        spaces[name] = Space(name, "pod", f"default/{name}", node, {
            "lo": Link("lo", 1, "loopback", addresses=_iface("127.0.0.1", 8)),
            "eth0": Link("eth0", 2, "veth", peer=(node, f"v-{name}"), addresses=_iface(ip, 24))})
        spaces[node].links[f"v-{name}"] = Link(f"v-{name}", 20, "veth", master="cbr0", peer=(name, "eth0"))
    return Snapshot(spaces, ask=lambda *key: _route(spaces, *key))


def _route(spaces, netns, dst, src, iif) -> Route:
    """The lab's routes, as the kernel would choose among them (and refuse a martian source)."""
    space = spaces[netns]
    local = {str(a.ip) for l in space.links.values() for a in l.addresses}
    if iif is not None and src in local:
        return Route("error", error="Invalid argument")
    if dst in local:
        return Route("local", "lo", prefsrc=dst)
    if space.role == "pod":
        own = str(space.links["eth0"].addresses[0].ip)
        if ip_address(dst) in IPv4Network(f"{own}/24", strict=False):
            return Route("unicast", "eth0", prefsrc=own)
        return Route("unicast", "eth0", GW[space.node], own)
    me = space.netns
    other = "node2" if me == "node1" else "node1"
    table = [(IPv4Network(f"{GW[me]}/24", strict=False), "cbr0", None, GW[me]),
             (IPv4Network(f"{GW[other]}/24", strict=False), "eth0", NODE_IP[other], NODE_IP[me]),
             (IPv4Network("172.18.0.0/24"), "eth0", None, NODE_IP[me]),
             (IPv4Network("10.96.0.0/16"), "eth0", "172.18.0.253", NODE_IP[me])]  # via the balancer
    for net, dev, gw, prefsrc in table:
        if ip_address(dst) in net:
            return Route("unicast", dev, gw, prefsrc)
    return Route("error", error="Network is unreachable")


MODES = ("iptables", "nftables")


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def run(p, mode, src_ns, dst, dport=80, src="", proto="tcp"):
    return paths.trace(snapshot(p, mode), src_ns, paths.Packet(src or PODS.get(src_ns, ("",))[0], dst, dport, proto),
                       src_ns, dst)


def test_cluster_ip_every_endpoint_with_its_probability_and_the_hops(mode):
    r = run(plan(web(ep(E1), ep(E2), ep(E3, node="node2"))), mode, "client", CIP)
    assert set(r.endpoints()) == {f"{E1}:8080", f"{E2}:8080", f"{E3}:8080"}
    assert all(abs(p - 1 / 3) < 1e-6 for p in r.endpoints().values())
    far = next(b for b in r.branches if b.endpoint == f"{E3}:8080")
    assert [h.name for h in far.hops] == ["default/client", "node/node1", "node/node2", "default/e3"]
    assert far.hops[1].netfilter[0].dnat == f"{E3}:8080" and far.hops[1].route.gateway == NODE2_IP
    assert "bridge br0" in far.hops[1].out and not far.masqueraded and far.seen_source == CLIENT
    near = next(b for b in r.branches if b.endpoint == f"{E1}:8080")
    assert [h.name for h in near.hops] == ["default/client", "node/node1", "default/e1"]
    assert any("DNAT" in rule.text or "dnat" in rule.text for rule in near.hops[1].netfilter[0].rules)


def test_pod_to_pod_on_one_node_is_bridged_through_the_nodes_rules(mode):
    r = run(plan(web(ep(E1))), mode, "client", E2, 8080)
    (b,) = r.branches
    assert [h.name for h in b.hops] == ["default/client", "node/node1", "default/e2"]
    assert "bridge-nf-call-iptables" in b.hops[1].out and b.outcome == "delivered" and b.endpoint == f"{E2}:8080"


def test_pod_to_pod_across_nodes(mode):
    (b,) = run(plan(web(ep(E1))), mode, "client", E3, 8080).branches
    assert [h.name for h in b.hops] == ["default/client", "node/node1", "node/node2", "default/e3"]
    assert b.answer[0].startswith("default/e3") and not b.masqueraded


def test_hairpin_is_masqueraded_and_reaches_the_client_itself(mode):
    r = run(plan(web(ep(E1))), mode, "e1", CIP)
    (b,) = r.branches
    assert b.outcome == "delivered" and b.reached == "default/e1" and b.masqueraded
    assert b.seen_source == GW["node1"]
    assert "hairpin" in b.hops[1].netfilter[0].why


def test_a_service_without_endpoints_is_rejected_naming_the_rule(mode):
    (b,) = run(plan(web()), mode, "client", CIP).branches
    assert b.outcome == "rejected" and b.hops[-1].name == "node/node1"
    assert "rejected by" in b.hops[-1].end
    assert (CIP in b.hops[-1].end) if mode == "iptables" else ("@no-endpoint-services" in b.hops[-1].end)


def test_no_route_names_the_table():
    (b,) = run(plan(web(ep(E1))), "iptables", "client", "10.99.0.1").branches
    assert b.outcome == "unroutable" and "Network is unreachable" in b.hops[-1].end
    assert "node/node1" in b.hops[-1].end


def test_node_to_node_port_through_another_node_is_masqueraded(mode):
    svc = service("default", "web", CIP, port(80, "http", [ep(E3, node="node2")], node_port=30080, target=8080),
                  type="NodePort")
    r = run(plan(svc), mode, "node2", NODE1_IP, 30080)
    (b,) = r.branches
    assert [h.name for h in b.hops] == ["node/node2", "node/node1", "node/node2", "default/e3"]
    assert b.masqueraded and b.seen_source == NODE1_IP


def test_text_and_json_name_every_endpoint(mode):
    r = run(plan(web(ep(E1), ep(E3, node="node2"))), mode, "client", CIP)
    text = traceview.render_text(r)
    assert "2 possible paths" in text and f"{E1}:8080 50%" in text and f"{E3}:8080 50%" in text
    assert '"endpoints"' in traceview.to_json(r)


def test_a_failed_neighbour_is_named_and_an_address_nobody_holds_is_lost():
    snap = snapshot(plan(web(ep(E1))), "iptables")
    snap.spaces["client"].neighbours[("eth0", E2)] = "FAILED"
    (b,) = paths.trace(snap, "client", paths.Packet(CLIENT, E2, 8080), "client", E2).branches
    assert f"neighbour {E2} on eth0 is FAILED" in b.hops[0].out
    snap = snapshot(plan(web(ep(E1))), "iptables")
    snap.spaces["client"].neighbours[("eth0", "10.244.1.99")] = "INCOMPLETE"
    (b,) = paths.trace(snap, "client", paths.Packet(CLIENT, "10.244.1.99", 80), "client", "10.244.1.99").branches
    assert b.outcome == "lost" and "nothing on eth0's segment holds 10.244.1.99" in b.hops[-1].end
    assert "INCOMPLETE" in b.hops[-1].end
