"""Cluster DNS as pods see it: kubelet's resolv.conf, the search path, and the kube-dns service."""
from __future__ import annotations

import json

import pytest

from .conftest import MANIFESTS, Lab, lab_namespaces, new_lab_name, torn_down

ZONE = "cluster.local"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    d = tmp_path_factory.mktemp("dns")
    (d / "shop.yaml").write_text((MANIFESTS / "dns" / "shop.yaml").read_text())
    lab = Lab(new_lab_name("n"))
    lab.dir = d
    with torn_down(lab.name):
        lab("up", str(d))
        yield lab
    assert lab_namespaces(lab.name) == []


def sh(lab: Lab, script: str) -> str:
    return lab("exec", "-n", "shop", "client", "--", "sh", "-c", script).stdout


def svc_ip(lab: Lab, name: str, ns: str = "shop") -> str:
    return json.loads(lab("get", "svc", name, "-n", ns, "-o", "json").stdout)["spec"]["clusterIP"]


def web_pod_ips(lab: Lab) -> set[str]:
    pods = json.loads(lab("get", "pods", "-n", "shop", "-o", "json").stdout)["items"]
    return {p["status"]["podIP"] for p in pods if p["metadata"]["labels"].get("app") == "web"}


def test_short_partial_and_full_names_resolve_through_the_search_path(shop):
    ip = svc_ip(shop, "web")
    out = sh(shop, "getent hosts web; getent hosts web.shop; getent hosts web.shop.svc; "
                   f"getent hosts web.shop.svc.{ZONE}")
    lines = out.splitlines()
    assert len(lines) == 4 and all(line.split()[0] == ip for line in lines), out
    assert f"web.shop.svc.{ZONE}" in lines[0]
    # and the name leads to the service for real
    assert sh(shop, "curl -s --max-time 10 http://web/hostname").startswith("web-")


def test_kube_dns_answers_at_the_tenth_service_address(shop):
    assert svc_ip(shop, "kube-dns", "kube-system") == "10.96.0.10"
    out = sh(shop, f"dig +short @10.96.0.10 web.shop.svc.{ZONE}; dig +short +tcp @10.96.0.10 web.shop.svc.{ZONE}")
    assert out.split() == [svc_ip(shop, "web")] * 2


def test_headless_service_resolves_to_its_pods(shop):
    out = sh(shop, f"dig +short web-headless.shop.svc.{ZONE}")
    assert set(out.split()) == web_pod_ips(shop)


def test_srv_ptr_and_pod_records(shop):
    srv = sh(shop, f"dig +short SRV _http._tcp.web.shop.svc.{ZONE}").split()
    assert srv[2:] == ["80", f"web.shop.svc.{ZONE}."]
    assert sh(shop, f"dig +short -x {svc_ip(shop, 'web')}").strip() == f"web.shop.svc.{ZONE}."
    pod_ip = sorted(web_pod_ips(shop))[0]
    assert sh(shop, f"dig +short {pod_ip.replace('.', '-')}.shop.pod.{ZONE}").strip() == pod_ip


def test_unknown_names_are_nxdomain_and_outside_names_refused_at_once(shop):
    assert "status: NXDOMAIN" in sh(shop, f"dig nope.shop.svc.{ZONE}")
    out = sh(shop, "dig +tries=1 +time=5 example.com")
    assert "status: REFUSED" in out  # answered: one unanswered try would have no status


def test_pod_files_are_kubelets(shop):
    resolv = sh(shop, "cat /etc/resolv.conf")
    assert f"search shop.svc.{ZONE} svc.{ZONE} {ZONE}" in resolv and "nameserver 10.96.0.10" in resolv
    assert "options ndots:5" in resolv
    hosts = sh(shop, "cat /etc/hosts")
    pod = json.loads(shop("get", "pod", "client", "-n", "shop", "-o", "json").stdout)
    assert f"{pod['status']['podIP']}\tclient" in hosts


def test_a_service_added_on_a_running_lab_resolves(shop):
    (shop.dir / "more.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: late, namespace: shop}\n"
        "spec:\n  selector: {app: web}\n  ports: [{port: 81, targetPort: 8080}]\n")
    try:
        shop("up", str(shop.dir))
        assert sh(shop, "getent hosts late").split()[0] == svc_ip(shop, "late")
    finally:
        (shop.dir / "more.yaml").unlink()
        shop("up", str(shop.dir))
    assert "status: NXDOMAIN" in sh(shop, f"dig late.shop.svc.{ZONE}")


def test_kubernetes_default_resolves_and_is_refused_at_once_without_an_api_server(shop):
    """`nslookup kubernetes.default`, the first check of Kubernetes' DNS debugging guide, works;
    the lab has no API server, so a connection is refused rather than left hanging."""
    out = sh(shop, "getent hosts kubernetes.default; echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT")
    assert out.split()[0] == "10.96.0.1" and "kubernetes.default.svc.cluster.local" in out
    assert out.splitlines()[-1] == "10.96.0.1:443"
    proc = shop("exec", "-n", "shop", "client", "--", "curl", "-sk", "--max-time", "20", "https://kubernetes.default/",
                check=False)
    assert proc.returncode == 7  # refused (curl's 7), not timed out (28)
    row = shop("get", "svc", "kubernetes").stdout.splitlines()[1].split()
    assert row[:5] == ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    assert shop("get", "ep", "kubernetes").stdout.splitlines()[1].split()[1] == "<none>"
