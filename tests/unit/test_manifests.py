"""Manifests -> Model: every kind, defaults, YAML forms, sources, and the real-world bundle."""
from __future__ import annotations

import dataclasses
import io
import os
import textwrap
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.model.objects import (ClusterConfig, Container, ContainerPort, EnvFrom, EnvVar, Hook, LabelSelector,
                                    MatchExpression, Origin, PodSpec, Probe, ServicePort, VolumeMount)

BUNDLE = Path(__file__).parent / "data" / "manifests" / "nginx-bundle.yaml"


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Writes files (dedented) in a temporary working directory, so messages show short names."""
    monkeypatch.chdir(tmp_path)

    def write(**texts: str) -> list[str]:
        for name, text in texts.items():
            path = tmp_path / name.replace("__", "/").replace("_yaml", ".yaml").replace("_yml", ".yml")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        return sorted(texts)

    return write


def from_text(text: str):
    return load_model(["-"], io.StringIO(textwrap.dedent(text).lstrip("\n")))


POD = """
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: shop
  labels: {app: client, tier: front}
spec:
  nodeName: node2
  hostname: box
  subdomain: sub
  containers:
  - name: main
    image: registry.k8s.io/e2e-test-images/agnhost:2.47
    command: [/agnhost]
    args: [netexec, --http-port=8080]
    ports:
    - {containerPort: 8080, name: http}
    - {containerPort: 8081, protocol: UDP}
  - name: side
    image: busybox
"""


def test_pod_loads_with_every_modelled_field():
    model = from_text(POD)
    (pod,) = model.pods
    assert (pod.namespace, pod.name, pod.key) == ("shop", "client", "shop/client")
    assert pod.labels == {"app": "client", "tier": "front"}
    assert pod.owner is None
    assert pod.origin == Origin("<stdin>", 1)
    assert pod.spec == PodSpec(
        containers=(Container("main", "registry.k8s.io/e2e-test-images/agnhost:2.47", ("/agnhost",),
                              ("netexec", "--http-port=8080"),
                              (ContainerPort(8080, "http", "TCP"), ContainerPort(8081, None, "UDP"))),
                    Container("side", "busybox")),
        node_name="node2", host_network=False, hostname="box", subdomain="sub")
    assert model.warnings == ()


def test_defaults():
    model = from_text("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          hostNetwork: true
          containers: [{name: c}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: s}
        spec:
          ports: [{port: 80}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: d}
        spec:
          selector: {matchLabels: {app: d}}
          template:
            metadata: {labels: {app: d}}
            spec: {containers: [{name: c}]}
    """)
    assert model.cluster == ClusterConfig()
    pod, = model.pods
    assert pod.namespace == "default" and pod.spec.host_network
    assert pod.spec.containers == (Container("c", "", None, None, ()),)
    svc, = model.services
    assert (svc.namespace, svc.type, svc.selector, svc.cluster_ip) == ("default", "ClusterIP", None, None)
    assert svc.ports == (ServicePort(80, "TCP", None, None, None),)
    assert (svc.session_affinity, svc.affinity_timeout) == ("None", 10800)
    assert (svc.external_traffic_policy, svc.internal_traffic_policy) == ("Cluster", "Cluster")
    assert (svc.external_ips, svc.load_balancer_ip) == ((), None)
    workload, = model.workloads
    assert (workload.replicas, workload.namespace) == (1, "default")
    assert model.namespaces == () and model.nodes == ()


def test_cluster_config():
    model = from_text("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        networking:
          podSubnet: 10.200.0.0/16
          serviceSubnet: 10.100.0.0/24
          nodeSubnet: 192.168.50.0/24
          kubeProxyMode: nftables
          nftablesBalancing: rules
          dnsDomain: lab.example
          loadBalancerPool: 192.168.50.200-192.168.50.220
    """)
    assert model.cluster == ClusterConfig(
        pod_subnet=IPv4Network("10.200.0.0/16"), service_subnet=IPv4Network("10.100.0.0/24"),
        node_subnet=IPv4Network("192.168.50.0/24"), kube_proxy_mode="nftables",
        nftables_balancing="rules", dns_domain="lab.example",
        lb_pool=(IPv4Address("192.168.50.200"), IPv4Address("192.168.50.220")), origin=Origin("<stdin>", 1))


def test_cluster_pool_as_cidr_and_defaults_for_missing_fields():
    model = from_text("""
        apiVersion: kubenet-lab.dev/v1alpha1
        kind: Cluster
        metadata: {name: lab}
        networking: {loadBalancerPool: 172.18.0.192/28}
    """)
    assert model.cluster.lb_pool == (IPv4Address("172.18.0.192"), IPv4Address("172.18.0.207"))
    assert model.cluster.pod_subnet == IPv4Network("10.244.0.0/16")
    assert model.cluster.kube_proxy_mode == "iptables"


def test_nodes_and_namespaces():
    model = from_text("""
        apiVersion: v1
        kind: Node
        metadata:
          name: worker-a
          labels: {topology.kubernetes.io/zone: a}
        spec: {podCIDR: 10.244.7.0/24}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: worker-b}
        spec: {podCIDRs: [10.244.9.0/24]}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: worker-c}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: default}
    """)
    assert [(n.name, n.pod_cidr) for n in model.nodes] == [
        ("worker-a", IPv4Network("10.244.7.0/24")), ("worker-b", IPv4Network("10.244.9.0/24")), ("worker-c", None)]
    assert model.nodes[0].labels == {"topology.kubernetes.io/zone": "a"}
    assert model.nodes[1].origin == Origin("<stdin>", 8)
    assert model.namespaces == ("shop",)  # default and kube-system are implied, never listed


def test_workloads_are_not_expanded():
    model = from_text("""
        apiVersion: apps/v1
        kind: ReplicaSet
        metadata: {name: rs, namespace: shop}
        spec:
          replicas: 0
          selector:
            matchExpressions:
            - {key: app, operator: In, values: [rs, other]}
            - {key: canary, operator: DoesNotExist}
          template:
            metadata: {labels: {app: rs}}
            spec:
              nodeName: node1
              containers: [{name: c, image: nginx}]
        ---
        apiVersion: v1
        kind: ReplicationController
        metadata: {name: rc}
        spec:
          replicas: 2
          template:
            metadata: {labels: {app: rc, v: "1"}}
            spec: {containers: [{name: c}]}
        ---
        apiVersion: v1
        kind: ReplicationController
        metadata: {name: rc2}
        spec:
          selector: {app: rc2}
          template:
            metadata: {labels: {app: rc2, v: "2"}}
            spec: {containers: [{name: c}]}
    """)
    assert model.pods == ()
    rs, rc, rc2 = model.workloads
    assert (rs.kind, rs.namespace, rs.name, rs.replicas, rs.key) == ("ReplicaSet", "shop", "rs", 0, "shop/rs")
    assert rs.selector == LabelSelector({}, (MatchExpression("app", "In", ("rs", "other")),
                                             MatchExpression("canary", "DoesNotExist", ())))
    assert rs.template.node_name == "node1"
    assert rs.template_raw == {"metadata": {"labels": {"app": "rs"}},
                               "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "nginx"}]}}
    assert type(rs.template_raw) is dict and type(rs.template_raw["spec"]["containers"]) is list
    assert (rc.kind, rc.replicas, rc.template_labels) == ("ReplicationController", 2, {"app": "rc", "v": "1"})
    assert rc.selector == LabelSelector({"app": "rc", "v": "1"})  # defaults to the template's labels
    assert rc2.selector == LabelSelector({"app": "rc2"})


def test_service_fields():
    model = from_text("""
        apiVersion: v1
        kind: Service
        metadata: {name: lb, namespace: shop}
        spec:
          type: LoadBalancer
          selector: {app: web}
          clusterIP: ""
          ports:
          - {name: http, port: 80, targetPort: 8080, nodePort: 30080}
          - {name: dns, port: 53, targetPort: dns, protocol: UDP}
          - {name: dns-tcp, port: 53, targetPort: dns, protocol: TCP}
          externalIPs: [172.18.0.100]
          loadBalancerIP: 172.18.0.201
          internalTrafficPolicy: Local
          externalTrafficPolicy: Local
          healthCheckNodePort: 31000
          allocateLoadBalancerNodePorts: true
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: headless}
        spec: {clusterIP: None, selector: {app: db}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: fixed}
        spec:
          clusterIPs: [10.96.0.50]
          ports: [{port: 80}]
    """)
    lb, headless, fixed = model.services
    assert (lb.type, lb.cluster_ip, lb.selector) == ("LoadBalancer", None, {"app": "web"})
    assert lb.ports == (ServicePort(80, "TCP", "http", 8080, 30080), ServicePort(53, "UDP", "dns", "dns"),
                        ServicePort(53, "TCP", "dns-tcp", "dns"))
    assert (lb.external_ips, lb.load_balancer_ip, lb.internal_traffic_policy) == (
        ("172.18.0.100",), "172.18.0.201", "Local")
    assert (headless.cluster_ip, headless.ports) == ("None", ())
    assert fixed.cluster_ip == "10.96.0.50"


def test_flow_style_json_document():
    model = from_text("""
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "json-pod", "labels": {"app": "j"}},
         "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}]}}
    """)
    assert model.pods[0].name == "json-pod"
    assert model.pods[0].spec.containers[0].ports == (ContainerPort(80),)


def test_end_markers_empty_documents_and_comments():
    model = from_text("""
        # leading comment
        ---
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: a}
        ...
        ---
        # only a comment
        ...
        --- {apiVersion: v1, kind: Namespace, metadata: {name: b}}
        ...
    """)
    assert model.namespaces == ("a", "b")


def test_kind_list_items():
    model = from_text("""
        apiVersion: v1
        kind: List
        metadata: {resourceVersion: ""}
        items:
        - apiVersion: v1
          kind: Namespace
          metadata: {name: listed}
        - apiVersion: v1
          kind: ConfigMap
          metadata: {name: cm}
    """)
    assert model.namespaces == ("listed",)
    assert [(c.kind, c.name) for c in model.config_maps] == [("ConfigMap", "cm")] and model.warnings == ()


def test_skipped_kinds_warn_once_each(files):
    files(ingress_yaml="""
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: web}
        ---
        apiVersion: policy/v1
        kind: PodDisruptionBudget
        metadata: {name: deny}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: ext}
        spec: {type: ExternalName, externalName: example.com}
        ---
        apiVersion: apps/v1
        kind: Deploymnet
        metadata: {name: typo}
    """)
    model = load_model(["ingress.yaml"])
    assert model.warnings == (
        "ingress.yaml:1: skipping Ingress/web (kind not modelled by kubenet-lab)",
        "ingress.yaml:5: skipping PodDisruptionBudget/deny (kind not modelled by kubenet-lab)",
        "ingress.yaml:14: skipping Deploymnet/typo (kind not modelled by kubenet-lab) (did you mean 'Deployment'?)",
    )
    assert [(s.name, s.type, s.external_name) for s in model.services] == [("ext", "ExternalName", "example.com")]


def test_init_containers_restart_policy_grace_period_and_pre_stop_are_read():
    model = from_text("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          restartPolicy: OnFailure
          terminationGracePeriodSeconds: 5
          initContainers:
          - {name: init, image: busybox, command: [sh, -c, "echo hi"]}
          - name: proxy
            image: envoy
            restartPolicy: Always
            ports: [{containerPort: 15001}]
            lifecycle: {preStop: {httpGet: {port: 15001, path: quit}}}
          containers:
          - name: c
            lifecycle: {preStop: {exec: {command: [sh, -c, "sleep 1"]}}, postStart: {sleep: {seconds: 1}}}
          - {name: d, lifecycle: {preStop: {sleep: {seconds: 3}}}}
    """)
    spec = model.pods[0].spec
    assert (spec.restart_policy, spec.termination_grace_period) == ("OnFailure", 5)
    assert [(c.name, c.restart_policy) for c in spec.init_containers] == [("init", None), ("proxy", "Always")]
    assert spec.init_containers[0].command == ("sh", "-c", "echo hi")
    assert spec.init_containers[1].pre_stop == Hook(http_port=15001, http_path="quit")
    assert spec.containers[0].pre_stop == Hook(command=("sh", "-c", "sleep 1"))
    assert spec.containers[1].pre_stop == Hook(sleep_seconds=3)
    assert model.warnings == ("<stdin>:16: spec.containers[0].lifecycle.postStart: ignored: kubenet-lab does not run "
                              "postStart hooks",)
    defaults = from_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n")
    assert (defaults.pods[0].spec.restart_policy, defaults.pods[0].spec.termination_grace_period) == ("Always", 30)


def test_init_containers_are_checked_as_the_api_server_checks_them():
    with pytest.raises(InputError) as e:
        from_text("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec:
              initContainers:
              - {name: c, image: busybox}
              - {name: once, restartPolicy: Never}
              - {name: probed, readinessProbe: {tcpSocket: {port: 80}}, lifecycle: {preStop: {sleep: {seconds: 1}}}}
              - {name: hook, restartPolicy: Always, lifecycle: {preStop: {}}}
              - {name: two, restartPolicy: Always, lifecycle: {preStop: {sleep: {seconds: 1}, exec: {command: [x]}}}}
              containers:
              - {name: c, restartPolicy: Always}
        """)
    assert e.value.problems == [
        "<stdin>:7: spec.initContainers[1].restartPolicy: expected one of Always, got 'Never'",
        "<stdin>:8: spec.initContainers[2].lifecycle: may not be set for init containers without restartPolicy=Always",
        "<stdin>:8: spec.initContainers[2].readinessProbe: may not be set for init containers without "
        "restartPolicy=Always",
        "<stdin>:9: spec.initContainers[3].lifecycle.preStop: must specify a handler type (exec, httpGet, sleep)",
        "<stdin>:10: spec.initContainers[4].lifecycle.preStop.sleep: may not specify more than 1 handler type",
        "<stdin>:12: spec.containers[0].restartPolicy: may not be set for non-init containers (the pod's "
        "spec.restartPolicy applies to them)",
    ]
    with pytest.raises(InputError) as e:
        from_text("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec:
              initContainers: [{name: c, image: busybox}]
              containers: [{name: c}]
        """)
    assert e.value.problems == ["<stdin>:6: spec.containers[0].name: 'c' is already used by spec.initContainers[0]"]


def test_stdin_among_files_and_directories_sorted(files):
    files(dir__b_yaml="apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
          dir__a_yml="apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
          dir__c_txt="not yaml: [",
          dir__sub__d_yaml="apiVersion: v1\nkind: Namespace\nmetadata: {name: d}\n",
          z_yaml="apiVersion: v1\nkind: Namespace\nmetadata: {name: z}\n")
    stdin = io.StringIO("apiVersion: v1\nkind: Namespace\nmetadata: {name: s}\n")
    model = load_model(["z.yaml", "-", "dir"], stdin)
    assert model.namespaces == ("z", "s", "a", "b")


def test_origin_uses_the_path_as_given(files):
    files(dir__web_yaml=POD)
    pod, = load_model(["dir/"]).pods
    assert pod.origin == Origin(os.path.join("dir/", "web.yaml"), 1)


def test_anchors_and_merge_keys():
    model = from_text("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
          - &base {name: a, image: busybox, command: [sleep, "1"]}
          - <<: *base
            name: b
    """)
    assert [c.name for c in model.pods[0].spec.containers] == ["a", "b"]
    assert model.pods[0].spec.containers[1].command == ("sleep", "1")


def test_real_world_bundle_loads_unchanged():
    model = load_model([str(BUNDLE)])
    assert model.namespaces == ("shop",)
    deploy, = model.workloads
    assert (deploy.kind, deploy.namespace, deploy.name, deploy.replicas) == ("Deployment", "shop", "nginx", 3)
    assert deploy.selector.matches(deploy.template_labels)
    nginx, = deploy.template.containers
    assert nginx.env_from == (EnvFrom("ConfigMap", "nginx-env"),)
    assert nginx.mounts == (VolumeMount("conf", "/etc/nginx/conf.d"),)
    assert (dataclasses.replace(nginx, env_from=(), mounts=(), security=None),) == (Container(
        "nginx", "nginx:1.25-alpine", None, None,
        (ContainerPort(80, "http", "TCP"), ContainerPort(9113, "metrics", "TCP")),
        (EnvVar("NGINX_PORT", "80"), EnvVar("POD_IP", field_path="status.podIP")), probe_ports=(80,),
        # Probes with the API server's defaults; the named port resolved against the container's.
        readiness_probe=Probe("httpGet", port=80, path="/", initial_delay=2),
        liveness_probe=Probe("tcpSocket", port=80, period=10, timeout=1, success_threshold=1, failure_threshold=3),
        startup_probe=Probe("exec", command=("cat", "/tmp/ready"))),)
    # The raw template keeps everything as written, ignored fields included, for the hash.
    assert deploy.template_raw["spec"]["containers"][0]["resources"]["limits"] == {"memory": "128Mi"}
    assert deploy.template_raw["metadata"]["creationTimestamp"] is None
    svc, = model.services
    assert (svc.type, svc.cluster_ip, svc.session_affinity, svc.affinity_timeout) == (
        "NodePort", "10.96.100.10", "ClientIP", 600)
    assert svc.external_traffic_policy == "Local"
    assert svc.ports == (ServicePort(80, "TCP", "http", "http", 30080), ServicePort(9113, "TCP", "metrics", 9113))
    assert [(c.kind, c.namespace, c.name) for c in model.config_maps] == [("ConfigMap", "shop", "nginx-conf")]
    assert model.warnings == ()


def test_no_paths_gives_an_empty_model():
    assert load_model([]) == type(load_model([]))()


def test_input_error_carries_every_problem(files):
    files(a_yaml="apiVersion: v1\nkind: Pod\nmetadata: {name: A}\nspec: {containers: [{name: c}]}\n")
    with pytest.raises(InputError) as err:
        load_model(["a.yaml", "missing.yaml"])
    assert err.value.problems == [
        "a.yaml:3: metadata.name: Invalid value: \"A\": a lowercase RFC 1123 label must consist of lower case "
        "alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
        "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        "missing.yaml: cannot read: No such file or directory",
    ]
    assert str(err.value) == "\n".join(err.value.problems)


def test_a_skipped_kubernetes_kind_gets_no_hint_towards_another_kind():
    """ServiceAccount and ClusterRole are real kinds, not misspelt Service and Cluster."""
    model = from_text("""
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: ingress-nginx}
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata: {name: ingress-nginx}
        ---
        apiVersion: v1
        kind: Servcie
        metadata: {name: typo}
    """)
    assert model.warnings == (
        "<stdin>:1: skipping ServiceAccount/ingress-nginx (kind not modelled by kubenet-lab)",
        "<stdin>:5: skipping ClusterRole/ingress-nginx (kind not modelled by kubenet-lab)",
        "<stdin>:9: skipping Servcie/typo (kind not modelled by kubenet-lab) (did you mean 'Service'?)",
    )


def test_fields_the_lab_does_not_apply_to_a_pod_are_said_at_up():
    model = from_text("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          activeDeadlineSeconds: 60
          readinessGates: [{conditionType: example.com/ready}]
          containers: [{name: c, image: busybox, command: [sh], workingDir: /app}]
    """)
    assert [w.split(": ", 2)[1] for w in model.warnings] == [
        "spec.activeDeadlineSeconds", "spec.readinessGates", "spec.containers[0].workingDir"]
