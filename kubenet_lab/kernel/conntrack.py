"""Conntrack cleanup in the nodes, as kube-proxy does it after a sync.

A UDP "connection" is a conntrack entry that lives on for as long as datagrams keep coming (30 s
after the last one, 120 s once it has seen both ways). When a UDP endpoint goes away, the entries
NATed to it stay, and every datagram of those flows keeps going to the dead address instead of a
live endpoint; UDP has no reset to end them. So after the rules change, kube-proxy deletes the
entries whose reply comes from a removed UDP endpoint, and so does this module, in each node's
namespace, over ctnetlink: one dump, then one batch of deletes, on the same batched netlink
socket as the rest of the lab (kernel/rtnl.py; pyroute2's nfct_msg encodes and decodes; no
`conntrack` tool, no process).
"""
from __future__ import annotations

import errno
import socket
from ipaddress import IPv4Address
from typing import Callable, Iterable, NamedTuple

from pyroute2.netlink import NLM_F_DUMP
from pyroute2.netlink.marshal import Marshal
from pyroute2.netlink.nfnetlink.nfctsocket import (IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_NEW,
                                                   NFNL_SUBSYS_CTNETLINK, nfct_msg)

from . import rtnl
from .nsenter import in_netns

NETLINK_NETFILTER = 12
UDP = 17
_FAMILY = (("nfgen_family", socket.AF_INET),)


def _type(cmd: int) -> int:
    return (NFNL_SUBSYS_CTNETLINK << 8) | cmd


class _MarshalCt(Marshal):
    msg_map = {_type(IPCTNL_MSG_CT_NEW): nfct_msg, _type(IPCTNL_MSG_CT_DELETE): nfct_msg}


_DUMP = rtnl.Request(_type(IPCTNL_MSG_CT_GET), NLM_F_DUMP, nfct_msg, _FAMILY)


class Flow(NamedTuple):
    """A conntrack entry's original direction, and where its replies come from (after DNAT:
    the endpoint)."""

    proto: int
    src: IPv4Address
    sport: int
    dst: IPv4Address
    dport: int
    reply_src: IPv4Address


def _flow(msg: nfct_msg) -> Flow | None:
    orig, reply = msg.get_attr("CTA_TUPLE_ORIG"), msg.get_attr("CTA_TUPLE_REPLY")
    if orig is None or reply is None:
        return None
    ip, proto, rip = orig.get_attr("CTA_TUPLE_IP"), orig.get_attr("CTA_TUPLE_PROTO"), reply.get_attr("CTA_TUPLE_IP")
    if ip is None or proto is None or rip is None or ip.get_attr("CTA_IP_V4_SRC") is None:
        return None
    return Flow(proto=proto.get_attr("CTA_PROTO_NUM"), src=IPv4Address(ip.get_attr("CTA_IP_V4_SRC")),
                sport=proto.get_attr("CTA_PROTO_SRC_PORT") or 0, dst=IPv4Address(ip.get_attr("CTA_IP_V4_DST")),
                dport=proto.get_attr("CTA_PROTO_DST_PORT") or 0, reply_src=IPv4Address(rip.get_attr("CTA_IP_V4_SRC")))


def _delete(flow: Flow) -> rtnl.Request:
    return rtnl.Request(_type(IPCTNL_MSG_CT_DELETE), 0, nfct_msg, _FAMILY, (("CTA_TUPLE_ORIG", (
        ("CTA_TUPLE_IP", (("CTA_IP_V4_SRC", str(flow.src)), ("CTA_IP_V4_DST", str(flow.dst)))),
        ("CTA_TUPLE_PROTO", (("CTA_PROTO_NUM", flow.proto), ("CTA_PROTO_SRC_PORT", flow.sport),
                             ("CTA_PROTO_DST_PORT", flow.dport))),
    )),))


def open_in(netns: str) -> rtnl.Rtnl:
    """A ctnetlink socket inside `netns` (opened by this thread after setns: no fork)."""
    with in_netns(netns):
        nl = rtnl.Rtnl(NETLINK_NETFILTER, _MarshalCt())
    nl.sock.settimeout(10)  # the kernel answers at once; a silence would be a bug, not a wait
    return nl


def flows(nl: rtnl.Rtnl) -> list[Flow]:
    return [f for f in map(_flow, nl.query(_DUMP)) if f is not None]


def forget_nat_flows_to(netns: str, endpoints: Iterable[IPv4Address], proto: int = UDP) -> list[Flow]:
    """Delete, in `netns`, the `proto` entries that were DNATed to one of `endpoints`; the flows
    deleted. An entry that vanished meanwhile is fine."""
    gone = set(endpoints)
    if not gone:
        return []
    with open_in(netns) as nl:
        doomed = [f for f in flows(nl) if f.proto == proto and f.reply_src in gone and f.reply_src != f.dst]
        nl.batch([_delete(f) for f in doomed], tolerate=(errno.ENOENT,))
    return doomed


def forget_flows_to_ports(netns: str, ports: Iterable[int], proto: int = UDP) -> list[Flow]:
    """Delete, in `netns`, the `proto` entries whose original destination port is one of `ports`,
    whatever the address (the CNI portmap plugin's DeleteConntrackEntriesForDstPort, after it adds
    a pod's UDP host ports: a flow that began before, unanswered or to a pod gone, would otherwise
    bypass the new DNAT until its entry expires); the flows deleted."""
    wanted = set(ports)
    if not wanted:
        return []
    with open_in(netns) as nl:
        doomed = [f for f in flows(nl) if f.proto == proto and f.dport in wanted]
        nl.batch([_delete(f) for f in doomed], tolerate=(errno.ENOENT,))
    return doomed


class Tuple(NamedTuple):
    src: IPv4Address
    sport: int
    dst: IPv4Address
    dport: int

    def __str__(self) -> str:
        return f"{self.src}:{self.sport} -> {self.dst}:{self.dport}"


class Entry(NamedTuple):
    """A conntrack entry: the original direction as the first packet came in, and the reply
    direction the kernel expects (after DNAT its source is the endpoint; after SNAT its
    destination is the translated source)."""

    proto: int
    orig: Tuple
    reply: Tuple


def _tuple(t) -> Tuple | None:
    ip, proto = t.get_attr("CTA_TUPLE_IP"), t.get_attr("CTA_TUPLE_PROTO")
    if ip is None or proto is None or ip.get_attr("CTA_IP_V4_SRC") is None:
        return None
    sport = proto.get_attr("CTA_PROTO_SRC_PORT") or proto.get_attr("CTA_PROTO_ICMP_ID") or 0
    dport = proto.get_attr("CTA_PROTO_DST_PORT") or proto.get_attr("CTA_PROTO_ICMP_ID") or 0
    return Tuple(IPv4Address(ip.get_attr("CTA_IP_V4_SRC")), sport, IPv4Address(ip.get_attr("CTA_IP_V4_DST")), dport)


def _entries(nl: rtnl.Rtnl) -> list[Entry]:
    out = []
    for msg in nl.query(_DUMP):
        orig, reply = msg.get_attr("CTA_TUPLE_ORIG"), msg.get_attr("CTA_TUPLE_REPLY")
        if orig is None or reply is None:
            continue
        o, r = _tuple(orig), _tuple(reply)
        proto = orig.get_attr("CTA_TUPLE_PROTO")
        if o and r and proto is not None:
            out.append(Entry(proto.get_attr("CTA_PROTO_NUM"), o, r))
    return out


def entries(netns: str) -> list[Entry]:
    """Every IPv4 conntrack entry of `netns`, both directions."""
    with open_in(netns) as nl:
        return _entries(nl)


PORT_PROTOCOLS = (6, 17, 132)  # TCP, UDP, SCTP: the entries `forget` can name by their ports


def forget(netns: str, doomed: Callable[[Entry], bool]) -> list[Entry]:
    """Delete, in `netns`, the TCP, UDP and SCTP entries `doomed` picks (a flow deleted this way
    is judged again by the rules at its next packet); the entries deleted."""
    with open_in(netns) as nl:
        picked = [e for e in _entries(nl) if e.proto in PORT_PROTOCOLS and doomed(e)]
        nl.batch([_delete(Flow(e.proto, e.orig.src, e.orig.sport, e.orig.dst, e.orig.dport, e.reply.src))
                  for e in picked], tolerate=(errno.ENOENT,))
    return picked
