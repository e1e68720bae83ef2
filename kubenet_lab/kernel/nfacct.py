"""Extended accounting objects (nfnetlink_acct), the named packet counters an iptables rule
bumps with `-m nfacct --nfacct-name NAME`.

They belong to a network namespace, and a rule naming one that does not exist cannot be loaded.
`ensure` makes them in a namespace, as kube-proxy's nfacct runner does at start (Ensure: an
existing one is kept, with its counts), over one netfilter netlink socket: no `nfacct` tool, no
process. A kernel without nfnetlink_acct (or xt_nfacct) answers with an error, and the caller
writes its rules without the counters.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Iterable

from .nsenter import in_netns

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ACCT = 7
NFNL_MSG_ACCT_NEW = 0
NFACCT_NAME = 1
NFACCT_NAME_MAX = 32  # with its terminating NUL
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 0x1, 0x4, 0x400
NLMSG_ERROR = 2


def _new_message(name: str, seq: int) -> bytes:
    data = name.encode() + b"\0"
    if len(data) > NFACCT_NAME_MAX:
        raise ValueError(f"nfacct name {name!r} is longer than {NFACCT_NAME_MAX - 1} bytes")
    attr = struct.pack("=HH", 4 + len(data), NFACCT_NAME) + data
    attr += b"\0" * (-len(attr) % 4)
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0) + attr  # nfgenmsg: family, version, res_id
    header = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_ACCT << 8) | NFNL_MSG_ACCT_NEW,
                         NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, seq, 0)
    return header + body


def ensure_here(names: Iterable[str]) -> None:
    """The counters `names` exist in this thread's network namespace; OSError when the kernel
    cannot make them."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.settimeout(5)
        for seq, name in enumerate(names, start=1):
            sock.send(_new_message(name, seq))
            reply = sock.recv(65536)
            _, kind, _, got_seq, _ = struct.unpack_from("=IHHII", reply)
            if kind != NLMSG_ERROR or got_seq != seq:
                raise OSError(errno.EPROTO, f"unexpected netlink answer (type {kind}) for nfacct {name!r}")
            (code,) = struct.unpack_from("=i", reply, 16)
            if code not in (0, -errno.EBUSY):  # EBUSY: it exists already, and is kept
                raise OSError(-code, f"nfacct {name!r}: {os.strerror(-code)}")


def ensure(netns: str, names: Iterable[str]) -> bool:
    """The counters `names` exist in namespace `netns` (made where missing). False when this
    kernel cannot make them (no nfnetlink_acct): rules must then leave them out."""
    try:
        with in_netns(netns):
            ensure_here(list(names))
    except OSError:
        return False
    return True
