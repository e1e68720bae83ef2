"""Probes, for real: the supervisor runs readiness, liveness and startup probes as kubelet runs
them (httpGet and tcpSocket from inside the pod's network namespace, exec as a process of the
pod). A failing readiness probe takes the pod out of the endpoints (notReadyAddresses) and
every node's rules, a failing liveness probe restarts the container (RESTARTS), a startup probe
holds the others back; the kubelet's events say so in its words."""
from __future__ import annotations

import json

import pytest

from .conftest import Lab, new_lab_name, torn_down, wait_for

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
# The exec probes look for a marker file the test makes in its directory: a hostPath volume at
# the same path (the container's own /tmp is its alone, as on a cluster).
MANIFESTS = f"""
apiVersion: kubenet-lab.dev/v1alpha1
kind: Cluster
allowHostPath: true
---
apiVersion: v1
kind: Pod
metadata: {{name: steady, labels: {{app: web}}}}
spec:
  nodeName: node1
  containers:
  - name: web
    image: "{AGNHOST}"
    args: [netexec, --http-port=8080, --delay-shutdown=1]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe: {{httpGet: {{path: /readyz, port: http}}, periodSeconds: 1}}
    livenessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: toggle, labels: {{app: web}}}}
spec:
  nodeName: node2
  containers:
  - {{name: web, image: "{AGNHOST}", args: [netexec, --http-port=8080]}}
  - name: gate                    # ready while the marker file exists
    image: busybox
    command: [sleep, "3600"]
    readinessProbe: {{exec: {{command: [cat, "{{dir}}/ready"]}}, periodSeconds: 1, failureThreshold: 2}}
    volumeMounts: [{{name: dir, mountPath: "{{dir}}"}}]
  volumes: [{{name: dir, hostPath: {{path: "{{dir}}"}}}}]   # the test's directory, where it puts the marker
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: node1
  containers: [{{name: c, image: busybox, command: [sleep, "3600"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  nodeName: node1
  containers:
  - name: c                       # alive while the marker file exists
    image: busybox
    command: [sleep, "3600"]
    livenessProbe: {{exec: {{command: [cat, "{{dir}}/alive"]}}, periodSeconds: 1, failureThreshold: 2}}
    volumeMounts: [{{name: dir, mountPath: "{{dir}}"}}]
  volumes: [{{name: dir, hostPath: {{path: "{{dir}}"}}}}]   # the test's directory, where it puts the marker
---
apiVersion: v1
kind: Pod
metadata: {{name: refused}}
spec:
  nodeName: node2
  restartPolicy: Never            # killed once, not restarted
  containers:
  - name: web
    image: "{AGNHOST}"
    args: [netexec, --http-port=8080]
    livenessProbe: {{tcpSocket: {{port: 9999}}, periodSeconds: 1, failureThreshold: 2}}
---
apiVersion: v1
kind: Pod
metadata: {{name: slow}}
spec:
  nodeName: node1
  containers:
  - name: c                       # started once the marker file exists
    image: busybox
    command: [sleep, "3600"]
    startupProbe: {{exec: {{command: [cat, "{{dir}}/started"]}}, periodSeconds: 1, failureThreshold: 600}}
    readinessProbe: {{exec: {{command: ["true"]}}, periodSeconds: 1}}
    livenessProbe: {{exec: {{command: ["false"]}}, periodSeconds: 1, failureThreshold: 1}}
    volumeMounts: [{{name: dir, mountPath: "{{dir}}"}}]
  volumes: [{{name: dir, hostPath: {{path: "{{dir}}"}}}}]   # the test's directory, where it puts the marker
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
"""


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probes")
    (tmp / "lab.yaml").write_text(MANIFESTS.replace("{dir}", str(tmp)))
    lab = Lab(new_lab_name("p"))
    with torn_down(lab.name):
        lab("up", str(tmp / "lab.yaml"))
        yield lab, tmp


def endpoints(lab: Lab, service: str = "web") -> tuple[set[str], set[str]]:
    """(ready, not ready) pod names of a service, from `get ep -o yaml`'s JSON twin."""
    ep = json.loads(lab("get", "ep", service, "-o", "json").stdout)
    names = lambda key: {a["targetRef"]["name"] for s in ep["subsets"] for a in s.get(key, [])}  # noqa: E731
    return names("addresses"), names("notReadyAddresses")


def hostnames(lab: Lab, n: int = 20) -> set[str]:
    cip = json.loads(lab("get", "svc", "web", "-o", "json").stdout)["spec"]["clusterIP"]
    script = f"for i in $(seq {n}); do curl -s --max-time 5 http://{cip}/hostname; echo; done"
    return set(lab("exec", "client", "--", "sh", "-c", script).stdout.split())


def row(lab: Lab, pod: str) -> list[str]:
    """NAME READY STATUS RESTARTS... of `get pods`."""
    return next(line.split() for line in lab("get", "pods").stdout.splitlines()[1:] if line.split()[0] == pod)


def events(lab: Lab) -> list[tuple[str, str, str, str]]:
    """(type, reason, pod, message) of every event about a pod."""
    items = json.loads(lab("get", "events", "-o", "json").stdout)["items"]
    return [(e["type"], e["reason"], e["involvedObject"]["name"], e["message"]) for e in items
            if e["involvedObject"]["kind"] == "Pod"]


def test_a_failing_readiness_probe_takes_the_pod_out_and_a_passing_one_back(probed):
    lab, tmp = probed
    assert wait_for(lambda: endpoints(lab) == ({"steady"}, {"toggle"}), "toggle to be not ready", timeout=30)
    assert row(lab, "toggle")[1:4] == ["1/2", "Running", "0"]
    assert row(lab, "steady")[1:4] == ["1/1", "Running", "0"]
    yaml = lab("get", "ep", "web", "-o", "yaml").stdout
    assert "notReadyAddresses:" in yaml and lab.ip("toggle") in yaml.split("notReadyAddresses:")[1]
    assert hostnames(lab) == {"steady"}
    nat = lab("exec", "node/node1", "--", "iptables-save", "-t", "nat").stdout
    assert lab.ip("steady") in nat and lab.ip("toggle") not in nat
    status = {c["name"]: c for c in lab.pods()["toggle"]["status"]["containerStatuses"]}
    assert (status["gate"]["ready"], status["gate"]["started"], status["web"]["ready"]) == (False, True, True)
    want = ("Warning", "Unhealthy", "toggle",
            f"Readiness probe failed: cat: {tmp}/ready: No such file or directory\n")
    assert want in events(lab)

    (tmp / "ready").touch()
    assert wait_for(lambda: endpoints(lab) == ({"steady", "toggle"}, set()), "toggle to be ready", timeout=30)
    assert row(lab, "toggle")[1:3] == ["2/2", "Running"]
    assert wait_for(lambda: hostnames(lab) == {"steady", "toggle"}, "both to answer", timeout=20)

    (tmp / "ready").unlink()  # failureThreshold 2: out again, the container keeps running
    assert wait_for(lambda: endpoints(lab) == ({"steady"}, {"toggle"}), "toggle out again", timeout=30)
    assert row(lab, "toggle")[3] == "0"


def test_a_failing_liveness_probe_restarts_the_container(probed):
    lab, tmp = probed
    assert wait_for(lambda: row(lab, "live")[3] != "0", "live to be restarted", timeout=30)
    said = events(lab)
    assert ("Warning", "Unhealthy", "live", f"Liveness probe failed: cat: {tmp}/alive: No such file or directory\n") \
        in said
    assert ("Normal", "Killing", "live", "Container c failed liveness probe, will be restarted") in said
    assert ("Normal", "Started", "live", "Started container c") in said
    (tmp / "alive").touch()
    assert wait_for(lambda: row(lab, "live")[1:3] == ["1/1", "Running"], "live to run", timeout=30)
    status = lab.pods()["live"]["status"]["containerStatuses"][0]
    assert status["restartCount"] >= 1 and status["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM


def test_a_liveness_probe_to_a_closed_port_kills_and_restart_policy_never_keeps_it_dead(probed):
    lab, _ = probed
    assert wait_for(lambda: row(lab, "refused")[2] in ("Completed", "Error"), "refused to be killed", timeout=30)
    ip = lab.ip("refused")
    said = events(lab)
    refused = f"Liveness probe failed: dial tcp {ip}:9999: connect: connection refused"
    assert ("Warning", "Unhealthy", "refused", refused) in said
    assert ("Normal", "Killing", "refused", "Container web failed liveness probe") in said
    assert row(lab, "refused")[1] == "0/1" and row(lab, "refused")[3] == "0"


def test_a_startup_probe_holds_the_other_probes_back(probed):
    lab, tmp = probed
    # not started: its readiness probe (true) and liveness probe (false) do not run yet
    assert wait_for(lambda: any(e[1:3] == ("Unhealthy", "slow") for e in events(lab)), "a startup failure", timeout=30)
    assert row(lab, "slow")[1:4] == ["0/1", "Running", "0"]
    status = lab.pods()["slow"]["status"]["containerStatuses"][0]
    assert (status["started"], status["ready"]) == (False, False)
    assert not any(e[3].startswith("Liveness") for e in events(lab) if e[2] == "slow")
    (tmp / "started").touch()
    # started: readiness passes, and the liveness probe (false) now runs and restarts it
    assert wait_for(lambda: any(e[1:4] == ("Killing", "slow", "Container c failed liveness probe, will be restarted")
                                for e in events(lab)), "the liveness probe to run once started", timeout=30)
    assert ("Warning", "Unhealthy", "slow", "Liveness probe failed: ") in events(lab)


def test_agnhost_netexec_is_probed_on_readyz_and_healthz(probed):
    lab, _ = probed
    assert row(lab, "steady")[1:4] == ["1/1", "Running", "0"]
    ip = lab.ip("steady")
    assert lab.exec("client", "curl", "-s", f"http://{ip}:8080/readyz").stdout == "ok"
    log = lab("logs", "steady").stdout
    assert "GET /readyz" in log and "GET /healthz" in log
    assert not any(e[1] == "Unhealthy" for e in events(lab) if e[2] == "steady")
