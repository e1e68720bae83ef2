"""What a pod's container states make of it: its phase, whether it is initialized and ready (as
kubelet decides them: getPhase in pkg/kubelet/kubelet_pods.go, the conditions of
pkg/kubelet/status/generate.go), and the READY, STATUS and RESTARTS columns of `get pods` (as
kubectl's printPod in pkg/printers/internalversion/printers.go writes them). Pure: the states
are the supervisor's (runtime.containers), one dict per container:

    {"state": "waiting" | "running" | "terminated", "reason": ..., "message": ...,
     "restarts": n, "exitCode": its latest exit code, "finishedAt": when (ISO),
     "lastExitCode", "lastFinishedAt": for a terminated container, the exit before its own,
     "started", "ready": what its probes make of a running container (plan.probes); absent:
     running is started and ready, as without probes}

A container not started yet is waiting with reason ContainerCreating (PodInitializing in a pod
with init containers, as kubelet writes it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

ALWAYS, ON_FAILURE, NEVER = "Always", "OnFailure", "Never"
SUCCEEDED, FAILED = "Succeeded", "Failed"
TERMINAL_PHASES = (SUCCEEDED, FAILED)
POD_INITIALIZING = "PodInitializing"

State = Mapping[str, object]


def last_termination(s: State) -> tuple[int | None, str | None] | None:
    """kubelet's lastState.terminated as (exitCode, finishedAt): the latest exit of a container
    that is waiting or running again; for a terminated one, the exit before its own."""
    if s.get("state") == "terminated":
        return (_int(s, "lastExitCode"), _str(s, "lastFinishedAt")) if s.get("lastExitCode") is not None else None
    return (_int(s, "exitCode"), _str(s, "finishedAt")) if s.get("exitCode") is not None else None


def has_ended(s: State) -> bool:
    """The container ran (or tried to: a start that failed counts) and ended at least once."""
    return last_termination(s) is not None or (_int(s, "restarts") or 0) > 0


def terminated_reason(s: State) -> str:
    """The reason of a terminated state, as the container runtime gives it."""
    return str(s.get("reason") or ("Completed" if s.get("exitCode") == 0 else "Error"))


def _state(s: State) -> str:
    return str(s.get("state") or "waiting")


def is_started(s: State) -> bool:
    """Running and past its startup probe (kubelet's `started`)."""
    return _state(s) == "running" and s.get("started", True) is not False


def is_ready(s: State) -> bool:
    """Running, started and passing its readiness probe (kubelet's `ready`)."""
    return is_started(s) and s.get("ready", True) is not False


def _exit(s: State) -> int | None:
    return _int(s, "exitCode")


def _int(s: State, key: str) -> int | None:
    value = s.get(key)
    return value if isinstance(value, int) else None


def _str(s: State, key: str) -> str | None:
    value = s.get(key)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class PodStatus:
    phase: str
    initialized: bool
    ready: bool  # the Ready condition: an endpoint's readiness
    ready_count: int  # the READY column: ready_count/total
    total: int
    status: str  # the STATUS column
    restarts: int  # the RESTARTS column, and when the latest restart it counts happened
    last_restart: str | None = None

    @property
    def terminal(self) -> bool:
        """Succeeded or Failed: nothing of it runs again, and it is no endpoint at all."""
        return self.phase in TERMINAL_PHASES


def initialized_from(init: Sequence[tuple[State, bool]], containers: Sequence[State]) -> bool:
    """kubelet's Initialized condition: every init container done (exited 0, or for a sidecar,
    started), or a regular container already started once."""
    if any(_state(s) != "waiting" or has_ended(s) for s in containers):
        return True
    for s, sidecar in init:
        if sidecar:
            if not is_started(s) and not has_ended(s):
                return False
        elif not (_state(s) == "terminated" and _exit(s) == 0):
            return False
    return True


def is_terminal(restart_policy: str, init: Sequence[tuple[State, bool]], containers: Sequence[State]) -> bool:
    """Whether nothing of the pod will run again (kubelet's podIsTerminal): with restartPolicy
    Never once an init container failed, and, unless Always, once every container terminated."""
    if restart_policy == NEVER and any(not sidecar and _state(s) == "terminated" and _exit(s) != 0
                                       for s, sidecar in init):
        return True
    return restart_policy != ALWAYS and bool(containers) and all(_state(s) == "terminated" for s in containers)


def phase(restart_policy: str, init: Sequence[tuple[State, bool]], containers: Sequence[State],
          initialized: bool, terminal: bool) -> str:
    """The pod's phase, counted as kubelet's getPhase counts it."""
    pending_init = failed_init = pending_sidecars = 0
    running = waiting = stopped = succeeded = 0
    for s, sidecar in init:
        st = _state(s)
        if not sidecar:
            if st == "running":
                pending_init += 1
            elif st == "terminated":
                failed_init += _exit(s) != 0
            elif has_ended(s):
                last = last_termination(s)
                failed_init += last is None or last[0] != 0
            else:
                pending_init += 1
        elif st == "running":
            running += 1
        elif st == "waiting" and not has_ended(s):
            pending_sidecars += 1
            waiting += 1
    for s in containers:
        st = _state(s)
        if st == "running":
            running += 1
        elif st == "terminated":
            stopped += 1
            succeeded += _exit(s) == 0
        elif has_ended(s):
            stopped += 1
        else:
            waiting += 1
    if failed_init and restart_policy == NEVER:
        return FAILED
    if pending_init or (pending_sidecars and not initialized) or waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if terminal or restart_policy != ALWAYS:
            if stopped == succeeded:
                return SUCCEEDED
            if terminal or restart_policy == NEVER:
                return FAILED
        return "Running"  # restarting: Always, or OnFailure after a failure
    return "Pending"


def pod_status(containers: Sequence[State], init: Sequence[tuple[State, bool]] = (),
               restart_policy: str = ALWAYS, initialized: bool | None = None) -> PodStatus:
    """Everything `get pods` says of a pod from the states of its containers and of its init
    containers (each with whether it is a sidecar), in spec order. `initialized`: what the
    supervisor knows (its containers were started once); None: judged from the states."""
    if initialized is None:
        initialized = initialized_from(init, containers)
    terminal = is_terminal(restart_policy, init, containers)
    the_phase = phase(restart_policy, init, containers, initialized, terminal)
    ready = (the_phase not in TERMINAL_PHASES and initialized and all(is_ready(s) for s in containers)
             and all(is_ready(s) for s, sidecar in init if sidecar))
    ready_count, status, restarts, last = _columns(the_phase, init, containers, initialized, ready)
    return PodStatus(phase=the_phase, initialized=initialized, ready=ready, ready_count=ready_count,
                     total=len(containers) + sum(1 for _, sidecar in init if sidecar), status=status,
                     restarts=restarts, last_restart=last)


def _later(a: str | None, b: str | None) -> str | None:
    return b if b and (a is None or b > a) else a  # ISO times in UTC compare as text


def _columns(the_phase: str, init: Sequence[tuple[State, bool]], containers: Sequence[State], initialized: bool,
             ready: bool) -> tuple[int, str, int, str | None]:
    """kubectl's printPod: (ready containers, STATUS, restarts, the latest restart's time)."""
    reason = the_phase
    ready_count = restarts = sidecar_restarts = 0
    last = sidecar_last = None
    initializing = False
    for i, (s, sidecar) in enumerate(init):
        restarts += _int(s, "restarts") or 0
        ended = last_termination(s)
        last = _later(last, ended[1] if ended else None)
        if sidecar:
            sidecar_restarts += _int(s, "restarts") or 0
            sidecar_last = _later(sidecar_last, ended[1] if ended else None)
        st = _state(s)
        if st == "terminated" and _exit(s) == 0:
            continue
        if sidecar and is_started(s):  # started: the next init container may start
            ready_count += is_ready(s)
            continue
        initializing = True
        if st == "terminated":
            reason = f"Init:{terminated_reason(s)}"
        elif st == "waiting" and s.get("reason") and s.get("reason") != POD_INITIALIZING:
            reason = f"Init:{s['reason']}"
        else:
            reason = f"Init:{i}/{len(init)}"
        break
    if not initializing or initialized:
        restarts, last = sidecar_restarts, sidecar_last
        running_ready = False
        for s in reversed(containers):
            restarts += _int(s, "restarts") or 0
            ended = last_termination(s)
            last = _later(last, ended[1] if ended else None)
            st = _state(s)
            if st == "waiting" and s.get("reason"):
                reason = str(s["reason"])
            elif st == "terminated":
                reason = terminated_reason(s)
            elif is_ready(s):  # kubectl counts the running containers that are ready
                running_ready = True
                ready_count += 1
        if reason == "Completed" and running_ready:
            reason = "Running" if ready else "NotReady"
    return ready_count, reason, restarts, last
