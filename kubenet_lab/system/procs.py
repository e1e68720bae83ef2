"""Processes inside network namespaces: find them by namespace inode, stop them.

A namespace stays alive (with its veths) while a process is inside it, even after its name is
removed, so `down` stops them first. The scan reads /proc/<pid>/ns/net of every process once,
whatever the number of namespaces.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Iterable

from kubenet_lab.errors import LabError
from kubenet_lab.system import netns


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


def _gone(pid: int) -> bool:
    """Exited: no /proc entry, or a zombie (it left its namespaces when it exited). Zombies
    are not reaped here: their parent (maybe a Popen of the caller's) keeps the exit status."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X")


def kill(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGKILL every pid and wait until all have exited."""
    pending = set(pids)
    for pid in pending:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while pending:
        pending = {pid for pid in pending if not _gone(pid)}
        if not pending:
            return
        if time.monotonic() > deadline:
            raise LabError(f"processes {sorted(pending)} did not exit after SIGKILL within {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
