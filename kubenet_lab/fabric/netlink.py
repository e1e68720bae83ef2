"""Build, inspect and remove the lab's topology over netlink, without forks.

  underlay netns: br0 <- one veth per node
  node netns:     eth0 (node IP; the routes of the cluster's backend, dataplane/backends, applied
                  by fabric/backends.py, and the service CIDR and external client via the load
                  balancer), cbr0 (gateway)
  pod netns:      eth0 (pod IP, default via gateway) <-> host veth on the node's cbr0, hairpin
                  (with networking.wiring: cni the CNI plugins make it instead: fabric/cni.py; both
                  give a pod the same dataplane.wiring.PodInterface)

Every link made here carries the ownership mark as its ifalias, and so does `lo` of every
namespace made here: that is how discover() tells the lab's namespaces from anything else's
when the state file is lost. Nothing here ever touches the root namespace: veths are created
from inside a lab namespace with the peer created directly in the other lab namespace, and
sysctls are written by a thread that is inside the node's namespace.

All netlink traffic goes through `rtnl`: pyroute2's messages, one socket per namespace,
requests batched (see there why not pyroute2's request layer: it alone costs more than the
kernel work).
"""
from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Collection, Iterable, Iterator, Sequence

from kubenet_lab.errors import EnvironmentProblem, LabError
from kubenet_lab.plan import naming
from kubenet_lab.model.objects import Plan, PlannedNode, PlannedPod
from kubenet_lab.dataplane import backends as dataplane
from kubenet_lab.dataplane import wiring
from kubenet_lab.dataplane.backends.base import UNDERLAY_MTU
from kubenet_lab.fabric import backends, checks, cni
from kubenet_lab.kernel import netns, procs, rtnl
from kubenet_lab.kernel.nsenter import die_with_parent, in_netns, netns_path

__all__ = [
    "discover", "discover_all", "ensure_base", "ensure_nodes", "create_pods",
    "delete_namespaces", "release_host_veths", "processes_in", "read_pod_ips",
]

NODE_BRIDGE = "cbr0"
ETH0 = "eth0"
# A fresh namespace numbers `lo` 1 and the first link made in it 2: the pod's eth0.
POD_ETH0_INDEX = 2
NODE_SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
    # Replies to the external client go through the load balancer (a host route the plan gives
    # every node); an ICMP redirect from it must not short-cut that path.
    "net/ipv4/conf/all/accept_redirects": "0",
    "net/ipv4/conf/default/accept_redirects": "0",
    # kube-proxy's REJECT answers with an ICMP port unreachable, which the kernel sends at most
    # once a second to each client after a burst of six. `check` and a person's load test ask a
    # refused Service many times at once, and a refusal must not turn into a timeout: the
    # rate-limited types lose "destination unreachable" (the default mask is 0x1818). Not
    # icmp_ratelimit=0: the forwarding path's own "network unreachable" limit shares its
    # tokens, and would then send none.
    "net/ipv4/icmp_ratemask": str(0x1818 & ~(1 << 3)),
}


def proxy_sysctls(mode: str) -> dict[str, str]:
    """What kube-proxy sets in its node for `mode`: in iptables mode (localhostNodePorts, its
    default) route_localnet, so that a NodePort answers on 127.0.0.1 (the KUBE-FIREWALL rule
    guards the hole it opens, proxy/iptables.py); nftables mode has no localhost NodePorts and
    leaves it off."""
    return {"net/ipv4/conf/all/route_localnet": "1" if mode == "iptables" else "0"}


# Below this many pods per worker a fork costs more than it saves.
MIN_PODS_PER_WORKER = 16

processes_in = procs.processes_in


# --- discovery ---------------------------------------------------------------------------------


def _lo_alias(_name: str) -> str | None:
    with rtnl.Rtnl() as nl:
        found = nl.link(index=1)
    return found.get_attr("IFLA_IFALIAS") if found else None


def discover(lab: str, known: Collection[str] = ()) -> dict[str, bool]:
    """Every namespace named like the lab's; True for those whose `lo` carries the lab's mark.

    `known`: names the lab's own saved plan records as made by it; they are taken as owned
    without entering them (reading a mark costs ~0.7 ms a namespace). Every other name is
    judged by its mark, so a lost or stale state file never makes a foreign namespace ours."""
    mark = naming.mark(lab)
    names = netns.names(naming.lab_prefix(lab))
    owned = {name: True for name in names if name in known}
    aliases = netns.visit([n for n in names if n not in owned], _lo_alias)
    return {**owned, **{name: alias == mark for name, alias in aliases.items()}}


def discover_all() -> dict[str, list[str]]:
    """Lab name -> its owned namespaces, over every namespace on the machine."""
    labs: dict[str, list[str]] = defaultdict(list)
    for name, alias in netns.visit(netns.names(), _lo_alias).items():
        if alias and alias.startswith(naming.MARK_PREFIX):
            lab = alias[len(naming.MARK_PREFIX):]
            if name.startswith(naming.lab_prefix(lab)):
                labs[lab].append(name)
    return dict(labs)


def _eth0_address(mark: str) -> str | None:
    with rtnl.Rtnl() as nl:
        found = nl.link(index=1)
        if not found or found.get_attr("IFLA_IFALIAS") != mark:
            return None
        for msg in nl.query(rtnl.addr_dump()):
            _index, address, label = rtnl.addr_info(msg)
            if label == ETH0 and address is not None:
                return str(address.ip)
    return None


def read_pod_ips(lab: str) -> dict[str, str]:
    """Owned pod namespace -> the address on its eth0 (for recovering lost state)."""
    found = netns.visit(netns.names(f"{lab}.pod."), lambda _n: _eth0_address(naming.mark(lab)))
    return {name: ip for name, ip in found.items() if ip}


# --- underlay and nodes -------------------------------------------------------------------------


@contextlib.contextmanager
def socket_in(name: str) -> Iterator[rtnl.Rtnl]:
    """A netlink socket inside namespace `name` (opened by this thread after setns: no fork)."""
    with in_netns(name):
        nl = rtnl.Rtnl()
    with nl:
        yield nl


def link_index(nl: rtnl.Rtnl, ifname: str) -> int | None:
    found = nl.link(name=ifname)
    return found["index"] if found else None


def _ensure_bridge(nl: rtnl.Rtnl, ifname: str, mark: str) -> int:
    index = link_index(nl, ifname)
    if index is None:
        nl.batch([rtnl.bridge_add(ifname)])
        index = link_index(nl, ifname)
    nl.batch([rtnl.link_set(index, alias=mark)])
    return index


def ensure_addresses(nl: rtnl.Rtnl, index: int, wanted: set[IPv4Interface]) -> None:
    have = set()
    for msg in nl.query(rtnl.addr_dump()):
        found, address, _label = rtnl.addr_info(msg)
        if found == index and address is not None:
            have.add(address)
    nl.batch([rtnl.addr_del(index, i.ip, i.network.prefixlen) for i in have - wanted]
             + [rtnl.addr_add(index, i.ip, i.network.prefixlen) for i in wanted - have])


def ensure_routes(nl: rtnl.Rtnl, oif: int, wanted: dict[IPv4Network, IPv4Address]) -> None:
    """Routes via a gateway in the main table are exactly `wanted` (no default). The nodes' routes
    go through fabric/backends.py."""
    have: dict[IPv4Network, IPv4Address] = {}
    stale = []
    for route in map(rtnl.route_info, nl.query(rtnl.route_dump())):
        if route.table != rtnl.MAIN_TABLE or route.gateway is None:
            continue  # connected routes belong to the kernel
        if route.dst in wanted and route.oif == oif:
            have[route.dst] = route.gateway
        else:
            stale.append(rtnl.route_del(route.dst, route.gateway))
    nl.batch(stale + [rtnl.route_add(dst, via, oif, replace=True)
                      for dst, via in wanted.items() if have.get(dst) != via])


def write_sysctls(values: dict[str, str]) -> None:
    """Written by the calling thread, which must be inside the target namespace: /proc/sys/net
    shows the namespace of the thread that opens it."""
    for key, value in values.items():
        path = f"/proc/sys/{key}"
        try:
            with open(path) as f:
                if f.read().strip() == value:
                    continue
            with open(path, "w") as f:
                f.write(value)
        except FileNotFoundError:
            if "/bridge/" not in path:
                raise
            raise EnvironmentProblem(checks.bridge_netfilter_problem() or f"{path} is missing") from None


def ensure_base(plan: Plan) -> None:
    """The underlay namespace and its bridge."""
    mark = naming.mark(plan.lab)
    netns.prepare_run_dir()
    netns.ensure(plan.underlay_netns)
    with socket_in(plan.underlay_netns) as nl:
        nl.batch([rtnl.link_set(1, alias=mark)])
        _ensure_bridge(nl, plan.underlay_bridge, mark)


def ensure_uplink(under: rtnl.Rtnl, bridge: int, nl: rtnl.Rtnl, netns_name: str, underlay_veth: str,
                  mark: str) -> int:
    """A namespace's veth pair to the underlay bridge, made from the underlay side with the peer
    created directly in the namespace as eth0; a half pair is removed and made again. Both ends
    carry the mark and eth0 is up. Returns eth0's index."""
    uplink, eth0 = link_index(under, underlay_veth), link_index(nl, ETH0)
    if (uplink is None) != (eth0 is None):
        if uplink is not None:
            under.batch([rtnl.link_del(uplink)])
        else:
            nl.batch([rtnl.link_del(eth0)])
        uplink = eth0 = None
    if uplink is None:
        fd = os.open(netns_path(netns_name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            under.batch([rtnl.veth_add(underlay_veth, ETH0, fd, master=bridge)])
        finally:
            os.close(fd)
        uplink, eth0 = link_index(under, underlay_veth), link_index(nl, ETH0)
    under.batch([rtnl.link_set(uplink, master=bridge, alias=mark)])
    nl.batch([rtnl.link_set(eth0, alias=mark)])  # up before routes via it
    return eth0


def _pod_prefixlen(network: dataplane.NodeNetwork, node: PlannedNode) -> int:
    """The prefix of cbr0's and the pods' addresses: the node's podCIDR, or the backend's subnet."""
    return (network.pod_network or node.pod_cidr).prefixlen


def _ensure_node(nl: rtnl.Rtnl, under: rtnl.Rtnl, bridge: int, node: PlannedNode, plan: Plan, mark: str) -> None:
    network = dataplane.node_network(plan, node)
    nl.batch([rtnl.link_set(1, alias=mark)])
    cbr0 = _ensure_bridge(nl, NODE_BRIDGE, mark)
    ensure_addresses(nl, cbr0, {IPv4Interface((node.gateway, _pod_prefixlen(network, node)))})
    eth0 = ensure_uplink(under, bridge, nl, node.netns, node.underlay_veth, mark)
    ensure_addresses(nl, eth0, {IPv4Interface((node.ip, plan.cluster.node_subnet.prefixlen))})
    backends.ensure_network(nl, network, dataplane.node_routes(plan, node), mark, dataplane.DEVICES)


def ensure_nodes(plan: Plan) -> None:
    """Node namespaces, their uplinks, addresses, routes and sysctls; idempotent, and the routes
    of every node follow the current set of nodes. One socket per namespace for the call."""
    mark = naming.mark(plan.lab)
    netns.prepare_run_dir()
    with contextlib.ExitStack() as stack:
        under = stack.enter_context(socket_in(plan.underlay_netns))
        bridge = link_index(under, plan.underlay_bridge)
        if bridge is None:
            raise LabError(f"{plan.underlay_netns} has no {plan.underlay_bridge} (ensure_base first)")
        for node in plan.nodes:
            netns.ensure(node.netns)
            with in_netns(node.netns):
                write_sysctls({**NODE_SYSCTLS, **proxy_sysctls(plan.cluster.kube_proxy_mode)})
                nl = stack.enter_context(rtnl.Rtnl())
            try:
                _ensure_node(nl, under, bridge, node, plan, mark)
            except OSError as e:
                raise LabError(f"setting up node {node.name} ({node.netns}): {e.strerror or e}") from e


# --- pods (rtnl, batched, optionally split over forked workers) -------------------------------


def _wire_pod(node_nl: rtnl.Rtnl, bridge: int, node: PlannedNode, pod: PlannedPod, mark: str,
              prefixlen: int, mtu: int | None) -> None:
    """Namespace, veth (peer made directly in the pod, both ends with the backend's MTU), hairpin,
    address, default route: two batches, one on the node's socket and one on a socket opened
    inside the new pod."""
    with netns.created(pod.netns):
        pod_nl = rtnl.Rtnl()
        try:
            pod_fd = os.open(netns.THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            pod_nl.close()  # an open socket would keep the namespace alive after rollback
            raise
    try:
        node_nl.batch([
            rtnl.veth_add(pod.host_veth, ETH0, pod_fd, master=bridge, mtu=mtu),
            rtnl.link_set(name=pod.host_veth, alias=mark, hairpin=True),
        ])
        pod_nl.batch([
            rtnl.link_set(index=1, alias=mark),
            rtnl.link_set(index=POD_ETH0_INDEX, alias=mark),  # up before the route
            rtnl.addr_add(POD_ETH0_INDEX, pod.ip, prefixlen),
            rtnl.route_add(IPv4Network("0.0.0.0/0"), node.gateway, POD_ETH0_INDEX),
        ])
    finally:
        os.close(pod_fd)
        pod_nl.close()


def _wire_node_pods(plan: Plan, node: PlannedNode, pods: Sequence[PlannedPod]) -> None:
    mark = naming.mark(plan.lab)
    iface = wiring.node_interface(plan, node)  # the pods' prefix and MTU, the same as with cni wiring
    # host-gw's pods keep the kernel's default MTU (the same requests as before backends)
    mtu = iface.mtu if iface.mtu != UNDERLAY_MTU else None
    if not netns.exists(node.netns):
        raise LabError(f"node namespace {node.netns} is missing (ensure_nodes first)")
    with in_netns(node.netns):
        node_nl = rtnl.Rtnl()
    with node_nl:
        found = node_nl.link(name=NODE_BRIDGE)
        if found is None:
            raise LabError(f"{node.netns} has no {NODE_BRIDGE} (ensure_nodes first)")
        for pod in pods:
            try:
                _wire_pod(node_nl, found["index"], node, pod, mark, iface.subnet.prefixlen, mtu)
            except OSError as e:
                raise LabError(f"creating pod {pod.key} ({pod.netns}) on {node.name}: {e.strerror or e}") from e


def _wire(plan: Plan, pods: Sequence[PlannedPod]) -> None:
    by_node: dict[str, list[PlannedPod]] = defaultdict(list)
    for pod in pods:
        by_node[pod.node].append(pod)
    # networking.wiring: the lab's own veths here, or the CNI plugins (fabric/cni.py)
    wire = cni.wire_node_pods if plan.cluster.wiring == wiring.CNI else _wire_node_pods
    for node_name, group in by_node.items():
        wire(plan, plan.node(node_name), group)


def _chunks(pods: Sequence[PlannedPod], workers: int) -> list[list[PlannedPod]]:
    """Pods ordered by node, cut into `workers` runs of near-equal length."""
    count = max(1, min(workers, len(pods) // MIN_PODS_PER_WORKER))
    ordered = sorted(pods, key=lambda p: p.node)
    size, extra = divmod(len(ordered), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        out.append(ordered[start:end])
        start = end
    return out


def _fork_worker(plan: Plan, pods: Sequence[PlannedPod]) -> tuple[int, int]:
    """A child that wires `pods` and reports a failure as text on a pipe. It dies with its parent:
    an `up` killed with -9 stops building at once (the intent journal names what it may have
    made), and until the child is gone it holds the lab's lock, inherited, so `down` waits for it."""
    read, write = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child: never return into the caller's code
        status = 0
        try:
            os.close(read)
            die_with_parent()
            if os.getppid() != parent:  # it died before prctl took effect
                raise LabError("the parent process is gone")
            _wire(plan, pods)
        except BaseException as e:  # noqa: BLE001 - everything must reach the parent
            status = 1
            with contextlib.suppress(BaseException):
                os.write(write, str(e).encode()[:4000] or type(e).__name__.encode())
        finally:
            os._exit(status)
    os.close(write)
    return pid, read


def _join(pid: int, read: int) -> str | None:
    try:
        message = b""
        while chunk := os.read(read, 4096):
            message += chunk
    finally:
        os.close(read)
    _pid, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return message.decode(errors="replace") or f"worker {pid} failed with status {status}"


def create_pods(plan: Plan, pods: Sequence[PlannedPod], workers: int = 2) -> None:
    """Namespaces and wiring for new pods (hostNetwork pods need nothing). The pods are split
    by node over `workers` processes (the parent is one of them) when there are enough; on any
    failure every namespace of `pods` is removed again and LabError raised."""
    pods = [p for p in pods if not p.host_network]
    if not pods:
        return
    taken = [p.netns for p in pods if os.path.lexists(netns_path(p.netns))]
    if taken:
        raise LabError(f"pod namespaces already exist: {', '.join(taken)}")
    netns.prepare_run_dir()
    if plan.cluster.wiring == wiring.CNI:
        cni.prepare_nodes(plan, (p.node for p in pods))
    first, *rest = _chunks(pods, workers)
    children = [_fork_worker(plan, chunk) for chunk in rest]
    errors = []
    try:
        _wire(plan, first)
    except (LabError, OSError) as e:
        errors.append(str(e))
    finally:
        errors += [e for e in (_join(pid, read) for pid, read in children) if e]
    if errors:
        if plan.cluster.wiring == wiring.CNI:
            cni.delete_pods(plan, pods)  # DEL while the namespaces are there: the plugins' leases go
        delete_namespaces(p.netns for p in pods)
        raise LabError("; ".join(errors))


# --- removal ------------------------------------------------------------------------------------


def release_host_veths(plan: Plan, pods: Iterable[PlannedPod]) -> None:
    """Delete the node ends of `pods`' veths now, for pods about to be made anew under the same
    name: the kernel frees a removed namespace (and so its veths) a little later, and until
    then the node still holds the old veth's name. 16 ms a veth: only for replaced pods."""
    by_node: dict[str, list[str]] = defaultdict(list)
    for pod in pods:
        if pod.host_veth:
            by_node[plan.node(pod.node).netns].append(pod.host_veth)
    for node_netns, veths in by_node.items():
        if not netns.exists(node_netns):
            continue
        with socket_in(node_netns) as nl:
            found = [i for i in (link_index(nl, v) for v in veths) if i is not None]
            nl.batch([rtnl.link_del(i) for i in found])


def delete_namespaces(names: Iterable[str]) -> None:
    """Stop every process inside, then unbind the names. The kernel then frees each namespace
    with its veths, batched (never delete veths one by one: 16 ms each). Tolerates names that
    are already gone."""
    names = list(names)
    pids = [pid for found in procs.processes_in(names).values() for pid in found]
    if pids:
        procs.kill(pids)
    for name in names:
        netns.remove(name)
