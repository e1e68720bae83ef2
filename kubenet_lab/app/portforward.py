"""`port-forward`: local ports on this machine's loopback relayed into one pod, as kubectl does it.

The pure part follows kubectl (pkg/cmd/portforward and client-go's tools/portforward): which pod
TYPE/NAME means (a Service's or a controller's pod chosen as polymorphichelpers does: the
most "active" one, not a balanced pick), what each `[LOCAL:]REMOTE` becomes (a Service port
mapped to the pod's targetPort, named ports through containerPort names), which addresses to
listen on. Unlike kubectl only loopback addresses are accepted: the lab never exposes itself to
a network.

The session listens in this machine's namespace (nothing else changes on the host) and, like
kubelet's runtime (containerd's portForward), connects each accepted connection to
localhost:REMOTE inside the pod's network namespace, IPv4 first, then IPv6.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import signal
import socket
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from ..errors import InputError, LabError
from ..kernel import netns as netns_names
from ..kernel import relay
from ..kernel.nsenter import netns_path
from ..model.objects import LabelSelector, PendingPod, Plan, PlannedPod, PlannedService
from ..plan.podstatus import PodStatus


class NotFound(LabError):
    """kubectl's `Error from server (NotFound): ...`, printed as the API server words it."""


class LostPod(LabError):
    """The pod went away while forwarding: kubectl's `lost connection to pod`."""


# TYPE of TYPE/NAME -> (kind, the resource as the NotFound message names it)
TYPES = {
    **dict.fromkeys(("pod", "pods", "po"), ("Pod", "pods")),
    **dict.fromkeys(("service", "services", "svc"), ("Service", "services")),
    **dict.fromkeys(("deployment", "deployments", "deploy", "deployment.apps", "deployments.apps"),
                    ("Deployment", "deployments.apps")),
    **dict.fromkeys(("replicaset", "replicasets", "rs", "replicaset.apps", "replicasets.apps"),
                    ("ReplicaSet", "replicasets.apps")),
    **dict.fromkeys(("replicationcontroller", "replicationcontrollers", "rc"),
                    ("ReplicationController", "replicationcontrollers")),
    **dict.fromkeys(("statefulset", "statefulsets", "sts", "statefulset.apps", "statefulsets.apps"),
                    ("StatefulSet", "statefulsets.apps")),
    **dict.fromkeys(("daemonset", "daemonsets", "ds", "daemonset.apps", "daemonsets.apps"),
                    ("DaemonSet", "daemonsets.apps")),
    **dict.fromkeys(("job", "jobs", "job.batch", "jobs.batch"), ("Job", "jobs.batch")),
    **dict.fromkeys(("node", "nodes", "no"), ("Node", "nodes")),
}


@dataclass(frozen=True)
class Target:
    kind: str  # Pod, Service, Deployment, ...
    name: str


def parse_target(text: str) -> Target:
    """TYPE/NAME, or a bare NAME (a pod), as kubectl's resource builder reads it."""
    if "/" not in text:
        if not text:
            raise InputError("pod name or resource type/name must be specified")
        return Target("Pod", text)
    kind, _, name = text.partition("/")
    if kind.lower() not in TYPES:
        raise InputError(f'the server doesn\'t have a resource type "{kind}"')
    if not name or "/" in name:
        raise InputError("arguments in resource/name form must have a single resource and name")
    return Target(TYPES[kind.lower()][0], name)


def split_port(spec: str) -> tuple[str, str]:
    """kubectl's splitPort: `LOCAL:REMOTE` -> both; `REMOTE` -> REMOTE for both."""
    parts = spec.split(":")
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], parts[0])


# --------------------------------------------------------------------------------------------
# Which pod
# --------------------------------------------------------------------------------------------

_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def _activeness(plan: Plan, pod: PlannedPod | PendingPod, states: Mapping[str, PodStatus]):
    """kubectl picks the pod that sorts last by podutils.ActivePods (reversed): assigned to a
    node, Running, Ready, fewer restarts, older; then by name here, for a stable choice."""
    st = states.get(pod.key)
    assigned = isinstance(pod, PlannedPod)
    phase = st.phase if st and assigned else "Pending"
    created = plan.allocations.created.get(f"Pod/{pod.key}", float("inf"))
    return (not assigned, -_PHASE_ORDER.get(phase, 0), not (st and st.ready), st.restarts if st else 0,
            created, pod.name)


def _selector_of(plan: Plan, target: Target, namespace: str) -> LabelSelector:
    if target.kind == "Service":
        svc = find_service(plan, target.name, namespace)
        if not svc.selector:
            raise LabError(f"invalid service '{svc.name}': Service is defined without a selector")
        return LabelSelector(dict(svc.selector))
    if target.kind == "Node":
        raise LabError("cannot attach to *v1.Node: selector for *v1.Node not implemented")
    for w in plan.workloads:
        if w.kind == target.kind and w.namespace == namespace and w.name == target.name:
            return w.selector
    raise NotFound(f'{_resource(target.kind)} "{target.name}" not found')


def _resource(kind: str) -> str:
    return next(res for k, res in TYPES.values() if k == kind)


def find_service(plan: Plan, name: str, namespace: str) -> PlannedService:
    for s in plan.services:
        if s.namespace == namespace and s.name == name:
            return s
    raise NotFound(f'services "{name}" not found')


def choose_pod(plan: Plan, target: Target, namespace: str,
               states: Mapping[str, PodStatus]) -> PlannedPod | PendingPod | None:
    """The pod TYPE/NAME forwards to; None when a Service or controller selects no pod (yet)."""
    everyone = [*plan.pods, *plan.pending]
    if target.kind == "Pod":
        for p in everyone:
            if p.namespace == namespace and p.name == target.name:
                return p
        raise NotFound(f'pods "{target.name}" not found')
    selector = _selector_of(plan, target, namespace)
    matching = [p for p in everyone if p.namespace == namespace and selector.matches(p.labels)]
    return min(matching, key=lambda p: _activeness(plan, p, states), default=None)


# --------------------------------------------------------------------------------------------
# Which ports
# --------------------------------------------------------------------------------------------

def _container_port_by_name(pod: PlannedPod, name: str) -> int:
    for c in pod.containers:
        for p in c.ports:
            if p.name == name:
                return p.container_port
    raise LabError(f"Pod '{pod.name}' does not have a named port '{name}'")


def _service_port_by_name(svc: PlannedService, name: str) -> int:
    for p in svc.ports:
        if p.name == name:
            return p.port
    raise LabError(f"Service '{svc.name}' does not have a named port '{name}'")


def _udp_only(ports: Iterable[tuple[int, str]]) -> set[int]:
    ports = list(ports)
    return {n for n, proto in ports if proto == "UDP"} - {n for n, proto in ports if proto == "TCP"}


def _check_udp(specs: Sequence[str], udp_only: set[int], number_of: Callable[[str], int]) -> None:
    """kubectl refuses a remote port that is UDP only (port-forward relays TCP)."""
    for spec in specs:
        _, remote = split_port(spec)
        number = int(remote) if remote.isdigit() else number_of(remote)
        if number in udp_only:
            raise LabError(f"UDP protocol is not supported for {remote}")


def pod_ports(specs: Sequence[str], pod: PlannedPod) -> list[str]:
    """kubectl's convertPodNamedPortToNumber: a named remote port becomes its containerPort
    (and, written alone, the local port too)."""
    _check_udp(specs, _udp_only((p.container_port, p.protocol) for c in pod.containers for p in c.ports),
               lambda name: _container_port_by_name(pod, name))
    out = []
    for spec in specs:
        local, remote = split_port(spec)
        number = remote if _is_number(remote) else str(_container_port_by_name(pod, remote))
        out.append(f"{local}:{number}" if local != remote else number)
    return out


def service_ports(specs: Sequence[str], svc: PlannedService, pod: PlannedPod) -> list[str]:
    """kubectl's translateServicePortToTargetPort: REMOTE is the Service's port (number or
    name); what is forwarded to is that port's targetPort on the chosen pod. Written alone,
    the local port stays the Service's port."""
    _check_udp(specs, _udp_only((p.port, p.protocol) for p in svc.ports), lambda name: _service_port_by_name(svc, name))
    out = []
    for spec in specs:
        local, remote = split_port(spec)
        if _is_number(remote):
            number = int(remote)
        else:
            number = _service_port_by_name(svc, remote)
            if local == remote:
                local = str(number)
        target = _container_port_for_service_port(svc, pod, number)
        out.append(f"{local}:{target}" if local != str(target) else str(target))
    return out


def _container_port_for_service_port(svc: PlannedService, pod: PlannedPod, port: int) -> int:
    """kubectl's LookupContainerPortNumberByServicePort (a headless Service: the port itself)."""
    for p in svc.ports:
        if p.port != port:
            continue
        if svc.headless:
            return port
        if isinstance(p.target_port, int):
            return p.target_port or p.port
        if _is_number(p.target_port):
            return int(p.target_port)
        return _container_port_by_name(pod, p.target_port)
    raise LabError(f"Service {svc.name} does not have a service port {port}")


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"[+-]?\d+", text))


@dataclass(frozen=True)
class Forward:
    local: int  # 0: a free port chosen at listen time
    remote: int


def parse_ports(specs: Sequence[str]) -> list[Forward]:
    """client-go's parsePorts over the translated `[LOCAL:]REMOTE` strings."""
    out = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) == 1:
            local, remote = parts[0], parts[0]
        elif len(parts) == 2:
            local, remote = parts[0] or "0", parts[1]
        else:
            raise InputError(f"invalid port format '{spec}'")
        lp = _uint16(local, "local")
        rp = _uint16(remote, "remote")
        if rp == 0:
            raise InputError("remote port must be > 0")
        out.append(Forward(lp, rp))
    return out


def _uint16(text: str, which: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise InputError(f"error parsing {which} port '{text}': strconv.ParseUint: parsing \"{text}\": invalid syntax")
    if int(text) > 65535:
        raise InputError(f"error parsing {which} port '{text}': strconv.ParseUint: parsing \"{text}\": "
                         "value out of range")
    return int(text)


# --------------------------------------------------------------------------------------------
# Where to listen
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Listen:
    address: str  # 127.0.0.1, ::1, ...
    family: int  # socket.AF_INET or AF_INET6
    # kubectl's failureMode: "all" (localhost's two addresses: an error only when both fail),
    # "any" (an address given as an IP: its failure is an error).
    failure_mode: str


def parse_addresses(values: Sequence[str]) -> list[Listen]:
    """client-go's parseAddresses (`localhost` is 127.0.0.1 and ::1; sorted; no duplicates),
    accepting loopback addresses only."""
    parsed: dict[str, Listen] = {}
    for value in (v.strip() for raw in values for v in raw.split(",")):
        if value == "localhost":
            parsed.setdefault("127.0.0.1", Listen("127.0.0.1", socket.AF_INET, "all"))
            parsed.setdefault("::1", Listen("::1", socket.AF_INET6, "all"))
            continue
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            raise InputError(f"{value} is not a valid IP") from None
        if not ip.is_loopback:
            raise InputError(f"--address {value}: port-forward listens on loopback addresses only (localhost, "
                             f"127.0.0.1, ::1): a lab is never exposed to a network")
        parsed[str(ip)] = Listen(str(ip), socket.AF_INET6 if ip.version == 6 else socket.AF_INET, "any")
    return [parsed[k] for k in sorted(parsed)]


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --------------------------------------------------------------------------------------------
# Resolving the whole command against a lab
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resolved:
    pod: PlannedPod
    forwards: tuple[Forward, ...]


Snapshot = Callable[[], tuple[Plan, Mapping[str, PodStatus]]]


def parse_duration(text: str) -> float:
    """A Go duration as kubectl's flags take them: 1m0s, 30s, 1.5h, 500ms."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if text in ("0",) or (parts and "".join(a + b for a, b in parts) == text):
        return sum(float(a) * units[b] for a, b in parts)
    raise InputError(f'invalid argument "{text}" for "--pod-running-timeout" flag: time: invalid duration "{text}"')


def resolve(snapshot: Snapshot, target_text: str, namespace: str, specs: Sequence[str],
            timeout: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> Resolved:
    """The pod and the (local, remote) port pairs of `port-forward TARGET PORTS...`, in
    kubectl's order: the pod (waiting up to `timeout` for a Service or controller to have one),
    its ports, then whether it is Running."""
    if not specs:
        raise InputError("TYPE/NAME and list of ports are required for port-forward")
    for spec in specs:  # kubectl would read `1:2:3` as 1 (its splitPort keeps the first part)
        if spec.count(":") > 1:
            raise InputError(f"invalid port format '{spec}'")
    target = parse_target(target_text)
    deadline = time.monotonic() + timeout
    while True:
        plan, states = snapshot()
        pod = choose_pod(plan, target, namespace, states)
        if pod is not None:
            break
        if time.monotonic() >= deadline:
            raise LabError("timed out waiting for the condition")
        sleep(0.5)
    if isinstance(pod, PendingPod):  # unscheduled: no containers placed, nothing to resolve in it
        raise LabError("unable to forward port because pod is not running. Current status=Pending")
    if target.kind == "Service":
        translated = service_ports(specs, find_service(plan, target.name, namespace), pod)
    else:
        translated = pod_ports(specs, pod)
    st = states.get(pod.key)
    phase = st.phase if st else "Pending"
    if phase != "Running":
        raise LabError(f"unable to forward port because pod is not running. Current status={phase}")
    return Resolved(pod, tuple(parse_ports(translated)))


# --------------------------------------------------------------------------------------------
# The session
# --------------------------------------------------------------------------------------------

def _go_error(e: OSError) -> str:
    """An OSError as Go's net package words it: `connection refused`, `address already in use`."""
    return (os.strerror(e.errno) if e.errno else str(e)).lower()


def _klog_error(message: str) -> str:
    """A runtime.HandleError line as kubectl's klog writes it."""
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
    return f"E{stamp} {os.getpid():>7} portforward.go:424] {message}"


class Session:
    """Listeners on loopback, each accepted connection relayed to localhost:REMOTE inside the
    pod's network namespace. `out`/`err` take one line each (kubectl's stdout/stderr lines)."""

    def __init__(self, pod: PlannedPod, forwards: Sequence[Forward], addresses: Sequence[Listen],
                 out: Callable[[str], None], err: Callable[[str], None]):
        self.pod = pod
        self.forwards = [Forward(f.local, f.remote) for f in forwards]
        self.addresses = list(addresses)
        self.out, self.err = out, err
        self.identity = netns_names.identity(pod.netns)
        self.listeners: list[socket.socket] = []
        self.connections: set[asyncio.Task] = set()

    def listen(self) -> list[tuple[socket.socket, Forward]]:
        """Bind every port on every address as kubectl does; a port none of whose listeners
        could be made is reported; no port at all is an error."""
        bound: list[tuple[socket.socket, Forward]] = []
        for i, fwd in enumerate(self.forwards):
            errors, fails, successes = [], {"all": 0, "any": 0}, {"all": 0, "any": 0}
            mine = []
            for a in self.addresses:
                try:
                    sock = socket.socket(a.family, socket.SOCK_STREAM)
                    if a.family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        sock.bind((a.address, fwd.local))
                        sock.listen(128)
                    except OSError:
                        sock.close()
                        raise
                except OSError as e:
                    proto = "tcp6" if a.family == socket.AF_INET6 else "tcp4"
                    errors.append(f"unable to create listener: Error listen {proto} "
                                  f"{join_host_port(a.address, fwd.local)}: bind: {_go_error(e)}")
                    fails[a.failure_mode] += 1
                    continue
                successes[a.failure_mode] += 1
                fwd = self.forwards[i] = Forward(sock.getsockname()[1], fwd.remote)  # the random port, kept
                self.out(f"Forwarding from {join_host_port(a.address, fwd.local)} -> {fwd.remote}")
                mine.append(sock)
            if (successes["all"] == 0 and fails["all"] > 0) or fails["any"] > 0:
                for s in mine:
                    s.close()
                self.err(f"Unable to listen on port {fwd.local}: Listeners failed to create with the following "
                         f"errors: [{' '.join(errors)}]")
                continue
            bound += [(s, fwd) for s in mine]
        if not bound:
            pairs = " ".join(f"{{{f.local} {f.remote}}}" for f in self.forwards)
            raise LabError(f"unable to listen on any of the requested ports: [{pairs}]")
        self.listeners = [s for s, _ in bound]
        return bound

    async def _connection(self, reader, writer, fwd: Forward) -> None:
        self.out(f"Handling connection for {fwd.local}")
        task = asyncio.current_task()
        self.connections.add(task)
        try:
            try:
                inside = await self._dial(fwd)
            except (OSError, LostPod) as e:
                self.err(_klog_error(f"an error occurred forwarding {fwd.local} -> {fwd.remote}: error forwarding "
                                     f"port {fwd.remote} to pod {self.pod.uid}, uid : {e}"))
                writer.close()
                return
            pod_side = await asyncio.open_connection(sock=inside)
            await relay.pump((reader, writer), pod_side)
        except asyncio.CancelledError:  # the session ends: the connection is cut (pump closed both sides)
            writer.close()
        finally:
            self.connections.discard(task)

    async def _dial(self, fwd: Forward) -> socket.socket:
        """containerd's portForward: localhost:PORT inside the pod's namespace, tcp4 then tcp6."""
        if netns_names.identity(self.pod.netns) != self.identity:
            raise LostPod(f'failed to execute portforward in network namespace "{netns_path(self.pod.netns)}": '
                          "no such namespace")
        try:
            return await relay.connect_in_netns(self.pod.netns, "127.0.0.1", fwd.remote)
        except OSError as e4:
            v4 = f"dial tcp4 127.0.0.1:{fwd.remote}: connect: {_go_error(e4)}"
            try:
                return await relay.connect_in_netns(self.pod.netns, "::1", fwd.remote)
            except OSError as e6:
                v6 = f"dial tcp6 [::1]:{fwd.remote}: connect: {_go_error(e6)}"
                raise OSError(f'failed to execute portforward in network namespace "{netns_path(self.pod.netns)}": '
                              f'failed to connect to localhost:{fwd.remote} inside namespace "{self.pod.uid}", '
                              f"IPv4: {v4} IPv6 {v6} ") from None

    async def serve(self, bound: list[tuple[socket.socket, Forward]], check_every: float = 0.5) -> None:
        """Serve until SIGINT/SIGTERM (returns) or the pod's namespace goes away (LostPod)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        servers = []
        try:
            for sock, fwd in bound:
                servers.append(await asyncio.start_server(
                    lambda r, w, fwd=fwd: self._connection(r, w, fwd), sock=sock))
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), check_every)
                if netns_names.identity(self.pod.netns) != self.identity:
                    raise LostPod("lost connection to pod")
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            for s in servers:
                s.close()
            for t in list(self.connections):
                t.cancel()
            await asyncio.gather(*self.connections, return_exceptions=True)
            for s in self.listeners:
                s.close()


def run(resolved: Resolved, addresses: Sequence[Listen], out: Callable[[str], None],
        err: Callable[[str], None]) -> None:
    """Forward until interrupted (returns) or the pod is gone (LostPod)."""
    session = Session(resolved.pod, resolved.forwards, addresses, out, err)
    bound = session.listen()
    try:
        asyncio.run(session.serve(bound))
    finally:
        for s in session.listeners:
            s.close()
