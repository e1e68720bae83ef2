"""`kubenet-lab check`: test what the running lab promises with real traffic.

The expectations come from the lab's plan (inspect.expectations, pure); every request is a real
packet or connection sent from inside the source's network namespace (kernel.probe: sockets
opened there, all of them at once on one asyncio loop, no process per probe); the answers are
judged (inspect.verdicts) and reported (inspect.checkreport). Only the lab's own namespaces send
and receive anything.
"""
from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from ..fabric import checks, state
from ..inspect import checkreport
from ..inspect.conversations import complete, question
from ..inspect.expectations import FAIL, FULL_PAIRS_UP_TO, ICMP, Expectation, expectations, who
from ..inspect.verdicts import Result, judge
from ..kernel import probe
from ..model.objects import Plan
from ..plan import ordering
from .query import pod_status, running_plan

REACH_TIMEOUT = 2.0  # seconds a request that must succeed may take
FAIL_TIMEOUT = 1.0   # seconds of silence that count as "did not reach" (a DROP answers nothing)
CONCURRENCY = 256    # requests in flight at once


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
        outcomes = await asyncio.gather(*(request(exp, payload, read, what) for _ in range(exp.requests)))
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


def where_it_broke(plan: Plan, result: Result) -> str:
    """HOOK(trace): the first hop where a failed probe broke.

    Until `kubenet-lab trace` can explain a connection from the live kernel, this names the hop
    the packet itself tells of: the sender of an ICMP error (a node whose route is gone answers
    "network unreachable"), by its lab name. Once trace lands, ask it here for the path of
    result.expectation (src_netns, dst_ip, port, proto) and return its first failing hop."""
    hop = result.hop
    if not hop:
        return ""
    name = who(plan, hop)
    return f"{name} ({hop})" if name else hop


class Progress:
    """`check: 37/120` on stderr while it runs, on a terminal only."""

    def __init__(self, total: int, show: bool):
        self.total, self.done, self.show, self.last = total, 0, show, 0.0

    def tick(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.show and (now - self.last > 0.1 or self.done == self.total):
            self.last = now
            sys.stderr.write(f"\rcheck: {self.done}/{self.total} expectations probed")
            sys.stderr.flush()

    def end(self) -> None:
        if self.show:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def check(lab: str, full: bool = False, progress: bool = False) -> Report:
    checks.require_root("check")
    start = time.monotonic()
    plan = running_plan(lab)
    not_running = ordering.not_created(pod_status(lab)) | state.terminal(lab)
    exps = expectations(plan, full, not_running, state.not_ready(lab))
    shown = Progress(len(exps), progress)
    try:
        results = asyncio.run(_run(exps, shown.tick))
    finally:
        shown.end()
    results = [_with_hop(plan, r) if r.hop else r for r in results]
    sampled = not full and sum(1 for p in plan.pods if not p.host_network) > FULL_PAIRS_UP_TO
    return Report(lab, tuple(results), time.monotonic() - start, sampled)


def _with_hop(plan: Plan, r: Result) -> Result:
    from dataclasses import replace
    return replace(r, hop=where_it_broke(plan, r))


def render(report: Report, fmt: str | None) -> str:
    if fmt == "json":
        return checkreport.as_json(report.lab, report.results, report.seconds, report.sampled)
    out = checkreport.table(report.results)
    out += checkreport.failures(report.results)
    return out + checkreport.summary(report.results, report.seconds, report.sampled) + "\n"
