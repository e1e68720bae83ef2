"""Name resolution as a process in the pod would see it, for agnhost's /dial to names.

The supervisor lives in the host's mount namespace, so getaddrinfo would read the host's
/etc/hosts and /etc/resolv.conf. This reads the pod's own files (their text, as its processes
see them) and asks the pod's nameserver from a socket inside the pod's network namespace, with
the search path and ndots of resolv.conf.
"""
from __future__ import annotations

import asyncio
import socket
from typing import Callable

QUERY_TIMEOUT = 2.0


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], int]:
    """(nameservers, search domains, ndots) of a resolv.conf."""
    servers: list[str] = []
    search: list[str] = []
    ndots = 1
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            for opt in words[1:]:
                if opt.startswith("ndots:") and opt[6:].isdigit():
                    ndots = int(opt[6:])
    return servers, search, ndots


def lookup_hosts(text: str, name: str) -> str | None:
    name = name.rstrip(".").lower()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) > 1 and name in (w.lower() for w in words[1:]) and "." in words[0]:
            return words[0]
    return None


def candidates(name: str, search: list[str], ndots: int) -> list[str]:
    if name.endswith("."):
        return [name]
    searched = [f"{name}.{domain}." for domain in search]
    return [name + "."] + searched if name.count(".") >= ndots else searched + [name + "."]


class PodResolver:
    """resolve(host) -> IPv4 address, from the pod's hosts file, then its DNS server.

    `resolv_conf` and `hosts` are the files' text ("" for none)."""

    def __init__(self, resolv_conf: str, hosts: str, make_socket: Callable[[int, int], socket.socket]):
        self.hosts = hosts
        self.servers, self.search, self.ndots = parse_resolv_conf(resolv_conf)
        self.make_socket = make_socket

    async def __call__(self, host: str) -> str:
        if (ip := lookup_hosts(self.hosts, host)) is not None:
            return ip
        servers, search, ndots = self.servers, self.search, self.ndots
        for name in candidates(host, search, ndots):
            for server in servers:
                ip = await self._query(server, name)
                if ip:
                    return ip
        raise LookupError(host)

    async def _query(self, server: str, name: str) -> str | None:
        from dnslib import QTYPE, DNSRecord

        loop = asyncio.get_running_loop()
        sock = self.make_socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect((server, 53))
            query = DNSRecord.question(name, "A")
            await loop.sock_sendall(sock, query.pack())
            reply = DNSRecord.parse(await asyncio.wait_for(loop.sock_recv(sock, 4096), QUERY_TIMEOUT))
        except Exception:  # unreachable, timed out or garbled: try the next one
            return None
        finally:
            sock.close()
        for rr in reply.rr:
            if rr.rtype == QTYPE.A:
                return str(rr.rdata)
        return None
