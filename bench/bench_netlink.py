"""The netlink layer beside the hand-written reference, 4 nodes x {40, 200, 500} pods.

Each size runs the reference (bench/reference_netlink.py, in its own process) and then the
project's API (ensure_base + ensure_nodes + create_pods with 2 workers; discover +
delete_namespaces), in the same run, so both see the same machine load. Root only.

    python3 bench/bench_netlink.py [--sizes 40,200,500] [--repeat 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from kubenet_lab.plan import naming  # noqa: E402
from kubenet_lab.model.objects import Allocations, ClusterConfig, Plan, PlannedNode, PlannedPod  # noqa: E402
from kubenet_lab.fabric import netlink  # noqa: E402

LAB = f"nlbench{os.getpid()}"  # runs side by side do not meet
NODES = 4


def make_plan(pods: int) -> Plan:
    specs = [(f"node{i + 1}", IPv4Address(f"172.18.0.{i + 2}"), IPv4Network(f"10.244.{i}.0/24")) for i in range(NODES)]
    nodes = tuple(
        PlannedNode(
            name=name, index=i, ip=ip, pod_cidr=cidr, gateway=cidr.network_address + 1,
            netns=naming.node_netns(LAB, name), underlay_veth=naming.node_underlay_veth(LAB, name),
            routes=tuple((c, nip) for other, nip, c in specs if other != name),
        )
        for i, (name, ip, cidr) in enumerate(specs)
    )
    planned = []
    for k in range(pods):
        node = nodes[k % NODES]
        name = f"pod-{k}"
        planned.append(PlannedPod(
            namespace="default", name=name, node=node.name, ip=node.pod_cidr.network_address + 2 + k // NODES,
            netns=naming.pod_netns(LAB, "default", name), host_veth=naming.pod_host_veth(LAB, "default", name),
        ))
    return Plan(lab=LAB, cluster=ClusterConfig(), nodes=nodes, pods=tuple(planned), services=(),
                allocations=Allocations(), underlay_netns=naming.underlay_netns(LAB))


def run_ours(pods: int) -> dict[str, float]:
    plan = make_plan(pods)
    netlink.delete_namespaces(netlink.discover(LAB))
    try:
        start = time.perf_counter()
        netlink.ensure_base(plan)
        netlink.ensure_nodes(plan)
        base = time.perf_counter()
        netlink.create_pods(plan, plan.pods, workers=2)
        up = time.perf_counter()
        netlink.delete_namespaces([n for n, owned in netlink.discover(LAB).items() if owned])
        down = time.perf_counter()
    finally:
        netlink.delete_namespaces(netlink.discover(LAB))
    return {
        "up_ms_per_pod": (up - start) / pods * 1000,
        "pods_ms_per_pod": (up - base) / pods * 1000,
        "base_ms": (base - start) * 1000,
        "down_ms_per_pod": (down - up) / pods * 1000,
    }


def run_reference(pods: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(HERE / "reference_netlink.py"), "--nodes", str(NODES),
                          "--pods", str(pods), "--machine"], check=True, capture_output=True, text=True).stdout
    seconds = {key: float(value) for key, value in (field.split("=") for field in out.split())}
    return {"up_ms_per_pod": seconds["up"] / pods * 1000, "down_ms_per_pod": seconds["down"] / pods * 1000}


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="40,200,500")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_netlink needs root (network namespaces)")
    print(f"{'pods':>5} | {'ref up':>8} {'ours up':>8} {'ratio':>6} | {'ours pods':>9} {'base ms':>8} | "
          f"{'ref down':>8} {'ours down':>9}   (ms per pod, median of {args.repeat})")
    for size in (int(s) for s in args.sizes.split(",")):
        refs, ours = [], []
        for _ in range(args.repeat):
            refs.append(run_reference(size))
            ours.append(run_ours(size))
        ref_up, our_up = median(refs, "up_ms_per_pod"), median(ours, "up_ms_per_pod")
        print(f"{size:>5} | {ref_up:8.2f} {our_up:8.2f} {our_up / ref_up:6.2f} | "
              f"{median(ours, 'pods_ms_per_pod'):9.2f} {median(ours, 'base_ms'):8.1f} | "
              f"{median(refs, 'down_ms_per_pod'):8.2f} {median(ours, 'down_ms_per_pod'):9.2f}", flush=True)


if __name__ == "__main__":
    main()
