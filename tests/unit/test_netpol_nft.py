"""A node's NetworkPolicy table (policy.nftables): one chain per policy and direction named after
it, the base chains of the forward hook that send a node's isolated pods through them and drop
what none accepts, rules with comments naming their source, named ports as each destination
pod's own; and nft accepts every render (root: in a scratch namespace)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.policy.nftables import render, without_table
from tests import netpol_model as m
from tests.netpol_cases import CASES, policy


def _plan(tmp_path, docs):
    path = tmp_path / "model.yaml"
    path.write_text(m.dump(docs))
    return make_plan(load_model([str(path)]), "t")


def _on(plan, key: str) -> str:
    return plan.pod(key).node


def test_no_policy_no_table(tmp_path):
    plan = _plan(tmp_path, m.objects())
    assert [render(plan, n.name) for n in plan.nodes] == ["", ""]


def test_deny_all(tmp_path):
    plan = _plan(tmp_path, m.objects() + [policy("deny-all", ingress=[], egress=[])])
    node = _on(plan, "x/a")
    local = sorted((p for p in plan.pods if p.node == node and p.namespace == "x"), key=lambda p: p.ip)
    ips = ", ".join(str(p.ip) for p in local)
    ips = ips if len(local) == 1 else "{ " + ips + " }"
    text = render(plan, node)
    assert text.startswith("add table inet kubenet-netpol\ndelete table inet kubenet-netpol\n")
    assert ("\tchain ingress/x/deny-all {\n\t\tcomment \"networkpolicy x/deny-all, ingress\"\n\t}\n") in text
    assert ("\tchain ingress {\n"
            "\t\ttype filter hook forward priority filter; policy accept;\n"
            "\t\tct state established,related accept\n"
            f"\t\tip saddr {ips} meta l4proto tcp ct state new tcp flags & (syn | ack) != syn drop comment "
            "\"no connection of isolated pods picked up mid-stream\"\n"
            f"\t\tip daddr {ips} meta l4proto tcp ct state new tcp flags & (syn | ack) != syn drop comment "
            "\"no connection of isolated pods picked up mid-stream\"\n"
            f"\t\tip daddr {ips} jump ingress/x/deny-all\n"
            f"\t\tip daddr {ips} counter drop comment \"ingress of isolated pods that no policy allows\"\n"
            "\t}\n") in text
    assert "type filter hook forward priority filter - 1; policy accept;" in text
    assert f"ip saddr {ips} jump egress/x/deny-all" in text


def test_rules_and_their_comments(tmp_path):
    plan = _plan(tmp_path, m.objects() + [policy("allow", {"pod": "a"}, namespace="y", ingress=[
        {"from": [{"namespaceSelector": {"matchLabels": {"ns": "x"}}, "podSelector": {"matchLabels": {"pod": "b"}}},
                  {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.0.0/16"]}},
                  {"podSelector": {"matchLabels": {"pod": "nobody"}}}],
         "ports": [{"port": 80}, {"port": "serve-81-udp", "protocol": "UDP"}, {"port": 8000, "endPort": 8080},
                   {"protocol": "SCTP"}]}])])
    ya, xb = plan.pod("y/a"), plan.pod("x/b")
    text = render(plan, ya.node)
    assert f'ip saddr {xb.ip} meta l4proto tcp th dport 80 accept comment "ingress[0] from[0] ports[0]"' in text
    assert (f"ip saddr {xb.ip} ip daddr . meta l4proto . th dport {{ {ya.ip} . udp . 81 }} accept "
            f'comment "ingress[0] from[0] ports[1]"') in text
    assert ('ip saddr 10.0.0.0/8 ip saddr != { 10.1.0.0/16, 10.2.0.0/16 } meta l4proto tcp th dport 8000-8080 '
            'accept comment "ingress[0] from[1] ports[2]"') in text
    assert 'meta l4proto sctp accept comment "ingress[0] from[1] ports[3]"' in text
    assert "from[2]" not in text  # a selector that selects no pod admits nothing
    other = next(n.name for n in plan.nodes if n.name != ya.node)
    assert render(plan, other) == ""  # no pod of that node is isolated


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace")
@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
def test_nft_accepts_the_render_of_every_e2e_case(scratch_netns, tmp_path):
    base = _plan(tmp_path, m.objects())
    ips = {p.key: str(p.ip) for p in base.pods}
    for case in CASES:
        docs = list({(p["metadata"]["namespace"], p["metadata"]["name"]): p
                     for step in case.steps for p in step.create}.values())  # an update replaces
        text = m.dump(docs)
        for key, ip in ips.items():
            text = text.replace(f"{{ip:{key}}}", ip).replace(f"{{cidr4:{key}}}", "0.0.0.0/4")
        path = tmp_path / "p.yaml"
        path.write_text(m.dump(m.objects()) + "---\n" + text)
        plan = make_plan(load_model([str(path)]), "t")
        for node in plan.nodes:
            rendered = render(plan, node.name)
            if rendered:
                proc = subprocess.run(["ip", "netns", "exec", scratch_netns, "nft", "-c", "-f", "-"], input=rendered,
                                      capture_output=True, text=True)
                assert proc.returncode == 0, (case.name, proc.stderr)


def test_the_table_is_left_out_of_a_ruleset_listing_for_kube_proxys_readers():
    listing = ("table ip kube-proxy {\n\tchain a {\n\t}\n}\n"
               "table inet kubenet-netpol {\n\tchain ingress {\n\t\tct state established,related accept\n\t}\n}\n"
               "table ip cni_hostport {\n}\n")
    assert without_table(listing) == "table ip kube-proxy {\n\tchain a {\n\t}\n}\ntable ip cni_hostport {\n}\n"
