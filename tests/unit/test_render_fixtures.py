"""Small hand-built Plans for the renderer tests (no manifests, no planner).

`kube_proxy_plan()` rebuilds the services of kube-proxy's own TestOverallIPTablesRules /
TestOverallNFTablesRules (pkg/proxy/{iptables,nftables}/proxier_test.go), so names and layout
can be checked against what kube-proxy itself produces for the same input.
"""
from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Network

from kubenet_lab.model.objects import (
    Allocations, ClusterConfig, Endpoint, Plan, PlannedNode, PlannedService, PlannedServicePort,
)

NODE1_IP, NODE2_IP = "172.18.0.2", "172.18.0.3"


def node(name: str, index: int, ip: str, cidr: str) -> PlannedNode:
    net = IPv4Network(cidr)
    return PlannedNode(name=name, index=index, ip=IPv4Address(ip), pod_cidr=net,
                       gateway=net.network_address + 1, netns=f"kubenet.node.{name}",
                       underlay_veth=f"veth{index:08x}")


NODES = (node("node1", 1, NODE1_IP, "10.244.1.0/24"), node("node2", 2, NODE2_IP, "10.244.2.0/24"))


def ep(ip: str, port: int = 8080, node: str = "node1", pod: str = "") -> Endpoint:
    return Endpoint(ip=IPv4Address(ip), port=port, pod=pod or f"default/pod-{ip}", node=node)


def port(number: int = 80, name: str | None = None, eps=(), proto: str = "TCP",
         node_port: int | None = None, target: int | str | None = None) -> PlannedServicePort:
    return PlannedServicePort(name=name, protocol=proto, port=number,
                              target_port=target if target is not None else number,
                              node_port=node_port, endpoints=tuple(eps))


def service(ns: str, name: str, ip: str | None, *ports: PlannedServicePort, type: str = "ClusterIP",
            **kw) -> PlannedService:
    kw.setdefault("external_ips", ())
    kw["external_ips"] = tuple(IPv4Address(i) for i in kw["external_ips"])
    kw["load_balancer_ips"] = tuple(IPv4Address(i) for i in kw.get("load_balancer_ips", ()))
    return PlannedService(namespace=ns, name=name, type=type,
                          cluster_ip=IPv4Address(ip) if ip else None, ports=tuple(ports), **kw)


def plan(*services: PlannedService, pod_subnet: str = "10.244.0.0/16",
         nodes=NODES) -> Plan:
    cluster = ClusterConfig(pod_subnet=IPv4Network(pod_subnet),
                            service_subnet=IPv4Network("10.96.0.0/16"))
    return Plan(lab="kubenet", cluster=cluster, nodes=tuple(nodes), pods=(),
                services=tuple(services), allocations=Allocations(),
                underlay_netns="kubenet.underlay")


def with_balancing(p: Plan, balancing: str) -> Plan:
    """`p` with the Cluster config's networking.nftablesBalancing set."""
    return dataclasses.replace(p, cluster=dataclasses.replace(p.cluster, nftables_balancing=balancing))


def kube_proxy_plan() -> Plan:
    """kube-proxy's test services; its endpoints without NodeName are "not local" (node2 here),
    10.180.0.5 is on the test node (node1 here); cluster CIDR 10.0.0.0/8 as in its tests."""
    far, near = "node2", "node1"
    return plan(
        service("ns1", "svc1", "172.30.0.41", port(80, "p80", [ep("10.180.0.1", 80, far)])),
        service("ns2", "svc2", "172.30.0.42", port(80, "p80", [ep("10.180.0.2", 80, far)],
                                                   node_port=3001),
                type="LoadBalancer", external_traffic_policy="Local", health_check_node_port=30000,
                load_balancer_ips=["1.2.3.4"], external_ips=["192.168.99.22"]),
        service("ns3", "svc3", "172.30.0.43", port(80, "p80", [ep("10.180.0.3", 80, far)],
                                                   node_port=3003), type="NodePort"),
        service("ns4", "svc4", "172.30.0.44",
                port(80, "p80", [ep("10.180.0.4", 80, far), ep("10.180.0.5", 80, near)]),
                type="NodePort", external_ips=["192.168.99.33"]),
        service("ns5", "svc5", "172.30.0.45", port(80, "p80", [ep("10.180.0.3", 80, far)],
                                                   node_port=3002),
                type="LoadBalancer", load_balancer_ips=["5.6.7.8"], session_affinity="ClientIP",
                load_balancer_source_ranges=(" 203.0.113.0/25",)),
        service("ns6", "svc6", "172.30.0.46", port(80, "p80")),
        pod_subnet="10.0.0.0/8",
    )
