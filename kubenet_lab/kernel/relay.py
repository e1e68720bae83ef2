"""Relaying a TCP connection into a network namespace: a socket opened inside the namespace
(it stays there after the thread returns) and the bytes pumped both ways with asyncio.

No lab knowledge: a namespace name and an address in, a connected pair pumped until both sides
are done. `kubenet-lab port-forward` is built on it.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket

from .nsenter import in_netns

CHUNK = 64 * 1024


async def connect_in_netns(netns: str, host: str, port: int) -> socket.socket:
    """A TCP socket connected to host:port from inside network namespace `netns`.

    Only the socket's creation needs the namespace (setns on this thread for a moment); the
    connect goes through the loop without blocking it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with in_netns(netns):
        sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _one_way(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():  # half-close: the peer sees the end, and may still answer
        with contextlib.suppress(OSError):
            writer.write_eof()


async def pump(a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
               b: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    """Copy a -> b and b -> a until both directions reached their end (a FIN is passed on as a
    FIN), or one of them failed (then both are cut). Both writers are closed afterwards."""
    (ra, wa), (rb, wb) = a, b
    tasks = [asyncio.ensure_future(_one_way(ra, wb)), asyncio.ensure_future(_one_way(rb, wa))]
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(t.exception() is not None for t in done):
                break
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in (wa, wb):
            w.close()
            with contextlib.suppress(OSError, ConnectionError):
                await w.wait_closed()
