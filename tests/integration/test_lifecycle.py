"""The pod lifecycle for real: restartPolicy, init containers, native sidecars and preStop, with
real processes in a real lab, observed through `get pods`, files the containers write, and the
supervisor's own status."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from kubenet_lab.supervisor import client as supervisor
from .conftest import Lab, new_lab_name, torn_down, wait_for

CORPUS = Path(__file__).resolve().parents[1] / "corpus"

# The containers write into a directory of the test's, a hostPath volume at the same path (their
# own /tmp is theirs alone, as on a cluster).
MANIFESTS = """
apiVersion: kubenet-lab.dev/v1alpha1
kind: Cluster
allowHostPath: true
---
apiVersion: v1
kind: Pod
metadata: {name: done, labels: {app: batch}}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: [sh, -c, "echo ran >> {dir}/done"],
                volumeMounts: [{name: dir, mountPath: "{dir}"}]}]
  volumes: [{name: dir, hostPath: {path: "{dir}"}}]   # where the test reads what it wrote
---
apiVersion: v1
kind: Pod
metadata: {name: fails, labels: {app: batch}}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: [sh, -c, "echo failing; exit 3"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: flaky}
spec:
  restartPolicy: OnFailure
  containers:   # fails twice, then succeeds
  - {name: c, image: busybox, command: [sh, -c, "echo x >> {dir}/flaky; test $(wc -l < {dir}/flaky) -ge 3"],
     volumeMounts: [{name: dir, mountPath: "{dir}"}]}
  volumes: [{name: dir, hostPath: {path: "{dir}"}}]   # where the test reads what it wrote
---
apiVersion: v1
kind: Pod
metadata: {name: crashing}
spec:
  restartPolicy: OnFailure
  containers: [{name: c, image: busybox, command: [sh, -c, "exit 2"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: init, labels: {app: batch}}
spec:
  initContainers:
  - {name: first, image: busybox, command: [sh, -c, "echo first >> {dir}/init"],
     volumeMounts: [{name: dir, mountPath: "{dir}"}]}
  - name: second   # waits for a Service's name as the docs' examples do
    image: busybox
    command: [sh, -c, "until nslookup batch.default.svc.cluster.local; do sleep 1; done; echo second >> {dir}/init"]
    volumeMounts: [{name: dir, mountPath: "{dir}"}]
  containers:
  - {name: main, image: busybox, command: [sh, -c, "echo main >> {dir}/init; exec sleep 3600"],
     volumeMounts: [{name: dir, mountPath: "{dir}"}]}
  volumes: [{name: dir, hostPath: {path: "{dir}"}}]   # where the test reads what it wrote
---
apiVersion: v1
kind: Pod
metadata: {name: gated}
spec:
  initContainers:
  - {name: wait, image: busybox, command: [sh, -c, "until test -e {dir}/open; do sleep 0.2; done"],
     volumeMounts: [{name: dir, mountPath: "{dir}"}]}
  containers: [{name: main, image: nginx}]
  volumes: [{name: dir, hostPath: {path: "{dir}"}}]   # where the test reads what it wrote
---
apiVersion: v1
kind: Pod
metadata: {name: init-fails}
spec:
  restartPolicy: Never
  initContainers: [{name: setup, image: busybox, command: [sh, -c, "exit 1"]}]
  containers: [{name: main, image: busybox, command: [sh, -c, "echo never >> {dir}/init-fails"],
                volumeMounts: [{name: dir, mountPath: "{dir}"}]}]
  volumes: [{name: dir, hostPath: {path: "{dir}"}}]   # where the test reads what it wrote
---
apiVersion: v1
kind: Pod
metadata: {name: side}
spec:
  initContainers:
  - {name: proxy, image: busybox, restartPolicy: Always, command: [sh, -c, "echo proxy >> {dir}/side; exec sleep 3600"],
     volumeMounts: [{name: dir, mountPath: "{dir}"}]}
  - {name: after, image: busybox, command: [sh, -c, "until grep -q proxy {dir}/side; do sleep 0.1; done; echo after >> {dir}/side"],
     volumeMounts: [{name: dir, mountPath: "{dir}"}]}
  containers:
  - {name: main, image: busybox, command: [sh, -c, "echo main >> {dir}/side; exec sleep 3600"],
     volumeMounts: [{name: dir, mountPath: "{dir}"}]}
  volumes: [{name: dir, hostPath: {path: "{dir}"}}]   # where the test reads what it wrote
---
apiVersion: v1
kind: Pod
metadata: {name: job-side}
spec:
  restartPolicy: Never
  initContainers:
  - {name: proxy, image: busybox, restartPolicy: Always, command: [sh, -c, "echo proxy >> {dir}/job-side; exec sleep 3600"],
     volumeMounts: [{name: dir, mountPath: "{dir}"}]}
  containers:
  - {name: main, image: busybox, command: [sh, -c, "until grep -q proxy {dir}/job-side; do sleep 0.1; done"],
     volumeMounts: [{name: dir, mountPath: "{dir}"}]}
  volumes: [{name: dir, hostPath: {path: "{dir}"}}]   # where the test reads what it wrote
---
apiVersion: v1
kind: Service
metadata: {name: batch}
spec:
  selector: {app: batch}
  ports: [{port: 80}]
"""  # noqa: E501 - the manifests' shell commands on one line each


def table(lab: Lab) -> dict[str, list[str]]:
    """`get pods`: name -> [READY, STATUS, RESTARTS...]."""
    rows = lab("get", "pods").stdout.splitlines()[1:]
    return {r.split()[0]: r.split()[1:] for r in rows}


def row(lab: Lab, pod: str) -> list[str]:
    return table(lab).get(pod, [])


def supervised(lab: Lab, pod: str) -> dict:
    return supervisor.request(lab.name, {"op": "status"})["pods"][f"default/{pod}"]


def alive(pid) -> bool:
    return bool(pid) and os.path.exists(f"/proc/{pid}")


@pytest.fixture(scope="module")
def lab(host_before, tmp_path_factory):
    work = tmp_path_factory.mktemp("lifecycle")
    (work / "lab.yaml").write_text(MANIFESTS.replace("{dir}", str(work)))
    lab = Lab(new_lab_name("lc"))
    lab.dir = work
    with torn_down(lab.name):
        out = lab("up", str(work / "lab.yaml"), str(CORPUS / "workloads/init-containers.yaml"))
        lab.warnings = out.stderr
        yield lab


def test_restart_policy_never_a_pod_that_completes(lab):
    assert wait_for(lambda: row(lab, "done")[:3] == ["0/1", "Completed", "0"], "done to complete", timeout=60)
    pod = lab.pods()["done"]
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    # an ended pod is no endpoint at all (not even a not-ready one); the running one is
    wait_for(lambda: {a["targetRef"]["name"] for s in json.loads(lab("get", "ep", "batch", "-o", "json").stdout)
                      ["subsets"] for key in ("addresses", "notReadyAddresses") for a in s.get(key, [])} == {"init"},
             "the endpoints to follow", timeout=60)
    # `up` again: it is not run again
    lab("up", str(lab.dir / "lab.yaml"), str(CORPUS / "workloads/init-containers.yaml"))
    assert row(lab, "done")[:2] == ["0/1", "Completed"]
    assert (lab.dir / "done").read_text() == "ran\n"


def test_restart_policy_never_a_pod_that_fails(lab):
    assert wait_for(lambda: row(lab, "fails")[:3] == ["0/1", "Error", "0"], "fails to fail", timeout=60)
    pod = lab.pods()["fails"]
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"] == {
        "exitCode": 3, "reason": "Error", **{k: pod["status"]["containerStatuses"][0]["state"]["terminated"][k]
                                             for k in ("startedAt", "finishedAt")}}
    assert lab("logs", "fails").stdout == "failing\n"


def test_restart_policy_on_failure_restarts_after_failures_only(lab):
    # two failures, two restarts with backoff, then exit 0: Succeeded, the restarts counted
    done = wait_for(lambda: (r := row(lab, "flaky"))[1:2] == ["Completed"] and r, "flaky to complete", timeout=60)
    assert done[0] == "0/1" and re.fullmatch(r"2 \(\d+s ago\)", " ".join(done[2:5])), done
    assert lab.pods()["flaky"]["status"]["phase"] == "Succeeded"
    assert (lab.dir / "flaky").read_text() == "x\nx\nx\n"
    # always failing: restarted over and over, the pod Running, CrashLoopBackOff shown
    wait_for(lambda: (r := row(lab, "crashing"))[1] == "CrashLoopBackOff" and int(r[2]) >= 1,
             "crashing to be restarted", timeout=60)
    assert lab.pods()["crashing"]["status"]["phase"] == "Running"


def test_init_containers_run_one_after_another_before_the_containers(lab):
    assert wait_for(lambda: row(lab, "init")[:2] == ["1/1", "Running"], "init to run", timeout=60)
    assert (lab.dir / "init").read_text() == "first\nsecond\nmain\n"
    assert "Name:\tbatch.default.svc.cluster.local" in lab("logs", "init", "-c", "second").stdout
    statuses = lab.pods()["init"]["status"]["initContainerStatuses"]
    assert [(s["name"], s["state"]["terminated"]["reason"]) for s in statuses] == [("first", "Completed"),
                                                                                   ("second", "Completed")]
    # an init container that waits keeps the pod initializing, its container not started
    assert row(lab, "gated")[:2] == ["0/1", "Init:0/1"]
    assert lab.pods()["gated"]["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    (lab.dir / "open").touch()
    assert wait_for(lambda: row(lab, "gated")[:2] == ["1/1", "Running"], "gated to run", timeout=60)
    # with restartPolicy Never a failed init container fails the pod; its container never runs
    assert wait_for(lambda: row(lab, "init-fails")[:2] == ["0/1", "Init:Error"], "init-fails to fail", timeout=60)
    assert lab.pods()["init-fails"]["status"]["phase"] == "Failed"
    assert not (lab.dir / "init-fails").exists()


def test_the_corpus_init_container_runs_for_real(lab):
    """init-containers.yaml: wget of a page outside; the lab has no way out, so it fails and is
    retried (restartPolicy Always) while nginx waits, as on a cluster without Internet access."""
    assert "initContainers" not in lab.warnings
    ready, status = row(lab, "init-demo")[:2]
    assert ready == "0/1" and status.startswith("Init:"), status
    nginx = lab.pods()["init-demo"]["status"]["containerStatuses"][0]
    assert nginx["state"] == {"waiting": {"reason": "PodInitializing"}}
    install = lab.pods()["init-demo"]["status"]["initContainerStatuses"][0]
    assert install["name"] == "install" and "terminated" not in install["state"]


def test_a_native_sidecar_starts_first_and_keeps_running_beside_the_container(lab):
    assert wait_for(lambda: row(lab, "side")[:2] == ["2/2", "Running"], "side to run", timeout=60)
    assert (lab.dir / "side").read_text() == "proxy\nafter\nmain\n"
    st = supervised(lab, "side")
    proxy, main = st["initContainers"]["proxy"]["pid"], st["containers"]["main"]["pid"]
    assert alive(proxy) and alive(main)
    # the sidecar ends (its PID 1 told to stop, as `kubectl exec -c proxy -- kill 1` does; the exec
    # ends with it, killed with the container's PID namespace): it is restarted, the container untouched
    lab("exec", "side", "-c", "proxy", "--", "kill", "1", check=False)
    st = wait_for(lambda: (s := supervised(lab, "side"))["initContainers"]["proxy"]["restarts"] == 1
                  and s["initContainers"]["proxy"]["state"] == "running" and s, "the sidecar back", timeout=60)
    assert st["containers"]["main"]["pid"] == main and alive(main)
    assert wait_for(lambda: row(lab, "side")[:3] == ["2/2", "Running", "1"], "the restart counted", timeout=30)

    # restartPolicy Never: once its container is done, the sidecar is stopped and the pod Succeeded
    assert wait_for(lambda: row(lab, "job-side")[:2] == ["0/2", "Completed"], "job-side to complete", timeout=60)
    pod = lab.pods()["job-side"]
    assert pod["status"]["phase"] == "Succeeded"
    assert "terminated" in pod["status"]["initContainerStatuses"][0]["state"]
    assert supervised(lab, "job-side")["initContainers"]["proxy"]["pid"] is None


GRACE = """
apiVersion: kubenet-lab.dev/v1alpha1
kind: Cluster
allowHostPath: true
---
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'trap "echo term >> {dir}/graceful; exit 0" TERM; echo started >> {dir}/graceful; while :; do sleep 0.1; done']
    lifecycle: {preStop: {exec: {command: [sh, -c, "echo prestop >> {dir}/graceful"]}}}
    volumeMounts: [{name: dir, mountPath: "{dir}"}]
  volumes: [{name: dir, hostPath: {path: "{dir}"}}]   # where the test reads what it wrote
---
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'trap "echo ignored >> {dir}/stubborn" TERM; echo started >> {dir}/stubborn; while :; do sleep 0.1; done']
    lifecycle: {preStop: {sleep: {seconds: 5}}}
    volumeMounts: [{name: dir, mountPath: "{dir}"}]
  volumes: [{name: dir, hostPath: {path: "{dir}"}}]   # where the test reads what it wrote
---
apiVersion: v1
kind: Pod
metadata: {name: stays}
spec:
  containers: [{name: main, image: nginx}]
"""  # noqa: E501 - the manifests' shell commands on one line each


def test_a_removed_pod_runs_its_pre_stop_hook_then_gets_sigterm(tmp_path, host_before):
    (tmp_path / "all.yaml").write_text(GRACE.replace("{dir}", str(tmp_path)))
    cluster, *_, stays = GRACE.split("---")
    (tmp_path / "less.yaml").write_text(f"{cluster}---{stays}")
    lab = Lab(new_lab_name("lc"))
    with torn_down(lab.name):
        lab("up", str(tmp_path / "all.yaml"))
        wait_for(lambda: (tmp_path / "graceful").exists() and (tmp_path / "stubborn").exists(), "both to start")
        pids = {p: supervised(lab, p)["containers"]["main"]["pid"] for p in ("graceful", "stubborn")}
        assert all(alive(pid) for pid in pids.values())
        out = lab("up", str(tmp_path / "less.yaml")).stdout
        assert "2 removed" in out
        # the hook ran in the pod before SIGTERM, which the process handled
        assert (tmp_path / "graceful").read_text() == "started\nprestop\nterm\n"
        # a hook longer than the grace period is cut short; SIGTERM ignored: SIGKILL after the grace
        assert (tmp_path / "stubborn").read_text().startswith("started\n")
        assert not any(alive(pid) for pid in pids.values())
        assert sorted(table(lab)) == ["stays"]
