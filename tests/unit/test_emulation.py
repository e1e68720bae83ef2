"""What an image the lab does not run serves, planned from manifests as people write them (no root).

containerPort is informational in Kubernetes: a program listens where it listens. The lab's
stand-in for an image must listen where the real one would, or where the pod's Services and
probes expect it, and say so when it stands in for a program it cannot run.
"""
from __future__ import annotations

import io
import textwrap

import pytest

from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.containers import emulation_warnings
from kubenet_lab.plan.images import known, repository
from kubenet_lab.model.objects import RunExec, RunHttp, RunNetexec, RunNothing, RunServeHostname
from kubenet_lab.fabric import checks


def plan_of(text: str, has_program=None):
    model = load_model(["-"], io.StringIO(textwrap.dedent(text).lstrip("\n")))
    return make_plan(model, "lab", has_program=has_program)


def runs(plan, prefix: str) -> list:
    return [[c.run for c in p.containers] for p in plan.pods if p.name.startswith(prefix)]


# The "Debug Services" walk-through (kubernetes.io/docs/tasks/debug/debug-application/debug-service/):
# serve_hostname listens on 9376, and the Deployment does not say so.
DEBUG_SERVICES = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hostnames
spec:
  selector:
    matchLabels:
      app: hostnames
  replicas: 3
  template:
    metadata:
      labels:
        app: hostnames
    spec:
      containers:
      - name: hostnames
        image: registry.k8s.io/serve_hostname
---
apiVersion: v1
kind: Service
metadata:
  name: hostnames
spec:
  selector:
    app: hostnames
  ports:
  - name: default
    protocol: TCP
    port: 80
    targetPort: 9376
"""


def test_serve_hostname_listens_on_9376_without_declaring_it():
    plan = plan_of(DEBUG_SERVICES)
    assert runs(plan, "hostnames-") == [[RunServeHostname(9376, True, False, False)]] * 3
    svc, = [s for s in plan.services if s.name == "hostnames"]
    assert sorted(e.port for e in svc.ports[0].endpoints) == [9376] * 3
    assert emulation_warnings(plan) == ()  # the image is known: nothing to warn about


def test_well_known_images_listen_where_they_really_do():
    plan = plan_of("""
        apiVersion: v1
        kind: Pod
        metadata: {name: web}
        spec:
          containers: [{name: nginx, image: nginx:1.27}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: cache}
        spec:
          containers: [{name: redis, image: docker.io/library/redis:7}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: tools}
        spec:
          containers: [{name: sh, image: busybox:1.36}]
        """)
    # its files, when a volume holds them
    assert runs(plan, "web") == [[RunHttp((80,), docroot="/usr/share/nginx/html")]]
    assert runs(plan, "cache") == [[RunHttp((6379,), redis_ports=(6379,))]]  # speaking Redis there
    assert runs(plan, "tools") == [[RunNothing()]]


def test_an_unknown_image_serves_the_ports_its_services_and_probes_name():
    plan = plan_of("""
        apiVersion: v1
        kind: Pod
        metadata: {name: app, labels: {app: shop}}
        spec:
          containers:
          - name: main
            image: example.com/shop:2.1
            readinessProbe: {httpGet: {path: /ready, port: 8086}}
            livenessProbe: {tcpSocket: {port: http}}
            ports: [{name: http, containerPort: 8080}]
          - name: metrics
            image: example.com/exporter:1
            ports: [{containerPort: 9100}]
          - name: sleeper
            image: busybox
            command: [sleep, infinity]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: shop}
        spec:
          selector: {app: shop}
          ports:
          - {name: web, port: 80, targetPort: http}
          - {name: admin, port: 81, targetPort: 8081}
          - {name: stats, port: 9100}
          - {name: dns, port: 53, protocol: UDP}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: other}
        spec:
          selector: {app: else}
          ports: [{port: 82, targetPort: 7000}]
        """)
    (main, metrics, sleeper), = runs(plan, "app")
    # 8080 declared; 8081 and UDP 53 only targeted; 8086 only probed; 9100 is the exporter's own
    assert main == RunHttp((8080, 8081, 8086), (53,))
    assert metrics == RunHttp((9100,))
    assert sleeper == RunExec(("sleep", "infinity"))
    shop, = [s for s in plan.services if s.name == "shop"]
    assert [len(p.endpoints) for p in shop.ports] == [1, 1, 1, 1]


def test_a_targeted_port_goes_to_no_container_when_none_is_emulated():
    """A pod of real processes (or agnhost) listens where its programs do: the lab adds nothing."""
    plan = plan_of("""
        apiVersion: v1
        kind: Pod
        metadata: {name: real, labels: {app: real}}
        spec:
          containers:
          - {name: nc, image: busybox, command: [sh, -c, "sleep 1000"]}
          - {name: agn, image: "registry.k8s.io/e2e-test-images/agnhost:2.53", args: [netexec]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: real}
        spec:
          selector: {app: real}
          ports: [{port: 80, targetPort: 9999}]
        """)
    assert runs(plan, "real") == [[RunExec(("sh", "-c", "sleep 1000")), RunNetexec(8080, 8081)]]


PODINFO = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo}
spec:
  replicas: 2
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:6.7.0
        command: [./podinfo, --port=9898, --port-metrics=9797, --grpc-port=9999]
        ports:
        - {name: http, containerPort: 9898}
        - {name: http-metrics, containerPort: 9797}
        - {name: grpc, containerPort: 9999}
"""


def test_a_program_inside_the_image_falls_back_to_the_built_in_server_with_one_warning():
    plan = plan_of(PODINFO, has_program=checks.has_program)
    assert runs(plan, "podinfo-") == [[RunHttp((9898, 9797, 9999))]] * 2
    rs = next(p.owner for p in plan.pods if p.name.startswith("podinfo-")).split("/")[1]
    assert emulation_warnings(plan) == (
        f"ReplicaSet default/{rs}, container podinfod: ./podinfo is not a program on this machine (it lives in "
        f"image ghcr.io/stefanprodan/podinfo:6.7.0, which kubenet-lab does not pull); it serves the built-in "
        f"HTTP server on TCP 9898, TCP 9797, TCP 9999 instead",)


def test_a_program_this_machine_has_runs_for_real():
    plan = plan_of(PODINFO.replace("./podinfo", "sh"), has_program=checks.has_program)
    assert [type(r) for r, in runs(plan, "podinfo-")] == [RunExec] * 2 and emulation_warnings(plan) == ()


def test_has_program_looks_on_the_container_path_and_never_at_relative_paths():
    assert checks.has_program("sh") and checks.has_program("/bin/sh")
    assert not checks.has_program("./sh") and not checks.has_program("bin/sh")
    assert not checks.has_program("/nginx-ingress-controller") and not checks.has_program("no-such-program-here")


def test_args_without_command_go_to_the_image_entrypoint():
    """kind's LoadBalancer example: http-echo's args are its flags, never a program to run."""
    plan = plan_of("""
        apiVersion: v1
        kind: Pod
        metadata: {name: foo-app, labels: {app: http-echo}}
        spec:
          containers:
          - {name: foo-app, image: 'hashicorp/http-echo:0.2.3', args: ['-text=foo']}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: bar-app, labels: {app: http-echo}}
        spec:
          containers:
          - {name: bar-app, image: 'docker.io/hashicorp/http-echo', args: ['-text', 'bar', '-listen=:8080']}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: tools}
        spec:
          containers:
          - {name: sh, image: busybox, args: [sh, -c, 'sleep 1000']}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: mystery}
        spec:
          containers:
          - {name: app, image: example.com/app:1, args: [--port=8080], ports: [{containerPort: 8080}]}
        """, has_program=lambda program: True)
    assert runs(plan, "foo-app") == [[RunHttp((5678,), text="foo\n")]]
    assert runs(plan, "bar-app") == [[RunHttp((8080,), text="bar\n")]]
    assert runs(plan, "tools") == [[RunExec(("sh", "-c", "sleep 1000"))]]  # busybox has no ENTRYPOINT
    assert runs(plan, "mystery") == [[RunHttp((8080,))]]
    assert emulation_warnings(plan) == (
        "pod default/mystery, container app: args without a command go to the entrypoint of image example.com/app:1, "
        "which kubenet-lab does not know (no image is pulled); it serves the built-in HTTP server on TCP 8080 instead",)


@pytest.mark.parametrize("image, repo", [
    ("nginx", "nginx"), ("nginx:1.27-alpine", "nginx"), ("docker.io/library/nginx:1.27", "nginx"),
    ("docker.io/hashicorp/http-echo:0.2.3", "hashicorp/http-echo"), ("localhost:5000/app:1", "localhost:5000/app"),
    ("registry.k8s.io/serve_hostname@sha256:abc", "registry.k8s.io/serve_hostname"),
])
def test_image_repositories_are_compared_without_tag_digest_or_docker_hub_prefix(image, repo):
    assert repository(image) == repo


def test_the_image_table_names_each_repository_once():
    from kubenet_lab.plan.images import KNOWN_IMAGES
    repos = [r for image in KNOWN_IMAGES for r in image.repos]
    assert len(repos) == len(set(repos)) and all(known(r) for r in repos)
