"""Built-in equivalents of agnhost `netexec` and `serve-hostname`.

Same paths, same answers, same status codes and log lines as kubernetes/test/images/agnhost, so
tests written against the real image read the same here. What agnhost does by exiting (/exit,
/shutdown, fatal flag combinations) goes through `ServerContext.exit`: the supervisor ends the
container and restarts it as a kubelet would.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import subprocess

from .base import Served, ServerContext, addr_str, go_exit_error, go_json, go_now, go_quote
from .http import Request, Response, clean_path, error, http_get, reason, serve_http, serve_udp, text

DIAL_TIMEOUT = 5.0
UDP_BUFFER = 2048
SHELL = "/bin/sh"

_INT = re.compile(r"^[+-]?\d+$")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def atoi(s: str) -> int:
    """strconv.Atoi, with its error text."""
    if not _INT.match(s):
        raise ValueError(f"strconv.Atoi: parsing {go_quote(s)}: invalid syntax")
    return int(s)


def parse_duration(s: str) -> float:
    """time.ParseDuration ("1.5s", "300ms", "1h2m"), in seconds."""
    body = s[1:] if s[:1] in "+-" else s
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f"time: invalid duration {go_quote(s)}")
    return -total if s.startswith("-") else total


# --------------------------------------------------------------------------------------------
# netexec
# --------------------------------------------------------------------------------------------


class Netexec:
    """The HTTP handlers and UDP commands of `agnhost netexec`."""

    def __init__(self, ctx: ServerContext, udp_ready: bool, delay_shutdown: int = 0):
        self.ctx = ctx
        self.udp_ready = udp_ready  # /healthz is 200 only while the UDP server runs, as in agnhost
        self.delay_shutdown = delay_shutdown
        self.terminating = False  # SIGTERM received: /readyz says 503 while it keeps serving
        self.routes = {
            "/clientip": self.clientip, "/dial": self.dial, "/echo": self.echo, "/exit": self.exit,
            "/healthz": self.healthz, "/readyz": self.readyz, "/hostname": self.hostname, "/hostName": self.hostname,
            "/redirect": self.redirect, "/shell": self.shell, "/shutdown": self.shutdown,
            "/upload": self.upload,
        }

    async def handle(self, req: Request) -> Response:
        route = self.routes.get(clean_path(req.path), self.root)
        result = route(req)
        return await result if asyncio.iscoroutine(result) else result

    def root(self, req: Request) -> Response:
        self.ctx.golog("GET /")
        return text(f"NOW: {go_now(self.ctx.started)}")

    def clientip(self, req: Request) -> Response:
        self.ctx.golog("GET /clientip")
        return text(req.remote_addr)

    def hostname(self, req: Request) -> Response:
        self.ctx.golog(f"GET {req.path}")
        return text(self.ctx.hostname)

    def healthz(self, req: Request) -> Response:
        self.ctx.golog("GET /healthz")
        return Response(200 if self.udp_ready else 412)

    def readyz(self, req: Request) -> Response:
        """503 once SIGTERM came (so a readiness probe takes the pod out while it still serves
        for --delay-shutdown seconds), else as /healthz, with a body."""
        self.ctx.golog("GET /readyz")
        if self.terminating:
            return text("shutting down", 503)
        return text("ok") if self.udp_ready else Response(412)

    def sigterm(self) -> float:
        """SIGTERM: agnhost sleeps --delay-shutdown seconds, serving all the while, then exits 0."""
        self.terminating = True
        if self.delay_shutdown > 0:
            self.ctx.golog(f"Sleeping {self.delay_shutdown} seconds before terminating...")
        return float(self.delay_shutdown)

    def echo(self, req: Request) -> Response:
        msg, code = req.value("msg"), req.value("code")
        self.ctx.golog(f"GET /echo?msg={msg}&code={code}")
        if code:
            try:
                status = atoi(code)
            except ValueError:
                return text(f"argument 'code' must be an integer or empty, got {go_quote(code)}\n")
            return text(msg, status) if 100 <= status <= 999 else Response(abort=True)
        return text(msg)

    def exit(self, req: Request) -> Response:
        wait_s, timeout_s, code_s = req.value("wait"), req.value("timeout"), req.value("code")
        self.ctx.golog(f"GET /exit?code={code_s}&timeout={timeout_s}&wait={wait_s}")
        try:
            timeout = parse_duration(timeout_s) if timeout_s else 0.0
        except ValueError:
            return text(f"argument 'timeout' must be a valid golang duration or empty, got {go_quote(timeout_s)}\n")
        try:
            wait = parse_duration(wait_s) if wait_s else 0.0
        except ValueError:
            return text(f"argument 'wait' must be a valid golang duration or empty, got {go_quote(wait_s)}\n")
        try:
            code = atoi(code_s) if code_s else 0
        except ValueError:
            return text(f"argument 'code' must be an integer [0-127] or empty, got {go_quote(code_s)}\n")
        self.ctx.golog(f"Will begin shutdown in {wait_s or '0s'}, allowing {timeout_s or '0s'} "
                       f"for connections to close, then will exit with {code}")
        return self._exit_later(wait, code, graceful=timeout > 0)

    async def _exit_later(self, wait: float, code: int, graceful: bool) -> Response:
        await asyncio.sleep(max(wait, 0.0))
        # Without a timeout agnhost calls os.Exit at once: the caller gets no answer.
        return Response(200, abort=not graceful, close=True, after=lambda: self.ctx.exit(code))

    def shutdown(self, req: Request) -> Response:
        self.ctx.golog("GET /shutdown")
        return Response(abort=True, after=lambda: self.ctx.exit(0))

    def redirect(self, req: Request) -> Response:
        location, code_s = req.value("location"), req.value("code")
        self.ctx.golog(f"{req.method} /redirect?msg={location}&code={code_s}")
        code = 302
        if code_s:
            try:
                code = atoi(code_s)
            except ValueError:
                return text(f"argument 'code' must be an integer or empty, got {go_quote(code_s)}\n")
        headers = {"Location": location}
        if req.method in ("GET", "HEAD"):
            headers["Content-Type"] = "text/html; charset=utf-8"
        body = ""
        if req.method == "GET":
            body = f'<a href="{_html_escape(location)}">{_status_text(code)}</a>.\n\n'
        return Response(code, body, headers)

    def upload(self, req: Request) -> Response:
        # No multipart parser here: agnhost's answer for a request without a file.
        self.ctx.golog("GET /upload")
        self.ctx.golog("Unable to upload file: http: no such file")
        return text(go_json({"error": "Unable to upload file."}))

    async def shell(self, req: Request) -> Response:
        cmd = req.value("shellCommand") or req.value("cmd")
        self.ctx.golog(f"GET /shell?cmd={cmd}")
        output: dict[str, str] = {}
        # As a process of the container (ServerContext.spawn), with its environment.
        launch = self.ctx.spawn([SHELL, "-c", cmd]) if self.ctx.spawn is not None else None
        try:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *(launch.argv if launch else [SHELL, "-c", cmd]), stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                    **(launch.kwargs() if launch else {}))
            finally:
                if launch is not None:
                    launch.close()
        except (OSError, subprocess.SubprocessError) as e:
            output["error"] = f"fork/exec {SHELL}: {_strerror(e) if isinstance(e, OSError) else e}"
        else:
            try:
                out, _ = await proc.communicate()
            except asyncio.CancelledError:
                proc.kill()
                raise
            if out:
                output["output"] = out.decode("utf-8", "replace")
            if (err := go_exit_error(proc.returncode)) is not None:
                output["error"] = err
        self.ctx.golog("Output: map[" + " ".join(f"{k}:{v}" for k, v in sorted(output.items())) + "]")
        return text(go_json(output))

    # ---- /dial ----------------------------------------------------------------------------

    async def dial(self, req: Request) -> Response:
        q = {k: v[0] for k, v in req.query.items()}
        host, port, request = q.get("host", ""), q.get("port", ""), q.get("request", "")
        protocol, tries_s = q.get("protocol", ""), q.get("tries", "")
        self.ctx.golog(f"GET /dial?host={host}&protocol={protocol}&port={port}&request={request}&tries={tries_s}")
        try:
            tries = atoi(tries_s) if tries_s else 1
        except ValueError as e:
            return error(f"tries parameter is invalid. {e}", 400)
        if not request:
            return error("request parameter not specified. <nil>", 400)
        dialers = {"": self._dial_http, "http": self._dial_http, "udp": self._dial_udp}
        dialer = dialers.get(protocol.lower())
        if dialer is None:
            return error(f"unsupported protocol. {protocol}", 400)
        kind = "udp" if protocol.lower() == "udp" else "tcp"
        try:
            addr = await self._resolve(kind, host, port)
        except ValueError as e:
            return error(f"host and/or port param are invalid. {e}", 400)
        responses: list[str] = []
        errors: list[str] = []
        response = ""
        for _ in range(tries):
            try:
                response = await dialer(request, addr)
                responses.append(response)
            except DialError as e:
                response = ""
                errors.append(str(e))
        out: dict[str, list[str]] = {}
        if response:  # agnhost looks at the last try only
            out["responses"] = responses
        if errors:
            out["errors"] = errors
        return text(go_json(out))

    async def _resolve(self, kind: str, host: str, port: str) -> tuple[str, int]:
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not _INT.match(port or "0") or not 0 <= int(port or "0") <= 65535:
            raise ValueError(f"lookup {kind}/{port}: unknown port" if not _INT.match(port)
                             else f"address {hostport}: invalid port")
        if not host:
            return "127.0.0.1", int(port or 0)
        try:
            ipaddress.ip_address(host)
            return host, int(port or 0)
        except ValueError:
            pass
        try:
            return await self.ctx.resolve(host), int(port or 0)
        except (OSError, LookupError) as e:
            raise ValueError(f"lookup {host}: no such host") from e

    def _socket(self, addr: tuple[str, int], type_: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        sock = self.ctx.socket(family, type_)
        sock.setblocking(False)
        return sock

    async def _dial_http(self, request: str, addr: tuple[str, int]) -> str:
        hostport = addr_str(addr)
        url = f"http://{hostport}/{request}"
        loop = asyncio.get_running_loop()
        sock = self._socket(addr, socket.SOCK_STREAM)
        writer = None
        try:
            async with asyncio.timeout(DIAL_TIMEOUT):
                try:
                    await loop.sock_connect(sock, addr)
                except OSError as e:
                    raise DialError(f'Get "{url}": dial tcp {hostport}: connect: {_strerror(e)}') from e
                reader, writer = await asyncio.open_connection(sock=sock)
                try:
                    _, body = await http_get(reader, writer, hostport, "/" + request)
                except (asyncio.IncompleteReadError, ConnectionError):
                    raise DialError(f'Get "{url}": EOF') from None
                except Exception as e:
                    raise DialError(f'Get "{url}": {e}') from e
            return body.decode("utf-8", "replace")
        except TimeoutError:
            raise DialError(f'Get "{url}": context deadline exceeded '
                            "(Client.Timeout exceeded while awaiting headers)") from None
        finally:
            if writer is not None:
                writer.close()
            else:
                sock.close()

    async def _dial_udp(self, request: str, addr: tuple[str, int]) -> str:
        loop = asyncio.get_running_loop()
        sock = self._socket(addr, socket.SOCK_DGRAM)
        try:
            try:
                sock.connect(addr)
                await loop.sock_sendall(sock, request.encode())
            except OSError as e:
                raise DialError(f"udp dial failed. err:dial udp {addr_str(addr)}: {_strerror(e)}") from e
            conn = f"{addr_str(sock.getsockname())}->{addr_str(addr)}"
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, UDP_BUFFER), DIAL_TIMEOUT)
            except TimeoutError:
                raise DialError(f"reading from udp connection failed. err:'read udp {conn}: i/o timeout'") from None
            except OSError as e:
                raise DialError(f"reading from udp connection failed. err:'read udp {conn}: "
                                f"read: {_strerror(e)}'") from e
            if not data:
                raise DialError("reading from udp connection failed. err:'<nil>'")
            return data.decode("utf-8", "replace")
        finally:
            sock.close()

    # ---- UDP ------------------------------------------------------------------------------

    def udp(self, data: bytes, addr: tuple) -> bytes | None:
        received = data[:UDP_BUFFER].decode("utf-8", "replace").strip().lower()
        client = addr_str(addr)
        if received == "hostname":
            self.ctx.golog("Sending udp hostName response")
            return self.ctx.hostname.encode()
        if received.startswith("echo "):
            msg = received.split(" ", 1)[1]
            self.ctx.golog(f"Echoing {msg} to UDP client {client}")
            return msg.encode()
        if received == "clientip":
            self.ctx.golog(f"Sending clientip back to UDP client {client}")
            return client.encode()
        if received:
            self.ctx.golog(f"Unknown UDP command received from {client}: {received}")
        return None


class DialError(Exception):
    pass


def _strerror(e: OSError) -> str:
    """The kernel's text for the error, lower-case as Go's syscall errors print."""
    return (os.strerror(e.errno) if e.errno else str(e)).lower()


def _html_escape(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;"))


def _status_text(code: int) -> str:
    return reason(code) if not reason(code).startswith("status code") else ""


async def start_netexec(ctx: ServerContext, http_sock: socket.socket | None,
                        udp_sock: socket.socket | None, delay_shutdown: int = 0) -> Served:
    """Serve netexec on the given sockets (None: that server is disabled with -1)."""
    app = Netexec(ctx, udp_ready=udp_sock is not None, delay_shutdown=delay_shutdown)
    served = Served()
    served.terminate = app.sigterm
    try:
        if udp_sock is not None:
            await serve_udp(udp_sock, app.udp, served)
            ctx.golog(f"Started UDP server on port  {udp_sock.getsockname()[1]}")
        if http_sock is not None:
            ctx.golog(f"Started HTTP server on port {http_sock.getsockname()[1]}")
            await serve_http(http_sock, app.handle, served)
    except BaseException:
        served.close()
        raise
    return served


# --------------------------------------------------------------------------------------------
# serve-hostname
# --------------------------------------------------------------------------------------------

SERVE_HOSTNAME_CONFLICT = "Can't server TCP/UDP mode and HTTP mode at the same time"


class ServeHostname:
    def __init__(self, ctx: ServerContext):
        self.ctx = ctx

    def http(self, req: Request) -> Response:
        self.ctx.golog(f"HTTP request from {req.remote_addr}")
        return text(self.ctx.hostname)

    async def tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.ctx.golog(f"TCP request from {addr_str(writer.get_extra_info('peername'))}")
        try:
            writer.write(self.ctx.hostname.encode())
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def udp(self, data: bytes, addr: tuple) -> bytes:
        self.ctx.golog(f"UDP request from {addr_str(addr)}")
        return self.ctx.hostname.encode()


async def start_serve_hostname(ctx: ServerContext, tcp_sock: socket.socket | None,
                               udp_sock: socket.socket | None, http: bool) -> Served:
    """Serve the hostname: over HTTP on `tcp_sock` if `http`, else raw over TCP and/or UDP.

    The caller checks the flag combination agnhost refuses (SERVE_HOSTNAME_CONFLICT)."""
    app = ServeHostname(ctx)
    served = Served()
    try:
        if tcp_sock is not None and not http:
            server = await asyncio.start_server(app.tcp, sock=tcp_sock)
            served.servers.append(server)
        if udp_sock is not None:
            await serve_udp(udp_sock, app.udp, served)
        if tcp_sock is not None and http:
            await serve_http(tcp_sock, app.http, served)
        port = (tcp_sock or udp_sock).getsockname()[1] if (tcp_sock or udp_sock) else 0
        ctx.golog(f"Serving on port {port}.")
    except BaseException:
        served.close()
        raise
    return served
