"""The renderer against kube-proxy's whole TestOverallIPTablesRules expectation (without root:
both are kube-proxy's own iptables-restore syntax), for the hand-built plan of the same world
(test_render_fixtures.kube_proxy_plan; its node1 is kube-proxy's test node). The lab's live
rules face the same judge in tests/integration/test_kube_proxy_iptables.py."""
from kubenet_lab.proxy.iptables import render_iptables
from tests.kube_proxy_rules import EXPECTED, diff, kube_proxy_order, parse
from tests.unit.test_render_fixtures import kube_proxy_plan


def test_rendered_rules_are_kube_proxys_for_its_own_test_world():
    # with the nfacct counters its fake proxier has, and without --random-fully, which its fake
    # iptables does not support
    text = render_iptables(kube_proxy_plan(), "node1", nfacct=True).replace(" --random-fully", "")
    differences = diff(kube_proxy_order(parse(EXPECTED.read_text())), kube_proxy_order(parse(text)), "rendered")
    assert not differences, differences


def test_the_comparison_sees_a_rule_out_of_place():
    """Order within a chain counts: two of svc4's balancing rules swapped is a difference."""
    text = render_iptables(kube_proxy_plan(), "node1", nfacct=True).replace(" --random-fully", "")
    rules = text.splitlines()
    i = next(n for n, line in enumerate(rules) if line.startswith("-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "
                                                                  '"ns4/svc4:p80 -> 10.180.0.4:80"'))
    rules[i], rules[i + 1] = rules[i + 1], rules[i]
    assert diff(kube_proxy_order(parse(EXPECTED.read_text())), kube_proxy_order(parse("\n".join(rules))), "swapped")
