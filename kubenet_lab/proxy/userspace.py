"""kube-proxy's userspace mode for one node, as `iptables-restore --noflush` input, and the proxy
ports it sends Service traffic to. Pure: the proxy itself (a socket pump per service port and
node, run by the supervisor: supervisor/userspace.py, servers/userspace.py) and the choice of a
backend (proxy/roundrobin.py) live elsewhere.

The layout of the old userspace proxier (pkg/proxy/userspace/proxier.go, removed in Kubernetes
1.26), as the article lists it. Every service port gets a proxy port P on every node, on which the
node's proxy listens (0.0.0.0, TCP or UDP as the port). In the nat table:
- `KUBE-PORTALS-CONTAINER`, jumped to first from PREROUTING: traffic arriving at the node (from
  its pods, over cbr0) for a ClusterIP:port (or an external or load-balancer IP) is
  `REDIRECT --to-ports P`, so it reaches the proxy at the address of the interface it came in on;
- `KUBE-PORTALS-HOST`, first in OUTPUT: the node's own traffic (hostNetwork pods) is
  `DNAT --to-destination <node IP>:P` (REDIRECT of local traffic answers from the wrong address,
  as the proxier's comments say);
- `KUBE-NODEPORT-CONTAINER` / `KUBE-NODEPORT-HOST`, jumped to last for a local destination
  (`-m addrtype --dst-type LOCAL`): a NodePort, the same way to the same P;
and in the filter table `KUBE-NODEPORT-NON-LOCAL` (first in INPUT) accepts new connections to
the proxy ports of NodePorts, for default-deny hosts.
There are no per-endpoint rules and no masquerading: the proxy opens its own connection to the
backend, so the backend sees the node as the client; endpoints change the proxy, not the rules.

Rules are written in iptables-save's own argument order, so a node's saved rules read as rendered.
Each service port's fragment contributes lines to those shared chains only; a change reloads the
whole (small) ruleset (`sync_text` gives no partial text).
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Mapping

from kubenet_lab.model.objects import Plan, PlannedService, PlannedServicePort
from kubenet_lab.proxy.endpoints import PortView, proxied_ports
from kubenet_lab.proxy.fragments import Changes, Fragment, make_fragment, port_key

SYNTAX = "iptables"  # loaded with iptables-restore (kernel.rules)

PORTALS_CONTAINER = "KUBE-PORTALS-CONTAINER"
PORTALS_HOST = "KUBE-PORTALS-HOST"
NODEPORT_CONTAINER = "KUBE-NODEPORT-CONTAINER"
NODEPORT_HOST = "KUBE-NODEPORT-HOST"
NODEPORT_NON_LOCAL = "KUBE-NODEPORT-NON-LOCAL"

# The proxy ports: the proxier bound port 0 and took what the kernel gave, a port of the
# ephemeral range (the article's 39451); here a port is derived from the service port's name so
# that the rules (rendered in the CLI) and the proxy (in the supervisor) agree without talking.
PROXY_PORTS = (33000, 60999)
NODE_HEALTHZ_PORT = 10256
# kube-proxy's --udp-timeout default: how long a UDP client's backend socket stays without traffic.
UDP_IDLE_TIMEOUT = 0.25

_PORTALS_COMMENT = '"handle ClusterIPs; NOTE: this must be before the NodePort rules"'
_NODEPORTS_COMMENT = '"handle service NodePorts; NOTE: this must be the last rule in the chain"'
_NON_LOCAL_COMMENT = '"Ensure that non-local NodePort traffic can flow"'


def node_dependent(svc: PlannedService, port: PlannedServicePort) -> bool:
    """Every port: the host portals DNAT to the node's own address."""
    return True


def proxy_ports(plan: Plan) -> dict[str, int]:
    """Service port (`fragments.port_key`) -> its proxy port, the same on every node: a hash of
    the key into PROXY_PORTS, the next free one on a collision (keys in sorted order), never a
    NodePort, health check port or kube-proxy's own."""
    first, last = PROXY_PORTS
    size = last - first + 1
    taken = {NODE_HEALTHZ_PORT}
    keys = []
    for svc, port in proxied_ports(plan):
        keys.append(port_key(svc, port))
        if port.node_port:
            taken.add(port.node_port)
        if svc.health_check_node_port:
            taken.add(svc.health_check_node_port)
    out: dict[str, int] = {}
    for key in sorted(keys):
        at = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big") % size
        for step in range(size):
            candidate = first + (at + step) % size
            if candidate not in taken:
                break
        else:
            raise ValueError("no free proxy port left")
        taken.add(candidate)
        out[key] = candidate
    return out


def base(plan: Plan | None = None, node: str | None = None) -> dict[str, tuple[str, ...]]:
    """The chains and the jumps from the built-in chains (the same on every node)."""
    return {
        "filter-head": (f":{NODEPORT_NON_LOCAL} - [0:0]",
                        f"-I INPUT 1 -m comment --comment {_NON_LOCAL_COMMENT} -j {NODEPORT_NON_LOCAL}"),
        "nat-head": tuple(f":{c} - [0:0]" for c in (PORTALS_CONTAINER, PORTALS_HOST, NODEPORT_CONTAINER,
                                                     NODEPORT_HOST)),
        # prepends: the last one given ends up first (kernel.rules.merge_iptables)
        "nat-jumps": (f"-I OUTPUT 1 -m comment --comment {_PORTALS_COMMENT} -j {PORTALS_HOST}",
                      f"-I PREROUTING 1 -m comment --comment {_PORTALS_COMMENT} -j {PORTALS_CONTAINER}",
                      f"-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment {_NODEPORTS_COMMENT} "
                      f"-j {NODEPORT_CONTAINER}",
                      f"-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment {_NODEPORTS_COMMENT} "
                      f"-j {NODEPORT_HOST}"),
    }


def render_context(plan: Plan) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]:
    """The plan-wide inputs of a fragment: the proxy ports (one port's depends on the others')
    and the nodes' addresses."""
    return tuple(sorted(proxy_ports(plan).items())), tuple((n.name, str(n.ip)) for n in plan.nodes)


def fragment_renderer(plan: Plan) -> Callable[[PortView], Fragment]:
    ports, nodes = render_context(plan)  # the very inputs the fingerprints cover
    port_of, node_ip = dict(ports), dict(nodes)

    def render(view: PortView) -> Fragment:
        return _fragment(view, port_of[port_key(view.svc, view.port)], node_ip[view.node])
    return render


def _fragment(v: PortView, proxy_port: int, node_ip: str) -> Fragment:
    comment = f'-m comment --comment "{v.spn}"'
    redirect = f"-j REDIRECT --to-ports {proxy_port}"
    dnat = f"-j DNAT --to-destination {node_ip}:{proxy_port}"
    container, host, np_container, np_host, non_local = [], [], [], [], []
    for ip in (v.cluster_ip, *v.external_ips, *v.lb_ips):
        match = f"-d {ip}/32 -p {v.proto} {comment} -m {v.proto} --dport {v.port.port}"
        container.append(f"-A {PORTALS_CONTAINER} {match} {redirect}")
        host.append(f"-A {PORTALS_HOST} {match} {dnat}")
    if v.node_port:
        match = f"-p {v.proto} {comment} -m {v.proto} --dport {v.node_port}"
        np_container.append(f"-A {NODEPORT_CONTAINER} {match} {redirect}")
        np_host.append(f"-A {NODEPORT_HOST} {match} {dnat}")
        non_local.append(f"-A {NODEPORT_NON_LOCAL} -p {v.proto} {comment} -m {v.proto} --dport {proxy_port} "
                         f"-m state --state NEW -j ACCEPT")
    return make_fragment([], [], {"portals-container": container, "portals-host": host,
                                  "nodeport-container": np_container, "nodeport-host": np_host,
                                  "filter": non_local})


def assemble(sections: Mapping[str, tuple[str, ...]], fragments: Iterable[Fragment]) -> str:
    frags = list(fragments)

    def shared(key: str) -> list[str]:
        return [line for f in frags for line in f.shared.get(key, ())]

    return "\n".join(["*filter", *sections["filter-head"], *shared("filter"), "COMMIT",
                      "*nat", *sections["nat-head"], *sections["nat-jumps"],
                      *shared("portals-container"), *shared("portals-host"),
                      *shared("nodeport-container"), *shared("nodeport-host"), "COMMIT", ""])


def rule_chain(line: str) -> str:
    return line.split(" ", 2)[1]


def sync_text(ch: Changes) -> str | None:
    """Always the complete ruleset: a handful of rules per service port."""
    return None


# --- what the node's proxy serves ----------------------------------------------------------


def proxied(plan: Plan) -> list[tuple[str, str, int, PlannedService, PlannedServicePort]]:
    """(service port key, protocol in lower case, proxy port, service, port) for every port the
    proxy listens for, in render order."""
    ports = proxy_ports(plan)
    return [(key, port.protocol.lower(), ports[key], svc, port)
            for svc, port in proxied_ports(plan) for key in (port_key(svc, port),)]


def backends(port: PlannedServicePort) -> list[str]:
    """The endpoints ("ip:port") the proxy chooses among: the ready ones (the userspace proxier
    knew neither traffic policies nor terminating endpoints)."""
    return [f"{ep.ip}:{ep.port}" for ep in port.endpoints if ep.ready]
