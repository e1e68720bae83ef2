"""The planner, without root: scheduling, addresses, names, services, and plan round trips."""
from __future__ import annotations

import dataclasses
import re
from ipaddress import IPv4Address, IPv4Network

import pytest

from kubenet_lab.dataplane.backends import node_routes
from kubenet_lab.plan.images import NGINX_HTML
from kubenet_lab.errors import InputError
from kubenet_lab.plan import ipam, make_plan, naming
from kubenet_lab.plan.containers import resolve_run
from kubenet_lab.model.objects import (ClusterConfig, Container, ContainerPort, LabelSelector, Model, Node, Origin,
                                    Pod, PodSpec, RunExec, RunHttp, RunNetexec, RunNothing, RunServeHostname,
                                    Service, ServicePort, Workload)
from kubenet_lab.plan.addons import with_addons
from kubenet_lab.plan.serialize import plan_from_data, plan_to_data
from kubenet_lab.plan.services import removed_udp_endpoints, with_readiness

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def ours(objects):
    """The manifests' own objects, without the cluster DNS and `kubernetes` service every plan carries."""
    return [o for o in objects if o.namespace != "kube-system" and (o.namespace, o.name) != ("default", "kubernetes")]


def pod(name, ns="default", labels=None, node=None, host_network=False, ports=()):
    c = Container("c", "nginx", ports=tuple(ContainerPort(p, name=n) for p, n in ports))
    return Pod(ns, name, labels or {}, PodSpec(containers=(c,), node_name=node, host_network=host_network),
               origin=Origin("pods.yaml", 1))


def deployment(name, replicas, labels, ns="default", template_raw=None):
    spec = PodSpec(containers=(Container("netexec", AGNHOST, args=("netexec", "--http-port=8080"),
                                         ports=(ContainerPort(8080, "http"),)),))
    return Workload("Deployment", ns, name, replicas, LabelSelector(dict(labels)), dict(labels), spec,
                    template_raw or {"metadata": {"labels": dict(labels)}, "spec": {"x": name}},
                    origin=Origin("web.yaml", 3))


# --------------------------------------------------------------------------- scheduling


def test_pods_go_to_the_node_with_fewest_pods_ties_in_node_order():
    plan = make_plan(Model(pods=tuple(pod(f"p{i}") for i in range(5))), "lab")
    assert [p.node for p in ours(plan.pods)] == ["node1", "node2", "node1", "node2", "node1"]


def test_node_name_is_honoured_and_counts_for_the_others():
    m = Model(pods=(pod("a", node="node1"), pod("b", node="node1"), pod("c"), pod("d")))
    assert [p.node for p in ours(make_plan(m, "lab").pods)] == ["node1", "node1", "node2", "node2"]


def test_unknown_node_name_is_an_error_with_origin():
    with pytest.raises(InputError) as e:
        make_plan(Model(pods=(pod("a", node="nodeX"),)), "lab")
    assert e.value.problems == ["pods.yaml:1: spec.nodeName: no node named 'nodeX' (nodes: node1, node2)"]


def test_a_pod_stays_on_its_node_across_runs_even_when_others_are_added():
    first = make_plan(Model(pods=(pod("a"), pod("b"))), "lab")
    second = make_plan(Model(pods=(pod("z"), pod("a"), pod("b"))), "lab", first)
    placed = {p.name: (p.node, p.ip) for p in second.pods}
    assert placed["a"] == (first.pod("default/a").node, first.pod("default/a").ip)
    assert placed["b"] == (first.pod("default/b").node, first.pod("default/b").ip)


def test_more_pods_than_a_node_cidr_holds_is_an_error():
    nodes = (Node("n1", pod_cidr=IPv4Network("10.244.0.0/29")),)
    m = Model(nodes=nodes, pods=tuple(pod(f"p{i}") for i in range(6)))
    with pytest.raises(InputError) as e:
        make_plan(m, "lab")
    assert "every podCIDR is full" in e.value.problems[0]
    assert e.value.problems[0].startswith("pods.yaml:1: spec:")


def test_host_network_pods_use_the_node_address_and_namespace():
    plan = make_plan(Model(pods=(pod("h", host_network=True, node="node2"),)), "lab")
    p = plan.pods[0]
    assert p.ip == plan.node("node2").ip and p.netns == plan.node("node2").netns and p.host_veth is None


# --------------------------------------------------------------------------- addresses


def test_host_local_skips_gateway_and_hands_out_round_robin_after_last_reserved():
    pool = ipam.HostLocal(IPv4Network("10.0.0.0/29"))  # .1 gateway, .2-.6 usable
    got = [str(pool.allocate()) for _ in range(5)]
    assert got == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    with pytest.raises(ipam.Exhausted):
        pool.allocate()
    pool.in_use.discard(int(IPv4Address("10.0.0.3")))
    assert str(pool.allocate()) == "10.0.0.3"  # wraps after .6


def test_a_freed_address_is_not_reused_right_away():
    first = make_plan(Model(pods=(pod("a", node="node1"), pod("b", node="node1"))), "lab")
    second = make_plan(Model(pods=(pod("b", node="node1"), pod("c", node="node1"))), "lab", first)
    ips = {p.name: str(p.ip) for p in second.pods}
    assert ips["b"] == str(first.pod("default/b").ip)
    assert ips["c"] == "10.244.0.4"  # after the last reserved (.3), not a's freed .2


def test_nodes_get_cidrs_in_order_addresses_and_host_gw_routes():
    plan = make_plan(Model(nodes=(Node("a"), Node("b", pod_cidr=IPv4Network("10.244.0.0/24")), Node("c"))), "lab")
    assert [str(n.pod_cidr) for n in plan.nodes] == ["10.244.1.0/24", "10.244.0.0/24", "10.244.2.0/24"]
    assert [str(n.ip) for n in plan.nodes] == ["172.18.0.2", "172.18.0.3", "172.18.0.4"]
    assert [str(n.gateway) for n in plan.nodes] == ["10.244.1.1", "10.244.0.1", "10.244.2.1"]
    a = plan.node("a")
    assert [(str(r.dst), str(r.via), r.dev) for r in node_routes(plan, a)] == [
        ("10.244.0.0/24", "172.18.0.3", "eth0"), ("10.244.2.0/24", "172.18.0.4", "eth0"),  # host-gw's
        ("10.96.0.0/16", "172.18.0.253", "eth0"),  # via the underlay's router (the LB), as both external clients
        ("172.18.0.254/32", "172.18.0.253", "eth0"), ("172.18.0.252/32", "172.18.0.253", "eth0")]


def test_same_input_same_plan_and_json_round_trip():
    m = Model(pods=(pod("a"),), workloads=(deployment("web", 3, {"app": "web"}),),
              services=(Service("default", "web", "NodePort", {"app": "web"},
                                ports=(ServicePort(80, target_port="http"),)),))
    plan = make_plan(m, "lab")
    assert make_plan(m, "lab") == plan
    assert plan_from_data(plan_to_data(plan)) == plan
    assert make_plan(m, "lab", plan) == plan


# --------------------------------------------------------------------------- names


def test_deployment_pods_are_named_like_kubernetes_names_them_and_stable():
    plan = make_plan(Model(workloads=(deployment("web", 3, {"app": "web"}),)), "lab")
    names = [p.name for p in ours(plan.pods)]
    assert len(set(names)) == 3
    hashes = {n.rsplit("-", 2)[1] for n in names}
    assert len(hashes) == 1
    for n in names:
        assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}", n), n
    assert all(p.labels["pod-template-hash"] == next(iter(hashes)) for p in ours(plan.pods))
    assert all(p.owner.startswith("ReplicaSet/web-") for p in ours(plan.pods))
    again = make_plan(Model(workloads=(deployment("web", 3, {"app": "web"}),)), "lab")
    assert [p.name for p in ours(again.pods)] == names


def test_scaling_keeps_existing_replica_names():
    three = make_plan(Model(workloads=(deployment("web", 3, {"app": "web"}),)), "lab")
    two = make_plan(Model(workloads=(deployment("web", 2, {"app": "web"}),)), "lab", three)
    assert [p.name for p in ours(two.pods)] == [p.name for p in ours(three.pods)[:2]]


def test_a_changed_template_changes_the_hash():
    a = make_plan(Model(workloads=(deployment("web", 1, {"app": "web"}, template_raw={"a": 1}),)), "lab")
    b = make_plan(Model(workloads=(deployment("web", 1, {"app": "web"}, template_raw={"a": 2}),)), "lab")
    assert a.pods[0].name != b.pods[0].name


def test_replicaset_and_rc_pods_are_owner_dash_five():
    rs = dataclasses.replace(deployment("front", 2, {"app": "f"}), kind="ReplicaSet")
    plan = make_plan(Model(workloads=(rs,)), "lab")
    assert all(re.fullmatch(r"front-[bcdfghjklmnpqrstvwxz2456789]{5}", p.name) for p in ours(plan.pods))


def test_generated_names_stay_dns_labels():
    long = "a" * 63
    assert len(naming.generate_name(long, "o", 0)) == 63
    assert naming.is_dns1123_label(naming.generate_name(long, "o", 0))


def test_interface_names_fit_ifnamsiz_and_are_stable():
    v = naming.pod_host_veth("kubenet", "default", "x" * 63)
    assert re.fullmatch(r"veth[0-9a-f]{8}", v) and len(v) <= 15
    assert v == naming.pod_host_veth("kubenet", "default", "x" * 63)
    assert v != naming.pod_host_veth("other", "default", "x" * 63)
    assert len(naming.node_underlay_veth("kubenet", "n" * 63)) <= 15


def test_namespace_names_carry_the_lab_and_cannot_collide():
    assert naming.node_netns("kubenet", "node") != naming.pod_netns("kubenet", "node", "x")
    assert naming.pod_netns("lab", "a-b", "c") != naming.pod_netns("lab", "a", "b-c")
    assert naming.pod_netns("lab2", "default", "a").startswith(naming.lab_prefix("lab2"))
    assert not naming.pod_netns("lab2", "default", "a").startswith(naming.lab_prefix("lab"))


def test_fnv32a_matches_the_reference_values():
    assert naming.fnv32a(b"") == 0x811C9DC5
    assert naming.fnv32a(b"a") == 0xE40C292C
    assert naming.fnv32a(b"foobar") == 0xBF9CF968


# --------------------------------------------------------------------------- services


def svc(name, **kw):
    kw.setdefault("ports", (ServicePort(80, target_port=8080),))
    return Service("default", name, origin=Origin("svc.yaml", 2), **kw)


def test_cluster_ips_skip_the_reserved_first_and_tenth_addresses():
    plan = make_plan(Model(services=tuple(svc(f"s{i}") for i in range(10))), "lab")
    ips = [str(s.cluster_ip) for s in ours(plan.services)]
    assert "10.96.0.1" not in ips and "10.96.0.10" not in ips
    assert ips[0] == "10.96.0.2" and len(set(ips)) == 10


def test_removed_udp_endpoints_are_those_a_udp_port_lost():
    """What kube-proxy clears from conntrack: UDP endpoints gone from their service port (or
    with their whole service); TCP endpoints and headless services have nothing to clear."""
    def plan_with(pods, services, previous=None):
        return make_plan(Model(pods=tuple(pod(p, labels={"app": "x"}) for p in pods), services=services), "lab",
                         previous)
    both = (ServicePort(53, "UDP", "dns", 53), ServicePort(80, "TCP", "http", 80))
    services = (svc("dns", selector={"app": "x"}, ports=both),
                svc("raw", selector={"app": "x"}, ports=(ServicePort(5000, "UDP"),)),
                svc("hl", selector={"app": "x"}, cluster_ip="None", ports=(ServicePort(9, "UDP"),)))
    old = plan_with(["a", "b", "c"], services)
    ip = {p.name: p.ip for p in old.pods}
    assert removed_udp_endpoints(None, old) == set()
    assert removed_udp_endpoints(old, old) == set()
    fewer = plan_with(["a", "c"], services, old)
    assert removed_udp_endpoints(old, fewer) == {ip["b"]}
    no_raw = plan_with(["a", "b", "c"], services[:1] + services[2:], old)
    assert removed_udp_endpoints(old, no_raw) == {ip["a"], ip["b"], ip["c"]}
    tcp_only = plan_with(["a", "b", "c"], (svc("dns", selector={"app": "x"}, ports=both[1:]),) + services[1:], old)
    assert removed_udp_endpoints(old, tcp_only) == {ip["a"], ip["b"], ip["c"]}  # port 53/UDP went
    assert removed_udp_endpoints(old, plan_with(["a", "b", "c"], services[:2], old)) == set()  # headless


def test_with_readiness_marks_only_the_pods_not_ready():
    m = Model(pods=tuple(pod(p, labels={"app": "x"}) for p in ("a", "b")),
              services=(svc("web", selector={"app": "x"}, ports=(ServicePort(53, "UDP", "dns", 53),)),))
    plan = make_plan(m, "lab")
    assert with_readiness(plan, set()) is plan and with_readiness(plan, {"default/zzz"}) is plan
    marked = with_readiness(plan, {"default/b"})
    web, = ours(marked.services)
    assert [(e.pod, e.ready) for e in web.ports[0].endpoints] == [("default/a", True), ("default/b", False)]
    assert marked.pods == plan.pods
    b = next(p.ip for p in plan.pods if p.name == "b")
    assert removed_udp_endpoints(plan, marked) == {b}  # its UDP flows go, as for a removed pod
    assert removed_udp_endpoints(marked, plan) == set()


def test_every_plan_has_the_kubernetes_service_at_the_first_address_without_endpoints():
    plan = make_plan(Model(pods=(pod("a", labels={"component": "apiserver"}),)), "lab")
    k8s, = [s for s in plan.services if s.key == "default/kubernetes"]
    assert str(k8s.cluster_ip) == "10.96.0.1" and k8s.type == "ClusterIP"
    assert [(p.name, p.protocol, p.port, p.target_port, p.endpoints) for p in k8s.ports] == [
        ("https", "TCP", 443, 6443, ())]  # no API server: no endpoint, so it is refused at once
    # A bundle exported from a real cluster brings its own: it is kept, not doubled.
    own = svc("kubernetes", cluster_ip="10.96.0.1", ports=(ServicePort(443, name="https", target_port=6443),))
    assert [s.key for s in with_addons(Model(services=(own,))).services].count("default/kubernetes") == 1
    assert with_addons(Model(services=(own,))).services[0] is own


def test_kube_dns_gets_the_tenth_address():
    dns = Service("kube-system", "kube-dns", ports=(ServicePort(53, "UDP", "dns"),))
    plan = make_plan(Model(services=(svc("a"), dns)), "lab")
    assert str(plan.services[1].cluster_ip) == "10.96.0.10"


def test_requested_cluster_ip_honoured_and_bad_ones_rejected():
    plan = make_plan(Model(services=(svc("a", cluster_ip="10.96.5.5"),)), "lab")
    assert str(plan.services[0].cluster_ip) == "10.96.5.5"
    with pytest.raises(InputError) as e:
        make_plan(Model(services=(svc("a", cluster_ip="10.97.0.5"), svc("b", cluster_ip="10.96.0.1"),
                                  svc("c", cluster_ip="10.96.3.3"), svc("d", cluster_ip="10.96.3.3"))), "lab")
    assert e.value.problems == [
        "svc.yaml:2: spec.clusterIP: 10.97.0.5 is not in serviceSubnet 10.96.0.0/16",
        "svc.yaml:2: spec.clusterIP: 10.96.0.1 is reserved for default/kubernetes",
        "svc.yaml:2: spec.clusterIP: 10.96.3.3 is already allocated to default/c",
    ]


def test_headless_service_has_no_cluster_ip_but_endpoints():
    m = Model(pods=(pod("a", labels={"app": "x"}),), services=(svc("h", cluster_ip="None", selector={"app": "x"}),))
    s = make_plan(m, "lab").services[0]
    assert s.cluster_ip is None and [e.pod for e in s.ports[0].endpoints] == ["default/a"]


def test_node_ports_allocated_honoured_and_conflicts_rejected():
    plan = make_plan(Model(services=(svc("a", type="NodePort"),
                                     svc("b", type="NodePort", ports=(ServicePort(80, node_port=30086),)))), "lab")
    # a asks for none: the lowest free port of the upper band, the one b asks for being b's
    assert [s.ports[0].node_port for s in ours(plan.services)] == [30087, 30086]
    with pytest.raises(InputError) as e:
        make_plan(Model(services=(svc("a", type="NodePort", ports=(ServicePort(80, node_port=30080),)),
                                  svc("b", type="NodePort", ports=(ServicePort(81, node_port=30080),)))), "lab")
    assert e.value.problems == ["svc.yaml:2: spec.ports[0].nodePort: 30080 is already allocated to default/a"]


def test_endpoints_match_selector_namespace_and_named_target_ports():
    m = Model(pods=(pod("a", labels={"app": "x"}, ports=((8080, "http"),)),
                    pod("b", labels={"app": "x"}, ports=((9090, "http"),)),
                    pod("c", labels={"app": "x"}),  # no port named http
                    pod("d", labels={"app": "y"}, ports=((8080, "http"),)),
                    pod("e", ns="other", labels={"app": "x"}, ports=((8080, "http"),))),
              services=(svc("s", selector={"app": "x"}, ports=(ServicePort(80, target_port="http"),)),))
    eps = make_plan(m, "lab").services[0].ports[0].endpoints
    assert sorted((e.pod, e.port) for e in eps) == [("default/a", 8080), ("default/b", 9090)]


def test_load_balancer_ips_come_from_the_pool():
    plan = make_plan(Model(services=(svc("lb", type="LoadBalancer"),)), "lab")
    s = plan.services[0]
    assert [str(a) for a in s.load_balancer_ips] == ["172.18.0.192"] and s.ports[0].node_port == 30086


# --------------------------------------------------------------------------- containers


@pytest.mark.parametrize("container, run", [
    (Container("c", AGNHOST, args=("netexec", "--http-port=8080", "--udp-port=-1")), RunNetexec(8080, -1)),
    (Container("c", AGNHOST, command=("/agnhost",), args=("netexec",)), RunNetexec(8080, 8081)),
    (Container("c", AGNHOST, args=("netexec", "--delay-shutdown=5")), RunNetexec(8080, 8081, delay_shutdown=5)),
    (Container("c", AGNHOST, args=("serve-hostname",)), RunServeHostname(9376, True, False, False)),
    (Container("c", AGNHOST, args=("serve-hostname", "--udp", "--http=false", "--port", "53")),
     RunServeHostname(53, False, False, True)),
    (Container("c", "busybox", command=("sleep",), args=("3600",)), RunExec(("sleep", "3600"))),
    (Container("c", "nginx:1.27", ports=(ContainerPort(80),)), RunHttp((80,), docroot=NGINX_HTML)),
    (Container("c", "busybox"), RunNothing()),
    (Container("c", "registry.k8s.io/pause:3.9"), RunNothing()),
])
def test_what_a_container_runs(container, run):
    assert resolve_run(container) == run


def test_cluster_config_defaults():
    c = ClusterConfig()
    assert (str(c.pod_subnet), str(c.service_subnet), str(c.node_subnet), c.kube_proxy_mode, c.dns_domain) == \
        ("10.244.0.0/16", "10.96.0.0/16", "172.18.0.0/24", "iptables", "cluster.local")


def test_every_plan_has_the_cluster_dns_at_the_tenth_address():
    plan = make_plan(Model(), "lab")
    dns = [s for s in plan.services if s.key == "kube-system/kube-dns"][0]
    assert str(dns.cluster_ip) == "10.96.0.10"
    assert [(p.port, p.protocol) for p in dns.ports] == [(53, "UDP"), (53, "TCP")]
    assert len(dns.ports[0].endpoints) == 1 and dns.ports[0].endpoints[0].port == 53


def test_planner_problems_point_at_the_field_line(tmp_path):
    from kubenet_lab.manifests import load_model
    f = tmp_path / "svc.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  clusterIP: 10.96.0.1\n"
                 "  type: NodePort\n  ports:\n  - {name: a, port: 80}\n  - name: b\n    port: 81\n"
                 "    nodePort: 30007\n---\n"
                 "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec:\n  type: NodePort\n"
                 "  ports:\n  - port: 80\n    nodePort: 30007\n")
    with pytest.raises(InputError) as e:
        make_plan(load_model([str(f)]), "lab")
    assert e.value.problems == [
        f"{f}:6: spec.clusterIP: 10.96.0.1 is reserved for default/kubernetes",
        f"{f}:21: spec.ports[0].nodePort: 30007 is already allocated to default/a",
    ]


def test_objects_keep_their_creation_time_while_they_exist():
    """A no-op up keeps each Service's and controller's creationTimestamp (and so its AGE); a new
    object gets the time of the up that made it."""
    model = Model(services=(svc("web"),), workloads=(deployment("web", 2, {"app": "web"}),))
    first = make_plan(model, "lab", now=1000.0)
    again = make_plan(Model(services=(svc("web"), svc("api")), workloads=model.workloads), "lab", first, now=2000.0)
    assert first.allocations.created["Service/default/web"] == 1000.0
    assert again.allocations.created["Service/default/web"] == 1000.0
    assert again.allocations.created["Service/default/api"] == 2000.0
    assert again.allocations.created["Deployment/default/web"] == 1000.0
    rs = next(w for w in again.workloads if w.kind == "ReplicaSet")
    assert again.allocations.created[f"ReplicaSet/default/{rs.name}"] == 1000.0
    gone = make_plan(Model(), "lab", again, now=3000.0)
    assert "Service/default/web" not in gone.allocations.created
    assert plan_from_data(plan_to_data(again)) == again
