"""`get namespaces` and `get networkpolicies` as kubectl prints them (kubectl's columns: NAME
STATUS AGE; NAME POD-SELECTOR AGE), -o yaml/json as the API server returns the objects
(defaulted), --show-labels, -o name, and -o wide's PODS (the pods each policy selects), on a
planted plan of the e2e network-policy model."""
from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from kubenet_lab.cli import main
from kubenet_lab.fabric import state
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from tests import netpol_model as m
from tests.netpol_cases import policy

LAB = "unitnetpol"


@pytest.fixture
def get(tmp_path, monkeypatch):
    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path))
    path = tmp_path / "model.yaml"
    path.write_text(m.dump(m.objects() + [
        policy("deny-all", ingress=[], egress=[]),
        policy("allow-b", {"pod": "a"}, namespace="y", ingress=[
            {"from": [{"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "In", "values": ["x"]}]},
                       "podSelector": {"matchLabels": {"pod": "b"}}}],
             "ports": [{"port": 80}, {"port": "serve-81-udp", "protocol": "UDP"}, {"port": 8000, "endPort": 8080}]},
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}])]))
    state.save_plan(make_plan(load_model([str(path)]), LAB))
    runner = CliRunner()
    return lambda *args: runner.invoke(main, ["--lab", LAB, "get", *args], catch_exceptions=False)


def _cells(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_namespaces(get):
    out = get("namespaces")
    assert out.exit_code == 0
    rows = _cells(out.output)
    assert rows[0] == ["NAME", "STATUS", "AGE"]
    assert [r[:2] for r in rows[1:]] == [[n, "Active"] for n in ("default", "kube-system", "x", "y", "z")]
    assert _cells(get("ns", "y", "--show-labels").output)[1][-1] == "kubernetes.io/metadata.name=y,ns=y"
    assert get("ns", "-A", "-o", "name").output == ("namespace/default\nnamespace/kube-system\nnamespace/x\n"
                                                     "namespace/y\nnamespace/z\n")
    assert get("ns", "-l", "ns").output.count("\n") == 4  # the header and x, y, z


def test_a_namespace_as_the_api_server_returns_it(get):
    obj = yaml.safe_load(get("namespace", "default", "-o", "yaml").output)
    assert obj["kind"] == "Namespace" and obj["apiVersion"] == "v1"
    assert obj["metadata"]["labels"] == {"kubernetes.io/metadata.name": "default"}
    assert obj["spec"] == {"finalizers": ["kubernetes"]} and obj["status"] == {"phase": "Active"}


def test_network_policies(get):
    rows = _cells(get("netpol", "-A").output)
    assert rows[0] == ["NAMESPACE", "NAME", "POD-SELECTOR", "AGE"]
    assert [r[:3] for r in rows[1:]] == [["x", "deny-all", "<none>"], ["y", "allow-b", "pod=a"]]
    assert _cells(get("networkpolicies", "-n", "x", "-o", "wide").output) == [
        ["NAME", "POD-SELECTOR", "AGE", "PODS"], ["deny-all", "<none>", rows[1][3], "a,b,c"]]
    assert _cells(get("netpol", "-n", "y", "-o", "wide").output)[1][-1] == "a"
    assert get("networkpolicy", "-n", "y", "-o", "name").output == "networkpolicy.networking.k8s.io/allow-b\n"
    missing = get("netpol", "nope", "-n", "x")
    assert missing.exit_code == 1 and 'networkpolicies "nope" not found' in missing.output


def test_a_network_policy_as_the_api_server_returns_it(get):
    obj = json.loads(get("netpol", "allow-b", "-n", "y", "-o", "json").output)
    assert obj["apiVersion"] == "networking.k8s.io/v1" and obj["kind"] == "NetworkPolicy"
    assert obj["metadata"]["namespace"] == "y" and obj["metadata"]["creationTimestamp"]
    assert obj["spec"] == {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"ports": [{"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": "serve-81-udp"},
                               {"protocol": "TCP", "port": 8000, "endPort": 8080}],
                     "from": [{"podSelector": {"matchLabels": {"pod": "b"}},
                               "namespaceSelector": {"matchExpressions": [
                                   {"key": "ns", "operator": "In", "values": ["x"]}]}}]},
                    {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
        "policyTypes": ["Ingress"]}
    deny = yaml.safe_load(get("netpol", "deny-all", "-n", "x", "-o", "yaml").output)
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_describe_network_policies(get, monkeypatch):
    runner = CliRunner()
    out = runner.invoke(main, ["--lab", LAB, "describe", "netpol", "-n", "y"], catch_exceptions=False).output
    assert out.startswith("Name:         allow-b\nNamespace:    y\nCreated on:   ")
    assert out.split("Annotations:  <none>\n", 1)[1] == (
        "Spec:\n"
        "  PodSelector:     pod=a\n"
        "  Allowing ingress traffic:\n"
        "    To Port: 80/TCP\n"
        "    To Port: serve-81-udp/UDP\n"
        "    To Port Range: 8000-8080/TCP\n"
        "    From:\n"
        "      NamespaceSelector: ns in (x)\n"
        "      PodSelector: pod=b\n"
        "    ----------\n"
        "    To Port: <any> (traffic allowed to all ports)\n"
        "    From:\n"
        "      IPBlock:\n"
        "        CIDR: 10.0.0.0/8\n"
        "        Except: 10.1.0.0/16\n"
        "  Not affecting egress traffic\n"
        "  Policy Types: Ingress\n")
    missing = runner.invoke(main, ["--lab", LAB, "describe", "networkpolicy", "nope", "-n", "x"])
    assert missing.exit_code == 1 and 'networkpolicies.networking.k8s.io "nope" not found' in missing.output
