"""A tiny Redis server for the redis images the lab emulates (the guestbooks' master and
replicas): Redis's protocol (RESP2, and the inline commands `redis-cli` and `nc` users type), an
in-memory key space per container, and the answers and errors worded as Redis 7 words them.

Commands: PING [message], ECHO message, SET key value [NX|XX] [EX seconds|PX milliseconds], GET,
DEL key..., EXISTS key..., INCR key, INFO [section...] (server and replication: `role:master`, or
`role:slave` with its master for a replica image), QUIT. Any other command gets Redis's
`-ERR unknown command ...`. A replica refuses writes as a read-only replica does; it does not
copy its master's data (nothing is replicated).
"""
from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import Callable

from .base import Served, ServerContext

MAX_LINE = 64 * 1024
MAX_BULK = 512 * 1024 * 1024  # Redis's proto-max-bulk-len
INT64 = (-(1 << 63), (1 << 63) - 1)
NOT_INTEGER = "ERR value is not an integer or out of range"
SYNTAX = "ERR syntax error"
READONLY = "READONLY You can't write against a read only replica."


class ProtocolError(Exception):
    pass


class Reply:
    """RESP2 encoders."""

    @staticmethod
    def simple(text: str) -> bytes:
        return b"+" + text.encode() + b"\r\n"

    @staticmethod
    def error(text: str) -> bytes:
        return b"-" + text.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"

    @staticmethod
    def integer(n: int) -> bytes:
        return b":%d\r\n" % n

    @staticmethod
    def bulk(data: bytes | None) -> bytes:
        return b"$-1\r\n" if data is None else b"$%d\r\n%s\r\n" % (len(data), data)


@dataclass
class Redis:
    """One server's key space and role. `replica_of`: (host, port) of the master of a replica."""

    port: int = 6379
    replica_of: tuple[str, int] | None = None
    data: dict[bytes, tuple[bytes, float | None]] = field(default_factory=dict)  # key -> (value, expires at)
    clock: Callable[[], float] = time.monotonic

    # name -> (arity as Redis declares it: n exact, -n at least n, counting the name; writes)
    COMMANDS = {"ping": (-1, False), "echo": (2, False), "set": (-3, True), "get": (2, False), "del": (-2, True),
                "exists": (-2, False), "incr": (2, True), "info": (-1, False), "quit": (-1, False)}

    def execute(self, argv: list[bytes]) -> tuple[bytes, bool]:
        """The reply to one command, and whether the connection then closes (QUIT)."""
        name = argv[0].decode("utf-8", "replace")
        spec = self.COMMANDS.get(name.lower())
        if spec is None:
            args = ""
            for arg in argv[1:]:
                if len(args) >= 128:
                    break
                args += "'" + arg.decode("utf-8", "replace")[:128 - len(args)] + "' "
            return Reply.error(f"ERR unknown command '{name[:128]}', with args beginning with: {args}"), False
        arity, writes = spec
        if (arity > 0 and len(argv) != arity) or len(argv) < -arity:
            return Reply.error(f"ERR wrong number of arguments for '{name.lower()}' command"), False
        if writes and self.replica_of is not None:
            return Reply.error(READONLY), False
        if name.lower() == "quit":
            return Reply.simple("OK"), True
        return getattr(self, "_" + name.lower())(argv[1:]), False

    def _live(self, key: bytes) -> bytes | None:
        entry = self.data.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= self.clock():
            del self.data[key]
            return None
        return value

    def _ping(self, args: list[bytes]) -> bytes:
        if len(args) > 1:
            return Reply.error("ERR wrong number of arguments for 'ping' command")
        return Reply.bulk(args[0]) if args else Reply.simple("PONG")

    def _echo(self, args: list[bytes]) -> bytes:
        return Reply.bulk(args[0])

    def _get(self, args: list[bytes]) -> bytes:
        return Reply.bulk(self._live(args[0]))

    def _set(self, args: list[bytes]) -> bytes:
        key, value, options = args[0], args[1], [a.decode("utf-8", "replace").upper() for a in args[2:]]
        condition, ttl, i = None, None, 0
        while i < len(options):
            opt = options[i]
            if opt in ("NX", "XX") and condition in (None, opt):
                condition = opt
            elif opt in ("EX", "PX") and ttl is None and i + 1 < len(options):
                number = _int(args[2 + i + 1])
                if number is None:
                    return Reply.error(NOT_INTEGER)
                if number <= 0:
                    return Reply.error("ERR invalid expire time in 'set' command")
                ttl = number if opt == "EX" else number / 1000
                i += 1
            else:
                return Reply.error(SYNTAX)
            i += 1
        exists = self._live(key) is not None
        if (condition == "NX" and exists) or (condition == "XX" and not exists):
            return Reply.bulk(None)
        self.data[key] = (value, self.clock() + ttl if ttl is not None else None)
        return Reply.simple("OK")

    def _del(self, args: list[bytes]) -> bytes:
        gone = 0
        for key in args:
            if self._live(key) is not None:
                del self.data[key]
                gone += 1
        return Reply.integer(gone)

    def _exists(self, args: list[bytes]) -> bytes:
        return Reply.integer(sum(self._live(key) is not None for key in args))

    def _incr(self, args: list[bytes]) -> bytes:
        key = args[0]
        current = self._live(key)
        number = 0 if current is None else _int(current)
        if number is None:
            return Reply.error(NOT_INTEGER)
        if number == INT64[1]:
            return Reply.error("ERR increment or decrement would overflow")
        expires = self.data[key][1] if current is not None else None  # INCR keeps the key's TTL
        self.data[key] = (str(number + 1).encode(), expires)
        return Reply.integer(number + 1)

    def _info(self, args: list[bytes]) -> bytes:
        wanted = {a.decode("utf-8", "replace").lower() for a in args} or {"default"}
        sections = []
        if wanted & {"server", "default", "all", "everything"}:
            sections.append(f"# Server\r\nredis_mode:standalone\r\ntcp_port:{self.port}\r\n")
        if wanted & {"replication", "default", "all", "everything"}:
            if self.replica_of is None:
                sections.append("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n")
            else:
                host, port = self.replica_of
                sections.append(f"# Replication\r\nrole:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\n")
        return Reply.bulk("\r\n".join(sections).encode())


def _int(data: bytes) -> int | None:
    """A Redis integer: optional minus, decimal digits, no leading zeros or spaces, in int64."""
    text = data.decode("ascii", "replace")
    digits = text[1:] if text.startswith("-") else text
    if not digits.isdigit() or not digits.isascii() or (len(digits) > 1 and digits[0] == "0"):
        return None
    number = int(text)
    return number if INT64[0] <= number <= INT64[1] else None


async def read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    """One command: a RESP array of bulk strings, or an inline line of words; None at the end
    of the stream; [] for an empty inline line (which Redis ignores)."""
    line = await reader.readline()
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise ProtocolError("Protocol error: too big inline request" if len(line) >= MAX_LINE else "unexpected end")
    if line[:1] != b"*":
        return line.split()
    count = _int(line[1:].rstrip(b"\r\n"))
    if count is None or count > 1024 * 1024:
        raise ProtocolError("Protocol error: invalid multibulk length")
    argv = []
    for _ in range(count):
        head = await reader.readline()
        if head[:1] != b"$":
            raise ProtocolError(f"Protocol error: expected '$', got '{head[:1].decode('latin-1')}'")
        size = _int(head[1:].rstrip(b"\r\n"))
        if size is None or not 0 <= size <= MAX_BULK:
            raise ProtocolError("Protocol error: invalid bulk length")
        argv.append((await reader.readexactly(size + 2))[:-2])
    return argv


async def _connection(redis: Redis, served: Served, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
    task = asyncio.current_task()
    if task is not None:
        served.track(task)
    try:
        while True:
            try:
                argv = await read_command(reader)
            except ProtocolError as e:
                writer.write(Reply.error(f"ERR {e}"))
                await writer.drain()
                return
            if argv is None:
                return
            if not argv:
                continue
            reply, close = redis.execute(argv)
            writer.write(reply)
            await writer.drain()
            if close:
                return
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def start_redis(ctx: ServerContext, socks: list[socket.socket], served: Served,
                      replica_of: tuple[str, int] | None = None) -> None:
    """Serve Redis on each listening socket, one key space per socket, recorded in `served`."""
    for sock in socks:
        port = sock.getsockname()[1]
        redis = Redis(port=port, replica_of=replica_of)
        served.servers.append(await asyncio.start_server(
            lambda r, w, redis=redis: _connection(redis, served, r, w), sock=sock, limit=MAX_LINE))
        role = f"replica of {replica_of[0]}:{replica_of[1]}" if replica_of else "master"
        ctx.log(f"listening on TCP port {port} (built-in redis server, {role})")
