"""What a running lab promises, as a list of probes to make: `check`'s expectations (pure).

From the plan alone (pods, Services with their endpoints and readiness, nodes, the outside
client and the load balancer) this derives every connection that must work and every one that
must not, each an `Expectation`: from where (a namespace and how people call it), to what
address and port, over which protocol, how to talk to what answers there, and why it must or
must not work:

- pods reach pods: ICMP to every other pod, TCP (and UDP where the server answers) on every port
  a pod listens on, and where the server tells the caller's address (/clientip) it must be the
  calling pod's own (no NAT between pods);
- every Service port with ready endpoints answers from every node and from one pod on each node,
  only from its ready endpoints (internalTrafficPolicy Local: only the node's own, and nothing
  from a node without one); a NodePort or LoadBalancer one from the outside client too, through
  each node's NodePort (externalTrafficPolicy Local: only nodes with an endpoint) and through
  the balancer's address (in userspace mode, which knows no traffic policies, every endpoint);
- a Service without ready endpoints refuses;
- each Service's name resolves through the cluster DNS to its ClusterIP (a headless one: its
  ready endpoints' addresses), asked from a pod on each node.

Large labs are sampled (`full=False`): a few destinations per pod, chosen the same way on every
run; `full` asks for every pair and for every endpoint of a Service to answer at least once.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Iterable

from ..model.objects import (Plan, PlannedPod, PlannedService, PlannedServicePort, RunDns, RunExec, RunHttp,
                             RunNetexec, RunServeHostname)
from ..plan import ipam, naming
from ..plan.podfiles import pod_dns, pod_hostname

REACH, FAIL = "reach", "fail"

# How to talk to what listens on a port (what `check` sends and what the answer tells):
HTTP = "http"          # HTTP: GET /hostname answers the server's hostname, GET /clientip the caller
HTTP_HOSTNAME = "http-hostname"  # HTTP, every path answers the hostname (serve-hostname)
HTTP_ANY = "http-any"  # HTTP that answers something (a fixed text, a proxy): any status is an answer
CONNECT = "connect"    # TCP: a connection made is all we can tell (TLS, redis, a real program)
TCP_HOSTNAME = "tcp-hostname"  # TCP: the server writes its hostname and closes
UDP = "udp"            # UDP: "hostname" answers the hostname ("clientip" the caller, netexec only)
UDP_CLIENTIP = "udp-clientip"  # UDP netexec: also answers "clientip"
DNS = "dns"            # the cluster DNS
ICMP = "icmp"

# Sampling: up to this many pods every pair is probed; above, each pod probes this many others.
FULL_PAIRS_UP_TO = 12
SAMPLED_PEERS = 4
SERVICE_REQUESTS = 3  # connections per source and Service port (random balancing is per connection)


@dataclass(frozen=True)
class Expectation:
    kind: str          # pod-pod, service, nodeport, loadbalancer, dns
    src: str           # as people name it: pod/ns/name, node/NAME, external
    dst: str           # pod/ns/name, svc/ns/name:port, node/NAME:nodePort, lb/IP:port, a DNS name
    port: int          # 0 for ICMP
    proto: str         # icmp, tcp, udp
    must: str          # REACH or FAIL
    why: str
    src_netns: str = ""
    src_ip: str = ""
    dst_ip: str = ""
    talk: str = ICMP   # how to talk to it (HTTP, UDP, DNS, ...)
    source_ip: str = ""  # the address the server must see the caller as ("": not checked)
    answers: frozenset[str] = frozenset()  # the hostnames allowed to answer ("": any)
    every: bool = False  # every one of `answers` must answer at least once (--full)
    requests: int = 1
    name: str = ""     # DNS: the name asked
    addresses: frozenset[str] = frozenset()  # DNS: the A records it must answer with
    refused: bool = False  # FAIL: refused at once (a REJECT), not merely unanswered

    @property
    def label(self) -> str:
        return f"{self.src} -> {self.dst}" + (f" {self.proto}" if self.proto != "icmp" else " icmp")


def _speaks(pod: PlannedPod, port: int, proto: str) -> str | None:
    """How to talk to `pod` on port/proto, or None when nothing we know of listens there."""
    for c in pod.containers:
        run = c.run
        if isinstance(run, RunNetexec):
            if proto == "tcp" and port == run.http_port:
                return HTTP
            if proto == "udp" and port == run.udp_port:
                return UDP_CLIENTIP
        elif isinstance(run, RunServeHostname):
            if port == run.port:
                if proto == "tcp" and run.http:
                    return HTTP_HOSTNAME
                if proto == "tcp" and run.tcp:
                    return TCP_HOSTNAME
                if proto == "udp" and run.udp:
                    return UDP
        elif isinstance(run, RunHttp):
            if proto == "tcp" and port in run.ports:
                if port in run.tls_ports or port in run.redis_ports:
                    return CONNECT
                return HTTP_ANY if (run.text is not None or run.proxy_to) else HTTP
            if proto == "udp" and port in run.udp_ports:
                return UDP
        elif isinstance(run, RunDns):
            if port == run.port:
                return DNS
        elif isinstance(run, RunExec):
            if proto == "tcp" and any(p.container_port == port and p.protocol == "TCP" for p in c.ports):
                return CONNECT
    return None


def _listening(pod: PlannedPod) -> list[tuple[int, str, str]]:
    """(port, proto, talk) of every port the pod is known to listen on."""
    seen: dict[tuple[int, str], str] = {}
    for c in pod.containers:
        run = c.run
        candidates: list[tuple[int, str]] = [(p.container_port, p.protocol.lower()) for p in c.ports]
        if isinstance(run, RunNetexec):
            candidates += [(run.http_port, "tcp"), (run.udp_port, "udp")]
        elif isinstance(run, RunServeHostname):
            candidates += [(run.port, "tcp"), (run.port, "udp")]
        elif isinstance(run, RunHttp):
            candidates += [(p, "tcp") for p in run.ports] + [(p, "udp") for p in run.udp_ports]
        elif isinstance(run, RunDns):
            candidates += [(run.port, "udp"), (run.port, "tcp")]
        for port, proto in candidates:
            if port > 0 and proto in ("tcp", "udp") and (port, proto) not in seen:
                talk = _speaks(pod, port, proto)
                if talk is not None:
                    seen[(port, proto)] = talk
    return [(port, proto, talk) for (port, proto), talk in sorted(seen.items())]


def _pod_name(pod: PlannedPod) -> str:
    return f"pod/{pod.namespace}/{pod.name}"


def _peers(pods: list[PlannedPod], i: int, full: bool) -> list[PlannedPod]:
    """The pods pod i probes: every other one, or on a large lab a few, spread over the list
    (the next one, and then ever further, so that every node is reached from every node)."""
    n = len(pods)
    if full or n <= FULL_PAIRS_UP_TO:
        return [p for j, p in enumerate(pods) if j != i]
    steps, step = [], 1
    while len(steps) < min(SAMPLED_PEERS, n - 1):
        if step % n and step % n not in steps:
            steps.append(step % n)
        step = step * 2 + 1 if step > 1 else 2
        if step > 4 * n:
            break
    return [pods[(i + s) % n] for s in steps]


def _usable(pods: Iterable[PlannedPod], not_running: frozenset[str]) -> list[PlannedPod]:
    return sorted((p for p in pods if not p.host_network and p.key not in not_running), key=lambda p: p.key)


def pod_to_pod(plan: Plan, full: bool = False, not_running: frozenset[str] = frozenset(),
               not_ready: frozenset[str] = frozenset()) -> list[Expectation]:
    pods = _usable(plan.pods, not_running)
    out: list[Expectation] = []
    for i, src in enumerate(pods):
        for dst in _peers(pods, i, full):
            why = "pods reach pods without NAT" + (" (same node)" if src.node == dst.node else
                                                  f" ({src.node} -> {dst.node})")
            out.append(Expectation("pod-pod", _pod_name(src), _pod_name(dst), 0, "icmp", REACH, why,
                                   src_netns=src.netns, src_ip=str(src.ip), dst_ip=str(dst.ip), talk=ICMP))
            if dst.key in not_ready:
                continue
            for port, proto, talk in _listening(dst):
                sees = str(src.ip) if talk in (HTTP, UDP_CLIENTIP) else ""
                answers = (frozenset({pod_hostname(plan, dst)}) if talk in (HTTP_HOSTNAME, TCP_HOSTNAME, UDP)
                           else frozenset())
                out.append(Expectation("pod-pod", _pod_name(src), f"{_pod_name(dst)}:{port}", port, proto, REACH,
                                       why + (", seeing the caller's own address" if sees else ""),
                                       src_netns=src.netns, src_ip=str(src.ip), dst_ip=str(dst.ip), talk=talk,
                                       source_ip=sees, answers=answers))
    return out


def _talk_to(plan: Plan, sp: PlannedServicePort, proto: str) -> str | None:
    """One way of talking all ready endpoints of the port share (the least they have in common)."""
    talks = set()
    for e in sp.endpoints:
        if not e.ready:
            continue
        if not e.pod:
            # an address a written EndpointSlice gives, naming no pod: what answers there, if
            # anything, is not the lab's to expect
            return None
        try:
            pod = plan.pod(e.pod)
        except KeyError:
            continue
        if pod.ip != e.ip:
            return None  # a written slice's address that is not the pod's it names
        talks.add(_speaks(pod, e.port, proto))
    if not talks or None in talks:
        return None
    if len(talks) == 1:
        return talks.pop()
    if talks <= {HTTP, HTTP_HOSTNAME}:
        return HTTP_HOSTNAME
    if talks <= {UDP, UDP_CLIENTIP}:
        return UDP
    return CONNECT if proto == "tcp" else None


def _hostnames(plan: Plan, endpoints) -> frozenset[str]:
    names = set()
    for e in endpoints:
        try:
            names.add(pod_hostname(plan, plan.pod(e.pod)))
        except KeyError:
            pass
    return frozenset(names)


NAMES_HOSTNAME = (HTTP, HTTP_HOSTNAME, TCP_HOSTNAME, UDP, UDP_CLIENTIP)


def client_pods(plan: Plan, not_running: frozenset[str] = frozenset()) -> dict[str, PlannedPod]:
    """One pod per node to call Services from: a running pod that is no Service's endpoint if
    there is one (a client), else the first by name."""
    endpoints = {e.pod for s in plan.services for p in s.ports for e in p.endpoints}
    chosen: dict[str, PlannedPod] = {}
    for pod in sorted(_usable(plan.pods, not_running), key=lambda p: (p.key in endpoints, p.key)):
        chosen.setdefault(pod.node, pod)
    return chosen


def services(plan: Plan, full: bool = False, not_running: frozenset[str] = frozenset()) -> list[Expectation]:
    out: list[Expectation] = []
    clients = client_pods(plan, not_running)
    external = naming.external_netns(plan.lab)
    external_ip = str(ipam.external_client_ip(plan.cluster.node_subnet))
    for svc in plan.services:
        if svc.type == "ExternalName":
            continue  # an alias: nothing to connect to
        for sp in svc.ports:
            proto = sp.protocol.lower()
            if proto not in ("tcp", "udp"):
                continue
            ready = [e for e in sp.endpoints if e.ready]
            name = f"svc/{svc.namespace}/{svc.name}:{sp.name or sp.port}"
            if not ready and any(e.serving and e.terminating for e in sp.endpoints):
                continue  # kube-proxy falls back to a written slice's terminating endpoints: not the lab's to expect
            if not ready:
                if svc.headless or proto != "tcp":
                    continue  # nothing to refuse a UDP datagram with that a client would notice
                for node in plan.nodes:
                    for src, netns, src_ip in _sources(node, clients):
                        out.append(Expectation("service", src, name, sp.port, proto, FAIL,
                                               "a Service without ready endpoints refuses connections",
                                               src_netns=netns, src_ip=src_ip, dst_ip=str(svc.cluster_ip),
                                               talk=CONNECT, refused=True))
                continue
            talk = _talk_to(plan, sp, proto)
            if talk is None:
                continue
            affinity = svc.session_affinity == "ClientIP"
            names = talk in NAMES_HOSTNAME
            # kube-proxy's userspace proxier predates the traffic policies: every node proxies to every endpoint
            internal_policy, external_policy = (("Cluster", "Cluster") if plan.cluster.kube_proxy_mode == "userspace"
                                                else (svc.internal_traffic_policy, svc.external_traffic_policy))
            if not svc.headless:
                for node in plan.nodes:
                    local = [e for e in ready if e.node == node.name]
                    if internal_policy == "Local":
                        allowed = local
                        why = "internalTrafficPolicy Local: only the node's own endpoints"
                    else:
                        allowed, why = ready, "a Service reaches its ready endpoints"
                    for src, netns, src_ip in _sources(node, clients):
                        if not allowed:
                            out.append(Expectation(
                                "service", src, name, sp.port, proto, FAIL,
                                f"internalTrafficPolicy Local and no endpoint on {node.name}",
                                src_netns=netns, src_ip=src_ip, dst_ip=str(svc.cluster_ip), talk=talk))
                            continue
                        out.append(_service_probe("service", src, netns, src_ip, name, str(svc.cluster_ip), sp.port,
                                                  proto, talk, why, _hostnames(plan, allowed) if names else frozenset(),
                                                  full and names and not affinity, len(allowed)))
            if svc.type in ("NodePort", "LoadBalancer") and sp.node_port:
                for node in plan.nodes:
                    local = [e for e in ready if e.node == node.name]
                    dst = f"node/{node.name}:{sp.node_port}"
                    if external_policy == "Local" and not local:
                        out.append(Expectation("nodeport", "external", dst, sp.node_port, proto, FAIL,
                                               f"externalTrafficPolicy Local and no endpoint of {name} on {node.name}",
                                               src_netns=external, src_ip=external_ip, dst_ip=str(node.ip),
                                               talk=talk))
                        continue
                    allowed = local if external_policy == "Local" else ready
                    out.append(_service_probe("nodeport", "external", external, external_ip, dst, str(node.ip),
                                              sp.node_port, proto, talk, f"{name}'s NodePort answers from outside",
                                              _hostnames(plan, allowed) if names else frozenset(),
                                              full and names and not affinity, len(allowed)))
            if svc.type == "LoadBalancer" and svc.load_balancer_class is None:
                for ip in svc.load_balancer_ips:
                    if not _admitted(svc, external_ip):
                        out.append(Expectation("loadbalancer", "external", f"lb/{ip}:{sp.port}", sp.port, proto, FAIL,
                                               f"loadBalancerSourceRanges of {name} leave the external client out",
                                               src_netns=external, src_ip=external_ip, dst_ip=str(ip), talk=talk))
                        continue
                    out.append(_service_probe("loadbalancer", "external", external, external_ip, f"lb/{ip}:{sp.port}",
                                              str(ip), sp.port, proto, talk, f"{name} through the load balancer",
                                              _hostnames(plan, ready) if names else frozenset(),
                                              full and names and not affinity, len(ready)))
    return out


def _sources(node, clients: dict[str, PlannedPod]) -> list[tuple[str, str, str]]:
    """(name, namespace, address) of the node and of its client pod, if it has one."""
    out = [(f"node/{node.name}", node.netns, str(node.ip))]
    if node.name in clients:
        pod = clients[node.name]
        out.append((_pod_name(pod), pod.netns, str(pod.ip)))
    return out


def _admitted(svc: PlannedService, source: str) -> bool:
    """Whether the Service's loadBalancerSourceRanges (its IPv4 ones; none: everyone) let `source` in."""
    ranges = svc.ipv4_source_ranges
    return not ranges or any(IPv4Address(source) in r for r in ranges)


def _service_probe(kind, src, netns, src_ip, dst, ip, port, proto, talk, why, answers, every,
                   n_endpoints) -> Expectation:
    requests = max(SERVICE_REQUESTS, 4 * n_endpoints) if every else SERVICE_REQUESTS
    return Expectation(kind, src, dst, port, proto, REACH, why, src_netns=netns, src_ip=src_ip, dst_ip=ip, talk=talk,
                       answers=answers, every=every, requests=requests)


def dns(plan: Plan, not_running: frozenset[str] = frozenset()) -> list[Expectation]:
    """Every Service's name asked from a pod on each node (one that uses the cluster DNS)."""
    zone = plan.cluster.dns_domain
    server = str(ipam.dns_service_ip(plan.cluster.service_subnet))
    out = []
    for _node, pod in sorted(client_pods(plan, not_running).items()):
        conf = pod_dns(plan, pod)
        if conf is None or server not in conf.nameservers:
            continue
        for svc in plan.services:
            if svc.type == "ExternalName":
                continue  # a CNAME, which the pod's resolver follows out of the lab: nothing answers there
            name = f"{svc.name}.{svc.namespace}.svc.{zone}"
            if svc.headless:
                ready = {str(e.ip) for e in (*svc.addresses, *(e for p in svc.ports for e in p.endpoints)) if e.ready}
                if not ready:
                    continue
                addresses, why = frozenset(ready), "a headless Service's name resolves to its ready endpoints"
            else:
                addresses, why = frozenset({str(svc.cluster_ip)}), "a Service's name resolves to its ClusterIP"
            out.append(Expectation("dns", _pod_name(pod), name, 53, "udp", REACH, why, src_netns=pod.netns,
                                   src_ip=str(pod.ip), dst_ip=server, talk=DNS, name=name, addresses=addresses))
    return out


def expectations(plan: Plan, full: bool = False, not_running: frozenset[str] = frozenset(),
                 not_ready: frozenset[str] = frozenset()) -> list[Expectation]:
    """Everything `check` probes on a lab whose plan (with readiness) is `plan`. `not_running`:
    pods that have no running sandbox to probe from or to (not created yet, ended)."""
    from .netpolexpect import with_policies

    return with_policies(plan, [*pod_to_pod(plan, full, not_running, not_ready), *services(plan, full, not_running),
                                *dns(plan, not_running)])


def who(plan: Plan, ip: str) -> str:
    """How people name the owner of address `ip` in the lab ("" when it is none of the lab's)."""
    for node in plan.nodes:
        if ip == str(node.ip):
            return f"node/{node.name}"
        if ip == str(node.gateway):
            return f"node/{node.name}"
    for pod in plan.pods:
        if ip == str(pod.ip) and not pod.host_network:
            return _pod_name(pod)
    subnet = plan.cluster.node_subnet
    if ip == str(ipam.load_balancer_ip(subnet)):
        return "lb"
    if ip == str(ipam.external_client_ip(subnet)):
        return "external"
    if ip == str(ipam.second_client_ip(subnet)):
        return "external2"
    return ""


def neighbours_needed(plan: Plan, exps: Iterable[Expectation]) -> int:
    """How many ARP entries the probes make the kernel hold at once, at least: one in each pod
    for every pod of its own node it talks to (a veth on the same bridge) and for its gateway.
    The kernel keeps one neighbour table for every namespace together (gc_thresh3 entries at
    most, 1024 by default), so a --full check of a large lab can overflow it."""
    node_of = {str(p.ip): p.node for p in plan.pods if not p.host_network}
    src_node = {_pod_name(p): p.node for p in plan.pods if not p.host_network}
    pairs = {(e.src, e.dst_ip) for e in exps if e.kind == "pod-pod"
             and src_node.get(e.src) is not None and node_of.get(e.dst_ip) == src_node.get(e.src)}
    return len(pairs) + len(src_node)
