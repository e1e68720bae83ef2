"""From outside the cluster: the `external` client, the load balancer, LoadBalancer and externalIPs."""
from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network

import pytest

from .conftest import MANIFESTS, UDP_CLIENT, Lab, host_snapshot, lab_namespaces, new_lab_name, torn_down

CLIENT, BALANCER, SECOND = "172.18.0.254", "172.18.0.253", "172.18.0.252"
EXTERNAL_IP = "203.0.113.10"
REQUESTS = 30


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("o"))
    with torn_down(lab.name):
        lab("up", str(MANIFESTS / "outside.yaml"))
        yield lab


@pytest.fixture(scope="module")
def lb_ips(lab) -> dict[str, str]:
    """Service -> its load-balancer address, as `get svc -o json` shows it (read once: a CLI
    process costs about a second on a busy 2-core machine)."""
    items = json.loads(lab("get", "svc", "-o", "json").stdout)["items"]
    return {s["metadata"]["name"]: s["status"]["loadBalancer"]["ingress"][0]["ip"]
            for s in items if s["status"].get("loadBalancer", {}).get("ingress")}


@pytest.fixture(scope="module")
def nodes(lab) -> dict[str, dict]:
    return {n["metadata"]["name"]: n for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]}


def curl_many(lab: Lab, url: str, count: int = REQUESTS) -> list[str]:
    """`count` requests from the external client, one line per answer (one exec for all)."""
    script = f'for i in $(seq {count}); do curl -sS --max-time 10 "$0"; echo; done'
    return lab.exec("external", "sh", "-c", script, url).stdout.split()


def node_addresses(nodes: dict[str, dict]) -> set[str]:
    """Every address a node has: its underlay IP and its bridge's gateway address."""
    return {a for n in nodes.values() for a in (n["status"]["addresses"][0]["address"],
                                                 str(IPv4Network(n["spec"]["podCIDR"]).network_address + 1))}


def node_ip(nodes: dict[str, dict], name: str) -> str:
    return nodes[name]["status"]["addresses"][0]["address"]


def test_the_external_client_and_the_balancer_sit_on_the_underlay(lab, lb_ips, nodes):
    assert f"{CLIENT}/24" in lab.exec("external", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    routes = lab.exec("external", "ip", "route").stdout
    assert "default" not in routes
    assert f"{EXTERNAL_IP} via {node_ip(nodes, 'node1')} dev eth0" in routes
    # the second client: its own address, the same routes
    assert f"{SECOND}/24" in lab.exec("external2", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    added = lambda text: [r for r in text.splitlines() if "proto kernel" not in r]  # noqa: E731
    assert added(lab.exec("external2", "ip", "route").stdout) == added(routes)
    addrs = lab.exec("lb", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert f"{BALANCER}/24" in addrs
    for svc in ("lb-cluster", "lb-local", "lb-right", "lb-empty"):
        assert f"{lb_ips[svc]}/32" in addrs


def test_sysctls_and_return_routes_keep_replies_on_the_balancer(lab):
    def read(target, *keys):
        return lab.exec(target, "cat", *(f"/proc/sys/net/ipv4/{k}" for k in keys)).stdout.split()
    assert read("lb", "ip_forward", *(f"conf/{i}/send_redirects" for i in ("all", "default", "eth0"))) == \
        ["1", "0", "0", "0"]
    for node in ("node1", "node2"):
        assert read(f"node/{node}", *(f"conf/{i}/accept_redirects" for i in ("all", "default", "eth0"))) == \
            ["0", "0", "0"]
        node_routes = lab.exec(f"node/{node}", "ip", "route").stdout
        assert f"{CLIENT} via {BALANCER} dev eth0" in node_routes and f"{SECOND} via {BALANCER} dev eth0" in node_routes


def test_get_svc_shows_the_load_balancer_address(lab, lb_ips):
    ip = lb_ips["lb-cluster"]
    assert IPv4Address("172.18.0.192") <= IPv4Address(ip) <= IPv4Address("172.18.0.251")
    row = next(line for line in lab("get", "svc").stdout.splitlines() if line.startswith("lb-cluster "))
    assert row.split()[1:4] == ["LoadBalancer", row.split()[2], ip]
    ext = next(line for line in lab("get", "svc").stdout.splitlines() if line.startswith("ext "))
    assert ext.split()[3] == EXTERNAL_IP


def test_a_load_balancer_service_reaches_all_its_endpoints(lab, lb_ips):
    answers = curl_many(lab, f"http://{lb_ips['lb-cluster']}/hostname")
    assert len(answers) == REQUESTS and set(answers) == {"e1", "e2"}
    udp = lab.exec("external", "python3", "-c", UDP_CLIENT, lb_ips["lb-cluster"], "81", "hostname").stdout
    assert udp.strip() in ("e1", "e2")


def test_local_policy_preserves_the_client_address(lab, lb_ips):
    answers = curl_many(lab, f"http://{lb_ips['lb-local']}/clientip", 10)
    assert len(answers) == 10 and {a.rsplit(":", 1)[0] for a in answers} == {CLIENT}


def test_cluster_policy_shows_a_node_address(lab, lb_ips, nodes):
    answers = curl_many(lab, f"http://{lb_ips['lb-cluster']}/clientip", 10)
    sources = {a.rsplit(":", 1)[0] for a in answers}
    assert len(answers) == 10 and CLIENT not in sources
    assert sources <= node_addresses(nodes)


def test_local_policy_never_chooses_a_node_without_an_endpoint(lab, lb_ips, nodes):
    ip = lb_ips["lb-right"]
    table = lab.exec("lb", "nft", "list", "table", "ip", "kubenet-lb").stdout
    rule = next(line for line in table.splitlines() if f"ip daddr {ip} " in line)
    assert node_ip(nodes, "node2") in rule and node_ip(nodes, "node1") not in rule
    # node1 would drop what it got (no local endpoint): every answer arriving, all from node2's pods
    answers = curl_many(lab, f"http://{ip}/hostname")
    assert len(answers) == REQUESTS and set(answers) == {"r1", "r2"}


def test_local_policy_without_endpoints_is_refused_at_once(lab, lb_ips):
    proc = lab.exec("external", "curl", "-sS", "--max-time", "20", f"http://{lb_ips['lb-empty']}/", check=False)
    assert proc.returncode == 7, proc.stderr  # connection refused, not a timeout (28)


def test_a_load_balancer_without_node_ports_sends_straight_to_the_pods(lab, lb_ips, nodes):
    ip = lb_ips["lb-direct"]
    rows = {line.split()[0]: line.split() for line in lab("get", "svc").stdout.splitlines()[1:]}
    assert rows["lb-direct"][3:5] == [ip, "80/TCP,81/UDP"]  # no NodePorts
    routes = lab.exec("lb", "ip", "route").stdout
    for n in nodes.values():
        assert f"{n['spec']['podCIDR']} via {n['status']['addresses'][0]['address']} dev eth0" in routes
    answers = curl_many(lab, f"http://{ip}/hostname")
    assert len(answers) == REQUESTS and set(answers) == {"e1", "e2"}
    sources = {a.rsplit(":", 1)[0] for a in curl_many(lab, f"http://{ip}/clientip", 10)}
    assert sources == {CLIENT}  # no node in between: the pod sees the client itself
    udp = lab.exec("external", "python3", "-c", UDP_CLIENT, ip, "81", "hostname").stdout
    assert udp.strip() in ("e1", "e2")
    # a LoadBalancer of another class gets no address; its NodePort works all the same
    assert "lb-other-class" not in lb_ips and rows["lb-other-class"][3] == "<pending>"
    node_port = rows["lb-other-class"][4].split(":")[1].split("/")[0]
    answers = curl_many(lab, f"http://{node_ip(nodes, 'node1')}:{node_port}/hostname", 4)
    assert len(answers) == 4 and set(answers) <= {"e1", "e2"}


def test_external_ips_are_routed_to_a_node_and_answer(lab):
    answers = curl_many(lab, f"http://{EXTERNAL_IP}:8090/hostname", 10)
    assert len(answers) == 10 and set(answers) <= {"e1", "e2"}


def test_up_again_follows_the_load_balancer_services(lab, tmp_path, lb_ips):
    gone = lb_ips["lb-empty"]
    docs = (MANIFESTS / "outside.yaml").read_text().split("\n---\n")
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text("\n---\n".join(d for d in docs if "name: lb-empty" not in d and "externalIPs" not in d))
    try:
        out = lab("up", str(fewer)).stdout
        assert "0 namespaces created, 0 removed" in out
        assert f"{gone}/32" not in lab.exec("lb", "ip", "-4", "-o", "addr", "show", "eth0").stdout
        assert gone not in lab.exec("lb", "nft", "list", "table", "ip", "kubenet-lb").stdout
        assert EXTERNAL_IP not in lab.exec("external", "ip", "route").stdout
        assert set(curl_many(lab, f"http://{lb_ips['lb-right']}/hostname", 5)) <= {"r1", "r2"}
    finally:
        out = lab("up", str(MANIFESTS / "outside.yaml")).stdout
    assert "0 namespaces created" in out
    assert f"{gone}/32" in lab.exec("lb", "ip", "-4", "-o", "addr", "show", "eth0").stdout


def test_exec_into_the_outside_namespaces_names_them(lab):
    assert lab.exec("external", "hostname").stdout.strip() == "external"
    assert lab.exec("lb", "hostname").stdout.strip() == "lb"
    assert lab.exec("external2", "hostname").stdout.strip() == "external2"


def test_the_second_client_reaches_the_services_with_its_own_address(lab, lb_ips):
    out = lab.exec("external2", "curl", "-sS", "-m", "5", f"http://{lb_ips['lb-local']}/clientip").stdout
    assert out.startswith(f"{SECOND}:")  # Local: the client's own address, the reply back through the balancer


def test_down_removes_the_outside_namespaces_and_leaves_the_host_untouched(host_before):
    name = new_lab_name("od")
    lab = Lab(name)
    with torn_down(name):
        lab("up", str(MANIFESTS / "outside.yaml"))
        assert {f"{name}.external", f"{name}.lb", f"{name}.external2"} <= set(lab_namespaces(name))
    assert lab_namespaces(name) == []
    after = host_snapshot()
    for key, value in host_before.items():
        assert after[key] == value, f"the host's {key} changed"
