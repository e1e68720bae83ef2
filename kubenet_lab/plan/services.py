"""Services: cluster IPs, NodePorts, load-balancer addresses and endpoints.

The first address of the service CIDR is reserved for `kubernetes.default`, the tenth for the
cluster DNS (`kube-system/kube-dns`). Endpoints are the planned pods of the service's namespace
whose labels match its selector, resolved per port (a named targetPort is looked up in each pod's
container ports by name and protocol, as FindPort does; pods without it are no endpoint of that
port).

NodePorts are allocated as the API server allocates them, from the Cluster config's
serviceNodePortRange: a nodePort written must lie in it, and the allocator (ipam.NodePorts)
takes the free ones from its upper band first. When a Service is created
(initNodePorts), its ports with the same port number and different protocols (53/TCP and 53/UDP)
share one NodePort, the one written on any of them or else one allocated for the first; a port
added to a running Service gets one of its own (updateNodePorts). No other two ports share one.
Running Services keep their addresses and NodePorts whatever comes before them in the manifests.
"""
from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address
from typing import Collection, Iterable, TypedDict

from ..errors import InputError
from . import endpointslices, ipam
from ..model.objects import (at, Allocations, Endpoint, LabelSelector, Model, Plan, PlannedPod, PlannedService,
                    PlannedServicePort, Service, ServicePort)

DNS_SERVICE = "kube-system/kube-dns"
KUBERNETES_SERVICE = "default/kubernetes"


def health_key(svc: Service) -> str:
    """Where a Service's allocated healthCheckNodePort is kept among the NodePorts (Allocations)."""
    return f"{svc.key}:healthCheckNodePort"


def needs_health_check(svc: Service) -> bool:
    """The API server gives a healthCheckNodePort to a LoadBalancer Service with
    externalTrafficPolicy Local (the cloud balancer asks each node whether it has an endpoint)."""
    return svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local"


def port_key(svc: Service, port: ServicePort) -> str:
    return f"{svc.key}:{port.port}/{port.protocol}"


def resolve_target(pod: PlannedPod, target: int | str, protocol: str) -> int | None:
    """The pod's port a Service port of `protocol` with this targetPort reaches, as the
    EndpointSlice controller's FindPort resolves it: a number is itself, a name is the first
    container port with that name AND protocol (a UDP port named dns is no target of a TCP
    Service port), in the containers, then in the sidecars (init containers with restartPolicy
    Always); None when the pod has none."""
    if isinstance(target, int):
        return target
    for c in (*pod.containers, *(c for c in pod.init_containers if c.sidecar)):
        for p in c.ports:
            if p.name == target and p.protocol == protocol:
                return p.container_port
    return None


def selected(svc: Service | PlannedService, pods: Iterable[PlannedPod]) -> list[PlannedPod]:
    """The pods of the service's namespace its selector matches (none without a selector)."""
    if not svc.selector:
        return []
    selector = LabelSelector(dict(svc.selector))
    return [p for p in pods if p.namespace == svc.namespace and selector.matches(p.labels)]


def ip_families(svc: Service) -> tuple[tuple[str, ...], str]:
    """(ipFamilies, ipFamilyPolicy) as the API server of a single-stack IPv4 cluster defaults
    them (what it refuses, the schema has refused): SingleStack unless given, and [IPv4], which
    PreferDualStack keeps as it is. A headless service without a selector is the exception: its
    policy defaults to RequireDualStack, and any policy but SingleStack gets both families."""
    bare_headless = svc.cluster_ip == "None" and not svc.selector
    policy = svc.ip_family_policy or ("RequireDualStack" if bare_headless else "SingleStack")
    families = svc.ip_families or ("IPv4",)
    if bare_headless and policy != "SingleStack" and len(families) == 1:
        families += ("IPv6" if families[0] == "IPv4" else "IPv4",)
    return families, policy


def allocates_node_ports(svc: Service) -> bool:
    """Whether NodePorts are allocated for the ports that do not name one: NodePort services,
    and LoadBalancers unless allocateLoadBalancerNodePorts is false."""
    return svc.type == "NodePort" or (svc.type == "LoadBalancer" and svc.allocate_load_balancer_node_ports)


def endpoint_hostname(pod: PlannedPod, svc: Service | PlannedService) -> str | None:
    """The hostname the EndpointSlice controller gives a pod's endpoint: spec.hostname when the
    pod's spec.subdomain names the Service in its namespace (ShouldSetHostname), else none."""
    if pod.hostname and pod.subdomain == svc.name and pod.namespace == svc.namespace:
        return pod.hostname
    return None


def endpoints_for(svc: Service, port: ServicePort, pods: tuple[PlannedPod, ...]) -> tuple[Endpoint, ...]:
    target = port.target_port if port.target_port is not None else port.port
    eps = []
    for pod in selected(svc, pods):
        resolved = resolve_target(pod, target, port.protocol)
        if resolved is not None:
            eps.append(Endpoint(ip=pod.ip, port=resolved, pod=pod.key, node=pod.node,
                                hostname=endpoint_hostname(pod, svc)))
    return tuple(sorted(eps, key=lambda e: (int(e.ip), e.port)))


def portless_addresses(svc: Service, pods: tuple[PlannedPod, ...]) -> tuple[Endpoint, ...]:
    """The addresses the endpoints controller lists for a headless service without ports: every
    pod it selects (port 0: none); none for any other service without ports."""
    if svc.cluster_ip != "None" or svc.ports:
        return ()
    eps = (Endpoint(ip=pod.ip, port=0, pod=pod.key, node=pod.node, hostname=endpoint_hostname(pod, svc))
           for pod in selected(svc, pods))
    return tuple(sorted(eps, key=lambda e: int(e.ip)))


class _ClusterIPs:
    def __init__(self, model: Model, previous: Allocations):
        subnet = model.cluster.service_subnet
        self.subnet = subnet
        self.reserved = {int(ipam.kubernetes_service_ip(subnet)): KUBERNETES_SERVICE,
                         int(ipam.dns_service_ip(subnet)): DNS_SERVICE}
        self.alloc = ipam.Sequential(*ipam.service_ip_range(subnet), in_use=self.reserved)
        self.owner: dict[int, str] = {}
        self.previous = previous
        # Addresses running Services keep (their manifests do not write one): asking for one is
        # refused, never resolved by renumbering what runs.
        self.running: dict[int, str] = {}
        for svc in model.services:
            old = previous.cluster_ips.get(svc.key)
            if (not svc.cluster_ip and svc.type != "ExternalName" and old and IPv4Address(old) in subnet
                    and int(IPv4Address(old)) not in self.reserved):
                self.running[int(IPv4Address(old))] = svc.key

    def request(self, svc: Service, problems: list[str]) -> IPv4Address | None:
        ip = svc.cluster_ip
        if ip == "None":
            return None
        if ip:
            addr = IPv4Address(ip)
            first, last = ipam.service_ip_range(self.subnet)
            if not first <= int(addr) <= last:
                problems.append(f"{at(svc.origin, 'spec.clusterIP')}: {ip} is not in serviceSubnet {self.subnet}")
                return None
            holder = self.owner.get(int(addr)) or self.reserved.get(int(addr)) or self.running.get(int(addr))
            if holder and holder != svc.key:
                what = ("reserved for" if int(addr) in self.reserved and int(addr) not in self.owner
                        else "already allocated to")
                running = (", which runs with it and keeps it; ask for another address or leave clusterIP out"
                           if holder == self.running.get(int(addr)) and int(addr) not in self.owner else "")
                problems.append(f"{at(svc.origin, 'spec.clusterIP')}: {ip} is {what} {holder}{running}")
                return None
            self.alloc.in_use.add(int(addr))
            self.owner[int(addr)] = svc.key
            return addr
        return None

    def assign(self, svc: Service) -> IPv4Address:
        for addr, holder in self.reserved.items():
            if holder == svc.key and addr not in self.owner:
                self.owner[addr] = svc.key
                return IPv4Address(addr)
        old = self.previous.cluster_ips.get(svc.key)
        if old and IPv4Address(old) in self.subnet and self.alloc.take(int(IPv4Address(old))):
            self.owner[int(IPv4Address(old))] = svc.key
            return IPv4Address(old)
        addr = self.alloc.allocate()
        self.owner[addr] = svc.key
        return IPv4Address(addr)


class ServiceAllocations(TypedDict):
    """The Services' share of the plan's Allocations (its fields of these names)."""

    cluster_ips: dict[str, str]
    node_ports: dict[str, int]
    lb_ips: dict[str, str]


def plan_services(model: Model, pods: tuple[PlannedPod, ...],
                  previous: Allocations) -> tuple[tuple[PlannedService, ...], ServiceAllocations]:
    problems: list[str] = []
    ips = _ClusterIPs(model, previous)
    services = [s for s in model.services if s.type != "ExternalName"]
    cluster_ip: dict[str, IPv4Address | None] = {}
    # Explicit addresses first, so an automatic one never takes an address a manifest asks for.
    for svc in services:
        if svc.cluster_ip:
            cluster_ip[svc.key] = ips.request(svc, problems)
    # Running Services first: each keeps its address, which a new one listed before it must not
    # take (a ClusterIP is immutable; a new Service gets a free one).
    for svc in _running_first(services, previous.cluster_ips):
        if not svc.cluster_ip:
            try:
                cluster_ip[svc.key] = ips.assign(svc)
            except ipam.Exhausted:
                problems.append(f"{at(svc.origin, 'spec.clusterIP')}: serviceSubnet {ips.subnet} is full")

    valid_ports = model.cluster.node_port_range
    node_ports = ipam.NodePorts(valid_ports)
    # Who holds each NodePort: (service, its port number; None for the health check's). Ports
    # of one service with the same number (53/TCP, 53/UDP) may hold the same one, nothing else.
    np_owner: dict[int, tuple[str, int | None]] = {}
    assigned_np: dict[str, int] = {}
    # (service, port number) -> the NodePort its ports share: the first one written on a port
    # with that number (initNodePorts' findRequestedNodePort), else the first allocated.
    shared_np: dict[tuple[str, int], int] = {}
    wants_np = [s for s in services if s.type in ("NodePort", "LoadBalancer")]
    # NodePorts running Services keep (not written in their manifests): refused to others, as above.
    running_np = {previous.node_ports[port_key(svc, p)]: svc.key for svc in wants_np if allocates_node_ports(svc)
                  for p in svc.ports if not p.node_port and port_key(svc, p) in previous.node_ports}
    for svc in wants_np:
        # The ports' own nodePorts, then the health check's: one allocator hands out both.
        asked: list[tuple[str, int | None, str | None, int | None]] = [
            (f"spec.ports[{i}].nodePort", p.node_port, port_key(svc, p), p.port) for i, p in enumerate(svc.ports)]
        asked.append(("spec.healthCheckNodePort", svc.health_check_node_port, None, None))
        for path, number, key, port in asked:
            if number:
                if number not in valid_ports:
                    problems.append(f"{at(svc.origin, path)}: Invalid value: {number}: provided port is not in the "
                                    f"valid range. The range of valid ports is {valid_ports}")
                    continue
                holder = np_owner.get(number)
                if holder and (holder[0] != svc.key or port is None or holder[1] != port):
                    problems.append(f"{at(svc.origin, path)}: {number} is already allocated to {holder[0]}")
                    continue
                if running_np.get(number, svc.key) != svc.key:
                    problems.append(f"{at(svc.origin, path)}: {number} is already allocated to {running_np[number]}, "
                                    "which runs with it and keeps it; ask for another nodePort or leave it out")
                    continue
                node_ports.take(number)
                np_owner[number] = (svc.key, port)
                if key is not None and port is not None:  # a port's (the health check's has neither)
                    assigned_np[key] = number
                    shared_np.setdefault((svc.key, port), number)
    # The ports that had a NodePort first, so that each keeps it; then the new ones. Ports of a
    # Service being created share by port number (initNodePorts); a running Service's new port
    # gets one of its own, as updateNodePorts allocates it.
    pending = [(svc, i, p) for svc in wants_np for i, p in enumerate(svc.ports)]
    pending.sort(key=lambda item: port_key(item[0], item[2]) not in previous.node_ports)
    for svc, i, p in pending:
        key = port_key(svc, p)
        if key in assigned_np or not allocates_node_ports(svc):
            continue
        shared = shared_np.get((svc.key, p.port))
        old = previous.node_ports.get(key)
        if old and old == shared:
            assigned_np[key] = old
        elif old and node_ports.take(old):  # a running Service keeps what it has
            assigned_np[key] = old
        elif shared and not _running(svc, previous):
            assigned_np[key] = shared
        else:
            try:
                assigned_np[key] = node_ports.allocate()
            except ipam.Exhausted:
                problems.append(f"{at(svc.origin, f'spec.ports[{i}].nodePort')}: failed to allocate a nodePort: "
                                f"range is full (networking.serviceNodePortRange {valid_ports} has no free port)")
                continue
        np_owner[assigned_np[key]] = (svc.key, p.port)
        shared_np.setdefault((svc.key, p.port), assigned_np[key])
    # healthCheckNodePort: written, or allocated from the same range after the ports' (a running
    # Service keeps its own).
    health: dict[str, int] = {}
    for svc in wants_np:
        if not needs_health_check(svc):
            continue
        if svc.health_check_node_port:
            health[svc.key] = svc.health_check_node_port
            continue
        old = previous.node_ports.get(health_key(svc))
        if old and node_ports.take(old):
            health[svc.key] = old
            continue
        try:
            health[svc.key] = node_ports.allocate()
        except ipam.Exhausted:
            problems.append(f"{at(svc.origin, 'spec.healthCheckNodePort')}: failed to allocate a healthCheckNodePort: "
                            f"range is full (networking.serviceNodePortRange {valid_ports} has no free port)")
            continue
        np_owner[health[svc.key]] = (svc.key, None)

    given = _ingress_ips(model, services, previous, problems)
    lb_ips = _lb_ips(model, services, previous, problems, given)
    if problems:
        raise InputError(problems)

    planned = []
    written = model.endpoint_slices + endpointslices.mirrored(model)
    for svc in services:
        exported = endpointslices.exported(svc, model)
        slices = endpointslices.used_by(svc, written, exported)
        ports = tuple(PlannedServicePort(
            name=p.name, protocol=p.protocol, port=p.port,
            target_port=p.target_port if p.target_port is not None else p.port,
            node_port=assigned_np.get(port_key(svc, p)),
            endpoints=endpointslices.merged(endpoints_for(svc, p, pods),
                                            endpointslices.port_endpoints(slices, p.name, p.protocol)),
            app_protocol=p.app_protocol)
            for p in svc.ports)
        families, family_policy = ip_families(svc)
        planned.append(PlannedService(
            namespace=svc.namespace, name=svc.name, type=svc.type, cluster_ip=cluster_ip.get(svc.key),
            ports=ports, selector=dict(svc.selector) if svc.selector is not None else None,
            session_affinity=svc.session_affinity, affinity_timeout=svc.affinity_timeout,
            external_traffic_policy=svc.external_traffic_policy, internal_traffic_policy=svc.internal_traffic_policy,
            external_ips=tuple(IPv4Address(a) for a in svc.external_ips),
            load_balancer_ips=given.get(svc.key) or ((lb_ips[svc.key],) if svc.key in lb_ips else ()),
            proxied_lb_ips=tuple(ip for ip in given.get(svc.key, ()) if str(ip) in svc.load_balancer_ingress_proxied),
            labels=dict(svc.labels), annotations=dict(svc.annotations),
            ip_families=families, ip_family_policy=family_policy, exported_slices=exported,
            publish_not_ready_addresses=svc.publish_not_ready_addresses,
            allocate_load_balancer_node_ports=svc.allocate_load_balancer_node_ports,
            load_balancer_class=svc.load_balancer_class,
            health_check_node_port=health.get(svc.key, svc.health_check_node_port),
            load_balancer_source_ranges=tuple(svc.load_balancer_source_ranges),
            traffic_distribution=svc.traffic_distribution,
            addresses=endpointslices.merged(portless_addresses(svc, pods),
                                            endpointslices.portless_endpoints(svc, slices))))
    # ExternalName: an alias the cluster DNS answers with a CNAME; no address, endpoints or rules.
    planned += [PlannedService(
        namespace=svc.namespace, name=svc.name, type=svc.type, cluster_ip=None, external_name=svc.external_name,
        ports=tuple(PlannedServicePort(name=p.name, protocol=p.protocol, port=p.port, node_port=None,
                                       target_port=p.target_port if p.target_port is not None else p.port)
                    for p in svc.ports),
        labels=dict(svc.labels), annotations=dict(svc.annotations), ip_families=(), ip_family_policy="")
        for svc in model.services if svc.type == "ExternalName"]
    order = {svc.key: i for i, svc in enumerate(model.services)}
    planned.sort(key=lambda s: order[s.key])
    alloc = ServiceAllocations(
        cluster_ips={k: str(v) for k, v in cluster_ip.items() if v is not None},
        node_ports={**assigned_np, **{health_key(s): health[s.key] for s in wants_np if s.key in health}},
        lb_ips={k: str(v) for k, v in lb_ips.items()})
    return tuple(planned), alloc


def _ingress_ips(model: Model, services: list[Service], previous: Allocations,
                 problems: list[str]) -> dict[str, tuple[IPv4Address, ...]]:
    """The addresses a manifest's status.loadBalancer.ingress gives a LoadBalancer Service, as
    if a cloud controller had written them: the lab's balancer answers on them. One inside the
    node network must lie in the load-balancer pool (the rest of it is the nodes', the
    balancer's and the external client's); none may be the pods' or the Services', nor another
    Service's."""
    cluster = model.cluster
    pool = cluster.lb_pool or ipam.default_lb_pool(cluster.node_subnet)
    out: dict[str, tuple[IPv4Address, ...]] = {}
    # A running Service keeps the address the balancer gave it (as a ClusterIP is kept): none
    # other may claim it.
    keys = {s.key for s in services if s.type == "LoadBalancer"}
    owner: dict[IPv4Address, str] = {IPv4Address(ip): key for key, ip in previous.lb_ips.items() if key in keys}
    owner.update({IPv4Address(s.load_balancer_ip): s.key for s in services if s.load_balancer_ip})
    for svc in services:
        ips = []
        for i, text in enumerate(svc.load_balancer_ingress):
            ip, where = IPv4Address(text), at(svc.origin, f"status.loadBalancer.ingress[{i}].ip")
            clash = next((f"networking.{name} {net}" for name, net in (
                ("podSubnet", cluster.pod_subnet), ("serviceSubnet", cluster.service_subnet)) if ip in net), None)
            if clash is None and ip in cluster.node_subnet and not pool[0] <= ip <= pool[1]:
                clash = (f"networking.nodeSubnet {cluster.node_subnet} outside the load-balancer pool "
                         f"{pool[0]}-{pool[1]} (the nodes', the balancer's and the external client's addresses)")
            if clash is None and (ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_link_local):
                clash = "no address a balancer can answer on"
            if clash is None and owner.get(ip, svc.key) != svc.key:
                clash = f"the address of Service {owner[ip]}"
            if clash is not None:
                problems.append(f"{where}: {ip} is in {clash}" if "networking." in clash
                                else f"{where}: {ip} is {clash}")
                continue
            owner[ip] = svc.key
            ips.append(ip)
        if ips:
            out[svc.key] = tuple(dict.fromkeys(ips))
    return out


def _lb_ips(model: Model, services: list[Service], previous: Allocations,
            problems: list[str], given: dict[str, tuple[IPv4Address, ...]]) -> dict[str, IPv4Address]:
    """The addresses the lab's balancer allocates (a Service whose manifest gives its own in
    status.loadBalancer.ingress gets none; those in the pool are not handed out again)."""
    pool = model.cluster.lb_pool or ipam.default_lb_pool(model.cluster.node_subnet)
    alloc = ipam.Sequential(int(pool[0]), int(pool[1]))
    for ips in given.values():
        for ip in ips:
            if pool[0] <= ip <= pool[1]:
                alloc.take(int(ip))
    out: dict[str, IPv4Address] = {}
    # A Service of another loadBalancerClass is left to the controller of that class, which this
    # lab does not have: it gets no address (EXTERNAL-IP <pending>), as on a cluster without one.
    lbs = [s for s in services if s.type == "LoadBalancer" and s.load_balancer_class is None and s.key not in given]
    for svc in lbs:
        if svc.load_balancer_ip:
            if not alloc.take(int(IPv4Address(svc.load_balancer_ip))):
                problems.append(f"{at(svc.origin, 'spec.loadBalancerIP')}: {svc.load_balancer_ip} is taken or outside "
                                f"the load-balancer pool {pool[0]}-{pool[1]}")
                continue
            out[svc.key] = IPv4Address(svc.load_balancer_ip)
    for svc in _running_first(lbs, previous.lb_ips):
        if svc.key in out or svc.load_balancer_ip:
            continue
        old = previous.lb_ips.get(svc.key)
        if old and alloc.take(int(IPv4Address(old))):
            out[svc.key] = IPv4Address(old)
            continue
        try:
            out[svc.key] = IPv4Address(alloc.allocate())
        except ipam.Exhausted:
            problems.append(f"{at(svc.origin, 'spec.type')}: the load-balancer pool {pool[0]}-{pool[1]} is full")
    return out


def _running(svc: Service, previous: Allocations) -> bool:
    """Whether the Service ran before this plan: what the API server would update, not create."""
    return f"Service/{svc.key}" in previous.created or svc.key in previous.cluster_ips


def _running_first(services: list[Service], had: Collection[str]) -> list[Service]:
    """`services`, those whose key is in `had` (an address they keep) first, each group in order."""
    return sorted(services, key=lambda svc: svc.key not in had)


def removed_udp_endpoints(old: Plan | None, new: Plan) -> set[IPv4Address]:
    """The ready endpoint addresses that a UDP service port of `old` has lost in `new` (removed,
    no longer ready, or the port or its whole service gone): the conntrack entries NATed to them
    must go, as kube-proxy clears them, or their flows keep reaching a dead address."""
    if old is None:
        return set()
    now = {(s.namespace, s.name, p.port): {e.ip for e in p.endpoints if e.ready}
           for s in new.services for p in s.ports if p.protocol == "UDP"}
    return {e.ip for s in old.services if not s.headless for p in s.ports if p.protocol == "UDP"
            for e in p.endpoints if e.ready and e.ip not in now.get((s.namespace, s.name, p.port), set())}


def with_readiness(plan: Plan, not_ready: Collection[str], terminal: Collection[str] = ()) -> Plan:
    """`plan` with the endpoints of the pods in `not_ready` ("ns/name") marked not ready, as the
    EndpointSlice controller marks a pod whose containers are not all running: kube-proxy and
    the cluster DNS leave them out, Endpoints list them under notReadyAddresses. A service with
    publishNotReadyAddresses keeps them ready, as the controller publishes them. The pods in
    `terminal` (Succeeded or Failed) are no endpoints at all, as the controller leaves them out
    (whatever publishNotReadyAddresses says). The addresses of a portless headless service
    follow the same rules."""
    if not any(e.pod in not_ready or e.pod in terminal for s in plan.services if s.selector
               for e in (*s.addresses, *(e for p in s.ports for e in p.endpoints))):
        return plan

    def marked(s: PlannedService, endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
        # Only the endpoints the controller made of the pods it selects: a written EndpointSlice's
        # conditions stay as written, whatever the pod its targetRef names does.
        mine = {p.key for p in selected(s, plan.pods)}
        return tuple(dataclasses.replace(e, ready=s.publish_not_ready_addresses or e.pod not in not_ready)
                     if e.pod in mine else e for e in endpoints if e.pod not in terminal or e.pod not in mine)
    return dataclasses.replace(plan, services=tuple(
        dataclasses.replace(s, ports=tuple(dataclasses.replace(p, endpoints=marked(s, p.endpoints)) for p in s.ports),
                            addresses=marked(s, s.addresses)) if s.selector else s
        for s in plan.services))
