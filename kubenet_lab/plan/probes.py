"""A container's probes as kubelet's prober workers decide them (pkg/kubelet/prober/worker.go).
Pure: the caller (runtime.containers) runs each probe when `due` says, gives its result to
`record` with the time, and acts on what comes back; time is whatever clock it passes in.

- Every probe waits initialDelaySeconds after the container started, then runs every
  periodSeconds. A new container (a restart) starts afresh.
- Until the startup probe has succeeded the container is not started: its liveness and
  readiness probes do not run, and it is not ready. Once it has, the startup probe stops.
- Results count only in a run of equal ones: failureThreshold failures in a row make the probe
  fail, successThreshold successes in a row make it pass; a run shorter than that leaves the
  result as it was. A probe that errored (it could not be run, e.g. a port name the container
  does not declare) counts for nothing, as kubelet throws its result away.
- Readiness starts failed (a container is not ready before its first success); liveness starts
  passing; startup unknown. A failed liveness or startup probe means: kill the container (and
  restart it, as its restart policy says); the probe then holds until the container restarts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..model.objects import Plan, PlannedContainer, Probe, RunExec

READINESS, LIVENESS, STARTUP = "Readiness", "Liveness", "Startup"
KINDS = (STARTUP, LIVENESS, READINESS)

SUCCESS, FAILURE, ERROR = "success", "failure", "error"


def runnable(probe: Probe | None, real_process: bool) -> Probe | None:
    """The probe the lab runs: gRPC probes are not run (said at `up`), nor exec probes of a
    container the lab emulates (its image's programs are not on this machine): as if absent."""
    if probe is None or probe.handler == "grpc" or (probe.handler == "exec" and not real_process):
        return None
    return probe


def not_ready_at_start(plan: Plan, previous: Plan | None) -> frozenset[str]:
    """The pods of `plan` made anew (not in `previous`, or made again: another uid) with a
    container whose readiness or startup probe the lab runs: kubelet has them not ready until
    that probe passes, so the rules `up` loads leave them out until the supervisor says so."""
    before = {p.key: p.uid for p in previous.pods} if previous is not None else {}

    def probed(c: PlannedContainer) -> bool:
        real = isinstance(c.run, RunExec)
        return runnable(c.readiness_probe, real) is not None or runnable(c.startup_probe, real) is not None
    return frozenset(p.key for p in plan.pods if before.get(p.key) != p.uid
                     and any(probed(c) for c in (*p.containers, *p.init_containers)))


def unhealthy_message(kind: str, result: str, output: str) -> str:
    """The kubelet's Unhealthy event for a probe that failed or errored (prober.go)."""
    if result == ERROR:
        return f"{kind} probe errored and resulted in unknown state: {output}"
    return f"{kind} probe failed: {output}"


def killing_message(container: str, kind: str, restarts: bool) -> str:
    """The kubelet's Killing event for a container that failed its liveness or startup probe."""
    text = f"Container {container} failed {kind.lower()} probe"
    return f"{text}, will be restarted" if restarts else text


@dataclass
class _Worker:
    kind: str
    probe: Probe
    result: bool | None  # what kubelet acts on; None: unknown
    last: bool | None = None  # the latest result counted, and how many in a row
    run: int = 0
    on_hold: bool = False
    next_at: float = 0.0


@dataclass(frozen=True)
class Outcome:
    changed: bool = False  # started or ready changed
    kill: str | None = None  # LIVENESS or STARTUP: kill the container, it failed that probe


@dataclass
class ContainerProbes:
    """The probes of one container. `start(now)` when a container (a new one at each restart)
    starts running; then `due(now)` says which probes to run, `record` takes their results,
    and `next_time()` when to look again."""

    readiness: Probe | None = None
    liveness: Probe | None = None
    startup: Probe | None = None
    workers: dict[str, _Worker] = field(default_factory=dict)
    running: bool = False

    def __post_init__(self) -> None:
        self.reset(0.0)
        self.running = False

    @property
    def any(self) -> bool:
        return bool(self.workers)

    def reset(self, now: float) -> None:
        initial = {READINESS: False, LIVENESS: True, STARTUP: None}
        self.workers = {kind: _Worker(kind, p, initial[kind], next_at=now + p.initial_delay)
                        for kind, p in ((STARTUP, self.startup), (LIVENESS, self.liveness),
                                        (READINESS, self.readiness)) if p is not None}

    def start(self, now: float) -> None:
        """A container started running at `now`: every probe starts afresh."""
        self.reset(now)
        self.running = True

    def stop(self) -> None:
        """The container is no longer running: nothing is due until it starts again."""
        self.running = False

    @property
    def started(self) -> bool:
        """kubelet's `started`: running, and its startup probe (if any) has succeeded."""
        w = self.workers.get(STARTUP)
        return self.running and (w is None or w.result is True)

    @property
    def ready(self) -> bool:
        """kubelet's `ready`: started, and its readiness probe (if any) passing."""
        w = self.workers.get(READINESS)
        return self.started and (w is None or w.result is True)

    def _gated(self, w: _Worker) -> bool:
        """kubelet's worker skips this probe now: held after a failure, startup once started,
        the others until started."""
        if w.on_hold:
            return True
        return self.started if w.kind == STARTUP else not self.started

    def due(self, now: float) -> list[str]:
        """The probes to run now; each is next due a period later. Probes whose time came while
        gated skip that turn."""
        if not self.running:
            return []
        out = []
        for w in self.workers.values():
            if w.next_at > now:
                continue
            if not self._gated(w):
                out.append(w.kind)
            w.next_at += w.probe.period
            if w.next_at <= now:  # late (a slow probe, a busy loop): the next tick from now
                w.next_at = now + w.probe.period
        return out

    def next_time(self) -> float | None:
        """When something may be due next (None: nothing to probe)."""
        times = [w.next_at for w in self.workers.values() if not w.on_hold]
        return min(times) if self.running and times else None

    def record(self, kind: str, result: str) -> Outcome:
        """A probe's result (SUCCESS, FAILURE, ERROR) -> what changes."""
        w = self.workers.get(kind)
        if w is None or not self.running or result == ERROR:
            return Outcome()
        ok = result == SUCCESS
        if w.last == ok:
            w.run += 1
        else:
            w.last, w.run = ok, 1
        if (not ok and w.run < w.probe.failure_threshold) or (ok and w.run < w.probe.success_threshold):
            return Outcome()
        before = (self.started, self.ready)
        w.result = ok
        kill = None
        if kind in (LIVENESS, STARTUP) and not ok:
            w.on_hold, w.run = True, 0
            kill = kind
        return Outcome(changed=(self.started, self.ready) != before, kill=kill)
