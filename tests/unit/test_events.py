"""Events as data: what a change of the lab makes the controllers and the scheduler say
(plan/events.py), worded as Kubernetes words them, and how repeats fold into one Event with a
count (output.aggregate_events)."""
from __future__ import annotations

import io
import textwrap

from kubenet_lab import output
from kubenet_lab.manifests import load_model
from kubenet_lab.model.objects import Event
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.events import plan_events

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: nginx, image: {image}}}]
"""

PICKY = """
apiVersion: v1
kind: Pod
metadata: {name: picky}
spec:
  nodeSelector: {disktype: ssd}
  containers: [{name: c, image: nginx}]
"""


def plan(text: str, previous=None):
    return make_plan(load_model(["-"], io.StringIO(textwrap.dedent(text))), "lab", previous)


def deployment(replicas: int, image: str = "nginx") -> str:
    return DEPLOYMENT.format(replicas=replicas, image=image)


def said(events: list[Event], reason: str) -> list[str]:
    return [e.message for e in events if e.reason == reason]


def test_a_new_deployment_scales_its_replica_set_up_and_each_pod_is_created_and_scheduled():
    p = plan(deployment(3))
    events = plan_events(None, p)
    rs = next(w for w in p.workloads if w.kind == "ReplicaSet" and w.namespace == "default")
    assert f"Scaled up replica set {rs.name} to 3 from 0" in said(events, "ScalingReplicaSet")
    web = sorted(x.name for x in p.pods if x.owner == f"ReplicaSet/{rs.name}")
    created = [e.message for e in events if e.reason == "SuccessfulCreate" and e.namespace == "default"]
    assert sorted(created) == [f"Created pod: {n}" for n in web] and len(web) == 3
    creators = {(e.kind, e.name, e.source) for e in events
                if e.reason == "SuccessfulCreate" and e.namespace == "default"}
    assert creators == {("ReplicaSet", rs.name, "replicaset-controller")}
    scheduled = {m for m in said(events, "Scheduled") if "/web-" in m}
    assert scheduled == {f"Successfully assigned default/{x.name} to {x.node}" for x in p.pods if x.name in web}
    assert said(events, "RegisteredNode") == [f"Node {n.name} event: Registered Node {n.name} in Controller"
                                              for n in p.nodes]


def test_scaling_down_deletes_pods_and_stops_their_containers():
    three = plan(deployment(3))
    one = plan(deployment(1), previous=three)
    events = plan_events(three, one)
    rs = next(w for w in one.workloads if w.kind == "ReplicaSet" and w.namespace == "default")
    assert said(events, "ScalingReplicaSet") == [f"Scaled down replica set {rs.name} to 1 from 3"]
    gone = {x.name for x in three.pods} - {x.name for x in one.pods}
    assert len(gone) == 2
    assert sorted(said(events, "SuccessfulDelete")) == sorted(f"Deleted pod: {n}" for n in gone)
    killing = [e for e in events if e.reason == "Killing"]
    assert ({(e.name, e.message, e.source) for e in killing}
            == {(n, "Stopping container nginx", "kubelet") for n in gone})
    assert not said(events, "Scheduled") and not said(events, "SuccessfulCreate")


def test_a_changed_template_rolls_a_new_replica_set_up_and_the_old_one_down_step_by_step():
    """RollingUpdate with the defaults (maxSurge 25% rounded up: 1; maxUnavailable 25% rounded
    down: 0) for 2 replicas, every pod ready between syncs: as the deployment controller scales."""
    plans = [plan(deployment(2))]
    plans.append(plan(deployment(2, image="nginx:1.27"), previous=plans[-1]))
    for _ in range(4):
        plans.append(plan(deployment(2, image="nginx:1.27"), previous=plans[-1]))
    said_each = [said(plan_events(a, b), "ScalingReplicaSet") for a, b in zip(plans, plans[1:])]
    new_rs = next(w.current_set for w in plans[-1].workloads if w.kind == "Deployment" and w.name == "web")
    old_rs = next(w.current_set for w in plans[0].workloads if w.kind == "Deployment" and w.name == "web")
    assert said_each[:4] == [[f"Scaled up replica set {new_rs} to 1 from 0"],
                                     [f"Scaled down replica set {old_rs} to 1 from 2"],
                                     [f"Scaled up replica set {new_rs} to 2 from 1"],
                                     [f"Scaled down replica set {old_rs} to 0 from 1"]]
    assert said_each[4] == []  # done
    web = sorted(p.owner for p in plans[-1].pods if p.namespace == "default")
    assert web == [f"ReplicaSet/{new_rs}"] * 2
    assert [(w.name, w.replicas, w.revision) for w in plans[-1].workloads if w.kind == "ReplicaSet"
            and w.namespace == "default"] == [(old_rs, 0, 1), (new_rs, 2, 2)]


def test_nothing_changed_says_nothing():
    p = plan(deployment(2) + "---\n" + PICKY)
    assert plan_events(p, plan(deployment(2) + "---\n" + PICKY, previous=p)) == []


def test_a_pod_no_node_takes_gets_the_schedulers_failed_scheduling_warning():
    p = plan(PICKY)
    failed = [e for e in plan_events(None, p) if e.reason == "FailedScheduling"]
    assert len(failed) == 1 and failed[0].type == "Warning" and failed[0].source == "default-scheduler"
    assert failed[0].message.startswith("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")
    assert (failed[0].kind, failed[0].name) == ("Pod", "picky")


def test_repeats_fold_into_one_event_with_a_count_and_the_table_is_kubectls():
    e = Event("default", "Pod", "web-0", "BackOff", "Back-off restarting failed container c", type="Warning",
              source="kubelet")
    other = Event("", "Node", "node1", "RegisteredNode", "Node node1 event: Registered Node node1 in Controller")
    entries = output.aggregate_events([(100.0, e), (105.0, other), (110.0, e), (130.0, e)])
    assert [(x.event.reason, x.count, x.first, x.last) for x in entries] == [
        ("RegisteredNode", 1, 105.0, 105.0), ("BackOff", 3, 100.0, 130.0)]
    headers, rows = output.event_rows(entries, all_ns=True, now=150.0)
    assert headers == ["NAMESPACE", "LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert rows[1] == ["default", "20s", "Warning", "BackOff", "pod/web-0", "Back-off restarting failed container c"]
    obj = output.event_object(entries[1])
    assert obj["count"] == 3 and obj["involvedObject"] == {"kind": "Pod", "name": "web-0", "namespace": "default",
                                                          "apiVersion": "v1"}
    assert obj["metadata"]["name"] == f"web-0.{int(100.0 * 1e9):x}"
    assert obj["source"] == {"component": "kubelet"}
