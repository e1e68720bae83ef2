"""Scheduling as kube-scheduler's default filters decide it, from the documentation's manifests
(tests/corpus/workloads) and Node objects: nodeSelector, node affinity, taints and tolerations,
pod (anti-)affinity, cordoned nodes, and the FailedScheduling message of a pod no node takes."""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "workloads"
NOT_HELPFUL = "preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."


def plan_of(*corpus: str, text: str = "", previous=None):
    stdin = io.StringIO(textwrap.dedent(text).lstrip("\n")) if text else None
    paths = [str(CORPUS / c) for c in corpus] + (["-"] if text else [])
    return make_plan(load_model(paths, stdin), "lab", previous)


def nodes(*specs: str) -> str:
    """Node objects: `name` or `name:key=value,...` or `name|taint-key=value:Effect`."""
    out = []
    for spec in specs:
        name, _, taint = spec.partition("|")
        name, _, labels = name.partition(":")
        doc = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
        if labels:
            doc["metadata"]["labels"] = dict(kv.split("=") for kv in labels.split(","))
        if taint:
            kv, effect = taint.rsplit(":", 1)
            key, _, value = kv.partition("=")
            doc["spec"] = {"taints": [{"key": key, "value": value, "effect": effect}]}
        out.append(repr(doc).replace("'", '"'))
    return "\n---\n".join(out) + "\n"


def where(plan) -> dict[str, str]:
    return {p.name: p.node for p in plan.pods if p.namespace == "default"}


def pending(plan) -> dict[str, str]:
    return {p.name: p.message for p in plan.pending if p.namespace == "default"}


def test_node_selector_without_a_labelled_node_leaves_the_pod_pending():
    """"Assign Pods to Nodes": pod-nginx.yaml waits until a node is labelled disktype=ssd."""
    plan = plan_of("pod-nginx-nodeselector.yaml")
    assert where(plan) == {} and pending(plan) == {"nginx": (
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. " + NOT_HELPFUL.format(n=2))}
    plan = plan_of("pod-nginx-nodeselector.yaml", text=nodes("worker1", "worker2:disktype=ssd"))
    assert where(plan) == {"nginx": "worker2"} and pending(plan) == {}


def test_required_node_affinity():
    plan = plan_of("pod-nginx-required-affinity.yaml", text=nodes("a:disktype=hdd", "b", "c:disktype=ssd"))
    assert where(plan) == {"nginx": "c"}
    plan = plan_of("pod-nginx-required-affinity.yaml", text=nodes("a:disktype=hdd", "b"))
    assert "2 node(s) didn't match Pod's node affinity/selector" in pending(plan)["nginx"]


def test_taints_keep_pods_away_unless_tolerated():
    taints = nodes("a|example-key=v:NoSchedule", "b|dedicated=db:NoExecute")
    plan = plan_of(text=taints + "---\n" + textwrap.dedent("""
        apiVersion: v1
        kind: Pod
        metadata: {name: plain}
        spec: {containers: [{name: c, image: nginx}]}
        """))
    assert pending(plan) == {"plain": (
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, "
        "1 node(s) had untolerated taint {example-key: v}. " + NOT_HELPFUL.format(n=2))}
    plan = plan_of("pod-with-toleration.yaml", text=taints)  # tolerates example-key (Exists, NoSchedule)
    assert where(plan) == {"nginx": "a"}


def test_prefer_no_schedule_is_avoided_but_not_refused():
    pod = """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 3
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec: {containers: [{name: c, image: nginx}]}
        """
    plan = plan_of(text=nodes("a|spot=yes:PreferNoSchedule", "b") + "---\n" + textwrap.dedent(pod))
    assert sorted(where(plan).values()) == ["b", "b", "b"]


def test_a_cordoned_node_takes_no_new_pods():
    plan = plan_of("pod-with-toleration.yaml", text=nodes("a") + "---\n" + textwrap.dedent("""
        apiVersion: v1
        kind: Node
        metadata: {name: b}
        spec: {unschedulable: true}
        """))
    assert where(plan) == {"nginx": "a"}


def test_required_anti_affinity_spreads_replicas_one_per_node_and_leaves_the_rest_pending():
    """The "one replica per node" pattern (redis-cache in "Assigning Pods to Nodes")."""
    plan = plan_of(text="""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: redis-cache}
        spec:
          replicas: 3
          selector: {matchLabels: {app: store}}
          template:
            metadata: {labels: {app: store}}
            spec:
              affinity:
                podAntiAffinity:
                  requiredDuringSchedulingIgnoredDuringExecution:
                  - labelSelector:
                      matchExpressions: [{key: app, operator: In, values: [store]}]
                    topologyKey: kubernetes.io/hostname
              containers: [{name: redis-server, image: redis:3.2-alpine}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web-server}
        spec:
          replicas: 2
          selector: {matchLabels: {app: web-store}}
          template:
            metadata: {labels: {app: web-store}}
            spec:
              affinity:
                podAffinity:
                  requiredDuringSchedulingIgnoredDuringExecution:
                  - labelSelector:
                      matchExpressions: [{key: app, operator: In, values: [store]}]
                    topologyKey: kubernetes.io/hostname
              containers: [{name: web-app, image: nginx:1.16-alpine}]
        """)
    placed = where(plan)
    store = sorted(n for p, n in placed.items() if p.startswith("redis-cache-"))
    assert store == ["node1", "node2"]
    waiting, = [p for p in pending(plan) if p.startswith("redis-cache-")]
    assert pending(plan)[waiting] == (
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. preemption: 0/2 nodes are "
        "available: 2 No preemption victims found for incoming pod.")
    # the web servers need a store on their node: both nodes have one
    assert sorted(n for p, n in placed.items() if p.startswith("web-server-")) == ["node1", "node2"]


def test_pod_affinity_with_nothing_to_join_is_pending_unless_it_selects_itself():
    plan = plan_of(text="""
        apiVersion: v1
        kind: Pod
        metadata: {name: lonely, labels: {app: x}}
        spec:
          affinity:
            podAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
              - {labelSelector: {matchLabels: {app: db}}, topologyKey: kubernetes.io/hostname}
          containers: [{name: c, image: nginx}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: first, labels: {app: group}}
        spec:
          affinity:
            podAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
              - {labelSelector: {matchLabels: {app: group}}, topologyKey: kubernetes.io/hostname}
          containers: [{name: c, image: nginx}]
        """)
    assert "2 node(s) didn't match pod affinity rules" in pending(plan)["lonely"]
    assert "first" in where(plan)


def test_preferred_node_affinity_wins_over_the_emptier_node():
    plan = plan_of(text=nodes("a:zone=x", "b:zone=y") + "---\n" + textwrap.dedent("""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 3
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              affinity:
                nodeAffinity:
                  preferredDuringSchedulingIgnoredDuringExecution:
                  - weight: 10
                    preference: {matchExpressions: [{key: zone, operator: In, values: [y]}]}
              containers: [{name: c, image: nginx}]
        """))
    assert sorted(where(plan).values()) == ["b", "b", "b"]


def test_nodes_carry_kubelets_labels_and_a_placed_pod_stays_put():
    plan = plan_of("pod-nginx-nodeselector.yaml", text=nodes("w1:disktype=ssd", "w2:disktype=ssd"))
    node = plan.node("w1")
    assert node.labels["kubernetes.io/hostname"] == "w1" and node.labels["kubernetes.io/os"] == "linux"
    first = where(plan)["nginx"]
    # the label goes away from its node: IgnoredDuringExecution, the running pod stays
    relabelled = nodes(*(f"{n}:disktype={'hdd' if n == first else 'ssd'}" for n in ("w1", "w2")))
    assert where(plan_of("pod-nginx-nodeselector.yaml", text=relabelled, previous=plan)) == {"nginx": first}


def test_bad_scheduling_fields_are_refused_with_their_place():
    import pytest

    from kubenet_lab.errors import InputError
    with pytest.raises(InputError) as e:
        plan_of(text="""
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec:
              containers: [{name: c, image: nginx}]
              tolerations: [{operator: Equal, value: x}]
              affinity:
                nodeAffinity:
                  requiredDuringSchedulingIgnoredDuringExecution:
                    nodeSelectorTerms: [{matchExpressions: [{key: cpu, operator: Gt, values: [a]}]}]
            ---
            apiVersion: v1
            kind: Node
            metadata: {name: n}
            spec: {taints: [{key: k, effect: NoRun}]}
            """)
    problems = "\n".join(e.value.problems)
    assert "spec.tolerations[0].operator: operator must be Exists when `key` is empty" in problems
    assert ("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
            ".matchExpressions[0].values: must be an integer for operator 'Gt'") in problems
    assert "spec.taints[0].effect: expected one of NoSchedule, PreferNoSchedule, NoExecute" in problems


def test_a_pod_with_scheduling_gates_waits_as_scheduling_gated():
    """"Pod Scheduling Readiness": a gated pod is not scheduled; kubectl shows SchedulingGated."""
    plan = plan_of(text="""
        apiVersion: v1
        kind: Pod
        metadata: {name: test-pod}
        spec:
          schedulingGates: [{name: example.com/foo}, {name: example.com/bar}]
          containers: [{name: pause, image: registry.k8s.io/pause:3.6}]
        """)
    waiting, = [p for p in plan.pending if p.name == "test-pod"]
    assert (waiting.reason, waiting.message) == ("SchedulingGated",
                                                 "Scheduling is blocked due to non-empty scheduling gates")
    assert "test-pod" not in where(plan)
