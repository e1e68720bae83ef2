"""What a change would do, as data and text, without doing it (`--dry-run`): the namespaces,
links, addresses, routes and processes that would be made or removed going from the lab's
current plan to the new one, and a unified diff of every node's rules. Pure: the rule texts come
in already rendered."""
from __future__ import annotations

import difflib
from typing import Mapping

from ..dataplane.backends import node_network, node_routes
from ..dataplane.wiring import pods_rewired
from ..dataplane.backends.base import Route, Vxlan
from ..model.objects import Plan, PlannedContainer, PlannedPod, RunExec


def _route(r: Route) -> str:
    """As `ip route` shows it, the uplink's routes without their device (as before backends)."""
    return f"{r.dst} via {r.via}" + ("" if r.dev == "eth0" else f" dev {r.dev}") + (" onlink" if r.onlink else "")


def _device(d: Vxlan) -> str:
    """As `ip -d link` shows it, briefly."""
    return (f"{d.name} (vxlan id {d.vni} dstport {d.port} local {d.local}{'' if d.learning else ' nolearning'}"
            f" mtu {d.mtu}" + (f", a port of {d.master}" if d.master else "") + ")")


def _order(r: Route) -> tuple:
    return (r.dst, r.via, r.dev)


def _process(pod: PlannedPod, c: PlannedContainer) -> str:
    if isinstance(c.run, RunExec):
        what = " ".join(c.run.argv)
    else:
        what = f"built-in {type(c.run).__name__.removeprefix('Run').lower()} server"
    return f"{pod.namespace}/{pod.name} {c.name}: {what}"


def _pods(plan: Plan | None) -> dict[str, PlannedPod]:
    return {p.key: p for p in plan.pods} if plan else {}


def changes(previous: Plan | None, plan: Plan) -> dict[str, list[str]]:
    """Per kind of thing (namespaces, links, addresses, routes, processes): `+ x` made, `- x` removed."""
    old, new = _pods(previous), _pods(plan)
    rewired = pods_rewired(previous, plan)  # a backend or wiring switch makes every pod anew
    made = {k: p for k, p in new.items() if k not in old or old[k].uid != p.uid or rewired}
    gone = {k: p for k, p in old.items() if k not in new or new[k].uid != p.uid or rewired}
    out: dict[str, list[str]] = {"namespaces": [], "links": [], "addresses": [], "routes": [], "processes": []}
    old_nodes = {n.name: n for n in previous.nodes} if previous else {}
    new_nodes = {n.name: n for n in plan.nodes}
    for name, n in new_nodes.items():
        if name not in old_nodes:
            out["namespaces"].append(f"+ {n.netns}")
            out["links"].append(f"+ {n.underlay_veth} (in {plan.underlay_netns}) <-> eth0, "
                                f"and bridge cbr0 in {n.netns}")
            out["addresses"].append(f"+ {n.ip} on eth0 and {n.gateway}/{n.pod_cidr.prefixlen} on cbr0 in {n.netns}")
    for name, n in old_nodes.items():
        if name not in new_nodes:
            out["namespaces"].append(f"- {n.netns}")
    for name, n in new_nodes.items():
        was = {d.name: d for d in node_network(previous, old_nodes[name]).devices} \
            if previous and name in old_nodes else {}
        now = {d.name: d for d in node_network(plan, n).devices}
        out["links"] += [f"+ {_device(d)} in {n.netns}" for k, d in sorted(now.items()) if was.get(k) != d]
        out["links"] += [f"- {_device(d)} in {n.netns}" for k, d in sorted(was.items()) if now.get(k) != d]
    for name, n in new_nodes.items():
        before = set(node_routes(previous, old_nodes[name])) if previous and name in old_nodes else set()
        after = set(node_routes(plan, n))
        out["routes"] += [f"+ {_route(r)} in {n.netns}" for r in sorted(after - before, key=_order)]
        out["routes"] += [f"- {_route(r)} in {n.netns}" for r in sorted(before - after, key=_order)]
    for p in sorted(gone.values(), key=lambda p: p.key):
        if not p.host_network:
            out["namespaces"].append(f"- {p.netns}")
            out["links"].append(f"- {p.host_veth} (in node {p.node}) <-> eth0 in {p.netns}")
            out["addresses"].append(f"- {p.ip} on eth0 in {p.netns}")
        out["processes"] += [f"- {_process(p, c)}" for c in (*p.init_containers, *p.containers)]
    for p in sorted(made.values(), key=lambda p: p.key):
        if not p.host_network:
            out["namespaces"].append(f"+ {p.netns}")
            out["links"].append(f"+ {p.host_veth} (in node {p.node}) <-> eth0 in {p.netns}")
            out["addresses"].append(f"+ {p.ip} on eth0 in {p.netns}")
        out["processes"] += [f"+ {_process(p, c)}" for c in (*p.init_containers, *p.containers)]
    return out


def rule_diffs(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """A unified diff of each node's rules (`before`: what is loaded now, by node name)."""
    out = []
    for node in sorted(before.keys() | after.keys()):
        old, new = before.get(node, ""), after.get(node, "")
        if old != new:
            out += difflib.unified_diff(old.splitlines(), new.splitlines(), f"{node} (loaded)", f"{node} (after)",
                                        lineterm="")
    return out


def report(previous: Plan | None, plan: Plan, rules_before: Mapping[str, str], rules_after: Mapping[str, str]
           ) -> str:
    """The text `--dry-run` prints after the objects' lines."""
    lines = []
    for kind, items in changes(previous, plan).items():
        lines.append(f"{kind}: {'no change' if not items else ''}".rstrip())
        lines += [f"  {x}" for x in items]
    diff = rule_diffs(rules_before, rules_after)
    lines.append("rules: no change" if not diff else "rules:")
    lines += diff
    return "\n".join(lines) + "\n"
