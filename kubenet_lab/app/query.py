"""The verbs that read a running lab: get, logs, exec. Light on imports, so `exec` starts fast.

Nothing here changes the lab; `app.build` holds the verbs that do.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Collection, Sequence

from ..errors import InputError, LabError
from ..plan import naming, ordering
from ..model.objects import Plan
from ..plan.services import with_readiness
from ..fabric import state
from ..supervisor import client as supervisor


def running_plan(lab: str, only_pods: Collection[str] | None = None) -> Plan:
    """The lab's plan, its endpoints as the rules have them; with `only_pods` ("ns/name"), with
    those of its pods alone (see state.load_plan)."""
    naming.check_lab_name(lab)
    plan = state.load_plan(lab, only_pods)
    if plan is None:
        raise LabError(f"lab {lab!r} is not up (no state under {state.state_dir(lab)}); "
                       f"start it with `kubenet-lab --lab {lab} up`")
    return with_readiness(plan, state.not_ready(lab), state.terminal(lab))  # endpoints as the rules have them


def events(lab: str, since: int = 0):
    """The lab's events recorded from byte `since` on, and where to read from next."""
    from ..fabric import events as events_store

    return events_store.read(lab, since)


def pod_status(lab: str) -> dict:
    """Container states from the supervisor; {} when it is not running. A lab that is up but
    lost its supervisor (killed) gets it back first, its pods' containers started again."""
    if not supervisor.find_supervisors(lab):
        if os.geteuid() != 0 or not _revived(lab):
            return {}
    try:
        return supervisor.request(lab, {"op": "status"}, timeout=5).get("pods", {})
    except Exception:
        return {}


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


# `exec external -- ...` and `exec lb -- ...`: the client outside the cluster and the load balancer.
OUTSIDE_TARGETS = {"external": naming.external_netns, "lb": naming.lb_netns}


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
    return ExecTarget(netns=pod.netns, hostname=hostname, files=files, environ=environ)


def exec_(lab: str, target: str, namespace: str, container: str | None, argv: Sequence[str],
          stdin: bool = True) -> int:
    """Replace this process with argv inside the target's namespaces: output and exit status pass
    through, and standard input with `stdin` (else the command reads /dev/null, as without
    kubectl's -i)."""
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
    nsenter.enter_pod(t.netns, t.hostname, t.files)
    if t.environ is None:
        environ = dict(os.environ)
    else:
        environ = {**({"TERM": os.environ["TERM"]} if "TERM" in os.environ else {}), **t.environ}
    os.execvpe(argv[0], list(argv), environ)
    return 127  # not reached


def logs(lab: str, pod: str, namespace: str, container: str | None) -> str:
    plan = running_plan(lab, only_pods=(f"{namespace}/{pod}",))
    try:
        p = plan.pod(f"{namespace}/{pod}")
    except KeyError:
        raise LabError(f'pods "{pod}" not found in namespace {namespace!r}') from None
    names = [c.name for c in p.containers]
    inits = [c.name for c in p.init_containers]
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
