"""kubectl's imperative verbs on a real lab: create deployment, expose, run, label (in place:
the same network namespace and process, only the endpoints move), set image, run --rm; each
checked with real traffic through the Service's ClusterIP from a client pod."""
from __future__ import annotations

import json
import os

import pytest

from kubenet_lab.app import query
from .conftest import Lab, new_lab_name, torn_down, wait_for

CLIENT = """
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, image: busybox, command: [sleep, infinity]}]
"""
LISTING = "Directory listing for /"  # what python3 -m http.server answers, the emulated nginx never does


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("imp"))
    with torn_down(lab.name):
        lab("up", "-", input=CLIENT)
        yield lab


def endpoint_ips(lab: Lab, service: str) -> set[str]:
    ep = json.loads(lab("get", "ep", service, "-o", "json").stdout)
    return {a["ip"] for s in ep.get("subsets", []) for a in s.get("addresses", [])}


def cluster_ip(lab: Lab, service: str) -> str:
    return lab("get", "svc", service, "-o", "jsonpath={.spec.clusterIP}").stdout


def answers(lab: Lab, url: str, times: int) -> list[str]:
    out = lab.exec("client", "sh", "-c", f"for i in $(seq {times}); do wget -qO- -T 5 {url}; echo; done").stdout
    return [line for line in out.splitlines() if line.strip()]


def container(lab: Lab, pod: str) -> dict:
    return next(iter(query.pod_status(lab.name)[f"default/{pod}"]["containers"].values()))


def netns_inode(lab: Lab, pod: str) -> int:
    return os.stat(f"/run/netns/{lab.name}.pod.default.{pod}").st_ino


def web_pods(lab: Lab) -> dict[str, dict]:
    return {n: p for n, p in lab.pods().items() if p["metadata"]["labels"].get("app") == "web"}


def test_create_deployment_and_expose_serve_through_the_cluster_ip(lab):
    out = lab("create", "deployment", "web", "--image=nginx:1.27", "--replicas=2", "--port=80")
    assert out.stdout == "deployment.apps/web created\n"
    assert lab("expose", "deployment", "web", "--port=80").stdout == "service/web exposed\n"
    pods = web_pods(lab)
    assert len(pods) == 2 and all(p["spec"]["containers"][0]["name"] == "nginx" for p in pods.values())
    assert endpoint_ips(lab, "web") == {p["status"]["podIP"] for p in pods.values()}
    svc = json.loads(lab("get", "svc", "web", "-o", "json").stdout)
    assert svc["spec"]["selector"] == {"app": "web"}
    assert [(p["port"], p["targetPort"], p["protocol"]) for p in svc["spec"]["ports"]] == [(80, 80, "TCP")]
    got = set(answers(lab, f"http://{cluster_ip(lab, 'web')}/", 12))
    assert got and got <= set(pods)
    again = lab("expose", "deployment", "web", "--port=80", check=False)
    assert again.returncode == 1
    assert again.stderr == 'Error from server (AlreadyExists): services "web" already exists\n'


def test_run_makes_a_bare_pod_that_joins_the_service_by_its_labels(lab):
    out = lab("run", "py", "--image=python", "--labels=app=web", "--port=80", "--",
              "python3", "-m", "http.server", "80")
    assert out.stdout == "pod/py created\n"
    pod = lab.pods()["py"]
    assert pod["metadata"]["labels"] == {"app": "web"} and "ownerReferences" not in pod["metadata"]
    assert pod["spec"]["containers"][0]["name"] == "py"
    wait_for(lambda: lab.ip("py") in endpoint_ips(lab, "web"), "py among web's endpoints")
    url = f"http://{cluster_ip(lab, 'web')}/"
    wait_for(lambda: any(LISTING in a for a in answers(lab, url, 6)), "py answering through the Service")
    again = lab("run", "py", "--image=nginx", check=False)
    assert (again.returncode, again.stderr) == (1, 'Error from server (AlreadyExists): pods "py" already exists\n')


def test_label_changes_a_running_pod_in_place(lab):
    ip, inode, proc = lab.ip("py"), netns_inode(lab, "py"), container(lab, "py")
    assert proc["state"] == "running" and proc["pid"]
    with open(f"/proc/{proc['pid']}/stat") as f:
        started = f.read().split()[21]
    refused = lab("label", "pod", "py", "app=other", check=False)
    assert refused.returncode == 1
    assert refused.stderr == "error: 'app' already has a value (web), and --overwrite is false\n"
    assert lab.pods()["py"]["metadata"]["labels"] == {"app": "web"}

    assert lab("label", "pod", "py", "app=other", "--overwrite").stdout == "pod/py labeled\n"
    assert lab.pods()["py"]["metadata"]["labels"] == {"app": "other"}
    assert ip not in endpoint_ips(lab, "web") and len(endpoint_ips(lab, "web")) == 2
    got = answers(lab, f"http://{cluster_ip(lab, 'web')}/", 12)
    assert len(got) == 12 and not any(LISTING in a for a in got)
    # the same pod: its network namespace, address and process
    assert (lab.ip("py"), netns_inode(lab, "py")) == (ip, inode)
    now = container(lab, "py")
    assert (now["pid"], now["restarts"], now["startedAt"]) == (proc["pid"], 0, proc["startedAt"])
    with open(f"/proc/{proc['pid']}/stat") as f:
        assert f.read().split()[21] == started
    assert LISTING in lab.exec("client", "wget", "-qO-", "-T", "5", f"http://{ip}/").stdout

    assert lab("label", "pod", "py", "app=web", "--overwrite").stdout == "pod/py labeled\n"
    assert ip in endpoint_ips(lab, "web")
    wait_for(lambda: any(LISTING in a for a in answers(lab, f"http://{cluster_ip(lab, 'web')}/", 6)),
             "py answering through the Service again")
    assert container(lab, "py")["pid"] == proc["pid"] and netns_inode(lab, "py") == inode
    assert lab("label", "pod", "py", "app=web").stdout == "pod/py not labeled\n"


def test_a_deployments_pod_labelled_out_of_its_selector_is_orphaned_and_replaced(lab):
    before = web_pods(lab)
    name = sorted(n for n, p in before.items() if p["metadata"].get("ownerReferences"))[0]
    ip, inode = before[name]["status"]["podIP"], netns_inode(lab, name)
    assert lab("label", "pod", name, "app=debug", "--overwrite").stdout == f"pod/{name} labeled\n"
    pods = lab.pods()
    assert pods[name]["metadata"]["labels"]["app"] == "debug" and "ownerReferences" not in pods[name]["metadata"]
    assert (pods[name]["status"]["podIP"], netns_inode(lab, name)) == (ip, inode)
    owned = [n for n, p in web_pods(lab).items() if p["metadata"].get("ownerReferences")]
    assert len(owned) == 2 and name not in owned
    assert ip not in endpoint_ips(lab, "web")
    lab("delete", "pod", name)


def test_set_image_makes_a_new_replicaset(lab):
    old = {p["metadata"]["labels"]["pod-template-hash"] for p in web_pods(lab).values()
           if "pod-template-hash" in p["metadata"]["labels"]}
    assert lab("set", "image", "deployment/web", "nginx=nginx:1.28").stdout == "deployment.apps/web image updated\n"
    dep = json.loads(lab("get", "deploy", "web", "-o", "json").stdout)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"

    def new_pods():
        return [p for p in web_pods(lab).values()
                if p["metadata"]["labels"].get("pod-template-hash") not in (None, *old)]
    wait_for(lambda: len(new_pods()) == 2, "two pods of the new ReplicaSet")
    assert all(p["spec"]["containers"][0]["image"] == "nginx:1.28" for p in new_pods())
    lab("rollout", "status", "deployment/web", "--timeout", "90s", timeout=120)
    bad = lab("set", "image", "deployment/web", "nope=nginx", check=False)
    # (a rollout step the supervisor runs may hold the lab's lock a moment: `waiting for lab ...` first)
    assert (bad.returncode, bad.stderr.splitlines()[-1]) == (1, 'error: unable to find container named "nope"')


def test_run_rm_runs_to_completion_prints_and_deletes(lab):
    out = lab("run", "-it", "--rm", "test", "--image=busybox", "--restart=Never", "--", "wget", "-qO-", "-T", "5",
              "http://web/")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[-1] == 'pod "test" deleted' and (LISTING in out.stdout or lines[0] in web_pods(lab))
    assert "test" not in lab.pods()
    failed = lab("run", "-i", "--rm", "fails", "--image=busybox", "--restart=Never", "--",
                 "sh", "-c", "echo going; exit 3", check=False)
    assert failed.returncode == 3
    assert failed.stdout == 'going\npod "fails" deleted\n'
    assert failed.stderr == "pod default/fails terminated (Error)\n"
    assert "fails" not in lab.pods()
