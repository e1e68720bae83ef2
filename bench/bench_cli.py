#!/usr/bin/env python3
"""What the interactive verbs add to what they run: `exec POD -- true` against
`ip netns exec NS true`, and `get pods`, `logs POD` and `get pods -o wide` (whole commands: they
run nothing else), `describe pod POD`, `describe service SVC` and `describe node NODE` (whole
commands, with the `ip`, `iptables-save` or `nft` they run to read the kernel; `ip -json addr`
in a pod, one of the three `ip` reads of `describe pod` (the pod's links, its routes, its veth in
the node), is measured beside them), on the example lab and on a 4-node lab of 500 pods, as a
person runs them: run by the lab's warm process (kubenet_lab.warm: its CPU for the command, from
its log, is added to the command's own) and, marked "(cold)", with KUBENET_LAB_WARM=0, the verb
run by the command itself
(`python3 -m kubenet_lab.cli`, a fresh interpreter each time). Also `python3 -c pass`, the floor
any Python command pays. Median and best of RUNS, in ms, the commands interleaved so that a busy
machine slows them alike. Prints figures; asserts nothing.

Twice: with Python's bytecode cache (as an installed package runs: its .pyc files are written at
install; here into a temporary PYTHONPYCACHEPREFIX), and without (PYTHONDONTWRITEBYTECODE=1,
every module compiled from source at every start, as in a checkout where the variable is set).

Run as root: sudo python3 bench/bench_cli.py [--runs N] [--only example|500] [--lab RUNNING_LAB]
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

from kubenet_lab.fabric import state  # noqa: E402
from kubenet_lab.warm import client, server  # noqa: E402

CLI = [sys.executable, "-m", "kubenet_lab.cli"]


ENV = dict(os.environ)


def warm_log(lab: str) -> str:
    return os.path.join(state.state_dir(lab), server.LOG)


def served_cpu(lab: str, since: int) -> float:
    """Seconds of CPU the lab's warm process gave the commands it ran since byte `since` of its
    log (its children, and the processes they waited for)."""
    try:
        with open(warm_log(lab)) as f:
            f.seek(since)
            return sum(float(line.split(" ", 3)[2].removesuffix("ms")) for line in f) / 1000
    except FileNotFoundError:
        return 0.0


def run(argv: list[str], lab: str | None = None, env: dict | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one command: CPU time (user + system, its own and its children's,
    and what the lab's warm process spent running it) is what it costs; on a shared machine the
    wall time adds the waiting for a CPU."""
    since = os.path.getsize(warm_log(lab)) if lab and os.path.exists(warm_log(lab)) else 0
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv)
    return wall, usage.ru_utime + usage.ru_stime + (served_cpu(lab, since) if lab else 0.0)


def bytecode(cached: bool, prefix: str) -> None:
    ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    ENV.pop("PYTHONPYCACHEPREFIX", None)
    if cached:
        ENV["PYTHONPYCACHEPREFIX"] = prefix
    else:
        ENV["PYTHONDONTWRITEBYTECODE"] = "1"


def kl(lab: str, *args: str) -> str:
    return subprocess.run([*CLI, "--lab", lab, *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def measure(lab: str, runs: int) -> dict[str, list[float]]:
    pod = kl(lab, "get", "pods", "-o", "name").split()[0].split("/", 1)[1]
    netns = f"{lab}.pod.default.{pod}"
    services = [s.split("/", 1)[1] for s in kl(lab, "get", "services", "-o", "name").split()]
    service = next((s for s in services if s != "kubernetes"), services[0])
    node = kl(lab, "get", "nodes", "-o", "name").split()[0].split("/", 1)[1]
    verbs = {
        "get pods": ["get", "pods"],
        "get pods -o wide": ["get", "pods", "-o", "wide"],
        "logs POD": ["logs", pod],
        "describe pod POD": ["describe", "pod", pod],
        f"describe service {service}": ["describe", "service", service],
        "describe node NODE": ["describe", "node", node],
    }
    cold = {**ENV, client.DISABLE_ENV: "0"}
    cases = {
        "python3 -c pass": ([sys.executable, "-c", "pass"], None),
        "ip netns exec NS true": (["ip", "netns", "exec", netns, "true"], None),
        "exec POD -- true": ([*CLI, "--lab", lab, "exec", pod, "--", "true"], None),
        "ip -json addr in POD": (["ip", "-n", netns, "-json", "-details", "addr", "show"], None),
        **{name: ([*CLI, "--lab", lab, *args], None) for name, args in verbs.items()},
        **{f"{name} (cold)": ([*CLI, "--lab", lab, *args], cold) for name, args in verbs.items()},
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for argv, env in cases.values():  # warm the page cache (and start the lab's warm process)
        run(argv, lab, env)
    if not os.path.exists(client.socket_path(lab)):
        time.sleep(2)
    for _ in range(runs):
        for name, (argv, env) in cases.items():
            times[name].append(run(argv, lab, env))
    return times


def both(title: str, lab: str, runs: int) -> None:
    with tempfile.TemporaryDirectory() as prefix:
        for cached in (True, False):
            bytecode(cached, prefix)
            report(f"{title}, {'bytecode cached' if cached else 'no bytecode cache'}", measure(lab, runs))
            print(f"  (load average then {', '.join(f'{x:.1f}' for x in os.getloadavg())})")


def report(title: str, times: dict[str, list[tuple[float, float]]]) -> None:
    def wall(name: str) -> list[float]:
        return [1000 * w for w, _ in times[name]]

    def cpu(name: str) -> list[float]:
        return [1000 * c for _, c in times[name]]

    base = "ip netns exec NS true"
    print(f"\n{title}: ms; wall median, best; CPU median")
    for name in times:
        line = (f"  {name:<28} {statistics.median(wall(name)):7.1f} {min(wall(name)):7.1f} "
                f"{statistics.median(cpu(name)):7.1f}")
        if name == "exec POD -- true":
            line += (f"   adds {statistics.median(wall(name)) - statistics.median(wall(base)):.1f} "
                     f"(best {min(wall(name)) - min(wall(base)):.1f}, CPU "
                     f"{statistics.median(cpu(name)) - statistics.median(cpu(base)):.1f})")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--only", choices=["example", "500"])
    parser.add_argument("--lab", action="append", default=[],
                        help="measure this running lab (no up or down); repeatable")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds real namespaces")
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    if args.lab:
        for lab in args.lab:
            both(f"lab {lab}", lab, args.runs)
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
                both(title, lab, args.runs)
            finally:
                kl(lab, "down")


if __name__ == "__main__":
    main()
