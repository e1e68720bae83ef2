"""Conntrack cleanup in the nodes, as kube-proxy does it after a sync.

A UDP "connection" is a conntrack entry that lives on for as long as datagrams keep coming (30 s
after the last one, 120 s once it has seen both ways). When a UDP endpoint goes away, the entries
NATed to it stay, and every datagram of those flows keeps going to the dead address instead of a
live endpoint; UDP has no reset to end them. So after the rules change, kube-proxy deletes the
entries whose reply comes from a removed UDP endpoint, and so does this module, in each node's
namespace, over ctnetlink: one dump, then one batch of deletes (pyroute2's nfct_msg encodes and
decodes; no `conntrack` tool, no process).
"""
from __future__ import annotations

import errno
import socket
import struct
from ipaddress import IPv4Address
from typing import Iterable, Iterator, NamedTuple

from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, nlmsgerr
from pyroute2.netlink.nfnetlink.nfctsocket import (IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_GET, NFNL_SUBSYS_CTNETLINK,
                                                   nfct_msg)

from .nsenter import in_netns

NETLINK_NETFILTER = 12
UDP = 17


class Flow(NamedTuple):
    """A conntrack entry's original direction, and where its replies come from (after DNAT:
    the endpoint)."""

    proto: int
    src: IPv4Address
    sport: int
    dst: IPv4Address
    dport: int
    reply_src: IPv4Address


def _request(cmd: int, flags: int, seq: int, attrs: list | None = None) -> bytes:
    msg = nfct_msg()
    msg["nfgen_family"] = socket.AF_INET
    msg["attrs"] = attrs or []
    msg["header"]["type"] = (NFNL_SUBSYS_CTNETLINK << 8) | cmd
    msg["header"]["flags"] = flags
    msg["header"]["seq"] = seq
    msg.encode()
    return bytes(msg.data)


def _messages(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """(type, bytes) of each message answered, until the dump ends."""
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset < len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if kind == NLMSG_DONE:
                return
            yield kind, data[offset:offset + length]
            offset += length


def _error(raw: bytes) -> int:
    err = nlmsgerr(raw)
    err.decode()
    return -err["error"]


def _flow(raw: bytes) -> Flow | None:
    msg = nfct_msg(raw)
    msg.decode()
    orig, reply = msg.get_attr("CTA_TUPLE_ORIG"), msg.get_attr("CTA_TUPLE_REPLY")
    if orig is None or reply is None:
        return None
    ip, proto, rip = orig.get_attr("CTA_TUPLE_IP"), orig.get_attr("CTA_TUPLE_PROTO"), reply.get_attr("CTA_TUPLE_IP")
    if ip is None or proto is None or rip is None or ip.get_attr("CTA_IP_V4_SRC") is None:
        return None
    return Flow(proto=proto.get_attr("CTA_PROTO_NUM"), src=IPv4Address(ip.get_attr("CTA_IP_V4_SRC")),
                sport=proto.get_attr("CTA_PROTO_SRC_PORT") or 0, dst=IPv4Address(ip.get_attr("CTA_IP_V4_DST")),
                dport=proto.get_attr("CTA_PROTO_DST_PORT") or 0, reply_src=IPv4Address(rip.get_attr("CTA_IP_V4_SRC")))


def flows(sock: socket.socket) -> list[Flow]:
    sock.send(_request(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1))
    out = []
    for kind, raw in _messages(sock):
        if kind == NLMSG_ERROR:
            code = _error(raw)
            if code:
                raise OSError(code, f"conntrack dump: {errno.errorcode.get(code, code)}")
            continue
        if (flow := _flow(raw)) is not None:
            out.append(flow)
    return out


def _delete(flow: Flow, seq: int) -> bytes:
    return _request(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, [("CTA_TUPLE_ORIG", {"attrs": [
        ("CTA_TUPLE_IP", {"attrs": [("CTA_IP_V4_SRC", str(flow.src)), ("CTA_IP_V4_DST", str(flow.dst))]}),
        ("CTA_TUPLE_PROTO", {"attrs": [("CTA_PROTO_NUM", flow.proto), ("CTA_PROTO_SRC_PORT", flow.sport),
                                       ("CTA_PROTO_DST_PORT", flow.dport)]}),
    ]})])


def open_in(netns: str) -> socket.socket:
    with in_netns(netns):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    sock.bind((0, 0))
    sock.settimeout(10)  # the kernel answers at once; a silence would be a bug, not a wait
    return sock


def forget_nat_flows_to(netns: str, endpoints: Iterable[IPv4Address], proto: int = UDP) -> list[Flow]:
    """Delete, in `netns`, the `proto` entries that were DNATed to one of `endpoints`; the flows
    deleted. An entry that vanished meanwhile is fine."""
    gone = set(endpoints)
    if not gone:
        return []
    with open_in(netns) as sock:
        doomed = [f for f in flows(sock) if f.proto == proto and f.reply_src in gone and f.reply_src != f.dst]
        if not doomed:
            return []
        sock.send(b"".join(_delete(f, seq) for seq, f in enumerate(doomed, start=100)))
        answered = 0
        while answered < len(doomed):
            data = sock.recv(1 << 16)
            offset = 0
            while offset < len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == NLMSG_ERROR:
                    answered += 1
                    code = _error(data[offset:offset + length])
                    if code not in (0, errno.ENOENT):
                        raise OSError(code, f"conntrack delete in {netns}: {errno.errorcode.get(code, code)}")
                offset += length
    return doomed
