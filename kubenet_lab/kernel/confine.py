"""A container's confinement, as a container runtime gives it, built from the host's own parts.

The lab has no images: a container's programs are the host's. So a container sees the host's
files read-only, with private writable /tmp, /var/tmp, /run and /dev/shm (directories the
caller names, kept between its processes), /root and /home empty and read-only, a minimal /dev, a /sys of its network namespace
and a /proc of a PID namespace of its own (where /proc/sys, /proc/irq and /proc/sysrq-trigger
are read-only, as runc makes them), the pod's files (/etc/hosts, ...) and its volumes. Its
processes run with the runtime's default capabilities (or what the securityContext asks),
its user and groups, and no_new_privs when asked.

How: in the forked child (before exec, single-threaded) `enter` joins the pod's network
namespace, makes private UTS, mount and PID namespaces and builds the file system there with
mount(2); then `argv` wraps the command: `unshare --fork` makes the first process of the new PID
namespace, which mounts that namespace's /proc (only a process inside it can), drops its
privileges with `setpriv` and runs the command under `tini` as PID 1, so that the command gets
SIGTERM as it does today (a PID 1 ignores signals it has no handler for) and orphans are reaped.
`unshare` waits with SIGTERM blocked and exits as the command did. Nothing reaches the host's
mount table: every mount lives in the container process's own mount namespace and dies with it.
"""
from __future__ import annotations

import ctypes
import os
import platform
import shutil
from dataclasses import dataclass, field
from typing import Callable, Mapping

from . import files, nsenter
from .nsenter import (CLONE_NEWNS, CLONE_NEWUTS, MNT_DETACH, MS_BIND, MS_RDONLY, MS_REC, MS_SLAVE, _check, _libc,
                      mount, setns, umount)

CLONE_NEWPID = 0x20000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (new syscalls are unified)
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}[platform.machine()]

# What a container can write, each a directory of its own under the caller's scratch directory.
WRITABLE = {"/tmp": "tmp", "/var/tmp": "var-tmp", "/dev/shm": "shm", "/run": "run"}
# Host directories a container gets empty and read-only (the host's own are private to it).
HIDDEN = ("/root", "/home")
# Device nodes a container gets (runc's default set), bound from the host's.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
TOOLS = ("unshare", "setpriv", "tini", "mount")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


@dataclass(frozen=True)
class Bind:
    """`source` (a host path, a directory or a file) seen at `target`, read-only or not; with
    `sub_path`, that entry of source, resolved beneath it (kernel.files: links stay inside)."""

    source: str
    target: str
    read_only: bool = False
    sub_path: str = ""


@dataclass(frozen=True)
class Sandbox:
    """Everything `enter` and `argv` need: no lab knowledge. `scratch`: the directory holding the
    container's writable directories (see WRITABLE; created by the caller); None with a
    read-only root file system (they are empty and read-only then, /dev/shm excepted)."""

    netns: str
    hostname: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    scratch: str | None = None
    shm: str | None = None  # /dev/shm's directory when scratch is None
    binds: tuple[Bind, ...] = ()
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    capabilities: tuple[str, ...] = ()
    no_new_privs: bool = False
    privileged: bool = False
    # A process of the container whose PID namespace the new process joins (an exec, a probe,
    # a hook: it sees the container's processes); None: a new one (the container's own start).
    join: int | None = None


def read_only_tree(path: str = "/") -> None:
    """Every mount at and under `path` read-only (this mount namespace's copies only)."""
    attr = _MountAttr(attr_set=MOUNT_ATTR_RDONLY)
    ret = _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), AT_RECURSIVE, ctypes.byref(attr),
                        ctypes.sizeof(attr))
    _check(ret, f"mount_setattr {path}")


def _bind(source: str, target: str, read_only: bool, flags: int = 0) -> None:
    """A bind mount, then its flags as asked (a bind copies its source's, read-only here)."""
    mount(source, target, None, MS_BIND)
    mount("none", target, None, MS_REMOUNT | MS_BIND | flags | (MS_RDONLY if read_only else 0))


def _make_dev(root: str, shm: str | None) -> None:
    """A tmpfs /dev (nodev: a node made there cannot be opened) with the default devices bound
    from the host's, a private devpts, /dev/shm and the usual links."""
    dev = f"{root}/dev"
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=755,size=64k,nr_inodes=64")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            os.close(os.open(f"{dev}/{name}", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
            mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    for d in ("pts", "shm", "mqueue"):
        os.mkdir(f"{dev}/{d}", 0o755)
    mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    if shm is not None:
        _bind(shm, f"{dev}/shm", False, MS_NOSUID | MS_NODEV)


def _writable(directory: str, stage: str, overlays: list[str]) -> None:
    """`directory` writable in this mount namespace only: as it is (the container's own /tmp,
    a volume, an overlay made before), or under a new overlay whose upper layer is on the stage
    tmpfs (its files stay as they are; what is made there exists for this container only)."""
    if not os.statvfs(directory).f_flag & os.ST_RDONLY:
        return
    if any(directory == o or directory.startswith(o + "/") for o in overlays):
        return
    layer = os.path.join(stage, f"ov{len(overlays)}")
    for d in (layer, f"{layer}/upper", f"{layer}/work"):
        os.mkdir(d)
    mount("overlay", directory, "overlay", 0, f"lowerdir={directory},upperdir={layer}/upper,workdir={layer}/work")
    overlays.append(directory)


def _mount_point(root: str, target: str, is_file: bool, stage: str, overlays: list[str]) -> None:
    """Make `target` exist under `root` (read-only by now): where a parent is missing, the
    nearest existing ancestor gets a writable overlay (its files stay, the upper layer is on the
    stage tmpfs; `overlays` those made so far, which take new paths as they are) so the path
    can be made, as a runtime makes mount points in an image. An ancestor that is writable
    already (the container's own /tmp, a volume) gets the path made in it, as a runtime does:
    an overlay there would hide what the container keeps in it from its other processes."""
    path = root + target
    if os.path.lexists(path):
        return
    ancestor = os.path.dirname(path)
    while not os.path.isdir(ancestor):
        ancestor = os.path.dirname(ancestor)
    _writable(ancestor, stage, overlays)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if is_file:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    else:
        os.mkdir(path)


# The host's top-level entries a container does not get as they are: its own instead.
OWN = {"proc", "sys", "dev", "run", "tmp", "root", "home"}
SKIP = {"lost+found"}
# /proc's layout, read by `mount -a` in the container's first process (see argv): runc's
# read-only paths; the file itself lies in the new root's /proc, covered once proc is mounted.
PROC_FSTAB = "/proc/kubenet-lab.fstab"
PROC_MOUNT = "proc /proc proc nosuid,nodev,noexec 0 0\n"
PROC_READ_ONLY = ("/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs")
PROC_MASKED = ("/proc/sysrq-trigger",)


def _proc_fstab(privileged: bool) -> str:
    """proc, then (unless privileged) runc's read-only and masked paths this kernel has."""
    if privileged:
        return PROC_MOUNT
    return PROC_MOUNT + "".join(
        [f"{p} {p} none bind,ro 0 0\n" for p in PROC_READ_ONLY if os.path.exists(p)]
        + [f"/dev/null {p} none bind 0 0\n" for p in PROC_MASKED if os.path.exists(p)])


def enter(sb: Sandbox) -> None:
    """In a fresh child about to exec `argv(sb, ...)`: the container's namespaces and its root.
    Only for a single-threaded child (after fork)."""
    fd = os.open(nsenter.netns_path(sb.netns), os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)
    if sb.join is not None:
        fd = os.open(f"/proc/{sb.join}/ns/pid", os.O_RDONLY)
        try:
            setns(fd, CLONE_NEWPID)  # for the children: the first one is a process of that namespace
        finally:
            os.close(fd)
        nsenter.unshare(CLONE_NEWNS | CLONE_NEWUTS)
    else:
        nsenter.unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID)
    if sb.hostname:
        nsenter.sethostname(sb.hostname)
    mount("none", "/", None, MS_REC | MS_SLAVE)
    # This machine's whole tree read-only in this namespace before anything is made: a path
    # the container could have made a link (in its /tmp, a volume) then leads to no write.
    read_only_tree("/")
    # A scratch tmpfs for this build (file contents, overlay layers) on a directory no one
    # needs meanwhile, and the new root on it; the rest of the old tree goes at pivot_root.
    stage = nsenter.SCRATCH_DIR
    mount("tmpfs", stage, "tmpfs", 0, "size=1m,nr_inodes=256,mode=0755")
    root = os.path.join(stage, "root")
    os.mkdir(root)
    mount("tmpfs", root, "tmpfs", 0, "size=64k,nr_inodes=256,mode=0755")
    _build(sb, root, stage)
    os.chdir(root)
    _check(_libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    umount(".")  # the old root, stacked under the new one
    os.chdir("/")


def _build(sb: Sandbox, root: str, stage: str) -> None:
    # The host's directories, read-only (recursively: with what is mounted under them).
    for entry in os.scandir("/"):
        path = f"{root}/{entry.name}"
        if entry.name in SKIP:
            continue
        if entry.name in OWN:
            os.mkdir(path, 0o1777 if entry.name == "tmp" else 0o755)
        elif entry.is_symlink():
            os.symlink(os.readlink(entry.path), path)
        elif entry.is_dir():
            os.mkdir(path)
            mount(entry.path, path, None, MS_BIND | MS_REC)
    with open(f"{root}{PROC_FSTAB}", "w") as f:
        f.write(_proc_fstab(sb.privileged))
    for b in sb.binds:  # a volume's top-level directory is made in the new root itself
        top = "/" + b.target.strip("/").split("/", 1)[0]
        if not os.path.lexists(root + top):
            os.mkdir(root + top)
    read_only_tree(root)
    mount("sysfs", f"{root}/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    sources = {target: os.path.join(sb.scratch, sub) for target, sub in WRITABLE.items()} if sb.scratch else {}
    _make_dev(root, sources.pop("/dev/shm", sb.shm))
    for target in ("/tmp", "/var/tmp", "/run", *HIDDEN):
        if not os.path.isdir(root + target):
            continue
        if target in sources:
            _bind(sources[target], root + target, False, MS_NOSUID | MS_NODEV)
        else:  # hidden, or a read-only root file system: an empty directory, read-only
            mount("tmpfs", root + target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=4k,nr_inodes=4")
    overlays: list[str] = []
    for b in sb.binds:
        held = files.open_beneath(b.source, b.sub_path, path_only=True) if b.sub_path else None
        try:
            source = b.source if held is None else f"/proc/self/fd/{held}"
            _mount_point(root, b.target, not os.path.isdir(source), stage, overlays)
            _bind(source, root + b.target, b.read_only)
        finally:
            if held is not None:
                os.close(held)
    # The pod's files over the host's (/etc/hosts, ...), each from the stage tmpfs; after the
    # volumes, as an overlay one's mount point needs (/etc for /etc/nginx/ssl) would hide them. A
    # volume at one of these paths is the container's instead, as with kubelet.
    volumes = {b.target for b in sb.binds}
    for i, (target, content) in enumerate(sb.files.items()):
        if target in volumes:
            continue
        if os.path.islink(root + target):
            # systemd-resolved's /etc/resolv.conf -> ../run/systemd/...: the container gets a
            # file of its own there, as a runtime mounts one over an image's
            _writable(os.path.dirname(root + target), stage, overlays)
            os.unlink(root + target)
            os.close(os.open(root + target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        elif not os.path.exists(root + target):
            continue
        path = os.path.join(stage, f"f{i}")
        with open(path, "w") as f:
            f.write(content)
        mount(path, root + target, None, MS_BIND)


# The programs of the chain, by absolute path on this machine (the same inside the container's
# root, read-only): a name would be looked up on the container's PATH, which its own processes
# may have filled (a `mount` in its /run, run as root before the privileges go).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the privileged part of the chain (unshare, sh, mount, setpriv) runs with: nothing of the
# container's environment (its LD_PRELOAD, say, would load its own code into them as root).
CLEAN_ENV = {"PATH": SYSTEM_PATH}


def _tool(name: str) -> str:
    return shutil.which(name, path=SYSTEM_PATH) or f"/usr/bin/{name}"


# Root in the new PID namespace: its /proc (then the privileges go, in setpriv).
STAGE = '{mount} -a -T "$0" && exec "$@"'
# The container's user, with nothing of the container's yet: its environment from the file
# descriptor (NAME=VALUE entries, each ended by a NUL), then the command. A name a shell cannot
# take (`index.html`, from an envFrom) goes through env(1) instead, in its arguments.
LOADER = ('fd=$1; shift; odd=()\n'
          'while IFS= read -r -d "" kv; do export -- "$kv" 2>/dev/null || odd+=("$kv"); done <&"$fd"\n'
          'exec {fd}<&-\n'
          'if ((${#odd[@]})); then exec %s -- "${odd[@]}" "$@"; fi\n'
          'exec "$@"')


def env_file(environ: Mapping[str, str]) -> int:
    """The container's environment as LOADER reads it: an inheritable memory file descriptor,
    for argv() and the spawn's pass_fds; the caller closes it once the process is started."""
    fd = os.memfd_create("kubenet-lab-env", 0)
    try:
        os.write(fd, b"".join(f"{k}={v}".encode() + b"\0" for k, v in environ.items() if "\0" not in k + v))
        os.lseek(fd, 0, os.SEEK_SET)
        os.set_inheritable(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def argv(sb: Sandbox, command: list[str], env_fd: int) -> list[str]:
    """The argv that runs `command` in the sandbox `enter` made, with the environment in
    `env_fd` (env_file): run it with CLEAN_ENV and pass_fds=(env_fd,). The first process in the
    PID namespace mounts its /proc, drops privileges, takes the container's environment and runs
    `command`, under tini when it is the namespace's first process (PID 1), directly when it
    joins a container's."""
    drop: list[str] = []
    if not sb.privileged:
        caps = ",".join(["-all", *(f"+{c.lower()}" for c in sb.capabilities)])
        drop = [_tool("setpriv"), f"--bounding-set={caps}", "--inh-caps=-all", "--ambient-caps=-all",
                f"--reuid={sb.uid}", f"--regid={sb.gid}",
                f"--groups={','.join(map(str, sb.groups))}" if sb.groups else "--clear-groups",
                *(["--no-new-privs"] if sb.no_new_privs else []), "--"]
    first = [_tool("tini"), "-g", "--"] if sb.join is None else []
    return [_tool("unshare"), "--fork", "--kill-child", "--", "/bin/sh", "-c", STAGE.format(mount=_tool("mount")),
            PROC_FSTAB, *drop, _tool("bash"), "-c", LOADER % _tool("env"), "kubenet-lab-env", str(env_fd),
            *first, *command]


@dataclass
class Launch:
    """A process to start confined (see launch()): its argv, the preexec_fn that moves the fresh
    child into the container, the environment it starts with and the descriptors it inherits;
    close() once it is started (or could not be)."""

    argv: list[str]
    preexec: Callable[[], None] | None
    env: Mapping[str, str]
    fds: tuple[int, ...] = ()  # inherited by the process

    def kwargs(self) -> dict:
        """For subprocess/asyncio: env, preexec_fn, pass_fds."""
        return {"env": dict(self.env), "preexec_fn": self.preexec, "pass_fds": self.fds}

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = ()


def launch(sb: Sandbox, command: list[str], environ: Mapping[str, str]) -> Launch:
    """`command` with environment `environ` as a process of the sandbox, started by a child of
    the caller that dies with it."""
    fd = env_file(environ)

    def preexec() -> None:
        nsenter.die_with_parent()
        enter(sb)
    return Launch(argv(sb, command, fd), preexec, CLEAN_ENV, (fd,))
