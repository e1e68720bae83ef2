"""`describe networkpolicy` as kubectl prints it: kubectl's own TestDescribeNetworkPolicies and
TestDescribeNetworkPoliciesWithPortRange (k8s.io/kubectl pkg/describe/describe_test.go, master of
July 2026), their policies and expected output transcribed, and the other branches of
describeNetworkPolicy (an isolating policy without rules, a direction it does not affect)."""
from __future__ import annotations

import time

import pytest

from kubenet_lab.inspect.netpoldescribe import describe_network_policy, format_selector

EXPECTED = """\
Name:         network-policy-1
Namespace:    default
Created on:   2017-06-04 21:45:56 -0700 PDT
Labels:       <none>
Annotations:  <none>
Spec:
  PodSelector:     foo in (bar1,bar2),foo2 notin (bar1,bar2),id1=app1,id2=app2
  Allowing ingress traffic:
    To Port: 80/TCP
    To Port: 82/TCP
    From:
      NamespaceSelector: id=ns1,id2=ns2
      PodSelector: id=pod1,id2=pod2
    From:
      PodSelector: id=app2,id2=app3
    From:
      NamespaceSelector: id=app2,id2=app3
    From:
      NamespaceSelector: foo in (bar1,bar2),id=app2,id2=app3
    From:
      IPBlock:
        CIDR: 192.168.0.0/16
        Except: 192.168.3.0/24, 192.168.4.0/24
    ----------
    To Port: <any> (traffic allowed to all ports)
    From: <any> (traffic not restricted by source)
  Allowing egress traffic:
    To Port: 80/TCP
    To Port: 82/TCP
    To:
      NamespaceSelector: id=ns1,id2=ns2
      PodSelector: id=pod1,id2=pod2
    To:
      PodSelector: id=app2,id2=app3
    To:
      NamespaceSelector: id=app2,id2=app3
    To:
      NamespaceSelector: foo in (bar1,bar2),id=app2,id2=app3
    To:
      IPBlock:
        CIDR: 192.168.0.0/16
        Except: 192.168.3.0/24, 192.168.4.0/24
    ----------
    To Port: <any> (traffic allowed to all ports)
    To: <any> (traffic not restricted by destination)
  Policy Types: Ingress, Egress
"""


def _peers() -> list[dict]:
    app = {"matchLabels": {"id": "app2", "id2": "app3"}}
    return [{"podSelector": {"matchLabels": {"id": "pod1", "id2": "pod2"}},
             "namespaceSelector": {"matchLabels": {"id": "ns1", "id2": "ns2"}}},
            {"podSelector": app}, {"namespaceSelector": app},
            {"namespaceSelector": {**app, "matchExpressions": [
                {"key": "foo", "operator": "In", "values": ["bar1", "bar2"]}]}},
            {"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.3.0/24", "192.168.4.0/24"]}}]


@pytest.fixture
def pacific(monkeypatch):
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_kubectls_own_case(pacific):
    ports = [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 82}]
    policy = {"metadata": {"name": "network-policy-1", "namespace": "default",
                           "creationTimestamp": "2017-06-05T04:45:56Z"},
              "spec": {"podSelector": {"matchLabels": {"id1": "app1", "id2": "app2"}, "matchExpressions": [
                  {"key": "foo", "operator": "In", "values": ["bar1", "bar2"]},
                  {"key": "foo2", "operator": "NotIn", "values": ["bar1", "bar2"]}]},
                       "ingress": [{"ports": ports, "from": _peers()}, {}],
                       "egress": [{"ports": ports, "to": _peers()}, {}],
                       "policyTypes": ["Ingress", "Egress"]}}
    assert describe_network_policy(policy) == EXPECTED


def test_kubectls_port_range_case(pacific):
    ports = [{"protocol": "TCP", "port": 80, "endPort": 82}]
    policy = {"metadata": {"name": "network-policy-1", "namespace": "default",
                           "creationTimestamp": "2017-06-05T04:45:56Z"},
              "spec": {"podSelector": {"matchLabels": {"id1": "app1", "id2": "app2"}, "matchExpressions": [
                  {"key": "foo", "operator": "In", "values": ["bar1", "bar2"]},
                  {"key": "foo2", "operator": "NotIn", "values": ["bar1", "bar2"]}]},
                       "ingress": [{"ports": ports, "from": _peers()}, {}],
                       "egress": [{"ports": ports, "to": _peers()}, {}],
                       "policyTypes": ["Ingress", "Egress"]}}
    assert describe_network_policy(policy) == EXPECTED.replace(
        "    To Port: 80/TCP\n    To Port: 82/TCP\n", "    To Port Range: 80-82/TCP\n")


def test_a_default_deny(pacific):
    policy = {"metadata": {"name": "default-deny", "namespace": "x", "creationTimestamp": "2017-06-05T04:45:56Z",
                           "labels": {"team": "x"}},
              "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    assert describe_network_policy(policy) == (
        "Name:         default-deny\n"
        "Namespace:    x\n"
        "Created on:   2017-06-04 21:45:56 -0700 PDT\n"
        "Labels:       team=x\n"
        "Annotations:  <none>\n"
        "Spec:\n"
        "  PodSelector:     <none> (Allowing the specific traffic to all pods in this namespace)\n"
        "  Allowing ingress traffic:\n"
        "    <none> (Selected pods are isolated for ingress connectivity)\n"
        "  Not affecting egress traffic\n"
        "  Policy Types: Ingress\n")


def test_selectors_are_formatted_as_kubectl_formats_them():
    assert format_selector({}) == "<none>"
    assert format_selector({"matchLabels": {"b": "1"}, "matchExpressions": [
        {"key": "a", "operator": "Exists"}, {"key": "c", "operator": "DoesNotExist"},
        {"key": "ab", "operator": "NotIn", "values": ["z", "y"]}]}) == "a,ab notin (y,z),b=1,!c"
