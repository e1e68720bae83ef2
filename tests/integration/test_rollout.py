"""Rollouts of a running Deployment, as the deployment controller makes them: a changed template
(apply, rollout restart, rollout undo) makes a new ReplicaSet that replaces the pods step by step
within maxSurge/maxUnavailable, gated by readiness; `rollout status` reports as kubectl; a client
looping through the Service sees no failed request; Recreate removes the old pods first."""
from __future__ import annotations

import json
import textwrap

import pytest

from .conftest import Lab, looping_client, new_lab_name, torn_down, wait_for

WEB = textwrap.dedent("""
    apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: web}}
    spec:
      replicas: 3
      strategy: {strategy}
      selector: {{matchLabels: {{app: web}}}}
      template:
        metadata: {{labels: {{app: web}}}}
        spec:
          terminationGracePeriodSeconds: 5
          containers:
          - name: netexec
            image: registry.k8s.io/e2e-test-images/agnhost:{tag}
            args: ["netexec", "--http-port=8080"]
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: web}}
    spec:
      selector: {{app: web}}
      ports: [{{port: 80, targetPort: 8080}}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: client}}
    spec:
      containers: [{{name: c, image: busybox, command: [sleep, infinity]}}]
    """)
ROLLING = "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}"


def manifest(tmp_path, tag: str, strategy: str = ROLLING):
    path = tmp_path / f"web-{tag}.yaml"
    path.write_text(WEB.format(tag=tag, strategy=strategy))
    return str(path)


@pytest.fixture
def lab(host_before):
    lab = Lab(new_lab_name("ro"))
    with torn_down(lab.name):
        yield lab


def replica_sets(lab: Lab) -> dict[str, tuple[int, str]]:
    items = json.loads(lab("get", "rs", "-o", "json").stdout)["items"]
    return {i["metadata"]["name"]: (i["spec"]["replicas"],
                                    i["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
            for i in items}


def scaling(lab: Lab) -> list[str]:
    out = lab("get", "events", "-o", "jsonpath={range .items[*]}{.reason}|{.message}{\"\\n\"}{end}").stdout
    return [l.split("|", 1)[1] for l in out.splitlines() if l.startswith("ScalingReplicaSet|")]


def test_a_new_template_rolls_out_within_max_surge_with_no_failed_request(lab, tmp_path):
    lab("up", manifest(tmp_path, "2.53"))
    wait_for(lambda: lab("rollout", "status", "deployment/web", "--watch=false").stdout.strip()
             == 'deployment "web" successfully rolled out', "the first rollout")
    (old,) = replica_sets(lab)
    with looping_client(lab, "client", "http://web/hostname", 10) as result:
        assert lab("apply", "-f", manifest(tmp_path, "2.52")).stdout.splitlines()[0] == "deployment.apps/web configured"
        status = lab("rollout", "status", "deployment/web", "--timeout", "120s", timeout=180).stdout.splitlines()
    ok, bad, output = result
    assert status[-1] == 'deployment "web" successfully rolled out'
    assert all(l.startswith('Waiting for deployment "web" rollout to finish: ') for l in status[:-1])
    sets = replica_sets(lab)
    (new,) = set(sets) - {old}
    assert sets == {old: (0, "1"), new: (3, "2")}
    steps = scaling(lab)
    assert steps[0] == f"Scaled up replica set {old} to 3 from 0"
    # maxSurge 1, maxUnavailable 0: up by one, then down by one, ... never more than 4 pods
    expected = []
    for n in range(1, 4):
        expected += [f"Scaled up replica set {new} to {n} from {n - 1}",
                     f"Scaled down replica set {old} to {3 - n} from {4 - n}"]
    assert steps[1:] == expected
    assert bad == 0 and ok > 20, output
    hosts = {lab.exec("client", "wget", "-qO-", "-T", "5", "http://web/hostname").stdout for _ in range(20)}
    assert all(h.startswith(f"{new}-") for h in hosts)


def test_undo_goes_back_to_the_previous_template_and_history_lists_revisions(lab, tmp_path):
    lab("up", manifest(tmp_path, "2.53"))
    lab("apply", "-f", manifest(tmp_path, "2.52"))
    lab("rollout", "status", "deploy/web", "--timeout", "120s", timeout=180)
    assert lab("rollout", "undo", "deployment", "web").stdout == "deployment.apps/web rolled back\n"
    lab("rollout", "status", "deploy/web", "--timeout", "120s", timeout=180)
    image = lab("get", "deploy", "web", "-o", "wide").stdout.split()[-2]
    assert image.endswith("agnhost:2.53")
    assert lab("rollout", "history", "deployment/web").stdout.split("\n")[1:4] == [
        "REVISION   CHANGE-CAUSE", "2          <none>", "3          <none>"]
    out = lab("rollout", "undo", "deployment/web", "--to-revision=7", check=False)
    assert out.returncode == 1 and "unable to find specified revision 7 in history" in out.stderr


def test_restart_replaces_every_pod(lab, tmp_path):
    lab("up", manifest(tmp_path, "2.53"))
    before = {n for n in json_names(lab) if n.startswith("web-")}
    assert lab("rollout", "restart", "deployment/web").stdout == "deployment.apps/web restarted\n"
    lab("rollout", "status", "deploy/web", "--timeout", "120s", timeout=180)
    wait_for(lambda: len([n for n in json_names(lab) if n.startswith("web-")]) == 3, "three web pods")
    after = {n for n in json_names(lab) if n.startswith("web-")}
    assert not before & after


def test_recreate_removes_the_old_pods_before_making_new_ones(lab, tmp_path):
    lab("up", manifest(tmp_path, "2.53", strategy="{type: Recreate}"))
    (old,) = replica_sets(lab)
    lab("apply", "-f", manifest(tmp_path, "2.52", strategy="{type: Recreate}"))
    lab("rollout", "status", "deploy/web", "--timeout", "120s", timeout=180)
    (new,) = set(replica_sets(lab)) - {old}
    assert scaling(lab)[1:] == [f"Scaled down replica set {old} to 0 from 3",
                                f"Scaled up replica set {new} to 3 from 0"]


def json_names(lab: Lab) -> list[str]:
    return [i["metadata"]["name"] for i in json.loads(lab("get", "pods", "-o", "json").stdout)["items"]]
