"""CoreDNS's kubernetes plugin test cases (tests/integration/data/coredns-kubernetes-cases.yaml)
against the lab's cluster DNS, without root: the records the plan of each CoreDNS world gives,
wire query in, wire reply out. test_coredns_cases (integration) asks the same from a pod of a lab
brought up from those worlds."""
from __future__ import annotations

import pytest
from dnslib import DNSRecord

from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.servers.dns import ClusterDNS
from tests.dns_cases import WORLDS, coredns_cases, differences, lab_cases

CASES, SKIPPED = coredns_cases()


@pytest.fixture(scope="module")
def servers():
    return {world: ClusterDNS(make_plan(load_model([str(WORLDS / f"{world}.yaml")]), "lab"))
            for world in ("serve", "reverse")}


@pytest.mark.parametrize("case", CASES + lab_cases(), ids=lambda c: c.id)
def test_the_lab_answers_as_coredns(servers, case):
    reply = DNSRecord.parse(servers[case.world].answer(case.query(4242), udp=True))
    assert reply.header.id == 4242
    assert differences(case, reply) == [], case.source


def test_every_case_out_of_scope_says_why():
    assert SKIPPED and all(len(s.reason) > 20 for s in SKIPPED)
    assert len(CASES) > 50
