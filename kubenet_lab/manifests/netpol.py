"""The shape of a NetworkPolicy (networking.k8s.io/v1), with the API server's checks and words
(k8s.io/kubernetes pkg/apis/networking/validation ValidateNetworkPolicySpec, ValidateNetworkPolicyPort,
ValidateNetworkPolicyPeer, ValidateIPBlock; apimachinery's ValidateLabelSelector), and the typed
policy as the API server stores it (pkg/apis/networking/v1 defaults: policyTypes, protocol TCP).
Part of the schema (manifests.schema uses these tables; manifests.build calls `to_policy`).

Empty and missing differ where the API says so: a missing or empty `podSelector` selects every
pod of the namespace; a missing or empty `ingress`/`egress` allows nothing in that direction; a
rule's missing or empty `from`/`to` allows every peer and its missing or empty `ports` every
port; a peer's selector is None when not written, and `{}` when written empty (every namespace,
or every pod).
"""
from __future__ import annotations

import json
import re
from ipaddress import ip_network
from typing import Any

from ..model.objects import (IPBlock, LabelSelector, MatchExpression, NetworkPolicy, Origin, PolicyPeer,
                             PolicyPort, PolicyRule)
from .fields import IGNORE, INVALID, At, Checked, Either, Int, ListOf, MapOf, Obj, Str, Type, describe
from .values import label_key, label_value

POLICY_TYPES = ("Ingress", "Egress")
NETPOL_PROTOCOLS = ("TCP", "UDP", "SCTP")
_PORT_NAME_CHARS = re.compile(r"[-a-z0-9]+")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{v}"' for v in values)


class Supported(Type):
    """A string from a fixed set, refused in the API server's words (field.NotSupported)."""

    def __init__(self, *choices: str):
        self.choices = choices

    def convert(self, value: Any, at: At) -> Any:
        if not isinstance(value, str):
            return at.error(f"expected a string, got {describe(value)}")
        if value not in self.choices:
            return at.error(f'Unsupported value: "{value}": supported values: {_quoted(self.choices)}')
        return value


class PortName(Type):
    """A named port, each problem reported as IsValidPortName words it (one message each)."""

    def convert(self, value: Any, at: At) -> Any:
        problems = []
        if len(value) > 15:
            problems.append("must be no more than 15 characters")
        if not _PORT_NAME_CHARS.fullmatch(value):
            problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
        if not re.search("[a-z]", value):
            problems.append("must contain at least one letter (a-z)")
        if "--" in value:
            problems.append("must not contain consecutive hyphens")
        if value and (value[0] == "-" or value[-1] == "-"):
            problems.append("must not begin or end with a hyphen")
        for problem in problems:
            at.error(f'Invalid value: "{value}": {problem}')
        return INVALID if problems else value


# ------------------------------------------------------------------------------------- selectors


def _check_requirement(e: Checked) -> None:
    """ValidateLabelSelectorRequirement's words."""
    values = e.get("values", [])
    if e["operator"] in ("In", "NotIn") and not values:
        e.at("values").error("Required value: must be specified when `operator` is 'In' or 'NotIn'")
    elif e["operator"] in ("Exists", "DoesNotExist") and values:
        e.at("values").error("Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")


class Operator(Type):
    def convert(self, value: Any, at: At) -> Any:
        if value not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return at.error(f"Invalid value: {json.dumps(value)}: not a valid selector operator")
        return value


REQUIREMENT = Obj({"key": Str(label_key), "operator": Operator(), "values": ListOf(Str(label_value))},
                  required=("key", "operator"), post=_check_requirement)
SELECTOR = Obj({"matchLabels": MapOf(label_key, label_value), "matchExpressions": ListOf(REQUIREMENT)})

# ------------------------------------------------------------------------------------- peers and ports


def _check_ip_block(block: Checked) -> None:
    """ValidateIPBlock: a CIDR of either family; each except a strict subset of it."""
    try:
        cidr = ip_network(block["cidr"], strict=False)
    except ValueError:
        block.at("cidr").error(f'Invalid value: "{block["cidr"]}": not a valid CIDR')
        return
    ats = block.at("except")
    for i, text in enumerate(block.get("except", ())):
        at = At(ats.sink, ats.file, ats.line, f"{ats.path}[{i}]")
        try:
            inner = ip_network(text, strict=False)
        except ValueError:
            at.error(f'Invalid value: "{text}": not a valid CIDR')
            return
        if inner.version != cidr.version or inner.network_address not in cidr or cidr.prefixlen >= inner.prefixlen:
            at.error(f'Invalid value: "{text}": must be a strict subset of `cidr`')


class Required(Type):
    """A field the API server requires: a missing or empty one is `Required value`."""

    def __init__(self, kind: Type):
        self.kind = kind

    def convert(self, value: Any, at: At) -> Any:
        if value == "":
            return at.error("Required value")
        return self.kind.convert(value, at)


def _ip_block_post(block: Checked) -> None:
    if "cidr" not in block:
        block.at("cidr").error("Required value")
        return
    _check_ip_block(block)


IP_BLOCK = Obj({"cidr": Required(Str()), "except": ListOf(Str())}, post=_ip_block_post)


def _check_peer(peer: Checked) -> None:
    given = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if k in peer]
    if not given:
        peer.here.error("Required value: must specify a peer")
    elif len(given) > 1 and "ipBlock" in given:
        peer.here.error("Forbidden: may not specify both ipBlock and another peer")


PEER = Obj({"podSelector": SELECTOR, "namespaceSelector": SELECTOR, "ipBlock": IP_BLOCK}, post=_check_peer)


def _check_port(port: Checked) -> None:
    """ValidateNetworkPolicyPort's checks of endPort against port."""
    if "endPort" not in port:
        return
    end = port["endPort"]
    if "port" not in port:
        port.at("endPort").error(f"Invalid value: {end}: may not be specified when `port` is not specified")
    elif isinstance(port["port"], str):
        port.at("endPort").error(f"Invalid value: {end}: may not be specified when `port` is non-numeric")
    elif end < port["port"]:  # the API server shows port's value here
        port.at("endPort").error(f"Invalid value: {port['port']}: must be greater than or equal to `port`")


POLICY_PORT = Obj({"protocol": Supported(*NETPOL_PROTOCOLS), "port": Either(Int(1, 65535), PortName()),
                   "endPort": Int(1, 65535)}, post=_check_port)
INGRESS_RULE = Obj({"ports": ListOf(POLICY_PORT), "from": ListOf(PEER)})
EGRESS_RULE = Obj({"ports": ListOf(POLICY_PORT), "to": ListOf(PEER)})


class PolicyTypes(Type):
    """policyTypes: Ingress and/or Egress, at most two entries."""

    def convert(self, value: Any, at: At) -> Any:
        if not isinstance(value, list):
            return at.error(f"expected a list, got {describe(value)}")
        if len(value) > len(POLICY_TYPES):
            return at.error(f"Invalid value: {json.dumps(value)}: may not specify more than two policyTypes")
        lines = getattr(value, "lines", [])
        out = [Supported(*POLICY_TYPES).convert(v, at.item(i, lines[i] if i < len(lines) else None))
               for i, v in enumerate(value)]
        return INVALID if any(v is INVALID for v in out) else out


def spec() -> Obj:
    return Obj({"podSelector": SELECTOR, "policyTypes": PolicyTypes(), "ingress": ListOf(INGRESS_RULE),
                "egress": ListOf(EGRESS_RULE)})


def network_policy(meta: Obj) -> Obj:
    return Obj({"apiVersion": IGNORE, "kind": IGNORE, "metadata": meta, "spec": spec(), "status": IGNORE},
               required=("metadata",))


# ------------------------------------------------------------------------------------- the typed policy


def _selector(checked: dict) -> LabelSelector:
    return LabelSelector(
        match_labels=dict(checked.get("matchLabels", {})),
        match_expressions=tuple(MatchExpression(e["key"], e["operator"], tuple(e.get("values", ())))
                                for e in checked.get("matchExpressions", ())))


def _peer(p: dict) -> PolicyPeer:
    block = p.get("ipBlock")
    return PolicyPeer(
        pod_selector=_selector(p["podSelector"]) if "podSelector" in p else None,
        namespace_selector=_selector(p["namespaceSelector"]) if "namespaceSelector" in p else None,
        ip_block=IPBlock(block["cidr"], tuple(block.get("except", ()))) if block is not None else None)


def _rule(r: dict, peers: str) -> PolicyRule:
    return PolicyRule(ports=tuple(PolicyPort(p.get("protocol", "TCP"), p.get("port"), p.get("endPort"))
                                  for p in r.get("ports", ())),
                      peers=tuple(_peer(p) for p in r.get(peers, ())))


def to_policy(doc: dict, origin: Origin | None) -> NetworkPolicy:
    """The policy as the API server stores it: policyTypes defaulted as SetDefaults_NetworkPolicy
    does (Ingress, and Egress when there are egress rules) when none is written."""
    meta, spec_ = doc["metadata"], doc.get("spec", {})
    egress = tuple(_rule(r, "to") for r in spec_.get("egress", ()))
    types = tuple(spec_.get("policyTypes", ())) or (("Ingress", "Egress") if egress else ("Ingress",))
    return NetworkPolicy(namespace=meta.get("namespace", "default"), name=meta["name"],
                         pod_selector=_selector(spec_.get("podSelector", {})), policy_types=types,
                         ingress=tuple(_rule(r, "from") for r in spec_.get("ingress", ())), egress=egress,
                         labels=dict(meta.get("labels", {})), annotations=dict(meta.get("annotations", {})),
                         origin=origin)
