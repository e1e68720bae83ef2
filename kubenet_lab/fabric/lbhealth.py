"""The lab's balancer's health checks: real HTTP probes from its namespace to every node's
healthCheckNodePort (proxy.lb.health_checks), and the results the balancer's table was last
made with (<state_dir>/lb-health.json: "ns/name" -> the nodes that passed).

Every probe is a socket opened in the balancer's namespace (kernel.probe), all at once; one that
times out, is refused or answers anything but 200 fails, as a cloud balancer counts it.
"""
from __future__ import annotations

import asyncio
import json
import os

from ..kernel import probe
from ..model.objects import Plan
from ..plan import naming
from ..proxy.lb import HealthCheck, health_checks, passes, passing
from . import state

PROBE_TIMEOUT = 1.0  # seconds
RESULTS_FILE = "lb-health.json"


async def _one(netns: str, check: HealthCheck, timeout: float) -> bool:
    out = await probe.stream(netns, str(check.ip), check.port, check.request(), timeout,
                             complete=lambda data: b"\r\n" in data)
    return out.reached and passes(out.data)


async def probe_all(plan: Plan, timeout: float = PROBE_TIMEOUT) -> dict[str, frozenset[str]]:
    """Every health check of `plan`, made now: "ns/name" -> the nodes that passed."""
    checks = health_checks(plan)
    if not checks:
        return {}
    netns = naming.lb_netns(plan.lab)
    oks = await asyncio.gather(*(_one(netns, c, timeout) for c in checks))
    return passing(dict(zip(checks, oks)))


def probe_now(plan: Plan, timeout: float = PROBE_TIMEOUT) -> dict[str, frozenset[str]]:
    """probe_all, for a caller without an event loop."""
    return asyncio.run(probe_all(plan, timeout)) if health_checks(plan) else {}


def _path(lab: str) -> str:
    return os.path.join(state.state_dir(lab), RESULTS_FILE)


def saved(lab: str) -> dict[str, frozenset[str]]:
    """The results the balancer's table was last made with ({} when none)."""
    try:
        with open(_path(lab)) as f:
            data = json.load(f)
        return {str(k): frozenset(str(n) for n in v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def save(lab: str, results: dict[str, frozenset[str]]) -> None:
    state.write_atomic(_path(lab), json.dumps({k: sorted(v) for k, v in sorted(results.items())}))
