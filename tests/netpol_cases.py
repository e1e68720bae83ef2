"""The cases of Kubernetes' e2e network-policy suite, as data: each case's pods, its policies
(as the test builds them: SetSpecIngressRules/SetSpecEgressRules write policyTypes), the
changes between its steps, and the expected reachability of each probe, written with the same
Expect calls the test makes. Source: kubernetes/kubernetes test/e2e/network/netpol/
network_policy.go (master, 2025: the cases that name the pods they need; earlier releases ran
every case on all nine pods), policies.go (SetSpec*Rules), model.go (port names). Only the
expectations are transcribed; the lab's namespaces are x, y, z themselves (the suite's get a
random prefix, which `namespaceLabelKey: nsY` then names).

A probe is (port, protocol, expectations); an expectation (src, dst, allowed) is an e2e
ExpectPeer: "" every pod, "x" every pod of x, "x/a" one pod (Expect, ExpectAllIngress and
ExpectAllEgress are its special cases). A policy's ipBlock may name a pod's address:
"{ip:y/b}" is y/b's pod IP, "{cidr4:x/b}" the /4 holding it (makeLargeCIDRForIP).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NAME = "kubernetes.io/metadata.name"  # namespaceLabelKey

Expect = tuple[str, str, bool]
Probe = tuple[int, str, tuple[Expect, ...]]


@dataclass(frozen=True)
class Step:
    """What changes before the step's probes: policies created (or updated: same name), all
    policies deleted first, labels added to namespaces ("y") or pods ("x/b")."""

    probes: tuple[Probe, ...]
    create: tuple[dict, ...] = ()
    delete_all: bool = False
    ns_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    pod_labels: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    name: str  # the e2e test's name
    pods: tuple[str, ...]
    steps: tuple[Step, ...]
    protocols: tuple[str, ...] = ("TCP",)


def policy(name: str, pod_selector: dict[str, str] | None = None, ingress: list | None = None,
           egress: list | None = None, namespace: str = "x", selector: dict | None = None,
           types: list[str] | None = None) -> dict:
    """GenNetworkPolicyWithNameAndPodMatchLabel / ...PodSelector with SetSpecIngressRules and
    SetSpecEgressRules: each direction given is written, with its policyType."""
    spec: dict[str, Any] = {"podSelector": selector if selector is not None else
                            ({"matchLabels": pod_selector} if pod_selector else {})}
    written = []
    if ingress is not None:
        spec["ingress"] = ingress
        written.append("Ingress")
    if egress is not None:
        spec["egress"] = egress
        written.append("Egress")
    spec["policyTypes"] = types or written
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def labels(**kv: str) -> dict:
    return {"matchLabels": dict(kv)}


def ns_name(name: str) -> dict:
    return {"matchLabels": {NAME: name}}


def expr(key: str, op: str, *values: str) -> dict:
    return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}


def one(probes: list[Probe], *create: dict, **kw: Any) -> tuple[Step, ...]:
    return (Step(tuple(probes), tuple(create), **kw),)


ALLOW_ALL: tuple[Expect, ...] = ()
_81_FROM_Y = {"from": [{"namespaceSelector": ns_name("y")}], "ports": [{"port": 81, "protocol": "TCP"}]}
_ALLOW_81 = ((("x", "x/a", False), ("y", "x/a", True), ("z", "x/a", False)))

CASES: tuple[Case, ...] = (
    Case("should support a 'default-deny-ingress' policy", ("x/a", "x/b", "y/a", "y/b"),
         one([(80, "TCP", (("", "x", False),))], policy("deny-ingress", ingress=[]))),
    Case("should support a 'default-deny-all' policy", ("x/a", "x/b", "y/a"),
         one([(80, "TCP", (("", "x", False), ("x", "", False)))], policy("deny-all", ingress=[], egress=[]))),
    Case("should enforce policy to allow traffic from pods within server namespace based on PodSelector",
         ("x/a", "x/b", "x/c", "y/a"),
         one([(80, "TCP", (("", "x/a", False), ("x/b", "x/a", True)))],
             policy("x-a-allows-x-b", {"pod": "a"}, ingress=[{"from": [{"podSelector": labels(pod="b")}]}]))),
    Case("should enforce policy to allow ingress traffic for a target", ("x/a", "x/b", "y/a"),
         one([(80, "TCP", (("", "x/a", True), ("", "x/b", False)))],
             policy("deny-all", ingress=[]),
             policy("allow-all-to-a", {"pod": "a"},
                    ingress=[{"from": [{"podSelector": {}, "namespaceSelector": {}}]}]))),
    Case("should enforce policy to allow ingress traffic from pods in all namespaces", ("x/a", "x/b", "y/a", "z/a"),
         one([(80, "TCP", ALLOW_ALL)],
             policy("allow-from-another-ns", {"pod": "a"},
                    ingress=[{"from": [{"namespaceSelector": {"matchLabels": {}}}]}]))),
    Case("should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
         ("x/a", "x/b", "y/a", "z/a"),
         one([(80, "TCP", (("x", "x/a", False), ("z", "x/a", False)))],
             policy("allow-client-a-via-ns-selector", {"pod": "a"},
                    ingress=[{"from": [{"namespaceSelector": ns_name("y")}]}]))),
    Case("should enforce policy based on PodSelector with MatchExpressions", ("x/a", "x/b", "y/a"),
         one([(80, "TCP", (("", "x/a", False), ("x/b", "x/a", True)))],
             policy("x-a-allows-x-b", {"pod": "a"}, ingress=[{"from": [{"podSelector": expr("pod", "In", "b")}]}]))),
    Case("should enforce policy based on NamespaceSelector with MatchExpressions", ("x/a", "x/b", "y/a", "z/a"),
         one([(80, "TCP", (("x", "x/a", False), ("z", "x/a", False)))],
             policy("allow-ns-y-match-selector", {"pod": "a"},
                    ingress=[{"from": [{"namespaceSelector": expr(NAME, "In", "y")}]}]))),
    Case("should enforce policy based on PodSelector or NamespaceSelector", ("x/a", "x/b", "x/c", "y/a"),
         one([(80, "TCP", (("x/a", "x/a", False), ("x/c", "x/a", False)))],
             policy("allow-ns-y-match-selector", {"pod": "a"},
                    ingress=[{"from": [{"namespaceSelector": expr(NAME, "NotIn", "x")},
                                       {"podSelector": labels(pod="b")}]}]))),
    Case("should enforce policy based on PodSelector and NamespaceSelector", ("x/a", "x/b", "y/a", "y/b", "z/b"),
         one([(80, "TCP", (("", "x/a", False), ("y/b", "x/a", True), ("z/b", "x/a", True)))],
             policy("allow-ns-y-podselector-and-nsselector", {"pod": "a"},
                    ingress=[{"from": [{"namespaceSelector": expr(NAME, "NotIn", "x"),
                                        "podSelector": labels(pod="b")}]}]))),
    Case("should enforce policy based on Multiple PodSelectors and NamespaceSelectors",
         ("x/a", "x/b", "y/a", "y/b", "y/c"),
         one([(80, "TCP", (("x", "x/a", False), ("y/a", "x/a", False)))],
             policy("allow-ns-y-z-pod-b-c", {"pod": "a"},
                    ingress=[{"from": [{"namespaceSelector": expr(NAME, "NotIn", "x"),
                                        "podSelector": expr("pod", "In", "b", "c")}]}]))),
    Case("should enforce policy based on any PodSelectors", ("x/a", "x/b", "x/c"),
         one([(80, "TCP", (("", "x/a", False), ("x/b", "x/a", True), ("x/c", "x/a", True)))],
             policy("allow-ns-x-pod-b-c", {"pod": "a"},
                    ingress=[{"from": [{"podSelector": labels(pod="b")}, {"podSelector": labels(pod="c")}]}]))),
    Case("should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector "
         "and NamespaceSelector", ("x/a", "x/b", "y/a", "y/b", "z/a"),
         one([(80, "TCP", (("", "x/a", False), ("y/a", "x/a", True)))],
             policy("allow-ns-y-pod-a-via-namespace-pod-selector", {"pod": "a"},
                    ingress=[{"from": [{"namespaceSelector": ns_name("y"), "podSelector": labels(pod="a")}]}]))),
    Case("should enforce policy based on Ports", ("x/a", "x/b", "y/a", "y/b", "z/a"),
         one([(81, "TCP", _ALLOW_81)], policy("allow-client-a-via-ns-selector", {"pod": "a"}, ingress=[_81_FROM_Y]))),
    Case("should enforce multiple, stacked policies with overlapping podSelectors", ("x/a", "x/b", "y/a", "y/b", "z/a"),
         (Step(((81, "TCP", _ALLOW_81), (80, "TCP", (("", "x/a", False),))),
               (policy("allow-client-a-via-ns-selector", {"pod": "a"}, ingress=[_81_FROM_Y]),)),
          Step(((80, "TCP", _ALLOW_81),),
               (policy("allow-client-a-via-ns-selector-80", {"pod": "a"},
                       ingress=[{"from": [{"namespaceSelector": ns_name("y")}],
                                 "ports": [{"port": 80, "protocol": "TCP"}]}]),)))),
    Case("should support allow-all policy", ("x/a", "x/b", "y/a"),
         one([(80, "TCP", ALLOW_ALL), (81, "TCP", ALLOW_ALL)], policy("allow-all", ingress=[{}]))),
    Case("should allow ingress access on one named port", ("x/a", "x/b", "y/a"),
         one([(81, "TCP", ALLOW_ALL), (80, "TCP", (("", "x", False),))],
             policy("allow-all", ingress=[{"ports": [{"port": "serve-81-tcp"}]}]))),
    Case("should allow ingress access from namespace on one named port", ("x/a", "x/b", "y/a", "z/a"),
         one([(80, "TCP", (("x", "x/a", False), ("z", "x/a", False))), (81, "TCP", (("", "x/a", False),))],
             policy("allow-client-a-via-ns-selector-80", {"pod": "a"},
                    ingress=[{"from": [{"namespaceSelector": ns_name("y")}],
                              "ports": [{"port": "serve-80-tcp", "protocol": "TCP"}]}]))),
    Case("should allow egress access on one named port", ("x/a", "y/a"),
         one([(80, "TCP", ALLOW_ALL), (81, "TCP", (("x", "", False),))],
             policy("allow-egress", egress=[{"ports": [{"port": "serve-80-tcp"}]}]))),
    Case("should enforce updated policy", ("x/a", "y/a"),
         (Step(((81, "TCP", ALLOW_ALL),), (policy("allow-all-mutate-to-deny-all", ingress=[{}]),)),
          Step(((81, "TCP", (("", "x", False),)),), (policy("allow-all-mutate-to-deny-all", ingress=[]),)))),
    Case("should allow ingress access from updated namespace", ("x/a", "y/a"),
         (Step(((80, "TCP", (("", "x/a", False),)),),
               (policy("allow-client-a-via-ns-selector", {"pod": "a"},
                       ingress=[{"from": [{"namespaceSelector": labels(ns2="updated")}]}]),)),
          Step(((80, "TCP", (("", "x/a", False), ("y", "", True))),), ns_labels={"y": {"ns2": "updated"}}))),
    Case("should allow ingress access from updated pod", ("x/a", "x/b"),
         (Step(((80, "TCP", (("", "x/a", False),)),),
               (policy("allow-client-a-via-pod-selector", {"pod": "a"},
                       ingress=[{"from": [{"podSelector": labels(pod="b", pod2="updated")}]}]),)),
          Step(((80, "TCP", (("", "x/a", False), ("x/b", "x/a", True))),),
               pod_labels={"x/b": {"pod": "b", "pod2": "updated"}}))),
    Case("should deny ingress from pods on other namespaces", ("x/a", "x/b", "y/a", "z/a"),
         one([(80, "TCP", (("y", "x", False), ("z", "x", False)))],
             policy("deny-empty-policy", ingress=[{"from": [{"podSelector": {"matchLabels": {}}}]}]))),
    Case("should deny ingress access to updated pod", ("x/a", "y/a"),
         (Step(((80, "TCP", ALLOW_ALL),),
               (policy("deny-ingress-via-label-selector", {"target": "isolated"}, ingress=[]),)),
          Step(((80, "TCP", (("", "x/a", False),)),), pod_labels={"x/a": {"target": "isolated"}}))),
    Case("should deny egress from pods based on PodSelector", ("x/a", "x/b", "y/a"),
         one([(80, "TCP", (("x/a", "", False),))], policy("deny-egress-pod-a", {"pod": "a"}, egress=[]))),
    Case("should deny egress from all pods in a namespace", ("x/a", "x/b", "y/a"),
         one([(80, "TCP", (("x", "", False),))], policy("deny-egress-ns-x", egress=[]))),
    Case("should work with Ingress, Egress specified together", ("x/a", "x/b", "x/c", "y/a"),
         one([(80, "TCP", (("", "x/a", False), ("x/b", "x/a", True))),
              (81, "TCP", (("", "x/a", False), ("x/a", "", False), ("x/b", "x/a", True)))],
             policy("allow-client-a-via-pod-selector", {"pod": "a"},
                    ingress=[{"from": [{"podSelector": labels(pod="b")}]}], egress=[{"ports": [{"port": 80}]}],
                    types=["Egress", "Ingress"]))),
    Case("should support denying of egress traffic on the client side (even if the server explicitly allows this "
         "traffic)", ("x/a", "y/a", "y/b"),
         one([(80, "TCP", (("x/a", "", False), ("", "y/a", False), ("x/a", "y/a", True), ("", "y/b", False)))],
             policy("allow-to-ns-y-pod-a", {"pod": "a"},
                    egress=[{"to": [{"namespaceSelector": ns_name("y"), "podSelector": labels(pod="a")}]}]),
             policy("allow-from-xa-on-ya-match-selector", {"pod": "a"}, namespace="y",
                    ingress=[{"from": [{"namespaceSelector": ns_name("x"), "podSelector": labels(pod="a")}]}]),
             policy("allow-from-xa-on-yb-match-selector", {"pod": "b"}, namespace="y",
                    ingress=[{"from": [{"namespaceSelector": ns_name("x"), "podSelector": labels(pod="a")}]}]))),
    Case("should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector "
         "and NamespaceSelector", ("x/a", "y/a", "y/b"),
         one([(80, "TCP", (("x/a", "", False), ("x/a", "y/a", True)))],
             policy("allow-to-ns-y-pod-a", {"pod": "a"},
                    egress=[{"to": [{"namespaceSelector": ns_name("y"), "podSelector": labels(pod="a")}]}]))),
    Case("should enforce ingress policy allowing any port traffic to a server on a specific protocol",
         ("x/a", "y/a"),
         one([(80, "TCP", ALLOW_ALL), (80, "UDP", (("", "x/a", False),))],
             policy("allow-ingress-by-proto", {"pod": "a"}, ingress=[{"ports": [{"protocol": "TCP"}]}])),
         protocols=("TCP", "UDP")),
    Case("should enforce multiple ingress policies with ingress allow-all policy taking precedence", ("x/a", "y/a"),
         (Step(((81, "TCP", (("", "x", False),)),),
               (policy("allow-ingress-port-80", ingress=[{"ports": [{"port": 80}]}]),)),
          Step(((81, "TCP", ALLOW_ALL),), (policy("allow-ingress", ingress=[{}]),)))),
    Case("should enforce multiple egress policies with egress allow-all policy taking precedence", ("x/a", "y/a"),
         (Step(((81, "TCP", (("x", "", False),)),),
               (policy("allow-egress-port-80", egress=[{"ports": [{"port": 80}]}]),)),
          Step(((81, "TCP", ALLOW_ALL),), (policy("allow-egress", egress=[{}]),)))),
    Case("should stop enforcing policies after they are deleted", ("x/a", "y/a"),
         (Step(((80, "TCP", (("x", "", False), ("", "x", False))),), (policy("deny-all", ingress=[], egress=[]),)),
          Step(((80, "TCP", ALLOW_ALL),), delete_all=True))),
    Case("should allow egress access to server in CIDR block", ("x/a", "y/a", "y/b"),
         one([(80, "TCP", (("x/a", "", False), ("x/a", "y/b", True)))],
             policy("allow-client-a-via-cidr-egress-rule", {"pod": "a"},
                    egress=[{"to": [{"ipBlock": {"cidr": "{ip:y/b}/32"}}]}]))),
    Case("should enforce except clause while egress access to server in CIDR block", ("x/a", "x/b", "x/c"),
         one([(80, "TCP", (("x/a", "x/b", False),))],
             policy("allow-client-a-via-cidr-egress-rule", {"pod": "a"},
                    egress=[{"to": [{"ipBlock": {"cidr": "{cidr4:x/b}", "except": ["{ip:x/b}/32"]}}]}]))),
    Case("should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed", ("x/a", "x/b", "x/c"),
         (Step(((80, "TCP", (("x/a", "x/b", False),)),),
               (policy("allow-client-a-via-cidr-egress-rule", {"pod": "a"},
                       egress=[{"to": [{"ipBlock": {"cidr": "{cidr4:x/b}", "except": ["{ip:x/b}/32"]}}]}]),)),
          Step(((80, "TCP", (("x/a", "", False), ("x/a", "x/b", True))),),
               (policy("allow-client-a-via-cidr-egress-rule", {"pod": "a"},
                       egress=[{"to": [{"ipBlock": {"cidr": "{ip:x/b}/32"}}]}]),)))),
    Case("should enforce policies to check ingress and egress policies can be controlled independently based on "
         "PodSelector", ("x/a", "x/b", "y/a"),
         (Step(((80, "TCP", ALLOW_ALL),), (policy("allow-egress-for-target", {"pod": "a"}, egress=[{}]),)),
          Step(((80, "TCP", (("", "x/a", False),)),),
               (policy("deny-ingress-via-label-selector", {"pod": "a"}, ingress=[]),)))),
    Case("should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
         ("x/a", "y/a"),
         one([(81, "TCP", (("", "x", False),))],
             policy("deny-ingress", ingress=[]),
             policy("allow-only-sctp-ingress-on-port-81", {"pod": "a"},
                    ingress=[{"ports": [{"port": 81, "protocol": "SCTP"}]}]))),
    Case("should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't "
         "support SCTP", ("x/a", "y/a"),
         one([(81, "TCP", (("", "x/a", False),))],
             policy("allow-only-sctp-ingress-on-port-80", {"pod": "a"},
                    ingress=[{"ports": [{"port": 80, "protocol": "SCTP"}]}]))),
    Case("should not allow access by TCP when a policy specifies only UDP", ("x/a", "y/a"),
         one([(81, "TCP", (("", "x/a", False),))],
             policy("allow-only-udp-ingress-on-port-81", {"pod": "a"},
                    ingress=[{"ports": [{"port": 81, "protocol": "UDP"}]}]))),
    Case("should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label",
         ("x/a", "x/b", "y/a", "z/a"),
         one([(80, "TCP", (("x", "x/a", False), ("z", "x/a", False)))],
             policy("allow-client-a-via-ns-selector-for-immutable-ns-label", {"pod": "a"},
                    ingress=[{"from": [{"namespaceSelector": ns_name("y")}]}]))),
    Case("should enforce policy based on NamespaceSelector with MatchExpressions using default ns label",
         ("x/a", "x/b", "y/a", "z/a"),
         one([(80, "TCP", (("x/a", "y", False),))],
             policy("allow-ns-y-match-selector-for-immutable-ns-label", {"pod": "a"},
                    egress=[{"to": [{"namespaceSelector": expr(NAME, "NotIn", "y")}]}]))),
    # NetworkPolicy between server and client using UDP
    Case("UDP: should support a 'default-deny-ingress' policy", ("x/a", "x/b", "y/a", "y/b"),
         one([(80, "UDP", (("", "x", False),))], policy("deny-all", ingress=[])), protocols=("UDP",)),
    Case("UDP: should enforce policy based on Ports", ("x/a", "x/b", "y/a", "z/a"),
         one([(81, "UDP", (("x", "x/a", False), ("z", "x/a", False)))],
             policy("allow-ingress-on-port-81-ns-x", {"pod": "a"},
                    ingress=[{"from": [{"namespaceSelector": ns_name("y")}],
                              "ports": [{"port": 81, "protocol": "UDP"}]}])), protocols=("UDP",)),
    Case("UDP: should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector "
         "and NamespaceSelector", ("x/a", "x/b", "y/a"),
         one([(80, "UDP", (("", "x/a", False), ("y/a", "x/a", True)))],
             policy("allow-ns-y-pod-a-via-namespace-pod-selector", {"pod": "a"},
                    ingress=[{"from": [{"namespaceSelector": ns_name("y"), "podSelector": labels(pod="a")}]}])),
         protocols=("UDP",)),
)
