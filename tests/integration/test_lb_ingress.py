"""A LoadBalancer Service whose manifest carries status.loadBalancer.ingress (as a cloud
controller writes it, as in a dump of a real cluster) keeps those addresses: the lab's balancer
answers on them, inside the lab only, one outside the node network too (the outside client
routes it through the balancer); pods reach it through their node's rules."""
from __future__ import annotations

import json

import pytest

from .conftest import MANIFESTS, Lab, host_snapshot, new_lab_name, torn_down

MANIFEST = MANIFESTS / "lb-ingress.yaml"


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request, host_before):
    lab = Lab(new_lab_name("ig"))
    with torn_down(lab.name):
        lab("up", str(MANIFEST), "--proxy-mode", request.param)
        lab.mode = request.param
        yield lab


def test_the_written_addresses_are_the_services_and_answer_from_outside_and_inside(lab):
    rows = {l.split()[0]: l.split() for l in lab("get", "svc").stdout.splitlines()[1:]}
    assert rows["cloud"][3] == "203.0.113.10" and rows["pooled"][3] == "172.18.0.200"
    status = json.loads(lab("get", "svc", "cloud", "-o", "json").stdout)["status"]
    assert status == {"loadBalancer": {"ingress": [{"ip": "203.0.113.10", "ipMode": "VIP"}]}}  # as 1.32+ defaults it
    webs = {p for p in lab.pods() if p.startswith("web-")}
    assert lab.exec("external", "curl", "-s", "-m", "5", "http://203.0.113.10/hostname").stdout in webs
    # externalTrafficPolicy Local: the pod sees the client's own address
    assert lab.exec("external", "curl", "-s", "-m", "5", "http://172.18.0.200/clientip").stdout.startswith(
        "172.18.0.254:")
    assert "203.0.113.10 via 172.18.0.253 dev eth0" in lab.exec("external", "ip", "route").stdout
    some_web = sorted(webs)[0]
    assert lab.exec(some_web, "curl", "-s", "-m", "5", "http://203.0.113.10/hostname").stdout in webs


def test_ipmode_proxy_addresses_are_the_balancers_alone_and_proxied(lab):
    """kube-proxy writes no rule for an ipMode Proxy address (TestLoadBalancerIngressRouteTypeProxy);
    the balancer proxies it: from outside and from a pod the Service answers, and its pod sees the
    balancer's address (172.18.0.253), not the client's, for all its externalTrafficPolicy Local."""
    status = json.loads(lab("get", "svc", "proxied", "-o", "json").stdout)["status"]
    assert status == {"loadBalancer": {"ingress": [{"ip": "203.0.113.20", "ipMode": "Proxy"},
                                                   {"ip": "172.18.0.201", "ipMode": "Proxy"}]}}
    dump = ["iptables-save"] if lab.mode == "iptables" else ["nft", "list", "table", "ip", "kube-proxy"]
    for node in ("node1", "node2"):
        rules = lab.exec(f"node/{node}", *dump).stdout
        assert "203.0.113.10" in rules  # a VIP's address is kube-proxy's
        assert "203.0.113.20" not in rules and "172.18.0.201" not in rules
        assert "203.0.113.20 via 172.18.0.253" in lab.exec(f"node/{node}", "ip", "route").stdout
    webs = {p for p in lab.pods() if p.startswith("web-")}
    for ip in ("203.0.113.20", "172.18.0.201"):
        assert lab.exec("external", "curl", "-s", "-m", "5", f"http://{ip}/clientip").stdout.startswith(
            "172.18.0.253:")
        some_web = sorted(webs)[0]
        assert lab.exec(some_web, "curl", "-s", "-m", "5", f"http://{ip}/hostname").stdout in webs


def test_the_host_knows_nothing_of_the_addresses(lab):
    host = host_snapshot()
    assert not any(ip in json.dumps(host) for ip in ("203.0.113.10", "172.18.0.200", "203.0.113.20", "172.18.0.201"))


def test_a_local_load_balancer_has_a_health_check_node_port_that_every_node_accepts(lab):
    spec = json.loads(lab("get", "svc", "pooled", "-o", "json").stdout)["spec"]
    hc = spec["healthCheckNodePort"]
    assert hc in range(30000, 32768) and hc not in {p["nodePort"] for p in spec["ports"]}
    assert "healthCheckNodePort" not in json.loads(lab("get", "svc", "cloud", "-o", "json").stdout)["spec"]
    if lab.mode == "iptables":  # kube-proxy's ACCEPT in every node, endpoint or not (nftables mode has none)
        for node in ("node1", "node2"):
            assert (f'-A KUBE-NODEPORTS -p tcp -m comment --comment "default/pooled health check node port" '
                    f"-m tcp --dport {hc} -j ACCEPT") in lab.exec(f"node/{node}", "iptables-save", "-t",
                                                                   "filter").stdout.splitlines()
