"""Fixtures for the root tests: real namespaces, real packets, and a check that the host is untouched."""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MANIFESTS = HERE / "manifests"

if os.geteuid() != 0:
    pytest.skip("integration tests need root: they create network namespaces (CI runs as root)",
                allow_module_level=True)
for tool in ("ip", "iptables-restore", "nft"):
    if shutil.which(tool) is None:
        pytest.skip(f"integration tests need {tool}: run ./setup.sh", allow_module_level=True)


def kl(lab: str, *args: str, check: bool = True, input: str | None = None, timeout: float = 120):
    """Run the kubenet-lab CLI as a user would (a real process: exec replaces it)."""
    proc = subprocess.run([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab, *args], capture_output=True,
                          text=True, input=input, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubenet-lab {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


# Fields of `ip -j link/addr/route` that move on their own on a live host: DHCP and router
# advertisement lifetimes (valid_lft 3599sec, route expiry) and link state, which a cable or a
# hypervisor may change. Everything else is compared.
_VOLATILE = {"valid_life_time", "preferred_life_time", "expires", "operstate", "linkmode"}
# Packet counters in the firewall dumps: `[12:3456]` of iptables-save's chain lines, and nft's.
_COUNTERS = re.compile(r"\[\d+:\d+\]|counter packets \d+ bytes \d+|expires \S+")


def host_snapshot(netns: str | None = None) -> dict:
    """Everything of the root network namespace a lab must never change: links (names, indexes,
    flags, MTU, masters, MACs, aliases), addresses (each address with its prefix, scope and
    label, without the DHCP lease countdown), IPv4 and IPv6 routes of every table (without RA
    expiry), policy rules, iptables and nftables rules (without packet counters) and the
    forwarding and bridge sysctls. (`netns`: the same of another namespace, for testing this.)"""
    inside = ["ip", "netns", "exec", netns] if netns else []

    def run(*cmd):
        return subprocess.run([*inside, *cmd], capture_output=True, text=True).stdout

    def ipj(*args):
        out = run("ip", "-j", *args)
        return sorted((json.dumps(strip(o), sort_keys=True) for o in json.loads(out or "[]")))

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in _VOLATILE}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    def read(path):
        return run("cat", path) or None
    return {
        "links": ipj("link", "show"),
        "addrs": ipj("addr", "show"),
        "routes": ipj("-4", "route", "show", "table", "all") + ipj("-6", "route", "show", "table", "all"),
        "rules": ipj("-4", "rule", "show") + ipj("-6", "rule", "show"),
        "iptables": [_COUNTERS.sub("", l) for l in run("iptables-save").splitlines() if not l.startswith("#")],
        "nft": _COUNTERS.sub("", run("nft", "list", "ruleset")),
        "ip_forward": read("/proc/sys/net/ipv4/ip_forward"),
        "bridge_nf": read("/proc/sys/net/bridge/bridge-nf-call-iptables"),
    }


def lab_namespaces(lab: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [l.split()[0] for l in out.splitlines() if l.startswith(lab + ".")]


def lab_processes(lab: str) -> list[str]:
    """The lab's supervisor and its warm process (kubenet_lab.warm), and the forks of each."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if re.search(rf"--lab {re.escape(lab)}(\s|$)", l)
            and ("kubenet_lab.supervisor.daemon" in l or "kubenet_lab.warm.server" in l)]


def new_lab_name(prefix: str = "t") -> str:
    return f"{prefix}{secrets.token_hex(3)}"


class Lab:
    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kw):
        return kl(self.name, *args, **kw)

    def exec(self, target: str, *cmd: str, check: bool = True, **kw):
        return kl(self.name, "exec", target, "--", *cmd, check=check, **kw)

    def pods(self) -> dict[str, dict]:
        items = json.loads(self("get", "pods", "-A", "-o", "json").stdout)["items"]
        return {i["metadata"]["name"]: i for i in items}

    def ip(self, pod: str) -> str:
        return self.pods()[pod]["status"]["podIP"]


@pytest.fixture(scope="session")
def host_before():
    return host_snapshot()


# `python3 -c UDP_CLIENT IP PORT MESSAGE`: one datagram, and the answer printed.
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
print(s.recv(65535).decode())
"""


def wait_for(pred, what: str = "condition", timeout: float = 30, interval: float = 0.1):
    """Poll `pred` until it returns something true (returned) or `timeout` seconds pass (fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := pred():
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def torn_down(name: str):
    """Whatever happens in the block, lab `name` is removed afterwards, and `down` must have
    left no namespace behind (any it left is removed, and the test fails)."""
    try:
        yield
    finally:
        kl(name, "down", check=False)
        leftovers = lab_namespaces(name)
        for ns in leftovers:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        assert not leftovers, f"down left namespaces behind: {leftovers}"


@pytest.fixture(scope="module")
def lab(host_before):
    """One lab for a module's tests."""
    lab = Lab(new_lab_name())
    with torn_down(lab.name):
        lab("up", str(MANIFESTS / "lab.yaml"))
        yield lab


# `python3 -c LOOPING_CLIENT URL SECONDS`, run in a pod: requests URL every 20 ms for SECONDS,
# prints "failed: ..." for each failed one (refused, reset, or no answer in 15 s: a SYN retried
# into an endpoint that is gone), then "ok N bad M".
LOOPING_CLIENT = """
import sys, time, urllib.request
ok = bad = 0
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=15).read()  # slow under load is no failure; a black hole is
        ok += 1
    except Exception as e:
        bad += 1
        print("failed:", e, flush=True)
    time.sleep(0.02)
print("ok", ok, "bad", bad, flush=True)
"""


@contextlib.contextmanager
def looping_client(lab: Lab, pod: str, url: str, seconds: float):
    """A pod requesting `url` in a loop for `seconds` while the block runs; yields a list that
    gets (ok, bad, output) once the loop has ended (waited for when the block ends)."""
    proc = subprocess.Popen([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab.name, "exec", pod, "--",
                             "python3", "-c", LOOPING_CLIENT, url, str(seconds)],  # the pod's, on its PATH
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result: list = []
    try:
        yield result
        out, err = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    last = out.strip().splitlines()[-1].split() if out.strip() else []
    ok, bad = (int(last[1]), int(last[3])) if last[:1] == ["ok"] else (0, -1)
    result += [ok, bad, out + err]
