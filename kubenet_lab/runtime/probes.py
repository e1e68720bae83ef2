"""Running one probe, as kubelet's probers (pkg/probe/http, tcp, exec) run it, from inside the
lab: every socket is opened in the pod's network namespace (where kubelet dials from its node,
the lab dials from the pod's own namespace, to the same address), a command runs as a process
of the pod with its container's environment. Each returns (result, output): result SUCCESS,
FAILURE, or ERROR (the probe could not be run: kubelet throws the result away), and output as
kubelet words it in its events (Go's error texts). Asyncio only: nothing here blocks the loop.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
from typing import Callable, Mapping

from .. import KUBERNETES_MINOR
from ..kernel.confine import Launch
from ..model.objects import Probe
from ..plan.containers import CONTAINER_PATH
from ..plan.probes import ERROR, FAILURE, SUCCESS

USER_AGENT = f"kube-probe/{KUBERNETES_MINOR}"  # kubelet's: kube-probe/<major>.<minor>
MAX_OUTPUT = 10 * 1024  # kubelet keeps at most 10 KiB of a probe's output

Socket = Callable[[int, int], socket.socket]  # a socket in the pod's network namespace
Result = tuple[str, str]
# How an exec probe's process starts, confined as its container (PodEnv.spawn): (argv, environment)
# -> a kernel.confine.Launch.
Spawn = Callable[[list[str], Mapping[str, str]], "Launch"]

_GO_INT = re.compile(r"^[+-]?\d+$")


def probe_port(port: int | str | None) -> tuple[int | None, str]:
    """kubelet's port of a probe: a number, or a name the container does not declare, which it
    then reads as a number (failing as strconv.Atoi fails). -> (port, error)."""
    if isinstance(port, str):
        if not _GO_INT.match(port):
            return None, f'strconv.Atoi: parsing "{port}": invalid syntax'
        port = int(port)
    if port is None or not 0 < port < 65536:
        return None, f"invalid port number: {port}"
    return port, ""


def _dial_error(e: BaseException) -> str:
    """Go's net.OpError text after `dial tcp HOST:PORT: `."""
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return "i/o timeout"
    if isinstance(e, OSError) and e.errno:
        return f"connect: {os.strerror(e.errno).lower()}"
    return str(e)


def _address(host: str) -> str | None:
    """An address to dial for `host` (kubelet resolves names on its node; the lab only knows
    addresses, and localhost)."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        return None


async def _connect(open_socket: Socket, host: str, port: int) -> socket.socket:
    addr = _address(host)
    if addr is None:
        raise LookupError(f"dial tcp: lookup {host}: no such host")
    sock = open_socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (addr, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def tcp_socket(open_socket: Socket, host: str, port: int, timeout: float) -> Result:
    """Connect, then close: success once the connection is made."""
    try:
        sock = await asyncio.wait_for(_connect(open_socket, host, port), timeout)
    except LookupError as e:
        return FAILURE, str(e)
    except (OSError, asyncio.TimeoutError) as e:
        return FAILURE, f"dial tcp {host}:{port}: {_dial_error(e)}"
    sock.close()
    return SUCCESS, ""


def _url(scheme: str, host: str, port: int, path: str) -> str:
    if path and not path.startswith("/"):
        path = "/" + path
    return f"{scheme.lower()}://{host}:{port}{path}"


async def http_get(open_socket: Socket, scheme: str, host: str, port: int, path: str,
                   headers: tuple[tuple[str, str], ...], timeout: float) -> Result:
    """GET the URL: success for a status from 200 to 399 (redirects are not followed: a 3xx
    passes, as it would once kubelet followed it to the same host). The TLS certificate is not
    checked, as kubelet does not check it."""
    url = _url(scheme, host, port, path)
    try:
        return await asyncio.wait_for(_http_get(open_socket, scheme, host, port, url, headers), timeout)
    except asyncio.TimeoutError:
        return FAILURE, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'


async def _http_get(open_socket: Socket, scheme: str, host: str, port: int, url: str,
                    headers: tuple[tuple[str, str], ...]) -> Result:
    try:
        sock = await _connect(open_socket, host, port)
    except LookupError as e:
        return FAILURE, f'Get "{url}": {e}'
    except OSError as e:
        return FAILURE, f'Get "{url}": dial tcp {host}:{port}: {_dial_error(e)}'
    context = None
    if scheme == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    writer = None
    try:
        reader, writer = await asyncio.open_connection(sock=sock, ssl=context,
                                                       server_hostname=host if context else None)
        target = url.split(f"{host}:{port}", 1)[1] or "/"
        fields = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*"}
        canon = {k.lower(): k for k in fields}
        for name, value in headers:  # httpHeaders replace the defaults of the same name
            fields.pop(canon.get(name.lower(), name), None)
            fields[name] = value
        head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        writer.write(f"GET {target} HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode())
        await writer.drain()
        status = (await reader.readline()).decode(errors="replace").split()
        if not status:
            return FAILURE, f'Get "{url}": EOF'
        code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
        if not code:
            return FAILURE, f'Get "{url}": net/http: HTTP/1.x transport connection broken: malformed HTTP response'
        if 200 <= code < 400:
            return SUCCESS, ""
        return FAILURE, f"HTTP probe failed with statuscode: {code}"
    except ssl.SSLError as e:
        return FAILURE, f'Get "{url}": {e.reason or e}'
    except ConnectionResetError:
        return FAILURE, f'Get "{url}": read tcp {host}:{port}: read: connection reset by peer'
    except OSError as e:
        return FAILURE, f'Get "{url}": {os.strerror(e.errno).lower() if e.errno else e}'
    finally:
        if writer is not None:
            writer.close()
        else:
            sock.close()


def _which(exe: str, path: str) -> bool:
    return (os.access(exe, os.X_OK) and os.path.isfile(exe)) if "/" in exe else shutil.which(exe, path=path) is not None


async def exec_command(argv: tuple[str, ...], environ: Mapping[str, str], spawn: Spawn, timeout: float) -> Result:
    """Run the command as a process of the pod (its namespaces, the container's environment):
    exit code 0 is success; its output (stdout and stderr) is what kubelet reports."""
    exe = argv[0] if argv else ""
    if not exe or not _which(exe, environ.get("PATH", CONTAINER_PATH)):
        where = "no such file or directory" if "/" in exe else "executable file not found in $PATH"
        return FAILURE, (f'OCI runtime exec failed: exec failed: unable to start container process: '
                         f'exec: "{exe}": {where}: unknown')
    try:
        launch = spawn(list(argv), environ)
        try:
            proc = await asyncio.create_subprocess_exec(
                *launch.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, cwd="/", start_new_session=True, **launch.kwargs())
        finally:
            launch.close()
    except (OSError, ValueError, RuntimeError) as e:  # SubprocessError: could not enter the pod
        return ERROR, f"cannot run {exe} in the pod: {e}"
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        return FAILURE, f'command "{" ".join(argv)}" timed out'
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # what it left behind, or all of it at the timeout
        await proc.wait()
    text = out[:MAX_OUTPUT].decode(errors="replace")
    return (SUCCESS if proc.returncode == 0 else FAILURE), text


async def run_probe(probe: Probe, open_socket: Socket, pod_ip: str,
                    environ: Callable[[], Mapping[str, str]], spawn: Spawn) -> Result:
    """One run of `probe` against a container of the pod at `pod_ip`."""
    timeout = float(probe.timeout)
    if probe.handler == "exec":
        return await exec_command(probe.command, environ(), spawn, timeout)
    port, error = probe_port(probe.port)
    if port is None:
        return ERROR, error
    host = probe.host or pod_ip
    if probe.handler == "tcpSocket":
        return await tcp_socket(open_socket, host, port, timeout)
    if probe.handler == "httpGet":
        return await http_get(open_socket, probe.scheme, host, port, probe.path, probe.headers, timeout)
    return SUCCESS, ""  # grpc: not run (see plan.probes.runnable)
