"""get -w: the table, then a row for each pod that appears, changes or goes, until Ctrl-C."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

from .conftest import MANIFESTS, kl, new_lab_name, torn_down

DEPLOYMENT = (MANIFESTS / "nginx-deployment.yaml").read_text()


def lines_until(proc: subprocess.Popen, done, timeout: float = 20) -> list[str]:
    got, buf = [], b""
    deadline = time.monotonic() + timeout
    while not done(got):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; so far: {got}"
        if select.select([proc.stdout], [], [], left)[0]:
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"get -w ended: {got}"
            buf += chunk
            *complete, buf = buf.split(b"\n")
            got += [c.decode() for c in complete]
    return got


def test_get_pods_watch_prints_the_table_then_each_change(tmp_path):
    lab = new_lab_name("wa")
    (tmp_path / "web.yaml").write_text(DEPLOYMENT)
    with torn_down(lab):
        kl(lab, "up", str(tmp_path / "web.yaml"))
        pods = kl(lab, "get", "pods", "-l", "app=web", "-o", "name").stdout.split()
        assert len(pods) == 2
        proc = subprocess.Popen([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab, "get", "pods", "-l",
                                 "app=web", "-w"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            table = lines_until(proc, lambda got: len(got) >= 3)
            assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
            assert sorted(l.split()[0] for l in table[1:]) == sorted(p.split("/")[1] for p in pods)
            time.sleep(1.2)  # a few looks with nothing changed: nothing printed (AGE moves, no row for it)
            kl(lab, "scale", "deployment/web", "--replicas", "3")
            new = lines_until(proc, lambda got: len(got) >= 1)
            name, ready, status = new[0].split()[:3]
            assert name.startswith("web-") and f"pod/{name}" not in pods
            kl(lab, "delete", "pod", pods[0].split("/")[1])
            after = lines_until(proc, lambda got: any(l.split()[0] == pods[0].split("/")[1] for l in got))
            gone = next(l for l in after if l.split()[0] == pods[0].split("/")[1])
            assert gone.split()[2] == "Terminating"
            live = {l.split("/")[1] for l in kl(lab, "get", "pods", "-l", "app=web", "-o", "name").stdout.split()}
            assert len(live) == 3 and pods[0].split("/")[1] not in live
        finally:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            assert proc.wait(10) == 0, proc.stderr.read().decode()
            proc.stdout.close()
            proc.stderr.close()
