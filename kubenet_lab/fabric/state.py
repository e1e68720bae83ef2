"""The lab's state on disk: /run/kubenet-lab/<lab>/ (gone at reboot, like the namespaces).

Only what cannot be read back from the kernel lives here: the objects the lab holds (as applied),
the plan of the last successful change (with its address allocations), the rules last applied,
the events (fabric/events.py), the supervisor's socket and the output of real (RunExec)
processes. Nothing per pod otherwise: /run may be a disk where each file costs a millisecond or
two to create and to remove, and a lab has hundreds of pods. Writes are atomic (temp file +
rename) and a lock keeps two commands on one lab from interleaving.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Collection, Iterator

from ..errors import LabError
from .statedir import DEFAULT_ROOT, ROOT_ENV, state_dir, state_root  # noqa: F401 (the lab's state paths, here too)

if TYPE_CHECKING:  # the model, its decoding and the stored objects' modules are imported by the verbs
    # that use them: `logs` and `get pods` read the plan's JSON without them (app/query.py)
    from ..manifests.store import Stored
    from ..model.objects import Plan, PlannedPod

PLAN_FILE = "plan.json"
# Namespaces an `up` is about to create, written before it creates any: should it be killed
# half-way, the next `up` or `down` knows them for the lab's own even where the ownership mark
# had not been set yet.
INTENT_FILE = "creating.json"
# The pods ("ns/name") whose endpoints the rules last loaded leave out as not ready, and those of
# them that have ended (Succeeded, Failed), which are no endpoints at all:
# {"notReady": [...], "terminal": [...]} (a plain list: not ready, none ended).
NOT_READY_FILE = "not-ready.json"
# The objects the lab holds (what `up` was given, changed since by apply, delete and scale), each
# with the place it was written: what the next change is applied to.
OBJECTS_FILE = "objects.json"


def log_path(lab: str, namespace: str, pod: str, container: str) -> str:
    """The output of a RunExec container (a process needs a file descriptor to write to)."""
    return os.path.join(state_dir(lab), "logs", f"{namespace}_{pod}_{container}.log")


def pod_dir(lab: str, namespace: str, pod: str) -> str:
    """What a pod's containers write (their /tmp, /run, ...) and its volumes: made only for a pod
    that has volumes, runs a process or is exec'd into; removed with the pod."""
    return os.path.join(state_dir(lab), "pods", f"{namespace}_{pod}")


def write_atomic(path: str, text: str) -> None:
    """`path` holds the old text or the new, whenever the writer is killed. Not synced to disk:
    what the state describes (namespaces, processes) does not outlive the machine, and where
    /run is a disk, not a tmpfs, an fsync per file cost 1.5-4 ms, a dozen per change."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def plan_path(lab: str) -> str:
    return os.path.join(state_dir(lab), PLAN_FILE)


def save_plan(plan: Plan) -> None:
    """The plan written a pod a line (plan.serialize.plan_text). A process that keeps plans
    (keep_plans) writes again, as they were read, the lines of the pods that did not change."""
    from ..plan.serialize import plan_text, plan_text_of, plan_to_data

    path = plan_path(plan.lab)
    kept = _kept.get(path) if _keeping else None
    if kept is not None and kept.head:
        known = {pod.key: (pod, line) for line, (_, pod) in kept.pods.items() if pod is not None}
        write_atomic(path, plan_text_of(plan, known))
    else:
        write_atomic(path, plan_text(plan_to_data(plan)))


def save_objects(lab: str, objects: list[Stored], proxy_mode: str | None) -> None:
    from ..manifests import treejson

    data = {"proxyMode": proxy_mode,
            "objects": [{"kind": s.kind, "namespace": s.namespace, "name": s.name, "file": s.file, "line": s.line,
                         "path": s.path, "data": treejson.encode(s.data)} for s in objects]}
    write_atomic(os.path.join(state_dir(lab), OBJECTS_FILE), json.dumps(data, separators=(",", ":")))


def load_objects(lab: str) -> tuple[list[Stored], str | None] | None:
    """(the lab's objects, the proxy mode `up --proxy-mode` chose); None when none are kept."""
    from ..manifests import treejson
    from ..manifests.store import Stored

    path = os.path.join(state_dir(lab), OBJECTS_FILE)
    try:
        with open(path) as f:
            data = json.load(f)
        objects = [Stored(o["kind"], o["namespace"], o["name"], treejson.decode(o["data"]), o["file"], o["line"],
                          o.get("path", "")) for o in data["objects"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LabError(f"the objects of lab {lab!r} at {path} are unreadable ({e}); `kubenet-lab --lab {lab} up "
                       f"FILES` makes the lab what FILES say again") from e
    return objects, data.get("proxyMode")


def record_intent(lab: str, names: set[str]) -> None:
    write_atomic(os.path.join(state_dir(lab), INTENT_FILE), json.dumps(sorted(names)))


def intended(lab: str) -> set[str]:
    try:
        with open(os.path.join(state_dir(lab), INTENT_FILE)) as f:
            return set(json.load(f))
    except (OSError, ValueError):
        return set()


def interrupted(lab: str) -> bool:
    """A change of the lab wrote its intent and did not complete (it was killed)."""
    return os.path.exists(os.path.join(state_dir(lab), INTENT_FILE))


def clear_intent(lab: str) -> None:
    try:
        os.unlink(os.path.join(state_dir(lab), INTENT_FILE))
    except FileNotFoundError:
        pass


def unreadable(lab: str, e: Exception) -> LabError:
    return LabError(f"the state of lab {lab!r} at {plan_path(lab)} is unreadable ({type(e).__name__}: {e}); "
                    f"`kubenet-lab --lab {lab} down` removes the lab without it")


# A long-lived process (the lab's supervisor, its warm process) keeps the plan it read, decoded,
# for as long as its file is the same one (save_plan replaces it: a new inode): the warm process's
# children, forked per command, find it decoded. When the file is replaced, what did not change
# is not decoded again: the plan's text has a line per pod (plan.serialize.plan_text), and a pod
# whose line is unchanged, or the rest of the plan when its line is, is the one decoded before.
# Others read the file every time.
_keeping = False
_kept: dict[str, _Kept] = {}  # plan path -> what was read from it


@dataclass
class _Kept:
    identity: tuple[int, int, int, int]
    data: dict
    head: str = ""  # the plan without pods, as JSON ("" when the file was not written a pod a line)
    pods: dict[str, tuple[dict, PlannedPod | None]] = field(default_factory=dict)  # a pod's line -> data, decoded
    lines: list[str] = field(default_factory=list)  # the pods' lines, in order
    head_plan: Plan | None = None
    plan: Plan | None = None


def keep_plans() -> None:
    """From now on, plans read are kept while their file stays the same (see _kept)."""
    global _keeping
    _keeping = True


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def load_plan_data(lab: str) -> dict | None:
    """The plan of the last change as save_plan wrote it (plan.serialize's JSON), not decoded:
    what `logs` and `get pods` read, without importing the model; None when there is none.
    Not to be changed by the caller (it may be kept, see keep_plans)."""
    path = plan_path(lab)
    try:
        with open(path) as f:
            if not _keeping:
                data = json.load(f)
            else:
                ident = _identity(os.fstat(f.fileno()))
                kept = _kept.get(path)
                if kept is not None and kept.identity == ident:
                    return kept.data
                data = _read_kept(path, f.read(), ident, kept)
    except FileNotFoundError:
        _kept.pop(path, None)
        return None
    except (OSError, ValueError) as e:
        raise unreadable(lab, e) from e
    if not isinstance(data, dict):
        raise unreadable(lab, TypeError(f"a plan is an object, not {type(data).__name__}"))
    return data


def _read_kept(path: str, text: str, ident: tuple[int, int, int, int], before: _Kept | None) -> dict:
    """The plan's data from its text, keeping what is kept of each pod line read before."""
    from ..plan.serialize import split_plan_text

    split = split_plan_text(text)
    if split is None:
        data = json.loads(text)
        if isinstance(data, dict):
            _kept[path] = _Kept(ident, data)
        return data
    head, lines = split
    old = before.pods if before is not None else {}
    pods = {line: old.get(line) or (json.loads(line), None) for line in lines}
    data = {**json.loads(head), "pods": [pods[line][0] for line in lines]}
    kept = _Kept(ident, data, head, pods, lines)
    if before is not None and before.head == head:
        kept.head_plan = before.head_plan
    _kept[path] = kept
    return data


def load_plan(lab: str, only_pods: Collection[str] | None = None) -> Plan | None:
    """The plan of the last change. With `only_pods` ("ns/name"), the plan with those of its
    pods alone: what `exec` needs, without decoding the others (most of a big lab's plan)."""
    data = load_plan_data(lab)
    if data is None:
        return None
    kept = _kept.get(plan_path(lab)) if _keeping else None
    if kept is None or kept.data is not data:
        return plan_of_data(lab, data, only_pods)
    if kept.plan is None:
        kept.plan = _decode_kept(lab, kept)
    if only_pods is None:
        return kept.plan
    import dataclasses

    return dataclasses.replace(kept.plan, pods=tuple(p for p in kept.plan.pods if p.key in only_pods))


def _decode_kept(lab: str, kept: _Kept) -> Plan:
    """The kept plan decoded: only the pods (and the rest) not decoded before."""
    if not kept.head:
        return plan_of_data(lab, kept.data)
    import dataclasses

    from ..model.objects import PlannedPod as Pod
    from ..plan.serialize import from_data

    try:
        if kept.head_plan is None:
            kept.head_plan = plan_of_data(lab, {**kept.data, "pods": []})
        for line, (raw, pod) in kept.pods.items():
            if pod is None:
                kept.pods[line] = (raw, from_data(Pod, raw))
        pods = tuple(kept.pods[line][1] for line in kept.lines)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise unreadable(lab, e) from e
    return dataclasses.replace(kept.head_plan, pods=pods)


def plan_of_data(lab: str, data: dict, only_pods: Collection[str] | None = None) -> Plan:
    """The plan load_plan_data read, decoded (with `only_pods`, those of its pods alone)."""
    from ..plan.serialize import plan_from_data

    try:
        if only_pods is not None:
            data = {**data, "pods": [p for p in data["pods"] if f"{p['namespace']}/{p['name']}" in only_pods]}
        return plan_from_data(data)
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # a plan another version wrote
        raise unreadable(lab, e) from e


def _readiness(lab: str) -> dict:
    try:
        with open(os.path.join(state_dir(lab), NOT_READY_FILE)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return {"notReady": data} if isinstance(data, list) else data if isinstance(data, dict) else {}


def not_ready(lab: str) -> frozenset[str]:
    try:
        return frozenset(_readiness(lab).get("notReady", ()))
    except TypeError:
        return frozenset()


def terminal(lab: str) -> frozenset[str]:
    """The pods that have ended (Succeeded, Failed): no endpoints at all."""
    try:
        return frozenset(_readiness(lab).get("terminal", ()))
    except TypeError:
        return frozenset()


def save_not_ready(lab: str, pods: frozenset[str], ended: frozenset[str] = frozenset()) -> None:
    write_atomic(os.path.join(state_dir(lab), NOT_READY_FILE),
                 json.dumps({"notReady": sorted(pods), "terminal": sorted(ended)}))


# How long a command waits for another one's hold of the lab's lock before it gives up (seconds;
# `kubenet-lab --lock-timeout`).
LOCK_TIMEOUT_ENV = "KUBENET_LAB_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 60.0


def lock_timeout() -> float:
    try:
        return max(0.0, float(os.environ.get(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT


def _holder(fd: int) -> str:
    """' (pid N)' of the command that holds the lock, as it wrote it, or ''."""
    try:
        pid = int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return ""
    return f" (pid {pid})"


LOCK_QUIET = 2.0  # seconds a command waits for the lab's lock before it says so


def _flock(lab: str, fd: int, deadline: float, waited: list[bool]) -> None:
    """Take the lock on `fd`; when another command holds it for longer than a moment (the lab's
    own readiness syncs and rollout steps hold it briefly), say so once on stderr; wait until
    `deadline`, then fail."""
    delay = 0.002
    now = time.monotonic()
    say_at = now + min(LOCK_QUIET, max(0.0, deadline - now))
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if not waited[0] and time.monotonic() >= say_at:
            waited[0] = True
            print(f"waiting for lab {lab}: another kubenet-lab command{_holder(fd)} holds its lock...",
                  file=sys.stderr, flush=True)
        if time.monotonic() >= deadline:
            holder = _holder(fd)
            os.close(fd)
            raise LabError(f"gave up waiting for lab {lab}: another kubenet-lab command{holder} has held its lock "
                           f"for {lock_timeout():g}s; try again once it is done (or wait longer: --lock-timeout)")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.05)


def _lock(lab: str, create: bool) -> int | None:
    """An fd holding the lab's lock, or None (create=False) when the lab has no state. The lab
    may be removed (`down`) while we wait: a lock taken on a file that is no longer the lab's
    lock file is let go, and taken anew (or None). Waiting longer than lock_timeout() fails."""
    path = os.path.join(state_dir(lab), "lock")
    deadline, waited = time.monotonic() + lock_timeout(), [False]
    while True:
        if create:
            os.makedirs(state_dir(lab), exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            if create:
                continue
            return None
        _flock(lab, fd, deadline, waited)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                with contextlib.suppress(OSError):  # who holds it, for those who wait
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
        if not create:
            return None


@contextlib.contextmanager
def locked(lab: str, create: bool = True) -> Iterator[bool]:
    """Hold the lab's lock for the block: commands on one lab run one at a time. With
    create=False a lab without state is not made one: the block gets False and no lock."""
    fd = _lock(lab, create)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def remove_state(lab: str) -> None:
    shutil.rmtree(state_dir(lab), ignore_errors=True)


def remove_if_unused(lab: str) -> None:
    """Remove the lab's state dir when it holds nothing but the lock (a lab never brought up)."""
    try:
        if set(os.listdir(state_dir(lab))) <= {"lock"}:
            remove_state(lab)
    except FileNotFoundError:
        pass


def known_labs() -> list[str]:
    try:
        return sorted(e for e in os.listdir(state_root()) if os.path.isdir(os.path.join(state_root(), e)))
    except FileNotFoundError:
        return []
