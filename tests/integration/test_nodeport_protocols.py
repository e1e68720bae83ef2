"""One NodePort for the TCP and the UDP port of one port number (the API server's allocation:
53/TCP and 53/UDP of a Service share it, allocated or written on both), answering over both
protocols from outside the cluster in both proxy modes; and a named targetPort resolved by name
and protocol (a TCP Service port is no way to a container's UDP port of that name)."""
from __future__ import annotations

import json

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down, wait_for

# `python3 -c CLIENT IP PORT PROTO`: agnhost serve-hostname's answer over TCP (it writes its
# hostname and closes) or UDP (any datagram), or the error.
CLIENT = """
import socket, sys
ip, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    if proto == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(b"hostname", (ip, port))
        print(s.recv(512).decode().strip())
    else:
        s = socket.create_connection((ip, port), timeout=3)
        print(s.recv(512).decode().strip())
except OSError as e:
    print(type(e).__name__)
"""


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request, host_before):
    lab = Lab(new_lab_name("np"))
    with torn_down(lab.name):
        lab("up", "--proxy-mode", request.param, str(MANIFESTS / "nodeport-protocols.yaml"))
        lab.mode = request.param
        lab.svc = {s["metadata"]["name"]: s for s in json.loads(lab("get", "svc", "-o", "json").stdout)["items"]}
        lab.node_ips = {n["metadata"]["name"]: n["status"]["addresses"][0]["address"]
                        for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]}
        yield lab


def ask(lab: Lab, node: str, port: int, proto: str) -> str:
    return lab.exec("external", "python3", "-c", CLIENT, lab.node_ips[node], str(port), proto).stdout.strip()


def node_ports(lab: Lab, svc: str) -> dict[str, int]:
    return {f"{p['port']}/{p['protocol']}": p.get("nodePort") for p in lab.svc[svc]["spec"]["ports"]}


def test_an_allocated_node_port_is_shared_by_53_tcp_and_udp(lab):
    ports = node_ports(lab, "dns-auto")
    assert set(ports) == {"53/UDP", "53/TCP"} and ports["53/UDP"] == ports["53/TCP"]
    assert 30000 <= ports["53/TCP"] <= 32767 and ports["53/TCP"] != 30053
    row = next(l for l in lab("get", "svc", "dns-auto").stdout.splitlines() if l.startswith("dns-auto"))
    assert f"53:{ports['53/UDP']}/UDP,53:{ports['53/TCP']}/TCP" in row.split()


def test_the_shared_node_port_answers_over_tcp_and_udp_from_outside(lab):
    port = node_ports(lab, "dns-auto")["53/TCP"]
    # the pod sits on node2: node1 forwards, node2 delivers locally; both protocols on each
    for node in ("node1", "node2"):
        for proto in ("udp", "tcp"):
            assert wait_for(lambda node=node, proto=proto: ask(lab, node, port, proto) == "dns",
                            f"{proto} {node}:{port}", timeout=20)


def test_a_node_port_written_on_both_protocols_answers_on_both(lab):
    assert node_ports(lab, "dns-fixed") == {"53/UDP": 30053, "53/TCP": 30053}
    assert ask(lab, "node1", 30053, "udp") == "dns"
    assert ask(lab, "node1", 30053, "tcp") == "dns"


def test_a_named_target_port_of_the_other_protocol_is_no_endpoint(lab):
    ep = json.loads(lab("get", "endpoints", "dns-cross", "-o", "json").stdout)
    assert ep.get("subsets", []) == []
    auto = json.loads(lab("get", "endpoints", "dns-auto", "-o", "json").stdout)
    assert [(p["name"], p["port"], p["protocol"]) for s in auto["subsets"] for p in s["ports"]] == \
        [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
    # TCP to its NodePort finds a Service without endpoints: refused, as kube-proxy rejects it
    port = node_ports(lab, "dns-cross")["53/TCP"]
    assert ask(lab, "node1", port, "tcp") == "ConnectionRefusedError"


def test_up_again_with_a_new_service_listed_first_keeps_the_running_ones(lab, tmp_path):
    """(last: it changes the lab) A running Service keeps its ClusterIP and NodePorts when a
    new one comes first in the manifests; the new one gets free ones."""
    before = {name: (s["spec"]["clusterIP"], node_ports(lab, name)) for name, s in lab.svc.items()}
    first = tmp_path / "first.yaml"
    first.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: aaa}\nspec:\n  type: NodePort\n"
                     "  selector: {app: dns}\n  ports:\n  - {name: dns, port: 53, protocol: UDP}\n"
                     "  - {name: dns-tcp, port: 53, protocol: TCP}\n---\n"
                     + (MANIFESTS / "nodeport-protocols.yaml").read_text())
    lab("up", "--proxy-mode", lab.mode, str(first))
    items = {s["metadata"]["name"]: s for s in json.loads(lab("get", "svc", "-o", "json").stdout)["items"]}
    lab.svc = items
    assert {name: (items[name]["spec"]["clusterIP"], node_ports(lab, name)) for name in before} == before
    new = node_ports(lab, "aaa")
    taken = {np for _, ports in before.values() for np in ports.values() if np}
    assert new["53/UDP"] == new["53/TCP"] and new["53/TCP"] not in taken
    assert items["aaa"]["spec"]["clusterIP"] not in {ip for ip, _ in before.values()}
    port = node_ports(lab, "dns-auto")["53/TCP"]
    for proto in ("udp", "tcp"):
        assert ask(lab, "node1", port, proto) == "dns"
        assert wait_for(lambda proto=proto: ask(lab, "node1", new["53/TCP"], proto) == "dns", f"{proto} aaa",
                        timeout=20)
