#!/usr/bin/env python3
"""Memory and start-up of the built-in servers: N pods, each its own network namespace running
agnhost netexec (HTTP 8080 + UDP 8081), all served by one supervisor process.

Prints the supervisor's RSS, threads, open sockets, the reload time, and the time of requests
made from inside the pods. Asserts nothing. Run as root: sudo python3 bench/bench_servers.py
"""
from __future__ import annotations

import argparse
import fcntl
import os
import secrets
import socket
import struct
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubenet_lab.model.objects import (Allocations, ClusterConfig, Plan, PlannedContainer,  # noqa: E402
                                    PlannedPod, RunNetexec)
from kubenet_lab.kernel import netns
from kubenet_lab.fabric import state
from kubenet_lab.supervisor import client as supervisor  # noqa: E402
from kubenet_lab.kernel.nsenter import in_netns  # noqa: E402


def proc_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split()[1]
    return "?"


def sockets_of(pid: int) -> int:
    return sum(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:") for fd in os.listdir(f"/proc/{pid}/fd"))


def lo_up() -> None:
    """`ip link set lo up` in the current namespace, without a process: SIOCSIFFLAGS."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", 0x1 | 0x8 | 0x40))  # UP|LOOPBACK|RUNNING


def ask(ns: str, path: str) -> bytes:
    """An HTTP request from inside the pod's own namespace, to its loopback."""
    with in_netns(ns):
        sock = socket.socket()
    with sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", 8080))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=500)
    args = parser.parse_args()
    lab = f"bsrv{secrets.token_hex(2)}"
    names = [f"{lab}.pod.default.p{i}" for i in range(args.pods)]
    try:
        t = time.monotonic()
        for name in names:
            with netns.created(name):
                lo_up()
        print(f"{args.pods} namespaces created in {time.monotonic() - t:.2f} s")
        pods = tuple(PlannedPod(namespace="default", name=f"p{i}", node="n0", ip=IPv4Address("10.244.0.2"),
                                netns=name, host_veth=None, uid=f"u{i}",
                                containers=(PlannedContainer("netexec", "agnhost", RunNetexec()),))
                     for i, name in enumerate(names))
        empty = Plan(lab=lab, cluster=ClusterConfig(), nodes=(), pods=(), services=(),
                     allocations=Allocations(), underlay_netns=f"{lab}.underlay")
        state.save_plan(empty)
        pid = supervisor.ensure_running(lab)
        base_rss = int(proc_field(pid, "VmRSS"))
        state.save_plan(Plan(**{**empty.__dict__, "pods": pods}))
        t = time.monotonic()
        supervisor.request(lab, {"op": "reload"}, timeout=300)
        reload_s = time.monotonic() - t
        first = time.monotonic()
        assert ask(names[-1], "/hostname") == b"p%d" % (args.pods - 1)
        first = (time.monotonic() - first) * 1000
        time.sleep(2)  # the deferred start-up log lines are written
        t = time.monotonic()
        sample = names[:: max(1, args.pods // 50)]
        for name in sample:
            assert ask(name, "/hostname") == name.rsplit(".", 1)[1].encode()
        per_request = (time.monotonic() - t) / len(sample) * 1000
        rss = int(proc_field(pid, "VmRSS"))
        print(f"supervisor: idle {base_rss / 1024:.1f} MB; with {args.pods} pods RSS {rss / 1024:.1f} MB "
              f"({(rss - base_rss) / args.pods:.1f} KB per pod), threads {proc_field(pid, 'Threads')}, "
              f"sockets {sockets_of(pid)}")
        print(f"reload (all sockets bound): {reload_s:.2f} s ({reload_s / args.pods * 1000:.2f} ms per pod); "
              f"first request right after: {first:.1f} ms; then a request from a pod: {per_request:.2f} ms")
    finally:
        supervisor.stop(lab)
        for name in names:
            netns.remove(name)
        state.remove_state(lab)


if __name__ == "__main__":
    main()
