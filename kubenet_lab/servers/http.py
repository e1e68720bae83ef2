"""A small HTTP/1.1 server and client on asyncio streams, and the default HTTP server.

Enough HTTP for curl, urllib, Go's client and Kubernetes probes: request line, headers,
Content-Length or chunked bodies, `Expect: 100-continue`, keep-alive. One coroutine per live
connection and none per idle listener, so hundreds of pods cost little memory.

The default server stands in for images we do not run (nginx and the like): `/` answers 200 with
the pod's name and a newline, `/hostname` the name, `/clientip` the caller's `ip:port`, and a
kubelet probe (User-Agent kube-probe/...) 200 at any path, as the real program's health path would; on the
ports it is told are HTTPS, the same over TLS. An HTTPS port tells TLS from plain HTTP by the
first byte its client sends, as nginx does, and answers a plain request there as nginx does: 400
with nginx's "The plain HTTP request was sent to HTTPS port" page, then closes.
"""
from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from http import HTTPStatus
from typing import Awaitable, Callable, Collection
from urllib.parse import parse_qs, urlsplit

from .base import Served, ServerContext, addr_str
from .tls import HANDSHAKE_TIMEOUT

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
IDLE_TIMEOUT = 60.0
TEXT = "text/plain; charset=utf-8"
TLS_HANDSHAKE = b"\x16"  # the first byte of a TLS ClientHello record
# nginx's answer to a plain HTTP request on an HTTPS port (its status 497, sent as 400), with the
# error page tail nginx writes without a version (server_tokens off: no image version is known).
PLAIN_ON_HTTPS_PAGE = ("<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n"
                       "<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n"
                       "<center>The plain HTTP request was sent to HTTPS port</center>\r\n"
                       "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


class BadRequest(Exception):
    pass


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]  # lower-case names
    client: tuple
    body: bytes = b""
    path: str = "/"
    query: dict[str, list[str]] = field(default_factory=dict)
    form: dict[str, list[str]] = field(default_factory=dict)

    @property
    def remote_addr(self) -> str:
        return addr_str(self.client)

    def value(self, name: str) -> str:
        """Go's Request.FormValue: the query first, then a url-encoded body."""
        for source in (self.query, self.form):
            if name in source:
                return source[name][0]
        return ""

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


@dataclass
class Response:
    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False  # close the connection after answering
    abort: bool = False  # drop the connection without an answer (a process that exits)
    after: Callable[[], None] | None = None  # run once the answer is sent

    def payload(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else self.body


Handler = Callable[[Request], "Awaitable[Response] | Response"]


def text(body: str | bytes, status: int = 200) -> Response:
    return Response(status, body, {"Content-Type": TEXT} if body else {})


def error(msg: str, status: int) -> Response:
    """Go's http.Error: the message and a newline, never sniffed."""
    return Response(status, msg + "\n", {"Content-Type": TEXT, "X-Content-Type-Options": "nosniff"})


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"status code {status}"


def clean_path(path: str) -> str:
    """The path Go's ServeMux routes on: no empty, `.` or `..` elements."""
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    cleaned = "/" + "/".join(out)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """Split a message head into its first line and its header fields."""
    lines = head.decode("latin-1").split("\r\n")
    fields = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"malformed header line {line!r}")
        fields.append((name.lower(), value.strip()))
    return lines[0], fields


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str], until_eof: bool) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length < 0 or length > MAX_BODY:
            raise BadRequest("bad Content-Length")
        return await reader.readexactly(length)
    return await reader.read(MAX_BODY) if until_eof else b""


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       client: tuple) -> Request | None:
    try:
        async with asyncio.timeout(IDLE_TIMEOUT):
            first = await reader.readexactly(1)
            if first == TLS_HANDSHAKE:  # as nginx does, a plain port answers a TLS client at once
                raise BadRequest("a TLS handshake on a plain HTTP port")
            head = first + await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.TimeoutError):
        return None
    except asyncio.LimitOverrunError as e:
        raise BadRequest("request head too large") from e
    first, fields = parse_head(head)
    parts = first.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"malformed request line {first!r}")
    method, target, version = parts
    headers = dict(fields)
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = await read_body(reader, headers, until_eof=False)
    url = urlsplit(target)
    req = Request(method, target, version, headers, client, body, url.path or "/",
                  parse_qs(url.query, keep_blank_values=True))
    if method in ("POST", "PUT", "PATCH") and headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        req.form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return req


def render(resp: Response, req: Request | None, keep_alive: bool) -> bytes:
    body = resp.payload()
    headers = {"Date": formatdate(usegmt=True), **resp.headers}
    if resp.status >= 200 and resp.status not in (204, 304):
        headers["Content-Length"] = str(len(body))
    if not keep_alive:
        headers["Connection"] = "close"
    elif req is not None and req.version == "HTTP/1.0":
        headers["Connection"] = "keep-alive"
    head = f"HTTP/1.1 {resp.status} {reason(resp.status)}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    if req is not None and req.method == "HEAD":
        body = b""
    return head.encode("latin-1", "replace") + body


async def _connection(handler: Handler, served: Served, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
    task = asyncio.current_task()
    if task is not None:
        served.track(task)
    client = writer.get_extra_info("peername") or ("", 0)
    try:
        while True:
            try:
                req = await read_request(reader, writer, client)
            except (BadRequest, ValueError):
                writer.write(render(text("400 Bad Request", 400), None, False))
                await writer.drain()
                return
            if req is None:
                return
            try:
                resp = handler(req)
                if inspect.isawaitable(resp):
                    resp = await resp
            except Exception as e:  # a bug in a handler answers 500, like Go's recovered panic
                resp = error(f"internal error: {type(e).__name__}: {e}", 500)
                resp.close = True
            if resp.abort:
                writer.transport.abort()
            else:
                keep = req.keep_alive and not resp.close
                writer.write(render(resp, req, keep))
                await writer.drain()
            if resp.after is not None:
                resp.after()
            if resp.abort or not keep:
                return
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def serve_http(sock: socket.socket, handler: Handler, served: Served,
                     tls: ssl.SSLContext | None = None) -> None:
    """Serve `handler` on a listening socket, over TLS with `tls` (see `HttpsListener`);
    everything is recorded in `served`."""
    if tls is not None:
        served.servers.append(HttpsListener(sock, handler, served, tls))
        return
    server = await asyncio.start_server(lambda r, w: _connection(handler, served, r, w),
                                        sock=sock, limit=MAX_HEAD)
    served.servers.append(server)


def plain_on_https(req: Request) -> Response:
    """What nginx answers a plain HTTP request that reached its HTTPS port."""
    return Response(400, PLAIN_ON_HTTPS_PAGE, {"Content-Type": "text/html"}, close=True)


def speaks_tls(first: bytes) -> bool:
    """Whether a connection's first byte opens a TLS (or SSLv2-style) ClientHello, nginx's test."""
    return first[:1] == TLS_HANDSHAKE or bool(first and first[0] & 0x80)


class HttpsListener:
    """An HTTPS port as nginx serves one: each accepted connection's first byte is peeked at
    (never consumed); a TLS client gets the handshake and `handler`, a plain HTTP client
    `plain_on_https`. A client that says nothing within the handshake timeout is dropped."""

    def __init__(self, sock: socket.socket, handler: Handler, served: Served, tls: ssl.SSLContext):
        sock.setblocking(False)
        self.sock, self.handler, self.served, self.tls = sock, handler, served, tls
        self.task = asyncio.ensure_future(self._accept())

    def close(self) -> None:
        self.task.cancel()
        self.sock.close()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self.sock)
            except OSError:  # a client that reset before it was accepted
                continue
            self.served.track(asyncio.ensure_future(self._start(conn)))

    async def _start(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await _readable(loop, conn)
            first = conn.recv(1, socket.MSG_PEEK)
            if not first:
                conn.close()
                return
            tls = speaks_tls(first)
            handler = self.handler if tls else plain_on_https
            reader = asyncio.StreamReader(limit=MAX_HEAD)
            protocol = asyncio.StreamReaderProtocol(reader, lambda r, w: _connection(handler, self.served, r, w))
            await loop.connect_accepted_socket(lambda: protocol, conn, ssl=self.tls if tls else None,
                                               ssl_handshake_timeout=HANDSHAKE_TIMEOUT if tls else None)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError):
            conn.close()


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Until `sock` has something to read (data or its end), reading nothing of it."""
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


class DatagramServer(asyncio.DatagramProtocol):
    """Answers each datagram with what `answer(data, addr)` returns (None: no answer)."""

    def __init__(self, answer: Callable[[bytes, tuple], bytes | None]):
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        reply = self.answer(data, addr)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for an earlier answer: nothing to do


async def serve_udp(sock: socket.socket, answer: Callable[[bytes, tuple], bytes | None],
                    served: Served) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: DatagramServer(answer), sock=sock)
    served.transports.append(transport)


# --------------------------------------------------------------------------------------------
# A client, for agnhost's /dial.
# --------------------------------------------------------------------------------------------


async def http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                   path: str) -> tuple[int, bytes]:
    """One GET over an open connection, as Go's client sends it; returns (status, body)."""
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n"
                  "Connection: close\r\n\r\n").encode("latin-1", "replace"))
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    first, fields = parse_head(head)
    parts = first.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise BadRequest(f"malformed HTTP response {first!r}")
    return int(parts[1]), await read_body(reader, dict(fields), until_eof=True)


# --------------------------------------------------------------------------------------------
# The default HTTP server.
# --------------------------------------------------------------------------------------------


# nginx's mime.types for what a page is made of; anything else application/octet-stream.
MIME_TYPES = {"html": "text/html", "htm": "text/html", "css": "text/css", "js": "application/javascript",
              "json": "application/json", "txt": "text/plain", "xml": "text/xml", "svg": "image/svg+xml",
              "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
              "ico": "image/x-icon", "webp": "image/webp", "woff2": "font/woff2", "pdf": "application/pdf"}


def nginx_page(status: int) -> Response:
    """nginx's own page for `status` (its error tail without a version: no image version is known)."""
    title = f"{status} {reason(status)}"
    return Response(status, f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}"
                            "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
                    {"Content-Type": "text/html"})


# A web server image's files: read(path) gives a file's bytes under its document root, None for a
# directory, and raises OSError (FileNotFoundError: none there).
ReadFile = Callable[[str], "bytes | None"]


class DefaultHttp:
    """The stand-in for an image we do not run: it answers with the pod's name; or, where a
    volume holds the image's document root (`static`), it serves those files as nginx does."""

    def __init__(self, ctx: ServerContext, text: str | None = None, static: ReadFile | None = None):
        self.ctx, self.text, self.static = ctx, text, static

    def _file(self, path: str) -> Response:
        """nginx's static files: index.html for a directory, a redirect to add the slash, 403
        for a directory without an index, 404 for nothing there."""
        assert self.static is not None
        target = path + "index.html" if path.endswith("/") else path
        try:
            data = self.static(target)
            if data is None:
                if path.endswith("/"):  # an index.html that is a directory
                    return nginx_page(403)
                resp = nginx_page(301)
                resp.headers["Location"] = path + "/"
                return resp
        except (FileNotFoundError, NotADirectoryError):
            if path.endswith("/"):
                try:
                    if self.static(path) is None:
                        return nginx_page(403)  # a directory without an index (autoindex off)
                except OSError:
                    pass
            return nginx_page(404)
        except OSError:
            return nginx_page(403)
        name = target.rsplit("/", 1)[-1]
        ext = name.rpartition(".")[2].lower() if "." in name else ""
        return Response(200, data, {"Content-Type": MIME_TYPES.get(ext, "application/octet-stream")})

    def handle(self, req: Request) -> Response:
        path = clean_path(req.path)
        if self.text is not None:  # hashicorp/http-echo: its text at every path
            resp = text(self.text)
        elif self.static is not None and req.method in ("GET", "HEAD"):
            resp = self._file(path)
        elif path == "/":
            resp = text(self.ctx.hostname + "\n")
        elif path == "/hostname":
            resp = text(self.ctx.hostname)
        elif path == "/clientip":
            resp = text(req.remote_addr)
        elif path == "/healthz":
            resp = text("ok")
        elif req.headers.get("user-agent", "").startswith("kube-probe/"):
            # A kubelet probe of the program this stands in for: its health path (/ready,
            # /actuator/health, ...) is the real program's; it passes as it would there.
            resp = text("ok")
        else:
            resp = text("404 page not found\n", 404)
        self._access(req, resp)
        return resp

    def _access(self, req: Request, resp: Response) -> None:
        """An nginx-style access line, so `kubenet-lab logs` shows who came."""
        when = datetime.now().astimezone().strftime("%d/%b/%Y:%H:%M:%S %z")
        agent = req.headers.get("user-agent", "-")
        self.ctx.log(f'{req.client[0]} - - [{when}] "{req.method} {req.target} {req.version}" '
                     f'{resp.status} {len(resp.payload())} "-" "{agent}"')

    def udp(self, data: bytes, addr: tuple) -> bytes:
        self.ctx.log(f"UDP request from {addr_str(addr)}")
        return self.ctx.hostname.encode()


async def start_default_http(ctx: ServerContext, tcp: list[socket.socket],
                             udp: list[socket.socket], body: str | None = None,
                             tls: ssl.SSLContext | None = None, tls_ports: Collection[int] = (),
                             static: ReadFile | None = None) -> Served:
    """Serve every TCP port over HTTP (HTTPS with context `tls` for those in `tls_ports`) and
    every UDP port with the hostname; `body`: what every HTTP path answers instead of the
    default pages; `static`: the files it serves instead (see DefaultHttp)."""
    if tls is None and tls_ports:
        raise ValueError("HTTPS ports need a TLS context")
    app = DefaultHttp(ctx, body, static)
    served = Served()
    try:
        for sock in tcp:
            port = sock.getsockname()[1]
            https = port in tls_ports
            await serve_http(sock, app.handle, served, tls if https else None)
            ctx.log(f"listening on TCP port {port} (built-in {'HTTPS' if https else 'HTTP'} server)")
        for sock in udp:
            await serve_udp(sock, app.udp, served)
            ctx.log(f"listening on UDP port {sock.getsockname()[1]} (built-in hostname server)")
    except BaseException:
        served.close()
        raise
    return served
