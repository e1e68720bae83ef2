"""A dump of a real cluster (`kubectl get nodes,svc,endpointslices -A -o yaml`, a `v1 List` with
every server-side field) loads as it is and gives the cluster's model: the Nodes' podCIDRs, the
subnets derived from them and from the clusterIPs, the Services with their addresses and
NodePorts, and their endpoints from the exported EndpointSlices (the dump has no pods).

Expectations are read from the dump itself (tests/integration/manifests/cluster-dump/cluster.yaml)
with a plain YAML reader, as a user reading it would: what the lab plans must be what it says."""
from __future__ import annotations

import dataclasses
import textwrap
from ipaddress import IPv4Network
from pathlib import Path

import pytest
import yaml

from kubenet_lab.dataplane.backends import node_routes
from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.manifests.subnets import covering
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.endpointslices import all_slices

DUMP = Path(__file__).parents[1] / "integration" / "manifests" / "cluster-dump" / "cluster.yaml"
CONTROLLER = "endpointslice-controller.k8s.io"


@pytest.fixture(scope="module")
def raw() -> dict[str, list[dict]]:
    items = yaml.safe_load(DUMP.read_text())["items"]
    return {kind: [i for i in items if i["kind"] == kind] for kind in ("Node", "Service", "EndpointSlice")}


@pytest.fixture(scope="module")
def model():
    return load_model([str(DUMP)])


@pytest.fixture(scope="module")
def plan(model):
    return make_plan(model, "t")


def key(obj: dict) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def expected_endpoints(raw, svc: dict) -> dict[str, set[tuple[str, int, bool]]]:
    """Service port name -> {(address, port, ready)} of the dump's slices of `svc`, matched by
    port name and protocol as kube-proxy matches them."""
    out: dict[str, set[tuple[str, int, bool]]] = {}
    slices = [s for s in raw["EndpointSlice"] if s["metadata"].get("namespace") == svc["metadata"]["namespace"]
              and s["metadata"]["labels"].get("kubernetes.io/service-name") == svc["metadata"]["name"]]
    for port in svc["spec"].get("ports", []):
        found = out.setdefault(port.get("name", ""), set())
        for sl in slices:
            for sp in sl["ports"] or ():
                if sp.get("name", "") != port.get("name", "") or sp["protocol"] != port["protocol"]:
                    continue
                for e in sl["endpoints"] or ():
                    found.add((e["addresses"][0], sp["port"], e.get("conditions", {}).get("ready") is not False))
    return out


# ------------------------------------------------------------------------------------ loading


def test_the_dump_loads_as_it_is_with_one_warning(model, raw):
    assert len(model.nodes) == len(raw["Node"]) == 3
    assert len(model.services) == len(raw["Service"]) == 54
    assert len(model.endpoint_slices) == len(raw["EndpointSlice"]) == 51
    # The only word on it: its kube-dns slice, which the lab's own DNS pod replaces.
    assert len(model.warnings) == 1
    assert model.warnings[0].endswith("EndpointSlice/kube-dns-t29g9: ignored: the lab runs its cluster DNS behind "
                                      "Service kube-system/kube-dns (the manifests run nothing it selects), and "
                                      "makes its slices from that pod")


def test_the_subnets_are_derived_from_the_pod_cidrs_and_cluster_ips(model, raw):
    assert model.cluster.pod_subnet == IPv4Network("10.244.0.0/16")  # flannel's, the /22 the CIDRs span widened
    assert model.cluster.service_subnet == IPv4Network("10.96.0.0/12")  # kubeadm's: its clusterIPs span it
    assert set(model.cluster.derived) == {"podSubnet", "serviceSubnet"}
    assert model.cluster.origin is None  # no Cluster object
    ips = [IPv4Network(s["spec"]["clusterIP"]) for s in raw["Service"] if s["spec"].get("clusterIP", "None") != "None"]
    assert model.cluster.service_subnet == covering(ips, floor=16)


def test_each_node_keeps_exactly_its_pod_cidr(plan, raw):
    assert {n.name: str(n.pod_cidr) for n in plan.nodes} == {
        n["metadata"]["name"]: n["spec"]["podCIDR"] for n in raw["Node"]}
    assert {n.name: str(n.pod_cidr) for n in plan.nodes} == {  # the workers' out of order, as the dump has them
        "k8s-cp-1": "10.244.0.0/24", "k8s-worker-1": "10.244.2.0/24", "k8s-worker-2": "10.244.1.0/24"}
    # host-gw: every other node's podCIDR through that node; the service subnet through the router
    cp = plan.node("k8s-cp-1")
    routes = {str(r.dst): str(r.via) for r in node_routes(plan, cp)}
    assert routes["10.244.2.0/24"] == str(plan.node("k8s-worker-1").ip)
    assert routes["10.244.1.0/24"] == str(plan.node("k8s-worker-2").ip)
    assert "10.96.0.0/12" in routes
    # the taint and role labels of the control plane come along
    assert [t.key for t in cp.taints] == ["node-role.kubernetes.io/control-plane"]


def test_every_service_keeps_its_address_node_ports_and_load_balancer_ingress(plan, raw):
    planned = {s.key: s for s in plan.services}
    assert len(planned) == 54  # the dump's kubernetes and kube-dns stand for the lab's own
    for svc in raw["Service"]:
        got, spec = planned[key(svc)], svc["spec"]
        assert got.type == spec["type"]
        if spec["type"] == "ExternalName":
            assert got.external_name == spec["externalName"] and got.cluster_ip is None
            continue
        assert (str(got.cluster_ip) if got.cluster_ip else "None") == spec["clusterIP"]
        assert {p.name: p.node_port for p in got.ports} == {p.get("name"): p.get("nodePort") for p in spec["ports"]}
        assert got.session_affinity == spec["sessionAffinity"]
        assert got.internal_traffic_policy == spec["internalTrafficPolicy"]
        assert got.external_traffic_policy == spec.get("externalTrafficPolicy", "Cluster")
        ingress = [i["ip"] for i in svc["status"].get("loadBalancer", {}).get("ingress", [])]
        assert [str(a) for a in got.load_balancer_ips] == ingress
    assert {str(a) for a in planned["ingress-nginx/ingress-nginx-controller"].load_balancer_ips} == {"192.168.56.240"}


def test_endpoints_are_the_exported_slices(plan, raw):
    planned = {s.key: s for s in plan.services}
    checked = 0
    for svc in raw["Service"]:
        if svc["spec"]["type"] == "ExternalName" or key(svc) == "kube-system/kube-dns":
            continue
        got = {p.name or "": {(str(e.ip), e.port, e.ready) for e in p.endpoints} for p in planned[key(svc)].ports}
        assert got == expected_endpoints(raw, svc), key(svc)
        checked += 1
    assert checked == 50
    # spot checks: a named targetPort resolved through the slice, hostNetwork endpoints on the nodes'
    # own addresses, a not-ready and a terminating endpoint kept as written, a selector-less Service's
    # written slice, the controller's empty slice of a Service that selects nothing
    ports = {s.key: {p.name: p for p in s.ports} for s in plan.services}
    assert {(str(e.ip), e.port) for e in ports["kube-system/metrics-server"]["https"].endpoints} == {
        (next(iter(expected_endpoints(raw, _svc(raw, "kube-system/metrics-server"))["https"]))[0], 10250)}
    assert {str(e.ip) for e in ports["monitoring/node-exporter"]["https"].endpoints} == {
        "192.168.56.10", "192.168.56.11", "192.168.56.12"}
    canary = ports["default/web-canary"]["http"].endpoints
    assert sorted((e.ready, e.serving, e.terminating) for e in canary) == [
        (False, False, False), (False, True, True), (True, True, False)]
    assert {str(e.ip) for e in ports["shop/legacy-inventory"]["http"].endpoints} == {"192.168.70.15", "192.168.70.16"}
    assert ports["default/orphan"]["http"].endpoints == ()
    assert planned["default/orphan"].exported_slices and not planned["shop/legacy-inventory"].exported_slices


def _svc(raw, k: str) -> dict:
    return next(s for s in raw["Service"] if key(s) == k)


def test_the_lab_dns_runs_behind_the_dumps_kube_dns(plan, raw):
    (dns_pod,) = plan.pods
    assert dns_pod.namespace == "kube-system" and dns_pod.labels["k8s-app"] == "kube-dns"
    assert dns_pod.node == "k8s-cp-1"  # the only node it fits on: the workers? no, it tolerates the control plane
    kube_dns = next(s for s in plan.services if s.key == "kube-system/kube-dns")
    assert str(kube_dns.cluster_ip) == _svc(raw, "kube-system/kube-dns")["spec"]["clusterIP"] == "10.96.0.10"
    assert not kube_dns.exported_slices
    assert {(str(e.ip), e.port) for p in kube_dns.ports for e in p.endpoints} == {
        (str(dns_pod.ip), 53), (str(dns_pod.ip), 9153)}


def test_get_endpointslices_lists_the_dumps_slices(plan, raw):
    listed = {f"{s.namespace}/{s.name}": s for s in all_slices(plan)}
    dumped = {key(s) for s in raw["EndpointSlice"]}
    kube_dns = {k for k in dumped if k.startswith("kube-system/kube-dns-")}
    assert dumped - kube_dns <= set(listed)
    # kube-dns's: the lab's controller's, of its DNS pod, in place of the dump's
    assert not kube_dns & set(listed)
    made = [s for k, s in listed.items() if k not in dumped]
    assert [(s.service, s.owner) for s in made] == [("kube-dns", "Service")]


def test_a_pod_the_service_selects_takes_over_from_the_exported_slices(tmp_path, raw):
    pod = tmp_path / "frontend.yaml"
    pod.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: frontend-local, namespace: shop, labels: {app: frontend}}
        spec:
          nodeName: k8s-worker-1
          containers: [{name: server, image: registry.k8s.io/e2e-test-images/agnhost:2.52,
                        args: [netexec, --http-port=8080], ports: [{containerPort: 8080}]}]
        """))
    plan = make_plan(load_model([str(DUMP), str(pod)]), "t")
    frontend = {s.key: s for s in plan.services}["shop/frontend"]
    local = next(p for p in plan.pods if p.name == "frontend-local")
    assert not frontend.exported_slices
    assert [(e.ip, e.port) for e in frontend.ports[0].endpoints] == [(local.ip, 8080)]
    # the other Services keep their dump's endpoints
    cart = {s.key: s for s in plan.services}["shop/cartservice"]
    assert cart.exported_slices and cart.ports[0].endpoints
    # the lab's pods take no address the dump's endpoints name: those are the cluster's pods'
    named = {e["addresses"][0] for sl in raw["EndpointSlice"] for e in sl["endpoints"] or ()}
    assert {str(p.ip) for p in plan.pods}.isdisjoint(named)
    assert str(local.ip) not in named


# ------------------------------------------------------------------------------------ a running lab


def test_a_running_lab_keeps_its_derived_subnets_when_what_gave_them_changes(model, plan):
    # deleting the Services at either end of the /12 narrows what the clusterIPs span; the lab
    # keeps the network its Services and pods are on
    lowest, highest = (min(s.cluster_ip for s in plan.services if s.cluster_ip and s.key != "default/kubernetes"),
                       max(s.cluster_ip for s in plan.services if s.cluster_ip))
    fewer = load_model([str(DUMP)])
    fewer = dataclasses.replace(fewer, services=tuple(
        s for s in fewer.services if s.cluster_ip not in (str(lowest), str(highest))))
    again = make_plan(fewer, "t", previous=plan)
    assert again.cluster.service_subnet == IPv4Network("10.96.0.0/12")


def test_a_cluster_ip_no_service_subnet_holds_with_the_others_is_refused_where_written(tmp_path, monkeypatch, plan):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "svc.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: far, namespace: shop}\n"
                                       "spec: {clusterIP: 10.95.0.7, ports: [{port: 80}]}\n")
    with pytest.raises(InputError) as err:
        make_plan(load_model([str(DUMP), "svc.yaml"]), "t", previous=plan)
    assert err.value.problems == [
        "svc.yaml:4: spec.clusterIP: 10.95.0.7 is outside the subnet 10.96.0.0/12 derived from the clusterIPs "
        "before it, and a subnet holding it too (10.64.0.0/10) is larger than a /12, the largest service subnet "
        "kube-apiserver takes; or set networking.serviceSubnet in the Cluster config (apiVersion: "
        "kubenet-lab.dev/v1alpha1, kind: Cluster)"]


def test_a_running_lab_refuses_to_move_its_derived_subnet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    svc = "apiVersion: v1\nkind: Service\nmetadata: {{name: {}}}\nspec: {{clusterIP: {}, ports: [{{port: 80}}]}}\n"
    (tmp_path / "a.yaml").write_text(svc.format("a", "10.43.0.50"))
    (tmp_path / "b.yaml").write_text(svc.format("b", "10.44.0.50"))
    running = make_plan(load_model(["a.yaml"]), "t")
    assert running.cluster.service_subnet == IPv4Network("10.43.0.0/16")
    with pytest.raises(InputError) as err:
        make_plan(load_model(["a.yaml", "b.yaml"]), "t", previous=running)
    assert err.value.problems == [
        "b.yaml:4: spec.clusterIP: 10.44.0.50 is outside networking.serviceSubnet 10.43.0.0/16 of the running lab "
        "(derived from its Services' clusterIPs when it came up; a running lab's networks may not change); write "
        "one inside it, or remove the lab (kubenet-lab down) and bring it up anew"]


# ------------------------------------------------------------------------------------ bad input


def problems(tmp_path, text: str) -> list[str]:
    (tmp_path / "cluster.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    with pytest.raises(InputError) as err:
        make_plan(load_model(["cluster.yaml"]), "t")
    return err.value.problems


def node_item(name: str, cidr: str) -> str:
    return f"""\
        - apiVersion: v1
          kind: Node
          metadata:
            name: {name}
            resourceVersion: "4242"
            uid: 0b6c1f0e-{name}
          spec:
            podCIDR: {cidr}
            podCIDRs:
            - {cidr}
            providerID: kind://docker/kind/{name}
          status:
            addresses:
            - address: 172.18.0.9
              type: InternalIP
"""


@pytest.fixture
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("_in_tmp")
def test_two_nodes_with_overlapping_pod_cidrs(tmp_path):
    assert problems(tmp_path, "apiVersion: v1\nitems:\n" + node_item("a", "10.244.0.0/24")
                    + node_item("b", "10.244.0.0/23") + "kind: List\n") == [
        "cluster.yaml:25: items[1].spec.podCIDR: 10.244.0.0/23 overlaps the podCIDR of node a (10.244.0.0/24)"]


@pytest.mark.usefixtures("_in_tmp")
def test_a_pod_cidr_outside_the_subnet_the_others_give(tmp_path):
    assert problems(tmp_path, "apiVersion: v1\nitems:\n" + node_item("a", "10.244.0.0/24")
                    + node_item("b", "10.244.1.0/24") + node_item("c", "10.96.3.0/24") + "kind: List\n") == [
        "cluster.yaml:40: items[2].spec.podCIDR: 10.96.3.0/24 is outside the subnet 10.244.0.0/16 derived from "
        "the podCIDRs before it, and a subnet holding it too (10.0.0.0/8) would overlap networking.serviceSubnet "
        "10.96.0.0/16 (the default); or set networking.podSubnet in the Cluster config (apiVersion: "
        "kubenet-lab.dev/v1alpha1, kind: Cluster)"]


@pytest.mark.usefixtures("_in_tmp")
def test_a_pod_cidr_in_the_service_subnet_the_cluster_ips_give(tmp_path):
    service = """\
        - apiVersion: v1
          kind: Service
          metadata: {name: web, namespace: default}
          spec:
            clusterIP: 10.43.12.7
            clusterIPs: [10.43.12.7]
            ports: [{port: 80, protocol: TCP, targetPort: 80}]
            type: ClusterIP
          status: {loadBalancer: {}}
"""
    assert problems(tmp_path, "apiVersion: v1\nitems:\n" + node_item("a", "10.43.0.0/24") + service
                    + "kind: List\n") == [
        "cluster.yaml:10: items[0].spec.podCIDR: 10.43.0.0/24 overlaps networking.serviceSubnet 10.43.0.0/16 "
        "(derived from the Services' clusterIPs); or set networking.podSubnet in the Cluster config (apiVersion: "
        "kubenet-lab.dev/v1alpha1, kind: Cluster)"]


@pytest.mark.usefixtures("_in_tmp")
def test_a_pod_cidr_outside_the_declared_pod_subnet(tmp_path):
    cluster = "---\napiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\nnetworking: {podSubnet: 10.42.0.0/16}\n"
    assert problems(tmp_path, "apiVersion: v1\nitems:\n" + node_item("a", "10.244.0.0/24") + "kind: List\n"
                    + cluster) == [
        "cluster.yaml:10: items[0].spec.podCIDR: 10.244.0.0/24 is outside networking.podSubnet 10.42.0.0/16"]


@pytest.mark.usefixtures("_in_tmp")
def test_zone_hints_are_said_to_be_not_modelled_when_nodes_have_zones(tmp_path):
    (tmp_path / "cluster.yaml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Node
        metadata: {name: a, labels: {topology.kubernetes.io/zone: eu-west-1a}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: s}
        spec: {ports: [{port: 80}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}
        addressType: IPv4
        endpoints:
        - addresses: [10.244.0.5]
          zone: eu-west-1a
          hints:
            forZones: [{name: eu-west-1a}]
        ports: [{port: 80}]
        """))
    assert load_model(["cluster.yaml"]).warnings == (
        "cluster.yaml:17: endpoints[0].hints: not modelled yet: the nodes have topology.kubernetes.io/zone labels, "
        "so on a cluster kube-proxy would use only the endpoints hinted for its node's zone (topology-aware "
        "routing, when every ready endpoint has a hint); here every node uses every ready endpoint",)
    # without zones on the nodes kube-proxy ignores hints, and so does the lab, silently
    text = (tmp_path / "cluster.yaml").read_text().replace(", labels: {topology.kubernetes.io/zone: eu-west-1a}", "")
    (tmp_path / "cluster.yaml").write_text(text)
    assert load_model(["cluster.yaml"]).warnings == ()


def test_covering():
    nets = [IPv4Network(n) for n in ("10.244.0.0/24", "10.244.2.0/24", "10.244.1.0/24")]
    assert covering(nets) == IPv4Network("10.244.0.0/16")
    assert covering(nets, floor=32) == IPv4Network("10.244.0.0/22")
    assert covering([IPv4Network("10.96.0.1/32"), IPv4Network("10.111.255.254/32")]) == IPv4Network("10.96.0.0/12")
    assert covering([IPv4Network("10.43.0.10/32")]) == IPv4Network("10.43.0.0/16")


def test_node_names_are_dns_subdomains_as_a_cloud_names_them(tmp_path, monkeypatch):
    """An EKS node is ip-10-0-1-23.<region>.compute.internal: the API server takes any DNS
    subdomain for a Node's name (and a pod's nodeName), and so does the lab."""
    monkeypatch.chdir(tmp_path)
    eks = {f"k8s-{n}": f"ip-192-168-56-{i}.eu-west-1.compute.internal"
           for i, n in ((10, "cp-1"), (11, "worker-1"), (12, "worker-2"))}
    text = DUMP.read_text()
    for old, new in eks.items():
        text = text.replace(old, new)
    (tmp_path / "eks.yaml").write_text(text)
    (tmp_path / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
                                       f"  nodeName: {eks['k8s-worker-2']}\n  containers: [{{name: c}}]\n")
    plan = make_plan(load_model(["eks.yaml", "pod.yaml"]), "t")
    assert {n.name: str(n.pod_cidr) for n in plan.nodes} == {
        eks["k8s-cp-1"]: "10.244.0.0/24", eks["k8s-worker-1"]: "10.244.2.0/24", eks["k8s-worker-2"]: "10.244.1.0/24"}
    assert next(p for p in plan.pods if p.name == "p").node == eks["k8s-worker-2"]
    node_of = {str(e.ip): e.node for s in plan.services if s.key == "payments/kafka" for e in s.ports[0].endpoints}
    assert set(node_of.values()) == set(eks.values())


SVC = ("- apiVersion: v1\n  kind: Service\n  metadata: {{name: {name}, namespace: {ns}}}\n"
       "  spec: {{clusterIP: {ip}, clusterIPs: [{ip}], ports: [{{port: 443, protocol: TCP}}], type: ClusterIP}}\n")


def gke(tmp_path, dns_ip: str):
    """A GKE cluster's Services: its service range 34.118.224.0/20, at no /16 boundary."""
    items = (SVC.format(name="kubernetes", ns="default", ip="34.118.224.1")
             + SVC.format(name="kube-dns", ns="kube-system", ip=dns_ip)
             + SVC.format(name="web", ns="default", ip="34.118.230.77"))
    (tmp_path / "gke.yaml").write_text("apiVersion: v1\nitems:\n" + items + "kind: List\n")
    return load_model(["gke.yaml"])


def test_the_service_subnet_starts_where_the_kubernetes_service_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = gke(tmp_path, "34.118.224.10")
    # not 34.118.0.0/16, whose first and tenth addresses are no Service's, but the largest net
    # whose first address is kubernetes' (the cluster's own /20 is its lower half)
    assert model.cluster.service_subnet == IPv4Network("34.118.224.0/19") and model.warnings == ()
    plan = make_plan(model, "t")
    assert {s.key: str(s.cluster_ip) for s in plan.services} == {
        "default/kubernetes": "34.118.224.1", "kube-system/kube-dns": "34.118.224.10", "default/web": "34.118.230.77"}


def test_a_kube_dns_at_another_address_than_the_tenth_is_warned_about(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert gke(tmp_path, "34.118.224.53").warnings == (
        "gke.yaml:10: items[1].spec.clusterIP: 34.118.224.53 is not the tenth address of the service subnet "
        "34.118.224.0/19 derived from the clusterIPs (kubeadm's clusterDNS): the lab's pods are told the cluster "
        "DNS is at 34.118.224.10, where nothing answers; set networking.serviceSubnet in the Cluster config "
        "(apiVersion: kubenet-lab.dev/v1alpha1, kind: Cluster) to the cluster's",)


def test_a_service_another_proxy_serves_is_said_to_be_served_here(tmp_path, monkeypatch):
    """kube-proxy watches only Services without service.kubernetes.io/service-proxy-name (its
    informer's label selector): such a Service in a dump would get no kube-proxy rules there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  labels:\n"
                                     "    service.kubernetes.io/service-proxy-name: cilium\n"
                                     "spec: {ports: [{port: 80}]}\n")
    assert load_model(["s.yaml"]).warnings == (
        "s.yaml:6: metadata.labels.service.kubernetes.io/service-proxy-name: not modelled: on a cluster kube-proxy "
        "writes no rules for a Service with this label (the proxy it names, 'cilium', serves it); here "
        "kube-proxy's rules serve it",)
