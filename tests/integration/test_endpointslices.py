"""Services without a selector, for real, in both kube-proxy modes: their traffic goes where the
EndpointSlices written for them say (and their Endpoints, mirrored into slices), through the
ClusterIP from a client pod; a slice whose address nothing answers gives a failed connection.

Pods get their addresses at plan time, so the slices are written after `up`, with the backend's
address read from `get pod -o jsonpath`, and applied."""
from __future__ import annotations

import ipaddress
import json

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down, wait_for

# `python3 -c CLIENT IP PORT`: agnhost serve-hostname's answer over TCP (it writes its hostname
# and closes), or the name of the error.
CLIENT = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    print(s.recv(512).decode().strip() or "<empty>")
except OSError as e:
    print(type(e).__name__)
"""


def slices(backend_ip: str, nothing_ip: str) -> str:
    return f"""
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ext-manual
  labels: {{kubernetes.io/service-name: ext}}
addressType: IPv4
ports: [{{name: tcp, port: 9376}}, {{name: other, port: 1}}]
endpoints:
- addresses: ["{backend_ip}"]
  nodeName: node2
  targetRef: {{kind: Pod, namespace: default, name: backend}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: legacy}}
subsets:
- addresses: [{{ip: "{backend_ip}"}}]
  ports: [{{name: tcp, port: 9376}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dead-1
  labels: {{kubernetes.io/service-name: dead}}
addressType: IPv4
ports: [{{name: tcp, port: 9376}}]
endpoints:
- addresses: ["{nothing_ip}"]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: unready-1
  labels: {{kubernetes.io/service-name: unready}}
addressType: IPv4
ports: [{{name: tcp, port: 9376}}]
endpoints:
- addresses: ["{backend_ip}"]
  conditions: {{ready: false}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: draining-1
  labels: {{kubernetes.io/service-name: draining}}
addressType: IPv4
ports: [{{name: tcp, port: 9376}}]
endpoints:
- addresses: ["{backend_ip}"]
  conditions: {{ready: false, serving: true, terminating: true}}
"""


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def lab(request, host_before):
    lab = Lab(new_lab_name("es"))
    with torn_down(lab.name):
        lab("up", "--proxy-mode", request.param, str(MANIFESTS / "endpointslices.yaml"))
        lab.mode = request.param
        lab.backend_ip = lab("get", "pod", "backend", "-o", "jsonpath={.status.podIP}").stdout.strip()
        # an address of node1's pod range that no pod has: nothing answers there
        cidr = ipaddress.ip_network(lab("get", "node", "node1", "-o", "jsonpath={.spec.podCIDR}").stdout.strip())
        used = {p["status"].get("podIP") for p in lab.pods().values()}
        lab.nothing_ip = str(next(a for a in reversed(list(cidr.hosts())) if str(a) not in used))
        lab("apply", "-f", "-", input=slices(lab.backend_ip, lab.nothing_ip))
        lab.svc = {s["metadata"]["name"]: s["spec"]["clusterIP"]
                   for s in json.loads(lab("get", "svc", "-o", "json").stdout)["items"]}
        yield lab


def ask(lab: Lab, service: str) -> str:
    return lab.exec("client", "python3", "-c", CLIENT, lab.svc[service], "80").stdout.strip()


def test_a_written_slice_sends_the_cluster_ip_to_the_pod_it_names(lab):
    assert wait_for(lambda: ask(lab, "ext") == "backend", "ext -> backend", timeout=20)


def test_written_endpoints_are_mirrored_and_reach_the_pod(lab):
    assert wait_for(lambda: ask(lab, "legacy") == "backend", "legacy -> backend", timeout=20)
    mirrored = json.loads(lab("get", "endpointslices", "-l", "kubernetes.io/service-name=legacy",
                              "-o", "json").stdout)["items"]
    assert [(m["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"], m["endpoints"][0]["addresses"])
            for m in mirrored] == [("endpointslicemirroring-controller.k8s.io", [lab.backend_ip])]
    ep = lab("get", "ep", "legacy").stdout.splitlines()[1].split()
    assert ep[:2] == ["legacy", f"{lab.backend_ip}:9376"]


def test_a_slice_whose_address_nothing_answers_gives_a_failed_connection(lab):
    wait_for(lambda: ask(lab, "ext") == "backend", "the slices applied", timeout=20)
    answer = ask(lab, "dead")
    # DNATed to an address of node1's pod bridge that no pod has: no ARP answer, so the connection
    # fails (host unreachable, or a timeout), as it would on a cluster; never an answer
    assert answer in ("OSError", "TimeoutError"), answer


def test_a_not_ready_endpoint_gets_no_traffic_a_serving_terminating_one_does_when_none_is_ready(lab):
    wait_for(lambda: ask(lab, "ext") == "backend", "the slices applied", timeout=20)
    # no usable endpoint: kube-proxy rejects (the same backend answers through ext)
    assert ask(lab, "unready") == "ConnectionRefusedError"
    # not ready but serving and terminating, and nothing ready: kube-proxy falls back to it
    assert ask(lab, "draining") == "backend"


def test_the_rules_name_the_written_endpoints(lab):
    """kube-proxy's rules hold the slice's address:port for ext, in this mode's own syntax."""
    node = "node/node1"
    dump = (lab.exec(node, "iptables-save").stdout if lab.mode == "iptables"
            else lab.exec(node, "nft", "list", "table", "ip", "kube-proxy").stdout)
    assert f"{lab.backend_ip}:9376" in dump and f"{lab.nothing_ip}:9376" in dump


def test_get_endpointslices_shows_the_written_slices(lab):
    rows = {line.split()[0]: line.split()[1:4] for line in lab("get", "endpointslices").stdout.splitlines()[1:]}
    assert rows["ext-manual"] == ["IPv4", "9376,1", lab.backend_ip]
    assert rows["dead-1"] == ["IPv4", "9376", lab.nothing_ip]


def test_deleting_the_endpoints_removes_the_mirrored_endpoint(lab):
    """(Last: it changes the lab.) kubectl delete endpoints: the mirrored slice goes with it, and
    the Service, without endpoints, refuses connections."""
    assert wait_for(lambda: ask(lab, "legacy") == "backend", "legacy -> backend", timeout=20)
    assert lab("delete", "endpoints", "legacy").stdout.strip() == 'endpoints "legacy" deleted'
    assert wait_for(lambda: ask(lab, "legacy") == "ConnectionRefusedError", "legacy refused", timeout=20)
    assert "kubernetes.io/service-name=legacy" not in lab("get", "endpointslices", "--show-labels").stdout
    assert lab("delete", "endpointslice", "ext-manual").stdout.strip().endswith('"ext-manual" deleted')
    assert wait_for(lambda: ask(lab, "ext") == "ConnectionRefusedError", "ext refused", timeout=20)
