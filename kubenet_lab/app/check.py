"""`kubenet-lab check`: test what the running lab promises with real traffic.

The expectations come from the lab's plan (inspect.expectations, pure); every request is a real
packet or connection sent from inside the source's network namespace (kernel.probe: sockets
opened there, all of them at once on one asyncio loop, no process per probe); the answers are
judged (inspect.verdicts) and reported (inspect.checkreport). Only the lab's own namespaces send
and receive anything.
"""
from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from ..errors import LabError
from ..progress import Status
from ..dataplane import wiring
from ..fabric import checks, cni, state
from ..inspect import checkreport
from ..inspect.conversations import complete, question, understand
from ..inspect.expectations import (FAIL, FULL_PAIRS_UP_TO, ICMP, REACH, Expectation, expectations,
                                     neighbours_needed, who)
from ..inspect.verdicts import Result, judge
from ..kernel import probe
from ..model.objects import Plan
from ..plan import ordering
from .query import pod_status, running_plan

REACH_TIMEOUT = 5.0  # seconds a request that must succeed may take (a loaded machine, a SYN lost twice)
FAIL_TIMEOUT = 1.0   # seconds of silence that count as "did not reach" (a DROP answers nothing)
CONCURRENCY = 256    # requests in flight at once
EVERY_ROUNDS = 8     # --full: rounds of requests at most until every endpoint answered


@dataclass(frozen=True)
class Report:
    lab: str
    results: tuple[Result, ...]
    seconds: float
    sampled: bool

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


async def _one(exp: Expectation, payload: bytes | None, read: bool, what: str) -> probe.Outcome:
    timeout = FAIL_TIMEOUT if exp.must == FAIL else REACH_TIMEOUT
    if exp.talk == ICMP:
        return await probe.echo(exp.src_netns, exp.dst_ip, timeout)
    if exp.proto == "udp":
        return await probe.datagram(exp.src_netns, exp.dst_ip, exp.port, payload or b"", timeout)
    return await probe.stream(exp.src_netns, exp.dst_ip, exp.port, payload, timeout, read=read,
                              complete=complete(what, exp.proto))


async def _run(exps: Sequence[Expectation], tick: Callable[[], None]) -> list[Result]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def request(exp, payload, read, what):
        async with gate:
            try:
                return await _one(exp, payload, read, what)
            except OSError as e:  # the source's namespace is gone, ...
                return probe.Outcome(False, error=f"could not probe from {exp.src_netns}: {e.strerror or e}")

    async def expectation(exp: Expectation) -> Result:
        payload, what = question(exp)
        read = payload is not None or what == "hostname"
        outcomes = list(await asyncio.gather(*(request(exp, payload, read, what) for _ in range(exp.requests))))
        rounds = 1
        while exp.every and rounds < EVERY_ROUNDS and _missing(exp, what, outcomes):
            # random balancing: each round gives an endpoint not seen yet a new chance
            outcomes += await asyncio.gather(*(request(exp, payload, read, what) for _ in range(exp.requests)))
            rounds += 1
        tick()
        return judge(exp, what, outcomes)

    # Refusals first, on their own: a REJECT answers with an ICMP error, and a node sends a
    # client only a few of those a second (icmp_ratelimit), which a broken route spends at once.
    first = [i for i, e in enumerate(exps) if e.refused]
    rest = [i for i, e in enumerate(exps) if not e.refused]
    results: dict[int, Result] = {}
    for phase in (first, rest):
        for i, r in zip(phase, await asyncio.gather(*(expectation(exps[i]) for i in phase))):
            results[i] = r
    return [results[i] for i in range(len(exps))]


def _missing(exp: Expectation, what: str, outcomes: Sequence[probe.Outcome]) -> bool:
    """Whether an endpoint of `exp.answers` has not answered yet (and every request reached)."""
    if not all(o.reached and not o.error for o in outcomes):
        return False
    seen = set()
    for o in outcomes:
        with contextlib.suppress(ValueError, IndexError, UnicodeError):
            seen.add(understand(what, exp.proto, o.data))
    return bool(exp.answers - seen)


SERVICE_KINDS = ("service", "nodeport", "loadbalancer")
MAX_TRACED = 64  # failed expectations explained by trace at most (the rest: what the packet told)


def where_it_broke(plan: Plan, results: Sequence[Result]) -> list[Result]:
    """Each failed result with the first hop where its packet broke, as `trace` explains it from
    the live kernel (one snapshot of the lab for all of them): the hop whose route, rule or
    neighbour ends the request, or, when the request gets through, the hop that ends the answer
    on its way back. Where trace has nothing to say, the sender of the ICMP error the probe got
    (a REJECT's node, a router without a route) by its lab name."""
    failed = [i for i, r in enumerate(results) if not r.ok and r.expectation.must != FAIL][:MAX_TRACED]
    explained: dict[int, str] = {}
    if failed:
        explained = _traced(plan, [results[i].expectation for i in failed], failed)
    out = []
    for i, r in enumerate(results):
        if r.ok:  # what must fail did: who stopped it is part of what was seen
            out.append(replace(r, observed=f"{r.observed} by {_named(plan, r.hop)}", hop="") if r.hop else r)
            continue
        hop = explained.get(i) or _named(plan, r.hop)
        out.append(replace(r, hop=hop) if hop != r.hop else r)
    return out


def _named(plan: Plan, ip: str) -> str:
    if not ip:
        return ""
    name = who(plan, ip)
    return f"{name} ({ip})" if name else ip


def _traced(plan: Plan, exps: Sequence[Expectation], keys: Sequence[int]) -> dict[int, str]:
    from ..inspect import path as paths
    from ..kernel import netstate
    from . import trace as tracing

    out: dict[int, str] = {}
    try:
        with contextlib.closing(netstate.Reader()) as reader:
            snap = tracing.read_snapshot(plan, reader)
            for key, exp in zip(keys, exps):
                if exp.src_netns in snap.spaces:
                    out[key] = first_broken_hop(paths, snap, exp)
    except (OSError, LabError, ValueError, KeyError) as e:  # the lab changed under us: keep what the packets told
        print(f"warning: trace could not explain the failures: {e}", file=sys.stderr)
    return out


def first_broken_hop(paths, snap, exp: Expectation) -> str:
    """Trace the expectation's first packet (and, when it gets through, the answer back), and
    name the hop that ends the likeliest branch that dies: "node1: no route to ...",
    "node1: rejected by ...". "" when trace sees the packet delivered both ways."""
    pkt = paths.Packet("", exp.dst_ip, exp.port, exp.proto)
    result = paths.trace(snap, exp.src_netns, pkt, exp.src, exp.dst)
    dead = [b for b in result.branches if b.outcome != "delivered"]
    if dead:
        text = _hop_text(dead[0])
        if exp.kind in SERVICE_KINDS and not any(n.dnat for h in dead[0].hops for n in h.netfilter):
            node = next((h for h in dead[0].hops if h.role == "node"), None)
            if node is not None and node is not dead[0].hops[-1]:
                text = f"{node.name}: no rule translated {exp.dst_ip}:{exp.port} to an endpoint; then {text}"
        return text
    for b in result.branches:  # delivered: does the answer find its way back?
        last = b.hops[-1]
        if not b.seen_source or not b.endpoint:
            continue
        back = paths.trace(snap, last.netns, paths.Packet(b.endpoint.rsplit(":", 1)[0], b.seen_source, 0, "icmp"),
                           last.name, exp.src)
        lost = [a for a in back.branches if a.outcome != "delivered"]
        if lost:
            return "the answer: " + _hop_text(lost[0])
    return ""


def _hop_text(branch) -> str:
    hop = branch.hops[-1]
    share = f" ({branch.probability:.0%} of connections)" if branch.probability < 0.995 else ""
    return f"{hop.name}: {hop.end}{share}"


class Progress:
    """`check: 37/120 expectations probed` on stderr while it runs, on a terminal only (the
    status line of up, apply and down: progress.Status)."""

    def __init__(self, total: int, show: bool):
        self.total, self.done, self.last = total, 0, 0.0
        self.status = Status(show)

    def tick(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last > 0.1 or self.done == self.total:
            self.last = now
            self.status.update(f"check: {self.done}/{self.total} expectations probed")

    def end(self) -> None:
        self.status.clear()


NEIGH_LIMIT = "/proc/sys/net/ipv4/neigh/default/gc_thresh3"


def _warn_neighbours(needed: int) -> None:
    """Say so before probing when the probes need more ARP entries than the kernel keeps (its
    neighbour table is one for all namespaces): pairs past the limit fail as the kernel drops
    them ("neighbor table overflow" in dmesg), as they would on a node of that size."""
    try:
        with open(NEIGH_LIMIT) as f:
            limit = int(f.read())
    except (OSError, ValueError):
        return
    if needed > limit:
        print(f"warning: these probes need about {needed} ARP entries at once, more than the kernel's "
              f"neighbour table holds for all namespaces together (net.ipv4.neigh.default.gc_thresh3 = {limit}): "
              f"some pairs will fail with 'no buffer space available' or time out; check without --full samples "
              f"pairs", file=sys.stderr)


def check(lab: str, full: bool = False, progress: bool = False) -> Report:
    checks.require_root("check")
    start = time.monotonic()
    plan = running_plan(lab)
    not_running = ordering.not_created(pod_status(lab)) | state.terminal(lab)
    exps = expectations(plan, full, not_running, state.not_ready(lab))
    _warn_neighbours(neighbours_needed(plan, exps))
    shown = Progress(len(exps), progress)
    try:
        results = asyncio.run(_run(exps, shown.tick))
    finally:
        shown.end()
    results = where_it_broke(plan, results) + _cni_checks(plan, not_running)
    sampled = not full and sum(1 for p in plan.pods if not p.host_network) > FULL_PAIRS_UP_TO
    return Report(lab, tuple(results), time.monotonic() - start, sampled)


def _cni_checks(plan: Plan, not_running: frozenset[str] | set[str]) -> list[Result]:
    """With wiring cni, the plugins' CHECK of every pod wired (with the cached result of its ADD):
    one result each, the plugin's own message when it finds the pod otherwise."""
    if plan.cluster.wiring != wiring.CNI:
        return []
    pods = [p for p in plan.pods if not p.host_network and p.key not in not_running]
    why = "CNI CHECK: the plugins find the pod's interface, address and routes as their ADD made them"

    def one(pod) -> Result:
        error = cni.check_pod(plan, pod)
        exp = Expectation("cni", f"pod/{pod.namespace}/{pod.name}", f"{pod.netns} eth0", 0, "cni", REACH, why,
                          src_netns=pod.netns, src_ip=str(pod.ip), dst_ip=str(pod.ip))
        return Result(exp, error is None, error or "CHECK passed")

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, pods))


def render(report: Report, fmt: str | None) -> str:
    if fmt == "json":
        return checkreport.as_json(report.lab, report.results, report.seconds, report.sampled)
    out = checkreport.table(report.results)
    out += checkreport.failures(report.results)
    return out + checkreport.summary(report.results, report.seconds, report.sampled) + "\n"
