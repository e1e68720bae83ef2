"""Contained pods for real: a container's processes (its command, `exec` into it, agnhost's
/shell) run as a container runtime runs them: the host's files read-only, private /tmp, the
runtime's default capabilities or what the securityContext asks, its user, its own PID
namespace. Each check looks at the host from outside too: nothing there changed."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("cf"))
    with torn_down(lab.name):
        lab("up", str(MANIFESTS / "confined.yaml"))
        running = {"plain", "netadmin", "user", "readonly", "dropall", "netexec"}
        wait_for(lambda: running <= {n for n, p in lab.pods().items() if p["status"]["phase"] == "Running"},
                 "the confined pods running")
        yield lab


# A container has its own of these (or an empty one): a host directory it sees is elsewhere.
NOT_SEEN = ("/tmp", "/var/tmp", "/run", "/dev", "/root", "/home")


@pytest.fixture
def host_dir():
    """A directory of this machine that a container sees (read-only): the checkout's, unless it
    lies where a container has its own (a clone in /tmp), else one in /var/lib."""
    where = str(ROOT) if not str(ROOT).startswith(tuple(p + "/" for p in NOT_SEEN)) else "/var/lib"
    path = tempfile.mkdtemp(prefix=".kubenet-lab-confine-", dir=where)
    yield path
    shutil.rmtree(path)


def sh(lab: Lab, pod: str, script: str, **kw):
    return lab.exec(pod, "sh", "-c", script, check=False, **kw)


def status(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_the_hosts_files_are_read_only_and_unchanged(lab, host_dir):
    marker = f"kubenet-lab-{lab.name}"
    for target in (f"/etc/{marker}", f"/root/{marker}", f"{host_dir}/{marker}", f"/usr/{marker}"):
        out = sh(lab, "plain", f"echo pwned > {target}")
        assert out.returncode != 0 and "Read-only file system" in out.stderr, (target, out.stderr)
        assert not os.path.exists(target), target
    assert os.listdir(host_dir) == []


def test_a_pods_own_command_cannot_write_the_hosts_files(lab):
    """The `writer` pod's command tries /etc, /root, /usr/local and /tmp: only its own /tmp takes it."""
    wait_for(lambda: lab.pods()["writer"]["status"]["phase"] == "Succeeded", "writer done")
    log = lab("logs", "writer").stdout.splitlines()
    assert [l.split(": ")[-2].rsplit(" ", 1)[-1] for l in log if "Read-only file system" in l] == [
        "/etc/kubenet-lab-writer", "/root/kubenet-lab-writer", "/usr/local/kubenet-lab-writer"], log
    assert "/tmp/kubenet-lab-writer: written" in log
    for d in ("/etc", "/root", "/usr/local", "/tmp"):
        assert not os.path.exists(f"{d}/kubenet-lab-writer"), d


def test_root_and_home_are_empty_and_the_lab_state_is_not_seen(lab):
    out = sh(lab, "plain", "ls -A /root /home; ls /run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["/home:", "/root:"] or set(out.stdout.split()) <= {"/home:", "/root:", "mount"}
    assert "kubenet-lab" not in sh(lab, "plain", "ls -A /run /run/* 2>/dev/null").stdout
    assert sh(lab, "plain", "ls /run/netns").returncode != 0


def test_tmp_is_the_containers_own_and_kept_between_its_processes(lab):
    marker = f"kubenet-lab-{lab.name}"
    assert sh(lab, "plain", f"echo kept > /tmp/{marker} && echo kept > /var/tmp/{marker}").returncode == 0
    assert sh(lab, "plain", f"cat /tmp/{marker} /var/tmp/{marker}").stdout == "kept\nkept\n"
    assert not os.path.exists(f"/tmp/{marker}") and not os.path.exists(f"/var/tmp/{marker}")
    # another pod has its own
    assert sh(lab, "netadmin", f"cat /tmp/{marker}").returncode != 0


def test_no_net_admin_by_default_and_with_capabilities_add(lab):
    out = sh(lab, "plain", "ip link set eth0 down")
    assert out.returncode != 0 and "Operation not permitted" in out.stderr
    assert "state UP" in sh(lab, "plain", "ip link show eth0").stdout
    ok = sh(lab, "netadmin", "ip link set lo mtu 1500 && ip link show lo")
    assert ok.returncode == 0 and "mtu 1500" in ok.stdout, ok.stderr
    # the container's main process has the same capabilities as the exec'd one
    caps = sh(lab, "plain", "grep CapEff /proc/1/status /proc/self/status").stdout.split()
    assert caps[1] == caps[3] == "00000000a80425fb"  # containerd's 14 default capabilities


def test_ping_and_tcpdump_work_with_the_default_net_raw(lab):
    peer = lab.ip("netadmin")
    out = sh(lab, "plain", f"ping -c 1 -W 5 {peer}")
    assert out.returncode == 0, out.stdout + out.stderr
    cap = sh(lab, "plain", f"(sleep 1; ping -c 2 -W 5 {peer} >/dev/null) & "
                           "timeout 10 tcpdump -p -n -c 1 -i eth0 icmp 2>&1")
    assert cap.returncode == 0 and "ICMP echo request" in cap.stdout, cap.stdout + cap.stderr


def test_drop_all_leaves_root_without_capabilities(lab):
    assert "CapEff:\t0000000000000000" in sh(lab, "dropall", "cat /proc/self/status").stdout
    out = sh(lab, "dropall", f"ping -c 1 -W 2 {lab.ip('plain')}")
    assert out.returncode != 0


def test_run_as_user_group_and_no_new_privs(lab):
    out = sh(lab, "user", "id -u; id -g; id -G; grep -E 'NoNewPrivs|CapEff' /proc/1/status")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == ["1000", "3000", "3000 4000"]  # the container's runAsUser over the pod's
    assert "NoNewPrivs:\t1" in lines and "CapEff:\t0000000000000000" in lines


def test_run_as_non_root_with_a_root_image_is_refused_as_kubelet_refuses_it(lab):
    pod = wait_for(lambda: (p := lab.pods()["nonroot"])["status"]["containerStatuses"][0]["state"].get("waiting")
                   and p, "nonroot waiting")
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert waiting["message"].startswith("container has runAsNonRoot and image will run as root")
    row = next(l for l in lab("get", "pods").stdout.splitlines() if l.startswith("nonroot "))
    assert row.split()[1:3] == ["0/1", "CreateContainerConfigError"]
    assert "container has runAsNonRoot" in lab("get", "events").stdout


def test_read_only_root_filesystem_leaves_no_writable_tmp(lab):
    out = sh(lab, "readonly", "echo x > /tmp/x")
    assert out.returncode != 0 and "Read-only file system" in out.stderr
    assert sh(lab, "readonly", "echo x > /dev/shm/x && cat /dev/shm/x").stdout == "x\n"


def test_a_container_sees_its_own_processes_only(lab):
    out = sh(lab, "plain", "ps -e -o pid=,comm=")
    procs = [l.split() for l in out.stdout.splitlines()]
    assert procs[0] == ["1", "tini"] and {c for _, c in procs} <= {"tini", "sleep", "sh", "ps"}, procs
    # the host's PID 1 cannot be signalled: it is not there
    assert sh(lab, "plain", f"kill -0 {os.getpid()}").returncode != 0


def test_proc_sys_is_read_only(lab):
    out = sh(lab, "plain", "echo 1 > /proc/sys/net/ipv4/ip_forward")
    assert out.returncode != 0 and "Read-only file system" in out.stderr


def test_exec_privileged_keeps_full_root(lab):
    out = lab("exec", "--privileged", "plain", "--", "sh", "-c", "ip link set lo mtu 1400 && ip link show lo",
              check=False)
    assert out.returncode == 0 and "mtu 1400" in out.stdout, out.stderr


def test_agnhost_shell_from_outside_runs_confined(lab):
    """agnhost netexec's /shell, reached by the outside client through a LoadBalancer, runs its
    command as a process of the container: it cannot write the host's /etc."""
    svc = json.loads(lab("get", "svc", "netexec", "-o", "json").stdout)
    lb = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    marker = f"/etc/kubenet-lab-{lab.name}"
    out = lab.exec("external", "curl", "-s", "-m", "10", f"http://{lb}/shell?cmd=touch+{marker}")
    answer = json.loads(out.stdout)
    assert "Read-only file system" in answer.get("output", ""), answer
    assert not os.path.exists(marker)
    who = json.loads(lab.exec("external", "curl", "-s", "-m", "10", f"http://{lb}/shell?cmd=id+-u;hostname").stdout)
    assert who["output"] == "0\nnetexec\n"


def test_exec_sees_the_containers_processes_as_kubectl_exec_does(lab):
    """An exec joins the PID namespace of the container's running process: `ps` shows the
    container's command beside the exec'd one, and the exec'd process is not PID 1."""
    out = sh(lab, "plain", "ps -e -o pid=,comm=")
    procs = {c: int(p) for p, c in (l.split() for l in out.stdout.splitlines())}
    assert procs.get("tini") == 1 and "sleep" in procs and procs["ps"] != 1, procs


VOLUME_IN_TMP = """
apiVersion: v1
kind: Pod
metadata: {name: cached}
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "echo own > /tmp/own; echo vol > /tmp/cache/v; exec sleep 3600"]
    volumeMounts: [{name: cache, mountPath: /tmp/cache}]
  volumes: [{name: cache, emptyDir: {}}]
"""


def test_a_volume_mounted_in_tmp_leaves_tmp_the_containers_own(host_before, tmp_path):
    """A volume at /tmp/cache (as manifests often have): its mount point is made in the
    container's own /tmp, which stays as it is, kept between the container's processes and
    writable by all (1777), and the volume is seen by them all too."""
    (tmp_path / "cached.yaml").write_text(VOLUME_IN_TMP)
    lab = Lab(new_lab_name("cf"))
    with torn_down(lab.name):
        lab("up", str(tmp_path / "cached.yaml"))
        wait_for(lambda: lab.pods()["cached"]["status"]["phase"] == "Running", "cached running")
        out = wait_for(lambda: (o := sh(lab, "cached", "cat /tmp/own /tmp/cache/v && stat -c %a /tmp")).returncode == 0
                       and o, "what the command wrote", timeout=10)
        assert out.stdout == "own\nvol\n1777\n", out.stderr
        assert not os.path.exists("/tmp/own") and not os.path.exists("/tmp/cache/v")


def test_the_containers_environment_reaches_its_command_only(lab):
    """What runs as root before the privileges go gets none of the
    container's environment: not its PATH (which its own files could fill), nor its LD_PRELOAD.
    The command gets all of it, names a shell cannot take included."""
    wait_for(lambda: lab.pods()["hijack"]["status"]["phase"] == "Running", "hijack running")
    tools = "mount setpriv unshare tini bash env sh"
    made = sh(lab, "hijack", f"mkdir -p /tmp/evil; for t in {tools}; do printf '#!/bin/sh\\ntouch /tmp/evil/ran-$t\\n' "
                             "> /tmp/evil/$t; chmod +x /tmp/evil/$t; done; ls /tmp/evil | wc -l")
    assert made.stdout.split()[-1] == "7", made.stdout + made.stderr
    out = lab.exec("hijack", "/usr/bin/env", check=False)
    assert out.returncode == 0, out.stderr
    # two programs loaded it, both as the container's user: env(1), which sets the name a shell
    # cannot take (my.dotted), and the command (an exec joins the running container: no tini)
    assert out.stderr.count("LD_PRELOAD cannot be preloaded") == 2, out.stderr
    env = out.stdout.splitlines()
    assert "my.dotted=1" in env and "GREETING=hello world" in env and "LD_PRELOAD=/tmp/evil/none.so" in env
    # none of them ran (the container's own `sh` would be its fake now: /bin/ls by its path)
    assert lab.exec("hijack", "/bin/ls", "/tmp/evil").stdout.split() == sorted(tools.split())
