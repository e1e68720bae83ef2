"""The Deployment controller's rollouts, pure: which ReplicaSets a Deployment has and how many pods
each is to have now, one step at a time, as pkg/controller/deployment does it.

A Deployment's pods come from the ReplicaSet of its current template (named by the
pod-template-hash). When the template changes, a new ReplicaSet is made and the old ones are
scaled down as the new one's pods become ready: under RollingUpdate never more than
`replicas + maxSurge` pods in all and never fewer than `replicas - maxUnavailable` available;
under Recreate the old pods all go first. Each call to `step` is one sync of the controller; the
lab calls it again whenever readiness changes (the supervisor's readiness sync), until the
rollout is complete. Old ReplicaSets are kept at 0 replicas (revisionHistoryLimit), with their
template, so `rollout undo` can go back to one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

from ..model.objects import Plan, PlannedWorkload, Workload
from . import naming

HISTORY = 10  # revisionHistoryLimit's default: old ReplicaSets kept at 0 replicas


@dataclass(frozen=True)
class ReplicaSetState:
    name: str
    size: int  # spec.replicas now
    ready: int  # its pods that are ready (available: minReadySeconds is not modelled)


def rs_name(w: Workload) -> str:
    return f"{w.name}-{naming.pod_template_hash(w.template_raw)}"[: naming.MAX_LABEL]


def resolve(value: int | str, replicas: int, round_up: bool) -> int:
    """An int-or-percent of `replicas` (intstr.GetScaledValueFromIntOrPercent)."""
    if isinstance(value, int):
        return value
    scaled = int(value.rstrip("%")) * replicas / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def surge_and_unavailable(w: Workload) -> tuple[int, int]:
    """maxSurge rounds up, maxUnavailable down; both 0 makes maxUnavailable 1 (ResolveFenceposts)."""
    surge = resolve(w.max_surge, w.replicas, True)
    unavailable = resolve(w.max_unavailable, w.replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def step(w: Workload, new: ReplicaSetState, old: list[ReplicaSetState]) -> dict[str, int]:
    """One sync: the size of the new ReplicaSet and of each old one (oldest first in `old`)."""
    sizes = {new.name: new.size, **{o.name: o.size for o in old}}
    active = [o for o in old if o.size > 0]
    if not active:
        sizes[new.name] = w.replicas
        return sizes
    if w.strategy == "Recreate":
        if any(o.size for o in active):  # all old pods go first; the new ones once they are gone
            for o in active:
                sizes[o.name] = 0
            return sizes
        sizes[new.name] = w.replicas
        return sizes
    surge, unavailable = surge_and_unavailable(w)
    total = new.size + sum(o.size for o in active)
    # reconcileNewReplicaSet: scale up within replicas + maxSurge
    if new.size > w.replicas:
        sizes[new.name] = w.replicas
        return sizes
    room = w.replicas + surge - total
    if room > 0 and new.size < w.replicas:
        sizes[new.name] = min(new.size + room, w.replicas)
        return sizes
    # reconcileOldReplicaSets: scale down, never below replicas - maxUnavailable available
    min_available = w.replicas - unavailable
    new_unavailable = new.size - new.ready
    can_go = total - min_available - new_unavailable
    if can_go <= 0:
        return sizes
    # cleanupUnhealthyReplicas: the old pods that are not ready go first
    for o in active:
        unhealthy = min(o.size - o.ready, can_go)
        if unhealthy > 0:
            sizes[o.name] -= unhealthy
            can_go -= unhealthy
    available = new.ready + sum(o.ready for o in active)
    budget = min(can_go, available - min_available)
    for o in active:  # the oldest first
        if budget <= 0:
            break
        cut = min(sizes[o.name], budget)
        sizes[o.name] -= cut
        budget -= cut
    return sizes


@dataclass(frozen=True)
class Sets:
    """Every Deployment's ReplicaSets now ("ns/name" keys): their sizes, the Deployment version
    (template) that makes each one's pods, their revision, and each Deployment's current one."""
    sizes: dict[str, int]
    templates: dict[str, Workload]
    revisions: dict[str, int]
    current: dict[str, str]  # deployment "ns/name" -> its current ReplicaSet's key


def plan_sets(deployments: list[Workload], sizes: Mapping[str, int], templates: Mapping[str, Workload],
              revisions: Mapping[str, int], ready: Callable[[str], int]) -> Sets:
    """One controller sync for every Deployment, from what the previous plan kept (`sizes`,
    `templates`, `revisions` of its ReplicaSets) and `ready(key)`, the ready pods of each."""
    out = Sets({}, {}, {}, {})
    for w in deployments:
        cur = f"{w.namespace}/{rs_name(w)}"
        out.current[w.key] = cur
        mine = [k for k, t in templates.items() if (t.namespace, t.name) == (w.namespace, w.name)]
        latest = max(mine, key=lambda k: revisions.get(k, 0), default=None)
        top = max((revisions.get(k, 0) for k in mine), default=0)
        revision = revisions.get(cur, 0) if cur == latest else top + 1
        olds = sorted((k for k in mine if k != cur), key=lambda k: revisions.get(k, 0))
        if not mine:
            now = {cur: w.replicas}
        else:
            new = ReplicaSetState(cur, sizes.get(cur, 0), ready(cur))
            old = [ReplicaSetState(k, sizes.get(k, 0), ready(k)) for k in olds]
            now = step(w, new, old)
        kept = [k for k in olds if now[k] > 0] + [k for k in reversed(olds) if now[k] == 0][:HISTORY]
        for k in kept:
            out.sizes[k], out.templates[k], out.revisions[k] = now[k], templates[k], revisions.get(k, 0)
        out.sizes[cur], out.templates[cur], out.revisions[cur] = now[cur], w, max(revision, 1)
    return out


def rollout_in_progress(w: Workload, sets: Sets) -> bool:
    cur = sets.current[w.key]
    return sets.sizes.get(cur, 0) != w.replicas or any(
        size > 0 for k, size in sets.sizes.items() if k != cur and (sets.templates[k].namespace,
                                                                     sets.templates[k].name) == (w.namespace, w.name))


def rolling(plan: Plan) -> bool:
    """Some Deployment of `plan` is still rolling out: its current ReplicaSet is not at the
    Deployment's size, or an old one still has pods."""
    sets: dict[str, list[PlannedWorkload]] = {}
    for w in plan.workloads:
        if w.kind == "ReplicaSet" and w.owner is not None and w.owner.startswith("Deployment/"):
            sets.setdefault(f"{w.namespace}/{w.owner.split('/', 1)[1]}", []).append(w)
    for d in plan.workloads:
        if d.kind != "Deployment" or d.current_set is None:
            continue
        for rs in sets.get(d.key, []):
            if (rs.name == d.current_set and rs.replicas != d.replicas) or (rs.name != d.current_set and rs.replicas):
                return True
    return False
