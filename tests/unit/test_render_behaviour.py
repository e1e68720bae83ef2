"""What packets do under the rendered rules, in both modes, checked with the tracer."""
import pytest

from tests.unit.rendered_tracer import for_node
from tests.unit.test_render_fixtures import NODE1_IP, NODE2_IP, ep, plan, port, service, with_balancing

MODES = ("iptables", "nftables")
CIP = "10.96.0.20"
POD_N1, POD_N2, OUTSIDE = "10.244.1.50", "10.244.2.50", "192.168.7.7"
E1, E2, E3 = ep("10.244.1.10"), ep("10.244.1.11"), ep("10.244.2.10", node="node2")
ALL3 = {"10.244.1.10:8080", "10.244.1.11:8080", "10.244.2.10:8080"}


def web(*eps, **kw):
    kw.setdefault("type", "NodePort")
    return service("default", "web", CIP, port(80, "http", eps, node_port=30080, target=8080), **kw)


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def tracer(p, mode, node="node1", **kw):
    return for_node(p, node, mode, **kw)


def test_cluster_ip_balances_evenly_and_keeps_pod_source(mode):
    for source, src in (("pod", POD_N1), ("pod", POD_N2)):
        t = tracer(plan(web(E1, E2, E3)), mode).trace(src, CIP, 80, source=source)
        assert set(t.endpoints) == ALL3
        assert all(abs(p - 1 / 3) < 1e-6 for p in t.endpoints.values())
        assert not any(o.masquerade for o in t.outcomes)


def test_nft_rules_form_balances_the_same():
    for p in (with_balancing(plan(web(E1, E2, E3)), "rules"), plan(web(E1, E2, E3))):
        t = tracer(p, "nftables").trace(POD_N1, CIP, 80)
        assert all(abs(p - 1 / 3) < 1e-6 for p in t.endpoints.values()) and set(t.endpoints) == ALL3


def test_node_and_outside_clients_are_masqueraded(mode):
    t = tracer(plan(web(E1, E2, E3)), mode)
    assert t.trace(NODE1_IP, CIP, 80, source="node").masqueraded
    assert t.trace(OUTSIDE, CIP, 80, source="external").masqueraded


def test_wrong_port_or_protocol_is_not_proxied(mode):
    t = tracer(plan(web(E1)), mode)
    assert not t.trace(POD_N1, CIP, 80, proto="udp").endpoints
    assert not t.trace(POD_N1, CIP, 81).endpoints


def test_udp_service(mode):
    svc = service("default", "dns", "10.96.0.10", port(53, "dns", [ep("10.244.1.9", 53)], proto="UDP"))
    t = tracer(plan(svc), mode)
    assert t.trace(POD_N1, "10.96.0.10", 53, proto="udp").endpoints == {"10.244.1.9:53": 1.0}
    assert not t.trace(POD_N1, "10.96.0.10", 53, proto="tcp").endpoints


def test_hairpin_is_masqueraded(mode):
    t = tracer(plan(web(E1, E2)), mode).trace("10.244.1.10", CIP, 80)
    by_ep = {o.endpoint: o.masquerade for o in t.outcomes}
    assert by_ep == {"10.244.1.10:8080": True, "10.244.1.11:8080": False}


def test_node_port_from_outside_reaches_every_endpoint_masqueraded(mode):
    for node, ip in (("node1", NODE1_IP), ("node2", NODE2_IP)):
        t = tracer(plan(web(E1, E2, E3)), mode, node).trace(OUTSIDE, ip, 30080, source="external")
        assert set(t.endpoints) == ALL3 and t.masqueraded


def test_node_port_from_a_pod_and_from_the_node(mode):
    t = tracer(plan(web(E1, E2, E3)), mode)
    assert set(t.trace(POD_N2, NODE1_IP, 30080).endpoints) == ALL3
    assert set(t.trace(NODE1_IP, NODE1_IP, 30080, source="node").endpoints) == ALL3


@pytest.mark.parametrize("nfacct", [False, True])
def test_localhost_node_port_from_the_node_in_iptables_mode(nfacct):
    """localhostNodePorts: 127.0.0.1:NODEPORT from the node reaches every endpoint, masqueraded,
    whether kube-proxy counts it in a rule of its own (nfacct counters) or not."""
    t = tracer(plan(web(E1, E2, E3)), "iptables", nfacct=nfacct)
    out = t.trace("127.0.0.1", "127.0.0.1", 30080, source="node")
    assert set(out.endpoints) == ALL3 and out.masqueraded


def test_node_port_only_on_node_addresses(mode):
    t = tracer(plan(web(E1)), mode)
    assert not t.trace(OUTSIDE, "10.9.9.9", 30080, source="external").endpoints


def test_affinity_pins_a_known_client(mode):
    p = plan(web(E1, E2, E3, session_affinity="ClientIP", affinity_timeout=600))
    t = tracer(p, mode)
    first = t.trace(POD_N1, CIP, 80)
    assert set(first.endpoints) == ALL3
    recorded = first.recorded_for("10.244.2.10:8080")
    assert len(recorded) == 1
    known = {name: 30.0 for name in recorded}
    assert t.trace(POD_N1, CIP, 80, known=known).endpoints == {"10.244.2.10:8080": 1.0}
    expired = {name: 601.0 for name in recorded}
    assert set(t.trace(POD_N1, CIP, 80, known=expired).endpoints) == ALL3


def test_no_affinity_records_nothing(mode):
    t = tracer(plan(web(E1, E2)), mode).trace(POD_N1, CIP, 80)
    assert all(not o.recorded for o in t.outcomes)


def test_external_traffic_policy_local(mode):
    p = plan(web(E1, E3, external_traffic_policy="Local"))
    n1, n2 = tracer(p, mode, "node1"), tracer(p, mode, "node2")
    outside = n1.trace(OUTSIDE, NODE1_IP, 30080, source="external")
    assert outside.endpoints == {"10.244.1.10:8080": 1.0} and not outside.masqueraded
    assert n2.trace(OUTSIDE, NODE2_IP, 30080, source="external").endpoints == {"10.244.2.10:8080": 1.0}
    # pods short-circuit to every endpoint, as kube-proxy does
    assert set(n1.trace(POD_N1, NODE1_IP, 30080).endpoints) == {"10.244.1.10:8080", "10.244.2.10:8080"}
    # the cluster IP is not affected
    assert set(n1.trace(POD_N1, CIP, 80).endpoints) == {"10.244.1.10:8080", "10.244.2.10:8080"}


def test_external_traffic_policy_local_without_local_endpoint_drops(mode):
    p = plan(web(E3, external_traffic_policy="Local"))
    t = tracer(p, mode, "node1")
    assert t.trace(OUTSIDE, NODE1_IP, 30080, source="external").dropped
    assert t.trace(POD_N1, NODE1_IP, 30080).endpoints == {"10.244.2.10:8080": 1.0}
    assert t.trace(NODE1_IP, NODE1_IP, 30080, source="node").masqueraded


def test_internal_traffic_policy_local(mode):
    p = plan(web(E1, E3, internal_traffic_policy="Local", type="ClusterIP"))
    assert tracer(p, mode, "node1").trace(POD_N1, CIP, 80).endpoints == {"10.244.1.10:8080": 1.0}
    assert tracer(p, mode, "node2").trace(POD_N2, CIP, 80).endpoints == {"10.244.2.10:8080": 1.0}
    only_n2 = plan(web(E3, internal_traffic_policy="Local", type="ClusterIP"))
    assert tracer(only_n2, mode, "node1").trace(POD_N1, CIP, 80).dropped


def test_no_endpoints_rejects_cluster_ip_and_node_port(mode):
    t = tracer(plan(web()), mode)
    assert t.trace(POD_N1, CIP, 80).rejected
    assert t.trace(NODE1_IP, CIP, 80, source="node").rejected
    assert t.trace(OUTSIDE, NODE1_IP, 30080, source="external").rejected
    assert t.trace(POD_N1, NODE1_IP, 30080).rejected


def test_headless_service_gets_no_rules(mode):
    headless = service("default", "db", None, port(5432, None, [ep("10.244.1.10", 5432)]))
    t = tracer(plan(headless), mode)
    assert t.trace(POD_N1, "10.244.1.10", 5432).untouched


def test_external_and_load_balancer_ips(mode):
    p = plan(web(E1, E3, type="LoadBalancer", load_balancer_ips=["172.18.0.200"],
                 external_ips=["172.18.0.201"]))
    t = tracer(p, mode)
    for ip in ("172.18.0.200", "172.18.0.201"):
        out = t.trace(OUTSIDE, ip, 80, source="external")
        assert set(out.endpoints) == {"10.244.1.10:8080", "10.244.2.10:8080"} and out.masqueraded


def test_service_without_pod_traffic_is_left_alone(mode):
    t = tracer(plan(web(E1)), mode)
    assert t.trace(POD_N1, POD_N2, 8080).untouched
    assert t.trace(POD_N1, NODE2_IP, 22).untouched
