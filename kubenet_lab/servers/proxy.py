"""An nginx reverse proxy for images that are nginx configured with `proxy_pass` to one upstream
(plan.images' `proxy_to`: hello-frontend's `location / { proxy_pass http://hello; }`).

As nginx's proxy module sends it by default: the request's method, path and headers, over
HTTP/1.0 with `Host:` the upstream's name and `Connection: close`, to the upstream resolved as
the pod resolves it (its resolv.conf and hosts: `hello` is the Service in the pod's namespace);
the upstream's status, headers and body back to the client. An upstream that cannot be reached
gets nginx's `502 Bad Gateway` page, one that does not answer in time its `504 Gateway Time-out`.
nginx resolves the upstream name once, at start; this resolves it at each request.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from datetime import datetime
from typing import Collection
from urllib.parse import urlsplit

from .base import Served, ServerContext
from .http import BadRequest, Request, Response, parse_head, read_body, serve_http

# nginx's proxy_connect_timeout and proxy_read_timeout defaults
CONNECT_TIMEOUT = 60.0
READ_TIMEOUT = 60.0
# Headers nginx's proxy does not pass on, either way (hop-by-hop, or its own to set).
_NOT_SENT = {"host", "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
             "proxy-connection", "content-length"}
_NOT_RETURNED = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


def nginx_error_page(status: int, title: str) -> Response:
    """nginx's own error page (its error tail without a version: no image version is known)."""
    body = (f"<html>\r\n<head><title>{status} {title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    return Response(status, body, {"Content-Type": "text/html"})


class ReverseProxy:
    """Every request to `upstream` (`http://NAME[:PORT]`), as `proxy_pass` sends it."""

    def __init__(self, ctx: ServerContext, upstream: str):
        url = urlsplit(upstream)
        self.ctx, self.host, self.port = ctx, url.hostname or "", url.port or 80
        self.host_header = url.netloc

    async def handle(self, req: Request) -> Response:
        try:
            resp = await self._forward(req)
        except TimeoutError:
            resp = nginx_error_page(504, "Gateway Time-out")
        except (OSError, LookupError, BadRequest, ValueError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            resp = nginx_error_page(502, "Bad Gateway")
        self._access(req, resp)
        return resp

    async def _forward(self, req: Request) -> Response:
        loop = asyncio.get_running_loop()
        address = await self.ctx.resolve(self.host)
        sock = self.ctx.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        writer = None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await loop.sock_connect(sock, (address, self.port))
            reader, writer = await asyncio.open_connection(sock=sock)
            head = [f"{req.method} {req.target} HTTP/1.0", f"Host: {self.host_header}", "Connection: close"]
            head += [f"{name}: {value}" for name, value in req.headers.items() if name not in _NOT_SENT]
            if req.body or req.method in ("POST", "PUT", "PATCH"):
                head.append(f"Content-Length: {len(req.body)}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace") + req.body)
            await writer.drain()
            async with asyncio.timeout(READ_TIMEOUT):
                first, fields = parse_head(await reader.readuntil(b"\r\n\r\n"))
                parts = first.split(" ", 2)
                if len(parts) < 2 or not parts[1].isdigit():
                    raise BadRequest(f"upstream sent an invalid status line {first!r}")
                body = await read_body(reader, dict(fields), until_eof=req.method != "HEAD")
        finally:
            if writer is not None:
                writer.close()
            else:
                sock.close()
        headers: dict[str, str] = {}
        for name, value in fields:
            if name not in _NOT_RETURNED:
                headers["-".join(w.capitalize() for w in name.split("-"))] = value
        return Response(int(parts[1]), body, headers)

    def _access(self, req: Request, resp: Response) -> None:
        """nginx's access log line, as the built-in server writes it."""
        when = datetime.now().astimezone().strftime("%d/%b/%Y:%H:%M:%S %z")
        agent = req.headers.get("user-agent", "-")
        self.ctx.log(f'{req.client[0]} - - [{when}] "{req.method} {req.target} {req.version}" '
                     f'{resp.status} {len(resp.payload())} "-" "{agent}"')


async def start_proxy(ctx: ServerContext, socks: list[socket.socket], served: Served, upstream: str,
                      tls: ssl.SSLContext | None = None, tls_ports: Collection[int] = ()) -> None:
    """Serve the proxy to `upstream` on every listening socket (over TLS on `tls_ports`)."""
    proxy = ReverseProxy(ctx, upstream)
    for sock in socks:
        port = sock.getsockname()[1]
        https = port in tls_ports
        await serve_http(sock, proxy.handle, served, tls if https else None)
        ctx.log(f"listening on TCP port {port} (built-in {'HTTPS' if https else 'HTTP'} proxy to {upstream})")
