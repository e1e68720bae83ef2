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
    """`path` (relative to `root`) made as directories, each component opened without following
    links: a link a container planted in its volume cannot make this process create directories
    elsewhere (kubelet's subPath safety)."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in [p for p in path.split("/") if p not in ("", ".")]:
            if part == "..":
                raise OSError(errno.EINVAL, "'..' in a subPath", path)
            try:
                os.mkdir(part, mode, dir_fd=fd)
                os.chmod(part, mode, dir_fd=fd)
            except FileExistsError:
                pass
            nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
