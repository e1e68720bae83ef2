"""`port-forward`: local ports on this machine's loopback relayed into one pod, as kubectl does it.

What TYPE/NAME and the ports mean is plan.portforward's (pure). Here: looking at the running lab
(waiting, as kubectl does, for a Service or controller to have a pod), then the session. It
listens in this machine's namespace (nothing else changes on the host) and, like kubelet's
runtime (containerd's portForward), connects each accepted connection to localhost:REMOTE inside
the pod's network namespace, IPv4 first, then IPv6; kernel.relay pumps the bytes.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from typing import Callable, Mapping, Sequence

from ..errors import LabError
from ..kernel import netns as netns_names
from ..kernel import relay
from ..kernel.nsenter import netns_path
from ..model.objects import Plan, PlannedPod
from ..plan.podstatus import PodStatus
from ..plan.portforward import (Forward, Listen, NotFound, Resolved, check_specs, join_host_port, parse_addresses,
                                parse_duration, parse_target, resolve_in)

__all__ = ["LostPod", "NotFound", "Session", "parse_addresses", "parse_duration", "resolve", "run"]


class LostPod(LabError):
    """The pod went away while forwarding: kubectl's `lost connection to pod`."""


Snapshot = Callable[[], tuple[Plan, Mapping[str, PodStatus]]]


def resolve(snapshot: Snapshot, target_text: str, namespace: str, specs: Sequence[str],
            timeout: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> Resolved:
    """The pod and port pairs of `port-forward TARGET PORTS...` on the lab `snapshot` shows,
    waiting up to `timeout` (--pod-running-timeout) for a Service or controller to have a pod."""
    check_specs(specs)
    target = parse_target(target_text)
    deadline = time.monotonic() + timeout
    while True:
        plan, states = snapshot()
        resolved = resolve_in(plan, states, target, namespace, specs)
        if resolved is not None:
            return resolved
        if time.monotonic() >= deadline:
            raise LabError("timed out waiting for the condition")
        sleep(0.5)


# --------------------------------------------------------------------------------------------
# The session
# --------------------------------------------------------------------------------------------

def _go_error(e: OSError) -> str:
    """An OSError as Go's net package words it: `connection refused`, `address already in use`."""
    return (os.strerror(e.errno) if e.errno else str(e)).lower()


def _klog_error(message: str) -> str:
    """A runtime.HandleError line as kubectl's klog writes it."""
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
    return f"E{stamp} {os.getpid():>7} portforward.go:424] {message}"


class Session:
    """Listeners on loopback, each accepted connection relayed to localhost:REMOTE inside the
    pod's network namespace. `out`/`err` take one line each (kubectl's stdout/stderr lines)."""

    def __init__(self, pod: PlannedPod, forwards: Sequence[Forward], addresses: Sequence[Listen],
                 out: Callable[[str], None], err: Callable[[str], None]):
        self.pod = pod
        self.forwards = [Forward(f.local, f.remote) for f in forwards]
        self.addresses = list(addresses)
        self.out, self.err = out, err
        self.identity = netns_names.identity(pod.netns)
        self.listeners: list[socket.socket] = []
        self.connections: set[asyncio.Task] = set()

    def listen(self) -> list[tuple[socket.socket, Forward]]:
        """Bind every port on every address as kubectl does; a port none of whose listeners
        could be made is reported; no port at all is an error."""
        bound: list[tuple[socket.socket, Forward]] = []
        for i, fwd in enumerate(self.forwards):
            errors, fails, successes = [], {"all": 0, "any": 0}, {"all": 0, "any": 0}
            mine = []
            for a in self.addresses:
                try:
                    sock = socket.socket(a.family, socket.SOCK_STREAM)
                    if a.family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        sock.bind((a.address, fwd.local))
                        sock.listen(128)
                    except OSError:
                        sock.close()
                        raise
                except OSError as e:
                    proto = "tcp6" if a.family == socket.AF_INET6 else "tcp4"
                    errors.append(f"unable to create listener: Error listen {proto} "
                                  f"{join_host_port(a.address, fwd.local)}: bind: {_go_error(e)}")
                    fails[a.failure_mode] += 1
                    continue
                successes[a.failure_mode] += 1
                fwd = self.forwards[i] = Forward(sock.getsockname()[1], fwd.remote)  # the random port, kept
                self.out(f"Forwarding from {join_host_port(a.address, fwd.local)} -> {fwd.remote}")
                mine.append(sock)
            if (successes["all"] == 0 and fails["all"] > 0) or fails["any"] > 0:
                for s in mine:
                    s.close()
                self.err(f"Unable to listen on port {fwd.local}: Listeners failed to create with the following "
                         f"errors: [{' '.join(errors)}]")
                continue
            bound += [(s, fwd) for s in mine]
        if not bound:
            pairs = " ".join(f"{{{f.local} {f.remote}}}" for f in self.forwards)
            raise LabError(f"unable to listen on any of the requested ports: [{pairs}]")
        self.listeners = [s for s, _ in bound]
        return bound

    async def _connection(self, reader, writer, fwd: Forward) -> None:
        self.out(f"Handling connection for {fwd.local}")
        task = asyncio.current_task()
        self.connections.add(task)
        try:
            try:
                inside = await self._dial(fwd)
            except (OSError, LostPod) as e:
                self.err(_klog_error(f"an error occurred forwarding {fwd.local} -> {fwd.remote}: error forwarding "
                                     f"port {fwd.remote} to pod {self.pod.uid}, uid : {e}"))
                writer.close()
                return
            pod_side = await asyncio.open_connection(sock=inside)
            await relay.pump((reader, writer), pod_side)
        except asyncio.CancelledError:  # the session ends: the connection is cut (pump closed both sides)
            writer.close()
        finally:
            self.connections.discard(task)

    async def _dial(self, fwd: Forward) -> socket.socket:
        """containerd's portForward: localhost:PORT inside the pod's namespace, tcp4 then tcp6."""
        if netns_names.identity(self.pod.netns) != self.identity:
            raise LostPod(f'failed to execute portforward in network namespace "{netns_path(self.pod.netns)}": '
                          "no such namespace")
        try:
            return await relay.connect_in_netns(self.pod.netns, "127.0.0.1", fwd.remote)
        except OSError as e4:
            v4 = f"dial tcp4 127.0.0.1:{fwd.remote}: connect: {_go_error(e4)}"
            try:
                return await relay.connect_in_netns(self.pod.netns, "::1", fwd.remote)
            except OSError as e6:
                v6 = f"dial tcp6 [::1]:{fwd.remote}: connect: {_go_error(e6)}"
                raise OSError(f'failed to execute portforward in network namespace "{netns_path(self.pod.netns)}": '
                              f'failed to connect to localhost:{fwd.remote} inside namespace "{self.pod.uid}", '
                              f"IPv4: {v4} IPv6 {v6} ") from None

    async def serve(self, bound: list[tuple[socket.socket, Forward]], check_every: float = 0.5) -> None:
        """Serve until SIGINT/SIGTERM (returns) or the pod's namespace goes away (LostPod)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        servers = []
        try:
            for sock, fwd in bound:
                servers.append(await asyncio.start_server(
                    lambda r, w, fwd=fwd: self._connection(r, w, fwd), sock=sock))
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), check_every)
                if netns_names.identity(self.pod.netns) != self.identity:
                    raise LostPod("lost connection to pod")
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            for s in servers:
                s.close()
            for t in list(self.connections):
                t.cancel()
            await asyncio.gather(*self.connections, return_exceptions=True)
            for s in self.listeners:
                s.close()


def run(resolved: Resolved, addresses: Sequence[Listen], out: Callable[[str], None],
        err: Callable[[str], None]) -> None:
    """Forward until interrupted (returns) or the pod is gone (LostPod)."""
    session = Session(resolved.pod, resolved.forwards, addresses, out, err)
    bound = session.listen()
    try:
        asyncio.run(session.serve(bound))
    finally:
        for s in session.listeners:
            s.close()
