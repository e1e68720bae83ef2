#!/usr/bin/env python3
"""What confining containers costs (issue 11): `up` of 4 nodes x N pods whose container runs a real
process (`sleep infinity`: each one confined: its mount, UTS and PID namespaces, a new root,
unshare, setpriv and tini), `up` of 500 emulated pods (the built-in servers: nothing to confine
until something is exec'd), and `exec POD -- true`, each the whole command as a person runs it.
Run it on this tree and, for a before/after, on another (`--tree DIR`, e.g. a `git archive` of
the commit before confinement). Prints figures (median of --runs); asserts nothing.

Run as root: sudo python3 bench/bench_confine.py [--tree DIR] [--real 20 100] [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODES = 4


def manifests(pods: int, real: bool) -> str:
    docs = [f"apiVersion: v1\nkind: Node\nmetadata:\n  name: n{i}\n" for i in range(NODES)]
    container = ("      - name: main\n        image: busybox\n        command: [sleep, infinity]\n" if real else
                 "      - name: web\n        image: nginx\n        ports: [{containerPort: 80}]\n")
    docs.append("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
                f"  replicas: {pods}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n"
                "    metadata:\n      labels: {app: web}\n    spec:\n      terminationGracePeriodSeconds: 1\n"
                "      containers:\n" + container)
    return "---\n".join(docs)


def cli(tree: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-m", "kubenet_lab.cli", *args], cwd=tree, env=env,
                          capture_output=True, text=True, check=check)


def timed(tree: Path, *args: str) -> float:
    t0 = time.perf_counter()
    cli(tree, *args)
    return time.perf_counter() - t0


def one(tree: Path, pods: int, real: bool, execs: int) -> tuple[float, float | None]:
    lab = f"bc{secrets.token_hex(3)}"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(manifests(pods, real))
    try:
        up = timed(tree, "--lab", lab, "up", "-q", f.name)
        exec_ = None
        if execs:
            pod = cli(tree, "--lab", lab, "get", "pods", "-o", "name").stdout.split()[0].split("/", 1)[1]
            exec_ = statistics.median(timed(tree, "--lab", lab, "exec", pod, "--", "true") for _ in range(execs))
        return up, exec_
    finally:
        cli(tree, "--lab", lab, "down", check=False)
        os.unlink(f.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="the kubenet-lab tree to run (default: this one)")
    parser.add_argument("--real", type=int, nargs="+", default=[20, 100], help="pods running a real process")
    parser.add_argument("--emulated", type=int, default=500, help="pods of the built-in servers")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds real namespaces")
    print(f"tree {args.tree}; load average {os.getloadavg()[0]:.1f}; median of {args.runs}")
    print(f"{'pods':>6} {'runs':<10} {'up (s)':>8} {'per pod (ms)':>13} {'exec -- true (ms)':>18}")
    cases = [(n, True) for n in args.real] + [(args.emulated, False)]
    for pods, real in cases:
        results = [one(args.tree, pods, real, 7 if real else 0) for _ in range(args.runs)]
        up = statistics.median(r[0] for r in results)
        ex = [r[1] for r in results if r[1] is not None]
        print(f"{pods:>6} {'a process' if real else 'emulated':<10} {up:>8.2f} {up / pods * 1000:>13.1f} "
              f"{statistics.median(ex) * 1000 if ex else float('nan'):>18.0f}")


if __name__ == "__main__":
    main()
