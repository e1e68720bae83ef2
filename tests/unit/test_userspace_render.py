"""kube-proxy's userspace mode rules (proxy/userspace.py): the layout of the old proxier
(pkg/proxy/userspace/proxier.go, release-1.25: iptablesInit's jumps and comments,
iptablesContainerPortalArgs / iptablesHostPortalArgs / iptablesHostNodePortArgs /
iptablesNonLocalNodePortArgs), written in iptables-save's argument order; the proxy ports; and
the render through proxy.sync as a lab applies it."""
import dataclasses

from kubenet_lab.kernel.rules import merge_iptables
from kubenet_lab.proxy import userspace
from kubenet_lab.proxy.fragments import port_key
from kubenet_lab.proxy.sync import RenderedNode, plan_sync, render_node, render_nodes, syntax
from tests.unit.test_render_fixtures import NODE1_IP, NODE2_IP, ep, plan, port, service

WEB = service("default", "web", "10.96.0.2",
              port(80, "http", [ep("10.244.1.3", 8080), ep("10.244.2.3", 8080, "node2")], node_port=30080,
                   target=8080),
              port(8081, "udp", [ep("10.244.1.3", 8081)], proto="UDP", node_port=30086),
              type="NodePort", external_ips=["192.0.2.7"])
DNS = service("kube-system", "kube-dns", "10.96.0.10", port(53, "dns", [ep("10.244.1.9", 53)], proto="UDP"))
HEADLESS = service("default", "db", None, port(5432, "pg", [ep("10.244.1.4", 5432)]))


def test_the_proxiers_layout():
    p = plan(WEB, DNS, HEADLESS)
    ports = userspace.proxy_ports(p)
    http, udp = ports[port_key(WEB, WEB.ports[0])], ports[port_key(WEB, WEB.ports[1])]
    dns = ports[port_key(DNS, DNS.ports[0])]
    assert len(ports) == 3  # a headless Service has no portal
    text = render_node(p, "node1", "userspace").text()
    web_http, web_udp, kube_dns = '"default/web:http"', '"default/web:udp"', '"kube-system/kube-dns:dns"'
    assert text.splitlines() == [
        "*filter",
        ":KUBE-NODEPORT-NON-LOCAL - [0:0]",
        '-I INPUT 1 -m comment --comment "Ensure that non-local NodePort traffic can flow" -j KUBE-NODEPORT-NON-LOCAL',
        f"-A KUBE-NODEPORT-NON-LOCAL -p tcp -m comment --comment {web_http} -m tcp --dport {http} "
        "-m state --state NEW -j ACCEPT",
        f"-A KUBE-NODEPORT-NON-LOCAL -p udp -m comment --comment {web_udp} -m udp --dport {udp} "
        "-m state --state NEW -j ACCEPT",
        "COMMIT",
        "*nat",
        ":KUBE-PORTALS-CONTAINER - [0:0]",
        ":KUBE-PORTALS-HOST - [0:0]",
        ":KUBE-NODEPORT-CONTAINER - [0:0]",
        ":KUBE-NODEPORT-HOST - [0:0]",
        '-I OUTPUT 1 -m comment --comment "handle ClusterIPs; NOTE: this must be before the NodePort rules" '
        "-j KUBE-PORTALS-HOST",
        '-I PREROUTING 1 -m comment --comment "handle ClusterIPs; NOTE: this must be before the NodePort rules" '
        "-j KUBE-PORTALS-CONTAINER",
        '-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "handle service NodePorts; NOTE: this must '
        'be the last rule in the chain" -j KUBE-NODEPORT-CONTAINER',
        '-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "handle service NodePorts; NOTE: this must '
        'be the last rule in the chain" -j KUBE-NODEPORT-HOST',
        f"-A KUBE-PORTALS-CONTAINER -d 10.96.0.2/32 -p tcp -m comment --comment {web_http} -m tcp --dport 80 "
        f"-j REDIRECT --to-ports {http}",
        f"-A KUBE-PORTALS-CONTAINER -d 192.0.2.7/32 -p tcp -m comment --comment {web_http} -m tcp --dport 80 "
        f"-j REDIRECT --to-ports {http}",
        f"-A KUBE-PORTALS-CONTAINER -d 10.96.0.2/32 -p udp -m comment --comment {web_udp} -m udp --dport 8081 "
        f"-j REDIRECT --to-ports {udp}",
        f"-A KUBE-PORTALS-CONTAINER -d 192.0.2.7/32 -p udp -m comment --comment {web_udp} -m udp --dport 8081 "
        f"-j REDIRECT --to-ports {udp}",
        f"-A KUBE-PORTALS-CONTAINER -d 10.96.0.10/32 -p udp -m comment --comment {kube_dns} -m udp --dport 53 "
        f"-j REDIRECT --to-ports {dns}",
        f"-A KUBE-PORTALS-HOST -d 10.96.0.2/32 -p tcp -m comment --comment {web_http} -m tcp --dport 80 "
        f"-j DNAT --to-destination {NODE1_IP}:{http}",
        f"-A KUBE-PORTALS-HOST -d 192.0.2.7/32 -p tcp -m comment --comment {web_http} -m tcp --dport 80 "
        f"-j DNAT --to-destination {NODE1_IP}:{http}",
        f"-A KUBE-PORTALS-HOST -d 10.96.0.2/32 -p udp -m comment --comment {web_udp} -m udp --dport 8081 "
        f"-j DNAT --to-destination {NODE1_IP}:{udp}",
        f"-A KUBE-PORTALS-HOST -d 192.0.2.7/32 -p udp -m comment --comment {web_udp} -m udp --dport 8081 "
        f"-j DNAT --to-destination {NODE1_IP}:{udp}",
        f"-A KUBE-PORTALS-HOST -d 10.96.0.10/32 -p udp -m comment --comment {kube_dns} -m udp --dport 53 "
        f"-j DNAT --to-destination {NODE1_IP}:{dns}",
        f"-A KUBE-NODEPORT-CONTAINER -p tcp -m comment --comment {web_http} -m tcp --dport 30080 "
        f"-j REDIRECT --to-ports {http}",
        f"-A KUBE-NODEPORT-CONTAINER -p udp -m comment --comment {web_udp} -m udp --dport 30086 "
        f"-j REDIRECT --to-ports {udp}",
        f"-A KUBE-NODEPORT-HOST -p tcp -m comment --comment {web_http} -m tcp --dport 30080 "
        f"-j DNAT --to-destination {NODE1_IP}:{http}",
        f"-A KUBE-NODEPORT-HOST -p udp -m comment --comment {web_udp} -m udp --dport 30086 "
        f"-j DNAT --to-destination {NODE1_IP}:{udp}",
        "COMMIT",
    ]


def test_each_node_sends_its_own_traffic_to_its_own_address_and_the_same_proxy_ports():
    p = plan(WEB)
    nodes = render_nodes(p, "userspace")
    one, two = nodes["node1"].text(), nodes["node2"].text()
    assert f"--to-destination {NODE1_IP}:" in one and NODE2_IP not in one
    assert one.replace(NODE1_IP, NODE2_IP) == two


def test_no_endpoint_rules_and_no_masquerade():
    """The rules name the proxy ports only: endpoints change the proxy, not the node's rules."""
    p = plan(WEB)
    fewer = plan(dataclasses.replace(WEB, ports=tuple(dataclasses.replace(sp, endpoints=sp.endpoints[:1])
                                                    for sp in WEB.ports)))
    text = render_node(p, "node1", "userspace").text()
    assert "10.244." not in text and "MASQUERADE" not in text and "KUBE-SVC" not in text
    assert plan_sync(render_node(p, "node1", "userspace"), render_node(fewer, "node1", "userspace")).text == ""


def test_proxy_ports_are_distinct_in_range_and_never_a_node_port():
    services = [service("default", f"s{i}", f"10.96.1.{i}", port(80, "http", node_port=30000 + i), type="NodePort")
                for i in range(1, 200)]
    p = plan(*services)
    ports = userspace.proxy_ports(p)
    assert len(set(ports.values())) == len(ports) == 199
    first, last = userspace.PROXY_PORTS
    assert all(first <= n <= last for n in ports.values())
    assert not set(ports.values()) & {30000 + i for i in range(1, 200)}


def test_a_colliding_node_port_moves_the_proxy_port():
    lone = plan(WEB)
    key = port_key(WEB, WEB.ports[0])
    natural = userspace.proxy_ports(lone)[key]
    other = service("default", "other", "10.96.0.9", port(81, "x", node_port=natural), type="NodePort")
    moved = userspace.proxy_ports(plan(WEB, other))[key]
    assert moved != natural


def test_a_new_service_leaves_the_others_ports_alone():
    before = userspace.proxy_ports(plan(WEB, DNS))
    after = userspace.proxy_ports(plan(WEB, DNS, service("default", "more", "10.96.0.11", port(80, "http"))))
    assert {k: after[k] for k in before} == before


def test_a_sync_loads_the_whole_ruleset_and_merges_with_the_nodes_own():
    old, new = render_node(plan(WEB), "node1", "userspace"), render_node(plan(WEB, DNS), "node1", "userspace")
    sync = plan_sync(old, new)
    assert sync.full and sync.text == new.text()
    assert syntax("userspace") == "iptables"
    own = "*nat\n:PREROUTING ACCEPT [0:0]\n:CNI-HOSTPORT-DNAT - [0:0]\n-A PREROUTING -j CNI-HOSTPORT-DNAT\nCOMMIT\n"
    merged = merge_iptables(own, new.text())
    assert "-A PREROUTING -j CNI-HOSTPORT-DNAT" in merged
    lines = merged.splitlines()
    # the portals come first in PREROUTING and OUTPUT, the NodePorts last, as iptablesInit orders them
    pre = [l for l in lines if l.startswith("-A PREROUTING")]
    assert pre[0].endswith("-j KUBE-PORTALS-CONTAINER") and pre[-1].endswith("-j KUBE-NODEPORT-CONTAINER")


def test_the_stored_render_reads_back():
    node = render_node(plan(WEB, DNS), "node2", "userspace")
    again = RenderedNode.from_json(node.to_json())
    assert again == node and again.text() == node.text()
