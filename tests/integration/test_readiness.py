"""Readiness, for real: a pod is an endpoint only while all its containers run. The supervisor
notices a container that stops running and has every node's rules (and the cluster DNS) leave
the pod out, and takes it back when it runs again."""
from __future__ import annotations

import json

from .conftest import Lab, lab_namespaces, new_lab_name, torn_down, wait_for

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
# The sidecar looks for a marker file the test makes in its directory: a hostPath volume at the
# same path (the container's own /tmp is its alone, and fresh at each start, as on a cluster).
MANIFESTS = f"""
apiVersion: kubenet-lab.dev/v1alpha1
kind: Cluster
allowHostPath: true
---
apiVersion: v1
kind: Pod
metadata: {{name: steady, labels: {{app: mix}}}}
spec:
  nodeName: node1
  containers:
  - {{name: web, image: "{AGNHOST}", args: [netexec, --http-port=8080, --udp-port=8081]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: flaky, labels: {{app: mix}}}}
spec:
  nodeName: node2
  containers:
  - {{name: web, image: "{AGNHOST}", args: [netexec, --http-port=8080, --udp-port=8081]}}
  - name: sidecar          # runs only once the marker file exists: until then the pod is not ready
    image: busybox
    command: [sh, -c, "test -e $(MARKER) || exit 1; exec sleep 3600"]
    env: [{{name: MARKER, value: "{{marker}}"}}]
    volumeMounts: [{{name: dir, mountPath: "{{dir}}"}}]
  volumes: [{{name: dir, hostPath: {{path: "{{dir}}"}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: mix}}
spec:
  selector: {{app: mix}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: mix-headless}}
spec:
  clusterIP: None
  selector: {{app: mix}}
  ports: [{{port: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: mix-published}}
spec:
  clusterIP: None
  publishNotReadyAddresses: true   # a StatefulSet's peers find each other before they are ready
  selector: {{app: mix}}
  ports: [{{port: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: mix-portless}}  # a StatefulSet's governing Service as people write it: no ports
spec:
  clusterIP: None
  selector: {{app: mix}}
"""


def endpoints(lab: Lab, service: str = "mix") -> tuple[set[str], set[str]]:
    """(ready, not ready) pod names of a service."""
    ep = json.loads(lab("get", "ep", service, "-o", "json").stdout)
    names = lambda key: {a["targetRef"]["name"] for s in ep["subsets"] for a in s.get(key, [])}  # noqa: E731
    return names("addresses"), names("notReadyAddresses")


def hostnames(lab: Lab, n: int = 20) -> set[str]:
    cip = json.loads(lab("get", "svc", "mix", "-o", "json").stdout)["spec"]["clusterIP"]
    script = f"for i in $(seq {n}); do curl -s --max-time 5 http://{cip}/hostname; echo; done"
    return set(lab("exec", "steady", "--", "sh", "-c", script).stdout.split())


def test_a_pod_leaves_the_endpoints_while_a_container_of_it_is_not_running(tmp_path):
    marker = tmp_path / "sidecar-may-run"
    (tmp_path / "lab.yaml").write_text(MANIFESTS.replace("{marker}", str(marker)).replace("{dir}", str(tmp_path)))
    lab = Lab(new_lab_name("r"))
    with torn_down(lab.name):
        lab("up", str(tmp_path / "lab.yaml"))
        # The sidecar exits: the supervisor finds flaky not ready, and the rules leave it out.
        assert wait_for(lambda: endpoints(lab) == ({"steady"}, {"flaky"}), "flaky to be not ready", timeout=20)
        assert hostnames(lab) == {"steady"}
        def ready_columns() -> dict[str, str]:
            return {line.split()[0]: line.split()[1] for line in lab("get", "pods").stdout.splitlines()[1:]}
        # the crash-looping sidecar runs for a moment at each restart (ready then, as a container
        # without a readiness probe is): READY says 1/2 in between
        assert wait_for(lambda: (cols := ready_columns())["flaky"] == "1/2" and cols, "flaky 1/2")["steady"] == "1/1"
        nat = lab("exec", "node/node1", "--", "iptables-save", "-t", "nat").stdout
        assert lab.ip("steady") in nat and lab.ip("flaky") not in nat
        dns = lab("exec", "steady", "--", "dig", "+short", "mix-headless.default.svc.cluster.local").stdout
        assert dns.split() == [lab.ip("steady")]
        # without ports the same: readiness is the pod's, not a port's
        assert endpoints(lab, "mix-portless") == ({"steady"}, {"flaky"})
        assert lab("get", "ep", "mix-portless").stdout.splitlines()[1].split()[:2] == ["mix-portless", lab.ip("steady")]
        dns = lab("exec", "steady", "--", "dig", "+short", "mix-portless.default.svc.cluster.local").stdout
        assert dns.split() == [lab.ip("steady")]
        # publishNotReadyAddresses: flaky is published all the same, to the DNS as well
        assert endpoints(lab, "mix-published") == ({"steady", "flaky"}, set())
        dns = lab("exec", "steady", "--", "dig", "+short", "mix-published.default.svc.cluster.local").stdout
        assert set(dns.split()) == {lab.ip("steady"), lab.ip("flaky")}

        # Once it may run, its next restart makes the pod ready: back in the rules and the DNS.
        marker.touch()
        assert wait_for(lambda: endpoints(lab) == ({"steady", "flaky"}, set()), "flaky to be ready", timeout=40)
        assert wait_for(lambda: hostnames(lab) == {"steady", "flaky"}, "both to answer", timeout=20)
        dns = lab("exec", "steady", "--", "dig", "+short", "mix-headless.default.svc.cluster.local").stdout
        assert set(dns.split()) == {lab.ip("steady"), lab.ip("flaky")}
        dns = lab("exec", "steady", "--", "dig", "+short", "mix-portless.default.svc.cluster.local").stdout
        assert set(dns.split()) == {lab.ip("steady"), lab.ip("flaky")}

        # `up` again keeps what the supervisor found, and changes nothing.
        assert "0 namespaces created, 0 removed" in lab("up", str(tmp_path / "lab.yaml")).stdout
        assert endpoints(lab) == ({"steady", "flaky"}, set())
    assert lab_namespaces(lab.name) == []
