"""Progress of up, apply, scale and down: a status line on standard error when it is a terminal
(a real pseudo-terminal here), nothing but the summary when it is not or with -q."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys

from kubenet_lab.kernel.steps import STEPS

from .conftest import MANIFESTS, kl, new_lab_name, torn_down

ONE_POD = """apiVersion: v1
kind: Pod
metadata:
  name: solo
spec:
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 80}]
"""
DEPLOYMENT = (MANIFESTS / "nginx-deployment.yaml").read_text()
ESCAPES = re.compile(r"[\r\x1b]")


def on_a_terminal(lab: str, *args: str, input: str | None = None) -> tuple[subprocess.CompletedProcess, str]:
    """Run the CLI with standard error on a pseudo-terminal (stdout a pipe); what the terminal got."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab, *args],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave, text=True)
        os.close(slave)
        out, _ = proc.communicate(input, timeout=120)
        got = b""
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            got += chunk
    finally:
        os.close(master)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), got.decode()


def test_without_a_terminal_a_change_prints_its_summary_alone(tmp_path):
    lab = new_lab_name("pg")
    (tmp_path / "solo.yaml").write_text(ONE_POD)
    (tmp_path / "web.yaml").write_text(DEPLOYMENT)
    with torn_down(lab):
        up = kl(lab, "up", str(tmp_path / "solo.yaml"))
        assert up.stderr == ""
        lines = up.stdout.splitlines()
        assert len(lines) == 2 and re.fullmatch(rf"lab {lab} is up: 2 nodes, \d+ pods, \d+ services, kube-proxy mode "
                                                r"iptables \(\d+ namespaces created, 0 removed, [\d.]+s\)", lines[0])
        assert lines[1] == f"next: kubenet-lab --lab {lab} get pods -o wide"
        applied = kl(lab, "apply", "-f", str(tmp_path / "web.yaml"))
        assert (applied.stdout, applied.stderr) == ("deployment.apps/web created\n", "")
        scaled = kl(lab, "scale", "deployment/web", "--replicas", "3")
        assert (scaled.stdout, scaled.stderr) == ("deployment.apps/web scaled\n", "")
        down = kl(lab, "down")
        assert down.stderr == "" and re.fullmatch(rf"lab {lab} removed \(\d+ namespaces, [\d.]+s\)\n", down.stdout)


def test_on_a_terminal_a_change_shows_its_steps_then_its_summary(tmp_path):
    lab = new_lab_name("pg")
    (tmp_path / "solo.yaml").write_text(ONE_POD)
    (tmp_path / "web.yaml").write_text(DEPLOYMENT)
    with torn_down(lab):
        up, term = on_a_terminal(lab, "up", str(tmp_path / "solo.yaml"))
        assert up.returncode == 0 and up.stdout.startswith(f"lab {lab} is up: ")
        # the steps in order, each rewriting the line, and the line cleared at the end
        shown = [s for s in re.split(r"\r\x1b\[K", term) if s.strip("\r")]
        steps = [re.match(rf"up {lab}: (.+) \[(\d+)/{len(STEPS)}\] [\d.]+s\r$", s) for s in shown]
        assert all(steps), shown
        assert [m.group(1) for m in steps][:1] == ["planning"]
        assert {"pods created", "rules loaded", "containers started", "events recorded"} <= {m.group(1) for m in steps}
        places = [int(m.group(2)) for m in steps]
        assert places == sorted(places) and places[-1] == len(STEPS)
        assert term.endswith("\r\x1b[K")  # cleared: what follows stands alone

        applied, term = on_a_terminal(lab, "apply", "-f", str(tmp_path / "web.yaml"))
        assert applied.stdout == "deployment.apps/web created\n"
        assert f"apply {lab}: pods created [8/{len(STEPS)}]" in term
        summary = term.rsplit("\r\x1b[K", 1)[1]
        assert re.fullmatch(rf"lab {lab} changed: 2 namespaces created, 0 removed, rules loaded in \d nodes? "
                            r"\([\d.]+s\)\r?\n", summary), repr(summary)

        quiet, term = on_a_terminal(lab, "scale", "deployment/web", "--replicas", "3", "-q")
        assert (quiet.stdout, term) == ("deployment.apps/web scaled\n", "")

        down, term = on_a_terminal(lab, "down")
        assert f"down {lab}: removing" in term and term.endswith("\r\x1b[K")
        assert down.stdout.startswith(f"lab {lab} removed (")
