"""What may not change on a running lab: the previous plan against the new manifests.

The API server refuses an update that changes a field it holds immutable, and says so; the
lab refuses the same, whichever verb brings the change (`up` now, `apply` too), with the API
server's words and what to do instead. The Cluster config is kind's: a running cluster's
networks cannot be changed, only made anew.
"""
from __future__ import annotations

import dataclasses
import json
from ipaddress import IPv4Network

from ..errors import InputError
from ..model.objects import ClusterConfig, LabelSelector, Model, Plan, at

# apps/v1 and batch/v1 hold spec.selector immutable; a ReplicationController's may change.
SELECTOR_IMMUTABLE = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")

# The networks a running lab is built on: its nodes' podCIDRs and its pods' addresses come from
# podSubnet, its Services' cluster IPs (and the cluster DNS address) from serviceSubnet, its nodes'
# and balancer's addresses from nodeSubnet, every pod's resolv.conf and DNS names from dnsDomain,
# its Services' NodePorts from serviceNodePortRange (kube-apiserver's --service-node-port-range).
CLUSTER_FIXED = (("podSubnet", "pod_subnet", "its nodes' podCIDRs and its pods' addresses come from it"),
                 ("serviceSubnet", "service_subnet", "its Services' cluster IPs come from it"),
                 ("nodeSubnet", "node_subnet", "its nodes' addresses come from it"),
                 ("dnsDomain", "dns_domain", "every pod's resolv.conf and DNS names are made of it"),
                 ("serviceNodePortRange", "node_port_range", "its Services' NodePorts come from it"))


def _selector_json(selector: LabelSelector) -> str:
    data: dict[str, object] = {}
    if selector.match_labels:
        data["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        data["matchExpressions"] = [{"key": e.key, "operator": e.operator, **({"values": list(e.values)}
                                                                             if e.values else {})}
                                    for e in selector.match_expressions]
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _cluster(model: Model, before: ClusterConfig) -> list[str]:
    problems = []
    now = model.cluster
    for key, attr, why in CLUSTER_FIXED:
        old, new = getattr(before, attr), getattr(now, attr)
        if old != new:
            written = (f" (no Cluster object sets it, so it is derived from the manifests' "
                       f"{'podCIDRs' if key == 'podSubnet' else 'clusterIPs'}: {new})" if key in now.derived else
                       "" if now.origin else f" (no Cluster object gives it, so it is the default {new})")
            problems.append(f"{at(now.origin, 'networking.' + key)}: Invalid value: \"{new}\": may not change on a "
                            f"running lab (it is {old}: {why}){written}; keep {old}, or remove the lab "
                            f"(kubenet-lab down) and bring it up anew")
    return problems


def _nodes(model: Model, previous: Plan) -> list[str]:
    before = {n.name: n.pod_cidr for n in previous.nodes}
    return [f"{at(n.origin, 'spec.podCIDR')}: Forbidden: node updates may not change podCIDR except from \"\" to "
            f"valid (node {n.name} has {before[n.name]}); leave spec.podCIDR out or write {before[n.name]}"
            for n in model.nodes if n.pod_cidr is not None and n.name in before and n.pod_cidr != before[n.name]]


def _services(model: Model, previous: Plan) -> list[str]:
    before = {s.key: s for s in previous.services}
    problems = []
    for svc in model.services:
        old = before.get(svc.key)
        if old is None or svc.type == "ExternalName" or old.type == "ExternalName":
            continue
        had = "None" if old.cluster_ip is None else str(old.cluster_ip)
        # Not written: the Service keeps what it has (as `kubectl apply` leaves it), unless it
        # was headless, which an unwritten clusterIP would undo.
        wants = svc.cluster_ip or (None if old.cluster_ip is not None else "")
        if wants is None or wants == had:
            continue
        problems.append(f"{at(svc.origin, 'spec.clusterIP')}: Invalid value: \"{wants}\": may not change once set "
                        f"(Service {svc.key} has clusterIP {had}); to change it, remove the Service (up without "
                        f"it, or delete it) and create it again" + ("" if had == "None" else
                                                                     f", or write {had} or leave clusterIP out"))
    return problems


def _workloads(model: Model, previous: Plan) -> list[str]:
    before = {(w.kind, w.key): w for w in getattr(previous, "workloads", ()) if w.owner is None}
    problems = []
    for w in model.workloads:
        old = before.get((w.kind, w.key))
        if w.kind not in SELECTOR_IMMUTABLE or old is None or old.selector == w.selector:
            continue
        problems.append(f"{at(w.origin, 'spec.selector')}: Invalid value: {_selector_json(w.selector)}: field is "
                        f"immutable ({w.kind} {w.key} selects {old.selector.show()}); to change it, remove the "
                        f"{w.kind} (up without it, or delete it) and create it again, or create one with another "
                        f"name")
    return problems


def _config_maps(model: Model, previous: Plan) -> list[str]:
    """An immutable ConfigMap or Secret keeps its data (and stays immutable); a Secret its type
    (ValidateConfigMapUpdate, ValidateSecretUpdate)."""
    before = {(c.kind, c.key): c for c in previous.config_maps}
    problems = []
    for c in model.config_maps:
        old = before.get((c.kind, c.key))
        if old is None:
            continue
        again = (f"; to change it, delete the {c.kind} {c.key} and create it again (pods that use it then need "
                 f"restarting: kubenet-lab rollout restart)")
        if c.kind == "Secret" and c.type != old.type:
            problems.append(f"{at(c.origin, 'type')}: Invalid value: \"{c.type}\": field is immutable (Secret "
                            f"{c.key} has type {old.type})" + again)
        if not old.immutable:
            continue
        changed = [f for f, a, b in (("immutable", c.immutable, True), ("data", c.data, old.data),
                                     ("binaryData", c.binary_data, old.binary_data)) if a != b]
        problems += [f"{at(c.origin, f)}: Forbidden: field is immutable when `immutable` is set" + again
                     for f in changed]
    return problems


_DERIVED = (("podSubnet", "pod_subnet"), ("serviceSubnet", "service_subnet"))


def _written_nets(model: Model, key: str) -> list[tuple[str, IPv4Network]]:
    """What a derived subnet is derived from (manifests.subnets), each with where it is written:
    the podCIDRs, the clusterIPs."""
    if key == "podSubnet":
        return [(at(n.origin, "spec.podCIDR"), n.pod_cidr) for n in model.nodes if n.pod_cidr is not None]
    return [(at(s.origin, "spec.clusterIP"), IPv4Network(s.cluster_ip)) for s in model.services
            if s.cluster_ip not in (None, "None") and s.type != "ExternalName"]


def kept_subnets(model: Model, previous: Plan | None) -> Model:
    """`model` with the subnets of the running lab where no Cluster config set them (it derived
    them, manifests.subnets, or took the defaults) and none sets them now: deleting a Service, or
    adding one, must not move the network every running pod and Service is on because what the
    subnet is derived from changed. A podCIDR or clusterIP outside the running subnet is refused where
    it is written."""
    if previous is None:
        return model
    before, now = previous.cluster, model.cluster
    fields = now.origin.fields if now.origin else {}
    set_before = before.origin.fields if before.origin else {}
    changes: dict[str, IPv4Network] = {}
    problems = []
    for key, attr in _DERIVED:
        old = getattr(before, attr)
        if f"networking.{key}" in set_before or f"networking.{key}" in fields or getattr(now, attr) == old:
            continue
        how = ("derived from its " + ("Nodes' podCIDRs" if key == "podSubnet" else "Services' clusterIPs")
               if key in before.derived else "the default")
        for where, net in _written_nets(model, key):
            if not net.subnet_of(old):
                shown = net if net.prefixlen < 32 else net.network_address
                problems.append(f"{where}: {shown} is outside networking.{key} {old} of the running lab ({how} "
                                f"when it came up; a running lab's networks may not change); "
                                f"write one inside it, or remove the lab (kubenet-lab down) and bring it up anew")
        changes[attr] = old
    if problems:
        raise InputError(problems)
    if not changes:
        return model
    derived = tuple(k for k, attr in _DERIVED if k in (before.derived if attr in changes else now.derived))
    cluster = dataclasses.replace(now, derived=derived, pod_subnet=changes.get("pod_subnet", now.pod_subnet),
                                  service_subnet=changes.get("service_subnet", now.service_subnet))
    return dataclasses.replace(model, cluster=cluster)


def check_unchanged(model: Model, previous: Plan | None) -> None:
    """Raises InputError naming every immutable field the new manifests would change."""
    if previous is None:
        return
    problems = (_cluster(model, previous.cluster) + _nodes(model, previous) + _services(model, previous)
                + _workloads(model, previous) + _config_maps(model, previous))
    if problems:
        raise InputError(problems)
