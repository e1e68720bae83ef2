"""NetworkPolicy and Namespace manifests: the typed policy as the API server stores it (defaults,
empty versus missing), and its validation in the API server's words
(k8s.io/kubernetes pkg/apis/networking/validation/validation.go, ValidateNetworkPolicySpec and
the functions it calls; apimachinery ValidateLabelSelectorRequirement), with file:line and path."""
from __future__ import annotations

import textwrap

import pytest

from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.model.objects import IPBlock, LabelSelector, MatchExpression, PolicyPeer, PolicyPort, PolicyRule
from kubenet_lab.plan import make_plan


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "np.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


@pytest.fixture
def load(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return lambda text: load_model([_write(tmp_path, text).rsplit("/", 1)[1]])


@pytest.fixture
def problems(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def check(text: str) -> list[str]:
        _write(tmp_path, text)
        with pytest.raises(InputError) as err:
            load_model(["np.yaml"])
        return err.value.problems
    return check


def policy(spec: str, name: str = "p", namespace: str = "x") -> str:
    return ("apiVersion: networking.k8s.io/v1\n"     # 1
            "kind: NetworkPolicy\n"                   # 2
            "metadata:\n"                             # 3
            f"  name: {name}\n"                       # 4
            f"  namespace: {namespace}\n"             # 5
            "spec:\n"                                 # 6
            + textwrap.indent(textwrap.dedent(spec).lstrip("\n"), "  "))


def test_default_deny_ingress_defaults_policy_types_to_ingress(load):
    (p,) = load(policy("podSelector: {}\n")).network_policies
    assert (p.namespace, p.name, p.policy_types, p.ingress, p.egress) == ("x", "p", ("Ingress",), (), ())
    assert p.pod_selector == LabelSelector()


def test_egress_rules_add_egress_to_defaulted_policy_types(load):
    (p,) = load(policy("podSelector: {matchLabels: {pod: a}}\negress: [{}]\n")).network_policies
    assert p.policy_types == ("Ingress", "Egress")
    assert p.egress == (PolicyRule(),)  # an empty rule: every port to every peer


def test_empty_egress_list_is_no_egress_rule_and_no_egress_type(load):
    (p,) = load(policy("podSelector: {}\negress: []\n")).network_policies
    assert p.policy_types == ("Ingress",)


def test_written_policy_types_are_kept(load):
    (p,) = load(policy("podSelector: {}\npolicyTypes: [Egress]\n")).network_policies
    assert p.policy_types == ("Egress",)


def test_missing_spec_selects_every_pod_and_denies_ingress(load):
    (p,) = load("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\n").network_policies
    assert (p.namespace, p.pod_selector, p.policy_types) == ("default", LabelSelector(), ("Ingress",))


def test_peers_and_ports(load):
    (p,) = load(policy("""
        podSelector:
          matchExpressions: [{key: pod, operator: In, values: [a, b]}]
        ingress:
        - from:
          - namespaceSelector: {matchLabels: {ns: y}}
            podSelector: {matchLabels: {pod: b}}
          - namespaceSelector: {}
          - podSelector: {}
          - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
          ports:
          - port: 80
          - {protocol: UDP, port: serve-81-udp}
          - {port: 8000, endPort: 9000}
          - protocol: SCTP
        """)).network_policies
    assert p.pod_selector == LabelSelector({}, (MatchExpression("pod", "In", ("a", "b")),))
    (rule,) = p.ingress
    assert rule.peers == (
        PolicyPeer(pod_selector=LabelSelector({"pod": "b"}), namespace_selector=LabelSelector({"ns": "y"})),
        PolicyPeer(namespace_selector=LabelSelector()),
        PolicyPeer(pod_selector=LabelSelector()),
        PolicyPeer(ip_block=IPBlock("10.0.0.0/8", ("10.1.0.0/16",))))
    assert rule.ports == (PolicyPort("TCP", 80), PolicyPort("UDP", "serve-81-udp"), PolicyPort("TCP", 8000, 9000),
                          PolicyPort("SCTP"))


def test_namespace_labels_carry_the_name_label(load):
    model = load("""
        apiVersion: v1
        kind: Namespace
        metadata: {name: y, labels: {ns: y}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: a, namespace: z}
        spec: {containers: [{name: c, image: busybox}]}
        """)
    (y,) = model.namespace_objects
    assert y.labels == {"ns": "y", "kubernetes.io/metadata.name": "y"}
    plan = make_plan(model, "t")
    labels = {n.name: dict(n.labels) for n in plan.namespace_objects}
    assert labels == {"default": {"kubernetes.io/metadata.name": "default"},
                      "kube-system": {"kubernetes.io/metadata.name": "kube-system"},
                      "y": {"ns": "y", "kubernetes.io/metadata.name": "y"},
                      "z": {"kubernetes.io/metadata.name": "z"}}
    assert plan.namespaces == ("default", "kube-system", "y", "z")


def test_a_policy_implies_its_namespace_and_reaches_the_plan(load):
    plan = make_plan(load(policy("podSelector: {}\n", namespace="w")), "t")
    assert "w" in plan.namespaces and [p.key for p in plan.network_policies] == ["w/p"]
    assert plan.network_policies[0].origin is None


# ------------------------------------------------------------------------------------- validation


def test_peer_must_name_something(problems):
    assert problems(policy("ingress:\n- from:\n  - {}\n")) == [
        "np.yaml:9: spec.ingress[0].from[0]: Required value: must specify a peer"]


def test_ip_block_with_another_peer(problems):
    assert problems(policy("egress:\n- to:\n  - ipBlock: {cidr: 10.0.0.0/8}\n    podSelector: {}\n")) == [
        "np.yaml:9: spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer"]


def test_ip_block_cidrs(problems):
    assert problems(policy("""
        ingress:
        - from:
          - ipBlock: {cidr: 10.0.0.0/33}
          - ipBlock:
              cidr: 10.0.0.0/16
              except: [10.1.0.0/24, 10.0.0.0/16, 10.0.1.0/24]
          - ipBlock: {cidr: ""}
          - ipBlock: {except: [10.0.0.0/24]}
        """)) == [
        'np.yaml:9: spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": not a valid CIDR',
        'np.yaml:12: spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: "10.1.0.0/24": '
        'must be a strict subset of `cidr`',
        'np.yaml:12: spec.ingress[0].from[1].ipBlock.except[1]: Invalid value: "10.0.0.0/16": '
        'must be a strict subset of `cidr`',
        "np.yaml:13: spec.ingress[0].from[2].ipBlock.cidr: Required value",
        "np.yaml:14: spec.ingress[0].from[3].ipBlock.cidr: Required value"]


def test_ports(problems):
    assert problems(policy("""
        ingress:
        - ports:
          - {protocol: ICMP, port: 80}
          - {port: 0}
          - {port: 90, endPort: 80}
          - {port: http, endPort: 80}
          - {endPort: 80}
          - {port: 80, endPort: 70000}
          - {port: Web--1}
        """)) == [
        'np.yaml:9: spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: '
        '"TCP", "UDP", "SCTP"',
        "np.yaml:10: spec.ingress[0].ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "np.yaml:11: spec.ingress[0].ports[2].endPort: Invalid value: 90: must be greater than or equal to `port`",
        "np.yaml:12: spec.ingress[0].ports[3].endPort: Invalid value: 80: may not be specified when `port` is "
        "non-numeric",
        "np.yaml:13: spec.ingress[0].ports[4].endPort: Invalid value: 80: may not be specified when `port` is "
        "not specified",
        "np.yaml:14: spec.ingress[0].ports[5].endPort: Invalid value: 70000: must be between 1 and 65535, "
        "inclusive",
        'np.yaml:15: spec.ingress[0].ports[6].port: Invalid value: "Web--1": must contain only alpha-numeric '
        "characters (a-z, 0-9), and hyphens (-)",
        'np.yaml:15: spec.ingress[0].ports[6].port: Invalid value: "Web--1": must not contain consecutive hyphens']


def test_policy_types(problems):
    assert problems(policy("policyTypes: [Ingress, Egress, Ingress]\n")) == [
        'np.yaml:7: spec.policyTypes: Invalid value: ["Ingress", "Egress", "Ingress"]: '
        "may not specify more than two policyTypes"]
    assert problems(policy("policyTypes: [Ingress, ingress]\n")) == [
        'np.yaml:7: spec.policyTypes[1]: Unsupported value: "ingress": supported values: "Ingress", "Egress"']


def test_selector_requirements(problems):
    assert problems(policy("""
        podSelector:
          matchExpressions:
          - {key: pod, operator: In}
          - {key: pod, operator: Exists, values: [a]}
          - {key: pod, operator: Equals, values: [a]}
        """)) == [
        "np.yaml:9: spec.podSelector.matchExpressions[0].values: Required value: must be specified when "
        "`operator` is 'In' or 'NotIn'",
        "np.yaml:10: spec.podSelector.matchExpressions[1].values: Forbidden: may not be specified when "
        "`operator` is 'Exists' or 'DoesNotExist'",
        'np.yaml:11: spec.podSelector.matchExpressions[2].operator: Invalid value: "Equals": not a valid '
        "selector operator"]


def test_unknown_field_and_api_version(problems):
    assert problems(policy("podselector: {}\n").replace("networking.k8s.io/v1", "v1")) == [
        "np.yaml:1: apiVersion: expected 'networking.k8s.io/v1' for a NetworkPolicy, got 'v1'",
        "np.yaml:7: spec.podselector: unknown field (did you mean 'podSelector'?)"]
