"""The client side of the lab's supervisor (supervisor/daemon.py): where its files are, one
request over its socket, starting it, stopping it, finding it in /proc. What the CLI and the
verbs need to talk to the daemon, without importing the daemon (its runtime, servers, asyncio).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING

from ..errors import LabError
from ..fabric import state

if TYPE_CHECKING:
    import subprocess

# subprocess and kernel.procs are imported by the functions that start or stop the daemon:
# `get` and `exec` only send a request and look in /proc.

MODULE = "kubenet_lab.supervisor.daemon"
SOCK = "supervisor.sock"
PID = "supervisor.pid"
LOG = "supervisor.log"
LOCK = "supervisor.lock"
STOP_GRACE = 2.0  # seconds: what `down` gives each pod (preStop included) before SIGKILL


def path(lab: str, name: str) -> str:
    return os.path.join(state.state_dir(lab), name)


class SupervisorUnavailable(LabError):
    pass


def request(lab: str, msg: dict, timeout: float = 30) -> dict:
    """Send one request to the lab's supervisor and return its answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path(lab, SOCK))
            s.sendall(json.dumps(msg).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        raise SupervisorUnavailable(f"the supervisor of lab {lab!r} does not answer ({e})") from e
    if not data.endswith(b"\n"):
        raise SupervisorUnavailable(f"the supervisor of lab {lab!r} closed the connection")
    return json.loads(data)


def _read_pid(lab: str) -> int | None:
    try:
        with open(path(lab, PID)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _log_tail(lab: str, lines: int = 10) -> str:
    try:
        with open(path(lab, LOG), errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _package_root() -> str:
    import kubenet_lab

    return os.path.dirname(os.path.dirname(os.path.abspath(kubenet_lab.__file__)))


def launch(lab: str) -> subprocess.Popen | None:
    """Start the lab's supervisor in the background unless it runs (None then); `ensure_running`
    waits for it. Starting early lets its interpreter start-up overlap the namespace build."""
    import subprocess

    with contextlib.suppress(SupervisorUnavailable):
        request(lab, {"op": "ping"}, timeout=2)
        return None
    os.makedirs(state.state_dir(lab), exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_package_root(), env.get("PYTHONPATH")]))
    # argv[0] "python3" keeps the command line short: `ps` output cut at 80 columns still shows the lab.
    return subprocess.Popen(["python3", "-m", MODULE, "--lab", lab], executable=sys.executable, env=env,
                            cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ensure_running(lab: str, timeout: float = 30, launcher: subprocess.Popen | None = None) -> int:
    """Start the lab's supervisor unless it runs (or wait for the one `launch` started); returns
    its pid. Idempotent."""
    import subprocess

    if launcher is None:
        launcher = launch(lab)
    if launcher is not None:
        try:
            _, err = launcher.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            launcher.kill()
            raise LabError(f"the supervisor of lab {lab!r} did not start within {timeout:.0f}s") from None
        if launcher.returncode != 0:
            raise LabError(f"could not start the supervisor of lab {lab!r}: {err.decode(errors='replace').strip()}")
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(SupervisorUnavailable):
            return request(lab, {"op": "ping"}, timeout=2)["pid"]
        if time.monotonic() > deadline:
            raise LabError(f"the supervisor of lab {lab!r} did not come up within {timeout:.0f}s; "
                           f"its log says:\n{_log_tail(lab)}")
        time.sleep(0.02)


def revive(lab: str, timeout: float = 60) -> bool:
    """Start the supervisor of a lab that is up but has none (it was killed), under the lab's
    lock (so never beside a `down`), and wait until its pods' containers run again. True when it
    had to."""
    if find_supervisors(lab):
        return False
    with state.locked(lab, create=False) as held:
        if not held or find_supervisors(lab) or state.load_plan(lab) is None:
            return False
        ensure_running(lab)
        request(lab, {"op": "reload"}, timeout=timeout)
        return True


def stop(lab: str, timeout: float = 5, wait: bool = True) -> set[int]:
    """Stop the lab's supervisor and its containers; nothing running is fine too. With
    wait=False it returns as soon as the supervisor has answered that its containers are
    stopped and its sockets closed, and leaves its exit (an interpreter shutting down, tens of
    ms) for `reap` to wait for: the pids to pass to it. Otherwise it returns an empty set."""
    pids = {pid for name, pid in _scan() if name == lab}
    answered = None
    with contextlib.suppress(SupervisorUnavailable, ValueError):
        reply = request(lab, {"op": "stop"}, timeout=timeout)
        answered = reply.get("pid") if reply.get("ok") else None
        pids.add(reply.get("pid") or 0)
    pids.discard(0)
    if not wait and answered and pids == {answered}:
        return pids
    reap(pids, timeout)
    return set()


def reap(pids: set[int], timeout: float = 5) -> None:
    """Wait for stopping supervisors to exit; SIGTERM, then SIGKILL, those that do not."""
    from ..kernel import procs

    left = procs.wait_gone(pids, timeout)
    if left:
        procs.signal_all(left, signal.SIGTERM)  # it stops its containers on SIGTERM too
        left = procs.wait_gone(left, STOP_GRACE + 1)
    if left:
        # Its children die with it (PR_SET_PDEATHSIG).
        procs.signal_all(left, signal.SIGKILL)
        procs.wait_gone(left, 2)


def _scan() -> list[tuple[str, int]]:
    """(lab, pid) of every supervisor; not a container's first process's stand-in, a fork of the
    supervisor that keeps its command line (kernel.procs.CONTAINER_COMM)."""
    from ..kernel import procs

    return procs.running_module(MODULE, "--lab", lambda comm: comm != procs.CONTAINER_COMM)


def find_supervisors(lab: str | None = None) -> dict[str, int]:
    """Running supervisors by lab (all labs when `lab` is None), from /proc alone."""
    from ..kernel import procs

    return {name: pid for name, pid in sorted(_scan(), key=lambda x: -x[1])
            if (lab is None or name == lab) and procs.alive(pid)}
