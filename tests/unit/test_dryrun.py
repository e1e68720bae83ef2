"""--dry-run's report as data (inspect/dryrun.py): what a change would make and remove, and each
node's rules as a unified diff."""
from __future__ import annotations

import io
import textwrap

from kubenet_lab.inspect.dryrun import changes, report, rule_diffs
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {n}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.53, args: [netexec]}}]
"""


def plan(n: int, previous=None):
    return make_plan(load_model(["-"], io.StringIO(textwrap.dedent(WEB.format(n=n)))), "lab", previous)


def test_a_scale_up_makes_one_pod_its_link_address_and_process_and_a_scale_down_removes_them():
    two = plan(2)
    three = plan(3, two)
    added = next(p for p in three.pods if p.key not in {q.key for q in two.pods})
    got = changes(two, three)
    assert got["namespaces"] == [f"+ {added.netns}"]
    assert got["links"] == [f"+ {added.host_veth} (in node {added.node}) <-> eth0 in {added.netns}"]
    assert got["addresses"] == [f"+ {added.ip} on eth0 in {added.netns}"]
    assert got["processes"] == [f"+ default/{added.name} c: built-in netexec server"]
    assert got["routes"] == []
    back = changes(three, plan(2, three))
    assert back["namespaces"] == [f"- {added.netns}"] and back["processes"][0].startswith("- default/")


def test_a_new_lab_makes_its_nodes_and_their_routes():
    got = changes(None, plan(1))
    assert "+ lab.node.node1" in got["namespaces"] and "+ lab.node.node2" in got["namespaces"]
    node2 = next(n for n in plan(1).nodes if n.name == "node2")
    assert f"+ {node2.pod_cidr} via {node2.ip} in lab.node.node1" in got["routes"]


def test_rules_are_diffed_per_node_and_nothing_changed_says_so():
    assert rule_diffs({"n1": "a\nb\n"}, {"n1": "a\nb\n"}) == []
    diff = rule_diffs({"n1": "a\nb\n"}, {"n1": "a\nc\n", "n2": "x\n"})
    assert diff[:2] == ["--- n1 (loaded)", "+++ n1 (after)"] and "-b" in diff and "+c" in diff
    assert "+++ n2 (after)" in diff and "+x" in diff
    p = plan(1)
    text = report(p, p, {}, {})
    assert text.splitlines() == ["namespaces: no change", "links: no change", "addresses: no change",
                                 "routes: no change", "processes: no change", "rules: no change"]
