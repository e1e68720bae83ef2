"""Applications as their projects publish them (tests/corpus/apps), brought up unchanged side by side:
the kubernetes/examples guestbook (guestbook-all-in-one.yaml), the kubernetes.io guestbook's Redis
leader and followers, and ingress-nginx's static install for kind. Each test asserts what `kubectl`
and `curl` show on a real cluster; where the lab differs the test is an expected failure that names
the difference."""
from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Lab, new_lab_name, torn_down, wait_for

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "apps"
FILES = ["guestbook-all-in-one.yaml",
         "website-guestbook-redis-leader-deployment.yaml", "website-guestbook-redis-leader-service.yaml",
         "website-guestbook-redis-follower-deployment.yaml", "website-guestbook-redis-follower-service.yaml",
         "ingress-nginx-kind-deploy.yaml"]
INGRESS = "ingress-nginx"
CONTROLLER_IMAGE = ("registry.k8s.io/ingress-nginx/controller:v1.15.1@sha256:"
                    "594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1")
# Every object of deploy.yaml that is no Namespace, Service, Deployment, Job or ConfigMap, in file order.
SKIPPED = [("ServiceAccount/ingress-nginx", 10), ("ServiceAccount/ingress-nginx-admission", 23),
           ("Role/ingress-nginx", 36), ("Role/ingress-nginx-admission", 126),
           ("ClusterRole/ingress-nginx", 146), ("ClusterRole/ingress-nginx-admission", 227),
           ("RoleBinding/ingress-nginx", 246), ("RoleBinding/ingress-nginx-admission", 266),
           ("ClusterRoleBinding/ingress-nginx", 286), ("ClusterRoleBinding/ingress-nginx-admission", 304),
           ("IngressClass/nginx", 635),
           ("ValidatingWebhookConfiguration/ingress-nginx-admission", 648)]


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("capp"))
    with torn_down(lab.name):
        out = lab("up", *(str(CORPUS / f) for f in FILES))
        lab.warnings = out.stderr
        # as ingress-nginx's kind guide waits (`kubectl wait --for=condition=ready pod ...`): its
        # controller's readiness probe starts after initialDelaySeconds 10
        wait_for(lambda: all(r.split()[2].split("/")[0] == r.split()[2].split("/")[1] for r in
                             lab("get", "deploy", "-A").stdout.splitlines()[1:]), "every Deployment ready", timeout=90)
        lab.pod = lab.pods()
        lab.svc = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                   for s in json.loads(lab("get", "svc", "-A", "-o", "json").stdout)["items"]}
        lab.node_ips = {n["metadata"]["name"]: n["status"]["addresses"][0]["address"]
                        for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]}
        yield lab


def named(lab: Lab, prefix: str) -> list[str]:
    return sorted(n for n in lab.pod if n.startswith(prefix))


def pod_ips(lab: Lab, prefix: str) -> set[str]:
    return {lab.pod[p]["status"]["podIP"] for p in named(lab, prefix)}


def svc(lab: Lab, name: str, ns: str = "default") -> dict:
    return lab.svc[(ns, name)]


def endpoints(lab: Lab, name: str, ns: str = "default") -> tuple[set[str], set[int]]:
    ep = json.loads(lab("get", "ep", name, "-n", ns, "-o", "json").stdout)
    subsets = ep.get("subsets") or []
    return ({a["ip"] for s in subsets for a in s.get("addresses", [])},
            {p["port"] for s in subsets for p in s["ports"]})


def codes(lab: Lab, target: str, urls: list[str], *curl_args: str) -> list[str]:
    """The HTTP status of each URL fetched from `target` (000: no HTTP answer), in one exec."""
    script = ('for u; do curl -s -o /dev/null -w "%{http_code}\\n" --max-time 10 ' + " ".join(curl_args) +
              ' "$u"; done; true')
    return lab.exec(target, "sh", "-c", script, "sh", *urls).stdout.split()


def connects(lab: Lab, pod: str, hosts: list[str], port: int) -> list[int]:
    """bash's /dev/tcp from `pod` to each host: 0 where the TCP connection was accepted."""
    script = f'for h; do timeout 10 bash -c "echo > /dev/tcp/$h/{port}"; echo $?; done'
    return [int(x) for x in lab.exec(pod, "bash", "-c", script, "bash", *hosts).stdout.split()]


# `python3 -c HOLD HOST PORT N`: N TCP connections to HOST:PORT, held open until stdin closes.
HOLD = """
import socket, sys
conns = [socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) for _ in range(int(sys.argv[3]))]
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def held_connections(lab: Lab, pod: str, host: str, port: int, n: int):
    proc = subprocess.Popen([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab.name, "exec", "-i", pod, "--",
                             "python3", "-c", HOLD, host, str(port), str(n)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line == "ready\n", (line, proc.stderr.read() if proc.poll() is not None else "")
        yield
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def established_peers(lab: Lab, pod: str, port: int) -> list[str]:
    """The peer addresses of the connections established to `pod`'s port, as `ss` in the pod shows them."""
    out = lab.exec(pod, "ss", "-Htn", "state", "established", f"( sport = :{port} )").stdout
    return [line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()]


# --- kubernetes/examples guestbook ---------------------------------------------------------------

def test_guestbook_pods_and_deployments_are_as_kubectl_shows_them(lab):
    rows = {l.split()[0]: l.split()[1:] for l in lab("get", "deploy").stdout.splitlines()[1:]}
    for name, ready in (("redis-master", "1/1"), ("redis-replica", "2/2"), ("frontend", "3/3"),
                        ("redis-leader", "1/1"), ("redis-follower", "2/2")):
        assert rows[name][:1] == [ready], name
    assert {p: lab.pod[p]["status"]["phase"] for p in lab.pod if lab.pod[p]["metadata"]["namespace"] == "default"} \
        == {p: "Running" for p in lab.pod if lab.pod[p]["metadata"]["namespace"] == "default"}


def test_the_frontend_service_answers_http_inside_and_on_every_nodes_node_port(lab):
    frontends = named(lab, "frontend-")
    assert len(frontends) == 3
    assert endpoints(lab, "frontend") == (pod_ips(lab, "frontend-"), {80})
    client = named(lab, "redis-replica-")[0]
    assert codes(lab, client, ["http://frontend/", "http://frontend.default.svc.cluster.local/"]) == ["200", "200"]
    port = svc(lab, "frontend")["spec"]["ports"][0]["nodePort"]
    assert svc(lab, "frontend")["spec"]["type"] == "NodePort"
    assert codes(lab, "external", [f"http://{ip}:{port}/" for ip in lab.node_ips.values()]) == ["200", "200"]


def test_redis_master_accepts_tcp_from_every_frontend(lab):
    ip = svc(lab, "redis-master")["spec"]["clusterIP"]
    assert endpoints(lab, "redis-master") == (pod_ips(lab, "redis-master-"), {6379})
    for pod in named(lab, "frontend-"):
        # GET_HOSTS_FROM=dns: the frontend finds the master by name; env would give the same address
        out = lab.exec(pod, "sh", "-c", "getent hosts redis-master; printenv GET_HOSTS_FROM REDIS_MASTER_SERVICE_HOST")
        assert out.stdout.split() == [ip, "redis-master.default.svc.cluster.local", "dns", ip], pod
        assert connects(lab, pod, ["redis-master", ip], 6379) == [0, 0], pod


def test_the_replica_service_leads_to_the_replica_pods(lab):
    replicas = named(lab, "redis-replica-")
    assert len(replicas) == 2
    ip = svc(lab, "redis-replica")["spec"]["clusterIP"]
    assert endpoints(lab, "redis-replica") == (pod_ips(lab, "redis-replica-"), {6379})  # targetPort = port
    frontend = named(lab, "frontend-")[0]
    assert lab.exec(frontend, "getent", "hosts", "redis-replica").stdout.split() == [
        ip, "redis-replica.default.svc.cluster.local"]
    # connections to the Service land on the replicas (both of them), never on the master
    me = lab.pod[frontend]["status"]["podIP"]
    with held_connections(lab, frontend, "redis-replica", 6379, 20):
        peers = {pod: established_peers(lab, pod, 6379) for pod in replicas + named(lab, "redis-master-")}
    assert {p for pod in replicas for p in peers[pod]} == {me}
    assert sum(len(peers[pod]) for pod in replicas) == 20
    assert all(peers[pod] for pod in replicas), peers  # 20 random picks, all on one replica: 2 in a million
    assert not any(peers[pod] for pod in named(lab, "redis-master-"))


def test_redis_master_answers_ping(lab):
    script = ("import socket; s = socket.create_connection(('redis-master', 6379), timeout=5); "
              "s.sendall(b'PING\\r\\n'); print(s.recv(64).decode().strip())")
    proc = lab.exec(named(lab, "frontend-")[0], "python3", "-c", script, check=False)
    assert proc.stdout.strip() == "+PONG"


# `python3 -c RESP HOST COMMAND...`: each command (words split on spaces) sent inline, its reply printed.
RESP = """
import socket, sys
s = socket.create_connection((sys.argv[1], 6379), timeout=5)
f = s.makefile("rb")
for command in sys.argv[2:]:
    s.sendall(command.encode() + b"\\r\\n")
    line = f.readline()
    if line[:1] == b"$" and int(line[1:]) >= 0:
        line += f.read(int(line[1:]) + 2)
    print(repr(line.decode()))
"""


def test_the_guestbooks_redis_master_keeps_what_the_frontend_writes_and_its_replicas_refuse_writes(lab):
    frontend = named(lab, "frontend-")[0]
    out = lab.exec(frontend, "python3", "-c", RESP, "redis-master", "SET messages hello", "GET messages",
                   "INCR visits", "INFO replication").stdout.splitlines()
    assert out[:3] == [repr("+OK\r\n"), repr("$5\r\nhello\r\n"), repr(":1\r\n")]
    assert "role:master" in out[3]
    # through the replicas' Service: read-only replicas of redis-master, as gb-redisslave runs them
    out = lab.exec(frontend, "python3", "-c", RESP, "redis-replica", "INFO replication",
                   "SET messages bye").stdout.splitlines()
    assert "role:slave\\r\\nmaster_host:redis-master\\r\\nmaster_port:6379" in out[0]
    assert out[1] == repr("-READONLY You can't write against a read only replica.\r\n")


# --- kubernetes.io guestbook: Redis leader and followers -----------------------------------------

def test_redis_leader_and_follower_services_select_by_role(lab):
    """Both Deployments select app.kubernetes.io/name=redis (as published), yet each owns its own
    pods, and each Service's role label picks out its tier."""
    assert len(named(lab, "redis-leader-")) == 1 and len(named(lab, "redis-follower-")) == 2
    assert endpoints(lab, "redis-leader") == (pod_ips(lab, "redis-leader-"), {6379})
    assert endpoints(lab, "redis-follower") == (pod_ips(lab, "redis-follower-"), {6379})
    shown = lab("get", "pods", "-l", "app.kubernetes.io/name=redis", "-o", "jsonpath={.items[*].metadata.name}")
    assert sorted(shown.stdout.split()) == named(lab, "redis-follower-") + named(lab, "redis-leader-")
    follower = named(lab, "redis-follower-")[0]
    assert connects(lab, follower, ["redis-leader", "redis-follower"], 6379) == [0, 0]


# --- ingress-nginx for kind ----------------------------------------------------------------------

def test_ingress_nginx_loads_with_a_warning_for_each_kind_it_skips(lab):
    warnings = lab.warnings.splitlines()
    skipped = [l for l in warnings if "skipping" in l]
    assert skipped == [f"warning: {CORPUS / 'ingress-nginx-kind-deploy.yaml'}:{line}: skipping {obj} "
                       "(kind not modelled by kubenet-lab)" for obj, line in SKIPPED]
    # a ServiceAccount is no misspelt Service, nor any other kind another
    assert "did you mean" not in lab.warnings
    # its ConfigMap is an object of the lab; the Secret its admission Job makes (through the API
    # on a cluster) is there for the controller's webhook-cert volume, which waits for nothing
    assert lab("get", "cm", "-n", INGRESS, "-o", "name").stdout == "configmap/ingress-nginx-controller\n"
    assert lab("get", "secrets", "-n", INGRESS, "-o", "name").stdout == "secret/ingress-nginx-admission\n"
    assert not [l for l in warnings if "ContainerCreating" in l or "CreateContainerConfigError" in l]
    assert not [l for l in warnings if l.startswith("error")]
    # the controller's program lives in its image: emulated, and said so, with the ports it serves
    controller = [l for l in warnings if ", container controller:" in l]
    assert len(controller) == 1
    m = re.fullmatch(rf"warning: ReplicaSet {INGRESS}/ingress-nginx-controller-[a-z0-9]+, container controller: "
                     rf"args without a command go to the entrypoint of image {re.escape(CONTROLLER_IMAGE)}, which "
                     r"kubenet-lab does not know \(no image is pulled\); it serves the built-in HTTP server on "
                     r"(.*) instead", controller[0])
    assert m, controller[0]
    assert {"TCP 80", "HTTPS 443", "TCP 10254"} <= set(m.group(1).split(", "))
    assert any(p.endswith(" 8443") for p in m.group(1).split(", "))


def test_the_controller_pod_runs_in_its_namespace_with_its_files_and_env(lab):
    pods = [p for p in named(lab, "ingress-nginx-controller-") if lab.pod[p]["metadata"]["namespace"] == INGRESS]
    assert len(pods) == 1
    pod = pods[0]
    assert wait_for(lambda: lab("get", "deploy", "-n", INGRESS).stdout.splitlines()[1].split()[:2]
                    == ["ingress-nginx-controller", "1/1"], "the controller to be ready", timeout=60)
    out = lab("exec", pod, "-n", INGRESS, "--", "sh", "-c",
              "hostname; printenv POD_NAME POD_NAMESPACE; cat /etc/resolv.conf").stdout.splitlines()
    assert out[:3] == [pod, pod, INGRESS]
    assert out[3].startswith(f"search {INGRESS}.svc.cluster.local svc.cluster.local cluster.local")
    assert out[4:] == ["nameserver 10.96.0.10", "options ndots:5"]


def test_the_controller_services_ports_answer(lab):
    controller = svc(lab, "ingress-nginx-controller", INGRESS)
    assert controller["spec"]["type"] == "LoadBalancer"
    pod_ip = pod_ips(lab, "ingress-nginx-controller-")
    assert endpoints(lab, "ingress-nginx-controller", INGRESS) == (pod_ip, {80, 443})  # targetPort http, https
    assert endpoints(lab, "ingress-nginx-controller-admission", INGRESS) == (pod_ip, {8443})  # targetPort webhook
    # from outside through the load balancer, and on every node's NodePorts: an HTTP answer on
    # both ports (ingress-nginx's default backend says 404 with no Ingress; any status will do)
    lb = controller["status"]["loadBalancer"]["ingress"][0]["ip"]
    ports = {p["name"]: p["nodePort"] for p in controller["spec"]["ports"]}
    urls = [f"http://{lb}/"] + [f"http://{ip}:{ports['http']}/" for ip in lab.node_ips.values()]
    assert "000" not in codes(lab, "external", urls), urls
    urls = [f"https://{lb}/"] + [f"https://{ip}:{ports['https']}/" for ip in lab.node_ips.values()]
    assert "000" not in codes(lab, "external", urls, "-k"), urls
    # and by name from a pod in another namespace
    got = codes(lab, named(lab, "frontend-")[0], [f"http://ingress-nginx-controller.{INGRESS}.svc/"])
    assert got != ["000"]
    got = codes(lab, named(lab, "frontend-")[0], [f"https://ingress-nginx-controller.{INGRESS}.svc/"], "-k")
    assert got != ["000"]


def test_the_admission_webhook_service_speaks_tls(lab):
    got = codes(lab, named(lab, "frontend-")[0], [f"https://ingress-nginx-controller-admission.{INGRESS}.svc/"], "-k")
    assert got != ["000"]


def test_the_controllers_host_ports_answer_on_its_node(lab):
    pod = named(lab, "ingress-nginx-controller-")[0]
    node_ip = lab.node_ips[lab.pod[pod]["spec"]["nodeName"]]
    assert "000" not in codes(lab, "external", [f"http://{node_ip}/"]), "hostPort 80"
    assert "000" not in codes(lab, "external", [f"https://{node_ip}/"], "-k"), "hostPort 443"


def test_the_admission_jobs_complete(lab):
    def done():
        pods = {p["metadata"]["name"]: p for p in json.loads(
            lab("get", "pods", "-n", INGRESS, "-o", "json").stdout)["items"]}
        admission = [p for n, p in pods.items() if n.startswith("ingress-nginx-admission-")]
        return all(p["status"]["phase"] == "Succeeded" for p in admission)
    assert wait_for(done, "the admission Jobs' pods to complete", timeout=10, interval=1)
