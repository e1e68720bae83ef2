"""The Service pages of kubernetes.io with their own manifests (tests/corpus/services), brought up
unchanged and in the pages' order: "Connecting Applications with Services" (run-my-nginx.yaml, then
nginx-svc.yaml and curlpod.yaml; nginx-secure-app.yaml), "Connect a Frontend to a Backend Using
Services" (access-*.yaml), "Exposing an External IP Address" (load-balancer-example.yaml) and the
dual-stack Service example. Each test asserts what `kubectl` and `curl` show on a real cluster;
where the lab differs the test is an expected failure that names the difference."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import Lab, new_lab_name, torn_down, wait_for

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "services"
# "Connecting Applications with Services": the Deployment first, its Service afterwards, then the
# page's curl pod; the other pages' objects beside them (no name is shared).
FIRST = ["run-my-nginx.yaml"]
THEN = ["run-my-nginx.yaml", "nginx-svc.yaml", "curlpod.yaml",
        "access-backend-deployment.yaml", "access-backend-service.yaml",
        "access-frontend-deployment.yaml", "access-frontend-service.yaml",
        "load-balancer-example.yaml"]
# nginx-secure-app.yaml replaces my-nginx (Service and Deployment) as the page does, so it has a lab
# of its own.
SECURE = ["nginx-secure-app.yaml", "curlpod.yaml", "dual-stack-preferred-svc.yaml"]
# The page's nginx configuration for nginx-secure-app (its ConfigMap nginxconfigmap): HTTP on 80,
# HTTPS on 443 with the certificate of Secret nginxsecret, mounted at /etc/nginx/ssl.
DEFAULT_CONF = """server {
        listen 80 default_server;
        listen [::]:80 default_server ipv6only=on;

        listen 443 ssl;

        root /usr/share/nginx/html;
        index index.html;

        server_name localhost;
        ssl_certificate /etc/nginx/ssl/tls.crt;
        ssl_certificate_key /etc/nginx/ssl/tls.key;

        location / {
                try_files $uri $uri/ =404;
        }
}
"""

HOSTS_HEADER = ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")


def up(lab: Lab, files: list[str]):
    return lab("up", *(str(CORPUS / f) for f in files))


def tutorial_secrets(lab: Lab, where: Path) -> None:
    """"Securing the Service", as the page does it: a self-signed key pair (its `make keys`), the
    Secret `kubectl create secret tls nginxsecret` and the ConfigMap `kubectl create configmap
    nginxconfigmap --from-file=default.conf` that curlpod.yaml and nginx-secure-app.yaml mount."""
    key, cert, conf = where / "nginx.key", where / "nginx.crt", where / "default.conf"
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "365", "-newkey", "rsa:2048", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=my-nginx/O=my-nginx"], check=True, capture_output=True)
    conf.write_text(DEFAULT_CONF)
    assert lab("create", "secret", "tls", "nginxsecret", "--key", str(key), "--cert", str(cert)).stdout == \
        "secret/nginxsecret created\n"
    assert lab("create", "configmap", "nginxconfigmap", f"--from-file={conf}").stdout == \
        "configmap/nginxconfigmap created\n"


@pytest.fixture(scope="module")
def lab(host_before, tmp_path_factory):
    lab = Lab(new_lab_name("csvc"))
    with torn_down(lab.name):
        up(lab, FIRST)
        tutorial_secrets(lab, tmp_path_factory.mktemp("csvc"))
        lab("apply", *(a for f in THEN for a in ("-f", str(CORPUS / f))))
        load(lab)
        yield lab


@pytest.fixture(scope="module")
def secure(host_before, tmp_path_factory):
    lab = Lab(new_lab_name("csec"))
    with torn_down(lab.name):
        up(lab, SECURE[2:])
        tutorial_secrets(lab, tmp_path_factory.mktemp("csec"))
        lab("apply", *(a for f in SECURE[:2] for a in ("-f", str(CORPUS / f))))
        load(lab)
        yield lab


def load(lab: Lab):
    """What the tests read of the lab, read once (every CLI call is a process)."""
    lab.pod = lab.pods()
    lab.svc = {s["metadata"]["name"]: s for s in json.loads(lab("get", "svc", "-o", "json").stdout)["items"]}
    lab.node_ips = {n["metadata"]["name"]: n["status"]["addresses"][0]["address"]
                    for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]}


def named(lab: Lab, prefix: str) -> list[str]:
    return sorted(n for n in lab.pod if n.startswith(prefix))


def node_port(lab: Lab, svc: str, name: str | None = None) -> int:
    return next(p["nodePort"] for p in lab.svc[svc]["spec"]["ports"] if name is None or p.get("name") == name)


def codes(lab: Lab, target: str, urls: list[str], *curl_args: str) -> list[str]:
    """The HTTP status of each URL fetched from `target` (000: no HTTP answer), in one exec."""
    script = ('for u; do curl -s -o /dev/null -w "%{http_code}\\n" --max-time 10 ' + " ".join(curl_args) +
              ' "$u"; done; true')
    return lab.exec(target, "sh", "-c", script, "sh", *urls).stdout.split()


def bodies(lab: Lab, target: str, urls: list[str]) -> list[str]:
    script = 'for u; do curl -s --max-time 10 "$u"; echo; echo "%%"; done'
    return [b.strip() for b in lab.exec(target, "sh", "-c", script, "sh", *urls).stdout.split("%%\n")[:-1]]


def env(lab: Lab, pod: str) -> dict[str, str]:
    """`kubectl exec POD -- env`, as a dict."""
    return dict(line.split("=", 1) for line in lab.exec(pod, "env").stdout.splitlines() if "=" in line)


def endpoint_ips(lab: Lab, svc: str) -> tuple[set[str], set[int]]:
    ep = json.loads(lab("get", "ep", svc, "-o", "json").stdout)
    subsets = ep.get("subsets") or []
    return ({a["ip"] for s in subsets for a in s.get("addresses", [])},
            {p["port"] for s in subsets for p in s["ports"]})


# --- Connecting Applications with Services -------------------------------------------------------

def test_my_nginx_pods_answer_by_pod_ip_from_every_node_and_pod(lab):
    """"ssh into any node in your cluster and use a tool such as curl to make queries against both
    IPs": no NAT, one flat pod network, so each pod answers on 80 from both nodes and from a pod."""
    pods = named(lab, "my-nginx-")
    assert len(pods) == 2
    urls = [f"http://{lab.pod[p]['status']['podIP']}:80/" for p in pods]
    for target in ("node/node1", "node/node2", named(lab, "curl-deployment-")[0]):
        assert codes(lab, target, urls) == ["200", "200"], target
    # kubectl get pods -l run=my-nginx -o custom-columns=POD_IP:.status.podIPs
    out = lab("get", "pods", "-l", "run=my-nginx", "-o", "custom-columns=POD_IP:.status.podIPs").stdout
    assert out.splitlines()[0] == "POD_IP"
    assert sorted(out.splitlines()[1:]) == sorted(f"[map[ip:{lab.pod[p]['status']['podIP']}]]" for p in pods)


def test_my_nginx_service_has_the_two_pods_as_endpoints(lab):
    svc = lab.svc["my-nginx"]
    assert svc["spec"]["type"] == "ClusterIP"
    assert [(p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [(80, "TCP")]
    ips, ports = endpoint_ips(lab, "my-nginx")
    assert ips == {lab.pod[p]["status"]["podIP"] for p in named(lab, "my-nginx-")} and ports == {80}
    row = lab("get", "svc", "my-nginx").stdout.splitlines()[1].split()
    assert row[:5] == ["my-nginx", "ClusterIP", svc["spec"]["clusterIP"], "<none>", "80/TCP"]


def test_my_nginx_answers_by_cluster_ip_and_by_dns_name(lab):
    ip = lab.svc["my-nginx"]["spec"]["clusterIP"]
    client = named(lab, "curl-deployment-")[0]
    urls = [f"http://{ip}/", "http://my-nginx/", "http://my-nginx.default/",
            "http://my-nginx.default.svc.cluster.local/"]
    assert codes(lab, client, urls) == ["200"] * 4
    # a ClusterIP answers on the nodes too (kube-proxy's rules apply to the node's own traffic)
    assert codes(lab, "node/node1", [f"http://{ip}/"]) == ["200"]
    # and never from outside the cluster: nothing routes the service range there
    assert codes(lab, "external", [f"http://{ip}/"], "--connect-timeout", "3") == ["000"]
    # "nslookup my-nginx" from a pod: the Service's ClusterIP
    assert lab.exec(client, "getent", "hosts", "my-nginx").stdout.split() == [
        ip, "my-nginx.default.svc.cluster.local"]


def test_a_pod_started_after_the_service_has_its_variables(lab):
    """The curl pod starts once my-nginx exists: kubelet gives it MY_NGINX_SERVICE_HOST and friends."""
    got = env(lab, named(lab, "curl-deployment-")[0])
    ip = lab.svc["my-nginx"]["spec"]["clusterIP"]
    assert {k: got.get(k) for k in ("MY_NGINX_SERVICE_HOST", "MY_NGINX_SERVICE_PORT", "MY_NGINX_PORT")} == {
        "MY_NGINX_SERVICE_HOST": ip, "MY_NGINX_SERVICE_PORT": "80", "MY_NGINX_PORT": f"tcp://{ip}:80"}
    assert got["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_pods_started_before_the_service_lack_its_variables(lab):
    """The page: `kubectl exec my-nginx-3800858182-jr4a2 -- printenv | grep SERVICE` shows only the
    KUBERNETES_SERVICE_* variables, because the replicas were created before the Service."""
    for pod in named(lab, "my-nginx-"):
        got = env(lab, pod)
        assert got["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
        assert sorted(k for k in got if k.startswith("MY_NGINX_")) == [], pod


def test_exec_sees_the_containers_environment_not_the_callers(lab, monkeypatch):
    monkeypatch.setenv("KUBENET_TEST_CALLER_ONLY", "1")
    pod = named(lab, "curl-deployment-")[0]
    got = env(lab, pod)
    assert got["HOSTNAME"] == pod
    assert "KUBENET_TEST_CALLER_ONLY" not in got


def test_the_pods_files_and_hostname_are_kubelets(lab):
    client = named(lab, "curl-deployment-")[0]
    out = lab.exec(client, "sh", "-c", "hostname; echo; cat /etc/resolv.conf; echo; cat /etc/hosts").stdout
    hostname, resolv, hosts = out.split("\n\n")
    assert hostname == client
    lines = resolv.splitlines()
    assert lines[0].startswith("search default.svc.cluster.local svc.cluster.local cluster.local")
    assert lines[1:] == ["nameserver 10.96.0.10", "options ndots:5"]
    assert hosts == HOSTS_HEADER + f"{lab.pod[client]['status']['podIP']}\t{client}\n"


# --- Connect a Frontend to a Backend Using Services ----------------------------------------------

def test_the_backend_service_hello_selects_the_three_backends_by_named_port(lab):
    backends = named(lab, "backend-")
    assert len(backends) == 3
    ips, ports = endpoint_ips(lab, "hello")
    assert ips == {lab.pod[p]["status"]["podIP"] for p in backends} and ports == {80}  # targetPort: http


def test_the_frontend_finds_hello_by_its_dns_name(lab):
    frontend = named(lab, "frontend-")
    assert len(frontend) == 1
    ip = lab.svc["hello"]["spec"]["clusterIP"]
    out = lab.exec(frontend[0], "sh", "-c", "getent hosts hello; curl -s -o /dev/null -w '%{http_code}' "
                   "--max-time 10 http://hello/").stdout.split()
    assert out == [ip, "hello.default.svc.cluster.local", "200"]


def test_the_frontend_load_balancer_answers_from_outside(lab):
    svc = lab.svc["frontend"]
    assert svc["spec"]["type"] == "LoadBalancer"
    lb = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    row = lab("get", "svc", "frontend").stdout.splitlines()[1].split()
    assert row[:5] == ["frontend", "LoadBalancer", svc["spec"]["clusterIP"], lb, f"80:{node_port(lab, 'frontend')}/TCP"]
    assert codes(lab, "external", [f"http://{lb}/"] * 5) == ["200"] * 5
    # the NodePort under it, on every node
    assert codes(lab, "external", [f"http://{ip}:{node_port(lab, 'frontend')}/" for ip in lab.node_ips.values()]) \
        == ["200", "200"]


def test_through_the_load_balancer_the_backend_greets(lab):
    """The page: `curl http://${EXTERNAL_IP}` prints {"message":"Hello"}, the backend's answer."""
    lb = lab.svc["frontend"]["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert bodies(lab, "external", [f"http://{lb}/"]) == ['{"message":"Hello"}']


# --- Exposing an External IP Address (the Deployment; the page exposes it with kubectl expose) ---

def test_the_five_hello_world_replicas_answer_on_8080_by_pod_ip(lab):
    pods = named(lab, "hello-world-")
    assert len(pods) == 5
    assert wait_for(lambda: lab("get", "deploy", "hello-world").stdout.splitlines()[1].split()[1:4]
                    == ["5/5", "5", "5"], "hello-world to be 5/5", timeout=60)
    urls = [f"http://{lab.pod[p]['status']['podIP']}:8080/" for p in pods]
    got = bodies(lab, named(lab, "curl-deployment-")[0], urls)
    # hello-app answers "Hello, world!\nVersion: 2.0.0\nHostname: <pod>": each answer names its pod
    for pod, body in zip(pods, got):
        assert pod in body, (pod, body)


# --- nginx-secure-app.yaml: HTTPS through the Service -------------------------------------------

def test_https_answers_by_service_name_and_on_every_nodes_node_port(secure):
    client = named(secure, "curl-deployment-")[0]
    assert codes(secure, client, ["https://my-nginx/", "https://my-nginx.default.svc.cluster.local/"], "-k") \
        == ["200", "200"]
    assert codes(secure, client, ["http://my-nginx:8080/"]) == ["200"]  # the http port, to 80
    ips, ports = endpoint_ips(secure, "my-nginx")
    assert ips == {secure.pod[named(secure, "my-nginx-")[0]]["status"]["podIP"]} and ports == {80, 443}
    # the page, from outside: curl https://<EXTERNAL-IP>:<NODE-PORT> -k
    https, http = node_port(secure, "my-nginx", "https"), node_port(secure, "my-nginx", "http")
    assert codes(secure, "external", [f"https://{ip}:{https}/" for ip in secure.node_ips.values()], "-k") \
        == ["200", "200"]
    assert codes(secure, "external", [f"http://{ip}:{http}/" for ip in secure.node_ips.values()]) == ["200", "200"]


def test_plain_http_to_the_https_port_gets_nginxs_400(secure):
    client = named(secure, "curl-deployment-")[0]
    assert codes(secure, client, ["http://my-nginx:443/"]) == ["400"]


# --- dual-stack-preferred-svc.yaml on a single-stack IPv4 cluster --------------------------------

def test_prefer_dual_stack_gets_one_ipv4_cluster_ip(secure):
    svc = secure.svc["my-service"]
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["clusterIPs"] == [spec["clusterIP"]] and spec["clusterIP"].count(".") == 3
    # no pod carries app.kubernetes.io/name=MyApp: no endpoints, and kube-proxy refuses at once
    assert endpoint_ips(secure, "my-service") == (set(), set())
    client = named(secure, "curl-deployment-")[0]
    proc = secure.exec(client, "curl", "-s", "--max-time", "10", "http://my-service/", check=False)
    assert proc.returncode == 7  # connection refused
    if "ipFamilyPolicy" not in spec:
        pytest.skip("the lab does not report ipFamilyPolicy/ipFamilies yet (being added to the product)")
    assert (spec["ipFamilyPolicy"], spec["ipFamilies"]) == ("PreferDualStack", ["IPv4"])
