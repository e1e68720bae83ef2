"""kube-proxy's userspace proxies in every node's namespace, run by the supervisor's loop.

In a lab in userspace mode (proxy/userspace.py renders its rules), every node listens on every
service port's proxy port (0.0.0.0, TCP or UDP) and pumps each connection or UDP client to a
backend (servers/userspace.py), chosen by the node's own round-robin chooser
(proxy/roundrobin.py: one per node, as each node ran its kube-proxy). `update` is called with
every new view of the supervisor (the plan with the pods not ready left out, as the rules are
made): it opens and closes proxy ports as Services come and go and gives the choosers the ready
endpoints, so a scale, a deleted pod or a failing readiness probe changes the backends at once
(the rules do not change: they name the proxy ports only). A lab in another mode has none.
A port a node cannot bind is logged and tried again at the next update. SCTP ports are not
proxied (the userspace proxier never did SCTP).

The proxier bound port 0 and took what the kernel gave; here the ports are fixed by the rules
(proxy/userspace.proxy_ports), in the ephemeral range, so each node reserves them
(net.ipv4.ip_local_reserved_ports, in the node's namespace): the node's own outgoing connections,
the proxies' among them, never take one before its proxy binds it. Cleared when the mode goes.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from ..kernel.nsenter import bound_socket, in_netns, netns_path, socket_in
from ..model.objects import Plan
from ..proxy import userspace
from ..proxy.roundrobin import RoundRobin
from ..servers.base import Served
from ..servers.userspace import UdpProxy, serve_tcp

log = logging.getLogger("kubenet-lab.supervisor")

Node = tuple[str, int]  # (node netns, its inode: a namespace made anew is another one)
Key = tuple[str, int, str, int]  # (netns, inode, protocol, proxy port)
TYPES = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}


RESERVED = "/proc/sys/net/ipv4/ip_local_reserved_ports"


def _reserve(netns: str, ports: set[int]) -> None:
    """The node's reserved ports are `ports` (written from inside it: /proc/sys/net shows the
    namespace of the thread that opens it)."""
    with in_netns(netns):
        f = open(RESERVED, "w")
    with f:
        f.write(",".join(str(p) for p in sorted(ports)) + "\n")


class NodeProxies:
    def __init__(self, lab: str):
        self.lab = lab
        self.choosers: dict[Node, RoundRobin] = {}
        self.open: dict[Key, tuple[str, Served | UdpProxy, socket.socket]] = {}  # -> (service port key, server, socket)
        self._failed: set[Key] = set()
        self.reserved: dict[Node, frozenset[int]] = {}  # what each node's ip_local_reserved_ports holds

    def update(self, view: Plan | None) -> None:
        """Listen and choose as `view` says (None, or another mode: close everything)."""
        want: dict[Key, str] = {}
        choosers: dict[Node, RoundRobin] = {}
        if view is not None and view.cluster.kube_proxy_mode == "userspace":
            ports = [p for p in userspace.proxied(view) if p[1] in TYPES]
            now = time.monotonic()
            for node in view.nodes:
                try:
                    node_key = (node.netns, os.stat(netns_path(node.netns)).st_ino)
                except OSError:  # the node's namespace is not there (yet)
                    continue
                chooser = choosers[node_key] = self.choosers.get(node_key) or RoundRobin()
                for key, proto, proxy_port, svc, port in ports:
                    chooser.set_service(key, svc.session_affinity, svc.affinity_timeout)
                    if chooser.set_endpoints(key, userspace.backends(port)):
                        log.info("userspace proxy %s %s: backends %s", node.name, key, chooser.endpoints(key))
                    chooser.forget_stale(key, now)
                    if chooser.endpoints(key):  # without backends its port is closed: connections are refused
                        want[(*node_key, proto, proxy_port)] = key
                for gone in set(chooser.services()) - {p[0] for p in ports}:
                    chooser.delete_service(gone)
        self.choosers = choosers
        self._reserve_all(view)
        for key in [k for k, (svc, *_) in self.open.items() if want.get(k) != svc]:
            self._close(key)
        for key, svc in want.items():
            if key not in self.open:
                self._listen(key, svc)

    def _reserve_all(self, view: Plan | None) -> None:
        ports: dict[Node, frozenset[int]] = {}
        if view is not None and view.cluster.kube_proxy_mode == "userspace":
            every = frozenset(p[2] for p in userspace.proxied(view))  # with or without backends
            ports = {node: every for node in self.choosers}
        for node in set(ports) | set(self.reserved):
            if node not in ports and node[0] in {n for n, _ in ports}:
                self.reserved.pop(node)  # a namespace made anew under its name: not the one to clear
                continue
            new = ports.get(node, frozenset())
            if self.reserved.get(node, frozenset()) == new:
                continue
            try:
                _reserve(node[0], set(new))
            except OSError as e:  # the namespace went, or a kernel without the sysctl
                if new:
                    log.warning("userspace proxy: cannot reserve the proxy ports in %s: %s", node[0], e)
                self.reserved.pop(node, None)
                continue
            if new:
                self.reserved[node] = new
            else:
                self.reserved.pop(node, None)

    def _choose(self, node: Node, svc: str):
        def choose(client: str, reset: bool) -> str:
            chooser = self.choosers.get(node)
            if chooser is None:
                raise LookupError(svc)
            return chooser.next(svc, client, time.monotonic(), reset)
        return choose

    def _listen(self, key: Key, svc: str) -> None:
        netns, inode, proto, port = key
        try:
            sock = bound_socket(netns, TYPES[proto], port)
        except OSError as e:
            if key not in self._failed:
                self._failed.add(key)
                log.warning("userspace proxy: cannot listen on %s port %d in %s for %s: %s", proto, port, netns,
                            svc, e)
            return
        self._failed.discard(key)
        choose, new_socket = self._choose((netns, inode), svc), lambda type_: socket_in(netns, type_)
        logger = lambda line: log.info("userspace proxy %s %s: %s", netns, svc, line)  # noqa: E731
        if proto == "udp":
            self.open[key] = (svc, UdpProxy(sock, choose, new_socket, userspace.UDP_IDLE_TIMEOUT, logger), sock)
        else:
            served = Served()
            self.open[key] = (svc, served, sock)
            served.track(asyncio.ensure_future(serve_tcp(sock, choose, new_socket, served, logger)))

    def _close(self, key: Key) -> None:
        _, what, sock = self.open.pop(key)
        what.close()
        sock.close()  # a listener whose server had not started yet

    def close(self) -> None:
        for key in list(self.open):
            self._close(key)
        self.choosers = {}
        self._reserve_all(None)
