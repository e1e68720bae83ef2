"""The renderers' tests trace packets through rules rendered for one node (no kernel): the
simulator of kubenet_lab/inspect/trace.py, which `kubenet-lab trace` runs over live rules."""
from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from typing import Iterable, Mapping

from kubenet_lab.inspect.trace import Trace, _State, parse_iptables, parse_nftables, trace_packet


class Tracer:
    """Traces packets through one node's rendered ruleset."""

    def __init__(self, text: str, mode: str, local_ips: Iterable[str]):
        self.rules = parse_iptables(text) if mode == "iptables" else parse_nftables(text)
        self.local = frozenset(str(ip) for ip in local_ips) | {"127.0.0.1"}

    def trace(self, src: str, dst: str, dport: int, proto: str = "tcp", source: str = "pod",
              known: Mapping[str, float] | None = None) -> Trace:
        """`source`: "pod" or "external" (arrives at the node: PREROUTING), "node" (sent by a
        process of the node: OUTPUT). A destination is local when it is one of `local_ips`."""
        st = _State(IPv4Address(src), IPv4Address(dst), proto.lower(), dport, self.local,
                    dict(known or {}))
        return trace_packet(self.rules, st, source)


def for_node(plan, node: str, mode: str, ended=(), **render_kw) -> Tracer:
    """Render `mode` for `node` and trace over it, with the CNI portmap plugin's rules for the
    pods there (proxy.portmap: loaded after kube-proxy's, as on a node; `ended`: pods without a
    sandbox); the node's IP and bridge address are local."""
    from kubenet_lab.proxy import portmap
    from kubenet_lab.proxy.iptables import render_iptables
    from kubenet_lab.proxy.nftables import render_nftables
    render = render_iptables if mode == "iptables" else render_nftables
    n = plan.node(node)
    plan = replace(plan, cluster=replace(plan.cluster, kube_proxy_mode=mode))  # portmap's backend
    text = render(plan, node, **render_kw) + portmap.render(plan, node, ended).text()
    return Tracer(text, mode, [str(n.ip), str(n.gateway)])
