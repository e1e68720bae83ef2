"""What the lab needs of this machine, and the facts of it the lab takes in: root, the system
tools and kernel module a command needs (with what to do when missing), which programs exist
here, and the resolv.conf the lab's nodes share with it."""
from __future__ import annotations

import os
import shutil

from ..errors import EnvironmentProblem
from ..plan.containers import CONTAINER_PATH

# tool -> Debian/Ubuntu package that provides it
PACKAGES = {
    "iptables-restore": "iptables",
    "iptables-save": "iptables",
    "nft": "nftables",
    "ip": "iproute2",
    "tini": "tini",
    "bash": "bash",
}


def require_root(verb: str) -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            f"kubenet-lab {verb} needs root: it creates network namespaces. Run it with sudo "
            f"(sudo kubenet-lab {verb} ...).")


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pkgs = sorted({PACKAGES.get(t, t) for t in missing})
        raise EnvironmentProblem(
            f"missing system tool{'s' if len(missing) > 1 else ''}: {', '.join(missing)}. "
            f"Install with: sudo apt-get install {' '.join(pkgs)}  (or run ./setup.sh from the kubenet-lab checkout)")


# What the bridge netfilter module (br_netfilter) adds to every network namespace; the lab sets it
# inside its node namespaces, so that a pod's traffic to a Service on its own node passes kube-proxy's
# rules as it crosses the node's bridge.
BRIDGE_NF_SYSCTL = "/proc/sys/net/bridge/bridge-nf-call-iptables"
BRIDGE_NF_MODULE = "br_netfilter"


def bridge_netfilter_problem() -> str | None:
    """Why the lab's nodes cannot filter bridged traffic, or None when they can. Read in the
    caller's namespace: the module, once loaded, shows the sysctl in every namespace."""
    if os.path.exists(BRIDGE_NF_SYSCTL):
        return None
    return (f"the kernel module {BRIDGE_NF_MODULE} is not loaded ({BRIDGE_NF_SYSCTL} is missing): the lab's "
            f"nodes need it for traffic from a pod to a Service on its own node. Load it with "
            f"`sudo modprobe {BRIDGE_NF_MODULE}` (kubenet-lab does not load kernel modules itself: "
            f"on this machine's own network it makes bridged traffic pass iptables)")


def require_bridge_netfilter() -> None:
    if problem := bridge_netfilter_problem():
        raise EnvironmentProblem(problem)


# What a container's processes start through (kernel.confine): bash loads its environment,
# tini is its PID 1.
CONTAINER_TOOLS = ("bash", "tini")


def tools_for_mode(mode: str) -> tuple[str, ...]:
    """The tools a lab in proxy mode `mode` needs: its rules' and its containers'."""
    return ("nft",) + CONTAINER_TOOLS if mode == "nftables" else ("iptables-restore", "iptables-save") + CONTAINER_TOOLS


def has_program(name: str) -> bool:
    """Whether this machine has the program a container's command names (the lab runs the
    host's binaries): an executable absolute path, or a name found on a container's PATH. A
    relative path (`./podinfo`) means the image's working directory, never this machine's."""
    if "/" in name:
        return name.startswith("/") and os.path.isfile(name) and os.access(name, os.X_OK)
    return shutil.which(name, path=CONTAINER_PATH) is not None


NODE_RESOLV_CONF = "/etc/resolv.conf"


def node_resolv_conf() -> str:
    """This machine's resolv.conf, which the lab's nodes share (kubelet's --resolv-conf); ""
    when there is none."""
    try:
        with open(NODE_RESOLV_CONF) as f:
            return f.read()
    except OSError:
        return ""
