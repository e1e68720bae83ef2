"""kube-proxy's userspace mode for real: the article's portal rules in every node, the proxy the
lab's supervisor runs on their ports, strict round robin, the node as the backends' client, UDP,
live changes, mode switches both ways, and `down` leaving nothing.

One lab from manifests/userspace.yaml (kubeProxyMode: userspace in its Cluster config). Requests
go out of one client process per batch, each on a new socket, into the namespaces with
`ip netns exec`.
"""
from __future__ import annotations

import ipaddress
import json
import re
import subprocess

import pytest

from kubenet_lab.plan import naming

from .conftest import MANIFESTS, Lab, lab_processes, new_lab_name, torn_down, wait_for

HTTP_CLIENT = """
import socket, sys
host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for _ in range(n):
    try:
        with socket.create_connection((host, port), 10) as s:
            s.sendall(f"GET {path} HTTP/1.1\\r\\nHost: {host}\\r\\nConnection: close\\r\\n\\r\\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        print(data.partition(b"\\r\\n\\r\\n")[2].decode().strip() or "<empty>")
    except OSError as e:
        print(f"<{type(e).__name__}>")
"""

UDP_CLIENT = """
import socket, sys
ip, port, msg, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for _ in range(n):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(msg.encode(), (ip, port))
        try:
            print(s.recv(65535).decode())
        except OSError as e:
            print(f"<{type(e).__name__}>")
"""


class UserspaceLab(Lab):
    def __init__(self, name: str, manifests):
        super().__init__(name)
        self.manifests = manifests

    def json(self, kind: str) -> dict[str, dict]:
        return {i["metadata"]["name"]: i for i in json.loads(self("get", kind, "-o", "json").stdout)["items"]}

    def web_pods(self) -> set[str]:
        return {name for name, p in self.json("pods").items() if name.startswith("web-")
                and p["status"].get("phase") == "Running"}

    def cip(self, svc: str) -> str:
        return self.json("services")[svc]["spec"]["clusterIP"]

    def node_addresses(self, node: str) -> set[str]:
        """The node's own addresses a backend may see it by: its IP, and its pod bridge's."""
        n = self.json("nodes")[node]
        return {n["status"]["addresses"][0]["address"], str(ipaddress.ip_network(n["spec"]["podCIDR"])[1])}


def netns_of(lab: Lab, target: str) -> str:
    if target == "external":
        return naming.external_netns(lab.name)
    if target.startswith("node/"):
        return naming.node_netns(lab.name, target.split("/", 1)[1])
    return naming.pod_netns(lab.name, "default", target)


def run(lab: Lab, target: str, *cmd: str) -> str:
    proc = subprocess.run(["ip", "netns", "exec", netns_of(lab, target), *cmd], capture_output=True, text=True,
                          timeout=90)
    assert proc.returncode == 0, f"{' '.join(cmd)} in {target}: {proc.stderr}"
    return proc.stdout


def http(lab: Lab, target: str, host: str, port: int, path: str = "/hostname", n: int = 6) -> list[str]:
    return run(lab, target, "python3", "-c", HTTP_CLIENT, host, str(port), path, str(n)).splitlines()


def udp(lab: Lab, target: str, ip: str, port: int, msg: str = "hostname", n: int = 6) -> list[str]:
    return run(lab, target, "python3", "-c", UDP_CLIENT, ip, str(port), msg, str(n)).splitlines()


def reserved_ports(lab: Lab, node: str) -> set[int]:
    """The node's net.ipv4.ip_local_reserved_ports ("33000-33002,40000")."""
    out = set()
    for part in filter(None, run(lab, f"node/{node}", "cat", "/proc/sys/net/ipv4/ip_local_reserved_ports").strip()
                       .split(",")):
        first, _, last = part.partition("-")
        out |= set(range(int(first), int(last or first) + 1))
    return out


def assert_round_robin(got: list[str], backends: set[str]) -> None:
    """Each backend once per round, the same order every round."""
    k = len(backends)
    assert set(got[:k]) == backends, got
    assert all(got[i] == got[i % k] for i in range(len(got))), f"not a repeating order: {got}"


@pytest.fixture(scope="module")
def lab(host_before, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("userspace")
    manifests = tmp / "userspace.yaml"
    manifests.write_text((MANIFESTS / "userspace.yaml").read_text().replace("@DIR@", str(tmp)))
    name = new_lab_name("us")
    lab = UserspaceLab(name, manifests)
    lab.dir = tmp
    with torn_down(name):
        lab("up", str(manifests))
        yield lab
    assert not lab_processes(name), "down left the lab's supervisor behind"


def test_the_nodes_nat_table_is_the_articles_layout(lab):
    """`iptables -t nat -L` in a node: REDIRECT to the proxy port for containers, DNAT to the
    node's address and the same port for the node itself, as in the article's listing."""
    cip = lab.cip("web")
    node_ip = lab.json("nodes")["node1"]["status"]["addresses"][0]["address"]
    listing = run(lab, "node/node1", "iptables", "-t", "nat", "-L", "-n")
    container = re.search(rf"^REDIRECT\s+(?:6|tcp)\s+--\s+0\.0\.0\.0/0\s+{re.escape(cip)}\s+/\* default/web:http \*/ "
                          rf"tcp dpt:80 redir ports (\d+)$", listing, re.M)
    assert container, listing
    proxy_port = container.group(1)
    assert re.search(rf"^DNAT\s+(?:6|tcp)\s+--\s+0\.0\.0\.0/0\s+{re.escape(cip)}\s+/\* default/web:http \*/ "
                     rf"tcp dpt:80 to:{re.escape(node_ip)}:{proxy_port}$", listing, re.M), listing
    assert re.search(rf"/\* default/web:http \*/ tcp dpt:30080 redir ports {proxy_port}$", listing, re.M)
    chains = re.findall(r"^Chain (\S+)", listing, re.M)
    assert {"KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST", "KUBE-NODEPORT-CONTAINER",
            "KUBE-NODEPORT-HOST"} <= set(chains)
    assert not any(c.startswith(("KUBE-SVC-", "KUBE-SEP-", "KUBE-SERVICES")) for c in chains)
    prerouting = listing.split("Chain PREROUTING", 1)[1].split("Chain ", 1)[0]
    assert prerouting.index("KUBE-PORTALS-CONTAINER") < prerouting.index("KUBE-NODEPORT-CONTAINER")
    # the supervisor listens on that port in the node, TCP and UDP as the ports are
    listeners = run(lab, "node/node1", "ss", "-Htlnp")
    assert re.search(rf"0\.0\.0\.0:{proxy_port}\s.*python3", listeners), listeners
    # and keeps it from the node's own outgoing connections
    assert int(proxy_port) in reserved_ports(lab, "node1") and int(proxy_port) in reserved_ports(lab, "node2")


def test_six_requests_reach_three_endpoints_twice_in_a_repeating_order(lab):
    web = lab.web_pods()
    assert len(web) == 3
    assert_round_robin(http(lab, "c1", lab.cip("web"), 80), web)
    assert_round_robin(http(lab, "c2", lab.cip("web"), 80, n=9), web)


def test_the_backend_sees_the_node_not_the_pod(lab):
    client_ip = lab.json("pods")["c1"]["status"]["podIP"]
    seen = {line.rsplit(":", 1)[0] for line in http(lab, "c1", lab.cip("web"), 80, "/clientip", n=6)}
    assert seen <= lab.node_addresses("node1") and client_ip not in seen, seen


def test_nodeport_from_outside(lab):
    web = lab.web_pods()
    node2_ip = lab.json("nodes")["node2"]["status"]["addresses"][0]["address"]
    assert_round_robin(http(lab, "external", node2_ip, 30080), web)
    seen = {line.rsplit(":", 1)[0] for line in http(lab, "external", node2_ip, 30080, "/clientip", n=3)}
    assert seen <= lab.node_addresses("node2"), seen


def test_udp_through_the_cluster_ip_and_the_node_port(lab):
    web = lab.web_pods()
    assert_round_robin(udp(lab, "c1", lab.cip("web"), 8081), web)
    node1_ip = lab.json("nodes")["node1"]["status"]["addresses"][0]["address"]
    assert_round_robin(udp(lab, "external", node1_ip, 30081), web)
    # agnhost's UDP server echoes (lower case) what follows "echo "
    assert udp(lab, "c2", lab.cip("web"), 8081, "echo through the proxy", n=2) == ["through the proxy"] * 2


def test_the_nodes_own_traffic_is_dnated_to_its_proxy(lab):
    assert_round_robin(http(lab, "node/node2", lab.cip("web"), 80), lab.web_pods())


def test_client_ip_affinity_keeps_one_backend(lab):
    got = http(lab, "c1", lab.cip("sticky"), 80, n=6)
    assert len(set(got)) == 1 and got[0] in lab.web_pods(), got


def web_when(lab: UserspaceLab, ok, what: str) -> set[str]:
    """The running web pods, once `ok` says they are what is waited for."""
    return wait_for(lambda: (lambda w: w if ok(w) else None)(lab.web_pods()), what)


def test_scale_and_delete_change_the_backends(lab):
    lab("scale", "deployment", "web", "--replicas=2")
    two = web_when(lab, lambda w: len(w) == 2, "two web pods")
    assert_round_robin(http(lab, "c1", lab.cip("web"), 80), two)
    gone = sorted(two)[0]
    lab("delete", "pod", gone)
    now = web_when(lab, lambda w: len(w) == 2 and gone not in w, "a replacement")
    got = http(lab, "c1", lab.cip("web"), 80)
    assert gone not in got
    assert_round_robin(got, now)
    lab("scale", "deployment", "web", "--replicas=3")
    three = web_when(lab, lambda w: len(w) == 3, "three web pods")
    assert_round_robin(http(lab, "c2", lab.cip("web"), 80), three)


def test_readiness_takes_a_backend_out_and_back(lab):
    """The supervisor's proxies follow readiness as the other modes' rules do: `toggle` is ready
    only while its marker file exists."""
    cip = lab.cip("gated")
    marker = lab.dir / "ready"
    wait_for(lambda: set(http(lab, "c1", cip, 80, n=4)) == {"steady"}, "only steady to answer")
    marker.touch()
    try:
        wait_for(lambda: "toggle" in http(lab, "c1", cip, 80, n=2), "toggle to answer", timeout=30)
        assert_round_robin(http(lab, "c1", cip, 80), {"steady", "toggle"})
    finally:
        marker.unlink()
    wait_for(lambda: set(http(lab, "c1", cip, 80, n=4)) == {"steady"}, "toggle out again", timeout=30)


def test_a_service_without_endpoints_refuses(lab):
    lab("scale", "deployment", "web", "--replicas=0")
    try:
        assert http(lab, "c1", lab.cip("web"), 80, n=2) == ["<ConnectionRefusedError>"] * 2
    finally:
        lab("scale", "deployment", "web", "--replicas=3")
    web_when(lab, lambda w: len(w) == 3, "three web pods")


def test_mode_switches_both_ways_clear_the_other_modes_rules(lab):
    cip = lab.cip("web")
    proxy_ports = set(re.findall(r"--to-ports (\d+)", run(lab, "node/node1", "iptables-save", "-t", "nat")))
    assert len(proxy_ports) >= 3  # web:http, web:udp, sticky:http at least
    for mode in ("iptables", "nftables"):
        lab("up", str(lab.manifests), "--proxy-mode", mode)
        saved = run(lab, "node/node1", "iptables-save")
        assert "KUBE-PORTALS" not in saved and "KUBE-NODEPORT-" not in saved, saved
        listening = {m for m in re.findall(r"0\.0\.0\.0:(\d+)\s", run(lab, "node/node1", "ss", "-Hlntu"))}
        assert not listening & proxy_ports, listening
        assert not reserved_ports(lab, "node1")
        assert set(http(lab, "c1", cip, 80, n=12)) == lab.web_pods()
        lab("up", str(lab.manifests))  # back to the Cluster config's userspace
        assert "table ip kube-proxy" not in run(lab, "node/node1", "nft", "list", "tables")
        saved = run(lab, "node/node1", "iptables-save")
        assert "KUBE-PORTALS-CONTAINER" in saved and "KUBE-SVC-" not in saved and "KUBE-SERVICES" not in saved
        assert_round_robin(http(lab, "c1", cip, 80), lab.web_pods())


def test_check_describe_and_trace_know_the_mode(lab):
    """check's expectations hold (userspace knows no traffic policies), describe lists the portal
    rules, and trace says it does not follow this mode instead of failing."""
    web_pods = lab.web_pods()
    assert len(web_pods) == 3
    checked = lab("check")
    assert "expectations held" in checked.stdout + checked.stderr
    described = lab("describe", "svc", "web").stdout
    assert "-A KUBE-PORTALS-CONTAINER" in described and "REDIRECT --to-ports" in described
    traced = lab("trace", "c1", "svc/web", check=False)
    assert traced.returncode != 0 and "userspace mode, which trace does not follow" in traced.stderr
    assert "Traceback" not in traced.stderr
