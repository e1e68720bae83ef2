"""A StatefulSet's pods start in order (podManagementPolicy OrderedReady, the default): db-1 is
created only once db-0 is Running and Ready, and until then it does not exist: not listed, no
endpoint, no DNS record, no rule. Parallel starts them together. Real processes, a real lab; the
order is read from files the processes write."""
from __future__ import annotations

import json
import re

import pytest

from kubenet_lab.supervisor import client as supervisor
from .conftest import Lab, new_lab_name, torn_down, wait_for

# db-0's init container waits for a file the test makes, so db-0 is not ready until then; every
# pod's container records when it started and whether db-0 had finished initializing by then. The
# files are in the test's directory, a hostPath volume at the same path in each pod (a container's
# own /tmp is its alone, as on a cluster).
MANIFESTS = """
apiVersion: kubenet-lab.dev/v1alpha1
kind: Cluster
allowHostPath: true
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: tcp, port: 5000}]
---
apiVersion: v1
kind: Service
metadata: {name: db-rw}
spec:
  selector: {app: db}
  ports: [{port: 5000}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      initContainers:
      - name: wait
        image: busybox
        command: [sh, -c, 'if [ "$HOSTNAME" = db-0 ]; then until [ -e {dir}/open ]; do sleep 0.1; done;
                           date +%s%N > {dir}/db-0-initialized; fi']
        volumeMounts: [{name: dir, mountPath: "{dir}"}]
      containers:
      - name: main
        image: busybox
        command: [sh, -c, 'date +%s%N > {dir}/$HOSTNAME-started;
                           if [ -e {dir}/db-0-initialized ]; then touch {dir}/$HOSTNAME-after-db-0; fi;
                           exec sleep 1000']
        volumeMounts: [{name: dir, mountPath: "{dir}"}]
      volumes: [{name: dir, hostPath: {path: "{dir}"}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: par}
spec:
  serviceName: par
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: par}}
  template:
    metadata: {labels: {app: par}}
    spec:
      initContainers:
      - name: wait
        image: busybox
        command: [sh, -c, 'if [ "$HOSTNAME" = par-0 ]; then until [ -e {dir}/par-open ]; do sleep 0.1; done; fi']
        volumeMounts: [{name: dir, mountPath: "{dir}"}]
      containers: [{name: main, image: busybox, command: [sleep, "1000"]}]
      volumes: [{name: dir, hostPath: {path: "{dir}"}}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: main, image: busybox, command: [sleep, "1000"]}]
"""


def table(lab: Lab) -> dict[str, list[str]]:
    """`get pods`: name -> [READY, STATUS, RESTARTS...]."""
    return {r.split()[0]: r.split()[1:] for r in lab("get", "pods").stdout.splitlines()[1:]}


def endpoint_pods(lab: Lab, svc: str) -> set[str]:
    subsets = json.loads(lab("get", "ep", svc, "-o", "json").stdout).get("subsets") or []
    return {a["targetRef"]["name"] for s in subsets for key in ("addresses", "notReadyAddresses")
            for a in s.get(key, [])}


def resolves(lab: Lab, name: str) -> list[str]:
    return lab.exec("client", "getent", "hosts", name, check=False).stdout.split()[:1]


def node_rules(lab: Lab) -> str:
    return "".join(lab.exec(f"node/{n}", "iptables-save").stdout for n in ("node1", "node2"))


def mentions(rules: str, ip: str) -> bool:
    return re.search(rf"(?<![\d.]){re.escape(ip)}(?![\d])", rules) is not None


@pytest.fixture
def lab(host_before, tmp_path):
    (tmp_path / "lab.yaml").write_text(MANIFESTS.replace("{dir}", str(tmp_path)))
    lab = Lab(new_lab_name("sts"))
    lab.dir = tmp_path
    with torn_down(lab.name):
        lab.up = lab("up", str(tmp_path / "lab.yaml"))
        yield lab


def test_ordered_ready_creates_the_next_pod_once_the_one_before_is_ready(lab):
    assert "start together" not in lab.up.stderr  # no longer a warning: it is modelled
    # db-0 initializing (not ready): db-1 does not exist yet
    assert wait_for(lambda: table(lab).get("db-0", [])[:2] == ["0/1", "Init:0/1"], "db-0 to initialize")
    assert "db-1" not in table(lab)
    assert lab("get", "pods", "db-1", check=False).returncode != 0
    assert lab("get", "sts", "db").stdout.split()[-2] == "0/2"
    status = supervisor.request(lab.name, {"op": "status"})["pods"]
    assert status["default/db-1"]["created"] is False and status["default/db-0"]["created"] is True
    assert status["default/db-1"]["containers"]["main"]["state"] == "waiting"
    assert not (lab.dir / "db-1-started").exists()
    # no endpoint, no DNS name, no rule for it (db-0 is a not-ready endpoint meanwhile)
    assert endpoint_pods(lab, "db-rw") == {"db-0"} and endpoint_pods(lab, "db") == {"db-0"}
    assert resolves(lab, "db-1.db") == []
    rules_meanwhile = node_rules(lab)
    # `up` again changes nothing of that
    lab("up", str(lab.dir / "lab.yaml"))
    assert "db-1" not in table(lab) and endpoint_pods(lab, "db-rw") == {"db-0"}
    assert supervisor.request(lab.name, {"op": "status"})["pods"]["default/db-1"]["created"] is False

    # Parallel: par-1 runs while par-0 is still initializing
    assert wait_for(lambda: table(lab).get("par-1", [])[:2] == ["1/1", "Running"], "par-1 to run")
    assert table(lab)["par-0"][:2] == ["0/1", "Init:0/1"]

    (lab.dir / "open").touch()  # db-0 initializes, its container runs: Running and Ready
    assert wait_for(lambda: table(lab).get("db-1", [])[:2] == ["1/1", "Running"], "db-1 to run", timeout=60)
    assert table(lab)["db-0"][:2] == ["1/1", "Running"]
    # db-1's container started after db-0 had initialized (and so after db-0 became ready)
    assert (lab.dir / "db-1-after-db-0").exists()
    assert int((lab.dir / "db-1-started").read_text()) > int((lab.dir / "db-0-initialized").read_text())
    db1 = lab.pods()["db-1"]["status"]["podIP"]
    assert not mentions(rules_meanwhile, db1)
    # now an endpoint, with its DNS name, and counted
    assert wait_for(lambda: endpoint_pods(lab, "db-rw") == {"db-0", "db-1"}, "db-1 to be an endpoint", timeout=60)
    assert wait_for(lambda: resolves(lab, "db-1.db") == [db1], "db-1.db to resolve", timeout=60)
    assert wait_for(lambda: f"{db1}:5000" in node_rules(lab), "db-1 in the rules", timeout=60)
    assert wait_for(lambda: lab("get", "sts", "db").stdout.split()[-2] == "2/2", "db to be 2/2", timeout=60)
    (lab.dir / "par-open").touch()
