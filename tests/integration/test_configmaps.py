"""ConfigMaps and Secrets on a real lab: `get`, `apply`, `delete` and `create` as kubectl's, and
what a pod's process gets of them (`exec POD -- env` runs in the pod with its planned
environment). Changing a ConfigMap neither restarts the pods that use it nor changes the
variables of their running containers."""
from __future__ import annotations

import json
import os

import pytest

from .conftest import Lab, new_lab_name, torn_down

BASE = """
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, labels: {app: demo}}
data:
  MODE: blue
  LEVEL: "$(MODE)-debug"
  9lives: skipped
---
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData:
  password: s3cr3t
---
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, infinity]
    envFrom:
    - configMapRef: {name: app-config}
      prefix: CFG_
    - secretRef: {name: db}
    env:
    - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
"""


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("cm"))
    with torn_down(lab.name):
        lab("up", "-", input=BASE)
        yield lab


def env_of(lab: Lab, pod: str) -> dict[str, str]:
    lines = lab.exec(pod, "env").stdout.splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def netns_inode(lab: Lab, pod: str) -> int:
    return os.stat(f"/run/netns/{lab.name}.pod.default.{pod}").st_ino


def test_envfrom_and_secret_keys_are_the_pods_variables(lab):
    env = env_of(lab, "app")
    assert (env["CFG_MODE"], env["CFG_LEVEL"]) == ("blue", "$(MODE)-debug")  # not expanded, as kubelet
    assert env["CFG_9lives"] == "skipped"  # with its prefix the key is a variable name
    assert env["password"] == env["DB_PASSWORD"] == "s3cr3t"


def test_get_lists_configmaps_and_secrets_as_kubectl(lab):
    table = lab("get", "configmaps").stdout.splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    assert table[1].split()[:2] == ["app-config", "3"]
    assert lab("get", "cm", "-o", "name").stdout == "configmap/app-config\n"
    table = lab("get", "secrets").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert table[1].split()[:3] == ["db", "Opaque", "1"]
    secret = json.loads(lab("get", "secret", "db", "-o", "json").stdout)
    assert (secret["kind"], secret["type"], secret["data"]) == ("Secret", "Opaque", {"password": "czNjcjN0"})
    assert lab("get", "cm", "app-config", "-o", "jsonpath={.metadata.labels.app}").stdout == "demo"
    missing = lab("get", "cm", "nope", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_apply_changes_a_configmap_without_restarting_its_pods(lab):
    before = netns_inode(lab, "app")
    uid = lab.pods()["app"]["metadata"]["uid"]
    out = lab("apply", "-f", "-", input=BASE.replace("MODE: blue", "MODE: green"))
    assert out.stdout == ("configmap/app-config configured\nsecret/db unchanged\npod/app unchanged\n")
    assert json.loads(lab("get", "cm", "app-config", "-o", "json").stdout)["data"]["MODE"] == "green"
    assert (netns_inode(lab, "app"), lab.pods()["app"]["metadata"]["uid"]) == (before, uid)
    assert env_of(lab, "app")["CFG_MODE"] == "blue"  # fixed when its container started


def test_create_delete_and_delete_f_of_configmaps_and_secrets(lab, tmp_path):
    out = lab("create", "configmap", "extra", "--from-literal=A=1", "--from-literal=B=2")
    assert out.stdout == "configmap/extra created\n"
    out = lab("create", "secret", "generic", "token", "--from-literal=token=abc")
    assert out.stdout == "secret/token created\n"
    again = lab("create", "configmap", "extra", "--from-literal=A=1", check=False)
    assert again.returncode == 1
    assert again.stderr == 'Error from server (AlreadyExists): configmaps "extra" already exists\n'
    assert lab("get", "secret", "token", "-o", "jsonpath={.data.token}").stdout == "YWJj"
    assert lab("delete", "cm", "extra").stdout == 'configmap "extra" deleted\n'
    gone = lab("delete", "configmap", "extra", check=False)
    assert gone.returncode == 1 and gone.stderr == 'Error from server (NotFound): configmaps "extra" not found\n'
    manifest = tmp_path / "token.yaml"
    manifest.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: token}\n")
    assert lab("delete", "-f", str(manifest)).stdout == 'secret "token" deleted\n'
    assert [line.split()[0] for line in lab("get", "secrets").stdout.splitlines()[1:]] == ["db"]


def test_bad_configmaps_are_refused_and_change_nothing(lab):
    bad = lab("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\n"
                                        "data:\n  'a b': x\n", check=False)
    assert bad.returncode == 2
    assert 'data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters' in bad.stderr
    assert "bad" not in lab("get", "cm").stdout
