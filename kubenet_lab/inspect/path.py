"""One connection's first packet, hop by hop, over a `Snapshot` of the live lab (pure).

In each namespace the packet reaches: the netfilter hooks it passes when the namespace has rules
(inspect/trace.py's simulator over the rules the kernel listed: DNAT, masquerade, reject, drop,
and for random balancing every branch with its probability), the kernel's routing decision for
that packet (the snapshot's RTM_GETROUTE answers), and the link it leaves by: a veth to its
peer, a bridge to the port that leads to the next hop, the underlay to another node. A bridge
with rules in its namespace (a node's cbr0: bridge-nf-call-iptables) runs them on what it
bridges between two pods. Where the packet dies, the trace says why, naming the rule or the
route. Every possible path is a `Branch` with its probability; each also carries the answer's
path back, as conntrack undoes the translations on the way.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, ip_address
from typing import Iterator

from . import trace as nf
from .snapshot import Link, Route, Snapshot, Space

MAX_HOPS = 16


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    dport: int
    proto: str = "tcp"

    def __str__(self) -> str:
        port = f":{self.dport}" if self.proto != "icmp" else ""
        return f"{self.src} -> {self.dst}{port}/{self.proto}"


@dataclass(frozen=True)
class Rule:
    chain: str  # table/chain
    index: int
    text: str


@dataclass(frozen=True)
class Netfilter:
    """What one namespace's rules did to the packet on this branch."""

    hooks: tuple[str, ...]
    rules: tuple[Rule, ...]  # every rule that jumped, went to, or decided, in order
    verdict: str  # accept, drop, reject
    dnat: str | None = None
    masquerade: bool = False
    why: str = ""  # why masqueraded, or why the source is kept
    probability: float = 1.0  # of this branch among the namespace's choices
    affinity: tuple[str, ...] = ()  # affinity lists/sets the client is recorded in
    sticky: bool = False  # chosen by a live affinity entry of the client


@dataclass(frozen=True)
class Hop:
    netns: str
    role: str
    name: str
    iif: str | None  # None: sent by a process of this namespace
    packet: Packet  # as it arrives
    netfilter: tuple[Netfilter, ...] = ()
    route: Route | None = None
    out: str = ""  # the link it leaves by, and where that leads
    end: str = ""  # delivered, or why it dies here


@dataclass(frozen=True)
class Branch:
    probability: float
    hops: tuple[Hop, ...]
    outcome: str  # delivered, rejected, dropped, unroutable, lost
    endpoint: str | None  # ip:port the packet reached
    reached: str | None  # who holds that address (pod ns/name, node/NAME, external, lb)
    masqueraded: bool
    seen_source: str | None  # the source address the endpoint sees
    answer: tuple[str, ...] = ()  # the answer's path, one line per namespace


@dataclass(frozen=True)
class Result:
    source: str
    destination: str
    packet: Packet
    branches: tuple[Branch, ...]

    def endpoints(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for b in self.branches:
            if b.outcome == "delivered" and b.endpoint:
                out[b.endpoint] = out.get(b.endpoint, 0.0) + b.probability
        return out


def _known(space: Space, src: str) -> dict[str, float]:
    """The affinity entries the client has in this namespace (age 0: still valid)."""
    return {name: 0.0 for name, clients in space.affinity.items() if src in clients}


def _ruleset(space: Space, cache: dict) -> nf.Ruleset | None:
    if not space.rules:
        return None
    if space.netns not in cache:
        rs = nf.parse_live(space.rules, space.syntax or "iptables")
        if space.syntax == "nft":  # live affinity sets: their elements are the known clients
            for name in rs.timeouts:
                space.affinity.setdefault(name, frozenset(rs.sets.get(name, ())))
        cache[space.netns] = rs
    return cache[space.netns]


def _state(pkt: Packet, local: frozenset, known: dict) -> nf._State:
    return nf._State(IPv4Address(pkt.src), IPv4Address(pkt.dst), pkt.proto, pkt.dport, local, known)


def _hooks(rs: nf.Ruleset, hooks: tuple[str, ...], st: nf._State) -> list[tuple[float, nf._State, str]]:
    todo = [(1.0, st, None)]
    for hook in hooks:
        nxt = []
        for p, s, v in todo:
            if v in ("drop", "reject"):
                nxt.append((p, s, v))
            else:
                nxt += [(p2, s2, v2) for p2, s2, v2 in nf._run_hook(rs, hook, s, p)]
        todo = nxt
    return [(p, s, v or "accept") for p, s, v in todo if p > 0]


def _why_masq(rules: tuple[Rule, ...], st: nf._State) -> str:
    marks = [r for r in rules if "MARK-MASQ" in r.text or "mark-for-masquerade" in r.text]
    hostport = any("HOSTPORT-SETMARK" in r.text or (r.chain.startswith("cni_hostport/") and "masquerade" in r.text)
                   for r in rules)
    if not st.masq:
        if any("KUBE-SVL-" in r.text or "goto local-" in r.text or "jump local-" in r.text for r in rules):
            return "externalTrafficPolicy Local: only local endpoints, the client's address is kept"
        return "not masqueraded: the endpoint sees the client's own address"
    if hostport and not marks:
        return ("hostPort reached from a pod of this node: the CNI portmap plugin masquerades it, so the "
                "answer comes back through the node")
    if not marks:
        return "masqueraded"
    t = marks[0].text
    words = t.split()
    sources = {words[i + 1].removesuffix("/32") for i, w in enumerate(words[:-1]) if w == "-s" or
               (w == "saddr" and words[i + 1] != "!=")}
    if st.dnat and st.dnat.rpartition(":")[0] in sources:
        return "hairpin: the endpoint is the client itself, so its own address would answer it directly"
    if "! -s" in t or "saddr !=" in t:
        return "the source is outside the pod network (off-cluster client to a cluster IP)"
    if "LOCAL" in t or "fib saddr type local" in t:
        return "sent by the node itself to an external destination"
    return "external traffic with externalTrafficPolicy Cluster: the endpoint may be on another node"


def _netfilter(rs: nf.Ruleset, space: Space, hooks: tuple[str, ...], st: nf._State, prior: Netfilter | None = None,
               ) -> list[tuple[Netfilter, nf._State]]:
    """The hooks run over `st` (which carries what earlier hooks of this namespace did: mark,
    DNAT, the rules met); each branch's record covers the namespace so far (`prior` and these)."""
    out = []
    base = prior.probability if prior else 1.0
    for p, st2, verdict in _hooks(rs, hooks, st):
        rules = tuple(Rule(c, i, rs.rule_text(c, i)) for c, i in st2.path)
        sticky = any(any(n.split("/")[-1] in r.text for r in rules if "rcheck" in r.text or "@affinity" in r.text)
                     for n in st2.known)
        out.append((Netfilter((prior.hooks if prior else ()) + hooks, rules, verdict, st2.dnat, st2.masq,
                              _why_masq(rules, st2), base * p, tuple(sorted(st2.recorded)), sticky), st2))
    return out


def _after(pkt: Packet, st: nf._State) -> Packet:
    return replace(pkt, dst=str(st.dst), dport=st.dport)


def _local(space: Space) -> frozenset:
    return frozenset(str(a.ip) for l in space.links.values() for a in l.addresses)


def _ports(space: Space, bridge: str, snap: Snapshot, nexthop: str) -> list[Link]:
    """A bridge's ports, the one toward where the plan puts `nexthop` first."""
    likely = snap.hint.get(nexthop)
    ports = [l for l in space.links.values() if l.master == bridge]
    return sorted(ports, key=lambda l: not (l.peer and l.peer[0] == likely))


def _tunnel_ends(snap: Snapshot, space: Space, link: Link) -> list[tuple[Space, Link]]:
    """The other nodes' VXLAN devices named as `link` (the backends' flannel.1, or l2's port on
    cbr0): one segment with it, reached through the underlay (their FDB entries say which node
    holds which MAC; the nodes are always in the snapshot)."""
    return [(s, s.links[link.name]) for s in list(dict.values(snap.spaces))
            if s.role == "node" and s.netns != space.netns and link.name in s.links
            and s.links[link.name].kind == "vxlan"]


def _beyond_tunnel(snap: Snapshot, space: Space, port: Link, nexthop: str) -> Iterator[tuple[Space, Link]]:
    """Through a VXLAN port of a bridge: the far nodes' bridges' other ports' peers (l2's pods)."""
    for other, end in _tunnel_ends(snap, space, port):
        if end.master:
            yield other, other.links[end.master]
            for far_port in _ports(other, end.master, snap, nexthop):
                if far_port.peer and far_port.peer[0] in snap.spaces:
                    far = snap.spaces[far_port.peer[0]]
                    if far_port.peer[1] in far.links:
                        yield far, far.links[far_port.peer[1]]


def _segment(snap: Snapshot, space: Space, link: Link, nexthop: str) -> Iterator[tuple[Space, Link, str | None]]:
    """Every (namespace, link) the frame leaving by `link` can reach on its L2 segment, with the
    namespace of a bridge it crosses between two ports (None when it crosses none); read as
    needed, the likely one first. A VXLAN device's segment goes on at the other nodes' devices."""
    if link.kind == "vxlan":
        for remote, device in _tunnel_ends(snap, space, link):
            yield remote, device, None
        return
    if link.kind == "bridge":
        for port in _ports(space, link.name, snap, nexthop):
            if port.peer and port.peer[0] in snap.spaces:
                peer_space = snap.spaces[port.peer[0]]
                if port.peer[1] in peer_space.links:
                    yield peer_space, peer_space.links[port.peer[1]], None
            elif port.kind == "vxlan":
                for far, far_link in _beyond_tunnel(snap, space, port, nexthop):
                    yield far, far_link, None
        return
    if not link.peer or link.peer[0] not in snap.spaces:
        return
    other = snap.spaces[link.peer[0]]
    end = other.links.get(link.peer[1])
    if end is None:
        return
    if end.master is None:
        yield other, end, None
        return
    bridge = other.links[end.master]
    yield other, bridge, None
    for port in _ports(other, bridge.name, snap, nexthop):
        if port.name != end.name and port.peer and port.peer[0] in snap.spaces:
            far = snap.spaces[port.peer[0]]
            if port.peer[1] in far.links:
                yield far, far.links[port.peer[1]], other.netns
        elif port.kind == "vxlan":
            for far, far_link in _beyond_tunnel(snap, other, port, nexthop):
                yield far, far_link, other.netns


def _link_by_route(space: Space, route: Route) -> Link | None:
    return space.links.get(route.dev) if route.dev else None


class _Walk:
    def __init__(self, snap: Snapshot):
        self.snap = snap
        self.cache: dict = {}

    def run(self, netns: str, iif: str | None, pkt: Packet, p: float, hops: tuple[Hop, ...], nat: tuple,
            ) -> list[Branch]:
        space = self.snap.spaces[netns]
        if len(hops) >= MAX_HOPS:
            return [self._end(p, hops, Hop(netns, space.role, space.name, iif, pkt, end="loop: too many hops"),
                              "lost", nat)]
        rs = _ruleset(space, self.cache)
        local = _local(space)
        if iif is None:  # sent from here: the source is the route's preferred one
            first = self.snap.route(netns, pkt.dst)
            if first.error or first.type not in ("unicast", "local"):
                hop = Hop(netns, space.role, space.name, None, pkt, route=first,
                          end=f"no route to {pkt.dst}: {first.error or first.type}")
                return [self._end(p, hops, hop, "unroutable", nat)]
            if pkt.src == "":
                pkt = replace(pkt, src=first.prefsrc or "")
        pre_hooks = ("OUTPUT",) if iif is None else ("PREROUTING",)
        st0 = _state(pkt, local, _known(space, pkt.src))
        choices = _netfilter(rs, space, pre_hooks, st0) if rs else [(None, st0)]
        out: list[Branch] = []
        for pre, st in choices:
            after = _after(pkt, st)
            q = p * (pre.probability if pre else 1.0)
            nat2 = nat + ((netns, pkt, after),) if after != pkt else nat
            if pre and pre.verdict in ("drop", "reject"):
                hop = Hop(netns, space.role, space.name, iif, pkt, (pre,), end=_died(pre))
                out.append(self._end(q, hops, hop, _dead(pre), nat2))
                continue
            route = self.snap.route(netns, after.dst, after.src if iif else None, iif)
            if route.error or route.type not in ("unicast", "local"):
                hop = Hop(netns, space.role, space.name, iif, pkt, _some(pre), route,
                          end=f"no route to {after.dst}: {route.error or route.type} (routing table of {space.name})")
                out.append(self._end(q, hops, hop, "unroutable", nat2))
                continue
            if route.type == "local":
                post = _netfilter(rs, space, ("INPUT",), st, pre) if rs and iif is not None else [(pre, st)]
                for inp, _ in post:
                    r = p * (inp.probability if inp else 1.0)
                    if inp and inp.verdict != "accept":
                        hop = Hop(netns, space.role, space.name, iif, pkt, (inp,), route, end=_died(inp))
                        out.append(self._end(r, hops, hop, _dead(inp), nat2))
                    else:
                        hop = Hop(netns, space.role, space.name, iif, pkt, _some(inp), route,
                                  end=f"delivered to {_where(after)} ({space.name})")
                        out.append(self._end(r, hops, hop, "delivered", nat2, after, space))
                continue
            post_hooks = ("FORWARD", "POSTROUTING") if iif is not None else ("POSTROUTING",)
            posts = _netfilter(rs, space, post_hooks, st, pre) if rs else [(None, st)]
            for fwd, _ in posts:
                r = p * (fwd.probability if fwd else 1.0)
                if fwd and fwd.verdict != "accept":
                    hop = Hop(netns, space.role, space.name, iif, pkt, (fwd,), route, end=_died(fwd))
                    out.append(self._end(r, hops, hop, _dead(fwd), nat2))
                    continue
                sent, nat3 = after, nat2
                if fwd and fwd.masquerade:
                    sent = replace(after, src=route.prefsrc or _address_on(space, route.dev) or after.src)
                    nat3 = nat2 + ((netns, after, sent),)
                out += self._leave(space, iif, pkt, _some(fwd), route, sent, r, hops, nat3)
        return out

    def _leave(self, space, iif, pkt, nfs, route, sent, p, hops, nat) -> list[Branch]:
        link = _link_by_route(space, route)
        nexthop = route.gateway or sent.dst
        hop = Hop(space.netns, space.role, space.name, iif, pkt, nfs, route)
        if link is None:
            return [self._end(p, hops, replace(hop, end=f"route names {route.dev}, which is not here"), "lost", nat)]
        for other, end, bridged_in in _segment(self.snap, space, link, nexthop):
            if other.owner_of(nexthop) is not end:
                continue
            via = f"{link.name}"
            if link.kind == "veth" and link.peer:
                peer_space = self.snap.spaces[link.peer[0]]
                via += f" -> {link.peer[1]} ({peer_space.name})"
                master = peer_space.links[link.peer[1]].master
                if master:
                    via += f" -> bridge {master}" + _across(peer_space, master, other)
            elif link.kind == "vxlan":
                via += " (VXLAN over the underlay)"
            elif link.kind == "bridge":
                port = _port_to(space, other, end)
                via = f"bridge {link.name} -> " + (f"port {port}" if port != "?" else
                                                   _across(space, link.name, other).removeprefix(" -> "))
            via += f" -> {end.name} ({other.name})"
            state = space.neighbours.get((link.name, nexthop))
            if state in ("FAILED", "INCOMPLETE"):
                via += f"; neighbour {nexthop} on {link.name} is {state}: ARP got no answer"
            hop = replace(hop, out=via)
            if bridged_in and self.snap.spaces[bridged_in].rules:
                return self._bridged(self.snap.spaces[bridged_in], link, other, end, sent, p, hops + (hop,), nat)
            return self.run(other.netns, end.name, sent, p, hops + (hop,), nat)
        state = space.neighbours.get((link.name, nexthop))
        known = f" (neighbour entry: {state})" if state else ""
        return [self._end(p, hops, replace(hop, end=f"nothing on {link.name}'s segment holds {nexthop}: "
                                                   f"no neighbour can answer{known}"), "lost", nat)]

    def _bridged(self, bridge_space: Space, link, other, end, pkt, p, hops, nat) -> list[Branch]:
        """A frame bridged between two ports of a bridge whose namespace has rules
        (bridge-nf-call-iptables): PREROUTING, FORWARD, POSTROUTING there."""
        rs = _ruleset(bridge_space, self.cache)
        out = []
        port_in = link.peer[1] if link.peer else "?"
        st0 = _state(pkt, _local(bridge_space), _known(bridge_space, pkt.src))
        for nfv, st in _netfilter(rs, bridge_space, ("PREROUTING", "FORWARD", "POSTROUTING"), st0):
            after = _after(pkt, st)
            q = p * nfv.probability
            hop = Hop(bridge_space.netns, bridge_space.role, bridge_space.name, port_in, pkt, (nfv,),
                      out=f"bridged by {bridge_space.links[port_in].master} "
                          f"(bridge-nf-call-iptables) -> {end.name} ({other.name})")
            if nfv.verdict != "accept":
                out.append(self._end(q, hops, replace(hop, out="", end=_died(nfv)), _dead(nfv), nat))
            elif after != pkt or nfv.masquerade:
                out.append(self._end(q, hops, replace(hop, end="translated while bridged: not followed"), "lost", nat))
            else:
                out += self.run(other.netns, end.name, after, q, hops + (hop,), nat)
        return out

    def _end(self, p, hops, hop, outcome, nat, pkt: Packet | None = None, space: Space | None = None) -> Branch:
        hops = hops + (hop,)
        masq = any(after.src != before.src for _, before, after in nat)
        endpoint = (pkt.dst if pkt.proto == "icmp" else f"{pkt.dst}:{pkt.dport}") if pkt else None
        answer = self._answer(hops, nat, pkt) if pkt else ()
        return Branch(p, hops, outcome, endpoint, space.name if space else None, masq,
                      pkt.src if pkt else None, answer)

    def _answer(self, hops: tuple[Hop, ...], nat: tuple, pkt: Packet) -> tuple[str, ...]:
        """Back along the path: the reply from the endpoint, un-NATed where the request was."""
        src, dst = pkt.dst, pkt.src
        lines = []
        for hop in reversed(hops):
            for netns, before, after in reversed(nat):
                if netns == hop.netns:
                    if after.src != before.src and dst == after.src:
                        dst = before.src
                    if after.dst != before.dst and src == after.dst:
                        src = before.dst
            lines.append(f"{hop.name}: {src} -> {dst}")
        return tuple(dict.fromkeys(lines))


def _where(pkt: Packet) -> str:
    return pkt.dst if pkt.proto == "icmp" else f"{pkt.dst}:{pkt.dport}"


def _port_to(space: Space, other: Space, end: Link) -> str:
    for l in space.links.values():
        if l.peer == (other.netns, end.name):
            return l.name
    return "?"


def _across(space: Space, bridge: str, other: Space) -> str:
    """A bridge's way to a pod of another node: its VXLAN port (l2), then that node's bridge."""
    if other.role != "pod" or not other.node or other.node == space.name:
        return ""
    tunnel = next((l.name for l in space.links.values() if l.master == bridge and l.kind == "vxlan"), None)
    return f" -> port {tunnel} (VXLAN over the underlay) -> bridge {bridge} (node/{other.node})" if tunnel else ""


def _address_on(space: Space, dev: str | None) -> str | None:
    link = space.links.get(dev or "")
    return str(link.addresses[0].ip) if link and link.addresses else None


def _some(x):
    return (x,) if x else ()


def _dead(n: Netfilter) -> str:
    return "rejected" if n.verdict == "reject" else "dropped"


def _died(n: Netfilter) -> str:
    """The rule that decided, and the one that led to its chain when that is a helper."""
    rule = n.rules[-1] if n.rules else None
    where = f"{rule.chain}: {rule.text}" if rule else "the chain's policy"
    if rule and len(n.rules) > 1 and n.rules[-2].chain != rule.chain:
        where += f", reached from {n.rules[-2].chain}: {n.rules[-2].text}"
    return f"{'rejected' if n.verdict == 'reject' else 'dropped'} by {where}"


def trace(snap: Snapshot, src_netns: str, pkt: Packet, source: str, destination: str) -> Result:
    """The packet `pkt` sent by a process of `src_netns` (pkt.src "" for the route's choice)."""
    branches = _Walk(snap).run(src_netns, None, pkt, 1.0, (), ())
    merged = _merge(branches)
    first = merged[0].hops[0].packet if merged else pkt
    return Result(source, destination, first, tuple(merged))


def _merge(branches: list[Branch]) -> list[Branch]:
    out: dict[tuple, Branch] = {}
    for b in branches:
        key = (b.hops, b.outcome, b.endpoint)
        if key in out:
            out[key] = replace(out[key], probability=out[key].probability + b.probability)
        else:
            out[key] = b
    return sorted(out.values(), key=lambda b: (-b.probability, b.endpoint or ""))


def is_ip(text: str) -> bool:
    try:
        ip_address(text)
        return True
    except ValueError:
        return False
