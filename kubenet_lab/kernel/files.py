"""Reading a file of a directory a container can write, from outside it, safely: the path is
resolved with openat2(2) RESOLVE_IN_ROOT, so that `..` and symbolic links the container made
(`index.html -> /etc/shadow`) stay inside the directory, as they would inside the container."""
from __future__ import annotations

import ctypes
import errno
import os
import stat

from .nsenter import _libc

SYS_OPENAT2 = 437  # the same number on every architecture
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def open_beneath(root: str, path: str, path_only: bool = False) -> int:
    """A read-only descriptor (with `path_only`, an O_PATH one, as a bind mount's source through
    /proc/self/fd) of `path` resolved as if `root` were "/"; raises OSError."""
    rfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        how = _OpenHow(flags=(os.O_PATH if path_only else os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK) | os.O_CLOEXEC,
                       resolve=RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(SYS_OPENAT2, rfd, path.encode(), ctypes.byref(how), ctypes.sizeof(how))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return fd
    finally:
        os.close(rfd)


def read_beneath(root: str, path: str, limit: int = 16 << 20) -> bytes | None:
    """The content of regular file `path` under `root` (resolved as open_beneath does); None when
    it is a directory; OSError (ENOENT, EACCES, EFBIG, ...) otherwise."""
    fd = open_beneath(root, path.lstrip("/") or ".")
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return None
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EACCES, "not a regular file", path)
        if st.st_size > limit:
            raise OSError(errno.EFBIG, "too large to serve", path)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def makedirs_beneath(root: str, path: str, mode: int) -> None:
    """`path` (relative to `root`) made as directories where missing, each component opened
    without following links: a link a container planted in its volume, before or while this
    runs, cannot make this process create or chmod anything elsewhere (kubelet's subPath
    safety); raises OSError (ELOOP, ENOTDIR, ...) for one. The last component may be an existing
    regular file (a subPath naming a file an init container wrote); a directory made here gets
    `mode` through its own descriptor, opened without following links."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EINVAL, "'..' in a subPath", path)
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                os.mkdir(part, 0o700, dir_fd=fd)
            except FileExistsError:
                kind = os.O_PATH if last else os.O_PATH | os.O_DIRECTORY
                nxt = os.open(part, kind | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                if stat.S_ISLNK(os.fstat(nxt).st_mode):  # O_PATH|O_NOFOLLOW opens the link itself
                    os.close(nxt)
                    raise OSError(errno.ELOOP, "a symbolic link in a subPath", path) from None
            else:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                try:
                    os.fchmod(nxt, mode)
                except BaseException:
                    os.close(nxt)
                    raise
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
