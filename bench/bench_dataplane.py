#!/usr/bin/env python3
"""Pod-to-pod TCP throughput with iperf3, on one node and across nodes, for each node backend
(`networking.backend: host-gw | vxlan | l2`, and host-gw with `networking.wiring: cni` when the
lab offers it), each beside a hand-built veth/bridge path measured in the same run; and the time
`up` takes to build 500 pods with cni wiring beside netlink wiring.

In the lab: a pod whose container command is `iperf3 -s` on node1 and another on node2, and a
client pod on node1 that runs `iperf3 -c <server pod IP> -J` by `kubenet-lab exec`. The
hand-built path is this script's own: three namespaces named after it and its process
(bench_dataplane-<pid>.client, .bridge, .server: a name no lab can have), the client and the
server each joined by a veth to a bridge in the third, plain addresses 10.99.0.1 and 10.99.0.2,
iperf3 run in them by `ip netns exec`; they are removed at the end, also on an error or Ctrl-C.
Traffic flows only between namespaces the lab or this script made. One TCP stream for a few
seconds per run, the receiver's count (iperf3's end.sum_received), the runs of a variant
interleaved with the hand-built path's, so that a busy machine slows both alike; median of the
runs. Goal (issue 14): host-gw (and cni wiring) within 5% of the hand-built path; vxlan's cost
shown.

Prints figures; asserts nothing. Run as root on a quiet machine (the figures of a machine shared
with other work are low and noisy):

    sudo python3 bench/bench_dataplane.py [--seconds 3] [--repeat 3] [--pods 500] [--no-build]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CLI = [sys.executable, "-m", "kubenet_lab.cli"]
PORT = 5201
BACKENDS = ("host-gw", "vxlan", "l2")
GOAL = 0.05  # host-gw (and cni wiring) within 5% of the hand-built path
# The hand-built path's own namespaces: the owner's name has a '_', so no lab (a DNS-1123 label) can
# have it as its prefix.
OWNER = f"bench_dataplane-{os.getpid()}"
HAND_CLIENT, HAND_SERVER = "10.99.0.1", "10.99.0.2"
RETRY = ("Connection refused", "server is busy", "No route to host")  # a server not listening yet


class IperfError(Exception):
    """iperf3's own message, from its JSON report."""


def received_bps(report: str) -> float:
    """Bits per second the receiver counted in an `iperf3 -c ... -J` report of a TCP test
    (end.sum_received: what arrived, not what the sender wrote into its socket). A report that
    carries iperf3's "error" raises IperfError with iperf3's message; so does one without the
    figure."""
    try:
        data = json.loads(report)
    except json.JSONDecodeError as e:
        raise IperfError(f"not an iperf3 JSON report ({e}): {report[:200]!r}") from None
    if not isinstance(data, dict):
        raise IperfError(f"not an iperf3 JSON report: {report[:200]!r}")
    if "error" in data:
        raise IperfError(str(data["error"]))
    try:
        return float(data["end"]["sum_received"]["bits_per_second"])
    except (KeyError, TypeError, ValueError):
        raise IperfError("iperf3's report has no end.sum_received.bits_per_second (not a TCP test?)") from None


def client_argv(server: str, seconds: float) -> list[str]:
    return ["iperf3", "-c", server, "-p", str(PORT), "-t", f"{seconds:g}", "-J"]


class Client(NamedTuple):
    """How to run iperf3's client where it runs, and whether the server it talks to still runs."""
    prefix: list[str]
    server_alive: Callable[[], bool] = lambda: True


def measure(client: Client, server: str, seconds: float, patience: float = 30.0) -> float:
    """Gbit/s of one run of iperf3's client; retried while the server is not listening yet (a pod
    just started) or still busy, as long as it runs."""
    prefix = client.prefix
    deadline = time.monotonic() + patience
    while True:
        proc = subprocess.run([*prefix, *client_argv(server, seconds)], capture_output=True, text=True,
                              cwd=ROOT, timeout=seconds + 60)
        try:
            return received_bps(proc.stdout) / 1e9
        except IperfError as e:
            if not any(r in str(e) for r in RETRY) or time.monotonic() > deadline or not client.server_alive():
                raise IperfError(f"{' '.join(prefix)} iperf3 -c {server}: {e} {proc.stderr.strip()}") from None
        time.sleep(0.5)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextmanager
def hand_built() -> Iterator[Client]:
    """The hand-built path: OWNER.client and OWNER.server, each a veth to a bridge in OWNER.bridge,
    with an iperf3 server in OWNER.server; yields its client. Removes what it made (only
    that: a namespace that already exists is an error, never taken over)."""
    client, bridge, server = (f"{OWNER}.{role}" for role in ("client", "bridge", "server"))
    made: list[str] = []
    iperf: subprocess.Popen | None = None
    try:
        for ns in (client, bridge, server):
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", bridge, "link", "add", "br0", "type", "bridge")
        ip("-n", bridge, "link", "set", "br0", "up")
        for ns, port, addr in ((client, "veth-client", HAND_CLIENT), (server, "veth-server", HAND_SERVER)):
            ip("-n", bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", bridge, "link", "set", port, "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        iperf = subprocess.Popen(["ip", "netns", "exec", server, "iperf3", "-s", "-p", str(PORT)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield Client(["ip", "netns", "exec", client], lambda: iperf is not None and iperf.poll() is None)
    finally:
        with uninterrupted():
            if iperf is not None:
                iperf.terminate()
                try:
                    iperf.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    iperf.kill()
                    iperf.wait()
            for ns in reversed(made):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def kl(lab: str, *args: str) -> str:
    proc = subprocess.run([*CLI, "--lab", lab, *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"kubenet-lab --lab {lab} {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def new_lab() -> str:
    """A lab name no lab on this machine has (so that the `down` at the end removes only ours)."""
    from kubenet_lab.fabric import state
    while True:
        lab = f"bdp{secrets.token_hex(3)}"
        if not os.path.exists(state.state_dir(lab)):
            return lab


def cluster_config(backend: str, wiring: str | None) -> str:
    return ("apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\nnetworking:\n"
            f"  backend: {backend}\n" + (f"  wiring: {wiring}\n" if wiring else ""))


def pods() -> str:
    """An iperf3 server on each node, the client beside the first."""
    def pod(name: str, node: str, command: str) -> str:
        return (f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n"
                f"  containers:\n  - name: c\n    image: networkstatic/iperf3\n    command: {command}\n")
    return "---\n".join([pod("near", "node1", f"[iperf3, -s, -p, '{PORT}']"),
                         pod("far", "node2", f"[iperf3, -s, -p, '{PORT}']"),
                         pod("client", "node1", "[sleep, infinity]")])


@contextmanager
def lab_up(files: list[Path]) -> Iterator[tuple[str, float]]:
    """A new lab built from `files`; yields (its name, seconds `up` took); `down` at the end."""
    lab = new_lab()
    try:
        t0 = time.perf_counter()
        kl(lab, "up", "-q", *map(str, files))
        yield lab, time.perf_counter() - t0
    finally:
        with uninterrupted():
            subprocess.run([*CLI, "--lab", lab, "down"], cwd=ROOT, capture_output=True)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Clean-up that a second Ctrl-C (or a SIGTERM) does not cut short; its children inherit the
    ignored signals."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cni_results(lab: str) -> int:
    """How many pods' CNI ADD results the lab keeps (its runtime's cache, fabric/cni.py): the
    evidence that cni wiring wired them."""
    from kubenet_lab.fabric import cni
    try:
        return len(os.listdir(os.path.join(cni.state_root(lab), "results")))
    except FileNotFoundError:
        return 0


def wiring_offered(tmp: Path) -> str | None:
    """None when the Cluster config takes `networking.wiring: cni`; else why not (its error)."""
    path = tmp / "probe.yaml"
    path.write_text(cluster_config("host-gw", "cni"))
    proc = subprocess.run([*CLI, "--lab", new_lab(), "up", "--dry-run", "-q", str(path)], cwd=ROOT,
                          capture_output=True, text=True)
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["refused"])[-1]


def variant(tmp: Path, hand: Client, backend: str, wiring: str | None, seconds: float,
            repeat: int) -> dict[str, list[float]]:
    cluster, manifest = tmp / "cluster.yaml", tmp / "pods.yaml"
    cluster.write_text(cluster_config(backend, wiring))
    manifest.write_text(pods())
    runs: dict[str, list[float]] = {"hand": [], "same": [], "across": []}
    with lab_up([cluster, manifest]) as (lab, _):
        if wiring == "cni" and cni_results(lab) < 3:
            print(f"note: the {backend}, cni lab keeps {cni_results(lab)} CNI results for its 3 pods (and DNS's)")
        addr = {name: kl(lab, "get", "pod", name, "-o", "jsonpath={.status.podIP}").strip()
                for name in ("near", "far")}
        client = Client([*CLI, "--lab", lab, "exec", "client", "--"])
        for _ in range(repeat):
            runs["hand"].append(measure(hand, HAND_SERVER, seconds))
            runs["same"].append(measure(client, addr["near"], seconds))
            runs["across"].append(measure(client, addr["far"], seconds))
    return runs


def versus(figure: float, base: float) -> str:
    return f"{figure:7.2f} ({100 * (figure / base - 1):+5.1f}%)"


def throughput(tmp: Path, seconds: float, repeat: int, cni: bool) -> None:
    variants = [(b, None) for b in BACKENDS] + ([("host-gw", "cni")] if cni else [])
    print(f"\nPod-to-pod TCP throughput, Gbit/s: iperf3, one stream, {seconds:g} s a run, median of {repeat}; "
          f"each variant's runs interleaved with the hand-built path's ({OWNER}.client -> bridge -> .server, "
          f"{HAND_CLIENT} -> {HAND_SERVER}); in brackets, the difference from the hand-built path")
    print(f"goal (issue 14): host-gw{' and cni wiring' if cni else ''} within {100 * GOAL:.0f}% of the hand-built "
          f"path (no more than {100 * GOAL:.0f}% below it); vxlan's cost shown")
    print(f"{'variant':<18}{'hand-built':>11}{'same node':>18}{'across nodes':>18}   goal")
    with hand_built() as hand:
        for backend, wiring in variants:
            runs = variant(tmp, hand, backend, wiring, seconds, repeat)
            base, same, across = (statistics.median(runs[k]) for k in ("hand", "same", "across"))
            name = backend + (f", {wiring}" if wiring else "")
            goal = ""
            if backend == "host-gw":
                held = [where for where, f in (("same node", same), ("across nodes", across))
                        if f >= (1 - GOAL) * base]
                goal = f"held: {', '.join(held)}" if held else "missed"
            print(f"{name:<18}{base:>11.2f}{versus(same, base):>18}{versus(across, base):>18}   {goal}", flush=True)


def build_times(tmp: Path, pods_: int, repeat: int) -> None:
    from bench_up import NODES, manifests
    manifest = tmp / "build.yaml"
    manifest.write_text(manifests(pods_))
    times: dict[str, list[float]] = {"netlink": [], "cni": []}
    wired = 0
    for _ in range(repeat):
        for wiring in times:  # interleaved, as above
            cluster = tmp / f"build-{wiring}.yaml"
            cluster.write_text(cluster_config("host-gw", wiring))
            with lab_up([cluster, manifest]) as (lab, took):
                times[wiring].append(took)
                wired = cni_results(lab) if wiring == "cni" else wired
    net, cni = statistics.median(times["netlink"]), statistics.median(times["cni"])
    print(f"\n`up` of {pods_} pods on {NODES} nodes (host-gw; the whole command), median of {repeat}: "
          f"netlink wiring {net:.2f} s ({1000 * net / pods_:.1f} ms/pod), cni wiring {cni:.2f} s "
          f"({1000 * cni / pods_:.1f} ms/pod; {wired} pods' CNI results kept), {cni / net:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one iperf3 run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (their median is shown)")
    parser.add_argument("--pods", type=int, default=500, help="pods built with each wiring")
    parser.add_argument("--build-repeat", type=int, default=1, help="builds with each wiring")
    parser.add_argument("--no-build", action="store_true", help="throughput only")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark builds real namespaces")
    try:
        version = subprocess.run(["iperf3", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    except FileNotFoundError:
        sys.exit("iperf3 is not installed (setup.sh installs it: apt-get install iperf3)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the clean-up runs as on Ctrl-C
    print(f"{version}; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            refused = wiring_offered(tmp)
            if refused:
                print(f"networking.wiring: cni is not offered by this kubenet-lab ({refused}): cni wiring skipped")
            throughput(tmp, args.seconds, args.repeat, cni=refused is None)
            if refused is None and not args.no_build:
                build_times(tmp, args.pods, args.build_repeat)
    except KeyboardInterrupt:
        sys.exit("\ninterrupted (the labs and namespaces it made are removed)")
    except (IperfError, RuntimeError) as e:
        sys.exit(f"bench_dataplane: {e} (the labs and namespaces it made are removed)")
    except subprocess.CalledProcessError as e:
        sys.exit(f"bench_dataplane: {' '.join(e.cmd)}: {(e.stderr or '').strip()} (what it made is removed)")
    print(f"\nload average {', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
