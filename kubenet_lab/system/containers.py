"""What the supervisor runs for each container, and the kubelet-like loop that keeps it running.

A `Runner` starts one container once (a child process, or built-in servers on sockets bound in
the pod's namespace) and reports when it ends; a `Container` restarts its runner with backoff
(restartPolicy Always, as for a Deployment's pods) and keeps the status `get pods` shows.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import time
from collections import deque
from datetime import datetime, timezone
from typing import Callable

from ..plan.model import (Plan, PlannedContainer, PlannedPod, RunDns, RunExec, RunHttp, RunNetexec,
                          RunNothing, RunServeHostname)
from ..plan.containers import CONTAINER_PATH, process_argv, process_environment
from ..plan.podfiles import pod_files, pod_hostname
from ..servers import agnhost, tls
from ..servers.base import Served, ServerContext
from ..servers.dns import ClusterDNS, serve_dns
from ..servers.http import start_default_http
from ..servers.resolve import PodResolver
from . import state
from .nsenter import die_with_parent, enter_pod, in_netns

log = logging.getLogger("kubenet-lab.supervisor")

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
BACKOFF_RESET = 60.0  # a container that ran this long starts its backoff afresh


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class StartError(Exception):
    """The container could not start; `reason` is what kubectl would show (RunContainerError)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class LogBuffer:
    """A built-in server's log: its last MAX_LINES lines, in the supervisor's memory.

    A file per container would cost a disk create and unlink each (/run may be ext4) for
    hundreds of containers; `kubenet-lab logs` asks the supervisor instead."""

    MAX_LINES = 2000

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=self.MAX_LINES)

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


def ensure_log_dir(path: str) -> None:
    """Create the log's directory, but never the lab's state directory: once `down` removed
    it, a late line must not bring it back."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(os.path.dirname(path))


class LogFile:
    """A real process's log: the file its stdout and stderr go to, and our lines about it."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, line: str) -> None:
        with contextlib.suppress(OSError):  # a removed log never breaks the supervisor
            ensure_log_dir(self.path)
            with open(self.path, "a", encoding="utf-8", errors="replace") as f:
                f.write(line + "\n")

    def text(self) -> str:
        try:
            with open(self.path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


class PodEnv:
    """Where a pod's containers live: its network namespace, hostname and files (target path ->
    content, mounted over the target in each of its processes)."""

    def __init__(self, lab: str, pod: PlannedPod, plan: Plan):
        self.lab = lab
        self.pod = pod
        self.netns = pod.netns
        self.hostname = pod_hostname(plan, pod)
        self.files = pod_files(plan, pod)

    def log_path(self, container: str) -> str:
        return state.log_path(self.lab, self.pod.namespace, self.pod.name, container)

    def preexec(self) -> None:
        """In a fresh child: die with the supervisor, then become a process of the pod."""
        die_with_parent()
        enter_pod(self.netns, hostname=self.hostname, files=self.files)

    def socket(self, family: int, type_: int) -> socket.socket:
        with in_netns(self.netns):
            return socket.socket(family, type_)

    def listeners(self, specs: list[tuple[int, int]]) -> list[socket.socket]:
        """Bind 0.0.0.0:port sockets inside the pod's namespace ((type, port) each)."""
        socks: list[socket.socket] = []
        try:
            with in_netns(self.netns):
                for type_, port in specs:
                    proto = "tcp" if type_ == socket.SOCK_STREAM else "udp"
                    sock = socket.socket(socket.AF_INET, type_)
                    socks.append(sock)
                    try:
                        if type_ == socket.SOCK_STREAM:
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        sock.bind(("0.0.0.0", port))
                        if type_ == socket.SOCK_STREAM:
                            sock.listen(128)
                    except OSError as e:
                        raise StartError("Error", f"listen {proto} :{port}: bind: "
                                         f"{os.strerror(e.errno).lower()}") from e
                    sock.setblocking(False)
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        return socks

    def _file(self, path: str) -> str:
        """What the pod's processes see at `path`: its own content, or the host's file."""
        if path in self.files:
            return self.files[path]
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""

    def context(self, log: Callable[[str], None], exit: Callable[[int], None]) -> ServerContext:
        return ServerContext(hostname=self.hostname, log=log, socket=self.socket,
                             resolve=PodResolver(self._file("/etc/resolv.conf"), self._file("/etc/hosts"),
                                                 self.socket),
                             preexec=self.preexec, exit=exit)


# --------------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------------


class Runner:
    """Runs a container once: start() returns when it runs, wait() when it has ended."""

    pid: int | None = None

    async def start(self) -> None:
        raise NotImplementedError

    async def wait(self) -> int:
        raise NotImplementedError

    async def stop(self, grace: float) -> None:
        raise NotImplementedError

    def update(self, plan: Plan) -> None:
        """A new plan was loaded (the DNS server needs it); the container itself is unchanged."""

    def logs(self) -> str:
        """What `kubenet-lab logs` shows: the output of every start, oldest first."""
        return ""


class IdleRunner(Runner):
    """RunNothing: the namespace alone is the pod, as the pause container is."""

    def __init__(self) -> None:
        self._ended: asyncio.Future | None = None

    async def start(self) -> None:
        self._ended = asyncio.get_running_loop().create_future()

    async def wait(self) -> int:
        return await self._ended

    async def stop(self, grace: float) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(0)


class ExecRunner(Runner):
    """RunExec: a real process in the pod's namespaces, output appended to the container's log."""

    def __init__(self, env: PodEnv, container: PlannedContainer, plan: Callable[[], Plan]):
        self.env = env
        self.container = container
        self.plan = plan
        self.argv: list[str] = list(container.run.argv)
        self.log = LogFile(env.log_path(container.name))
        self.proc: asyncio.subprocess.Process | None = None
        self._spawn: asyncio.Future | None = None

    def _check_executable(self) -> None:
        exe = self.argv[0] if self.argv else ""
        found = (os.access(exe, os.X_OK) and os.path.isfile(exe)) if "/" in exe else \
            shutil.which(exe, path=CONTAINER_PATH) if exe else None
        if not found:
            where = "no such file or directory" if "/" in exe else "executable file not found in $PATH"
            raise StartError("RunContainerError", f'exec: "{exe}": {where}')

    async def start(self) -> None:
        # Like kubelet, at each start: the service variables of that moment, then $(NAME) expanded.
        environ = process_environment(self.plan(), self.env.pod, self.container, self.env.hostname)
        self.argv = process_argv(self.container.run, environ)
        try:
            self._check_executable()
        except StartError as e:
            self.log(f"kubenet-lab: cannot start the container: {e.message}")
            raise
        try:
            ensure_log_dir(self.log.path)
        except OSError as e:
            raise StartError("RunContainerError", f"cannot create the log {self.log.path}: {e}") from e
        fd = os.open(self.log.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            # Shielded, so a stop() arriving meanwhile still finds (and ends) the process.
            self._spawn = asyncio.ensure_future(asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=fd, cwd="/",
                env=environ,
                preexec_fn=self.env.preexec, start_new_session=True))
            self.proc = await asyncio.shield(self._spawn)
        except (OSError, ValueError, RuntimeError) as e:  # SubprocessError: preexec_fn failed
            raise StartError("RunContainerError", f"cannot start {self.argv[0]}: {e}") from e
        except Exception as e:
            raise StartError("RunContainerError", f"cannot enter pod {self.env.pod.key}: {e}") from e
        finally:
            os.close(fd)
        self.pid = self.proc.pid

    def logs(self) -> str:
        return self.log.text()

    async def wait(self) -> int:
        rc = await self.proc.wait()
        self._kill_group(signal.SIGKILL)  # whatever it left behind ends with it, as in a cgroup
        return rc if rc >= 0 else 128 - rc

    def _kill_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def stop(self, grace: float) -> None:
        if self._spawn is not None and self.proc is None:
            with contextlib.suppress(Exception):
                self.proc = await self._spawn
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self._kill_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except asyncio.TimeoutError:
                pass
        self._kill_group(signal.SIGKILL)
        await self.proc.wait()


class ServerRunner(Runner):
    """Built-in servers served by the supervisor itself on sockets bound in the pod."""

    def __init__(self, env: PodEnv, container: PlannedContainer):
        self.env = env
        self.run = container.run
        self.log = LogBuffer()
        self.served: Served | None = None
        self._ended: asyncio.Future | None = None

    def logs(self) -> str:
        return self.log.text()

    def _exit(self, code: int) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(code)

    async def start(self) -> None:
        self._ended = asyncio.get_running_loop().create_future()
        ctx = self.env.context(self.log, self._exit)
        try:
            self.served = await self._serve(ctx)
        except StartError as e:
            ctx.golog(e.message)  # agnhost's log.Fatal
            raise
        self.pid = os.getpid()

    async def _serve(self, ctx: ServerContext) -> Served:
        run = self.run
        if isinstance(run, RunNetexec):
            specs = [(socket.SOCK_STREAM, run.http_port)] if run.http_port != -1 else []
            specs += [(socket.SOCK_DGRAM, run.udp_port)] if run.udp_port != -1 else []
            socks = self.env.listeners(specs)
            tcp = next((s for s in socks if s.type == socket.SOCK_STREAM), None)
            udp = next((s for s in socks if s.type == socket.SOCK_DGRAM), None)
            return await _closing_on_error(socks, agnhost.start_netexec(ctx, tcp, udp))
        if isinstance(run, RunServeHostname):
            if run.http and (run.tcp or run.udp):
                raise StartError("Error", agnhost.SERVE_HOSTNAME_CONFLICT)
            specs = [(socket.SOCK_STREAM, run.port)] if run.http or run.tcp else []
            specs += [(socket.SOCK_DGRAM, run.port)] if run.udp else []
            socks = self.env.listeners(specs)
            tcp = next((s for s in socks if s.type == socket.SOCK_STREAM), None)
            udp = next((s for s in socks if s.type == socket.SOCK_DGRAM), None)
            return await _closing_on_error(socks, agnhost.start_serve_hostname(ctx, tcp, udp, run.http))
        assert isinstance(run, RunHttp)
        context = None
        if run.tls_ports:  # the lab's certificate, made at the first HTTPS port and kept in its state
            try:
                context = tls.lab_context(state.state_dir(self.env.lab), self.env.lab)
            except tls.CertificateError as e:
                raise StartError("RunContainerError", str(e)) from e
        socks = self.env.listeners([(socket.SOCK_STREAM, p) for p in run.ports] +
                                   [(socket.SOCK_DGRAM, p) for p in run.udp_ports])
        tcp = [s for s in socks if s.type == socket.SOCK_STREAM]
        udp = [s for s in socks if s.type == socket.SOCK_DGRAM]
        return await _closing_on_error(socks, start_default_http(ctx, tcp, udp, run.text, context, run.tls_ports))

    async def wait(self) -> int:
        return await self._ended

    async def stop(self, grace: float) -> None:
        if self.served is not None:
            self.served.close()
            self.served = None
        self._exit(0)


class DnsRunner(Runner):
    """RunDns: the cluster DNS of kubenet_lab.servers.dns (`ClusterDNS(plan)` answers from the
    plan, `serve_dns(netns, port, dns, log)` serves it), fed every new plan on reload."""

    def __init__(self, env: PodEnv, container: PlannedContainer, plan: Callable[[], Plan | None]):
        self.env = env
        self.port = container.run.port
        self.log = LogBuffer()
        self.plan = plan
        self.dns = None
        self.served: Served | None = None
        self._ended: asyncio.Future | None = None

    def logs(self) -> str:
        return self.log.text()

    async def start(self) -> None:
        self._ended = asyncio.get_running_loop().create_future()
        self.dns = ClusterDNS(self.plan())
        try:
            self.served = await serve_dns(self.env.netns, self.port, self.dns, self.log)
        except OSError as e:
            message = f"listen :{self.port}: bind: {os.strerror(e.errno).lower() if e.errno else e}"
            self.log(message)
            raise StartError("Error", message) from e
        self.pid = os.getpid()

    async def wait(self) -> int:
        return await self._ended

    def update(self, plan: Plan) -> None:
        if self.dns is not None and plan is not None:
            self.dns.update(plan)

    async def stop(self, grace: float) -> None:
        if self.served is not None:
            self.served.close()
            self.served = None
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(0)


async def _closing_on_error(socks: list[socket.socket], awaitable):
    try:
        return await awaitable
    except BaseException:
        for sock in socks:
            sock.close()
        raise


def make_runner(lab: str, pod: PlannedPod, container: PlannedContainer,
                plan: Callable[[], Plan | None]) -> Runner:
    run = container.run
    if isinstance(run, RunNothing):
        return IdleRunner()
    env = PodEnv(lab, pod, plan())
    if isinstance(run, RunExec):
        return ExecRunner(env, container, plan)
    if isinstance(run, RunDns):
        return DnsRunner(env, container, plan)
    if isinstance(run, (RunNetexec, RunServeHostname, RunHttp)):
        return ServerRunner(env, container)
    raise TypeError(f"unknown run spec {run!r}")


# --------------------------------------------------------------------------------------------
# The restart loop
# --------------------------------------------------------------------------------------------


class Container:
    """One container kept running: start, wait for the end, back off, start again.

    Its state reads like a kubelet's: "running"; "waiting" with a reason (ContainerCreating,
    RunContainerError or Error when it cannot start, CrashLoopBackOff between an exit and the
    restart, exitCode keeping the last exit); "terminated" once the supervisor stopped it."""

    def __init__(self, runner: Runner, on_change: Callable[[], None] | None = None):
        self.runner = runner
        self.on_change = on_change  # told when the container starts or stops running (its readiness)
        self.state = "waiting"
        self.reason: str | None = "ContainerCreating"
        self.message: str | None = None
        self.restarts = 0
        self.exit_code: int | None = None
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self._task: asyncio.Task | None = None
        self._first = asyncio.Event()

    async def start(self) -> None:
        """Returns once the first attempt has either started or failed."""
        self._task = asyncio.create_task(self._run())
        await self._first.wait()

    async def _run(self) -> None:
        delay = BACKOFF_START
        while True:
            began = time.monotonic()
            try:
                await self.runner.start()
            except StartError as e:
                self._set("waiting", e.reason, e.message)
            except Exception as e:  # a namespace gone, or a bug: report it, never hang a reload
                log.exception("container failed to start")
                self._set("waiting", "RunContainerError", f"{type(e).__name__}: {e}")
            else:
                self._set("running")
                self.started_at = utc_now()
                self._first.set()
                code = await self.runner.wait()
                await self.runner.stop(0)
                self.exit_code, self.finished_at = code, utc_now()
                self._set("waiting", "CrashLoopBackOff",
                          f"back-off restarting: the container exited with code {code}")
                if time.monotonic() - began > BACKOFF_RESET:
                    delay = BACKOFF_START
            self._first.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            self.restarts += 1

    def _set(self, state_: str, reason: str | None = None, message: str | None = None) -> None:
        was_running = self.state == "running"
        self.state, self.reason, self.message = state_, reason, message
        if (state_ == "running") != was_running and self.on_change is not None:
            self.on_change()

    async def stop(self, grace: float) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.runner.stop(grace)
        self._set("terminated", "Completed")

    def status(self) -> dict:
        out = {"state": self.state, "pid": self.runner.pid if self.state == "running" else None,
               "exitCode": self.exit_code, "restarts": self.restarts, "startedAt": self.started_at}
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        if self.finished_at:
            out["finishedAt"] = self.finished_at
        return out

