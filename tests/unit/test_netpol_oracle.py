"""The NetworkPolicy oracle (kubenet_lab.policy.verdict) against Kubernetes' e2e network-policy
suite: for every case (tests/netpol_cases.py) and step, the reachability it computes over the
e2e model's nine pods agrees with the test's expectations on the pods the test names; and the
semantics the suite does not reach (endPort, named ports per destination, the pod's own node,
hostNetwork pods, ipBlock against addresses outside the pods) checked directly."""
from __future__ import annotations

import ipaddress
import re

import pytest

from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.policy.select import selected_pods
from kubenet_lab.policy.verdict import End, pod_end, verdict
from tests import netpol_model as m
from tests.netpol_cases import CASES, Case, policy


def _plan(tmp_path, docs: list[dict]):
    path = tmp_path / "model.yaml"
    path.write_text(m.dump(docs))
    return make_plan(load_model([str(path)]), "t")


def _with_addresses(doc: dict, ips: dict[str, str]) -> dict:
    """The case's {ip:x/b} and {cidr4:x/b} made the plan's addresses."""
    def fill(text: str) -> str:
        text = re.sub(r"\{ip:(\w/\w)\}", lambda g: ips[g.group(1)], text)
        return re.sub(r"\{cidr4:(\w/\w)\}",
                      lambda g: str(ipaddress.ip_network(f"{ips[g.group(1)]}/4", strict=False)), text)

    def walk(v):
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return fill(v) if isinstance(v, str) else v
    return walk(doc)


def table(plan, protocol: str, port: int) -> dict[tuple[str, str], bool]:
    """The oracle's reachability between every two pods of the model."""
    pods = {p.key: p for p in plan.pods}
    return {(s, d): verdict(plan, pod_end(pods[s]), pod_end(pods[d]), protocol, port).allowed
            for s in m.ALL for d in m.ALL}


def steps(case: Case):
    """(step index, the state's documents) for each step: policies by name, labels added."""
    created: dict[tuple[str, str], dict] = {}
    ns_labels: dict[str, dict[str, str]] = {}
    pod_labels: dict[str, dict[str, str]] = {}
    for i, step in enumerate(case.steps):
        if step.delete_all:
            created.clear()
        for p in step.create:
            created[(p["metadata"]["namespace"], p["metadata"]["name"])] = p
        for ns, labels in step.ns_labels.items():
            ns_labels.setdefault(ns, {}).update(labels)
        for pod, labels in step.pod_labels.items():
            pod_labels.setdefault(pod, {}).update(labels)
        yield i, step, m.objects(ns_labels=ns_labels, pod_labels=pod_labels), list(created.values())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_e2e_case(case: Case, tmp_path):
    for i, step, objects, policies in steps(case):
        base = _plan(tmp_path, objects)
        ips = {p.key: str(p.ip) for p in base.pods}
        plan = _plan(tmp_path, objects + [_with_addresses(p, ips) for p in policies])
        for port, protocol, expectations in step.probes:
            expected = m.Reachability(case.pods)
            for src, dst, allowed in expectations:
                expected.expect_peer(src, dst, allowed)
            observed = table(plan, protocol, port)
            wrong = expected.differences(observed)
            assert not wrong, (f"step {i}, {protocol}/{port}:\n"
                               + m.side_by_side(case.pods, expected.cells, observed))


def test_the_full_table_of_a_case_and_its_explanations(tmp_path):
    """The 9x9 table for 'allow traffic only from a different namespace' (its earlier, nine-pod
    form: everything reaches every pod but x/a, which only y's pods reach), and what decided."""
    plan = _plan(tmp_path, m.objects() + [policy("allow-client-a-via-ns-selector", {"pod": "a"}, ingress=[
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}])])
    expected = m.Reachability().expect_peer("x", "x/a", False).expect_peer("z", "x/a", False)
    assert not expected.differences(table(plan, "TCP", 80), loopback=True)
    assert m.truth_table(m.ALL, table(plan, "TCP", 80))[1] == "x/a\tX\t.\t.\t.\t.\t.\t.\t.\t."
    pods = {p.key: p for p in plan.pods}
    v = verdict(plan, pod_end(pods["y/b"]), pod_end(pods["x/a"]), "TCP", 80)
    assert v.allowed and v.ingress.policy == "x/allow-client-a-via-ns-selector" and v.ingress.rule == 0
    assert v.ingress.reason == ("ingress allowed by networkpolicy x/allow-client-a-via-ns-selector ingress[0] "
                                "(from y/b, TCP/80)")
    assert v.egress.reason == "egress: no policy isolates y/b"
    v = verdict(plan, pod_end(pods["z/c"]), pod_end(pods["x/a"]), "UDP", 81)
    assert not v.allowed and v.ingress.isolating == ("x/allow-client-a-via-ns-selector",)
    assert v.reason == ("ingress of x/a denied: isolated by networkpolicy x/allow-client-a-via-ns-selector, whose "
                        "ingress rules do not allow z/c on UDP/81")
    assert [p.key for p in selected_pods(plan, plan.network_policies[0])] == ["x/a"]


def test_end_port_ranges_and_named_ports_per_destination(tmp_path):
    objects = m.objects(pod_labels={"y/b": {"renamed": "yes"}})
    for doc in objects:  # y/b names its port 81 serve-80-tcp: a named port is each pod's own
        if doc["kind"] == "Pod" and doc["metadata"]["labels"].get("renamed"):
            doc["spec"]["containers"][2]["ports"][0]["name"] = "other"
            doc["spec"]["containers"][0]["ports"][0]["name"] = "serve-81-tcp"
    plan = _plan(tmp_path, objects + [
        policy("range", namespace="x", ingress=[{"ports": [{"port": 79, "endPort": 80}]}]),
        policy("named", namespace="y", ingress=[{"ports": [{"port": "serve-81-tcp"}]}])])
    ends = {p.key: pod_end(p) for p in plan.pods}
    assert [verdict(plan, ends["z/a"], ends["x/b"], "TCP", port).allowed for port in (80, 81)] == [True, False]
    assert [verdict(plan, ends["z/a"], ends["y/a"], "TCP", port).allowed for port in (80, 81)] == [False, True]
    assert [verdict(plan, ends["z/a"], ends["y/b"], "TCP", port).allowed for port in (80, 81)] == [True, False]


def test_the_pods_own_node_and_addresses(tmp_path):
    plan = _plan(tmp_path, m.objects() + [policy("deny-all", namespace="x", ingress=[], egress=[])])
    xa = plan.pod("x/a")
    node = plan.node(xa.node)
    other = next(n for n in plan.nodes if n.name != xa.node)
    assert verdict(plan, End(node.ip, node=node.name), pod_end(xa), "TCP", 80).allowed  # kubelet's probes
    assert not verdict(plan, End(other.ip, node=other.name), pod_end(xa), "TCP", 80).allowed
    assert not verdict(plan, pod_end(xa), End(ipaddress.IPv4Address("172.18.0.254")), "UDP", 53).allowed
    assert verdict(plan, pod_end(xa), End(node.ip, node=node.name), "TCP", 10250).allowed


def test_ip_block_except_and_addresses_outside_the_pods(tmp_path):
    plan = _plan(tmp_path, m.objects() + [policy("out", {"pod": "a"}, egress=[
        {"to": [{"ipBlock": {"cidr": "172.18.0.0/16", "except": ["172.18.0.254/32"]}}],
         "ports": [{"protocol": "UDP", "port": 53}]}])])
    xa = pod_end(plan.pod("x/a"))
    assert verdict(plan, xa, End(ipaddress.IPv4Address("172.18.0.9")), "UDP", 53).allowed
    assert not verdict(plan, xa, End(ipaddress.IPv4Address("172.18.0.254")), "UDP", 53).allowed
    assert not verdict(plan, xa, End(ipaddress.IPv4Address("172.18.0.9")), "TCP", 53).allowed
    assert not verdict(plan, xa, pod_end(plan.pod("y/a")), "UDP", 53).allowed  # a pod is no ipBlock of 172.18/16


def test_peers_and_the_policy_namespace(tmp_path):
    """A podSelector alone is the policy's namespace; with a namespaceSelector, those namespaces'."""
    plan = _plan(tmp_path, m.objects() + [
        policy("only-pod-b", {"pod": "a"}, namespace="y", ingress=[{"from": [{"podSelector": {}}]}])])
    ends = {p.key: pod_end(p) for p in plan.pods}
    assert [verdict(plan, ends[s], ends["y/a"], "TCP", 80).allowed for s in ("y/b", "x/b", "z/c")] == [
        True, False, False]


def test_host_network_pods_are_no_policy_pods(tmp_path):
    docs = m.objects(namespaces=("x",), pods=("a",))
    docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "h", "namespace": "x", "labels": {"pod": "a"}},
                 "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "busybox"}]}})
    plan = _plan(tmp_path, docs + [policy("deny", ingress=[])])
    assert [p.key for p in selected_pods(plan, plan.network_policies[0])] == ["x/a"]
    assert pod_end(plan.pod("x/h")).pod is None
