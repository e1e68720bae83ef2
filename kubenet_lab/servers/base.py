"""What every built-in server is given: who it is and how to reach the world from its pod.

The servers never enter namespaces themselves: they receive sockets already bound inside the
pod's network namespace, and a `ServerContext` whose factories create outgoing sockets and child
processes there. So the same code serves a pod in the supervisor and a loopback socket in a
unit test.
"""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Awaitable


def _default_socket(family: int, type_: int) -> socket.socket:
    return socket.socket(family, type_)


async def _default_resolve(host: str) -> str:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, family=socket.AF_INET,
                                                        type=socket.SOCK_STREAM)
    return infos[0][4][0]


@dataclass
class ServerContext:
    """One container's view of its pod.

    `log` appends a raw line to the container's log; `socket` makes an outgoing socket in the
    pod's network namespace; `resolve` resolves a name as the pod would (its hosts file and DNS);
    `spawn(argv)` says how a child process of the container starts, confined as the container
    is, with its environment (a kernel.confine.Launch: argv, kwargs() for the spawn, close());
    `exit` asks the supervisor to end
    the container with a code (agnhost /exit), which then restarts it like a kubelet would."""

    hostname: str
    log: Callable[[str], None] = lambda line: None
    socket: Callable[[int, int], socket.socket] = _default_socket
    resolve: Callable[[str], Awaitable[str]] = _default_resolve
    spawn: Callable[[list[str]], Any] | None = None
    exit: Callable[[int], None] = lambda code: None
    started: float = field(default_factory=time.monotonic)

    def golog(self, msg: str) -> None:
        """A line as Go's `log.Printf` writes it (agnhost's format)."""
        self.log(f"{datetime.now():%Y/%m/%d %H:%M:%S} {msg.rstrip(chr(10))}")


class Served:
    """The running parts of one server: listeners, datagram endpoints and live connections.

    close() ends all of them at once, so nothing of a removed pod keeps its namespace alive."""

    def __init__(self) -> None:
        self.servers: list[asyncio.AbstractServer] = []
        self.transports: list[asyncio.BaseTransport] = []
        self.tasks: set[asyncio.Task] = set()
        # What the program does on SIGTERM before it exits: the seconds it keeps serving.
        self.terminate: Callable[[], float] | None = None

    def track(self, task: asyncio.Task) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        for s in self.servers:
            s.close()
        for t in self.transports:
            t.close()
        for task in list(self.tasks):
            task.cancel()
        self.servers.clear()
        self.transports.clear()


def go_json(obj: Any) -> str:
    """json.Marshal's output: sorted keys, compact, HTML characters escaped."""
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def go_quote(s: str) -> str:
    """Close enough to Go's %q for the error messages agnhost writes."""
    return json.dumps(s, ensure_ascii=False)


def go_now(started: float) -> str:
    """time.Now().String(): local time with nanoseconds, zone, and the monotonic reading."""
    ns = time.time_ns()
    dt = datetime.fromtimestamp(ns // 1_000_000_000).astimezone()
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    frac = f".{frac}" if frac else ""
    return (f"{dt:%Y-%m-%d %H:%M:%S}{frac} {dt:%z} {dt.tzname()} "
            f"m=+{time.monotonic() - started:.9f}")


def go_exit_error(returncode: int) -> str | None:
    """exec.ExitError's text for a finished child: "exit status 1", "signal: killed"."""
    if returncode == 0:
        return None
    if returncode < 0:
        name = signal.strsignal(-returncode) or f"signal {-returncode}"
        return f"signal: {name.lower()}"
    return f"exit status {returncode}"


def addr_str(addr: tuple) -> str:
    """A peer address as Go prints net.Addr: "ip:port", IPv6 in brackets."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
