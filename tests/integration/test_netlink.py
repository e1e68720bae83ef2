"""The netlink layer against the real kernel: topology, reachability, discovery, removal.

Root tests build small labs by hand (2 nodes x 2 pods) under a random lab name and always
remove them, even on failure. The codec tests at the top need no root: they decode what
pyroute2 encoded from `rtnl`'s requests and check it says what was meant.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import subprocess
import time
from ipaddress import IPv4Address, IPv4Network

import pytest

pyroute2 = pytest.importorskip("pyroute2", reason="pyroute2 is not installed (pip install pyroute2)")

from kubenet_lab.dataplane.backends import node_routes  # noqa: E402
from kubenet_lab.errors import LabError  # noqa: E402
from kubenet_lab.plan import naming  # noqa: E402
from kubenet_lab.model.objects import (  # noqa: E402
    Allocations, ClusterConfig, Plan, PlannedNode, PlannedPod,
)
from kubenet_lab.fabric import netlink  # noqa: E402
from kubenet_lab.kernel import netns, rtnl  # noqa: E402

from .conftest import host_snapshot  # noqa: E402

ROOT_REASON = "needs root (network namespaces); run as root"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_REASON)
needs_ip = pytest.mark.skipif(shutil.which("ip") is None, reason="`ip` missing: apt-get install iproute2")
needs_ping = pytest.mark.skipif(shutil.which("ping") is None, reason="`ping` missing: apt-get install iputils-ping")


# --- codec (no root) ---------------------------------------------------------------------------


def _decode(cls, req: rtnl.Request, seq: int = 0, ack: bool = True):
    msg = cls(rtnl.encode(req, seq, ack))
    msg.decode()
    return msg


def test_veth_add_decodes_with_pyroute2():
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    msg = _decode(ifinfmsg, rtnl.veth_add("vethdeadbeef", "eth0", 7, master=3), seq=1)
    assert msg["header"]["type"] == 16 and msg["header"]["sequence_number"] == 1
    assert msg["header"]["flags"] == 0x1 | 0x4 | 0x400 | 0x200  # request, ack, create, excl
    assert msg.get_attr("IFLA_IFNAME") == "vethdeadbeef"
    assert msg.get_attr("IFLA_MASTER") == 3
    assert msg["flags"] & 1 and msg["change"] & 1
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "eth0"
    assert peer.get_attr("IFLA_NET_NS_FD") == 7


def test_link_set_and_addr_route_decode_with_pyroute2():
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    link = _decode(ifinfmsg, rtnl.link_set(name="veth1", alias="kubenet-lab:x", hairpin=True), ack=False)
    assert link["header"]["flags"] == 0x1  # no ack: only the last request of a batch asks
    assert (link["index"], link.get_attr("IFLA_IFNAME"), link.get_attr("IFLA_IFALIAS")) == (0, "veth1", "kubenet-lab:x")
    port = link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_SLAVE_DATA")
    assert port.get_attr("IFLA_BRPORT_MODE") == 1
    addr = _decode(ifaddrmsg, rtnl.addr_add(2, IPv4Address("10.244.0.5"), 24))
    assert (addr["index"], addr["prefixlen"], addr.get_attr("IFA_LOCAL")) == (2, 24, "10.244.0.5")
    route = _decode(rtmsg, rtnl.route_add(IPv4Network("10.244.1.0/24"), IPv4Address("172.18.0.3"), 2))
    assert ((route["dst_len"], route.get_attr("RTA_DST"), route.get_attr("RTA_GATEWAY"))
            == (24, "10.244.1.0", "172.18.0.3"))
    assert (route["table"], route["proto"], route.get_attr("RTA_OIF")) == (254, 3, 2)
    default = _decode(rtmsg, rtnl.route_add(IPv4Network("0.0.0.0/0"), IPv4Address("10.244.0.1"), 2))
    assert default["dst_len"] == 0 and default.get_attr("RTA_DST") is None
    assert rtnl.route_info(default) == rtnl.Route(IPv4Network("0.0.0.0/0"), IPv4Address("10.244.0.1"), 2, 254)


def test_identical_requests_are_encoded_once():
    request = rtnl.link_set(index=1, alias="kubenet-lab:x")
    first = rtnl.encode(request, 0, False)
    assert rtnl.encode(rtnl.link_set(index=1, alias="kubenet-lab:x"), 0, False) is first
    assert rtnl.encode(request, 1, False) != first  # the sequence number is part of it

# --- a hand-made plan ---------------------------------------------------------------------------


def make_plan(lab: str, nodes: int = 2, pods_per_node: int = 2) -> Plan:
    cluster = ClusterConfig()
    specs = [(f"n{i}", IPv4Address(f"172.18.0.{i + 2}"), IPv4Network(f"10.244.{i}.0/24")) for i in range(nodes)]
    planned_nodes = tuple(
        PlannedNode(
            name=name, index=i, ip=ip, pod_cidr=cidr, gateway=cidr.network_address + 1,
            netns=naming.node_netns(lab, name), underlay_veth=naming.node_underlay_veth(lab, name),
            routes=tuple((c, nip) for other, nip, c in specs if other != name),
        )
        for i, (name, ip, cidr) in enumerate(specs)
    )
    pods = []
    for node in planned_nodes:
        for j in range(pods_per_node):
            name = f"p-{node.name}-{j}"
            pods.append(PlannedPod(
                namespace="default", name=name, node=node.name, ip=node.pod_cidr.network_address + 2 + j,
                netns=naming.pod_netns(lab, "default", name), host_veth=naming.pod_host_veth(lab, "default", name),
            ))
    return Plan(lab=lab, cluster=cluster, nodes=planned_nodes, pods=tuple(pods), services=(),
                allocations=Allocations(), underlay_netns=naming.underlay_netns(lab))


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def ipj(ns: str, *args: str) -> list:
    return json.loads(sh("ip", "-j", "-d", "-n", ns, *args) or "[]")


def cleanup(lab: str) -> None:
    """Remove whatever a test left, through the module and then through `ip` as a fallback."""
    leftovers = netns.names(naming.lab_prefix(lab))
    try:
        netlink.delete_namespaces(leftovers)
    finally:
        for name in netns.names(naming.lab_prefix(lab)):
            sh("ip", "netns", "del", name, check=False)


def build(plan: Plan, workers: int = 2) -> None:
    netlink.ensure_base(plan)
    netlink.ensure_nodes(plan)
    netlink.create_pods(plan, plan.pods, workers=workers)


@pytest.fixture
def lab_name():
    lab = "t" + secrets.token_hex(4)
    try:
        yield lab
    finally:
        cleanup(lab)


@pytest.fixture
def built(lab_name):
    plan = make_plan(lab_name)
    build(plan)
    return plan


def link(ns: str, ifname: str) -> dict:
    found = [x for x in ipj(ns, "link", "show") if x["ifname"] == ifname]
    assert found, f"{ifname} missing in {ns}"
    return found[0]


def ping(ns: str, ip) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W1", str(ip)],
                          capture_output=True).returncode == 0


# --- the batching socket -----------------------------------------------------------------------


@needs_root
def test_batch_maps_a_failure_to_its_index(lab_name):
    """Only the last request asks for an ack: a failure before it still surfaces with its index,
    the requests after it still run (the kernel's order), and the socket stays in step."""
    with netns.created(f"{lab_name}.rtnl"):
        nl = rtnl.Rtnl()
    with nl:
        with pytest.raises(rtnl.NetlinkError) as failed:
            nl.batch([rtnl.link_set(1, alias="kubenet-lab:x"),
                      rtnl.addr_add(99, IPv4Address("10.0.0.1"), 24),
                      rtnl.bridge_add("br9")])
        assert (failed.value.index, failed.value.errno) == (1, errno.ENODEV)
        assert nl.link(name="br9") is not None
        assert nl.link(index=1).get_attr("IFLA_IFALIAS") == "kubenet-lab:x"
        with pytest.raises(rtnl.NetlinkError) as failed:
            nl.batch([rtnl.bridge_add("br9")])
        assert (failed.value.index, failed.value.errno) == (0, errno.EEXIST)
        assert nl.link(name="nothing") is None
        assert nl.link(index=nl.link(name="br9")["index"]).get_attr("IFLA_IFNAME") == "br9"


# --- topology -----------------------------------------------------------------------------------

@needs_root
@needs_ip
def test_topology(built):
    plan = built
    mark = naming.mark(plan.lab)
    under = plan.underlay_netns
    br0 = link(under, "br0")
    assert "UP" in br0["flags"] and br0.get("ifalias") == mark
    assert link(under, "lo").get("ifalias") == mark
    for node in plan.nodes:
        up = link(under, node.underlay_veth)
        assert up.get("master") == "br0" and up.get("ifalias") == mark
        eth0, cbr0, lo = link(node.netns, "eth0"), link(node.netns, "cbr0"), link(node.netns, "lo")
        assert all(x.get("ifalias") == mark for x in (eth0, cbr0, lo))
        assert all("UP" in x["flags"] for x in (eth0, cbr0, lo))
        addrs = {(a["ifname"], f"{i['local']}/{i['prefixlen']}") for a in ipj(node.netns, "addr")
                 for i in a["addr_info"] if i["family"] == "inet"}
        assert ("eth0", f"{node.ip}/24") in addrs and ("cbr0", f"{node.gateway}/24") in addrs
        routes = {(r["dst"], r.get("gateway")) for r in ipj(node.netns, "route")}
        assert routes >= {(str(r.dst), str(r.via)) for r in node_routes(plan, node)}
        assert not any(r["dst"] == "default" for r in ipj(node.netns, "route"))
        assert sh("ip", "netns", "exec", node.netns, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
        assert sh("ip", "netns", "exec", node.netns, "cat",
                  "/proc/sys/net/bridge/bridge-nf-call-iptables").strip() == "1"
    for pod in plan.pods:
        node = plan.node(pod.node)
        host = link(node.netns, pod.host_veth)
        assert host.get("master") == "cbr0" and host.get("ifalias") == mark and "UP" in host["flags"]
        assert host["linkinfo"]["info_slave_data"]["hairpin"] is True
        eth0 = link(pod.netns, "eth0")
        assert eth0.get("ifalias") == mark and "UP" in eth0["flags"]
        lo = link(pod.netns, "lo")
        assert lo.get("ifalias") == mark and "UP" in lo["flags"]
        inet = [i for a in ipj(pod.netns, "addr", "show", "eth0") for i in a["addr_info"] if i["family"] == "inet"]
        assert [(i["local"], i["prefixlen"]) for i in inet] == [(str(pod.ip), 24)]
        default = [r for r in ipj(pod.netns, "route") if r["dst"] == "default"]
        assert [(r["gateway"], r["dev"]) for r in default] == [(str(node.gateway), "eth0")]
    assert open("/proc/sys/net/ipv4/ip_forward").read()  # root untouched: checked in test_host_untouched


@needs_root
@needs_ip
@needs_ping
def test_ping_same_and_cross_node(built):
    a, b, c = built.pods[0], built.pods[1], built.pods[2]
    assert a.node == b.node != c.node
    assert ping(a.netns, b.ip), "same-node pod to pod"
    assert ping(a.netns, c.ip), "cross-node pod to pod"
    assert ping(c.netns, a.ip), "cross-node back"
    assert ping(a.netns, a.ip), "pod to itself"


@needs_root
@needs_ip
def test_discover_owned_and_foreign(built):
    plan = built
    foreign = f"{plan.lab}.foreign"
    sh("ip", "netns", "add", foreign)
    found = netlink.discover(plan.lab)
    expected = {plan.underlay_netns, *(n.netns for n in plan.nodes), *(p.netns for p in plan.pods)}
    assert {n for n, owned in found.items() if owned} == expected
    assert found[foreign] is False
    assert sorted(netlink.discover_all()[plan.lab]) == sorted(expected)


@needs_root
@needs_ip
def test_read_pod_ips(built):
    assert netlink.read_pod_ips(built.lab) == {p.netns: str(p.ip) for p in built.pods}


@needs_root
@needs_ip
def test_ensure_is_idempotent_and_repairs(built):
    plan = built
    node = plan.nodes[0]

    def state():
        out = {}
        for ns in [plan.underlay_netns, *(n.netns for n in plan.nodes)]:
            links = sorted((x["ifindex"], x["ifname"], x.get("master"), x.get("ifalias")) for x in ipj(ns, "link"))
            addrs = sorted((a["ifname"], i["local"], i["prefixlen"]) for a in ipj(ns, "addr")
                           for i in a["addr_info"] if i["family"] == "inet")
            routes = sorted((r["dst"], r.get("gateway", ""), r["dev"]) for r in ipj(ns, "route"))
            out[ns] = (links, addrs, routes)
        return out

    before = state()
    netlink.ensure_base(plan)
    netlink.ensure_nodes(plan)
    assert state() == before
    # Break things the way a user could; ensure_nodes puts them back.
    first = node_routes(plan, node)[0]
    sh("ip", "-n", node.netns, "route", "del", str(first.dst))
    sh("ip", "-n", node.netns, "route", "add", "default", "via", str(first.via))
    sh("ip", "-n", node.netns, "addr", "add", "172.18.0.250/24", "dev", "eth0")
    sh("ip", "netns", "exec", node.netns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    netlink.ensure_nodes(plan)
    routes = {(r["dst"], r.get("gateway")) for r in ipj(node.netns, "route")}
    assert (str(first.dst), str(first.via)) in routes
    assert not any(dst == "default" for dst, _ in routes)
    assert "172.18.0.250" not in sh("ip", "-n", node.netns, "addr")
    assert sh("ip", "netns", "exec", node.netns, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"


@needs_root
@needs_ip
def test_routes_follow_removed_nodes(lab_name):
    three = make_plan(lab_name, nodes=3, pods_per_node=0)
    build(three)
    two = make_plan(lab_name, nodes=2, pods_per_node=0)
    netlink.delete_namespaces([three.nodes[2].netns])
    netlink.ensure_nodes(two)
    for node in two.nodes:
        gateways = {r["dst"]: r.get("gateway") for r in ipj(node.netns, "route") if r.get("gateway")}
        assert gateways == {str(r.dst): str(r.via) for r in node_routes(two, node)}


@needs_root
@needs_ip
@needs_ping
def test_many_pods_over_workers(lab_name):
    plan = make_plan(lab_name, nodes=2, pods_per_node=20)
    build(plan, workers=2)
    assert sum(netlink.discover(lab_name).values()) == 1 + 2 + 40
    assert netlink.read_pod_ips(lab_name) == {p.netns: str(p.ip) for p in plan.pods}
    assert ping(plan.pods[0].netns, plan.pods[-1].ip)


@needs_root
@needs_ip
def test_failed_create_removes_the_batch(lab_name):
    plan = make_plan(lab_name)
    netlink.ensure_base(plan)
    netlink.ensure_nodes(plan)
    a, b = plan.pods[0], plan.pods[1]
    clash = PlannedPod(namespace="default", name="clash", node=a.node, ip=IPv4Address("10.244.0.9"),
                       netns=naming.pod_netns(lab_name, "default", "clash"), host_veth=a.host_veth)
    with pytest.raises(LabError, match="clash"):
        netlink.create_pods(plan, [a, b, clash], workers=1)
    assert not [n for n in netns.names(f"{lab_name}.pod.")]
    netns.ensure(a.netns)
    with pytest.raises(LabError, match="already exist"):
        netlink.create_pods(plan, [a], workers=1)


@needs_root
@needs_ip
def test_delete_stops_processes_and_removes_everything(built):
    plan = built
    pod = plan.pods[0]
    sleeper = subprocess.Popen(["ip", "netns", "exec", pod.netns, "sleep", "300"])
    try:
        deadline = time.monotonic() + 20
        while not netlink.processes_in([pod.netns])[pod.netns] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert netlink.processes_in([pod.netns])[pod.netns] == [sleeper.pid]
        netlink.delete_namespaces(netlink.discover(plan.lab))
        assert sleeper.wait(timeout=20) == -9
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
    assert netns.names(naming.lab_prefix(plan.lab)) == []
    assert netlink.discover(plan.lab) == {}
    netlink.delete_namespaces([pod.netns, "no-such-namespace"])  # already gone: no error


@needs_root
@needs_ip
def test_host_untouched(lab_name):
    before = host_snapshot()
    plan = make_plan(lab_name)
    build(plan)
    netlink.delete_namespaces(netlink.discover(lab_name))
    assert host_snapshot() == before
