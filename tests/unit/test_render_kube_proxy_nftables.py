"""The nftables renderer against kube-proxy's TestOverallNFTablesRules, without root.

kube_proxy_plan() is that test's world built by hand; rendered for the node holding 10.180.0.5,
its transaction must be the one kube-proxy's test expects (tests/integration/data/
kube-proxy-TestOverallNFTablesRules.nft, with its source and release), compared as the test's own
assertNFTablesTransactionEqual compares: comment and blank lines dropped, lines ordered by object
type and then name, the rules of a chain in their order, the elements of a set or map sorted.
The integration test (test_kube_proxy_nftables) compares a real node's table built from manifests.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from kubenet_lab.proxy.nftables import render_nftables

from .test_render_fixtures import kube_proxy_plan

EXPECTED = Path(__file__).parents[1] / "integration" / "data" / "kube-proxy-TestOverallNFTablesRules.nft"
_ORDER = {"table": 10, "chain": 9, "rule": 8, "set": 7, "map": 6, "element": 5}


def _before(li: str, lj: str) -> bool:
    wi, wj = li.split(" "), lj.split(" ")
    if len(wi) < 5 or len(wj) < 5:
        return False
    if wi[1] != wj[1]:
        return _ORDER.get(wi[1], 0) > _ORDER.get(wj[1], 0)
    if wi[4] != wj[4]:
        return wi[4] < wj[4]
    return wi[1] != "rule" and li < lj  # rules keep their order


def kube_proxy_sorted(transaction: str) -> list[str]:
    lines = [l for l in transaction.splitlines() if l and not l.startswith("#")]
    return sorted(lines, key=functools.cmp_to_key(lambda a, b: -1 if _before(a, b) else int(_before(b, a))))


def one_element_a_line(transaction: str) -> str:
    """Ours batches a set's elements in one `add element` line, knftables' dump writes one a line;
    and ours starts by resetting the table (add, delete, add), which leaves what follows."""
    lines = transaction.splitlines()
    lines = lines[max(i for i, l in enumerate(lines) if l.startswith("delete table ")) + 1:]
    out = []
    for line in lines:
        head, _, body = line.partition(" { ")
        if line.startswith("add element "):
            out += [f"{head} {{ {e} }}" for e in body.removesuffix(" }").split(", ")]
        else:
            out.append(line)
    return "\n".join(out)


def test_render_matches_kube_proxys_transaction_exactly():
    p = kube_proxy_plan()  # its node1 holds 10.180.0.5, as kube-proxy's test-node does
    nodes = tuple(dataclasses.replace(n, ip=IPv4Address("192.168.0.2" if n.name == "node1" else "192.168.0.3"))
                  for n in p.nodes)
    p = dataclasses.replace(p, nodes=nodes,
                            cluster=dataclasses.replace(p.cluster, service_subnet=IPv4Network("172.30.0.0/16")))
    ours = kube_proxy_sorted(one_element_a_line(render_nftables(p, "node1", vmap=True)))
    theirs = kube_proxy_sorted(EXPECTED.read_text())
    assert ours == theirs, "\n".join(difflib.unified_diff(theirs, ours, "kube-proxy", "render", lineterm=""))


def test_the_comparison_sees_a_changed_line():
    text = EXPECTED.read_text()
    changed = text.replace("ip saddr != { 203.0.113.0/25 } drop", "ip saddr != { 203.0.113.0/24 } drop")
    assert changed != text and kube_proxy_sorted(changed) != kube_proxy_sorted(text)
    swapped = text.replace("masquerading mark set mark xor 0x4000", "masquerading X").replace(
        "masquerading masquerade fully-random", "masquerading mark set mark xor 0x4000").replace(
        "masquerading X", "masquerading masquerade fully-random")
    assert kube_proxy_sorted(swapped) != kube_proxy_sorted(text)  # rule order within a chain counts
