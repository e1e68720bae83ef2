"""hostPort, as the CNI portmap plugin makes it (proxy/portmap.py), in both proxy modes: a pod's
hostPort answers at its node's address, from outside the cluster, from pods of either node and
from the pod itself (masqueraded); not at the other node's address; hostIP restricts the address;
the rules go with the pod."""
from __future__ import annotations

import json

import pytest

from .conftest import MANIFESTS, UDP_CLIENT, Lab, new_lab_name, torn_down

CLIENT = "172.18.0.254"


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request, host_before):
    lab = Lab(new_lab_name("hp"))
    with torn_down(lab.name):
        lab("up", "--proxy-mode", request.param, str(MANIFESTS / "hostports.yaml"))
        lab.mode = request.param
        lab.pod = lab.pods()
        lab.node_ips = {n["metadata"]["name"]: n["status"]["addresses"][0]["address"]
                        for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]}
        yield lab


def curl(lab: Lab, target: str, *urls: str) -> list[str]:
    """Each URL fetched from `target` in one exec: its body, or `failed` without an answer."""
    script = 'for u; do curl -sS --max-time 5 "$u" || printf failed; echo; done'
    return lab.exec(target, "sh", "-c", script, "sh", *urls, check=False).stdout.splitlines()


def test_from_outside_at_its_nodes_address_with_the_clients_own_address(lab):
    node1 = lab.node_ips["node1"]
    got = curl(lab, "external", f"http://{node1}/hostname", f"http://{node1}/clientip")
    assert got[0] == "hp"
    assert got[1].rsplit(":", 1)[0] == CLIENT  # DNAT only: the pod sees the client
    udp = lab.exec("external", "python3", "-c", UDP_CLIENT, node1, "81", "hostname").stdout
    assert udp.strip() == "hp"


def test_not_at_the_other_nodes_address(lab):
    assert curl(lab, "external", f"http://{lab.node_ips['node2']}/hostname") == ["failed"]


def test_from_pods_of_either_node_and_from_the_pod_itself(lab):
    node1 = lab.node_ips["node1"]
    far = curl(lab, "far", f"http://{node1}/hostname", f"http://{node1}/clientip")
    assert far[0] == "hp" and far[1].rsplit(":", 1)[0] == lab.pod["far"]["status"]["podIP"]
    assert curl(lab, "near", f"http://{node1}/hostname") == ["hp"]
    itself = curl(lab, "hp", f"http://{node1}/clientip")[0].rsplit(":", 1)[0]
    assert itself != lab.pod["hp"]["status"]["podIP"]  # hairpin: masqueraded, as the plugin does
    assert curl(lab, "node/node2", f"http://{node1}/hostname") == ["hp"]


def test_host_ip_restricts_the_address(lab):
    node1 = lab.node_ips["node1"]
    assert curl(lab, "external", f"http://{node1}:9090/hostname") == ["hp"]
    gateway = lab("get", "nodes", "node1", "-o", "jsonpath={.spec.podCIDR}").stdout.rsplit(".", 1)[0] + ".1"
    assert curl(lab, "near", f"http://{gateway}:9090/hostname", f"http://{gateway}/hostname") == ["failed", "hp"]


def test_the_plugins_own_rules_are_in_the_node(lab):
    if lab.mode == "iptables":
        nat = lab.exec("node/node1", "iptables-save", "-t", "nat").stdout
        assert "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT" in nat
        assert "CNI-DN-" in nat and "CNI-HOSTPORT-MASQ" in nat and "KUBE-SERVICES" in nat
        assert "CNI-" not in lab.exec("node/node2", "iptables-save").stdout
    else:
        table = lab.exec("node/node1", "nft", "list", "table", "ip", "cni_hostport").stdout
        assert "dnat to " + lab.pod["hp"]["status"]["podIP"] + ":8080" in table
        assert "cni_hostport" not in lab.exec("node/node2", "nft", "list", "tables").stdout


# One datagram from a fixed source port (argv: IP PORT SOURCE-PORT SECONDS), the answer or `timeout`.
UDP_FROM = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", int(sys.argv[3])))
s.settimeout(float(sys.argv[4]))
s.sendto(b"hostname", (sys.argv[1], int(sys.argv[2])))
try:
    print(s.recv(65535).decode())
except socket.timeout:
    print("timeout")
"""
HP3 = """
apiVersion: v1
kind: Pod
metadata: {name: hp3}
spec:
  nodeName: node1
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec", "--http-port=8080", "--udp-port=8081"]
    ports: [{containerPort: 8081, hostPort: 83, protocol: UDP}]
"""


def test_a_udp_flow_that_began_before_the_pod_reaches_it(lab):
    # as the plugin does after an ADD: the node's conntrack entries to the new UDP host port go,
    # else this flow (unanswered so far: nothing had the port) would miss the DNAT for 30 s more
    node1 = lab.node_ips["node1"]
    before = lab.exec("external", "python3", "-c", UDP_FROM, node1, "83", "40123", "1").stdout.strip()
    assert before == "timeout"
    lab("up", "--proxy-mode", lab.mode, "-", input=(MANIFESTS / "hostports.yaml").read_text() + "---" + HP3)
    after = lab.exec("external", "python3", "-c", UDP_FROM, node1, "83", "40123", "5").stdout.strip()
    assert after == "hp3"


HP2 = """
apiVersion: v1
kind: Pod
metadata: {name: hp2}
spec:
  nodeName: node1
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec", "--http-port=8080"]
    ports: [{containerPort: 8080, hostPort: 82}]
"""


def test_the_rules_come_and_go_with_the_pods(lab):
    # last: changes the lab. A second pod's ports are added to the node's rules, the first one's
    # removed with it, and the last one's take the plugin's chains (or table) with them.
    node1 = lab.node_ips["node1"]
    manifests = (MANIFESTS / "hostports.yaml").read_text()
    others = manifests.split("\n---\n", 1)[1]
    for text, answers in ((manifests + "---" + HP2, ["hp", "hp2"]), (others + "---" + HP2, ["failed", "hp2"]),
                          (others, ["failed", "failed"])):
        lab("up", "--proxy-mode", lab.mode, "-", input=text)
        assert curl(lab, "external", f"http://{node1}/hostname", f"http://{node1}:82/hostname") == answers
    if lab.mode == "iptables":
        assert "CNI-" not in lab.exec("node/node1", "iptables-save").stdout
    else:
        assert "cni_hostport" not in lab.exec("node/node1", "nft", "list", "tables").stdout
