"""A StatefulSet's ordered start (podManagementPolicy OrderedReady, the default), pure.

The StatefulSet controller (pkg/controller/statefulset/stateful_set_control.go) walks its pods
in ordinal order and, under OrderedReady, creates a missing pod only when every pod before it
exists and is Running and Ready; it stops at the first one that is not. It only gates creation:
a pod once created keeps running when one before it later turns unready. Parallel creates them
all at once.

In the lab `up` builds every planned pod's namespace and address; the plan names, for each such
pod, the one it is created after (`PlannedPod.created_after`, the previous ordinal), and the
supervisor starts its containers only once `may_create` holds. Until then the pod does not
exist: `get` leaves it out and it is no endpoint (no rules, no DNS records).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Collection, Mapping

from ..model.objects import Plan


def may_create(pod: str, created_after: Mapping[str, str | None], ready: Callable[[str], bool]) -> bool:
    """Whether the controller creates `pod` ("ns/name") now: every pod of the chain it is
    created after (`created_after`: pod -> the pod before it, None for the first) is Running
    and Ready (`ready`: created, Running and Ready; False for a pod that does not exist)."""
    seen = {pod}
    before = created_after.get(pod)
    while before is not None:
        if before in seen or not ready(before):  # a loop cannot be planned; never start one
            return False
        seen.add(before)
        before = created_after.get(before)
    return True


def waiting_at_start(plan: Plan, previous: Plan | None) -> frozenset[str]:
    """The pods of `plan` that `up` makes anew (not in `previous`, or made again: another uid)
    and that are created after another: they wait, so the rules `up` loads leave them out until
    the supervisor has created them."""
    before = {p.key: p.uid for p in previous.pods} if previous is not None else {}
    return frozenset(p.key for p in plan.pods if p.created_after is not None and before.get(p.key) != p.uid)


def not_created(status: Mapping[str, object]) -> frozenset[str]:
    """The pods the supervisor's status says it has not created yet (waiting for the pods before
    them): `{"ns/name": {"created": false, ...}}`. A status without the field: created."""
    return frozenset(k for k, st in status.items() if isinstance(st, Mapping) and st.get("created") is False)


def without_pods(plan: Plan, pods: Collection[str]) -> Plan:
    """`plan` as the API server would list it while `pods` do not exist yet: without them."""
    if not pods or not any(p.key in pods for p in plan.pods):
        return plan
    return dataclasses.replace(plan, pods=tuple(p for p in plan.pods if p.key not in pods), services=tuple(
        dataclasses.replace(s, addresses=tuple(e for e in s.addresses if e.pod not in pods)) if s.addresses else s
        for s in plan.services))
