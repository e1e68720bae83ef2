#!/usr/bin/env python3
"""Time NetworkPolicy's rules: 100 and 1000 policies over 500 pods (10 namespaces, 50 app labels,
2 nodes): the render of each node's `inet kubenet-netpol` table (pure), its load (one `nft -f`
transaction per node, into a throwaway namespace bench-np-<hex>.nX, removed at the end), and the
oracle's verdicts for every pair of 100 pods. With --throughput: pod-to-pod TCP across nodes
in a lab of its own (bench-np-<hex>, removed at the end), without policies and with 100 that
isolate the server (one of them lets the client in). Prints a table; asserts nothing. Run as
root: sudo python3 bench/bench_netpol.py [--throughput]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubenet_lab.manifests import load_model  # noqa: E402
from kubenet_lab.plan import make_plan  # noqa: E402
from kubenet_lab.policy.nftables import render  # noqa: E402
from kubenet_lab.policy.verdict import pod_end, verdict  # noqa: E402

import yaml  # noqa: E402

PODS, NAMESPACES, APPS = 500, 10, 50


def objects(policies: int) -> list[dict]:
    docs: list[dict] = [{"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": f"ns{n}", "labels": {"team": f"t{n % 3}"}}} for n in range(NAMESPACES)]
    for i in range(PODS):
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"p{i}", "namespace": f"ns{i % NAMESPACES}",
                                  "labels": {"app": f"a{i % APPS}"}},
                     "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                                              "args": ["netexec", "--http-port=8080"],
                                              "ports": [{"name": "http", "containerPort": 8080}]}]}})
    block = {"ipBlock": {"cidr": "172.18.0.0/24", "except": ["172.18.0.254/32"]}}
    ports = [{"port": "http"}, {"port": 9000, "endPort": 9100}]
    dns = {"to": [{"namespaceSelector": {}}], "ports": [{"port": 53, "protocol": "UDP"}]}
    for k in range(policies):
        docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": {"name": f"np{k}", "namespace": f"ns{k % NAMESPACES}"},
                     "spec": {"podSelector": {"matchLabels": {"app": f"a{k % APPS}"}},
                              "ingress": [{"from": [peer(k), block], "ports": ports}],
                              "egress": [dns] if k % 4 == 0 else [{}]}})
    return docs


def peer(k: int) -> dict:
    return {"podSelector": {"matchLabels": {"app": f"a{(k + 1) % APPS}"}},
            "namespaceSelector": {"matchLabels": {"team": f"t{k % 3}"}}}


SINK = """
import socket
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("", 9000)); srv.listen()
while True:
    c = srv.accept()[0]
    while c.recv(1 << 20):
        pass
    c.close()
"""
# `python3 -c SEND IP SECONDS`: bytes sent over one connection in SECONDS, as MB/s.
SEND = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], 9000), timeout=5)
chunk, sent = b"x" * (1 << 16), 0
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    sent += s.send(chunk)
print(sent / float(sys.argv[2]) / 1e6)
"""
LAB_PODS = """
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec: {nodeName: node1, containers: [{name: c, image: busybox, command: [sleep, infinity]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec: {nodeName: node2, containers: [{name: c, image: busybox, command: [sleep, infinity]}]}
"""


def throughput(seconds: float = 5.0, runs: int = 3) -> None:
    lab = f"bench-np-{uuid.uuid4().hex[:6]}"
    cli = [sys.executable, "-m", "kubenet_lab.cli", "--lab", lab]
    policies = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": f"np{k}"},
                 "spec": {"podSelector": {"matchLabels": {"app": "server"}},
                          "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client" if k == 99
                                                                                 else f"other{k}"}}}],
                                       "ports": [{"port": 9000 if k == 99 else 10000 + k}]}]}} for k in range(100)]
    sink = None
    try:
        subprocess.run(cli + ["up", "-q", "-"], input=LAB_PODS, text=True, check=True)
        ip = subprocess.run(cli + ["get", "pod", "server", "-o", "jsonpath={.status.podIP}"], capture_output=True,
                            text=True, check=True).stdout
        sink = subprocess.Popen(cli + ["exec", "server", "--", "python3", "-c", SINK])
        time.sleep(1)
        rows = []
        for label in ("no policy", "100 policies"):
            if label != "no policy":
                subprocess.run(cli + ["apply", "-f", "-"], input=yaml.safe_dump_all(policies), text=True, check=True,
                               capture_output=True)
            rates = [float(subprocess.run(cli + ["exec", "client", "--", "python3", "-c", SEND, ip, str(seconds)],
                                          capture_output=True, text=True, check=True).stdout) for _ in range(runs)]
            rows.append((label, sorted(rates)[len(rates) // 2], min(rates), max(rates)))
    finally:
        if sink is not None:
            sink.kill()
            sink.wait()
        subprocess.run(cli + ["down", "-q"], capture_output=True)
    print(f"{'pod-to-pod TCP, node1 <- node2':<32} {'median MB/s':>12} {'min':>8} {'max':>8}")
    for label, median, low, high in rows:
        print(f"{label:<32} {median:>12.0f} {low:>8.0f} {high:>8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--throughput", action="store_true")
    if parser.parse_args().throughput:
        throughput()
        return
    tag = uuid.uuid4().hex[:6]
    made: list[str] = []
    rows = []
    try:
        for n in (100, 1000):
            path = Path(f"/tmp/bench-netpol-{tag}-{n}.yaml")
            path.write_text(yaml.safe_dump_all(objects(n)))
            plan = make_plan(load_model([str(path)]), f"bench-np-{tag}")
            path.unlink()
            start = time.perf_counter()
            texts = {node.name: render(plan, node.name) for node in plan.nodes}
            rendered = time.perf_counter() - start
            loads = []
            for node, text in texts.items():
                netns = f"bench-np-{tag}.{node}.{n}"
                subprocess.run(["ip", "netns", "add", netns], check=True)
                made.append(netns)
                start = time.perf_counter()
                subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=text, text=True, check=True)
                loads.append(time.perf_counter() - start)
            pods = [p for p in plan.pods if p.namespace.startswith("ns")][:100]
            start = time.perf_counter()
            allowed = sum(verdict(plan, pod_end(s), pod_end(d), "TCP", 8080).allowed for s in pods for d in pods)
            judged = time.perf_counter() - start
            rules = sum(t.count("accept comment") for t in texts.values())
            rows.append((n, rules, rendered, max(loads), sum(loads), judged, allowed))
    finally:
        for netns in made:
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True)
    print(f"{'policies':>8} {'rules':>7} {'render (2 nodes)':>17} {'load/node max':>14} {'load all':>9} "
          f"{'10k verdicts':>13} {'allowed':>8}")
    for n, rules, rendered, worst, total, judged, allowed in rows:
        print(f"{n:>8} {rules:>7} {rendered:>16.3f}s {worst:>13.3f}s {total:>8.3f}s {judged:>12.3f}s {allowed:>8}")


if __name__ == "__main__":
    main()
