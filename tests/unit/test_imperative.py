"""kubectl's imperative verbs without root: the objects its generators make (compared with what
`kubectl ... --dry-run=client -o yaml` prints), label/annotate updates with kubectl's errors,
and what relabelling does to a plan: nothing is made anew, only endpoints move; a controller's
pod keeps its labels in the allocations or is orphaned and replaced."""
from __future__ import annotations


import pytest
from click.testing import CliRunner

from kubenet_lab import output
from kubenet_lab.app import imperative
from kubenet_lab.cli import main
from kubenet_lab.manifests import generate, store
from kubenet_lab.manifests.fields import Sink
from kubenet_lab.manifests.load import model_of
from kubenet_lab.model.objects import RunExec
from kubenet_lab.plan import make_plan


def yaml_of(doc: dict) -> str:
    return output.dump(generate.printed(doc), "yaml")


# --- what kubectl's generators make --------------------------------------------------------------

# `kubectl run nginx --image=nginx --port=80 --dry-run=client -o yaml`
KUBECTL_RUN = """\
apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: null
  labels:
    run: nginx
  name: nginx
spec:
  containers:
  - image: nginx
    name: nginx
    ports:
    - containerPort: 80
    resources: {}
  dnsPolicy: ClusterFirst
  restartPolicy: Always
status: {}
"""

# `kubectl run -it test --image=busybox --restart=Never --labels=app=t,tier=x -- wget -qO- web --dry-run=client -o yaml`
KUBECTL_RUN_ARGS = """\
apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: null
  labels:
    app: t
    tier: x
  name: test
spec:
  containers:
  - args:
    - wget
    - -qO-
    - web
    image: busybox
    name: test
    resources: {}
    stdin: true
    stdinOnce: true
    tty: true
  dnsPolicy: ClusterFirst
  restartPolicy: Never
status: {}
"""

# `kubectl create deployment web --image=registry.example.com/team/nginx:1.27 --replicas=3 --port=80
#  --dry-run=client -o yaml`
KUBECTL_CREATE_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: registry.example.com/team/nginx:1.27
        name: nginx
        ports:
        - containerPort: 80
        resources: {}
status: {}
"""

# `kubectl expose deployment web --port=80 --target-port=8080 --dry-run=client -o yaml`
KUBECTL_EXPOSE = """\
apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  ports:
  - port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: web
status:
  loadBalancer: {}
"""


def test_run_makes_kubectls_pod():
    assert yaml_of(generate.run_pod("nginx", "nginx", port=80)) == KUBECTL_RUN


def test_run_with_labels_restart_args_and_a_terminal():
    pod = generate.run_pod("test", "busybox", labels=generate.parse_pairs("app=t,tier=x"), restart="Never",
                           argv=["wget", "-qO-", "web"], stdin=True, tty=True)
    assert yaml_of(pod) == KUBECTL_RUN_ARGS


def test_run_command_env_and_namespace():
    pod = generate.run_pod("c", "busybox", namespace="shop", argv=["sleep", "10"], command=True,
                           env=generate.parse_env(["A=1", "B=x=y"]))
    c = pod["spec"]["containers"][0]
    assert c["command"] == ["sleep", "10"] and "args" not in c
    assert c["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "x=y"}]
    assert pod["metadata"] == {"name": "c", "namespace": "shop", "labels": {"run": "c"}}
    with pytest.raises(generate.GenerateError, match="invalid restart policy"):
        generate.run_pod("c", "busybox", restart="Sometimes")


def test_create_deployment_makes_kubectls_deployment():
    doc = generate.deployment("web", ["registry.example.com/team/nginx:1.27"], replicas=3, port=80)
    assert yaml_of(doc) == KUBECTL_CREATE_DEPLOYMENT


@pytest.mark.parametrize("image, name", [("nginx", "nginx"), ("nginx:1.27", "nginx"),
                                         ("docker.io/library/nginx:1.27", "nginx"),
                                         ("localhost:5000/my_app@sha256:abcd", "my-app"),
                                         ("registry.k8s.io/e2e-test-images/agnhost:2.39", "agnhost")])
def test_create_deployment_names_the_container_after_the_image(image, name):
    assert generate.container_name(image) == name


def test_create_deployment_defaults_and_refusals():
    doc = generate.deployment("web", ["nginx", "busybox", "nginx:2"])
    assert doc["spec"]["replicas"] == 1
    assert [c["name"] for c in doc["spec"]["template"]["spec"]["containers"]] == ["nginx", "busybox", "nginx-2"]
    with pytest.raises(generate.GenerateError, match="cannot specify port with multiple images"):
        generate.deployment("web", ["nginx", "busybox"], port=80)


def test_expose_deployment_makes_kubectls_service():
    dep = generate.deployment("web", ["nginx"], port=80)
    assert yaml_of(generate.service("Deployment", dep, port="80", target_port="8080")) == KUBECTL_EXPOSE


def test_expose_takes_the_objects_ports_selector_and_labels():
    pod = generate.run_pod("db", "redis", labels={"app": "db"})
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 6379}, {"containerPort": 53, "protocol": "UDP"}]
    svc = generate.service("Pod", pod, name="db-svc", type_="NodePort")
    assert svc["metadata"] == {"name": "db-svc", "labels": {"app": "db"}}
    assert svc["spec"] == {"ports": [{"name": "port-1", "port": 6379, "protocol": "TCP", "targetPort": 6379},
                                     {"name": "port-2", "port": 53, "protocol": "UDP", "targetPort": 53}],
                           "selector": {"app": "db"}, "type": "NodePort"}
    rc = {"kind": "ReplicationController", "metadata": {"name": "fe", "labels": {"x": "y"}},
          "spec": {"selector": {"app": "fe"}, "template": {"spec": {"containers": [{"name": "c"}]}}}}
    svc = generate.service("ReplicationController", rc, port="80", target_port="http")
    assert svc["spec"]["selector"] == {"app": "fe"} and svc["spec"]["ports"][0]["targetPort"] == "http"


def test_expose_refuses_as_kubectl_does():
    bare = generate.run_pod("x", "nginx", port=80)
    bare["metadata"].pop("labels")
    with pytest.raises(generate.GenerateError) as e:
        generate.service("Pod", bare)
    assert str(e.value) == ("couldn't retrieve selectors via --selector flag or introspection: "
                            "the pod has no labels and cannot be exposed")
    with pytest.raises(generate.GenerateError, match="^couldn't find port via --port flag or introspection$"):
        generate.service("Pod", generate.run_pod("x", "nginx"))
    dep = generate.deployment("web", ["nginx"])
    dep["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}
    with pytest.raises(generate.GenerateError, match="no selectors, therefore cannot be exposed"):
        generate.service("Deployment", dep, port="80")


# --- label and annotate ----------------------------------------------------------------------------

def test_label_updates_and_kubectls_errors():
    to_set, to_remove = generate.parse_updates(["app=other", "tier-"])
    assert generate.updated({"app": "web", "tier": "x"}, to_set, to_remove, overwrite=True) == {"app": "other"}
    with pytest.raises(generate.GenerateError) as e:
        generate.updated({"app": "web"}, to_set, to_remove, overwrite=False)
    assert str(e.value) == "'app' already has a value (web), and --overwrite is false"
    assert generate.updated({"app": "other"}, to_set, [], overwrite=False) == {"app": "other"}  # same value
    for bad in (["a=b=c"], ["-x=1"], ["app=no spaces"]):
        with pytest.raises(generate.GenerateError, match="invalid label"):
            generate.parse_updates(bad)
    with pytest.raises(generate.GenerateError, match="at least one label update is required"):
        generate.parse_updates([])


def test_annotate_overwrite_error_and_values_with_equals():
    to_set, _ = generate.parse_updates(["note=a=b c"], "annotation")
    assert to_set == {"note": "a=b c"}
    with pytest.raises(generate.GenerateError) as e:
        generate.updated({"note": "x"}, to_set, [], overwrite=False, what="annotation")
    assert str(e.value) == "--overwrite is false but found the following declared annotation(s): " \
                           "'note' already has a value (x)"


# --- relabelling a plan ------------------------------------------------------------------------------

def plan_of(objects, previous=None):
    sink = Sink()
    return make_plan(model_of([(s.data, s.at(sink)) for s in objects], sink), "t", previous, now=1.0,
                     has_program=lambda p: p in ("sleep", "sh", "python3"))


def ready_ips(plan, service):
    svc = next(s for s in plan.services if s.name == service)
    return sorted({str(e.ip) for port in svc.ports for e in port.endpoints})


def relabel(held, key, labels):
    return [store.edited(s, ("metadata", "labels"), generate.tree(labels)) if s.key == key else s for s in held]


def test_a_relabelled_pod_is_the_same_pod_and_only_its_endpoints_move():
    pod = generate.run_pod("py", "python", labels={"app": "web"}, argv=["python3", "-m", "http.server", "80"])
    pod["spec"]["containers"][0]["env"] = [{"name": "APP", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.labels['app']"}}}]
    emulated = generate.run_pod("em", "nginx", labels={"app": "web"})  # serves 8080 only for the Service
    svc = generate.service("Pod", {"metadata": {"name": "web"}, "spec": {}}, selector={"app": "web"}, port="80",
                           target_port="8080")
    held = [imperative._new(d, "run") for d in (pod, emulated, svc)]
    before = plan_of(held)
    assert len(ready_ips(before, "web")) == 2
    held = relabel(relabel(held, ("Pod", "default", "py"), {"app": "other"}), ("Pod", "default", "em"),
                   {"app": "other"})
    after = plan_of(held, before)
    assert ready_ips(after, "web") == []
    for name in ("py", "em"):
        old, new = before.pod(f"default/{name}"), after.pod(f"default/{name}")
        assert new.labels == {"app": "other"}
        assert (new.uid, new.netns, new.ip, new.containers) == (old.uid, old.netns, old.ip, old.containers)
    # the variable got the label's value when the container started, and keeps it
    assert isinstance(after.pod("default/py").containers[0].run, RunExec)
    assert dict(after.pod("default/py").containers[0].env)["APP"] == "web"
    # the emulated nginx keeps the port it took for the Service it no longer belongs to
    assert after.pod("default/em").containers[0].run.ports == (80, 8080)
    back = plan_of(relabel(held, ("Pod", "default", "py"), {"app": "web"}), after)
    assert ready_ips(back, "web") == [str(before.pod("default/py").ip)]
    assert back.pod("default/py").uid == before.pod("default/py").uid


def test_a_controllers_pod_keeps_new_labels_or_is_orphaned_and_replaced():
    dep = generate.deployment("web", ["nginx"], replicas=2, port=80)
    svc = generate.service("Deployment", dep)
    held = [imperative._new(dep, "create"), imperative._new(svc, "expose")]
    first = plan_of(held)
    web = sorted((p for p in first.pods if p.owner and p.owner.startswith("ReplicaSet/web-")), key=lambda p: p.name)
    assert len(web) == 2 and len(ready_ips(first, "web")) == 2
    one = web[0]
    # still selected by its ReplicaSet: kept in the allocations, nothing made anew
    held2, previous = imperative._relabel_owned(held, first, one, {**one.labels, "debug": "true"})
    assert held2 == held
    second = plan_of(held2, previous)
    assert second.pod(one.key).labels["debug"] == "true" and second.pod(one.key).uid == one.uid
    assert second.allocations.pod_labels == {one.key: dict(second.pod(one.key).labels)}
    assert plan_of(held2, second).pod(one.key).labels["debug"] == "true"  # and kept by the next change
    # out of the selector: orphaned (a Pod object, same pod), and the ReplicaSet makes another
    held3, previous = imperative._relabel_owned(held2, second, second.pod(one.key), {**one.labels, "app": "debug"})
    assert [s.key for s in held3[len(held2):]] == [("Pod", "default", one.name)]
    third = plan_of(held3, previous)
    orphan = third.pod(one.key)
    assert (orphan.owner, orphan.uid, orphan.ip, orphan.labels["app"]) == (None, one.uid, one.ip, "debug")
    replicas = sorted(p.name for p in third.pods if p.owner == one.owner)
    assert len(replicas) == 2 and one.name not in replicas and web[1].name in replicas
    assert str(one.ip) not in ready_ips(third, "web") and len(ready_ips(third, "web")) == 2
    assert third.allocations.pod_labels == {}
    assert plan_of(held3, third).pods == third.pods  # stable


# --- the command line ------------------------------------------------------------------------------

@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBENET_LAB_STATE_ROOT", str(tmp_path / "state"))
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


def test_dry_run_prints_kubectls_yaml_without_a_lab(cli):
    out = cli("--lab", "unit", "run", "nginx", "--image=nginx", "--port=80", "--dry-run=client", "-o", "yaml")
    assert out.exit_code == 0 and out.output == KUBECTL_RUN
    out = cli("--lab", "unit", "create", "deployment", "web", "--image=registry.example.com/team/nginx:1.27",
              "--replicas=3", "--port=80", "--dry-run=client", "-o", "yaml")
    assert out.exit_code == 0 and out.output == KUBECTL_CREATE_DEPLOYMENT
    out = cli("--lab", "unit", "run", "nginx", "--image=nginx", "--dry-run=client")
    assert out.output == "pod/nginx created (dry run)\n"


def test_rm_needs_an_attached_container(cli):
    out = cli("--lab", "unit", "run", "--rm", "x", "--image=busybox", "--", "true")
    assert out.exit_code == 2 and "error: --rm should only be used for attached containers" in out.output


@pytest.mark.parametrize("verb", [["run"], ["create", "deployment"], ["expose"], ["label"], ["annotate"],
                                  ["set", "image"]])
def test_every_imperative_verb_has_help_with_examples(cli, verb):
    out = cli(*verb, "--help")
    assert out.exit_code == 0 and "Examples:" in out.output and f"kubenet-lab {' '.join(verb)}" in out.output


def test_the_finished_container_states():
    assert not imperative.finished(None) and not imperative.finished({"state": "running", "restarts": 0})
    assert imperative.finished({"state": "terminated", "exitCode": 3})
    assert imperative.finished({"state": "waiting", "exitCode": 1, "restarts": 0})
    assert imperative.finished({"state": "running", "restarts": 1})


def test_an_old_replicasets_pod_is_orphaned_with_its_own_template():
    """During a rollout the old ReplicaSet's pods run the old template: orphaned, one stays the
    same pod (its uid), not one of the new template."""
    dep = generate.deployment("web", ["nginx:1.27"], replicas=2, port=80)
    first = plan_of([imperative._new(dep, "create")])
    old = sorted((p for p in first.pods if p.owner and p.owner.startswith("ReplicaSet/web-")), key=lambda p: p.name)
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    held = [imperative._new(dep, "create")]
    second = plan_of(held, first)
    running = [p for p in second.pods if p.owner == old[0].owner]
    assert running and any(p.owner and p.owner != old[0].owner and p.owner.startswith("ReplicaSet/web-")
                           for p in second.pods)  # a new ReplicaSet beside the old one
    pod = running[0]
    held2, previous = imperative._relabel_owned(held, second, pod, {**pod.labels, "app": "debug"})
    image = held2[-1].data["spec"]["containers"][0]["image"]
    third = plan_of(held2, previous)
    assert image == "nginx:1.27" and (third.pod(pod.key).uid, third.pod(pod.key).owner) == (pod.uid, None)


def test_labelling_a_default_node_makes_the_same_nodes_objects():
    held = [imperative._new(generate.run_pod("a", "nginx", port=80), "run")]
    before = plan_of(held)
    nodes = [s for s in imperative._with_default_nodes(held, before) if s.kind == "Node"]
    assert [s.name for s in nodes] == [n.name for n in before.nodes]
    after = plan_of(held + nodes, before)
    assert [(n.name, n.pod_cidr, n.ip) for n in after.nodes] == [(n.name, n.pod_cidr, n.ip) for n in before.nodes]
    assert after.pods == before.pods


def test_a_statefulsets_pod_is_not_orphaned():
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "db", "image": "redis"}]}}}}
    held = [imperative._new(sts, "create")]
    plan = plan_of(held)
    pod = plan.pod("default/db-0")
    with pytest.raises(generate.GenerateError, match="orphans only the pods of ReplicaSets"):
        imperative._relabel_owned(held, plan, pod, {"app": "other"})
    _, kept = imperative._relabel_owned(held, plan, pod, {**pod.labels, "role": "primary"})
    assert plan_of(held, kept).pod("default/db-0").labels["role"] == "primary"
