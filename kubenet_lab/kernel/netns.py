"""Named network namespaces (`/run/netns/<name>`, the `ip netns` convention) without forking.

pyroute2's `netns.create()` forks a helper per namespace (3-5 ms). unshare(CLONE_NEWNET) moves
only the calling thread into a new namespace (the thread's own nsproxy), so the thread itself
can create it, bind it to its name, open sockets in it, and return with setns.
"""
from __future__ import annotations

import contextlib
import errno
import os
from typing import Callable, Iterable, Iterator, TypeVar

from kubenet_lab.kernel import nsenter
from kubenet_lab.kernel.nsenter import NETNS_RUN_DIR, netns_path

MS_REC = nsenter.MS_REC
MS_SHARED = 1 << 20
THREAD_NETNS = "/proc/thread-self/ns/net"

T = TypeVar("T")
_run_dir_ready = False


def prepare_run_dir() -> None:
    """Make /run/netns a shared mount point, as `ip netns add` does, so that unmounting a
    namespace there also unmounts the copies other mount namespaces (pods') hold; otherwise
    those copies would keep every namespace alive."""
    global _run_dir_ready
    if _run_dir_ready:
        return
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    try:
        nsenter.mount("none", NETNS_RUN_DIR, None, MS_SHARED | MS_REC)
    except OSError as e:
        if e.errno != errno.EINVAL:  # EINVAL: not a mount point yet
            raise
        nsenter.mount(NETNS_RUN_DIR, NETNS_RUN_DIR, None, nsenter.MS_BIND | MS_REC)
        nsenter.mount("none", NETNS_RUN_DIR, None, MS_SHARED | MS_REC)
    _run_dir_ready = True


def names(prefix: str = "") -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def _nsfs_dev() -> int:
    return os.stat(THREAD_NETNS).st_dev


def identity(name: str) -> tuple[int, int] | None:
    """(device, inode) of the namespace bound at `name`, None when nothing is bound there."""
    try:
        st = os.stat(netns_path(name))
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino) if st.st_dev == _nsfs_dev() else None


def exists(name: str) -> bool:
    return identity(name) is not None


@contextlib.contextmanager
def created(name: str) -> Iterator[None]:
    """Create namespace `name` and run the block with the calling thread inside it.

    Sockets opened in the block belong to the new namespace. The name is bound before the
    block runs; a failure before that leaves nothing behind."""
    path = netns_path(name)
    back = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
        try:
            nsenter.unshare(nsenter.CLONE_NEWNET)
            try:
                nsenter.mount(THREAD_NETNS, path, None, nsenter.MS_BIND)
            except BaseException:
                nsenter.setns(back)
                raise
        except BaseException:
            os.unlink(path)
            raise
        try:
            yield
        finally:
            nsenter.setns(back)
    finally:
        os.close(back)


def ensure(name: str) -> bool:
    """Create `name` unless it exists; True when created. A stale file (nothing bound) is
    replaced."""
    if exists(name):
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(netns_path(name))
    with created(name):
        pass
    return True


def remove(name: str) -> None:
    """Unbind and unlink; the kernel frees the namespace (and its veths, batched) once no
    process or socket is left inside. Tolerates a name already gone."""
    path = netns_path(name)
    try:
        nsenter.umount(path)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def visit(names: Iterable[str], fn: Callable[[str], T]) -> dict[str, T | None]:
    """fn(name) with the calling thread inside each namespace in turn (one setns each, no
    fork); None for a name with nothing bound. The thread returns to its namespace."""
    out: dict[str, T | None] = {}
    back = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for name in names:
            try:
                fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                out[name] = None
                continue
            try:
                nsenter.setns(fd)
            except OSError:  # a plain file: nothing bound
                out[name] = None
                continue
            finally:
                os.close(fd)
            try:
                out[name] = fn(name)
            finally:
                nsenter.setns(back)
    finally:
        os.close(back)
    return out
