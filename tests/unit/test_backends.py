"""The backends' pure output (dataplane/backends): what each puts in a node namespace, computed
from the plan alone. The expectations for vxlan follow flannel's pkg/backend/vxlan (v0.28.9):
device.go (flannel.1: VNI 1, the kernel's default port 8472, MTU = the external interface's - 50,
nolearning by default), vxlan_network.go handleSubnetEvents (the route `<lease subnet> via
<subnet.IP> dev flannel.1 onlink`, AddARP <subnet.IP> -> VtepMAC, AddFDB VtepMAC -> PublicIP),
vxlan.go (flannel.1 holds <subnet.IP>/32)."""
from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Network

import pytest

from kubenet_lab.dataplane.backends import BACKENDS, node_network, node_routes, pods_rewired, switch_summary
from kubenet_lab.dataplane.backends.base import Fdb, Neighbour, Route, Vxlan
from kubenet_lab import output
from kubenet_lab.inspect.dryrun import changes
from kubenet_lab.inspect.netview import route_line
from kubenet_lab.manifests import load_model
from kubenet_lab.model.objects import ClusterConfig, Model, Node
from kubenet_lab.plan import make_plan

N = IPv4Network
A = IPv4Address


def plan(backend: str, nodes=("node1", "node2", "node3"), previous=None):
    model = Model(cluster=ClusterConfig(backend=backend), nodes=tuple(Node(n) for n in nodes))
    return make_plan(model, "lab", previous)


def test_every_backend_is_registered_under_its_config_name():
    assert sorted(BACKENDS) == ["host-gw", "l2", "vxlan"]


def test_host_gw_routes_every_other_podcidr_via_that_node_and_adds_nothing_else():
    p = plan("host-gw")
    net = node_network(p, p.node("node1"))
    assert net.routes == (Route(N("10.244.1.0/24"), A("172.18.0.3"), "eth0"),
                          Route(N("10.244.2.0/24"), A("172.18.0.4"), "eth0"))
    assert (net.devices, net.neighbours, net.fdb, net.mtu, net.pod_network) == ((), (), (), 1500, None)


def test_vxlan_makes_flannel_1_as_flannel_does():
    p = plan("vxlan")
    net = node_network(p, p.node("node1"))
    (dev,) = net.devices
    assert dataclasses.replace(dev, mac="") == Vxlan("flannel.1", vni=1, port=8472, local=A("172.18.0.2"), mac="",
                                                   learning=False, mtu=1450, address=N("10.244.0.0/32"))
    assert net.mtu == 1450  # cbr0 and every pod's eth0
    assert net.pod_network is None  # each node's podCIDR stays its pods' subnet


def test_vxlan_routes_neighbours_and_fdb_name_every_remote_vtep():
    p = plan("vxlan")
    macs = {n.name: node_network(p, n).devices[0].mac for n in p.nodes}
    net = node_network(p, p.node("node1"))
    assert net.routes == (Route(N("10.244.1.0/24"), A("10.244.1.0"), "flannel.1", onlink=True),
                          Route(N("10.244.2.0/24"), A("10.244.2.0"), "flannel.1", onlink=True))
    assert net.neighbours == (Neighbour(A("10.244.1.0"), macs["node2"], "flannel.1"),
                              Neighbour(A("10.244.2.0"), macs["node3"], "flannel.1"))
    assert net.fdb == (Fdb(macs["node2"], A("172.18.0.3"), "flannel.1"),
                       Fdb(macs["node3"], A("172.18.0.4"), "flannel.1"))


def test_vtep_macs_are_unicast_locally_administered_distinct_and_stable():
    p = plan("vxlan")
    macs = [node_network(p, n).devices[0].mac for n in p.nodes]
    assert len(set(macs)) == 3
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x01 == 0 and first & 0x02 == 0x02
    again = plan("vxlan", previous=p)
    assert [node_network(again, n).devices[0].mac for n in again.nodes] == macs


def test_vxlan_follows_nodes_coming_and_going():
    three = plan("vxlan")
    two = plan("vxlan", nodes=("node1", "node3"), previous=three)
    net = node_network(two, two.node("node1"))
    assert [r.dst for r in net.routes] == [three.node("node3").pod_cidr]
    assert [f.dst for f in net.fdb] == [three.node("node3").ip]
    assert [n.ip for n in net.neighbours] == [three.node("node3").pod_cidr.network_address]


def test_l2_joins_cbr0_to_one_segment_by_head_end_replication():
    p = plan("l2")
    net = node_network(p, p.node("node2"))
    (dev,) = net.devices
    assert (dev.name, dev.vni, dev.port, dev.local, dev.learning, dev.master, dev.address, dev.mtu) == \
        ("vxlan0", 1, 4789, A("172.18.0.3"), True, "cbr0", None, 1450)
    assert net.fdb == (Fdb("00:00:00:00:00:00", A("172.18.0.2"), "vxlan0"),
                       Fdb("00:00:00:00:00:00", A("172.18.0.4"), "vxlan0"))
    assert net.routes == () and net.neighbours == ()  # pods find each other by ARP
    assert net.pod_network == N("10.244.0.0/16") and net.mtu == 1450


def test_every_backend_keeps_the_routes_via_the_underlays_router():
    for backend in BACKENDS:
        p = plan(backend)
        via_router = [r for r in node_routes(p, p.node("node1")) if r.via == A("172.18.0.253")]
        assert [r.dst for r in via_router] == [N("10.96.0.0/16"), N("172.18.0.254/32"), N("172.18.0.252/32")]


def test_a_backend_switch_rewires_the_pods_and_says_what_it_rebuilds():
    host_gw = plan("host-gw")
    vxlan = plan("vxlan", previous=host_gw)
    l2 = plan("l2", previous=vxlan)
    assert not pods_rewired(None, host_gw) and not pods_rewired(host_gw, plan("host-gw", previous=host_gw))
    assert pods_rewired(host_gw, vxlan) and pods_rewired(vxlan, l2)
    assert switch_summary(host_gw, vxlan) == (
        "networking.backend changed from host-gw to vxlan: every node's pod network rebuilt (flannel.1 made), "
        "every pod made anew on it (MTU 1500 -> 1450)")
    assert switch_summary(vxlan, l2) == (
        "networking.backend changed from vxlan to l2: every node's pod network rebuilt (flannel.1 removed and "
        "vxlan0 made), every pod made anew on it (MTU 1450, one subnet 10.244.0.0/16)")
    assert switch_summary(l2, plan("host-gw", previous=l2)) == (
        "networking.backend changed from l2 to host-gw: every node's pod network rebuilt (vxlan0 removed), "
        "every pod made anew on it (MTU 1450 -> 1500, each node's podCIDR its own subnet)")


@pytest.mark.parametrize("written, backend", [("", "host-gw"), ("  backend: vxlan\n", "vxlan"),
                                              ("  backend: l2\n", "l2")])
def test_the_cluster_config_chooses_the_backend(tmp_path, written, backend):
    path = tmp_path / "cluster.yaml"
    path.write_text("apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\nnetworking:\n"
                    "  kubeProxyMode: iptables\n" + written)
    assert load_model([str(path)]).cluster.backend == backend


def test_dry_run_shows_a_backend_switch():
    host_gw = plan("host-gw", nodes=("node1", "node2"))
    got = changes(host_gw, plan("vxlan", nodes=("node1", "node2"), previous=host_gw))
    assert "+ flannel.1 (vxlan id 1 dstport 8472 local 172.18.0.2 nolearning mtu 1450) in lab.node.node1" \
        in got["links"]
    assert got["routes"] == [
        "+ 10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink in lab.node.node1",
        "- 10.244.1.0/24 via 172.18.0.3 in lab.node.node1",
        "+ 10.244.0.0/24 via 10.244.0.0 dev flannel.1 onlink in lab.node.node2",
        "- 10.244.0.0/24 via 172.18.0.2 in lab.node.node2"]
    assert changes(host_gw, plan("host-gw", nodes=("node1", "node2"), previous=host_gw))["links"] == []


def test_vxlan_nodes_carry_flanneld_s_annotations():
    """As flanneld writes them (pkg/subnet/kube/kube.go; backend-data is vxlanLeaseAttrs marshalled
    by Go's encoding/json, VtepMAC through hardwareAddr.MarshalJSON)."""
    p = plan("vxlan")
    node1 = p.node("node1")
    mac = node_network(p, node1).devices[0].mac
    assert output.node_object(p, node1)["metadata"]["annotations"] == {
        "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"%s"}' % mac,
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/public-ip": "172.18.0.2"}
    for backend in ("host-gw", "l2"):
        q = plan(backend)
        assert "annotations" not in output.node_object(q, q.node("node1"))["metadata"]


def test_describe_shows_a_routes_flags_as_ip_route_does():
    # `ip -json route` of a vxlan node: the route's flags come last, as `ip route` prints them
    assert route_line({"dst": "10.244.1.0/24", "gateway": "10.244.1.0", "dev": "flannel.1", "flags": ["onlink"]}) \
        == "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink"
    assert route_line({"dst": "10.244.0.0/24", "dev": "cbr0", "protocol": "kernel", "scope": "link",
                       "prefsrc": "10.244.0.1", "flags": []}) == \
        "10.244.0.0/24 dev cbr0 proto kernel scope link src 10.244.0.1"
