"""The verbs that read a running lab: get, logs, exec. Light on imports, so `exec` starts fast.

Nothing here changes the lab; `app.build` holds the verbs that do.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Collection, Sequence

from ..errors import InputError, LabError
from ..plan import naming
from ..fabric import state
from ..supervisor import client as supervisor

if TYPE_CHECKING:  # the model and the planner: imported by the verbs that decode the plan; `logs` and
    # `get pods` read its JSON (plan_data) and start without them (bench/bench_cli.py)
    from ..model.objects import Plan


def _not_up(lab: str) -> LabError:
    return LabError(f"lab {lab!r} is not up (no state under {state.state_dir(lab)}); "
                    f"start it with `kubenet-lab --lab {lab} up`")


def running_plan(lab: str, only_pods: Collection[str] | None = None, data: dict | None = None) -> Plan:
    """The lab's plan, its endpoints as the rules have them; with `only_pods` ("ns/name"), with
    those of its pods alone (see state.load_plan); `data`: its JSON as plan_data read it."""
    from ..plan.services import with_readiness

    naming.check_lab_name(lab)
    plan = state.load_plan(lab, only_pods) if data is None else state.plan_of_data(lab, data, only_pods)
    if plan is None:
        raise _not_up(lab)
    return with_readiness(plan, state.not_ready(lab), state.terminal(lab))  # endpoints as the rules have them


def plan_data(lab: str) -> dict:
    """The lab's plan as saved (plan.serialize's JSON), not decoded: for the verbs that read a few
    of its fields (`logs`, `get pods`)."""
    naming.check_lab_name(lab)
    data = state.load_plan_data(lab)
    if data is None:
        raise _not_up(lab)
    return data


def events(lab: str, since: int = 0, mentioning: str | None = None):
    """The lab's events recorded from byte `since` on, and where to read from next; with
    `mentioning`, at least those about objects of that name (fabric/events.read)."""
    from ..fabric import events as events_store

    return events_store.read(lab, since, mentioning)


def pod_status(lab: str, pods: Collection[str] | None = None) -> dict:
    """Container states from the supervisor (with `pods`, "ns/name", of those at least); {} when
    it is not running. A lab that is up but lost its supervisor (killed) gets it back first, its
    pods' containers started again."""
    if not supervisor.find_supervisors(lab):
        if os.geteuid() != 0 or not _revived(lab):
            return {}
    msg = {"op": "status"} if pods is None else {"op": "status", "pods": sorted(pods)}
    try:
        return supervisor.request(lab, msg, timeout=5).get("pods", {})
    except Exception:
        return {}


def pod_lines(lab: str) -> tuple[list, dict, Callable[[str], float | None]]:
    """What `get pods` prints, read from the plan's JSON without decoding it (nor importing the
    model): a PodLine (output.py) of each pod that exists (pending ones too; not those the
    supervisor has not created yet, as `existing`), the supervisor's status, and when an object
    ("Kind/ns/name") was created as output.created_at has it. The JSON's field names are
    plan.serialize's, of model.objects' PlannedPod, PlannedContainer and PendingPod
    (tests/unit/test_get.py compares these lines with those of the decoded plan)."""
    from .. import output

    data = plan_data(lab)
    status = pod_status(lab)
    gone = {k for k, st in status.items() if isinstance(st, dict) and st.get("created") is False}
    try:
        lines = [output.PodLine(
            p["namespace"], p["name"], p["labels"],
            containers=tuple((c["name"], c["run"]["kind"] == "RunExec") for c in p["containers"]),
            init_containers=tuple((c["name"], c["run"]["kind"] == "RunExec", c["sidecar"])
                                  for c in p["init_containers"]),
            restart_policy=p["restart_policy"], netns=p["netns"], ip=p["ip"], node=p["node"])
            for p in data["pods"] if f"{p['namespace']}/{p['name']}" not in gone]
        lines += [output.PodLine(
            p["namespace"], p["name"], p["labels"], pending=True,
            containers=tuple((c[0], False) for c in p["containers"]),
            reason="SchedulingGated" if p["message"].startswith("Scheduling is blocked") else "Unschedulable")
            for p in data["pending"]]
        created = data["allocations"]["created"]
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise state.unreadable(lab, e) from e

    def created_at(ref: str) -> float | None:
        return created.get(ref) or output.plan_saved(lab)
    return lines, status, created_at


def _revived(lab: str) -> bool:
    try:
        if not supervisor.revive(lab):
            return False
    except LabError as e:
        print(f"warning: the supervisor of lab {lab} is not running, and could not be started again: {e}",
              file=sys.stderr)
        return False
    print(f"warning: the supervisor of lab {lab} was not running: started it again, and with it the containers "
          f"of every pod", file=sys.stderr)
    return True


def existing(plan: Plan, status: dict) -> Plan:
    """`plan` without the pods the supervisor has not created yet (a StatefulSet's next
    ordinal waiting for the one before it to be Running and Ready): they do not exist yet."""
    from ..plan import ordering

    return ordering.without_pods(plan, ordering.not_created(status))


@dataclass(frozen=True)
class ExecTarget:
    netns: str
    hostname: str | None
    files: dict[str, str]  # target path -> content
    # A pod's container: the environment its process has (PATH, HOME, HOSTNAME, service
    # variables, its env), as `kubectl exec` gives it, and nothing of the caller's but TERM.
    # None (a node, the outside client, the balancer: this machine's own processes): the
    # caller's environment.
    environ: dict[str, str] | None = None
    # A pod's container, whose confinement the command gets (None: a node's or the outside's).
    pod: object = None
    container: object = None


# `exec external -- ...`, `exec external2 -- ...` and `exec lb -- ...`: the clients outside the
# cluster and the load balancer.
OUTSIDE_TARGETS = {"external": naming.external_netns, "external2": naming.external2_netns, "lb": naming.lb_netns}


def pod_key(target: str, namespace: str) -> str | None:
    """The pod ("ns/name") an exec target names, if it names one: POD, pod/POD, pods/POD."""
    if target.startswith(("node/", "nodes/")):
        return None
    return f"{namespace}/{target.split('/', 1)[1] if target.startswith(('pod/', 'pods/')) else target}"


def resolve_target(plan: Plan, target: str, namespace: str, container: str | None) -> ExecTarget:
    if pod_key(target, namespace) is None:
        name = target.split("/", 1)[1]
        try:
            node = plan.node(name)
        except KeyError:
            raise LabError(f"node {name!r} not found; nodes: {', '.join(n.name for n in plan.nodes)}") from None
        return ExecTarget(netns=node.netns, hostname=node.name, files={})
    key = pod_key(target, namespace)
    name = key.split("/", 1)[1]
    try:
        pod = plan.pod(key)
    except KeyError:
        if target in OUTSIDE_TARGETS:  # a pod of that name wins
            return ExecTarget(netns=OUTSIDE_TARGETS[target](plan.lab), hostname=target, files={})
        raise LabError(f'pods "{name}" not found in namespace {namespace!r} (see `kubenet-lab get pods -A`)') from None
    everyone = [*pod.containers, *pod.init_containers]
    if container is not None and container not in [c.name for c in everyone]:
        raise LabError(f"container {container!r} is not valid for pod {name}; choose one of: "
                       f"{', '.join(c.name for c in everyone)}")
    from ..plan.containers import process_environment
    from ..plan.podfiles import pod_files, pod_hostname

    files = pod_files(plan, pod)
    hostname = pod_hostname(plan, pod)
    chosen = next((c for c in everyone if c.name == container), pod.containers[0] if pod.containers else None)
    environ = process_environment(plan, pod, chosen, hostname)
    return ExecTarget(netns=pod.netns, hostname=hostname, files=files, environ=environ, pod=pod, container=chosen)


def _container_pid(lab: str, pod: str, container: str) -> int | None:
    """The supervisor's process of a running container (None: emulated, not running, or no
    supervisor), whose PID namespace an exec joins."""
    with contextlib.suppress(Exception):
        reply = supervisor.request(lab, {"op": "status", "pods": [pod]}, timeout=5)
        info = reply.get("pods", {}).get(pod, {})
        for group in ("containers", "initContainers"):
            if isinstance(c := info.get(group, {}).get(container), dict):
                return c.get("pid")
    return None


def exec_(lab: str, target: str, namespace: str, container: str | None, argv: Sequence[str],
          stdin: bool = True, privileged: bool = False) -> int:
    """Replace this process with argv inside the target's namespaces: output and exit status pass
    through, and standard input with `stdin` (else the command reads /dev/null, as without
    kubectl's -i). In a pod it runs confined as the container is (as `kubectl exec`), unless
    `privileged`: then as root with every capability on the host's files (as a node's)."""
    from ..fabric import checks
    from ..kernel import nsenter

    checks.require_root("exec")
    key = pod_key(target, namespace)
    plan = running_plan(lab, only_pods=() if key is None else (key,))  # the other pods are not decoded
    t = resolve_target(plan, target, namespace, container)
    if not argv:
        raise InputError("exec: no command given; usage: kubenet-lab exec TARGET -- COMMAND [ARGS...]")
    if shutil.which(argv[0], path=(os.environ if t.environ is None else t.environ).get("PATH")) is None:
        raise LabError(f'exec: "{argv[0]}": executable file not found in $PATH')
    if not stdin:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    if t.environ is None:
        environ = dict(os.environ)
    else:
        environ = {**({"TERM": os.environ["TERM"]} if "TERM" in os.environ else {}), **t.environ}
    if t.container is not None and not privileged:
        from ..kernel import confine
        from ..runtime import sandbox

        if why := sandbox.blocked(lab, plan, t.pod, t.container):
            raise LabError(f"container {t.container.name} of pod {t.pod.name} has not started ({why[0]}: {why[1]}): "
                           "there is nothing to exec into yet")
        pid = _container_pid(lab, t.pod.key, t.container.name)
        sb = sandbox.sandbox(lab, t.pod, t.container, t.hostname, t.files, join=sandbox.container_init(pid))
        chain = confine.argv(sb, list(argv), confine.env_file(environ))  # the descriptor stays open for it
        confine.enter(sb)
        os.execve(chain[0], chain, confine.CLEAN_ENV)
    nsenter.enter_pod(t.netns, t.hostname, t.files)
    os.execvpe(argv[0], list(argv), environ)
    return 127  # not reached


def _pod_data(data: dict, lab: str, namespace: str, name: str) -> dict | None:
    """A pod of the plan's JSON (one the nodes run, not a pending one), or None."""
    try:
        return next((p for p in data["pods"] if p["name"] == name and p["namespace"] == namespace), None)
    except (KeyError, TypeError) as e:
        raise state.unreadable(lab, e) from e


def logs(lab: str, pod: str, namespace: str, container: str | None) -> str:
    p = _pod_data(plan_data(lab), lab, namespace, pod)  # the plan is not decoded: its JSON has the names
    if p is None:
        raise LabError(f'pods "{pod}" not found in namespace {namespace!r}')
    try:
        names = [c["name"] for c in p["containers"]]
        inits = [c["name"] for c in p["init_containers"]]
    except (KeyError, TypeError) as e:
        raise state.unreadable(lab, e) from e
    if container is None:
        if len(names) != 1:
            also = f" or one of the init containers: [{' '.join(inits)}]" if inits else ""
            raise LabError(f"a container name must be specified for pod {pod}, choose one of: [{' '.join(names)}]"
                           + also)
        container = names[0]
    elif container not in names + inits:
        raise LabError(f"container {container} is not valid for pod {pod}")
    return _container_log(lab, namespace, pod, container)


def _container_log(lab: str, namespace: str, pod: str, container: str) -> str:
    """Built-in servers log into the supervisor's memory, real processes into a file; without
    a supervisor only the file remains."""
    with contextlib.suppress(supervisor.SupervisorUnavailable):
        reply = supervisor.request(lab, {"op": "logs", "pod": f"{namespace}/{pod}", "container": container},
                                   timeout=5)
        if reply.get("ok"):
            return reply.get("text", "")
    try:
        with open(state.log_path(lab, namespace, pod, container), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""
