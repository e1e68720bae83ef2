"""What `port-forward TYPE/NAME [LOCAL:]REMOTE...` means against a plan, as kubectl reads it
(pkg/cmd/portforward, polymorphichelpers, client-go's tools/portforward). Pure: the plan and the
pods' states in, the pod and the port pairs out.

Which pod: a Pod names itself; a Service or a controller means the pod of its selector that
kubectl's podutils.ActivePods order ranks first (assigned, Running, Ready, fewer restarts,
older): one pod, not a balanced pick. Which ports: a Service's port becomes that port's
targetPort on the chosen pod (a headless Service's: the port itself), named ports go through
containerPort names, UDP-only ports are refused. Where to listen: `localhost` is 127.0.0.1 and
::1; unlike kubectl only loopback addresses are accepted, since a lab is never exposed to a
network.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from ..errors import InputError, LabError
from ..model.objects import LabelSelector, PendingPod, Plan, PlannedPod, PlannedService
from .podstatus import PodStatus


class NotFound(LabError):
    """kubectl's `Error from server (NotFound): ...`, printed as the API server words it."""


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


def _activeness(plan: Plan, pod: PlannedPod | PendingPod,
                states: Mapping[str, PodStatus]) -> tuple[bool, int, bool, int, float, str]:
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
    everyone: list[PlannedPod | PendingPod] = [*plan.pods, *plan.pending]
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
# The whole command against one look at the lab
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resolved:
    pod: PlannedPod
    forwards: tuple[Forward, ...]


def check_specs(specs: Sequence[str]) -> None:
    """What kubectl refuses before it looks at the lab."""
    if not specs:
        raise InputError("TYPE/NAME and list of ports are required for port-forward")
    for spec in specs:  # kubectl would read `1:2:3` as 1 (its splitPort keeps the first part)
        if spec.count(":") > 1:
            raise InputError(f"invalid port format '{spec}'")


def resolve_in(plan: Plan, states: Mapping[str, PodStatus], target: Target, namespace: str,
               specs: Sequence[str]) -> Resolved | None:
    """The pod and the (local, remote) pairs, in kubectl's order: the pod, its ports, then
    whether it is Running. None: a Service or controller selects no pod (kubectl waits)."""
    pod = choose_pod(plan, target, namespace, states)
    if pod is None:
        return None
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


def parse_duration(text: str) -> float:
    """A Go duration as kubectl's flags take them: 1m0s, 30s, 1.5h, 500ms."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if text == "0" or (parts and "".join(a + b for a, b in parts) == text):
        return sum(float(a) * units[b] for a, b in parts)
    raise InputError(f'invalid argument "{text}" for "--pod-running-timeout" flag: time: invalid duration "{text}"')
