"""Pod-to-pod TCP throughput for each backend (host-gw, vxlan, l2), on one node and across nodes,
beside a hand-built path made in the same run: two namespaces joined by veths to a bridge in a
third (a pod's path on one node, without the lab).

One bulk TCP stream for a few seconds per figure: a receiver in the server's namespace reads
into a 1 MiB buffer, the sender writes 1 MiB buffers (Python, but the copies are the kernel's:
one recv/send per MiB). It prints figures and asserts nothing. Root only.

    python3 bench/bench_backends.py [--seconds 3] [--repeat 3]
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
MANIFEST = ROOT / "tests" / "integration" / "manifests" / "backends.yaml"
LAB = f"bkbench{os.getpid() % 100000}"
PORT = 5201

RECEIVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
print("ready", flush=True)
c, _ = s.accept(); buf = bytearray(1 << 20); total = 0
while (n := c.recv_into(buf)):
    total += n
print(total, flush=True)
"""

SENDER = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
buf = b"x" * (1 << 20); total = 0; start = time.perf_counter(); end = start + float(sys.argv[3])
while time.perf_counter() < end:
    c.sendall(buf); total += len(buf)
c.shutdown(socket.SHUT_WR); c.recv(1); elapsed = time.perf_counter() - start
print(total, elapsed, flush=True)
"""


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def stream(server_ns: str, client_ns: str, server_ip: str, seconds: float) -> float:
    """Gbit/s of one TCP stream from client_ns to server_ip:PORT in server_ns."""
    recv = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", RECEIVER, str(PORT)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout is not None and recv.stdout.readline().strip() == "ready"
        out = sh("ip", "netns", "exec", client_ns, sys.executable, "-c", SENDER, server_ip, str(PORT), str(seconds))
        sent, elapsed = out.split()
        recv.wait(timeout=30)
        return int(sent) * 8 / float(elapsed) / 1e9
    finally:
        if recv.poll() is None:
            recv.kill()


def hand_built(seconds: float, repeat: int) -> float:
    """a <-veth-> bridge (in br) <-veth-> b, addresses 10.99.0.1/2: a pod's path on one node."""
    a, br, b = f"{LAB}-a", f"{LAB}-br", f"{LAB}-b"
    try:
        for ns in (a, br, b):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", br, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", br, "link", "set", "br0", "up")
        for ns, ip in ((a, "10.99.0.1"), (b, "10.99.0.2")):
            sh("ip", "-n", br, "link", "add", f"p-{ns[-1]}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", br, "link", "set", f"p-{ns[-1]}", "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        return statistics.median(stream(b, a, "10.99.0.2", seconds) for _ in range(repeat))
    finally:
        for ns in (a, br, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def kl(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "kubenet_lab.cli", "--lab", LAB, *args], capture_output=True,
                          text=True, check=True, cwd=ROOT).stdout


def lab_figures(backend: str, seconds: float, repeat: int) -> tuple[float, float]:
    """(same node, across nodes) Gbit/s: client on node1 to a pod on node1, and to s1 on node2."""
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Path(tmp) / "cluster.yaml"
        cluster.write_text(f"apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\nnetworking:\n  backend: {backend}\n")
        local = Path(tmp) / "local.yaml"
        local.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: near}\nspec:\n  nodeName: node1\n"
                         "  containers:\n  - name: c\n    image: busybox\n    command: [sleep, infinity]\n")
        kl("up", str(cluster), str(MANIFEST), str(local))
        try:
            ips = {name: kl("get", "pod", name, "-o", "jsonpath={.status.podIP}") for name in ("near", "s1")}
            client = f"{LAB}.pod.default.client"
            same = statistics.median(stream(f"{LAB}.pod.default.near", client, ips["near"], seconds)
                                     for _ in range(repeat))
            across = statistics.median(stream(f"{LAB}.pod.default.s1", client, ips["s1"], seconds)
                                       for _ in range(repeat))
            return same, across
        finally:
            kl("down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_backends needs root (network namespaces)")
    started = time.perf_counter()
    base = hand_built(args.seconds, args.repeat)
    print(f"hand-built veth/bridge/veth: {base:6.2f} Gbit/s")
    print(f"{'backend':8}  {'same node':>22}  {'across nodes':>22}")
    for backend in ("host-gw", "vxlan", "l2"):
        same, across = lab_figures(backend, args.seconds, args.repeat)
        print(f"{backend:8}  {same:6.2f} Gbit/s ({same / base:4.2f}x)  {across:6.2f} Gbit/s ({across / base:4.2f}x)")
    print(f"hand-built again:            {hand_built(args.seconds, args.repeat):6.2f} Gbit/s "
          f"({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
