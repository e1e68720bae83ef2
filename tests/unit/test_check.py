"""`check`'s pure parts (no root): expectations from a plan, what is said to each server and how
its answer is read, ICMP on the wire, the verdicts and the report."""
from __future__ import annotations

import dataclasses
import io
import json
import struct
import textwrap
from pathlib import Path

from kubenet_lab.inspect import checkreport, conversations, expectations as ex
from kubenet_lab.inspect.expectations import FAIL, REACH, Expectation
from kubenet_lab.inspect.verdicts import judge
from kubenet_lab.kernel import icmp
from kubenet_lab.kernel.probe import Outcome
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.services import with_readiness

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "tests" / "integration" / "manifests" / "services.yaml"


def example_plan():
    return make_plan(load_model([str(p) for p in sorted((ROOT / "manifests").glob("*.yaml"))]), "lab",
                     node_resolv_conf="")


def services_plan():
    return make_plan(load_model([str(SERVICES)]), "lab", node_resolv_conf="")


def plan_of(text: str):
    return make_plan(load_model(["-"], io.StringIO(textwrap.dedent(text).lstrip("\n"))), "lab", node_resolv_conf="")


def by(exps, **kw):
    return [e for e in exps if all(getattr(e, k) == v for k, v in kw.items())]


def test_every_pod_pings_every_other_pod_and_reaches_its_ports_seen_with_its_own_address():
    plan = example_plan()
    exps = ex.expectations(plan)
    pods = [p for p in plan.pods if not p.host_network]
    pings = by(exps, kind="pod-pod", proto="icmp")
    assert len(pings) == len(pods) * (len(pods) - 1)
    assert all(e.must == REACH for e in pings)
    client = plan.pod("default/client")
    web = next(p for p in plan.pods if p.name.startswith("web-"))
    http = by(exps, src="pod/default/client", dst=f"pod/default/{web.name}:8080")
    assert len(http) == 1 and http[0].proto == "tcp" and http[0].source_ip == str(client.ip)
    assert http[0].dst_ip == str(web.ip) and http[0].src_netns == client.netns and http[0].src_ip == str(client.ip)
    udp = by(exps, src="pod/default/client", dst=f"pod/default/{web.name}:8081")
    assert udp[0].proto == "udp" and udp[0].source_ip == str(client.ip)
    # the client listens nowhere: no TCP expectation towards it
    assert not [e for e in exps if e.dst.startswith("pod/default/client:")]


def test_services_from_every_node_and_a_pod_on_each_and_nodeports_and_balancer_from_outside():
    plan = example_plan()
    exps = ex.expectations(plan)
    web = by(exps, kind="service", dst="svc/default/web:http")
    assert {e.src for e in web} == {"node/node1", "node/node2", "pod/default/client", "pod/default/duo"}
    hostnames = {p.name for p in plan.pods if p.name.startswith("web-")}
    assert all(e.answers == hostnames and e.must == REACH and e.requests >= 3 for e in web)
    nodeports = by(exps, kind="nodeport", port=30080)
    assert {e.dst_ip for e in nodeports} == {str(n.ip) for n in plan.nodes}
    assert {e.src for e in nodeports} == {"external"}
    lb = by(exps, kind="loadbalancer")
    assert [e.dst_ip for e in lb] == [str(ip) for s in plan.services for ip in s.load_balancer_ips]
    # kubernetes.default has no endpoints: refused, from every node and pod source
    refused = by(exps, dst="svc/default/kubernetes:https")
    assert len(refused) == 4 and all(e.must == FAIL and e.refused for e in refused)


def test_full_asks_every_endpoint_to_answer():
    plan = example_plan()
    assert not any(e.every for e in ex.expectations(plan))
    full = by(ex.expectations(plan, full=True), kind="service", dst="svc/default/web:http")
    assert all(e.every and e.requests >= 4 * 3 for e in full)


def test_traffic_policies_local():
    plan = services_plan()
    exps = ex.expectations(plan)
    itp = by(exps, dst="svc/default/itp-local:80")
    node1 = [e for e in itp if e.src in ("node/node1", "pod/default/be1")]
    node2 = [e for e in itp if e.src in ("node/node2", "pod/default/c2")]
    assert node1 and all(e.must == REACH and e.answers == {"be1"} for e in node1)
    assert node2 and all(e.must == FAIL and not e.refused for e in node2)
    etp = by(exps, kind="nodeport", port=30091)
    assert {(e.dst, e.must) for e in etp} == {("node/node1:30091", REACH), ("node/node2:30091", FAIL)}
    assert all(e.must == REACH for e in by(exps, kind="nodeport", port=30090))
    empty = by(exps, dst="svc/default/empty:80")
    assert empty and all(e.must == FAIL and e.refused for e in empty)


def test_a_pod_on_each_node_prefers_one_that_serves_nothing():
    clients = ex.client_pods(services_plan())
    assert clients["node2"].name == "c2" and clients["node1"].name == "c1"


def test_not_ready_endpoints_are_neither_asked_nor_allowed_and_not_ready_pods_get_no_tcp():
    plan = with_readiness(services_plan(), {"default/be2"})
    exps = ex.expectations(plan, not_ready=frozenset({"default/be2"}))
    assert all("be2" not in e.answers for e in exps)
    assert not [e for e in exps if e.dst.startswith("pod/default/be2:")]
    assert by(exps, dst="pod/default/be2", proto="icmp")


def test_dns_names_resolve_to_cluster_ips_and_a_headless_service_to_its_ready_endpoints():
    plan = plan_of("""
        apiVersion: v1
        kind: Pod
        metadata: {name: a, labels: {app: a}}
        spec:
          containers: [{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.53, args: [netexec]}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: h}
        spec: {clusterIP: None, selector: {app: a}, ports: [{port: 80, targetPort: 8080}]}
        """)
    exps = ex.dns(plan)
    h = by(exps, name="h.default.svc.cluster.local")
    assert h and all(e.addresses == {str(plan.pod("default/a").ip)} for e in h)
    k = by(exps, name="kubernetes.default.svc.cluster.local")
    assert k and k[0].addresses == {"10.96.0.1"} and k[0].dst_ip == "10.96.0.10"


def test_large_labs_are_sampled_and_every_node_pair_still_probed():
    pods = "".join(f"""
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: p{i:02d}}}
        spec: {{nodeName: node{1 + i % 2}, containers: [{{name: c, image: busybox, command: [sleep, infinity]}}]}}
        """ for i in range(30))
    plan = plan_of(pods)
    sampled = by(ex.pod_to_pod(plan), proto="icmp")
    full = by(ex.pod_to_pod(plan, full=True), proto="icmp")
    n = len([p for p in plan.pods if not p.host_network])
    assert len(full) == n * (n - 1)
    assert len(sampled) <= n * ex.SAMPLED_PEERS and len(sampled) < len(full)
    node_of = {f"pod/{p.namespace}/{p.name}": p.node for p in plan.pods}
    assert {(node_of[e.src], node_of[e.dst]) for e in sampled} == {(a, b) for a in ("node1", "node2")
                                                                  for b in ("node1", "node2")}
    assert ex.pod_to_pod(plan) == ex.pod_to_pod(plan)  # the same sample every run


def test_who_names_lab_addresses():
    plan = example_plan()
    node1 = plan.node("node1")
    assert ex.who(plan, str(node1.gateway)) == "node/node1"
    assert ex.who(plan, str(node1.ip)) == "node/node1"
    assert ex.who(plan, str(plan.pod("default/client").ip)) == "pod/default/client"
    assert ex.who(plan, "192.0.2.1") == ""


# ---- conversations --------------------------------------------------------------------------


def _exp(**kw):
    base = dict(kind="pod-pod", src="pod/default/a", dst="pod/default/b:8080", port=8080, proto="tcp", must=REACH,
                why="w", dst_ip="10.244.0.3", talk=ex.HTTP)
    return Expectation(**{**base, **kw})


def test_http_questions_and_answers():
    payload, what = conversations.question(_exp(source_ip="10.244.0.2"))
    assert payload.startswith(b"GET /clientip HTTP/1.1\r\n") and what == conversations.CLIENTIP
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n10.244.0.2:41234"
    assert conversations.understand(what, "tcp", answer) == "10.244.0.2"
    payload, what = conversations.question(_exp())
    assert b"GET /hostname " in payload and what == conversations.HOSTNAME
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nweb\r\n2\r\n-1\r\n0\r\n\r\n"
    assert conversations.understand(what, "tcp", chunked) == "web-1"
    try:
        conversations.understand(what, "tcp", b"HTTP/1.1 404 Not Found\r\n\r\n")
        raise AssertionError("a 404 is no hostname")
    except ValueError as e:
        assert "404" in str(e)


def test_dns_question_and_answer_over_udp_and_tcp():
    exp = _exp(kind="dns", talk=ex.DNS, proto="udp", port=53, name="web.default.svc.cluster.local")
    payload, what = conversations.question(exp)
    assert what == conversations.ADDRESSES and b"\x03web\x07default\x03svc\x07cluster\x05local\x00" in payload
    reply = (struct.pack("!HHHHHH", 0x6b6c, 0x8180, 1, 2, 0, 0) + payload[12:]
             + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + bytes([10, 96, 0, 2])
             + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + bytes([10, 96, 0, 9]))
    assert conversations.understand(what, "udp", reply) == ["10.96.0.2", "10.96.0.9"]
    tcp_payload, _ = conversations.question(dataclasses.replace(exp, proto="tcp"))
    assert struct.unpack("!H", tcp_payload[:2])[0] == len(payload)
    framed = struct.pack("!H", len(reply)) + reply
    done = conversations.complete(what, "tcp")
    assert not done(framed[:5]) and done(framed)
    nx = struct.pack("!HHHHHH", 0x6b6c, 0x8183, 1, 0, 0, 0) + payload[12:]
    try:
        conversations.understand(what, "udp", nx)
        raise AssertionError("NXDOMAIN resolves nothing")
    except ValueError as e:
        assert "NXDOMAIN" in str(e)


# ---- ICMP -----------------------------------------------------------------------------------


def _ip(src: str, dst: str, payload: bytes) -> bytes:
    return (bytes([0x45, 0]) + struct.pack("!H", 20 + len(payload)) + b"\0" * 5 + bytes([1]) + b"\0\0"
            + bytes(int(x) for x in src.split(".")) + bytes(int(x) for x in dst.split("."))) + payload


def test_icmp_echo_and_what_comes_back():
    req = icmp.echo_request(0x1234, 1)
    assert icmp.checksum(req) == 0  # a valid checksum sums to zero
    reply = bytearray(req)
    reply[0] = icmp.ECHO_REPLY
    got = icmp.parse(_ip("10.244.1.3", "10.244.0.2", bytes(reply)))
    assert (got.kind, got.ident, got.seq, got.sender) == ("reply", 0x1234, 1, "10.244.1.3")
    error = bytes([icmp.UNREACHABLE, 0, 0, 0, 0, 0, 0, 0]) + _ip("10.244.0.2", "10.244.1.3", req)
    got = icmp.parse(_ip("10.244.0.1", "10.244.0.2", error))
    assert (got.kind, got.ident, got.sender, got.dst, got.problem) == (
        "error", 0x1234, "10.244.0.1", "10.244.1.3", "network unreachable")
    assert icmp.parse(_ip("10.244.0.2", "10.244.1.3", req)) is None  # our own request


# ---- verdicts and report --------------------------------------------------------------------


def _http(body: str) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()


def test_verdicts():
    svc = _exp(kind="service", dst="svc/default/web:http", answers=frozenset({"w1", "w2"}), requests=3)
    ok = judge(svc, conversations.HOSTNAME, [Outcome(True, _http("w1")), Outcome(True, _http("w2"))])
    assert ok.ok and ok.observed == "answered by w1, w2"
    stray = judge(svc, conversations.HOSTNAME, [Outcome(True, _http("w3"))])
    assert not stray.ok and "w3" in stray.observed
    every = judge(dataclasses.replace(svc, every=True), conversations.HOSTNAME, [Outcome(True, _http("w1"))] * 8)
    assert not every.ok and "w2 never answered" in every.observed
    lost = judge(svc, conversations.HOSTNAME, [Outcome(True, _http("w1")), Outcome(False, error="timed out after 2s")])
    assert not lost.ok and lost.observed == "1/2 requests: timed out after 2s"
    natted = judge(_exp(source_ip="10.244.0.2"), conversations.CLIENTIP, [Outcome(True, _http("10.244.0.1:5555"))])
    assert not natted.ok and "10.244.0.1" in natted.observed
    refuse = _exp(must=FAIL, refused=True, talk=ex.CONNECT)
    assert judge(refuse, conversations.CONNECTED, [Outcome(False, error="connection refused")]).ok
    assert not judge(refuse, conversations.CONNECTED, [Outcome(False, error="timed out after 1s")]).ok
    assert not judge(refuse, conversations.CONNECTED, [Outcome(True)]).ok
    dropped = judge(dataclasses.replace(refuse, refused=False), conversations.CONNECTED,
                    [Outcome(False, error="timed out after 1s")])
    assert dropped.ok
    unreachable = judge(_exp(talk=ex.ICMP, proto="icmp", port=0), conversations.CONNECTED,
                        [Outcome(False, error="network unreachable", hop="10.244.0.1")])
    assert not unreachable.ok and unreachable.hop == "10.244.0.1"


def test_report_table_failures_and_json():
    good = judge(_exp(), conversations.HOSTNAME, [Outcome(True, _http("b"))])
    bad = dataclasses.replace(judge(_exp(talk=ex.ICMP, proto="icmp", port=0, dst="pod/default/b"),
                                    conversations.CONNECTED,
                                    [Outcome(False, error="network unreachable", hop="10.244.0.1")]),
                              hop="node/node1 (10.244.0.1)")
    text = checkreport.table([good, bad])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["RESULT", "KIND", "FROM"] and lines[-1].startswith("FAILED")
    assert "node/node1 (10.244.0.1)" in lines[-1]
    assert checkreport.failures([good, bad]) == (
        "FAILED pod-pod: pod/default/a -> pod/default/b icmp must reach (w): network unreachable; "
        "broke at node/node1 (10.244.0.1)\n")
    assert checkreport.summary([good, bad], 0.5, False) == "check: 1 of 2 expectations FAILED (0.50s)"
    doc = json.loads(checkreport.as_json("lab", [good, bad], 0.5, True))
    assert doc["ok"] is False and doc["failed"] == 1 and doc["sampled"] is True
    assert doc["results"][1]["brokeAt"] == "node/node1 (10.244.0.1)"


def test_neighbours_needed_counts_same_node_pairs_and_a_gateway_per_pod():
    pods = "".join(f"""
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: p{i:02d}}}
        spec: {{nodeName: node{1 + i % 2}, containers: [{{name: c, image: busybox, command: [sleep, infinity]}}]}}
        """ for i in range(20))
    plan = plan_of(pods)
    n = len([p for p in plan.pods if not p.host_network])  # 20 and the DNS pod
    per_node = {}
    for p in plan.pods:
        per_node[p.node] = per_node.get(p.node, 0) + 1
    full = ex.expectations(plan, full=True)
    assert ex.neighbours_needed(plan, full) == sum(k * (k - 1) for k in per_node.values()) + n
    assert ex.neighbours_needed(plan, ex.expectations(plan)) < ex.neighbours_needed(plan, full)


def test_bad_input_exits_2_before_anything_runs():
    from click.testing import CliRunner

    from kubenet_lab.cli import main

    result = CliRunner().invoke(main, ["--lab", "x1", "check", "-o", "yaml"])
    assert result.exit_code == 2 and "'yaml' is not 'json'" in result.output
    result = CliRunner().invoke(main, ["--lab", "x1", "check", "--nope"])
    assert result.exit_code == 2
