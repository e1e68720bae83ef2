"""The Service fields that change networking on a real cluster, each as a single-stack IPv4
cluster treats it: IP families, publishNotReadyAddresses, allocateLoadBalancerNodePorts,
loadBalancerClass, healthCheckNodePort, loadBalancerSourceRanges, trafficDistribution and
appProtocol. Without root."""
from __future__ import annotations

import io
import textwrap
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from dnslib import DNSRecord

from kubenet_lab import output
from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.model.objects import Container, ContainerPort, Model, Pod, PodSpec, Service, ServicePort
from kubenet_lab.plan.serialize import plan_from_data, plan_to_data
from kubenet_lab.plan.services import with_readiness
from kubenet_lab.proxy.lb import forwards, render_lb
from kubenet_lab.servers.dns import ClusterDNS
from kubenet_lab.fabric import outside

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
LAB = "svcfields"


def load(text: str):
    return load_model(["-"], io.StringIO(textwrap.dedent(text).lstrip("\n")))


def problems(text: str) -> list[str]:
    with pytest.raises(InputError) as err:
        load(text)
    return err.value.problems


def service(spec: str, name: str = "web") -> str:
    """A Service document: its spec lines start at line 5."""
    return ("apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec:\n" % name
            + textwrap.indent(textwrap.dedent(spec).lstrip("\n"), "  "))


def pod(name, labels, node=None, ports=((8080, "http"),)):
    c = Container("c", "nginx", ports=tuple(ContainerPort(p, name=n) for p, n in ports))
    return Pod("default", name, dict(labels), PodSpec(containers=(c,), node_name=node))


def ours(plan, name):
    return next(s for s in plan.services if (s.namespace, s.name) == ("default", name))


# --------------------------------------------------------------------------- IP families


def test_single_stack_and_prefer_dual_stack_get_one_ipv4_cluster_ip():
    model = load(service("""
        ipFamilyPolicy: PreferDualStack
        selector: {app: web}
        ports: [{port: 80}]
    """) + "---\n" + service("""
        ipFamilies: [IPv4]
        ipFamilyPolicy: SingleStack
        ports: [{port: 80}]
    """, "single") + "---\n" + service("ports: [{port: 80}]\n", "plain"))
    assert model.warnings == ()
    plan = make_plan(model, LAB)
    for name, policy in (("web", "PreferDualStack"), ("single", "SingleStack"), ("plain", "SingleStack")):
        svc = ours(plan, name)
        assert (svc.ip_families, svc.ip_family_policy) == (("IPv4",), policy)
        assert isinstance(svc.cluster_ip, IPv4Address)
        spec = output.service_object(plan, svc)["spec"]
        assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv4"], policy)
        assert spec["clusterIPs"] == [str(svc.cluster_ip)]


def test_the_corpus_dual_stack_preferred_service_loads_and_gets_an_ipv4_address():
    model = load_model([str(CORPUS / "services" / "dual-stack-preferred-svc.yaml")])
    assert model.warnings == ()
    plan = make_plan(model, LAB)
    svc = ours(plan, "my-service")
    assert svc.cluster_ip in IPv4Network("10.96.0.0/16")
    assert (svc.ip_families, svc.ip_family_policy) == (("IPv4",), "PreferDualStack")


def test_ip_family_problems_have_their_exact_messages_and_lines():
    got = problems(service("""
        ipFamilyPolicy: RequireDualStack
        ipFamilies: [IPv4, IPv6]
        selector: {app: web}
        ports: [{port: 80}]
    """) + "---\n" + service("""
        ipFamilies: [IPv6]
        ports: [{port: 80}]
    """, "six") + "---\n" + service("""
        ipFamilies: [IPv4, IPv6]
        ports: [{port: 80}]
    """, "two") + "---\n" + service("""
        ipFamilies: [IPv4, IPv4, ipv6]
        ipFamilyPolicy: dual
        ports: [{port: 80}]
    """, "bad"))
    assert got == [
        '<stdin>:5: spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for '
        "dual-stack services (kubenet-lab is a single-stack IPv4 cluster: SingleStack and PreferDualStack get one "
        "IPv4 cluster IP)",
        '<stdin>:6: spec.ipFamilies[1]: Invalid value: "IPv6": not configured on this cluster (kubenet-lab is a '
        "single-stack IPv4 cluster)",
        '<stdin>:14: spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster (kubenet-lab is a '
        "single-stack IPv4 cluster)",
        "<stdin>:20: spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or "
        "'PreferDualStack' when multiple IP families are specified",
        "<stdin>:28: spec.ipFamilies[2]: expected one of IPv4, IPv6, got 'ipv6'",
        "<stdin>:29: spec.ipFamilyPolicy: expected one of SingleStack, PreferDualStack, RequireDualStack, got 'dual'",
    ]
    assert problems(service("""
        ipFamilies: [IPv4, IPv4]
        ipFamilyPolicy: PreferDualStack
        ports: [{port: 80}]
    """)) == ["<stdin>:5: spec.ipFamilies[1]: 'IPv4' is already used by spec.ipFamilies[0]"]


def test_a_headless_service_without_selector_defaults_to_both_families_as_the_api_server_does():
    model = load(service("clusterIP: None\n", "bare") + "---\n" + service("""
        clusterIP: None
        ipFamilies: [IPv6]
        ipFamilyPolicy: SingleStack
    """, "six") + "---\n" + service("""
        clusterIP: None
        selector: {app: db}
        ipFamilyPolicy: PreferDualStack
    """, "selected"))
    plan = make_plan(model, LAB)
    assert (ours(plan, "bare").ip_families, ours(plan, "bare").ip_family_policy) == (
        ("IPv4", "IPv6"), "RequireDualStack")
    assert (ours(plan, "six").ip_families, ours(plan, "six").ip_family_policy) == (("IPv6",), "SingleStack")
    assert (ours(plan, "selected").ip_families, ours(plan, "selected").ip_family_policy) == (
        ("IPv4",), "PreferDualStack")
    # ... but one with a selector is refused RequireDualStack like any other
    assert problems(service("""
        clusterIP: None
        selector: {app: db}
        ipFamilyPolicy: RequireDualStack
    """)) == ['<stdin>:7: spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured '
              "for dual-stack services (kubenet-lab is a single-stack IPv4 cluster: SingleStack and "
              "PreferDualStack get one IPv4 cluster IP)"]


# --------------------------------------------------------------------------- publishNotReadyAddresses


def sts_model(publish: bool) -> Model:
    pods = tuple(pod(f"web-{i}", {"app": "web"}, ports=((80, "web"),)) for i in range(2))
    return Model(pods=pods, services=(
        Service("default", "nginx", selector={"app": "web"}, cluster_ip="None",
                ports=(ServicePort(80, name="web", target_port="web"),), publish_not_ready_addresses=publish),
        Service("default", "web", selector={"app": "web"}, ports=(ServicePort(80, target_port=80),),
                publish_not_ready_addresses=publish)))


def test_publish_not_ready_addresses_keeps_not_ready_pods_ready_endpoints():
    plan = make_plan(sts_model(True), LAB)
    view = with_readiness(plan, {"default/web-0", "default/web-1"})
    for name in ("nginx", "web"):
        assert [e.ready for e in ours(view, name).ports[0].endpoints] == [True, True]
        [subset] = output.endpoints_object(view, ours(view, name))["subsets"]
        assert len(subset["addresses"]) == 2 and "notReadyAddresses" not in subset
    # ... while without it they are not ready, as before
    plain = with_readiness(make_plan(sts_model(False), LAB), {"default/web-0"})
    assert [(e.pod, e.ready) for e in ours(plain, "web").ports[0].endpoints] == [
        ("default/web-0", False), ("default/web-1", True)]
    # an ended pod is no endpoint either way
    ended = with_readiness(plan, {"default/web-0"}, {"default/web-0"})
    assert [e.pod for e in ours(ended, "web").ports[0].endpoints] == ["default/web-1"]


def test_a_headless_service_resolves_its_pods_before_they_are_ready_with_publish_not_ready_addresses():
    def answer(model):
        plan = make_plan(model, LAB)
        view = with_readiness(plan, {"default/web-0", "default/web-1"})
        reply = DNSRecord.parse(ClusterDNS(view).answer(
            DNSRecord.question("nginx.default.svc.cluster.local", "A").pack()))
        return sorted(str(rr.rdata) for rr in reply.rr), sorted(str(p.ip) for p in plan.pods
                                                               if p.namespace == "default")
    got, ips = answer(sts_model(True))
    assert got == ips and len(got) == 2
    assert answer(sts_model(False))[0] == []


def test_publish_not_ready_addresses_loads_and_shows():
    model = load(service("""
        clusterIP: None
        publishNotReadyAddresses: true
        selector: {app: web}
        ports: [{name: web, port: 80}]
    """))
    assert model.services[0].publish_not_ready_addresses is True and model.warnings == ()
    plan = make_plan(model, LAB)
    assert output.service_object(plan, ours(plan, "web"))["spec"]["publishNotReadyAddresses"] is True
    assert problems(service("publishNotReadyAddresses: yes please\nports: [{port: 80}]\n")) == [
        "<stdin>:5: spec.publishNotReadyAddresses: expected true or false, got 'yes please'"]


# --------------------------------------------------------------------------- allocateLoadBalancerNodePorts


def lb_model(**fields) -> Model:
    pods = (pod("a", {"app": "web"}, "node1"), pod("b", {"app": "web"}, "node2"))
    return Model(pods=pods, services=(
        Service("default", "direct", "LoadBalancer", {"app": "web"},
                ports=(ServicePort(80, name="http", target_port="http"),
                       ServicePort(81, name="fixed", target_port=8080, node_port=30081)), **fields),
        Service("default", "np", "NodePort", {"app": "web"}, ports=(ServicePort(80, target_port=8080),))))


def test_a_load_balancer_without_node_ports_gets_only_those_it_names():
    plan = make_plan(lb_model(allocate_load_balancer_node_ports=False), LAB)
    svc = ours(plan, "direct")
    assert [p.node_port for p in svc.ports] == [None, 30081]  # a nodePort given is still honoured
    assert output.ports_column(svc) == "80/TCP,81:30081/TCP"
    assert svc.load_balancer_ips and output.external_ip_column(svc) == str(svc.load_balancer_ips[0])
    assert output.service_object(plan, svc)["spec"]["allocateLoadBalancerNodePorts"] is False
    assert ours(plan, "np").ports[0].node_port == 30086  # the first free one: nothing was taken for "direct"
    with_ports = make_plan(lb_model(), LAB)
    assert all(p.node_port for p in ours(with_ports, "direct").ports)
    assert output.service_object(with_ports, ours(with_ports, "direct"))["spec"]["allocateLoadBalancerNodePorts"]


def test_the_balancer_sends_a_load_balancer_without_node_ports_to_its_ready_endpoints():
    plan = make_plan(lb_model(allocate_load_balancer_node_ports=False), LAB)
    lb_ip = ours(plan, "direct").load_balancer_ips[0]
    a, b = plan.pod("default/a").ip, plan.pod("default/b").ip
    fs = {f.port: f for f in forwards(plan, {})}
    assert fs[80].node_port is None and fs[80].targets == ((a, 8080), (b, 8080))
    assert fs[81].targets == ((a, 8080), (b, 8080))  # to the pods too, not to its nodePort
    text = render_lb(plan, {})
    assert (f"ip daddr {lb_ip} tcp dport 80 dnat ip to numgen random mod 2 map {{ 0 : {a} . 8080, "
            f'1 : {b} . 8080 }} comment "default/direct:http"') in text
    # not ready: left out; none ready: the balancer refuses, as for a port with no eligible node
    assert [f.targets for f in forwards(with_readiness(plan, {"default/a"}), {}) if f.port == 80] == [((b, 8080),)]
    none = render_lb(with_readiness(plan, {"default/a", "default/b"}), {})
    assert f'ip daddr {lb_ip} tcp dport 80 reject with tcp reset comment "default/direct:http has no ready ' \
           f'endpoint"' in none
    # the balancer routes to the pods through their nodes, only while it needs to
    balancer = outside.hosts(plan)[1]
    assert balancer.routes == {n.pod_cidr: n.ip for n in plan.nodes}
    assert outside.hosts(make_plan(lb_model(), LAB))[1].routes == {}


# --------------------------------------------------------------------------- loadBalancerClass


def test_a_load_balancer_of_another_class_gets_no_address_and_a_warning():
    model = load(service("""
        type: LoadBalancer
        loadBalancerClass: example.com/internal-vip
        loadBalancerIP: 10.0.0.1
        selector: {app: web}
        ports: [{port: 80}]
    """))
    assert model.warnings == (
        "<stdin>:6: spec.loadBalancerClass: 'example.com/internal-vip': no load balancer of this class runs in "
        "kubenet-lab (its own serves Services without a class, as a cloud provider's default one), so this "
        "Service gets no external address: EXTERNAL-IP stays <pending>; its cluster IP and NodePorts work",)
    plan = make_plan(model, LAB)
    svc = ours(plan, "web")
    assert svc.load_balancer_ips == () and output.external_ip_column(svc) == "<pending>"
    assert svc.ports[0].node_port is not None and svc.cluster_ip is not None
    assert forwards(plan, {}) == [] and "web" not in plan.allocations.lb_ips
    spec = output.service_object(plan, svc)
    assert spec["spec"]["loadBalancerClass"] == "example.com/internal-vip" and spec["status"] == {"loadBalancer": {}}


def test_load_balancer_only_fields_elsewhere_and_bad_values_are_refused():
    assert problems(service("""
        type: NodePort
        allocateLoadBalancerNodePorts: false
        loadBalancerClass: example.com/lb
        loadBalancerSourceRanges: [10.0.0.0/8]
        healthCheckNodePort: 30100
        ports: [{port: 80}]
    """) + "---\n" + service("""
        type: LoadBalancer
        externalTrafficPolicy: Local
        loadBalancerClass: "-bad"
        loadBalancerSourceRanges: [10.0.0.0, "::/0"]
        healthCheckNodePort: 70000
        ports: [{port: 80, appProtocol: "no good"}]
    """, "lb")) == [
        "<stdin>:6: spec.allocateLoadBalancerNodePorts: may only be used when `type` is 'LoadBalancer'",
        "<stdin>:7: spec.loadBalancerClass: may only be used when `type` is 'LoadBalancer'",
        "<stdin>:8: spec.loadBalancerSourceRanges: may only be used when `type` is 'LoadBalancer'",
        "<stdin>:9: spec.healthCheckNodePort: may only be set when `type` is 'LoadBalancer' and "
        "`externalTrafficPolicy` is 'Local'",
        "<stdin>:18: spec.loadBalancerClass: '-bad' is not a qualified name (at most 63 letters, digits, '-', '_' "
        "or '.', starting and ending with a letter or digit, with an optional DNS-subdomain 'prefix/', such as "
        "'http' or 'kubernetes.io/h2c')",
        "<stdin>:19: spec.loadBalancerSourceRanges[0]: expected an IP range (CIDR) like 10.240.0.0/24, got "
        "'10.0.0.0'",
        "<stdin>:20: spec.healthCheckNodePort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "<stdin>:21: spec.ports[0].appProtocol: 'no good' is not a qualified name (at most 63 letters, digits, '-', "
        "'_' or '.', starting and ending with a letter or digit, with an optional DNS-subdomain 'prefix/', such as "
        "'http' or 'kubernetes.io/h2c')",
    ]


# --------------------------------------------------------------------------- not modelled yet: warned


def test_health_check_node_port_and_source_ranges_are_kept_without_a_warning():
    model = load(service("""
        type: LoadBalancer
        externalTrafficPolicy: Local
        healthCheckNodePort: 30086
        loadBalancerSourceRanges: [203.0.113.0/24, "2001:db8::/32"]
        selector: {app: web}
        ports: [{port: 80}]
    """))
    assert model.warnings == ()  # every node answers the health check on it, and the balancer probes it
    plan = make_plan(model, LAB)
    svc = ours(plan, "web")
    assert svc.ports[0].node_port == 30087  # 30086, the upper band's first, is the health check's
    spec = output.service_object(plan, svc)["spec"]
    assert spec["healthCheckNodePort"] == 30086
    assert spec["loadBalancerSourceRanges"] == ["203.0.113.0/24", "2001:db8::/32"]


def test_a_health_check_node_port_is_allocated_like_a_node_port(tmp_path):
    f = tmp_path / "svc.yaml"
    f.write_text(service("""
        type: NodePort
        ports: [{port: 80, nodePort: 30007}]
    """, "a") + "---\n" + service("""
        type: LoadBalancer
        externalTrafficPolicy: Local
        healthCheckNodePort: 30007
        ports: [{port: 80}]
    """, "b"))
    with pytest.raises(InputError) as err:
        make_plan(load_model([str(f)]), LAB)
    assert err.value.problems == [f"{f}:14: spec.healthCheckNodePort: 30007 is already allocated to default/a"]


def test_traffic_distribution_is_kept_and_warned_about_only_where_it_would_route_differently():
    text = service("""
        trafficDistribution: PreferClose
        selector: {app: web}
        ports: [{port: 80}]
    """) + "---\n" + service("""
        trafficDistribution: PreferSameZone
        clusterIP: None
        selector: {app: web}
    """, "headless") + "---\n" + service("""
        trafficDistribution: PreferSameNode
        selector: {app: web}
        ports: [{port: 80}]
    """, "same-node")
    model = load(text)
    assert model.warnings == (  # no zones: PreferClose changes nothing; PreferSameNode would
        "<stdin>:21: spec.trafficDistribution: PreferSameNode is not modelled yet: on a cluster (Kubernetes "
        "1.33+) each node's kube-proxy would prefer the ready endpoints on its own node; here every node uses "
        "every ready endpoint",)
    plan = make_plan(model, LAB)
    assert output.service_object(plan, ours(plan, "web"))["spec"]["trafficDistribution"] == "PreferClose"
    zoned = load(text + "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: node1\n"
                 "  labels: {topology.kubernetes.io/zone: a}\n")
    assert zoned.warnings[0] == (
        "<stdin>:5: spec.trafficDistribution: not modelled yet: the nodes have topology.kubernetes.io/zone labels, "
        "so on a cluster kube-proxy would prefer the ready endpoints of its own zone; here every node uses every "
        "ready endpoint")
    assert len(zoned.warnings) == 2  # not for the headless service, which kube-proxy does not route
    assert problems(service("trafficDistribution: Nearest\nports: [{port: 80}]\n")) == [
        "<stdin>:5: spec.trafficDistribution: expected one of PreferClose, PreferSameZone, PreferSameNode, "
        "got 'Nearest'"]


# --------------------------------------------------------------------------- appProtocol


def test_app_protocol_is_kept_and_shown_in_the_service_and_its_endpoints():
    model = load(service("""
        selector: {app: web}
        ports:
        - {name: http, port: 80, targetPort: http, appProtocol: kubernetes.io/h2c}
        - {name: metrics, port: 9100, targetPort: 9100}
    """))
    assert model.services[0].ports[0].app_protocol == "kubernetes.io/h2c"
    plan = make_plan(Model(pods=(pod("a", {"app": "web"}, ports=((8080, "http"), (9100, "metrics"))),),
                           services=model.services), LAB)
    svc = ours(plan, "web")
    ports = output.service_object(plan, svc)["spec"]["ports"]
    assert ports[0]["appProtocol"] == "kubernetes.io/h2c" and "appProtocol" not in ports[1]
    [subset] = output.endpoints_object(plan, svc)["subsets"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"},
                               {"name": "metrics", "port": 9100, "protocol": "TCP"}]


def test_the_new_fields_survive_the_saved_plan():
    plan = make_plan(Model(pods=(pod("a", {"app": "web"}),), services=(
        Service("default", "web", "LoadBalancer", {"app": "web"},
                ports=(ServicePort(80, target_port="http", app_protocol="http"),),
                ip_family_policy="PreferDualStack", publish_not_ready_addresses=True,
                allocate_load_balancer_node_ports=False, load_balancer_source_ranges=("10.0.0.0/8",),
                traffic_distribution="PreferClose", external_traffic_policy="Local",
                health_check_node_port=31000),)), LAB)
    assert plan_from_data(plan_to_data(plan)) == plan


def test_ipmode_is_read_from_the_status_vip_by_default_as_the_api_server_defaults_it():
    model = load("""
        apiVersion: v1
        kind: Service
        metadata: {name: lb}
        spec:
          type: LoadBalancer
          ports: [{port: 80}]
        status:
          loadBalancer:
            ingress: [{ip: 203.0.113.7, ipMode: Proxy}, {ip: 203.0.113.8}, {hostname: lb.example.com}]
    """)
    plan = make_plan(model, LAB)
    svc = next(s for s in plan.services if s.name == "lb")
    assert svc.load_balancer_ips == (IPv4Address("203.0.113.7"), IPv4Address("203.0.113.8"))
    assert svc.proxied_lb_ips == (IPv4Address("203.0.113.7"),)
    assert output.service_object(plan, svc)["status"] == {"loadBalancer": {"ingress": [
        {"ip": "203.0.113.7", "ipMode": "Proxy"}, {"ip": "203.0.113.8", "ipMode": "VIP"}]}}
    # every node routes both to the balancer (the address outside the node network)
    for node in plan.nodes:
        assert {str(dst) for dst, _ in node.routes} >= {"203.0.113.7/32", "203.0.113.8/32"}
