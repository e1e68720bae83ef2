"""NetworkPolicy semantics the e2e model does not reach, for real in both proxy modes: a
connection through a Service is judged by its endpoint pod (after DNAT), kubelet's readiness
probes from the pod's node pass a default deny, an egress default deny breaks DNS and the
policy that allows port 53 to kube-system repairs it, and a new policy ends the open
connections it denies (the one it allows goes on)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down, wait_for

MANIFEST = MANIFESTS / "netpol-live.yaml"

# `python3 -c ECHO PORT`: a TCP echo server (one thread per connection).
ECHO = """
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("", int(sys.argv[1]))); srv.listen()
def serve(c):
    while (data := c.recv(100)):
        c.sendall(data)
while True:
    threading.Thread(target=serve, args=(srv.accept()[0],), daemon=True).start()
"""
# `python3 -c TALKER IP PORT SECONDS`: one connection, a byte each 0.1 s and its echo awaited
# (0.5 s); prints "ok T" or "stalled T" for each (T: time.monotonic() when it was sent).
TALKER = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.settimeout(0.5)
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    t = time.monotonic()
    try:
        s.sendall(b"x")
        print("ok" if s.recv(1) == b"x" else "closed", t, flush=True)
    except OSError:
        print("stalled", t, flush=True)
    time.sleep(0.1)
"""


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request, host_before):
    lab = Lab(new_lab_name("npl"))
    with torn_down(lab.name):
        lab("up", str(MANIFEST), "--proxy-mode", request.param)
        yield lab


def policy(lab: Lab, text: str) -> None:
    lab("apply", "-f", "-", input=text)


def can_get(lab: Lab, ns: str, url: str) -> bool:
    return lab("exec", "-n", ns, "client", "--", "curl", "-sf", "-m", "3", "-o", "/dev/null", url,
               check=False).returncode == 0


ONLY_FROM_Z = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-from-z, namespace: x}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: z}}}]
"""


def test_a_service_is_judged_by_its_endpoint_and_probes_pass(lab):
    server = lab.pods()["server"]["status"]["podIP"]
    policy(lab, ONLY_FROM_Z)
    try:
        for url in ("http://server.x.svc.cluster.local/hostname", f"http://{server}:8080/hostname"):
            assert can_get(lab, "z", url)
            assert not can_get(lab, "y", url)
            assert not can_get(lab, "x", url)  # its own namespace too: isolated
        time.sleep(3)  # three probe periods: a denied probe would have made it unready
        assert lab("get", "pod", "server", "-n", "x", "-o", "jsonpath={.status.containerStatuses[0].ready}"
                   ).stdout == "true"
    finally:
        lab("delete", "netpol", "only-from-z", "-n", "x")
    assert can_get(lab, "y", "http://server.x.svc.cluster.local/hostname")


def test_an_egress_default_deny_breaks_dns_and_port_53_repairs_it(lab):
    lookup = ("python3", "-c", "import socket; print(socket.gethostbyname('server.x.svc.cluster.local'))")
    assert lab("exec", "-n", "y", "client", "--", *lookup).returncode == 0
    policy(lab, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                "metadata: {name: deny-egress, namespace: y}\nspec: {podSelector: {}, policyTypes: [Egress]}\n")
    try:
        assert lab("exec", "-n", "y", "client", "--", "timeout", "8", *lookup, check=False).returncode != 0
        policy(lab, """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-dns, namespace: y}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]
    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
""")
        assert lab("exec", "-n", "y", "client", "--", *lookup).returncode == 0
        assert not can_get(lab, "y", "http://server.x.svc.cluster.local/hostname")  # DNS only
    finally:
        lab("delete", "netpol", "deny-egress", "allow-dns", "-n", "y")


def _talk(lab: Lab, ns: str, ip: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab.name, "exec", "-n", ns, "client",
                             "--", "python3", "-c", TALKER, ip, "9000", str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_new_policy_ends_the_connections_it_denies(lab):
    server = lab.pods()["server"]["status"]["podIP"]
    echo = subprocess.Popen([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab.name, "exec", "-n", "x", "server",
                             "--", "python3", "-c", ECHO, "9000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: lab("exec", "-n", "z", "client", "--", "python3", "-c",
                             f"import socket; socket.create_connection(('{server}', 9000), timeout=1)",
                             check=False).returncode == 0, "the echo server")
        talkers = {ns: _talk(lab, ns, server, 8) for ns in ("y", "z")}
        time.sleep(2)
        policy(lab, ONLY_FROM_Z)
        applied = time.monotonic()
        out = {ns: p.communicate(timeout=60)[0].split("\n") for ns, p in talkers.items()}
        said = {ns: [(word, float(t)) for word, t in (line.split() for line in lines if line)]
                for ns, lines in out.items()}
        for ns in ("y", "z"):
            assert any(w == "ok" and t < applied for w, t in said[ns]), (ns, said[ns])  # talking before
        assert not any(w == "ok" and t > applied for w, t in said["y"]), said["y"]  # y's ended with the policy
        assert any(w == "stalled" and t > applied for w, t in said["y"]), said["y"]
        assert all(w == "ok" for w, t in said["z"]), said["z"]  # z's, allowed, went on
    finally:
        echo.kill()
        echo.wait()
        lab("delete", "netpol", "only-from-z", "-n", "x", check=False)


def test_check_expects_what_the_policies_allow_and_deny(lab):
    policy(lab, ONLY_FROM_Z)
    try:
        doc = json.loads(lab("check", "-o", "json", check=False).stdout)
        assert doc["ok"] is True, [r for r in doc["results"] if not r["ok"]]
        denied = [r for r in doc["results"] if r["must"] == "fail" and "networkpolicy" in r.get("why", "")]
        assert denied and all(r["to"].startswith(("pod/x/server", "svc/x/server")) for r in denied), denied
    finally:
        lab("delete", "netpol", "only-from-z", "-n", "x")


def test_trace_names_the_policy_and_its_probe_agrees(lab):
    policy(lab, ONLY_FROM_Z)
    try:
        denied = lab("trace", "-n", "y", "client", "server.x:80", "--probe", check=False)
        assert denied.returncode == 0, denied.stdout + denied.stderr  # the probe agrees with the prediction
        assert "NetworkPolicy table (inet kubenet-netpol, forward): ingress of x/server denied" in denied.stdout
        assert "timed out" in denied.stdout
        allowed = lab("trace", "-n", "z", "client", "server.x:80", "--probe", check=False)
        assert allowed.returncode == 0 and "reaches" in allowed.stdout, allowed.stdout + allowed.stderr
    finally:
        lab("delete", "netpol", "only-from-z", "-n", "x")


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: x}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: netexec
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: ["netexec", "--http-port=8080"]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-z, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: z}}}]
"""


def test_a_pod_its_controller_replaces_is_isolated_as_the_one_before(lab):
    def web() -> tuple[str, str]:
        pods = json.loads(lab("get", "pods", "-n", "x", "-l", "app=web", "-o", "json").stdout)["items"]
        return pods[0]["metadata"]["name"], pods[0]["status"]["podIP"]

    lab("apply", "-f", "-", input=WEB)
    try:
        name, ip = web()
        assert can_get(lab, "z", f"http://{ip}:8080/hostname") and not can_get(lab, "y", f"http://{ip}:8080/hostname")
        lab("delete", "pod", name, "-n", "x")
        new_name, new_ip = wait_for(lambda: (w := web())[0] != name and w, "the replacement pod")
        assert new_ip != ip
        assert wait_for(lambda: can_get(lab, "z", f"http://{new_ip}:8080/hostname"), "the new pod to answer z")
        assert not can_get(lab, "y", f"http://{new_ip}:8080/hostname")
        assert lab("get", "netpol", "web-from-z", "-n", "x", "-o", "wide").stdout.split()[-1] == new_name
    finally:
        lab("delete", "deployment", "web", "-n", "x", check=False)
        lab("delete", "netpol", "web-from-z", "-n", "x", check=False)
