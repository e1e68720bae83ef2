"""A container's confinement, as a container runtime gives it, built from the host's own parts.

The lab has no images: a container's programs are the host's. So a container sees the host's
files read-only, with private writable /tmp, /var/tmp, /run and /dev/shm (directories the
caller names, kept between its processes), /root and /home empty and read-only, a minimal
/dev, a /sys of its network namespace and a /proc of a PID namespace of its own (/proc/sys,
/proc/irq, /proc/bus, /proc/fs read-only and /proc/sysrq-trigger masked, as runc makes them),
the pod's files (/etc/hosts, ...) and its volumes. Its processes run with the runtime's default
capabilities (or what the securityContext asks), its user and groups, and no_new_privs when asked.

How: in the forked child (before exec, single-threaded) `enter` joins the pod's network
namespace, makes private UTS, mount and PID namespaces (or joins the container's PID one),
builds the new root with mount(2) on this machine's tree made read-only first, and pivots into
it; then it forks: the new process, in the PID namespace, mounts its /proc and takes the
container's user and capabilities with syscalls, all before anything of the container's root
runs (a volume may cover /usr/bin); it then execs `argv`: a bash of the container's user that
loads the container's environment from a descriptor and runs the command under `tini` as PID
1 (so that the command gets SIGTERM as a process does, and orphans are reaped). The forking
process stays as the one the caller started and ends as the container's first process ends.
Nothing reaches the host's mount table: every mount lives in the container's own mount
namespace and dies with it.
"""
from __future__ import annotations

import ctypes
import os
import platform
import shutil
import signal
from dataclasses import dataclass, field
from typing import Callable, Mapping

from . import files, nsenter, procs
from .nsenter import (CLONE_NEWNS, CLONE_NEWUTS, MS_BIND, MS_RDONLY, MS_REC, MS_SLAVE, _check, _libc,
                      mount, setns, umount)

CLONE_NEWPID = 0x20000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MS_PRIVATE = 1 << 18
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
    capabilities: tuple[int, ...] = ()  # by number (capability.h)
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
    mount("overlay", directory, "overlay", MS_NOSUID | MS_NODEV,
          f"lowerdir={directory},upperdir={layer}/upper,workdir={layer}/work")
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
# /proc's paths runc makes read-only, and those it masks (when this kernel has them).
PROC_READ_ONLY = ("/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs")
PROC_MASKED = ("/proc/sysrq-trigger",)
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}[platform.machine()]
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)),
           f"prctl {option}")


def _mount_proc(privileged: bool) -> None:
    """This PID namespace's /proc (the caller is in it), with runc's read-only and masked paths."""
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if privileged:
        return
    for path in PROC_READ_ONLY:
        if os.path.isdir(path):
            _bind(path, path, True, MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in PROC_MASKED:
        if os.path.exists(path):
            mount("/dev/null", path, None, MS_BIND)


def _drop_privileges(sb: Sandbox) -> None:
    """The container's user, groups and capabilities, from here on (and no_new_privs): what
    runs next is the container's own and has nothing more."""
    _prctl(PR_SET_DUMPABLE, 0)  # until the exec: not to be ptraced by the container's processes
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    keep = set(range(last + 1)) if sb.privileged else set(sb.capabilities)
    for cap in range(last + 1):
        if cap not in keep:
            _prctl(PR_CAPBSET_DROP, cap)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    os.setgroups(list(sb.groups))
    os.setresgid(sb.gid, sb.gid, sb.gid)
    os.setresuid(sb.uid, sb.uid, sb.uid)  # another user than root: no capabilities left
    if sb.uid == 0:
        mask = [sum(1 << (c - 32 * i) for c in keep if 32 * i <= c < 32 * (i + 1)) for i in (0, 1)]
        data = (_CapData * 2)(*(_CapData(m, m, 0) for m in mask))
        _check(_libc.syscall(SYS_CAPSET, ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), data), "capset")
    if sb.no_new_privs:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)


def _wait_and_exit(child: int) -> None:
    """The process the caller started, standing for the container's first process `child`: it
    lets every signal reach `child` (as its process group's), closes what the caller gave it
    (a subprocess's error pipe reads the end at once) and ends as `child` ends. Its name is
    procs.CONTAINER_COMM (its command line stays its parent's: the supervisor's, or exec's)."""
    name = ctypes.create_string_buffer(procs.CONTAINER_COMM.encode())
    _prctl(PR_SET_NAME, ctypes.addressof(name))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN,
                signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)
    os.closerange(3, 1 << 16)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code & 0xFF)


def enter(sb: Sandbox) -> None:
    """In a fresh child about to exec `argv(sb, ...)`: the container's namespaces and its root,
    then a fork: the new process, the first of the PID namespace (or one of the container's it
    joins), mounts its /proc, takes the container's user and capabilities and returns, to exec
    argv as the container's; the calling process never returns: it waits for that one and ends
    as it ends. Nothing of the container's root runs before the privileges go. Only for a
    single-threaded process (after fork, or one about to exec)."""
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
    mount("none", "/", None, MS_REC | MS_PRIVATE)  # nothing of the host's mounts comes in later
    child = os.fork()
    if child:
        _wait_and_exit(child)
    nsenter.die_with_parent()
    _mount_proc(sb.privileged)
    _drop_privileges(sb)


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
            _bind(source, root + b.target, b.read_only, MS_NOSUID | MS_NODEV)
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


# The programs of the chain, by absolute path (the same inside the container's root): a name
# would be looked up on the container's PATH.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the loader starts with: nothing of the container's environment until it loads it.
CLEAN_ENV = {"PATH": SYSTEM_PATH}


def _tool(name: str) -> str:
    return shutil.which(name, path=SYSTEM_PATH) or f"/usr/bin/{name}"


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
    """The argv that runs `command` in the sandbox `enter` made (as the container's user by
    then), with the environment in `env_fd` (env_file): run it with CLEAN_ENV and
    pass_fds=(env_fd,). Under tini when it is the PID namespace's first process (PID 1), so
    that the command gets SIGTERM and orphans are reaped; directly when it joins a container's."""
    first = [_tool("tini"), "-g", "--"] if sb.join is None else []
    return [_tool("bash"), "-c", LOADER % _tool("env"), "kubenet-lab-env", str(env_fd), *first, *command]


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
