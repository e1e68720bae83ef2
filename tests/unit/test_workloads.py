"""StatefulSet, DaemonSet and Job pods as their controllers make them, from the documentation's own
manifests (tests/corpus/workloads), without root."""
from __future__ import annotations

import io
import textwrap
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from dnslib import DNSRecord

from kubenet_lab.plan.images import NGINX_HTML
from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.cluster import workload_warnings
from kubenet_lab.model.objects import RunExec, RunHttp
from kubenet_lab.plan.podfiles import pod_files, pod_hostname
from kubenet_lab.servers.dns import ClusterDNS

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "workloads"


def load(*corpus: str, text: str = ""):
    stdin = io.StringIO(textwrap.dedent(text).lstrip("\n")) if text else None
    return load_model([str(CORPUS / c) for c in corpus] + (["-"] if text else []), stdin)


def pods_of(plan, owner: str) -> list:
    return [p for p in plan.pods if p.owner == owner]


def test_statefulset_pods_have_ordinals_and_stable_dns_names():
    """"StatefulSet Basics": web-0 and web-1, each web-N.nginx.default.svc.cluster.local."""
    model = load("statefulset-web.yaml")
    plan = make_plan(model, "lab")
    web0, web1 = pods_of(plan, "StatefulSet/web")
    assert (web0.name, web1.name) == ("web-0", "web-1")
    assert web0.labels["statefulset.kubernetes.io/pod-name"] == "web-0"
    assert web0.labels["apps.kubernetes.io/pod-index"] == "0" and web0.labels["app"] == "nginx"
    assert pod_hostname(plan, web1) == "web-1"
    assert f"{web1.ip}\tweb-1.nginx.default.svc.cluster.local\tweb-1\n" in pod_files(plan, web1)["/etc/hosts"]
    assert web0.containers[0].run == RunHttp((80,), docroot=NGINX_HTML)  # nginx-slim listens on 80
    dns = ClusterDNS(plan)
    for pod in (web0, web1):
        reply = DNSRecord.parse(dns.answer(DNSRecord.question(f"{pod.name}.nginx.default.svc.cluster.local").pack()))
        assert [str(r.rdata) for r in reply.rr] == [str(pod.ip)]
    # the headless Service lists both
    reply = DNSRecord.parse(dns.answer(DNSRecord.question("nginx.default.svc.cluster.local").pack()))
    assert sorted(IPv4Address(str(r.rdata)) for r in reply.rr) == sorted([web0.ip, web1.ip])
    # OrderedReady (the default): web-1 is created once web-0 is Running and Ready (see test_ordering)
    assert (web0.created_after, web1.created_after) == (None, "default/web-0")
    assert not [w for w in workload_warnings(model) if "StatefulSet" in w]


def test_a_daemonset_runs_one_pod_on_every_node_its_pods_fit():
    # fluentd mounts the node's /var/log (hostPath): this lab's Cluster config allows it
    nodes = textwrap.dedent("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        allowHostPath: true
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: control-plane}
        spec: {taints: [{key: node-role.kubernetes.io/master, effect: NoSchedule}]}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: gpu}
        spec: {taints: [{key: gpu, value: "true", effect: NoSchedule}]}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: worker}
        spec: {unschedulable: true}
        """)
    plan = make_plan(load("daemonset.yaml", text=nodes), "lab")
    pods = pods_of(plan, "DaemonSet/fluentd-elasticsearch")
    # the manifest tolerates the master taint; unschedulable is tolerated by every DaemonSet pod
    assert sorted(p.node for p in pods) == ["control-plane", "worker"]
    assert all(p.namespace == "kube-system" and p.name.startswith("fluentd-elasticsearch-") for p in pods)
    assert not plan.pending or all(not p.name.startswith("fluentd") for p in plan.pending)
    # the same node keeps the same pod name
    again = make_plan(load("daemonset.yaml", text=nodes), "lab", plan)
    assert {p.name: p.node for p in pods_of(again, "DaemonSet/fluentd-elasticsearch")} == {p.name: p.node for p in pods}
    assert [(v.name, v.kind, v.host_path) for v in pods[0].volumes] == [
        ("varlog", "hostPath", "/var/log"), ("varlibdockercontainers", "hostPath", "/var/lib/docker/containers")]
    assert [(m.volume, m.path, m.read_only) for m in pods[0].containers[0].mounts] == [
        ("varlog", "/var/log", False), ("varlibdockercontainers", "/var/lib/docker/containers", True)]


def test_a_job_runs_its_pod_to_completion_with_the_job_labels():
    """The "pi" Job: one pod, restartPolicy Never, perl run for real where this machine has it."""
    plan = make_plan(load("job-pi.yaml"), "lab", has_program=lambda p: True)
    pod, = pods_of(plan, "Job/pi")
    assert pod.name.startswith("pi-") and pod.labels["job-name"] == "pi"
    assert pod.labels["batch.kubernetes.io/job-name"] == "pi"
    assert pod.labels["controller-uid"] == pod.labels["batch.kubernetes.io/controller-uid"]
    assert pod.containers[0].run == RunExec(("perl", "-Mbignum=bpi", "-wle", "print bpi(1000)"))


def test_indexed_jobs_and_parallelism():
    model = load(text="""
        apiVersion: batch/v1
        kind: Job
        metadata: {name: sample}
        spec:
          completions: 3
          parallelism: 3
          completionMode: Indexed
          template:
            spec:
              restartPolicy: Never
              containers: [{name: c, image: busybox, command: [sh, -c, "echo $JOB_COMPLETION_INDEX"]}]
        ---
        apiVersion: batch/v1
        kind: Job
        metadata: {name: rounds}
        spec:
          completions: 5
          parallelism: 2
          template:
            spec:
              restartPolicy: OnFailure
              containers: [{name: c, image: busybox, command: ["true"]}]
        """)
    plan = make_plan(model, "lab")
    indexed = sorted(pods_of(plan, "Job/sample"), key=lambda p: p.name)
    assert [p.labels["batch.kubernetes.io/job-completion-index"] for p in indexed] == ["0", "1", "2"]
    assert [p.name.rsplit("-", 1)[0] for p in indexed] == ["sample-0", "sample-1", "sample-2"]
    assert [pod_hostname(plan, p) for p in indexed] == ["sample-0", "sample-1", "sample-2"]
    assert len(pods_of(plan, "Job/rounds")) == 2
    assert any("needs 5 completions with parallelism 2" in w for w in workload_warnings(model))


def test_a_job_with_restart_policy_always_is_refused_as_the_api_server_does():
    with pytest.raises(InputError) as e:
        load(text="""
            apiVersion: batch/v1
            kind: Job
            metadata: {name: bad}
            spec:
              template:
                spec:
                  containers: [{name: c, image: busybox}]
            """)
    assert e.value.problems == ["<stdin>:6: spec.template.spec.restartPolicy: Unsupported value: 'Always': "
                                "supported values: \"OnFailure\", \"Never\""]


def test_a_job_container_with_nothing_to_run_here_completes_at_once():
    """ingress-nginx's admission Jobs run kube-webhook-certgen (args only, an image the lab does
    not know, no port): as a run-to-completion pod it ends at once with exit 0, said at up."""
    from kubenet_lab.plan.containers import emulation_warnings
    from kubenet_lab.model.objects import RunNothing
    plan = make_plan(load(text="""
        apiVersion: batch/v1
        kind: Job
        metadata: {name: admission-create}
        spec:
          template:
            spec:
              restartPolicy: OnFailure
              containers:
              - {name: create, image: registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.5, args: [create]}
        """), "lab")
    pod, = pods_of(plan, "Job/admission-create")
    assert pod.containers[0].run == RunNothing(completes=True)
    warning, = [w for w in emulation_warnings(plan) if "admission-create" in w]
    assert warning.endswith("as its pod runs to completion, it completes at once with exit code 0")
