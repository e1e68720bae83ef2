"""Model -> Plan: nodes, workload expansion, scheduling and pod addresses.

Deterministic: the same manifests (and the same previous plan) give the same plan. A pod keeps
its node and its address from one run to the next, as a real pod does while it exists.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from ipaddress import IPv4Address, IPv4Network

from ..errors import InputError
from . import ipam, naming, replicas, rollout, scheduling
from typing import Callable, Collection, Iterable, Iterator, Mapping, Protocol

from .containers import (LABEL_FIELD, Port, container_env, listening, plan_init_containers, pod_fields,
                         resolve_pod)
from .podfiles import fqdn_error, parse_resolv_conf
from .configs import Configs, made_secrets, with_configs
from .security import confine_pod
from ..model.objects import (DEFAULT_NODES, Allocations, ClusterConfig, LabelSelector, at, Model, Node, PendingPod,
                    Plan, PlannedContainer, PlannedNode, PlannedPod, PlannedService, PlannedWorkload, Pod, PodSpec,
                    RunHttp, Service, ServicePort, Toleration, Workload)
from .serialize import to_data
from .addons import with_addons
from .immutable import check_unchanged, kept_subnets
from . import endpointslices
from .services import plan_services
from .namespaces import plan_namespaces



def _spec(pod: Pod) -> str:
    """Where a pod's spec is written: its own, or its controller's template."""
    return "spec.template.spec" if pod.owner else "spec"


def plan_nodes(model: Model, lab: str, previous: Plan | None = None) -> tuple[PlannedNode, ...]:
    """The nodes, each with its index (its underlay address) and podCIDR. A node that exists
    keeps both, whatever comes and goes around it (a deleted node's neighbours keep their pods'
    addresses, as a cluster's nodes keep their podCIDRs); a new node takes the first free ones."""
    nodes = model.nodes or tuple(Node(name=n) for n in DEFAULT_NODES)
    cluster = model.cluster
    before = {n.name: n for n in previous.nodes} if previous else {}
    taken = [n.pod_cidr for n in nodes if n.pod_cidr is not None]
    kept: dict[str, IPv4Network] = {}
    for node in nodes:
        old = before.get(node.name)
        if node.pod_cidr is None and old is not None and old.pod_cidr.subnet_of(cluster.pod_subnet) \
                and not any(old.pod_cidr.overlaps(t) for t in [*taken, *kept.values()]):
            kept[node.name] = old.pod_cidr
    free = (c for c in cluster.pod_subnet.subnets(new_prefix=max(24, cluster.pod_subnet.prefixlen))
            if not any(c.overlaps(t) for t in [*taken, *kept.values()]))
    # Nodes take the underlay's addresses from .2 up; they must stop before the default pool
    # (or, with a pool of one's own, before the balancer's and the external clients' addresses).
    room = ipam.default_lb_pool(cluster.node_subnet)[0] if cluster.lb_pool is None \
        else ipam.second_client_ip(cluster.node_subnet)
    problems = []
    cidrs: list[IPv4Network] = []
    for node in nodes:
        if node.pod_cidr is not None or node.name in kept:
            cidrs.append(node.pod_cidr or kept[node.name])
            continue
        cidr = next(free, None)
        if cidr is None:
            # A node without a manifest of its own (node1, node2) points at the podSubnet it does not fit in.
            where = (f"{at(node.origin, 'spec.podCIDR')}: networking.podSubnet" if node.origin
                     else at(cluster.origin, "networking.podSubnet"))
            problems.append(f"{where} {cluster.pod_subnet} has no free /24 left for node {node.name} "
                            f"(each node takes a /24 of it); set a larger podSubnet")
            cidr = IPv4Network("0.0.0.0/32")
        cidrs.append(cidr)
    indexes: dict[str, int] = {}
    for node in nodes:
        old = before.get(node.name)
        if old is not None and old.index not in indexes.values():
            indexes[node.name] = old.index
    spare = (i for i in range(len(nodes) + len(before)) if i not in indexes.values())
    for node in nodes:
        if node.name not in indexes:
            indexes[node.name] = next(spare)
    if ipam.node_ip(cluster.node_subnet, max(indexes.values(), default=0)) >= room:
        problems.append(f"{at(cluster.origin, 'networking.nodeSubnet')}: {cluster.node_subnet} is too small for "
                        f"{len(nodes)} nodes" + (" and the load-balancer pool" if cluster.lb_pool is None else
                                                 ", the load balancer and the external client"))
    elif cluster.lb_pool is not None:
        problems += _pool_collisions(cluster, {node.name: ipam.node_ip(cluster.node_subnet, indexes[node.name])
                                               for node in nodes})
    if problems:
        raise InputError(problems)
    planned = []
    for node, cidr in zip(nodes, cidrs):
        i = indexes[node.name]
        planned.append(PlannedNode(
            name=node.name, index=i, ip=ipam.node_ip(cluster.node_subnet, i), pod_cidr=cidr,
            gateway=ipam.gateway(cidr), netns=naming.node_netns(lab, node.name),
            underlay_veth=naming.node_underlay_veth(lab, node.name),
            labels=scheduling.node_labels(node.name, node.labels), taints=node.taints,
            unschedulable=node.unschedulable))
    # Service IPs and the external client go to the underlay's router (the load balancer), as a
    # real node's default route sends them (the pods' routes are the backend's,
    # dataplane/backends): a
    # packet to a ClusterIP must be routable for kube-proxy's rules (DNAT, or REJECT when there
    # is no endpoint) to see it, and replies to the external client must return through the
    # balancer that DNATed the request. No default route: nothing leads out of the lab.
    # So do the load-balancer addresses a manifest gives outside the node network (those inside
    # it the balancer answers ARP for): kube-proxy short-circuits an ipMode VIP address inside
    # the node, but a pod asking for an ipMode Proxy one is sent to the balancer, as on a cluster.
    router = ipam.load_balancer_ip(cluster.node_subnet)
    beyond = sorted({IPv4Address(ip) for s in model.services if s.type == "LoadBalancer"
                     for ip in s.load_balancer_ingress})
    common = ((cluster.service_subnet, router),
              (IPv4Network((ipam.external_client_ip(cluster.node_subnet), 32)), router),
              (IPv4Network((ipam.second_client_ip(cluster.node_subnet), 32)), router),
              *((IPv4Network((ip, 32)), router) for ip in beyond
                if not any(ip in net for net in (cluster.node_subnet, cluster.service_subnet, cluster.pod_subnet))))
    return tuple(
        PlannedNode(**{**n.__dict__,
                       "routes": common})
        for n in planned)


def _pool_collisions(cluster: ClusterConfig, node_ips: Mapping[str, IPv4Address]) -> list[str]:
    """networking.loadBalancerPool against the addresses the lab itself gives out on the node
    network: the nodes' (from .2 up, ipam.node_ip), the load balancer's and the external
    clients' (ipam.load_balancer_ip, ipam.external_client_ip, ipam.second_client_ip). A LoadBalancer address handed out
    from the pool would be one of theirs: `lb` would answer ARP for a node's address, or the
    external client's replies would never come back. Checked here, not with the manifests'
    schema, because how many nodes there are (and which address each keeps from the previous
    plan) is known only now."""
    assert cluster.lb_pool is not None  # the caller checks only a lab with a pool
    first, last = cluster.lb_pool
    subnet = cluster.node_subnet
    ours = [(ip, f"node {name}") for name, ip in sorted(node_ips.items(), key=lambda kv: kv[1])]
    ours += [(ipam.second_client_ip(subnet), "the second external client"),
             (ipam.load_balancer_ip(subnet), "the load balancer"),
             (ipam.external_client_ip(subnet), "the external client")]
    covered = [f"{ip} ({who})" for ip, who in ours if first <= ip <= last]
    if not covered:
        return []
    shown = covered if len(covered) <= 4 else [*covered[:3], f"{len(covered) - 3} more"]
    nodes = sorted(node_ips.values())
    node_span = f"{nodes[0]}" if len(nodes) == 1 else f"{nodes[0]}-{nodes[-1]}"
    return [f"{at(cluster.origin, 'networking.loadBalancerPool')}: {first}-{last} covers "
            f"{', '.join(shown[:-1]) + ' and ' if len(shown) > 1 else ''}{shown[-1]}, "
            f"{'addresses' if len(covered) > 1 else 'an address'} the lab itself uses on networking.nodeSubnet "
            f"{subnet}: the pool must leave out the nodes' addresses ({node_span}), the load balancer's "
            f"({ipam.load_balancer_ip(subnet)}) and the external clients' ({ipam.external_client_ip(subnet)}, "
            f"{ipam.second_client_ip(subnet)})"]


# The tolerations the DaemonSet controller adds to every pod it makes
# (pkg/controller/daemon/util: AddOrUpdateDaemonPodTolerations).
DAEMON_TOLERATIONS = (
    Toleration("node.kubernetes.io/not-ready", "Exists", effect="NoExecute"),
    Toleration("node.kubernetes.io/unreachable", "Exists", effect="NoExecute"),
    Toleration("node.kubernetes.io/disk-pressure", "Exists", effect="NoSchedule"),
    Toleration("node.kubernetes.io/memory-pressure", "Exists", effect="NoSchedule"),
    Toleration("node.kubernetes.io/pid-pressure", "Exists", effect="NoSchedule"),
    Toleration("node.kubernetes.io/unschedulable", "Exists", effect="NoSchedule"),
)
DAEMON_HOST_NETWORK_TOLERATIONS = (Toleration("node.kubernetes.io/network-unavailable", "Exists",
                                              effect="NoSchedule"),)


def _revision(w: Workload) -> str:
    return naming.pod_template_hash(w.template_raw)


def ordered_after(w: Workload, ordinal: int) -> str | None:
    """The pod a StatefulSet's controller creates pod `ordinal` after: under OrderedReady (the
    default) the previous ordinal, which must be Running and Ready first (as must every one
    before it); under Parallel, and for the first ordinal, none."""
    if w.pod_management != "OrderedReady" or ordinal <= w.ordinal_start:
        return None
    return f"{w.namespace}/{w.name}-{ordinal - 1}"


def replica_owner(w: Workload) -> tuple[str, str] | None:
    """(the base of its pods' names, `ns/Kind/name` of the controller that names them) for a
    Deployment (its ReplicaSet), ReplicaSet and ReplicationController; None for other kinds."""
    if w.kind == "Deployment":
        name = f"{w.name}-{naming.pod_template_hash(w.template_raw)}"[: naming.MAX_LABEL]
        return name, f"{w.namespace}/ReplicaSet/{name}"
    if w.kind in ("ReplicaSet", "ReplicationController"):
        return w.name, f"{w.namespace}/{w.kind}/{w.name}"
    return None


def expand_workload(w: Workload, nodes: tuple[PlannedNode, ...] = (), indices: tuple[int, ...] | None = None
                    ) -> list[Pod]:
    """The pods a controller makes, named as Kubernetes names them (stable suffixes here):
    Deployment `<name>-<template hash>-<5>` (through its ReplicaSet), ReplicaSet and
    ReplicationController `<name>-<5>`, StatefulSet `<name>-<ordinal>` (hostname = the pod's name,
    subdomain = its serviceName; under OrderedReady each created after the one before it),
    DaemonSet `<name>-<5>` on every node its pods fit, Job `<name>-<5>` (Indexed:
    `<name>-<index>-<5>`, hostname `<name>-<index>`)."""
    labels = dict(w.template_labels)
    if w.kind == "StatefulSet":
        revision = f"{w.name}-{_revision(w)}"
        pods = []
        for ordinal in range(w.ordinal_start, w.ordinal_start + w.replicas):
            name = f"{w.name}-{ordinal}"
            spec = dataclasses.replace(w.template, hostname=name, subdomain=w.service_name or w.template.subdomain)
            pods.append(Pod(w.namespace, name, {**labels, "apps.kubernetes.io/pod-index": str(ordinal),
                                                "controller-revision-hash": revision,
                                                "statefulset.kubernetes.io/pod-name": name},
                            spec, owner=f"StatefulSet/{w.name}", origin=w.origin,
                            created_after=ordered_after(w, ordinal)))
        return pods
    if w.kind == "DaemonSet":
        extra = DAEMON_TOLERATIONS + (DAEMON_HOST_NETWORK_TOLERATIONS if w.template.host_network else ())
        spec = dataclasses.replace(w.template, tolerations=w.template.tolerations + extra)
        labels.update({"controller-revision-hash": _revision(w), "pod-template-generation": "1"})
        pods = []
        for node in nodes:
            pod = Pod(w.namespace, naming.generate_name(w.name, f"{w.namespace}/DaemonSet/{w.name}/{node.name}", 0),
                      labels, dataclasses.replace(spec, node_name=node.name), owner=f"DaemonSet/{w.name}",
                      origin=w.origin)
            # the controller makes a pod only where it fits (taints, node selector, affinity)
            if scheduling.why_not(dataclasses.replace(pod, spec=spec), node, scheduling.Placed()) is None:
                pods.append(pod)
        return pods
    if w.kind == "Job":
        uid = naming.generated_suffix(f"{w.namespace}/Job/{w.name}", 0)
        labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": w.name,
                       "controller-uid": uid, "job-name": w.name})
        count = w.parallelism if w.completions is None else min(w.completions, w.parallelism)
        pods = []
        for i in range(count):
            if w.completion_mode == "Indexed":
                pods.append(Pod(w.namespace, naming.generate_name(f"{w.name}-{i}", f"{w.namespace}/Job/{w.name}", i),
                                {**labels, "batch.kubernetes.io/job-completion-index": str(i)},
                                dataclasses.replace(w.template, hostname=f"{w.name}-{i}"),
                                owner=f"Job/{w.name}", origin=w.origin))
            else:
                pods.append(Pod(w.namespace, naming.generate_name(w.name, f"{w.namespace}/Job/{w.name}", i), labels,
                                w.template, owner=f"Job/{w.name}", origin=w.origin))
        return pods
    if w.kind == "Deployment":
        template_hash = naming.pod_template_hash(w.template_raw)
        owner_name = f"{w.name}-{template_hash}"[: naming.MAX_LABEL]
        owner = f"ReplicaSet/{owner_name}"
        labels["pod-template-hash"] = template_hash
    else:
        owner_name, owner = w.name, f"{w.kind}/{w.name}"
    return [Pod(namespace=w.namespace, name=naming.generate_name(owner_name, f"{w.namespace}/{owner}", i),
                labels=labels, spec=w.template, owner=owner, origin=w.origin)
            for i in (range(w.replicas) if indices is None else indices)]


def workload_warnings(model: Model) -> tuple[str, ...]:
    """What the lab's controllers do not do yet, said at `up` for the objects that need it."""
    out = []
    for w in model.workloads:
        if w.kind == "Job" and w.completions is not None and w.completions > w.parallelism:
            out.append(f"{at(w.origin, 'spec.completions')}: Job {w.namespace}/{w.name} needs {w.completions} "
                       f"completions with parallelism {w.parallelism}: kubenet-lab runs the first {w.parallelism} "
                       f"pod(s) only; the Job controller's later pods are not modelled yet")
    return tuple(out)


def _replica_set(d: Workload, size: int, revision: int) -> PlannedWorkload:
    """A Deployment's ReplicaSet for the Deployment version `d` (its template), at `size`."""
    template_hash = naming.pod_template_hash(d.template_raw)
    selector = LabelSelector({**d.selector.match_labels, "pod-template-hash": template_hash},
                             d.selector.match_expressions)
    return PlannedWorkload("ReplicaSet", d.namespace, rollout.rs_name(d), size, selector,
                           tuple((c.name, c.image) for c in d.template.containers), owner=f"Deployment/{d.name}",
                           labels={**d.template_labels, "pod-template-hash": template_hash}, revision=revision)


def plan_workloads(model: Model, pods: Iterable[Pod | PlannedPod | PendingPod], sets: rollout.Sets | None = None
                   ) -> tuple[PlannedWorkload, ...]:
    """The controllers, with a Deployment's ReplicaSets beside it (its current one, and the old
    ones a rollout keeps, see plan.rollout)."""
    pods = list(pods)
    sets = sets or rollout.plan_sets([w for w in model.workloads if w.kind == "Deployment"], {}, {}, {},
                                     lambda key: 0)
    out = []
    for w in model.workloads:
        containers = tuple((c.name, c.image) for c in w.template.containers)
        replicas = w.replicas
        if w.kind == "DaemonSet":
            replicas = len([p for p in pods if p.namespace == w.namespace and p.owner == f"DaemonSet/{w.name}"])
        elif w.kind == "Job":
            replicas = w.completions if w.completions is not None else 1
        current = sets.current.get(w.key) if w.kind == "Deployment" else None
        out.append(PlannedWorkload(w.kind, w.namespace, w.name, replicas, w.selector, containers,
                                   node_selector=dict(w.template.node_selector), completions=w.completions,
                                   parallelism=w.parallelism, labels=dict(w.labels),
                                   revision=sets.revisions.get(current, 0) if current else 0,
                                   current_set=current.split("/", 1)[1] if current else None))
        if w.kind == "Deployment":
            mine = sorted((k for k, d in sets.templates.items() if (d.namespace, d.name) == (w.namespace, w.name)),
                          key=lambda k: sets.revisions.get(k, 0))
            out += [_replica_set(sets.templates[k], sets.sizes[k], sets.revisions.get(k, 0)) for k in mine]
    return tuple(out)


def deployment_sets(model: Model, previous: Plan | None, not_ready: frozenset[str]) -> rollout.Sets:
    """One sync of the Deployment controller against the previous plan (see plan.rollout): a pod
    of the previous plan is ready unless it is in `not_ready`."""
    alloc = previous.allocations if previous else Allocations()
    ready: dict[str, int] = {}
    for p in previous.pods if previous else ():
        if p.owner is not None and p.owner.startswith("ReplicaSet/") and p.key not in not_ready:
            key = f"{p.namespace}/{p.owner.split('/', 1)[1]}"
            ready[key] = ready.get(key, 0) + 1
    return rollout.plan_sets([w for w in model.workloads if w.kind == "Deployment"], alloc.rs_sizes,
                             alloc.rs_templates, alloc.rs_revisions, lambda key: ready.get(key, 0))


def with_sets(model: Model, sets: rollout.Sets) -> Model:
    """The model whose Deployments make the pods of every ReplicaSet they have now: the current
    template at its size, and each old version still holding pods at its own."""
    current = {k for k in sets.current.values()}
    workloads = [dataclasses.replace(w, replicas=sets.sizes[sets.current[w.key]]) if w.kind == "Deployment" else w
                 for w in model.workloads]
    workloads += [dataclasses.replace(sets.templates[k], replicas=size) for k, size in sets.sizes.items()
                  if k not in current and size > 0]
    return dataclasses.replace(model, workloads=tuple(workloads))


def replica_indices(model: Model, previous: Allocations) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """The indices each ReplicaSet's and ReplicationController's pods are named from now (see
    plan.replicas), and the next unused index of every one ever known."""
    have, nxt = {}, dict(previous.replica_next)
    for w in model.workloads:
        owner = replica_owner(w)
        if owner is not None:
            have[owner[1]], nxt[owner[1]] = replicas.indices(previous.replicas.get(owner[1]), nxt.get(owner[1], 0),
                                                             w.replicas)
    return have, nxt


def all_pods(model: Model, nodes: tuple[PlannedNode, ...] = (), indices: Mapping[str, tuple[int, ...]] | None = None
             ) -> list[Pod]:
    pods = list(model.pods)
    seen = {p.key: p for p in pods}
    problems = []
    for w in model.workloads:
        owner = replica_owner(w)
        annotations = (w.template_raw.get("metadata") or {}).get("annotations") or {}
        for p in expand_workload(w, nodes, indices.get(owner[1]) if owner and indices is not None else None):
            if annotations:
                p = dataclasses.replace(p, annotations=dict(annotations))
            if p.key in seen:
                problems.append(f"{at(w.origin, 'metadata.name')}: {w.kind} {w.name} makes pod {p.name}, "
                                f"which already exists in namespace {p.namespace}")
                continue
            seen[p.key] = p
            pods.append(p)
    if problems:
        raise InputError(problems)
    return pods


def schedule(pods: list[Pod], nodes: tuple[PlannedNode, ...], previous: Plan | None
             ) -> tuple[dict[str, str], dict[str, str]]:
    """(pod key -> node name, pod key -> why it is Pending). nodeName first, then where the pod
    already runs, then kube-scheduler's filters and the best node left (see plan.scheduling),
    within each node's podCIDR capacity."""
    capacity = {n.name: ipam.pod_capacity(n.pod_cidr) for n in nodes}
    count = {n.name: 0 for n in nodes}
    by_name = {n.name: n for n in nodes}
    needs_ip: dict[str, int] = {}  # node -> its pods that take an address from its podCIDR
    placed: dict[str, str] = {}
    pending: dict[str, str] = {}
    others = scheduling.Placed()
    before = {p.key: p.node for p in previous.pods} if previous else {}
    problems = []
    full: dict[str, list[str]] = {}  # where the pods are written -> the pods no podCIDR has room for

    def put(pod: Pod, node: str) -> None:
        placed[pod.key] = node
        others.pods.append((pod, by_name[node]))
        count[node] += 1
        needs_ip[node] = needs_ip.get(node, 0) + (0 if pod.spec.host_network else 1)
        if needs_ip[node] > capacity[node]:
            cidr = by_name[node].pod_cidr
            problems.append(f"{at(pod.origin, _spec(pod))}: node {node}'s podCIDR {cidr} holds {capacity[node]} pods; "
                            f"pod {pod.key} is one too many")

    for pod in pods:
        if pod.spec.node_name:
            if pod.spec.node_name not in count:
                problems.append(f"{at(pod.origin, _spec(pod) + '.nodeName')}: no node named {pod.spec.node_name!r} "
                                f"(nodes: {', '.join(count)})")
                continue
            if held := scheduling.port_holder(pod, pod.spec.node_name, others):
                # no scheduler looks at a pod with a nodeName (a DaemonSet's here): kubelet would
                # refuse it (NodePorts)
                (holder, (_, proto, port)), node = held, pod.spec.node_name
                where = _spec(pod) + (".containers" if pod.owner else ".nodeName")
                problems.append(f"{at(pod.origin, where)}: pod {pod.key} wants host port "
                                f"{port}/{proto} on node {node}, which pod {holder.key} already takes "
                                f"({scheduling.NODE_PORTS}); give one of them another hostPort or node")
                continue
            put(pod, pod.spec.node_name)
    for pod in pods:
        if pod.key not in placed and not pod.spec.node_name and before.get(pod.key) in count:
            if not scheduling.port_holder(pod, before[pod.key], others):  # else scheduled anew
                put(pod, before[pod.key])
    for pod in pods:
        if pod.key in placed or pod.spec.node_name:
            continue
        if pod.spec.scheduling_gates:  # the scheduler does not look at it until they are removed
            pending[pod.key] = scheduling.SCHEDULING_GATED
            continue
        room = [n for n in nodes if pod.spec.host_network or needs_ip.get(n.name, 0) < capacity[n.name]]
        if not room:
            full.setdefault(f"{at(pod.origin, _spec(pod))}: " if pod.origin else "", []).append(pod.key)
            continue
        reasons = {n.name: scheduling.why_not(pod, n, others) for n in room}
        fits = [n for n in room if reasons[n.name] is None]
        if not fits:
            tally: dict[str, int] = {}
            for reason in reasons.values():
                if reason is not None:  # (none is: no node fits)
                    tally[reason] = tally.get(reason, 0) + 1
            pending[pod.key] = scheduling.failed_scheduling(tally, len(nodes))
            continue
        best = min(fits, key=lambda n: (-scheduling.score(pod, n, others), count[n.name], n.index))
        put(pod, best.name)
    for where, keys in full.items():
        more = f" and {len(keys) - 1} more of its pods" if len(keys) > 1 else ""
        problems.append(f"{where}no node has room for pod {keys[0]}{more}: every podCIDR is full "
                        f"({', '.join(f'{n.name} {n.pod_cidr}' for n in nodes)})")
    if problems:
        raise InputError(problems)
    return placed, pending


def pod_uid(pod: Pod, node: str, ip: IPv4Address, specs: dict[int, tuple[PodSpec, str]] | None = None) -> str:
    """Changes whenever the pod would have to be made anew (spec, node or address changed). Not
    its labels (nor annotations): a running pod's metadata changes in place, as on a cluster.
    `specs` keeps each spec's canonical text by identity: a template's replicas share one."""
    specs = {} if specs is None else specs
    known = specs.get(id(pod.spec))
    if known is None or known[0] is not pod.spec:
        known = specs[id(pod.spec)] = (pod.spec, json.dumps(to_data(pod.spec), sort_keys=True, default=str))
    data = json.dumps([pod.key, node, str(ip)]) + known[1]
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def named_addresses(model: Model) -> set[IPv4Address]:
    """The addresses the written EndpointSlices and Endpoints name: in use on the cluster they
    describe (a dump's pods, which the lab does not run), so a new pod does not take one and get
    another pod's traffic."""
    out = {IPv4Address(e.addresses[0]) for sl in model.endpoint_slices for e in sl.endpoints}
    out |= {IPv4Address(a.ip) for ep in model.endpoints for ss in ep.subsets
            for a in (*ss.addresses, *ss.not_ready_addresses)}
    return out


def assign_addresses(pods: list[Pod], placed: dict[str, str], nodes: tuple[PlannedNode, ...],
                     previous: Allocations, named: Iterable[IPv4Address] = ()
                     ) -> tuple[dict[str, IPv4Address], dict[str, str]]:
    """(pod key -> its address, node -> the last address its host-local pool handed out). A pod
    keeps its address; a new one takes none of `named` (addresses in use elsewhere: named_addresses)."""
    pools = {n.name: ipam.HostLocal(n.pod_cidr, last_reserved=_addr(previous.last_reserved.get(n.name)))
             for n in nodes}
    by_name = {n.name: n for n in nodes}
    ips: dict[str, IPv4Address] = {}
    for pod in pods:
        if pod.spec.host_network:
            ips[pod.key] = by_name[placed[pod.key]].ip
            continue
        old = _addr(previous.pod_ips.get(pod.key))
        if old is not None and pools[placed[pod.key]].reserve(old):
            ips[pod.key] = old
    for address in named:
        for pool in pools.values():
            if pool.owns(address):
                pool.in_use.add(int(address))
    for pod in pods:
        if pod.key not in ips:
            ips[pod.key] = pools[placed[pod.key]].allocate()
    return ips, {name: str(IPv4Address(p.last_reserved)) for name, p in pools.items() if p.last_reserved}


def _addr(text: str | None) -> IPv4Address | None:
    return IPv4Address(text) if text else None


def _targets(pod: Pod, services: tuple[Service, ...]) -> Iterator[tuple[int | None, str, ServicePort]]:
    """(target port, protocol, Service port) of each Service port selecting the pod; a named
    targetPort resolved through the pod's declared container (and sidecar) ports of the Service
    port's protocol (None when none has it), as the EndpointSlice controller resolves it."""
    named: dict[tuple[str, str], int] = {}
    sidecars = (c for c in pod.spec.init_containers if c.restart_policy == "Always")
    for c in (*pod.spec.containers, *sidecars):
        for cp in c.ports:
            if cp.name:
                named.setdefault((cp.name, cp.protocol), cp.container_port)
    for svc in services:
        if svc.namespace != pod.namespace or not svc.selector or not LabelSelector(dict(svc.selector)).matches(
                pod.labels):
            continue
        for p in svc.ports:
            target = p.target_port if p.target_port is not None else p.port
            yield (target if isinstance(target, int) else named.get((target, p.protocol))), p.protocol, p


def wanted_ports(pod: Pod, services: tuple[Service, ...]) -> list[Port]:
    """The ports something in the pod must listen on for its Services and probes to work: each
    numeric targetPort (or port) of a Service selecting it, and each numeric probe port."""
    wanted: list[Port] = [(port, proto) for port, proto, p in _targets(pod, services)
                          if port is not None and isinstance(p.target_port if p.target_port is not None else p.port,
                                                             int)]
    wanted += [(port, "TCP") for c in pod.spec.containers for port in c.probe_ports]
    return wanted


def https_targets(pod: Pod, services: tuple[Service, ...]) -> set[int]:
    """The ports a Service port speaking HTTPS targets (named https or https-..., or with
    appProtocol https), by number or by a container port's name: TLS there."""
    return {port for port, proto, p in _targets(pod, services)
            if port is not None and proto == "TCP"
            and ((p.name or "") == "https" or (p.name or "").startswith("https-") or p.app_protocol == "https")}


def started_fields(pod: Pod, fields: dict[str, str], running: PlannedPod | None) -> dict[str, str]:
    """`fields` with the labels a variable of the pod's containers takes (valueFrom.fieldRef
    metadata.labels['k']) as `running`, the same pod already running, got them when it started:
    kubelet resolves a variable when the container starts, so relabelling a pod changes none."""
    if running is None:
        return fields
    had = {c.name: dict(c.env) for c in (*running.containers, *running.init_containers)}
    out = dict(fields)
    for c in (*pod.spec.containers, *pod.spec.init_containers):
        for v in c.env:
            if v.field_path and LABEL_FIELD.fullmatch(v.field_path) and v.name in had.get(c.name, {}):
                out[v.field_path] = had[c.name][v.name]
    return out


def heard_ports(running: PlannedPod | None) -> list[Port]:
    """Where the containers of `running`, the same pod already running, listen: an emulated
    container keeps serving the ports it took for Services that selected the pod when a label
    change (or a Service gone) leaves it out, as a real process keeps its sockets."""
    if running is None:
        return []
    out: list[Port] = []
    for c in running.containers:
        if isinstance(c.run, RunHttp):  # in its order, so that the same ports make the same server
            out += [(p, "TCP") for p in c.run.ports] + [(p, "UDP") for p in c.run.udp_ports]
        else:
            out += sorted(listening(c.run, ((x.container_port, x.protocol) for x in c.ports)))
    return out


def plan_pods(model: Model, lab: str, nodes: tuple[PlannedNode, ...], previous: Plan | None,
              has_program: Callable[[str], bool] | None = None,
              indices: Mapping[str, tuple[int, ...]] | None = None
              ) -> tuple[tuple[PlannedPod, ...], dict[str, str], dict[str, str], tuple[PendingPod, ...]]:
    pods = all_pods(model, nodes, indices)
    placed, why_pending = schedule(pods, nodes, previous)
    pending = tuple(PendingPod(p.namespace, p.name, dict(p.labels), p.owner,
                               tuple((c.name, c.image) for c in p.spec.containers), why_pending[p.key])
                    for p in pods if p.key in why_pending)
    pods = [p for p in pods if p.key not in why_pending]
    prev_alloc = previous.allocations if previous else Allocations()
    ips, last_reserved = assign_addresses(pods, placed, nodes, prev_alloc, named_addresses(model))
    by_name = {n.name: n for n in nodes}
    before = {p.key: p for p in previous.pods} if previous else {}
    relabelled = prev_alloc.pod_labels
    planned = []
    veths: dict[str, set[str]] = {n.name: set() for n in nodes}
    specs: dict[int, tuple[PodSpec, str]] = {}
    configs = Configs(model.config_maps + made_secrets(model))
    for pod in pods:
        node = placed[pod.key]
        veth: str | None = None
        if not pod.spec.host_network:
            attempt = 0
            while (candidate := naming.pod_host_veth(lab, pod.namespace, pod.name, attempt)) in veths[node]:
                attempt += 1
            veths[node].add(candidate)
            veth = candidate
        uid = pod_uid(pod, node, ips[pod.key], specs)
        running = before.get(pod.key)
        running = running if running is not None and running.uid == uid else None
        if pod.owner and running is not None and pod.key in relabelled:  # `label` changed them in place
            pod = dataclasses.replace(pod, labels=dict(relabelled[pod.key]))
        fields = started_fields(pod, pod_fields(pod.namespace, pod.name, uid, node, str(by_name[node].ip),
                                                str(ips[pod.key]), pod.labels), running)
        inits = plan_init_containers(pod.spec.init_containers, fields, pod.spec.enable_service_links, has_program)
        planned.append(confine_pod(PlannedPod(
            namespace=pod.namespace, name=pod.name, node=node, ip=ips[pod.key],
            netns=by_name[node].netns if pod.spec.host_network else naming.pod_netns(lab, pod.namespace, pod.name),
            host_veth=veth, labels=dict(pod.labels),
            containers=tuple(PlannedContainer(name=c.name, image=c.image, ports=c.ports, run=r.run, note=r.note,
                                              pre_stop=c.pre_stop, env=container_env(c, fields),
                                              service_links=pod.spec.enable_service_links,
                                              readiness_probe=c.readiness_probe, liveness_probe=c.liveness_probe,
                                              startup_probe=c.startup_probe)
                             for c, r in resolve_pod(pod.spec.containers, wanted_ports(pod, model.services)
                                                     + heard_ports(running), fields,
                                                     pod.spec.enable_service_links, has_program,
                                                     others=[c for c in inits if c.sidecar],
                                                     https=https_targets(pod, model.services),
                                                     restart_policy=pod.spec.restart_policy)),
            init_containers=inits, restart_policy=pod.spec.restart_policy,
            termination_grace_period=pod.spec.termination_grace_period,
            host_network=pod.spec.host_network, owner=pod.owner, uid=uid,
            hostname=pod.spec.hostname, subdomain=pod.spec.subdomain, dns_policy=pod.spec.dns_policy,
            dns_config=pod.spec.dns_config, host_aliases=pod.spec.host_aliases,
            set_hostname_as_fqdn=pod.spec.set_hostname_as_fqdn, created_after=pod.created_after), pod.spec))
        planned[-1] = with_configs(planned[-1], pod, fields, configs, running)
    pod_ips = {p.key: str(p.ip) for p in planned if not p.host_network}
    return tuple(planned), pod_ips, last_reserved, pending


class _Object(Protocol):
    """An API object as creation_times names it: KIND/namespace/name."""

    @property
    def kind(self) -> str: ...
    @property
    def key(self) -> str: ...


def creation_times(previous: Plan | None, now: float | None, services: Iterable[PlannedService],
                   workloads: Iterable[PlannedWorkload], pods: Collection[PlannedPod],
                   pending: Iterable[PendingPod], config_maps: Iterable[_Object] = ()) -> dict[str, float]:
    """Each object's creation time: the one it had, else `now` (None: none known). A pod made
    anew (its uid changed: a new spec, node or address) is a new object with a new time; one
    that waited unscheduled keeps the time it was created at."""
    before = previous.allocations.created if previous else {}
    uids = {p.key: p.uid for p in previous.pods} if previous else {}
    renewed = {f"Pod/{p.key}" for p in pods if p.key in uids and uids[p.key] != p.uid}
    refs = ([f"Service/{s.key}" for s in services] + [f"{w.kind}/{w.key}" for w in workloads]
            + [f"Pod/{p.key}" for p in pods] + [f"Pod/{p.key}" for p in pending]
            + [f"{c.kind}/{c.key}" for c in config_maps])
    out = {}
    for ref in refs:
        when = now if ref in renewed else before.get(ref, now)
        if when is not None:
            out[ref] = when
    return out


def make_plan(model: Model, lab: str, previous: Plan | None = None,
              has_program: Callable[[str], bool] | None = None, node_resolv_conf: str = "",
              now: float | None = None, not_ready: frozenset[str] = frozenset()) -> Plan:
    """What the machine the lab runs on adds: `has_program`, whether it has a program a
    container's command names (None: assume so; a container whose program it lacks is emulated,
    see plan.containers); `node_resolv_conf`, its resolv.conf, which is the lab's nodes' (see
    plan.podfiles); `now`, the time new objects are created at (their creationTimestamp);
    `not_ready`, the pods of `previous` that are not ready (a rollout waits for new ones to be)."""
    model = kept_subnets(model, previous)  # the networks a running lab was derived onto stay
    check_unchanged(model, previous)  # what a running lab may not change, before anything else
    model = with_addons(model)
    nodes = plan_nodes(model, lab, previous)
    sets = deployment_sets(model, previous, not_ready)
    pod_model = with_sets(model, sets)
    indices, next_indices = replica_indices(pod_model, previous.allocations if previous else Allocations())
    pods, pod_ips, last_reserved, pending = plan_pods(pod_model, lab, nodes, previous, has_program, indices)
    # a pod whose sandbox kubelet cannot make has no address the endpoints controller could list
    sandboxed = tuple(p for p in pods if fqdn_error(p, model.cluster.dns_domain) is None)
    services, svc_alloc = plan_services(model, sandboxed, previous.allocations if previous else Allocations())
    workloads = plan_workloads(model, pods + pending, sets)
    written_slices = tuple(dataclasses.replace(s, origin=None)
                           for s in model.endpoint_slices + endpointslices.mirrored(model))
    relabelled = previous.allocations.pod_labels if previous else {}
    namespace_objects = plan_namespaces(model, [*(p.namespace for p in pods), *(s.namespace for s in services),
                                                *(n.namespace for n in model.network_policies)])
    allocations = Allocations(pod_ips=pod_ips, last_reserved=last_reserved, **svc_alloc,
                              replicas=indices, replica_next=next_indices, rs_sizes=sets.sizes,
                              rs_templates=sets.templates, rs_revisions=sets.revisions,
                              pod_labels={p.key: dict(p.labels) for p in pods
                                          if p.owner and relabelled.get(p.key) == dict(p.labels)},
                              created=creation_times(previous, now, services, workloads, pods, pending,
                                                     model.config_maps + written_slices + model.endpoints
                                                     + model.network_policies + namespace_objects))
    return Plan(lab=lab, cluster=model.cluster, nodes=nodes, pods=pods, services=services,
                allocations=allocations, underlay_netns=naming.underlay_netns(lab),
                namespaces=tuple(n.name for n in namespace_objects),
                node_dns=parse_resolv_conf(node_resolv_conf), pending=pending,
                workloads=workloads,
                config_maps=tuple(dataclasses.replace(c, origin=None)
                                  for c in model.config_maps + made_secrets(model)),
                endpoint_slices=written_slices,
                endpoints=tuple(dataclasses.replace(e, origin=None) for e in model.endpoints),
                namespace_objects=namespace_objects,
                network_policies=tuple(dataclasses.replace(n, origin=None) for n in model.network_policies))


__all__ = ["make_plan", "expand_workload", "schedule", "PodSpec"]
