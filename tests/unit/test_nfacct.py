"""kernel/nfacct.py's netlink message (nfnetlink_acct's NFNL_MSG_ACCT_NEW, as the kernel's
nfnetlink_acct.h lays it out), and its answer when it cannot make counters."""
import struct

import pytest

from kubenet_lab.kernel import nfacct


def test_new_counter_message_is_nfnetlink_accts():
    msg = nfacct._new_message("localhost_nps_accepted_pkts", seq=7)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", msg)
    assert (length, kind, seq, pid) == (len(msg), 0x0700, 7, 0)  # NFNL_SUBSYS_ACCT << 8 | NFNL_MSG_ACCT_NEW
    assert flags == 0x1 | 0x4 | 0x400  # NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE: no EXCL, no REPLACE
    assert msg[16:20] == b"\0\0\0\0"  # nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id 0
    attr_len, attr_type = struct.unpack_from("=HH", msg, 20)
    assert attr_type == 1 and msg[24:24 + attr_len - 4] == b"localhost_nps_accepted_pkts\0"  # NFACCT_NAME
    assert len(msg) % 4 == 0


def test_a_name_longer_than_the_kernel_takes_is_refused():
    with pytest.raises(ValueError, match="longer than 31"):
        nfacct._new_message("x" * 32, seq=1)


def test_no_namespace_means_no_counters():
    assert nfacct.ensure("kubenet-lab-no-such-namespace", ["c"]) is False
