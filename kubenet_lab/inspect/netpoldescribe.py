"""`describe networkpolicy` as kubectl prints it (k8s.io/kubectl pkg/describe describeNetworkPolicy
and the printers it calls; its tests' expected output is tests/unit/test_netpol_describe.py's),
from the policy as `get -o yaml` shows it (output.network_policy_object). Pure."""
from __future__ import annotations

from datetime import datetime
from typing import Mapping, Sequence

from .describe import Writer, annotations_multiline, labels_multiline


def format_selector(selector: Mapping | None) -> str:
    """metav1.FormatLabelSelector: the requirements sorted by key (`foo in (a,b),id=x`), `<none>`
    for an empty selector."""
    if not selector:
        return "<none>"
    parts = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    words = {"In": "in", "NotIn": "notin"}
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op in words:
            parts.append((key, f"{key} {words[op]} ({','.join(sorted(values))})"))
        else:
            parts.append((key, key if op == "Exists" else f"!{key}"))
    return ",".join(text for _, text in sorted(parts, key=lambda p: p[0])) or "<none>"


def created_on(iso: str | None) -> str:
    """metav1.Time printed with %s: Go's time.Time.String() in this machine's zone."""
    if not iso:
        return "0001-01-01 00:00:00 +0000 UTC"
    when = datetime.fromisoformat(iso).astimezone()
    return when.strftime("%Y-%m-%d %H:%M:%S %z ") + (when.tzname() or "")


def _rules(out: Writer, rules: Sequence[Mapping], peers: str, word: str) -> None:
    indent = "    "
    if not rules:
        out.w(0, f"{indent}<none> (Selected pods are isolated for {word} connectivity)\n")
        return
    title = "From" if peers == "from" else "To"
    for i, rule in enumerate(rules):
        if not rule.get("ports"):
            out.w(0, f"{indent}To Port: <any> (traffic allowed to all ports)\n")
        for port in rule.get("ports") or []:
            number, proto = port.get("port", "<nil>"), port.get("protocol", "TCP")
            if "endPort" in port:
                out.w(0, f"{indent}To Port Range: {number}-{port['endPort']}/{proto}\n")
            else:
                out.w(0, f"{indent}To Port: {number}/{proto}\n")
        if not rule.get(peers):
            end = "source" if peers == "from" else "destination"
            out.w(0, f"{indent}{title}: <any> (traffic not restricted by {end})\n")
        for peer in rule.get(peers) or []:
            out.w(0, f"{indent}{title}:\n")
            if "podSelector" in peer and "namespaceSelector" in peer:
                out.w(1, f"{indent}NamespaceSelector: {format_selector(peer['namespaceSelector'])}\n")
                out.w(1, f"{indent}PodSelector: {format_selector(peer['podSelector'])}\n")
            elif "podSelector" in peer:
                out.w(1, f"{indent}PodSelector: {format_selector(peer['podSelector'])}\n")
            elif "namespaceSelector" in peer:
                out.w(1, f"{indent}NamespaceSelector: {format_selector(peer['namespaceSelector'])}\n")
            elif "ipBlock" in peer:
                out.w(1, f"{indent}IPBlock:\n")
                out.w(2, f"{indent}CIDR: {peer['ipBlock']['cidr']}\n")
                out.w(2, f"{indent}Except: {', '.join(peer['ipBlock'].get('except') or [])}\n")
        if i != len(rules) - 1:
            out.w(0, f"{indent}----------\n")


def describe_network_policy(policy: Mapping) -> str:
    meta, spec = policy["metadata"], policy.get("spec", {})
    out = Writer()
    out.w(0, f"Name:\t{meta['name']}\n")
    out.w(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    out.w(0, f"Created on:\t{created_on(meta.get('creationTimestamp'))}\n")
    labels_multiline(out, "Labels", meta.get("labels"))
    annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, "Spec:\n")
    out.w(1, "PodSelector: ")
    selector = spec.get("podSelector") or {}
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        out.w(2, "<none> (Allowing the specific traffic to all pods in this namespace)\n")
    else:
        out.w(2, f"{format_selector(selector)}\n")
    types = spec.get("policyTypes") or []
    for direction, peers in (("Ingress", "from"), ("Egress", "to")):
        word = direction.lower()
        if direction in types:
            out.w(1, f"Allowing {word} traffic:\n")
            _rules(out, spec.get(word) or [], peers, word)
        else:
            out.w(1, f"Not affecting {word} traffic\n")
    out.w(1, f"Policy Types: {', '.join(types)}\n")
    return out.text()
