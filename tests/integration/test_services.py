"""Services for real, in both kube-proxy modes: ClusterIP, NodePort, affinity, traffic policies.

One lab per proxy mode (the module fixture is parametrized), built from a copy of
manifests/services.yaml so that a test can edit the manifests and run `up` again. Many requests
go out of one client process, into the namespaces with `ip netns exec` (see `run`).
"""
from __future__ import annotations

import ipaddress
import json
import re
import shutil
import string
import subprocess

import pytest

from kubenet_lab.plan import naming

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down

MODES = ("iptables", "nftables")
BACKENDS = {"be1", "be2", "be3"}  # be1, be2 on node1; be3 on node2
ON_NODE1 = {"be1", "be2"}
# Enough that missing one of three backends by chance is about 3 * (2/3)**40 = 3e-7.
SPREAD = 40

# Known product bug, reported to the lead: the nodes have no route to the service subnet (no
# default route, nothing for serviceSubnet), so a node's own connect() to a ClusterIP fails with
# ENETUNREACH before kube-proxy's OUTPUT DNAT runs, and a pod's packet to a ClusterIP that is not
# DNATed (no endpoints, or no local endpoint) gets "network unreachable" from the node's routing
# instead of kube-proxy's REJECT or DROP. Strict: once fixed, these XPASS and fail; remove the mark.

# Each request on a new socket: a new source port, so a new conntrack entry and a new balancing
# decision. One process sends them all (a process per request would cost more than the requests).
HTTP_CLIENT = """
import socket, sys
from urllib.parse import urlsplit
u, n, timeout = urlsplit(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
path = u.path + ("?" + u.query if u.query else "")
for _ in range(n):
    try:
        with socket.create_connection((u.hostname, u.port or 80), timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\\r\\nHost: {u.netloc}\\r\\nConnection: close\\r\\n\\r\\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        print(data.partition(b"\\r\\n\\r\\n")[2].decode())
    except OSError as e:
        print(f"<{type(e).__name__}>")
"""

UDP_CLIENT = """
import socket, sys
ip, port, msg, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
sport = int(sys.argv[5]) if len(sys.argv) > 5 else 0  # 0: a new port each time
for _ in range(n):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.bind(("0.0.0.0", sport))
        s.sendto(msg.encode(), (ip, port))
        try:
            print(s.recv(65535).decode())
        except OSError as e:
            print(f"<{type(e).__name__}>")
"""


class ServiceLab(Lab):
    """A lab that remembers its proxy mode and manifests, and caches what `get` says."""

    def __init__(self, name: str, mode: str, manifests):
        super().__init__(name)
        self.mode = mode
        self.manifests = manifests
        self._cache: dict[str, dict] = {}

    def up(self, mode: str | None = None):
        self._cache.clear()
        if mode:
            self.mode = mode
        return self("up", str(self.manifests), "--proxy-mode", self.mode)

    def _items(self, kind: str) -> dict:
        if kind not in self._cache:
            items = json.loads(self("get", kind, "-o", "json").stdout)["items"]
            self._cache[kind] = {i["metadata"]["name"]: i for i in items}
        return self._cache[kind]

    def ip(self, pod: str) -> str:
        return self._items("pods")[pod]["status"]["podIP"]

    def svc(self, name: str) -> dict:
        return self._items("services")[name]

    def cip(self, name: str) -> str:
        return self.svc(name)["spec"]["clusterIP"]

    def node_ip(self, node: str) -> str:
        return self._items("nodes")[node]["status"]["addresses"][0]["address"]

    def node_gateway(self, node: str) -> str:
        """The node's address on its pod bridge: the source of traffic it masquerades to local pods."""
        return str(ipaddress.ip_network(self._items("nodes")[node]["spec"]["podCIDR"])[1])

    def node_port(self, svc: str, port: str | None = None) -> int:
        ports = self.svc(svc)["spec"]["ports"]
        return next(p for p in ports if port is None or p.get("name") == port)["nodePort"]


@pytest.fixture(scope="module", params=MODES)
def lab(request, host_before, tmp_path_factory):
    """One lab per proxy mode, from a private copy of the manifests; removed whatever happened."""
    mode = request.param
    manifests = tmp_path_factory.mktemp(f"svc-{mode}") / "services.yaml"
    shutil.copy(MANIFESTS / "services.yaml", manifests)
    name = new_lab_name("sv")
    lab = ServiceLab(name, mode, manifests)
    with torn_down(name):
        lab.up()
        yield lab


def run(lab: Lab, target: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in a pod's or node's namespace with `ip netns exec`: the CLI's `exec` (tested
    in test_lab.py) costs a Python start and its imports per call, too much for this many probes."""
    if target.startswith("node/"):
        netns = naming.node_netns(lab.name, target.split("/", 1)[1])
    else:
        netns = naming.pod_netns(lab.name, "default", target)
    proc = subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} in {target} exited {proc.returncode}\n{proc.stderr}")
    return proc


def answers(lab: Lab, target: str, url: str, n: int = SPREAD, timeout: float = 10) -> list[str]:
    """n HTTP GETs from `target`, one answer (body, or <error>) per request."""
    return run(lab, target, "python3", "-c", HTTP_CLIENT, url, str(n), str(timeout)).stdout.splitlines()


def udp(lab: Lab, target: str, ip: str, port: int, msg: str, n: int = 1, sport: int = 0) -> list[str]:
    return run(lab, target, "python3", "-c", UDP_CLIENT, ip, str(port), msg, str(n), str(sport)).stdout.splitlines()


def curl_once(lab: Lab, target: str, url: str, max_time: float = 2) -> subprocess.CompletedProcess:
    return run(lab, target, "curl", "-sv", "--max-time", str(max_time), url, check=False)


def clientips(lab: Lab, target: str, url: str, n: int = 10) -> set[str]:
    return {a.rsplit(":", 1)[0] for a in answers(lab, target, url, n)}


# --- ClusterIP ---------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["c1", "c2"])
def test_every_backend_answers_through_the_cluster_ip_from_pods_on_both_nodes(lab, client):
    assert set(answers(lab, client, f"http://{lab.cip('be')}/hostname")) == BACKENDS


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_every_backend_answers_through_the_cluster_ip_from_the_nodes(lab, node):
    assert set(answers(lab, f"node/{node}", f"http://{lab.cip('be')}/hostname")) == BACKENDS


def test_client_ip_affinity_pins_a_client_to_one_backend(lab):
    for client in ("c1", "c2"):
        got = answers(lab, client, f"http://{lab.cip('sticky')}/hostname", n=15)
        assert len(set(got)) == 1 and got[0] in BACKENDS, f"{client}: {got}"


def test_a_pod_reaches_itself_through_its_own_service(lab):
    assert answers(lab, "be3", f"http://{lab.cip('solo')}/hostname", n=3) == ["be3"] * 3
    # masqueraded (to the node's bridge address), or the reply would skip the reverse DNAT
    assert clientips(lab, "be3", f"http://{lab.cip('solo')}/clientip", n=3) == {lab.node_gateway("node2")}
    # with other endpoints too: it lands on itself among them
    assert "be1" in answers(lab, "be1", f"http://{lab.cip('be')}/hostname")


def test_the_caller_pod_ip_is_preserved_through_a_cluster_ip(lab):
    for client in ("c1", "c2"):
        assert clientips(lab, client, f"http://{lab.cip('be')}/clientip", n=15) == {lab.ip(client)}


def test_udp_service_answers_from_every_backend(lab):
    got = udp(lab, "c1", lab.cip("be"), 8081, "hostname", n=SPREAD)
    assert set(got) == BACKENDS
    assert set(udp(lab, "c2", lab.cip("be"), 8081, "hostname", n=5)) <= BACKENDS


def test_a_service_without_endpoints_is_refused_at_once(lab):
    for target in ("c1", "c2", "node/node1"):
        proc = curl_once(lab, target, f"http://{lab.cip('empty')}/", max_time=20)
        # Refused (curl's 7, from the REJECT) rather than timed out (28, a SYN dropped)
        assert proc.returncode == 7, f"{target}: curl exited {proc.returncode}, wanted 7 (refused)\n{proc.stderr}"
        assert "Connection refused" in proc.stderr, f"{target}: {proc.stderr}"


def test_large_messages_come_back_intact(lab):
    # lower case: agnhost's UDP server lowercases what it receives, echo included
    msg = ((string.ascii_lowercase + string.digits) * 60)[:2000]
    got = answers(lab, "c1", f"http://{lab.cip('be')}/echo?msg={msg}", n=6)
    assert got == [msg] * 6
    assert udp(lab, "c2", lab.cip("be"), 8081, f"echo {msg}", n=6) == [msg] * 6


# --- traffic policies ----------------------------------------------------------------------------


def test_internal_traffic_policy_local_serves_only_same_node_clients(lab):
    url = f"http://{lab.cip('itp-local')}/hostname"
    assert answers(lab, "c1", url, n=10) == ["be1"] * 10
    # node2 has no local endpoint: kube-proxy drops (not rejects) the traffic, so it times out
    proc = curl_once(lab, "c2", url, max_time=1)
    assert proc.returncode == 28, f"curl exited {proc.returncode}, wanted 28 (dropped)\n{proc.stderr}"


def test_external_traffic_policy_local_uses_local_endpoints_and_keeps_the_client_ip(lab):
    port = lab.node_port("etp-local")
    node1, node2 = lab.node_ip("node1"), lab.node_ip("node2")
    assert set(answers(lab, "node/node2", f"http://{node1}:{port}/hostname", n=20)) == ON_NODE1
    assert answers(lab, "node/node1", f"http://{node2}:{port}/hostname", n=10) == ["be3"] * 10
    assert clientips(lab, "node/node2", f"http://{node1}:{port}/clientip") == {node2}
    assert clientips(lab, "node/node1", f"http://{node2}:{port}/clientip") == {node1}


def test_external_traffic_policy_local_from_a_pod_keeps_the_pod_ip(lab):
    port = lab.node_port("etp-one")  # its only endpoint, be1, is on node1
    assert clientips(lab, "c2", f"http://{lab.node_ip('node1')}:{port}/clientip") == {lab.ip("c2")}


def test_external_traffic_policy_local_without_local_endpoints_drops_outside_traffic(lab):
    proc = curl_once(lab, "node/node1", f"http://{lab.node_ip('node2')}:{lab.node_port('etp-one')}/", max_time=1)
    assert proc.returncode == 28, f"curl exited {proc.returncode}, wanted 28 (dropped)\n{proc.stderr}"


def test_cluster_policy_node_port_masquerades_outside_clients(lab):
    node1, node2 = lab.node_ip("node1"), lab.node_ip("node2")
    seen = clientips(lab, "node/node2", f"http://{node1}:{lab.node_port('be-np', 'http')}/clientip", n=20)
    assert node2 not in seen and seen <= {node1, lab.node_gateway("node1")}


# --- NodePort --------------------------------------------------------------------------------------


@pytest.mark.parametrize("client,node", [("node/node1", "node2"), ("node/node2", "node1"),
                                         ("c1", "node1"), ("c1", "node2"), ("c2", "node1")])
def test_node_port_is_reachable_on_every_node(lab, client, node):
    assert lab.node_port("be-np", "http") == 30080
    url = f"http://{lab.node_ip(node)}:30080/hostname"
    assert set(answers(lab, client, url)) == BACKENDS


def test_an_allocated_node_port_is_reachable_too(lab):
    port = lab.node_port("be-np", "alt")
    assert 30000 <= port <= 32767 and port != 30080
    assert set(answers(lab, "c2", f"http://{lab.node_ip('node1')}:{port}/hostname")) == BACKENDS
    assert set(answers(lab, "node/node1", f"http://{lab.node_ip('node2')}:{port}/hostname")) == BACKENDS


# --- get -------------------------------------------------------------------------------------------


def test_get_services_json_and_ports_column(lab):
    spec = lab.svc("be-np")["spec"]
    assert spec["type"] == "NodePort" and spec["sessionAffinity"] == "None"
    assert re.fullmatch(r"10\.96\.\d+\.\d+", spec["clusterIP"])
    alloc = lab.node_port("be-np", "alt")
    assert spec["ports"] == [
        {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
        {"name": "alt", "port": 8080, "targetPort": "http", "nodePort": alloc, "protocol": "TCP"},
    ]
    be = lab.svc("be")["spec"]
    assert be["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p["targetPort"], p["protocol"], "nodePort" in p) for p in be["ports"]] == \
        [("http", 80, "http", "TCP", False), ("udp", 8081, 8081, "UDP", False)]
    assert lab.svc("sticky")["spec"]["sessionAffinity"] == "ClientIP"
    rows = {line.split()[0]: line.split() for line in lab("get", "svc").stdout.splitlines()[1:]}
    assert rows["be-np"][1] == "NodePort" and rows["be-np"][2] == spec["clusterIP"]
    assert rows["be-np"][4] == f"80:30080/TCP,8080:{alloc}/TCP"
    assert rows["be"][4] == "80/TCP,8081/UDP"


# --- changes to a running lab (last: they rebuild parts of it) ------------------------------------


def _endpoints(lab: ServiceLab, svc: str) -> dict[str, str]:
    """pod name -> IP, over every subset of the service's Endpoints."""
    ep = json.loads(lab("get", "ep", svc, "-o", "json").stdout)
    return {a["targetRef"]["name"]: a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses", [])}


def test_endpoints_follow_a_pod_removed_from_the_manifests(lab):
    original = lab.manifests.read_text()
    docs = original.split("\n---\n")
    kept = [d for d in docs if "{name: be2," not in d]
    assert len(kept) == len(docs) - 1
    gone = lab.ip("be2")
    try:
        lab.manifests.write_text("\n---\n".join(kept))
        lab.up()
        eps = _endpoints(lab, "be")
        assert set(eps) == {"be1", "be3"} and gone not in eps.values()
        assert gone not in lab("get", "ep", "be").stdout
        assert set(answers(lab, "c1", f"http://{lab.cip('be')}/hostname")) == {"be1", "be3"}
        assert set(udp(lab, "c2", lab.cip("be"), 8081, "hostname", n=20)) == {"be1", "be3"}
    finally:
        lab.manifests.write_text(original)
        lab.up()
    assert set(_endpoints(lab, "be")) == BACKENDS


def test_a_udp_flow_pinned_to_a_removed_endpoint_moves_to_a_live_one(lab):
    """kube-proxy's conntrack cleanup: datagrams from one source port are one flow, held by
    conntrack on the endpoint it first reached; when that endpoint goes, the flow's entry must
    go too, or the datagrams keep going to a dead address."""
    sport = 41999
    pinned, again = udp(lab, "c2", lab.cip("be"), 8081, "hostname", n=2, sport=sport)
    assert pinned in BACKENDS and again == pinned  # one flow, one endpoint
    original = lab.manifests.read_text()
    docs = original.split("\n---\n")
    kept = [d for d in docs if f"{{name: {pinned}," not in d]
    assert len(kept) == len(docs) - 1
    try:
        lab.manifests.write_text("\n---\n".join(kept))
        lab.up()
        moved = udp(lab, "c2", lab.cip("be"), 8081, "hostname", n=3, sport=sport)
        assert set(moved) <= BACKENDS - {pinned} and len(set(moved)) == 1, moved
    finally:
        lab.manifests.write_text(original)
        lab.up()
    assert set(answers(lab, "c1", f"http://{lab.cip('be')}/hostname")) == BACKENDS


def _assert_rules_of(lab: ServiceLab, mode: str) -> None:
    """Only `mode`'s rules on every node: the other mode's are gone."""
    for node in ("node/node1", "node/node2"):
        nat = run(lab, node, "iptables-save", "-t", "nat").stdout
        nft = run(lab, node, "nft", "list", "table", "ip", "kube-proxy", check=False)
        if mode == "nftables":
            assert ":KUBE-SERVICES" not in nat and "KUBE-" not in run(lab, node, "iptables-save").stdout
            assert nft.returncode == 0 and "map service-ips" in nft.stdout
        else:
            assert ":KUBE-SERVICES" in nat and "KUBE-SVC-" in nat
            assert nft.returncode != 0, f"{node} still has table ip kube-proxy:\n{nft.stdout}"
    # and as a user sees it
    assert (":KUBE-SERVICES" in lab.exec("node/node1", "iptables-save", "-t", "nat").stdout) == (mode == "iptables")


def test_changing_the_proxy_mode_replaces_the_rules_on_every_node(lab):
    original = lab.mode
    other = next(m for m in MODES if m != original)
    try:
        out = lab.up(other).stdout
        assert f"kube-proxy mode {other}" in out
        _assert_rules_of(lab, other)
        assert set(answers(lab, "c2", f"http://{lab.cip('be')}/hostname")) == BACKENDS
        assert set(answers(lab, "node/node2", f"http://{lab.node_ip('node1')}:30080/hostname")) == BACKENDS
    finally:
        lab.up(original)
    _assert_rules_of(lab, original)
    assert set(answers(lab, "c1", f"http://{lab.cip('be')}/hostname")) == BACKENDS
