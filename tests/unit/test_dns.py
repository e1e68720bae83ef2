"""The cluster DNS answers, without root: wire query in, wire reply out, checked with dnslib."""
from __future__ import annotations

import dataclasses
import io
import random
import textwrap
from ipaddress import IPv4Address

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.model.objects import (ClusterConfig, Container, ContainerPort, Endpoint, Model, Pod, PodSpec,
                                    PlannedService, PlannedServicePort, Service, ServicePort)
from kubenet_lab.servers.dns import ClusterDNS, reverse_name

ZONE = "cluster.local"


def pod(name, ns, labels, ports=()):
    c = Container("c", "nginx", ports=tuple(ContainerPort(p, name=n) for p, n in ports))
    return Pod(ns, name, dict(labels), PodSpec(containers=(c,)))


def model(extra_services=(), cluster=None):
    pods = (pod("web-1", "default", {"app": "web"}, [(8080, "http")]),
            pod("web-2", "default", {"app": "web"}, [(8080, "http")]),
            pod("db-0", "shop", {"app": "db"}, [(5432, "pg")]),
            pod("db-1", "shop", {"app": "db"}, [(5432, "pg")]),
            pod("loner", "default", {"app": "none"}))
    services = (
        Service("default", "web", selector={"app": "web"},
                ports=(ServicePort(80, name="http", target_port="http"), ServicePort(9090, target_port=8080))),
        Service("shop", "web", selector={"app": "db"}, ports=(ServicePort(80, target_port=5432),)),
        Service("shop", "db", selector={"app": "db"}, cluster_ip="None",
                ports=(ServicePort(5432, name="pg", target_port="pg"),)),
        Service("shop", "db-sts", selector={"app": "db"}, cluster_ip="None"),
        Service("default", "empty", selector={"app": "nothing"}, cluster_ip="None",
                ports=(ServicePort(80, name="http"),)),
        *extra_services)
    return Model(cluster=cluster or ClusterConfig(), pods=pods, services=services)


@pytest.fixture(scope="module")
def plan():
    return make_plan(model(), "lab")


@pytest.fixture(scope="module")
def dns(plan):
    return ClusterDNS(plan)


def ask(dns, name, qtype="A", **kw) -> DNSRecord:
    return DNSRecord.parse(dns.answer(DNSRecord.question(name, qtype).pack(), **kw))


def values(reply, rtype=None):
    return [str(rr.rdata) for rr in reply.rr if rtype is None or rr.rtype == getattr(QTYPE, rtype)]


def svc(plan, key):
    return next(s for s in plan.services if s.key == key)


def pod_ips(plan, ns, app):
    return sorted((str(p.ip) for p in plan.pods if p.namespace == ns and p.labels.get("app") == app),
                  key=lambda ip: IPv4Address(ip))


def dashed(ip):
    return ip.replace(".", "-")


# --------------------------------------------------------------------------- A records


def test_cluster_ip_service_has_one_authoritative_a_record(dns, plan):
    reply = ask(dns, f"web.default.svc.{ZONE}")
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa == 1 and reply.header.qr == 1
    assert str(reply.q.qname) == f"web.default.svc.{ZONE}."
    assert values(reply) == [str(svc(plan, "default/web").cluster_ip)]
    assert reply.rr[0].ttl == 5


def test_same_name_in_two_namespaces_are_two_services(dns, plan):
    assert values(ask(dns, f"web.shop.svc.{ZONE}")) == [str(svc(plan, "shop/web").cluster_ip)]
    assert svc(plan, "shop/web").cluster_ip != svc(plan, "default/web").cluster_ip


def test_headless_service_answers_every_ready_endpoint(dns, plan):
    assert sorted(values(ask(dns, f"db.shop.svc.{ZONE}")), key=IPv4Address) == pod_ips(plan, "shop", "db")


def test_portless_headless_service_answers_its_selected_pods(dns, plan):
    assert sorted(values(ask(dns, f"db-sts.shop.svc.{ZONE}")), key=IPv4Address) == pod_ips(plan, "shop", "db")


def test_portless_headless_service_answers_only_its_ready_pods_unless_it_publishes_not_ready(plan):
    """Readiness of a portless headless service's pods: the endpoints controller lists a pod that
    is not ready under notReadyAddresses (CoreDNS leaves it out); publishNotReadyAddresses keeps
    it; a pod that ended is no endpoint at all."""
    from kubenet_lab.output import endpoint_subsets, endpoints_column
    from kubenet_lab.plan.services import with_readiness
    db0, db1 = pod_ips(plan, "shop", "db")
    viewed = with_readiness(plan, {"shop/db-0"})
    assert values(ask(ClusterDNS(viewed), f"db-sts.shop.svc.{ZONE}")) == [db1]
    [subset] = endpoint_subsets(viewed, svc(viewed, "shop/db-sts"))
    assert ([a["ip"] for a in subset["addresses"]], [a["ip"] for a in subset["notReadyAddresses"]]) == ([db1], [db0])
    assert "ports" not in subset and subset["addresses"][0]["targetRef"]["name"] == "db-1"
    assert endpoints_column(viewed, svc(viewed, "shop/db-sts")) == db1  # kubectl: the IPs of a portless subset
    none_ready = with_readiness(plan, {"shop/db-0", "shop/db-1"})
    assert ask(ClusterDNS(none_ready), f"db-sts.shop.svc.{ZONE}").header.rcode == RCODE.NXDOMAIN
    assert endpoints_column(none_ready, svc(none_ready, "shop/db-sts")) == "<none>"
    published = make_plan(model((Service("shop", "db-pub", selector={"app": "db"}, cluster_ip="None",
                                         publish_not_ready_addresses=True),)), "lab")
    viewed = with_readiness(published, {"shop/db-0"}, terminal={"shop/db-1"})
    assert values(ask(ClusterDNS(viewed), f"db-pub.shop.svc.{ZONE}")) == [db0]
    # only a headless service lists addresses without ports
    assert svc(plan, "shop/db-sts").addresses and not any(s.addresses for s in plan.services if s.ports)


def test_headless_service_without_endpoints_is_nxdomain_as_the_spec_says(dns):
    assert ask(dns, f"empty.default.svc.{ZONE}").header.rcode == RCODE.NXDOMAIN


def test_endpoint_hostname_records(dns, plan):
    for ip in pod_ips(plan, "shop", "db"):
        assert values(ask(dns, f"{dashed(ip)}.db.shop.svc.{ZONE}")) == [ip]
    assert ask(dns, f"10-9-9-9.db.shop.svc.{ZONE}").header.rcode == RCODE.NXDOMAIN


def test_names_are_case_insensitive_and_the_question_is_echoed(dns, plan):
    reply = ask(dns, "WeB.DeFault.SVC.Cluster.Local")
    assert values(reply) == [str(svc(plan, "default/web").cluster_ip)]
    assert str(reply.q.qname) == "WeB.DeFault.SVC.Cluster.Local."
    assert str(reply.rr[0].rname) == "WeB.DeFault.SVC.Cluster.Local."


def test_kube_dns_service_has_the_tenth_address(dns):
    assert values(ask(dns, f"kube-dns.kube-system.svc.{ZONE}")) == ["10.96.0.10"]


# --------------------------------------------------------------------------- SRV


def test_srv_for_a_named_port_of_a_cluster_ip_service(dns, plan):
    reply = ask(dns, f"_http._tcp.web.default.svc.{ZONE}", "SRV")
    [srv] = [rr.rdata for rr in reply.rr]
    assert (srv.priority, srv.weight, srv.port, str(srv.target)) == (0, 100, 80, f"web.default.svc.{ZONE}.")
    assert [(str(rr.rname), str(rr.rdata)) for rr in reply.ar] == [
        (f"web.default.svc.{ZONE}.", str(svc(plan, "default/web").cluster_ip))]


def test_srv_for_a_headless_service_names_each_endpoint(dns, plan):
    reply = ask(dns, f"_pg._tcp.db.shop.svc.{ZONE}", "SRV")
    ips = pod_ips(plan, "shop", "db")
    got = sorted((rr.rdata.priority, rr.rdata.weight, rr.rdata.port, str(rr.rdata.target)) for rr in reply.rr)
    assert got == sorted((0, 50, 5432, f"{dashed(ip)}.db.shop.svc.{ZONE}.") for ip in ips)
    assert sorted((str(rr.rname), str(rr.rdata)) for rr in reply.ar) == sorted(
        (f"{dashed(ip)}.db.shop.svc.{ZONE}.", ip) for ip in ips)


def test_no_srv_for_unknown_port_names_or_protocols(dns):
    assert ask(dns, f"_nope._tcp.web.default.svc.{ZONE}", "SRV").header.rcode == RCODE.NXDOMAIN
    assert ask(dns, f"_http._udp.web.default.svc.{ZONE}", "SRV").header.rcode == RCODE.NXDOMAIN


def test_protocol_label_above_an_srv_record_is_nodata(dns):
    reply = ask(dns, f"_tcp.web.default.svc.{ZONE}", "SRV")
    assert reply.header.rcode == RCODE.NOERROR and not reply.rr and reply.auth


# --------------------------------------------------------------------------- PTR


def test_ptr_for_a_cluster_ip(dns, plan):
    ip = svc(plan, "default/web").cluster_ip
    assert values(ask(dns, reverse_name(ip), "PTR")) == [f"web.default.svc.{ZONE}."]


def test_ptr_for_endpoints_names_every_service_with_the_endpoint(dns, plan):
    ip = pod_ips(plan, "shop", "db")[0]
    assert sorted(values(ask(dns, reverse_name(ip), "PTR"))) == sorted(
        f"{dashed(ip)}.{name}.shop.svc.{ZONE}." for name in ("db", "db-sts", "web"))


def test_no_ptr_for_a_pod_behind_no_service(dns, plan):
    """CoreDNS's reverse.go (coredns/coredns 4b26cced3) names an address only when it is a
    ClusterIP or an endpoint's: a pod behind no Service has no PTR (NXDOMAIN with the reverse
    zone's SOA, as its reverse_test gives 101.0.0.10.in-addr.arpa.)."""
    ip = str(plan.pod("default/loner").ip)
    reply = ask(dns, reverse_name(ip), "PTR")
    assert (reply.header.rcode, reply.rr, [str(rr.rname) for rr in reply.auth]) == (
        RCODE.NXDOMAIN, [], ["244.10.in-addr.arpa."])


def test_unknown_reverse_names(dns):
    unknown = ask(dns, "250.250.244.10.in-addr.arpa", "PTR")
    assert unknown.header.rcode == RCODE.NXDOMAIN and unknown.header.aa == 1
    assert str(unknown.auth[0].rname) == "244.10.in-addr.arpa."
    assert ask(dns, "1.1.168.192.in-addr.arpa", "PTR").header.rcode == RCODE.REFUSED
    assert ask(dns, "x.1.244.10.in-addr.arpa", "PTR").header.rcode == RCODE.NXDOMAIN


# --------------------------------------------------------------------------- pods, apex, version


def test_pod_records_answer_any_well_formed_address_in_an_existing_namespace(dns):
    assert values(ask(dns, f"10-244-7-9.default.pod.{ZONE}")) == ["10.244.7.9"]
    assert values(ask(dns, f"1-2-3-4.shop.pod.{ZONE}")) == ["1.2.3.4"]
    for bad in ("10-244-7-300", "10-244-7", "a-b-c-d", "10-244-07-9"):
        assert ask(dns, f"{bad}.default.pod.{ZONE}").header.rcode == RCODE.NXDOMAIN, bad
    assert ask(dns, f"10-244-7-9.nowhere.pod.{ZONE}").header.rcode == RCODE.NXDOMAIN


def test_dns_version(dns):
    """Spec 2.2: the schema version, 1.1.0 as CoreDNS answers it (DNSSchemaVersion)."""
    assert values(ask(dns, f"dns-version.{ZONE}", "TXT")) == ['"1.1.0"']


def test_zone_apex_has_soa_and_ns_with_glue(dns):
    """The NS names kube-dns, with its ClusterIP as glue, as CoreDNS's nsAddrs (plugin/kubernetes/
    ns.go, coredns/coredns 4b26cced3) gives it in a cluster: the Service whose endpoint is its own
    pod, under the zone asked (its apex test's ns.dns.<zone> is the fallback for a server that is
    no Service's endpoint). `ns.dns.<zone>` still answers with that address."""
    soa = ask(dns, ZONE, "SOA").rr[0]
    assert (str(soa.rdata.mname), soa.rdata.times[-1]) == (f"ns.dns.{ZONE}.", 5)
    ns = ask(dns, ZONE, "NS")
    assert values(ns) == [f"kube-dns.kube-system.svc.{ZONE}."]
    assert [(str(rr.rname), str(rr.rdata)) for rr in ns.ar] == [(f"kube-dns.kube-system.svc.{ZONE}.", "10.96.0.10")]
    rev = ask(dns, "244.10.in-addr.arpa", "NS")
    assert values(rev) == ["kube-dns.kube-system.svc.244.10.in-addr.arpa."]
    assert [str(rr.rdata) for rr in rev.ar] == ["10.96.0.10"]
    assert values(ask(dns, f"ns.dns.{ZONE}")) == ["10.96.0.10"]


# --------------------------------------------------------------------------- negative answers


def test_unknown_name_in_the_zone_is_nxdomain_with_the_soa(dns):
    reply = ask(dns, f"nope.default.svc.{ZONE}")
    assert reply.header.rcode == RCODE.NXDOMAIN and reply.header.aa == 1 and not reply.rr
    [soa] = reply.auth
    assert soa.rtype == QTYPE.SOA and str(soa.rname) == f"{ZONE}." and soa.rdata.times[-1] == 5
    assert ask(dns, f"web.nowhere.svc.{ZONE}").header.rcode == RCODE.NXDOMAIN


def test_existing_name_other_type_is_nodata_with_the_soa(dns):
    for name, qtype in ((f"web.default.svc.{ZONE}", "AAAA"), (f"web.default.svc.{ZONE}", "TXT"),
                        (f"default.svc.{ZONE}", "A"), (f"svc.{ZONE}", "A"), (f"shop.pod.{ZONE}", "A"),
                        (f"10-1-2-3.default.pod.{ZONE}", "AAAA")):
        reply = ask(dns, name, qtype)
        assert (reply.header.rcode, len(reply.rr), len(reply.auth)) == (RCODE.NOERROR, 0, 1), (name, qtype)
        assert reply.auth[0].rtype == QTYPE.SOA


def test_names_outside_the_zone_are_refused_not_forwarded(dns):
    for name in ("example.com", "cluster.local.example.com", "local", "."):
        reply = ask(dns, name)
        assert reply.header.rcode == RCODE.REFUSED and reply.header.aa == 0 and not reply.rr, name


def test_other_classes_and_opcodes(dns):
    chaos = DNSRecord.question("version.bind", "TXT", "CH")
    assert DNSRecord.parse(dns.answer(chaos.pack())).header.rcode == RCODE.REFUSED
    notify = DNSRecord.question(f"web.default.svc.{ZONE}")
    notify.header.opcode = 4
    assert DNSRecord.parse(dns.answer(notify.pack())).header.rcode == RCODE.NOTIMP
    # zone transfers: CoreDNS's kubernetes handler refuses them without the transfer plugin
    for qtype in ("AXFR", "IXFR"):
        assert ask(dns, ZONE, qtype).header.rcode == RCODE.REFUSED


# --------------------------------------------------------------------------- wire handling


def test_malformed_input_never_raises():
    dns = ClusterDNS(make_plan(model(), "lab"))
    good = DNSRecord.question(f"web.default.svc.{ZONE}").pack()
    rng = random.Random(7)
    samples = [b"", b"\x00", good[:5], good[:12], good[:-3], good + b"\xff" * 3]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(500)]
    samples += [good[:i] + bytes([rng.randrange(256)]) + good[i + 1:] for i in range(len(good)) for _ in range(4)]
    for raw in samples:
        assert isinstance(dns.answer(raw), bytes)
        assert isinstance(dns.answer(raw, udp=True), bytes)


def test_a_broken_query_with_a_header_gets_formerr_with_its_id(dns):
    good = DNSRecord.question(f"web.default.svc.{ZONE}").pack()
    reply = DNSRecord.parse(dns.answer(good[:-3]))
    assert reply.header.rcode == RCODE.FORMERR and reply.header.id == DNSRecord.parse(good).header.id


def test_replies_and_noise_get_no_answer(dns):
    response = DNSRecord.question(f"web.default.svc.{ZONE}").reply().pack()
    assert dns.answer(response) == b""
    assert dns.answer(b"\x01\x02") == b""


def test_edns_is_answered_with_an_opt_record(dns):
    q = DNSRecord.question(f"web.default.svc.{ZONE}")
    q.add_ar(EDNS0(udp_len=4096))
    reply = DNSRecord.parse(dns.answer(q.pack(), udp=True))
    assert [rr.rtype for rr in reply.ar] == [QTYPE.OPT] and values(reply, "A")


def _big_headless(plan, n):
    eps = tuple(Endpoint(IPv4Address(int(IPv4Address("10.244.0.2")) + i), 80, f"default/p{i}", "node1")
                for i in range(n))
    big = PlannedService("default", "big", "ClusterIP", None, (PlannedServicePort("http", "TCP", 80, 80, None, eps),))
    return dataclasses.replace(plan, services=plan.services + (big,))


def test_large_udp_answers_are_truncated_and_complete_over_tcp(plan):
    dns = ClusterDNS(_big_headless(plan, 100))
    name = f"big.default.svc.{ZONE}"
    small = ask(dns, name, udp=True)
    assert small.header.tc == 1 and not small.rr and str(small.q.qname) == name + "."
    assert len(ask(dns, name).rr) == 100
    bare = ask(dns, name, "SRV")  # SRV at the bare name too, as CoreDNS answers it: every port of every endpoint
    assert len(bare.rr) == 100 and {rr.rdata.weight for rr in bare.rr} == {1}
    srv = ask(dns, f"_http._tcp.{name}", "SRV")
    assert len(srv.rr) == 100 and {rr.rdata.weight for rr in srv.rr} == {1}


# --------------------------------------------------------------------------- updates


def test_update_picks_up_a_new_service_and_forgets_a_removed_one():
    dns = ClusterDNS(make_plan(model(), "lab"))
    assert ask(dns, f"api.default.svc.{ZONE}").header.rcode == RCODE.NXDOMAIN
    added = make_plan(model((Service("default", "api", selector={"app": "web"}, ports=(ServicePort(80),)),)), "lab")
    dns.update(added)
    assert values(ask(dns, f"api.default.svc.{ZONE}")) == [str(svc(added, "default/api").cluster_ip)]
    dns.update(make_plan(model(), "lab"))
    assert ask(dns, f"api.default.svc.{ZONE}").header.rcode == RCODE.NXDOMAIN


def test_another_cluster_domain():
    dns = ClusterDNS(make_plan(model(cluster=ClusterConfig(dns_domain="lab.example")), "lab"))
    assert values(ask(dns, "web.default.svc.lab.example"))
    assert ask(dns, f"web.default.svc.{ZONE}").header.rcode == RCODE.REFUSED


def many_services(count: int) -> tuple[PlannedService, ...]:
    """`count` services of two ports and three endpoints each, every fifth headless."""
    services = []
    for i in range(count):
        eps = tuple(Endpoint(IPv4Address(int(IPv4Address("10.244.0.2")) + (3 * i + k) % 60000), 8080,
                             f"default/p{i}-{k}", "node1") for k in range(3))
        headless = i % 5 == 0
        services.append(PlannedService(
            "default", f"s{i}", "ClusterIP", None if headless else IPv4Address(int(IPv4Address("10.96.1.0")) + i),
            (PlannedServicePort("http", "TCP", 80, 8080, None, eps),
             PlannedServicePort("m", "TCP", 81, 8080, None, eps))))
    return tuple(services)


def test_an_update_to_5000_services_answers_for_all_of_them(plan):
    """How long the update takes is bench/bench_dns.py's to print, not a test's to assert."""
    big = dataclasses.replace(plan, services=many_services(5000))
    dns = ClusterDNS(plan)
    dns.update(big)
    assert len(values(ask(dns, f"s10.default.svc.{ZONE}"))) == 3
    assert values(ask(dns, f"s4999.default.svc.{ZONE}")) == ["10.96.20.135"]
    assert values(ask(dns, reverse_name(IPv4Address("10.96.1.7")), "PTR")) == [f"s7.default.svc.{ZONE}."]


def test_pod_hostname_and_subdomain_name_a_headless_endpoint():
    spec = PodSpec(containers=(Container("c", "nginx", ports=(ContainerPort(80),)),), hostname="db-a", subdomain="dbs")
    m = Model(pods=(Pod("shop", "db-x7k2p", {"app": "dbs"}, spec),),
              services=(Service("shop", "dbs", selector={"app": "dbs"}, cluster_ip="None",
                                ports=(ServicePort(80, name="http"),)),))
    plan = make_plan(m, "lab")
    ip = str(plan.pod("shop/db-x7k2p").ip)
    assert values(ask(ClusterDNS(plan), f"db-a.dbs.shop.svc.{ZONE}"), "A") == [ip]


# --------------------------------------------------------------------------- hostnames and readiness


def hostname_model(template_hostname=True):
    """Two pods named by spec.hostname under the headless Service `dbs` (one of them will be not
    ready), `dbs-pub` over the same pods publishing not-ready addresses, the published `peers`
    whose pods' subdomain it is, and a Deployment's two replicas sharing the template's hostname."""
    def named(name, labels, hostname, subdomain):
        spec = PodSpec(containers=(Container("c", "nginx", ports=(ContainerPort(80, name="http"),)),),
                       hostname=hostname, subdomain=subdomain)
        return Pod("shop", name, dict(labels), spec)
    http = (ServicePort(80, name="http", target_port="http"),)
    pods = (named("db-x1", {"app": "db"}, "db-a", "dbs"), named("db-x2", {"app": "db"}, "db-b", "dbs"),
            named("peer-x1", {"app": "peer"}, "peer-a", "peers"), named("peer-x2", {"app": "peer"}, "peer-b", "peers"),
            named("web-5d9c-a1", {"app": "web"}, "web" if template_hostname else None, "webs"),
            named("web-5d9c-b2", {"app": "web"}, "web" if template_hostname else None, "webs"))
    services = (Service("shop", "dbs", selector={"app": "db"}, cluster_ip="None", ports=http),
                Service("shop", "dbs-pub", selector={"app": "db"}, cluster_ip="None", ports=http,
                        publish_not_ready_addresses=True),
                Service("shop", "peers", selector={"app": "peer"}, cluster_ip="None", ports=http,
                        publish_not_ready_addresses=True),
                Service("shop", "webs", selector={"app": "web"}, cluster_ip="None", ports=http))
    return Model(pods=pods, services=services)


def srv(reply):
    return sorted((rr.rdata.priority, rr.rdata.weight, rr.rdata.port, str(rr.rdata.target)) for rr in reply.rr)


def test_a_not_ready_pod_leaves_the_headless_answers_and_its_hostname_record():
    """Spec 2.4.1/2.4.2: A, hostname A and SRV records exist for _ready_ endpoints only."""
    from kubenet_lab.plan.services import with_readiness
    plan = make_plan(hostname_model(), "lab")
    a, b = (str(plan.pod(f"shop/db-x{i}").ip) for i in (1, 2))
    both = ClusterDNS(plan)
    assert sorted(values(ask(both, f"dbs.shop.svc.{ZONE}")), key=IPv4Address) == sorted([a, b], key=IPv4Address)
    assert values(ask(both, f"db-b.dbs.shop.svc.{ZONE}")) == [b]
    dns = ClusterDNS(with_readiness(plan, {"shop/db-x2"}))
    assert values(ask(dns, f"dbs.shop.svc.{ZONE}")) == [a]
    assert values(ask(dns, f"db-a.dbs.shop.svc.{ZONE}")) == [a]
    gone = ask(dns, f"db-b.dbs.shop.svc.{ZONE}")
    assert gone.header.rcode == RCODE.NXDOMAIN and not gone.rr and gone.auth  # with the SOA
    reply = ask(dns, f"_http._tcp.dbs.shop.svc.{ZONE}", "SRV")
    assert srv(reply) == [(0, 100, 80, f"db-a.dbs.shop.svc.{ZONE}.")]
    assert [(str(rr.rname), str(rr.rdata)) for rr in reply.ar] == [(f"db-a.dbs.shop.svc.{ZONE}.", a)]
    # its address names only the service that publishes it; the ready one's names both
    assert values(ask(dns, reverse_name(b), "PTR")) == [f"{dashed(b)}.dbs-pub.shop.svc.{ZONE}."]
    assert sorted(values(ask(dns, reverse_name(a), "PTR"))) == [
        f"{dashed(a)}.dbs-pub.shop.svc.{ZONE}.", f"db-a.dbs.shop.svc.{ZONE}."]
    # none ready: the headless name, its SRV records and the hostnames are NXDOMAIN
    none = ClusterDNS(with_readiness(plan, {"shop/db-x1", "shop/db-x2"}))
    for name, qtype in ((f"dbs.shop.svc.{ZONE}", "A"), (f"db-a.dbs.shop.svc.{ZONE}", "A"),
                        (f"_http._tcp.dbs.shop.svc.{ZONE}", "SRV"), (f"_tcp.dbs.shop.svc.{ZONE}", "SRV")):
        assert ask(none, name, qtype).header.rcode == RCODE.NXDOMAIN, name


def test_publish_not_ready_addresses_answers_every_pod_and_its_hostname():
    """publishNotReadyAddresses: the controller publishes every pod as ready, so the DNS does."""
    from kubenet_lab.plan.services import with_readiness
    plan = make_plan(hostname_model(), "lab")
    dns = ClusterDNS(with_readiness(plan, {"shop/db-x1", "shop/db-x2", "shop/peer-x2"}))
    ips = sorted((str(plan.pod(f"shop/db-x{i}").ip) for i in (1, 2)), key=IPv4Address)
    assert sorted(values(ask(dns, f"dbs-pub.shop.svc.{ZONE}")), key=IPv4Address) == ips
    assert srv(ask(dns, f"_http._tcp.dbs-pub.shop.svc.{ZONE}", "SRV")) == sorted(
        (0, 50, 80, f"{dashed(ip)}.dbs-pub.shop.svc.{ZONE}.") for ip in ips)  # their subdomain is dbs
    peer_b = str(plan.pod("shop/peer-x2").ip)
    assert values(ask(dns, f"peer-b.peers.shop.svc.{ZONE}")) == [peer_b]
    assert srv(ask(dns, f"_http._tcp.peers.shop.svc.{ZONE}", "SRV")) == [
        (0, 50, 80, f"peer-a.peers.shop.svc.{ZONE}."), (0, 50, 80, f"peer-b.peers.shop.svc.{ZONE}.")]
    assert ask(dns, f"dbs.shop.svc.{ZONE}").header.rcode == RCODE.NXDOMAIN  # the other one does not


def test_replicas_sharing_a_template_hostname_share_its_record():
    """A Deployment whose template sets hostname and subdomain: every replica has the endpoint
    hostname `web`, so web.webs answers all of them (spec 2.4.1: one A record per address) and
    the SRV record naming it is given once, as CoreDNS gives it (weight 100 / endpoints, its
    addresses in the additional section)."""
    plan = make_plan(hostname_model(), "lab")
    ips = sorted((str(p.ip) for p in plan.pods if p.labels.get("app") == "web"), key=IPv4Address)
    dns = ClusterDNS(plan)
    assert sorted(values(ask(dns, f"web.webs.shop.svc.{ZONE}")), key=IPv4Address) == ips
    reply = ask(dns, f"_http._tcp.webs.shop.svc.{ZONE}", "SRV")
    assert srv(reply) == [(0, 50, 80, f"web.webs.shop.svc.{ZONE}.")]
    assert sorted((str(rr.rname), str(rr.rdata)) for rr in reply.ar) == [
        (f"web.webs.shop.svc.{ZONE}.", ip) for ip in ips]
    assert [values(ask(dns, reverse_name(ip), "PTR")) for ip in ips] == [[f"web.webs.shop.svc.{ZONE}."]] * 2
    # without a template hostname each replica is its dashed address (a subdomain alone names none)
    plain = ClusterDNS(make_plan(hostname_model(template_hostname=False), "lab"))
    assert srv(ask(plain, f"_http._tcp.webs.shop.svc.{ZONE}", "SRV")) == sorted(
        (0, 50, 80, f"{dashed(ip)}.webs.shop.svc.{ZONE}.") for ip in ips)
    assert ask(plain, f"web.webs.shop.svc.{ZONE}").header.rcode == RCODE.NXDOMAIN


def test_the_endpoints_and_the_pod_show_the_hostname_the_dns_answers():
    """`get ep -o yaml` carries the hostname on the addresses of the Service the pods' subdomain
    names (the endpoints controller's ShouldSetHostname), ready or not, and on no other; `get pod
    -o yaml` shows spec.hostname and spec.subdomain."""
    from kubenet_lab import output
    from kubenet_lab.plan.services import with_readiness
    plan = with_readiness(make_plan(hostname_model(), "lab"), {"shop/db-x2"})
    [subset] = output.endpoints_object(plan, svc(plan, "shop/dbs"))["subsets"]
    assert [(a["hostname"], a["targetRef"]["name"]) for a in subset["addresses"]] == [("db-a", "db-x1")]
    assert [(a["hostname"], a["targetRef"]["name"]) for a in subset["notReadyAddresses"]] == [("db-b", "db-x2")]
    assert list(subset["addresses"][0]) == ["ip", "hostname", "nodeName", "targetRef"]  # EndpointAddress order
    [published] = output.endpoints_object(plan, svc(plan, "shop/dbs-pub"))["subsets"]
    assert not any("hostname" in a for a in published["addresses"])  # their subdomain is dbs
    spec = output.pod_object(plan, plan.pod("shop/db-x1"), {})["spec"]
    assert (spec["hostname"], spec["subdomain"], "setHostnameAsFQDN" in spec) == ("db-a", "dbs", False)
    plain = make_plan(model(), "lab")
    assert not {"hostname", "subdomain"} & set(output.pod_object(plain, plain.pod("default/loner"), {})["spec"])


# ExternalName, as CoreDNS's kubernetes plugin answers it (plugin/kubernetes/handler_test.go,
# coredns/coredns 4b26cced3: "CNAME External", "CNAME External To Internal Service" and the two
# "subdomain of an external service" cases). Its upstream lookup of a name outside the cluster
# has no counterpart here: the lab has no way out, so such a name gets the CNAME alone.
EXTERNAL = (Service("testns", "external", type="ExternalName", external_name="ext.interwebs.test"),
            Service("testns", "external-to-service", type="ExternalName",
                    external_name="svc1.testns.svc.cluster.local."),
            Service("testns", "svc1", selector={"app": "web"}, ports=(ServicePort(80, name="http"),)))


@pytest.fixture(scope="module")
def external_plan():
    return make_plan(model(EXTERNAL), "lab")


def test_an_external_name_is_a_cname_for_every_type_and_no_address_of_its_own(external_plan):
    dns = ClusterDNS(external_plan)
    for qtype in ("CNAME", "A", "AAAA", "TXT"):
        reply = ask(dns, "external.testns.svc.cluster.local.", qtype)
        assert reply.header.rcode == RCODE.NOERROR
        assert [(rr.rtype, str(rr.rname), str(rr.rdata)) for rr in reply.rr] == [
            (QTYPE.CNAME, "external.testns.svc.cluster.local.", "ext.interwebs.test.")], qtype
    planned = svc(external_plan, "testns/external")
    assert planned.cluster_ip is None and not planned.headless and planned.external_name == "ext.interwebs.test"


def test_an_external_name_inside_the_cluster_is_followed_to_its_address(external_plan):
    dns = ClusterDNS(external_plan)
    reply = ask(dns, "external-to-service.testns.svc.cluster.local", "A")
    svc1 = str(svc(external_plan, "testns/svc1").cluster_ip)
    assert [(rr.rtype, str(rr.rname), str(rr.rdata)) for rr in reply.rr] == [
        (QTYPE.CNAME, "external-to-service.testns.svc.cluster.local.", "svc1.testns.svc.cluster.local."),
        (QTYPE.A, "svc1.testns.svc.cluster.local.", svc1)]


@pytest.mark.parametrize("name", ["endpoint.external.testns.svc.cluster.local.",
                                  "subdomain.subdomain.external.testns.svc.cluster.local."])
def test_a_name_below_an_external_service_does_not_exist(external_plan, name):
    reply = ask(ClusterDNS(external_plan), name, "CNAME")
    assert reply.header.rcode == RCODE.NXDOMAIN and [str(rr.rdata).split()[0] for rr in reply.auth] == [
        "ns.dns.cluster.local."]


def test_a_reverse_zone_answers_with_its_own_soa_as_coredns_writes_it(dns):
    """CoreDNS's plugin/kubernetes/reverse_test.go (coredns/coredns 4b26cced3): a name that does
    not exist in a reverse zone gets that zone's SOA, ns.dns.<zone> and hostmaster.<zone>
    ("101.0.0.10.in-addr.arpa." and "svc1.testns.svc.0.10.in-addr.arpa." there); in the cluster
    zone, the cluster zone's ("example.org.cluster.local.")."""
    for name, qtype, zone in (("7.7.244.10.in-addr.arpa.", "PTR", "244.10.in-addr.arpa"),
                              ("svc1.testns.svc.244.10.in-addr.arpa.", "A", "244.10.in-addr.arpa"),
                              ("example.org.cluster.local.", "PTR", "cluster.local")):
        reply = ask(dns, name, qtype)
        assert reply.header.rcode == RCODE.NXDOMAIN
        (soa,) = reply.auth
        assert (str(soa.rname), str(soa.rdata.mname), str(soa.rdata.rname), soa.rdata.times[1:]) == (
            f"{zone}.", f"ns.dns.{zone}.", f"hostmaster.{zone}.", (7200, 1800, 86400, 5)), name


def test_srv_at_a_services_own_name_and_the_schema_txt_as_coredns_answers_them(plan, dns):
    """CoreDNS's plugin/kubernetes/handler_test.go (coredns/coredns 4b26cced3): "svc1.testns.svc.
    cluster.local." SRV is "0 100 80 svc1.testns.svc.cluster.local." with the A in the additional
    section; every port of a Service answers there, each weighing 100 / their number; and
    "dns-version.cluster.local 28800 IN TXT 1.1.0"."""
    web = svc(plan, "default/web")
    reply = ask(dns, f"web.default.svc.{ZONE}", "SRV")
    assert sorted((rr.rdata.priority, rr.rdata.weight, rr.rdata.port, str(rr.rdata.target)) for rr in reply.rr) == [
        (0, 50, 80, f"web.default.svc.{ZONE}."), (0, 50, 9090, f"web.default.svc.{ZONE}.")]
    assert [(str(rr.rname), str(rr.rdata)) for rr in reply.ar] == [(f"web.default.svc.{ZONE}.", str(web.cluster_ip))]
    one = ask(dns, f"web.shop.svc.{ZONE}", "SRV")
    assert [(rr.rdata.weight, rr.rdata.port) for rr in one.rr] == [(100, 80)]
    txt = ask(dns, f"dns-version.{ZONE}", "TXT")
    assert [(rr.ttl, str(rr.rdata)) for rr in txt.rr] == [(28800, '"1.1.0"')]
    assert ask(dns, f"web.default.svc.{ZONE}").rr[0].ttl == 5


def test_a_written_endpoints_hostnames_and_ports_are_what_the_dns_names():
    """A Service without a selector is named as CoreDNS reads its slices (here the one mirrored
    from a legacy Endpoints): a ready address's hostname names it (hostname.svc), a not-ready
    one is in no answer, SRV records carry the slice's port (8080, not the Service's 80), and
    the address's PTR is its hostname's name."""
    model = load_model(["-"], io.StringIO(textwrap.dedent("""
        apiVersion: v1
        kind: Service
        metadata: {name: legacy}
        spec: {clusterIP: None, ports: [{name: tcp, port: 80}]}
        ---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: legacy}
        subsets:
        - addresses: [{ip: 10.244.9.5, hostname: db-a}]
          notReadyAddresses: [{ip: 10.244.9.6, hostname: db-b}]
          ports: [{name: tcp, port: 8080}]
        """)))
    dns = ClusterDNS(make_plan(model, "lab"))
    name = f"legacy.default.svc.{ZONE}"
    assert values(ask(dns, f"db-a.{name}")) == ["10.244.9.5"]
    assert ask(dns, f"db-b.{name}").header.rcode == RCODE.NXDOMAIN
    assert values(ask(dns, name)) == ["10.244.9.5"]
    assert values(ask(dns, f"_tcp._tcp.{name}", "SRV")) == [f"0 100 8080 db-a.{name}."]
    assert values(ask(dns, reverse_name("10.244.9.5"), "PTR")) == [f"db-a.{name}."]


def test_an_endpoint_outside_the_labs_subnets_has_its_ptr_and_other_addresses_there_are_refused():
    """kubeadm's Corefile gives CoreDNS all of in-addr.arpa (falling through to its forwarder for
    names it has no record of): a written slice's address outside the lab's subnets has its PTR,
    in zone in-addr.arpa (an A query of that name is NODATA with its SOA); an address next to it
    is the forwarder's, which the lab has not."""
    model = load_model(["-"], io.StringIO(textwrap.dedent("""
        apiVersion: v1
        kind: Service
        metadata: {name: db}
        spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: db-1, labels: {kubernetes.io/service-name: db}}
        addressType: IPv4
        endpoints: [{addresses: [192.0.2.7]}]
        ports: [{name: pg, port: 5432}]
        """)))
    dns = ClusterDNS(make_plan(model, "lab"))
    reply = ask(dns, reverse_name("192.0.2.7"), "PTR")
    assert (reply.header.aa, values(reply)) == (1, [f"192-0-2-7.db.default.svc.{ZONE}."])
    nodata = ask(dns, reverse_name("192.0.2.7"), "A")
    assert (nodata.header.rcode, nodata.rr, [str(rr.rname) for rr in nodata.auth]) == (
        RCODE.NOERROR, [], ["in-addr.arpa."])
    assert ask(dns, reverse_name("192.0.2.8"), "PTR").header.rcode == RCODE.REFUSED
