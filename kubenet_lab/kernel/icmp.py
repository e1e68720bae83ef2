"""ICMP echo on the wire (pure): the request a ping sends and what comes back to a raw socket.

A raw ICMP socket receives every ICMP packet of its namespace, IP header included; `parse`
tells an echo reply from an error about one of our echoes (destination unreachable, time
exceeded), whose body carries our request's IP header and first 8 bytes (its id and sequence),
and names the address that sent it: the hop that gave up on the packet.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

ECHO_REPLY, UNREACHABLE, ECHO_REQUEST, TIME_EXCEEDED = 0, 3, 8, 11
UNREACHABLE_CODES = {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable",
                     3: "port unreachable", 4: "fragmentation needed", 9: "network administratively prohibited",
                     10: "host administratively prohibited", 13: "communication administratively prohibited"}


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes = b"kubenet-lab check") -> bytes:
    head = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident & 0xFFFF, seq & 0xFFFF)
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, checksum(head + payload), ident & 0xFFFF, seq & 0xFFFF) + payload


@dataclass(frozen=True)
class Received:
    kind: str  # "reply" or "error"
    ident: int
    seq: int
    sender: str  # the address the ICMP packet came from
    dst: str     # the address our echo was sent to
    problem: str = ""  # for errors: "host unreachable", "time exceeded", ...


def parse(packet: bytes) -> Received | None:
    """An IPv4 packet with an ICMP message, as a raw socket reads it; None if it is neither an
    echo reply nor an error about an echo request."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    sender = str(IPv4Address(packet[12:16]))
    icmp = packet[ihl:]
    if len(icmp) < 8:
        return None
    kind, code = icmp[0], icmp[1]
    if kind == ECHO_REPLY:
        ident, seq = struct.unpack("!HH", icmp[4:8])
        return Received("reply", ident, seq, sender, sender)
    if kind in (UNREACHABLE, TIME_EXCEEDED):
        inner = icmp[8:]
        if len(inner) < 28 or inner[0] >> 4 != 4:
            return None
        inner_ihl = (inner[0] & 0x0F) * 4
        echo = inner[inner_ihl:inner_ihl + 8]
        if len(echo) < 8 or echo[0] != ECHO_REQUEST:
            return None
        ident, seq = struct.unpack("!HH", echo[4:8])
        problem = ("time exceeded" if kind == TIME_EXCEEDED
                   else UNREACHABLE_CODES.get(code, f"destination unreachable (code {code})"))
        return Received("error", ident, seq, sender, str(IPv4Address(inner[16:20])), problem)
    return None
