"""The vxlan and l2 backends with real packets, in both proxy modes: pod to pod across nodes
without NAT, a Service and DNS from a pod, `external` through a NodePort, the encapsulation seen
on a node's underlay interface by a packet socket, ARP across the l2 segment, the MTUs, a
switch of backend on the running lab, and `down` leaving nothing (the host untouched)."""
from __future__ import annotations

import json
import socket
import struct
import subprocess
import time

import pytest

from kubenet_lab.kernel.nsenter import in_netns
from kubenet_lab.plan import naming

from .conftest import MANIFESTS, Lab, host_snapshot, lab_namespaces, lab_processes, new_lab_name, torn_down

CLUSTER = "apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\nnetworking:\n  backend: {backend}\n"
NODE1_IP, NODE2_IP = "172.18.0.2", "172.18.0.3"
ETH_P_ALL, ETH_P_IP, ETH_P_ARP = 0x0003, 0x0800, 0x0806


@pytest.fixture(scope="module", params=[("vxlan", "iptables"), ("vxlan", "nftables"),
                                        ("l2", "iptables"), ("l2", "nftables")], ids=lambda p: "-".join(p))
def blab(request, tmp_path_factory, host_before):
    backend, mode = request.param
    cluster = tmp_path_factory.mktemp(backend) / "cluster.yaml"
    cluster.write_text(CLUSTER.format(backend=backend))
    lab = Lab(new_lab_name("k"))
    lab.backend, lab.mode, lab.cluster = backend, mode, cluster
    with torn_down(lab.name):
        lab("up", str(cluster), str(MANIFESTS / "backends.yaml"), "--proxy-mode", mode)
        yield lab


def ipj(netns: str, *args: str):
    return json.loads(subprocess.run(["ip", "-n", netns, "-j", *args], capture_output=True, text=True,
                                     check=True).stdout or "[]")


def node(lab: Lab, name: str) -> str:
    return naming.node_netns(lab.name, name)


def pod_ns(lab: Lab, name: str) -> str:
    return f"{lab.name}.pod.default.{name}"


def link(netns: str, name: str) -> dict:
    (found,) = ipj(netns, "-d", "link", "show", name)
    return found


def wget(lab: Lab, target: str, url: str) -> str:
    return lab.exec(target, "wget", "-qO-", "-T", "10", url).stdout.strip()


def packet_socket(netns: str, ifname: str) -> socket.socket:
    """An AF_PACKET socket on `ifname` inside `netns`: it sees every frame sent and received there."""
    with in_netns(netns):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    s.settimeout(0.5)
    return s


def vxlan_frames(s: socket.socket, port: int, want, seconds: float = 15):
    """The first (outer IPv4 src, dst, VNI, inner frame) of a UDP `port` frame seen on `s` that
    `want(inner)` accepts; None when none came."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = s.recv(65535)
        except socket.timeout:
            continue
        if struct.unpack("!H", frame[12:14])[0] != ETH_P_IP or frame[23] != socket.IPPROTO_UDP:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = 14 + ihl
        if struct.unpack("!H", frame[udp + 2:udp + 4])[0] != port:
            continue
        vxlan = frame[udp + 8:udp + 16]
        inner = frame[udp + 16:]
        if want(inner):
            return (socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34]),
                    int.from_bytes(vxlan[4:7], "big"), inner)
    return None


def inner_ipv4(inner: bytes) -> tuple[str, str] | None:
    if struct.unpack("!H", inner[12:14])[0] != ETH_P_IP:
        return None
    return socket.inet_ntoa(inner[26:30]), socket.inet_ntoa(inner[30:34])


def mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


# --- traffic -----------------------------------------------------------------------------------


def test_pod_to_pod_across_nodes_without_nat(blab):
    client, server = blab.ip("client"), blab.ip("s1")
    assert wget(blab, "client", f"http://{server}:8080/clientip").split(":")[0] == client
    assert wget(blab, "s2", f"http://{client}:8080/clientip").split(":")[0] == blab.ip("s2")


def test_a_service_and_dns_from_a_pod(blab):
    names = {wget(blab, "client", "http://srv.default.svc.cluster.local/hostname") for _ in range(6)}
    assert names <= {"s1", "s2"} and names
    # in-cluster traffic through a ClusterIP keeps the client's address (no masquerade)
    assert wget(blab, "client", "http://srv/clientip").split(":")[0] == blab.ip("client")


def test_external_through_a_node_port(blab):
    # node1 has no endpoint: the NodePort DNATs across nodes, through the backend
    names = {wget(blab, "external", f"http://{NODE1_IP}:30180/hostname") for _ in range(4)}
    assert names <= {"s1", "s2"} and names


# --- what each backend puts in the nodes -----------------------------------------------------


def test_mtus_and_marks(blab):
    mark = naming.mark(blab.name)
    device = "flannel.1" if blab.backend == "vxlan" else "vxlan0"
    for name in ("node1", "node2"):
        dev = link(node(blab, name), device)
        assert dev["mtu"] == 1450 and dev["ifalias"] == mark
        assert link(node(blab, name), "cbr0")["mtu"] == 1450
    assert link(pod_ns(blab, "client"), "eth0")["mtu"] == 1450
    assert {l["mtu"] for l in ipj(node(blab, "node1"), "link", "show", "master", "cbr0")} == {1450}  # pods' veths


def test_vxlan_device_routes_neighbours_and_fdb(blab):
    if blab.backend != "vxlan":
        pytest.skip("flannel.1 is vxlan's")
    n1, n2 = node(blab, "node1"), node(blab, "node2")
    dev = link(n1, "flannel.1")
    data = dev["linkinfo"]["info_data"]
    assert (data["id"], data["port"], data["local"], data.get("learning")) == (1, 8472, NODE1_IP, False)
    remote_mac = link(n2, "flannel.1")["address"]
    cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"]
             for n in json.loads(blab("get", "nodes", "-o", "json").stdout)["items"]}
    cidr2 = cidrs["node2"]
    net1, net2 = cidrs["node1"].split("/")[0], cidr2.split("/")[0]
    # flannel.1 holds its own podCIDR's network address as a /32
    assert [(a["local"], a["prefixlen"]) for a in ipj(n1, "addr", "show", "flannel.1")[0]["addr_info"]
            if a["family"] == "inet"] == [(net1, 32)]
    routes = {r["dst"]: r for r in ipj(n1, "route")}
    assert routes[cidr2]["gateway"] == net2 and routes[cidr2]["dev"] == "flannel.1" \
        and "onlink" in routes[cidr2]["flags"]
    neigh = [e for e in ipj(n1, "neigh", "show", "dev", "flannel.1")]
    assert [(e["dst"], e["lladdr"], e["state"]) for e in neigh] == [(net2, remote_mac, ["PERMANENT"])]
    fdb = [e for e in json.loads(subprocess.run(["bridge", "-n", n1, "-j", "fdb", "show", "dev", "flannel.1"],
                                                capture_output=True, text=True, check=True).stdout)
           if e.get("dst")]
    assert [(e["mac"], e["dst"], e.get("state")) for e in fdb] == [(remote_mac, NODE2_IP, "permanent")]
    # where flanneld keeps that MAC: node2's annotation names the device the kernel holds
    node2 = json.loads(blab("get", "node", "node2", "-o", "json").stdout)
    assert json.loads(node2["metadata"]["annotations"]["flannel.alpha.coreos.com/backend-data"]) == {
        "VNI": 1, "VtepMAC": remote_mac}


def test_vxlan_encapsulation_on_the_underlay(blab):
    if blab.backend != "vxlan":
        pytest.skip("UDP 8472 is vxlan's")
    client, server = blab.ip("client"), blab.ip("s1")
    with packet_socket(node(blab, "node1"), "eth0") as s:
        wget(blab, "client", f"http://{server}:8080/hostname")
        seen = vxlan_frames(s, 8472, lambda inner: inner_ipv4(inner) == (client, server))
    assert seen is not None, "no UDP 8472 frame carrying the client's packet on node1's eth0"
    outer_src, outer_dst, vni, inner = seen
    assert (outer_src, outer_dst, vni) == (NODE1_IP, NODE2_IP, 1)
    assert mac(inner[0:6]) == link(node(blab, "node2"), "flannel.1")["address"]  # to the remote VTEP


def test_l2_pods_share_one_subnet_and_find_each_other_by_arp(blab):
    if blab.backend != "l2":
        pytest.skip("one broadcast domain is l2's")
    n1 = node(blab, "node1")
    client_ns, server = pod_ns(blab, "client"), blab.ip("s1")
    # one subnet: the podSubnet on cbr0 and on the pod; no route between nodes for pods
    assert {(a["local"], a["prefixlen"]) for a in ipj(client_ns, "addr", "show", "eth0")[0]["addr_info"]
            if a["family"] == "inet"} == {(blab.ip("client"), 16)}
    assert not [r for r in ipj(n1, "route") if r["dst"].startswith("10.244.") and r.get("gateway")]
    assert [r["dev"] for r in ipj(n1, "route") if r["dst"] == "10.244.0.0/16"] == ["cbr0"]
    # head-end replication: one all-zeros entry per remote node
    fdb = json.loads(subprocess.run(["bridge", "-n", n1, "-j", "fdb", "show", "dev", "vxlan0"],
                                    capture_output=True, text=True, check=True).stdout)
    assert [(e["dst"], e.get("state")) for e in fdb if e["mac"] == "00:00:00:00:00:00"] == [(NODE2_IP, "permanent")]
    server_mac = link(pod_ns(blab, "s1"), "eth0")["address"]
    subprocess.run(["ip", "-n", client_ns, "neigh", "flush", "to", server], check=True)
    with packet_socket(n1, "eth0") as s:
        blab.exec("client", "ping", "-c", "1", "-W", "5", server)
        # the ARP request went out on the tunnel as a broadcast, the pod's own frame
        arp = vxlan_frames(s, 4789, lambda inner: struct.unpack("!H", inner[12:14])[0] == ETH_P_ARP
                           and inner[0:6] == b"\xff" * 6 and socket.inet_ntoa(inner[38:42]) == server, seconds=5)
    assert arp is not None and arp[:3] == (NODE1_IP, NODE2_IP, 1)
    neigh = {e["dst"]: e for e in ipj(client_ns, "neigh", "show", "dev", "eth0")}
    assert neigh[server]["lladdr"] == server_mac  # the remote pod itself, not a router


def test_trace_follows_the_tunnel(blab):
    out = blab("trace", "client", "s1").stdout
    assert f"reaches {blab.ip('s1')}:80 (default/s1), it sees the client's {blab.ip('client')}" in out
    crossing = ("flannel.1 (VXLAN over the underlay) -> flannel.1 (node/node2)" if blab.backend == "vxlan" else
                "bridge cbr0 -> port vxlan0 (VXLAN over the underlay) -> bridge cbr0 (node/node2) -> eth0 (default/s1)")
    assert crossing in out


# --- switching and removal -----------------------------------------------------------------


def test_switching_backend_rebuilds_and_says_so(blab):
    other = "l2" if blab.backend == "vxlan" else "vxlan"
    switched = blab.cluster.with_name("switched.yaml")
    switched.write_text(CLUSTER.format(backend=other))
    out = blab("up", str(switched), str(MANIFESTS / "backends.yaml"), "--proxy-mode", blab.mode)
    assert f"networking.backend changed from {blab.backend} to {other}" in out.stderr
    gone, made = ("flannel.1", "vxlan0") if blab.backend == "vxlan" else ("vxlan0", "flannel.1")
    n1 = node(blab, "node1")
    assert [l["ifname"] for l in ipj(n1, "link", "show", "type", "vxlan")] == [made]
    assert wget(blab, "client", f"http://{blab.ip('s1')}:8080/clientip").split(":")[0] == blab.ip("client")
    out = blab("up", str(blab.cluster), str(MANIFESTS / "backends.yaml"), "--proxy-mode", blab.mode)
    assert f"networking.backend changed from {other} to {blab.backend}" in out.stderr
    assert [l["ifname"] for l in ipj(n1, "link", "show", "type", "vxlan")] == [gone]
    assert wget(blab, "client", f"http://{blab.ip('s1')}:8080/clientip").split(":")[0] == blab.ip("client")


def test_down_leaves_nothing(blab, host_before):
    blab("down")
    assert lab_namespaces(blab.name) == [] and lab_processes(blab.name) == []
    after = host_snapshot()
    for key, value in host_before.items():
        assert after[key] == value, f"the host's {key} changed"


def test_down_finds_the_backends_devices_with_the_state_lost(host_before, tmp_path):
    name = new_lab_name("v")
    lab = Lab(name)
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER.format(backend="vxlan"))
    with torn_down(name):
        lab("up", str(cluster), str(MANIFESTS / "backends.yaml"))
        assert link(naming.node_netns(name, "node1"), "flannel.1")["ifalias"] == naming.mark(name)
        subprocess.run(["rm", "-rf", f"/run/kubenet-lab/{name}"], check=True)
    assert lab_namespaces(name) == [] and lab_processes(name) == []
    assert host_snapshot() == host_before


NODES = "".join(f"---\napiVersion: v1\nkind: Node\nmetadata: {{name: node{i}}}\n" for i in (1, 2, 3))


def fdb_remotes(netns: str, dev: str) -> list[tuple[str, str]]:
    entries = json.loads(subprocess.run(["bridge", "-n", netns, "-j", "fdb", "show", "dev", dev],
                                        capture_output=True, text=True, check=True).stdout)
    return sorted((e["mac"], e["dst"]) for e in entries if e.get("dst") and e.get("state") == "permanent")


@pytest.mark.parametrize("backend", ["vxlan", "l2"])
def test_the_entries_follow_nodes_coming_and_going(backend, tmp_path):
    name = new_lab_name("n")
    lab = Lab(name)
    cluster, three, two = tmp_path / "cluster.yaml", tmp_path / "three.yaml", tmp_path / "two.yaml"
    cluster.write_text(CLUSTER.format(backend=backend))
    three.write_text(NODES)
    two.write_text(NODES.rsplit("---", 1)[0])
    n1 = naming.node_netns(name, "node1")
    dev = "flannel.1" if backend == "vxlan" else "vxlan0"
    with torn_down(name):
        lab("up", str(cluster), str(three), str(MANIFESTS / "backends.yaml"))
        macs = {n: link(naming.node_netns(name, n), dev)["address"] for n in ("node2", "node3")}
        if backend == "vxlan":
            assert fdb_remotes(n1, dev) == sorted([(macs["node2"], NODE2_IP), (macs["node3"], "172.18.0.4")])
            assert len(ipj(n1, "neigh", "show", "dev", dev)) == 2
        else:
            assert fdb_remotes(n1, dev) == [("00:00:00:00:00:00", NODE2_IP), ("00:00:00:00:00:00", "172.18.0.4")]
        lab("up", str(cluster), str(two), str(MANIFESTS / "backends.yaml"))
        if backend == "vxlan":
            assert fdb_remotes(n1, dev) == [(macs["node2"], NODE2_IP)]
            assert [e["lladdr"] for e in ipj(n1, "neigh", "show", "dev", dev)] == [macs["node2"]]
            assert [r["dst"] for r in ipj(n1, "route", "show", "dev", dev)] == [
                next(n["spec"]["podCIDR"] for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]
                     if n["metadata"]["name"] == "node2")]
        else:
            assert fdb_remotes(n1, dev) == [("00:00:00:00:00:00", NODE2_IP)]
        assert wget(lab, "client", f"http://{lab.ip('s1')}:8080/clientip").split(":")[0] == lab.ip("client")
