"""A real process's environment, as kubelet makes it: env values, pod fields, $(NAME) expansion
and the service variables of the pod's namespace."""
from __future__ import annotations

import io
import textwrap

from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.containers import expand, process_argv, process_environment, service_links
from kubenet_lab.model.objects import RunExec, RunHttp
from tests.unit.test_manifests_validation import problems  # noqa: F401 - the fixture

MANIFESTS = """
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: shop, labels: {app: shop, tier: front}}
spec:
  nodeName: node2
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo $(GREETING) $$(KEPT) $(UNDEFINED)"]
    args: ["$(MY_IP)"]
    env:
    - {name: WHO, value: world}
    - {name: GREETING, value: "hello $(WHO) at $(CART_SERVICE_HOST)"}
    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: NODE_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
    - {name: SECRET, valueFrom: {secretKeyRef: {name: s, key: k, optional: true}}}
  - name: side
    image: nginx
    ports: [{containerPort: 80}]
    env: [{name: IGNORED, value: "built-in servers have no environment"}]
---
apiVersion: v1
kind: Pod
metadata: {name: quiet, namespace: shop}
spec:
  enableServiceLinks: false
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"], env: [{name: A, value: "$(CART_SERVICE_HOST)"}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart-api, namespace: shop}
spec:
  selector: {app: shop}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns-udp, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  selector: {app: shop}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: shop}
spec:
  clusterIP: None
  selector: {app: shop}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere}
spec:
  selector: {app: shop}
  ports: [{port: 80}]
"""


def lab_plan(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(textwrap.dedent(MANIFESTS))
    model = load_model([str(path)])
    return model, make_plan(model, "lab")


def test_expansion_follows_kubernetes():
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING) stays", env) == "$(MISSING) stays"
    assert expand("$$(A) is escaped, $$ is one $", env) == "$(A) is escaped, $ is one $"
    assert expand("$A ${A} $(A", env) == "$A ${A} $(A"


def test_pod_fields_and_values_resolve_and_expand_at_start(tmp_path):
    model, plan = lab_plan(tmp_path)
    assert model.warnings == ()
    pod = plan.pod("shop/app")
    main, side = pod.containers
    assert isinstance(side.run, RunHttp)
    assert isinstance(main.run, RunExec) and main.run.service_links
    node_ip = str(plan.node("node2").ip)
    assert dict(main.run.env) == {
        "WHO": "world", "GREETING": "hello $(WHO) at $(CART_SERVICE_HOST)", "MY_IP": str(pod.ip),
        "NODE_IP": node_ip, "NODE": "node2", "NS": "shop", "TIER": "front"}
    # Secret s does not exist; the variable is optional: left out, and the container starts
    assert main.config_error is None
    env = process_environment(plan, pod, main, "app")
    cart = str(next(s for s in plan.services if s.name == "cart").cluster_ip)
    assert env["GREETING"] == f"hello world at {cart}"
    assert env["HOSTNAME"] == "app" and env["PATH"].startswith("/usr/local/sbin:") and "SECRET" not in env
    assert process_argv(main.run, env) == [
        "sh", "-c", "echo hello world at " + cart + " $(KEPT) $(UNDEFINED)", str(pod.ip)]


def test_service_variables_are_the_namespaces_services_with_a_cluster_ip(tmp_path):
    _, plan = lab_plan(tmp_path)
    ip = {s.name: str(s.cluster_ip) for s in plan.services}
    master = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
              "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.96.0.1:443",
              "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
              "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1"}
    assert service_links(plan.services, "shop", links=False) == master  # every container has these
    assert service_links(plan.services, "shop") == master | {
        "CART_API_SERVICE_HOST": ip["cart-api"], "CART_API_SERVICE_PORT": "80",
        "CART_API_SERVICE_PORT_HTTP": "80", "CART_API_SERVICE_PORT_DNS_UDP": "53",
        "CART_API_PORT": f"tcp://{ip['cart-api']}:80",
        "CART_API_PORT_80_TCP": f"tcp://{ip['cart-api']}:80", "CART_API_PORT_80_TCP_PROTO": "tcp",
        "CART_API_PORT_80_TCP_PORT": "80", "CART_API_PORT_80_TCP_ADDR": ip["cart-api"],
        "CART_API_PORT_53_UDP": f"udp://{ip['cart-api']}:53", "CART_API_PORT_53_UDP_PROTO": "udp",
        "CART_API_PORT_53_UDP_PORT": "53", "CART_API_PORT_53_UDP_ADDR": ip["cart-api"],
        "CART_SERVICE_HOST": ip["cart"], "CART_SERVICE_PORT": "8080", "CART_PORT": f"tcp://{ip['cart']}:8080",
        "CART_PORT_8080_TCP": f"tcp://{ip['cart']}:8080", "CART_PORT_8080_TCP_PROTO": "tcp",
        "CART_PORT_8080_TCP_PORT": "8080", "CART_PORT_8080_TCP_ADDR": ip["cart"]}
    assert "ELSEWHERE_SERVICE_HOST" in service_links(plan.services, "default")


def test_enable_service_links_false_leaves_them_out(tmp_path):
    _, plan = lab_plan(tmp_path)
    pod = plan.pod("shop/quiet")
    env = process_environment(plan, pod, pod.containers[0], "quiet")
    assert not any(k.startswith("CART") for k in env) and env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["A"] == "$(CART_SERVICE_HOST)"  # not defined for this container: kept as written


def test_a_changed_env_makes_the_pod_anew_and_a_new_service_does_not(tmp_path):
    model, plan = lab_plan(tmp_path)
    changed = textwrap.dedent(MANIFESTS).replace("value: world", "value: moon")
    (tmp_path / "lab.yaml").write_text(changed)
    again = make_plan(load_model([str(tmp_path / "lab.yaml")]), "lab", plan)
    assert again.pod("shop/app").uid != plan.pod("shop/app").uid
    assert again.pod("shop/quiet").uid == plan.pod("shop/quiet").uid
    (tmp_path / "lab.yaml").write_text(textwrap.dedent(MANIFESTS) + "---\n" + textwrap.dedent("""
        apiVersion: v1
        kind: Service
        metadata: {name: more, namespace: shop}
        spec: {selector: {app: shop}, ports: [{port: 81}]}
        """))
    more = make_plan(load_model([str(tmp_path / "lab.yaml")]), "lab", plan)
    # running containers keep their environment; the emulated nginx now also serves the new
    # Service's target port, 81, which no container of the pod declares
    before, after = plan.pod("shop/app"), more.pod("shop/app")
    assert after.uid == before.uid and after.containers[0] == before.containers[0]
    assert (before.containers[1].run.ports, after.containers[1].run.ports) == ((80, 8080), (80, 8080, 81))


def test_bad_env_is_reported_with_its_place(problems):  # noqa: F811
    assert problems("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
          - name: c
            env:
            - {name: "A=B", value: x}
            - {name: B, value: x, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
            - {name: C, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['x']"}}}
            - {value: x}
          enableServiceLinks: "no"
    """) == [
        "web.yaml:8: spec.containers[0].env[0].name: 'A=B' is not a valid environment variable name (printable "
        "ASCII characters other than '=' and space, e.g. 'MY_VAR')",
        "web.yaml:9: spec.containers[0].env[1].valueFrom: may not be given together with value",
        "web.yaml:10: spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: unsupported fieldPath "
        "\"metadata.annotations['x']\": expected one of metadata.name, metadata.namespace, metadata.uid, "
        "spec.nodeName, spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs or "
        "metadata.labels['KEY']",
        "web.yaml:11: spec.containers[0].env[3].name: required field is missing",
        "web.yaml:12: spec.enableServiceLinks: expected true or false, got 'no'",
    ]


def test_exec_into_an_emulated_container_sees_its_own_variables_too():
    """kubectl exec into nginx shows the container's env and fieldRefs, whatever the lab runs."""
    model = load_model(["-"], io.StringIO(textwrap.dedent("""
        apiVersion: v1
        kind: Pod
        metadata: {name: web, namespace: shop}
        spec:
          enableServiceLinks: false
          containers:
          - name: nginx
            image: nginx
            env:
            - {name: GREETING, value: "hi $(MY_NODE)"}
            - {name: MY_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
            - {name: AGAIN, value: "$(MY_NODE)!"}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: cart, namespace: shop}
        spec: {selector: {app: cart}, ports: [{port: 80}]}
        """).lstrip()))
    plan = make_plan(model, "lab")
    pod = plan.pod("shop/web")
    env = process_environment(plan, pod, pod.containers[0], "web", base={})
    assert isinstance(pod.containers[0].run, RunHttp)
    assert env["GREETING"] == "hi $(MY_NODE)" and env["AGAIN"] == f"{pod.node}!" and env["MY_NODE"] == pod.node
    assert "CART_SERVICE_HOST" not in env and "KUBERNETES_SERVICE_HOST" in env  # enableServiceLinks: false


def test_a_pod_gets_the_variables_of_the_services_made_before_it(tmp_path):
    """kubelet sets the service variables of the Services that exist when the container starts:
    a pod made before a Service lacks its variables (the "Connecting Applications with Services"
    page: `printenv | grep SERVICE` shows only KUBERNETES_*), one made after it has them; the
    master `kubernetes` Service is always there."""
    path = tmp_path / "lab.yaml"
    path.write_text(textwrap.dedent(MANIFESTS))
    first = make_plan(load_model([str(path)]), "lab", now=100.0)
    path.write_text(textwrap.dedent(MANIFESTS).replace("value: world", "value: moon") + "---\n" + textwrap.dedent("""
        apiVersion: v1
        kind: Service
        metadata: {name: more, namespace: shop}
        spec: {selector: {app: shop}, ports: [{port: 81}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: late, namespace: shop}
        spec: {containers: [{name: main, image: busybox, command: [sleep, "3600"]}]}
        """))
    plan = make_plan(load_model([str(path)]), "lab", first, now=200.0)
    created = plan.allocations.created
    assert (created["Service/shop/cart"], created["Service/shop/more"]) == (100.0, 200.0)
    assert (created["Pod/shop/quiet"], created["Pod/shop/app"], created["Pod/shop/late"]) == (100.0, 200.0, 200.0)

    def variables(name):
        pod = plan.pod(f"shop/{name}")
        return {k for k in process_environment(plan, pod, pod.containers[0], name) if k.endswith("_SERVICE_HOST")}

    # quiet was made at 100, before `more`; app was made anew (its env changed) at 200; late is new
    assert variables("late") == variables("app") == {"KUBERNETES_SERVICE_HOST", "CART_SERVICE_HOST",
                                                     "CART_API_SERVICE_HOST", "MORE_SERVICE_HOST"}
    unlinked = textwrap.dedent(MANIFESTS).replace("  enableServiceLinks: false\n", "")
    path.write_text(unlinked)
    early = make_plan(load_model([str(path)]), "lab", now=100.0)
    path.write_text(unlinked + "---\n" + textwrap.dedent("""
        apiVersion: v1
        kind: Service
        metadata: {name: more, namespace: shop}
        spec: {selector: {app: shop}, ports: [{port: 81}]}
        """))
    plan = make_plan(load_model([str(path)]), "lab", early, now=200.0)
    assert variables("quiet") == {"KUBERNETES_SERVICE_HOST", "CART_SERVICE_HOST", "CART_API_SERVICE_HOST"}
    # without a clock (no creation times) every Service counts, as before
    bare = make_plan(load_model([str(path)]), "lab", early)
    pod = bare.pod("shop/quiet")
    assert "MORE_SERVICE_HOST" in process_environment(bare, pod, pod.containers[0], "quiet")
