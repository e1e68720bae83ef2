"""A container's sandbox: what kernel.confine builds for each of its processes, and what it
holds on disk under its pod's directory (fabric.state.pod_dir): the container's writable
directories (its /tmp, /var/tmp, /run and /dev/shm, fresh at each start of it: nothing it
wrote survives it) and the pod's volumes (an emptyDir shared by its containers; configMap,
secret and downwardAPI files written as kubelet's atomic writer writes them, a `..data` link
to the current version, so that a running pod sees a changed ConfigMap at once). All of it goes
with the pod."""
from __future__ import annotations

import base64
import os
import posixpath
import shutil
import stat
import time
from typing import Callable

from ..fabric import state
from ..kernel import confine, files
from ..model.objects import LINUX_CAPABILITIES, Plan, PlannedContainer, PlannedPod, PlannedVolume
from ..plan import podfiles

SCRATCH = {"tmp": 0o1777, "var-tmp": 0o1777, "shm": 0o1777, "run": 0o755}
READ_ONLY_KINDS = ("configMap", "secret", "downwardAPI")
DATA = "..data"


class VolumeError(Exception):
    """A volume kubelet could not set up: `volume` and kubelet's message."""

    def __init__(self, volume: str, message: str):
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume


def container_dir(lab: str, pod: PlannedPod, container: str) -> str:
    return os.path.join(state.pod_dir(lab, pod.namespace, pod.name), "containers", container)


def volume_dir(lab: str, pod: PlannedPod, volume: str) -> str:
    return os.path.join(state.pod_dir(lab, pod.namespace, pod.name), "volumes", volume)


def scratch(path: str, fresh: bool) -> None:
    """The container's writable directories at `path` (emptied first when `fresh`)."""
    if fresh:
        shutil.rmtree(path, ignore_errors=True)
    for sub, mode in SCRATCH.items():
        p = os.path.join(path, sub)
        if not os.path.isdir(p):  # made once per start: an exec or a probe finds them there
            os.makedirs(p, exist_ok=True)
            os.chmod(p, mode)


def _contents(volume: PlannedVolume) -> dict[str, tuple[bytes, int]]:
    return {f.path: (base64.b64decode(f.text) if f.binary else f.text.encode(), f.mode) for f in volume.files}


def _version(path: str) -> str | None:
    """The version directory `..data` names in the volume directory `path`, only when it is one
    the atomic writer made: a name starting with `..`, without `/`, a directory (not a link) of
    `path` itself; None otherwise (a link elsewhere is not followed, nor removed)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        target = os.readlink(DATA, dir_fd=fd)
        if not target.startswith("..") or "/" in target or target in ("..", DATA, DATA + "_tmp"):
            return None
        return target if stat.S_ISDIR(os.stat(target, dir_fd=fd, follow_symlinks=False).st_mode) else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _current(path: str) -> dict[str, tuple[bytes, int]] | None:
    version = _version(path)
    if version is None:
        return None
    data = os.path.join(path, version)
    out = {}
    for parent, _, names in os.walk(data):
        for name in names:
            full = os.path.join(parent, name)
            try:
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                return None  # a link or worse: not what the writer made, so written anew
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return None
                out[os.path.relpath(full, data)] = (f.read(), st.st_mode & 0o7777)
    return out


def write_files(path: str, files: dict[str, tuple[bytes, int]]) -> None:
    """kubelet's atomic writer: the files in a new hidden directory, `..data` switched to it
    by a rename, each top-level entry a link through `..data`; unchanged content is left alone."""
    if _current(path) == files:
        return
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    version = time.strftime("..%Y_%m_%d_%H_%M_%S.") + str(int.from_bytes(os.urandom(4), "big"))
    new = os.path.join(path, version)
    os.mkdir(new, 0o755)
    for rel, (content, mode) in files.items():
        full = os.path.join(new, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        os.chmod(full, mode)
    old = _version(path)
    tmp = os.path.join(path, "..data_tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(version, tmp)
    os.rename(tmp, os.path.join(path, DATA))
    tops = {rel.split("/", 1)[0] for rel in files}
    for entry in os.listdir(path):
        if entry.startswith(".."):
            continue
        if entry not in tops:
            os.unlink(os.path.join(path, entry))
    for top in tops:
        link = os.path.join(path, top)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA, top), link)
    if old is not None:  # removed beneath the volume directory's descriptor, never through a link
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            shutil.rmtree(old, dir_fd=fd, ignore_errors=True)
        finally:
            os.close(fd)


def ensure_volumes(lab: str, pod: PlannedPod, names: set[str] | None = None) -> dict[str, str]:
    """Each volume (of `names`, or all) set up on disk: volume name -> its directory (a hostPath's
    own path). Raises VolumeError for the first that cannot be."""
    out = {}
    for v in pod.volumes:
        if names is not None and v.name not in names:
            continue
        if v.error:
            raise VolumeError(v.name, v.error)
        if v.kind == "hostPath":
            out[v.name] = v.host_path or "/"
            continue
        path = volume_dir(lab, pod, v.name)
        if v.kind in READ_ONLY_KINDS:
            write_files(path, _contents(v))
        elif not os.path.isdir(path):
            os.makedirs(path)
            os.chmod(path, 0o777)  # kubelet's emptyDir mode
        out[v.name] = path
    return out


def binds(lab: str, pod: PlannedPod, container: PlannedContainer) -> tuple[confine.Bind, ...]:
    """The container's volume mounts. A subPath is resolved beneath its volume (by confine, in
    the container's mount namespace; a missing one of an emptyDir made here, each component
    without following links): a link a container made there cannot lead a mount out of it."""
    if not container.mounts:
        return ()
    kinds = {v.name: v.kind for v in pod.volumes}
    paths = ensure_volumes(lab, pod, {m.volume for m in container.mounts})
    out = []
    for m in container.mounts:
        if m.sub_path and kinds.get(m.volume) == "emptyDir":  # kubelet makes a missing subPath as a directory
            files.makedirs_beneath(paths[m.volume], m.sub_path, 0o777)
        out.append(confine.Bind(paths[m.volume], m.path, m.read_only or kinds.get(m.volume) in READ_ONLY_KINDS,
                                m.sub_path))
    return tuple(out)


def served_files(lab: str, pod: PlannedPod, container: PlannedContainer, docroot: str | None
                 ) -> Callable[[str], bytes | None] | None:
    """What a web server image serves from `docroot` when a volume is mounted there or above
    (its files read from the volume's directory as the container sees them, never beyond it,
    whatever links a container made in the subPath, the docroot or below: kernel.files); None
    when no volume holds it (the image's own pages, which are not here)."""
    if not docroot:
        return None
    covering = [m for m in container.mounts if docroot == m.path or docroot.startswith(m.path.rstrip("/") + "/")]
    if not covering:
        return None
    m = max(covering, key=lambda m: len(m.path))
    try:
        source = ensure_volumes(lab, pod, {m.volume})[m.volume]
    except VolumeError:
        return None
    # the whole path beneath the volume's own directory (which the lab made), in one resolution:
    # a link a container put in place of the subPath or the docroot stays inside the volume too
    # (a request's `..` never climbs above the docroot: the server cleaned it, and it is dropped here)
    base = posixpath.join(m.sub_path, posixpath.relpath(docroot, m.path))

    def read(path: str) -> bytes | None:
        parts = [p for p in path.split("/") if p not in ("", ".", "..")]
        return files.read_beneath(source, posixpath.join(base, *parts) + ("/" if path.endswith("/") else ""))
    return read


def container_init(pid: int | None) -> int | None:
    """The PID 1 (tini) of a container whose process `pid` (the kubenet-ctr standing for it) the
    supervisor started; None when there is none (an emulated container, or it ended)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def sandbox(lab: str, pod: PlannedPod, container: PlannedContainer, hostname: str | None,
            files: dict[str, str], fresh: bool = False, join: int | None = None) -> confine.Sandbox:
    """What confine.enter builds for a process of `container`; `fresh` at a start of the
    container (its writable directories emptied), not for an exec, a probe or a hook; `join`
    a process of the running container whose PID namespace they share."""
    c = container.confinement
    path = container_dir(lab, pod, container.name)
    scratch(path, fresh)
    return confine.Sandbox(
        netns=pod.netns, hostname=hostname, files=files, scratch=None if c.read_only_root else path,
        shm=os.path.join(path, "shm"), binds=binds(lab, pod, container), uid=c.uid, gid=c.gid, groups=c.groups,
        capabilities=tuple(LINUX_CAPABILITIES.index(n) for n in c.capabilities if n in LINUX_CAPABILITIES),
        no_new_privs=c.no_new_privs, privileged=c.privileged, join=join)


def blocked(lab: str, plan: Plan | None, pod: PlannedPod, container: PlannedContainer) -> tuple[str, str, str] | None:
    """Why kubelet would not start `container` now: (waiting reason, message, event reason), or None."""
    if plan is not None and (error := podfiles.sandbox_error(plan, pod)):  # no sandbox, no container
        return ("ContainerCreating", f"Failed to create pod sandbox: {error}", "FailedCreatePodSandBox")
    if container.config_error or container.confinement.refused:
        return ("CreateContainerConfigError", container.config_error or container.confinement.refused, "Failed")
    mounted = {m.volume for m in container.mounts}
    for v in pod.volumes:  # what ensure_volumes would refuse; the files are written when it starts
        if v.name in mounted and v.error:
            return ("ContainerCreating", str(VolumeError(v.name, v.error)), "FailedMount")
    return None


def remove(lab: str, pod: PlannedPod) -> None:
    shutil.rmtree(state.pod_dir(lab, pod.namespace, pod.name), ignore_errors=True)
