#!/usr/bin/env python3
"""Time NetworkPolicy's rules: 100 and 1000 policies over 500 pods (10 namespaces, 50 app labels,
2 nodes): the render of each node's `inet kubenet-netpol` table (pure), its load (one `nft -f`
transaction per node, into a throwaway namespace bench-np-<hex>.nX, removed at the end), and the
oracle's verdicts for every pair of 100 pods. Prints a table; asserts nothing. Run as root:
sudo python3 bench/bench_netpol.py
"""
from __future__ import annotations

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


def main() -> None:
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
