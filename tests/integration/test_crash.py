"""An `up` killed half-way leaves nothing `down` cannot find, and the next `up` mends the lab."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import MANIFESTS, Lab, kl, lab_namespaces, lab_processes, new_lab_name, torn_down


def test_a_namespace_made_before_its_mark_is_still_the_labs(tmp_path):
    """Killed between creating a namespace and marking it: the intent the lab wrote first
    makes it the lab's own for the next `up` (which makes it anew) and for `down`."""
    lab = Lab(new_lab_name("k"))
    half = f"{lab.name}.pod.default.a1"
    with torn_down(lab.name):
        os.makedirs(f"/run/kubenet-lab/{lab.name}", exist_ok=True)
        with open(f"/run/kubenet-lab/{lab.name}/creating.json", "w") as f:
            json.dump([half], f)
        subprocess.run(["ip", "netns", "add", half], check=True)  # unmarked, nothing inside
        lab("up", str(MANIFESTS / "lab.yaml"))
        assert lab.exec("a2", "curl", "-s", "--max-time", "10", f"http://{lab.ip('a1')}:8080/hostname").stdout == "a1"
    assert lab_namespaces(lab.name) == []


@pytest.mark.parametrize("after", [0.3, 0.6, 0.9, 1.2])
def test_down_after_an_up_killed_at_any_moment_leaves_nothing(after):
    lab = Lab(new_lab_name("c"))
    with torn_down(lab.name):
        proc = subprocess.Popen([sys.executable, "-m", "kubenet_lab", "--lab", lab.name, "up",
                                 str(MANIFESTS / "lab.yaml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(after)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # No pause: the killed up's workers die with it, and down waits for the lab's lock,
        # which they hold (inherited) until they are gone.
        kl(lab.name, "down")
        assert lab_namespaces(lab.name) == []
        assert lab_processes(lab.name) == []
