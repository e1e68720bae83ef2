"""A live lab, changed while it runs as kubectl changes a cluster: apply (creating the lab when it
is not up), scale, delete of a controller's pod and of objects, with real packets through the
Services checking that endpoints and every node's rules follow, that the pods a change does not
touch keep their namespaces, and that a client looping through a Service during a scale-down
sees no failed request."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from .conftest import Lab, lab_namespaces, looping_client, new_lab_name, torn_down, wait_for

WEB = textwrap.dedent("""
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 2
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          terminationGracePeriodSeconds: 5
          containers:
          - name: netexec
            image: registry.k8s.io/e2e-test-images/agnhost:2.53
            args: ["netexec", "--http-port=8080"]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      selector: {app: web}
      ports: [{port: 80, targetPort: 8080}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: client}
    spec:
      nodeName: node1
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
    """)


@pytest.fixture(scope="module")
def live(host_before, tmp_path_factory):
    lab = Lab(new_lab_name("live"))
    path = tmp_path_factory.mktemp("live") / "web.yaml"
    path.write_text(WEB)
    with torn_down(lab.name):
        assert not lab_namespaces(lab.name)
        out = lab("apply", "-f", str(path))  # the lab is not up: apply brings it up
        assert out.stdout.splitlines() == ["deployment.apps/web created", "service/web created", "pod/client created"]
        wait_for(lambda: len(web_pods(lab)) == 2 and all_running(lab), "two web pods running")
        yield lab, path


def pods(lab: Lab) -> dict[str, dict]:
    """The default namespace's pods."""
    items = json.loads(lab("get", "pods", "-o", "json").stdout)["items"]
    return {i["metadata"]["name"]: i for i in items}


def web_pods(lab: Lab) -> dict[str, dict]:
    return {n: p for n, p in pods(lab).items() if n.startswith("web-")}


def wait_web(lab: Lab, n: int, gone: str | None = None) -> dict[str, dict]:
    """The web pods once there are `n` of them (and `gone` is not one)."""
    def ready():
        p = web_pods(lab)
        return p if len(p) == n and gone not in p else None
    return wait_for(ready, f"{n} web pods")


def all_running(lab: Lab) -> bool:
    return all(p["status"]["phase"] == "Running" for p in pods(lab).values())


def endpoints(lab: Lab) -> set[str]:
    out = lab("get", "ep", "web", "-o", "jsonpath={.subsets[*].addresses[*].ip}").stdout.split()
    return set(out)


def rule_endpoints(lab: Lab, node: str) -> set[str]:
    """The endpoints node `node`'s kube-proxy rules send web's traffic to: the DNAT targets of
    the KUBE-SEP chains that web's KUBE-SVC chain jumps to."""
    lines = lab.exec(f"node/{node}", "iptables-save", "-t", "nat").stdout.splitlines()
    seps = {l.split("-j ")[1].split()[0] for l in lines
            if l.startswith("-A KUBE-SVC-") and '"default/web' in l and "-j KUBE-SEP-" in l}
    return {l.split("--to-destination ")[1].split(":")[0] for l in lines
            if l.split()[1:2] and l.split()[1] in seps and "--to-destination" in l}


def netns_inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino


def test_apply_again_reports_unchanged_and_a_changed_object_configured(live, tmp_path):
    lab, path = live
    out = lab("apply", "-f", str(path))
    assert out.stdout.splitlines() == ["deployment.apps/web unchanged", "service/web unchanged", "pod/client unchanged"]
    changed = tmp_path / "svc.yaml"
    changed.write_text(WEB.split("---")[1].replace("port: 80,", "port: 8000,"))
    before = {n: netns_inode(f"{lab.name}.pod.default.{n}") for n in pods(lab)}
    assert lab("apply", "-f", str(changed)).stdout.splitlines() == ["service/web configured"]
    assert lab("get", "svc", "web", "-o", "jsonpath={.spec.ports[0].port}").stdout == "8000"
    assert lab.exec("client", "wget", "-qO-", "-T", "5", "http://web:8000/hostname").stdout.startswith("web-")
    assert {n: netns_inode(f"{lab.name}.pod.default.{n}") for n in pods(lab)} == before  # no pod made anew
    lab("apply", "-f", str(path))  # back as it was


def test_scale_up_adds_pods_and_every_node_follows_and_the_others_are_untouched(live):
    lab, _ = live
    before = web_pods(lab)
    inodes = {n: netns_inode(f"{lab.name}.pod.default.{n}") for n in before}
    assert lab("scale", "deployment", "web", "--replicas", "4").stdout == "deployment.apps/web scaled\n"
    now = wait_web(lab, 4)
    assert set(before) < set(now)
    assert {n: netns_inode(f"{lab.name}.pod.default.{n}") for n in before} == inodes
    ips = {p["status"]["podIP"] for p in now.values()}
    assert endpoints(lab) == ips
    for node in ("node1", "node2"):
        assert rule_endpoints(lab, node) == ips
    answers = {lab.exec("client", "wget", "-qO-", "-T", "5", "http://web/hostname").stdout for _ in range(40)}
    assert answers == set(now)  # every pod answers through the Service
    events = lab("get", "events").stdout
    assert "Scaled up replica set web-" in events and "to 4 from 2" in events


def test_a_deleted_pod_is_replaced_under_a_new_name_and_the_service_hides_it(live):
    lab, _ = live
    lab("scale", "deploy/web", "--replicas=2")
    pods = wait_web(lab, 2)
    victim = sorted(pods)[0]
    old_ip = pods[victim]["status"]["podIP"]
    assert lab("delete", "pod", victim).stdout == f'pod "{victim}" deleted\n'
    now = wait_web(lab, 2, gone=victim)
    assert f"{lab.name}.pod.default.{victim}" not in lab_namespaces(lab.name)
    new = (set(now) - set(pods)).pop()
    assert now[new]["status"]["podIP"] != old_ip
    assert old_ip not in endpoints(lab) and now[new]["status"]["podIP"] in endpoints(lab)
    for node in ("node1", "node2"):
        assert old_ip not in rule_endpoints(lab, node)
    events = lab("get", "events", "-o", "jsonpath={range .items[*]}{.reason} {.message}{\"\\n\"}{end}").stdout
    assert f"SuccessfulDelete Deleted pod: {victim}" in events and f"SuccessfulCreate Created pod: {new}" in events


def test_a_missing_name_is_not_found_and_changes_nothing(live):
    lab, _ = live
    before = lab("get", "pods", "-o", "wide").stdout
    out = lab("delete", "pod", "nope", check=False)
    assert out.returncode == 1 and out.stderr == 'Error from server (NotFound): pods "nope" not found\n'
    out = lab("scale", "deployment", "nope", "--replicas", "1", check=False)
    assert out.returncode == 1 and 'deployments.apps "nope" not found' in out.stderr
    assert sorted(pods(lab)) == sorted(l.split()[0] for l in before.splitlines()[1:])


def test_a_client_looping_through_the_service_sees_no_failure_during_a_scale_down(live):
    lab, _ = live
    lab("scale", "deployment", "web", "--replicas", "4")
    wait_for(lambda: len(web_pods(lab)) == 4 and all_running(lab) and len(endpoints(lab)) == 4, "four ready pods")
    with looping_client(lab, "client", "http://web/hostname", 8) as result:
        wait_for(lambda: lab("get", "pods").returncode == 0, "the loop to start", timeout=5)
        lab("scale", "deployment", "web", "--replicas", "1")
    ok, bad, output = result
    assert bad == 0 and ok > 20, output
    assert len(web_pods(lab)) == 1 and len(endpoints(lab)) == 1


def test_delete_by_file_and_by_kind_slash_name_removes_the_objects_and_their_rules(live, tmp_path):
    lab, path = live
    svc = tmp_path / "svc.yaml"
    svc.write_text(WEB.split("---")[1])
    assert lab("delete", "-f", str(svc)).stdout == 'service "web" deleted\n'
    assert "web" not in lab("get", "svc").stdout.split()
    text = lab.exec("node/node1", "iptables-save", "-t", "nat").stdout
    assert "default/web" not in text
    assert lab("delete", "deployment/web").stdout == 'deployment "web" deleted\n'
    wait_for(lambda: not web_pods(lab), "the web pods gone")
    assert not [n for n in lab_namespaces(lab.name) if ".pod.default.web-" in n]
    lab("apply", "-f", str(path))  # the module's lab as it was
    wait_for(lambda: len(web_pods(lab)) == 2, "web back")


def test_apply_of_a_directory_naming_an_object_twice_applies_both_in_order(live, tmp_path):
    """kubectl apply -f DIR applies every file in order: a name given twice ends as the later copy."""
    lab, _ = live
    (tmp_path / "a.yaml").write_text(textwrap.dedent("""
        apiVersion: v1
        kind: Service
        metadata: {name: twice}
        spec: {selector: {app: web}, ports: [{port: 81, targetPort: 8080}]}
        """))
    (tmp_path / "b.yaml").write_text(textwrap.dedent("""
        apiVersion: v1
        kind: Service
        metadata: {name: twice}
        spec: {selector: {app: web}, ports: [{port: 82, targetPort: 8080}]}
        """))
    out = lab("apply", "-f", str(tmp_path))
    assert out.stdout.splitlines() == ["service/twice created", "service/twice configured"]
    assert f"{tmp_path / 'b.yaml'}:2: service/twice is also at {tmp_path / 'a.yaml'}:2" in out.stderr
    assert lab("get", "svc", "twice", "-o", "jsonpath={.spec.ports[*].port}").stdout == "82"
    assert lab.exec("client", "wget", "-qO-", "-T", "5", "http://twice:82/hostname").stdout.startswith("web-")
    lab("delete", "svc", "twice")


def test_a_pod_no_node_takes_is_pending_with_the_schedulers_event(live, tmp_path):
    lab, _ = live
    path = tmp_path / "picky.yaml"
    path.write_text(textwrap.dedent("""
        apiVersion: v1
        kind: Pod
        metadata: {name: picky}
        spec:
          nodeSelector: {disktype: ssd}
          containers: [{name: c, image: nginx}]
        """))
    out = lab("apply", "-f", str(path))
    assert "pod default/picky is Pending (FailedScheduling)" in out.stderr
    assert lab("get", "pod", "picky", "-o", "jsonpath={.status.phase}").stdout == "Pending"
    rows = [l for l in lab("get", "events").stdout.splitlines() if "pod/picky" in l]
    assert rows and rows[-1].split()[1:4] == ["Warning", "FailedScheduling", "pod/picky"]
    assert rows[-1].endswith("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
                             "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    lab("delete", "pod", "picky")


def test_dry_run_prints_what_would_change_and_changes_nothing(live, tmp_path):
    lab, path = live
    state_dir = f"/run/kubenet-lab/{lab.name}"

    def snapshot():
        rules = {n: [re.sub(r"\[\d+:\d+\]", "", l) for l in
                     lab.exec(f"node/{n}", "iptables-save", "-t", "nat").stdout.splitlines() if not l.startswith("#")]
                 for n in ("node1", "node2")}
        plan = open(f"{state_dir}/plan.json").read()
        return lab_namespaces(lab.name), rules, plan, open(f"{state_dir}/objects.json").read()

    before = snapshot()
    changed = tmp_path / "svc.yaml"
    changed.write_text(WEB.split("---")[1].replace("port: 80,", "port: 8001,"))
    out = lab("apply", "-f", str(changed), "--dry-run=client").stdout
    assert out.splitlines()[0] == "service/web configured (dry run)"
    diff = out[out.index("rules:"):]
    assert "--- node1 (loaded)" in diff and "+++ node1 (after)" in diff
    assert any(l.startswith("+") and "--dport 8001" in l for l in diff.splitlines())
    assert any(l.startswith("-") and "--dport 80 " in l for l in diff.splitlines())
    victim = sorted(web_pods(lab))[0]
    out = lab("delete", "pod", victim, "--dry-run").stdout
    assert out.splitlines()[0] == f'pod "{victim}" deleted (dry run)'
    assert f"  - {lab.name}.pod.default.{victim}" in out
    out = lab("scale", "deployment", "web", "--replicas", "3", "--dry-run").stdout
    assert out.splitlines()[0] == "deployment.apps/web scaled (dry run)"
    assert sum(1 for l in out.splitlines() if l.startswith(f"  + {lab.name}.pod.default.web-")) == 1
    assert snapshot() == before
    other = new_lab_name("dry")
    proc = subprocess.run([sys.executable, "-m", "kubenet_lab.cli", "--lab", other, "up", "--dry-run", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "(dry run: nothing changed)" in proc.stdout
    assert f"  + {other}.node.node1" in proc.stdout
    assert not lab_namespaces(other) and not os.path.exists(f"/run/kubenet-lab/{other}")


def test_deleting_a_node_removes_its_pods_and_the_controllers_make_new_ones_elsewhere(host_before, tmp_path):
    """The default nodes (no Node manifest): node1 goes with its namespace and its pods; a bare
    pod on it is gone, the Deployment's pods there are made anew on node2 under new names, and
    node2 keeps its address and podCIDR, so its pods keep theirs."""
    lab = Lab(new_lab_name("node"))
    path = tmp_path / "web.yaml"
    path.write_text(WEB)
    with torn_down(lab.name):
        lab("up", str(path))
        before = wait_web(lab, 2)
        nodes = json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]
        node2 = next(n for n in nodes if n["metadata"]["name"] == "node2")
        on1 = {n for n, p in before.items() if p["spec"]["nodeName"] == "node1"}
        on2 = {n: p["status"]["podIP"] for n, p in before.items() if p["spec"]["nodeName"] == "node2"}
        assert lab("delete", "node", "node1").stdout == 'node "node1" deleted\n'
        assert lab("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout == "node2"
        assert f"{lab.name}.node.node1" not in lab_namespaces(lab.name)
        assert "client" not in pods(lab)  # a bare pod of node1
        after = wait_web(lab, 2)
        assert not on1 & set(after)
        assert all(p["spec"]["nodeName"] == "node2" for p in after.values())
        assert {n: after[n]["status"]["podIP"] for n in on2} == on2
        again = json.loads(lab("get", "node", "node2", "-o", "json").stdout)
        assert again["spec"]["podCIDR"] == node2["spec"]["podCIDR"]
        assert again["status"]["addresses"] == node2["status"]["addresses"]
        assert endpoints(lab) == {p["status"]["podIP"] for p in after.values()}


def test_a_pod_whose_namespace_goes_by_hand_is_made_anew(live):
    """`ip netns delete` of a ReplicaSet's pod: a new pod with a new name replaces it; of a bare
    pod: kubelet makes its sandbox again, the same pod with a new address. Within seconds."""
    lab, _ = live
    lab("scale", "deployment", "web", "--replicas", "2")
    pods_before = wait_web(lab, 2)
    victim = sorted(pods_before)[0]
    client_ip = pods(lab)["client"]["status"]["podIP"]
    for name in (victim, "client"):
        subprocess.run(["ip", "netns", "delete", f"{lab.name}.pod.default.{name}"], check=True)
    now = wait_web(lab, 2, gone=victim)
    wait_for(lambda: (c := pods(lab).get("client")) is not None and c["status"].get("podIP") not in (None, client_ip)
             and c["status"]["phase"] == "Running", "the client pod made anew")
    assert lab.exec("client", "wget", "-qO-", "-T", "5", "http://web/hostname").stdout in now
    node = pods(lab)["client"]["spec"]["nodeName"]
    veths = [l for l in lab.exec(f"node/{node}", "ip", "-br", "link").stdout.splitlines() if l.startswith("veth")]
    on_node = [p for p in lab.pods().values() if p["spec"].get("nodeName") == node  # every namespace's
               and not p["spec"].get("hostNetwork")]
    assert len(veths) == len(on_node)  # the old veths went with their namespaces
    reasons = lab("get", "events", "-o",
                  "jsonpath={range .items[*]}{.reason}/{.involvedObject.name}{\"\\n\"}{end}").stdout
    assert f"SandboxChanged/{victim}" in reasons and "SandboxChanged/client" in reasons
