#!/usr/bin/env python3
"""Changes to a running lab, timed as a user sees them: the whole `kubenet-lab` command (process
start included) for a one-pod change by `apply`, `delete pod` (a ReplicaSet's pod, replaced),
and `scale` of a 100-pod Deployment by +10 and -10, on a lab of 4 nodes and 500 pods.
Goals (issue 9): a one-pod change under 0.2 s, the scale under 0.5 s. Prints figures; asserts
nothing. Run as root: sudo python3 bench/bench_live.py [--pods 500] [--repeat 3]; with
KUBENET_LAB_WARM=0, each verb runs in its command's own process (no warm process).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kubenet_lab.warm import client  # noqa: E402

NODES = 4


def deployment(name: str, replicas: int, image: str = "nginx") -> str:
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n"
            f"  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
            f"    spec:\n      containers: [{{name: c, image: {image}, ports: [{{containerPort: 80}}]}}]\n")


def lab_manifests(pods: int) -> str:
    docs = [f"apiVersion: v1\nkind: Node\nmetadata: {{name: n{i}}}\n" for i in range(NODES)]
    docs.append(deployment("big", pods - 100 - 2))  # coredns and the one-pod object make up the rest
    docs.append(deployment("scaled", 100))
    docs.append("apiVersion: v1\nkind: Service\nmetadata: {name: scaled}\nspec:\n  selector: {app: scaled}\n"
                "  ports: [{port: 80}]\n")
    return "---\n".join(docs)


def kl(lab: str, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab, *args], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def warm_process(lab: str) -> bool:
    """Whether the lab's warm process (kubenet_lab.warm) runs the commands: it is given a few
    seconds to start, unless KUBENET_LAB_WARM=0 says not to use one."""
    if os.environ.get(client.DISABLE_ENV) == "0":
        return False
    deadline = time.monotonic() + 10
    while not os.path.exists(client.socket_path(lab)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return os.path.exists(client.socket_path(lab))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    lab = "benchlive"
    figures: dict[str, list[float]] = {"apply one pod": [], "delete pod": [], "scale +10": [], "scale -10": []}
    with tempfile.TemporaryDirectory() as d:
        base, one_a, one_b = Path(d) / "lab.yaml", Path(d) / "one-a.yaml", Path(d) / "one-b.yaml"
        base.write_text(lab_manifests(args.pods))
        one_a.write_text(deployment("one", 1))
        one_b.write_text(deployment("one", 1, image="nginx:1.27"))  # a new template: the pod is replaced
        try:
            t_up = kl(lab, "up", str(base))
            kl(lab, "apply", "-f", str(one_a))
            warm = warm_process(lab)
            for i in range(args.repeat):
                figures["apply one pod"].append(kl(lab, "apply", "-f", str(one_b if i % 2 == 0 else one_a)))
                pods = json.loads(subprocess.run(
                    [sys.executable, "-m", "kubenet_lab.cli", "--lab", lab, "get", "pods", "-l", "app=scaled", "-o",
                     "json"], capture_output=True, text=True, check=True).stdout)["items"]
                figures["delete pod"].append(kl(lab, "delete", "pod", pods[0]["metadata"]["name"]))
                figures["scale +10"].append(kl(lab, "scale", "deployment", "scaled", "--replicas", "110"))
                figures["scale -10"].append(kl(lab, "scale", "deployment", "scaled", "--replicas", "100"))
        finally:
            subprocess.run([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab, "down"], check=False,
                           stdout=subprocess.DEVNULL)
    print(f"lab: {NODES} nodes, {args.pods} pods (up took {t_up:.2f} s); whole command, process start included; "
          + ("run by the lab's warm process" if warm else "each verb run by its command (no warm process)"))
    goals = {"apply one pod": 0.2, "delete pod": 0.2, "scale +10": 0.5, "scale -10": 0.5}
    print(f"{'change':<16}{'median s':>10}{'min s':>8}{'goal s':>8}")
    for name, times in figures.items():
        print(f"{name:<16}{statistics.median(times):>10.3f}{min(times):>8.3f}{goals[name]:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
