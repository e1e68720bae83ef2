"""Every validation rule: the exact `file:line: field.path: message`, all problems at once."""
from __future__ import annotations

import textwrap

import pytest

from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan

# The API server's words (k8s.io/apimachinery/pkg/util/validation)
DNS_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
PORT_NAME = ("is not a valid port name (at most 15 lowercase letters, digits and single '-' between them, "
             "with at least one letter)")


@pytest.fixture
def problems(tmp_path, monkeypatch):
    """Writes the manifests (name -> text) and returns the problems load_model reports."""
    monkeypatch.chdir(tmp_path)

    def check(text: str | None = None, **named: str) -> list[str]:
        texts = {"web.yaml": text} if text is not None else {k.replace("_", "."): v for k, v in named.items()}
        for name, body in texts.items():
            (tmp_path / name).write_text(textwrap.dedent(body).lstrip("\n"))
        with pytest.raises(InputError) as err:
            load_model(list(texts))
        return err.value.problems

    return check


def deployment(spec_lines: str = "", template: str = "", pod: str = "", containers: str = "- name: c\n") -> str:
    """A valid Deployment, with lines added at the spec, template metadata and pod spec levels."""
    return (
        "apiVersion: apps/v1\n"             # 1
        "kind: Deployment\n"                # 2
        "metadata:\n"                       # 3
        "  name: web\n"                     # 4
        "spec:\n"                           # 5
        + textwrap.indent(textwrap.dedent(spec_lines), "  ") +
        "  selector:\n"
        "    matchLabels: {app: web}\n"
        "  template:\n"
        "    metadata:\n"
        "      labels: {app: web}\n"
        + textwrap.indent(textwrap.dedent(template), "      ") +
        "    spec:\n"
        + textwrap.indent(textwrap.dedent(pod), "      ") +
        "      containers:\n"
        + textwrap.indent(textwrap.dedent(containers), "      ")
    )


def test_the_issue_example(problems):
    assert problems(deployment("replicas: three\n")) == [
        "web.yaml:6: spec.replicas: expected an integer, got 'three'"]


def test_unknown_field_with_hint(problems):
    assert problems(deployment("replcas: 3\n")) == [
        "web.yaml:6: spec.replcas: unknown field (did you mean 'replicas'?)"]


def test_unknown_field_without_a_close_match(problems):
    assert problems(deployment(pod="frobnicate: true\n")) == [
        "web.yaml:12: spec.template.spec.frobnicate: unknown field"]


def test_yaml_syntax_error_has_its_line(problems):
    assert problems("""
        apiVersion: v1
        kind: Pod
        metadata:
          name: p
          labels: {a: b
        spec: {}
    """) == ["web.yaml:6: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at line 5)"]


def test_documents_before_a_syntax_error_are_still_checked(problems):
    assert problems("""
        apiVersion: v1
        kind: Pod
        metadata: {name: P}
        spec: {containers: [{name: c}]}
        ---
        a: b: c
    """) == ["web.yaml:3: metadata.name: Invalid value: \"P\": " + DNS_LABEL,
             "web.yaml:6: invalid YAML: mapping values are not allowed in this context"]


@pytest.mark.parametrize("pod, containers, expected", [
    ("hostNetwork: \"yes\"\n", "- name: c\n",
     "web.yaml:12: spec.template.spec.hostNetwork: expected true or false, got 'yes'"),
    ("", "- {name: c, image: 5}\n", "web.yaml:13: spec.template.spec.containers[0].image: expected a string, got 5"),
    ("", "- {name: c, args: [--port, 80]}\n",
     "web.yaml:13: spec.template.spec.containers[0].args[1]: expected a string, got 80"),
    ("", "- {name: c, ports: {containerPort: 80}}\n",
     "web.yaml:13: spec.template.spec.containers[0].ports: expected a list, got a map"),
    ("", "- name: c\n  ports: [{containerPort: 80.5}]\n",
     "web.yaml:14: spec.template.spec.containers[0].ports[0].containerPort: expected an integer, got 80.5"),
    ("", "- just-a-string\n", "web.yaml:13: spec.template.spec.containers[0]: expected a map, got 'just-a-string'"),
    ("", "- {image: nginx}\n", "web.yaml:13: spec.template.spec.containers[0].name: required field is missing"),
    ("", "- {name: c, ports: [{name: http}]}\n",
     "web.yaml:13: spec.template.spec.containers[0].ports[0].containerPort: required field is missing"),
    ("", "[]\n", "web.yaml:12: spec.template.spec.containers: at least 1 container required"),
])
def test_types_and_required_fields(problems, pod, containers, expected):
    text = deployment(pod=pod, containers=containers)
    if containers == "[]\n":
        text = text.replace("containers:\n      []", "containers: []")
    assert problems(text) == [expected]


def test_required_top_level_fields(problems):
    assert problems("""
        kind: Pod
        ---
        apiVersion: v1
        metadata: {name: x}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {generateName: web-}
        spec: {containers: [{name: c}]}
    """) == [
        "web.yaml:1: apiVersion: required field is missing (expected 'v1')",
        "web.yaml:1: metadata: required field is missing",
        "web.yaml:1: spec: required field is missing",
        "web.yaml:3: kind: required field is missing",
        "web.yaml:8: metadata.name: required field is missing (generateName is not supported: give each object a name)",
    ]


def test_a_document_that_is_not_an_object(problems):
    assert problems("- a\n- b\n---\njust text\n") == [
        "web.yaml:1: expected a Kubernetes object (a map with apiVersion and kind), got a list",
        "web.yaml:4: expected a Kubernetes object (a map with apiVersion and kind), got 'just text'"]


def test_api_version_mismatch_names_the_expected_version(problems):
    assert problems(deployment().replace("apps/v1", "extensions/v1beta1")) == [
        "web.yaml:1: apiVersion: expected 'apps/v1' for a Deployment, got 'extensions/v1beta1'"]
    assert problems("apiVersion: apps/v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n") == [
        "web.yaml:1: apiVersion: expected 'v1' for a Service, got 'apps/v1'"]


def test_key_written_twice(problems):
    assert problems("""
        apiVersion: v1
        kind: Pod
        metadata:
          name: a
          name: b
          labels: {app: x, app: y}
        spec: {containers: [{name: c}]}
    """) == ["web.yaml:5: metadata.name: given twice (first at line 4)",
             "web.yaml:6: metadata.labels: key 'app' given twice (first at line 6)"]


def test_duplicate_objects(problems):
    svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web%s}\nspec: {ports: [{port: 80}]}\n---\n"
    assert problems(
        a_yaml=svc % "" + svc % ", namespace: other" + deployment(),
        b_yaml=svc % ", namespace: default" + deployment().replace("Deployment", "ReplicaSet")
        + "---\n" + deployment()) == [
        "b.yaml:3: metadata.name: duplicate Service default/web (first defined at a.yaml:1)",
        "b.yaml:23: metadata.name: duplicate Deployment default/web (first defined at a.yaml:11)"]


def test_selector_must_match_the_template(problems):
    text = deployment().replace("labels: {app: web}", "labels: {app: api}")
    assert problems(text) == [
        "web.yaml:10: spec.template.metadata.labels: Invalid value: {\"app\":\"api\"}: `selector` does not match "
        "template `labels` (spec.selector: app=web)"]


def test_selector_must_not_be_empty(problems):
    text = deployment().replace("matchLabels: {app: web}", "matchLabels: {}")
    assert problems(text) == [
        "web.yaml:6: spec.selector: must not be empty (give matchLabels or matchExpressions)"]


def test_match_expressions(problems):
    text = deployment().replace("matchLabels: {app: web}", "matchExpressions:\n"
                                "    - {key: app, operator: in, values: [web]}\n"
                                "    - {key: app, operator: In}\n"
                                "    - {key: app, operator: Exists, values: [web]}\n"
                                "    - {key: tier, operator: NotIn, values: [db]}")
    assert problems(text) == [
        "web.yaml:8: spec.selector.matchExpressions[0].operator: expected one of In, NotIn, Exists, DoesNotExist, "
        "got 'in'",
        "web.yaml:9: spec.selector.matchExpressions[1].values: required (non-empty) for operator In",
        "web.yaml:10: spec.selector.matchExpressions[2].values: must be empty for operator Exists"]


def test_replication_controller_selector(problems):
    assert problems("""
        apiVersion: v1
        kind: ReplicationController
        metadata: {name: rc}
        spec:
          selector: {app: x}
          template:
            metadata: {labels: {app: y}}
            spec: {containers: [{name: c}]}
        ---
        apiVersion: v1
        kind: ReplicationController
        metadata: {name: rc2}
        spec:
          template:
            spec: {containers: [{name: c}]}
    """) == ["web.yaml:7: spec.template.metadata.labels: Invalid value: {\"app\":\"y\"}: `selector` does not match "
             "template `labels` (spec.selector: app=x)",
             "web.yaml:13: spec.selector: required (or give spec.template.metadata.labels, its default)"]


def test_node_name_without_node_objects(problems):
    assert problems(deployment(pod="nodeName: node3\n")) == [
        "web.yaml:12: spec.template.spec.nodeName: no Node named 'node3' "
        "(with no Node objects the lab has node1 and node2)"]


def test_node_name_with_node_objects(problems):
    nodes = "".join(f"apiVersion: v1\nkind: Node\nmetadata: {{name: {n}}}\n---\n" for n in ("alpha", "beta"))
    assert problems(nodes + "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                    "spec: {nodeName: node1, containers: [{name: c}]}\n---\n"
                    "apiVersion: v1\nkind: Pod\nmetadata: {name: q}\n"
                    "spec: {nodeName: alpah, containers: [{name: c}]}\n") == [
        "web.yaml:12: spec.nodeName: no Node named 'node1' (the nodes are alpha, beta)",
        "web.yaml:17: spec.nodeName: no Node named 'alpah' (did you mean 'alpha'?)"]


def test_pod_cidrs(problems):
    assert problems("""
        apiVersion: v1
        kind: Node
        metadata: {name: a}
        spec: {podCIDR: 10.1.0.0/24}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: b}
        spec: {podCIDR: 10.244.0.0/23}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: c}
        spec: {podCIDRs: [10.244.1.0/24]}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: d}
        spec: {podCIDR: 10.244.5.1/24}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: e}
        spec: {podCIDR: 10.244.6.0/31}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: f}
        spec: {podCIDR: 10.244.7.0/24, podCIDRs: [10.244.8.0/24]}
        ---
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking: {podSubnet: 10.244.0.0/16}
    """) == [
        "web.yaml:4: spec.podCIDR: 10.1.0.0/24 is outside networking.podSubnet 10.244.0.0/16",
        "web.yaml:14: spec.podCIDRs: 10.244.1.0/24 overlaps the podCIDR of node b (10.244.0.0/23)",
        "web.yaml:19: spec.podCIDR: '10.244.5.1/24' has host bits set (did you mean 10.244.5.0/24?)",
        "web.yaml:24: spec.podCIDR: 10.244.6.0/31 is too small to hold pods (use /30 or larger)",
        "web.yaml:29: spec.podCIDRs: must start with spec.podCIDR (10.244.7.0/24), got 10.244.8.0/24",
    ]


def test_pod_cidr_checked_against_the_cluster_pod_subnet(problems):
    assert problems(
        a_yaml="apiVersion: v1\nkind: Node\nmetadata: {name: a}\nspec: {podCIDR: 10.244.1.0/24}\n",
        b_yaml="apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\nnetworking: {podSubnet: 10.10.0.0/16}\n") == [
        "a.yaml:4: spec.podCIDR: 10.244.1.0/24 is outside networking.podSubnet 10.10.0.0/16"]


def test_cluster_networking(problems):
    assert problems("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking:
          podSubnet: 10.96.0.0/12
          serviceSubnet: 10.96.0.0/29
          nodeSubnet: 172.18.0.0/24
          kubeProxyMode: ipvs
          dnsDomain: Cluster_Local
          loadBalancerPool: 10.0.0.1-10.0.0.5
          ipFamily: ipv6
          podSubnt: 10.0.0.0/8
    """) == [
        "web.yaml:7: networking.kubeProxyMode: ipvs is not supported: this kernel has no IPVS (ip_vs), so "
        "kubenet-lab cannot program it; use iptables, nftables or userspace",
        "web.yaml:8: networking.dnsDomain: Invalid value: \"Cluster_Local\": a lowercase RFC 1123 subdomain must "
        "consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        "web.yaml:10: networking.ipFamily: only ipv4 is supported",
        "web.yaml:11: networking.podSubnt: unknown field (did you mean 'podSubnet'?)",
    ]


def test_cluster_subnets_against_each_other(problems):
    # Checked once every field of networking is valid; all such problems come together.
    assert problems("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking:
          podSubnet: 10.96.0.0/12
          serviceSubnet: 10.96.0.0/29
          nodeSubnet: 10.0.0.0/24
          loadBalancerPool: 10.0.1.1-10.0.1.5
    """) == [
        "web.yaml:5: networking.serviceSubnet: 10.96.0.0/29 overlaps networking.podSubnet 10.96.0.0/12",
        "web.yaml:5: networking.serviceSubnet: 10.96.0.0/29 is too small: cluster DNS takes its tenth address "
        "(use /28 or larger)",
        "web.yaml:7: networking.loadBalancerPool: 10.0.1.1-10.0.1.5 must lie inside networking.nodeSubnet "
        "10.0.0.0/24 (without its first and last address): the load balancer answers on the nodes' network",
    ]


def test_cluster_default_subnet_overlap_points_at_the_given_one(problems):
    assert problems("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking:
          nodeSubnet: 10.244.3.0/24
          kubeProxyMode: ebpf
          nftablesBalancing: random
        ---
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking: {serviceSubnet: 10.244.128.0/20}
    """) == [
        "web.yaml:5: networking.kubeProxyMode: expected one of iptables, nftables, userspace, got 'ebpf'",
        "web.yaml:6: networking.nftablesBalancing: expected one of vmap, rules, got 'random'",
        "web.yaml:9: kind: only one Cluster object is allowed (the first is at web.yaml:1)",
        "web.yaml:10: networking.serviceSubnet: 10.244.128.0/20 overlaps networking.podSubnet 10.244.0.0/16",
    ]


def test_cluster_bad_values(problems):
    assert problems("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking:
          podSubnet: 10.244.0.0
          serviceSubnet: fd00::/108
          loadBalancerPool: 172.18.0.9-172.18.0.2
        ---
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking: {loadBalancerPool: lots}
    """) == [
        "web.yaml:4: networking.podSubnet: expected an IPv4 CIDR like 10.244.0.0/16, got '10.244.0.0'",
        "web.yaml:5: networking.serviceSubnet: expected an IPv4 CIDR like 10.244.0.0/16, got 'fd00::/108'",
        "web.yaml:6: networking.loadBalancerPool: the range '172.18.0.9-172.18.0.2' ends before it starts",
        "web.yaml:9: kind: only one Cluster object is allowed (the first is at web.yaml:1)",
        "web.yaml:10: networking.loadBalancerPool: expected an address range like 172.18.0.200-172.18.0.250 "
        "or a CIDR, got 'lots'",
    ]


@pytest.fixture
def planned(tmp_path, monkeypatch):
    """Writes web.yaml and returns the problems of loading and planning it as `up` does (the
    pool meets the nodes' addresses only once the nodes are planned), with `previous` a plan
    the lab already runs."""
    monkeypatch.chdir(tmp_path)

    def check(text: str, previous=None) -> list[str]:
        (tmp_path / "web.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
        with pytest.raises(InputError) as err:
            make_plan(load_model(["web.yaml"]), "lab", previous)
        return err.value.problems
    return check


# What every pool must leave out, on the default nodeSubnet 172.18.0.0/24 with node1 and node2.
LEAVE_OUT = ("addresses the lab itself uses on networking.nodeSubnet 172.18.0.0/24: the pool must leave out the "
             "nodes' addresses (172.18.0.2-172.18.0.3), the load balancer's (172.18.0.253) and the external "
             "clients' (172.18.0.254, 172.18.0.252)")


def test_lb_pool_covering_a_node_is_refused(planned):
    assert planned("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking:
          nodeSubnet: 172.18.0.0/24
          loadBalancerPool: 172.18.0.2-172.18.0.20
    """) == ["web.yaml:5: networking.loadBalancerPool: 172.18.0.2-172.18.0.20 covers 172.18.0.2 (node node1) and "
             f"172.18.0.3 (node node2), {LEAVE_OUT}"]


def test_lb_pool_covering_the_balancer_or_the_external_client_is_refused(planned):
    assert planned("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking: {loadBalancerPool: 172.18.0.250-172.18.0.253}
    """) == ["web.yaml:3: networking.loadBalancerPool: 172.18.0.250-172.18.0.253 covers 172.18.0.252 (the second "
             f"external client) and 172.18.0.253 (the load balancer), {LEAVE_OUT}"]
    assert planned("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking: {loadBalancerPool: 172.18.0.240/28}
    """)[0].startswith("web.yaml:3: networking.loadBalancerPool: 172.18.0.240-172.18.0.255 must lie inside")
    assert planned("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking: {loadBalancerPool: 172.18.0.3-172.18.0.254}
    """) == ["web.yaml:3: networking.loadBalancerPool: 172.18.0.3-172.18.0.254 covers 172.18.0.3 (node node2), "
             f"172.18.0.252 (the second external client), 172.18.0.253 (the load balancer) and 172.18.0.254 (the "
             f"external client), {LEAVE_OUT}"]


def test_lb_pool_meets_the_node_objects_that_are_there(planned):
    """The number of nodes is the Node objects': a pool clear of two nodes covers a third."""
    cluster = ("apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\n"
               "networking: {loadBalancerPool: 172.18.0.4-172.18.0.9}\n")
    nodes = "".join(f"---\napiVersion: v1\nkind: Node\nmetadata: {{name: n{i}}}\n" for i in range(1, 4))
    assert planned(cluster + nodes) == [
        "web.yaml:3: networking.loadBalancerPool: 172.18.0.4-172.18.0.9 covers 172.18.0.4 (node n3), an address the "
        "lab itself uses on networking.nodeSubnet 172.18.0.0/24: the pool must leave out the nodes' addresses "
        "(172.18.0.2-172.18.0.4), the load balancer's (172.18.0.253) and the external clients' (172.18.0.254, "
        "172.18.0.252)"]


def test_lb_pool_clear_of_the_lab_hands_out_its_addresses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web.yaml").write_text(textwrap.dedent("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking: {loadBalancerPool: 172.18.0.4-172.18.0.9}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}
    """).lstrip("\n"))
    plan = make_plan(load_model(["web.yaml"]), "lab")
    assert [str(n.ip) for n in plan.nodes] == ["172.18.0.2", "172.18.0.3"]
    assert [str(ip) for s in plan.services if s.name == "web" for ip in s.load_balancer_ips] == ["172.18.0.4"]


def test_lb_pool_meets_a_node_added_to_a_running_lab(planned, tmp_path):
    """A running lab's nodes keep their addresses; a node added takes the next one, inside the pool."""
    cluster = """
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking: {loadBalancerPool: 172.18.0.5-172.18.0.9}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: a}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: b}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: c}
    """
    (tmp_path / "web.yaml").write_text(textwrap.dedent(cluster).lstrip("\n"))
    running = make_plan(load_model([str(tmp_path / "web.yaml")]), "lab")
    assert [str(n.ip) for n in running.nodes] == ["172.18.0.2", "172.18.0.3", "172.18.0.4"]
    assert planned(cluster + "    ---\n        apiVersion: v1\n        kind: Node\n        metadata: {name: d}\n",
                   previous=running) == [
        "web.yaml:3: networking.loadBalancerPool: 172.18.0.5-172.18.0.9 covers 172.18.0.5 (node d), an address the "
        "lab itself uses on networking.nodeSubnet 172.18.0.0/24: the pool must leave out the nodes' addresses "
        "(172.18.0.2-172.18.0.5), the load balancer's (172.18.0.253) and the external clients' (172.18.0.254, "
        "172.18.0.252)"]


def test_names(problems):
    assert problems("""
        apiVersion: v1
        kind: Pod
        metadata:
          name: Web_1
          namespace: my.ns
          labels:
            -bad: x
            ok: 1
            good: with space
            example.com/fine: "yes"
            Bad.Prefix/x: y
        spec:
          hostname: host.name
          containers:
          - name: main-
            ports:
            - {containerPort: 80, name: http-metrics-long}
            - {containerPort: 81, name: "8080"}
            - {containerPort: 82, name: a--b}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: 1web}
        spec: {ports: [{port: 80, name: Http}]}
    """) == [
        "web.yaml:4: metadata.name: Invalid value: \"Web_1\": " + DNS_LABEL,
        "web.yaml:5: metadata.namespace: Invalid value: \"my.ns\": " + DNS_LABEL,
        "web.yaml:7: metadata.labels: '-bad' is not a valid label key (at most 63 letters, digits, '-', '_' or '.', "
        "starting and ending with a letter or digit, with an optional 'prefix/')",
        "web.yaml:8: metadata.labels: value of 'ok': expected a string, got 1",
        "web.yaml:9: metadata.labels: value of 'good': 'with space' is not a valid label value (empty, or at most "
        "63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)",
        "web.yaml:11: metadata.labels: 'Bad.Prefix/x' is not a valid label key: the prefix before '/' must be a "
        "DNS subdomain such as 'app.kubernetes.io'",
        "web.yaml:13: spec.hostname: Invalid value: \"host.name\": " + DNS_LABEL,
        "web.yaml:15: spec.containers[0].name: Invalid value: \"main-\": " + DNS_LABEL,
        "web.yaml:17: spec.containers[0].ports[0].name: 'http-metrics-long' " + PORT_NAME,
        "web.yaml:18: spec.containers[0].ports[1].name: '8080' " + PORT_NAME,
        "web.yaml:19: spec.containers[0].ports[2].name: 'a--b' " + PORT_NAME,
        "web.yaml:23: metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric "
        "characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. "
        "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        "web.yaml:24: spec.ports[0].name: Invalid value: \"Http\": " + DNS_LABEL,
    ]


def test_long_names(problems):
    long = "a" * 64
    assert problems(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {long}}}\n") == [
        f"web.yaml:3: metadata.name: Invalid value: \"{long}\": must be no more than 63 characters"]


def test_duplicate_names_in_a_pod(problems):
    assert problems(deployment(containers="""
        - name: c
          ports: [{containerPort: 80, name: http}, {containerPort: 81, name: http}]
        - name: c
    """)) == [
        "web.yaml:15: spec.template.spec.containers[0].ports[1].name: 'http' is already used by "
        "spec.template.spec.containers[0].ports[0]",
        "web.yaml:16: spec.template.spec.containers[1].name: 'c' is already used by spec.template.spec.containers[0]"]


def test_service_values(problems):
    assert problems("""
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          type: Foo
          sessionAffinity: Sticky
          sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}
          externalTrafficPolicy: local
          internalTrafficPolicy: Local
          clusterIP: 10.96.0
          externalIPs: [1.2.3]
          loadBalancerIP: lb
          ports:
          - {port: 70000, nodePort: 70000, protocol: tcp, targetPort: "8080"}
          - {name: a, port: 0, targetPort: 65536}
          - {name: b, port: 80, targetPort: [1]}
    """) == [
        "web.yaml:5: spec.type: expected one of ClusterIP, NodePort, LoadBalancer, ExternalName, got 'Foo'",
        "web.yaml:6: spec.sessionAffinity: expected one of None, ClientIP, got 'Sticky'",
        "web.yaml:7: spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: "
        "must be between 1 and 86400, inclusive",
        "web.yaml:8: spec.externalTrafficPolicy: expected one of Cluster, Local, got 'local'",
        "web.yaml:10: spec.clusterIP: expected an IPv4 address, \"None\" (headless) or \"\", got '10.96.0'",
        "web.yaml:11: spec.externalIPs[0]: expected an IPv4 address like 10.96.0.10, got '1.2.3'",
        "web.yaml:12: spec.loadBalancerIP: expected an IPv4 address like 10.96.0.10, got 'lb'",
        "web.yaml:14: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "web.yaml:14: spec.ports[0].nodePort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "web.yaml:14: spec.ports[0].protocol: expected one of TCP, UDP, SCTP, got 'tcp'",
        "web.yaml:14: spec.ports[0].targetPort: '8080' " + PORT_NAME,
        "web.yaml:15: spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "web.yaml:15: spec.ports[1].targetPort: Invalid value: 65536: must be between 1 and 65535, inclusive",
        "web.yaml:16: spec.ports[2].targetPort: expected an integer or a string, got a list",
    ]


def test_service_ports_against_each_other(problems):
    assert problems("""
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          ports:
          - {name: a, port: 80, nodePort: 30001}
          - {name: a, port: 80}
          - {port: 81}
          - {name: dns, port: 53, protocol: UDP}
          - {name: dns-tcp, port: 53, protocol: TCP}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: np}
        spec:
          type: NodePort
          ports:
          - {name: a, port: 80, nodePort: 30001}
          - {name: b, port: 81, nodePort: 30001}
    """) == [
        "web.yaml:6: spec.ports[0].nodePort: only NodePort and LoadBalancer services have a nodePort",
        "web.yaml:7: spec.ports[1].name: 'a' is already used by spec.ports[0]",
        "web.yaml:7: spec.ports[1].port: 80/TCP is already used by spec.ports[0]",
        "web.yaml:8: spec.ports[2].name: required when a service has more than one port",
        "web.yaml:19: spec.ports[1].nodePort: 30001/TCP is already used by spec.ports[0]",
    ]


def test_service_headless_and_portless(problems):
    assert problems("""
        apiVersion: v1
        kind: Service
        metadata: {name: a}
        spec: {type: NodePort, clusterIP: None, ports: [{port: 80}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: b}
        spec: {selector: {app: b}}
    """) == [
        "web.yaml:4: spec.clusterIP: cannot be None (headless) for a NodePort service",
        "web.yaml:9: spec.ports: at least one port is required (only a headless service may have none)"]


def test_kind_list_problems_carry_the_item_path(problems):
    assert problems("""
        apiVersion: v1
        kind: List
        itms: []
        ---
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Pod
          metadata: {name: p}
          spec: {containers: [{name: c, image: 1}]}
    """) == [
        "web.yaml:3: itms: unknown field (did you mean 'items'?)",
        "web.yaml:11: items[0].spec.containers[0].image: expected a string, got 1"]


def test_many_problems_at_once_in_file_then_line_order(problems):
    result = problems(
        b_yaml="apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 0}]\n  tpye: NodePort\n",
        a_yaml=deployment("replicas: -1\n", pod="nodeName: nowhere\n", containers="- name: C\n"),
    )
    # Files in the order given (b.yaml first), lines in order; the nodeName check, made once every
    # file is read, still lands at its place.
    assert result == [
        "b.yaml:5: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "b.yaml:6: spec.tpye: unknown field (did you mean 'type'?)",
        "a.yaml:6: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "a.yaml:13: spec.template.spec.nodeName: no Node named 'nowhere' (with no Node objects the lab has node1 "
        "and node2)",
        "a.yaml:15: spec.template.spec.containers[0].name: Invalid value: \"C\": " + DNS_LABEL,
    ]


def test_problems_and_warnings_never_leave_a_partial_model(problems):
    # A broken object is not half-built: the error is the only outcome.
    assert problems(deployment(containers="- {name: c, ports: [{containerPort: x}]}\n") + "---\n"
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n") == [
        "web.yaml:13: spec.template.spec.containers[0].ports[0].containerPort: expected an integer, got 'x'"]


def test_empty_directory_and_unreadable_input(problems, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError) as err:
        load_model(["empty", "bin.yaml"])
    assert err.value.problems == ["empty: no *.yaml or *.yml files in this directory",
                                  "bin.yaml: not a UTF-8 text file"]


def test_an_external_name_service_needs_its_name_and_no_address(problems):
    assert problems("""
        apiVersion: v1
        kind: Service
        metadata: {name: ext}
        spec:
          type: ExternalName
          clusterIP: 10.96.0.50
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: bad-name}
        spec:
          type: ExternalName
          externalName: Not_A.Name
    """) == [
        "web.yaml:4: spec.externalName: Required value: an ExternalName service needs the name it stands for "
        "(a DNS-1123 subdomain)",
        "web.yaml:6: spec.clusterIP: must be empty for an ExternalName service",
        "web.yaml:13: spec.externalName: Invalid value: \"Not_A.Name\": a lowercase RFC 1123 subdomain must consist "
        "of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    ]


def test_an_external_name_may_end_with_a_dot(tmp_path):
    path = tmp_path / "ext.yaml"
    path.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: ext}\n"
                    "spec: {type: ExternalName, externalName: web.default.svc.cluster.local.}\n")
    (svc,) = [s for s in load_model([str(path)]).services if s.name == "ext"]
    assert (svc.type, svc.external_name, svc.cluster_ip) == ("ExternalName", "web.default.svc.cluster.local.", None)


LB_SERVICE = """
    apiVersion: v1
    kind: Service
    metadata: {{name: {name}}}
    spec: {{type: LoadBalancer, selector: {{app: web}}, ports: [{{port: 80}}]}}
    status: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}
"""


def test_a_manifests_load_balancer_ingress_is_honoured_as_a_cloud_controller_wrote_it(tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text(textwrap.dedent(LB_SERVICE.format(name="cloud", ip="203.0.113.10")) + "---\n"
                    + textwrap.dedent(LB_SERVICE.format(name="pooled", ip="172.18.0.200")) + "---\n"
                    + "apiVersion: v1\nkind: Service\nmetadata: {name: other}\n"
                      "spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}\n")
    plan = make_plan(load_model([str(path)]), "lab")
    ips = {s.name: [str(a) for a in s.load_balancer_ips] for s in plan.services}
    assert ips["cloud"] == ["203.0.113.10"] and ips["pooled"] == ["172.18.0.200"]
    assert ips["other"] and ips["other"] != ["172.18.0.200"]  # the pool does not hand out a given address
    assert "default/cloud" not in plan.allocations.lb_ips  # written, not allocated


@pytest.mark.parametrize("ip, why", [
    ("10.244.1.9", "is in networking.podSubnet 10.244.0.0/16"),
    ("10.96.0.77", "is in networking.serviceSubnet 10.96.0.0/16"),
    ("172.18.0.2", "is in networking.nodeSubnet 172.18.0.0/24 outside the load-balancer pool "
                   "172.18.0.192-172.18.0.251 (the nodes', the balancer's and the external client's addresses)"),
    ("127.0.0.5", "is no address a balancer can answer on"),
])
def test_a_load_balancer_ingress_the_lab_cannot_answer_on_is_refused(planned, ip, why):
    assert (planned(LB_SERVICE.format(name="cloud", ip=ip))
            == [f"web.yaml:5: status.loadBalancer.ingress[0].ip: {ip} {why}"])


def test_two_services_may_not_share_an_ingress_address(planned):
    assert planned(LB_SERVICE.format(name="one", ip="203.0.113.10") + "---" + LB_SERVICE.format(
        name="two", ip="203.0.113.10")) == [
        "web.yaml:11: status.loadBalancer.ingress[0].ip: 203.0.113.10 is the address of Service default/one"]


def test_a_hostname_ingress_and_a_non_load_balancers_ingress_are_warned_about(tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: aws}\n"
                    "spec: {type: LoadBalancer, ports: [{port: 80}]}\n"
                    "status: {loadBalancer: {ingress: [{hostname: a1.elb.example.com}]}}\n---\n"
                    "apiVersion: v1\nkind: Service\nmetadata: {name: plain}\nspec: {ports: [{port: 80}]}\n"
                    "status: {loadBalancer: {ingress: [{ip: 203.0.113.9}]}}\n")
    model = load_model([str(path)])
    assert [s.load_balancer_ingress for s in model.services] == [(), ()]
    assert [w.split(": ", 1)[1] for w in model.warnings] == [
        "status.loadBalancer.ingress[0]: a hostname without an ip: the lab's balancer answers on addresses only, "
        "so nothing answers on this one",
        "status.loadBalancer: ignored: only a LoadBalancer Service has load-balancer addresses (this one is "
        "ClusterIP)"]


def test_a_local_load_balancer_gets_a_health_check_node_port_as_the_api_server_gives_it(tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: local}\n"
        "spec: {type: LoadBalancer, externalTrafficPolicy: Local, selector: {app: web}, ports: [{port: 80}]}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: cluster}\n"
        "spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: written}\n"
        "spec: {type: LoadBalancer, externalTrafficPolicy: Local, healthCheckNodePort: 31000, selector: {app: web},"
        " ports: [{port: 80}]}\n")
    plan = make_plan(load_model([str(path)]), "lab")
    by_name = {s.name: s for s in plan.services}
    local, written = by_name["local"], by_name["written"]
    assert by_name["cluster"].health_check_node_port is None and written.health_check_node_port == 31000
    taken = {p.node_port for s in plan.services for p in s.ports} | {31000}
    assert local.health_check_node_port and local.health_check_node_port not in taken
    assert local.health_check_node_port in range(30000, 32768)
    again = make_plan(load_model([str(path)]), "lab", plan)  # a running Service keeps it
    assert {s.name: s.health_check_node_port for s in again.services} == \
        {s.name: s.health_check_node_port for s in plan.services}


def test_an_ingress_may_not_take_the_address_a_running_service_was_given(tmp_path, planned):
    web = ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
           "spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}\n")
    (tmp_path / "running.yaml").write_text(web)
    previous = make_plan(load_model([str(tmp_path / "running.yaml")]), "lab")
    (taken,) = next(s for s in previous.services if s.name == "web").load_balancer_ips
    assert planned(web + "---" + LB_SERVICE.format(name="grab", ip=taken), previous) == [
        f"web.yaml:10: status.loadBalancer.ingress[0].ip: {taken} is the address of Service default/web"]
