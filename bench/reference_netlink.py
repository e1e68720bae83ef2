"""Reference: the lab's topology (N nodes x M pods) in plain pyroute2, no project code.

What a careful hand-written script does: setns instead of forks (netns.setns(fork=False)
creates the namespace in-process), one IPRoute socket per namespace, pods split by node over
2 processes, teardown by unmounting the namespaces (the kernel removes their veths).
Prints one JSON line: {"pods": M, "up_ms_per_pod": ..., "down_ms_per_pod": ...}; with
--machine exactly one line `up=<seconds> down=<seconds>`. Its namespaces carry the process id
in their names, so runs side by side do not meet.

    python3 bench/reference_netlink.py [--nodes 4] [--pods 200] [--machine]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pyroute2 import IPRoute, netns

LAB = f"refbench{os.getpid()}"
MARK = "kubenet-lab:" + LAB


def ns_name(kind: str, i: int, j: int | None = None) -> str:
    return f"{LAB}.{kind}.{i}" + (f".{j}" if j is not None else "")


def enter_new(name: str) -> IPRoute:
    """Create namespace `name`, open a socket inside it, come back."""
    netns.pushns()
    try:
        netns.setns(name, flags=os.O_CREAT | os.O_EXCL, fork=False)
        ipr = IPRoute(groups=0)
        ipr.link("set", index=1, state="up", ifalias=MARK)
    finally:
        netns.popns()
    return ipr


def build_base(nodes: int) -> None:
    under = enter_new(f"{LAB}.underlay")
    under.link("add", ifname="br0", kind="bridge")
    br0 = under.link_lookup(ifname="br0")[0]
    under.link("set", index=br0, state="up", ifalias=MARK)
    for i in range(nodes):
        node = enter_new(ns_name("node", i))
        under.link("add", ifname=f"vethnode{i}", kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns_name("node", i)})
        up = under.link_lookup(ifname=f"vethnode{i}")[0]
        under.link("set", index=up, master=br0, state="up", ifalias=MARK)
        eth0 = node.link_lookup(ifname="eth0")[0]
        node.link("set", index=eth0, state="up", ifalias=MARK)
        node.addr("add", index=eth0, address=f"172.18.0.{i + 2}", prefixlen=24)
        node.link("add", ifname="cbr0", kind="bridge")
        cbr0 = node.link_lookup(ifname="cbr0")[0]
        node.link("set", index=cbr0, state="up", ifalias=MARK)
        node.addr("add", index=cbr0, address=f"10.244.{i}.1", prefixlen=24)
        for k in range(nodes):
            if k != i:
                node.route("add", dst=f"10.244.{k}.0/24", gateway=f"172.18.0.{k + 2}", oif=eth0)
        netns.pushns(ns_name("node", i))
        for key in ("ipv4/ip_forward", "bridge/bridge-nf-call-iptables"):
            with open(f"/proc/sys/net/{key}", "w") as f:
                f.write("1")
        netns.popns()
        node.close()
    under.close()


def build_pods(nodes: list[int], per_node: int) -> None:
    for i in nodes:
        netns.pushns(ns_name("node", i))
        node = IPRoute(groups=0)
        netns.popns()
        cbr0 = node.link_lookup(ifname="cbr0")[0]
        for j in range(per_node):
            name = ns_name("pod", i, j)
            pod = enter_new(name)
            host = f"veth{i:02x}{j:06x}"
            node.link("add", ifname=host, kind="veth", peer={"ifname": "eth0", "net_ns_fd": name})
            idx = node.link_lookup(ifname=host)[0]
            node.link("set", index=idx, master=cbr0, state="up", ifalias=MARK)
            node.brport("set", index=idx, mode=1)
            eth0 = pod.link_lookup(ifname="eth0")[0]
            pod.link("set", index=eth0, state="up", ifalias=MARK)
            pod.addr("add", index=eth0, address=f"10.244.{i}.{j + 2}", prefixlen=24)
            pod.route("add", dst="0.0.0.0/0", gateway=f"10.244.{i}.1")
            pod.close()
        node.close()


def teardown() -> None:
    for name in netns.listnetns():
        if name.startswith(LAB + "."):
            netns.remove(name)


def build(nodes: int, per_node: int) -> None:
    """The underlay and nodes, then the pods, the nodes split over this process and a child."""
    build_base(nodes)
    half = (nodes + 1) // 2
    child = os.fork()
    if child == 0:
        code = 0
        try:
            build_pods(list(range(half)), per_node)
        except BaseException as e:  # noqa: BLE001
            print(f"worker: {e!r}", file=sys.stderr)
            code = 1
        os._exit(code)
    build_pods(list(range(half, nodes)), per_node)
    _, status = os.waitpid(child, 0)
    if status:
        raise RuntimeError("reference worker failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--pods", type=int, default=40, help="in all, spread evenly over the nodes")
    parser.add_argument("--machine", action="store_true", help="print only `up=<s> down=<s>`")
    args = parser.parse_args()
    per_node = args.pods // args.nodes
    try:
        start = time.perf_counter()
        build(args.nodes, per_node)
        up = time.perf_counter() - start
        start = time.perf_counter()
        teardown()
        down = time.perf_counter() - start
    finally:
        teardown()
    if args.machine:
        print(f"up={up:.6f} down={down:.6f}")
        return
    total = per_node * args.nodes
    print(json.dumps({"pods": total, "up_ms_per_pod": up / total * 1000, "down_ms_per_pod": down / total * 1000}))


if __name__ == "__main__":
    main()
