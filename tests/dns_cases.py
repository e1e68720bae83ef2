"""CoreDNS's kubernetes plugin test cases as data (tests/integration/data/coredns-kubernetes-cases.yaml),
and the comparison its test.SortAndCheck makes (plugin/test/helpers.go): the rcode, the number of
records in each section, and each record's owner (exactly, case included), TTL (unless the case
says 303), type and the data it checks for that type, whatever the order of the records."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from dnslib import QTYPE, RCODE, RR, DNSRecord

HERE = Path(__file__).parent
CASES_FILE = HERE / "integration" / "data" / "coredns-kubernetes-cases.yaml"
WORLDS = HERE / "integration" / "manifests" / "coredns-world"
ANY_TTL = 303  # CoreDNS's test helpers: "don't care what the ttl is"


@dataclass(frozen=True)
class Case:
    source: str
    world: str
    qname: str
    qtype: str
    rcode: str = "NOERROR"
    answer: tuple[str, ...] = ()
    ns: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    substitute: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.world}:{self.qname}{self.qtype}"

    def query(self, qid: int) -> bytes:
        """The question as CoreDNS's test.Case.Msg() asks it: recursion desired, no EDNS."""
        q = DNSRecord.question(self.qname, self.qtype)
        q.header.id = qid
        return bytes(q.pack())


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str
    qname: str = ""
    qtype: str = ""


def _load() -> dict:
    return yaml.safe_load(CASES_FILE.read_text())


def _case(entry: dict, worlds: dict) -> Case:
    mapping = {**worlds[entry["world"]]["addresses"], **entry.get("substitute", {})}

    def mapped(records):
        return tuple(" ".join(mapping.get(t, t) for t in text.split()) for text in records or ())
    return Case(source=entry.get("source") or entry["derived"], world=entry["world"], qname=entry["qname"],
                qtype=entry["qtype"], rcode=entry["rcode"], answer=mapped(entry.get("answer")),
                ns=mapped(entry.get("ns")), extra=mapped(entry.get("extra")), substitute=mapping)


def coredns_cases() -> tuple[list[Case], list[Skipped]]:
    """CoreDNS's own cases: those in scope (addresses mapped to the world's) and those out of it."""
    data = _load()
    cases, skipped = [], []
    for entry in data["cases"]:
        if "skip" in entry:
            skipped.append(Skipped(entry["source"], " ".join(entry["skip"].split()), entry.get("qname", ""),
                                   entry.get("qtype", "")))
        else:
            cases.append(_case(entry, data["worlds"]))
    return cases, skipped


def lab_cases() -> list[Case]:
    """The answers worked out from CoreDNS's code where its cases need what the lab does not model."""
    data = _load()
    return [_case(entry, data["worlds"]) for entry in data["lab_cases"]]


def _key(rr: RR, with_ttl: bool) -> tuple:
    """What SortAndCheck compares of a record."""
    data = rr.rdata
    rtype = QTYPE.get(rr.rtype)
    if rtype == "SRV":
        value: tuple = (data.priority, data.weight, data.port, str(data.target))
    elif rtype == "SOA":
        value = (str(data.mname),)
    elif rtype == "TXT":
        value = (b"".join(data.data).decode(),)
    elif rtype in ("PTR", "CNAME", "NS"):
        value = (str(data.label),)
    else:
        value = (str(data),)
    return (str(rr.rname), rr.ttl if with_ttl else None, rtype, value)


def _expected(records: tuple[str, ...]) -> list[RR]:
    out = []
    for text in records:
        name, ttl, klass, rtype, *rest = text.split(None, 4)
        if rtype == "TXT":  # CoreDNS's test.TXT takes the text unquoted
            rest = [f'"{rest[0]}"']
        out.extend(RR.fromZone(" ".join([name, ttl, klass, rtype, *rest])))
    return out


def differences(case: Case, reply: DNSRecord) -> list[str]:
    """What differs between `reply` and the case, as SortAndCheck would report it (and CNAMEOrder,
    which TestServeDNS runs first: no CNAME after its target's records); [] when alike."""
    problems = []
    for i, rr in enumerate(reply.rr):  # test.CNAMEOrder, before any sorting
        if rr.rtype == QTYPE.CNAME and any(str(a.rname) == str(rr.rdata.label) for a in reply.rr[:i]):
            problems.append(f"CNAME {rr.rname} found after its target's records")
    got_rcode = RCODE.get(reply.header.rcode)
    if got_rcode != case.rcode:
        problems.append(f"rcode is {got_rcode}, expected {case.rcode}")
    for section, want_text, got in (("answer", case.answer, reply.rr), ("authority", case.ns, reply.auth),
                                    ("additional", case.extra, [r for r in reply.ar if r.rtype != QTYPE.OPT])):
        want = _expected(want_text)
        with_ttl = all(r.ttl != ANY_TTL for r in want)
        a = sorted(_key(r, with_ttl) for r in got)
        b = sorted(_key(r, with_ttl) for r in want)
        if a != b:
            problems.append(f"{section}: got {a}, expected {b}")
    return problems
