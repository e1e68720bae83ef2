"""The live state of a lab's namespaces as plain data, read once (fabric/live.py reads it).

`trace` is a pure function of a plan and a `Snapshot`: unit tests build one by hand. Routing
decisions are the kernel's own answers to RTM_GETROUTE for one packet; a live snapshot asks the
kernel for each packet the trace meets (`ask`) and keeps every answer in `routes`, so the data
the trace used can be shown (`-o json`) and replayed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Interface
from typing import Callable


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    kind: str  # veth, bridge, loopback, ...
    master: str | None = None  # the bridge it is a port of
    peer: tuple[str, str] | None = None  # a veth's other end: (netns, link name)
    addresses: tuple[IPv4Interface, ...] = ()
    up: bool = True


@dataclass(frozen=True)
class Route:
    """The kernel's answer for one packet: `type` unicast, local, unreachable, blackhole,
    prohibit, or "error" with the kernel's message (Network is unreachable, ...)."""

    type: str
    dev: str | None = None
    gateway: str | None = None
    prefsrc: str | None = None
    error: str | None = None

    def __str__(self) -> str:
        if self.error:
            return f"error: {self.error}"
        parts = [self.type]
        if self.gateway:
            parts += ["via", self.gateway]
        if self.dev:
            parts += ["dev", self.dev]
        if self.prefsrc:
            parts += ["src", self.prefsrc]
        return " ".join(parts)


@dataclass
class Space:
    """One network namespace of the lab: what it is to the lab, its links, and for the nodes and
    the load balancer the rules the kernel lists (`syntax`: iptables, i.e. iptables-save, or nft,
    i.e. nft list ruleset) and the affinity state (list/set name -> client addresses)."""

    netns: str
    role: str  # pod, node, underlay, external, lb
    name: str  # ns/pod, the node's name, or the role
    node: str | None = None  # a pod's node
    links: dict[str, Link] = field(default_factory=dict)
    rules: str | None = None
    syntax: str | None = None
    affinity: dict[str, frozenset[str]] = field(default_factory=dict)
    neighbours: dict[tuple[str, str], str] = field(default_factory=dict)  # (link, ip) -> NUD state

    def owner_of(self, ip: str) -> Link | None:
        return next((l for l in self.links.values() if any(str(a.ip) == ip for a in l.addresses)), None)


RouteKey = tuple[str, str, str | None, str | None]  # netns, dst, src, iif


@dataclass
class Snapshot:
    spaces: dict[str, Space]
    routes: dict[RouteKey, Route] = field(default_factory=dict)
    ask: Callable[[str, str, str | None, str | None], Route] | None = field(default=None, repr=False)
    # Where the plan puts an address (ip -> netns): only the order in which a bridge's ports are
    # looked at, so a big node's pods are not all read; the kernel's addresses still decide.
    hint: dict[str, str] = field(default_factory=dict, repr=False)

    def route(self, netns: str, dst: str, src: str | None = None, iif: str | None = None) -> Route:
        key = (netns, dst, src, iif)
        if key not in self.routes:
            if self.ask is None:
                raise KeyError(f"no route answer recorded for {key}")
            self.routes[key] = self.ask(*key)
        return self.routes[key]

    def to_json(self) -> dict:
        return {"routes": [{"netns": k[0], "dst": k[1], "src": k[2], "iif": k[3], **asdict(r)}
                           for k, r in self.routes.items()]}
