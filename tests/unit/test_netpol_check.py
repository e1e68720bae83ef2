"""`check` under NetworkPolicies: the probes the policies deny are expected to fail (dropped: a
timeout, not a refusal), through a Service too (judged at its endpoints), the cluster DNS as the
policies leave it; what depends on the balancer's choice or on masquerading is not expected
either way."""
from __future__ import annotations

from kubenet_lab.inspect.expectations import FAIL, REACH, expectations
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from tests import netpol_model as m
from tests.netpol_cases import policy

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "x"},
           "spec": {"type": "NodePort", "selector": {"pod": "a"}, "ports": [{"port": 80, "name": "http"}]}}


def _plan(tmp_path, docs):
    path = tmp_path / "model.yaml"
    path.write_text(m.dump(docs))
    return make_plan(load_model([str(path)]), "t")


def _by(exps, kind, src, dst, proto="tcp"):
    return [e for e in exps if e.kind == kind and e.src == src and e.dst.startswith(dst) and e.proto == proto]


def test_denied_probes_must_fail_and_allowed_ones_still_reach(tmp_path):
    docs = m.objects(namespaces=("x", "y"), pods=("a", "b")) + [SERVICE]
    open_ = expectations(_plan(tmp_path, docs), full=True)
    plan = _plan(tmp_path, docs + [policy("from-y", {"pod": "a"}, ingress=[
        {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": 80}]}])])
    exps = expectations(plan, full=True)
    (denied,) = _by(exps, "pod-pod", "pod/x/b", "pod/x/a:80")
    assert (denied.must, denied.refused) == (FAIL, False)
    assert denied.why.startswith("networkpolicy: ingress of x/a denied: isolated by networkpolicy x/from-y")
    assert _by(exps, "pod-pod", "pod/y/b", "pod/x/a:80")[0].must == REACH
    assert _by(exps, "pod-pod", "pod/y/b", "pod/x/a:81")[0].must == FAIL  # port 81 is no rule's
    assert [e.must for e in _by(exps, "pod-pod", "pod/x/b", "pod/x/a", "icmp")] == [FAIL]
    # unaffected probes are as they were
    assert _by(exps, "pod-pod", "pod/x/a", "pod/x/b:80") == _by(open_, "pod-pod", "pod/x/a", "pod/x/b:80")
    service = [e for e in exps if e.kind == "service" and e.dst.startswith("svc/x/web")]
    xa_node = plan.pod("x/a").node
    by_src = {e.src: e.must for e in service}
    assert by_src[f"node/{xa_node}"] == REACH  # its own node: always
    assert [e for e in open_ if e.kind == "nodeport" and "web" in e.why]
    assert not [e for e in exps if e.kind == "nodeport" and "web" in e.why]  # the outside: depends on masquerade


def test_an_egress_deny_fails_dns_until_port_53_is_allowed(tmp_path):
    docs = m.objects(namespaces=("x",), pods=("a",))
    deny = policy("deny", egress=[])
    exps = [e for e in expectations(_plan(tmp_path, docs + [deny])) if e.kind == "dns" and e.src == "pod/x/a"]
    assert exps and all(e.must == FAIL for e in exps)
    dns = policy("dns", egress=[{"to": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "kube-system"}}}], "ports": [{"port": 53, "protocol": "UDP"}]}])
    exps = [e for e in expectations(_plan(tmp_path, docs + [deny, dns])) if e.kind == "dns" and e.src == "pod/x/a"]
    assert exps and all(e.must == REACH for e in exps)
