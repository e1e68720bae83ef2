"""The external load balancer's rules (proxy/lb.py) and the outside hosts' plan (fabric/outside.py)."""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from kubenet_lab.app.query import resolve_target
from kubenet_lab.model.objects import Endpoint, PlannedPod
from kubenet_lab.proxy.lb import TABLE, HealthCheck, forwards, health_checks, passes, passing, render_lb
from kubenet_lab.fabric import outside
from tests.unit.test_render_fixtures import NODE1_IP, NODE2_IP, ep, plan, port, service

LB1, LB2 = "172.18.0.192", "172.18.0.193"
ON1, ON2 = ep("10.244.1.10", node="node1"), ep("10.244.2.10", node="node2")
DNAT = re.compile(r"ip daddr (\S+) (\w+) dport (\d+) dnat ip to numgen random mod (\d+) map \{ (.*) \} "
                  r'comment "([^"]+)"$')


def lb(name, *ports, policy="Cluster", ip=LB1, **kw):
    return service("default", name, "10.96.0.50", *ports, type="LoadBalancer", load_balancer_ips=(ip,),
                   external_traffic_policy=policy, **kw)


def dnats(text):
    """(ip, proto, port) -> (spn, {slot: (node ip, node port)}), checking numgen's modulus."""
    out = {}
    for line in text.splitlines():
        if "dnat" not in line:
            continue
        m = DNAT.search(line.strip())
        assert m, line
        ip, proto, number, mod, targets, spn = m.groups()
        slots = {}
        for t in targets.split(", "):
            slot, _, dest = t.partition(" : ")
            addr, _, node_port = dest.partition(" . ")
            slots[int(slot)] = (addr, int(node_port))
        assert sorted(slots) == list(range(int(mod)))
        out[(ip, proto, int(number))] = (spn, slots)
    return out


def chain(text, name):
    return text.split(f"chain {name} {{", 1)[1].split("}", 1)[0]


def test_cluster_policy_sends_to_every_node_even_without_a_local_endpoint():
    text = render_lb(plan(lb("web", port(80, "http", [ON1], node_port=30080, target=8080))), {})
    assert dnats(text) == {(LB1, "tcp", 80): ("default/web:http", {0: (NODE1_IP, 30080), 1: (NODE2_IP, 30080)})}
    assert "reject" not in text and "snat" not in text and "masquerade" not in text


def test_local_policy_sends_only_to_the_nodes_that_passed_the_health_check():
    not_ready = Endpoint(ip=IPv4Address("10.244.1.11"), port=8080, pod="default/x", node="node1", ready=False)
    p = plan(lb("web", port(80, None, [ON2, not_ready], node_port=30080), policy="Local"))
    text = render_lb(p, {"default/web": frozenset({"node2"})})
    assert dnats(text) == {(LB1, "tcp", 80): ("default/web", {0: (NODE2_IP, 30080)})}
    both = render_lb(p, {"default/web": frozenset({"node1", "node2"})})
    assert set(dnats(both)[(LB1, "tcp", 80)][1].values()) == {(NODE1_IP, 30080), (NODE2_IP, 30080)}
    # the probes decide, not the plan: a node the plan gives no endpoint but that passed is chosen
    # (its kube-proxy answered 200), and one not probed yet is not
    assert dnats(render_lb(p, {"default/web": frozenset({"node1"})}))[(LB1, "tcp", 80)][1] == {0: (NODE1_IP, 30080)}
    assert dnats(render_lb(p, {})) == {}
    assert dnats(render_lb(p, {"default/other": frozenset({"node2"})})) == {}


def test_local_policy_without_an_eligible_node_is_rejected_by_the_balancer():
    p = plan(lb("web", port(80, None, [], node_port=30080), port(53, "dns", [], proto="UDP", node_port=30053),
                policy="Local"))
    text = render_lb(p, {"default/web": frozenset()})
    assert dnats(text) == {}
    rules = chain(text, "input")
    assert f"ip daddr {LB1} tcp dport 80 reject with tcp reset" in rules
    assert f"ip daddr {LB1} udp dport 53 reject" in rules
    assert [f.nodes for f in forwards(p, {"default/web": frozenset()})] == [(), ()]


def test_several_services_ports_and_protocols():
    p = plan(
        lb("web", port(80, "http", [ON1], node_port=30080), port(443, "https", [ON1], node_port=30443)),
        lb("dns", port(53, "udp", [ON2], proto="UDP", node_port=30053),
           port(53, "tcp", [ON2], proto="TCP", node_port=30054), port(9, "sctp", [ON2], proto="SCTP", node_port=30009),
           ip=LB2, policy="Local"),
        service("default", "plain", "10.96.0.9", port(80, None, [ON1], node_port=30999), type="NodePort"),
    )
    got = dnats(render_lb(p, {"default/dns": frozenset({"node2"})}))
    assert set(got) == {(LB1, "tcp", 80), (LB1, "tcp", 443), (LB2, "udp", 53), (LB2, "tcp", 53), (LB2, "sctp", 9)}
    assert got[(LB2, "udp", 53)] == ("default/dns:udp", {0: (NODE2_IP, 30053)})
    assert got[(LB2, "sctp", 9)][1] == {0: (NODE2_IP, 30009)}
    assert len(got[(LB1, "tcp", 443)][1]) == 2


def test_the_transaction_replaces_the_table_and_does_not_nat_the_source():
    text = render_lb(plan(lb("web", port(80, None, [ON1], node_port=30080))), {})
    lines = text.splitlines()
    assert lines[:3] == [f"add table {TABLE}", f"delete table {TABLE}", f"table {TABLE} {{"]
    assert "type nat hook prerouting priority dstnat" in chain(text, "prerouting")
    assert "postrouting" not in text
    assert render_lb(plan(), {}).count("dnat") == 0


def test_the_balancer_probes_every_node_for_each_local_load_balancer_with_a_health_check_port():
    p = plan(lb("loc", port(80, None, [ON2], node_port=30080), policy="Local", health_check_node_port=32000),
             lb("cl", port(80, None, [ON1], node_port=30081), ip=LB2),  # Cluster: every node, no probe
             lb("direct", port(80, None, [ON1]), policy="Local", ip="172.18.0.194", health_check_node_port=32001,
                allocate_load_balancer_node_ports=False),  # to the pods themselves
             service("default", "pending", "10.96.0.51", port(80, None, [ON1], node_port=30082), type="LoadBalancer",
                     external_traffic_policy="Local", health_check_node_port=32002))  # no address: nothing to balance
    assert health_checks(p) == (HealthCheck("default/loc", "node1", IPv4Address(NODE1_IP), 32000),
                                HealthCheck("default/loc", "node2", IPv4Address(NODE2_IP), 32000))
    assert health_checks(p)[0].request() == (f"GET /healthz HTTP/1.1\r\nHost: {NODE1_IP}:32000\r\n"
                                             "User-Agent: kubenet-lab-lb/1.0\r\nConnection: close\r\n\r\n").encode()


def test_a_health_check_passes_on_200_only():
    assert passes(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}")
    assert not passes(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
    assert not passes(b"")  # refused, or closed without an answer
    assert not passes(b"SSH-2.0-OpenSSH\r\n") and not passes(b"HTTP/1.1 2000 x\r\n")
    checks = [HealthCheck(svc, node, IPv4Address(NODE1_IP), 32000)
              for svc in ("default/a", "default/b") for node in ("node1", "node2")]
    assert passing(dict(zip(checks, [True, False, False, False]))) == {
        "default/a": frozenset({"node1"}), "default/b": frozenset()}


def test_outside_hosts_addresses_routes_and_sysctls():
    p = plan(lb("web", port(80, None, [ON1], node_port=30080)), lb("api", port(80, None, [ON1], node_port=30081),
                                                                     ip=LB2),
             service("default", "ext", "10.96.0.7", port(8090, None, [ON2]), external_ips=("203.0.113.10",)))
    external, balancer, second = outside.hosts(p)
    assert external.netns == "kubenet.external" and balancer.netns == "kubenet.lb"
    assert external.addresses == {IPv4Interface("172.18.0.254/24")}
    assert external.routes == {IPv4Network("203.0.113.10/32"): IPv4Address(NODE1_IP)}
    # the second client: its own address, the first one's routes
    assert second.netns == "kubenet.external2" and second.addresses == {IPv4Interface("172.18.0.252/24")}
    assert second.routes == external.routes and second.sysctls == {}
    assert balancer.addresses == {IPv4Interface("172.18.0.253/24"), IPv4Interface(f"{LB1}/32"),
                                  IPv4Interface(f"{LB2}/32")}
    assert balancer.routes == {}
    assert balancer.sysctls["net/ipv4/ip_forward"] == "1"
    assert {k for k, v in balancer.sysctls.items() if v == "0"} == {
        f"net/ipv4/conf/{i}/send_redirects" for i in ("all", "default", "eth0")}
    veths = {external.underlay_veth, balancer.underlay_veth, second.underlay_veth}
    assert len(veths) == 3 and all(re.fullmatch(r"veth[0-9a-f]{8}", v) for v in veths)
    assert not veths & {n.underlay_veth for n in p.nodes}


def test_exec_targets_external_and_lb_unless_a_pod_has_that_name():
    p = plan()
    assert resolve_target(p, "external", "default", None).netns == "kubenet.external"
    assert resolve_target(p, "lb", "default", None).netns == "kubenet.lb"
    assert resolve_target(p, "external2", "default", None).netns == "kubenet.external2"
    pod = PlannedPod(namespace="default", name="external", node="node1", ip=IPv4Address("10.244.1.5"),
                     netns="kubenet.pod.default.external", host_veth="vethx")
    p = dataclasses.replace(p, pods=(pod,))
    assert resolve_target(p, "external", "default", None).netns == "kubenet.pod.default.external"
    assert resolve_target(p, "external", "other", None).netns == "kubenet.external"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace")
@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
def test_an_ipmode_proxy_address_is_masqueraded_by_the_balancer_and_left_out_of_kube_proxys_rules():
    from kubenet_lab.proxy.sync import render_node

    web = lb("web", port(80, "http", [ON1], node_port=30080, target=8080), ip=LB1)
    proxied = dataclasses.replace(web, load_balancer_ips=(IPv4Address(LB1), IPv4Address(LB2)),
                                  proxied_lb_ips=(IPv4Address(LB2),))
    text = render_lb(plan(proxied), {})
    assert set(dnats(text)) == {(LB1, "tcp", 80), (LB2, "tcp", 80)}  # the same choice of node for both
    postrouting = text.split("chain postrouting {", 1)[1].splitlines()
    assert [line.strip() for line in postrouting[1:4]] == [
        "type nat hook postrouting priority srcnat; policy accept;",
        f'ct original ip daddr {{ {LB2} }} masquerade comment "ipMode Proxy: the balancer proxies"', "}"]
    assert "masquerade" not in render_lb(plan(web), {})
    for mode in ("iptables", "nftables"):
        rules = render_node(plan(proxied), "node1", mode).text()
        assert LB1 in rules and LB2 not in rules, mode
    hosts = {h.role: h for h in outside.hosts(plan(proxied))}
    assert hosts["lb"].routes == {IPv4Network("10.244.1.0/24"): IPv4Address(NODE1_IP),
                                  IPv4Network("10.244.2.0/24"): IPv4Address(NODE2_IP)}  # it answers pods
    assert not {h.role: h for h in outside.hosts(plan(web))}["lb"].routes


def test_nft_accepts_the_render(scratch_netns):
    plans = [
        plan(),
        plan(dataclasses.replace(lb("px", port(80, "http", [ON1], node_port=30085)),
                                 proxied_lb_ips=(IPv4Address(LB1),))),
        plan(lb("web", port(80, "http", [ON1], node_port=30080), port(81, "u", [ON2], proto="UDP", node_port=30081)),
             lb("loc", port(80, None, [ON2], node_port=30082), port(9, "s", [ON2], proto="SCTP", node_port=30009),
                ip=LB2, policy="Local"),
             lb("none", port(80, None, [], node_port=30083), port(82, "u", [], proto="UDP", node_port=30084),
                ip="172.18.0.194", policy="Local")),
    ]
    for p in plans:
        proc = subprocess.run(["ip", "netns", "exec", scratch_netns, "nft", "-c", "-f", "-"],
                              input=render_lb(p, {"default/loc": frozenset({"node2"})}), capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
