"""Localhost NodePorts as kube-proxy makes them (localhostNodePorts, on by default in iptables
mode): a NodePort answers on 127.0.0.1 inside a node, which needs route_localnet in the node's
namespace, and kubelet's KUBE-FIREWALL rule keeps out what that would let in (packets to
127.0.0.0/8 from a neighbour: kubernetes issue 90259). nftables mode has no localhost NodePorts.
Everything happens in the lab's own namespaces; the host's sysctls are never touched."""
from __future__ import annotations

import json
import re

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down

MANIFEST = MANIFESTS / "localhost-nodeport.yaml"
NODE_PORT = 30080

# Run in a pod: one TCP SYN to 127.0.0.1:PORT in an Ethernet frame to the node's bridge (as a
# neighbour on the node's network could send it), then what comes back from 127.0.0.1 in 1.5 s.
SYN = r'''
import random, socket, struct, sys, time
ifname, src_ip, dst_mac, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((ifname, 0))
def csum(b):
    b += b"\0" * (len(b) % 2)
    t = sum(struct.unpack(f"!{len(b) // 2}H", b)); t = (t >> 16) + (t & 0xFFFF); t += t >> 16
    return ~t & 0xFFFF
src, dst, sport = socket.inet_aton(src_ip), socket.inet_aton("127.0.0.1"), random.randint(20000, 60000)
tcp = struct.pack("!HHIIBBHHH", sport, port, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
s.send(bytes.fromhex(dst_mac.replace(":", "")) + s.getsockname()[4] + b"\x08\x00" + ip + tcp)
s.settimeout(0.2)
end = time.time() + 1.5
while time.time() < end:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    if f[23] == 6 and f[26:30] == dst and struct.unpack("!HH", f[34:38]) == (port, sport):
        print("RST" if f[47] & 0x04 else "SYN-ACK"); break
else:
    print("nothing")
'''


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request, host_before):
    lab = Lab(new_lab_name("lh"))
    with torn_down(lab.name):
        lab("up", str(MANIFEST), "--proxy-mode", request.param)
        yield lab, request.param


def web(lab: Lab) -> tuple[str, str, str]:
    """(pod, its IP, its node) of the web Deployment's one pod."""
    item = json.loads(lab("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"][0]
    return item["metadata"]["name"], item["status"]["podIP"], item["spec"]["nodeName"]


def test_a_nodeport_answers_on_the_nodes_localhost_in_iptables_mode_only(lab):
    lab, mode = lab
    for node in ("node1", "node2"):
        assert lab.exec(f"node/{node}", "sysctl", "-n", "net.ipv4.conf.all.route_localnet").stdout.strip() == \
            ("1" if mode == "iptables" else "0")
        got = lab.exec(f"node/{node}", "curl", "-s", "-m", "3", f"http://127.0.0.1:{NODE_PORT}/clientip", check=False)
        if mode == "iptables":
            # masqueraded: the pod sees the node (its bridge's address, or its own on the underlay), never 127.0.0.1
            assert got.returncode == 0 and not got.stdout.startswith("127."), got
            assert re.fullmatch(r"(10\.244\.\d+\.1|172\.18\.0\.\d+):\d+", got.stdout), got.stdout
        else:
            assert got.returncode == 7, got  # refused: nothing translates 127.0.0.1 in nftables mode
        # the node's own address answers in both modes
        assert lab.exec(f"node/{node}", "curl", "-s", "-m", "3", f"http://{node_ip(lab, node)}:{NODE_PORT}/hostname"
                        ).stdout == web(lab)[0]


def node_ip(lab: Lab, node: str) -> str:
    item = json.loads(lab("get", "node", node, "-o", "json").stdout)
    return next(a["address"] for a in item["status"]["addresses"] if a["type"] == "InternalIP")


def test_kube_firewall_keeps_a_neighbours_packets_to_localhost_out(lab):
    lab, mode = lab
    if mode != "iptables":
        pytest.skip("kube-proxy's nftables mode leaves route_localnet off: no guard needed")
    pod, ip, node = web(lab)
    links = json.loads(lab.exec(f"node/{node}", "ip", "-j", "link", "show", "cbr0").stdout)
    bridge_mac = links[0]["address"]
    lab.exec(f"node/{node}", "ping", "-c", "1", "-W", "2", ip)  # the node knows the pod's MAC: it could answer

    def syn() -> str:
        return lab.exec(pod, "python3", "-c", SYN, "eth0", ip, bridge_mac, "9").stdout.strip()

    assert syn() == "nothing"  # dropped by KUBE-FIREWALL before the node's TCP sees it
    rules = lab.exec(f"node/{node}", "iptables-save", "-t", "filter").stdout
    assert ('-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet '
            'connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP') in rules.splitlines()
    # without the guard, route_localnet lets the packet in: the node's TCP answers (RST: nothing listens)
    lab.exec(f"node/{node}", "iptables", "-D", "KUBE-FIREWALL", "1")
    try:
        assert syn() == "RST"
    finally:
        lab("up", str(MANIFEST), "--proxy-mode", "nftables")  # a mode switch reloads every rule...
        lab("up", str(MANIFEST), "--proxy-mode", "iptables")  # ...and back, with the guard
    assert syn() == "nothing"
