"""Pod volumes for real: what a container's processes see at their mount paths (emptyDir shared by
a pod's containers, configMap, secret and downwardAPI files as kubelet writes them, readOnly,
subPath, items and modes), and the tutorials that use them, run as written: "Communicate Between
Containers in the Same Pod Using a Shared Volume" and "Updating Configuration via a ConfigMap"."""
from __future__ import annotations

import json
import os

import pytest

from .conftest import Lab, new_lab_name, torn_down, wait_for

CORPUS = os.path.join(os.path.dirname(__file__), "..", "corpus", "volumes")

PODS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data:
  game.properties: |
    lives=3
  ui.properties: "color=red\\n"
  nginx.conf: "server { listen 80; }\\n"
---
apiVersion: v1
kind: ConfigMap
metadata: {name: live}
data:
  color: red
  shape: round
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData:
  username: admin
  password: s3cr3t
---
apiVersion: v1
kind: Pod
metadata: {name: reader, labels: {app: reader, tier: back}, annotations: {team: blue}}
spec:
  volumes:
  - {name: config, configMap: {name: settings}}
  - {name: live, configMap: {name: live}}
  - {name: some, configMap: {name: settings, items: [{key: ui.properties, path: ui/colors, mode: 0600}]}}
  - {name: secret, secret: {secretName: creds, defaultMode: 0400}}
  - name: podinfo
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
  - {name: scratch, emptyDir: {medium: Memory}}
  containers:
  - name: main
    image: busybox
    command: [sleep, infinity]
    volumeMounts:
    - {name: config, mountPath: /etc/config}
    - {name: live, mountPath: /etc/live}
    - {name: some, mountPath: /etc/some}
    - {name: secret, mountPath: /etc/creds}
    - {name: podinfo, mountPath: /etc/podinfo}
    - {name: config, mountPath: /etc/nginx/conf.d/default.conf, subPath: nginx.conf}
    - {name: scratch, mountPath: /scratch}
    - {name: scratch, mountPath: /readonly, readOnly: true}
    - {name: scratch, mountPath: /sub, subPath: nested/dir}
"""


def replace_configmap(lab: Lab, name: str, literal: str) -> None:
    """kubectl's way to change a ConfigMap from the command line: create --dry-run -o yaml | apply -f -."""
    made = lab("create", "configmap", name, f"--from-literal={literal}", "--dry-run=client", "-o", "yaml").stdout
    lab("apply", "-f", "-", input=made)


def sh(lab: Lab, pod: str, script: str, *args: str):
    return lab("exec", *args, pod, "--", "sh", "-c", script, check=False)


@pytest.fixture(scope="module")
def lab(host_before, tmp_path_factory):
    path = tmp_path_factory.mktemp("volumes") / "pods.yaml"
    path.write_text(PODS)
    lab = Lab(new_lab_name("vol"))
    with torn_down(lab.name):
        lab("up", str(path))
        wait_for(lambda: lab.pods()["reader"]["status"]["phase"] == "Running", "reader running")
        yield lab


def test_configmap_keys_are_files_that_update_in_place(lab):
    out = sh(lab, "reader", "cat /etc/config/game.properties /etc/config/ui.properties; ls -A /etc/config")
    lines = out.stdout.splitlines()
    assert lines[:2] == ["lives=3", "color=red"]
    assert [e for e in lines[2:] if not e.startswith("..2") and not e.startswith("..") or e == "..data"] == [
        "..data", "game.properties", "nginx.conf", "ui.properties"]
    # kubelet's layout: each key a link through ..data
    links = sh(lab, "reader", "readlink /etc/config/ui.properties").stdout.strip()
    assert links == "..data/ui.properties"
    write = sh(lab, "reader", "echo x > /etc/config/ui.properties")
    assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_a_changed_configmap_reaches_the_running_pods_files(lab):
    uid = lab.pods()["reader"]["metadata"]["uid"]
    assert sh(lab, "reader", "cat /etc/live/color").stdout == "red"
    replace_configmap(lab, "live", "color=blue")
    wait_for(lambda: sh(lab, "reader", "cat /etc/live/color").stdout == "blue", "the new value in the file")
    assert sh(lab, "reader", "ls /etc/live/shape").returncode != 0  # a key gone is gone
    assert lab.pods()["reader"]["metadata"]["uid"] == uid
    assert lab.pods()["reader"]["status"]["containerStatuses"][0]["restartCount"] == 0


def test_items_and_modes_and_secret_files(lab):
    assert sh(lab, "reader", "stat -L -c %a /etc/some/ui/colors").stdout.strip() == "600"
    assert sh(lab, "reader", "ls -A /etc/some | grep -v '^\\.\\.'").stdout.split() == ["ui"]
    out = sh(lab, "reader", "cat /etc/creds/username; echo; cat /etc/creds/password; echo; "
                            "stat -L -c %a /etc/creds/password")
    assert out.stdout.split() == ["admin", "s3cr3t", "400"]


def test_downward_api_files_as_kubelet_formats_them(lab):
    assert sh(lab, "reader", "cat /etc/podinfo/labels").stdout == 'app="reader"\ntier="back"'
    assert sh(lab, "reader", "cat /etc/podinfo/name").stdout == "reader"


def test_subpath_read_only_and_empty_dir_mounts(lab):
    assert sh(lab, "reader", "cat /etc/nginx/conf.d/default.conf").stdout == "server { listen 80; }\n"
    assert sh(lab, "reader", "echo kept > /scratch/f && cat /readonly/f").stdout == "kept\n"
    ro = sh(lab, "reader", "echo x > /readonly/g")
    assert ro.returncode != 0 and "Read-only file system" in ro.stderr
    assert sh(lab, "reader", "echo deep > /sub/d && cat /scratch/nested/dir/d").stdout == "deep\n"


def test_the_shared_volume_tutorial_as_written(host_before):
    """'Communicate Between Containers in the Same Pod Using a Shared Volume': the debian
    container writes index.html into the emptyDir and ends; the nginx container serves it."""
    lab = Lab(new_lab_name("two"))
    with torn_down(lab.name):
        lab("up", os.path.join(CORPUS, "two-container-pod.yaml"))
        pod = wait_for(lambda: (p := lab.pods()["two-containers"]) and any(
            c["state"].get("terminated") for c in p["status"]["containerStatuses"]) and p, "debian to finish")
        states = {c["name"]: c["state"] for c in pod["status"]["containerStatuses"]}
        assert states["debian-container"]["terminated"]["reason"] == "Completed"
        assert "running" in states["nginx-container"]
        out = lab("exec", "two-containers", "-c", "nginx-container", "--", "curl", "-s", "localhost")
        assert out.stdout == "Hello from the debian container\n"


def test_updating_configuration_via_a_configmap_as_written(host_before):
    """'Updating Configuration via a ConfigMap': a ConfigMap mounted as a volume, then the two
    containers' page behind a Service, which follows `kubectl apply` of a new ConfigMap."""
    lab = Lab(new_lab_name("cmu"))
    with torn_down(lab.name):
        # (the tutorial creates the ConfigMap first; `create` needs a running lab: here the pods
        # wait for it, ContainerCreating, as on a cluster, and start once it is there)
        lab("apply", "-f", os.path.join(CORPUS, "deployment-with-configmap-as-volume.yaml"))
        lab("create", "configmap", "sport", "--from-literal=sport=football")
        def replicas() -> list[str]:
            return [n for n in lab.pods() if n.startswith("configmap-volume-")]
        pods = wait_for(lambda: len(replicas()) == 3 and replicas(), "three replicas")
        wait_for(lambda: "My preferred sport is football" in lab("logs", pods[0]).stdout, "the sport in the log")

        lab("create", "configmap", "color", "--from-literal=color=red")
        lab("apply", "-f", os.path.join(CORPUS, "deployment-with-configmap-two-containers.yaml"))
        lab("expose", "deployment", "configmap-two-containers", "--name=configmap-service", "--port=8080",
            "--target-port=80")
        ip = json.loads(lab("get", "svc", "configmap-service", "-o", "json").stdout)["spec"]["clusterIP"]

        def page() -> str:
            return lab("exec", "node/node1", "--", "curl", "-s", "-m", "5", f"http://{ip}:8080", check=False).stdout

        wait_for(lambda: "My preferred color is red" in page(), "red", timeout=40)
        replace_configmap(lab, "color", "color=blue")
        wait_for(lambda: "My preferred color is blue" in page(), "blue", timeout=60)


ESCAPE = """
apiVersion: v1
kind: Pod
metadata: {name: escape}
spec:
  volumes: [{name: data, emptyDir: {}}]
  initContainers:
  - name: plant
    image: busybox
    command: [sh, -c, "ln -s /etc /data/escape"]
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "echo pwned > /mnt/escape/kubenet-lab-escape; sleep infinity"]
    volumeMounts: [{name: data, mountPath: /mnt/escape, subPath: escape}]
"""


def test_a_subpath_link_cannot_lead_out_of_its_volume(host_before, tmp_path):
    """The subPath CVE (CVE-2017-1002101): a container makes its subPath a link to /etc; the
    next container mounting it must not get the host's /etc. It does not start, as kubelet
    refuses such a subPath, and /etc is unchanged."""
    (tmp_path / "escape.yaml").write_text(ESCAPE)
    lab = Lab(new_lab_name("esc"))
    with torn_down(lab.name):
        lab("up", str(tmp_path / "escape.yaml"))
        state = wait_for(lambda: (s := lab.pods()["escape"]["status"].get("containerStatuses", [{}])[0]
                                  .get("state", {})).get("waiting", {}).get("reason") in (
            "RunContainerError", "CreateContainerConfigError", "CrashLoopBackOff") and s, "main refused")
        assert "running" not in state
        assert not os.path.exists("/etc/kubenet-lab-escape")


DOCROOT_LINK = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: nginx
    image: nginx
    volumeMounts: [{name: s, mountPath: /usr/share/nginx}]
  - name: side
    image: busybox
    command: ["sh", "-c", "echo mine > /s/index.html; rm -rf /s/html; ln -s / /s/html; sleep 3600"]
    securityContext: {capabilities: {drop: [ALL]}, runAsUser: 1000}
    volumeMounts: [{name: s, mountPath: /s}]
  volumes: [{name: s, emptyDir: {}}]
"""


def test_a_docroot_replaced_by_a_link_serves_the_volume_only(host_before, tmp_path):
    """A sidecar sharing the emptyDir above nginx's docroot makes `html` a link to "/": the
    emulated nginx resolves it inside the volume (as the container would inside its own root),
    so the host's /etc/shadow and any host file are not served; the volume's own file is."""
    (tmp_path / "web.yaml").write_text(DOCROOT_LINK)
    marker = f"/var/lib/kubenet-lab-marker-{os.urandom(4).hex()}"
    with open(marker, "w") as f:
        f.write("host only\n")
    lab = Lab(new_lab_name("doc"))
    try:
        with torn_down(lab.name):
            lab("up", str(tmp_path / "web.yaml"))
            wait_for(lambda: sh(lab, "web", "test -L /s/html && test -f /s/index.html", "-c", "side").returncode == 0,
                     "html a link", timeout=60)

            def get(path: str) -> tuple[str, str]:
                out = lab("exec", "web", "-c", "nginx", "--", "curl", "-s", "-w", "\n%{http_code}",
                          f"http://localhost{path}").stdout
                body, _, code = out.rpartition("\n")
                return code, body

            assert get("/index.html") == ("200", "mine\n")
            for path in ("/etc/shadow", "/etc/passwd", marker, "/../../etc/shadow"):
                code, body = get(path)
                assert code == "404" and "host only" not in body and "root:" not in body, path
    finally:
        os.unlink(marker)


FILE_SUBPATH = """
apiVersion: v1
kind: Pod
metadata: {name: conf}
spec:
  volumes: [{name: data, emptyDir: {}}]
  initContainers:
  - name: write
    image: busybox
    command: [sh, -c, "echo 'level=debug' > /data/app.conf"]
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "cat /etc/app.conf; sleep infinity"]
    volumeMounts: [{name: data, mountPath: /etc/app.conf, subPath: app.conf}]
"""


def test_a_subpath_naming_a_file_an_init_container_wrote(host_before, tmp_path):
    """kubelet mounts an emptyDir's existing regular file by subPath (a config an init
    container wrote): the main container reads it at its mountPath."""
    (tmp_path / "conf.yaml").write_text(FILE_SUBPATH)
    lab = Lab(new_lab_name("sbf"))
    with torn_down(lab.name):
        lab("up", str(tmp_path / "conf.yaml"))
        wait_for(lambda: lab.pods()["conf"]["status"]["phase"] == "Running", "conf running", timeout=60)
        wait_for(lambda: lab("logs", "conf", "-c", "main", check=False).stdout == "level=debug\n", "the file read")
        assert sh(lab, "conf", "cat /etc/app.conf").stdout == "level=debug\n"


HIJACK = """
apiVersion: v1
kind: ConfigMap
metadata: {name: fstab}
data:
  kubenet-lab.fstab: "proc /proc proc rw 0 0\\\\n"
---
apiVersion: v1
kind: Pod
metadata: {name: hijack}
spec:
  volumes:
  - {name: bin, emptyDir: {}}
  - {name: fstab, configMap: {name: fstab}}
  initContainers:
  - name: seed
    image: busybox
    command: [sh, -c, 'cp /usr/bin/bash /usr/bin/tini /usr/bin/env /usr/bin/sleep /usr/bin/cat /usr/bin/ls /bin-vol/;
                       for t in mount setpriv unshare sh dash; do printf "#!/usr/bin/bash\\ntouch /bin-vol/ran-$t\\n" > /bin-vol/$t;
                       chmod +x /bin-vol/$t; done']
    volumeMounts: [{name: bin, mountPath: /bin-vol}]
  containers:
  - name: main
    image: busybox
    command: [sleep, infinity]
    securityContext: {runAsUser: 1000, capabilities: {drop: [ALL]}}
    volumeMounts:
    - {name: bin, mountPath: /usr/bin}
    - {name: fstab, mountPath: /proc}
"""  # noqa: E501 - the manifest's shell command as written


def test_nothing_of_the_containers_root_runs_before_the_privileges_go(host_before, tmp_path):
    """A volume over /usr/bin with its own `mount`, `setpriv`, `unshare` and `sh`, and one over
    /proc with an fstab: none of them is run as root while the container is made (its /proc
    mounted and its privileges dropped by syscalls first), and /proc is its own, /proc/sys
    read-only."""
    (tmp_path / "hijack.yaml").write_text(HIJACK)
    lab = Lab(new_lab_name("hij"))
    with torn_down(lab.name):
        lab("up", str(tmp_path / "hijack.yaml"))
        wait_for(lambda: lab.pods()["hijack"]["status"]["phase"] == "Running", "hijack running")
        listing = lab("exec", "hijack", "--", "/usr/bin/ls", "/usr/bin").stdout.split()
        assert "mount" in listing and not [f for f in listing if f.startswith("ran-")], listing
        status = lab("exec", "hijack", "--", "/usr/bin/cat", "/proc/1/status").stdout
        assert "CapEff:\t0000000000000000" in status and "Uid:\t1000" in status
        mounts = lab("exec", "hijack", "--", "/usr/bin/cat", "/proc/self/mountinfo").stdout
        assert any(" /proc/sys " in l and " ro," in l for l in mounts.splitlines()), mounts


def test_a_device_node_made_in_a_volume_cannot_be_opened(lab):
    """Volumes are nodev (and nosuid), as the container's own writable places are: MKNOD, which
    a container has by default, makes nodes nobody can open."""
    made = sh(lab, "reader", "mknod /scratch/null2 c 1 3 && echo made")
    assert made.stdout.strip() == "made", made.stderr
    out = sh(lab, "reader", "echo hi > /scratch/null2")
    assert out.returncode != 0 and "Permission denied" in out.stderr
