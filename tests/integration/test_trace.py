"""trace on live labs in both proxy modes: the predicted path against what the kernel did with a
real connection (--probe: the conntrack entries in every namespace it crossed)."""
from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down

CLIENT = "172.18.0.254"  # the external client


@pytest.fixture(scope="module", params=("iptables", "nftables"))
def lab(request, host_before):
    lab = Lab(new_lab_name("tr"))
    with torn_down(lab.name):
        lab("up", "--proxy-mode", request.param, str(MANIFESTS / "services.yaml"), str(MANIFESTS / "outside.yaml"))
        yield lab


@pytest.fixture(scope="module")
def pods(lab) -> dict[str, dict]:
    return lab.pods()


def trace(lab: Lab, *args: str, probe: bool = True) -> dict:
    proc = lab("trace", *args, "-o", "json", *(["--probe"] if probe else []), check=False)
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    if probe:
        assert proc.returncode == (0 if doc["probe"]["agrees"] is not False else 1)
    return doc


def agreed(doc: dict) -> dict:
    """The probe reached a predicted endpoint, masqueraded exactly where the prediction says."""
    probe = doc["probe"]
    assert probe["agrees"] is True, (probe, doc["endpoints"])
    assert probe["endpoint"] in doc["endpoints"]
    predicted = {b["masqueraded"] for b in doc["branches"] if b["endpoint"] == probe["endpoint"]}
    assert probe["masqueraded"] in predicted
    return probe


def hops(branch: dict) -> list[str]:
    return [h["name"] for h in branch["hops"]]


def test_pod_to_pod_on_one_node(lab, pods):
    doc = trace(lab, "c1", "be2:8080")
    (b,) = doc["branches"]
    assert hops(b) == ["default/c1", "node/node1", "default/be2"] and b["outcome"] == "delivered"
    assert b["seen_source"] == pods["c1"]["status"]["podIP"] and not b["masqueraded"]
    assert agreed(doc)["endpoint"] == f"{pods['be2']['status']['podIP']}:8080"


def test_pod_to_pod_across_nodes(lab, pods):
    doc = trace(lab, "c1", "be3:8080")
    (b,) = doc["branches"]
    assert hops(b) == ["default/c1", "node/node1", "node/node2", "default/be3"]
    assert b["hops"][1]["route"]["gateway"] == "172.18.0.3"
    assert agreed(doc)["entries"][-1][0] == "node/node2"


def test_cluster_ip_with_several_endpoints(lab, pods):
    backends = {f"{pods[p]['status']['podIP']}:8080" for p in ("be1", "be2", "be3")}
    reached = set()
    for _ in range(8):
        doc = trace(lab, "c1", "svc/be:http")
        assert set(doc["endpoints"]) == backends
        assert all(abs(p - 1 / 3) < 1e-6 for p in doc["endpoints"].values())
        assert not any(b["masqueraded"] for b in doc["branches"])
        reached.add(agreed(doc)["endpoint"])
    assert len(reached) >= 2  # 8 random picks among 3 all on one endpoint: 1 in 2187


def test_affinity_sticks_to_the_endpoint_the_client_reached(lab):
    first = agreed(trace(lab, "c2", "sticky"))
    again = trace(lab, "c2", "sticky")
    assert again["endpoints"] == {first["endpoint"]: pytest.approx(1.0)}
    assert any(nf["sticky"] for h in again["branches"][0]["hops"] for nf in h["netfilter"])
    assert agreed(again)["endpoint"] == first["endpoint"]


def test_a_pod_to_itself_through_its_service_is_masqueraded(lab, pods):
    doc = trace(lab, "be3", "solo")
    (b,) = doc["branches"]
    assert b["reached"] == "default/be3" and b["masqueraded"] and b["seen_source"] == "10.244.1.1"
    node = b["hops"][1]["netfilter"][0]
    assert node["masquerade"] and "hairpin" in node["why"]
    assert agreed(doc)["masqueraded"]


def test_node_to_node_port(lab):
    doc = trace(lab, "node/node1", "node/node2:30080")
    assert len(doc["endpoints"]) == 3 and all(b["masqueraded"] for b in doc["branches"])
    assert agreed(doc)["masqueraded"]


def test_external_to_a_load_balancer_cluster_policy_bounces_and_is_masqueraded(lab, pods):
    doc = trace(lab, "external", "svc/lb-cluster:http")
    assert {b["hops"][1]["name"] for b in doc["branches"]} == {"lb"}
    # through either node to either endpoint: a node without the chosen endpoint forwards it on
    bounced = [b for b in doc["branches"]
               if hops(b)[2] != f"node/{pods[b['reached'].split('/')[1]]['spec']['nodeName']}"]
    assert bounced and all(hops(b)[3].startswith("node/") for b in bounced)
    assert all(b["masqueraded"] and b["seen_source"] != CLIENT for b in doc["branches"])
    probe = agreed(doc)
    assert probe["entries"][0][0] == "lb" and probe["masqueraded"]


def test_external_to_a_load_balancer_local_policy_keeps_the_client_address(lab):
    doc = trace(lab, "external", "svc/lb-local")
    assert doc["branches"] and all(not b["masqueraded"] and b["seen_source"] == CLIENT for b in doc["branches"])
    assert all(len(b["hops"]) == 4 for b in doc["branches"])  # no second node
    assert any("externalTrafficPolicy Local" in nf["why"] for b in doc["branches"] for h in b["hops"]
               for nf in h["netfilter"])
    assert not agreed(doc)["masqueraded"]


def test_pod_to_the_cluster_dns(lab, pods):
    coredns = next(p for p in pods.values() if p["metadata"]["name"].startswith("coredns"))
    doc = trace(lab, "c1", "kube-dns.kube-system:dns")
    assert doc["packet"]["proto"] == "udp" and doc["packet"]["dport"] == 53
    assert doc["endpoints"] == {f"{coredns['status']['podIP']}:53": pytest.approx(1.0)}
    assert agreed(doc)["answered"] == "answered"


def test_a_service_without_endpoints_dies_at_the_reject_rule(lab):
    doc = trace(lab, "c1", "svc/empty")
    (b,) = doc["branches"]
    assert b["outcome"] == "rejected" and "rejected by" in b["hops"][-1]["end"]
    # refused; after an ICMP error the kernel rate-limited, the connect may time out instead
    assert doc["probe"]["entries"] == [] and doc["probe"]["agrees"] is True
    assert doc["probe"]["answered"] in ("refused", "timed out")


def test_icmp_reaches_a_pod_and_dies_at_a_cluster_ip(lab, pods):
    doc = trace(lab, "c1", "be3", "--proto", "icmp")
    (b,) = doc["branches"]
    assert b["endpoint"] == pods["be3"]["status"]["podIP"] and b["outcome"] == "delivered"
    assert agreed(doc)["answered"] == "echo reply"
    doc = trace(lab, "c1", "svc/be", "--proto", "icmp")
    assert not doc["endpoints"] and all(b["outcome"] != "delivered" for b in doc["branches"])
    assert doc["probe"]["agrees"] is True and doc["probe"]["answered"] != "echo reply"


def test_the_text_names_every_hop_and_endpoint(lab, pods):
    out = lab("trace", "c1", "svc/be").stdout
    assert "3 possible paths" in out and "node/node1" in out and "route  unicast via 10.244.0.1 dev eth0" in out
    for p in ("be1", "be2", "be3"):
        assert f"{pods[p]['status']['podIP']}:8080 33.3%" in out


def test_bad_input(lab):
    proc = lab("trace", "nosuch", "svc/be", check=False)
    assert proc.returncode == 1 and 'pods "nosuch" not found' in proc.stderr
    proc = lab("trace", "c1", "svc/be:99999", check=False)
    assert proc.returncode == 2 and "out of range" in proc.stderr


def test_etp_local_node_port_without_a_local_endpoint_is_dropped(lab):
    svc = json.loads(lab("get", "svc", "lb-right", "-o", "json").stdout)
    node_port = svc["spec"]["ports"][0]["nodePort"]  # r1 and r2 both run on node2
    doc = trace(lab, "external", f"node/node1:{node_port}")
    (b,) = doc["branches"]
    assert b["outcome"] == "dropped" and b["hops"][-1]["name"] == "node/node1"
    assert "dropped by" in b["hops"][-1]["end"]
    assert doc["probe"]["agrees"] is True and doc["probe"]["answered"] == "timed out"


def test_a_route_removed_by_hand_is_named(lab, pods):
    node1 = f"{lab.name}.node.node1"
    route = ["10.244.1.0/24", "via", "172.18.0.3"]
    subprocess.run(["ip", "netns", "exec", node1, "ip", "route", "del", *route], check=True)
    try:
        doc = trace(lab, "c1", "be3:8080")
        (b,) = doc["branches"]
        assert b["outcome"] == "unroutable" and b["hops"][-1]["name"] == "node/node1"
        assert "no route to " + pods["be3"]["status"]["podIP"] in b["hops"][-1]["end"]
        assert doc["probe"]["agrees"] is True
    finally:
        subprocess.run(["ip", "netns", "exec", node1, "ip", "route", "add", *route], check=True)


@pytest.fixture(scope="module", params=("iptables", "nftables"))
def hostports_lab(request, host_before):
    lab = Lab(new_lab_name("trh"))
    with torn_down(lab.name):
        lab("up", "--proxy-mode", request.param, str(MANIFESTS / "hostports.yaml"))
        yield lab


def test_host_ports_through_the_portmap_plugins_rules(hostports_lab):
    doc = trace(hostports_lab, "external", "node/node1:80")
    (b,) = doc["branches"]
    assert b["reached"] == "default/hp" and b["seen_source"] == CLIENT and not agreed(doc)["masqueraded"]
    doc = trace(hostports_lab, "hp", "node/node1:80")  # the pod reaching itself by its host port
    (b,) = doc["branches"]
    assert b["reached"] == "default/hp" and b["masqueraded"]
    assert "portmap" in b["hops"][1]["netfilter"][0]["why"] and agreed(doc)["masqueraded"]
