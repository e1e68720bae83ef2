"""The Events a change of the lab makes, worded as Kubernetes words them: a pure function of the
plan before and the plan after.

What the controllers and the scheduler do at once when objects change is read off the two plans:
a pod that appears was created by its controller (SuccessfulCreate) and assigned to a node by
the scheduler (Scheduled), or found no node (FailedScheduling); a pod that goes was deleted by
its controller (SuccessfulDelete) and its containers stopped by the kubelet (Killing); a
Deployment's ReplicaSet that changes size was scaled (ScalingReplicaSet). What happens later in
a pod (Started, Unhealthy, BackOff) is the supervisor's to tell, as it happens.
"""
from __future__ import annotations

from ..model.objects import Event, PendingPod, Plan, PlannedPod

# The component each controller's events come from (the Event's source.component).
CONTROLLERS = {"ReplicaSet": "replicaset-controller", "ReplicationController": "replication-controller",
               "StatefulSet": "statefulset-controller", "DaemonSet": "daemonset-controller",
               "Job": "job-controller"}
SCHEDULER = "default-scheduler"


def _owner(pod: PlannedPod | PendingPod) -> tuple[str, str] | None:
    if not pod.owner or "/" not in pod.owner:
        return None
    kind, name = pod.owner.split("/", 1)
    return (kind, name) if kind in CONTROLLERS else None


def _created_by_controller(pod: PlannedPod | PendingPod) -> list[Event]:
    owner = _owner(pod)
    if owner is None:
        return []
    kind, name = owner
    if kind == "StatefulSet":  # the StatefulSet controller's own wording
        message = f"create Pod {pod.name} in StatefulSet {name} successful"
    else:
        message = f"Created pod: {pod.name}"
    return [Event(pod.namespace, kind, name, "SuccessfulCreate", message, source=CONTROLLERS[kind])]


def _deleted_by_controller(pod: PlannedPod | PendingPod) -> list[Event]:
    owner = _owner(pod)
    if owner is None:
        return []
    kind, name = owner
    if kind == "StatefulSet":
        message = f"delete Pod {pod.name} in StatefulSet {name} successful"
    else:
        message = f"Deleted pod: {pod.name}"
    return [Event(pod.namespace, kind, name, "SuccessfulDelete", message, source=CONTROLLERS[kind])]


def _scaling(previous: Plan | None, plan: Plan) -> list[Event]:
    """ScalingReplicaSet on a Deployment: each of its ReplicaSets whose size changed, the new
    one up first (as the deployment controller scales up before it scales down)."""
    def sizes(p: Plan | None) -> dict[tuple[str, str], tuple[str | None, int]]:
        return {(w.namespace, w.name): (w.owner, w.replicas) for w in (p.workloads if p else ())
                if w.kind == "ReplicaSet" and (w.owner or "").startswith("Deployment/")}
    before, after = sizes(previous), sizes(plan)
    ups: list[Event] = []
    downs: list[Event] = []
    for key in sorted(before.keys() | after.keys()):
        owner, old = before.get(key, (None, 0))
        owner_now, new = after.get(key, (owner, 0))
        owner = owner_now or owner
        if old == new or owner is None:
            continue
        way = "up" if new > old else "down"
        event = Event(key[0], "Deployment", owner.split("/", 1)[1], "ScalingReplicaSet",
                      f"Scaled {way} replica set {key[1]} to {new} from {old}", source="deployment-controller")
        (ups if way == "up" else downs).append(event)
    return ups + downs


def _nodes(previous: Plan | None, plan: Plan) -> list[Event]:
    before = {n.name for n in previous.nodes} if previous else set()
    after = {n.name for n in plan.nodes}
    return ([Event("", "Node", n, "RegisteredNode", f"Node {n} event: Registered Node {n} in Controller",
                   source="node-controller") for n in sorted(after - before)]
            + [Event("", "Node", n, "RemovingNode", f"Node {n} event: Removing Node {n} from Controller",
                     source="node-controller") for n in sorted(before - after)])


def _load_balancers(previous: Plan | None, plan: Plan) -> list[Event]:
    had = {s.key for s in previous.services if s.type == "LoadBalancer"} if previous else set()
    out = []
    for s in plan.services:
        if s.type == "LoadBalancer" and s.key not in had:
            out += [Event(s.namespace, "Service", s.name, "EnsuringLoadBalancer", "Ensuring load balancer",
                          source="service-controller"),
                    Event(s.namespace, "Service", s.name, "EnsuredLoadBalancer", "Ensured load balancer",
                          source="service-controller")]
    return out


def _skipped_variables(pod: PlannedPod, old: PlannedPod | None) -> list[Event]:
    """kubelet's InvalidEnvironmentVariableNames, when it makes a container's environment: envFrom
    keys that are no variable names (see plan.configs)."""
    had = {(c.name, m) for c in (*old.init_containers, *old.containers) for m in c.env_skipped} if old else set()
    return [Event(pod.namespace, "Pod", pod.name, "InvalidEnvironmentVariableNames", message, type="Warning",
                  source="kubelet", host=pod.node)
            for c in (*pod.init_containers, *pod.containers) for message in c.env_skipped
            if (c.name, message) not in had]


def plan_events(previous: Plan | None, plan: Plan) -> list[Event]:
    """The Events of going from `previous` (None: nothing) to `plan`, in the order they happen:
    nodes, controllers scaling and creating, the scheduler placing, then what goes away."""
    old_pods = {p.key: p for p in previous.pods} if previous else {}
    old_pending = {p.key: p for p in previous.pending} if previous else {}
    new_pods = {p.key: p for p in plan.pods}
    new_pending = {p.key: p for p in plan.pending}

    def existed(key: str, pod: PlannedPod | None = None) -> bool:
        if key in old_pending:
            return True
        old = old_pods.get(key)
        return old is not None and (pod is None or old.uid == pod.uid)

    events = _nodes(previous, plan) + _scaling(previous, plan)
    for key, pod in new_pods.items():
        if not existed(key, pod):
            events += _created_by_controller(pod)
        old = old_pods.get(key)
        if old is None or old.uid != pod.uid:
            events.append(Event(pod.namespace, "Pod", pod.name, "Scheduled",
                                f"Successfully assigned {pod.namespace}/{pod.name} to {pod.node}", source=SCHEDULER))
        events += _skipped_variables(pod, old)
    for key, pending in new_pending.items():
        if not existed(key):
            events += _created_by_controller(pending)
        if key not in old_pending or old_pending[key].message != pending.message:
            events.append(Event(pending.namespace, "Pod", pending.name, "FailedScheduling", pending.message,
                                type="Warning", source=SCHEDULER))
    events += _load_balancers(previous, plan)
    for key, pod in old_pods.items():
        now = new_pods.get(key)
        if now is not None and now.uid == pod.uid:
            continue
        events += stopping([pod])
        if now is None and key not in new_pending:
            events += _deleted_by_controller(pod)
        elif now is not None:  # the same name made anew (a StatefulSet's pod): deleted, then created
            events += _deleted_by_controller(pod) + _created_by_controller(now)
    for key, gone in old_pending.items():
        if key not in new_pods and key not in new_pending:
            events += _deleted_by_controller(gone)
    return events


def stopping(pods: list[PlannedPod]) -> list[Event]:
    """The kubelet's Killing for each container of pods it stops."""
    return [Event(p.namespace, "Pod", p.name, "Killing", f"Stopping container {c.name}", source="kubelet",
                  host=p.node) for p in pods for c in p.containers]
