"""Reading one network namespace's state for inspection: links, addresses, the kernel's routing
decision for one packet (RTM_GETROUTE), the firewall's listing and `recent` lists. Plain data
out; no lab knowledge (app/trace.py puts it together). pyroute2 is imported here only, so the
verbs that do not inspect never load it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import NamedTuple

from .nsenter import in_netns

RT_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast", 6: "blackhole",
            7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat"}


class LinkInfo(NamedTuple):
    name: str
    index: int
    kind: str
    master: int | None  # index of the bridge it is a port of
    link: int | None  # a veth's peer index (in the peer's namespace)
    up: bool
    addresses: tuple[str, ...]  # "ip/prefix"


NUD_STATES = {0x01: "INCOMPLETE", 0x02: "REACHABLE", 0x04: "STALE", 0x08: "DELAY", 0x10: "PROBE",
              0x20: "FAILED", 0x40: "NOARP", 0x80: "PERMANENT"}


class Neighbour(NamedTuple):
    ifindex: int
    ip: str
    state: str  # as `ip neigh` names it


class RouteAnswer(NamedTuple):
    type: str
    oif: int | None
    gateway: str | None
    prefsrc: str | None
    error: str | None


class Reader:
    """One rtnetlink socket per namespace, opened on first use, for as long as it lives."""

    def __init__(self) -> None:
        self._sockets: dict[str, object] = {}

    def _ipr(self, netns: str):
        if netns not in self._sockets:
            from pyroute2 import IPRoute
            with in_netns(netns):
                self._sockets[netns] = IPRoute()
        return self._sockets[netns]

    def close(self) -> None:
        for s in self._sockets.values():
            s.close()
        self._sockets.clear()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def links(self, netns: str) -> list[LinkInfo]:
        ipr = self._ipr(netns)
        addrs: dict[int, list[str]] = {}
        for a in ipr.get_addr(family=2):
            addrs.setdefault(a["index"], []).append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        out = []
        for l in ipr.get_links():
            kind = l.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or ("loopback" if l["index"] == 1 else "")
            out.append(LinkInfo(l.get_attr("IFLA_IFNAME"), l["index"], kind, l.get_attr("IFLA_MASTER"),
                                l.get_attr("IFLA_LINK"), bool(l["flags"] & 1), tuple(addrs.get(l["index"], ()))))
        return out

    def neighbours(self, netns: str) -> list[Neighbour]:
        """The IPv4 neighbour (ARP) entries of `netns`."""
        return [Neighbour(n["ifindex"], n.get_attr("NDA_DST"), NUD_STATES.get(n["state"], str(n["state"])))
                for n in self._ipr(netns).get_neighbours(family=2) if n.get_attr("NDA_DST")]

    def route(self, netns: str, dst: str, src: str | None = None, iif: int | None = None) -> RouteAnswer:
        """What the kernel decides for a packet to `dst` (from `src`, arriving on `iif`; without
        `iif`: sent by a process of the namespace)."""
        from pyroute2.netlink.exceptions import NetlinkError
        kw: dict = {"dst": dst}
        if src:
            kw["src"] = src
        if iif is not None:
            kw["iif"] = iif
        try:
            r = self._ipr(netns).route("get", **kw)[0]
        except NetlinkError as e:
            return RouteAnswer("error", None, None, None, os.strerror(e.code) if e.code else str(e))
        return RouteAnswer(RT_TYPES.get(r["type"], str(r["type"])), r.get_attr("RTA_OIF"),
                           r.get_attr("RTA_GATEWAY"), r.get_attr("RTA_PREFSRC"), None)


def _run(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    return subprocess.run(argv, capture_output=True, text=True).stdout


def rules_listing(netns: str, syntax: str) -> str:
    """`iptables-save` ("iptables") or `nft list ruleset` ("nft") inside `netns`."""
    with in_netns(netns):
        return _run(["iptables-save"] if syntax == "iptables" else ["nft", "list", "ruleset"])


def recent_lists(netns: str) -> dict[str, frozenset[str]]:
    """The xt_recent lists of `netns` (iptables' affinity): name -> source addresses in it."""
    out: dict[str, frozenset[str]] = {}
    with in_netns(netns):
        base = "/proc/thread-self/net/xt_recent"
        try:
            names = os.listdir(base)
        except OSError:
            return out
        for name in names:
            try:
                with open(os.path.join(base, name)) as f:
                    out[name] = frozenset(line.split()[0].removeprefix("src=") for line in f if line.strip())
            except OSError:
                continue
    return out
