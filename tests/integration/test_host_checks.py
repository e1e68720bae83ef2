"""The host-untouched check itself: it must see a real change and ignore what moves on its own
on a DHCP host (lease countdowns), or it fails on every laptop, cloud VM and CI runner."""
from __future__ import annotations

import subprocess

from .conftest import host_snapshot, wait_for


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True)


def test_lease_countdowns_are_not_a_change_but_a_new_address_is(scratch_netns):
    ns = scratch_netns
    # No IPv6 here: its link-local addresses and routes would appear (and leave DAD's tentative
    # state) on their own while the test runs; the test is about DHCP's IPv4 leases.
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1"], capture_output=True)
    ip(ns, "link", "add", "dhcp0", "type", "veth", "peer", "name", "peer0")  # this kernel has no dummy
    ip(ns, "link", "set", "peer0", "up")
    ip(ns, "link", "set", "dhcp0", "up")
    # As a DHCP client leaves it: an address with a finite lifetime, counting down.
    ip(ns, "addr", "add", "192.0.2.10/24", "dev", "dhcp0", "valid_lft", "3600", "preferred_lft", "3600")
    ip(ns, "route", "add", "198.51.100.0/24", "via", "192.0.2.1", "proto", "dhcp")
    before = host_snapshot(ns)
    lft = lambda: subprocess.run(["ip", "-n", ns, "-o", "addr", "show", "dhcp0"],  # noqa: E731
                                 capture_output=True, text=True).stdout
    first = lft()
    wait_for(lambda: lft() != first, "the lease countdown to tick", timeout=5)
    assert host_snapshot(ns) == before

    ip(ns, "addr", "add", "192.0.2.11/24", "dev", "dhcp0")
    after = host_snapshot(ns)
    assert after["addrs"] != before["addrs"]
    assert {k for k in before if before[k] != after[k]} == {"addrs", "routes"}  # + its local route
