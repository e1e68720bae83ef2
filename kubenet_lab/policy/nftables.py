"""The NetworkPolicies of one node as an nftables table the lab owns, `inet kubenet-netpol`,
loaded by fabric.netpol in the node's namespace (pure: text in, text out).

Traffic between pods crosses a node's FORWARD hook: routed between nodes, and bridged on cbr0
between pods of one node (br_netfilter is on in every node: bridged IPv4 goes through the inet
hooks too). After kube-proxy's DNAT (prerouting), so a connection through a Service is judged
by the endpoint pod it reaches; before any SNAT (postrouting), so pods are known by their
addresses. Traffic between a pod and its own node never crosses FORWARD (input/output): kubelet's
probes pass, as Kubernetes requires. Replies pass as part of an allowed connection
(ct established,related).

A connection leaving a pod of this node is judged by the `egress` base chain, one entering a
pod of this node by `ingress` (a later priority: an accept in one base chain does not skip the
other, a drop is final). Each base chain jumps to one chain per policy and direction, named
after it (`ingress/x/allow-b`), for the local pods that policy selects; a policy chain accepts
what one of its rules allows; a packet of an isolated pod that no policy chain accepted is
dropped at the end of the base chain. Every rule carries a comment naming the rule it comes from.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..model.objects import NetworkPolicy, Plan, PlannedPod, PolicyPeer, PolicyPort
from .select import EGRESS, INGRESS, named_port, namespace_labels, peer_pods, policy_pods, selects

TABLE = "inet kubenet-netpol"
# The base chains' priorities: egress first, both among the filter chains of the forward hook.
PRIORITY = {EGRESS: "filter - 1", INGRESS: "filter"}


def _set(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _ips(pods: list[PlannedPod]) -> list[str]:
    return sorted({str(p.ip) for p in pods}, key=lambda a: tuple(int(x) for x in a.split(".")))


def chain_name(policy: NetworkPolicy, direction: str) -> str:
    return f"{direction.lower()}/{policy.key}"


def _peer_matches(peer: PolicyPeer, policy: NetworkPolicy, direction: str, plan: Plan,
                  ns_labels: Mapping[str, Mapping[str, str]]) -> str | None:
    """The match of the other end for a peer; None when it admits nothing (no pod selected)."""
    field = "saddr" if direction == INGRESS else "daddr"
    block = peer.ip_block
    if block is not None:
        if ":" in block.cidr:
            return None  # an IPv6 block: no address of this IPv4 lab is in it
        excepts = [e for e in block.except_ if ":" not in e]
        return f"ip {field} {block.cidr}" + (f" ip {field} != {_set(excepts)}" if excepts else "")
    ips = _ips(peer_pods(plan, peer, policy.namespace, ns_labels))
    return f"ip {field} {_set(ips)}" if ips else None


def _port_match(entry: PolicyPort, destinations: list[PlannedPod]) -> str | None:
    """The match of a ports entry; a named port as the (address, protocol, port) of each
    destination pod that names it. None when no destination does."""
    proto = entry.protocol.lower()
    if entry.port is None:
        return f"meta l4proto {proto}"
    if isinstance(entry.port, int):
        end = entry.end_port if entry.end_port is not None and entry.end_port != entry.port else None
        return f"meta l4proto {proto} th dport {entry.port}" + (f"-{end}" if end else "")
    resolved = sorted({(str(p.ip), n) for p in destinations
                       if (n := named_port(p, entry.port, entry.protocol)) is not None})
    if not resolved:
        return None
    # a concatenation is matched against a set, even of one element
    return "ip daddr . meta l4proto . th dport { " + ", ".join(f"{ip} . {proto} . {n}" for ip, n in resolved) + " }"


def _policy_rules(policy: NetworkPolicy, direction: str, targets: list[PlannedPod], plan: Plan,
                  ns_labels: Mapping[str, Mapping[str, str]]) -> list[str]:
    """A policy chain's rules: one per (peer, port) of each rule that can match anything."""
    rules = policy.ingress if direction == INGRESS else policy.egress
    word, peers_field = direction.lower(), ("from" if direction == INGRESS else "to")
    # where a named port is looked up: the pod the connection goes to (ingress: this policy's own)
    destinations = targets if direction == INGRESS else list(policy_pods(plan))
    out = []
    for i, rule in enumerate(rules):
        peers = [(f" {peers_field}[{j}]", _peer_matches(p, policy, direction, plan, ns_labels))
                 for j, p in enumerate(rule.peers)] or [("", "")]
        ports = [(f" ports[{k}]", _port_match(p, destinations)) for k, p in enumerate(rule.ports)] or [("", "")]
        for peer_note, peer in peers:
            for port_note, port in ports:
                if peer is None or port is None:
                    continue
                match = " ".join(m for m in (peer, port) if m)
                out.append(f"{match + ' ' if match else ''}accept comment \"{word}[{i}]{peer_note}{port_note}\"")
    return out


def render(plan: Plan, node: str) -> str:
    """The table's complete text for `node`, as one `nft -f` transaction replacing the table;
    "" when no policy isolates a pod of the node (the table is then removed)."""
    local = [p for p in policy_pods(plan) if p.node == node]
    ns_labels = namespace_labels(plan)
    chains: list[str] = []
    base: dict[str, list[str]] = {EGRESS: [], INGRESS: []}
    for direction in (EGRESS, INGRESS):
        addr = "saddr" if direction == EGRESS else "daddr"
        isolated: list[PlannedPod] = []
        for policy in sorted(plan.network_policies, key=lambda p: p.key):
            targets = [p for p in local if direction in policy.policy_types and selects(policy, p)]
            if not targets:
                continue
            isolated += targets
            name = chain_name(policy, direction)
            body = [f'comment "networkpolicy {policy.key}, {direction.lower()}"']
            body += _policy_rules(policy, direction, targets, plan, ns_labels)
            chains.append(f"\tchain {name} {{\n" + "".join(f"\t\t{line}\n" for line in body) + "\t}\n")
            base[direction].append(f"ip {addr} {_set(_ips(targets))} jump {name}")
        if isolated:
            ips = _set(_ips(isolated))
            # a connection is never picked up mid-stream (its entry deleted as the policies changed:
            # fabric.netpol), in either direction
            base[direction][:0] = [f"ip {a} {ips} meta l4proto tcp ct state new tcp flags & (syn | ack) != syn drop "
                                   f"comment \"no connection of isolated pods picked up mid-stream\""
                                   for a in ("saddr", "daddr")]
            base[direction].append(f"ip {addr} {ips} counter drop comment "
                                   f"\"{direction.lower()} of isolated pods that no policy allows\"")
    if not base[EGRESS] and not base[INGRESS]:
        return ""
    text = [f"add table {TABLE}\n", f"delete table {TABLE}\n", f"table {TABLE} {{\n",
            f'\tcomment "NetworkPolicy in node {node} (kubenet-lab)"\n']
    text += chains  # declared before the base chains that jump to them
    for direction in (EGRESS, INGRESS):
        lines = [f"type filter hook forward priority {PRIORITY[direction]}; policy accept;",
                 "ct state established,related accept", *base[direction]]
        text.append(f"\tchain {direction.lower()} {{\n" + "".join(f"\t\t{line}\n" for line in lines) + "\t}\n")
    text.append("}\n")
    return "".join(text)


def without_table(listing: str) -> str:
    """`nft list ruleset` without the lab's NetworkPolicy table (for readers of kube-proxy's)."""
    out, skipping = [], False
    for line in listing.splitlines(keepends=True):
        if line.startswith(f"table {TABLE} "):
            skipping = True
        elif skipping and line.startswith("}"):
            skipping = False
            continue
        if not skipping:
            out.append(line)
    return "".join(out)
