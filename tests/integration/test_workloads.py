"""StatefulSet, DaemonSet, Job and Deployment manifests from the documentation (tests/corpus/workloads),
brought up unchanged: their pods, names, DNS and kubectl's tables of them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Lab, new_lab_name, torn_down, wait_for

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "workloads"
FILES = ["statefulset-web.yaml", "daemonset.yaml", "job-pi.yaml", "nginx-deployment.yaml"]
# fluentd's DaemonSet reads the node's /var/log (hostPath volumes), which a lab allows only when
# its Cluster config says so
ALLOW_HOST_PATH = "apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\nallowHostPath: true\n"


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("wl"))
    with torn_down(lab.name):
        lab("up", "-", *(str(CORPUS / f) for f in FILES), input=ALLOW_HOST_PATH)
        yield lab


def rows(lab: Lab, *args: str) -> dict[str, list[str]]:
    lines = lab("get", *args).stdout.splitlines()
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def test_statefulset_pods_have_stable_names_hostnames_and_dns(lab):
    """"StatefulSet Basics": web-0 and web-1 answer as web-N.nginx, each with its own hostname."""
    pods = lab.pods()
    assert {"web-0", "web-1"} <= set(pods)
    for name in ("web-0", "web-1"):
        assert lab.exec(name, "hostname").stdout.strip() == name
        # web-1 is created once web-0 is ready (OrderedReady); its endpoint follows within a moment
        got = wait_for(
            lambda name=name: lab.exec("web-0", "getent", "hosts", f"{name}.nginx", check=False).stdout.split(),
            f"{name}.nginx to resolve")
        assert got[:2] == [pods[name]["status"]["podIP"], f"{name}.nginx.default.svc.cluster.local"]
    assert wait_for(lambda: rows(lab, "sts")["web"][0] == "2/2", "web to be 2/2")  # READY (AGE moves on)


def test_a_daemonset_runs_a_pod_on_every_node(lab):
    ds = json.loads(lab("get", "pods", "-n", "kube-system", "-l", "name=fluentd-elasticsearch", "-o", "json").stdout)
    assert sorted(p["spec"]["nodeName"] for p in ds["items"]) == ["node1", "node2"]
    row = rows(lab, "ds", "-n", "kube-system")["fluentd-elasticsearch"]
    assert row[:2] == ["2", "2"] and row[5] == "<none>"


def test_a_job_runs_its_program_for_real(lab):
    pod = next(n for n in lab.pods() if n.startswith("pi-"))
    assert wait_for(lambda: lab("logs", pod).stdout.startswith("3.14159265358979"), "pi's digits", timeout=60)
    # restartPolicy Never: the pod ends Completed and the Job is Complete, 1/1
    assert wait_for(lambda: rows(lab, "jobs")["pi"][:2] == ["Complete", "1/1"], "the Job to complete", timeout=60)
    assert rows(lab, "pods")[pod][:2] == ["0/1", "Completed"]


def test_get_all_and_the_deployment_tables(lab):
    out = lab("get", "all").stdout
    for line in ("pod/web-0", "service/nginx", "deployment.apps/nginx-deployment", "statefulset.apps/web",
                 "job.batch/pi"):
        assert line in out
    rs = [name for name in rows(lab, "rs") if name.startswith("nginx-deployment-")]
    assert len(rs) == 1
    assert wait_for(lambda: rows(lab, "deploy")["nginx-deployment"][:3] == ["3/3", "3", "3"], "3 ready replicas")
    assert rows(lab, "rs")[rs[0]][:3] == ["3", "3", "3"]
    deploy = json.loads(lab("get", "deploy", "nginx-deployment", "-o", "json").stdout)
    assert deploy["metadata"]["labels"] == {"app.kubernetes.io/name": "nginx"}
    assert deploy["spec"]["replicas"] == 3 and deploy["status"]["readyReplicas"] == 3
    svc = json.loads(lab("get", "svc", "nginx", "-o", "json").stdout)
    assert svc["metadata"]["labels"] == {"app": "nginx"}
    assert lab("get", "svc", "-l", "app=nginx", "-o", "jsonpath={.items[*].metadata.name}").stdout == "nginx"
