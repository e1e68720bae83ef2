"""The supervisor in real namespaces: two throwaway namespaces joined by a veth, a hand-written plan.

Clients run with `ip netns exec` in the other namespace, so every answer crossed a real link.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from ipaddress import IPv4Address

import pytest

from kubenet_lab.model.objects import (Allocations, ClusterConfig, Plan, PlannedContainer, PlannedPod,
                                    RunExec, RunHttp, RunNetexec, RunNothing, RunServeHostname)
from kubenet_lab.fabric import state
from kubenet_lab.supervisor import client as supervisor
from kubenet_lab.kernel.procs import processes_in
from .conftest import wait_for

if os.geteuid() != 0:
    pytest.skip("needs root: creates network namespaces", allow_module_level=True)

A_IP, B_IP = "10.250.0.1", "10.250.0.2"
RESOLV = "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"


def sh(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture
def nets():
    """Two namespaces A and B with a veth between them (created inside A, peer straight into B)."""
    tag = secrets.token_hex(3)
    a, b = f"ksup{tag}.a", f"ksup{tag}.b"
    try:
        sh("ip", "netns", "add", a)
        sh("ip", "netns", "add", b)
        sh("ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
        for ns, ip in ((a, A_IP), (b, B_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield a, b
    finally:
        for ns in (a, b):
            sh("ip", "netns", "delete", ns, check=False)


@pytest.fixture
def lab():
    name = f"sup{secrets.token_hex(3)}"
    try:
        yield name
    finally:
        supervisor.stop(name)
        state.remove_state(name)
        assert name not in supervisor.find_supervisors()


def pod(name: str, netns: str, *containers: PlannedContainer, uid: str | None = None) -> PlannedPod:
    return PlannedPod(namespace="default", name=name, node="node1", ip=IPv4Address(A_IP), netns=netns,
                      host_veth=None, containers=containers, uid=uid or f"uid-{name}")


def ctr(run, name: str = "main") -> PlannedContainer:
    return PlannedContainer(name=name, image="test", run=run)


def write_plan(lab: str, pods: list[PlannedPod]) -> None:
    state.save_plan(Plan(lab=lab, cluster=ClusterConfig(), nodes=(), pods=tuple(pods), services=(),
                         allocations=Allocations(), underlay_netns=f"{lab}.underlay"))


def curl(ns: str, url: str) -> str:
    return sh("ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "10", url).stdout


UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(10)
s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
sys.stdout.write(s.recv(4096).decode())
"""


def udp(ns: str, host: str, port: int, payload: str) -> str:
    return sh("ip", "netns", "exec", ns, "python3", "-c", UDP_CLIENT, host, str(port), payload).stdout


def status(lab: str) -> dict:
    return supervisor.request(lab, {"op": "status"})["pods"]


def log_of(lab: str, pod_name: str, container: str = "main") -> str:
    reply = supervisor.request(lab, {"op": "logs", "pod": f"default/{pod_name}", "container": container})
    assert reply["ok"], reply
    return reply["text"]


def files_under(path: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


def test_supervisor_end_to_end(nets, lab):
    a, b = nets
    pods = [
        pod("web", a, ctr(RunNetexec())),
        pod("hello", a, ctr(RunServeHostname())),
        pod("raw", a, ctr(RunServeHostname(port=9377, http=False, tcp=True, udp=True))),
        pod("crash", a, ctr(RunExec(("sh", "-c", "echo crashing; exit 3")))),
        pod("missing", a, ctr(RunExec(("/nonexistent/binary",)))),
        pod("nginx", b, ctr(RunHttp(ports=(80,), udp_ports=(5000,)))),
        pod("web-b", b, ctr(RunNetexec(http_port=8090, udp_port=8091))),
        pod("cmd", b, ctr(RunExec(("sh", "-c", "hostname; cat /etc/resolv.conf; echo ready; exec sleep 1000")))),
        pod("extra", b, ctr(RunExec(("sleep", "1000")))),
        pod("idle", b, ctr(RunNothing())),
        pod("dup", a, ctr(RunNetexec(http_port=9376, udp_port=-1))),  # hello holds 9376
        pod("both", a, ctr(RunServeHostname(port=9400, http=True, tcp=True))),  # agnhost refuses
    ]
    write_plan(lab, pods)
    pid = supervisor.ensure_running(lab)
    assert supervisor.ensure_running(lab) == pid  # idempotent
    assert supervisor.find_supervisors(lab) == {lab: pid}
    assert supervisor.request(lab, {"op": "reload"})["ok"] is True

    # Built-in servers answer at once, across the veth, with the pod's name and the caller's address.
    assert curl(b, f"http://{A_IP}:8080/hostname") == "web"
    assert re.fullmatch(rf"{B_IP}:\d+", curl(b, f"http://{A_IP}:8080/clientip"))
    assert curl(b, f"http://{A_IP}:9376/") == "hello"
    assert curl(a, f"http://{B_IP}/") == "nginx\n"
    assert udp(b, A_IP, 8081, "hostname") == "web"
    assert udp(a, B_IP, 5000, "x") == "nginx"
    assert udp(b, A_IP, 9377, "x") == "raw"
    assert sh("ip", "netns", "exec", b, "python3", "-c",
              f"import socket; print(socket.create_connection(('{A_IP}', 9377), 3).recv(100).decode())"
              ).stdout.strip() == "raw"
    big = "x" * 2000
    assert curl(b, f"http://{A_IP}:8080/echo?msg={big}") == big
    assert udp(b, A_IP, 8081, f"echo {big}") == big

    # /dial leaves from web's namespace (A): B's addresses are reachable only from there.
    dial = json.loads(curl(b, f"http://{A_IP}:8080/dial?host={B_IP}&port=80&request=hostname&protocol=http"))
    assert dial == {"responses": ["nginx"]}
    dial = json.loads(curl(b, f"http://{A_IP}:8080/dial?host={B_IP}&port=8091&request=clientip&protocol=udp"))
    assert re.fullmatch(rf"{A_IP}:\d+", dial["responses"][0])
    # /shell runs in the pod: its hostname and its resolv.conf.
    shell = json.loads(curl(b, f"http://{A_IP}:8080/shell?cmd=hostname%3B%20cat%20/etc/resolv.conf"))
    assert shell == {"output": "web\n" + RESOLV}
    shell = json.loads(curl(b, f"http://{A_IP}:8080/shell?cmd=cat%20/etc/hosts"))
    assert shell["output"].endswith(f"\n{A_IP}\tweb\n") and "127.0.0.1\tlocalhost" in shell["output"]
    assert "GET /hostname" in log_of(lab, "web") and "HTTP request from" in log_of(lab, "hello")

    # A real process: hostname, resolv.conf and output in its log.
    wait_for(lambda: "ready" in log_of(lab, "cmd"), what="cmd's output")
    assert log_of(lab, "cmd") == "cmd\n" + RESOLV + "ready\n"
    st = status(lab)
    cmd_pid = st["default/cmd"]["containers"]["main"]["pid"]
    extra_pid = st["default/extra"]["containers"]["main"]["pid"]
    assert st["default/cmd"]["containers"]["main"]["state"] == "running"
    assert st["default/web"]["containers"]["main"]["state"] == "running"
    assert st["default/idle"]["containers"]["main"]["state"] == "running"
    missing = st["default/missing"]["containers"]["main"]
    assert missing["state"] == "waiting" and missing["reason"] == "RunContainerError"
    assert 'exec: "/nonexistent/binary": no such file or directory' in missing["message"]

    dup = st["default/dup"]["containers"]["main"]
    assert dup["state"] == "waiting" and dup["message"] == "listen tcp :9376: bind: address already in use"
    both = st["default/both"]["containers"]["main"]
    assert both["message"] == "Can't server TCP/UDP mode and HTTP mode at the same time"
    wait_for(lambda: "address already in use" in log_of(lab, "dup"), what="dup's log")
    assert supervisor.request(lab, {"op": "logs", "pod": "default/web", "container": "nope"})["ok"] is False
    # Only real processes write their logs to disk; built-in servers' stay in memory.
    files = files_under(state.state_dir(lab))
    assert [f for f in files if f.startswith("logs/")] == [
        f"logs/default_{p}_main.log" for p in ("cmd", "crash", "extra", "missing")]
    assert {f for f in files if not f.startswith("logs/")} <= {
        "plan.json", "supervisor.sock", "supervisor.pid", "supervisor.log", "supervisor.lock",
        "events.jsonl"}  # the kubelet side's events (Pulled, Created, Started, ...)

    # A crashing command restarts with backoff; its exit code is kept.
    crash = wait_for(lambda: (c := status(lab)["default/crash"]["containers"]["main"])["restarts"] >= 2 and c,
                     timeout=30, what="two restarts")
    assert crash["exitCode"] == 3
    # The restart is counted when the new process starts; its output follows a moment later.
    wait_for(lambda: log_of(lab, "crash").count("crashing") >= 3, what="the third run's output")

    # Reload without `extra`: it stops; unchanged containers keep their process and sockets.
    web_started = st["default/web"]["containers"]["main"]["startedAt"]
    keep = [p for p in pods if p.name != "extra"]
    write_plan(lab, keep)
    reply = supervisor.request(lab, {"op": "reload"})
    assert (reply["started"], reply["stopped"]) == (0, 1)
    st = status(lab)
    assert "default/extra" not in st
    assert st["default/cmd"]["containers"]["main"]["pid"] == cmd_pid
    assert st["default/web"]["containers"]["main"]["startedAt"] == web_started
    wait_for(lambda: not os.path.exists(f"/proc/{extra_pid}"), what="extra to end")
    assert os.path.exists(f"/proc/{cmd_pid}")
    assert curl(b, f"http://{A_IP}:8080/hostname") == "web"

    # A changed run spec (new port) replaces the container.
    keep = [pod("web", a, ctr(RunNetexec(http_port=8085))) if p.name == "web" else p for p in keep]
    write_plan(lab, keep)
    assert supervisor.request(lab, {"op": "reload"})["started"] == 1
    assert curl(b, f"http://{A_IP}:8085/hostname") == "web"
    assert sh("ip", "netns", "exec", b, "curl", "-sS", "--max-time", "2", f"http://{A_IP}:8080/",
              check=False).returncode != 0

    # /exit ends the container; the supervisor restarts it like a kubelet.
    sh("ip", "netns", "exec", b, "curl", "-sS", "--max-time", "10", f"http://{A_IP}:8085/exit?code=4",
       check=False)
    web = wait_for(lambda: (c := status(lab)["default/web"]["containers"]["main"])["restarts"] >= 1
                   and c["state"] == "running" and c, what="web restarted")
    assert web["exitCode"] == 4
    assert curl(b, f"http://{A_IP}:8085/hostname") == "web"

    # stop: nothing of the lab runs afterwards, in the namespaces or elsewhere.
    supervisor.stop(lab)
    assert supervisor.find_supervisors(lab) == {}
    wait_for(lambda: not any(processes_in([a, b]).values()), timeout=20, what="processes to end")
    assert not os.path.exists(f"/proc/{cmd_pid}")
    supervisor.stop(lab)  # already gone: fine


def test_supervisor_restarts_with_the_lab_and_survives_sigkill(nets, lab):
    """Started with a plan on disk it serves at once; killed hard, its children die with it;
    with its state removed, stop still finds it."""
    a, b = nets
    write_plan(lab, [pod("web", a, ctr(RunNetexec())), pod("cmd", b, ctr(RunExec(("sleep", "1000")))),
                     pod("lost", f"{a}-missing", ctr(RunNetexec()))])
    pid = supervisor.ensure_running(lab)
    wait_for(lambda: status(lab).get("default/cmd", {}).get("containers", {}).get("main", {}).get("pid"),
             what="cmd to run")
    assert curl(b, f"http://{A_IP}:8080/hostname") == "web"
    lost = status(lab)["default/lost"]["containers"]["main"]  # its namespace does not exist
    assert lost["state"] == "waiting" and "FileNotFoundError" in lost["message"]
    os.kill(pid, 9)
    wait_for(lambda: not any(processes_in([a, b]).values()), timeout=20, what="children to die")
    pid = supervisor.ensure_running(lab)
    wait_for(lambda: status(lab).get("default/web"), what="web back")
    assert curl(b, f"http://{A_IP}:8080/hostname") == "web"
    wait_for(lambda: any(processes_in([b]).values()), what="cmd back")

    state.remove_state(lab)
    assert supervisor.find_supervisors(lab) == {lab: pid}
    supervisor.stop(lab)
    assert supervisor.find_supervisors(lab) == {}
    assert not any(processes_in([a, b]).values())
    time.sleep(0.2)
    assert not os.path.exists(state.state_dir(lab))  # nothing wrote into the removed state


def test_500_pods_of_servers_share_one_process(lab):
    """500 netexec pods in one supervisor (sharing one namespace, on distinct ports): one process,
    one thread, no child per pod. The memory figure is bench/bench_servers.py's to print."""
    ns = f"ksup{secrets.token_hex(3)}.big"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        pods = [pod(f"p{i}", ns, ctr(RunNetexec(http_port=20000 + i, udp_port=30000 + i)))
                for i in range(500)]
        write_plan(lab, [])
        pid = supervisor.ensure_running(lab)
        write_plan(lab, pods)
        t = time.monotonic()
        assert supervisor.request(lab, {"op": "reload"}, timeout=120)["started"] == 500
        reload_s = time.monotonic() - t
        assert curl(ns, "http://127.0.0.1:20499/hostname") == "p499"
        assert udp(ns, "127.0.0.1", 30000, "hostname") == "p0"
        threads = len(os.listdir(f"/proc/{pid}/task"))
        print(f"500 netexec pods: {threads} thread(s), reload {reload_s:.2f}s")
        assert threads == 1
        assert not any(processes_in([ns]).values())  # the sockets are the supervisor's, no child serves
    finally:
        supervisor.stop(lab)
        sh("ip", "netns", "delete", ns, check=False)
