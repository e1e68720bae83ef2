"""kube-proxy's iptables-mode ruleset for one node, as `iptables-restore --noflush` input.

Laid out as kube-proxy (1.28+) writes it: the fixed KUBE-* chains, then per service port the
KUBE-SVC/SVL/EXT/SEP chains under kube-proxy's own hash names, rules in kube-proxy's argument
order. The jumps from the built-in chains are `-I` lines; `system.rules.apply_rules` drops those
already present so that re-applying never duplicates them (kube-proxy's EnsureRule). Stale
service chains are removed at apply time too, since only the kernel knows what exists.
"""
from __future__ import annotations

from kubenet_lab.plan.model import Plan
from kubenet_lab.render import names
from kubenet_lab.render.endpoints import PortView, ep_string, port_views, total_endpoints

MASQ_MARK = "0x4000"
# Above this many endpoints kube-proxy leaves out per-endpoint comments ("large cluster mode").
LARGE_CLUSTER_ENDPOINTS = 1000

FILTER_CHAINS = ("KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD",
                 "KUBE-PROXY-FIREWALL")
NAT_CHAINS = ("KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-MARK-MASQ", "KUBE-POSTROUTING")

_NEW = "-m conntrack --ctstate NEW "
# (table, built-in chain, extra match, comment, target), in kube-proxy's EnsureRule order; each
# is prepended, so the last one listed for a chain ends up first, as on a real node.
JUMPS = (
    ("filter", "INPUT", _NEW, "kubernetes externally-visible service portals", "KUBE-EXTERNAL-SERVICES"),
    ("filter", "FORWARD", _NEW, "kubernetes externally-visible service portals", "KUBE-EXTERNAL-SERVICES"),
    ("filter", "INPUT", "", "kubernetes health check service ports", "KUBE-NODEPORTS"),
    ("filter", "FORWARD", _NEW, "kubernetes service portals", "KUBE-SERVICES"),
    ("filter", "OUTPUT", _NEW, "kubernetes service portals", "KUBE-SERVICES"),
    ("filter", "FORWARD", "", "kubernetes forwarding rules", "KUBE-FORWARD"),
    ("filter", "INPUT", _NEW, "kubernetes load balancer firewall", "KUBE-PROXY-FIREWALL"),
    ("filter", "OUTPUT", _NEW, "kubernetes load balancer firewall", "KUBE-PROXY-FIREWALL"),
    ("filter", "FORWARD", _NEW, "kubernetes load balancer firewall", "KUBE-PROXY-FIREWALL"),
    ("nat", "OUTPUT", "", "kubernetes service portals", "KUBE-SERVICES"),
    ("nat", "PREROUTING", "", "kubernetes service portals", "KUBE-SERVICES"),
    ("nat", "POSTROUTING", "", "kubernetes postrouting rules", "KUBE-POSTROUTING"),
)


def jump_lines(table: str) -> list[str]:
    return [f'-I {chain} 1 {extra}-m comment --comment "{comment}" -j {target}'
            for t, chain, extra, comment, target in JUMPS if t == table]


def _static_filter() -> list[str]:
    return [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" '
        f"-m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]


def _static_nat() -> list[str]:
    return [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
    ]


class _Out:
    """The four buffers kube-proxy fills: chain declarations and rules, per table."""

    def __init__(self) -> None:
        self.filter_chains = [f":{c} - [0:0]" for c in FILTER_CHAINS]
        self.filter_rules: list[str] = []
        self.nat_chains = [f":{c} - [0:0]" for c in NAT_CHAINS]
        self.nat_rules: list[str] = []
        self.services: list[str] = []  # KUBE-SERVICES nat rules, kept together for readability
        self.nodeports: list[str] = []

    def chain(self, name: str) -> None:
        self.nat_chains.append(f":{name} - [0:0]")


def render_iptables(plan: Plan, node: str) -> str:
    out = _Out()
    pod_cidr = str(plan.cluster.pod_subnet)
    comments = total_endpoints(plan) <= LARGE_CLUSTER_ENDPOINTS
    for view in port_views(plan, node):
        _service_port(out, view, pod_cidr, comments)
    out.services.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must '
        'be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    lines = ["*filter", *out.filter_chains, *jump_lines("filter"), *out.filter_rules,
             *_static_filter(), "COMMIT",
             "*nat", *out.nat_chains, *jump_lines("nat"), *out.services, *out.nodeports,
             *_static_nat(), *out.nat_rules, "COMMIT", ""]
    return "\n".join(lines)


def _chain_names(v: PortView) -> tuple[str, str, str]:
    ns, name, port = v.svc.namespace, v.svc.name, v.port.name
    return (names.svc_chain(ns, name, port, v.proto), names.svl_chain(ns, name, port, v.proto),
            names.ext_chain(ns, name, port, v.proto))


def _match(v: PortView, ip: str, port: int) -> str:
    return f"-m {v.proto} -p {v.proto} -d {ip} --dport {port}"


def _service_port(out: _Out, v: PortView, pod_cidr: str, comments: bool) -> None:
    svc_chain, svl_chain, ext_chain = _chain_names(v)
    seps = {ep_string(ep): names.sep_chain(v.svc.namespace, v.svc.name, v.port.name, v.proto,
                                           ep_string(ep)) for ep in v.reachable}
    for ep, chain in seps.items():
        out.chain(chain)
        _endpoint_chain(out, v, ep, chain, comments)
    if v.uses_cluster_chain:
        out.chain(svc_chain)
    if v.uses_local_chain:
        out.chain(svl_chain)
    if v.uses_external_chain:
        out.chain(ext_chain)
        _external_chain(out, v, ext_chain, svc_chain, svl_chain, pod_cidr)
    _dispatch(out, v, svc_chain, svl_chain, ext_chain, pod_cidr)
    if v.uses_cluster_chain:
        _balance(out, v, svc_chain, v.cluster_eps, seps, comments)
    if v.uses_local_chain:
        _balance(out, v, svl_chain, v.local_eps, seps, comments)


def _endpoint_chain(out: _Out, v: PortView, ep: str, chain: str, comments: bool) -> None:
    head = f"-A {chain} -m comment --comment {v.spn}" if comments else f"-A {chain}"
    out.nat_rules.append(f"{head} -s {ep.rpartition(':')[0]} -j KUBE-MARK-MASQ")
    recent = f" -m recent --name {chain} --set" if v.svc.session_affinity == "ClientIP" else ""
    out.nat_rules.append(f"{head}{recent} -m {v.proto} -p {v.proto} -j DNAT --to-destination {ep}")


def _external_chain(out: _Out, v: PortView, ext: str, svc: str, svl: str, pod_cidr: str) -> None:
    if not v.external_local:
        out.nat_rules.append(f'-A {ext} -m comment --comment "masquerade traffic for {v.spn} '
                             'external destinations" -j KUBE-MARK-MASQ')
    else:
        out.nat_rules += [
            f'-A {ext} -m comment --comment "pod traffic for {v.spn} external destinations" '
            f"-s {pod_cidr} -j {svc}",
            f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {v.spn} external '
            'destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
            f'-A {ext} -m comment --comment "route LOCAL traffic for {v.spn} external '
            f'destinations" -m addrtype --src-type LOCAL -j {svc}',
        ]
    if v.has_external:
        out.nat_rules.append(f"-A {ext} -j {svl if v.external_local else svc}")


def _dispatch(out: _Out, v: PortView, svc: str, svl: str, ext: str, pod_cidr: str) -> None:
    """The entry rules: cluster IP, external IPs, LB IPs, node port; or the filter verdicts."""
    if not v.has_endpoints:
        int_target = ext_target = "REJECT"
        int_note = ext_note = "has no endpoints"
    else:
        int_target = "" if v.has_internal else "DROP"
        ext_target = "" if v.has_external else "DROP"
        int_note = ext_note = "has no local endpoints"
    internal = svl if v.internal_local else svc
    cip = _match(v, v.cluster_ip, v.port.port)
    if v.has_internal:
        out.services.append(f'-A KUBE-SERVICES -m comment --comment "{v.spn} cluster IP" {cip} '
                            f"-j {internal}")
        out.nat_rules.append(f'-A {internal} -m comment --comment "{v.spn} cluster IP" {cip} '
                             f"! -s {pod_cidr} -j KUBE-MARK-MASQ")
    else:
        out.filter_rules.append(f'-A KUBE-SERVICES -m comment --comment "{v.spn} {int_note}" '
                                f"{cip} -j {int_target}")
    for kind, ips in (("external IP", v.external_ips), ("loadbalancer IP", v.lb_ips)):
        for ip in ips:
            if v.has_endpoints:
                out.services.append(f'-A KUBE-SERVICES -m comment --comment "{v.spn} {kind}" '
                                    f"{_match(v, ip, v.port.port)} -j {ext}")
            if not v.has_external:
                out.filter_rules.append(
                    f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{v.spn} {ext_note}" '
                    f"{_match(v, ip, v.port.port)} -j {ext_target}")
    if v.node_port:
        if v.has_endpoints:
            out.nodeports.append(f"-A KUBE-NODEPORTS -m comment --comment {v.spn} -m {v.proto} "
                                 f"-p {v.proto} --dport {v.node_port} -j {ext}")
        if not v.has_external:
            out.filter_rules.append(
                f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{v.spn} {ext_note}" '
                f"-m addrtype --dst-type LOCAL -m {v.proto} -p {v.proto} --dport {v.node_port} "
                f"-j {ext_target}")


def probability(n: int) -> str:
    """kube-proxy's computeProbability: 1/n with ten decimals."""
    return f"{1.0 / n:0.10f}"


def _balance(out: _Out, v: PortView, chain: str, eps, seps: dict[str, str], comments: bool) -> None:
    keys = [ep_string(ep) for ep in eps]

    def head(ep: str) -> str:
        return f'-A {chain} -m comment --comment "{v.spn} -> {ep}"' if comments else f"-A {chain}"

    if v.svc.session_affinity == "ClientIP":
        for ep in keys:
            out.nat_rules.append(f"{head(ep)} -m recent --name {seps[ep]} --rcheck --seconds "
                                 f"{v.svc.affinity_timeout} --reap -j {seps[ep]}")
    n = len(keys)
    for i, ep in enumerate(keys):
        stat = f" -m statistic --mode random --probability {probability(n - i)}" if i < n - 1 else ""
        out.nat_rules.append(f"{head(ep)}{stat} -j {seps[ep]}")
