"""Entering namespaces without forking helpers: setns(2), unshare(2), mount(2) through libc.

Python 3.11 has no os.setns/os.unshare, and pyroute2's netns helpers fork a process per call
(3-5 ms each, see STYLE.md); setns on the calling thread costs 0.3 ms. Everything that must run
inside a lab namespace goes through here.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import threading
from typing import Iterator, Mapping

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MNT_DETACH = 0x2

NETNS_RUN_DIR = "/run/netns"


def _load_libc() -> ctypes.CDLL:
    """By its soname: ctypes.util.find_library runs ldconfig, a process, on every start. Loaded at
    import, never later: a forked child (preexec_fn) must not import or dlopen."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c"), use_errno=True)


_libc = _load_libc()
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_local = threading.local()


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                    data.encode() if data else None),
        f"mount {target}",
    )


def umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the block with the calling thread inside network namespace `name`.

    Sockets and child processes created in the block belong to that namespace; sockets stay
    there after the block. Nested use returns to the enclosing namespace."""
    fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)
        try:
            yield
        finally:
            setns(back)
    finally:
        os.close(fd)
        os.close(back)


PR_SET_PDEATHSIG = 1


def socket_in(netns: str, type_: int = socket.SOCK_STREAM) -> socket.socket:
    """An IPv4 socket of `type_` made inside network namespace `netns` (it stays there)."""
    with in_netns(netns):
        return socket.socket(socket.AF_INET, type_)


def bound_socket(netns: str, type_: int, port: int) -> socket.socket:
    """A non-blocking socket of `type_` inside `netns`, bound to 0.0.0.0:port (address reuse on),
    listening when it is a stream socket: a server of a node's (kube-proxy's health, the
    userspace proxy's ports)."""
    sock = socket_in(netns, type_)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        if type_ == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def die_with_parent() -> None:
    """In a fresh child: be killed (SIGKILL) when the process that forked it dies."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")


def enter_pod(netns: str, hostname: str | None = None, files: Mapping[str, str] | None = None) -> None:
    """Move the calling process (a child about to exec) into a pod's namespaces.

    Network: the pod's named namespace. UTS: a fresh one whose hostname is the pod's name.
    Mount: a fresh private one where `files` (target path -> content, e.g. /etc/resolv.conf)
    cover the targets, as `ip netns exec` does with /etc/netns/<name>/; nothing reaches the
    host's mount namespace or its disk. Only for a single-threaded child (after fork, or a
    process that will exec)."""
    fd = os.open(netns_path(netns), os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)
    flags = (CLONE_NEWUTS if hostname else 0) | (CLONE_NEWNS if files else 0)
    if flags:
        unshare(flags)
    if hostname:
        sethostname(hostname)
    if files:
        # Keep our mounts from propagating back to the host's mount namespace.
        mount("none", "/", None, MS_REC | MS_SLAVE)
        _cover_files(files)
        # A sysfs of this namespace, so /sys/class/net lists the pod's links as `ip netns exec` shows.
        try:
            umount("/sys")
            mount("sysfs", "/sys", "sysfs", 0)
        except OSError:
            pass


# The scratch tmpfs lives for a few microseconds, in the child's private mount namespace, before
# anything of the pod runs there; it goes on /run/netns because that directory surely exists (the
# pod's namespace was just opened from it) and, covered that briefly, hides nothing anyone uses.
SCRATCH_DIR = NETNS_RUN_DIR


def _cover_files(files: Mapping[str, str], scratch: str = SCRATCH_DIR) -> None:
    """Bind-mount each content over its target from a tmpfs, then let go of the tmpfs.

    Per-pod files on the host's /run cost a disk create and unlink each (/run may be ext4);
    a tmpfs made here costs no disk, and the bind mounts keep its files alive after the lazy
    unmount, for as long as this mount namespace lives."""
    mount("tmpfs", scratch, "tmpfs", 0, "size=64k,nr_inodes=16,mode=0755")
    try:
        for i, (target, content) in enumerate(files.items()):
            if not os.path.exists(target):
                continue
            source = os.path.join(scratch, str(i))
            fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, content.encode())
            finally:
                os.close(fd)
            mount(source, target, None, MS_BIND)
    finally:
        umount(scratch)
