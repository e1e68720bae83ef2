"""What the supervisor runs for each container, and the kubelet-like loops that run a pod.

A `Runner` starts one container once (a child process, or built-in servers on sockets bound in
the pod's namespace) and reports when it ends; a `Container` restarts its runner with backoff as
its restart policy says (Always, OnFailure, Never) and keeps the status `get pods` shows; a
`PodWorker` runs a pod as kubelet's pod worker does: init containers one after another (a
sidecar, restartPolicy Always, started and left running), then the containers; at removal
each container's preStop hook, then SIGTERM, then SIGKILL once the grace period is over.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import ssl
import time
from collections import deque
from datetime import datetime, timezone
from typing import Awaitable, Callable, Mapping

from .. import KUBERNETES_MINOR
from ..model.objects import (Event, Plan, PlannedContainer, PlannedPod, RunDns, RunExec, RunHttp, RunNetexec,
                          RunNothing, RunServeHostname)
from ..plan import podstatus
from ..plan import probes as plan_probes
from ..plan.probes import ContainerProbes
from ..plan.containers import CONTAINER_PATH, process_argv, process_environment
from ..plan.podfiles import pod_files, pod_hostname
from ..servers import agnhost, proxy, redis, tls
from ..servers.base import Served, ServerContext
from ..servers.dns import ClusterDNS, serve_dns
from ..servers.http import start_default_http
from ..servers.resolve import PodResolver
from .probes import run_probe
from ..fabric import events, state
from ..kernel import confine
from ..kernel.nsenter import in_netns
from . import sandbox

log = logging.getLogger("kubenet-lab.supervisor")

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
BACKOFF_RESET = 60.0  # a container that ran this long starts its backoff afresh
# How often a container kubelet could not create (a missing ConfigMap, a refused user) is tried again.
BLOCKED_RETRY = 2.0
# kubelet's minimumGracePeriodInSeconds: what SIGTERM gets at least, whatever preStop took.
MIN_GRACE = 2.0


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class StartError(Exception):
    """The container could not start; `reason` is what kubectl would show (RunContainerError).
    Where it is not restarted it is terminated as a container runtime reports it: a process
    that could not start with exit code 128 (reason StartError), a server that failed at once
    with exit code 1 (reason Error, as agnhost's log.Fatal)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def exit_code(self) -> int:
        return 128 if self.reason == "RunContainerError" else 1

    @property
    def terminated_reason(self) -> str:
        return "StartError" if self.reason == "RunContainerError" else "Error"


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
        self._plan = plan

    def log_path(self, container: str) -> str:
        return state.log_path(self.lab, self.pod.namespace, self.pod.name, container)

    def current(self, container: PlannedContainer) -> PlannedContainer:
        """`container` as the pod's latest plan has it (its run unchanged: else it is replaced)."""
        return next((c for c in (*self.pod.containers, *self.pod.init_containers) if c.name == container.name),
                    container)

    def spawn(self, container: PlannedContainer, argv: list[str], environ: Mapping[str, str] | None = None,
              fresh: bool = False, pid: int | None = None) -> confine.Launch:
        """How a process of `container` starts, confined as a container runtime confines it
        (runtime.sandbox, kernel.confine): the argv to run and the preexec_fn that moves the
        fresh child into the container (it dies with the supervisor). `fresh` at a start of the
        container itself: its writable directories begin empty; `pid`: the container's running
        process (the kubenet-ctr standing for it), whose PID namespace an exec probe or a hook
        joins. `environ`: the process's environment (None: the container's, as agnhost's /shell
        has it)."""
        sb = sandbox.sandbox(self.lab, self.pod, container, self.hostname, self.files, fresh,
                             join=sandbox.container_init(pid))
        if environ is None:
            environ = process_environment(self._plan, self.pod, container, self.hostname)
        return confine.launch(sb, argv, environ)

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

    def context(self, container: PlannedContainer, log: Callable[[str], None], exit: Callable[[int], None]
                ) -> ServerContext:
        return ServerContext(hostname=self.hostname, log=log, socket=self.socket,
                             resolve=PodResolver(self._file("/etc/resolv.conf"), self._file("/etc/hosts"),
                                                 self.socket),
                             spawn=functools.partial(self.spawn, container), exit=exit)


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

    def stopped_code(self) -> int:
        """How the container ended when stop() ended it (a process killed by SIGTERM: 143)."""
        return 0

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


class DoneRunner(Runner):
    """A plain init container with nothing to run here (its program is inside its image): it
    completes at once, with exit code 0."""

    async def start(self) -> None:
        pass

    async def wait(self) -> int:
        return 0

    async def stop(self, grace: float) -> None:
        pass


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
        # As the latest plan has it: its variables from a ConfigMap changed since, its volumes.
        self.container = self.env.current(self.container)
        # Like kubelet: the service variables of the Services its pod was created after, then
        # $(NAME) expanded (exec sees the same: plan.containers.process_environment).
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
        try:
            launch = self.env.spawn(self.container, self.argv, environ, fresh=True)
        except OSError as e:
            raise StartError("RunContainerError", f"cannot make the container's directories: {e}") from e
        fd = os.open(self.log.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            # Shielded, so a stop() arriving meanwhile still finds (and ends) the process.
            self._spawn = asyncio.ensure_future(asyncio.create_subprocess_exec(
                *launch.argv, stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=fd, cwd="/",
                start_new_session=True, **launch.kwargs()))
            self.proc = await asyncio.shield(self._spawn)
        except (OSError, ValueError, RuntimeError) as e:  # SubprocessError: preexec_fn failed
            raise StartError("RunContainerError", f"cannot start {self.argv[0]}: {e}") from e
        except Exception as e:
            raise StartError("RunContainerError", f"cannot enter pod {self.env.pod.key}: {e}") from e
        finally:
            os.close(fd)
            launch.close()
        self.pid = self.proc.pid

    def logs(self) -> str:
        return self.log.text()

    async def wait(self) -> int:
        rc = await self.proc.wait()
        self._kill_group(signal.SIGKILL)  # whatever it left behind ends with it, as in a cgroup
        return rc if rc >= 0 else 128 - rc

    def stopped_code(self) -> int:
        rc = self.proc.returncode if self.proc is not None else None
        return 0 if rc is None else rc if rc >= 0 else 128 - rc

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
        self.container = container
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
        ctx = self.env.context(self.container, self.log, self._exit)
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
            return await _closing_on_error(socks, agnhost.start_netexec(ctx, tcp, udp, run.delay_shutdown))
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
        resp = [s for s in tcp if s.getsockname()[1] in run.redis_ports]  # a redis image's own port

        static = sandbox.served_files(self.env.lab, self.env.pod, self.container, run.docroot)

        async def serve() -> Served:
            http = [s for s in tcp if s not in resp]
            served = await start_default_http(ctx, [] if run.proxy_to else http, udp, run.text, context,
                                              run.tls_ports, static)
            try:
                await redis.start_redis(ctx, resp, served, run.replica_of)
                if run.proxy_to:  # an nginx that proxies to its upstream
                    await proxy.start_proxy(ctx, http, served, run.proxy_to, context, run.tls_ports)
            except BaseException:
                served.close()
                raise
            return served
        return await _closing_on_error(socks, serve())

    async def wait(self) -> int:
        return await self._ended

    async def stop(self, grace: float) -> None:
        """SIGTERM: a server that keeps serving a while then (agnhost --delay-shutdown) does,
        within `grace`; then it is gone."""
        if self.served is not None and self.served.terminate is not None and grace > 0:
            linger = self.served.terminate()
            if linger > 0:
                await asyncio.sleep(min(linger, grace))
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
                plan: Callable[[], Plan | None], init: bool = False) -> Runner:
    """`init`: an init container, which, unless a sidecar, runs to completion (or, with nothing
    to run here, completes at once)."""
    run = container.run
    if (init and not container.sidecar and not isinstance(run, RunExec)) or (
            isinstance(run, RunNothing) and run.completes):
        return DoneRunner()
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
    """One container: start, wait for the end, and, as its restart policy says, back off and
    start again (Always: after any exit; OnFailure: after a non-zero exit; Never: not at all).

    While it runs, its probes (`probes`, run one at a time by `prober`) decide whether it has
    started and is ready (plan.probes); one that fails its liveness or startup probe is killed
    (preStop, SIGTERM, the probe's or pod's grace period) and started again unless the restart
    policy is Never, as kubelet does. What the kubelet would record as events (Pulled, Created,
    Started, Unhealthy, Killing, BackOff) goes to `events` as (type, reason, message) triples.

    Its state reads like a kubelet's: "running"; "waiting" with a reason (ContainerCreating, or
    PodInitializing in a pod with init containers, before its first start; RunContainerError or
    Error when it cannot start; CrashLoopBackOff between an exit and the restart, exitCode
    keeping the last exit); "terminated" (reason Completed or Error) once it ended for good or
    the supervisor stopped it."""

    def __init__(self, runner: Runner, on_change: Callable[[], None] | None = None, restart_policy: str = "Always",
                 pre_stop: Callable[[float], Awaitable[None]] | None = None, waiting_reason: str = "ContainerCreating",
                 probes: ContainerProbes | None = None,
                 prober: Callable[[str], Awaitable[tuple[str, str]]] | None = None,
                 events: Callable[[list[tuple[str, str, str]]], None] | None = None,
                 name: str = "", image: str = "", pod_ref: str = "", kill_grace: Callable[[str], float] | None = None,
                 blocked: Callable[[], tuple[str, str, str] | None] | None = None):
        self.runner = runner
        # Why kubelet would not create it now (runtime.sandbox.blocked): asked before each start.
        self.blocked = blocked
        self.probes = probes if probes is not None and probes.any else None
        self.prober = prober
        self.events = events
        self.name, self.image = name, image
        self.pod_ref = pod_ref  # the pod as kubelet names it in messages: name_namespace(uid)
        self.kill_grace = kill_grace or (lambda kind: MIN_GRACE)
        self._probe_task: asyncio.Task | None = None
        self._kill_task: asyncio.Task | None = None
        self._killed = False  # stopped for failing a probe: restarted whatever its exit code
        self.on_change = on_change  # told whenever its state changes (its pod's readiness may follow)
        self.restart_policy = restart_policy
        self.pre_stop = pre_stop  # runs the preStop hook within the seconds it is given
        self.state = "waiting"
        self.reason: str | None = waiting_reason
        self.message: str | None = None
        self.restarts = 0
        self.exit_code: int | None = None
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.last_exit: tuple[int, str | None] | None = None  # the exit before the latest one
        self._task: asyncio.Task | None = None
        self._first = asyncio.Event()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        """Returns once the first attempt has either started or failed."""
        self._task = asyncio.create_task(self._run())
        await self._first.wait()

    async def until(self, done: Callable[[Container], bool]) -> None:
        """Wait until `done(self)` holds."""
        while not done(self):
            await self._changed.wait()

    def _ended(self, code: int) -> None:
        if self.exit_code is not None:
            self.last_exit = (self.exit_code, self.finished_at)
        self.exit_code, self.finished_at = code, utc_now()

    def _restarts(self, code: int) -> bool:
        if self._killed:  # kubelet restarts a container it killed for a probe, unless Never
            return self.restart_policy != "Never"
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)

    def _say(self, *events: tuple[str, str, str]) -> None:
        if self.events is not None:
            try:
                self.events(list(events))
            except Exception:  # events are told, never in the way of the container
                log.exception("cannot record events")

    @property
    def started(self) -> bool:
        """kubelet's `started`: running, past its startup probe if it has one."""
        return self.state == "running" and (self.probes is None or self.probes.started)

    @property
    def ready(self) -> bool:
        """kubelet's `ready`: started, and passing its readiness probe if it has one."""
        return self.state == "running" and (self.probes is None or self.probes.ready)

    def _notify(self) -> None:
        """Something of its status changed without its state (started, ready)."""
        self._changed.set()
        self._changed = asyncio.Event()
        if self.on_change is not None:
            self.on_change()

    def _start_probes(self) -> None:
        if self.probes is None or self.prober is None:
            return
        self.probes.start(asyncio.get_running_loop().time())
        self._probe_task = asyncio.create_task(self._probe_loop())

    async def _stop_probes(self) -> None:
        if self.probes is not None:
            self.probes.stop()
        task, self._probe_task = self._probe_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _probe_loop(self) -> None:
        """Run the probes as they come due, one at a time, until the container stops or fails
        its liveness or startup probe (then it is killed, by a task of its own)."""
        loop = asyncio.get_running_loop()
        probes = self.probes
        while True:
            for kind in probes.due(loop.time()):
                try:
                    result, output = await self.prober(kind)
                except Exception as e:  # a bug, or the pod's namespace gone: an error, thrown away
                    log.exception("probe failed to run")
                    result, output = plan_probes.ERROR, f"{type(e).__name__}: {e}"
                if result != plan_probes.SUCCESS:
                    self._say(("Warning", "Unhealthy", plan_probes.unhealthy_message(kind, result, output)))
                outcome = probes.record(kind, result)
                if outcome.changed:
                    self._notify()
                if outcome.kill is not None:
                    self._kill_task = asyncio.create_task(self._kill_failed(outcome.kill))
                    return
            when = probes.next_time()
            if when is None:
                return
            await asyncio.sleep(max(when - loop.time(), 0.0))

    async def _kill_failed(self, kind: str) -> None:
        """As kubelet kills a container that failed its liveness or startup probe: Killing, its
        preStop hook, SIGTERM, SIGKILL after the probe's (or the pod's) grace period. The
        restart loop sees it end and restarts it (unless the restart policy is Never)."""
        self._killed = True
        self._say(("Normal", "Killing", plan_probes.killing_message(self.name, kind, self.restart_policy != "Never")))
        grace = self.kill_grace(kind)
        if self.pre_stop is not None and grace > 0:
            began = time.monotonic()
            await self.pre_stop(grace)
            grace -= time.monotonic() - began
        await self.runner.stop(max(grace, MIN_GRACE))

    def _started_events(self) -> None:
        started = [("Normal", "Created", f"Created container {self.name}"),
                   ("Normal", "Started", f"Started container {self.name}")]
        if self.image:
            started.insert(0, ("Normal", "Pulled", f'Container image "{self.image}" already present on machine'))
        self._say(*started)

    async def _run(self) -> None:
        delay = BACKOFF_START
        try:
            while True:
                if self.blocked is not None and (why := self.blocked()) is not None:
                    reason, message, event = why
                    if (self.reason, self.message) != (reason, message):
                        self._say(("Warning", event, f"Error: {message}" if event == "Failed" else message))
                        self._set("waiting", reason, message)
                    self._first.set()
                    await asyncio.sleep(BLOCKED_RETRY)
                    continue
                began = time.monotonic()
                failure: StartError | None = None
                try:
                    await self.runner.start()
                except StartError as e:
                    failure = e
                except Exception as e:  # a namespace gone, or a bug: report it, never hang a reload
                    log.exception("container failed to start")
                    failure = StartError("RunContainerError", f"{type(e).__name__}: {e}")
                if failure is not None:
                    if self.restart_policy == "Never":
                        self._ended(failure.exit_code)
                        self._set("terminated", failure.terminated_reason, failure.message)
                        return
                    self._set("waiting", failure.reason, failure.message)
                else:
                    self.started_at = utc_now()
                    self._killed = False
                    self._started_events()
                    self._start_probes()
                    self._set("running")
                    self._first.set()
                    code = await self.runner.wait()
                    await self._stop_probes()
                    if self._kill_task is not None:  # killed for a failed probe: let that finish
                        try:
                            await asyncio.shield(self._kill_task)
                        except Exception:  # it was being killed anyway: restart as the policy says
                            log.exception("killing a container that failed its probe failed")
                        self._kill_task = None
                    await self.runner.stop(0)
                    self._ended(code)
                    if not self._restarts(code):
                        self._set("terminated", "Completed" if code == 0 else "Error")
                        return
                    self._set("waiting", "CrashLoopBackOff",
                              f"back-off restarting: the container exited with code {code}")
                    if time.monotonic() - began > BACKOFF_RESET:
                        delay = BACKOFF_START
                self._first.set()
                if self.restarts:  # kubelet's first restart is at once; later ones wait: BackOff
                    self._say(("Warning", "BackOff",
                               f"Back-off restarting failed container {self.name} in pod {self.pod_ref}"))
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                self.restarts += 1
        finally:
            self._first.set()

    def _set(self, state_: str, reason: str | None = None, message: str | None = None) -> None:
        self.state, self.reason, self.message = state_, reason, message
        self._changed.set()
        self._changed = asyncio.Event()
        if self.on_change is not None:
            self.on_change()

    async def stop(self, grace: float, minimum: float = MIN_GRACE) -> None:
        """As kubelet kills a container: its preStop hook if it runs (within `grace` seconds),
        then SIGTERM, and SIGKILL after what is left of `grace` (at least `minimum`)."""
        running = self.state == "running"
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._stop_probes()
        if self._kill_task is not None:  # stopping it already, for a failed probe
            await asyncio.gather(self._kill_task, return_exceptions=True)
            self._kill_task = None
        if running and self.pre_stop is not None and grace > 0:
            began = time.monotonic()
            await self.pre_stop(grace)
            grace -= time.monotonic() - began
        await self.runner.stop(max(grace, minimum))
        if self.state != "terminated":
            if running:
                self._ended(self.runner.stopped_code())
            code = self.exit_code if running else 0
            self._set("terminated", "Completed" if code == 0 else "Error")

    def status(self) -> dict:
        out = {"state": self.state, "pid": self.runner.pid if self.state == "running" else None,
               "exitCode": self.exit_code, "restarts": self.restarts, "startedAt": self.started_at,
               "started": self.started, "ready": self.ready}
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        if self.finished_at:
            out["finishedAt"] = self.finished_at
        if self.state == "terminated" and self.last_exit is not None:
            out["lastExitCode"], out["lastFinishedAt"] = self.last_exit
        return out


# --------------------------------------------------------------------------------------------
# Lifecycle hooks (preStop)
# --------------------------------------------------------------------------------------------

HOOK_OUTPUT_MAX = 1024  # bytes of a failed hook's output kept in the message


async def run_pre_stop(lab: str, pod: PlannedPod, container: PlannedContainer, plan: Callable[[], Plan | None],
                       say: Callable[[str], None], pid: Callable[[], int | None], timeout: float) -> None:
    """The container's preStop hook, within `timeout` seconds; a failure is said in its log
    (where kubelet records a FailedPreStopHook event) and the container is stopped anyway.

    exec: the command as a process of the pod, with the container's environment (a container
    the lab emulates has none of its image's programs here: its hook is not run); httpGet: a GET
    from the pod's network to the pod's address (or `host`) and port; sleep: that long."""
    hook = container.pre_stop
    if hook is None:
        return
    try:
        if hook.sleep_seconds is not None:
            await asyncio.sleep(min(hook.sleep_seconds, timeout))
        elif hook.command is not None:
            if not isinstance(container.run, RunExec):
                say(f"kubenet-lab: preStop hook not run: container {container.name} is emulated (the programs of "
                    f"image {container.image or '(none)'} are not on this machine)")
                return
            await asyncio.wait_for(_exec_hook(PodEnv(lab, pod, plan()), container, plan, say, pid()), timeout)
        elif hook.http_port is not None:
            await asyncio.wait_for(_http_hook(PodEnv(lab, pod, plan()), pod, container, say), timeout)
        else:
            say("kubenet-lab: PreStopHook failed: tcpSocket is not supported as a lifecycle hook")
    except asyncio.TimeoutError:
        say(f"kubenet-lab: PreStopHook did not finish within the grace period ({timeout:.0f}s)")
    except Exception as e:  # the container is stopped anyway
        say(f"kubenet-lab: PreStopHook failed: {type(e).__name__}: {e}")


async def _exec_hook(env: PodEnv, container: PlannedContainer, plan: Callable[[], Plan | None],
                     say: Callable[[str], None], pid: int | None) -> None:
    argv = list(container.pre_stop.command or ())
    exe = argv[0] if argv else ""
    if not exe or not (shutil.which(exe, path=CONTAINER_PATH) if "/" not in exe else os.access(exe, os.X_OK)):
        say(f'kubenet-lab: PreStopHook failed: exec: "{exe}": executable file not found in $PATH')
        return
    environ = process_environment(plan(), env.pod, container, env.hostname)
    launch = env.spawn(container, argv, environ, pid=pid)
    try:
        proc = await asyncio.create_subprocess_exec(
            *launch.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd="/", start_new_session=True, **launch.kwargs())
    finally:
        launch.close()
    try:
        out, _ = await proc.communicate()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # what it left behind, or all of it at the timeout
        await proc.wait()
    if proc.returncode != 0:
        text = out[:HOOK_OUTPUT_MAX].decode(errors="replace").strip()
        say(f"kubenet-lab: PreStopHook failed: command {' '.join(argv)!r} exited with {proc.returncode}"
            + (f": {text}" if text else ""))


async def _http_hook(env: PodEnv, pod: PlannedPod, container: PlannedContainer, say: Callable[[str], None]) -> None:
    hook = container.pre_stop
    port = hook.http_port
    if isinstance(port, str):
        port = next((p.container_port for p in container.ports if p.name == port), None)
        if port is None:
            say(f"kubenet-lab: PreStopHook failed: container {container.name} has no port named {hook.http_port!r}")
            return
    host = hook.http_host or str(pod.ip)
    if host == "localhost":
        host = "127.0.0.1"
    path = hook.http_path if hook.http_path.startswith("/") else "/" + hook.http_path
    sock = env.socket(socket.AF_INET, socket.SOCK_STREAM)  # in the pod's network namespace
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    context = None
    if hook.http_scheme == "HTTPS":  # kubelet does not verify the certificate either
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(sock=sock, ssl=context,
                                                   server_hostname=host if context else None)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"User-Agent: kube-lifecycle/{KUBERNETES_MINOR}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status = (await reader.readline()).decode(errors="replace").split()
    finally:
        writer.close()
    code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
    if not 200 <= code < 400:
        say(f"kubenet-lab: PreStopHook failed: HTTP GET {host}:{port}{path}: "
            f"{'status ' + str(code) if code else 'no answer'}")


# --------------------------------------------------------------------------------------------
# The pod worker
# --------------------------------------------------------------------------------------------


class PodWorker:
    """One pod, run as kubelet's pod worker runs it.

    Its init containers start one after another: each must exit 0 before the next starts
    (restarted with backoff after a failure, unless the pod's restartPolicy is Never: then the
    pod has failed and nothing more starts); a sidecar (restartPolicy Always) counts as done as
    soon as it runs, and keeps running, restarted whenever it exits. Then the containers start,
    each restarted as the pod's restartPolicy says. Once none of them will run again
    (OnFailure, Never) the sidecars are stopped, last started first, and the pod is done.

    A pod created after another (`pod.created_after`: a StatefulSet's next ordinal under
    OrderedReady) is not created yet: nothing of it starts until the supervisor calls
    release(), once the pods before it are Running and Ready (see plan.ordering)."""

    def __init__(self, lab: str, pod: PlannedPod, plan: Callable[[], Plan | None],
                 on_change: Callable[[], None] | None = None):
        self.lab = lab
        self.pod = pod
        self.plan = plan
        self.on_change = on_change
        self.init = [(c, self._container(c, init=True)) for c in pod.init_containers]
        self.containers = {self._key(c): (c, self._container(c)) for c in pod.containers}
        # False while its controller has not created it yet: it waits for release().
        self.created = pod.created_after is None
        self.initialized = self.created and not pod.init_containers  # the containers were started (Initialized)
        self.finished = False  # nothing of it runs again (Succeeded or Failed)
        self._task: asyncio.Task | None = None
        self._settled = asyncio.Event()
        self._wake = asyncio.Event()
        self._created = asyncio.Event()
        if self.created:
            self._created.set()

    @staticmethod
    def _key(c: PlannedContainer) -> tuple:
        return (c.name, c.run, c.pre_stop, c.readiness_probe, c.liveness_probe, c.startup_probe)

    def _container(self, c: PlannedContainer, init: bool = False) -> Container:
        policy = self.pod.restart_policy
        if init:  # a plain init container must succeed once: it is restarted only after a failure
            policy = "Always" if c.sidecar else ("Never" if policy == "Never" else "OnFailure")
        runner = make_runner(self.lab, self.pod, c, self.plan, init=init)
        say = runner.log if isinstance(getattr(runner, "log", None), (LogFile, LogBuffer)) else log.info
        hook = functools.partial(run_pre_stop, self.lab, self.pod, c, self.plan, say, lambda: runner.pid) \
            if c.pre_stop else None
        waiting = "PodInitializing" if self.pod.init_containers else "ContainerCreating"
        real = isinstance(c.run, RunExec)
        wanted = {plan_probes.READINESS: c.readiness_probe, plan_probes.LIVENESS: c.liveness_probe,
                  plan_probes.STARTUP: c.startup_probe}
        probes = {kind: plan_probes.runnable(p, real) for kind, p in wanted.items()}
        for kind, p in wanted.items():
            if p is not None and probes[kind] is None:
                say(f"kubenet-lab: {kind.lower()} probe not run: " + (
                    "gRPC probes are not run here" if p.handler == "grpc" else
                    f"container {c.name} is emulated (the programs of image {c.image or '(none)'} are not on "
                    "this machine)"))
        prober = None
        if any(probes.values()):
            # the runner's own (kept up to date by update()), or one for a runner without any
            env = runner.env if isinstance(getattr(runner, "env", None), PodEnv) else PodEnv(self.lab, self.pod,
                                                                                          self.plan())

            async def prober(kind: str) -> tuple[str, str]:
                return await run_probe(probes[kind], env.socket, str(self.pod.ip),
                                       lambda: process_environment(self.plan(), self.pod, c, env.hostname),
                                       lambda argv, environ: env.spawn(c, argv, environ, pid=runner.pid))

        def kill_grace(kind: str) -> float:
            p = probes.get(kind)
            return float(p.grace if p is not None and p.grace is not None else self.pod.termination_grace_period)
        return Container(runner, self._changed, policy, hook, waiting,
                         probes=ContainerProbes(probes[plan_probes.READINESS], probes[plan_probes.LIVENESS],
                                                probes[plan_probes.STARTUP]),
                         prober=prober, events=self._events, name=c.name, image=c.image,
                         pod_ref=f"{self.pod.name}_{self.pod.namespace}({self.pod.uid})", kill_grace=kill_grace,
                         blocked=lambda: sandbox.blocked(self.lab, self.plan(), self.pod, self._current(c)))

    def _current(self, c: PlannedContainer) -> PlannedContainer:
        """`c` as the latest plan has it (a ConfigMap made since may have mended it)."""
        return next((x for x in (*self.pod.containers, *self.pod.init_containers) if x.name == c.name), c)

    def _events(self, said: list[tuple[str, str, str]]) -> None:
        """The kubelet's events about this pod, into the lab's events."""
        events.record(self.lab, [Event(self.pod.namespace, "Pod", self.pod.name, reason, message, type_,
                                       source="kubelet", host=self.pod.node) for type_, reason, message in said])

    def _changed(self) -> None:
        self._wake.set()
        if self.on_change is not None:
            self.on_change()

    @property
    def size(self) -> int:
        return len(self.init) + len(self.containers)

    def runners(self) -> list[Runner]:
        return [c.runner for _, c in self.init] + [c.runner for _, c in self.containers.values()]

    def find(self, name: str) -> Container | None:
        for spec, c in [*self.init, *self.containers.values()]:
            if spec.name == name:
                return c
        return None

    async def start(self) -> None:
        """Returns once the pod has settled: its containers' first attempts made, or an init
        container running (or failing) that the rest waits for; at once while it is not
        created yet."""
        self._task = asyncio.create_task(self._run())
        await self._settled.wait()

    @property
    def settled(self) -> bool:
        return self._settled.is_set()

    async def wait_settled(self) -> None:
        await self._settled.wait()

    def release(self) -> None:
        """The controller creates the pod now: it starts (and is unsettled until it has)."""
        if self.created:
            return
        self.created = True
        self.initialized = not self.pod.init_containers
        self._settled = asyncio.Event()
        self._created.set()

    async def _run(self) -> None:
        try:
            if not self._created.is_set():
                self._settled.set()  # `up` does not wait for a pod that is not created yet
                await self._created.wait()
            for spec, c in self.init:
                await c.start()
                # A sidecar is done once started (past its startup probe, if it has one).
                done = (lambda x: x.started) if spec.sidecar else (lambda x: x.state == "terminated")
                if not done(c):
                    self._settled.set()  # `up` does not wait for an init container to finish
                await c.until(done)
                if not spec.sidecar and c.exit_code != 0:  # restartPolicy Never: the pod failed
                    self.finished = True
                    await self._stop_sidecars()
                    return
            self.initialized = True
            await asyncio.gather(*(c.start() for _, c in self.containers.values()))
            self._changed()
            self._settled.set()
            if self.pod.restart_policy != "Always":
                while True:
                    self._wake.clear()
                    if all(c.state == "terminated" for _, c in self.containers.values()):
                        break
                    await self._wake.wait()
                self.finished = True
                await self._stop_sidecars()
        finally:
            self._settled.set()

    async def _stop_sidecars(self, grace: float | None = None, minimum: float = MIN_GRACE) -> None:
        """Sidecars in reverse order, within what is left of the grace period."""
        grace = self.pod.termination_grace_period if grace is None else grace
        began = time.monotonic()
        for spec, c in reversed(self.init):
            if spec.sidecar:
                await c.stop(max(grace - (time.monotonic() - began), 0), minimum)

    async def update(self, pod: PlannedPod) -> tuple[int, int]:
        """The same pod in a new plan: a container whose run changed is replaced, as kubelet
        replaces a container whose spec changed. -> (containers started, stopped)."""
        if pod.volumes != self.pod.volumes and os.path.isdir(sandbox.volume_dir(self.lab, pod, "")):
            with contextlib.suppress(sandbox.VolumeError, OSError):  # a ConfigMap changed: its files follow
                sandbox.ensure_volumes(self.lab, pod)
        self.pod = pod
        for runner in self.runners():  # their next start, exec probe or hook is of the new plan
            if isinstance(getattr(runner, "env", None), PodEnv):
                runner.env.pod = pod
        if self.finished:  # a pod that ended stays as it ended
            return 0, 0
        want = {self._key(c): c for c in pod.containers}
        gone = [k for k in self.containers if k not in want]
        await asyncio.gather(*(self.containers.pop(k)[1].stop(pod.termination_grace_period) for k in gone))
        new = {k: (c, self._container(c)) for k, c in want.items() if k not in self.containers}
        self.containers.update(new)
        if self.initialized and not self.finished:  # else the worker starts them after the init containers
            await asyncio.gather(*(c.start() for _, c in new.values()))
        return len(new), len(gone)

    async def stop(self, grace: float | None = None, minimum: float = MIN_GRACE) -> None:
        """Kill the pod as kubelet does: every container (preStop, SIGTERM, SIGKILL after the
        grace period, by default the pod's terminationGracePeriodSeconds) at once, then the
        sidecars, last started first, within what is left of the grace period."""
        grace = self.pod.termination_grace_period if grace is None else grace
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        began = time.monotonic()
        others = [c for _, c in self.containers.values()] + [c for spec, c in self.init if not spec.sidecar]
        await asyncio.gather(*(c.stop(grace, minimum) for c in others))
        await self._stop_sidecars(max(grace - (time.monotonic() - began), 0), minimum)
        sandbox.remove(self.lab, self.pod)

    def status(self) -> dict:
        return {"uid": self.pod.uid, "created": self.created, "restartPolicy": self.pod.restart_policy,
                "initialized": self.initialized,
                "initContainers": {spec.name: c.status() for spec, c in self.init},
                "containers": {spec.name: c.status() for spec, c in self.containers.values()}}

    def pod_status(self) -> podstatus.PodStatus:
        return podstatus.pod_status([c.status() for _, c in self.containers.values()],
                                    [(c.status(), spec.sidecar) for spec, c in self.init],
                                    self.pod.restart_policy, self.initialized)
