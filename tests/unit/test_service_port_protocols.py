"""A Service port's protocol, where Kubernetes looks at it:

- a named targetPort resolves by name AND protocol (k8s.io/kubernetes pkg/api/v1/pod FindPort,
  which the EndpointSlice controller calls): a TCP Service port naming `dns` does not reach a
  container's UDP port named `dns`, and a pod without that name and protocol is no endpoint of
  the port -- in the plan, `get ep`, the cluster DNS's SRV records, the emulated servers' TLS
  ports and `trace`;
- NodePorts as the API server allocates them (pkg/registry/core/service/storage/alloc.go,
  initNodePorts): ports of one Service with the same port number and different protocols share
  one NodePort (53/TCP and 53/UDP), whether allocated or written on both; no other two ports
  share one, and the rules of both proxy modes carry both protocols on it.
"""
from __future__ import annotations

import pytest
from dnslib import DNSRecord

from kubenet_lab.app.trace import Endpoint as TraceEndpoint
from kubenet_lab.app.trace import resolve_destination
from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.model.objects import (Container, ContainerPort, Model, Origin, Pod, PodSpec, Service, ServicePort)
from kubenet_lab.output import endpoint_subsets, endpoints_column
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.cluster import https_targets
from kubenet_lab.plan.services import resolve_target
from kubenet_lab.proxy.iptables import render_iptables
from kubenet_lab.proxy.nftables import render_nftables
from kubenet_lab.servers.dns import ClusterDNS


def pod(name, *containers, labels=None):
    """`containers`: each a tuple of (containerPort, name, protocol)."""
    cs = tuple(Container(f"c{i}", "nginx",
                         ports=tuple(ContainerPort(p, name=n, protocol=proto) for p, n, proto in ports))
               for i, ports in enumerate(containers))
    return Pod("default", name, labels or {"app": "dns"}, PodSpec(containers=cs), origin=Origin("pods.yaml", 1))


def svc(name, *ports, type="ClusterIP", **kw):
    return Service("default", name, type=type, selector=kw.pop("selector", {"app": "dns"}), ports=ports,
                   origin=Origin("svc.yaml", 2), **kw)


def service(plan, name):
    return next(s for s in plan.services if s.key == f"default/{name}")


def endpoints(plan, name):
    """{(port, protocol): [(pod, endpoint port)]} of a planned Service."""
    return {(p.port, p.protocol): [(e.pod.split("/")[1], e.port) for e in p.endpoints]
            for p in service(plan, name).ports}


# ------------------------------------------------------------------------- named targetPort


UDP_ONLY = pod("udp-only", [(53, "dns", "UDP")])
BOTH = pod("both", [(5353, "dns", "TCP"), (53, "dns", "UDP")])  # the TCP one first
SPLIT = pod("split", [(53, "dns", "UDP")], [(1053, "dns", "TCP")])  # one per container
PODS = (UDP_ONLY, BOTH, SPLIT)


def test_resolve_target_matches_name_and_protocol():
    planned = make_plan(Model(pods=(BOTH,)), "lab").pods[0]
    assert resolve_target(planned, "dns", "UDP") == 53
    assert resolve_target(planned, "dns", "TCP") == 5353
    assert resolve_target(planned, "dns", "SCTP") is None
    assert resolve_target(planned, 8080, "SCTP") == 8080  # a number is itself, whatever the protocol


def test_a_pod_without_the_name_in_the_ports_protocol_is_no_endpoint_of_it():
    plan = make_plan(Model(pods=PODS, services=(
        svc("dns", ServicePort(53, "UDP", "dns", "dns"), ServicePort(53, "TCP", "dns-tcp", "dns")),)), "lab")
    assert endpoints(plan, "dns") == {
        (53, "UDP"): sorted([("udp-only", 53), ("both", 53), ("split", 53)], key=lambda e: _ip(plan, e[0])),
        (53, "TCP"): sorted([("both", 5353), ("split", 1053)], key=lambda e: _ip(plan, e[0])),
    }


def _ip(plan, name):
    return int(next(p.ip for p in plan.pods if p.name == name))


def test_a_sidecars_named_port_is_a_target_and_a_plain_init_containers_is_not():
    """FindPort looks at the containers, then at the init containers with restartPolicy Always."""
    def with_init(name, restart_policy):
        init = Container("init", "nginx", ports=(ContainerPort(9090, name="metrics"),), restart_policy=restart_policy)
        return Pod("default", name, {"app": "dns"},
                   PodSpec(containers=(Container("c", "nginx"),), init_containers=(init,)),
                   origin=Origin("pods.yaml", 1))
    plan = make_plan(Model(pods=(with_init("sidecar", "Always"), with_init("plain", None)), services=(
        svc("m", ServicePort(9090, "TCP", "metrics", "metrics")),
        svc("u", ServicePort(9090, "UDP", "metrics", "metrics")))),
        "lab")
    assert endpoints(plan, "m") == {(9090, "TCP"): [("sidecar", 9090)]}
    assert endpoints(plan, "u") == {(9090, "UDP"): []}


def test_a_tcp_port_naming_only_udp_ports_has_no_endpoints_in_get_ep():
    plan = make_plan(Model(pods=(UDP_ONLY,), services=(svc("cross", ServicePort(53, "TCP", "dns", "dns")),)), "lab")
    s = service(plan, "cross")
    assert s.ports[0].endpoints == ()
    assert endpoints_column(plan, s) == "<none>"
    assert endpoint_subsets(plan, s) == []


def test_srv_records_of_a_headless_service_name_only_endpoints_with_the_protocol():
    plan = make_plan(Model(pods=(UDP_ONLY, BOTH), services=(
        svc("hl", ServicePort(53, "TCP", "dns", "dns"), cluster_ip="None"),)), "lab")
    dns = ClusterDNS(plan)
    reply = DNSRecord.parse(dns.answer(DNSRecord.question("_dns._tcp.hl.default.svc.cluster.local", "SRV").pack()))
    both = next(p for p in plan.pods if p.name == "both")
    assert [(rr.rdata.port, str(rr.rdata.target)) for rr in reply.rr if rr.rtype == 33] == \
        [(5353, f"{str(both.ip).replace('.', '-')}.hl.default.svc.cluster.local.")]
    # nothing for the UDP-only pod: the headless name lists only the TCP port's endpoint
    reply = DNSRecord.parse(dns.answer(DNSRecord.question("hl.default.svc.cluster.local", "A").pack()))
    assert [str(rr.rdata) for rr in reply.rr] == [str(both.ip)]


def test_a_named_https_target_of_the_other_protocol_gets_no_tls():
    https = ServicePort(443, "TCP", "https", "secure")
    udp = pod("u", [(8443, "secure", "UDP")])
    tcp = pod("t", [(8443, "secure", "TCP")])
    assert https_targets(udp, (svc("s", https),)) == set()
    assert https_targets(tcp, (svc("s", https),)) == {8443}


def test_trace_to_a_pods_named_port_picks_the_protocol_asked_for():
    plan = make_plan(Model(pods=(BOTH,)), "lab")
    src = TraceEndpoint("external", "x")
    assert resolve_destination(plan, "both:dns", "default", "tcp", src).port == 5353
    assert resolve_destination(plan, "both:dns", "default", "udp", src).port == 53
    alone = resolve_destination(plan, "both:dns", "default", None, src)  # the first of that name, its protocol
    assert (alone.port, alone.proto) == (5353, "tcp")
    only = make_plan(Model(pods=(UDP_ONLY,)), "lab")
    with pytest.raises(InputError) as e:
        resolve_destination(only, "udp-only:dns", "default", "tcp", src)
    assert e.value.problems == ["udp-only:dns: pod udp-only has no port named 'dns' with protocol TCP"]
    assert resolve_destination(only, "udp-only:dns", "default", None, src).proto == "udp"


# ------------------------------------------------------------------------- NodePorts


def node_ports(plan, name):
    return [(p.port, p.protocol, p.node_port) for p in service(plan, name).ports]


def test_an_allocated_node_port_is_shared_by_the_protocols_of_one_port_number():
    plan = make_plan(Model(services=(
        svc("dns", ServicePort(53, "UDP", "dns"), ServicePort(53, "TCP", "dns-tcp"), ServicePort(80, "TCP", "http"),
            type="NodePort"),
        svc("other", ServicePort(53, "UDP", "dns"), type="NodePort"))), "lab")
    assert node_ports(plan, "dns") == [(53, "UDP", 30086), (53, "TCP", 30086), (80, "TCP", 30087)]
    assert node_ports(plan, "other") == [(53, "UDP", 30088)]
    assert plan.allocations.node_ports["default/dns:53/TCP"] == plan.allocations.node_ports["default/dns:53/UDP"]


@pytest.mark.parametrize("udp, tcp, want", [
    (30053, 30053, (30053, 30053)),   # written on both
    (None, 30053, (30053, 30053)),    # written on the later one: the earlier shares it (findRequestedNodePort)
    (30053, None, (30053, 30053)),
    (30053, 30054, (30053, 30054)),   # two written: each its own
])
def test_a_node_port_written_on_one_protocol_serves_the_other(udp, tcp, want):
    plan = make_plan(Model(services=(svc("dns", ServicePort(53, "UDP", "dns", node_port=udp),
                                         ServicePort(53, "TCP", "dns-tcp", node_port=tcp), type="NodePort"),)), "lab")
    assert [np for _, _, np in node_ports(plan, "dns")] == list(want)


def test_a_load_balancer_without_node_ports_gives_the_other_protocol_none():
    plan = make_plan(Model(services=(svc("lb", ServicePort(53, "UDP", "dns"), ServicePort(53, "TCP", "dns-tcp",
                                                                                           node_port=30053),
                                         type="LoadBalancer", allocate_load_balancer_node_ports=False),)), "lab")
    assert node_ports(plan, "lb") == [(53, "UDP", None), (53, "TCP", 30053)]


@pytest.mark.parametrize("services, problem", [
    # another port number of the same Service
    ((svc("a", ServicePort(80, "TCP", "http", node_port=30080), ServicePort(81, "UDP", "u", node_port=30080),
          type="NodePort"),),
     "svc.yaml:2: spec.ports[1].nodePort: 30080 is already allocated to default/a"),
    # another Service, same port number and the other protocol
    ((svc("a", ServicePort(53, "TCP", node_port=30053), type="NodePort"),
      svc("b", ServicePort(53, "UDP", node_port=30053), type="NodePort")),
     "svc.yaml:2: spec.ports[0].nodePort: 30053 is already allocated to default/a"),
    # the Service's own health check
    ((svc("a", ServicePort(53, "TCP", node_port=30053), type="LoadBalancer", external_traffic_policy="Local",
          health_check_node_port=30053),),
     "svc.yaml:2: spec.healthCheckNodePort: 30053 is already allocated to default/a"),
])
def test_other_ports_still_may_not_share_a_node_port(services, problem):
    with pytest.raises(InputError) as e:
        make_plan(Model(services=services), "lab")
    assert e.value.problems == [problem]


def test_a_running_service_keeps_its_shared_node_port_and_others_are_refused_it():
    dns = svc("dns", ServicePort(53, "UDP", "dns"), ServicePort(53, "TCP", "dns-tcp"), type="NodePort")
    first = make_plan(Model(services=(dns,)), "lab")
    again = make_plan(Model(services=(svc("web", ServicePort(80), type="NodePort"), dns)), "lab", first)
    assert node_ports(again, "dns") == [(53, "UDP", 30086), (53, "TCP", 30086)]
    assert node_ports(again, "web") == [(80, "TCP", 30087)]
    with pytest.raises(InputError) as e:
        make_plan(Model(services=(svc("web", ServicePort(80, node_port=30086), type="NodePort"), dns)), "lab", first)
    assert e.value.problems == ["svc.yaml:2: spec.ports[0].nodePort: 30086 is already allocated to default/dns, which "
                                "runs with it and keeps it; ask for another nodePort or leave it out"]


def test_a_port_added_to_a_running_service_gets_a_node_port_of_its_own():
    """The API server shares a NodePort between protocols when it creates the Service
    (initNodePorts); an update allocates each new port anew (updateNodePorts)."""
    tcp = ServicePort(53, "TCP", "dns-tcp")
    first = make_plan(Model(services=(svc("dns", tcp, type="NodePort"),)), "lab")
    both = svc("dns", ServicePort(53, "UDP", "dns"), tcp, type="NodePort")
    again = make_plan(Model(services=(both,)), "lab", first)
    assert node_ports(again, "dns") == [(53, "UDP", 30087), (53, "TCP", 30086)]
    assert (node_ports(make_plan(Model(services=(both,)), "lab", again), "dns")
            == [(53, "UDP", 30087), (53, "TCP", 30086)])
    # from ClusterIP to NodePort is an update too
    plain = make_plan(Model(services=(svc("dns", ServicePort(53, "UDP", "dns"), tcp),)), "lab")
    assert (node_ports(make_plan(Model(services=(both,)), "lab", plain), "dns")
            == [(53, "UDP", 30086), (53, "TCP", 30087)])


def test_a_new_service_listed_first_takes_nothing_a_running_one_has():
    """A running Service keeps its ClusterIP (immutable), NodePorts and balancer address when a
    new one comes before it in the manifests: the new one gets free ones."""
    old = svc("old", ServicePort(53, "UDP", "dns"), type="LoadBalancer")
    first = make_plan(Model(services=(old,)), "lab")
    was = service(first, "old")
    again = make_plan(Model(services=(svc("new", ServicePort(80), type="LoadBalancer"), old)), "lab", first)
    now, new = service(again, "old"), service(again, "new")
    assert (now.cluster_ip, now.ports[0].node_port, now.load_balancer_ips) == \
        (was.cluster_ip, was.ports[0].node_port, was.load_balancer_ips)
    assert new.cluster_ip != now.cluster_ip and new.ports[0].node_port != now.ports[0].node_port
    assert new.load_balancer_ips and new.load_balancer_ips != now.load_balancer_ips


def test_the_manifest_may_write_one_node_port_on_both_protocols_but_not_twice_on_one(tmp_path):
    f = tmp_path / "svc.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: dns}\nspec:\n  type: NodePort\n  ports:\n"
                 "  - {name: dns, port: 53, protocol: UDP, nodePort: 30053}\n"
                 "  - {name: dns-tcp, port: 53, protocol: TCP, nodePort: 30053}\n")
    plan = make_plan(load_model([str(f)]), "lab")
    assert node_ports(plan, "dns") == [(53, "UDP", 30053), (53, "TCP", 30053)]
    f.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: dns}\nspec:\n  type: NodePort\n  ports:\n"
                 "  - {name: a, port: 53, protocol: UDP, nodePort: 30053}\n"
                 "  - {name: b, port: 54, protocol: UDP, nodePort: 30053}\n")
    with pytest.raises(InputError) as e:
        load_model([str(f)])
    assert e.value.problems == [f"{f}:8: spec.ports[1].nodePort: 30053/UDP is already used by spec.ports[0]"]


def test_both_proxy_modes_carry_both_protocols_on_the_shared_node_port():
    plan = make_plan(Model(pods=(pod("d", [(53, "dns", "UDP"), (53, "dns-tcp", "TCP")]),), services=(
        svc("dns", ServicePort(53, "UDP", "dns", "dns"), ServicePort(53, "TCP", "dns-tcp", "dns-tcp"),
            type="NodePort"),)), "lab")
    assert node_ports(plan, "dns") == [(53, "UDP", 30086), (53, "TCP", 30086)]
    ipt = [l for l in render_iptables(plan, "node1").splitlines() if l.startswith("-A KUBE-NODEPORTS")]
    assert len(ipt) == 2
    assert any("--comment default/dns:dns " in l and "-p udp --dport 30086 -j KUBE-EXT-" in l for l in ipt)
    assert any("--comment default/dns:dns-tcp " in l and "-p tcp --dport 30086 -j KUBE-EXT-" in l for l in ipt)
    nft = [l for l in render_nftables(plan, "node1").splitlines()
           if l.startswith("add element ip kube-proxy service-nodeports")]
    assert "udp . 30086 : goto external-" in "".join(nft) and "tcp . 30086 : goto external-" in "".join(nft)
