"""The Kubernetes e2e network-policy model (test/e2e/network/netpol/model.go), shared by the
unit tests of the oracle and the integration tests that probe a lab: namespaces x, y, z (each
labelled ns=<name>), pods a, b, c in each (labelled pod=<name>), every pod serving TCP and UDP
on 80 and 81 from a container per port and protocol (cont-80-tcp, its port named serve-80-tcp),
as agnhost serve-hostname does there; and its Reachability table (reachability.go: every pair
allowed, then the case's Expect* calls), with the truth-table printing of truthtable.go."""
from __future__ import annotations

from typing import Iterable

import yaml

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
PORTS = (80, 81)
PROTOCOLS = ("TCP", "UDP")
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
ALL = tuple(f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS)


def container(port: int, protocol: str) -> dict:
    proto = protocol.lower()
    return {"name": f"cont-{port}-{proto}", "image": AGNHOST,
            "command": ["/agnhost", "serve-hostname", f"--{proto}", "--http=false", "--port", str(port)],
            "ports": [{"containerPort": port, "name": f"serve-{port}-{proto}", "protocol": protocol}]}


def objects(namespaces: Iterable[str] = NAMESPACES, pods: Iterable[str] = PODS,
            ns_labels: dict[str, dict[str, str]] | None = None,
            pod_labels: dict[str, dict[str, str]] | None = None) -> list[dict]:
    """The model's Namespaces and Pods as manifests; `ns_labels`/`pod_labels` ("x" / "x/a" ->
    labels) add labels, as the e2e cases' AddNamespaceLabel and AddPodLabels do."""
    out: list[dict] = []
    pods = tuple(pods)
    for ns in namespaces:
        out.append({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"ns": ns, **(ns_labels or {}).get(ns, {})}}})
        for pod in pods:
            labels = {"pod": pod, **(pod_labels or {}).get(f"{ns}/{pod}", {})}
            out.append({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": pod, "namespace": ns, "labels": labels},
                        "spec": {"terminationGracePeriodSeconds": 0,
                                 "containers": [container(port, proto) for port in PORTS for proto in PROTOCOLS]}})
    return out


def dump(docs: Iterable[dict]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


class Reachability:
    """Expected connectivity between pods ("ns/pod" keys): every pair allowed, then the case's
    expectations, as the e2e Reachability's Expect, ExpectPeer, ExpectAllIngress, ExpectAllEgress."""

    def __init__(self, pods: Iterable[str] = ALL, default: bool = True):
        self.pods = tuple(pods)
        self.cells = {(s, d): default for s in self.pods for d in self.pods}

    def expect(self, src: str, dst: str, value: bool) -> Reachability:
        self.cells[(src, dst)] = value
        return self

    def expect_peer(self, src: str, dst: str, value: bool) -> Reachability:
        """`src`/`dst` are e2e Peers: "" every pod, "x" every pod of x, "x/a" one pod."""
        for s in self.pods:
            for d in self.pods:
                if _peer(src, s) and _peer(dst, d):
                    self.cells[(s, d)] = value
        return self

    def expect_all_ingress(self, pod: str, value: bool) -> Reachability:
        return self.expect_peer("", pod, value)

    def expect_all_egress(self, pod: str, value: bool) -> Reachability:
        return self.expect_peer(pod, "", value)

    def differences(self, other: dict[tuple[str, str], bool], loopback: bool = False) -> list[tuple[str, str]]:
        """The pairs `other` disagrees on; a pod to itself is left out unless `loopback` (the e2e
        suite ignores loopback: its semantics are undefined)."""
        return [k for k, v in self.cells.items() if other.get(k) != v and (loopback or k[0] != k[1])]


def _peer(peer: str, pod: str) -> bool:
    return peer in ("", pod) or ("/" not in peer and pod.split("/")[0] == peer)


def truth_table(pods: tuple[str, ...], cells: dict[tuple[str, str], bool]) -> list[str]:
    """truthtable.go's picture: a row per source, a column per destination, '.' reachable, 'X' not."""
    lines = ["-\t" + "\t".join(pods)]
    for s in pods:
        lines.append(s + "\t" + "\t".join("." if cells.get((s, d)) else "X" for d in pods))
    return lines


def side_by_side(pods: tuple[str, ...], expected: dict, actual: dict) -> str:
    """Expected and observed tables next to each other, and the pairs that differ."""
    left, right = truth_table(pods, expected), truth_table(pods, actual)
    width = max(len(line.expandtabs()) for line in left) + 4
    rows = ["expected".ljust(width) + "observed"]
    rows += [a.expandtabs().ljust(width) + b.expandtabs() for a, b in zip(left, right)]
    wrong = [f"{s} -> {d}: expected {'allowed' if expected[(s, d)] else 'denied'}"
             for s in pods for d in pods if (s, d) in expected and actual.get((s, d)) != expected[(s, d)]]
    return "\n".join(rows + wrong)
