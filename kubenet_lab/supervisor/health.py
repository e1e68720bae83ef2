"""kube-proxy's health servers in every node's namespace, run by the supervisor's loop.

On every node: the node's health port (10256: `/healthz`, `/livez`) and, for every Service
kube-proxy serves a health check for (proxy.healthcheck), a listener on its healthCheckNodePort
on all the node's addresses, as kube-proxy listens with the default nodePortAddresses. The
answers follow the supervisor's view (the plan with the pods not ready left out, as the rules
are made): `update` is called with every new view, opens and closes listeners as Services come
and go, and changes the counts the open ones answer with, so a scale, a deleted pod or a failing
readiness probe shows at the health check port as it shows in the rules. A port a node cannot
bind (a hostNetwork pod holds it) is logged and recorded as kube-proxy's
FailedToStartServiceHealthcheck event, and tried again at the next update.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from ..fabric import events
from ..kernel.nsenter import bound_socket, netns_path
from ..model.objects import Event, Plan
from ..proxy.healthcheck import NODE_HEALTHZ_PORT, ServiceHealth, service_health
from ..servers import kubeproxy
from ..servers.base import Served
from ..servers.http import Request, Response, serve_http

log = logging.getLogger("kubenet-lab.supervisor")

# (node netns, its inode: a namespace made anew is another one, port)
Key = tuple[str, int, int]


class NodeHealthServers:
    def __init__(self, lab: str):
        self.lab = lab
        self.open: dict[Key, tuple[Served, socket.socket]] = {}
        self.answers: dict[Key, ServiceHealth | None] = {}  # None: the node's own health port
        self.updated_ns = time.time_ns()
        self._failed: set[tuple[str, int, str]] = set()  # (node, port, service) already reported

    def _answer(self, key: Key, req: Request) -> Response:
        if key not in self.answers:  # closed meanwhile (kube-proxy answers nothing then)
            return Response(abort=True)
        health = self.answers[key]
        if health is None:
            return kubeproxy.proxy_health(req, self.updated_ns)
        return kubeproxy.service_health(health.namespace, health.name, health.local_endpoints)

    def update(self, view: Plan | None) -> None:
        """Listen and answer as `view` says (None: close everything)."""
        self.updated_ns = time.time_ns()
        want: dict[Key, ServiceHealth | None] = {}
        node_of: dict[Key, str] = {}
        for node in view.nodes if view is not None else ():
            try:
                inode = os.stat(netns_path(node.netns)).st_ino
            except OSError:  # the node's namespace is not there (yet): nothing to listen in
                continue
            for health in (None, *service_health(view, node.name)):
                key = (node.netns, inode, NODE_HEALTHZ_PORT if health is None else health.port)
                want[key], node_of[key] = health, node.name
        for key in [k for k in self.open if k not in want]:
            self._close(key)
        self.answers = want
        for key, health in want.items():
            if key not in self.open:
                self._listen(key, node_of[key], health)

    def _listen(self, key: Key, node: str, health: ServiceHealth | None) -> None:
        netns, _, port = key
        try:
            sock = bound_socket(netns, socket.SOCK_STREAM, port)
        except OSError as e:
            what = "healthz" if health is None else f"{health.namespace}/{health.name}"
            if (node, port, what) not in self._failed:
                self._failed.add((node, port, what))
                log.warning("node %s failed to start healthcheck %s on port %d: %s", node, what, port, e)
                if health is not None:
                    events.record(self.lab, [Event(
                        health.namespace, "Service", health.name, "FailedToStartServiceHealthcheck",
                        f"node {node} failed to start healthcheck \"{what}\" on port {port}: "
                        f"listen tcp 0.0.0.0:{port}: bind: {os.strerror(e.errno or 0).lower()}",
                        type="Warning", source="kube-proxy", host=node)])
            return
        served = Served()
        self.open[key] = (served, sock)
        served.track(asyncio.ensure_future(serve_http(sock, lambda req: self._answer(key, req), served)))

    def _close(self, key: Key) -> None:
        served, sock = self.open.pop(key)
        served.close()
        sock.close()

    def close(self) -> None:
        for key in list(self.open):
            self._close(key)
        self.answers = {}
