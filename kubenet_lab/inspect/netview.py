"""The network part of `describe`, from the live kernel state a reader took (fabric/netdump.py):
`ip -json -details addr`, `ip -json route`, `ip -json neigh` of a namespace, a node's
`iptables-save -c` or `nft list table ip kube-proxy`. Pure: it parses that data and writes the
text; the tests give it captured output.

What it shows: a pod's interfaces, addresses and routes, its veth peer in the node and that
bridge port's state and hairpin flag; a Service's rules in every node (iptables: each rule that
names it with its packet and byte counters; nftables: its chains and map elements, with counters
where the rules keep them); a node's bridge and its ports, addresses, routes, neighbours and how
many rules it holds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from .describe import Writer

NONE = "<none>"
# the proxy modes whose rules are iptables chains (iptables-save lists them)
IPTABLES_MODES = ("iptables", "userspace")


@dataclass(frozen=True)
class Namespace:
    """One network namespace as read: its links (with their addresses) and routes, neighbours."""

    name: str
    links: Sequence[Mapping] = ()  # `ip -j -d addr` entries
    routes: Sequence[Mapping] = ()  # `ip -j route` entries
    neighbours: Sequence[Mapping] = ()  # `ip -j neigh` entries
    error: str | None = None  # why it could not be read (gone, not root)


@dataclass(frozen=True)
class NodeRules:
    node: str
    mode: str  # iptables | nftables
    text: str  # iptables-save -c, or nft list table ip kube-proxy
    error: str | None = None


# ------------------------------------------------------------------------------------------
# ip's JSON, as `ip` prints it
# ------------------------------------------------------------------------------------------


def addresses(link: Mapping, family: str = "inet") -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info") or [] if a.get("family") == family]


def route_line(r: Mapping) -> str:
    """A route as `ip route` prints it."""
    parts = [r.get("dst", "default")]
    if r.get("gateway"):
        parts += ["via", r["gateway"]]
    if r.get("dev"):
        parts += ["dev", r["dev"]]
    if r.get("protocol") and r["protocol"] != "boot":
        parts += ["proto", str(r["protocol"])]
    if r.get("scope") and r["scope"] != "global":
        parts += ["scope", str(r["scope"])]
    if r.get("prefsrc"):
        parts += ["src", r["prefsrc"]]
    if r.get("metric"):
        parts += ["metric", str(r["metric"])]
    parts += [str(f) for f in r.get("flags", ())]  # onlink (the vxlan backend's routes), linkdown
    return " ".join(parts)


def neighbour_line(n: Mapping) -> str:
    parts = [n.get("dst", "?"), "dev", n.get("dev", "?")]
    if n.get("lladdr"):
        parts += ["lladdr", n["lladdr"]]
    parts += [str(s) for s in n.get("state") or []]
    return " ".join(parts)


def link_state(link: Mapping) -> str:
    return link.get("operstate", "UNKNOWN") if "UP" not in (link.get("flags") or []) or \
        link.get("operstate") not in ("UNKNOWN", None) else "UP"


def bridge_port(link: Mapping) -> Mapping | None:
    info = link.get("linkinfo") or {}
    return info.get("info_slave_data") if info.get("info_slave_kind") == "bridge" else None


def find(ns: Namespace, name: str) -> Mapping | None:
    return next((l for l in ns.links if l.get("ifname") == name), None)


def _section(out: Writer, title: str, lines: Sequence[str]) -> None:
    out.w(1, f"{title}:{chr(9) + NONE if not lines else ''}\n")
    for line in lines:
        out.w(2, f"{line}\n")


def _links(out: Writer, ns: Namespace, only: Sequence[str] | None = None) -> None:
    rows = []
    for l in ns.links:
        if only is not None and l.get("ifname") not in only:
            continue
        kind = (l.get("linkinfo") or {}).get("info_kind", l.get("link_type", ""))
        extra = [f"master {l['master']}"] if l.get("master") else []
        rows.append(f"{l.get('ifname')}\t{link_state(l)}\t{kind or '-'}\t{','.join(addresses(l)) or '-'}\t"
                    f"{l.get('address', '-')}\tmtu {l.get('mtu', '?')}" + "".join(f"  {e}" for e in extra))
    _section(out, "Interfaces", rows)


# ------------------------------------------------------------------------------------------
# Pods
# ------------------------------------------------------------------------------------------


def pod_network(pod_ns: Namespace, node_ns: Namespace | None, host_veth: str | None, node: str,
                host_network: bool = False) -> str:
    out = Writer()
    out.w(0, "Network:\n")
    out.w(1, f"Network Namespace:\t{pod_ns.name}\n")
    if pod_ns.error:
        out.w(1, f"Error:\t{pod_ns.error}\n")
        return out.text()
    if host_network:
        out.w(1, f"Host Network:\ttrue (the namespace of node {node})\n")
        return out.text()
    _links(out, pod_ns)
    _section(out, "Routes", [route_line(r) for r in pod_ns.routes])
    if host_veth is None or node_ns is None:
        return out.text()
    peer = find(node_ns, host_veth)
    out.w(1, "Node Side:\n")
    if node_ns.error or peer is None:
        out.w(2, f"{host_veth}:\t{node_ns.error or f'not found in {node_ns.name}'}\n")
        return out.text()
    port = bridge_port(peer) or {}
    out.w(2, f"Veth Peer:\t{host_veth} in {node_ns.name} (node {node}), {link_state(peer)}\n")
    out.w(2, f"Bridge:\t{peer.get('master') or NONE}\n")
    if port:
        out.w(2, f"Bridge Port:\tstate {port.get('state', '?')}, hairpin {'on' if port.get('hairpin') else 'off'}, "
                 f"learning {'on' if port.get('learning') else 'off'}\n")
    return out.text()


# ------------------------------------------------------------------------------------------
# Services: the rules that implement them
# ------------------------------------------------------------------------------------------

_COMMENT = re.compile(r'--comment (?:"([^"]*)"|(\S+))')


def names_service(comment: str, namespace: str, name: str) -> bool:
    """Whether a kube-proxy rule comment is about Service namespace/name (`ns/name:port ...`,
    `ns/name`, `... for ns/name:port external destinations`)."""
    return re.search(rf'(^|\s){re.escape(namespace)}/{re.escape(name)}(:\S*)?(\s|$)', comment) is not None


def iptables_rules_for(text: str, namespace: str, name: str) -> list[tuple[str, str]]:
    """(table, rule line with its [packets:bytes]) of every rule naming the Service."""
    table, found = "", []
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        m = _COMMENT.search(line)
        if m and names_service(m.group(1) or m.group(2), namespace, name):
            found.append((table, line))
    return found


def nft_blocks_for(text: str, namespace: str, name: str) -> list[str]:
    """What implements the Service in table kube-proxy: the elements of its maps (service-ips,
    service-nodeports, no-endpoint-services, ...) that lead to it, as `map NAME: ELEMENT`, then
    its chains (kube-proxy's `service-HASH-ns/name/tcp/port`, `endpoint-...`, `external-...`)."""
    tag = f"-{namespace}/{name}/"
    elements, chains, block, keep, in_map = [], [], [], False, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("chain "):
            block, keep = [line], tag in stripped.split()[1]
            continue
        if block:
            block.append(line)
            if stripped == "}":
                if keep:
                    chains.extend(block)
                block, keep = [], False
            continue
        if stripped.startswith(("map ", "set ")):
            in_map = stripped.split()[1]
            continue
        if in_map and stripped == "}":
            in_map = None
            continue
        if in_map is None:
            continue
        element = stripped.removeprefix("elements = {").strip().rstrip(",").removesuffix("}").strip()
        m = re.search(r'comment "([^"]*)"', element)
        if tag in element or (m and names_service(m.group(1), namespace, name)):
            elements.append(f"map {in_map}: {element}")
    return elements + chains


# The order a packet meets kube-proxy's chains: the entry points, the service's own chains, the
# endpoints'; iptables-save lists them by name.
CHAIN_ORDER = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-FW-", "KUBE-EXT-", "KUBE-SVC-",
               "KUBE-SVL-", "KUBE-SEP-")
ENTRY_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES")


def _chain(line: str) -> str:
    m = re.search(r"-A (\S+)", line)
    return m.group(1) if m else ""


def _flow_order(line: str) -> int:
    chain = _chain(line)
    return next((i for i, prefix in enumerate(CHAIN_ORDER) if chain.startswith(prefix)), len(CHAIN_ORDER))


def entered(lines: Sequence[str]) -> int:
    """Packets that entered the Service's rules: the counters of its rules in the entry chains
    (the first packet of each connection: nat rules see only those)."""
    total = 0
    for line in lines:
        m = re.match(r"\[(\d+):\d+\]", line.strip())
        if m and _chain(line) in ENTRY_CHAINS:
            total += int(m.group(1))
    return total


def service_network(rules: Sequence[NodeRules], namespace: str, name: str) -> str:
    out = Writer()
    out.w(0, "Rules:\n")
    for r in rules:
        if r.error:
            out.w(1, f"{r.node} ({r.mode}):\t{r.error}\n")
            continue
        if r.mode in IPTABLES_MODES:
            found = sorted(iptables_rules_for(r.text, namespace, name), key=lambda tl: _flow_order(tl[1]))
            lines = [line.strip() + ("" if table == "nat" else f"   (table {table})") for table, line in found]
            summary = (f"{len(lines)} rules (iptables-save -c: [packets:bytes]), "
                       f"{entered(lines)} connections entered")
        else:
            lines = [line.rstrip().replace("\t", "  ")[2:] if line.startswith("\t") else line.rstrip()
                     for line in nft_blocks_for(r.text, namespace, name)]
            chains = sum(1 for line in lines if line.strip().startswith("chain "))
            elements = sum(1 for line in lines if line.startswith("map "))
            summary = f"{chains} chains, {elements} map elements (nft list table ip kube-proxy)"
        out.w(1, f"{r.node}:\t{summary}\n")
        out.flush()
        for line in lines:
            out.w(2, f"{line}\n")
        out.flush()
    return out.text()


# ------------------------------------------------------------------------------------------
# Nodes
# ------------------------------------------------------------------------------------------


def rule_counts(r: NodeRules) -> str:
    """How many rules and chains a node holds: iptables per table; nftables in table kube-proxy."""
    if r.error:
        return r.error
    if r.mode in IPTABLES_MODES:
        tables: dict[str, list[int]] = {}
        table = ""
        for line in r.text.splitlines():
            if line.startswith("*"):
                table = line[1:]
                tables[table] = [0, 0]
            elif line.startswith(":") and table:
                tables[table][1] += 1
            elif re.match(r"(\[\d+:\d+\] )?-A ", line) and table:
                tables[table][0] += 1
        svcs = {m for m in re.findall(r"^:(KUBE-SVC-\w+)", r.text, re.M)}
        seps = {m for m in re.findall(r"^:(KUBE-SEP-\w+)", r.text, re.M)}
        parts = [f"{t} {n[0]} rules in {n[1]} chains" for t, n in tables.items()]
        return f"iptables: {'; '.join(parts) or 'no tables'}; {len(svcs)} KUBE-SVC and {len(seps)} KUBE-SEP chains"
    chains = rules = 0
    in_chain = False
    for line in r.text.splitlines():
        stripped = line.strip()
        if stripped.startswith("chain "):
            chains, in_chain = chains + 1, True
        elif in_chain and stripped == "}":
            in_chain = False
        elif in_chain and stripped and not stripped.startswith(("type ", "policy ", "comment ")):
            rules += 1
    maps = len(re.findall(r"^\s*map ", r.text, re.M))
    return f"nftables: table ip kube-proxy: {chains} chains, {rules} rules, {maps} maps"


def node_network(ns: Namespace, rules: NodeRules | None, bridge: str = "cbr0") -> str:
    out = Writer()
    out.w(0, "Network:\n")
    out.w(1, f"Network Namespace:\t{ns.name}\n")
    if ns.error:
        out.w(1, f"Error:\t{ns.error}\n")
        return out.text()
    br = find(ns, bridge)
    ports = [l for l in ns.links if l.get("master") == bridge]
    out.w(1, f"Bridge:\t{bridge} {','.join(addresses(br)) if br else '(missing)'}, {len(ports)} ports\n")
    out.flush()
    rows = []
    for l in ports:
        port = bridge_port(l) or {}
        rows.append(f"{l.get('ifname')}\t{link_state(l)}\tstate {port.get('state', '?')}\t"
                    f"hairpin {'on' if port.get('hairpin') else 'off'}")
    _section(out, "Bridge Ports", rows)
    out.flush()
    _links(out, ns, [l.get("ifname") for l in ns.links if l.get("master") != bridge])
    _section(out, "Routes", [route_line(r) for r in ns.routes])
    _section(out, "Neighbours", [neighbour_line(n) for n in ns.neighbours])
    if rules is not None:
        out.w(1, f"Rules:\t{rule_counts(rules)}\n")
    return out.text()
