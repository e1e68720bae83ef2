"""The CNI 1.0 contract as a container runtime keeps it, pure: no process runs here.

What a runtime hands the plugins (containernetworking/cni SPEC.md, "Execution Protocol" and
"Execution of Network Configurations"): a network configuration list (a "conflist") whose plugins
run in order for ADD and CHECK and in reverse for DEL; each plugin reads one configuration on its
standard input (the plugin's entry with the list's `name` and `cniVersion`, `runtimeConfig` for
the capabilities it declares, and `prevResult`: the previous plugin's result during ADD, the
cached final result during CHECK and DEL) and its parameters from the environment (CNI_COMMAND,
CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH); it answers a result, or an error
`{"code", "msg", "details"}` with a non-zero exit.

Here: the lab's own conflist for a node (bridge on cbr0 with host-local IPAM on the pod's subnet,
then portmap), a user's conflist read and checked with file:line and the field's path, the stdin
and environment of each call, and the result read back and checked against the plan's address.
fabric/cni.py runs the binaries.

State the plugins keep (host-local's dataDir, tuning's dataDir) is pointed into the lab's state
directory whatever a conflist says: never the host's /var/lib/cni or /run/cni.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import Any, Collection, Mapping, Sequence

from .base import POD_IFNAME, PodInterface

CNI_VERSION = "1.0.0"
# The versions the reference plugins of containernetworking-plugins 1.1 speak.
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
CHECK_SINCE = "0.4.0"  # CHECK came with 0.4.0; earlier lists have none
NETWORK = "kubenet"  # the lab's network's name (proxy/portmap.py's, kubelet's kubenet)
LOOPBACK_NETWORK = "cni-loopback"  # containerd's separate network for lo
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")  # SPEC.md: a network's name, a plugin's type
# IPAM plugins that need a daemon or a host file the lab does not run or own.
REFUSED_IPAM = {"dhcp": "needs the CNI dhcp daemon on the host (its socket in /run/cni), which the lab does not run"}


class ConfigError(ValueError):
    """A conflist the lab cannot use: `where` is file:line, `path` the field (plugins[1].type)."""

    def __init__(self, where: str, path: str, message: str):
        super().__init__(f"{where}: {path + ': ' if path else ''}{message}")
        self.where, self.path, self.message = where, path, message


class PluginError(RuntimeError):
    """A plugin's own error: its JSON error's msg and details (or what it printed)."""


@dataclass(frozen=True)
class Conflist:
    """A network configuration list: its name, version, plugins (each the JSON object as given)."""
    name: str
    cni_version: str
    plugins: tuple[Mapping[str, Any], ...]
    disable_check: bool = False
    source: str = "(generated)"

    def to_json(self) -> dict[str, Any]:
        return {"cniVersion": self.cni_version, "name": self.name, "disableCheck": self.disable_check,
                "plugins": [dict(p) for p in self.plugins]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "(cached)") -> "Conflist":
        return cls(data["name"], data["cniVersion"], tuple(data["plugins"]), bool(data.get("disableCheck")), source)

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(p["type"] for p in self.plugins)

    @property
    def has_check(self) -> bool:
        return not self.disable_check and _version(self.cni_version) >= _version(CHECK_SINCE)


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


# --- the lab's own conflist ------------------------------------------------------------------------


def lab_conflist(iface: PodInterface, bridge: str, with_portmap: bool) -> Conflist:
    """The lab's network for a node: the bridge plugin on the node's `bridge` (cbr0, its address
    the gateway, as the lab's netlink wiring has it), hairpin on (a pod reaching itself through a
    Service), the backend's MTU, the default route via the gateway; host-local IPAM on the pod's
    subnet, told the plan's address through the `ips` capability; then portmap for hostPort."""
    ipam = {"type": "host-local", "ranges": [[{"subnet": str(iface.subnet), "gateway": str(iface.gateway)}]]}
    plugins: list[dict[str, Any]] = [{
        "type": "bridge", "bridge": bridge, "isGateway": True, "isDefaultGateway": True, "hairpinMode": True,
        "mtu": iface.mtu, "capabilities": {"ips": True}, "ipam": ipam}]
    if with_portmap:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True})
    return Conflist(NETWORK, CNI_VERSION, tuple(plugins))


def loopback_conflist() -> Conflist:
    """The pod's `lo`, brought up by the loopback plugin as its own network (as containerd does)."""
    return Conflist(LOOPBACK_NETWORK, CNI_VERSION, ({"type": "loopback"},))


def with_state_dirs(conflist: Conflist, data_dir: str) -> Conflist:
    """The conflist with every plugin state directory under `data_dir` (host-local's IPAM leases
    in <data_dir>/networks, tuning's saved settings in <data_dir>/tuning), whatever it said."""
    plugins = []
    for plugin in conflist.plugins:
        p = copy.deepcopy(dict(plugin))
        ipam = p.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type") == "host-local":
            ipam["dataDir"] = f"{data_dir}/networks"
        if p.get("type") == "tuning":
            p["dataDir"] = f"{data_dir}/tuning"
        plugins.append(p)
    return Conflist(conflist.name, conflist.cni_version, tuple(plugins), conflist.disable_check, conflist.source)


def uses_portmap(conflist: Conflist) -> bool:
    """Whether the list maps host ports itself (a plugin declaring the portMappings capability):
    then the lab's own hostPort rules must stay out of the node (never both)."""
    return any(_capabilities(p).get("portMappings") for p in conflist.plugins)


# --- a user's conflist: read with the place of every value ---------------------------------------


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _located(text: str) -> tuple[Any, dict[str, int]]:
    """JSON `text` parsed, and the line of every value by its path ("plugins[1].type")."""
    lines: dict[str, int] = {}

    def line_at(i: int) -> int:
        return text.count("\n", 0, i) + 1

    def value(i: int, path: str) -> tuple[Any, int]:
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        lines[path] = line_at(i)
        if i < len(text) and text[i] == "{":
            out: dict[str, Any] = {}
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
            if i < len(text) and text[i] == "}":
                return out, i + 1
            while True:
                i = _WS.match(text, i).end()  # type: ignore[union-attr]
                key, i = _DECODER.raw_decode(text, i) if i < len(text) and text[i] == '"' else _fail(text, i)
                i = _WS.match(text, i).end()  # type: ignore[union-attr]
                if i >= len(text) or text[i] != ":":
                    _fail(text, i)
                out[key], i = value(i + 1, f"{path}.{key}" if path else key)
                i = _WS.match(text, i).end()  # type: ignore[union-attr]
                if i < len(text) and text[i] == ",":
                    i += 1
                elif i < len(text) and text[i] == "}":
                    return out, i + 1
                else:
                    _fail(text, i)
        if i < len(text) and text[i] == "[":
            items: list[Any] = []
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
            if i < len(text) and text[i] == "]":
                return items, i + 1
            while True:
                item, i = value(i, f"{path}[{len(items)}]")
                items.append(item)
                i = _WS.match(text, i).end()  # type: ignore[union-attr]
                if i < len(text) and text[i] == ",":
                    i += 1
                elif i < len(text) and text[i] == "]":
                    return items, i + 1
                else:
                    _fail(text, i)
        if i < len(text) and text[i] in "{[":
            _fail(text, i)
        return _DECODER.raw_decode(text, i)

    json.loads(text)  # the standard parser's message and place for anything malformed
    parsed, _end = value(0, "")
    return parsed, lines


def _fail(text: str, i: int) -> Any:
    """Not reached for text json.loads took; a guard should the two parsers ever disagree."""
    raise json.JSONDecodeError("unexpected character", text, i)


def parse_conflist(text: str, source: str, available: Collection[str], cni_path: str) -> Conflist:
    """A user's conflist (or a single network configuration, taken as a list of one), checked as
    libcni checks it and for what the lab needs: every plugin's binary in `available` (the names
    in `cni_path`), no IPAM that needs the host. Raises ConfigError naming file:line and path."""
    try:
        data, lines = _located(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source}:{e.lineno}", "", f"not valid JSON: {e.msg} (column {e.colno})") from None

    def err(path: str, message: str) -> ConfigError:
        return ConfigError(f"{source}:{lines.get(path, lines.get('', 1))}", path, message)

    if not isinstance(data, dict):
        raise err("", "expected a network configuration list (a JSON object with cniVersion, name and plugins)")
    for key in ("cniVersion", "name"):
        if not isinstance(data.get(key), str):
            raise err(key if key in data else "", f"{'expected a string' if key in data else 'missing ' + key}")
    offered = data.get("cniVersions", [])
    if not isinstance(offered, list) or not all(isinstance(v, str) for v in offered):
        raise err("cniVersions", "expected a list of version strings")
    # SPEC.md "Version considerations": the highest of cniVersion and cniVersions the runtime supports
    usable = [v for v in SUPPORTED_VERSIONS if v in {data["cniVersion"], *offered}]
    if not usable:
        given = ", ".join(dict.fromkeys([data["cniVersion"], *offered]))
        raise err("cniVersions" if offered else "cniVersion",
                  f"unsupported version {given}: the plugins speak {', '.join(SUPPORTED_VERSIONS)}")
    version = usable[-1]
    if not NAME_RE.match(data["name"]):
        raise err("name", f"invalid network name {data['name']!r}: letters, digits, '_', '.' and '-' only")
    if "plugins" in data:
        plugins, prefix = data["plugins"], "plugins"
        if not isinstance(plugins, list) or not plugins:
            raise err("plugins", "expected a non-empty list of plugin configurations")
    elif "type" in data:  # a single network configuration (a .conf): libcni's ConfListFromConf
        plugins, prefix = [{k: v for k, v in data.items() if k not in ("cniVersion", "cniVersions", "name")}], ""
    else:
        raise err("", "missing plugins (a .conflist) or type (a single .conf)")
    if "disableCheck" in data and not isinstance(data["disableCheck"], bool):
        raise err("disableCheck", "expected true or false")
    for i, plugin in enumerate(plugins):
        at = f"{prefix}[{i}]" if prefix else ""
        _check_plugin(plugin, at, err, available, cni_path)
    return Conflist(data["name"], version, tuple(plugins), bool(data.get("disableCheck", False)), source)


def _check_plugin(plugin: Any, at: str, err: Any, available: Collection[str], cni_path: str) -> None:
    def sub(key: str) -> str:
        return f"{at}.{key}" if at else key

    if not isinstance(plugin, dict):
        raise err(at, "expected a plugin configuration (a JSON object with a type)")
    kind = plugin.get("type")
    if not isinstance(kind, str) or not kind:
        raise err(sub("type") if "type" in plugin else at, "missing the plugin's type" if "type" not in plugin
                  else "expected the plugin's name (a string)")
    if "/" in kind or "\\" in kind or kind in (".", ".."):
        raise err(sub("type"), f"invalid plugin type {kind!r}: the name of a binary in CNI_PATH, not a path")
    if kind not in available:
        raise err(sub("type"), f"no plugin {kind!r} in CNI_PATH {cni_path} (there: {', '.join(sorted(available))})")
    caps = plugin.get("capabilities", {})
    if not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values()):
        raise err(sub("capabilities"), "expected a map of capability names to true or false")
    ipam = plugin.get("ipam")
    if ipam is not None:
        if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str):
            raise err(sub("ipam"), "expected an IPAM configuration (a JSON object with a type)")
        if ipam["type"] in REFUSED_IPAM:
            raise err(sub("ipam.type"), f"{ipam['type']} {REFUSED_IPAM[ipam['type']]}")
        if ipam["type"] not in available:
            raise err(sub("ipam.type"), f"no IPAM plugin {ipam['type']!r} in CNI_PATH {cni_path}")


def _capabilities(plugin: Mapping[str, Any]) -> Mapping[str, bool]:
    caps = plugin.get("capabilities")
    return caps if isinstance(caps, dict) else {}


# --- one call ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortMapping:
    """runtimeConfig.portMappings' entry, as kubelet hands it to the runtime."""
    host_port: int
    container_port: int
    protocol: str  # "tcp" / "udp" / "sctp"
    host_ip: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hostPort": self.host_port, "containerPort": self.container_port,
                               "protocol": self.protocol}
        if self.host_ip:
            out["hostIP"] = self.host_ip
        return out


@dataclass(frozen=True)
class RuntimeConfig:
    """What the runtime offers to the plugins that declare the capability."""
    ips: tuple[IPv4Interface, ...] = ()
    port_mappings: tuple[PortMapping, ...] = ()

    def for_plugin(self, plugin: Mapping[str, Any]) -> dict[str, Any]:
        caps, out = _capabilities(plugin), dict[str, Any]()
        if caps.get("ips") and self.ips:
            out["ips"] = [str(i) for i in self.ips]
        if caps.get("portMappings") and self.port_mappings:
            out["portMappings"] = [m.to_json() for m in self.port_mappings]
        return out


def plugin_stdin(conflist: Conflist, plugin: Mapping[str, Any], runtime: RuntimeConfig,
                 prev_result: Mapping[str, Any] | None) -> bytes:
    """One plugin's configuration as the runtime writes it to its standard input."""
    config = {k: v for k, v in plugin.items() if k != "capabilities"}
    config.update(cniVersion=conflist.cni_version, name=conflist.name)
    runtime_config = runtime.for_plugin(plugin)
    if runtime_config:
        config["runtimeConfig"] = runtime_config
    if prev_result is not None:
        config["prevResult"] = dict(prev_result)
    return json.dumps(config, sort_keys=True).encode()


# The programs a plugin may run (portmap's and the bridge's ipMasq iptables), the IPv4 ones only:
# the lab is IPv4-only, and portmap before plugins 1.2 CHECKs IPv6 rules whenever ip6tables is
# found, which an IPv4 pod never gets (containernetworking/plugins#819), so CHECK always failed.
TOOLS = ("iptables", "iptables-save", "iptables-restore")


def environment(command: str, container_id: str, netns_path: str, cni_path: str, tools_path: str,
                ifname: str = POD_IFNAME, args: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """The CNI_* variables of one call, and PATH: `tools_path`, where only TOOLS are."""
    assert command in ("ADD", "DEL", "CHECK", "VERSION")
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns_path,
            "CNI_IFNAME": ifname, "CNI_ARGS": ";".join(f"{k}={v}" for k, v in args), "CNI_PATH": cni_path,
            "PATH": tools_path}


def pod_args(namespace: str, name: str, container_id: str) -> tuple[tuple[str, str], ...]:
    """CNI_ARGS as kubelet's runtimes set them (plugins ignore them: IgnoreUnknown=1)."""
    return (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", namespace), ("K8S_POD_NAME", name),
            ("K8S_POD_INFRA_CONTAINER_ID", container_id))


def plugin_failure(plugin: str, command: str, returncode: int, stdout: bytes, stderr: bytes) -> PluginError:
    """A failed call as the plugin told it: its JSON error's msg and details (SPEC.md "Error")."""
    try:
        error = json.loads(stdout)
    except ValueError:
        error = None
    if isinstance(error, dict) and isinstance(error.get("msg"), str):
        details = error.get("details")
        code = error.get("code")
        text = error["msg"] + (f": {details}" if details else "")
        return PluginError(f"CNI plugin {plugin} {command} failed: {text}"
                           + (f" (CNI error {code})" if code is not None else ""))
    said = (stderr or stdout).decode(errors="replace").strip() or f"exit status {returncode}"
    return PluginError(f"CNI plugin {plugin} {command} failed: {said}")


def parse_result(plugin: str, stdout: bytes) -> dict[str, Any]:
    """A plugin's ADD result (a JSON object)."""
    try:
        result = json.loads(stdout)
    except ValueError:
        raise PluginError(f"CNI plugin {plugin} ADD printed no JSON result: {stdout[:200]!r}") from None
    if not isinstance(result, dict):
        raise PluginError(f"CNI plugin {plugin} ADD printed {stdout[:200]!r}, not a result object")
    return result


@dataclass(frozen=True)
class Wired:
    """What a result says of the pod's interface."""
    addresses: tuple[IPv4Interface, ...] = ()
    gateways: tuple[str, ...] = ()
    sandbox_interfaces: tuple[str, ...] = ()


def read_result(result: Mapping[str, Any]) -> Wired:
    """The pod's addresses (those on an interface in the sandbox, or on no named interface) and
    gateways in a final result; both 1.0's and 0.3/0.4's `ips` (which add a `version`)."""
    interfaces = result.get("interfaces") or []
    inside = {i for i, iface in enumerate(interfaces) if isinstance(iface, dict) and iface.get("sandbox")}
    addresses, gateways = [], []
    for ip in result.get("ips") or []:
        if not isinstance(ip, dict) or "address" not in ip:
            continue
        index = ip.get("interface")
        if index is not None and inside and index not in inside:
            continue
        try:
            addresses.append(IPv4Interface(ip["address"]))
        except ValueError:
            continue  # an IPv6 address
        if ip.get("gateway"):
            gateways.append(str(ip["gateway"]))
    names = tuple(str(interfaces[i].get("name")) for i in sorted(inside))
    return Wired(tuple(addresses), tuple(gateways), names)


def mismatch(wired: Wired, want: PodInterface) -> str | None:
    """Why a result does not give the pod the plan's interface, or None."""
    if wired.sandbox_interfaces and POD_IFNAME not in wired.sandbox_interfaces:
        return f"the result names no {POD_IFNAME} in the pod (it names {', '.join(wired.sandbox_interfaces)})"
    if want.address not in wired.addresses:
        got = ", ".join(str(a) for a in wired.addresses) or "no IPv4 address"
        return (f"the plugins gave {got}, the lab planned {want.address}: the IPAM plugin must take the "
                f"runtime's address (host-local with \"capabilities\": {{\"ips\": true}} on its plugin, and a "
                f"range holding {want.address.ip})")
    return None
