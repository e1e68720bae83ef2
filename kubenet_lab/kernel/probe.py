"""Sending one probe from inside a network namespace and saying what happened (no lab knowledge).

Every socket is opened in the namespace by the calling thread (setns for a moment, see
nsenter.in_netns) and then driven by asyncio, so thousands of probes run at once from one thread
without a process each: a TCP exchange (connect, send, read the answer until the server closes),
a UDP exchange (one datagram, one answer) and an ICMP echo over a raw socket, whose error
messages name the hop that gave up on the packet.
"""
from __future__ import annotations

import asyncio
import errno
import itertools
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable

from . import icmp
from .nsenter import in_netns

MAX_ANSWER = 64 * 1024
_ids = itertools.count(os.getpid() & 0xFF00)


@dataclass(frozen=True)
class Outcome:
    reached: bool        # a connection made, a datagram or echo answered
    data: bytes = b""    # what came back
    error: str = ""      # "connection refused", "timed out after 1.0s", "host unreachable", ...
    hop: str = ""        # the address that reported the error (an ICMP error's sender), if known
    seconds: float = 0.0


IP_RECVERR = 11  # <linux/in.h>: queue ICMP errors on the socket, with the address that sent them
SO_EE_ORIGIN_ICMP = 2


def _socket(netns: str, family: int, type_: int, proto: int = 0) -> socket.socket:
    with in_netns(netns):
        sock = socket.socket(family, type_, proto)
    sock.setblocking(False)
    if type_ != socket.SOCK_RAW:
        sock.setsockopt(socket.SOL_IP, IP_RECVERR, 1)
    return sock


def _hop(sock: socket.socket) -> str:
    """The sender of the ICMP error queued on the socket (a REJECT's node, the router without a
    route), "" when none is queued (struct sock_extended_err, then the offender's sockaddr_in)."""
    try:
        _, ancillary, _, _ = sock.recvmsg(1, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except OSError:
        return ""
    for level, kind, data in ancillary:
        if level == socket.SOL_IP and kind == IP_RECVERR and len(data) >= 24 and data[4] == SO_EE_ORIGIN_ICMP:
            if struct.unpack("=H", data[16:18])[0] == socket.AF_INET:
                return socket.inet_ntoa(data[20:24])
    return ""


def _oserror(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else str(e)


async def stream(netns: str, ip: str, port: int, payload: bytes | None, timeout: float,
                 read: bool = True, complete: Callable[[bytes], bool] | None = None) -> Outcome:
    """Connect to ip:port over TCP, send `payload`, and read until the server closes or
    `complete` says the answer is whole (with `read` False: stop once connected)."""
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    sock = _socket(netns, socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (ip, port)), timeout)
        except asyncio.TimeoutError:
            return Outcome(False, error=f"timed out after {timeout:g}s", hop=_hop(sock),
                           seconds=time.monotonic() - start)
        except OSError as e:
            return Outcome(False, error=_oserror(e), hop=_hop(sock), seconds=time.monotonic() - start)
        if not read:
            return Outcome(True, seconds=time.monotonic() - start)
        data = b""
        try:
            if payload:
                await asyncio.wait_for(loop.sock_sendall(sock, payload), timeout)
            deadline = start + timeout
            while len(data) < MAX_ANSWER:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise asyncio.TimeoutError
                chunk = await asyncio.wait_for(loop.sock_recv(sock, MAX_ANSWER), left)
                if not chunk:
                    break
                data += chunk
                if complete is not None and complete(data):
                    break
        except asyncio.TimeoutError:
            return Outcome(True, data, error=f"no answer within {timeout:g}s", seconds=time.monotonic() - start)
        except OSError as e:
            return Outcome(True, data, error=_oserror(e), seconds=time.monotonic() - start)
        return Outcome(True, data, seconds=time.monotonic() - start)
    finally:
        sock.close()


async def datagram(netns: str, ip: str, port: int, payload: bytes, timeout: float) -> Outcome:
    """Send one UDP datagram and wait for one answer. A refusal (ICMP port unreachable) shows as
    "connection refused"; silence as a timeout."""
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    sock = _socket(netns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            sock.connect((ip, port))
            await loop.sock_sendall(sock, payload)
            data = await asyncio.wait_for(loop.sock_recv(sock, MAX_ANSWER), timeout)
        except asyncio.TimeoutError:
            return Outcome(False, error=f"no answer within {timeout:g}s", hop=_hop(sock),
                           seconds=time.monotonic() - start)
        except OSError as e:
            return Outcome(False, error=_oserror(e), hop=_hop(sock), seconds=time.monotonic() - start)
        return Outcome(True, data, seconds=time.monotonic() - start)
    finally:
        sock.close()


async def echo(netns: str, ip: str, timeout: float) -> Outcome:
    """One ICMP echo request to `ip` from a raw socket in `netns`: answered, or the error some
    hop sent back (its address in `hop`), or silence."""
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    ident, seq = next(_ids) & 0xFFFF, 1
    sock = _socket(netns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        try:
            await loop.sock_sendto(sock, icmp.echo_request(ident, seq), (ip, 0))
        except OSError as e:
            return Outcome(False, error=_oserror(e), seconds=time.monotonic() - start)
        deadline = start + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return Outcome(False, error=f"no echo reply within {timeout:g}s", seconds=time.monotonic() - start)
            try:
                packet = await asyncio.wait_for(loop.sock_recv(sock, 65535), left)
            except asyncio.TimeoutError:
                continue
            except OSError as e:
                if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                    return Outcome(False, error=_oserror(e), seconds=time.monotonic() - start)
                raise
            got = icmp.parse(packet)
            if got is None or got.ident != ident or got.seq != seq:
                continue
            if got.kind == "reply" and got.sender == ip:
                return Outcome(True, seconds=time.monotonic() - start)
            if got.kind == "error" and got.dst == ip:
                return Outcome(False, error=got.problem, hop=got.sender, seconds=time.monotonic() - start)
    finally:
        sock.close()
