"""kube-proxy's health servers, pure parts: what a node counts (proxy/healthcheck.py) and what it
answers (servers/kubeproxy.py), as kube-proxy v1.33 does (pkg/proxy/healthcheck/service_health.go,
proxy_health.go; the local endpoint count of pkg/proxy/endpointschangetracker.go's
LocalReadyEndpoints)."""
from __future__ import annotations

import json
from ipaddress import IPv4Address

from kubenet_lab.model.objects import Endpoint
from kubenet_lab.proxy.healthcheck import ServiceHealth, has_health_check, local_ready_endpoints, service_health
from kubenet_lab.servers import kubeproxy
from kubenet_lab.servers.http import Request
from tests.unit.test_render_fixtures import plan, port, service


def ep(ip: str, node: str, ready: bool = True, terminating: bool = False) -> Endpoint:
    return Endpoint(IPv4Address(ip), 8080, f"default/p{ip[-1]}", node, ready=ready, terminating=terminating)


def lb(name: str, *ports, policy: str = "Local", hc: int | None = 32000, **kw):
    return service("default", name, "10.96.0.50", *ports, type="LoadBalancer", load_balancer_ips=("172.18.0.192",),
                   external_traffic_policy=policy, health_check_node_port=hc, **kw)


def test_local_ready_endpoints_are_counted_once_per_address_over_the_ports():
    svc = lb("web", port(80, "http", [ep("10.244.1.1", "node1"), ep("10.244.1.2", "node1"),
                                      ep("10.244.2.1", "node2")]),
             port(443, "https", [ep("10.244.1.1", "node1"), ep("10.244.1.3", "node1", ready=False),
                                 ep("10.244.1.4", "node1", ready=False, terminating=True)]))
    # 10.0.0.1:80 and 10.0.0.1:443 are one endpoint (LocalReadyEndpoints' comment); not ready and
    # terminating ones do not count, so a node with only terminating endpoints fails the check
    assert local_ready_endpoints(svc, "node1") == 2
    assert local_ready_endpoints(svc, "node2") == 1
    assert local_ready_endpoints(svc, "node3") == 0


def test_a_node_answers_health_checks_for_local_load_balancers_with_a_port_only():
    p = plan(lb("web", port(80, None, [ep("10.244.1.1", "node1")])),
             lb("cl", port(80, None, [ep("10.244.1.1", "node1")]), policy="Cluster", hc=None),
             service("default", "np", "10.96.0.9", port(80, None, [], node_port=30999), type="NodePort"),
             lb("empty", port(80, None, []), hc=32001))
    assert [has_health_check(s) for s in p.services] == [True, False, False, True]
    assert service_health(p, "node1") == (ServiceHealth("default", "web", 32000, 1),
                                          ServiceHealth("default", "empty", 32001, 0))
    assert service_health(p, "node2") == (ServiceHealth("default", "web", 32000, 0),
                                          ServiceHealth("default", "empty", 32001, 0))


def test_the_health_check_answer_is_kube_proxys():
    ok = kubeproxy.service_health("default", "web", 7)
    assert ok.status == 200
    assert ok.payload().decode() == ('{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "web"\n\t},\n'
                                     '\t"localEndpoints": 7,\n\t"serviceProxyHealthy": true\n}')
    assert ok.headers == {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff",
                          "X-Load-Balancing-Endpoint-Weight": "7"}
    # kube-proxy's TestServer: 0 endpoints 503, 7 endpoints 200; an unhealthy proxy 503 for all
    none = kubeproxy.service_health("default", "web", 0)
    assert none.status == 503 and json.loads(none.payload()) == {
        "service": {"namespace": "default", "name": "web"}, "localEndpoints": 0, "serviceProxyHealthy": True}
    assert kubeproxy.service_health("default", "web", 7, proxy_healthy=False).status == 503


def request(path: str) -> Request:
    return Request("GET", path, "HTTP/1.1", {}, ("172.18.0.253", 40000), path=path)


def test_the_node_health_port_answers_healthz_and_livez_as_kube_proxy():
    second = 1_700_000_000 * 10**9
    resp = kubeproxy.proxy_health(request("/healthz"), updated_ns=second + 500, now_ns=second + 123_000_000)
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
    assert resp.payload().decode() == (
        '{"lastUpdated":"2023-11-14T22:13:20.123Z","currentTime":"2023-11-14T22:13:20.123Z","nodeEligible":true,'
        '"healthy":true,"status":{"IPv4":{"lastUpdated":"2023-11-14T22:13:20.0000005Z","healthy":true}}}')
    livez = json.loads(kubeproxy.proxy_health(request("/livez"), second, second).payload())
    assert list(livez) == ["lastUpdated", "currentTime", "healthy", "status"]  # nodeEligible: /healthz only
    assert livez["lastUpdated"] == "2023-11-14T22:13:20Z"
    other = kubeproxy.proxy_health(request("/metrics"), second, second)
    assert (other.status, other.payload()) == (404, b"404 page not found\n")
