"""Preconditions: root, and the system tools a command needs, with what to do when missing."""
from __future__ import annotations

import os
import shutil

from ..errors import EnvironmentProblem

# tool -> Debian/Ubuntu package that provides it
PACKAGES = {
    "iptables-restore": "iptables",
    "iptables-save": "iptables",
    "nft": "nftables",
    "ip": "iproute2",
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


def tools_for_mode(mode: str) -> tuple[str, ...]:
    return ("iptables-restore", "iptables-save") if mode == "iptables" else ("nft",)
