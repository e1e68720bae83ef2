"""The built-in servers on loopback sockets: agnhost's exact answers, no root needed."""
from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.error
import urllib.request

import pytest

from kubenet_lab.servers import agnhost
from kubenet_lab.servers.agnhost import parse_duration, start_netexec, start_serve_hostname
from kubenet_lab.servers.base import ServerContext, go_json
from kubenet_lab.servers.http import clean_path, start_default_http
from kubenet_lab.servers.resolve import PodResolver, candidates, parse_resolv_conf


def listener(type_: int = socket.SOCK_STREAM) -> socket.socket:
    sock = socket.socket(socket.AF_INET, type_)
    sock.bind(("127.0.0.1", 0))
    if type_ == socket.SOCK_STREAM:
        sock.listen(16)
    return sock


class Pod:
    """One server started on loopback, with its log lines and exit requests recorded."""

    def __init__(self, name: str):
        self.lines: list[str] = []
        self.exits: list[int] = []
        self.ctx = ServerContext(hostname=name, log=self.lines.append, exit=self.exits.append)
        self.tcp = listener()
        self.udp = listener(socket.SOCK_DGRAM)
        self.http_port = self.tcp.getsockname()[1]
        self.udp_port = self.udp.getsockname()[1]
        self.served = None

    def log_text(self) -> str:
        return "\n".join(self.lines)


async def get(port: int, path: str, method: str = "GET", data: bytes | None = None,
              headers: dict | None = None) -> tuple[int, bytes, dict]:
    """urllib in a thread, so the server keeps running on the loop."""
    def call():
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)
    return await asyncio.to_thread(call)


async def udp_ask(port: int, payload: bytes, timeout: float = 2.0) -> bytes | None:
    def call():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(payload, ("127.0.0.1", port))
            try:
                return s.recv(65536)
            except socket.timeout:
                return None
    return await asyncio.to_thread(call)


async def raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


# --------------------------------------------------------------------------------------------
# netexec
# --------------------------------------------------------------------------------------------


async def netexec(name: str = "web-0", udp: bool = True) -> Pod:
    pod = Pod(name)
    pod.served = await start_netexec(pod.ctx, pod.tcp, pod.udp if udp else None)
    return pod


def test_netexec_http_endpoints():
    async def main():
        pod = await netexec()
        status, body, headers = await get(pod.http_port, "/hostname")
        assert (status, body) == (200, b"web-0")
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert (await get(pod.http_port, "/hostName"))[1] == b"web-0"
        status, body, _ = await get(pod.http_port, "/clientip")
        assert re.fullmatch(rb"127\.0\.0\.1:\d+", body)
        assert (await get(pod.http_port, "/echo?msg=hello%20world"))[:2] == (200, b"hello world")
        assert (await get(pod.http_port, "/echo?msg=teapot&code=418"))[:2] == (418, b"teapot")
        assert (await get(pod.http_port, "/echo?msg=x&code=abc"))[:2] == (
            200, b"argument 'code' must be an integer or empty, got \"abc\"\n")
        status, body, _ = await get(pod.http_port, "/")
        assert status == 200 and re.fullmatch(
            rb"NOW: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} \S+ m=\+\d+\.\d{9}", body), body
        # Go's ServeMux sends unknown paths to "/".
        assert (await get(pod.http_port, "/no/such/path"))[1].startswith(b"NOW: ")
        status, body, headers = await get(pod.http_port, "/healthz")
        assert (status, body) == (200, b"")
        assert "GET /hostname" in pod.log_text() and "GET /echo?msg=hello world&code=" in pod.log_text()
        assert re.match(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d Started UDP server on port  \d+", pod.lines[0])
        pod.served.close()
    run(main())


def test_netexec_readyz_and_delay_shutdown():
    """agnhost netexec: /readyz is "ok" until SIGTERM, 503 "shutting down" after it, while
    --delay-shutdown keeps it serving; /healthz stays 200 (e2e tests probe both)."""
    async def main():
        pod = Pod("web-0")
        pod.served = await start_netexec(pod.ctx, pod.tcp, pod.udp, delay_shutdown=3)
        assert (await get(pod.http_port, "/readyz"))[:2] == (200, b"ok")
        assert pod.served.terminate() == 3.0
        assert pod.lines[-1].endswith("Sleeping 3 seconds before terminating...")
        assert (await get(pod.http_port, "/readyz"))[:2] == (503, b"shutting down")
        assert (await get(pod.http_port, "/healthz"))[:2] == (200, b"")
        pod.served.close()
    run(main())


def test_the_default_server_passes_kubelets_probes_at_any_path():
    async def main():
        pod = Pod("web-0")
        pod.served = await start_default_http(pod.ctx, [pod.tcp], [])
        assert (await get(pod.http_port, "/actuator/health"))[0] == 404
        probe = {"User-Agent": "kube-probe/1.31"}
        assert (await get(pod.http_port, "/actuator/health", headers=probe))[:2] == (200, b"ok")
        pod.served.close()
    run(main())


def test_netexec_healthz_without_udp_is_412():
    async def main():
        pod = await netexec(udp=False)
        assert (await get(pod.http_port, "/healthz"))[:2] == (412, b"")
        pod.served.close()
    run(main())


def test_netexec_large_echo_over_http_and_udp():
    msg = "a" * 2000
    async def main():
        pod = await netexec()
        assert (await get(pod.http_port, f"/echo?msg={msg}"))[1] == msg.encode()
        # POSTed form values count too (Go's FormValue).
        status, body, _ = await get(pod.http_port, "/echo", "POST", f"msg={msg}".encode(),
                                    {"Content-Type": "application/x-www-form-urlencoded"})
        assert body == msg.encode()
        assert await udp_ask(pod.udp_port, f"echo {msg}".encode()) == msg.encode()
        pod.served.close()
    run(main())


def test_netexec_udp_commands():
    async def main():
        pod = await netexec()
        assert await udp_ask(pod.udp_port, b"hostname") == b"web-0"
        assert await udp_ask(pod.udp_port, b"  HOSTNAME\n") == b"web-0"
        # agnhost lowercases the whole command, message included.
        assert await udp_ask(pod.udp_port, b"echo Hello World") == b"hello world"
        assert re.fullmatch(rb"127\.0\.0\.1:\d+", await udp_ask(pod.udp_port, b"clientip"))
        assert await udp_ask(pod.udp_port, b"bogus", timeout=0.3) is None
        assert "Unknown UDP command received from 127.0.0.1:" in pod.log_text()
        pod.served.close()
    run(main())


def test_netexec_dial_http_and_udp_to_another_netexec():
    async def main():
        client, target = await netexec("client"), await netexec("target-1")
        q = f"host=127.0.0.1&port={target.http_port}&request=hostname&protocol=http&tries=3"
        status, body, _ = await get(client.http_port, f"/dial?{q}")
        assert status == 200 and body == b'{"responses":["target-1","target-1","target-1"]}'
        q = f"host=127.0.0.1&port={target.udp_port}&request=hostname&protocol=udp"
        assert (await get(client.http_port, f"/dial?{q}"))[1] == b'{"responses":["target-1"]}'
        q = f"host=127.0.0.1&port={target.udp_port}&request=echo%20{'b' * 2000}&protocol=udp"
        assert json.loads((await get(client.http_port, f"/dial?{q}"))[1]) == {"responses": ["b" * 2000]}
        # The default protocol is http; request is a path without its leading slash.
        q = f"host=127.0.0.1&port={target.http_port}&request=echo?msg=hi"
        assert (await get(client.http_port, f"/dial?{q}"))[1] == b'{"responses":["hi"]}'
        target.served.close()
        client.served.close()
    run(main())


def test_netexec_dial_errors():
    async def main():
        pod = await netexec()
        free = listener()
        port = free.getsockname()[1]
        free.close()  # nothing listens there now
        status, body, _ = await get(pod.http_port, f"/dial?host=127.0.0.1&port={port}&request=hostname")
        assert status == 200
        assert json.loads(body) == {"errors": [
            f'Get "http://127.0.0.1:{port}/hostname": dial tcp 127.0.0.1:{port}: connect: connection refused']}
        status, body, _ = await get(pod.http_port, "/dial?host=127.0.0.1&port=80")
        assert (status, body) == (400, b"request parameter not specified. <nil>\n")
        status, body, _ = await get(pod.http_port, "/dial?host=127.0.0.1&port=80&request=x&tries=z")
        assert (status, body) == (400, b'tries parameter is invalid. strconv.Atoi: parsing "z": invalid syntax\n')
        status, body, _ = await get(pod.http_port, "/dial?host=127.0.0.1&port=80&request=x&protocol=icmp")
        assert (status, body) == (400, b"unsupported protocol. icmp\n")
        pod.served.close()
    run(main())


def test_netexec_dial_udp_timeout_reports_error(monkeypatch):
    monkeypatch.setattr(agnhost, "DIAL_TIMEOUT", 0.3)
    async def main():
        pod = await netexec()
        silent = listener(socket.SOCK_DGRAM)  # bound, never answers
        port = silent.getsockname()[1]
        body = (await get(pod.http_port, f"/dial?host=127.0.0.1&port={port}&request=hostname&protocol=udp"))[1]
        errors = json.loads(body)["errors"]
        assert re.fullmatch(r"reading from udp connection failed\. err:'read udp 127\.0\.0\.1:\d+->"
                            rf"127\.0\.0\.1:{port}: i/o timeout'", errors[0])
        silent.close()
        pod.served.close()
    run(main())


def test_netexec_shell():
    async def main():
        pod = await netexec()
        status, body, _ = await get(pod.http_port, "/shell?cmd=echo%20hi")
        assert (status, json.loads(body)) == (200, {"output": "hi\n"})
        body = (await get(pod.http_port, "/shell?shellCommand=echo%20out%3B%20exit%203"))[1]
        assert body == b'{"error":"exit status 3","output":"out\\n"}'
        pod.served.close()
    run(main())


def test_netexec_exit_and_shutdown_ask_the_supervisor():
    async def main():
        pod = await netexec()
        status, body, _ = await get(pod.http_port, "/exit?code=x")
        assert body == b"argument 'code' must be an integer [0-127] or empty, got \"x\"\n"
        assert (await get(pod.http_port, "/exit?code=7&timeout=1s"))[0] == 200
        assert pod.exits == [7]
        with pytest.raises(OSError):  # os.Exit at once: no answer at all (the connection closes or resets)
            await get(pod.http_port, "/exit?code=3")
        assert pod.exits == [7, 3]
        pod.served.close()
    run(main())


def test_netexec_redirect_and_keepalive():
    async def main():
        pod = await netexec()
        reply = await raw(pod.http_port, b"GET /redirect?location=/echo%3Fmsg%3Dfoo&code=307 HTTP/1.1\r\n"
                                         b"Host: x\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 307 Temporary Redirect\r\n")
        assert b"\r\nLocation: /echo?msg=foo\r\n" in reply
        assert reply.endswith(b'<a href="/echo?msg=foo">Temporary Redirect</a>.\n\n')
        # Two requests on one connection, then a close.
        reply = await raw(pod.http_port, b"GET /hostname HTTP/1.1\r\nHost: x\r\n\r\n"
                                         b"GET /echo?msg=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.count(b"HTTP/1.1 200 OK") == 2 and reply.endswith(b"\r\n\r\n2")
        assert b"\r\n\r\nweb-0HTTP/1.1" in reply
        assert (await raw(pod.http_port, b"garbage\r\n\r\n")).startswith(b"HTTP/1.1 400 Bad Request")
        pod.served.close()
    run(main())


def test_closing_ends_live_connections():
    async def main():
        pod = await netexec()
        reader, writer = await asyncio.open_connection("127.0.0.1", pod.http_port)
        writer.write(b"GET /hostname HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"web-0")
        pod.served.close()
        assert await asyncio.wait_for(reader.read(), 2) == b""  # the server side is gone
        writer.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", pod.http_port)
    run(main())


# --------------------------------------------------------------------------------------------
# serve-hostname and the default HTTP server
# --------------------------------------------------------------------------------------------


def test_serve_hostname_http():
    async def main():
        pod = Pod("sh-0")
        pod.served = await start_serve_hostname(pod.ctx, pod.tcp, None, http=True)
        for path in ("/", "/anything"):
            assert (await get(pod.http_port, path))[:2] == (200, b"sh-0")
        assert "HTTP request from 127.0.0.1:" in pod.log_text()
        assert pod.lines[0].endswith(f"Serving on port {pod.http_port}.")
        pod.served.close()
    run(main())


def test_serve_hostname_tcp_and_udp():
    async def main():
        pod = Pod("sh-1")
        pod.served = await start_serve_hostname(pod.ctx, pod.tcp, pod.udp, http=False)
        assert await raw(pod.http_port, b"") == b"sh-1"
        assert await udp_ask(pod.udp_port, b"anything at all, longer than sixteen bytes") == b"sh-1"
        assert "TCP request from 127.0.0.1:" in pod.log_text()
        assert "UDP request from 127.0.0.1:" in pod.log_text()
        pod.served.close()
    run(main())


def test_default_http_server():
    async def main():
        pod = Pod("nginx-abc")
        second = listener()
        pod.served = await start_default_http(pod.ctx, [pod.tcp, second], [pod.udp])
        assert (await get(pod.http_port, "/"))[:2] == (200, b"nginx-abc\n")
        assert (await get(second.getsockname()[1], "/"))[:2] == (200, b"nginx-abc\n")
        assert (await get(pod.http_port, "/hostname"))[:2] == (200, b"nginx-abc")
        assert re.fullmatch(rb"127\.0\.0\.1:\d+", (await get(pod.http_port, "/clientip"))[1])
        assert (await get(pod.http_port, "/missing"))[0] == 404
        status, body, headers = await get(pod.http_port, "/", method="HEAD")
        assert (status, body, headers["Content-Length"]) == (200, b"", "10")
        assert await udp_ask(pod.udp_port, b"x") == b"nginx-abc"
        assert re.search(r'^127\.0\.0\.1 - - \[.*\] "GET / HTTP/1\.1" 200 10 "-" "Python-urllib/',
                         pod.log_text(), re.M)
        pod.served.close()
    run(main())


def test_curl_works_against_the_default_server():
    curl = pytest.importorskip("shutil").which("curl")
    if not curl:
        pytest.skip("curl not installed")
    async def main():
        pod = Pod("web")
        pod.served = await start_default_http(pod.ctx, [pod.tcp], [])
        proc = await asyncio.create_subprocess_exec(
            curl, "-sS", "--max-time", "5", f"http://127.0.0.1:{pod.http_port}/",
            f"http://127.0.0.1:{pod.http_port}/hostname", stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        assert out == b"web\nweb"
        pod.served.close()
    run(main())


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def test_go_helpers():
    assert go_json({"b": ["<&>"], "a": []}) == '{"a":[],"b":["\\u003c\\u0026\\u003e"]}'
    assert parse_duration("1.5s") == 1.5 and parse_duration("1m30s") == 90 and parse_duration("0") == 0
    with pytest.raises(ValueError):
        parse_duration("5")
    assert clean_path("//hostname") == "/hostname" and clean_path("/a/../b/") == "/b/"


def test_resolver_pieces():
    assert parse_resolv_conf("nameserver 10.96.0.10\nsearch default.svc.cluster.local "
                             "svc.cluster.local cluster.local\noptions ndots:5\n") == (
        ["10.96.0.10"], ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"], 5)
    assert candidates("web", ["a.svc", "svc"], 5) == ["web.a.svc.", "web.svc.", "web."]
    assert candidates("a.b.c.d.e.f", ["svc"], 5) == ["a.b.c.d.e.f.", "a.b.c.d.e.f.svc."]
    hosts = "127.0.0.1 localhost\n10.244.1.5 web-0.sub.default.svc.cluster.local web-0\n"
    resolver = PodResolver("", hosts, socket.socket)
    assert asyncio.run(resolver("web-0")) == "10.244.1.5"
    with pytest.raises(LookupError):
        asyncio.run(resolver("nothing-here"))
