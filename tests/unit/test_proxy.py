"""The nginx images that proxy to an upstream (servers.proxy), on loopback: what reaches the
upstream, what comes back, and nginx's pages when the upstream is not there; and the images the
table says proxy or answer a fixed text (plan.images)."""
from __future__ import annotations

import asyncio
import socket

from kubenet_lab.model.objects import Container, ContainerPort, RunHttp
from kubenet_lab.plan.containers import resolve, serving
from kubenet_lab.servers.base import Served, ServerContext
from kubenet_lab.servers.http import Request, Response, serve_http
from kubenet_lab.servers.proxy import start_proxy


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


async def fetch(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def test_requests_pass_to_the_upstream_and_its_answers_come_back():
    async def main():
        seen: list[Request] = []

        def backend(req: Request) -> Response:
            seen.append(req)
            return Response(201 if req.method == "POST" else 200, '{"message":"Hello"}',
                            {"Content-Type": "application/json", "X-Backend": "yes"})
        served, lines = Served(), []
        upstream, front = listener(), listener()
        await serve_http(upstream, backend, served)
        ctx = ServerContext(hostname="frontend-x", log=lines.append)
        await start_proxy(ctx, [front], served, f"http://localhost:{upstream.getsockname()[1]}")
        port = front.getsockname()[1]
        try:
            out = await fetch(port, b"GET /greet?who=me HTTP/1.1\r\nHost: 172.18.0.192\r\nUser-Agent: curl/8\r\n"
                                    b"Connection: close\r\n\r\n")
            head, body = out.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b'{"message":"Hello"}'
            assert b"Content-Type: application/json" in head and b"X-Backend: yes" in head
            req = seen[0]
            # as proxy_pass sends it: HTTP/1.0, Host the upstream's name, the client's other headers
            assert (req.method, req.target, req.version) == ("GET", "/greet?who=me", "HTTP/1.0")
            assert req.headers["host"] == f"localhost:{upstream.getsockname()[1]}"
            assert req.headers["user-agent"] == "curl/8" and req.headers["connection"] == "close"
            out = await fetch(port, b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                                    b"Connection: close\r\n\r\nabc")
            assert out.startswith(b"HTTP/1.1 201 Created\r\n") and seen[1].body == b"abc"
            assert f"listening on TCP port {port} (built-in HTTP proxy to http://localhost:" \
                   f"{upstream.getsockname()[1]})" in lines
            assert any('"GET /greet?who=me HTTP/1.1" 200' in line for line in lines)
        finally:
            served.close()
    asyncio.run(asyncio.wait_for(main(), 30))


def test_an_upstream_that_is_not_there_gets_nginxs_502():
    async def main():
        gone = listener()
        dead = gone.getsockname()[1]
        gone.close()  # nothing listens there: connections are refused
        served, front = Served(), listener()
        await start_proxy(ServerContext(hostname="frontend-x"), [front], served, f"http://127.0.0.1:{dead}")
        try:
            out = await fetch(front.getsockname()[1], b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head, body = out.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") and b"Content-Type: text/html" in head
            assert body == (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
                            b"</body>\r\n</html>\r\n")
        finally:
            served.close()
    asyncio.run(asyncio.wait_for(main(), 30))


def test_the_frontend_and_backend_images_of_the_services_page():
    front = resolve(Container("nginx", "gcr.io/google-samples/hello-frontend:1.0")).run
    assert front == RunHttp(ports=(80,), proxy_to="http://hello")
    assert serving(front) == "the built-in HTTP server (a proxy to http://hello) on TCP 80"
    back = resolve(Container("hello", "gcr.io/google-samples/hello-go-gke:1.0", ports=(ContainerPort(80, "http"),))).run
    assert back == RunHttp(ports=(80,), text='{"message":"Hello"}')
    assert resolve(Container("web", "nginx")).run.proxy_to is None
