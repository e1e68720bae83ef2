#!/usr/bin/env python3
"""Time the kube-proxy rules of 100, 1000 and 5000 services (3 endpoints each) on 4 nodes, in both
modes (nftables with either balancing form): render, the first (complete) load per node and for
all nodes, then one-service changes loaded incrementally (a service added, an endpoint changed).
Runs in throwaway namespaces bench-svc-<hex>.node.nX, removed at the end. Prints a table; asserts
nothing but that every change was loaded incrementally. Run as root: sudo python3 bench/bench_services.py
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubenet_lab.plan import make_plan  # noqa: E402
from kubenet_lab.model.objects import Endpoint, Model, Node, Plan, PlannedService, PlannedServicePort  # noqa: E402
from kubenet_lab.proxy.sync import RenderedNode, plan_sync, render_nodes  # noqa: E402
from kubenet_lab.kernel.rules import sync_rules  # noqa: E402

NODES = 4
ENDPOINTS = 3


def base_plan(lab: str) -> Plan:
    return make_plan(Model(nodes=tuple(Node(f"n{i}") for i in range(1, NODES + 1))), lab)


def service(plan: Plan, i: int, shift: int = 0) -> PlannedService:
    """Service i: endpoints spread over the nodes; every tenth a NodePort."""
    eps = []
    for k in range(ENDPOINTS):
        node = plan.nodes[(i + k) % NODES]
        eps.append(Endpoint(ip=node.pod_cidr[2 + (i * ENDPOINTS + k + shift) % 250], port=8080,
                            pod=f"bench/pod-{i}-{k}", node=node.name))
    node_port = 30000 + i // 10 if i % 10 == 0 else None
    port = PlannedServicePort(name="http", protocol="TCP", port=80, target_port=8080,
                              node_port=node_port, endpoints=tuple(eps))
    return PlannedService(namespace="bench", name=f"svc-{i}", type="NodePort" if node_port else "ClusterIP",
                          cluster_ip=plan.cluster.service_subnet[100 + i], ports=(port,))


def with_services(plan: Plan, services: list[PlannedService]) -> Plan:
    return dataclasses.replace(plan, services=tuple(services))


class Namespaces:
    def __init__(self, lab: str) -> None:
        self.lab, self.made = lab, []

    def fresh(self, plan: Plan) -> None:
        """Every node's namespace made anew, so each first load starts from nothing."""
        self.remove()
        for node in plan.nodes:
            subprocess.run(["ip", "netns", "add", node.netns], check=True)
            self.made.append(node.netns)

    def remove(self) -> None:
        for name in self.made:
            subprocess.run(["ip", "netns", "del", name], check=False)
        self.made = []


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def load_all(plan: Plan, mode: str, rendered: dict[str, RenderedNode], parallel: bool) -> list[float]:
    def one(node) -> float:
        seconds, _ = timed(sync_rules, node.netns, mode, None, rendered[node.name].text)
        return seconds
    if not parallel:
        return [one(n) for n in plan.nodes]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(one, plan.nodes))


def change(plan: Plan, mode: str, old: dict[str, RenderedNode], new_plan: Plan):
    """Render the new state (reusing the unchanged fragments of `old`, as app does), then per
    node: plan the sync and load it. -> (render, [plan], [load])."""
    render_s, new = timed(render_nodes, new_plan, mode, None, old)
    plans, loads = [], []
    for node in plan.nodes:
        plan_s, sync = timed(plan_sync, old[node.name], new[node.name])
        load_s, partial = timed(sync_rules, node.netns, mode, sync.text, new[node.name].text)
        assert not sync.full and partial, f"{mode}: a one-service change was not loaded incrementally"
        plans.append(plan_s)
        loads.append(load_s)
    return render_s, plans, loads, new


def run(label: str, count: int, spaces: Namespaces, plan0: Plan) -> dict:
    """`label`: a mode, or nftables/rules for nftables mode with networking.nftablesBalancing: rules."""
    mode, _, balancing = label.partition("/")
    if balancing:
        plan0 = dataclasses.replace(plan0, cluster=dataclasses.replace(plan0.cluster, nftables_balancing=balancing))
    services = [service(plan0, i) for i in range(count)]
    plan = with_services(plan0, services)
    row: dict = {"mode": label, "services": count}
    render_s, rendered = timed(render_nodes, plan, mode)
    row["render 4 nodes"] = render_s
    spaces.fresh(plan)
    loads = load_all(plan, mode, rendered, parallel=False)
    row["full load/node"], row["full load, 4 nodes"] = statistics.mean(loads), sum(loads)
    spaces.fresh(plan)
    row["full load, 4 nodes in parallel"], _ = timed(load_all, plan, mode, rendered, True)
    added = with_services(plan, services[: count // 2] + [service(plan0, count)] + services[count // 2:])
    render_s, plans, loads, rendered = change(plan, mode, rendered, added)
    row["add 1: render 4 nodes"], row["add 1: plan/node"] = render_s, statistics.mean(plans)
    row["add 1: load/node"] = statistics.mean(loads)
    row["add 1: total/node"] = render_s / NODES + row["add 1: plan/node"] + row["add 1: load/node"]
    moved = list(added.services)
    moved[count // 3] = service(plan0, count // 3, shift=1)  # the same service, one endpoint moved
    render_s, plans, loads, _ = change(plan, mode, rendered, with_services(plan, moved))
    row["endpoint: plan/node"], row["endpoint: load/node"] = statistics.mean(plans), statistics.mean(loads)
    row["endpoint: total/node"] = render_s / NODES + statistics.mean(plans) + statistics.mean(loads)
    return row


COLUMNS = [("mode", "mode", "{}"), ("services", "svcs", "{}"), ("render 4 nodes", "render 4n", "{:.2f}"),
           ("full load/node", "full/node", "{:.2f}"), ("full load, 4 nodes", "full 4n", "{:.2f}"),
           ("full load, 4 nodes in parallel", "full 4n par", "{:.2f}"),
           ("add 1: render 4 nodes", "+1 render 4n", "{:.3f}"), ("add 1: plan/node", "+1 plan/n", "{:.3f}"),
           ("add 1: load/node", "+1 load/n", "{:.3f}"), ("add 1: total/node", "+1 total/n", "{:.3f}"),
           ("endpoint: plan/node", "ep plan/n", "{:.3f}"), ("endpoint: load/node", "ep load/n", "{:.3f}"),
           ("endpoint: total/node", "ep total/n", "{:.3f}")]


def print_table(rows: list[dict]) -> None:
    cells = [[h for _, h, _ in COLUMNS]] + [[fmt.format(r[k]) for k, _, fmt in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    print("seconds; 'plan' is proxy.sync.plan_sync, 'load' the iptables-restore --noflush or nft -f "
          "of the change; a change renders only the changed service ports ('+1 render 4n', the "
          "others are reused from the previous render); 'total/n' = render/4 + plan + load, per "
          "node (goal: under 0.050).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--modes", nargs="+", default=["nftables", "nftables/rules", "iptables"],
                        help="nftables (kube-proxy's vmap balancing), nftables/rules (networking."
                             "nftablesBalancing: rules), iptables")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces): sudo python3 bench/bench_services.py")
    lab = f"bench-svc-{uuid.uuid4().hex[:6]}"
    plan0 = base_plan(lab)
    spaces = Namespaces(lab)
    rows = []
    try:
        for count in args.services:
            for mode in args.modes:
                rows.append(run(mode, count, spaces, plan0))
                print(f"  done: {mode} {count}", file=sys.stderr, flush=True)
    finally:
        spaces.remove()
    print(f"{NODES} nodes, {ENDPOINTS} endpoints per service, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print_table(rows)


if __name__ == "__main__":
    main()
