"""The per-lab long-lived process that runs every pod's containers.

A socket stays in the namespace where it was created, so one process serves the built-in
servers of every pod of a lab from one asyncio loop (no thread or process per pod), and is the
parent of the pods' real processes. It is started as

    python3 -m kubenet_lab.supervisor.daemon --lab LAB

(the lab in argv, so `find_supervisors` finds it in /proc even with the state gone), detaches,
and answers JSON lines on <state_dir>/supervisor.sock:

    {"op": "ping"}    -> {"ok": true, "pid": N, "lab": LAB}
    {"op": "reload"}  -> re-read the plan and reconcile; answers once every socket is bound
                         (with "keep": ["ns/name", ...], those pods run on though the plan has them
                         no more: they leave the rules first, and a reload without them stops them)
    {"op": "readiness"} -> {"ok": true, "notReady": [...], "terminal": [...]}: what the rules are to leave out
    {"op": "status"}  -> {"ok": true, "pods": {"ns/name": {"uid": ..., "created": bool, "restartPolicy": ...,
                          "initialized": bool, "initContainers": {"i": {...}}, "containers": {"c": {...}}}}}
                         (with "pods": ["ns/name", ...], those pods only)
    {"op": "logs", "pod": "ns/name", "container": "c"} -> {"ok": true, "text": "..."}
                         (built-in servers log into memory, real processes into a file)
    {"op": "stop"}    -> end every container, close every socket, answer, exit

Each pod is a `PodWorker` (init containers, then containers, restart policy, preStop and grace
period at removal; see runtime.containers). A pod removed by a reload gets its
terminationGracePeriodSeconds; `stop` (the lab's `down`) gives every pod at most STOP_GRACE
seconds, preStop included. A pod created after another (a StatefulSet's next ordinal under
OrderedReady, PlannedPod.created_after) is not created (started) until the pods before it are
Running and Ready, as the StatefulSet controller creates it; its status says "created": false
until then, and it is no endpoint at all.

It also keeps the rules following readiness: a pod is ready while it is initialized and all its
containers (and sidecars) run, and a pod that has ended (Succeeded, Failed) is no endpoint at
all; when the pods that are not ready, or have ended, differ from those the rules were made
with, it runs `python3 -m kubenet_lab.app.readiness` (a process of its own, under the lab's lock
like any command; a thread beside the forks of containers with preexec_fn would not be safe),
which makes every node's rules again without those pods' endpoints, and the cluster DNS follows.

It also plays two parts of the cluster around the pods. kube-proxy's health servers in every
node's namespace (supervisor/health.py): the node's port 10256 and every Service's
healthCheckNodePort, answering from the same view as the cluster DNS, so they follow readiness
and every change. And the lab's balancer's health checks (watch_balancer): every PROBE_INTERVAL
it probes those ports from the balancer's namespace, and when the nodes that pass differ from
those the balancer's table was made with, it runs `python3 -m kubenet_lab.app.balancer` (under
the lab's lock), which probes again and makes the table anew.
In a lab in kube-proxy's userspace mode it is the proxy too (supervisor/userspace.py): every
node listens on every service port's proxy port and pumps connections and UDP clients to the
endpoints of the same view, chosen round robin per node.

The client side the CLI uses (ensure_running, request, stop, find_supervisors) is
supervisor/client.py.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import resource
import signal
import subprocess
import sys

from ..errors import LabError
from ..model.objects import Event, Plan, PlannedPod
from ..plan.naming import is_lab_name
from ..plan.ordering import may_create, without_pods
from ..plan.rollout import rolling
from ..plan.services import with_readiness
from ..proxy.lb import health_checks
from ..kernel import procs
from ..kernel.nsenter import netns_path
from ..fabric import events, lbhealth, state
from ..runtime.containers import PodWorker
from .client import LOCK, LOG, MODULE, PID, SOCK, STOP_GRACE, _read_pid, path
from .health import NodeHealthServers
from .userspace import NodeProxies

STOP_MIN_GRACE = 0.5  # and SIGTERM at least, whatever preStop took
READINESS_MODULE = "kubenet_lab.app.readiness"
VANISHED_MODULE = "kubenet_lab.app.vanished"
BALANCER_MODULE = "kubenet_lab.app.balancer"
PROBE_INTERVAL = 1.0  # seconds between the balancer's health checks
WATCH_INTERVAL = 0.5  # seconds between looks for pod namespaces gone by hand
READINESS_SETTLE = 0.2  # seconds: changes that come together make one sync
READINESS_RETRY = 5.0

log = logging.getLogger("kubenet-lab.supervisor")

# (pod key, pod uid, netns, init containers): a pod whose key is unchanged by a reload is left
# alone (same processes, same sockets), but for a container whose run spec changed, which is
# replaced (PodWorker.update).
Key = tuple


def pod_key(pod: PlannedPod) -> Key:
    return (pod.key, pod.uid, pod.netns, pod.init_containers)


def desired(plan: Plan | None) -> dict[Key, PlannedPod]:
    if plan is None:
        return {}
    return {pod_key(p): p for p in plan.pods}


# --------------------------------------------------------------------------------------------
# The supervisor process
# --------------------------------------------------------------------------------------------


class Supervisor:
    def __init__(self, lab: str):
        self.lab = lab
        self.plan: Plan | None = None
        self.pods: dict[Key, PodWorker] = {}
        self.done = asyncio.Event()
        self._lock = asyncio.Lock()
        # The pods the rules treat as not ready, and those among them that have ended.
        self.applied: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
        self._ready_timer: asyncio.TimerHandle | None = None
        self._ready_proc: asyncio.subprocess.Process | None = None
        self._ready_again = False
        self._stopping = False
        self._view: Plan | None = None
        self._ordered = False  # some pod of the plan is created after another
        self._rolling = False  # some Deployment of the plan is rolling out
        self.health = NodeHealthServers(lab)  # kube-proxy's health servers in the nodes
        self.userspace = NodeProxies(lab)  # kube-proxy's proxies in the nodes, in userspace mode

    def view(self) -> Plan | None:
        """The plan as the cluster DNS serves it: endpoints of pods not ready left out."""
        return self._view

    def _set_view(self, plan: Plan | None, applied: tuple[frozenset[str], frozenset[str]]) -> None:
        """The plan and the not-ready (and ended, or not created) pods the rules were made with
        changed: one new view, and every container told (the DNS server answers from it). A pod
        not created yet is not in the view at all."""
        self.plan, self.applied = plan, applied
        self._ordered = plan is not None and any(p.created_after is not None for p in plan.pods)
        self._rolling = plan is not None and rolling(plan)  # the readiness sync drives the rollout on
        self._view = without_pods(with_readiness(plan, *applied), self._not_created(plan)) if plan is not None \
            else None
        for worker in self.pods.values():
            for runner in worker.runners():
                runner.update(self._view)
        self.health.update(self._view)
        self.userspace.update(self._view)

    async def reload(self, keep: frozenset[str] = frozenset()) -> dict:
        async with self._lock:
            plan = state.load_plan(self.lab)
            # `up` made the rules with these
            self._set_view(plan, (state.not_ready(self.lab), state.terminal(self.lab)))
            want = desired(plan)
            gone = [self.pods.pop(k) for k in list(self.pods) if k not in want and k[0] not in keep]
            # A removed pod gets its grace period (its namespace goes once this answers). Its own
            # namespace is all it holds, so the new pods start meanwhile; but one in its node's
            # namespace (hostNetwork) may hold a port another wants: that stops first.
            stopping = asyncio.gather(*(w.stop() for w in gone))
            if any(w.pod.host_network for w in gone) or any(p.host_network for k, p in want.items()
                                                             if k not in self.pods):
                await stopping
            # a changed container may want the port its old self holds: it stops, then starts
            kept = [(self.pods[k], pod) for k, pod in want.items() if k in self.pods]
            changes = await asyncio.gather(*(w.update(pod) for w, pod in kept))
            new = {k: PodWorker(self.lab, pod, self.view, on_change=self.readiness_changed)
                   for k, pod in want.items() if k not in self.pods}
            self.pods.update(new)
            await asyncio.gather(*(w.start() for w in new.values()))
            await stopping
            # The pods created meanwhile (a StatefulSet's next ordinal once the one before is ready)
            # are waited for too, so that `up` returns with every pod that can start started.
            self._release_waiting()
            while unsettled := [w for w in self.pods.values() if not w.settled]:
                await asyncio.gather(*(w.wait_settled() for w in unsettled))
            started = sum(w.size for w in new.values()) + sum(n for n, _ in changes)
            stopped = sum(w.size for w in gone) + sum(n for _, n in changes)
            total = sum(w.size for w in self.pods.values())
            log.info("reload: %d containers, %d started, %d stopped", total, started, stopped)
            self.readiness_changed()
            return {"ok": True, "started": started, "stopped": stopped, "containers": total}

    # --- readiness ---------------------------------------------------------------------------

    def readiness(self) -> tuple[frozenset[str], frozenset[str]]:
        """(the pods not ready, those of them that are no endpoints at all: ended, or not
        created yet)."""
        statuses = {w.pod.key: w.pod_status() for w in self.pods.values()}
        return (frozenset(k for k, st in statuses.items() if not st.ready),
                frozenset(k for k, st in statuses.items() if st.terminal)
                | frozenset(w.pod.key for w in self.pods.values() if not w.created))

    def _not_created(self, plan: Plan) -> frozenset[str]:
        """The pods of `plan` created after another that have no created worker (yet)."""
        return frozenset(p.key for p in plan.pods if p.created_after is not None
                         and not ((w := self.pods.get(pod_key(p))) is not None and w.created))

    def _release_waiting(self) -> None:
        """Create (start) every pod whose turn has come: as the StatefulSet controller under
        OrderedReady, once the pods before it are all Running and Ready (plan.ordering). Only a
        pod whose predecessor is created can be next, so only those are looked at."""
        if not self._ordered:
            return
        by_key = {w.pod.key: w for w in self.pods.values()}
        next_up = [w for w in by_key.values() if not w.created
                   and (before := by_key.get(w.pod.created_after)) is not None and before.created]
        if not next_up:
            return
        after = {k: w.pod.created_after for k, w in by_key.items()}
        ready: dict[str, bool] = {}

        def is_ready(key: str) -> bool:
            if key not in ready:
                w = by_key.get(key)
                ready[key] = w is not None and w.created and w.pod_status().ready
            return ready[key]
        for w in next_up:
            if may_create(w.pod.key, after, is_ready):
                log.info("pod %s created: the pods before it are Running and Ready", w.pod.key)
                w.release()

    def readiness_changed(self, delay: float = READINESS_SETTLE) -> None:
        if self._stopping:
            return
        self._release_waiting()
        if self._ready_timer is not None:
            self._ready_timer.cancel()
        loop = asyncio.get_running_loop()
        self._ready_timer = loop.call_later(delay, lambda: asyncio.ensure_future(self._sync_readiness()))

    async def _sync_readiness(self) -> None:
        self._ready_timer = None
        if self._ready_proc is not None:  # one at a time: look again once it is done
            self._ready_again = True
            return
        want = self.readiness()
        if (want == self.applied and not self._rolling) or self._stopping:
            return
        retry = False
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", READINESS_MODULE, "--lab", self.lab, cwd="/",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self._ready_proc = proc
            out, err = await proc.communicate(json.dumps({"notReady": sorted(want[0]),
                                                          "terminal": sorted(want[1])}).encode())
        except OSError as e:
            log.warning("readiness: cannot run %s: %s", READINESS_MODULE, e)
            retry = True
        else:
            if proc.returncode == 0:
                self._set_view(self.plan, want)
                log.info("readiness: %d pod(s) not ready %s, ended or not created %s; %s", len(want[0]),
                         sorted(want[0]), sorted(want[1]), out.decode().strip())
            else:
                log.warning("readiness: sync failed (exit %s): %s", proc.returncode,
                            err.decode(errors="replace").strip())
                retry = True
        finally:
            self._ready_proc = None
        if retry or self._ready_again:
            self._ready_again = False
            self.readiness_changed(READINESS_RETRY if retry else READINESS_SETTLE)

    # --- pods whose namespace went by hand (`ip netns delete`) ---------------------------------

    def missing(self, had: set[str]) -> list[PodWorker]:
        """The created pods whose network namespace is gone, of those whose namespace was there
        on an earlier look (`had`, updated: a pod whose namespace never existed is no sandbox lost)."""
        gone = []
        for w in self.pods.values():
            if not w.created or w.pod.host_network:
                continue
            if os.path.exists(netns_path(w.pod.netns)):
                had.add(w.pod.netns)
            elif w.pod.netns in had:
                gone.append(w)
        return gone

    async def watch_namespaces(self) -> None:
        """As kubelet finds a pod's sandbox gone: its containers are stopped, and the lab is
        changed so that the pod is made anew (`python3 -m kubenet_lab.app.vanished`: a
        ReplicaSet's pod under a new name, another pod under its own with a new address). A
        namespace is missing on two looks in a row before anything is done."""
        seen: set[str] = set()
        had: set[str] = set()
        while not self._stopping:
            await asyncio.sleep(WATCH_INTERVAL)
            if self._stopping or self._lock.locked():
                seen.clear()
                continue
            if not os.path.exists(state.plan_path(self.lab)):  # the lab is going (or gone): not ours to remake
                continue
            gone = self.missing(had)
            confirmed = [w for w in gone if w.pod.key in seen]
            seen = {w.pod.key for w in gone}
            if not confirmed:
                continue
            async with self._lock:
                for w in confirmed:
                    had.discard(w.pod.netns)
                    self.pods.pop(pod_key(w.pod), None)
                    log.warning("pod %s: its network namespace %s is gone; stopping it", w.pod.key, w.pod.netns)
                await asyncio.gather(*(w.stop(0, 0) for w in confirmed), return_exceptions=True)
            events.record(self.lab, [Event(w.pod.namespace, "Pod", w.pod.name, "SandboxChanged",
                                           "Pod sandbox changed, it will be killed and re-created.",
                                           source="kubelet", host=w.pod.node) for w in confirmed])
            keys = [w.pod.key for w in confirmed]
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", VANISHED_MODULE, "--lab", self.lab, *keys, cwd="/",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, err = await proc.communicate()
                if proc.returncode == 0:
                    log.info("pods made anew after their namespace went: %s", out.decode().strip())
                else:
                    log.warning("could not make %s anew (exit %s): %s", keys, proc.returncode,
                                err.decode(errors="replace").strip())
            except OSError as e:
                log.warning("cannot run %s: %s", VANISHED_MODULE, e)
            seen.clear()

    # --- the balancer's health checks ------------------------------------------------------

    async def watch_balancer(self) -> None:
        """As a cloud balancer does: every node's healthCheckNodePort of every Service that has
        one is probed every PROBE_INTERVAL from the balancer's namespace; when the nodes that pass
        differ from those its table was made with, `python3 -m kubenet_lab.app.balancer` (under
        the lab's lock) probes again and makes the table anew."""
        delay = PROBE_INTERVAL
        while not self._stopping:
            await asyncio.sleep(delay)
            delay = PROBE_INTERVAL
            plan = self.plan
            if self._stopping or plan is None or not os.path.exists(state.plan_path(self.lab)):
                continue
            if not health_checks(plan) and not lbhealth.saved(self.lab):
                continue
            try:
                results = await lbhealth.probe_all(plan)
            except OSError:  # the balancer's namespace is not there (yet, or any more)
                continue
            if results == lbhealth.saved(self.lab) or self._stopping:
                continue
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", BALANCER_MODULE, "--lab", self.lab, cwd="/",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, err = await proc.communicate()
            except OSError as e:
                log.warning("balancer: cannot run %s: %s", BALANCER_MODULE, e)
                delay = READINESS_RETRY
                continue
            if proc.returncode == 0:
                log.info("balancer: health checks passed by %s; %s",
                         {k: sorted(v) for k, v in results.items()}, out.decode().strip())
            else:
                log.warning("balancer: sync failed (exit %s): %s", proc.returncode,
                            err.decode(errors="replace").strip())
                delay = READINESS_RETRY

    def status(self, only: list[str] | None = None) -> dict:
        pods = {w.pod.key: w.status() for w in self.pods.values() if only is None or w.pod.key in only}
        return {"ok": True, "pid": os.getpid(), "pods": pods}

    def logs(self, pod: str, container: str) -> dict:
        for w in self.pods.values():
            if w.pod.key == pod and (c := w.find(container)) is not None:
                return {"ok": True, "text": c.runner.logs()}
        return {"ok": False, "error": f"no container {container!r} in pod {pod!r}"}

    async def stop(self) -> dict:
        self._stopping = True
        if self._ready_timer is not None:
            self._ready_timer.cancel()
        if self._ready_proc is not None and self._ready_proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._ready_proc.kill()
        async with self._lock:
            workers, self.pods = list(self.pods.values()), {}
            await asyncio.gather(*(w.stop(min(w.pod.termination_grace_period, STOP_GRACE), STOP_MIN_GRACE)
                                   for w in workers))
        self.health.close()
        self.userspace.close()
        stopped = sum(w.size for w in workers)
        log.info("stopped %d containers", stopped)
        return {"ok": True, "pid": os.getpid(), "stopped": stopped}

    async def handle(self, msg: dict) -> dict:
        op = msg.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid(), "lab": self.lab}
        if op == "reload":
            return await self.reload(frozenset(msg.get("keep", ())))
        if op == "status":
            return self.status(msg.get("pods"))
        if op == "readiness":  # a change about to load the rules with these: the view follows now
            want = self.readiness()
            self._set_view(self.plan, want)
            return {"ok": True, "notReady": sorted(want[0]), "terminal": sorted(want[1])}
        if op == "logs":
            return self.logs(str(msg.get("pod")), str(msg.get("container")))
        if op == "stop":
            return await self.stop()
        return {"ok": False, "error": f"unknown op {op!r}"}

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                msg: dict = {}
                try:
                    msg = json.loads(line)
                    reply = await self.handle(msg)
                except Exception as e:  # the CLI shows it; the supervisor carries on
                    log.exception("request %r failed", line)
                    reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
                if msg.get("op") == "stop":
                    self.done.set()
                    return
        except ConnectionError:
            pass
        finally:
            writer.close()


def _after_crash(lab: str, before: int) -> None:
    """The supervisor before this one (pid `before`) ended without stopping its pods (killed):
    their real processes died with it (PR_SET_PDEATHSIG), but what they forked may live on in
    the pods' namespaces; it is killed, and every pod's containers start again, as kubelet
    restarts the containers of its pods when it comes back. Said in the log and, on every
    node, as kubelet says it starts."""
    plan = state.load_plan(lab)
    if plan is None:
        return
    left = [pid for pids in procs.processes_in(p.netns for p in plan.pods if not p.host_network).values()
            for pid in pids]
    procs.kill(left)
    log.warning("the supervisor before (pid %d) ended without stopping its pods: %d process(es) it left in "
                "them killed; the containers of its %d pods start again", before, len(left), len(plan.pods))
    events.record(lab, [Event("", "Node", n.name, "Starting", "Starting kubelet.", source="kubelet", host=n.name)
                        for n in plan.nodes])


async def serve(lab: str, before: int | None = None) -> None:
    loop = asyncio.get_running_loop()
    if sys.version_info < (3, 12):
        # The default child watcher starts a thread per child; fork with a thread around is
        # unsafe for preexec_fn. pidfds need no thread.
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)
    sup = Supervisor(lab)
    state.keep_plans()  # a reload decodes only the pods that changed (fabric.state)
    sock_path = path(lab, SOCK)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock_path)
    server = await asyncio.start_unix_server(sup.client, path=sock_path)
    os.chmod(sock_path, 0o600)

    async def terminate() -> None:
        await sup.stop()
        sup.done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(terminate()))
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(sup.reload()))
    log.info("supervisor of lab %s running, pid %d", lab, os.getpid())
    watcher_task = asyncio.ensure_future(sup.watch_namespaces())
    balancer_task = asyncio.ensure_future(sup.watch_balancer())
    try:
        if before is not None:
            with contextlib.suppress(LabError):  # a process that outlives SIGKILL: its pod starts anyway
                _after_crash(lab, before)
        await sup.reload()  # restarted with a lab in place: bring its containers back (no plan: nothing)
    except Exception:
        log.exception("initial reload failed")
    await sup.done.wait()
    watcher_task.cancel()
    balancer_task.cancel()
    server.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock_path)
    log.info("supervisor of lab %s exiting", lab)


def _daemonize(log_file: str) -> None:
    """Leave the caller: a new session, stdio to the log, no working directory held."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)


def _raise_nofile() -> None:
    """Two or three sockets per pod: 500 pods pass the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python3 -m {MODULE}", description=__doc__.split("\n")[0])
    parser.add_argument("--lab", required=True)
    parser.add_argument("--foreground", action="store_true", help="do not detach (for debugging)")
    args = parser.parse_args(argv)
    if not is_lab_name(args.lab):
        parser.error(f"invalid lab name {args.lab!r}")
    os.makedirs(state.state_dir(args.lab), exist_ok=True)
    if not args.foreground:
        _daemonize(path(args.lab, LOG))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s supervisor[%(process)d] %(levelname)s %(message)s")
    lock = os.open(path(args.lab, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("another supervisor of lab %s is running", args.lab)
        return 0
    _raise_nofile()
    before = _read_pid(args.lab)  # left by a supervisor that did not exit (it removes it as it does)
    state.write_atomic(path(args.lab, PID), f"{os.getpid()}\n")
    try:
        asyncio.run(serve(args.lab, before))
    finally:
        with contextlib.suppress(FileNotFoundError):
            if _read_pid(args.lab) == os.getpid():
                os.unlink(path(args.lab, PID))
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    os._exit(code)  # everything is closed: skip the interpreter's teardown, `down` waits for this exit
