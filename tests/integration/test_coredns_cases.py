"""CoreDNS's kubernetes plugin test cases against a real lab: each of CoreDNS's test worlds
(tests/integration/manifests/coredns-world/) brought up as a lab, and every case in scope of
tests/integration/data/coredns-kubernetes-cases.yaml asked from a pod of it, over UDP to the
nameserver of its resolv.conf (kube-dns's ClusterIP, through kube-proxy's rules to the lab's
CoreDNS pod); the replies compared as CoreDNS's test.SortAndCheck compares them."""
from __future__ import annotations

import contextlib
import random

import pytest
from dnslib import DNSRecord

from tests.dns_cases import WORLDS, Case, coredns_cases, differences, lab_cases

from .conftest import Lab, lab_namespaces, new_lab_name, torn_down, wait_for

CASES = coredns_cases()[0] + lab_cases()

# `python3 -c ASK QUERY_HEX...` in a pod: each query sent over UDP to the pod's first nameserver
# (resends after 2 s, up to 5 times: a lost datagram is no wrong answer), its reply printed in hex,
# one line each ("-" when none came).
ASK = """
import socket, sys
server = next(l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver"))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for q in sys.argv[1:]:
    query, reply = bytes.fromhex(q), "-"
    for _ in range(5):
        s.sendto(query, (server, 53))
        try:
            while True:
                data = s.recv(65535)
                if data[:2] == query[:2]:
                    reply = data.hex()
                    break
            break
        except socket.timeout:
            continue
    print(reply, flush=True)
"""


def ask(lab: Lab, cases: list[Case]) -> list[DNSRecord | None]:
    ids = random.sample(range(1, 65536), len(cases))
    out = lab.exec("client", "python3", "-c", ASK, *(c.query(i).hex() for c, i in zip(cases, ids))).stdout
    lines = out.split()
    assert len(lines) == len(cases), out
    return [None if line == "-" else DNSRecord.parse(bytes.fromhex(line)) for line in lines]


@pytest.fixture(scope="module")
def labs(host_before):
    """A lab of each world, up, its client pod answered by the cluster DNS."""
    made: dict[str, Lab] = {}
    with contextlib.ExitStack() as stack:
        for world in ("serve", "reverse"):
            lab = Lab(new_lab_name(f"cd{world[0]}"))
            stack.enter_context(torn_down(lab.name))
            lab("up", str(WORLDS / f"{world}.yaml"))
            # kube-dns answers once the CoreDNS pod runs and the client's rules lead to it
            probe = next(c for c in CASES if c.world == world)
            wait_for(lambda lab=lab, probe=probe: ask(lab, [probe])[0] is not None,
                     "the cluster DNS answering the client pod", timeout=60)
            made[world] = lab
        yield made
    assert not any(lab_namespaces(lab.name) for lab in made.values())


@pytest.fixture(scope="module")
def replies(labs):
    """Every case's reply, asked in one exec per world."""
    got = {}
    for world, lab in labs.items():
        mine = [c for c in CASES if c.world == world]
        got.update({c.id: r for c, r in zip(mine, ask(lab, mine))})
    return got


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_lab_answers_as_coredns(replies, case):
    reply = replies[case.id]
    assert reply is not None, f"no reply to {case.qname} {case.qtype}"
    assert reply.header.aa == 1 and reply.header.qr == 1
    assert differences(case, reply) == [], case.source


def test_a_pod_behind_no_service_has_no_ptr(labs):
    """reverse.go names ClusterIPs and endpoints only: the client pod's address, inside the reverse
    zone of the pods' subnet (0.10.in-addr.arpa), is NXDOMAIN with that zone's SOA."""
    lab = labs["reverse"]
    ip = lab.ip("client")
    name = ".".join(reversed(ip.split("."))) + ".in-addr.arpa."
    soa = "0.10.in-addr.arpa. 5 IN SOA ns.dns.0.10.in-addr.arpa. hostmaster.0.10.in-addr.arpa. 1 7200 1800 86400 5"
    case = Case(source="reverse.go serviceRecordForIP", world="reverse", qname=name, qtype="PTR", rcode="NXDOMAIN",
                ns=(soa,))
    (reply,) = ask(lab, [case])
    assert reply is not None and differences(case, reply) == []
