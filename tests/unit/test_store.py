"""The objects a lab holds (manifests/store.py, treejson.py) and the ReplicaSet controller's pod
names (plan/replicas.py), as data: what apply, delete and scale work on."""
from __future__ import annotations

import json
import textwrap

from kubenet_lab.manifests import store, treejson
from kubenet_lab.manifests.fields import Sink, plain
from kubenet_lab.manifests.load import model_of, read_documents
from kubenet_lab.plan import make_plan, replicas
from kubenet_lab.plan.cluster import replica_owner

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


def docs(text: str, file: str = "x.yaml"):
    sink = Sink()
    return list(read_documents(textwrap.dedent(text).lstrip("\n"), file, sink)), sink


def test_objects_are_known_by_kind_namespace_and_name_and_a_list_is_its_items():
    d, _ = docs(WEB + "---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Node, metadata: {name: n1}}\n"
                "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\n")
    held = store.stored(store.flatten(d))
    assert [s.key for s in held] == [("Deployment", "default", "web"), ("Service", "shop", "web"), ("Node", "", "n1")]
    assert [s.ref for s in held] == ["deployment.apps/web", "service/web", "node/n1"]
    assert (held[2].line, held[2].path) == (22, "items[0]")  # where the item was written


def test_apply_adds_and_changes_in_place_and_a_name_given_twice_is_applied_in_order():
    held = store.stored(docs(WEB, "a.yaml")[0])
    new = store.stored(docs("""
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: shop}
        spec: {selector: {app: web}, ports: [{port: 81}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec: {containers: [{name: c, image: busybox}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: shop}
        spec: {selector: {app: web}, ports: [{port: 82}]}
        """, "b.yaml")[0])
    merged, warnings = store.merge(held, new)
    assert [s.key for s in merged] == [("Deployment", "default", "web"), ("Service", "shop", "web"),
                                       ("Pod", "default", "p")]
    assert plain(merged[1].data)["spec"]["ports"] == [{"port": 82}] and merged[1].line == 11
    assert warnings == ["b.yaml:11: service/web is also at b.yaml:1; both are applied in order, so this later one wins"]


def test_a_kept_object_is_checked_again_with_its_first_place_and_an_edit_keeps_the_rest():
    held = store.stored(docs(WEB, "web.yaml")[0])
    kept = json.loads(json.dumps([treejson.encode(s.data) for s in held]))
    again = [store.Stored(s.kind, s.namespace, s.name, treejson.decode(d), s.file, s.line, s.path)
             for s, d in zip(held, kept)]
    assert [plain(s.data) for s in again] == [plain(s.data) for s in held]
    scaled = store.edited(again[0], ("spec", "replicas"), -1)
    sink = Sink()
    try:
        model_of([(s.data, s.at(sink)) for s in [scaled, again[1]]], sink)
        raise AssertionError("negative replicas were accepted")
    except Exception as e:  # the message points where `replicas` was first written
        assert "web.yaml:5: spec.replicas" in str(getattr(e, "problems", e))
    assert plain(store.edited(again[0], ("spec", "replicas"), 5).data)["spec"] == {**plain(held[0].data)["spec"],
                                                                                 "replicas": 5}
    assert plain(again[0].data)["spec"]["replicas"] == 2  # the edit made a copy


def test_replica_indices_grow_with_new_ones_shrink_from_the_newest_and_never_come_back():
    assert replicas.indices(None, 0, 3) == ((0, 1, 2), 3)
    assert replicas.indices((0, 1, 2), 3, 5) == ((0, 1, 2, 3, 4), 5)
    assert replicas.indices((0, 1, 2, 3, 4), 5, 2) == ((0, 1), 5)
    assert replicas.indices((0, 1), 5, 3) == ((0, 1, 5), 6)  # 2, 3, 4 were used: a new pod gets a new name
    assert replicas.indices((0, 2), 3, 3) == ((0, 2, 3), 4)  # pod 1 deleted: its replacement is 3
    assert replicas.indices(None, 7, 2) == ((7, 8), 9)  # a ReplicaSet made again has new pods


def test_scaling_a_planned_deployment_keeps_its_pods_and_a_deleted_pods_replacement_gets_a_new_name():
    def model(n: int):
        sink = Sink()
        return model_of(docs(WEB.replace("replicas: 2", f"replicas: {n}"))[0], sink)
    two = make_plan(model(2), "lab")
    web = lambda p: sorted(x.name for x in p.pods if x.namespace == "default")  # noqa: E731
    four = make_plan(model(4), "lab", two)
    assert set(web(two)) < set(web(four)) and len(web(four)) == 4
    assert ({x.key: x.ip for x in four.pods if x.name in web(two)}
            == {x.key: x.ip for x in two.pods if x.name in web(two)})
    base, owner = replica_owner(model(4).workloads[0])
    gone = web(four)[0]
    index = replicas.index_of(base, owner, gone, four.allocations.replicas[owner])
    alloc = four.allocations
    let_go = type(four)(**{**four.__dict__, "allocations": type(alloc)(**{
        **alloc.__dict__, "replicas": replicas.without_index(alloc.replicas, owner, index)})})
    after = make_plan(model(4), "lab", let_go)
    assert gone not in web(after) and len(web(after)) == 4 and set(web(four)) - {gone} < set(web(after))
    assert make_plan(model(2), "lab", after).allocations.replicas[owner] == tuple(
        sorted(after.allocations.replicas[owner])[:2])
