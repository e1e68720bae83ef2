"""A minimal rtnetlink client for the paths that scale with the number of pods.

Why not pyroute2's request layer here: on this kind of machine (2 cores, kernel 6.18) one
`IPRoute` call costs about 0.9 ms of Python (request filters, an asyncio loop turn, full decoding
of the answer) and pyroute2's encoder 0.1-0.4 ms per message, while the kernel work for a whole
pod (namespace, veth, enslave, 4 settings) is about 2.7 ms. Here each message is a few
`struct.pack` calls, the messages for one namespace go out in one `send`, and the answers are
scanned for the few attributes we read. pyroute2 (`IPRoute`) stays in use where the number of
operations does not grow with the pods (underlay, nodes). The layouts are the kernel ABI
(linux/rtnetlink.h, if_link.h); the tests decode these messages with pyroute2's parsers.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
from ipaddress import IPv4Address, IPv4Network
from typing import Iterable, Iterator, NamedTuple

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_CAP_ACK = 10

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26

IFF_UP = 0x1
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_IFALIAS = 20
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4
IFLA_INFO_SLAVE_DATA = 5
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_TABLE = 15
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3  # what `ip route add` uses
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NLA = struct.Struct("=HH")
_ERR = struct.Struct("=i")
_U32 = struct.Struct("=I")


class Request(NamedTuple):
    type: int
    flags: int
    body: bytes


class NetlinkError(OSError):
    """A request the kernel refused; `index` is its position in the batch."""

    def __init__(self, err: int, index: int, detail: str = ""):
        text = os.strerror(err) + (f" ({detail})" if detail else "")
        super().__init__(err, text)
        self.index = index


# --- encoding --------------------------------------------------------------------------------


def attr(kind: int, payload: bytes) -> bytes:
    size = _NLA.size + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size % 4)


def _name(value: str) -> bytes:
    return value.encode() + b"\0"


def _ifinfo(index: int = 0, up: bool = False) -> bytes:
    flags = IFF_UP if up else 0
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, flags)


def bridge_add(name: str) -> Request:
    info = attr(IFLA_INFO_KIND, _name("bridge"))
    return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, _ifinfo() + attr(IFLA_IFNAME, _name(name)) + attr(IFLA_LINKINFO, info))


def link_del(index: int) -> Request:
    return Request(RTM_DELLINK, 0, _ifinfo(index))


def veth_add(name: str, peer: str, peer_ns_fd: int, master: int) -> Request:
    """A veth whose peer is created directly in the namespace `peer_ns_fd` (never moved later),
    this end up and enslaved to `master` in the same request. The kernel applies neither the
    alias nor the peer's state on creation: set them afterwards (link_set)."""
    peer_msg = _ifinfo() + attr(IFLA_IFNAME, _name(peer)) + attr(IFLA_NET_NS_FD, _U32.pack(peer_ns_fd))
    info = attr(IFLA_INFO_KIND, _name("veth")) + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg))
    body = _ifinfo(up=True) + attr(IFLA_IFNAME, _name(name)) + attr(IFLA_MASTER, _U32.pack(master))
    body += attr(IFLA_LINKINFO, info)
    return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)


def link_set(index: int = 0, name: str | None = None, up: bool = True, alias: str | None = None,
             hairpin: bool = False, master: int | None = None) -> Request:
    """Change an existing link, found by index or (index 0) by name."""
    body = _ifinfo(index, up)
    if name is not None and not index:
        body += attr(IFLA_IFNAME, _name(name))
    if master is not None:
        body += attr(IFLA_MASTER, _U32.pack(master))
    if alias is not None:
        body += attr(IFLA_IFALIAS, alias.encode())  # no NUL: the kernel keeps nla_len bytes
    if hairpin:
        slave = attr(IFLA_BRPORT_MODE, b"\x01")
        body += attr(IFLA_LINKINFO, attr(IFLA_INFO_SLAVE_KIND, _name("bridge")) + attr(IFLA_INFO_SLAVE_DATA, slave))
    return Request(RTM_NEWLINK, 0, body)


def _addr(kind: int, flags: int, index: int, address: IPv4Address, prefixlen: int) -> Request:
    raw = address.packed
    body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
    return Request(kind, flags, body + attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw))


def addr_add(index: int, address: IPv4Address, prefixlen: int) -> Request:
    return _addr(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, index, address, prefixlen)


def addr_del(index: int, address: IPv4Address, prefixlen: int) -> Request:
    return _addr(RTM_DELADDR, 0, index, address, prefixlen)


def _route(kind: int, flags: int, dst: IPv4Network, gateway: IPv4Address, oif: int | None) -> Request:
    body = _RTMSG.pack(socket.AF_INET, dst.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                       RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    if dst.prefixlen:
        body += attr(RTA_DST, dst.network_address.packed)
    body += attr(RTA_GATEWAY, gateway.packed)
    if oif is not None:
        body += attr(RTA_OIF, _U32.pack(oif))
    return Request(kind, flags, body)


def route_add(dst: IPv4Network, gateway: IPv4Address, oif: int, replace: bool = False) -> Request:
    flags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
    return _route(RTM_NEWROUTE, flags, dst, gateway, oif)


def route_del(dst: IPv4Network, gateway: IPv4Address) -> Request:
    return _route(RTM_DELROUTE, 0, dst, gateway, None)


def link_get(index: int = 0, name: str | None = None) -> Request:
    body = _ifinfo(index)
    if name is not None and not index:
        body += attr(IFLA_IFNAME, _name(name))
    return Request(RTM_GETLINK, 0, body)


def addr_dump() -> Request:
    return Request(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0))


def route_dump() -> Request:
    return Request(RTM_GETROUTE, NLM_F_DUMP, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0))


# --- decoding --------------------------------------------------------------------------------


def attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """The top-level attributes from `offset` on (the last one wins on repeats)."""
    out: dict[int, bytes] = {}
    end = len(data)
    while offset + _NLA.size <= end:
        size, kind = _NLA.unpack_from(data, offset)
        if size < _NLA.size:
            break
        out[kind & 0x3FFF] = data[offset + _NLA.size:offset + size]
        offset += (size + 3) & ~3
    return out


def text(value: bytes | None) -> str | None:
    return None if value is None else value.split(b"\0", 1)[0].decode(errors="replace")


def link_info(body: bytes) -> tuple[int, dict[int, bytes]]:
    """(ifindex, attributes) of an RTM_NEWLINK answer."""
    index = _IFINFO.unpack_from(body)[2]
    return index, attrs(body, _IFINFO.size)


def addr_info(body: bytes) -> tuple[int, int, dict[int, bytes]]:
    """(ifindex, prefixlen, attributes) of an RTM_NEWADDR answer."""
    _family, prefixlen, _flags, _scope, index = _IFADDR.unpack_from(body)
    return index, prefixlen, attrs(body, _IFADDR.size)


class Route(NamedTuple):
    dst: IPv4Network
    gateway: IPv4Address | None
    oif: int | None
    table: int


def route_info(body: bytes) -> Route:
    """The fields of an RTM_NEWROUTE answer that reconciliation looks at."""
    fields = _RTMSG.unpack_from(body)
    found = attrs(body, _RTMSG.size)
    dst = IPv4Address(found[RTA_DST]) if RTA_DST in found else IPv4Address(0)
    gateway = IPv4Address(found[RTA_GATEWAY]) if RTA_GATEWAY in found else None
    oif = _U32.unpack(found[RTA_OIF])[0] if RTA_OIF in found else None
    table = _U32.unpack(found[RTA_TABLE])[0] if RTA_TABLE in found else fields[4]
    return Route(IPv4Network((dst, fields[1])), gateway, oif, table)


# --- the socket ------------------------------------------------------------------------------


class Rtnl:
    """One rtnetlink socket, bound to the network namespace of the thread that opened it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, requests: Iterable[Request], extra_flags: int) -> int:
        chunks = []
        first = self.seq + 1
        for req in requests:
            self.seq += 1
            flags = NLM_F_REQUEST | extra_flags | req.flags
            chunks.append(_HDR.pack(_HDR.size + len(req.body), req.type, flags, self.seq, 0) + req.body)
        self.sock.send(b"".join(chunks))
        return first

    def _messages(self) -> Iterator[tuple[int, int, bytes]]:
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + _HDR.size <= len(data):
                size, kind, _flags, seq, _pid = _HDR.unpack_from(data, offset)
                yield kind, seq, data[offset + _HDR.size:offset + size]
                offset += (size + 3) & ~3

    @staticmethod
    def _error(body: bytes) -> tuple[int, str]:
        err = -_ERR.unpack_from(body)[0]
        # With NETLINK_CAP_ACK the request is not echoed: extended-ack attributes follow the
        # copy of its header.
        detail = text(attrs(body, _ERR.size + _HDR.size).get(NLMSGERR_ATTR_MSG)) or ""
        return err, detail

    def batch(self, requests: list[Request]) -> None:
        """Send all requests at once; the kernel runs them in order. Raise the first failure."""
        if not requests:
            return
        first = self._send(requests, NLM_F_ACK)
        pending = len(requests)
        failure: NetlinkError | None = None
        for kind, seq, body in self._messages():
            if kind != NLMSG_ERROR or not first <= seq < first + len(requests):
                continue
            err, detail = self._error(body)
            if err and failure is None:
                failure = NetlinkError(err, seq - first, detail)
            pending -= 1
            if not pending:
                break
        if failure is not None:
            raise failure

    def query(self, request: Request) -> list[bytes]:
        """The answer bodies of one get or dump request (empty when it does not exist)."""
        seq = self._send([request], 0)
        dump = request.flags & NLM_F_DUMP == NLM_F_DUMP
        out: list[bytes] = []
        for kind, got, body in self._messages():
            if got != seq:
                continue
            if kind == NLMSG_DONE:
                break
            if kind == NLMSG_ERROR:
                err, detail = self._error(body)
                if err in (errno.ENODEV, errno.ENOENT):
                    break
                if err:
                    raise NetlinkError(err, 0, detail)
                break
            out.append(body)
            if not dump:
                break
        return out

    def link(self, index: int = 0, name: str | None = None) -> tuple[int, dict[int, bytes]] | None:
        found = self.query(link_get(index, name))
        return link_info(found[0]) if found else None
