"""One function per verb: load -> plan -> diff -> render -> apply, undoing a failed `up`.

This is the only module that ties the pure core (manifests, plan, render) to the imperative
shell (system). It decides *what* changes; system/ knows *how*.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence, TextIO

from ..errors import EnvironmentProblem, InputError, LabError
from ..manifests import load_model, store
from ..manifests.fields import Sink
from ..manifests.load import model_of, read_docs
from ..plan import make_plan, naming, ordering, probes, rollout
from ..plan.cluster import workload_warnings
from ..plan.containers import emulation_warnings
from ..plan.configs import waiting_warnings
from ..plan.podfiles import sandbox_warnings
from ..plan.events import plan_events
from ..plan.naming import check_lab_name
from ..model.objects import Model, Plan, PlannedPod
from ..plan.services import removed_udp_endpoints, with_readiness
from ..proxy import iptables, portmap
from ..proxy.lb import forwards as lb_forwards, health_checks as lb_health_checks, render_lb
from ..proxy.sync import MODES, RenderedNode, other_syntaxes, plan_sync, render_nodes, syntax
from ..fabric import checks, cni, events, lbhealth, netlink, outside, state
from ..dataplane import backends as dataplane
from ..dataplane import wiring
from ..fabric import netpol
from ..kernel import conntrack, nfacct, procs, rules
from ..kernel.steps import step
from ..supervisor import client as supervisor
from ..inspect import dryrun


PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_MANIFESTS = os.path.join(PACKAGE_DIR, "examples")


def default_manifests() -> list[str]:
    """The example lab: the checkout's manifests/ when run from a checkout, else the bundled copy."""
    checkout = os.path.join(os.path.dirname(PACKAGE_DIR), "manifests")
    return [checkout if os.path.isdir(checkout) else BUNDLED_MANIFESTS]


@dataclass
class UpResult:
    plan: Plan
    warnings: tuple[str, ...] = ()
    created: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rules_changed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: str | None = None  # with --dry-run: what would change (inspect.dryrun)


def with_proxy_mode(model: Model, proxy_mode: str | None) -> Model:
    if not proxy_mode:
        return model
    if proxy_mode == "ipvs":
        raise InputError("--proxy-mode: ipvs is not supported: this kernel has no IPVS, and kubenet-lab does not "
                         "pretend; use iptables, nftables or userspace")
    return dataclasses.replace(model, cluster=dataclasses.replace(model.cluster, kube_proxy_mode=proxy_mode))


def load(paths: Sequence[str], stdin: TextIO | None, proxy_mode: str | None) -> Model:
    return with_proxy_mode(load_model(list(paths) or default_manifests(), stdin=stdin), proxy_mode)


@dataclass
class Change:
    """What a verb makes of the lab's objects: the model to build, the objects to keep, and the
    previous plan as the planner is to see it (a deleted pod's allocation let go). With
    `if_changed`, a plan equal to the previous one is not applied at all."""
    model: Model
    objects: list[store.Stored]
    proxy_mode: str | None
    previous: Plan | None
    warnings: tuple[str, ...] = ()
    if_changed: bool = False


def up(lab: str, paths: Sequence[str] = (), stdin: TextIO | None = None, proxy_mode: str | None = None,
       dry_run: bool = False) -> UpResult:
    """Make the lab exactly what the files say (objects they no longer name go)."""
    check_lab_name(lab)
    sink = Sink()
    docs = read_docs(list(paths) or default_manifests(), stdin, sink)
    model = with_proxy_mode(model_of(docs, sink), proxy_mode)
    objects = store.stored(docs)
    checks.require_root("up")
    checks.require_tools(*checks.tools_for_mode(model.cluster.kube_proxy_mode))
    return change(lab, lambda previous, held: Change(model, objects, proxy_mode, previous), dry_run=dry_run)


def held_objects(lab: str, previous: Plan | None) -> tuple[list[store.Stored], str | None]:
    """The objects the lab holds, and its --proxy-mode; none for a lab that is not up."""
    kept = state.load_objects(lab)
    if kept is not None:
        return kept
    if previous is not None:
        raise LabError(f"lab {lab!r} was brought up by an earlier kubenet-lab, which kept no copy of its objects; "
                       f"run `kubenet-lab --lab {lab} up FILES` with its files once, then change it")
    return [], None


def change(lab: str, decide, verb: str = "up", dry_run: bool = False) -> UpResult:
    """The one way the lab changes: under the lab's lock, `decide(previous plan, (held objects,
    proxy mode))` says what the lab is to be; it is planned, built, recorded (events, objects).
    With `dry_run`, it is planned only: the result says what would change, and nothing does."""
    checks.require_root(verb)
    checks.require_bridge_netfilter()
    started = time.monotonic()
    with state.locked(lab):
        step("locked")
        previous = state.load_plan(lab)
        if previous is not None and state.interrupted(lab) and not dry_run:
            previous = _finish_interrupted(lab, previous)
        try:
            what: Change = decide(previous, held_objects(lab, previous) if previous is not None else ([], None))
            checks.require_tools(*checks.tools_for_mode(what.model.cluster.kube_proxy_mode))
            plan = make_plan(what.model, lab, what.previous, has_program=checks.has_program,
                             node_resolv_conf=checks.node_resolv_conf(), now=(planned_at := time.time()),
                             not_ready=state.not_ready(lab) | state.terminal(lab))
        except InputError:
            state.remove_if_unused(lab)  # bad input changes nothing, not even the state dir
            raise
        if what.if_changed and plan == previous:
            return UpResult(plan=plan)
        model = what.model
        pending = tuple(f"pod {p.key} is Pending ({'FailedScheduling' if p.reason == 'Unschedulable' else p.reason}): "
                        f"{p.message}" for p in plan.pending)
        result = UpResult(plan=plan, warnings=what.warnings + model.warnings + workload_warnings(model)
                          + emulation_warnings(plan) + pending + waiting_warnings(plan, previous)
                          + sandbox_warnings(plan, previous))
        try:
            cni.validate(plan)  # the plugins there, a user's conflist usable: before anything changes
        except (InputError, EnvironmentProblem):
            state.remove_if_unused(lab)
            raise
        if dry_run:
            result.dry_run = _dry_run_report(previous, plan)
            state.remove_if_unused(lab)
            return result
        _apply(plan, previous, result, lambda: state.save_objects(lab, what.objects, what.proxy_mode))
        # at the time the change was planned: before what the kubelet side then says of the pods
        events.record(lab, plan_events(previous, plan), now=planned_at)
        step("events-recorded")
    result.seconds = time.monotonic() - started
    return result


def _dry_run_report(previous: Plan | None, plan: Plan) -> str:
    """inspect.dryrun's report: the rules loaded now (as last applied) against those `plan`
    would load, with the pods not ready left out as they are now."""
    lab = plan.lab
    before = {}
    for n in previous.nodes if previous else ():
        stored = _stored_rules(lab, n.name)
        before[n.name] = stored.text() if stored else ""
    pods = {p.key for p in plan.pods}
    effective = with_readiness(plan, state.not_ready(lab) & pods, state.terminal(lab) & pods)
    # nfacct counters as the last apply found them (a dry run makes none)
    counted = {"nfacct": bool(before) and all("nfacct" in text for text in before.values())} \
        if plan.cluster.kube_proxy_mode == "iptables" else {}
    after = {name: r.text() for name, r in render_nodes(effective, plan.cluster.kube_proxy_mode, **counted).items()}
    return dryrun.report(previous, plan, before, after)


def rollout_step(lab: str) -> list[str] | None:
    """One sync of the Deployment controller while a rollout is under way (the supervisor's
    readiness sync calls it): the lab planned again from its objects, with the pods' readiness
    now; applied when a ReplicaSet's size changed. -> the Deployments still rolling, or None."""
    plan = state.load_plan(lab)
    if plan is None or not rollout.rolling(plan):
        return None

    def decide(previous: Plan | None, held_mode: tuple[list[store.Stored], str | None]) -> Change:
        held, mode = held_mode
        sink = Sink()
        model = with_proxy_mode(model_of([(s.data, s.at(sink)) for s in held], sink), mode)
        return Change(dataclasses.replace(model, warnings=()), held, mode, previous, if_changed=True)

    result = change(lab, decide, "rollout")
    return [f"{w.kind.lower()}/{w.name}" for w in result.plan.workloads if w.kind == "Deployment"] \
        if rollout.rolling(result.plan) else []


def _finish_interrupted(lab: str, previous: Plan) -> Plan:
    """The last change was stopped half-way (killed: its intent journal is still there): the lab
    is first made what the objects it holds say, as that change would have left it once its
    objects were saved (or as before it, when they were not), so that the next change, even
    one that finds nothing to do, starts from a lab whose kernel, plan and supervisor agree."""
    held, mode = held_objects(lab, previous)
    sink = Sink()
    model = with_proxy_mode(model_of([(s.data, s.at(sink)) for s in held], sink), mode)
    plan = make_plan(model, lab, previous, has_program=checks.has_program,
                     node_resolv_conf=checks.node_resolv_conf(), now=time.time(),
                     not_ready=state.not_ready(lab) | state.terminal(lab))
    _apply(plan, previous, UpResult(plan=plan))
    events.record(lab, plan_events(previous, plan))
    return plan


def _pod_namespaces(plan: Plan | None) -> dict[str, PlannedPod]:
    return {p.netns: p for p in plan.pods if not p.host_network} if plan else {}


def _apply(plan: Plan, previous: Plan | None, result: UpResult, save_objects=lambda: None) -> None:
    """Build `plan` over `previous`. `save_objects` keeps the lab's objects just before the plan
    is saved: killed in between, the next change plans from the new objects and mends the lab."""
    known = planned_namespaces(previous)
    half_built = state.intended(plan.lab) - known  # left by an interrupted up
    actual = netlink.discover(plan.lab, known=known | half_built)
    desired_pods = _pod_namespaces(plan)
    outside_ns = outside.namespaces(plan.lab)
    desired = {plan.underlay_netns, *(n.netns for n in plan.nodes), *outside_ns, *desired_pods}
    foreign = sorted(n for n in desired if n in actual and not actual[n])
    if foreign:
        raise LabError(f"network namespace {foreign[0]} exists but was not made by lab {plan.lab} (it has no "
                       f"ownership mark); remove it or choose another --lab")
    before = _pod_namespaces(previous)
    # A backend switch rewires every pod (its MTU, its subnet's prefix): they are made anew too.
    rewired = wiring.pods_rewired(previous, plan)
    changed = {ns for ns, pod in desired_pods.items()
               if ns in actual and ns in before and (rewired or before[ns].uid != pod.uid)}
    stale = {ns for ns, owned in actual.items() if owned and ns not in desired} | changed | (half_built & set(actual))
    # Pods that simply go leave after the new plan is built: its rules drop their endpoints, the
    # supervisor's reload stops them (as kubelet does, with their grace period) while it starts
    # the new pods, and their namespaces go last. What is made anew where it stood (a pod under
    # its old name, its address, its veth) must go first, as must whatever else goes.
    leaving = _leaving_after(previous, plan, stale - changed - half_built)
    stale -= leaving
    nodes_changed = previous is None or [(n.name, n.ip, n.pod_cidr, n.routes) for n in previous.nodes] != \
        [(n.name, n.ip, n.pod_cidr, n.routes) for n in plan.nodes] or \
        previous.cluster.kube_proxy_mode != plan.cluster.kube_proxy_mode or \
        previous.cluster.backend != plan.cluster.backend  # its sysctls (netlink.proxy_sysctls); its backend
    if previous is not None and previous.cluster.backend != plan.cluster.backend:
        result.warnings += (dataplane.switch_summary(previous, plan),)
    if previous is not None and wiring.wiring_changed(previous, plan):
        result.warnings += (wiring.switch_summary(previous, plan),)
    new_lab = not actual
    made: list[str] = []
    launcher = None
    # kept with what an interrupted change meant to make, should this one be stopped too
    state.record_intent(plan.lab, (desired - set(actual)) | stale | half_built | leaving)
    step("intent-recorded")
    try:
        if stale:
            # Built-in servers hold sockets in those namespaces: let go of them first, or the
            # namespaces (and their veths) outlive their names.
            if previous is not None:
                _leave_endpoints(previous, stale)
                step("stale-left-endpoints")
            if previous is not None and supervisor.find_supervisors(plan.lab):
                interim = dataclasses.replace(previous, pods=tuple(p for p in previous.pods if p.netns not in stale))
                state.save_plan(interim)
                # the supervisor stops the pods going away as kubelet does: preStop, SIGTERM, and
                # SIGKILL after their grace period
                supervisor.request(plan.lab, {"op": "reload"}, timeout=_reload_timeout(previous))
                step("stale-stopped")
            # Pods made anew under their old name need their veth's name free on their node now.
            netlink.release_host_veths(plan, [desired_pods[ns] for ns in sorted(stale & set(desired_pods))])
            result.warnings += _cni_release(previous, stale)
            netlink.delete_namespaces(sorted(stale))
            step("stale-deleted")
        launcher = supervisor.launch(plan.lab)  # its start-up overlaps the build below
        if launcher is not None and previous is not None:
            result.warnings += (f"the supervisor of lab {plan.lab} was not running: started it again, and with it "
                                f"the containers of every pod",)
        step("supervisor-launched")
        if nodes_changed or new_lab or any(n not in actual for n in desired if n not in desired_pods):
            made += [n for n in [plan.underlay_netns, *(x.netns for x in plan.nodes)] if n not in actual]
            netlink.ensure_base(plan)
            netlink.ensure_nodes(plan)
        made += [n for n in outside_ns if n not in actual]
        outside.ensure_outside(plan)
        step("nodes-built")
        missing = [p for ns, p in desired_pods.items() if ns not in actual or ns in stale]
        if missing:
            made += [p.netns for p in missing]
            if cni.maps_host_ports(plan):  # the lab's own hostPort rules out before the plugin's come
                _apply_portmap_rules(plan, set(), frozenset())
            netlink.create_pods(plan, missing)
            step("pods-created")
        result.created = made
        fresh = set(made) | stale  # made in this run: whatever was loaded before is gone
        result.removed = sorted(stale | leaving)
        # The rules leave out the pods the supervisor last found not ready, and every pod made
        # anew: as the endpoints controller lists a pod only once the kubelet says it is ready, it
        # joins once its containers run (below), or once a probe passes; a pod created after
        # another (a StatefulSet's, OrderedReady) does not exist until the supervisor creates it.
        was_not_ready, was_terminal = state.not_ready(plan.lab), state.terminal(plan.lab)
        remade = {desired_pods[ns].key for ns in stale if ns in desired_pods}
        waiting = ordering.waiting_at_start(plan, previous)
        probing = probes.not_ready_at_start(plan, previous)  # not ready until a probe passes
        before_uids = {p.key: p.uid for p in previous.pods} if previous else {}
        starting = frozenset(p.key for p in plan.pods if before_uids.get(p.key) != p.uid)
        # Pods that go and pods that come (a replaced pod, a rollout's step) change the rules
        # once: the new pods start while the old ones still serve, then one load takes the old
        # ones out and the ready new ones in, and the old ones stop. (Worth a second reload of
        # the supervisor only when a pod that goes is some Service's endpoint.)
        swap = bool(leaving and starting) and previous is not None and bool(
            {p.key for p in previous.pods if p.netns in leaving} & {
                ep.pod for s in previous.services for port in s.ports for ep in port.endpoints})
        first_not_ready = (was_not_ready - remade) | waiting | probing | starting
        if swap:
            state.save_not_ready(plan.lab, first_not_ready & {p.key for p in plan.pods},
                                 ((was_terminal - remade) | waiting) & {p.key for p in plan.pods})
        else:
            result.rules_changed, warnings = _load_rules(plan, previous, first_not_ready, was_not_ready, fresh,
                                                         (was_terminal - remade) | waiting, was_terminal)
            result.warnings += warnings
            step("rules-loaded")
        save_objects()
        step("objects-saved")
        state.save_plan(plan)
        step("plan-saved")
        supervisor.ensure_running(plan.lab, launcher=launcher)
        step("supervisor-running")
        keep = sorted(p.key for p in previous.pods if p.netns in leaving) if swap and previous else []
        reply = supervisor.request(plan.lab, {"op": "reload", "keep": keep} if keep else {"op": "reload"},
                                   timeout=_reload_timeout(previous))
        step("supervisor-reloaded")
        if not reply.get("ok", False):
            raise LabError(f"the lab's supervisor could not start the pods' containers: {reply.get('error', reply)}")
        if starting:  # the pods made anew whose containers run now join the endpoints before we return
            ready = supervisor.request(plan.lab, {"op": "readiness"})
            ended = frozenset(ready.get("terminal", ()))
            if swap:  # and the old ones leave
                changed, more = _load_rules(plan, previous, frozenset(ready.get("notReady", ())) | ended,
                                            was_not_ready, fresh, ended, was_terminal)
            else:
                loaded_nr, loaded_term = state.not_ready(plan.lab), state.terminal(plan.lab)
                changed, more = _load_rules(plan, plan, frozenset(ready.get("notReady", ())) | ended, loaded_nr,
                                            set(), ended, loaded_term)
            result.rules_changed += [n for n in changed if n not in result.rules_changed]
            result.warnings += more
            if swap or plan.cluster.kube_proxy_mode == "userspace":
                # the old pods stop now, with their grace period; in userspace mode the
                # supervisor's proxies take the new endpoints with this reload too
                reply = supervisor.request(plan.lab, {"op": "reload"}, timeout=_reload_timeout(previous))
                if not reply.get("ok", False):
                    raise LabError(f"the lab's supervisor could not stop the pods that left: "
                                   f"{reply.get('error', reply)}")
            step("ready-pods-joined")
        if leaving:  # stopped by the reload
            result.warnings += _cni_release(previous, leaving)
            netlink.delete_namespaces(sorted(leaving))
            step("left-deleted")
        _sync_balancer(plan)  # the health check ports answer for this plan now: the balancer follows them
        state.clear_intent(plan.lab)  # the change is complete: kernel, plan and supervisor agree
        step("intent-cleared")
    except BaseException:
        if launcher is not None and launcher.returncode is None:
            launcher.wait()  # so that the undo finds (and stops) the supervisor it started
        _undo(plan.lab, made, new_lab)
        raise


def _cni_release(previous: Plan | None, going: set[str]) -> tuple[str, ...]:
    """CNI DEL for the pods of `going` the plugins wired, before their namespaces go."""
    if previous is None:
        return ()
    errors = cni.delete_pods(previous, [p for p in previous.pods if p.netns in going and not p.host_network])
    return tuple(f"CNI DEL failed for {e} (its namespace is removed anyway)" for e in errors)


def _leaving_after(previous: Plan | None, plan: Plan, going: set[str]) -> set[str]:
    """The namespaces of `going` that can leave after `plan` is built: all of them when each is
    a pod's of `previous` whose address and node-side veth no pod of `plan` takes (a pool that
    wrapped around may hand an address out again); none otherwise (a node goes, or the outside)."""
    if not going or previous is None:
        return set()
    pods = {p.netns: p for p in previous.pods if not p.host_network}
    if not going <= pods.keys():
        return set()
    taken = {(p.node, p.ip) for p in plan.pods} | {(p.node, p.host_veth) for p in plan.pods if p.host_veth}
    if any((pods[ns].node, pods[ns].ip) in taken or (pods[ns].node, pods[ns].host_veth) in taken for ns in going):
        return set()
    return set(going)


def _leave_endpoints(previous: Plan, stale: set[str]) -> None:
    """Pods about to go leave every node's rules first (as kube-proxy drops a terminating
    endpoint), so that no new connection reaches a pod once it is told to stop."""
    leaving = frozenset(p.key for p in previous.pods if p.netns in stale and not p.host_network)
    if not leaving:
        return
    was_not_ready, was_terminal = state.not_ready(previous.lab), state.terminal(previous.lab)
    _load_rules(previous, previous, was_not_ready | leaving, was_not_ready, set(), was_terminal | leaving,
                was_terminal)


RELOAD_TIMEOUT = 30.0


def _reload_timeout(previous: Plan | None) -> float:
    """How long a reload may take: a pod it stops may use all of its grace period (preStop,
    then SIGTERM), and its sidecars the minimum after it."""
    graces = [p.termination_grace_period + 2 * (1 + len(p.init_containers)) for p in previous.pods] if previous else []
    return RELOAD_TIMEOUT + max(graces, default=0)


def _undo(lab: str, made: list[str], new_lab: bool) -> None:
    """A failed `up` leaves nothing half-built: what it made goes; a new lab goes entirely."""
    try:
        if new_lab:
            teardown(lab)
        elif made:
            netlink.delete_namespaces(made)
            state.clear_intent(lab)
    except Exception:  # the original error matters more than a failed undo
        pass


def _rules_path(lab: str, node: str) -> str:
    return os.path.join(state.state_dir(lab), "rules", f"{node}.json")


def _render_options(plan: Plan) -> dict[str, bool | None]:
    """What the rules depend on in the nodes, found as kube-proxy finds it at start: in iptables
    mode, its nfacct counters, made in every node (kernel.nfacct); its rules name them only
    when every node has them (a kernel without nfnetlink_acct has none)."""
    if plan.cluster.kube_proxy_mode != "iptables":
        return {}
    return {"nfacct": all([nfacct.ensure(n.netns, iptables.NFACCT_COUNTERS) for n in plan.nodes])}


def _stored_rules(lab: str, node: str) -> RenderedNode | None:
    """The node's last applied render, None when missing or unreadable."""
    try:
        with open(_rules_path(lab, node)) as f:
            return RenderedNode.from_json(f.read())
    except (OSError, ValueError):
        return None


def _apply_rules(plan: Plan, previous: Plan | None, fresh: set[str]) -> list[str]:
    """Per node, only what changed since the last apply (kept as a RenderedNode in the state dir),
    in one iptables-restore --noflush or nft -f; the whole ruleset on the first apply, after a
    mode switch, into a node namespace made anew (`fresh`), or when the last applied state is
    unknown. Nodes are loaded all at once, each thread entering its node's namespace on its own:
    a small change spends most of its time waiting for the kernel's commit, not on a CPU (one
    endpoint out of a 100-endpoint Service: 15-20 ms per node, four nodes two at a time 40 ms,
    all at once 20-30 ms on 2 cores)."""
    mode = plan.cluster.kube_proxy_mode
    old_mode = previous.cluster.kube_proxy_mode if previous else None

    stored = {n.name: _stored_rules(plan.lab, n.name) for n in plan.nodes}

    def sync(name: str, new: RenderedNode) -> bool:
        netns, old = plan.node(name).netns, None
        if old_mode == mode and netns not in fresh:
            old = stored[name]  # None when unknown: load everything
        elif netns not in fresh:  # a mode switch, or the state was lost: the other mode's rules may be there
            for other in other_syntaxes(mode):
                rules.clear_rules(netns, other)  # a no-op without that syntax's tools
        change = plan_sync(old, new)
        if not change.text:
            return False
        rules.sync_rules(netns, syntax(mode), None if change.full else change.text, new.text)
        state.write_atomic(_rules_path(plan.lab, name), new.to_json())
        return True

    # The stored renders also spare re-rendering the service ports that did not change.
    rendered = render_nodes(plan, mode, previous={n: r for n, r in stored.items() if r}, **_render_options(plan))
    with ThreadPoolExecutor(max_workers=max(1, min(len(rendered), 16))) as pool:
        changed = list(pool.map(sync, rendered, rendered.values()))
    return [name for name, did in zip(rendered, changed) if did]


def _apply_portmap_rules(plan: Plan, fresh: set[str], ended: frozenset[str]) -> tuple[list[str], tuple[str, ...]]:
    """The CNI portmap plugin's rules of each node (hostPort, proxy/portmap.py), after kube-proxy's
    (the same tables: never both at once on one node), changed as the plugin's DEL and ADD would
    change them. Pods in `ended` have no sandbox (ended, or not created yet), so no rules; readiness
    does not matter. A node's last render is kept in the state dir, even an empty one, so that a
    lab without host ports costs nothing here; when it is unknown (or the backend changes with
    the proxy mode) the other backend's rules are cleared and the complete ruleset loaded. As the
    plugin does after an ADD, the node's conntrack entries to a new pod's UDP host ports are
    deleted (a failure is only reported, as the plugin only logs it).
    -> (the nodes whose rules changed, warnings)"""
    if cni.maps_host_ports(plan):  # CNI wiring with portmap in its list: the plugin's rules, never these too
        ended = frozenset(p.key for p in plan.pods)

    def sync(name: str) -> tuple[bool, str | None]:
        netns, path = plan.node(name).netns, os.path.join(state.state_dir(plan.lab), "rules", "portmap", f"{name}.json")
        new, stored = portmap.render(plan, name, ended), _stored_portmap(path)
        old = portmap.RenderedPortmap(new.backend, {}) if netns in fresh else stored  # made anew: empty
        if old is None or old.backend != new.backend:
            for other in sorted({syntax(m) for m in MODES} - {new.backend}):
                rules.clear_rules(netns, other, rules.PORTMAP)  # a no-op without that syntax's tools
        load = portmap.plan_load(old, new)
        if load is not None:
            rules.sync_rules(netns, new.backend, None if load.full else load.text, new.text, rules.PORTMAP)
        if stored != new:
            state.write_atomic(path, new.to_json())
        if load is not None and netns not in fresh and (  # a node made anew has no flows
                udp := portmap.added_udp_ports(plan, name, old or portmap.RenderedPortmap(new.backend, {}), ended)):
            try:
                conntrack.forget_flows_to_ports(netns, udp)
            except OSError as e:
                return True, (f"{name}: could not clear the UDP flows to new host ports ({e.strerror or e}); "
                              "they end when their conntrack entries expire")
        return load is not None, None

    names = [n.name for n in plan.nodes]
    with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as pool:
        done = list(pool.map(sync, names))
    return [n for n, (did, _) in zip(names, done) if did], tuple(w for _, w in done if w)


def _stored_portmap(path: str) -> portmap.RenderedPortmap | None:
    try:
        with open(path) as f:
            return portmap.RenderedPortmap.from_json(f.read())
    except (OSError, ValueError):
        return None


def sync_readiness(lab: str, not_ready: frozenset[str], terminal: frozenset[str] = frozenset()) -> list[str] | None:
    """The supervisor's call when the pods it finds not ready (a container not running), or
    ended (`terminal`: Succeeded or Failed, no endpoints at all), differ from those the rules
    leave out: every node's rules and the balancer's, made again from the saved plan with those
    pods' endpoints not ready, incrementally, under the lab's lock. None when the lab is gone;
    else the nodes whose rules changed."""
    with state.locked(lab, create=False) as held:
        if not held:
            return None
        plan = state.load_plan(lab)
        if plan is None:
            return None
        pods = {p.key for p in plan.pods}
        old, new = state.not_ready(lab) & pods, frozenset(not_ready) & pods
        old_ended, ended = state.terminal(lab) & pods, frozenset(terminal) & pods
        if (old, old_ended) == (new, ended):
            return []
        changed, warnings = _load_rules(plan, plan, new, old, set(), ended, old_ended)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return changed


def _load_rules(plan: Plan, previous: Plan | None, not_ready: frozenset[str], was_not_ready: frozenset[str],
                fresh: set[str], terminal: frozenset[str] = frozenset(), was_terminal: frozenset[str] = frozenset()
                ) -> tuple[list[str], tuple[str, ...]]:
    """Every node's rules and the balancer's for `plan` with the endpoints of the pods in
    `not_ready` left out (and those of `terminal`, ended, no endpoints at all); then the UDP flows
    to endpoints gone since `previous` (as loaded, with `was_not_ready` and `was_terminal` left
    out) are cleared, and both sets are saved with the rules.
    -> (the nodes whose rules changed, warnings)."""
    effective = with_readiness(plan, not_ready, terminal)
    changed = _apply_rules(effective, previous, fresh)
    changed += [n for n in netpol.apply(plan, fresh) if n not in changed]  # NetworkPolicy's tables
    portmap_changed, portmap_warnings = _apply_portmap_rules(plan, fresh, terminal)
    changed += [n for n in portmap_changed if n not in changed]
    _apply_lb_rules(effective, fresh=naming.lb_netns(plan.lab) in fresh)
    before = with_readiness(previous, was_not_ready, was_terminal) if previous is not None else None
    warnings = _forget_stale_udp_flows(effective, before, fresh) + portmap_warnings
    pods = {p.key for p in plan.pods}
    state.save_not_ready(plan.lab, not_ready & pods, terminal & pods)
    return changed, warnings


def _forget_stale_udp_flows(plan: Plan, previous: Plan | None, fresh: set[str]) -> tuple[str, ...]:
    """After the rules, as kube-proxy: flows NATed to a removed UDP endpoint are forgotten in
    every node (a node made anew has no flows). Like kube-proxy, a failure (a kernel without
    ctnetlink) is reported and the rest goes on: the flows then end when their entries time out."""
    gone = removed_udp_endpoints(previous, plan)
    warnings = []
    for node in plan.nodes:
        if gone and node.netns not in fresh:
            try:
                conntrack.forget_nat_flows_to(node.netns, gone)
            except OSError as e:
                warnings.append(f"{node.name}: could not clear the UDP flows to removed endpoints "
                                f"({e.strerror or e}); they end when their conntrack entries expire")
    return tuple(warnings)


def _apply_lb_rules(plan: Plan, fresh: bool) -> bool:
    """The external balancer's table, loaded when it differs from the last one (or the balancer is new),
    with the nodes that passed its last health checks (fabric.lbhealth). Without LoadBalancer
    services an iptables-mode lab does not need nft installed."""
    healthy = lbhealth.saved(plan.lab)
    if not lb_forwards(plan, healthy) and shutil.which("nft") is None:
        return False
    text = render_lb(plan, healthy)
    path = os.path.join(state.state_dir(plan.lab), "rules", "lb.nft")
    if not fresh and os.path.exists(path):
        with open(path) as f:
            if f.read() == text:
                return False
    rules.apply_rules(naming.lb_netns(plan.lab), "nftables", text)
    state.write_atomic(path, text)
    return True


def _sync_balancer(plan: Plan) -> bool:
    """The balancer probes every node's health check ports now (as a cloud balancer does every
    few seconds), and its table is made again (with the readiness the rules were made with)
    when the nodes that pass changed. -> whether the table changed. Nothing to do (False) for a
    plan without health checks."""
    if not lb_health_checks(plan) and not lbhealth.saved(plan.lab):
        return False
    results = lbhealth.probe_now(plan)
    if results == lbhealth.saved(plan.lab):
        return False
    lbhealth.save(plan.lab, results)
    pods = {p.key for p in plan.pods}
    _apply_lb_rules(with_readiness(plan, state.not_ready(plan.lab) & pods, state.terminal(plan.lab) & pods),
                    fresh=False)
    return True


def sync_balancer(lab: str) -> bool | None:
    """The supervisor's call when the balancer's health checks found other nodes passing than
    its table was made with: probed again and the table made anew, under the lab's lock. None
    when the lab is gone; else whether the table changed."""
    with state.locked(lab, create=False) as held:
        if not held:
            return None
        plan = state.load_plan(lab)
        if plan is None:
            return None
        return _sync_balancer(plan)


def planned_namespaces(plan: Plan | None) -> set[str]:
    """The namespaces a saved plan says the lab made."""
    if plan is None:
        return set()
    return {plan.underlay_netns, *outside.namespaces(plan.lab), *(n.netns for n in plan.nodes),
            *_pod_namespaces(plan)}


def _saved_plan(lab: str) -> Plan | None:
    try:
        return state.load_plan(lab)
    except LabError:  # unreadable state: the marks alone decide
        return None


# The lab's warm process (kubenet_lab.warm.server): its module and its name (comm).
WARM_MODULE, WARM_COMM = "kubenet_lab.warm.server", "kubenet-warm"


def teardown(lab: str) -> list[str]:
    """Remove everything lab `lab` owns, found from the ownership marks, state or not."""
    exiting = supervisor.stop(lab, wait=False)  # it has let go of the namespaces; its exit overlaps ours
    warm = {pid for name, pid in procs.running_module(WARM_MODULE, "--lab", lambda comm: comm == WARM_COMM)
            if name == lab and pid != os.getppid()}  # not the one that runs this command (a failed up's undo)
    procs.signal_all(warm, signal.SIGTERM)  # it stops serving, and the commands it runs stop too
    try:
        known = planned_namespaces(_saved_plan(lab)) | state.intended(lab)
        owned = sorted(ns for ns, mine in netlink.discover(lab, known=known).items() if mine)
        netlink.delete_namespaces(owned)
        state.remove_state(lab)
    finally:
        supervisor.reap(exiting)
        if procs.wait_gone(warm, 2.0):
            procs.kill(warm)
    return owned


def down(lab: str) -> list[str]:
    check_lab_name(lab)
    checks.require_root("down")
    with state.locked(lab):
        return teardown(lab)


def down_all() -> dict[str, list[str]]:
    checks.require_root("down")
    labs = set(netlink.discover_all()) | set(supervisor.find_supervisors(None)) | set(state.known_labs())
    return {lab: down(lab) for lab in sorted(labs)}
