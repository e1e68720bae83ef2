"""HTTPS where the manifests serve it: kubernetes.io "Connecting Applications with Services"
(nginx-secure-app.yaml, nginx on 443 and 80, and the page's curl pod), brought up unchanged, with the
page's Secret nginxsecret and ConfigMap nginxconfigmap made as it makes them. The
page's `curl -k https://my-nginx` answers, plain HTTP stays plain, and either protocol on the
other's port fails at once instead of hanging (plain HTTP on the HTTPS port with nginx's 400)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from kubenet_lab.plan import naming
from kubenet_lab.fabric import state

from .conftest import Lab, new_lab_name, torn_down, wait_for
from .test_corpus_services import tutorial_secrets

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
FILES = ("services/nginx-secure-app.yaml", "services/curlpod.yaml")


@pytest.fixture(scope="module")
def lab(host_before, tmp_path_factory):
    lab = Lab(new_lab_name("tls"))
    with torn_down(lab.name):
        lab("up", *(str(CORPUS / f) for f in FILES))  # its pods wait for the page's Secret and ConfigMap
        tutorial_secrets(lab, tmp_path_factory.mktemp("tls"))
        # they start once those exist; ready, and nginx an endpoint of its Service, as its client needs
        wait_for(lambda: all(ready(p) for p in lab.pods().values()), "the pods to be ready")
        pods = lab.pods()
        lab.nginx = next(n for n in pods if n.startswith("my-nginx-"))
        lab.client = next(n for n in pods if n.startswith("curl-deployment-"))
        wait_for(lambda: endpoints(lab, "my-nginx") == {lab.nginx}, "nginx to be an endpoint of my-nginx")
        yield lab
    assert not os.path.exists(state.state_dir(lab.name))  # the certificate went with the lab


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def endpoints(lab: Lab, service: str) -> set[str]:
    """The ready pods of a Service's endpoints."""
    ep = json.loads(lab("get", "ep", service, "-o", "json").stdout)
    return {a["targetRef"]["name"] for s in ep.get("subsets") or [] for a in s.get("addresses", [])}


def curl(lab: Lab, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """curl in the client pod (`exec`: the pod's resolv.conf, so Service names resolve); its
    result and how long the transfer took by curl's own clock (not counting `exec`'s start, which
    a loaded machine makes slow)."""
    proc = lab.exec(lab.client, "curl", "-s", "--max-time", "10", "-w", "%{stderr}%{time_total}", *args,
                    check=False)
    return proc, float(proc.stderr.split()[-1])


def test_curl_k_https_my_nginx_answers_the_pod_name(lab):
    proc, _ = curl(lab, "-k", "https://my-nginx")
    assert (proc.returncode, proc.stdout) == (0, f"{lab.nginx}\n")
    proc, _ = curl(lab, "-k", "https://my-nginx.default.svc.cluster.local/hostname")
    assert proc.stdout == lab.nginx
    ip = lab.ip(lab.nginx)
    proc, _ = curl(lab, "-k", f"https://{ip}/hostname")
    assert proc.stdout == lab.nginx
    proc, _ = curl(lab, "-k", f"https://{ip}:443/clientip")
    assert proc.stdout.split(":")[0] == lab.ip(lab.client)


def test_the_node_port_of_the_https_port_is_https_too(lab):
    svc = json.loads(lab("get", "svc", "my-nginx", "-o", "json").stdout)
    port = next(p["nodePort"] for p in svc["spec"]["ports"] if p["name"] == "https")
    node = lab.pods()[lab.nginx]["spec"]["nodeName"]
    nodes = {n["metadata"]["name"]: n for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]}
    node_ip = nodes[node]["status"]["addresses"][0]["address"]
    proc, _ = curl(lab, "-k", f"https://{node_ip}:{port}/hostname")
    assert proc.stdout == lab.nginx


def test_plain_http_stays_plain(lab):
    proc, _ = curl(lab, "http://my-nginx:8080/hostname")  # the Service's http port, to 80
    assert proc.stdout == lab.nginx
    proc, _ = curl(lab, f"http://{lab.ip(lab.nginx)}/hostname")
    assert proc.stdout == lab.nginx


def test_the_wrong_protocol_fails_at_once(lab):
    proc, took = curl(lab, "-i", "http://my-nginx:443/")
    # nginx's answer to plain HTTP on its HTTPS port
    assert proc.returncode == 0 and took < 5 and proc.stdout.startswith("HTTP/1.1 400 Bad Request\n")
    assert "<center>The plain HTTP request was sent to HTTPS port</center>" in proc.stdout
    proc, took = curl(lab, "-k", f"https://{lab.ip(lab.nginx)}:80/")
    assert proc.returncode == 35 and took < 5  # a plain 400, no TLS
    proc, _ = curl(lab, "-k", "https://my-nginx/hostname")
    assert proc.stdout == lab.nginx  # and the server is still well


def test_one_certificate_per_lab_in_its_state(lab):
    cert, key = (os.path.join(state.state_dir(lab.name), f) for f in ("tls.crt", "tls.key"))
    assert os.stat(key).st_mode & 0o777 == 0o600
    subject = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-subject"], capture_output=True,
                             text=True, check=True).stdout
    assert f"CN = {lab.name}" in subject
    # what the pod serves is that certificate
    served = subprocess.run(
        ["ip", "netns", "exec", naming.pod_netns(lab.name, "default", lab.client), "sh", "-c",
         f"openssl s_client -connect {lab.ip(lab.nginx)}:443 </dev/null 2>/dev/null | openssl x509 -noout -subject"],
        capture_output=True, text=True, timeout=30).stdout
    assert served == subject
    logs = lab("logs", lab.nginx).stdout
    assert "listening on TCP port 443 (built-in HTTPS server)" in logs
    assert "listening on TCP port 80 (built-in HTTP server)" in logs
