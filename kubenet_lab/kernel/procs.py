"""Processes inside network namespaces: find them by namespace inode, stop them.

A namespace stays alive (with its veths) while a process is inside it, even after its name is
removed, so `down` stops them first. The scan reads /proc/<pid>/ns/net of every process once,
whatever the number of namespaces.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Callable, Iterable

from kubenet_lab.errors import LabError
from kubenet_lab.kernel import netns


# The name (comm) of the process that stands for a container's first one (kernel.confine): a
# fork of the supervisor, whose command line it keeps, and which is no supervisor.
CONTAINER_COMM = "kubenet-ctr"


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def processes_in(names: Iterable[str]) -> dict[str, list[int]]:
    """pids whose network namespace is one of `names` (each name present in the answer)."""
    names = list(names)
    wanted = {}
    for name in names:
        ident = netns.identity(name)
        if ident is not None:
            wanted[ident] = name
    out: dict[str, list[int]] = {name: [] for name in names}
    if not wanted:
        return out
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:  # gone, or a kernel thread / zombie
            continue
        name = wanted.get((st.st_dev, st.st_ino))
        if name is not None:
            out[name].append(int(entry))
    return out


def alive(pid: int) -> bool:
    """Running: a /proc entry that is not a zombie (a zombie has left its namespaces; its
    parent, maybe a Popen of the caller's, keeps its exit status, so it is not reaped here)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait until every pid has exited or `timeout` passed; the pids still running."""
    pending = set(pids)
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        pending = {pid for pid in pending if alive(pid)}
        if not pending or time.monotonic() > deadline:
            return pending
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGKILL every pid and wait until all have exited."""
    pids = set(pids)
    signal_all(pids, signal.SIGKILL)
    left = wait_gone(pids, timeout)
    if left:
        raise LabError(f"processes {sorted(left)} did not exit after SIGKILL within {timeout:.0f} s")


def running_module(module: str, option: str, keep: Callable[[str], bool] = lambda comm: True) -> list[tuple[str, int]]:
    """(VALUE, pid) of every process started as `python3 -m MODULE ... OPTION VALUE` whose name
    (comm) `keep` accepts, this one left out. A fork keeps its parent's command line: the name
    tells a daemon from its forks."""
    found = []
    want = module.encode()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if want not in args:
            continue
        i = args.index(want)
        if i == 0 or args[i - 1] != b"-m" or option.encode() not in args[i + 1:] or not keep(comm(int(entry))):
            continue
        rest = [a.decode(errors="replace") for a in args[i + 1:]]
        at = rest.index(option) + 1
        if at < len(rest):
            found.append((rest[at], int(entry)))
    return found
