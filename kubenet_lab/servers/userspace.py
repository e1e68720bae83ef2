"""The socket pump of kube-proxy's userspace mode: one service port's proxy port on one node.

As the old proxier's proxysocket.go does it, over sockets it is given (bound in the node's
namespace by supervisor/userspace.py) and a factory of outgoing sockets in that namespace:
- TCP: every accepted connection asks `choose(client IP, reset)` for a backend ("ip:port") and
  dials it, trying again (the affinity reset, the next backend in turn) with the proxier's
  growing dial timeouts; then bytes are copied both ways, each direction's end passed on as a
  half close, until both ends are done.
- UDP: each client address gets its own socket to a backend chosen at its first datagram; the
  client's datagrams go out on it and the backend's replies go back from the proxy port to the
  client; a client whose socket saw no traffic for `idle_timeout` (kube-proxy's --udp-timeout,
  250 ms) is forgotten, and its next datagram chooses again.
A service port without backends refuses (TCP: the accepted connection is closed at once) or
drops (UDP), as the proxier did.
"""
from __future__ import annotations

import asyncio
import socket
import time
from typing import Callable

from .base import Served

Choose = Callable[[str, bool], str]  # (client IP, affinity reset) -> "ip:port"; LookupError: none
NewSocket = Callable[[int], socket.socket]  # socket type -> a socket in the node's namespace

DIAL_TIMEOUTS = (0.25, 0.5, 1.0, 2.0)  # the proxier's EndpointDialTimeouts
COPY_SIZE = 65536


def _address(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


async def serve_tcp(listener: socket.socket, choose: Choose, new_socket: NewSocket, served: Served,
                    log: Callable[[str], None] = lambda line: None) -> None:
    """Proxy every connection accepted on `listener` (bound and listening)."""
    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            served.track(task)
        client = writer.get_extra_info("peername")[0]
        backend = await _dial(client, choose, new_socket, log)
        if backend is None:
            writer.close()
            return
        b_reader, b_writer = backend
        try:
            await asyncio.gather(_copy(reader, b_writer), _copy(b_reader, writer))
        finally:
            b_writer.close()
            writer.close()

    served.servers.append(await asyncio.start_server(connected, sock=listener))


async def _dial(client: str, choose: Choose, new_socket: NewSocket, log: Callable[[str], None]
                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    loop = asyncio.get_running_loop()
    for attempt, timeout in enumerate(DIAL_TIMEOUTS):
        try:
            endpoint = choose(client, attempt > 0)
        except LookupError:
            log(f"no backend for a connection from {client}")
            return None
        sock = new_socket(socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, _address(endpoint))
        except (OSError, TimeoutError) as e:
            sock.close()
            log(f"dial {endpoint} for {client} failed: {e or 'timeout'}")
            continue
        return await asyncio.open_connection(sock=sock)
    return None


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(COPY_SIZE):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        writer.close()


class UdpProxy:
    """One UDP proxy port: a socket per client address, kept while it has traffic."""

    def __init__(self, sock: socket.socket, choose: Choose, new_socket: NewSocket, idle_timeout: float,
                 log: Callable[[str], None] = lambda line: None):
        self.sock, self.choose, self.new_socket, self.idle, self.log = sock, choose, new_socket, idle_timeout, log
        self.clients: dict[tuple[str, int], tuple[socket.socket, float]] = {}  # -> (its socket, last traffic)
        self.loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self.loop.add_reader(sock, self._from_clients)
        self._sweep: asyncio.TimerHandle | None = None

    def _from_clients(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(COPY_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error queued on the socket
            entry = self.clients.get(addr)
            if entry is None:
                backend = self._open(addr)
                if backend is None:
                    continue
            else:
                backend = entry[0]
            self.clients[addr] = (backend, time.monotonic())
            self._schedule()
            try:
                backend.send(data)
            except OSError as e:
                self.log(f"send to backend for {addr[0]}:{addr[1]} failed: {e}")
                self._forget(addr)

    def _open(self, addr: tuple[str, int]) -> socket.socket | None:
        try:
            endpoint = self.choose(addr[0], False)
        except LookupError:
            return None
        backend = self.new_socket(socket.SOCK_DGRAM)
        backend.setblocking(False)
        try:
            backend.connect(_address(endpoint))
        except OSError as e:
            backend.close()
            self.log(f"connect to {endpoint} for {addr[0]}:{addr[1]} failed: {e}")
            return None
        self.loop.add_reader(backend, self._from_backend, addr, backend)
        return backend

    def _from_backend(self, addr: tuple[str, int], backend: socket.socket) -> None:
        while True:
            try:
                data = backend.recv(COPY_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the backend refused (ICMP port unreachable): this client chooses again
                self._forget(addr)
                return
            if self.clients.get(addr, (None,))[0] is not backend:
                return
            self.clients[addr] = (backend, time.monotonic())
            try:
                self.sock.sendto(data, addr)
            except OSError:
                pass

    def _schedule(self) -> None:
        if self._sweep is None and self.clients:
            self._sweep = self.loop.call_later(self.idle, self._expire)

    def _expire(self) -> None:
        self._sweep = None
        now = time.monotonic()
        for addr, (_, last) in list(self.clients.items()):
            if now - last >= self.idle:
                self._forget(addr)
        if self.clients:
            wait = min(last for _, last in self.clients.values()) + self.idle - now
            self._sweep = self.loop.call_later(max(wait, 0.01), self._expire)

    def _forget(self, addr: tuple[str, int]) -> None:
        entry = self.clients.pop(addr, None)
        if entry is not None:
            self.loop.remove_reader(entry[0])
            entry[0].close()

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for addr in list(self.clients):
            self._forget(addr)
        self.loop.remove_reader(self.sock)
        self.sock.close()
