"""Conntrack cleanup over ctnetlink, in a namespace of the test's own: only the UDP flows NATed
to a removed endpoint go."""
from __future__ import annotations

import subprocess
from ipaddress import IPv4Address

from kubenet_lab.kernel import conntrack

SEND = """
import socket, sys
for dst, port, sport in [("10.9.9.9", 53, 40001), ("10.9.9.9", 53, 40002), ("10.9.9.8", 53, 40003),
                         ("10.1.1.1", 99, 40004)]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.1.1.1", sport))
    s.sendto(b"x", (dst, port))
    s.close()
"""


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def test_only_udp_flows_natted_to_the_removed_endpoint_are_forgotten(scratch_netns):
    ns = scratch_netns
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    for addr in ("10.1.1.1/32", "10.1.1.2/32", "10.1.1.3/32"):
        sh("ip", "-n", ns, "addr", "add", addr, "dev", "lo")
    sh("ip", "-n", ns, "route", "add", "10.9.9.0/24", "dev", "lo")
    sh("ip", "netns", "exec", ns, "nft",
       "add table ip t; add chain ip t o { type nat hook output priority -100; }; "
       "add rule ip t o ip daddr 10.9.9.9 udp dport 53 dnat to 10.1.1.2:5353; "
       "add rule ip t o ip daddr 10.9.9.8 udp dport 53 dnat to 10.1.1.3:5353")
    sh("ip", "netns", "exec", ns, "python3", "-c", SEND)

    with conntrack.open_in(ns) as sock:
        before = {(f.sport, f.reply_src) for f in conntrack.flows(sock) if f.proto == conntrack.UDP}
    assert before >= {(40001, IPv4Address("10.1.1.2")), (40002, IPv4Address("10.1.1.2")),
                      (40003, IPv4Address("10.1.1.3")), (40004, IPv4Address("10.1.1.1"))}

    # 10.1.1.1 answers its own flow (no NAT): it is not an endpoint's flow and stays.
    gone = conntrack.forget_nat_flows_to(ns, [IPv4Address("10.1.1.2"), IPv4Address("10.1.1.1")])
    assert sorted(f.sport for f in gone) == [40001, 40002]
    with conntrack.open_in(ns) as sock:
        after = {(f.sport, f.reply_src) for f in conntrack.flows(sock) if f.proto == conntrack.UDP}
    assert after == before - {(40001, IPv4Address("10.1.1.2")), (40002, IPv4Address("10.1.1.2"))}
    assert conntrack.forget_nat_flows_to(ns, [IPv4Address("10.1.1.2")]) == []  # nothing left: fine
