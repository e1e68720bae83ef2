#!/usr/bin/env python3
"""Time `kubenet-lab check` on the example lab (manifests/), the whole command as a person runs
it, in both proxy modes; and, for scale, on a 4-node lab of 200 pods behind one Service (pairs
sampled) and a 40-pod one with --full (a --full check of 200 pods needs some 10,000 ARP entries, past
the kernel's one neighbour table for every namespace: gc_thresh3, 1024 by default). Prints
figures; asserts nothing. The issue's target: the example lab checks in under 5 s. Run as root:
sudo python3 bench/bench_check.py [--big]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5


def kl(lab: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab, *args], capture_output=True,
                          text=True, cwd=ROOT)
    if check and proc.returncode != 0:
        sys.exit(f"kubenet-lab --lab {lab} {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def timed(lab: str, *args: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = kl(lab, "check", "-q", "-o", "json", *args, check=False)
    seconds = time.perf_counter() - t0
    return seconds, json.loads(proc.stdout)


def bench(lab: str, paths: list[str], mode: str, label: str, *args: str, runs: int = RUNS) -> None:
    try:
        kl(lab, "up", *paths, "--proxy-mode", mode)
        runs = [timed(lab, *args) for _ in range(runs)]
        wall = [s for s, _ in runs]
        doc = runs[-1][1]
        print(f"{label:<34} {mode:<9} {doc['expectations']:>5} expectations  ok={doc['ok']!s:<5} "
              f"command median {statistics.median(wall):.2f}s (min {min(wall):.2f}s, max {max(wall):.2f}s), "
              f"probing {doc['seconds']:.2f}s", flush=True)
    finally:
        kl(lab, "down")


def big_lab(pods: int) -> str:
    docs = [f"apiVersion: v1\nkind: Node\nmetadata:\n  name: n{i}\n" for i in range(4)]
    docs.append(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
        f"  replicas: {pods}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n"
        "    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n"
        "      - name: netexec\n        image: registry.k8s.io/e2e-test-images/agnhost:2.53\n"
        "        args: [netexec, --http-port=8080]\n        ports: [{containerPort: 8080}]\n")
    docs.append("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n"
                "  ports: [{port: 80, targetPort: 8080}]\n")
    return "---\n".join(docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big", action="store_true", help="also a 200-pod lab, sampled and --full")
    args = parser.parse_args()
    for mode in ("iptables", "nftables"):
        bench("benchck", [str(ROOT / "manifests")], mode, "example lab (manifests/)")
    if args.big:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "big.yaml"
            path.write_text(big_lab(200))
            bench("benchckbig", [str(path)], "iptables", "4 nodes, 200 pods (sampled)", runs=3)
            path.write_text(big_lab(40))
            bench("benchckbig", [str(path)], "iptables", "4 nodes, 40 pods (--full)", "--full", runs=3)


if __name__ == "__main__":
    main()
