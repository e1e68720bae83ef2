"""`up` of a real cluster's dump (`kubectl get nodes,svc,endpointslices -A -o yaml`, as kubectl
writes it: tests/integration/manifests/cluster-dump/cluster.yaml), in both kube-proxy modes: the
lab's nodes have exactly the dump's podCIDRs, every node's rules hold the dump's ClusterIPs,
NodePorts and endpoints, a connection to an endpoint no pod of the lab has finds nothing (as it
would on a cluster whose pod is gone), and the lab's DNS, behind the dump's kube-dns address,
answers the dump's names. Expectations are read from the dump with a plain YAML reader."""
from __future__ import annotations

import ipaddress
import json

import pytest
import yaml

from .conftest import MANIFESTS, Lab, host_snapshot, new_lab_name, torn_down, wait_for

DUMP = MANIFESTS / "cluster-dump" / "cluster.yaml"
NODE = "k8s-worker-1"  # where the rules are read: it has endpoints of its own (internalTrafficPolicy Local)

# `python3 -c CONNECT IP PORT`: "connected", or the name of the error.
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=8).close()
    print("connected")
except OSError as e:
    print(type(e).__name__)
"""


@pytest.fixture(scope="module")
def raw() -> dict[str, list[dict]]:
    items = yaml.safe_load(DUMP.read_text())["items"]
    return {kind: [i for i in items if i["kind"] == kind] for kind in ("Node", "Service", "EndpointSlice")}


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request, host_before):
    lab = Lab(new_lab_name("cd"))
    with torn_down(lab.name):
        lab.up = lab("up", "--proxy-mode", request.param, str(DUMP))
        lab.mode = request.param
        yield lab


def svc(raw, key: str) -> dict:
    return next(s for s in raw["Service"] if f"{s['metadata']['namespace']}/{s['metadata']['name']}" == key)


def proxied(raw) -> list[dict]:
    """The Services kube-proxy writes rules for: those with a ClusterIP."""
    return [s for s in raw["Service"] if s["spec"]["type"] != "ExternalName" and s["spec"]["clusterIP"] != "None"]


def ready_endpoints(raw, service: dict) -> set[tuple[str, int]]:
    """address:port of the ready endpoints of the Service's slices in the dump, slice ports matched
    to the Service's by name and protocol."""
    meta = service["metadata"]
    out = set()
    for sl in raw["EndpointSlice"]:
        if sl["metadata"]["namespace"] != meta["namespace"] or \
                sl["metadata"]["labels"].get("kubernetes.io/service-name") != meta["name"]:
            continue
        for port in service["spec"]["ports"]:
            for sp in sl["ports"] or ():
                if sp.get("name", "") == port.get("name", "") and sp["protocol"] == port["protocol"]:
                    out |= {(e["addresses"][0], sp["port"]) for e in sl["endpoints"] or ()
                            if e.get("conditions", {}).get("ready") is not False}
    return out


def rules(lab: Lab, node: str) -> str:
    if lab.mode == "iptables":
        return lab.exec(f"node/{node}", "iptables-save").stdout
    return lab.exec(f"node/{node}", "nft", "list", "table", "ip", "kube-proxy").stdout


def test_up_takes_the_dump_as_kubectl_wrote_it(lab):
    assert "3 nodes" in lab.up.stdout and "54 services" in lab.up.stdout
    warnings = [line for line in lab.up.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "EndpointSlice/kube-dns-" in warnings[0], lab.up.stderr


def test_each_node_has_exactly_the_dumps_pod_cidr(lab, raw):
    nodes = {n["metadata"]["name"]: n for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]}
    for dumped in raw["Node"]:
        name, cidr = dumped["metadata"]["name"], ipaddress.ip_network(dumped["spec"]["podCIDR"])
        assert nodes[name]["spec"]["podCIDR"] == str(cidr)
        # the bridge holds the CIDR's gateway, and every other node routes the CIDR to this node
        addrs = json.loads(lab.exec(f"node/{name}", "ip", "-4", "-j", "addr", "show", "cbr0").stdout)
        assert [(a["local"], a["prefixlen"]) for a in addrs[0]["addr_info"]] == [
            (str(cidr.network_address + 1), cidr.prefixlen)]
        for other in raw["Node"]:
            if other is not dumped:
                routes = lab.exec(f"node/{other['metadata']['name']}", "ip", "route").stdout
                assert f"{cidr} via " in routes


def test_the_rules_hold_every_cluster_ip_node_port_and_endpoint(lab, raw):
    text = rules(lab, NODE)
    lines = text.splitlines()
    services = proxied(raw)
    assert len(services) == 41  # of 54: 10 headless, 3 ExternalName
    for s in services:
        ip, name = s["spec"]["clusterIP"], f"{s['metadata']['namespace']}/{s['metadata']['name']}"
        for port in s["spec"]["ports"]:
            proto = port["protocol"].lower()
            if lab.mode == "iptables":
                assert any(f"-d {ip}/32 -p {proto} " in line and f"--dport {port['port']} " in line
                           for line in lines), (name, port)
                if "nodePort" in port:
                    assert any("KUBE-NODEPORTS" in line and f"-p {proto} " in line
                               and f"--dport {port['nodePort']} " in line for line in lines), (name, port)
            else:
                # service-ips, or no-endpoint-services (with a comment) for one without endpoints
                assert f"{ip} . {proto} . {port['port']} :" in text or \
                    f"{ip} . {proto} . {port['port']} comment" in text, (name, port)
                if "nodePort" in port:
                    assert f"{proto} . {port['nodePort']} :" in text or \
                        f"{proto} . {port['nodePort']} comment" in text, (name, port)
        # kube-dns's endpoints are the lab's DNS pod (below), the dump's slice having been replaced
        for address, number in ready_endpoints(raw, s) if name != "kube-system/kube-dns" else ():
            target = f"--to-destination {address}:{number}" if lab.mode == "iptables" else \
                f"dnat to {address}:{number}"
            assert target in text, (name, address, number)
    dns = [p for p in json.loads(lab("get", "pods", "-n", "kube-system", "-o", "json").stdout)["items"]
           if p["metadata"]["labels"].get("k8s-app") == "kube-dns"]
    assert len(dns) == 1
    dns_ip = dns[0]["status"]["podIP"]
    assert (f"--to-destination {dns_ip}:53" if lab.mode == "iptables" else f"dnat to {dns_ip}:53") in text
    # the cluster CIDR kube-proxy masquerades outside of is the derived pod subnet
    assert ("! -s 10.244.0.0/16" if lab.mode == "iptables" else "ip saddr != 10.244.0.0/16") in text
    # a not-ready endpoint gets no rule while a ready one exists (web-canary: one of each, and a
    # terminating one)
    canary = {e["addresses"][0]: e["conditions"] for sl in raw["EndpointSlice"]
              if sl["metadata"]["labels"].get("kubernetes.io/service-name") == "web-canary"
              for e in sl["endpoints"]}
    for address, conditions in canary.items():
        assert (f"{address}:8080" in text) == conditions["ready"], (address, conditions)


def test_a_service_whose_endpoints_have_no_pod_finds_nothing(lab, raw):
    cart = svc(raw, "shop/cartservice")["spec"]
    # DNATed to the dump's pod address on k8s-worker-2's bridge, where no pod of the lab is: no ARP
    # answer, host unreachable (or a timeout), never an answer
    answer = lab.exec("node/k8s-cp-1", "python3", "-c", CONNECT, cart["clusterIP"], "7070").stdout.strip()
    assert answer in ("OSError", "TimeoutError"), answer
    # a Service that selects nothing has no endpoint: kube-proxy rejects at once
    orphan = svc(raw, "default/orphan")["spec"]
    assert lab.exec("node/k8s-cp-1", "python3", "-c", CONNECT, orphan["clusterIP"], "80").stdout.strip() == \
        "ConnectionRefusedError"


def dig(lab: Lab, name: str, kind: str = "A") -> list[str]:
    out = lab.exec("node/k8s-cp-1", "dig", "+short", "+time=2", "+tries=3", "@10.96.0.10", name, kind).stdout
    return sorted(out.split())


def test_the_lab_dns_answers_the_dumps_names(lab, raw):
    zone = "svc.cluster.local"
    cart = svc(raw, "shop/cartservice")["spec"]["clusterIP"]
    assert wait_for(lambda: dig(lab, f"cartservice.shop.{zone}") == [cart], "the cluster DNS", timeout=30)
    assert dig(lab, f"kubernetes.default.{zone}") == ["10.96.0.1"]
    kafka = sorted(e["addresses"][0] for sl in raw["EndpointSlice"]
                   if sl["metadata"]["labels"].get("kubernetes.io/service-name") == "kafka-headless"
                   for e in sl["endpoints"])
    assert dig(lab, f"kafka-headless.payments.{zone}") == kafka  # headless: the dump's endpoints
    kafka0 = next(e["addresses"][0] for sl in raw["EndpointSlice"]
                  if sl["metadata"]["labels"].get("kubernetes.io/service-name") == "kafka-headless"
                  for e in sl["endpoints"] if e.get("hostname") == "kafka-0")
    assert dig(lab, f"kafka-0.kafka-headless.payments.{zone}") == [kafka0]
    assert dig(lab, f"stripe.payments.{zone}", "CNAME") == ["api.stripe.com."]  # ExternalName
    assert dig(lab, f"grafana.monitoring.{zone}") == [svc(raw, "monitoring/grafana")["spec"]["clusterIP"]]


def test_the_host_knows_nothing_of_the_dump(lab):
    host = json.dumps(host_snapshot())
    assert "10.244.2.0/24" not in host and "192.168.56.240" not in host and "10.96.0.0/12" not in host


FRONTEND = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend}}
    spec:
      containers:
      - name: server
        image: registry.k8s.io/e2e-test-images/agnhost:2.52
        args: [netexec, --http-port=8080]
        ports: [{containerPort: 8080}]
"""


def test_pods_a_dump_service_selects_take_over_its_endpoints(lab, raw):
    """Last in the module: it changes the lab. The frontend Deployment applied, the lab's
    controller makes shop/frontend's slices of its pods (the dump's go), whose addresses are none
    the dump names, and its ClusterIP answers from them; other Services keep the dump's."""
    lab("apply", "-f", "-", input=FRONTEND)
    pods = wait_for(lambda: {n: p["status"].get("podIP") for n, p in lab.pods().items() if n.startswith("frontend-")
                             and p["status"].get("phase") == "Running"} or None, "frontend pods", timeout=60)
    named = {e["addresses"][0] for sl in raw["EndpointSlice"] for e in sl["endpoints"] or ()}
    assert len(pods) == 2 and set(pods.values()).isdisjoint(named)
    ip = svc(raw, "shop/frontend")["spec"]["clusterIP"]
    assert wait_for(lambda: lab.exec("node/k8s-cp-1", "curl", "-s", "-m", "5", f"http://{ip}/hostname",
                                     check=False).stdout in pods, "frontend answering", timeout=30)
    slices = json.loads(lab("get", "endpointslices", "-n", "shop", "-l", "kubernetes.io/service-name=frontend",
                            "-o", "json").stdout)["items"]
    assert {a for s in slices for e in s["endpoints"] for a in e["addresses"]} == set(pods.values())
    cart = lab("get", "ep", "-n", "shop", "cartservice").stdout.splitlines()[1].split()[1]
    assert cart == "{}:{}".format(*next(iter(ready_endpoints(raw, svc(raw, "shop/cartservice")))))
