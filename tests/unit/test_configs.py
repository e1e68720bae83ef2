"""ConfigMaps, Secrets and pod volumes: the API server's checks, the model, and what kubelet
makes of them (variables, volume files, CreateContainerConfigError), as plan.configs plans them."""
from __future__ import annotations

import base64
import io
import json
import textwrap

import pytest

from kubenet_lab import output
from kubenet_lab.manifests import generate, load_model
from kubenet_lab.model.objects import KeyRef, VolumeFile
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.configs import format_map, go_quote
from kubenet_lab.plan.containers import process_environment
from kubenet_lab.plan.events import plan_events
from tests.unit.test_manifests_validation import problems  # noqa: F401 - the fixture


def model_of(text: str):
    return load_model(["-"], io.StringIO(textwrap.dedent(text).lstrip("\n")))


def plan_of(text: str, previous=None):
    return make_plan(model_of(text), "lab", previous)


CONFIGS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, labels: {app: web}}
data:
  MODE: blue
  LEVEL: "$(MODE)-debug"
  1bad: skipped
  nginx.conf: |
    server { listen 80; }
binaryData:
  logo.png: iVBORw0KGgo=
---
apiVersion: v1
kind: Secret
metadata: {name: db}
data:
  password: czNjcjN0
stringData:
  username: admin
"""

POD = """
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web, tier: "front"}, annotations: {note: 'say "hi"', multi: "a\\nb"}}
spec:
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    envFrom:
    - configMapRef: {name: web-config}
    - secretRef: {name: db}
      prefix: DB_
    env:
    - {name: MODE, value: green}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
    - {name: LEVEL_AGAIN, valueFrom: {configMapKeyRef: {name: web-config, key: LEVEL}}}
    - {name: MAYBE, valueFrom: {configMapKeyRef: {name: absent, key: x, optional: true}}}
    volumeMounts:
    - {name: conf, mountPath: /etc/nginx/conf.d, readOnly: true}
    - {name: creds, mountPath: /etc/creds}
    - {name: info, mountPath: /etc/podinfo}
    - {name: scratch, mountPath: /cache, subPath: web}
  volumes:
  - name: conf
    configMap:
      name: web-config
      items: [{key: nginx.conf, path: default.conf}, {key: logo.png, path: img/logo.png, mode: 0600}]
  - name: creds
    secret: {secretName: db, defaultMode: 0400}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: tier, fieldRef: {fieldPath: "metadata.labels['tier']"}}
  - name: scratch
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
"""


# ------------------------------------------------------------------------------ the API server's checks

def test_config_keys_values_and_base64_are_checked(problems):  # noqa: F811
    assert problems("""
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: c}
        data:
          ok.key: x
          bad/key: x
          port: 8080
        binaryData:
          ok.key: eA==
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: s}
        type: kubernetes.io/tls
        data:
          tls.crt: "not base64"
    """) == [
        "web.yaml:6: data[bad/key]: Invalid value: \"bad/key\": a valid config key must consist of alphanumeric "
        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
        "is '[-._a-zA-Z0-9]+')",
        'web.yaml:7: data[port]: expected a string, got 8080 (quote it: "8080")',
        "web.yaml:16: data[tls.crt]: Invalid value: \"not base64\": illegal base64 data at input byte 3 (a Secret's "
        "data is base64: put plain text under stringData)",
    ]
    assert problems("""
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: c}
        data: {k: x}
        binaryData: {k: eA==}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: s}
        type: kubernetes.io/tls
        stringData: {tls.crt: x}
    """) == ['web.yaml:5: data[k]: Invalid value: "k": duplicate of key present in binaryData',
             "web.yaml:7: data[tls.key]: Required value"]


@pytest.mark.parametrize("text, expected", [
    ("...", "illegal base64 data at input byte 0"),
    ("YWJj\nZGVm", None),
    ("YWI=", None),
    ("YWJjZA", "illegal base64 data at input byte 4"),
    ("YW=j", "illegal base64 data at input byte 2"),
])
def test_base64_as_go_decodes_it(text, expected):
    from kubenet_lab.manifests.configs import base64_error

    assert base64_error(text) == expected


def test_volumes_and_mounts_are_checked_as_the_api_server_does(problems):  # noqa: F811
    assert problems("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
          - name: c
            volumeMounts:
            - {name: data, mountPath: /data}
            - {name: datta, mountPath: /other}
            - {name: data, mountPath: /data, subPath: logs}
          initContainers:
          - name: i
            volumeMounts: [{name: nope, mountPath: /x}]
          volumes:
          - {name: data, emptyDir: {}}
          - {name: data, configMap: {name: c}}
    """) == ['web.yaml:9: spec.containers[0].volumeMounts[1].name: Not found: "datta"',
             'web.yaml:10: spec.containers[0].volumeMounts[2].mountPath: Invalid value: "/data": must be unique',
             'web.yaml:13: spec.initContainers[0].volumeMounts[0].name: Not found: "nope"',
             'web.yaml:16: spec.volumes[1].name: Duplicate value: "data"']
    assert problems("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
          - name: c
            volumeMounts: [{name: a, mountPath: /a, subPath: /abs}, {name: a, mountPath: /b, subPath: x/../..}]
            envFrom: [{prefix: P_}]
            env: [{name: A, valueFrom: {}}]
          volumes:
          - {name: a}
          - {name: b, emptyDir: {}, secret: {secretName: s}}
          - {name: c, configMap: {name: x, items: [{key: k, path: ../k}], defaultMode: 777}}
          - {name: d, downwardAPI: {items: [{path: n, fieldRef: {fieldPath: spec.nodeName}}]}}
    """) == [
        'web.yaml:7: spec.containers[0].volumeMounts[0].subPath: Invalid value: "/abs": must be a relative path',
        "web.yaml:7: spec.containers[0].volumeMounts[1].subPath: Invalid value: \"x/../..\": must not contain '..'",
        'web.yaml:8: spec.containers[0].envFrom[0]: Invalid value: "": must specify one of: `configMapRef` or '
        '`secretRef`',
        'web.yaml:9: spec.containers[0].env[0].valueFrom: Invalid value: "": must specify one of: `fieldRef`, '
        '`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`',
        "web.yaml:11: spec.volumes[0]: Required value: must specify a volume type",
        "web.yaml:12: spec.volumes[1].secret: Forbidden: may not specify more than 1 volume type",
        "web.yaml:13: spec.volumes[2].configMap.items[0].path: Invalid value: \"../k\": must not contain '..'",
        "web.yaml:13: spec.volumes[2].configMap.defaultMode: Invalid value: 777: must be a number between 0 and "
        "0777 (octal), both inclusive",
        'web.yaml:14: spec.volumes[3].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: \'spec.nodeName\': '
        'supported values: "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", '
        '"metadata.uid"',
    ]


HOST_PATH_POD = """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, volumeMounts: [{name: h, mountPath: /host}]}]
  volumes: [{name: h, hostPath: {path: /srv/data, type: Directory}}]
"""


def test_host_path_is_refused_unless_the_cluster_allows_it(problems):  # noqa: F811
    assert problems(HOST_PATH_POD) == [
        "web.yaml:6: spec.volumes[0].hostPath: '/srv/data': a hostPath volume would give the pod this machine's own "
        "files; kubenet-lab refuses it unless the Cluster config (apiVersion: kubenet-lab.dev/v1alpha1, kind: "
        "Cluster) says allowHostPath: true (or use an emptyDir)"]
    allowed = "apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\nallowHostPath: true\n---\n" + HOST_PATH_POD
    pod = make_plan(model_of(allowed), "lab").pod("default/p")
    assert [(v.kind, v.host_path) for v in pod.volumes] == [("hostPath", "/srv/data")]


def test_other_volume_types_are_empty_directories_with_a_warning():
    model = model_of("""
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: db}
        spec:
          selector: {matchLabels: {app: db}}
          serviceName: db
          template:
            metadata: {labels: {app: db}}
            spec:
              containers: [{name: c, volumeMounts: [{name: data, mountPath: /var/lib/db},
                                                    {name: claim, mountPath: /claim}]}]
              volumes: [{name: claim, persistentVolumeClaim: {claimName: shared}}]
          volumeClaimTemplates:
          - metadata: {name: data}
            spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
    """)
    assert model.warnings == (
        "<stdin>:12: spec.template.spec.volumes[0].persistentVolumeClaim: not modelled: kubenet-lab has no "
        "persistentVolumeClaim volumes; the pod gets an empty directory (as an emptyDir) instead, without its "
        "claim's data, gone with the pod",
        "<stdin>:14: spec.volumeClaimTemplates[0]: not modelled: kubenet-lab has no PersistentVolumes; each pod gets "
        "an empty directory (as an emptyDir) for this claim instead, gone with the pod")
    pod = make_plan(model, "lab").pod("default/db-0")
    assert [(v.name, v.kind) for v in pod.volumes] == [("claim", "emptyDir"), ("data", "emptyDir")]


# ------------------------------------------------------------------------------ the model

def test_config_maps_and_secrets_are_stored_as_the_api_server_stores_them():
    cm, secret = model_of(CONFIGS).config_maps
    assert (cm.kind, cm.name, cm.type, dict(cm.labels)) == ("ConfigMap", "web-config", "", {"app": "web"})
    assert cm.data["nginx.conf"] == "server { listen 80; }\n" and cm.binary_data == {"logo.png": "iVBORw0KGgo="}
    assert (secret.kind, secret.type) == ("Secret", "Opaque")  # the default type
    assert secret.data == {"password": "czNjcjN0", "username": base64.b64encode(b"admin").decode()}


def test_env_references_and_volumes_are_modelled():
    pod, = model_of(CONFIGS + POD).pods
    main, = pod.spec.containers
    assert [(e.kind, e.name, e.prefix) for e in main.env_from] == [("ConfigMap", "web-config", ""), ("Secret", "db",
                                                                                                    "DB_")]
    assert [v.key_ref for v in main.env] == [None, KeyRef("Secret", "db", "password"),
                                             KeyRef("ConfigMap", "web-config", "LEVEL"),
                                             KeyRef("ConfigMap", "absent", "x", optional=True)]
    assert [(v.name, v.kind, v.source) for v in pod.spec.volumes] == [
        ("conf", "configMap", "web-config"), ("creds", "secret", "db"), ("info", "downwardAPI", ""),
        ("scratch", "emptyDir", "")]
    assert pod.annotations == {"note": 'say "hi"', "multi": "a\nb"}


# ------------------------------------------------------------------------------ what kubelet makes of them

def test_variables_are_envfrom_then_env_and_configmap_values_are_not_expanded():
    plan = plan_of(CONFIGS + POD)
    pod = plan.pod("default/web")
    main, = pod.containers
    assert main.config_error is None
    assert [name for name, _ in main.env] == [
        "LEVEL", "MODE", "nginx.conf", "DB_password", "DB_username", "MODE", "PASSWORD", "LEVEL_AGAIN"]
    env = process_environment(plan, pod, main, "web")
    assert env["MODE"] == "green"  # env after envFrom wins
    assert env["LEVEL"] == env["LEVEL_AGAIN"] == "$(MODE)-debug"  # kubelet expands only env values
    assert (env["DB_password"], env["PASSWORD"], env["DB_username"]) == ("s3cr3t", "s3cr3t", "admin")
    assert "1bad" not in env and "MAYBE" not in env
    assert main.env_skipped == ("Keys [1bad] from the EnvFrom configMap default/web-config were skipped since they "
                                "are considered invalid environment variable names.",)
    assert ("Pod", "web", "InvalidEnvironmentVariableNames", "Warning", "kubelet") in {
        (e.kind, e.name, e.reason, e.type, e.source) for e in plan_events(None, plan)}


@pytest.mark.parametrize("env, error", [
    ("envFrom: [{configMapRef: {name: nope}}]", 'configmap "nope" not found'),
    ("envFrom: [{secretRef: {name: nope}}]", 'secret "nope" not found'),
    ("env: [{name: A, valueFrom: {configMapKeyRef: {name: web-config, key: NOPE}}}]",
     "couldn't find key NOPE in ConfigMap default/web-config"),
    ("env: [{name: A, valueFrom: {secretKeyRef: {name: db, key: NOPE}}}]",
     "couldn't find key NOPE in Secret default/db"),
    ("env: [{name: A, valueFrom: {secretKeyRef: {name: nope, key: k}}}]", 'secret "nope" not found'),
    ("env: [{name: A, valueFrom: {configMapKeyRef: {name: web-config, key: logo.png}}}]",  # not binaryData
     "couldn't find key logo.png in ConfigMap default/web-config"),
    ("envFrom: [{configMapRef: {name: nope, optional: true}}]", None),
    ("env: [{name: A, valueFrom: {secretKeyRef: {name: db, key: NOPE, optional: true}}}]", None),
])
def test_a_missing_object_or_key_is_kubelets_create_container_config_error(env, error):
    plan = plan_of(CONFIGS + f"""
---
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "1"]
    {env}
""")
    c, = plan.pod("default/p").containers
    assert c.config_error == error
    if error:
        assert c.env == ()


def test_volume_files_are_what_kubelet_writes():
    pod = plan_of(CONFIGS + POD).pod("default/web")
    conf, creds, info, scratch = pod.volumes
    assert conf.files == (VolumeFile("default.conf", "server { listen 80; }\n"),
                          VolumeFile("img/logo.png", "iVBORw0KGgo=", 0o600, binary=True))
    assert creds.files == (VolumeFile("password", "s3cr3t", 0o400), VolumeFile("username", "admin", 0o400))
    assert info.files == (VolumeFile("annotations", 'multi="a\\nb"\nnote="say \\"hi\\""'),
                          VolumeFile("labels", 'app="web"\ntier="front"'), VolumeFile("name", "web"),
                          VolumeFile("tier", "front"))
    assert (scratch.kind, scratch.medium, scratch.files) == ("emptyDir", "Memory", ())
    assert all(v.error is None for v in pod.volumes)
    main, = pod.containers
    assert [(m.volume, m.path, m.read_only, m.sub_path) for m in main.mounts] == [
        ("conf", "/etc/nginx/conf.d", True, ""), ("creds", "/etc/creds", False, ""),
        ("info", "/etc/podinfo", False, ""), ("scratch", "/cache", False, "web")]


def test_every_key_without_items_and_kubelets_errors():
    plan = plan_of(CONFIGS + """
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c}]
  volumes:
  - {name: all, configMap: {name: web-config}}
  - {name: gone, configMap: {name: nope}}
  - {name: maybe, secret: {secretName: nope, optional: true}}
  - {name: nokey, secret: {secretName: db, items: [{key: NOPE, path: x}]}}
  - {name: nokey-ok, configMap: {name: web-config, optional: true, items: [{key: NOPE, path: x}]}}
""")
    every, gone, maybe, nokey, nokey_ok = plan.pod("default/p").volumes
    assert [f.path for f in every.files] == ["1bad", "LEVEL", "MODE", "logo.png", "nginx.conf"]
    assert all(f.mode == 0o644 for f in every.files)
    assert gone.error == 'configmap "nope" not found'
    assert (maybe.error, maybe.files) == (None, ())
    assert nokey.error == "secret references non-existent secret key: NOPE"
    assert (nokey_ok.error, nokey_ok.files) == (None, ())


def test_go_quoting_of_downward_api_values():
    assert go_quote('a"b\\c\n\t\x01é\u200b') == '"a\\"b\\\\c\\n\\t\\x01é\\u200b"'
    assert format_map({"b": "2", "a": "1"}) == 'a="1"\nb="2"'
    assert format_map({}) == ""


# ------------------------------------------------------------------------------ a running lab

def test_a_configmap_change_refreshes_volumes_but_neither_restarts_pods_nor_changes_their_env():
    before = plan_of(CONFIGS + POD)
    changed = CONFIGS.replace("MODE: blue", "MODE: red").replace("server { listen 80; }", "server { listen 81; }")
    after = plan_of(changed + POD, before)
    old, new = before.pod("default/web"), after.pod("default/web")
    assert (new.name, new.uid) == (old.name, old.uid)  # the same pod, not made anew
    assert new.containers[0].env == old.containers[0].env  # fixed when the container started
    assert new.volumes[0].files[0].text == "server { listen 81; }\n"  # kubelet refreshes mounted ConfigMaps
    assert [c.data["MODE"] for c in after.config_maps if c.name == "web-config"] == ["red"]
    # a Deployment's pods keep their names too (the template hash does not cover ConfigMaps)
    deploy = CONFIGS + """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: nginx, envFrom: [{configMapRef: {name: web-config}}]}]
"""
    first = plan_of(deploy)
    second = plan_of(deploy.replace("MODE: blue", "MODE: red"), first)
    assert [(p.name, p.uid, p.containers[0].env) for p in first.pods if p.owner] == \
        [(p.name, p.uid, p.containers[0].env) for p in second.pods if p.owner]


def test_a_waiting_container_starts_with_the_configmap_once_it_exists_and_a_deleted_one_keeps_its_files():
    pod_only = POD.replace("---\n", "", 1)
    waiting = plan_of(pod_only)
    main, = waiting.pod("default/web").containers
    assert main.config_error == 'configmap "web-config" not found'
    assert waiting.pod("default/web").volumes[0].error == 'configmap "web-config" not found'
    started = plan_of(CONFIGS + POD, waiting)
    main, = started.pod("default/web").containers
    assert main.config_error is None and dict(main.env)["MODE"] == "green"
    gone = plan_of(pod_only, started)
    assert gone.pod("default/web").containers[0].env == main.env  # started: its variables stay
    assert gone.pod("default/web").volumes[0] == started.pod("default/web").volumes[0]  # kubelet keeps the files


# ------------------------------------------------------------------------------ kubectl's output

def test_get_shows_kubectls_columns_and_objects():
    plan = plan_of(CONFIGS)
    cm = [c for c in plan.config_maps if c.kind == "ConfigMap"]
    secrets = [c for c in plan.config_maps if c.kind == "Secret"]
    headers, rows = output.config_map_rows(plan, cm, all_ns=False)
    assert headers == ["NAME", "DATA", "AGE"] and rows[0][:2] == ["web-config", "5"]
    headers, rows = output.config_map_rows(plan, secrets, all_ns=True)
    assert headers == ["NAMESPACE", "NAME", "TYPE", "DATA", "AGE"] and rows[0][:4] == ["default", "db", "Opaque", "2"]
    obj = output.config_map_object(plan, secrets[0])
    assert (obj["kind"], obj["type"], obj["data"]) == ("Secret", "Opaque", {"password": "czNjcjN0",
                                                                            "username": "YWRtaW4="})
    obj = output.config_map_object(plan, cm[0])
    assert (obj["apiVersion"], obj["metadata"]["labels"], list(obj["data"]), obj["binaryData"]) == (
        "v1", {"app": "web"}, ["1bad", "LEVEL", "MODE", "nginx.conf"], {"logo.png": "iVBORw0KGgo="})


def test_create_configmap_and_secret_generic_make_what_kubectl_makes():
    assert generate.config_map("web", ["A=1", "B=x=y"], [("page.html", b"<h1>hi</h1>"), ("raw", b"\xff")]) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"},
        "data": {"A": "1", "B": "x=y", "page.html": "<h1>hi</h1>"}, "binaryData": {"raw": "/w=="}}
    assert generate.secret("db", ["password=s3cr3t"], type_="kubernetes.io/basic-auth", namespace="shop") == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
        "data": {"password": "czNjcjN0"}, "type": "kubernetes.io/basic-auth"}
    for literals, message in ((["A=1", "A=2"], 'cannot add key "A", another key by that name already exists in Data '
                                               'for ConfigMap "web"'),
                              (["A"], "invalid literal source A, expected key=value"),
                              (["a b=1"], '"a b" is not a valid key name for a ConfigMap: a valid config key must '
                                          "consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
                                          "or 'KEY_NAME',  or 'key-name', regex used for validation is "
                                          "'[-._a-zA-Z0-9]+')")):
        with pytest.raises(generate.GenerateError) as err:
            generate.config_map("web", literals)
        assert str(err.value) == message
    assert generate.printed(generate.config_map("web", ["A=1"])) == {
        "apiVersion": "v1", "data": {"A": "1"}, "kind": "ConfigMap", "metadata": {"creationTimestamp": None,
                                                                                 "name": "web"}}


def test_describe_names_where_variables_and_mounts_come_from_and_never_shows_a_secret():
    from kubenet_lab.app.describe import volume_spec
    from kubenet_lab.inspect.describe import describe_pod

    pod = plan_of(CONFIGS + POD).pod("default/web")
    obj = {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "main", "image": "busybox"}],
                                                 "volumes": [volume_spec(v) for v in pod.volumes]}}
    out = describe_pod(obj, {"main": pod.containers[0]}, [])
    assert """
    Environment Variables from:
      web-config  ConfigMap                 Optional: false
      db          Secret with prefix 'DB_'  Optional: false
    Environment:
      MODE:         green
      PASSWORD:     <set to the key 'password' in secret 'db'>           Optional: false
      LEVEL_AGAIN:  <set to the key 'LEVEL' of config map 'web-config'>  Optional: false
    Mounts:
      /cache from scratch (rw,path="web")
      /etc/creds from creds (rw)
      /etc/nginx/conf.d from conf (ro)
      /etc/podinfo from info (rw)
Volumes:
  conf:
    Type:      ConfigMap (a volume populated by a ConfigMap)
    Name:      web-config
    Optional:  false
  creds:
    Type:        Secret (a volume populated by a Secret)
    SecretName:  db
    Optional:    false
  info:
    Type:  DownwardAPI (a volume populated by information about the pod)
  scratch:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      Memory
    SizeLimit:   <unset>
""" in out
    assert "s3cr3t" not in out


def test_up_says_which_pods_wait_for_a_configmap_or_secret_once():
    from kubenet_lab.plan.configs import waiting_warnings

    pod_only = POD.replace("---\n", "", 1)
    waiting = plan_of(pod_only)
    assert waiting_warnings(waiting, None) == (
        'pod default/web is ContainerCreating: MountVolume.SetUp failed for volume "conf" : configmap "web-config" '
        "not found (kubelet retries until it exists)",
        'pod default/web is ContainerCreating: MountVolume.SetUp failed for volume "creds" : secret "db" not found '
        "(kubelet retries until it exists)",
        'pod default/web, container main is waiting (CreateContainerConfigError): configmap "web-config" not found '
        "(kubelet retries until it exists)")
    assert waiting_warnings(plan_of(pod_only, waiting), waiting) == ()
    assert waiting_warnings(plan_of(CONFIGS + POD, waiting), waiting) == ()


def test_ingress_nginxs_certgen_job_makes_the_secret_its_controller_mounts():
    """kube-webhook-certgen `create` makes its Secret through the API on a cluster: here the plan
    has it (empty keys), so the controller that mounts it starts, as it does there."""
    from pathlib import Path

    corpus = Path(__file__).resolve().parent.parent / "corpus" / "apps" / "ingress-nginx-kind-deploy.yaml"
    plan = make_plan(load_model([str(corpus)]), "lab")
    secret, = [c for c in plan.config_maps if c.kind == "Secret"]
    assert (secret.namespace, secret.name, dict(secret.data)) == ("ingress-nginx", "ingress-nginx-admission",
                                                                  {"ca": "", "cert": "", "key": ""})
    controller, = [p for p in plan.pods if p.name.startswith("ingress-nginx-controller-")]
    cert, = controller.volumes
    assert cert.error is None and [f.path for f in cert.files] == ["ca", "cert", "key"]
    # written `/usr/local/certificates/`: the path the runtime mounts at
    assert [(m.volume, m.path, m.read_only) for m in controller.containers[0].mounts] == [
        ("webhook-cert", "/usr/local/certificates", True)]


def test_create_secret_tls_as_kubectl():
    cert, key = b"-----BEGIN CERTIFICATE-----\nMIIB\n", b"-----BEGIN PRIVATE KEY-----\nMIIE\n"
    doc = generate.tls_secret("nginxsecret", cert, key)
    assert (doc["type"], doc["data"]) == ("kubernetes.io/tls", {"tls.crt": base64.b64encode(cert).decode(),
                                                                "tls.key": base64.b64encode(key).decode()})
    assert model_of(json.dumps(doc)).config_maps[0].type == "kubernetes.io/tls"  # a valid Secret of its type
    with pytest.raises(generate.GenerateError) as err:
        generate.tls_secret("x", b"not pem", key)
    assert str(err.value) == "failed to load key pair tls: failed to find any PEM data in certificate input"
