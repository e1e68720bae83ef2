"""`port-forward` without root: what TYPE/NAME and [LOCAL:]REMOTE mean against a plan made from
manifests, as kubectl resolves them (pkg/cmd/portforward, client-go tools/portforward):
plan.portforward, and app.portforward's waiting for a pod."""
from __future__ import annotations

import dataclasses
import io
import socket
import textwrap

import pytest

from kubenet_lab.app.portforward import resolve as resolve_on
from kubenet_lab.errors import InputError, LabError
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.plan import portforward as pf
from kubenet_lab.plan.podstatus import PodStatus

MANIFESTS = """
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web}}
spec:
  nodeName: node1
  containers:
  - {name: main, image: nginx, ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, labels: {app: web}}
spec:
  nodeName: node2
  containers:
  - {name: main, image: nginx, ports: [{name: http, containerPort: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: metrics, port: 9100}
  - {name: dns, port: 53, targetPort: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: external}
spec:
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: main, image: nginx, ports: [{name: http, containerPort: 8000}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: nowhere}
spec:
  nodeSelector: {disk: none}
  containers: [{name: main, image: nginx, ports: [{name: http, containerPort: 80}]}]
"""  # noqa: E501 - a manifest's line


@pytest.fixture(scope="module")
def plan():
    return make_plan(load_model(["-"], io.StringIO(textwrap.dedent(MANIFESTS))), "lab")


def status(phase="Running", ready=True, restarts=0) -> PodStatus:
    return PodStatus(phase, True, ready, int(ready), 1, phase, restarts)


def everyone_running(plan, **overrides) -> dict:
    states = {p.key: status() for p in plan.pods}
    states.update({f"default/{name}": st for name, st in overrides.items()})
    return states


def resolve(plan, target, *ports, states=None, namespace="default"):
    states = everyone_running(plan) if states is None else states
    r = resolve_on(lambda: (plan, states), target, namespace, ports, timeout=0, sleep=lambda s: None)
    return r.pod.name, [(f.local, f.remote) for f in r.forwards]


# --- TYPE/NAME ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,kind,name", [
    ("web-a", "Pod", "web-a"), ("pod/web-a", "Pod", "web-a"), ("po/web-a", "Pod", "web-a"),
    ("svc/web", "Service", "web"), ("service/web", "Service", "web"), ("services/web", "Service", "web"),
    ("deploy/api", "Deployment", "api"), ("deployment.apps/api", "Deployment", "api"),
    ("rs/x", "ReplicaSet", "x"), ("rc/x", "ReplicationController", "x"), ("sts/x", "StatefulSet", "x"),
    ("ds/x", "DaemonSet", "x"), ("job/x", "Job", "x"),
])
def test_targets_are_read_as_kubectl_reads_them(text, kind, name):
    assert pf.parse_target(text) == pf.Target(kind, name)


def test_an_unknown_type_is_the_servers_message():
    with pytest.raises(InputError, match='the server doesn\'t have a resource type "foo"'):
        pf.parse_target("foo/bar")


# --- ports -------------------------------------------------------------------------------------

def test_ports_parse_as_client_go_parses_them():
    got = pf.parse_ports(["8080", "5000:80", ":443", "0:53"])
    assert [(f.local, f.remote) for f in got] == [(8080, 8080), (5000, 80), (0, 443), (0, 53)]


@pytest.mark.parametrize("spec,message", [
    ("abc:80", "error parsing local port 'abc': strconv.ParseUint: parsing \"abc\": invalid syntax"),
    ("80:x", "error parsing remote port 'x': strconv.ParseUint: parsing \"x\": invalid syntax"),
    ("70000:80", "error parsing local port '70000': strconv.ParseUint: parsing \"70000\": value out of range"),
    ("8080:0", "remote port must be > 0"),
    ("0", "remote port must be > 0"),
    ("1:2:3", "invalid port format '1:2:3'"),
])
def test_bad_ports_are_refused_with_kubectls_words(spec, message):
    with pytest.raises(InputError) as e:
        pf.parse_ports([spec])
    assert e.value.problems == [message]


def test_pod_ports_forward_to_the_port_written_or_the_named_containerPort(plan):
    assert resolve(plan, "pod/web-a", "8080", "9000:http", "http", ":http") == (
        "web-a", [(8080, 8080), (9000, 8080), (8080, 8080), (0, 8080)])
    assert resolve(plan, "web-b", "http") == ("web-b", [(9090, 9090)])


def test_a_missing_named_pod_port_is_kubectls_message(plan):
    with pytest.raises(LabError, match="^Pod 'web-b' does not have a named port 'metrics'$"):
        resolve(plan, "pod/web-b", "metrics")


def test_a_udp_only_port_is_refused(plan):
    with pytest.raises(LabError, match="^UDP protocol is not supported for dns$"):
        resolve(plan, "pod/web-a", "dns")
    with pytest.raises(LabError, match="^UDP protocol is not supported for 53$"):
        resolve(plan, "svc/web", "53")


def test_a_three_part_port_is_refused_before_anything_else(plan):
    with pytest.raises(InputError, match="invalid port format '1:2:3'"):
        resolve(plan, "pod/web-a", "1:2:3")


# --- Services ----------------------------------------------------------------------------------

def test_a_service_port_goes_to_its_targetPort_on_the_chosen_pod(plan):
    # kubectl keeps the Service's port as the local one when only REMOTE is written.
    assert resolve(plan, "svc/web", "80", "0:80", "http", "8443:http", "9100") == (
        "web-a", [(80, 8080), (0, 8080), (80, 8080), (8443, 8080), (9100, 9100)])


def test_the_named_targetPort_resolves_through_the_pod_that_was_chosen(plan):
    # web-a not ready: kubectl picks the Running and Ready web-b, whose `http` is 9090.
    states = everyone_running(plan, **{"web-a": status(ready=False)})
    assert resolve(plan, "svc/web", "0:80", states=states) == ("web-b", [(0, 9090)])


def test_a_pod_with_fewer_restarts_wins_among_ready_ones(plan):
    states = everyone_running(plan, **{"web-a": status(restarts=3)})
    assert resolve(plan, "svc/web", "80", states=states)[0] == "web-b"


def test_a_headless_service_forwards_its_port_as_written(plan):
    assert resolve(plan, "svc/web-headless", "80") == ("web-a", [(80, 80)])


def test_a_port_the_service_lacks_is_kubectls_message(plan):
    with pytest.raises(LabError, match="^Service web does not have a service port 81$"):
        resolve(plan, "svc/web", "81")
    with pytest.raises(LabError, match="^Service 'web' does not have a named port 'https'$"):
        resolve(plan, "svc/web", "https")


def test_a_service_without_selector_cannot_be_forwarded_to(plan):
    with pytest.raises(LabError, match="^invalid service 'external': Service is defined without a selector$"):
        resolve(plan, "svc/external", "80")


def test_a_service_selecting_no_pod_times_out_as_kubectl_does(plan):
    with pytest.raises(LabError, match="^timed out waiting for the condition$"):
        resolve(plan, "svc/empty", "80")


def test_the_pod_that_appears_while_waiting_is_taken(plan):
    snapshots = iter([(dataclasses.replace(plan, pods=()), {}), (plan, everyone_running(plan))])
    slept = []
    r = resolve_on(lambda: next(snapshots), "svc/web", "default", ["80"], timeout=60, sleep=slept.append)
    assert r.pod.name == "web-a" and slept == [0.5]


# --- controllers -------------------------------------------------------------------------------

def test_a_deployment_means_one_of_its_pods(plan):
    api = sorted(p.name for p in plan.pods if p.labels.get("app") == "api")
    name, ports = resolve(plan, "deploy/api", "http")
    assert name == api[0] and ports == [(8000, 8000)]
    # its first pod not Running: the other one
    states = everyone_running(plan, **{api[0]: status("Pending", ready=False)})
    assert resolve(plan, "deployment/api", "8000", states=states)[0] == api[1]
    rs = next(w for w in plan.workloads if w.kind == "ReplicaSet" and w.owner == "Deployment/api")
    assert resolve(plan, f"rs/{rs.name}", "8000")[0] == api[0]


# --- what cannot be forwarded --------------------------------------------------------------------

@pytest.mark.parametrize("target,message", [
    ("pod/nope", 'pods "nope" not found'), ("svc/nope", 'services "nope" not found'),
    ("deploy/nope", 'deployments.apps "nope" not found'), ("sts/nope", 'statefulsets.apps "nope" not found'),
])
def test_missing_objects_are_the_servers_notfound(plan, target, message):
    with pytest.raises(pf.NotFound) as e:
        resolve(plan, target, "80")
    assert str(e.value) == message


def test_a_pod_in_another_namespace_is_not_found(plan):
    with pytest.raises(pf.NotFound, match='pods "web-a" not found'):
        resolve(plan, "web-a", "80", namespace="shop")


def test_a_pod_that_is_not_running_cannot_be_forwarded_to(plan):
    with pytest.raises(LabError, match="^unable to forward port because pod is not running. Current status=Pending$"):
        resolve(plan, "pod/nowhere", "80")
    states = everyone_running(plan, **{"web-a": status("Pending", ready=False)})
    with pytest.raises(LabError, match="Current status=Pending$"):
        resolve(plan, "pod/web-a", "8080", states=states)
    states = everyone_running(plan, **{"web-a": status("Succeeded", ready=False)})
    with pytest.raises(LabError, match="Current status=Succeeded$"):
        resolve(plan, "pod/web-a", "8080", states=states)


def test_a_node_has_no_pod_to_attach_to(plan):
    with pytest.raises(LabError, match=r"cannot attach to \*v1.Node"):
        resolve(plan, "node/node1", "80")


# --- addresses -----------------------------------------------------------------------------------

def test_localhost_is_both_loopbacks_as_client_go_has_it():
    assert pf.parse_addresses(["localhost"]) == [pf.Listen("127.0.0.1", socket.AF_INET, "all"),
                                                 pf.Listen("::1", socket.AF_INET6, "all")]


def test_loopback_ips_are_taken_as_given():
    assert pf.parse_addresses(["127.0.0.2,::1", "localhost"]) == [
        pf.Listen("127.0.0.1", socket.AF_INET, "all"), pf.Listen("127.0.0.2", socket.AF_INET, "any"),
        pf.Listen("::1", socket.AF_INET6, "any")]


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.10", "10.244.0.2", "localhost,0.0.0.0"])
def test_anything_but_loopback_is_refused(address):
    with pytest.raises(InputError, match="loopback addresses only"):
        pf.parse_addresses([address])


def test_a_name_other_than_localhost_is_not_an_ip():
    with pytest.raises(InputError, match="^myhost is not a valid IP$"):
        pf.parse_addresses(["myhost"])


@pytest.mark.parametrize("text,seconds", [("1m0s", 60), ("30s", 30), ("1.5h", 5400), ("500ms", 0.5), ("0", 0)])
def test_durations_read_as_go_reads_them(text, seconds):
    assert pf.parse_duration(text) == seconds


def test_a_bad_duration_is_refused():
    with pytest.raises(InputError, match='invalid duration "soon"'):
        pf.parse_duration("soon")
