"""EndpointSlices: those written, those the controllers make, and the endpoints kube-proxy takes
from them.

- A Service without a selector gets its endpoints from the EndpointSlices labelled with its name
  (`kubernetes.io/service-name`), written in the manifests, and from its legacy Endpoints, which
  kube-controller-manager's EndpointSliceMirroring controller mirrors into slices (`mirrored`).
- A Service with a selector has its slices made by the EndpointSlice controller from the pods it
  selects (`controller_slices`, shown by `get endpointslices`); a written slice labelled as that
  controller's is deleted by it (the lab ignores it, the manifests warn), any other written slice
  of the Service is used by kube-proxy as well.
- kube-proxy (its EndpointSliceCache) matches a slice port to a Service port by name and protocol
  (an unnamed Service port matches the slice port named ""), skips a slice port without a number,
  takes each endpoint's first address, a nil `ready` or `serving` as true, a nil `terminating` as
  false, and one endpoint per address:port across slices (kube-proxy keeps the copy it reads
  first, in no set order; here the first in slice-name order).

Generated names: the controllers create slices with generateName `<service>-` (`<endpoints>-`
for mirrored ones), for which the API server draws 5 random characters; here they are derived
from the owner and the slice's index (naming.generate_name), so the same manifests give the same
names on every run.
"""
from __future__ import annotations

from ipaddress import IPv4Address
from typing import Iterable

from . import naming
from ..model.objects import (MANAGED_BY_LABEL, MIRRORING_CONTROLLER, SERVICE_NAME_LABEL, SKIP_MIRROR_LABEL,
                             SLICE_CONTROLLER, Endpoint, Endpoints, EndpointSlice, Model, ObjectRef, Plan, PlannedPod,
                             PlannedService, Service, SliceEndpoint, SlicePort, runs_selected)

MAX_ENDPOINTS_PER_SLICE = 100  # the EndpointSlice controller's --max-endpoints-per-slice default
MAX_MIRRORED_PER_SLICE = 1000  # the mirroring controller's --mirroring-max-endpoints-per-subset default
# Annotations of an Endpoints object the mirroring controller does not copy.
_NOT_MIRRORED = ("endpoints.kubernetes.io/last-change-trigger-time", "kubectl.kubernetes.io/last-applied-configuration")


def mirrors(svc: Service | None, ep: Endpoints) -> bool:
    """Whether the mirroring controller mirrors `ep`: its Service exists without a selector and it
    is not labelled to skip mirroring."""
    return svc is not None and not svc.selector and ep.labels.get(SKIP_MIRROR_LABEL) != "true"


def mirrored(model: Model) -> tuple[EndpointSlice, ...]:
    """The EndpointSlices the EndpointSliceMirroring controller makes of the written Endpoints:
    one per distinct set of ports (subsets with the same ports share it), at most
    MAX_MIRRORED_PER_SLICE endpoints each; ready from `addresses`, not ready from
    `notReadyAddresses` (its addressToEndpoint sets only the ready condition)."""
    services = {s.key: s for s in model.services}
    out = []
    for ep in model.endpoints:
        if not mirrors(services.get(ep.key), ep):
            continue
        groups: dict[tuple[SlicePort, ...], list[SliceEndpoint]] = {}
        for ss in ep.subsets:
            members = groups.setdefault(ss.ports, [])
            for ready, addresses in ((True, ss.addresses), (False, ss.not_ready_addresses)):
                members += [SliceEndpoint(addresses=(a.ip,), ready=ready, node_name=a.node_name, hostname=a.hostname,
                                          target_ref=a.target_ref) for a in addresses]
        labels = {**{k: v for k, v in ep.labels.items() if k != SKIP_MIRROR_LABEL},
                  SERVICE_NAME_LABEL: ep.name, MANAGED_BY_LABEL: MIRRORING_CONTROLLER}
        annotations = {k: v for k, v in ep.annotations.items() if k not in _NOT_MIRRORED}
        index = 0
        for ports, members in groups.items():
            for start in range(0, max(len(members), 1), MAX_MIRRORED_PER_SLICE):
                out.append(EndpointSlice(
                    namespace=ep.namespace,
                    name=naming.generate_name(ep.name, f"EndpointSliceMirroring/{ep.key}", index),
                    address_type="IPv4", endpoints=tuple(members[start:start + MAX_MIRRORED_PER_SLICE]), ports=ports,
                    labels=labels, annotations=annotations, origin=ep.origin, owner="Endpoints"))
                index += 1
    return tuple(out)


def exported(svc: Service, model: Model) -> bool:
    """Whether a Service with a selector takes its endpoints from the EndpointSlice controller's
    slices written in the manifests: a dump of a real cluster (`kubectl get svc,endpointslices -A
    -o yaml`) has the Services and the slices the controller made of their pods, but not the pods.
    So long as the lab runs nothing the Service selects (no Pod, no workload's pod template in its
    namespace: model.runs_selected), those slices stand for the cluster's pods, and kube-proxy and
    the cluster DNS read them; once it does, the lab's controller makes the slices of the pods it
    runs, and the written ones go, as the controller deletes slices it did not make."""
    return bool(svc.selector) and any(
        s.namespace == svc.namespace and s.service == svc.name and s.managed_by == SLICE_CONTROLLER
        for s in model.endpoint_slices) and not runs_selected(svc.selector, svc.namespace, model.pods,
                                                                model.workloads)


def used_by(svc: Service | PlannedService, slices: Iterable[EndpointSlice],
            exported_slices: bool = False) -> list[EndpointSlice]:
    """The written (and mirrored) slices kube-proxy reads for `svc`: labelled with its name, in its
    namespace, IPv4; for a Service with a selector, not those labelled as the EndpointSlice
    controller's (it deletes them), unless they are a real cluster's, `exported_slices`
    (`exported`). In name order, as the cache keeps them."""
    return sorted((s for s in slices if s.namespace == svc.namespace and s.service == svc.name
                   and s.address_type == "IPv4"
                   and not (svc.selector and s.managed_by == SLICE_CONTROLLER and not exported_slices)),
                  key=lambda s: s.name)


def _pod_key(ref: ObjectRef | None, namespace: str) -> str:
    if ref is None or ref.kind != "Pod" or not ref.name:
        return ""
    return f"{ref.namespace or namespace}/{ref.name}"


def port_endpoints(slices: Iterable[EndpointSlice], name: str | None, protocol: str) -> tuple[Endpoint, ...]:
    """The endpoints of the Service port `name`/`protocol` in `slices`, as kube-proxy takes them."""
    found: dict[tuple[str, int], Endpoint] = {}
    for sl in slices:
        for p in sl.ports:
            if p.name != (name or "") or p.protocol != protocol or p.port is None:
                continue
            for e in sl.endpoints:
                found.setdefault((e.addresses[0], p.port), _endpoint(sl, e, p.port))
    return tuple(sorted(found.values(), key=lambda e: (int(e.ip), e.port)))


def portless_endpoints(svc: Service, slices: Iterable[EndpointSlice]) -> tuple[Endpoint, ...]:
    """For a headless Service without ports, the endpoints of its written slices (port 0: none),
    one per address: what its DNS name answers (CoreDNS reads every endpoint of the Service's
    slices for a headless name, whatever their ports)."""
    if svc.cluster_ip != "None" or svc.ports:
        return ()
    found: dict[str, Endpoint] = {}
    for sl in slices:
        for e in sl.endpoints:
            found.setdefault(e.addresses[0], _endpoint(sl, e, 0))
    return tuple(sorted(found.values(), key=lambda e: int(e.ip)))


def _endpoint(sl: EndpointSlice, e: SliceEndpoint, port: int) -> Endpoint:
    return Endpoint(ip=IPv4Address(e.addresses[0]), port=port, pod=_pod_key(e.target_ref, sl.namespace),
                    node=e.node_name or "", ready=e.is_ready, serving=e.serving is None or e.serving,
                    terminating=bool(e.terminating), hostname=e.hostname)


def merged(*groups: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    """Endpoints of several sources, one per address:port (the first source's), sorted."""
    found: dict[tuple[IPv4Address, int], Endpoint] = {}
    for group in groups:
        for e in group:
            found.setdefault((e.ip, e.port), e)
    return tuple(sorted(found.values(), key=lambda e: (int(e.ip), e.port)))


def controller_slices(svc: PlannedService, hostnames: dict[str, str]) -> tuple[EndpointSlice, ...]:
    """The slices the EndpointSlice controller makes for a Service with a selector: the pods'
    endpoints grouped by the port numbers their ports resolve to (a named targetPort may differ
    from pod to pod), at most MAX_ENDPOINTS_PER_SLICE each; a Service that selects nothing still
    has one empty slice. `hostnames`: pod key -> the hostname its endpoint carries."""
    by_pod: dict[str, dict[tuple[str, str, str | None], int]] = {}  # pod -> (name, protocol, app) -> port
    endpoint_of: dict[str, Endpoint] = {}
    for port in svc.ports:
        for e in port.endpoints:
            key = e.pod or str(e.ip)
            endpoint_of[key] = e
            by_pod.setdefault(key, {})[(port.name or "", port.protocol, port.app_protocol)] = e.port
    for e in svc.addresses:
        endpoint_of.setdefault(e.pod or str(e.ip), e)
        by_pod.setdefault(e.pod or str(e.ip), {})
    groups: dict[tuple[SlicePort, ...], list[SliceEndpoint]] = {}
    for key, ports in by_pod.items():
        slice_ports = tuple(SlicePort(name=n, protocol=proto, port=number, app_protocol=app)
                            for (n, proto, app), number in ports.items())
        e = endpoint_of[key]
        namespace, _, name = e.pod.partition("/")
        groups.setdefault(slice_ports, []).append(SliceEndpoint(
            addresses=(str(e.ip),), ready=e.ready, serving=e.ready, terminating=False, node_name=e.node or None,
            hostname=hostnames.get(e.pod), target_ref=ObjectRef("Pod", namespace, name) if e.pod else None))
    if not groups:  # the controller's placeholder: no ports, no endpoints
        groups[()] = []
    labels = {**svc.labels, SERVICE_NAME_LABEL: svc.name, MANAGED_BY_LABEL: SLICE_CONTROLLER,
              **({"service.kubernetes.io/headless": ""} if svc.headless else {})}
    out, index = [], 0
    for group_ports, members in groups.items():
        members.sort(key=lambda m: (m.addresses[0], m.target_ref.name if m.target_ref else ""))
        for start in range(0, max(len(members), 1), MAX_ENDPOINTS_PER_SLICE):
            out.append(EndpointSlice(
                namespace=svc.namespace, name=naming.generate_name(svc.name, f"EndpointSlice/{svc.key}", index),
                address_type="IPv4", endpoints=tuple(members[start:start + MAX_ENDPOINTS_PER_SLICE]),
                ports=group_ports,
                labels=labels, owner="Service"))
            index += 1
    return tuple(out)


def hostnames(pods: Iterable[PlannedPod], svc: PlannedService) -> dict[str, str]:
    """Pod key -> the hostname its endpoint carries: spec.hostname of a pod whose spec.subdomain
    names the Service, in its namespace (the controllers' ShouldSetHostname)."""
    return {p.key: p.hostname for p in pods if p.hostname and p.subdomain == svc.name and p.namespace == svc.namespace}


def all_slices(plan: Plan) -> list[EndpointSlice]:
    """Every EndpointSlice the lab's API would hold: the EndpointSlice controller's for each
    Service with a selector, the mirrored ones and the written ones but those the controller
    deletes (labelled as its own, for a Service with a selector, but a real cluster's exported
    ones, which stand in for the controller's)."""
    selecting = {s.key: s for s in plan.services if s.selector and not s.exported_slices}
    out = [sl for s in selecting.values() for sl in controller_slices(s, hostnames(plan.pods, s))]
    out += [sl for sl in plan.endpoint_slices
            if not (sl.managed_by == SLICE_CONTROLLER and f"{sl.namespace}/{sl.service}" in selecting)]
    return out


def endpoints_objects(plan: Plan) -> list[PlannedService | Endpoints]:
    """Every Endpoints object the lab's API would hold: the endpoints controller's for each Service
    with a selector (and the API server's for default/kubernetes), as PlannedServices, and the
    written ones of any other name."""
    made = [s for s in plan.services if s.selector or s.key == "default/kubernetes"]
    keys = {s.key for s in made}
    return made + [e for e in plan.endpoints if e.key not in keys]
