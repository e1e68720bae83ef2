"""`kubenet-lab trace SRC DST[:PORT]`: one connection's first packet through the live lab.

What SRC and DST name comes from the running plan; everything the trace says about the path
comes from the kernel: the links, addresses and veth peers of the lab's namespaces, each
namespace's routing decision for that packet (RTM_GETROUTE), the rules each node and the load
balancer list, their affinity state (kernel/netstate.py), read into a `Snapshot` once and traced
by inspect/path.py. `--probe` then sends one real connection from SRC's namespace and reads the
conntrack entries it left in every namespace it crossed (kernel/conntrack.py): the endpoint it
reached and whether its source was translated, set beside the prediction.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from ..errors import InputError, LabError
from ..inspect import path as paths
from ..inspect.snapshot import Link, Route, Snapshot, Space
from ..kernel import conntrack, icmp, netstate
from ..kernel.nsenter import in_netns
from ..model.objects import Plan
from ..plan import naming
from ..policy.nftables import without_table
from ..policy.verdict import End, ends, verdict
from .query import running_plan

PROTOS = ("tcp", "udp", "icmp")
PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}
PROBE_TIMEOUT = 3.0  # seconds
ANSWERED = ("connected", "answered", "echo reply")  # what the probe heard back from the endpoint


@dataclass(frozen=True)
class Endpoint:
    """A resolved SRC or DST: its namespace (SRC) or address and port (DST)."""

    label: str
    netns: str | None = None
    ip: str = ""
    port: int | None = None
    proto: str | None = None


def _split_port(text: str) -> tuple[str, str | None]:
    if text.count(":") == 1:
        name, port = text.split(":")
        return name, port
    return text, None


def resolve_source(plan: Plan, text: str, namespace: str) -> Endpoint:
    if text == "external":
        return Endpoint("external", naming.external_netns(plan.lab))
    if text == "external2":
        return Endpoint("external2", naming.external2_netns(plan.lab))
    if text.startswith(("node/", "nodes/")):
        node = _node(plan, text.split("/", 1)[1])
        return Endpoint(f"node/{node.name}", node.netns)
    name = text.split("/", 1)[1] if text.startswith(("pod/", "pods/")) else text
    try:
        pod = plan.pod(f"{namespace}/{name}")
    except KeyError:
        raise LabError(f'pods "{name}" not found in namespace {namespace!r}; '
                       'SRC is a pod, node/NAME or external') from None
    return Endpoint(f"pod/{pod.name}", pod.netns, str(pod.ip))


def _node(plan: Plan, name: str):
    try:
        return plan.node(name)
    except KeyError:
        raise LabError(f"node {name!r} not found; nodes: {', '.join(n.name for n in plan.nodes)}") from None


def resolve_destination(plan: Plan, text: str, namespace: str, proto: str | None, source: Endpoint) -> Endpoint:
    name, port = _split_port(text)
    if paths.is_ip(name):
        return Endpoint(name, ip=name, port=_number(port, text), proto=proto)
    if name.startswith(("node/", "nodes/")):
        node = _node(plan, name.split("/", 1)[1])
        return Endpoint(f"node/{node.name}", ip=str(node.ip), port=_number(port, text), proto=proto)
    kind, _, bare = name.rpartition("/")
    if kind in ("", "svc", "service", "services"):
        svc_ns = namespace
        if "." in bare and bare.split(".", 1)[1] in plan.namespaces:  # NAME.NAMESPACE, as DNS names it
            bare, svc_ns = bare.split(".", 1)
        svc = next((s for s in plan.services if s.namespace == svc_ns and s.name == bare), None)
        if svc is not None:
            return _service(svc, port, proto, source, text)
        if kind:
            raise LabError(f'services "{bare}" not found in namespace {namespace!r}')
    if kind in ("", "pod", "pods"):
        try:
            pod = plan.pod(f"{namespace}/{bare}")
        except KeyError:
            raise LabError(f'"{bare}" is neither a pod nor a service in namespace {namespace!r}; '
                           f"DST is a pod, svc/NAME, node/NAME or an IP") from None
        number = _number(port, text)
        if number is None and port is not None:
            # by name, and by protocol when one is asked for (as a Service's named targetPort
            # resolves); without one, the named port's own protocol
            named = next((p for c in pod.containers for p in c.ports
                          if p.name == port and proto in (None, "icmp", p.protocol.lower())), None)
            if named is None:
                raise InputError([f"{text}: pod {bare} has no port named {port!r}"
                                  + (f" with protocol {proto.upper()}" if proto in ("tcp", "udp") else "")])
            number = named.container_port
            if proto is None and named.protocol in ("TCP", "UDP"):
                proto = named.protocol.lower()
        if number is None:
            number = next((p.container_port for c in pod.containers for p in c.ports), None)
        return Endpoint(f"pod/{pod.name}", ip=str(pod.ip), port=number, proto=proto)
    raise InputError([f"{text}: DST is a pod, svc/NAME (or the Service's name), node/NAME or an IP"])


def _number(port: str | None, text: str) -> int | None:
    if port is None or not port.isdigit():
        return None
    if not 0 < int(port) < 65536:
        raise InputError([f"{text}: port {port} is out of range (1-65535)"])
    return int(port)


def _service(svc, port: str | None, proto: str | None, source: Endpoint, text: str) -> Endpoint:
    if svc.type == "ExternalName":
        raise LabError(f"service {svc.name} is an ExternalName alias of {svc.external_name}: it has no address "
                       "to trace; trace what that name resolves to")
    if svc.cluster_ip is None:
        raise LabError(f"service {svc.name} is headless: it has no address to trace; trace one of its pods")
    chosen = None
    _number(port, text)  # a number out of range is refused
    for p in svc.ports:
        if port is None or port == p.name or (port.isdigit() and int(port) == p.port):
            if proto is None or proto == p.protocol.lower():
                chosen = p
                break
    if proto == "icmp":
        return Endpoint(f"svc/{svc.name}", ip=str(svc.cluster_ip), proto="icmp")
    if chosen is None and port is not None and port.isdigit():
        return Endpoint(f"svc/{svc.name}", ip=str(svc.cluster_ip), port=int(port), proto=proto)
    if chosen is None:
        raise InputError([f"{text}: service {svc.name} has no port {port!r}; ports: "
                          f"{', '.join(f'{p.name or p.port}/{p.protocol}' for p in svc.ports)}"])
    ip = str(svc.cluster_ip)
    if source.label in ("external", "external2") and svc.load_balancer_ips:  # from outside: its balancer address
        ip = str(svc.load_balancer_ips[0])
    return Endpoint(f"svc/{svc.name}", ip=ip, port=chosen.port, proto=chosen.protocol.lower())


# --- the snapshot ---------------------------------------------------------------------------


def _spaces(plan: Plan) -> dict[str, tuple[str, str, str | None, dict[str, tuple[str, str]]]]:
    """netns -> (role, name, node, link name -> its veth peer (netns, name)), from the plan's
    wiring: which veth ends face each other. The kernel confirms each pair (indexes)."""
    lab = plan.lab
    under = plan.underlay_netns
    out: dict = {under: ("underlay", "underlay", None, {})}
    for node in plan.nodes:
        out[node.netns] = ("node", f"node/{node.name}", node.name, {"eth0": (under, node.underlay_veth)})
        out[under][3][node.underlay_veth] = (node.netns, "eth0")
    for role, label, ns in (("external", "external", naming.external_netns(lab)), ("lb", "lb", naming.lb_netns(lab)),
                            ("external", "external2", naming.external2_netns(lab))):
        veth = naming.outside_underlay_veth(lab, label)
        out[ns] = (role, label, None, {"eth0": (under, veth)})
        out[under][3][veth] = (ns, "eth0")
    for pod in plan.pods:
        if pod.host_network or not pod.host_veth:
            continue
        node = plan.node(pod.node)
        out[pod.netns] = ("pod", f"{pod.namespace}/{pod.name}", pod.node, {"eth0": (node.netns, pod.host_veth)})
        out[node.netns][3][pod.host_veth] = (pod.netns, "eth0")
    return out


class _Spaces(dict):
    """The lab's namespaces, each read on first use: a trace visits a few pods of a big lab."""

    def __init__(self, known, build):
        super().__init__()
        self._known, self._build = known, build

    def __missing__(self, netns: str) -> Space:
        if netns not in self._known:
            raise KeyError(netns)
        self[netns] = space = self._build(netns)
        return space

    def __contains__(self, netns: object) -> bool:
        return dict.__contains__(self, netns) or netns in self._known


def read_snapshot(plan: Plan, reader: netstate.Reader) -> Snapshot:
    """The nodes, the underlay, the balancer and the external client now; a pod's namespace when
    the trace first reaches it. A veth's peer is the one the plan wired when the kernel agrees
    (each end names the other's index; checked from the pod's side)."""
    wiring = _spaces(plan)
    raw: dict[str, list] = {}

    def links_of(netns: str) -> list:
        if netns not in raw:
            try:
                raw[netns] = reader.links(netns)
            except OSError:
                raw[netns] = []  # a namespace gone meanwhile: nothing there answers
        return raw[netns]

    def build(netns: str) -> Space:
        role, name, node, peers = wiring[netns]
        links = links_of(netns)
        by_index = {l.index: l.name for l in links}
        out = {}
        for l in links:
            peer = peers.get(l.name)
            if peer and (role != "node" or wiring[peer[0]][0] != "pod"):
                other = next((x for x in links_of(peer[0]) if x.name == peer[1]), None)
                if other is None or other.link != l.index or l.link != other.index:
                    peer = None
            out[l.name] = Link(l.name, l.index, l.kind, by_index.get(l.master) if l.master else None, peer,
                               tuple(IPv4Interface(a) for a in l.addresses), l.up)
        space = Space(netns, role, name, node, out)
        if links:
            space.neighbours = {(by_index.get(n.ifindex, "?"), n.ip): n.state for n in reader.neighbours(netns)}
        if role == "node":
            space.syntax = "iptables" if plan.cluster.kube_proxy_mode == "iptables" else "nft"
        elif role == "lb":
            space.syntax = "nft"
        if space.syntax and links:
            space.rules = netstate.rules_listing(netns, space.syntax)
            if space.syntax == "nft":  # NetworkPolicy's table is judged by the oracle (_with_policies)
                space.rules = without_table(space.rules)
            if space.syntax == "iptables":
                space.affinity = dict(netstate.recent_lists(netns))
        return space

    spaces = _Spaces(wiring, build)
    for netns, (role, *_rest) in wiring.items():
        if role != "pod":
            spaces[netns]  # noqa: B018 -- read now: every trace passes them
    hint = {str(p.ip): p.netns for p in plan.pods if not p.host_network and p.host_veth}

    def ask(netns: str, dst: str, src: str | None, iif: str | None) -> Route:
        links = spaces[netns].links
        answer = reader.route(netns, dst, src, links[iif].index if iif in links else None)
        dev = next((l.name for l in links.values() if l.index == answer.oif), None)
        return Route(answer.type, dev, answer.gateway, answer.prefsrc, answer.error)

    return Snapshot(spaces, ask=ask, hint=hint)


# --- the verb -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    sent: str  # src:sport -> dst:dport/proto
    answered: str  # connected, refused, timed out, ...
    entries: tuple[tuple[str, str, str], ...]  # (namespace's name, original tuple, reply tuple)
    endpoint: str | None  # reply source of the last entry: who answered
    masqueraded: bool
    agrees: bool | None
    verdict: str


def trace(lab: str, src: str, dst: str, proto: str | None, namespace: str, probe: bool):
    if proto is not None and proto not in PROTOS:
        raise InputError([f"--proto {proto}: expected one of {', '.join(PROTOS)}"])
    plan = running_plan(lab)
    if plan.cluster.kube_proxy_mode == "userspace":
        raise LabError(f"lab {lab} runs kube-proxy in userspace mode, which trace does not follow: a Service's "
                       "traffic ends at its node's proxy port (REDIRECT or DNAT in KUBE-PORTALS-*, KUBE-NODEPORT-*) "
                       "and the proxy opens a connection of its own to the backend. `kubenet-lab describe svc NAME` "
                       "shows the rules with their counters")
    source = resolve_source(plan, src, namespace)
    target = resolve_destination(plan, dst, namespace, proto, source)
    proto = target.proto or proto or "tcp"
    port = 0 if proto == "icmp" else target.port if target.port is not None else 80
    pkt = paths.Packet(source.ip, target.ip, port, proto)
    with netstate.Reader() as reader:
        snap = read_snapshot(plan, reader)
        if source.netns not in snap.spaces:
            raise LabError(f"{source.label}: its namespace {source.netns} is not there (is the lab up?)")
        where = f"{target.ip}/icmp" if proto == "icmp" else f"{target.ip}:{port}/{proto}"
        result = paths.trace(snap, source.netns, pkt, source.label, f"{target.label} ({where})")
    result = _with_policies(plan, result)
    probed = run_probe(plan, snap, source, result) if probe else None
    return result, snap, probed


def _with_policies(plan: Plan, result: paths.Result) -> paths.Result:
    """A path that reaches its endpoint is dropped where NetworkPolicy's table drops it: at the
    endpoint pod (after DNAT), as the oracle judges the connection, whose reason ends the path."""
    if not plan.network_policies:
        return result
    known = ends(plan)
    branches = []
    for b in result.branches:
        if b.outcome != "delivered" or not b.endpoint or not b.hops:
            branches.append(b)
            continue
        src_ip = IPv4Address(b.hops[0].packet.src or result.packet.src)
        ip, _, port = b.endpoint.rpartition(":")
        dst_ip = IPv4Address(ip or b.endpoint)
        proto = result.packet.proto.upper()
        v = verdict(plan, known.get(src_ip, End(src_ip)), known.get(dst_ip, End(dst_ip)), proto,
                    int(port) if port.isdigit() else 0)
        if v.allowed:
            branches.append(b)
            continue
        judge = v.ingress if v.egress.allowed else v.egress
        pod = (known.get(dst_ip) if v.egress.allowed else known.get(src_ip)) or End(dst_ip)
        where = f"node/{pod.pod.node}'s" if pod.pod is not None else "the"
        last = dataclasses.replace(b.hops[-1], end=f"dropped by {where} NetworkPolicy table (inet kubenet-netpol, "
                                                   f"forward): {judge.reason}")
        branches.append(dataclasses.replace(b, outcome="dropped", hops=b.hops[:-1] + (last,), answer=()))
    return dataclasses.replace(result, branches=tuple(branches))


def _names(snap: Snapshot, ip: str) -> str:
    for space in snap.spaces.values():
        if space.role in ("pod", "node", "external", "lb") and space.owner_of(ip) is not None and \
                space.owner_of(ip).name != "lo":
            return space.name
    return ip


def _dns_query(domain: str) -> bytes:
    """A DNS question for kubernetes.default.svc.DOMAIN (A), so a DNS server answers the probe."""
    name = b"".join(bytes([len(p)]) + p.encode() for p in f"kubernetes.default.svc.{domain}".split(".")) + b"\0"
    return b"\x4b\x4c\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name + b"\x00\x01\x00\x01"


def _connect(plan: Plan, netns: str, pkt: paths.Packet) -> tuple[str, int, str]:
    """One TCP connection or UDP datagram from `netns`: (source address, source port, what came
    back)."""
    with in_netns(netns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if pkt.proto == "tcp" else socket.SOCK_DGRAM)
    try:
        s.settimeout(PROBE_TIMEOUT)  # a SYN is sent again after 1 s, an ICMP error may be rate-limited
        s.bind((pkt.src or "0.0.0.0", 0))
        try:
            s.connect((pkt.dst, pkt.dport))
            if pkt.proto == "tcp":
                answered = "connected"
            else:
                s.send(_dns_query(plan.cluster.dns_domain) if pkt.dport == 53 else b"hostname")
                s.recv(2048)
                answered = "answered"
        except ConnectionRefusedError:
            answered = "refused"
        except socket.timeout:
            answered = "timed out" if pkt.proto == "tcp" else "no answer"
        except OSError as e:
            answered = e.strerror or str(e)
        src_ip, sport = s.getsockname()
    finally:
        s.close()
    return src_ip, sport, answered


def _ping(netns: str, pkt: paths.Packet) -> tuple[str, int, str]:
    """One ICMP echo from `netns` over a raw socket: (source address, echo id, what came back)."""
    ident = (os.getpid() ^ int(time.monotonic() * 1000)) & 0xFFFF
    with in_netns(netns):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        try:
            s.sendto(icmp.echo_request(ident, 1), (pkt.dst, 0))
        except OSError as e:
            return pkt.src, ident, e.strerror or str(e)
        deadline = time.monotonic() + PROBE_TIMEOUT
        answered = "no answer"
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                got = icmp.parse(s.recv(65535))
            except socket.timeout:
                break
            if got is not None and got.ident == ident:
                answered = "echo reply" if got.kind == "reply" else f"{got.problem} (from {got.sender})"
                break
    finally:
        s.close()
    return pkt.src, ident, answered


def run_probe(plan: Plan, snap: Snapshot, source: Endpoint, result: paths.Result) -> ProbeResult:
    pkt = result.packet
    if pkt.proto == "icmp":
        src_ip, sport, answered = _ping(source.netns, pkt)
    else:
        src_ip, sport, answered = _connect(plan, source.netns, pkt)
    number = PROTO_NUMBERS[pkt.proto]
    spaces = [sp for sp in list(snap.spaces.values()) if sp.rules]
    tables = {sp.name: [e for e in conntrack.entries(sp.netns) if e.proto == number] for sp in spaces}
    found: list[tuple[str, str, str]] = []
    endpoint, masq, seen = None, False, set()
    want = (IPv4Address(src_ip), sport, IPv4Address(pkt.dst), sport if pkt.proto == "icmp" else pkt.dport) \
        if src_ip else None
    while want is not None:
        hit = next(((name, e) for name, es in tables.items() for e in es
                    if (e.orig.src, e.orig.sport, e.orig.dst, e.orig.dport) == want and name not in seen), None)
        if hit is None:
            break
        name, e = hit
        seen.add(name)
        found.append((name, str(e.orig), str(e.reply)))
        if e.reply.dst != e.orig.src or e.reply.dport != e.orig.sport:
            masq = True
        endpoint = str(e.reply.src) if pkt.proto == "icmp" else f"{e.reply.src}:{e.reply.sport}"
        want = (e.reply.dst, e.reply.dport, e.reply.src, e.reply.sport)
    predicted = result.endpoints()
    delivered = answered in ANSWERED or (answered == "refused" and bool(found))  # a reset from the endpoint
    if delivered and endpoint:
        hits = [b for b in result.branches if b.endpoint == endpoint and b.outcome == "delivered"]
        agrees = bool(hits) and any(b.masqueraded == masq for b in hits)
        verdict = (f"reached {endpoint} ({_names(snap, endpoint.split(':')[0])}), "
                   f"{'masqueraded' if masq else 'source kept'}: "
                   + ("as predicted" if agrees else f"NOT as predicted (predicted: {predicted or 'no endpoint'})"))
    else:
        agrees = any(b.outcome != "delivered" for b in result.branches)
        where = f", sent on to {endpoint}" if endpoint else ""
        verdict = (f"{answered}{where}: " + ("the packet died, as predicted" if agrees else
                                             f"NOT as predicted (predicted: {predicted}): the routes and rules "
                                             f"let it through, so look below them (neighbours: ip neigh, links) "
                                             f"or at the endpoint (is it listening?)"))
        endpoint = None
    sent = f"{src_ip} -> {pkt.dst}/icmp (echo id {sport})" if pkt.proto == "icmp" else \
        f"{src_ip}:{sport} -> {pkt.dst}:{pkt.dport}/{pkt.proto}"
    return ProbeResult(sent, answered, tuple(found),
                       endpoint, masq, agrees, verdict)
