#!/usr/bin/env python3
"""Time `kubenet-lab up` and `down` for 4 nodes x {40, 200, 500} pods, beside a minimal hand-written
netlink script building the same topology (bench/reference_netlink.py), and the memory of the
built-in servers. Prints figures; asserts nothing. Run as root: sudo python3 bench/bench_up.py
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from kubenet_lab.app import build  # noqa: E402
from kubenet_lab.supervisor import client as supervisor  # noqa: E402

NODES = 4


def manifests(pods: int) -> str:
    docs = [f"apiVersion: v1\nkind: Node\nmetadata:\n  name: n{i}\n" for i in range(NODES)]
    docs.append(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
        f"  replicas: {pods}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n"
        "    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n"
        "      - name: web\n        image: nginx\n        ports: [{containerPort: 80}]\n")
    return "---\n".join(docs)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reference(pods: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, str(HERE / "reference_netlink.py"), "--nodes", str(NODES),
                          "--pods", str(pods), "--machine"], capture_output=True, text=True, check=True).stdout
    fields = dict(kv.split("=") for kv in out.split())
    return float(fields["up"]), float(fields["down"])


def run(pods: int) -> dict:
    lab = f"bench{pods}"
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "lab.yaml"
        path.write_text(manifests(pods))
        try:
            t0 = time.perf_counter()
            build.up(lab, [str(path)])
            t_up = time.perf_counter() - t0
            pid = supervisor.find_supervisors(lab)[lab]
            mem = rss_mb(pid)
            t0 = time.perf_counter()
            build.up(lab, [str(path)])
            t_again = time.perf_counter() - t0
            t0 = time.perf_counter()
            build.down(lab)
            t_down = time.perf_counter() - t0
        finally:
            build.down(lab)
    ref_up, ref_down = reference(pods)
    return {"pods": pods, "up": t_up, "again": t_again, "down": t_down, "rss": mem, "ref_up": ref_up,
            "ref_down": ref_down}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, nargs="+", default=[40, 200, 500])
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds real namespaces")
    print(f"{NODES} nodes; times in seconds; ms/pod in brackets; reference = bench/reference_netlink.py")
    print(f"{'pods':>5} {'up':>14} {'reference up':>14} {'ratio':>6} {'up again':>9} {'down':>14} "
          f"{'ref down':>9} {'servers RSS':>12}")
    for n in args.pods:
        r = run(n)
        print(f"{n:>5} {r['up']:>6.2f} ({1000 * r['up'] / n:4.1f}) {r['ref_up']:>6.2f} ({1000 * r['ref_up'] / n:4.1f})"
              f" {r['up'] / r['ref_up']:>6.2f} {r['again']:>9.2f} {r['down']:>6.2f} ({1000 * r['down'] / n:4.2f})"
              f" {r['ref_down']:>9.2f} {r['rss']:>9.1f} MB", flush=True)


if __name__ == "__main__":
    main()
