"""The cluster DNS server (the lab's kube-dns): the records of the kubernetes/dns specification.

Records come from the plan, as CoreDNS's kubernetes plugin takes them from the API server:
  <svc>.<ns>.svc.<zone>            A: the ClusterIP, or each ready endpoint of a headless service
  <host>.<svc>.<ns>.svc.<zone>     A: an endpoint (host: its hostname, the pod's spec.hostname when
                                   its subdomain is the service or a written slice's
                                   endpoints[].hostname, else the dashed address, e.g. 10-244-1-5)
  _<port>._<proto>.<svc>...        SRV for named ports (per endpoint for headless services)
  <d>.<c>.<b>.<a>.in-addr.arpa     PTR: ClusterIP -> service, ready endpoint -> <host>.<svc>... (one
                                   per Service it is an endpoint of); no other address has one, a
                                   pod behind no Service included, as CoreDNS's reverse.go answers
  <a>-<b>-<c>-<d>.<ns>.pod.<zone>  A: any well-formed address in an existing namespace ("pods insecure")
  dns-version.<zone>               TXT: the schema version
Unknown names in our zones get NXDOMAIN, other types of existing names NODATA, both with the SOA.
The zone is answered in the case the query wrote it (owner, SOA, SRV targets), as CoreDNS does.
Our zones are the cluster zone and the reverse zones of the pod, service and node subnets (and
the PTR of any ClusterIP or endpoint outside them); any other name is REFUSED at once: the lab
has no way out, and a resolver waiting on a forwarder would hang.

update() runs on every reload of a running lab (thousands of services), so it only indexes
services by name and addresses by number; a query derives its few records from those, as CoreDNS
derives them from its informer caches.
"""
from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network
from typing import Callable, Iterable

from dnslib import (CNAME, EDNS0, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSError, DNSHeader,
                    DNSQuestion, DNSRecord)

from ..model.objects import Endpoint, EndpointSlice, Plan, PlannedPod, PlannedService
from ..kernel.nsenter import in_netns
from .base import Served

TTL = 5  # CoreDNS's default: a lab changes under its clients, answers must not linger
SCHEMA_TTL = 28800  # dns-version's TXT, as CoreDNS's kubernetes plugin serves it
SCHEMA_VERSION = "1.1.0"  # the specification's current version, which CoreDNS's kubernetes plugin serves
SOA_TIMERS = (7200, 1800, 86400, TTL)  # refresh, retry, expire, minimum (the negative-answer TTL)
UDP_PLAIN = 512
UDP_EDNS_MAX = 1232  # the DNS flag day 2020 size: no IP fragmentation on any sane path
TCP_MAX = 65535
TCP_IDLE = 10.0
CLASS_IN, CLASS_ANY = 1, 255

QTYPE_A, QTYPE_NS, QTYPE_SOA, QTYPE_PTR, QTYPE_TXT, QTYPE_SRV = (QTYPE.A, QTYPE.NS, QTYPE.SOA, QTYPE.PTR,
                                                                 QTYPE.TXT, QTYPE.SRV)
QTYPE_CNAME = QTYPE.CNAME
_RDATA = {QTYPE_A: A, QTYPE_PTR: PTR, QTYPE_NS: NS, QTYPE_TXT: TXT, QTYPE_CNAME: CNAME}


def reverse_name(ip: IPv4Address | str) -> str:
    return ".".join(reversed(str(ip).split("."))) + ".in-addr.arpa"


def reverse_zone(net: IPv4Network) -> str:
    """The smallest octet-aligned reverse zone holding `net` (10.244.0.0/16 -> 244.10.in-addr.arpa)."""
    octets = str(net.network_address).split(".")[: net.prefixlen // 8]
    return ".".join([*reversed(octets), "in-addr", "arpa"])


def dashed(ip: IPv4Address | str) -> str:
    return str(ip).replace(".", "-")


def _undashed(label: str) -> str | None:
    """10-244-1-5 -> 10.244.1.5; None unless it is a well-formed IPv4 address."""
    parts = label.split("-")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    try:
        return str(IPv4Address(".".join(parts)))
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# The index: services by name and addresses by number; records are derived per query, as
# CoreDNS derives them from its informer caches. Names are lower-case, without the final dot.
# --------------------------------------------------------------------------------------------

Record = tuple[int, object]  # (QTYPE, data): an address or a name, or (port, target, weight) for SRV
# A ready endpoint as the cluster DNS names it: its address, its hostname label, and its ports,
# (name, protocol, number) in lower case; a slice without ports gives the one port ("", "", -1),
# which counts in SRV weights and gives no record, as CoreDNS's port -1.
Port = tuple[str, str, int]
Named = tuple[str, str, tuple[Port, ...]]
NO_PORT: tuple[Port, ...] = (("", "", -1),)


@dataclass
class Index:
    zone: str
    reverse_zones: tuple[str, ...] = ()  # longest first, so the closest apex wins
    namespaces: frozenset[str] = frozenset()
    services: dict[str, PlannedService] = field(default_factory=dict)  # "<svc>.<ns>"
    cluster_ips: dict[int, PlannedService] = field(default_factory=dict)
    pods: dict[str, PlannedPod] = field(default_factory=dict)  # "namespace/name"
    slices: dict[str, list[EndpointSlice]] = field(default_factory=dict)  # "<svc>.<ns>": written, IPv4
    dns_ip: str | None = None
    serial: int = 0

    @cached_property
    def endpoint_ips(self) -> dict[int, list[str]]:
        """Ready endpoint address -> the names of it (<host>.<svc>..., one per Service); built on
        the first reverse query that needs it (most plans never see one), which keeps update()
        cheap."""
        found: dict[int, list[str]] = {}
        for svc in self.services.values():
            for ip, host, _ in self.named(svc):
                names = found.setdefault(int(IPv4Address(ip)), [])
                name = f"{host}.{self.service_name(svc)}"
                if name not in names:
                    names.append(name)
        return found

    def apex(self, name: str) -> str | None:
        """The zone of ours that holds `name`, or None when the name is not ours. kubeadm's
        Corefile gives CoreDNS all of in-addr.arpa, falling through to its forwarder for what it
        has no record of: so the PTR of a ClusterIP or endpoint outside the lab's subnets (a
        written slice's address) is ours too, in zone in-addr.arpa; any other such name is the
        forwarder's, which the lab has not (REFUSED)."""
        for zone in (self.zone, *self.reverse_zones):
            if name == zone or name.endswith("." + zone):
                return zone
        if name.endswith(".in-addr.arpa") and self._reverse(name):
            return "in-addr.arpa"
        return None

    def lookup(self, name: str) -> list[Record] | None:
        """The records at `name` (one of ours): [] for a name that exists without records of its
        own (an empty non-terminal such as `svc.<zone>`), None for a name that does not exist."""
        if name == self.zone:
            return []
        if name.endswith("." + self.zone):
            return self._forward(name[: -len(self.zone) - 1].split("."))
        return self._reverse(name)

    def _forward(self, labels: list[str]) -> list[Record] | None:
        match labels:
            case ["dns-version"]:
                return [(QTYPE_TXT, SCHEMA_VERSION)]
            case ["dns"] | ["svc"] | ["pod"]:
                return []
            case ["ns", "dns"]:
                return [(QTYPE_A, self.dns_ip)] if self.dns_ip else []
            case [ns, "svc" | "pod"]:
                return [] if ns in self.namespaces else None
            case [host, ns, "pod"]:
                ip = _undashed(host) if ns in self.namespaces else None
                return [(QTYPE_A, ip)] if ip else None
            case [name, ns, "svc"]:
                svc = self.services.get(f"{name}.{ns}")
                return self._service(svc) if svc else None
            case [first, name, ns, "svc"]:
                svc = self.services.get(f"{name}.{ns}")
                if svc is None:
                    return None
                return self._proto(svc, first[1:]) if first.startswith("_") else self._endpoint(svc, first)
            case [port, proto, name, ns, "svc"]:
                svc = self.services.get(f"{name}.{ns}")
                ok = svc and port.startswith("_") and proto.startswith("_")
                return self._srv(svc, port[1:], proto[1:]) if ok else None
        return None

    def _service(self, svc: PlannedService) -> list[Record] | None:
        if svc.type == "ExternalName" and svc.external_name:
            return [(QTYPE_CNAME, svc.external_name.rstrip(".").lower())]
        if svc.cluster_ip is not None:
            return [(QTYPE_A, str(svc.cluster_ip)), *self._srv_records(svc, self._srv_found(svc, None, None))]
        # Spec 2.4.1: a headless service without ready endpoints is NXDOMAIN.
        named = self.named(svc)
        if not named:
            return None
        ips = dict.fromkeys(ip for ip, _, _ in named)
        return [*((QTYPE_A, ip) for ip in ips), *self._srv_records(svc, self._srv_found(svc, None, None))]

    def _endpoint(self, svc: PlannedService, host: str) -> list[Record] | None:
        ips = dict.fromkeys(ip for ip, h, _ in self.named(svc) if h == host)
        return [(QTYPE_A, ip) for ip in ips] or None

    def _proto(self, svc: PlannedService, proto: str) -> list[Record] | None:
        """`_<proto>.<svc>...`: exists (no records) when some SRV record sits below it."""
        ports = {p.name.lower() for p in svc.ports if p.name and p.protocol.lower() == proto}
        if svc.headless:
            ports |= {name for _, _, found in self.named(svc) for name, p, _ in found if name and p == proto}
        return [] if any(self._srv(svc, port, proto) for port in ports) else None

    def _srv(self, svc: PlannedService, port_name: str, proto: str) -> list[Record] | None:
        """`_<port>._<proto>.<svc>...`: one SRV record per ready endpoint of the named port (spec
        2.4.2), or the ClusterIP's; None (NXDOMAIN) when no port has that name and protocol."""
        found = self._srv_found(svc, port_name, proto)
        return self._srv_records(svc, found) if found else None

    def _srv_found(self, svc: PlannedService, port_name: str | None, proto: str | None) -> list[tuple[int, str]]:
        """(port, target) of each port the query names (None: any), as CoreDNS's findServices
        lists them: a ClusterIP Service's own ports, with its name as target; a headless one's
        ready endpoints with each port of their slice, <host>.<svc>... as target (portless ones:
        port -1)."""
        name = self.service_name(svc)

        def wanted(p_name: str, p_proto: str) -> bool:
            return (port_name is None or p_name == port_name) and (proto is None or p_proto == proto)
        if svc.cluster_ip is not None:
            return [(p.port, name) for p in svc.ports if wanted((p.name or "").lower(), p.protocol.lower())]
        return [(number, f"{host}.{name}") for _, host, ports in self.named(svc)
                for p_name, p_proto, number in ports if wanted(p_name, p_proto)]

    @staticmethod
    def _srv_records(svc: PlannedService, found: list[tuple[int, str]]) -> list[Record]:
        """The SRV records as CoreDNS's backend_lookup.go SRV makes them: each weighs 100 / the
        number found (portless ones counted), one per target and port (endpoints sharing a
        hostname share a record), none for port -1."""
        records = dict.fromkeys((port, target) for port, target in found if port != -1)
        return [(QTYPE_SRV, (port, target, max(1, 100 // len(found)))) for port, target in records]

    def _reverse(self, name: str) -> list[Record] | None:
        octets = name[: -len(".in-addr.arpa")].split(".")
        if len(octets) < 4:
            return []  # above an address, inside a zone of ours
        ip = _ip_number(octets)
        if ip is None:
            return None
        svc = self.cluster_ips.get(ip)
        if svc is not None:
            return [(QTYPE_PTR, self.service_name(svc))]
        names = self.endpoint_ips.get(ip)
        if names:
            return [(QTYPE_PTR, name) for name in names]
        return None

    def ns_name(self, apex: str) -> str:
        """The name a zone's NS record gives its server: kube-dns's, as CoreDNS names it in a
        cluster (nsAddrs: the Service whose endpoint is its own pod; `ns.dns.<zone>` only when
        none is), under that zone."""
        return f"kube-dns.kube-system.svc.{apex}" if self.dns_ip else f"ns.dns.{apex}"

    def service_name(self, svc: PlannedService) -> str:
        return f"{svc.name}.{svc.namespace}.svc.{self.zone}".lower()

    def named(self, svc: PlannedService) -> list[Named]:
        """The ready endpoints of `svc` as CoreDNS reads them from its EndpointSlices. A Service
        without a selector: its written (and mirrored) slices themselves, every address of each
        ready endpoint with the slice's ports, whatever the Service's own ports are. One with a
        selector (or without slices: the API server's kubernetes): what the EndpointSlice
        controller puts in its slices, each ready pod with the ports of the Service its ports
        resolve to (and a portless headless Service's pods)."""
        slices = None if svc.selector else self.slices.get(f"{svc.name}.{svc.namespace}".lower())
        if slices:
            out: list[Named] = []
            for sl in slices:
                ports = tuple((p.name.lower(), p.protocol.lower(), p.port if p.port is not None else -1)
                              for p in sl.ports) or NO_PORT
                for e in sl.endpoints:
                    if e.is_ready:
                        out += [(ip, e.hostname.lower() if e.hostname else dashed(ip), ports) for ip in e.addresses]
            return out
        by_ip: dict[str, list[Port]] = {}
        hosts: dict[str, str] = {}
        for e in svc.addresses:
            if e.ready:
                by_ip.setdefault(str(e.ip), [])
                hosts.setdefault(str(e.ip), self._hostname(e, svc))
        for p in svc.ports:
            for e in p.endpoints:
                if e.ready:
                    by_ip.setdefault(str(e.ip), []).append(((p.name or "").lower(), p.protocol.lower(), e.port))
                    hosts.setdefault(str(e.ip), self._hostname(e, svc))
        return [(ip, hosts[ip], tuple(ports) or NO_PORT) for ip, ports in by_ip.items()]

    def _hostname(self, e: Endpoint, svc: PlannedService) -> str:
        hostname = e.hostname or _pod_hostname(self.pods.get(e.pod), svc)
        return hostname.lower() if hostname else dashed(e.ip)


def _pod_hostname(pod: PlannedPod | None, svc: PlannedService) -> str | None:
    """For a plan saved before endpoints carried their hostname: spec.hostname when the pod's
    spec.subdomain names this service."""
    hostname = pod.hostname if pod else None
    if hostname and pod.subdomain == svc.name:
        return hostname
    return None


def _ip_number(octets: list[str]) -> int | None:
    """The address of reversed octets ["5", "1", "244", "10"], or None when they are not one."""
    value = 0
    for octet in reversed(octets):
        if not (octet.isascii() and octet.isdigit() and len(octet) <= 3 and int(octet) <= 255):
            return None
        value = value << 8 | int(octet)
    return value


def build_index(plan: Plan) -> Index:
    cluster = plan.cluster
    zone = cluster.dns_domain.lower().rstrip(".")
    subnets = (cluster.pod_subnet, cluster.service_subnet, cluster.node_subnet)
    index = Index(zone=zone, reverse_zones=tuple(sorted({reverse_zone(n) for n in subnets}, key=len, reverse=True)),
                  namespaces=frozenset(n.lower() for n in plan.namespaces), serial=int(time.time()) & 0xFFFFFFFF)
    index.pods = {f"{p.namespace}/{p.name}": p for p in plan.pods}
    for sl in sorted(plan.endpoint_slices, key=lambda sl: sl.name):  # in name order, as kube-proxy's cache
        if sl.address_type == "IPv4" and sl.service:
            index.slices.setdefault(f"{sl.service}.{sl.namespace}".lower(), []).append(sl)
    for svc in plan.services:
        index.services[f"{svc.name}.{svc.namespace}".lower()] = svc
        if svc.cluster_ip is not None:
            index.cluster_ips[int(svc.cluster_ip)] = svc
    dns = index.services.get("kube-dns.kube-system")
    if dns is not None and dns.cluster_ip is not None:
        index.dns_ip = str(dns.cluster_ip)
    return index


# --------------------------------------------------------------------------------------------
# Answering.
# --------------------------------------------------------------------------------------------


class ClusterDNS:
    """Wire query in, wire reply out, from the records of the current plan."""

    def __init__(self, plan: Plan):
        self._index = build_index(plan)

    @property
    def zone(self) -> str:
        return self._index.zone

    def update(self, plan: Plan) -> None:
        """Swap in the records of a new plan (one assignment: queries never see half of it)."""
        self._index = build_index(plan)

    def answer(self, query: bytes, client_ip: str | None = None, *, udp: bool = False) -> bytes:
        """The reply to one DNS message; b"" when there is nothing to answer (a reply, or noise).

        `client_ip` is accepted for "pods verified" mode; the lab answers as "pods insecure".
        With `udp` the reply is cut to the client's buffer size (512, or its EDNS0 size), with
        TC set so it retries over TCP."""
        try:
            request = DNSRecord.parse(query)
        except (DNSError, ValueError, IndexError, struct.error, UnicodeError):
            return _format_error(query)
        if request.header.qr:
            return b""
        reply = self._reply(request)
        edns = _edns(request)
        if edns is not None:
            reply.add_ar(EDNS0(udp_len=UDP_EDNS_MAX))
        wire = bytes(reply.pack())
        limit = (max(UDP_PLAIN, min(edns, UDP_EDNS_MAX)) if edns is not None else UDP_PLAIN) if udp else TCP_MAX
        if len(wire) > limit:
            wire = bytes(_truncated(reply).pack())
        return wire

    def _reply(self, request: DNSRecord) -> DNSRecord:
        header = DNSHeader(id=request.header.id, qr=1, opcode=request.header.opcode, rd=request.header.rd, ra=0)
        reply = DNSRecord(header, q=request.q if request.questions else None)
        if request.header.opcode != 0:
            header.rcode = RCODE.NOTIMP
        elif len(request.questions) != 1:
            header.rcode = RCODE.FORMERR
        elif request.q.qclass not in (CLASS_IN, CLASS_ANY):
            header.rcode = RCODE.REFUSED
        elif request.q.qtype in (QTYPE.AXFR, QTYPE.IXFR):  # no transfer plugin: CoreDNS's handler refuses
            header.rcode = RCODE.REFUSED
        else:
            self._resolve(request.q, reply)
        return reply

    def _resolve(self, q: DNSQuestion, reply: DNSRecord) -> None:
        index = self._index
        name = str(q.qname).rstrip(".").lower()
        apex = index.apex(name)
        if apex is None:
            reply.header.rcode = RCODE.REFUSED
            return
        reply.header.aa = 1
        cased = _as_written(q.qname, apex)
        found = index.lookup(name)
        if found is None:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            records = list(found)
            if name == apex:
                records += [(QTYPE_SOA, None), (QTYPE_NS, index.ns_name(apex))]
            wanted = [r for r in records if q.qtype in (r[0], QTYPE.ANY)]
            alias = next((data for rtype, data in records if rtype == QTYPE_CNAME), None)
            if alias is not None:  # an alias answers a query of any type (RFC 1034 3.6.2)
                wanted = [(QTYPE_CNAME, alias)]
            for rr in _rrs(q.qname, wanted, index, apex, cased):
                reply.add_answer(rr)
            if alias is not None and q.qtype not in (QTYPE_CNAME, QTYPE.ANY):
                for rr in _chase(alias, q.qtype, index):
                    reply.add_answer(rr)
            for rr in _additional(wanted, index, apex, cased):
                reply.add_ar(rr)
        if not reply.rr:
            reply.add_auth(_soa(index, cased))


def _as_written(qname, apex: str) -> str:
    """The zone `apex` as the query wrote it (Cluster.Local): CoreDNS answers in the query's case
    (its handler_case_test), which keeps resolvers that randomise the case (0x20) content."""
    labels = qname.label[len(qname.label) - apex.count(".") - 1:]
    try:
        text = ".".join(label.decode("ascii") for label in labels)
    except UnicodeDecodeError:
        return apex
    return text if text.lower() == apex else apex


def _recased(name: str, apex: str, cased: str) -> str:
    """`name` (a name of ours, lower-case) with its zone written as the query wrote it."""
    if cased != apex and (name == apex or name.endswith("." + apex)):
        return name[: len(name) - len(apex)] + cased
    return name


def _rrs(owner, records: list[Record], index: Index, apex: str, cased: str) -> Iterable[RR]:
    for rtype, data in records:
        if rtype == QTYPE_SOA:
            yield _soa(index, cased)
        elif rtype == QTYPE_SRV:
            port, target, weight = data
            yield RR(owner, rtype, ttl=TTL, rdata=SRV(0, weight, port, _recased(target, apex, cased) + "."))
        elif rtype == QTYPE_NS:
            yield RR(owner, rtype, ttl=TTL, rdata=NS(_recased(data, apex, cased) + "."))
        else:  # dns-version's TXT lives longer, as CoreDNS gives it (28800 s)
            yield RR(owner, rtype, ttl=SCHEMA_TTL if rtype == QTYPE_TXT else TTL, rdata=_RDATA[rtype](data))


def _chase(target: str, qtype: int, index: Index) -> Iterable[RR]:
    """After an ExternalName's CNAME, the target's records of the type asked when the target is
    a name of ours (CoreDNS answers "external-to-service" with the CNAME and svc1's A); a name
    outside the lab gets the CNAME alone, which the client's resolver follows (and is refused)."""
    apex = index.apex(target)
    found = index.lookup(target) if apex is not None else None
    return _rrs(target + ".", [r for r in found or () if r[0] == qtype], index, apex or "", apex or "")


def _additional(records: list[Record], index: Index, apex: str, cased: str) -> Iterable[RR]:
    """The addresses of SRV and NS targets, so the client needs no second query (an NS target's
    is kube-dns's ClusterIP, under the name the NS gives, as CoreDNS's nsAddrs makes it)."""
    seen: set[str] = set()
    for rtype, data in records:
        target = data[1] if rtype == QTYPE_SRV else data if rtype == QTYPE_NS else None
        if target is None or target in seen:
            continue
        seen.add(target)
        found = [(QTYPE_A, index.dns_ip)] if rtype == QTYPE_NS and index.dns_ip else index.lookup(target)
        for t, ip in found or ():
            if t == QTYPE_A:
                yield RR(_recased(target, apex, cased) + ".", QTYPE_A, ttl=TTL, rdata=A(ip))


def _soa(index: Index, apex: str) -> RR:
    """The SOA of zone `apex` (written as the query wrote it)."""
    times = (index.serial, *SOA_TIMERS)
    return RR(apex + ".", QTYPE_SOA, ttl=TTL,
              rdata=SOA(f"ns.dns.{apex}.", f"hostmaster.{apex}.", times))


def _edns(request: DNSRecord) -> int | None:
    """The client's EDNS0 buffer size, or None when it sent no OPT record."""
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return rr.rclass
    return None


def _truncated(reply: DNSRecord) -> DNSRecord:
    header = reply.header
    short = DNSRecord(DNSHeader(id=header.id, qr=1, aa=header.aa, tc=1, rd=header.rd, rcode=header.rcode),
                      q=reply.q)
    for rr in reply.ar:
        if rr.rtype == QTYPE.OPT:
            short.add_ar(rr)
    return short


def _format_error(query: bytes) -> bytes:
    """FORMERR for a message with a readable header that is not a reply; silence for noise."""
    if len(query) < 12 or query[2] & 0x80:
        return b""
    (qid,) = struct.unpack("!H", query[:2])
    return bytes(DNSRecord(DNSHeader(id=qid, qr=1, rcode=RCODE.FORMERR)).pack())


# --------------------------------------------------------------------------------------------
# Serving, inside a namespace.
# --------------------------------------------------------------------------------------------


def _respond(dns: ClusterDNS, query: bytes, peer: str, udp: bool, log: Callable[[str], None]) -> bytes:
    """answer(), with any bug turned into SERVFAIL and a log line instead of a dead server."""
    try:
        return dns.answer(query, peer, udp=udp)
    except Exception as e:  # noqa: BLE001 - one bad query must not stop the cluster's DNS
        log(f"[ERROR] query from {peer}: {type(e).__name__}: {e}")
        if len(query) < 12:
            return b""
        return bytes(DNSRecord(DNSHeader(id=struct.unpack("!H", query[:2])[0], qr=1, rcode=RCODE.SERVFAIL)).pack())


class _UdpServer(asyncio.DatagramProtocol):
    def __init__(self, dns: ClusterDNS, log: Callable[[str], None]):
        self.dns, self.log = dns, log
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply = _respond(self.dns, data, addr[0], True, self.log)
        if reply and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable from a client that left: nothing to do


def _tcp_handler(dns: ClusterDNS, log: Callable[[str], None], served: Served):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.track(asyncio.current_task())
        peer = (writer.get_extra_info("peername") or ("?",))[0]
        try:
            while True:
                (size,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE))
                query = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE)
                reply = _respond(dns, query, peer, False, log)
                if reply:
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
    return handle


def _bound_sockets(netns: str, port: int) -> tuple[socket.socket, socket.socket]:
    with in_netns(netns):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp.bind(("0.0.0.0", port))
        tcp.bind(("0.0.0.0", port))
        tcp.listen(128)
        udp.setblocking(False)
        tcp.setblocking(False)
    except OSError:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


async def serve_dns(netns: str, port: int, dns: ClusterDNS, log: Callable[[str], None]) -> Served:
    """Serve `dns` on UDP and TCP `port` of every address of network namespace `netns`.

    The sockets are made inside the namespace (a socket stays in the namespace it was made in)
    and served by the running loop; close() on the result ends both, and live TCP clients."""
    udp, tcp = _bound_sockets(netns, port)
    loop = asyncio.get_running_loop()
    served = Served()
    try:
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpServer(dns, log), sock=udp)
        served.transports.append(transport)
        served.servers.append(await asyncio.start_server(_tcp_handler(dns, log, served), sock=tcp))
    except BaseException:
        served.close()
        udp.close()
        tcp.close()
        raise
    log(f"[INFO] cluster DNS for {dns.zone} on 0.0.0.0:{port} (udp, tcp)")
    return served


__all__ = ["ClusterDNS", "serve_dns", "build_index", "reverse_name", "TTL", "SCHEMA_VERSION"]
