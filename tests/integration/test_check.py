"""`kubenet-lab check` on real labs: the example lab and the Services lab hold everything in both
proxy modes; a route removed by hand in a node, or a Service rule deleted from a node's
ruleset, makes check exit 1 naming the failed expectations, from where, and where they broke."""
from __future__ import annotations

import errno
import json
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests"
MODES = ("iptables", "nftables")


@pytest.fixture(scope="module", params=MODES)
def example(request, host_before):
    lab = Lab(new_lab_name("ck"))
    with torn_down(lab.name):
        lab("up", str(EXAMPLE), "--proxy-mode", request.param)
        yield lab, request.param


@pytest.fixture(scope="module", params=MODES)
def services(request, host_before):
    lab = Lab(new_lab_name("cs"))
    with torn_down(lab.name):
        lab("up", str(MANIFESTS / "services.yaml"), "--proxy-mode", request.param)
        yield lab, request.param


def check_json(lab: Lab, *args: str) -> tuple[int, dict]:
    proc = lab("check", "-o", "json", *args, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def failed(doc: dict) -> list[dict]:
    return [r for r in doc["results"] if not r["ok"]]


def test_the_example_lab_checks_clean(example):
    lab, mode = example
    code, doc = check_json(lab)
    assert failed(doc) == [] and code == 0 and doc["ok"] is True
    kinds = {r["kind"] for r in doc["results"]}
    assert kinds == {"pod-pod", "service", "nodeport", "loadbalancer", "dns"}
    pods = lab.pods()
    client_ip = pods["client"]["status"]["podIP"]
    # pod to pod: the server saw the client's own address
    seen = [r for r in doc["results"] if r["from"] == "pod/default/client" and r["kind"] == "pod-pod"
            and r["port"] == 8080]
    assert len(seen) == 3 and all(r["observed"] == f"answered, seeing {client_ip}" for r in seen)
    # the Service without endpoints was refused from every node and client pod
    refused = [r for r in doc["results"] if r["to"] == "svc/default/kubernetes:https"]
    assert len(refused) == 4 and all(r["must"] == "fail" and r["observed"].startswith("connection refused by node/")
                                     and r["brokeAt"] is None for r in refused)
    node1 = next(r for r in refused if r["from"] == "node/node1")
    assert node1["observed"] == "connection refused by node/node1 (172.18.0.2)"  # the REJECT in node1
    # the table: one line per expectation and the summary
    text = lab("check").stdout
    assert text.splitlines()[-1].startswith(f"check: all {doc['expectations']} expectations held")


def test_a_refused_service_refuses_every_connection_of_a_burst(example):
    """A node's REJECT answers are not rate-limited (a kernel sends one ICMP error a second to a
    client after a burst of six): thirty connections at once are each refused."""
    lab, _ = example
    ip = json.loads(lab("get", "svc", "kubernetes", "-o", "json").stdout)["spec"]["clusterIP"]
    code = ("import socket, sys, time\nsocks = [socket.socket() for _ in range(30)]\nfor s in socks:\n"
            "    s.setblocking(False); s.connect_ex((sys.argv[1], 443))\ntime.sleep(1.5)\n"
            "print(*[s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) for s in socks])")
    got = lab.exec("client", "python3", "-c", code, ip).stdout.split()
    assert got == [str(errno.ECONNREFUSED)] * 30


def test_full_confirms_every_endpoint_by_its_answer(example):
    lab, _ = example
    code, doc = check_json(lab, "--full")
    assert code == 0, failed(doc)
    webs = sorted(n for n in lab.pods() if n.startswith("web-"))
    from_node = [r for r in doc["results"] if r["from"] == "node/node1" and r["to"] == "svc/default/web:http"]
    assert len(from_node) == 1 and sorted(set(from_node[0]["answers"])) == webs


def test_the_services_lab_checks_clean_and_what_must_fail_fails(services):
    lab, mode = services
    code, doc = check_json(lab)
    assert failed(doc) == [] and code == 0
    by = {(r["from"], r["to"]): r for r in doc["results"]}
    # internalTrafficPolicy Local: node2 has no endpoint; node1's answers come from be1 alone
    assert by[("node/node2", "svc/default/itp-local:80")]["must"] == "fail"
    assert by[("pod/default/c2", "svc/default/itp-local:80")]["must"] == "fail"
    assert set(by[("pod/default/c1", "svc/default/itp-local:80")]["answers"]) == {"be1"}
    # externalTrafficPolicy Local: node2's NodePort of etp-one answers nothing from outside
    assert by[("external", "node/node2:30091")]["must"] == "fail"
    assert set(by[("external", "node/node1:30091")]["answers"]) == {"be1"}
    assert by[("pod/default/c2", "svc/default/empty:80")]["observed"].startswith("connection refused by node/node2")
    # hairpin-free client choice: c1 and c2 call the Services
    assert ("pod/default/c1", "svc/default/be:http") in by and ("pod/default/c2", "svc/default/be:http") in by


def _node2_pod(lab: Lab) -> tuple[str, str]:
    pod = next(n for n, p in lab.pods().items() if p["spec"]["nodeName"] == "node2" and n.startswith("web-"))
    return pod, lab.pods()[pod]["status"]["podIP"]


def test_a_route_removed_by_hand_fails_check_naming_what_and_where(host_before):
    lab = Lab(new_lab_name("cr"))
    with torn_down(lab.name):
        lab("up", str(EXAMPLE))
        node2 = json.loads(lab("get", "node", "node2", "-o", "json").stdout)
        cidr = node2["spec"]["podCIDR"]
        subprocess.run(["ip", "-n", f"{lab.name}.node.node1", "route", "del", cidr], check=True)
        proc = lab("check", "-q", check=False)
        assert proc.returncode == 1, proc.stdout
        pod, _ = _node2_pod(lab)
        lines = proc.stdout.splitlines()
        ping = [l for l in lines if l.startswith(f"FAILED pod-pod: pod/default/client -> pod/default/{pod} icmp")]
        assert len(ping) == 1, proc.stdout
        ip = lab.ip(pod)
        assert ping[0].endswith(f"network unreachable; broke at node/node1: no route to {ip}: Network is "
                                f"unreachable (routing table of node/node1)"), ping[0]
        # the other way, the request gets through and the answer is lost in node1
        back = [l for l in lines if l.startswith(f"FAILED pod-pod: pod/default/{pod} -> pod/default/client icmp")]
        assert len(back) == 1 and "; broke at the answer: node/node1: no route to " in back[0], back
        # pods on node2 still reach each other
        assert not [l for l in lines if l.startswith("FAILED pod-pod: pod/default/duo -> pod/default/"
                                                     + pod + " icmp")]
        assert lines[-1].startswith("check: ") and "FAILED" in lines[-1]


@pytest.mark.parametrize("mode", MODES)
def test_a_service_rule_deleted_in_one_node_fails_check_there_only(mode, host_before):
    lab = Lab(new_lab_name("cd"))
    with torn_down(lab.name):
        lab("up", str(EXAMPLE), "--proxy-mode", mode)
        netns = f"{lab.name}.node.node1"
        if mode == "iptables":
            rules = subprocess.run(["ip", "netns", "exec", netns, "iptables-save", "-t", "nat"], capture_output=True,
                                   text=True, check=True).stdout
            rule = next(l for l in rules.splitlines() if l.startswith("-A KUBE-SERVICES")
                        and '"default/web:http cluster IP"' in l)
            subprocess.run(["ip", "netns", "exec", netns, "sh", "-c",
                            f"iptables -t nat {rule.replace('-A ', '-D ', 1)}"], check=True)
        else:
            chain = subprocess.run(["ip", "netns", "exec", netns, "nft", "-a", "list", "chain", "ip", "kube-proxy",
                                    "services"], capture_output=True, text=True, check=True).stdout
            handle = re.search(r"vmap @service-ips # handle (\d+)", chain).group(1)
            subprocess.run(["ip", "netns", "exec", netns, "nft", "delete", "rule", "ip", "kube-proxy", "services",
                            "handle", handle], check=True)
        code, doc = check_json(lab)
        assert code == 1
        broken = {(r["from"], r["to"]) for r in failed(doc)}
        assert ("node/node1", "svc/default/web:http") in broken
        assert ("pod/default/client", "svc/default/web:http") in broken
        assert not [f for f in broken if f[0] in ("node/node2", "pod/default/duo", "external")]
        from_node1 = next(r for r in failed(doc) if r["from"] == "node/node1" and r["to"] == "svc/default/web:http")
        # iptables: the packet leaves node1 untranslated and dies further on; nftables: node1 rejects
        # it (kube-proxy's reject of a ClusterIP port it does not know)
        assert from_node1["brokeAt"].startswith("node/node1: "), from_node1
        if mode == "iptables":
            assert from_node1["brokeAt"].startswith("node/node1: no rule translated 10.96.0.2:80 to an endpoint; "
                                                    "then "), from_node1
        else:
            assert "rejected by" in from_node1["brokeAt"], from_node1
        text = lab("check", check=False).stdout
        assert "FAILED service: node/node1 -> svc/default/web:http:80 tcp must reach" in text


def test_progress_on_a_terminal_only_and_quiet_with_q(example):
    lab, _ = example
    import os
    import pty
    import sys

    def stderr_on_tty(*args: str) -> str:
        master, slave = pty.openpty()
        try:
            proc = subprocess.run([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab.name, "check", *args],
                                  stdout=subprocess.PIPE, stderr=slave, timeout=60)
            assert proc.returncode == 0
            os.close(slave)
            slave = -1
            out = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            return out.decode(errors="replace")
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)

    shown = stderr_on_tty()
    total = json.loads(lab("check", "-o", "json").stdout)["expectations"]
    assert f"check: {total}/{total} expectations probed" in shown
    assert "expectations probed" not in stderr_on_tty("-q")
    assert lab("check").stderr == ""  # not a terminal: no progress
