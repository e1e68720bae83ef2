"""The cluster DNS server on real sockets: served inside one throwaway namespace, asked with dig
from another over a veth, over UDP and TCP."""
from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import threading

import pytest

from kubenet_lab.plan import make_plan
from kubenet_lab.model.objects import Container, ContainerPort, Model, Pod, PodSpec, Service, ServicePort
from kubenet_lab.servers.dns import ClusterDNS, serve_dns

pytestmark = pytest.mark.root

SERVER_IP, CLIENT_IP = "10.253.53.1", "10.253.53.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def model(*extra: Service) -> Model:
    c = Container("c", "nginx", ports=(ContainerPort(8080, "http"),))
    pods = tuple(Pod("default", f"web-{i}", {"app": "web"}, PodSpec(containers=(c,))) for i in range(2))
    services = (Service("default", "web", selector={"app": "web"},
                        ports=(ServicePort(80, name="http", target_port="http"),)),
                Service("default", "web-headless", selector={"app": "web"}, cluster_ip="None",
                        ports=(ServicePort(80, name="http", target_port="http"),)), *extra)
    return Model(pods=pods, services=services)


@pytest.fixture
def netns_pair():
    """Two namespaces joined by a veth made inside the first (the host's namespace is never touched)."""
    if shutil.which("dig") is None:
        pytest.skip("dig is missing: apt-get install -y dnsutils")
    tag = secrets.token_hex(3)
    server, client = f"kdnst-{tag}-s", f"kdnst-{tag}-c"
    made = []
    try:
        for ns in (server, client):
            ip("netns", "add", ns)
            made.append(ns)
        ip("-n", server, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", client)
        for ns, addr in ((server, SERVER_IP), (client, CLIENT_IP)):
            ip("-n", ns, "addr", "add", f"{addr}/30", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield server, client
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def served(netns_pair):
    """serve_dns on its own asyncio loop in a thread, as the supervisor runs it."""
    server, client = netns_pair
    dns = ClusterDNS(make_plan(model(), "lab"))
    lines: list[str] = []
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    closer = None
    try:
        closer = asyncio.run_coroutine_threadsafe(serve_dns(server, 53, dns, lines.append), loop).result(10)
        yield dns, client, lines
    finally:
        if closer is not None:
            loop.call_soon_threadsafe(closer.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def dig(client: str, *args: str) -> str:
    proc = subprocess.run(["ip", "netns", "exec", client, "dig", f"@{SERVER_IP}", "+time=5", "+tries=1", *args],
                          capture_output=True, text=True, timeout=20)
    return proc.stdout


def test_udp_and_tcp_answers(served):
    dns, client, lines = served
    plan = make_plan(model(), "lab")
    cluster_ip = str(next(s for s in plan.services if s.key == "default/web").cluster_ip)
    pods = sorted(str(p.ip) for p in plan.pods if p.namespace == "default")
    assert dig(client, "+short", "web.default.svc.cluster.local").split() == [cluster_ip]
    assert dig(client, "+short", "+tcp", "web.default.svc.cluster.local").split() == [cluster_ip]
    assert sorted(dig(client, "+short", "web-headless.default.svc.cluster.local").split()) == pods
    assert dig(client, "+short", "-x", cluster_ip).split() == ["web.default.svc.cluster.local."]
    srv = dig(client, "+short", "SRV", "_http._tcp.web.default.svc.cluster.local").split()
    assert srv == ["0", "100", "80", "web.default.svc.cluster.local."]
    assert any("0.0.0.0:53" in line for line in lines)


def test_refused_and_nxdomain_come_back_at_once(served):
    _, client, _ = served
    # An answer with a status came back; a server that stayed silent would leave dig with
    # "no servers could be reached" and no status at all.
    assert "status: REFUSED" in dig(client, "example.com")
    assert "status: NXDOMAIN" in dig(client, "nope.default.svc.cluster.local")
    assert "status: NXDOMAIN" in dig(client, "+tcp", "nope.default.svc.cluster.local")


def test_a_large_answer_is_truncated_over_udp_and_dig_retries_over_tcp(served):
    dns, client, _ = served
    c = Container("c", "nginx", ports=(ContainerPort(8080, "http"),))
    many = tuple(Pod("default", f"many-{i}", {"app": "many"}, PodSpec(containers=(c,))) for i in range(60))
    big = model(Service("default", "many", selector={"app": "many"}, cluster_ip="None",
                        ports=(ServicePort(80, name="http", target_port="http"),)))
    dns.update(make_plan(Model(pods=big.pods + many, services=big.services), "lab"))
    out = dig(client, "+noedns", "many.default.svc.cluster.local")
    assert "Truncated, retrying in TCP mode" in out and "ANSWER: 60" in out


def test_a_service_added_on_a_running_server_resolves(served):
    dns, client, _ = served
    assert dig(client, "+short", "api.default.svc.cluster.local").split() == []
    plan = make_plan(model(Service("default", "api", selector={"app": "web"}, ports=(ServicePort(80),))), "lab")
    dns.update(plan)
    cluster_ip = str(next(s for s in plan.services if s.key == "default/api").cluster_ip)
    assert dig(client, "+short", "api.default.svc.cluster.local").split() == [cluster_ip]
