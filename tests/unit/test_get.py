"""`get` as kubectl prints it, without root: a plan is planted in a temporary state directory and
the CLI reads it as it reads a running lab's (no supervisor: pods show their containers waiting)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kubenet_lab import output
from kubenet_lab.cli import main
from kubenet_lab.errors import InputError, LabError
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.scheduling import ARCH
from kubenet_lab.model.objects import Container, ContainerPort, Model, Node, Pod, PodSpec, Service, ServicePort
from kubenet_lab.plan.services import with_readiness
from kubenet_lab.fabric import state

LAB = "unitget"


def pod(name, labels, node, ports=(), ns="default"):
    c = Container("main", "nginx", ports=tuple(ContainerPort(p, name=n) for n, p in ports))
    return Pod(ns, name, dict(labels), PodSpec(containers=(c,), node_name=node))


def model() -> Model:
    """web-a and web-b serve `http` on different container ports; both serve 9100."""
    return Model(
        nodes=(Node("node1", labels={"zone": "a"}), Node("node2")),
        namespaces=("default", "shop"),
        pods=(pod("web-a", {"app": "web", "tier": "front"}, "node1", [("http", 8080), ("metrics", 9100)]),
              pod("web-b", {"app": "web"}, "node2", [("http", 9090), ("metrics", 9100)]),
              pod("db", {"app": "db", "tier": "back"}, "node1", [("pg", 5432)]),
              pod("plain", {}, "node2"),
              pod("cart", {"app": "cart"}, "node1", [("http", 8080)], ns="shop")),
        services=(Service("default", "web", type="NodePort", selector={"app": "web"},
                          ports=(ServicePort(80, "TCP", "http", "http", 30080),
                                 ServicePort(9100, "TCP", "metrics", 9100, 30100))),
                  Service("default", "db", selector={"app": "db"}, ports=(ServicePort(5432, "TCP", None, "pg"),)),
                  Service("shop", "cart", selector={"app": "cart"}, ports=(ServicePort(80, "TCP", "http", "http"),))),
    )


@pytest.fixture
def plan(tmp_path, monkeypatch):
    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path))
    planned = make_plan(model(), LAB)
    state.save_plan(planned)
    return planned


@pytest.fixture
def get(plan):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, ["--lab", LAB, "get", *args], catch_exceptions=False)
    return run


def ip(plan, name, ns="default"):
    return str(plan.pod(f"{ns}/{name}").ip)


# --------------------------------------------------------------------------- Endpoints subsets


def test_a_named_port_resolving_to_different_numbers_gives_one_subset_per_number(plan):
    web = next(s for s in plan.services if s.name == "web")
    subsets = output.endpoints_object(plan, web)["subsets"]
    got = [([a["targetRef"]["name"] for a in ss.get("addresses", [])], ss["ports"]) for ss in subsets]
    assert got == [
        (["web-a"], [{"name": "http", "port": 8080, "protocol": "TCP"}]),
        (["web-b"], [{"name": "http", "port": 9090, "protocol": "TCP"}]),
        (["web-a", "web-b"], [{"name": "metrics", "port": 9100, "protocol": "TCP"}]),
    ]
    a = subsets[0]["addresses"][0]
    assert a == {"ip": ip(plan, "web-a"), "nodeName": "node1",
                 "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-a",
                               "uid": plan.pod("default/web-a").uid}}


def test_ports_with_the_same_addresses_share_one_subset_and_readiness_splits_them(tmp_path, monkeypatch):
    same = Model(pods=(pod("a", {"app": "x"}, "node1", [("http", 8080), ("metrics", 9100)]),
                       pod("b", {"app": "x"}, "node2", [("http", 8080), ("metrics", 9100)])),
                 services=(Service("default", "x", selector={"app": "x"},
                                   ports=(ServicePort(80, "TCP", "http", "http"),
                                          ServicePort(9100, "TCP", "metrics", "metrics"))),))
    plan = make_plan(same, LAB)
    x = next(s for s in plan.services if s.name == "x")
    subsets = output.endpoints_object(plan, x)["subsets"]
    assert len(subsets) == 1
    assert [p["name"] for p in subsets[0]["ports"]] == ["http", "metrics"]
    assert [a["targetRef"]["name"] for a in subsets[0]["addresses"]] == ["a", "b"]
    assert "notReadyAddresses" not in subsets[0]

    # b not ready: still one subset (both ports see the same addresses with the same readiness)
    plan = with_readiness(plan, {"default/b"})
    x = next(s for s in plan.services if s.name == "x")
    [subset] = output.endpoints_object(plan, x)["subsets"]
    assert [a["targetRef"]["name"] for a in subset["addresses"]] == ["a"]
    assert [a["targetRef"]["name"] for a in subset["notReadyAddresses"]] == ["b"]
    assert output.endpoints_column(plan, x) == f"{plan.pod('default/a').ip}:8080,{plan.pod('default/a').ip}:9100"


def test_addresses_are_sorted_by_ip_as_text_as_kubernetes_sorts_them():
    many = Model(pods=tuple(pod(f"p{i}", {"app": "x"}, "node1", [("http", 80)]) for i in range(10)),
                 services=(Service("default", "x", selector={"app": "x"}, ports=(ServicePort(80, "TCP", None, 80),)),))
    plan = make_plan(many, LAB)
    x = next(s for s in plan.services if s.name == "x")
    [subset] = output.endpoints_object(plan, x)["subsets"]
    got = [a["ip"] for a in subset["addresses"]]
    assert got[:3] == ["10.244.0.10", "10.244.0.11", "10.244.0.2"]  # addrsByIPAndUID compares bytes
    assert sorted(got) == got and len(got) == 10


def test_endpoints_yaml_has_no_anchors_for_addresses_in_several_subsets(get):
    out = get("ep", "web", "-o", "yaml")
    assert out.exit_code == 0 and "&id" not in out.output and "*id" not in out.output
    assert out.output.count("name: web-a") == 2


def test_the_endpoints_table_follows_the_subsets(get, plan):
    out = get("ep", "web")
    a, b = ip(plan, "web-a"), ip(plan, "web-b")
    assert out.output.splitlines()[1].split()[:2] == ["web", f"{a}:8080,{b}:9090,{a}:9100"]
    assert f"{a}:8080,{b}:9090,{a}:9100 + 1 more..." in out.output


# --------------------------------------------------------------------------- -o jsonpath


def test_jsonpath_on_a_list_applies_to_the_list(get, plan):
    out = get("pods", "-o", "jsonpath={.items[*].status.podIP}")
    assert out.exit_code == 0
    assert out.output == " ".join(ip(plan, n) for n in ("db", "plain", "web-a", "web-b"))  # no newline, as kubectl
    assert get("pods", "-o", "jsonpath={.kind}").output == "List"
    assert get("pods", "-o", "jsonpath={.items[0].metadata.name}").output == "db"
    assert get("pods", "-o", "jsonpath={.items[-1:].metadata.name}").output == "web-b"
    assert get("pods", "-o", "jsonpath={.items[0:2].metadata.name}").output == "db plain"


def test_jsonpath_on_one_object_applies_to_the_object(get, plan):
    assert get("pod", "web-a", "-o", "jsonpath={.status.podIP}").output == ip(plan, "web-a")
    assert get("pod", "web-a", "-o", "jsonpath={.metadata.labels.app}").output == "web"
    assert get("pod", "web-a", "-o=jsonpath={.spec.nodeName}").output == "node1"
    assert get("pod", "web-a", "--output=jsonpath={$.kind}").output == "Pod"
    assert json.loads(get("pod", "web-a", "-o", "jsonpath={@}").output)["metadata"]["name"] == "web-a"
    assert get("svc", "web", "-o", 'jsonpath={.spec.ports[?(@.name=="http")].nodePort}').output == "30080"
    assert get("svc", "web", "-o", "jsonpath", "--template", "{.spec.type}").output == "NodePort"
    assert get("nodes", "-o", "jsonpath={.items[0].metadata.labels.kubernetes\\.io/hostname}").output == "node1"


def test_jsonpath_range_recursive_descent_and_text(get, plan):
    out = get("pods", "-o", 'jsonpath={range .items[*]}{.metadata.name}{"\\t"}{.status.podIP}{"\\n"}{end}')
    assert out.output == "".join(f"{n}\t{ip(plan, n)}\n" for n in ("db", "plain", "web-a", "web-b"))
    assert get("pod", "db", "-o", "jsonpath={..podIP}").output == ip(plan, "db")
    assert get("pods", "-A", "-o", "jsonpath=names: {.items[?(@.metadata.namespace==\"shop\")].metadata.name}"
               ).output == "names: cart"
    as_json = get("pods", "-o", "jsonpath-as-json={.items[*].metadata.name}")
    assert json.loads(as_json.output) == ["db", "plain", "web-a", "web-b"]


def test_jsonpath_errors_are_kubectls(get):
    out = get("pods", "-o", "jsonpath={.items[")
    assert out.exit_code == 1
    assert out.output == "error: error parsing jsonpath {.items[, unterminated array\n"
    out = get("pods", "-o", "jsonpath={.items[9]}")
    assert out.exit_code == 1
    assert out.output.startswith('error: error executing jsonpath "{.items[9]}": Error executing template: '
                                 'array index out of bounds: index 9, length 4.')
    # a missing key prints nothing, as kubectl's default --allow-missing-template-keys=true has it
    out = get("pod", "db", "-o", "jsonpath={.spec.nosuch}")
    assert out.exit_code == 0 and out.output == ""
    out = get("pod", "db", "-o", "jsonpath={.spec.nosuch}", "--allow-missing-template-keys=false")
    assert out.exit_code == 1
    assert 'error: error executing jsonpath "{.spec.nosuch}": Error executing template: nosuch is not found.' \
        in out.output
    out = get("pods", "-o", "jsonpath=")
    assert out.exit_code == 2 and "no template given" in out.output
    out = get("pods", "-o", "jsonpaths={.a}")
    assert out.exit_code == 2 and 'unable to match a printer suitable for the output format "jsonpaths={.a}"' \
        in out.output


# --------------------------------------------------------------------------- -o custom-columns


def test_custom_columns(get, plan):
    out = get("pods", "-o", "custom-columns=NAME:.metadata.name,IP:status.podIP,PORTS:{.spec.containers[*].ports[*]"
              ".containerPort},X:.nothing")
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].split() == ["NAME", "IP", "PORTS", "X"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["web-a"] == ["web-a", ip(plan, "web-a"), "8080,9100", "<none>"]
    assert rows["plain"] == ["plain", ip(plan, "plain"), "<none>", "<none>"]
    # one object: one row; headers as given, columns 3 apart and at least 3 wide, as kubectl's tabwriter
    out = get("pod", "db", "-o", "custom-columns=N:.metadata.name,A:.metadata.labels.app")
    assert out.output == "N     A\ndb    db\n"
    assert get("nodes", "-o", "custom-columns=L:.metadata.labels").output.splitlines()[1] == \
        f"map[kubernetes.io/arch:{ARCH} kubernetes.io/hostname:node1 kubernetes.io/os:linux zone:a]"
    out = get("pods", "-o", "custom-columns=NAME")
    assert out.exit_code == 1 and "expected <header>:<json-path-expr>" in out.output


def test_custom_columns_on_nothing_prints_the_headers(get):
    out = get("pods", "-l", "app=none", "-o", "custom-columns=NAME:.metadata.name")
    assert out.exit_code == 0 and out.output == "NAME\n"


# --------------------------------------------------------------------------- -l and --show-labels


@pytest.mark.parametrize("selector, names", [
    ("app=web", ["web-a", "web-b"]),
    ("app==web", ["web-a", "web-b"]),
    ("app!=web", ["db", "plain"]),
    ("app in (web,db)", ["db", "web-a", "web-b"]),
    ("app notin (web)", ["db", "plain"]),
    ("tier", ["db", "web-a"]),
    ("!tier", ["plain", "web-b"]),
    ("app=web,tier=front", ["web-a"]),
    ("app=web,!tier", ["web-b"]),
    (" app in ( web , db ) , tier notin (back)", ["web-a", "web-b"]),
    ("", ["db", "plain", "web-a", "web-b"]),
])
def test_label_selectors(get, selector, names):
    out = get("pods", "-l", selector, "-o", "jsonpath={.items[*].metadata.name}")
    assert out.exit_code == 0 and out.output.split() == names
    out = get("pods", "--selector", selector)
    assert [line.split()[0] for line in out.output.splitlines()[1:]] == names


def test_selectors_apply_to_every_kind_and_namespace(get):
    assert get("nodes", "-l", "zone=a", "-o", "jsonpath={.items[*].metadata.name}").output == "node1"
    assert get("nodes", "-l", "kubernetes.io/hostname=node2", "-o", "jsonpath={.items[*].metadata.name}"
               ).output == "node2"
    assert get("pods", "-A", "-l", "app=cart", "-o", "jsonpath={.items[*].metadata.name}").output == "cart"
    out = get("pods", "-l", "app=nothing")
    assert out.exit_code == 0 and "No resources found in default namespace." in out.output
    out = get("svc", "-l", "app=web", "-o", "json")
    assert json.loads(out.output)["items"] == []  # the lab keeps no labels of services


@pytest.mark.parametrize("selector, message", [
    ("app in (web", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("app web", "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"),
    ("app=web,", "found '', expected: identifier after ','"),
    ("=web", "found '=', expected: !, identifier, or 'end of string'"),
    ("app in web", "unable to parse requirement: found 'web' expected: '('"),
    ("a/b/c=x", 'unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name must consist'),
    ("app=-web", 'unable to parse requirement: values[0][app]: Invalid value: "-web": a valid label must be'),
    ("n>x", "for 'Gt', 'Lt' operators, the value must be an integer"),
])
def test_bad_selectors_exit_2(get, selector, message):
    out = get("pods", "-l", selector)
    assert out.exit_code == 2
    assert out.output.startswith(f"error: label selector {json.dumps(selector)}: ") and message in out.output


def test_a_selector_and_a_name_do_not_go_together(get):
    out = get("pods", "web-a", "-l", "app=web")
    assert out.exit_code == 2 and "error: name cannot be provided when a selector is specified" in out.output


def test_set_based_selector_details():
    sel = output.parse_selector("x in (foo,,baz),y,z notin ()")
    assert sel.matches({"x": "", "y": "1"}) and sel.matches({"x": "foo", "y": "", "z": "a"})
    assert not sel.matches({"x": "bar", "y": "1"}) and not sel.matches({"x": "foo"})
    assert output.parse_selector("n>3").matches({"n": "4"}) and not output.parse_selector("n<3").matches({"n": "x"})
    assert output.parse_selector("in in (in,notin)").matches({"in": "notin"})
    with pytest.raises(InputError):
        output.parse_selector("!app=web")


def test_show_labels(get):
    out = get("pods", "--show-labels")
    lines = out.output.splitlines()
    assert lines[0].split()[-1] == "LABELS"
    labels = {line.split()[0]: line.split()[-1] for line in lines[1:]}
    assert labels == {"db": "app=db,tier=back", "plain": "<none>", "web-a": "app=web,tier=front", "web-b": "app=web"}
    out = get("nodes", "-o", "wide", "--show-labels")
    assert out.output.splitlines()[1].split()[-1] == \
        f"kubernetes.io/arch={ARCH},kubernetes.io/hostname=node1,kubernetes.io/os=linux,zone=a"
    assert get("svc", "--show-labels").output.splitlines()[1].split()[-1] == "<none>"
    assert get("ep", "-A", "--show-labels").output.splitlines()[0].split()[-1] == "LABELS"


def test_exec_decodes_only_its_pod_and_resolves_it_as_from_the_whole_plan(plan):
    from kubenet_lab.app import query

    whole = query.running_plan(LAB)
    for target, ns in (("web-a", "default"), ("pod/cart", "shop"), ("pods/db", "default")):
        key = query.pod_key(target, ns)
        alone = query.running_plan(LAB, only_pods=(key,))
        assert [p.key for p in alone.pods] == [key]
        assert alone.services == whole.services and alone.nodes == whole.nodes
        assert query.resolve_target(alone, target, ns, None) == query.resolve_target(whole, target, ns, None)
    assert query.pod_key("node/node1", "default") is None
    nodes = query.running_plan(LAB, only_pods=())
    assert nodes.pods == () and query.resolve_target(nodes, "node/node1", "default", None).netns == \
        whole.node("node1").netns
    with pytest.raises(LabError, match='pods "nope" not found'):
        query.resolve_target(query.running_plan(LAB, only_pods=("default/nope",)), "nope", "default", None)


def test_watch_takes_one_kinds_table(get):
    for args in (("all", "-w"), ("pods", "-w", "-o", "json"), ("pods", "-w", "-o", "name")):
        out = get(*args)
        assert out.exit_code == 2 and "--watch: watches one kind's table" in out.output


# --------------------------------------------------------------------------- Nodes: what the lab knows


def test_a_node_without_its_namespace_is_not_ready_as_kubectl_shows_a_silent_kubelet(get, plan):
    """The planted plan's namespaces do not exist: nothing posts for its nodes, and they look as
    a node whose kubelet stopped posting does (the node lifecycle controller's Unknown)."""
    lines = get("nodes").output.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [line.split() for line in lines[1:]] == [
        ["node1", "NotReady", "<none>", "<unknown>", output.KUBELET_VERSION],
        ["node2", "NotReady", "<none>", "<unknown>", output.KUBELET_VERSION]]
    node = json.loads(get("node", "node1", "-o", "json").output)
    assert node["status"]["conditions"] == [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                                             "message": "Kubelet stopped posting node status."}]
    assert node["spec"]["taints"] == [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                                      {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]
    assert node["status"]["nodeInfo"]["kubeletVersion"] == output.KUBELET_VERSION


def test_a_node_whose_namespace_is_there_is_ready(get, plan, monkeypatch):
    monkeypatch.setattr(output, "node_up", lambda n: n.name == "node1")
    wide = [line.split() for line in get("nodes", "-o", "wide").output.splitlines()[1:]]
    assert [(row[0], row[1], row[4], row[5]) for row in wide] == [
        ("node1", "Ready", output.KUBELET_VERSION, str(plan.node("node1").ip)),
        ("node2", "NotReady", output.KUBELET_VERSION, str(plan.node("node2").ip))]
    ready = json.loads(get("node", "node1", "-o", "json").output)
    condition = ready["status"]["conditions"][0]
    assert {k: condition[k] for k in ("type", "status", "reason", "message")} == {
        "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}
    assert "taints" not in ready["spec"]
    assert get("nodes", "-o", "jsonpath={.items[*].status.conditions[0].status}").output == "True Unknown"


def test_the_kubelet_version_is_the_emulated_kubernetes_release():
    from kubenet_lab import KUBERNETES_MINOR, KUBERNETES_VERSION, __version__
    from kubenet_lab.runtime import probes

    assert output.KUBELET_VERSION == f"v{KUBERNETES_VERSION}-kubenet-lab.{__version__}"
    assert probes.USER_AGENT == f"kube-probe/{KUBERNETES_MINOR}"
    assert KUBERNETES_VERSION.startswith(KUBERNETES_MINOR + ".")


def test_a_cordoned_node_shows_scheduling_disabled_as_kubectl_does():
    assert output.node_status_column([{"type": "Ready", "status": "True"}], True) == "Ready,SchedulingDisabled"
    assert output.node_status_column([{"type": "Ready", "status": "Unknown"}], True) == "NotReady,SchedulingDisabled"
    assert output.node_status_column([{"type": "Ready", "status": "False"}], False) == "NotReady"
    assert output.node_status_column([], False) == "Unknown"


def test_roles_and_a_cordon_come_from_the_node_objects(tmp_path, monkeypatch):
    """ROLES from the node-role labels and kubernetes.io/role, as kubectl finds them; a cordoned
    node (spec.unschedulable) is Ready,SchedulingDisabled."""
    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path))
    monkeypatch.setattr(output, "node_up", lambda n: True)
    state.save_plan(make_plan(Model(nodes=(
        Node("cp", labels={"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "x"},
             unschedulable=True),
        Node("w", labels={"kubernetes.io/role": "worker", "node-role.kubernetes.io/infra": "true"}),
        Node("plain"))), "roles"))
    out = CliRunner().invoke(main, ["--lab", "roles", "get", "nodes"], catch_exceptions=False).output
    assert [line.split()[:3] for line in out.splitlines()[1:]] == [  # by name, as the API server lists them
        ["cp", "Ready,SchedulingDisabled", "control-plane"], ["plain", "Ready", "<none>"],
        ["w", "Ready", "infra,worker"]]
    cp = json.loads(CliRunner().invoke(main, ["--lab", "roles", "get", "node", "cp", "-o", "json"]).output)
    assert cp["spec"]["unschedulable"] is True and "taints" not in cp["spec"]


def test_an_external_name_service_shows_as_kubectl_shows_it():
    import io

    from kubenet_lab.manifests import load_model

    plan = make_plan(load_model(["-"], io.StringIO(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\n"
        "spec: {type: ExternalName, externalName: ext.interwebs.test, ports: [{port: 80}]}\n")), "unitext")
    svc = next(s for s in plan.services if s.name == "ext")
    headers, rows = output.service_rows(plan, [svc], False, False)
    assert dict(zip(headers, rows[0])) | {"AGE": "-"} == {
        "NAME": "ext", "TYPE": "ExternalName", "CLUSTER-IP": "<none>", "EXTERNAL-IP": "ext.interwebs.test",
        "PORT(S)": "80/TCP", "AGE": "-"}
    assert output.service_object(plan, svc)["spec"] == {
        "type": "ExternalName", "externalName": "ext.interwebs.test",
        "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}], "sessionAffinity": "None"}
