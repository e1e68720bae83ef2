"""The lab as a minimal container runtime: each pod wired by the reference CNI plugins.

The pure half of the contract (the conflists, each call's stdin and environment, the results) is
dataplane/wiring/cni.py; this runs the plugin binaries. Every plugin runs as a process inside
the pod's node namespace (CNI_NETNS names the pod's namespace, CNI_IFNAME eth0, CNI_CONTAINERID
the pod's sandbox ID, as proxy/portmap.py derives it), so whatever a plugin makes on the node
side (the bridge's veth, portmap's rules) lives in a namespace `down` removes whole, and the
plugins' own state (host-local's leases, the runtime's result cache) lives under the lab's
state directory, which `down` removes too: nothing is written to the host's /var/lib/cni.

ADD runs the loopback network then the pod network's list; its final result is cached per pod
(as libcni caches it) for DEL, which runs the list in reverse with that result, and for CHECK
(`kubenet-lab check`). After ADD the runtime does what the lab's own wiring does: the pod's
links carry the ownership mark, and the node's end of the veth takes the plan's name (the
bridge plugin names it veth<random>), which the cached result then names, so that `describe`,
`trace` and CHECK find it.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from typing import Any, Iterable, Mapping

from ..dataplane import wiring
from ..dataplane.backends.base import NODE_BRIDGE
from ..dataplane.wiring import cni
from ..errors import EnvironmentProblem, InputError, LabError
from ..kernel import netns, rtnl
from ..kernel.nsenter import in_netns, netns_path
from ..model.objects import Plan, PlannedNode, PlannedPod
from ..plan import naming
from ..proxy import portmap
from . import state

PATH_ENV = "KUBENET_LAB_CNI_PATH"
DEFAULT_PATH = "/usr/lib/cni:/opt/cni/bin"  # Debian's containernetworking-plugins, then the upstream place
CALL_TIMEOUT = 60.0
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def cni_path() -> str:
    return os.environ.get(PATH_ENV, DEFAULT_PATH)


def available(path: str | None = None) -> dict[str, str]:
    """Plugin name -> binary, over CNI_PATH's directories (the first wins, as libcni's FindInPath)."""
    found: dict[str, str] = {}
    for directory in (path or cni_path()).split(":"):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            full = os.path.join(directory, name)
            if name not in found and os.path.isfile(full) and os.access(full, os.X_OK):
                found[name] = full
    return found


def state_root(lab: str) -> str:
    return os.path.join(state.state_dir(lab), "cni")


def _cache_path(lab: str, network: str, container_id: str) -> str:
    return os.path.join(state_root(lab), "results", f"{network}-{container_id}-{wiring.POD_IFNAME}.json")


def user_conflist(plan: Plan) -> cni.Conflist | None:
    """The Cluster's networking.cniConfig, read and checked; InputError (file:line, path) when the
    lab cannot use it, EnvironmentProblem when no plugins are installed."""
    path = plan.cluster.cni_config
    plugins = _plugins()
    if path is None:
        return None
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise InputError(f"networking.cniConfig: cannot read {path}: {e.strerror or e}") from None
    try:
        return cni.parse_conflist(text, path, plugins, cni_path())
    except cni.ConfigError as e:
        raise InputError(f"networking.cniConfig: {e}") from None


def _plugins() -> dict[str, str]:
    plugins = available()
    missing = [p for p in ("bridge", "host-local", "loopback") if p not in plugins]
    if missing:
        raise EnvironmentProblem(f"wiring cni needs the CNI reference plugins ({', '.join(missing)} not found in "
                                 f"{cni_path()}): install containernetworking-plugins (./setup.sh does)")
    return plugins


def validate(plan: Plan) -> None:
    """Before `up` changes anything: the plugins are there and a user's conflist is usable."""
    if plan.cluster.wiring == wiring.CNI:
        _plugins()
        user_conflist(plan)


def conflist(plan: Plan, node: PlannedNode, user: cni.Conflist | None = None) -> cni.Conflist:
    """What a pod on `node` is wired with: the user's list, or the lab's for the node; their
    state directories under the lab's."""
    if user is None:
        user = user_conflist(plan)
    if user is None:
        user = cni.lab_conflist(wiring.node_interface(plan, node), NODE_BRIDGE, with_portmap=True)
    return cni.with_state_dirs(user, state_root(plan.lab))


def maps_host_ports(plan: Plan) -> bool:
    """Whether the plugins map the pods' host ports (portmap in the list): then the lab's own
    hostPort rules (proxy/portmap.py) stay out of every node."""
    if plan.cluster.wiring != wiring.CNI:
        return False
    if plan.cluster.cni_config is None:
        return True  # the lab's list ends with portmap
    try:
        user = user_conflist(plan)
    except (InputError, EnvironmentProblem):  # changed since `up` checked it: the list the pods were wired with
        cached = _cache_files(plan.lab, "")
        user = _cached_conflist(cached[0]) if cached else None
    return user is not None and cni.uses_portmap(user)


def _cached_conflist(path: str) -> cni.Conflist | None:
    try:
        with open(path) as f:
            return cni.Conflist.from_json(json.load(f)["config"])
    except (OSError, ValueError, KeyError):
        return None


# --- one call ------------------------------------------------------------------------------------


def _call(node: PlannedNode, plugin: Mapping[str, Any], command: str, net: cni.Conflist, env: dict[str, str],
          runtime: cni.RuntimeConfig, prev: Mapping[str, Any] | None, binaries: Mapping[str, str]) -> bytes:
    kind = plugin["type"]
    binary = binaries.get(kind)
    if binary is None:
        raise cni.PluginError(f"CNI plugin {kind} {command} failed: no {kind} in CNI_PATH {cni_path()}")
    stdin = cni.plugin_stdin(net, plugin, runtime, prev)
    with in_netns(node.netns):  # the child is born in the node's namespace
        try:
            proc = subprocess.run([binary], input=stdin, env={**env, "CNI_COMMAND": command}, capture_output=True,
                                  timeout=CALL_TIMEOUT, close_fds=True)
        except subprocess.TimeoutExpired:
            raise cni.PluginError(f"CNI plugin {kind} {command} did not answer in {CALL_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        raise cni.plugin_failure(kind, command, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def _run_list(node: PlannedNode, net: cni.Conflist, command: str, env: dict[str, str], runtime: cni.RuntimeConfig,
              cached: Mapping[str, Any] | None, binaries: Mapping[str, str]) -> dict[str, Any] | None:
    """ADD (in order, each plugin given the previous one's result), CHECK (in order) or DEL (in
    reverse), the last two with the cached result; the first error halts (SPEC.md section 3)."""
    if command == "ADD":
        prev: dict[str, Any] | None = None
        for plugin in net.plugins:
            prev = cni.parse_result(plugin["type"], _call(node, plugin, "ADD", net, env, runtime, prev, binaries))
        return prev
    for plugin in reversed(net.plugins) if command == "DEL" else net.plugins:
        _call(node, plugin, command, net, env, runtime, cached, binaries)
    return None


def _runtime(iface: wiring.PodInterface, pod: PlannedPod) -> cni.RuntimeConfig:
    return cni.RuntimeConfig(ips=(iface.address,), port_mappings=tuple(
        cni.PortMapping(m.host_port, m.container_port, m.protocol, m.host_ip) for m in portmap.mappings(pod)))


def _env(command: str, pod: PlannedPod, cid: str, lab: str, ifname: str = wiring.POD_IFNAME) -> dict[str, str]:
    return cni.environment(command, cid, netns_path(pod.netns), cni_path(), tools_dir(lab), ifname,
                           cni.pod_args(pod.namespace, pod.name, cid))


def tools_dir(lab: str) -> str:
    """The plugins' PATH: a directory of the lab's state holding links to the IPv4 tools alone
    (dataplane/wiring/cni.TOOLS), made on first use."""
    path = os.path.join(state_root(lab), "tools")
    os.makedirs(path, exist_ok=True)
    for tool in cni.TOOLS:
        link = os.path.join(path, tool)
        found = None if os.path.lexists(link) else shutil.which(tool, path=SYSTEM_PATH)
        if found:
            with contextlib.suppress(FileExistsError):  # a concurrent worker's
                os.symlink(found, link)
    return path


# --- the runtime's verbs -----------------------------------------------------------------------


def add_pod(plan: Plan, node: PlannedNode, pod: PlannedPod, user: cni.Conflist | None = None) -> None:
    """Create the pod's namespace and wire it: loopback, then the network's ADD; on failure the
    plugins' DEL undoes what they made (the caller removes the namespace) and LabError says what
    the plugin said."""
    mark, cid = naming.mark(plan.lab), portmap.container_id(pod)
    net = conflist(plan, node, user)
    iface = wiring.pod_interface(plan, node, pod)
    runtime, binaries = _runtime(iface, pod), available()
    with netns.created(pod.netns):
        with rtnl.Rtnl() as nl:
            nl.batch([rtnl.link_set(index=1, alias=mark)])
    loop, env = cni.loopback_conflist(), _env("ADD", pod, cid, plan.lab)
    result = None
    try:
        _run_list(node, loop, "ADD", _env("ADD", pod, cid, plan.lab, "lo"), cni.RuntimeConfig(), None, binaries)
        result = _run_list(node, net, "ADD", env, runtime, None, binaries)
        assert result is not None
        wrong = cni.mismatch(cni.read_result(result), iface)
        if wrong:
            raise cni.PluginError(f"{net.source}: {wrong}")
        result = _adopt(node, pod, result, mark, iface.mtu, net.source)
    except (cni.PluginError, OSError) as e:
        try:
            _run_list(node, net, "DEL", env, runtime, result, binaries)
        except cni.PluginError:
            pass  # the plugin's first error is the one to report
        raise LabError(f"wiring pod {pod.key} on {node.name} with CNI: {e}") from None
    path = _cache_path(plan.lab, net.name, cid)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    state.write_atomic(path, json.dumps({"kind": "cniCacheV1", "containerId": cid, "ifName": wiring.POD_IFNAME,
                                         "networkName": net.name, "netns": netns_path(pod.netns), "pod": pod.key,
                                         "node": node.name,
                                         "config": net.to_json(), "result": result}, sort_keys=True))


def prepare_nodes(plan: Plan, nodes: Iterable[str]) -> None:
    """Before pods are wired on `nodes` (by create_pods, before it forks its workers): each cbr0's
    fixed MAC, and the DEL owed to pods gone without one."""
    for name in sorted(set(nodes)):
        node = plan.node(name)
        if not netns.exists(node.netns):
            raise LabError(f"node namespace {node.netns} is missing (ensure_nodes first)")
        _pin_bridge_mac(node)
        release_gone(plan, node)


def wire_node_pods(plan: Plan, node: PlannedNode, pods: Iterable[PlannedPod]) -> None:
    """add_pod for each of `pods` on `node` (fabric/netlink.py's create_pods calls it for wiring
    cni, in place of its own veths, after prepare_nodes, and removes every namespace again on
    failure)."""
    if not netns.exists(node.netns):
        raise LabError(f"node namespace {node.netns} is missing (ensure_nodes first)")
    user = user_conflist(plan)
    for pod in pods:
        add_pod(plan, node, pod, user)


def _pin_bridge_mac(node: PlannedNode) -> None:
    """cbr0 gets its fixed MAC (dataplane/wiring.bridge_mac), so that it stays what the bridge
    plugin's results record."""
    mac = wiring.bridge_mac(node)
    with in_netns(node.netns):
        nl = rtnl.Rtnl()
    with nl:
        bridge = nl.link(name=NODE_BRIDGE)
        if bridge is None:
            raise LabError(f"{node.netns} has no {NODE_BRIDGE} (ensure_nodes first)")
        if bridge.get_attr("IFLA_ADDRESS") != mac:
            nl.batch([rtnl.link_address(bridge["index"], mac)])


def release_gone(plan: Plan, node: PlannedNode) -> list[str]:
    """DEL for every pod wired on `node` whose namespace is gone without one (a failed `up`
    undone, a crash): what the plugins keep for it (host-local's lease of its address) is freed
    before that address is asked for again. As a runtime's garbage collection; a DEL with a
    namespace that no longer exists is one the plugins must accept (SPEC.md)."""
    errors = []
    binaries = available()
    for path in _cache_files(plan.lab, ""):
        try:
            with open(path) as f:
                cached = json.load(f)
        except (OSError, ValueError):
            continue
        if cached.get("node") != node.name or os.path.lexists(cached.get("netns", "")):
            continue
        net = cni.Conflist.from_json(cached["config"])
        env = cni.environment("DEL", cached["containerId"], cached["netns"], cni_path(), tools_dir(plan.lab))
        try:
            _run_list(node, net, "DEL", env, cni.RuntimeConfig(), cached["result"], binaries)
        except cni.PluginError as e:
            errors.append(f"{cached.get('pod')}: {e}")
            continue
        try:
            os.unlink(path)
        except OSError:
            pass
    return errors


def _adopt(node: PlannedNode, pod: PlannedPod, result: dict[str, Any], mark: str, mtu: int,
           source: str) -> dict[str, Any]:
    """The pod's links marked as the lab's, and the node's end of its veth (the result's interface
    with no sandbox on the node's bridge) renamed to the plan's name: the result, renamed too.
    The pod's eth0 must have the backend's MTU (a list for vxlan or l2 must say so)."""
    with in_netns(pod.netns):
        with rtnl.Rtnl() as nl:
            found = nl.link(name=wiring.POD_IFNAME)
            if found is None:
                raise cni.PluginError(f"{source}: the plugins made no {wiring.POD_IFNAME} in the pod")
            if found.get_attr("IFLA_MTU") != mtu:
                raise cni.PluginError(f"{source}: the pod's {wiring.POD_IFNAME} has MTU {found.get_attr('IFLA_MTU')}, "
                                      f"the backend's is {mtu} (give the bridge plugin \"mtu\": {mtu})")
            nl.batch([rtnl.link_set(index=found["index"], alias=mark)])
    interfaces = result.get("interfaces") or []
    host = [i for i, x in enumerate(interfaces) if isinstance(x, dict) and not x.get("sandbox")
            and x.get("name") not in (NODE_BRIDGE, None) and str(x.get("name")).startswith("veth")]
    if not host or not pod.host_veth:
        return result
    index, old = host[0], interfaces[host[0]]["name"]
    with in_netns(node.netns):
        with rtnl.Rtnl() as nl:
            link = nl.link(name=old)
            if link is None:
                return result
            taken = nl.link(name=pod.host_veth)
            if taken is not None and taken.get_attr("IFLA_IFALIAS") == mark:
                # the node's end of this pod's previous veth, kept by whatever still held its
                # namespace: the name is the plan's for this pod alone
                nl.batch([rtnl.link_del(taken["index"])])
            nl.batch([rtnl.link_down(link["index"])])
            nl.batch([rtnl.link_rename(link["index"], pod.host_veth)])
            nl.batch([rtnl.link_set(index=link["index"], alias=mark)])
    renamed = [dict(x) for x in interfaces]
    renamed[index]["name"] = pod.host_veth
    return {**result, "interfaces": renamed}


def _cached(lab: str, pod: PlannedPod) -> dict[str, Any] | None:
    path = _cache_path(lab, cni.NETWORK, portmap.container_id(pod))
    for candidate in [path, *_cache_files(lab, portmap.container_id(pod))]:
        try:
            with open(candidate) as f:
                return dict(json.load(f), path=candidate)
        except (OSError, ValueError):
            continue
    return None


def _cache_files(lab: str, cid: str) -> list[str]:
    root = os.path.join(state_root(lab), "results")
    try:
        return [os.path.join(root, n) for n in sorted(os.listdir(root)) if f"-{cid}" in n and n.endswith(".json")]
    except OSError:
        return []


def delete_pods(plan: Plan, pods: Iterable[PlannedPod]) -> list[str]:
    """DEL for each pod the plugins wired, while its namespace still exists (before it goes), with
    the cached list and result; the cache entry goes. -> the plugins' errors (the namespaces go
    anyway: what the plugins made on the node side goes with the veth, their leases with DEL)."""
    errors = []
    binaries = available()
    for pod in pods:
        if pod.host_network:
            continue
        cached = _cached(plan.lab, pod)
        if cached is None:
            continue
        net = cni.Conflist.from_json(cached["config"])
        node = plan.node(pod.node) if any(n.name == pod.node for n in plan.nodes) else None
        cid = cached["containerId"]
        try:
            if node is not None and netns.exists(node.netns):
                iface = wiring.pod_interface(plan, node, pod)
                _run_list(node, net, "DEL", _env("DEL", pod, cid, plan.lab), _runtime(iface, pod), cached["result"],
                          binaries)
                _run_list(node, cni.loopback_conflist(), "DEL", _env("DEL", pod, cid, plan.lab, "lo"),
                          cni.RuntimeConfig(), None, binaries)
        except cni.PluginError as e:
            errors.append(f"pod {pod.key}: {e}")
        try:
            os.unlink(cached["path"])
        except OSError:
            pass
    return errors


def check_pod(plan: Plan, pod: PlannedPod) -> str | None:
    """CHECK of a pod's network with its cached result: None when the plugins find it as they
    made it, else what they said."""
    cached = _cached(plan.lab, pod)
    if cached is None:
        return f"pod {pod.key}: no cached CNI result (was it wired with CNI?)"
    net = cni.Conflist.from_json(cached["config"])
    if not net.has_check:
        return None
    node = plan.node(pod.node)
    iface = wiring.pod_interface(plan, node, pod)
    try:
        _run_list(node, net, "CHECK", _env("CHECK", pod, cached["containerId"], plan.lab), _runtime(iface, pod),
                  cached["result"], available())
    except cni.PluginError as e:
        return f"pod {pod.key}: {e}"
    return None
