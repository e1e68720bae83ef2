"""HTTPS where a manifest serves it (no root): planning says which ports of an emulated container
speak TLS, the built-in server answers TLS there on loopback (plain HTTP elsewhere), and the lab's
certificate is made once, its key private."""
from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import ssl
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from kubenet_lab.plan.images import NGINX_HTML
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.containers import emulated, tls_ports
from kubenet_lab.model.objects import Container, ContainerPort, RunHttp, RunServeHostname
from kubenet_lab.plan.serialize import plan_from_data, plan_to_data
from kubenet_lab.servers import tls
from kubenet_lab.servers.base import ServerContext
from kubenet_lab.servers.http import start_default_http

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed (./setup.sh)")


def plan_of(text: str | None = None, files: tuple[str, ...] = ()):
    if files:
        model = load_model([str(CORPUS / f) for f in files])
    else:
        model = load_model(["-"], io.StringIO(textwrap.dedent(text).lstrip("\n")))
    return make_plan(model, "lab")


def runs(plan, prefix: str) -> list:
    return [[c.run for c in p.containers] for p in plan.pods if p.name.startswith(prefix)]


# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------


def test_the_nginx_secure_app_serves_https_on_443_and_http_on_80():
    """kubernetes.io "Connecting Applications with Services": nginx serving 443 and 80."""
    plan = plan_of(files=("services/nginx-secure-app.yaml",))
    assert runs(plan, "my-nginx-") == [[RunHttp((443, 80), tls_ports=(443,), docroot=NGINX_HTML)]]


def test_ingress_nginx_controller_is_https_on_its_https_and_webhook_ports():
    """443 (named https) and the admission webhook, which its Service port https-webhook
    (appProtocol https) targets by the container port's name, webhook (8443); http stays plain."""
    plan = plan_of(files=("apps/ingress-nginx-kind-deploy.yaml",))
    (run,), = runs(plan, "ingress-nginx-controller-")
    assert isinstance(run, RunHttp)
    assert 80 in run.ports and 8443 in run.ports
    assert sorted(run.tls_ports) == [443, 8443]


def test_https_ports_by_number_and_by_name():
    plan = plan_of("""
        apiVersion: v1
        kind: Pod
        metadata: {name: named, labels: {app: named}}
        spec:
          containers:
          - name: app
            image: example.com/app
            ports:
            - {containerPort: 8443, name: https}
            - {containerPort: 9443, name: https-admin}
            - {containerPort: 8080, name: http}
            - {containerPort: 9090}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: odd}
        spec:
          containers:
          - name: app
            image: example.com/app
            ports:
            - {containerPort: 443, name: http}
            - {containerPort: 443, protocol: UDP}
            - {containerPort: 8443, name: web}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: undeclared, labels: {app: undeclared}}
        spec:
          containers: [{name: app, image: example.com/app}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: undeclared}
        spec:
          selector: {app: undeclared}
          ports: [{name: https, port: 443}, {name: http, port: 80, targetPort: 8080}]
        """)
    assert runs(plan, "named") == [[RunHttp((8443, 9443, 8080, 9090), tls_ports=(8443, 9443))]]
    # named http, it is plain even on 443; TLS is TCP's only; another name on 8443 says nothing
    assert runs(plan, "odd") == [[RunHttp((443, 8443), (443,))]]
    # 443 is what a Service targets by number, undeclared: an nginx there would serve TLS
    assert runs(plan, "undeclared") == [[RunHttp((443, 8080), tls_ports=(443,))]]


def test_plain_images_stay_plain():
    plan = plan_of(files=("services/run-my-nginx.yaml", "services/nginx-svc.yaml",
                          "services/debug-service-hostnames-deployment.yaml",
                          "services/debug-service-hostnames-service.yaml"))
    got = [c.run for p in plan.pods for c in p.containers if p.namespace == "default"]
    assert {type(r) for r in got} == {RunHttp, RunServeHostname}
    assert [r.tls_ports for r in got if isinstance(r, RunHttp)] == [()] * 2  # run-my-nginx's two nginx on 80


def test_the_helper_takes_service_https_targets():
    """Ports a Service port named https targets by number (the planner's to pass) are TLS unless
    the container names them http."""
    c = Container("c", "example.com/app", ports=(ContainerPort(8080, "http"), ContainerPort(8443)))
    assert tls_ports(c, (8080, 8443, 9000), https_targets=(8080, 8443)) == (8443,)
    assert tls_ports(c, (8080, 8443, 9000)) == ()
    assert emulated(c, None, [(443, "TCP")]) == RunHttp((8080, 8443, 443), tls_ports=(443,))


def test_tls_ports_survive_the_saved_plan():
    plan = plan_of(files=("services/nginx-secure-app.yaml",))
    assert plan_from_data(plan_to_data(plan)) == plan
    data = plan_to_data(plan)
    for pod in data["pods"]:  # a plan saved before tls_ports existed reads as all plain
        for c in pod["containers"]:
            c["run"].pop("tls_ports", None)
    assert runs(plan_from_data(data), "my-nginx-") == [[RunHttp((443, 80), docroot=NGINX_HTML)]]


# --------------------------------------------------------------------------------------------
# the certificate
# --------------------------------------------------------------------------------------------


def x509(cert: str, *what: str) -> str:
    return subprocess.run(["openssl", "x509", "-in", cert, "-noout", *what], capture_output=True, text=True,
                          check=True).stdout


@needs_openssl
def test_the_certificate_is_made_once_and_its_key_is_private(tmp_path):
    d = str(tmp_path)
    ctx = tls.lab_context(d, "mylab")
    cert, key = tls.paths(d)
    assert sorted(os.listdir(d)) == ["tls.crt", "tls.key"]  # no temporary left behind
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert "CN = mylab" in x509(cert, "-subject")
    assert "DNS:mylab, DNS:localhost, IP Address:127.0.0.1" in x509(cert, "-ext", "subjectAltName")
    before = Path(cert).read_bytes(), Path(key).read_bytes()
    assert tls.lab_context(d, "mylab") is ctx  # loaded once
    tls._contexts.clear()  # a new supervisor of the same lab: the same certificate, read back
    assert isinstance(tls.lab_context(d, "mylab"), ssl.SSLContext)
    assert (Path(cert).read_bytes(), Path(key).read_bytes()) == before


@needs_openssl
def test_a_broken_certificate_is_made_anew(tmp_path):
    d = str(tmp_path)
    cert, _ = tls.paths(d)
    Path(cert).write_text("not a certificate\n")
    tls.lab_context(d, "lab2")
    assert "CN = lab2" in x509(cert, "-subject")


def test_no_certificate_without_the_state_directory(tmp_path):
    gone = str(tmp_path / "gone")
    with pytest.raises(tls.CertificateError):
        tls.lab_context(gone, "lab")
    assert not os.path.exists(gone)  # a lab whose state `down` removed gets none back


def test_a_missing_openssl_is_named(tmp_path):
    with pytest.raises(tls.CertificateError, match="openssl package"):
        tls.make_certificate(str(tmp_path), "lab", openssl="no-such-openssl")


# --------------------------------------------------------------------------------------------
# the server, on loopback
# --------------------------------------------------------------------------------------------


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


def client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # curl -k
    ctx.set_alpn_protocols(["h2", "http/1.1"])  # what curl offers
    return ctx


async def exchange(port: int, request: bytes, tls_: bool, timeout: float = 5) -> bytes:
    """Send `request`, read until the server closes; raises what the connection raises."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=client_context() if tls_ else None), timeout)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def get(path: str, close: bool = True) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: x\r\n" + ("Connection: close\r\n" if close else "") + "\r\n").encode()


@pytest.fixture
def cert_dir(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed (./setup.sh)")
    return str(tmp_path)


def serve(body):
    return asyncio.run(asyncio.wait_for(body, 60))


async def two_ports(cert_dir: str, lines: list[str]):
    https, plain = listener(), listener()
    ports = https.getsockname()[1], plain.getsockname()[1]
    ctx = ServerContext(hostname="my-nginx-7d4b9c-x2x4q", log=lines.append)
    served = await start_default_http(ctx, [https, plain], [], tls=tls.lab_context(cert_dir, "lab"),
                                      tls_ports=(ports[0],))
    return served, ports


def test_the_https_port_answers_over_tls_like_the_plain_one(cert_dir):
    async def main():
        lines: list[str] = []
        served, (https, plain) = await two_ports(cert_dir, lines)
        try:
            out = await exchange(https, get("/hostname"), tls_=True)
            assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nmy-nginx-7d4b9c-x2x4q")
            assert (await exchange(https, get("/"), tls_=True)).endswith(b"\r\n\r\nmy-nginx-7d4b9c-x2x4q\n")
            assert (await exchange(plain, get("/hostname"), tls_=False)).endswith(b"\r\n\r\nmy-nginx-7d4b9c-x2x4q")
            # keep-alive over TLS: two requests on one connection, ALPN says http/1.1
            reader, writer = await asyncio.open_connection("127.0.0.1", https, ssl=client_context())
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
            for _ in range(2):
                writer.write(get("/clientip", close=False))
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                assert (await reader.readexactly(length)).startswith(b"127.0.0.1:")
            writer.close()
            assert f"listening on TCP port {https} (built-in HTTPS server)" in lines
            assert f"listening on TCP port {plain} (built-in HTTP server)" in lines
            assert any('"GET /hostname HTTP/1.1" 200' in line for line in lines)
        finally:
            served.close()
    serve(main())


def test_the_wrong_protocol_fails_fast_on_either_port(cert_dir):
    async def main():
        served, (https, plain) = await two_ports(cert_dir, [])
        try:
            began = time.monotonic()
            # plain HTTP to the HTTPS port: nginx's 400 page at once, then the connection closes
            out = await exchange(https, get("/", close=False), tls_=False)
            head, body = out.split(b"\r\n\r\n", 1)
            assert head.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request"
            assert b"Content-Type: text/html" in head and b"Connection: close" in head
            assert body == (b"<html>\r\n"
                            b"<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n"
                            b"<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n"
                            b"<center>The plain HTTP request was sent to HTTPS port</center>\r\n"
                            b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
            # a client that connects and closes without a word leaves the port serving
            _, writer = await asyncio.open_connection("127.0.0.1", https)
            writer.close()
            # TLS to the plain port: a plain 400 at once (as nginx), which no TLS client takes
            with pytest.raises(ssl.SSLError):
                await exchange(plain, get("/"), tls_=True)
            assert time.monotonic() - began < 3
            # and the HTTPS port still serves
            assert (await exchange(https, get("/hostname"), tls_=True)).endswith(b"my-nginx-7d4b9c-x2x4q")
        finally:
            served.close()
    serve(main())


def test_a_tls_port_needs_a_context():
    async def main():
        sock = listener()
        with pytest.raises(ValueError):
            await start_default_http(ServerContext(hostname="x"), [sock], [], tls_ports=(sock.getsockname()[1],))
        sock.close()
    serve(main())


def test_curl_k_works_against_the_https_port(cert_dir):
    curl = shutil.which("curl")
    if not curl:
        pytest.skip("curl not installed")

    async def main():
        served, (https, plain) = await two_ports(cert_dir, [])
        try:
            proc = await asyncio.create_subprocess_exec(
                curl, "-sSk", "--max-time", "5", f"https://127.0.0.1:{https}/", f"https://127.0.0.1:{https}/hostname",
                stdout=asyncio.subprocess.PIPE)
            assert (await proc.communicate())[0] == b"my-nginx-7d4b9c-x2x4q\nmy-nginx-7d4b9c-x2x4q"
            # verified against the lab's own certificate, by the name it carries
            cert, _ = tls.paths(cert_dir)
            proc = await asyncio.create_subprocess_exec(
                curl, "-sS", "--max-time", "5", "--cacert", cert, f"https://localhost:{https}/hostname",
                stdout=asyncio.subprocess.PIPE)
            assert (await proc.communicate())[0] == b"my-nginx-7d4b9c-x2x4q"
        finally:
            served.close()
    serve(main())


def test_a_service_port_named_https_makes_its_numeric_target_tls():
    """A Service port named https that targets 8443 by number: the emulated server speaks TLS
    there, and stays plain on the port its http Service port targets."""
    model = load_model(["-"], io.StringIO(textwrap.dedent("""
        apiVersion: v1
        kind: Pod
        metadata: {name: dash, labels: {app: dash}}
        spec:
          containers: [{name: web, image: example.com/dashboard:2}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: dash}
        spec:
          selector: {app: dash}
          ports:
          - {name: https, port: 443, targetPort: 8443}
          - {name: http, port: 80, targetPort: 9090}
        """).lstrip()))
    run = make_plan(model, "lab").pod("default/dash").containers[0].run
    assert run.ports == (8443, 9090) and run.tls_ports == (8443,)
