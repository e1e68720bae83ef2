"""The Deployment controller's rollout steps (plan/rollout.py) against its documented behaviour:
RollingUpdate never goes above replicas + maxSurge nor below replicas - maxUnavailable ready pods,
waits for new pods to be ready, removes unready old pods first; Recreate removes the old pods
before it makes new ones; percentages round as intstr does (surge up, unavailable down)."""
from __future__ import annotations

import pytest

from kubenet_lab.model.objects import LabelSelector, PodSpec, Workload
from kubenet_lab.plan.rollout import ReplicaSetState as RS
from kubenet_lab.plan.rollout import resolve, step, surge_and_unavailable


def deploy(replicas: int, surge: int | str = "25%", unavailable: int | str = "25%", strategy: str = "RollingUpdate"):
    return Workload("Deployment", "default", "web", replicas, LabelSelector({"app": "web"}), {"app": "web"},
                    PodSpec(containers=()), strategy=strategy, max_surge=surge, max_unavailable=unavailable)


@pytest.mark.parametrize("value, replicas, up, expected", [
    ("25%", 3, True, 1), ("25%", 3, False, 0), ("25%", 4, False, 1), ("50%", 5, True, 3), ("50%", 5, False, 2),
    (2, 10, True, 2), ("0%", 7, True, 0), ("100%", 3, False, 3)])
def test_percentages_round_as_intstr_does(value, replicas, up, expected):
    assert resolve(value, replicas, up) == expected


def test_both_zero_makes_max_unavailable_one():
    assert surge_and_unavailable(deploy(3, surge="10%", unavailable="10%")) == (1, 0)
    assert surge_and_unavailable(deploy(3, surge=0, unavailable="20%")) == (0, 1)


def simulate(w, old_size: int, ready_after_step: bool = True, limit: int = 30):
    """Every sync until done, pods becoming ready between syncs; each state as (new, old)."""
    new, old = RS("new", 0, 0), RS("old", old_size, old_size)
    states = []
    for _ in range(limit):
        sizes = step(w, new, [old])
        new = RS("new", sizes["new"], sizes["new"] if ready_after_step else 0)
        old = RS("old", sizes["old"], min(old.ready, sizes["old"]))
        states.append((new.size, old.size))
        if (new.size, old.size) == (w.replicas, 0):
            break
    return states


def test_rolling_update_with_the_defaults_surges_one_and_keeps_every_replica_available():
    w = deploy(4)  # maxSurge 1, maxUnavailable 1
    states = simulate(w, 4)
    assert states[-1] == (4, 0)
    assert all(n + o <= 4 + 1 for n, o in states)
    assert all(n + o >= 4 - 1 for n, o in states)
    assert states[0] == (1, 4)


def test_max_unavailable_lets_old_pods_go_before_new_ones_are_ready():
    w = deploy(4, surge=0, unavailable=2)
    assert step(w, RS("new", 0, 0), [RS("old", 4, 4)]) == {"new": 0, "old": 2}
    assert step(w, RS("new", 0, 0), [RS("old", 2, 2)]) == {"new": 2, "old": 2}


def test_new_pods_that_never_become_ready_stop_the_rollout():
    w = deploy(3)  # surge 1, unavailable 0
    states = simulate(w, 3, ready_after_step=False)
    assert states[-1] == (1, 3)  # one new pod made; no old pod removed while it is not ready


def test_unready_old_pods_go_first():
    w = deploy(3, surge=1, unavailable=0)
    assert step(w, RS("new", 1, 1), [RS("old", 3, 2)]) == {"new": 1, "old": 2}


def test_recreate_removes_every_old_pod_before_making_new_ones():
    w = deploy(3, strategy="Recreate")
    assert step(w, RS("new", 0, 0), [RS("old", 3, 3)]) == {"new": 0, "old": 0}
    assert step(w, RS("new", 0, 0), [RS("old", 0, 0)]) == {"new": 3, "old": 0}


def test_scaling_during_a_rollout_and_a_steady_deployment():
    assert step(deploy(5), RS("new", 3, 3), []) == {"new": 5}
    assert step(deploy(2), RS("new", 3, 3), [RS("old", 1, 1)]) == {"new": 2, "old": 1}


def test_writing_out_a_default_is_the_same_template_and_a_real_change_is_not():
    from kubenet_lab.plan.naming import pod_template_hash
    short = {"metadata": {"labels": {"app": "web"}},
             "spec": {"containers": [{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                                      "readinessProbe": {"httpGet": {"port": 80}}}]}}
    spelled = {"metadata": {"labels": {"app": "web"}, "creationTimestamp": None},
               "spec": {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 30,
                        "schedulerName": "default-scheduler", "securityContext": {},
                        "containers": [{"name": "c", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                        "terminationMessagePath": "/dev/termination-log",
                                        "terminationMessagePolicy": "File", "resources": {},
                                        "readinessProbe": {"httpGet": {"port": 80, "scheme": "HTTP"},
                                                           "periodSeconds": 10, "timeoutSeconds": 1,
                                                           "successThreshold": 1, "failureThreshold": 3}}]}}
    assert pod_template_hash(short) == pod_template_hash(spelled)
    changed = {**short, "spec": {**short["spec"], "dnsPolicy": "Default"}}
    assert pod_template_hash(changed) != pod_template_hash(short)
    latest = {**short, "spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Always"}]}}
    assert pod_template_hash(latest) == pod_template_hash({**short, "spec": {"containers": [
        {"name": "c", "image": "nginx"}]}})


@pytest.mark.parametrize("field, value, warned", [
    ("paused", "true", "spec.paused: not modelled: a paused Deployment still rolls out a changed template"),
    ("paused", "false", None),
    ("minReadySeconds", "5", "spec.minReadySeconds: not modelled: a pod counts as available as soon as it is ready"),
    ("minReadySeconds", "0", None),
    ("revisionHistoryLimit", "3", "spec.revisionHistoryLimit: not modelled: 10 old ReplicaSets are kept"),
    ("revisionHistoryLimit", "10", None),
])
def test_rollout_fields_the_lab_does_not_follow_are_warned_about_only_when_they_ask_for_it(tmp_path, field, value,
                                                                                          warned):
    from kubenet_lab.manifests import load_model
    path = tmp_path / "web.yaml"
    path.write_text(f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  {field}: {value}\n"
                    "  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n"
                    "    spec: {containers: [{name: c, image: nginx}]}\n")
    warnings = load_model([str(path)]).warnings
    if warned is None:
        assert warnings == ()
    else:
        assert len(warnings) == 1 and warnings[0].startswith(f"{path}:5: {warned}")
