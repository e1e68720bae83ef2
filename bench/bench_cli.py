#!/usr/bin/env python3
"""What the interactive verbs add to what they run: `exec POD -- true` against
`ip netns exec NS true`, and `get pods`, `logs POD` and `get pods -o wide` (whole commands: they
run nothing else), on the example lab and on a 4-node lab of 500 pods, as a person runs them
(`python3 -m kubenet_lab.cli`, a fresh interpreter each time). Also `python3 -c pass`, the floor
any Python command pays. Median and best of RUNS, in ms, the commands interleaved so that a busy
machine slows them alike. Prints figures; asserts nothing.

Run as root: sudo python3 bench/bench_cli.py [--runs N] [--only example|500]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench_up import manifests  # noqa: E402

CLI = [sys.executable, "-m", "kubenet_lab.cli"]


def run(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def kl(lab: str, *args: str) -> str:
    return subprocess.run([*CLI, "--lab", lab, *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def measure(lab: str, runs: int) -> dict[str, list[float]]:
    pod = kl(lab, "get", "pods", "-o", "name").split()[0].split("/", 1)[1]
    netns = f"{lab}.pod.default.{pod}"
    cases = {
        "python3 -c pass": [sys.executable, "-c", "pass"],
        "ip netns exec NS true": ["ip", "netns", "exec", netns, "true"],
        "exec POD -- true": [*CLI, "--lab", lab, "exec", pod, "--", "true"],
        "get pods": [*CLI, "--lab", lab, "get", "pods"],
        "get pods -o wide": [*CLI, "--lab", lab, "get", "pods", "-o", "wide"],
        "logs POD": [*CLI, "--lab", lab, "logs", pod],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for argv in cases.values():  # warm the page cache
        run(argv)
    for _ in range(runs):
        for name, argv in cases.items():
            times[name].append(run(argv))
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    base = statistics.median(times["ip netns exec NS true"])
    print(f"\n{title}: ms, median (best)")
    for name, t in times.items():
        med, best = 1000 * statistics.median(t), 1000 * min(t)
        added = f"   adds {med - 1000 * base:6.1f}" if name == "exec POD -- true" else ""
        print(f"  {name:<24} {med:7.1f} ({best:6.1f}){added}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--only", choices=["example", "500"])
    parser.add_argument("--lab", action="append", default=[],
                        help="measure this running lab (no up or down); repeatable")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds real namespaces")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.lab:
        for lab in args.lab:
            report(f"lab {lab}", measure(lab, args.runs))
        return
    labs = [("example lab", "benchcliex", [])] if args.only != "500" else []
    if args.only != "example":
        labs.append(("4 nodes, 500 pods", "benchcli500", None))
    for title, lab, paths in labs:
        with tempfile.TemporaryDirectory() as d:
            if paths is None:
                path = Path(d) / "lab.yaml"
                path.write_text(manifests(500))
                paths = [str(path)]
            try:
                kl(lab, "up", *paths)
                report(title, measure(lab, args.runs))
            finally:
                kl(lab, "down")


if __name__ == "__main__":
    main()
