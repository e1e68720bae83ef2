"""loadBalancerSourceRanges enforced for real, in both proxy modes: the lab's balancer drops an
outside client outside the ranges (as a cloud balancer does) and lets one inside them through,
for the same Service from the two outside clients (`external`, `external2`), and each node's kube-proxy rules
(KUBE-FW-/KUBE-PROXY-FIREWALL; nftables firewall-ips) drop a pod outside them that dials the
LB IP (kube-proxy sends in-cluster LB-IP traffic through its firewall chain). `check` expects
exactly that."""
from __future__ import annotations

import json

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down

MANIFEST = MANIFESTS / "source-ranges.yaml"


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request, host_before):
    lab = Lab(new_lab_name("sr"))
    with torn_down(lab.name):
        lab("up", str(MANIFEST), "--proxy-mode", request.param)
        yield lab


def lb_ip(lab: Lab, svc: str) -> str:
    return json.loads(lab("get", "svc", svc, "-o", "json").stdout)["status"]["loadBalancer"]["ingress"][0]["ip"]


def test_a_source_in_the_ranges_gets_through_and_one_outside_is_dropped(lab):
    webs = {p for p in lab.pods() if p.startswith("web-")}
    open_ip, closed_ip = lb_ip(lab, "open-to-client"), lb_ip(lab, "closed-to-client")
    # the outside client (172.18.0.254): through the balancer for the one, dropped by it for the other
    assert lab.exec("external", "curl", "-s", "-m", "5", f"http://{open_ip}/hostname").stdout in webs
    dropped = lab.exec("external", "curl", "-s", "-m", "2", f"http://{closed_ip}/hostname", check=False)
    assert dropped.returncode == 28  # timed out: dropped, not refused
    # the second outside client (172.18.0.252): the same Service drops it, one open to it answers,
    # and the first client is dropped there
    second_ip = lb_ip(lab, "open-to-second")
    assert lab.exec("external2", "curl", "-s", "-m", "2", f"http://{open_ip}/hostname", check=False).returncode == 28
    assert lab.exec("external2", "curl", "-s", "-m", "5", f"http://{second_ip}/hostname").stdout in webs
    assert lab.exec("external", "curl", "-s", "-m", "2", f"http://{second_ip}/hostname", check=False).returncode == 28
    # a pod (10.244.0.0/16): the node's kube-proxy rules decide
    assert lab.exec("client", "curl", "-s", "-m", "5", f"http://{closed_ip}/hostname").stdout in webs
    assert lab.exec("client", "curl", "-s", "-m", "2", f"http://{open_ip}/hostname", check=False).returncode == 28


def test_check_expects_the_drop(lab):
    out = lab("check", "-o", "json", check=False)
    doc = json.loads(out.stdout)
    assert doc["ok"] is True, [r for r in doc["results"] if not r["ok"]]
    closed = [r for r in doc["results"] if r["to"].startswith(f"lb/{lb_ip(lab, 'closed-to-client')}:")]
    assert closed and all(r["must"] == "fail" for r in closed)
