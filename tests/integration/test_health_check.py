"""kube-proxy's health check port and the balancer that chooses nodes by it, with real packets,
in both proxy modes: every node answers a LoadBalancer's healthCheckNodePort (externalTrafficPolicy
Local) as kube-proxy does, 200 with its local ready endpoints counted or 503 without one, and the
node's own health port 10256; the lab's balancer probes those ports from its namespace and sends
the Service's traffic only to the nodes that pass, following scale, a pod moved to the other node,
a deleted pod and a readiness probe that fails (no command run: the supervisor's probes notice).
A Service with externalTrafficPolicy Cluster keeps every node."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down, wait_for

MANIFEST = MANIFESTS / "health-check.yaml"
CLIENT = "172.18.0.254"
# kube-proxy's hcHandler body (pkg/proxy/healthcheck/service_health.go, v1.33), transcribed.
BODY = ('{{\n\t"service": {{\n\t\t"namespace": "default",\n\t\t"name": "web-local"\n\t}},\n'
        '\t"localEndpoints": {count},\n\t"serviceProxyHealthy": true\n}}')
# Ready while /tmp/ready exists in the container (a real process, whose exec probe the lab runs;
# its /tmp is kept between its processes: the test's `exec` makes and removes the file).
GATED = """
apiVersion: v1
kind: Pod
metadata: {name: gate, labels: {app: web}}
spec:
  nodeName: node1
  containers:
  - name: web
    image: busybox
    command: [sleep, "3600"]
    readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1, failureThreshold: 1}
"""


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request, host_before):
    lab = Lab(new_lab_name("hc"))
    with torn_down(lab.name):
        lab("up", str(MANIFEST), "--proxy-mode", request.param)
        yield lab


@pytest.fixture(scope="module")
def svc(lab) -> dict[str, dict]:
    return {s["metadata"]["name"]: s for s in json.loads(lab("get", "svc", "-o", "json").stdout)["items"]}


@pytest.fixture(scope="module")
def nodes(lab) -> dict[str, str]:
    """node name -> its address on the underlay."""
    return {n["metadata"]["name"]: n["status"]["addresses"][0]["address"]
            for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]}


def health(lab: Lab, node_ip: str, port: int, source: str = "lb") -> tuple[int, dict[str, str], str]:
    """(status, headers in lower case, body) of GET /healthz on a node's port, from `source`."""
    out = lab.exec(source, "curl", "-sS", "-i", "-m", "5", f"http://{node_ip}:{port}/healthz").stdout
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def counts(lab: Lab, nodes: dict[str, str], port: int) -> dict[str, tuple[int, int]]:
    """node -> (status, localEndpoints) of its health check port."""
    out = {}
    for name, ip in nodes.items():
        status, _, body = health(lab, ip, port)
        out[name] = (status, json.loads(body)["localEndpoints"])
    return out


def balanced_to(lab: Lab, comment: str) -> set[str]:
    """The node addresses the balancer's table sends a Service port to."""
    table = lab.exec("lb", "nft", "list", "chain", "ip", "kubenet-lb", "prerouting").stdout
    lines = [line for line in table.splitlines() if f'comment "{comment}"' in line]
    return {m for line in lines for m in re.findall(r": (\d+\.\d+\.\d+\.\d+) \. \d+", line)}


def answers(lab: Lab, ip: str, count: int = 10) -> list[str]:
    """What `count` requests from the outside client to the Service's /hostname answered."""
    script = f'for i in $(seq {count}); do curl -sS --max-time 5 "$0"; echo " rc=$?"; done'
    return lab.exec("external", "sh", "-c", script, f"http://{ip}/hostname", check=False).stdout.splitlines()


def pods_on(lab: Lab, node: str) -> set[str]:
    return {n for n, p in lab.pods().items() if p["spec"].get("nodeName") == node and n != "coredns"
            and p["metadata"]["namespace"] == "default"}


def test_every_node_answers_the_health_check_port_as_kube_proxy(lab, svc, nodes):
    port = svc["web-local"]["spec"]["healthCheckNodePort"]
    assert "healthCheckNodePort" not in svc["web-cluster"]["spec"]
    for source in ("lb", "external"):
        status, headers, body = health(lab, nodes["node1"], port, source)
        assert status == 200 and body == BODY.format(count=1)  # two ports, one pod: one endpoint
        assert headers["content-type"] == "application/json" and headers["x-content-type-options"] == "nosniff"
        assert headers["x-load-balancing-endpoint-weight"] == "1"
        status, headers, body = health(lab, nodes["node2"], port, source)
        assert status == 503 and body == BODY.format(count=0)
    # the node's own health port
    for path in ("healthz", "livez"):
        out = lab.exec("lb", "curl", "-sS", "-m", "5", "-w", "\n%{http_code}", f"http://{nodes['node2']}:10256/{path}")
        body, code = out.stdout.rsplit("\n", 1)
        doc = json.loads(body)
        assert code == "200" and doc["healthy"] is True and doc["status"]["IPv4"]["healthy"] is True
        assert list(doc) == (["lastUpdated", "currentTime", "nodeEligible", "healthy", "status"] if path == "healthz"
                             else ["lastUpdated", "currentTime", "healthy", "status"])
    out = lab.exec("lb", "curl", "-sS", "-m", "5", "-w", "%{http_code}", f"http://{nodes['node2']}:10256/metrics")
    assert out.stdout == "404 page not found\n404"
    # the node's namespace listens, the host's does not
    listening = ["ss", "-Htln", f"sport = :{port}"]
    assert f"0.0.0.0:{port}" in lab.exec("node/node1", *listening).stdout
    assert subprocess.run(listening, capture_output=True, text=True, check=True).stdout == ""


def test_the_balancer_sends_only_to_the_nodes_that_pass(lab, svc, nodes):
    ip = svc["web-local"]["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert balanced_to(lab, "default/web-local:http") == {nodes["node1"]}
    assert balanced_to(lab, "default/web-local:alt") == {nodes["node1"]}
    assert balanced_to(lab, "default/web-cluster") == set(nodes.values())  # Cluster: every node, as before
    assert all(line in {f"{p} rc=0" for p in pods_on(lab, "node1")} for line in answers(lab, ip))
    client = lab.exec("external", "curl", "-sS", "-m", "5", f"http://{ip}/clientip").stdout
    assert client.startswith(f"{CLIENT}:")  # Local: the client's own address


def test_the_balancer_follows_scale_and_a_move_to_the_other_node(lab, svc, nodes, tmp_path):
    port = svc["web-local"]["spec"]["healthCheckNodePort"]
    ip = svc["web-local"]["status"]["loadBalancer"]["ingress"][0]["ip"]
    lab("scale", "deployment", "web", "--replicas=0")
    assert wait_for(lambda: counts(lab, nodes, port) == {"node1": (503, 0), "node2": (503, 0)}, "no endpoint")
    assert wait_for(lambda: balanced_to(lab, "default/web-local:http") == set(), "the balancer to drop node1")
    refused = lab.exec("external", "curl", "-sS", "-m", "5", f"http://{ip}/hostname", check=False)
    assert refused.returncode == 7  # the balancer refuses a Service no node passes for
    lab("scale", "deployment", "web", "--replicas=2")
    assert wait_for(lambda: counts(lab, nodes, port) == {"node1": (200, 2), "node2": (503, 0)}, "two on node1")
    assert wait_for(lambda: balanced_to(lab, "default/web-local:http") == {nodes["node1"]}, "node1 back")
    # the Deployment moves to node2 (a rollout): its endpoints leave node1 and the balancer follows
    moved = tmp_path / "moved.yaml"
    moved.write_text(MANIFEST.read_text().replace("hostname: node1", "hostname: node2").replace("replicas: 1",
                                                                                                  "replicas: 2"))
    lab("apply", "-f", str(moved))
    assert wait_for(lambda: counts(lab, nodes, port) == {"node1": (503, 0), "node2": (200, 2)}, "the move",
                    timeout=60)
    assert wait_for(lambda: balanced_to(lab, "default/web-local:http") == {nodes["node2"]}, "the balancer on node2")
    on2 = {f"{p} rc=0" for p in pods_on(lab, "node2")}
    assert len(on2) == 2 and all(line in on2 for line in answers(lab, ip))


def test_the_balancer_follows_a_deleted_pod_and_readiness(lab, svc, nodes, tmp_path):
    port = svc["web-local"]["spec"]["healthCheckNodePort"]
    ip = svc["web-local"]["status"]["loadBalancer"]["ingress"][0]["ip"]
    (tmp_path / "gate.yaml").write_text(GATED)
    lab("apply", "-f", str(tmp_path / "gate.yaml"))  # one more endpoint, on node1: not ready yet
    expected = counts(lab, nodes, port)["node2"]
    assert counts(lab, nodes, port)["node1"] == (503, 0)
    # its readiness probe passes, then fails: no command changes the lab, the supervisor's probes
    # move the balancer
    lab.exec("gate", "touch", "/tmp/ready")
    assert wait_for(lambda: counts(lab, nodes, port) == {"node1": (200, 1), "node2": expected}, "gate ready")
    assert wait_for(lambda: balanced_to(lab, "default/web-local:http") == set(nodes.values()), "both nodes")
    lab.exec("gate", "rm", "/tmp/ready")
    assert wait_for(lambda: counts(lab, nodes, port)["node1"] == (503, 0), "gate not ready")
    assert wait_for(lambda: balanced_to(lab, "default/web-local:http") == {nodes["node2"]}, "node1 left")
    lab.exec("gate", "touch", "/tmp/ready")
    assert wait_for(lambda: balanced_to(lab, "default/web-local:http") == set(nodes.values()), "node1 back")
    # the pod on node1 deleted: node1 fails its check, and the traffic keeps flowing to node2
    lab("delete", "pod", "gate")
    assert wait_for(lambda: counts(lab, nodes, port)["node1"] == (503, 0), "gate gone")
    assert wait_for(lambda: balanced_to(lab, "default/web-local:http") == {nodes["node2"]}, "node2 alone")
    on2 = {f"{p} rc=0" for p in pods_on(lab, "node2")}
    assert all(line in on2 for line in answers(lab, ip))
