"""`check`'s expectations under the lab's NetworkPolicies (pure): a probe the policies deny must
fail (time out: the table drops), judged by the oracle (policy.verdict) as the table judges it,
at the endpoint pod after a Service's DNAT. What the oracle cannot decide alone is left out
rather than guessed: a Service some of whose endpoints the policies deny (the balancer's choice
decides each connection), and a client outside the cluster reaching an isolated endpoint (the
endpoint sees it masqueraded or not depending on the node it came in by)."""
from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address
from typing import Iterable

from ..model.objects import Plan, PlannedService
from ..policy.select import INGRESS, isolating
from ..policy.verdict import End, ends, verdict
from .expectations import FAIL, Expectation

_VIA_SERVICE = ("service", "dns", "nodeport", "loadbalancer")


def with_policies(plan: Plan, exps: Iterable[Expectation]) -> list[Expectation]:
    exps = list(exps)
    if not plan.network_policies:
        return exps
    known = ends(plan)
    by_ip = {str(s.cluster_ip): s for s in plan.services if s.cluster_ip is not None}
    lb_ips = {str(ip): s for s in plan.services for ip in s.load_balancer_ips}
    out = []
    for e in exps:
        src = known.get(IPv4Address(e.src_ip), End(IPv4Address(e.src_ip))) if e.src_ip else None
        if src is None:
            out.append(e)
            continue
        if e.kind == "pod-pod":
            dst = known.get(IPv4Address(e.dst_ip), End(IPv4Address(e.dst_ip)))
            v = verdict(plan, src, dst, e.proto.upper(), e.port)
            out.append(e if v.allowed or e.must == FAIL else _denied(e, v.reason))
            continue
        svc = lb_ips.get(e.dst_ip) if e.kind == "loadbalancer" else by_ip.get(e.dst_ip)
        if e.kind == "nodeport":
            svc = next((s for s in plan.services if any(p.node_port == e.port for p in s.ports)), None)
        if e.kind not in _VIA_SERVICE or svc is None:
            out.append(e)
            continue
        kept = _through_service(plan, e, src, svc, known)
        if kept is not None:
            out.append(kept)
    return out


def _denied(e: Expectation, reason: str) -> Expectation:
    return dataclasses.replace(e, must=FAIL, why=f"networkpolicy: {reason}", refused=False, answers=frozenset(),
                               every=False, source_ip="")


def _through_service(plan: Plan, e: Expectation, src: End, svc: PlannedService,
                     known: dict[IPv4Address, End]) -> Expectation | None:
    port = next((p for p in svc.ports if p.protocol.lower() == e.proto
                 and (p.node_port if e.kind == "nodeport" else p.port) == e.port), None)
    if port is None:
        return e
    if e.must == FAIL:  # refused by kube-proxy, unless the client's own egress drops it first
        v = verdict(plan, src, End(IPv4Address(e.dst_ip)), e.proto.upper(), e.port)
        return e if v.egress.allowed else dataclasses.replace(e, refused=False)
    endpoints = [ep for ep in port.endpoints if ep.ready]
    if e.kind in ("nodeport", "loadbalancer") or src.pod is None and src.node is None:
        isolated = [ep for ep in endpoints if (p := known.get(ep.ip)) is not None and p.pod is not None
                    and isolating(plan.network_policies, p.pod, INGRESS)]
        return e if not isolated else None
    verdicts = [verdict(plan, src, known.get(ep.ip, End(ep.ip)), e.proto.upper(), ep.port) for ep in endpoints]
    if all(v.allowed for v in verdicts):
        return e
    if not any(v.allowed for v in verdicts):
        return _denied(e, verdicts[0].reason)
    return None
