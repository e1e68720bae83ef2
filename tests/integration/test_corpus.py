"""Real public manifests (tests/corpus), brought up unchanged, behave as on a cluster: what answers,
from where, and what a pod's resolv.conf, hosts and hostname say."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import Lab, new_lab_name, torn_down, wait_for

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
FILES = [
    "services/debug-service-hostnames-deployment.yaml", "services/debug-service-hostnames-service.yaml",
    "dns/dns-pod-service-subdomain.yaml", "dns/custom-dns.yaml", "dns/hostaliases-pod.yaml", "dns/dnsutils.yaml",
    "apps/kind-loadbalancer-usage.yaml", "apps/podinfo-deployment.yaml", "apps/podinfo-service.yaml",
    "workloads/pod-nginx-nodeselector.yaml",
]


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("corp"))
    with torn_down(lab.name):
        out = lab("up", *(str(CORPUS / f) for f in FILES))
        lab.warnings = out.stderr
        yield lab


def sh(lab: Lab, pod: str, script: str) -> str:
    return lab.exec(pod, "sh", "-c", script).stdout


def svc_ip(lab: Lab, name: str) -> str:
    return json.loads(lab("get", "svc", name, "-o", "json").stdout)["spec"]["clusterIP"]


def test_debug_services_walk_through(lab):
    """kubernetes.io "Debug Services": each step answers as the page shows."""
    names = {n for n in lab.pods() if n.startswith("hostnames-")}
    assert len(names) == 3
    # "Does the Service work by DNS name?" and "by IP?": serve_hostname answers its pod's name
    got = sh(lab, "dnsutils", "for i in $(seq 30); do curl -s --max-time 10 http://hostnames; echo; done").split()
    assert set(got) == names
    ip = svc_ip(lab, "hostnames")
    assert set(sh(lab, "dnsutils", f"for i in $(seq 30); do curl -s --max-time 10 {ip}:80; echo; done").split()) \
        == names
    # "Does any Service exist in DNS?": nslookup hostnames (and the full name) finds the ClusterIP
    assert f"Address: {ip}" in sh(lab, "dnsutils", "nslookup hostnames.default.svc.cluster.local")
    # "Are the Pods working?": each pod on 9376, which the Deployment never declared
    for name, pod in lab.pods().items():
        if name in names:
            assert sh(lab, "dnsutils", f"curl -s --max-time 10 {pod['status']['podIP']}:9376") == name
    # "Does the Service have any Endpoints?"
    ep = json.loads(lab("get", "ep", "hostnames", "-o", "json").stdout)
    assert sorted(p["port"] for s in ep["subsets"] for p in s["ports"]) == [9376]
    assert len([a for s in ep["subsets"] for a in s["addresses"]]) == 3


def test_pod_hostname_and_subdomain_as_the_dns_page_shows(lab):
    fqdn = "busybox-1.default-subdomain.default.svc.cluster.local"
    assert sh(lab, "busybox1", "hostname; hostname -f").split() == ["busybox-1", fqdn]
    ip = lab.ip("busybox1")
    assert sh(lab, "dnsutils", f"dig +short {fqdn}").split() == [ip]


def test_dns_policy_none_gives_exactly_the_dns_config(lab):
    assert sh(lab, "dns-example", "cat /etc/resolv.conf") == (
        "search ns1.svc.cluster-domain.example my.dns.search.suffix\nnameserver 192.0.2.1\noptions ndots:2 edns0\n")


def test_host_aliases_land_in_the_pods_hosts(lab):
    hosts = sh(lab, "hostaliases-pod", "cat /etc/hosts")
    assert hosts.endswith("\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n"
                          "10.1.2.3\tfoo.remote\tbar.remote\n")
    assert sh(lab, "hostaliases-pod", "getent hosts foo.remote").split() == ["10.1.2.3", "foo.remote", "bar.remote"]
    # the container itself (`cat /etc/hosts`) printed the same file, as `kubectl logs` shows on the page
    assert wait_for(lambda: "foo.local" in lab("logs", "hostaliases-pod").stdout, "the container's output")


def test_kinds_load_balancer_example_answers_from_outside(lab):
    lb = json.loads(lab("get", "svc", "foo-service", "-o", "json").stdout)["status"]["loadBalancer"]["ingress"][0]["ip"]
    got = lab.exec("external", "sh", "-c",
                   f"for i in $(seq 20); do curl -s --max-time 10 {lb}:5678; echo; done").stdout.split()
    assert set(got) == {"foo-app", "bar-app"}


def test_a_program_inside_the_image_is_emulated_and_said_so(lab):
    """podinfo's command is ./podinfo, which only its image has: the lab serves its ports, says so."""
    assert "container podinfod: ./podinfo is not a program on this machine" in lab.warnings
    pod = next(n for n in lab.pods() if n.startswith("podinfo-"))
    assert sh(lab, "dnsutils", "curl -s --max-time 10 http://podinfo:9898/hostname") == pod
    assert lab.pods()[pod]["status"]["containerStatuses"][0]["ready"] is True


def test_a_pod_no_node_takes_is_pending_with_the_schedulers_message(lab):
    """pod-nginx.yaml asks for a node labelled disktype=ssd; the lab's nodes have no such label."""
    message = ("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes "
               "are available: 2 Preemption is not helpful for scheduling.")
    assert f"warning: pod default/nginx is Pending (FailedScheduling): {message}" in lab.warnings
    row = lab("get", "pods", "nginx", "-o", "wide").stdout.splitlines()[1].split()
    assert row[:4] == ["nginx", "0/1", "Pending", "0"] and row[5:7] == ["<none>", "<none>"]
    pod = json.loads(lab("get", "pod", "nginx", "-o", "json").stdout)
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]
    assert pod["status"]["conditions"][0] == {
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
        "lastProbeTime": None, "lastTransitionTime": pod["status"]["conditions"][0]["lastTransitionTime"]}
    assert not any(ns.endswith(".pod.default.nginx") for ns in
                   subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
