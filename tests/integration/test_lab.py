"""The flat L3 pod network, for real: namespaces, veths, bridges, routes and packets."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from kubenet_lab.plan.podfiles import parse_resolv_conf
from kubenet_lab.fabric import state

from .conftest import (MANIFESTS, UDP_CLIENT, Lab, host_snapshot, kl, lab_namespaces, lab_processes, new_lab_name,
                       torn_down, wait_for)

def curl(lab: Lab, pod: str, url: str) -> str:
    return lab.exec(pod, "curl", "-sS", "--max-time", "10", url).stdout


def udp(lab: Lab, pod: str, ip: str, port: int, msg: str) -> str:
    return lab.exec(pod, "python3", "-c", UDP_CLIENT, ip, str(port), msg).stdout.strip()


def test_pods_are_where_the_manifests_put_them(lab):
    pods = lab.pods()
    assert {n: p["spec"]["nodeName"] for n, p in pods.items() if p["metadata"]["namespace"] == "default"} == \
        {"a1": "node1", "a2": "node1", "b1": "node2", "duo": "node2", "hn": "node2"}
    nodes = {n["metadata"]["name"]: n for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]}
    for p in pods.values():
        node = nodes[p["spec"]["nodeName"]]
        assert p["status"]["hostIP"] == node["status"]["addresses"][0]["address"]
        assert p["status"]["phase"] == "Running"
        if not p["spec"]["hostNetwork"]:
            assert p["status"]["podIP"].startswith(node["spec"]["podCIDR"].rsplit(".", 2)[0])


def test_same_node_tcp_and_the_receiver_sees_the_sender_pod_ip(lab):
    assert curl(lab, "a1", f"http://{lab.ip('a2')}:8080/hostname") == "a2"
    assert curl(lab, "a1", f"http://{lab.ip('a2')}:8080/clientip").split(":")[0] == lab.ip("a1")


def test_cross_node_tcp_without_nat(lab):
    assert curl(lab, "a1", f"http://{lab.ip('b1')}:8080/hostname") == "b1"
    assert curl(lab, "b1", f"http://{lab.ip('a1')}:8080/clientip").split(":")[0] == lab.ip("b1")


def test_udp_same_and_cross_node(lab):
    assert udp(lab, "a1", lab.ip("a2"), 8081, "hostname") == "a2"
    assert udp(lab, "a1", lab.ip("b1"), 8081, "hostname") == "b1"
    assert udp(lab, "b1", lab.ip("a1"), 8081, "clientip").split(":")[0] == lab.ip("b1")


def test_icmp_same_and_cross_node(lab):
    for target in ("a2", "b1", "duo"):
        lab.exec("a1", "ping", "-c", "1", "-W", "2", lab.ip(target))


def test_containers_of_a_pod_share_localhost_and_ip(lab):
    assert curl(lab, "duo", "http://127.0.0.1:80/").strip() == "duo"
    assert lab("exec", "duo", "-c", "sidecar", "--", "hostname").stdout.strip() == "duo"
    addrs = lab.exec("duo", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert lab.ip("duo") in addrs


def test_hostname_is_the_pod_name_in_exec_and_in_containers(lab):
    assert lab.exec("b1", "hostname").stdout.strip() == "b1"
    assert curl(lab, "a1", f"http://{lab.ip('duo')}:80/hostname").strip() == "duo"


def test_exec_passes_the_exit_status_and_stdin_through(lab):
    assert lab.exec("a1", "sh", "-c", "exit 7", check=False).returncode == 7
    assert kl(lab.name, "exec", "-i", "a1", "--", "cat", input="hello\n").stdout == "hello\n"
    assert lab.exec("a1", "cat", input="hello\n").stdout == ""  # no -i: no stdin, as kubectl
    assert kl(lab.name, "exec", "-it", "a1", "--", "sh", "-c", "read x; echo got $x", input="it\n").stdout == "got it\n"
    missing = lab.exec("a1", "no-such-command-xyz", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_exec_into_a_node_sees_its_bridge_and_host_gw_routes(lab):
    routes = lab.exec("node/node1", "ip", "route").stdout
    nodes = {n["metadata"]["name"]: n for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]}
    node2 = nodes["node2"]
    assert f"{node2['spec']['podCIDR']} via {node2['status']['addresses'][0]['address']} dev eth0" in routes
    assert "default" not in routes
    assert "cbr0" in lab.exec("node/node1", "ip", "-o", "link", "show", "type", "bridge").stdout
    assert lab.exec("node/node1", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"


def test_pod_resolv_conf_is_kubelets(lab):
    text = lab.exec("a1", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in text
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in text
    assert "options ndots:5" in text


def test_up_twice_changes_nothing(lab):
    before = {n: (p["status"]["podIP"], p["metadata"]["uid"]) for n, p in lab.pods().items()}
    inodes = {ns: subprocess.run(["stat", "-c", "%i", f"/run/netns/{ns}"], capture_output=True, text=True).stdout
              for ns in lab_namespaces(lab.name)}
    status_before = lab("get", "pods", "duo", "-o", "json").stdout
    out = lab("up", str(MANIFESTS / "lab.yaml")).stdout
    assert "0 namespaces created, 0 removed" in out
    after = {n: (p["status"]["podIP"], p["metadata"]["uid"]) for n, p in lab.pods().items()}
    assert after == before
    assert {ns: subprocess.run(["stat", "-c", "%i", f"/run/netns/{ns}"], capture_output=True, text=True).stdout
            for ns in lab_namespaces(lab.name)} == inodes
    pid = lambda text: json.loads(text)["status"]["containerStatuses"][1]["state"]  # noqa: E731
    assert pid(lab("get", "pods", "duo", "-o", "json").stdout) == pid(status_before)


def test_logs_show_a_container_output(lab):
    assert "8080" in lab("logs", "a1").stdout


def test_a_process_gets_its_env_and_the_service_variables_as_from_kubelet(lab):
    agn = json.loads(lab("get", "svc", "agn", "-o", "json").stdout)["spec"]["clusterIP"]
    # the process has started; its first line follows
    log = wait_for(lambda: lab("logs", "duo", "-c", "sidecar").stdout, "the sidecar's first line")
    assert log == f"hello sidecar {agn}:80 {lab.ip('duo')}\n"
    # exec gives the container's variables too, as kubectl exec does.
    out = lab("exec", "duo", "-c", "sidecar", "--", "sh", "-c", "echo $GREETING $MY_IP $AGN_PORT").stdout
    assert out == f"hello sidecar {lab.ip('duo')} tcp://{agn}:80\n"
    assert lab.exec("a1", "sh", "-c", "echo $AGN_SERVICE_HOST $HOSTNAME").stdout == f"{agn} a1\n"


def _mount_points(prefixes: tuple[str, ...]) -> list[str]:
    """The host's mount points under `prefixes`, leaving out the namespaces' own (/run/netns/NAME),
    which other labs may add meanwhile."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted(p for p in points if p.startswith(prefixes) and not p.startswith("/run/netns/"))


def test_pod_files_live_in_the_pods_mounts_not_on_the_host(lab):
    """resolv.conf and hosts exist only in the pods' own mount namespaces: no per-pod file in the
    state directory (only a real process's log), no mount and no change in the host's /etc."""
    host = {p: Path(p).read_bytes() for p in ("/etc/resolv.conf", "/etc/hosts") if os.path.exists(p)}
    mounts = _mount_points(("/etc", "/run/netns"))
    # the cluster's search path, then this machine's own search domains (the lab's nodes share its
    # resolv.conf), as kubelet writes it
    own = parse_resolv_conf(host.get("/etc/resolv.conf", b"").decode()).searches
    search = " ".join(dict.fromkeys(("default.svc.cluster.local", "svc.cluster.local", "cluster.local", *own)))
    assert lab.exec("a1", "cat", "/etc/resolv.conf").stdout == (
        f"search {search}\nnameserver 10.96.0.10\noptions ndots:5\n")
    hosts = lab.exec("a1", "cat", "/etc/hosts").stdout
    assert hosts.startswith("# Kubernetes-managed hosts file") and hosts.endswith(f"\n{lab.ip('a1')}\ta1\n")
    assert f"{lab.ip('duo')}\tduo" in lab("exec", "duo", "-c", "sidecar", "--", "cat", "/etc/hosts").stdout
    assert {p: Path(p).read_bytes() for p in host} == host
    assert _mount_points(("/etc", "/run/netns")) == mounts  # no mount reached the host

    root = state.state_dir(lab.name)
    files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
    nodes = [n["metadata"]["name"] for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]]
    fixed = {"plan.json", "lock", "not-ready.json", "supervisor.sock", "supervisor.pid", "supervisor.log",
             "supervisor.lock", "objects.json", "events.jsonl", "warm.sock", "warm.lock", "warm.log"}
    per_node = [f for f in files if f.startswith("rules/") and Path(f).stem in (*nodes, "lb")]
    assert [f for f in files if f not in fixed and f not in per_node] == [
        "logs/default_duo_sidecar.log"]  # the lab's one real process


def test_down_removes_everything_and_leaves_the_host_untouched(host_before):
    name = new_lab_name("d")
    lab = Lab(name)
    with torn_down(name):
        lab("up", str(MANIFESTS / "lab.yaml"))
        assert len(lab_namespaces(name)) == 1 + 2 + 4 + 1 + 3  # underlay, nodes, pods (not hn), kube-dns, outside (3)
        assert lab_processes(name)
    assert lab_namespaces(name) == []
    assert lab_processes(name) == []
    after = host_snapshot()
    for key, value in host_before.items():
        assert after[key] == value, f"the host's {key} changed"
    # down is idempotent
    assert kl(name, "down").returncode == 0


def test_down_finds_the_lab_with_its_state_lost():
    name = new_lab_name("s")
    lab = Lab(name)
    with torn_down(name):
        lab("up", str(MANIFESTS / "lab.yaml"))
        subprocess.run(["rm", "-rf", f"/run/kubenet-lab/{name}"], check=True)
    assert lab_namespaces(name) == []
    assert lab_processes(name) == []


def test_bad_input_exits_2_and_creates_nothing(tmp_path):
    name = new_lab_name("b")
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: three\n")
    proc = kl(name, "up", str(bad), check=False)
    assert proc.returncode == 2
    assert "bad.yaml:6: spec.replicas: expected an integer, got 'three'" in proc.stderr
    assert lab_namespaces(name) == []


def test_down_leaves_a_namespace_it_did_not_make_even_if_named_like_its_own():
    name = new_lab_name("f")
    lab = Lab(name)
    foreign = f"{name}.pod.default.intruder"
    try:
        lab("up", str(MANIFESTS / "lab.yaml"))
        subprocess.run(["ip", "netns", "add", foreign], check=True)
        kl(name, "down")
        assert lab_namespaces(name) == [foreign]
    finally:
        kl(name, "down", check=False)
        subprocess.run(["ip", "netns", "delete", foreign], capture_output=True)
    assert lab_namespaces(name) == []


def test_host_network_pods_live_in_their_node(lab):
    pods = lab.pods()
    node2 = pods["b1"]["status"]["hostIP"]
    assert pods["hn"]["status"]["podIP"] == node2 and pods["hn"]["spec"]["hostNetwork"] is True
    # served from node2's own namespace, on node2's address, with the node's hostname
    assert curl(lab, "a1", f"http://{node2}:9090/hostname") == "node2"
    assert lab.exec("hn", "hostname").stdout.strip() == "node2"
    assert "cbr0" in lab.exec("hn", "ip", "-o", "link").stdout


def test_a_changed_pod_is_made_anew_and_the_others_stay(tmp_path):
    manifests = tmp_path / "lab.yaml"
    manifests.write_text((MANIFESTS / "lab.yaml").read_text())
    lab = Lab(new_lab_name("u"))
    with torn_down(lab.name):
        lab("up", str(manifests))
        before = lab.pods()
        text = manifests.read_text()  # b1 now listens on another port: a new pod spec
        b1 = text.index("name: b1")
        manifests.write_text(text[:b1] + text[b1:].replace('"--http-port=8080"', '"--http-port=8082"', 1))
        out = lab("up", str(manifests)).stdout
        assert "1 namespace created, 1 removed" in out
        after = lab.pods()
        assert after["b1"]["metadata"]["uid"] != before["b1"]["metadata"]["uid"]
        assert {n: p["metadata"]["uid"] for n, p in after.items() if n != "b1"} == \
            {n: p["metadata"]["uid"] for n, p in before.items() if n != "b1"}
        assert curl(lab, "a1", f"http://{lab.ip('b1')}:8082/hostname") == "b1"
