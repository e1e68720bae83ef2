"""Reading a lab's live network state for `describe`: what the kernel holds in a namespace, as
plain data (inspect/netview.py makes sense of it). Read only: `ip -json` in the namespace for
links, addresses, routes and neighbours; `iptables-save -c` or `nft list table ip kube-proxy`
inside a node for its rules and their counters. Several namespaces are read in parallel.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from typing import Iterable

from ..inspect.netview import IPTABLES_MODES, Namespace, NodeRules
from ..kernel.nsenter import in_netns, netns_path
from ..kernel.rules import NFT_TABLE


def _ip(netns: str, *args: str) -> list:
    proc = subprocess.run(["ip", "-n", netns, "-json", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise OSError(proc.stderr.strip() or f"ip {' '.join(args)} failed")
    return json.loads(proc.stdout or "[]")


def namespace(netns: str, neighbours: bool = False) -> Namespace:
    """Links with their addresses (and bridge port details), the main table's routes, and with
    `neighbours` the neighbour table."""
    if not os.path.exists(netns_path(netns)):
        return Namespace(netns, error=f"network namespace {netns} does not exist")
    if shutil.which("ip") is None:
        return Namespace(netns, error="ip not found: install iproute2")
    try:
        links = _ip(netns, "-details", "addr", "show")
        routes = _ip(netns, "route", "show")
        neigh = _ip(netns, "neigh", "show") if neighbours else []
    except (OSError, ValueError) as e:
        return Namespace(netns, error=str(e))
    return Namespace(netns, tuple(links), tuple(routes), tuple(neigh))


def link(netns: str, name: str) -> Namespace:
    """The namespace with its link `name` alone (with its addresses and bridge port details), or
    none when it has no such link: the node side of a pod, without the node's hundreds of others."""
    if not os.path.exists(netns_path(netns)):
        return Namespace(netns, error=f"network namespace {netns} does not exist")
    if shutil.which("ip") is None:
        return Namespace(netns, error="ip not found: install iproute2")
    proc = subprocess.run(["ip", "-n", netns, "-json", "-details", "addr", "show", "dev", name],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        if "does not exist" in proc.stderr:  # `Device "NAME" does not exist.`
            return Namespace(netns)
        return Namespace(netns, error=proc.stderr.strip() or "ip addr show failed")
    try:
        return Namespace(netns, tuple(json.loads(proc.stdout or "[]")))
    except ValueError as e:
        return Namespace(netns, error=str(e))


def pod_and_peer(pod_netns: str, node_netns: str, veth: str) -> tuple[Namespace, Namespace]:
    """A pod's namespace (links, routes) and, read alongside, its veth's peer in the node."""
    return tuple(_parallel(lambda job: job(), [lambda: namespace(pod_netns), lambda: link(node_netns, veth)]))


def _parallel(fn, items: list) -> list:
    """fn over items, one thread each (a few namespaces or nodes: the time is the tools')."""
    results: list = [None] * len(items)

    def work(i: int) -> None:
        results[i] = fn(items[i])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def namespaces(names: Iterable[str], neighbours: bool = False) -> dict[str, Namespace]:
    names = list(dict.fromkeys(names))
    return dict(zip(names, _parallel(lambda n: namespace(n, neighbours), names)))


def node_rules(node: str, netns: str, mode: str) -> NodeRules:
    """The node's rules as its proxy mode keeps them, with counters (userspace mode: in iptables)."""
    argv = ["iptables-save", "-c"] if mode in IPTABLES_MODES else ["nft", "list", "table", *NFT_TABLE.split()]
    if shutil.which(argv[0]) is None:
        return NodeRules(node, mode, "", error=f"{argv[0]} not found")
    if not os.path.exists(netns_path(netns)):
        return NodeRules(node, mode, "", error=f"network namespace {netns} does not exist")
    try:
        with in_netns(netns):  # the child is forked from this thread, inside the node
            proc = subprocess.run(argv, capture_output=True, text=True)
    except OSError as e:
        return NodeRules(node, mode, "", error=f"entering {netns}: {e.strerror or e}")
    if proc.returncode != 0:
        return NodeRules(node, mode, "", error=proc.stderr.strip() or f"{' '.join(argv)} failed")
    return NodeRules(node, mode, proc.stdout)


def all_node_rules(nodes: Iterable[tuple[str, str]], mode: str) -> list[NodeRules]:
    """(node, netns) pairs -> their rules, in order."""
    return _parallel(lambda n: node_rules(n[0], n[1], mode), list(nodes))
