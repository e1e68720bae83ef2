"""EndpointSlices and legacy Endpoints: the schema's messages, the model, and the planner's use
of them for Services without a selector (kube-proxy's matching, the mirroring controller)."""
from __future__ import annotations

import re
import textwrap

import pytest

from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.model.objects import ObjectRef
from kubenet_lab.plan import make_plan, naming
from kubenet_lab.plan.endpointslices import controller_slices
from kubenet_lab.plan.services import with_readiness

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: metrics, port: 9100}
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # messages name the file as given: m.yaml


def load(tmp_path, text: str):
    (tmp_path / "m.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    return load_model(["m.yaml"])


def problems(tmp_path, text: str) -> list[str]:
    with pytest.raises(InputError) as err:
        load(tmp_path, text)
    return err.value.problems


def slice_doc(body: str, name: str = "ext-a", service: str = "ext") -> str:
    return ("---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            f"metadata:\n  name: {name}\n  labels: {{kubernetes.io/service-name: {service}}}\n"
            + textwrap.dedent(body))


def service_port(plan, key: str, name: str):
    svc = next(s for s in plan.services if s.key == key)
    return next(p for p in svc.ports if p.name == name)


# ------------------------------------------------------------------------------------ schema


def test_slice_fields_checked_with_the_api_servers_words(tmp_path):
    text = SERVICE + slice_doc("""\
        addressType: IPv4
        ports:
        - {name: http, port: 0}
        - {name: http, protocol: ICMP}
        - {name: Bad_Name}
        endpoints:
        - addresses: []
        - addresses: ["10.0.0.300"]
        - addresses: ["127.0.0.1"]
          conditions: {ready: yes please}
        - addresses: ["10.244.0.9"]
          hostname: Web.1
        """)
    assert problems(tmp_path, text) == [
        "m.yaml:16: ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "m.yaml:17: ports[1].protocol: expected one of TCP, UDP, SCTP, got 'ICMP'",
        "m.yaml:18: ports[2].name: " + naming_error("Bad_Name"),
        "m.yaml:20: endpoints[0].addresses: Required value: must contain at least 1 address",
        'm.yaml:21: endpoints[1].addresses[0]: Invalid value: "10.0.0.300": must be a valid IP address',
        'm.yaml:22: endpoints[2].addresses[0]: Invalid value: "127.0.0.1": may not be in the loopback range '
        "(127.0.0.0/8, ::1/128)",
        "m.yaml:23: endpoints[2].conditions.ready: expected true or false, got 'yes please'",
        "m.yaml:25: endpoints[3].hostname: " + naming_error("Web.1"),
    ]


def naming_error(value: str) -> str:
    from kubenet_lab.manifests.values import dns_label
    from kubenet_lab.manifests.fields import Invalid

    try:
        dns_label(value)
    except Invalid as e:
        return str(e)
    raise AssertionError(f"{value} is a DNS label")


def test_duplicate_port_names_are_refused(tmp_path):
    text = SERVICE + slice_doc("""\
        addressType: IPv4
        ports: [{name: http, port: 8080}, {name: http, port: 8081}]
        """)
    assert problems(tmp_path, text) == ['m.yaml:15: ports[1].name: Duplicate value: "http"']


@pytest.mark.parametrize("family, why", [
    ("IPv6", "IPv6 is not supported: kubenet-lab is a single-stack IPv4 cluster"),
    ("FQDN", "FQDN is not supported: kube-proxy ignores FQDN slices"),
    ("IPX", "expected one of IPv4, got 'IPX'"),
])
def test_address_types_other_than_ipv4_are_refused_clearly(tmp_path, family, why):
    found = problems(tmp_path, SERVICE + slice_doc(f"addressType: {family}\n"))
    assert len(found) == 1 and found[0].startswith(f"m.yaml:14: addressType: {why}")


def test_address_type_is_required(tmp_path):
    assert problems(tmp_path, SERVICE + slice_doc("endpoints: []\n")) == [
        "m.yaml:9: addressType: required field is missing"]


def test_an_ipv6_endpoint_address_is_refused(tmp_path):
    found = problems(tmp_path, SERVICE + slice_doc("addressType: IPv4\nendpoints: [{addresses: ['fd00::1']}]\n"))
    assert found == ['m.yaml:15: endpoints[0].addresses[0]: Invalid value: "fd00::1": must be an IPv4 address '
                     "(kubenet-lab is a single-stack IPv4 cluster: its kube-proxy reads IPv4 slices only)"]


@pytest.mark.parametrize("subsets, problem", [
    ("- addresses: [{ip: 0.0.0.0}]\n",
     'm.yaml:13: subsets[0].addresses[0].ip: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0, ::)'),
    ("- addresses: [{ip: 169.254.1.1}]\n", 'm.yaml:13: subsets[0].addresses[0].ip: Invalid value: "169.254.1.1": '
     "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
    ("- addresses: [{ip: 10.1.2.3}]\n  ports: [{port: 80}, {name: b, port: 81}]\n",
     "m.yaml:14: subsets[0].ports[0].name: Required value"),
    ("- ports: [{name: a, port: 80}]\n",
     "m.yaml:13: subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"),
    ("- notReadyAddresses: [{ip: 10.1.2.3}]\n  ports: [{name: a}]\n",
     "m.yaml:14: subsets[0].ports[0].port: required field is missing"),
])
def test_endpoints_subsets_checked(tmp_path, subsets, problem):
    text = SERVICE + "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: ext}\nsubsets:\n" + subsets
    assert problems(tmp_path, text) == [problem]


def test_model_keeps_the_slice_as_written_with_the_apis_defaults(tmp_path):
    model = load(tmp_path, SERVICE + slice_doc("""\
        addressType: IPv4
        ports: [{port: 8080}]
        endpoints:
        - addresses: ["10.244.0.9"]
          conditions: {serving: true}
          nodeName: node1
          hostname: web-0
          targetRef: {kind: Pod, name: web-0}
        """))
    (sl,) = model.endpoint_slices
    assert (sl.service, sl.address_type, sl.ports[0].name, sl.ports[0].protocol) == ("ext", "IPv4", "", "TCP")
    (e,) = sl.endpoints
    assert (e.ready, e.is_ready, e.serving, e.terminating, e.node_name, e.hostname, e.target_ref) == (
        None, True, True, None, "node1", "web-0", ObjectRef("Pod", "", "web-0", ""))


def test_warnings_say_what_becomes_of_slices_the_lab_does_not_use(tmp_path):
    text = SERVICE + """\
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
""" + slice_doc("addressType: IPv4\n", name="web-mine", service="web") + """\
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-owned
  labels: {kubernetes.io/service-name: web, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
addressType: IPv4
""" + slice_doc("addressType: IPv4\n", name="orphan", service="nothing") + """\
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
""" + PODS  # the lab runs a pod the Service selects: the controller's slices are made of it
    warnings = load(tmp_path, text).warnings
    assert any("EndpointSlice/web-owned: ignored: Service default/web has a selector" in w for w in warnings)
    assert any("EndpointSlice/web-mine: Service default/web has a selector: kube-proxy uses this slice's endpoints "
               "as well" in w for w in warnings)
    assert any("EndpointSlice/orphan: no Service default/nothing" in w for w in warnings)
    assert any("Endpoints/web: ignored: Service default/web has a selector" in w for w in warnings)


# ------------------------------------------------------------------------------------ planning

PODS = """\
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers: [{name: c, image: nginx, ports: [{containerPort: 8080}]}]
"""


def test_a_selectorless_service_gets_exactly_its_slices_endpoints_port_by_name(tmp_path):
    model = load(tmp_path, SERVICE + PODS + slice_doc("""\
        addressType: IPv4
        ports: [{name: http, port: 8080}, {name: metrics, port: 9100}]
        endpoints:
        - addresses: ["10.244.0.50"]
        - addresses: ["10.244.1.51"]
          conditions: {ready: false}
        """) + slice_doc("""\
        addressType: IPv4
        ports: [{name: http, port: 8081}, {name: other, port: 7000}, {name: metrics, protocol: UDP, port: 9101}]
        endpoints:
        - addresses: ["192.0.2.10", "192.0.2.11"]
          nodeName: node2
        """, name="ext-b") + slice_doc("""\
        addressType: IPv4
        ports: [{name: http, port: 9999}]
        endpoints: [{addresses: ["192.0.2.99"]}]
        """, name="not-ext", service="web"))
    plan = make_plan(model, "t")
    http = [(str(e.ip), e.port, e.ready, e.node) for e in service_port(plan, "default/ext", "http").endpoints]
    assert http == [("10.244.0.50", 8080, True, ""), ("10.244.1.51", 8080, False, ""),
                    ("192.0.2.10", 8081, True, "node2")]  # the first address of an endpoint only
    metrics = [(str(e.ip), e.port) for e in service_port(plan, "default/ext", "metrics").endpoints]
    assert metrics == [("10.244.0.50", 9100), ("10.244.1.51", 9100)]  # a UDP slice port is no TCP service port


def test_an_unnamed_service_port_matches_the_unnamed_slice_port(tmp_path):
    model = load(tmp_path, """\
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  ports: [{port: 80}]
""" + slice_doc("""\
        addressType: IPv4
        ports: [{port: 8080}, {name: http, port: 9090}]
        endpoints: [{addresses: ["10.244.0.50"]}]
        """))
    (port,) = next(s for s in make_plan(model, "t").services if s.key == "default/ext").ports
    assert [(str(e.ip), e.port) for e in port.endpoints] == [("10.244.0.50", 8080)]


def test_a_slice_endpoint_naming_a_pod_keeps_its_written_readiness(tmp_path):
    model = load(tmp_path, SERVICE + PODS + slice_doc("""\
        addressType: IPv4
        ports: [{name: http, port: 8080}]
        endpoints:
        - addresses: ["10.244.0.50"]
          targetRef: {kind: Pod, name: web}
        """))
    plan = make_plan(model, "t")
    (e,) = service_port(plan, "default/ext", "http").endpoints
    assert e.pod == "default/web" and e.ready
    # the pod not ready: the controller's Endpoints of a selecting Service would change; a written slice does not
    (again,) = service_port(with_readiness(plan, {"default/web"}), "default/ext", "http").endpoints
    assert again.ready


def test_endpoints_are_mirrored_for_a_selectorless_service(tmp_path):
    model = load(tmp_path, SERVICE + """\
---
apiVersion: v1
kind: Endpoints
metadata: {name: ext, labels: {team: a}}
subsets:
- addresses: [{ip: 192.0.2.7, nodeName: node1}]
  notReadyAddresses: [{ip: 192.0.2.8}]
  ports: [{name: http, port: 8080}, {name: metrics, port: 9100}]
- addresses: [{ip: 192.0.2.9}]
  ports: [{name: http, port: 8080}, {name: metrics, port: 9100}]
""")
    plan = make_plan(model, "t")
    http = [(str(e.ip), e.port, e.ready) for e in service_port(plan, "default/ext", "http").endpoints]
    assert http == [("192.0.2.7", 8080, True), ("192.0.2.8", 8080, False), ("192.0.2.9", 8080, True)]
    (mirror,) = plan.endpoint_slices  # both subsets have the same ports: one slice
    assert mirror.name == naming.generate_name("ext", "EndpointSliceMirroring/default/ext", 0)
    assert mirror.labels == {"team": "a", "kubernetes.io/service-name": "ext",
                             "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"}
    assert [(e.addresses, e.ready, e.node_name) for e in mirror.endpoints] == [
        (("192.0.2.7",), True, "node1"), (("192.0.2.8",), False, None), (("192.0.2.9",), True, None)]
    assert plan.endpoints[0].name == "ext"


def test_endpoints_labelled_skip_mirror_give_no_endpoints(tmp_path):
    model = load(tmp_path, SERVICE + """\
---
apiVersion: v1
kind: Endpoints
metadata: {name: ext, labels: {endpointslice.kubernetes.io/skip-mirror: "true"}}
subsets:
- addresses: [{ip: 192.0.2.7}]
  ports: [{name: http, port: 8080}]
""")
    plan = make_plan(model, "t")
    assert service_port(plan, "default/ext", "http").endpoints == () and plan.endpoint_slices == ()
    assert any("skip-mirror=true: not mirrored" in w for w in model.warnings)


def test_a_selecting_service_ignores_controller_labelled_slices_and_adds_others(tmp_path):
    model = load(tmp_path, """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
""" + PODS + slice_doc("""\
        addressType: IPv4
        ports: [{name: http, port: 8080}]
        endpoints: [{addresses: ["192.0.2.1"]}]
        """, name="extra", service="web") + """\
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-fake
  labels: {kubernetes.io/service-name: web, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: ["192.0.2.2"]}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets: [{addresses: [{ip: 192.0.2.3}], ports: [{name: http, port: 8080}]}]
""")
    plan = make_plan(model, "t")
    web = plan.pod("default/web")
    eps = [(str(e.ip), e.pod) for e in service_port(plan, "default/web", "http").endpoints]
    assert sorted(eps) == sorted([(str(web.ip), "default/web"), ("192.0.2.1", "")])
    assert [s.name for s in plan.endpoint_slices] == ["extra", "web-fake"]  # as written; the mirror makes none


def test_the_controllers_slices_are_named_by_generate_name_and_grouped_by_ports(tmp_path):
    model = load(tmp_path, """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: web}}
spec:
  containers: [{name: c, image: nginx, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: web}}
spec:
  containers: [{name: c, image: nginx, ports: [{name: http, containerPort: 9090}]}]
---
apiVersion: v1
kind: Service
metadata: {name: none}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
""")
    plan = make_plan(model, "t")
    web = next(s for s in plan.services if s.name == "web")
    slices = controller_slices(web, {})
    assert [s.name for s in slices] == [naming.generate_name("web", "EndpointSlice/default/web", i) for i in (0, 1)]
    assert all(len(s.name) == len("web-") + 5 and s.name[4:].isalnum() for s in slices)
    assert sorted((s.ports[0].port, s.endpoints[0].target_ref.name) for s in slices) == [(8080, "a"), (9090, "b")]
    assert slices[0].labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    (placeholder,) = controller_slices(next(s for s in plan.services if s.name == "none"), {})
    assert (placeholder.ports, placeholder.endpoints) == ((), ())


# ------------------------------------------------------------------------------------ get

GET_LAB = "unitslices"


@pytest.fixture
def get(tmp_path, monkeypatch):
    """`get` on a plan of the manifests given, planted in a temporary state directory."""
    from click.testing import CliRunner

    from kubenet_lab.cli import main
    from kubenet_lab.fabric import state

    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path / "state"))
    monkeypatch.setenv("KUBENET_LAB_WARM", "0")
    runner = CliRunner()

    def run(text: str, *args: str):
        plan = make_plan(load(tmp_path, text), GET_LAB)
        state.save_plan(plan)
        result = runner.invoke(main, ["--lab", GET_LAB, "get", *args], catch_exceptions=False)
        return plan, result
    return run


MIXED = SERVICE + slice_doc("""\
    addressType: IPv4
    ports: [{name: http, port: 8080}, {name: metrics, port: 9100}, {name: a, port: 1}, {name: b}]
    endpoints:
    - addresses: ["10.244.0.50"]
    - addresses: ["10.244.0.51"]
      conditions: {ready: false}
    - addresses: ["10.244.0.52", "10.244.0.53"]
    """) + """\
---
apiVersion: v1
kind: Service
metadata: {name: only-slices}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: mirrored}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: mirrored}
subsets:
- addresses: [{ip: 192.0.2.7}]
  notReadyAddresses: [{ip: 192.0.2.8}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: idle}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
""" + PODS


def test_get_endpointslices_lists_written_mirrored_and_controller_slices_as_kubectl_does(get):
    plan, result = get(MIXED, "endpointslices")
    rows = [re.split(r"\s{3,}", line.strip()) for line in result.output.splitlines()]
    assert rows[0] == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    web_ip = str(plan.pod("default/web").ip)
    by_name = {r[0]: r[1:4] for r in rows[1:]}
    mirror = naming.generate_name("mirrored", "EndpointSliceMirroring/default/mirrored", 0)
    assert by_name == {
        # ports by number (`b` has none: its name), the first three; every address, ready or not
        "ext-a": ["IPv4", "8080,9100,1 + 1 more...", "10.244.0.50,10.244.0.51,10.244.0.52 + 1 more..."],
        mirror: ["IPv4", "8080", "192.0.2.7,192.0.2.8"],
        naming.generate_name("web", "EndpointSlice/default/web", 0): ["IPv4", "8080", web_ip],
        naming.generate_name("idle", "EndpointSlice/default/idle", 0): ["IPv4", "<unset>", "<unset>"],
    }


def test_get_endpointslice_yaml_as_written_and_as_the_controllers_make_them(get):
    import yaml

    plan, result = get(MIXED, "endpointslices", "-o", "json")
    items = {i["metadata"]["name"]: i for i in json_items(result.output)}
    ext = items["ext-a"]
    assert (ext["apiVersion"], ext["kind"], ext["addressType"]) == ("discovery.k8s.io/v1", "EndpointSlice", "IPv4")
    assert "generateName" not in ext["metadata"] and "ownerReferences" not in ext["metadata"]
    assert ext["endpoints"][:2] == [{"addresses": ["10.244.0.50"], "conditions": {}},
                                    {"addresses": ["10.244.0.51"], "conditions": {"ready": False}}]
    assert ext["ports"][3] == {"name": "b", "protocol": "TCP"}
    web = next(i for n, i in items.items() if n.startswith("web-"))
    assert web["metadata"]["generateName"] == "web-"
    assert web["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert web["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    (endpoint,) = web["endpoints"]
    assert endpoint["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert endpoint["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "web",
                                     "uid": plan.pod("default/web").uid}
    assert web["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    mirror = next(i for n, i in items.items() if n.startswith("mirrored-"))
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert [e["conditions"] for e in mirror["endpoints"]] == [{"ready": True}, {"ready": False}]
    assert yaml.safe_load(get(MIXED, "endpointslices", "ext-a", "-o", "yaml")[1].output)["metadata"]["name"] == "ext-a"


def json_items(text: str) -> list[dict]:
    import json

    return json.loads(text)["items"]


def test_get_ep_shows_written_endpoints_and_none_for_a_selectorless_service_without_them(get):
    _, result = get(MIXED, "ep")
    names = [line.split()[0] for line in result.output.splitlines()[1:]]
    # kubectl lists Endpoints objects: the controller's for selecting Services, and those written
    assert names == ["idle", "kubernetes", "mirrored", "web"]
    mirrored = next(line for line in result.output.splitlines() if line.startswith("mirrored "))
    assert mirrored.split()[1] == "192.0.2.7:8080"  # the ready addresses
    _, result = get(MIXED, "ep", "mirrored", "-o", "json")
    import json

    assert json.loads(result.output)["subsets"] == [{"addresses": [{"ip": "192.0.2.7"}],
                                                     "notReadyAddresses": [{"ip": "192.0.2.8"}],
                                                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]
    _, result = get(MIXED, "ep", "only-slices")
    assert result.exit_code == 1 and 'endpoints "only-slices" not found' in result.output


def test_describe_ep_shows_the_written_endpoints(get, tmp_path):
    from click.testing import CliRunner

    from kubenet_lab.cli import main

    get(MIXED, "ep")  # plants the plan
    out = CliRunner().invoke(main, ["--lab", GET_LAB, "describe", "ep", "mirrored"], catch_exceptions=False).output
    assert "Addresses:          192.0.2.7\n" in out and "NotReadyAddresses:  192.0.2.8\n" in out


def test_kube_proxy_falls_back_to_serving_terminating_endpoints_only_when_none_is_ready(tmp_path):
    from kubenet_lab.proxy.endpoints import port_view
    from kubenet_lab.proxy.iptables import render_iptables

    def view(endpoints: str):
        model = load(tmp_path, SERVICE + slice_doc(f"addressType: IPv4\nports: [{{name: http, port: 8080}}]\n"
                                                   f"endpoints:\n{endpoints}"))
        plan = make_plan(model, "t")
        svc = next(s for s in plan.services if s.key == "default/ext")
        return plan, port_view(svc, svc.ports[0], "node1")

    draining = ("- addresses: ['10.244.1.7']\n  conditions: {ready: false, serving: true, terminating: true}\n"
                "- addresses: ['10.244.1.8']\n  conditions: {ready: false, serving: false, terminating: true}\n"
                "- addresses: ['10.244.1.9']\n  conditions: {ready: false}\n")
    plan, only_terminating = view(draining)
    assert only_terminating.has_endpoints
    assert [str(e.ip) for e in only_terminating.cluster_eps] == ["10.244.1.7"]
    rules = render_iptables(plan, "node1")
    assert "10.244.1.7:8080" in rules and "10.244.1.9:8080" not in rules
    _, with_ready = view(draining + "- addresses: ['10.244.1.10']\n")
    assert [str(e.ip) for e in with_ready.cluster_eps] == ["10.244.1.10"]
    _, none = view("- addresses: ['10.244.1.9']\n  conditions: {ready: false}\n")
    assert not none.has_endpoints and none.cluster_eps == ()


def test_a_headless_service_without_a_selector_resolves_to_its_slices_ready_addresses(tmp_path):
    from dnslib import DNSRecord

    from kubenet_lab.servers.dns import ClusterDNS

    model = load(tmp_path, """\
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
""" + slice_doc("""\
        addressType: IPv4
        ports: [{name: pg, port: 5432}]
        endpoints:
        - addresses: ["192.0.2.20"]
        - addresses: ["192.0.2.21"]
          conditions: {ready: false}
        """, name="db-1", service="db"))
    dns = ClusterDNS(make_plan(model, "t"))
    reply = DNSRecord.parse(dns.answer(DNSRecord.question("db.default.svc.cluster.local", "A").pack()))
    assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.20"]
