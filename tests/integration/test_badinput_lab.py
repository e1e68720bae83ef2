"""Bad input against a running lab: `up` refuses it with exit status 2 and the corpus' message
(tests/badinput/), and nothing of the lab changes: the same namespaces, the same pods and
Services as `get` shows them, the same rules in every node and in the balancer, the same state
and supervisor.

The lab runs tests/badinput/running/base.yaml. A representative subset of the corpus is given
beside it (`up base.yaml BAD`), and every running-lab case (a clusterIP or a Deployment's
selector changed, a NodePort or clusterIP a running Service holds, the Cluster's networks
changed) is given alone, as the whole new input.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from kubenet_lab.fabric import state
from kubenet_lab.plan import naming

from ..unit.test_badinput import BASE, CORPUS, ON_A_RUNNING_LAB, expectations, matches, name
from .conftest import _COUNTERS, Lab, lab_namespaces, lab_processes, new_lab_name, torn_down, wait_for

# Refused whether or not a lab runs, with the same message beside the running lab's manifests.
SUBSET = ["yaml-unclosed-flow.yaml", "type-replicas-string.yaml", "missing-selector.yaml",
          "unknown-field-imagepullpolcy.yaml", "dup-pod-across-files", "clusterip-conflict-across-files",
          "nodeport-conflict-across-files", "clusterip-dns-reserved.yaml", "name-not-dns1123.yaml",
          "selector-mismatch-deployment.yaml", "probe-no-handler.yaml", "negative-replicas.yaml",
          "nodename-unknown.yaml", "podcidr-overlap.yaml", "proxy-mode-ipvs.yaml", "lbpool-covers-node.yaml"]


def up(lab: Lab, *paths: str) -> subprocess.CompletedProcess:
    """`kubenet-lab up PATHS` from the corpus directory, so messages name the files as there."""
    return subprocess.run([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab.name, "up", *paths],
                          capture_output=True, text=True, cwd=CORPUS, timeout=120)


def _without_age(table: str) -> list[list[str]]:
    """A kubectl table's cells, without the AGE column (time moves on between two gets)."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()]
    if not rows or "AGE" not in rows[0]:
        return rows
    age = rows[0].index("AGE")
    return [row[:age] + row[age + 1:] for row in rows]


def _rules(netns: str) -> tuple[list[str], str]:
    def run(*cmd: str) -> str:
        return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True).stdout
    iptables = [_COUNTERS.sub("", l) for l in run("iptables-save").splitlines() if not l.startswith("#")]
    return iptables, _COUNTERS.sub("", run("nft", "list", "ruleset"))


def snapshot(lab: Lab) -> dict:
    with open(state.plan_path(lab.name)) as f:
        plan = f.read()
    nodes = [naming.node_netns(lab.name, n) for n in ("node1", "node2")]
    return {
        "namespaces": sorted(lab_namespaces(lab.name)),
        "pods": _without_age(lab("get", "pods", "-A", "-o", "wide").stdout),
        "services": _without_age(lab("get", "svc", "-A", "-o", "wide").stdout),
        "deployments": _without_age(lab("get", "deployments", "-A").stdout),
        "rules": {ns: _rules(ns) for ns in [*nodes, naming.lb_netns(lab.name)]},
        "plan": plan,
        "supervisor": lab_processes(lab.name),
    }


@pytest.fixture(scope="module")
def running(host_before):
    lab = Lab(new_lab_name("bad"))
    with torn_down(lab.name):
        result = up(lab, BASE)
        assert result.returncode == 0, result.stderr
        wait_for(lambda: all(p["status"]["phase"] == "Running" for p in lab.pods().values()), "pods running")
        # readiness settles (the supervisor has every node's rules follow it): two snapshots agree
        last = {"value": None}

        def settled():
            now = snapshot(lab)
            same, last["value"] = now == last["value"], now
            return same
        wait_for(settled, "the lab to settle", interval=0.5)
        yield lab


def _refused(lab: Lab, before: dict, case: str, paths: list[str]) -> None:
    result = up(lab, *paths)
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    errors = [l.removeprefix("error: ") for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert matches(expectations(CORPUS / case), errors), result.stderr
    assert snapshot(lab) == before


@pytest.mark.parametrize("case", SUBSET)
def test_bad_input_beside_a_running_lab_changes_nothing(running, case):
    before = snapshot(running)
    _refused(running, before, case, [BASE, case])


@pytest.mark.parametrize("case", ON_A_RUNNING_LAB, ids=name)
def test_a_change_a_running_lab_refuses_changes_nothing(running, case):
    before = snapshot(running)
    _refused(running, before, name(case), [name(case)])


def test_the_lab_still_takes_its_own_manifests(running):
    """After all the refusals, the running lab's own input is still a no-op (nothing was left
    half-changed that an `up` would now repair)."""
    before = snapshot(running)
    assert up(running, BASE).returncode == 0
    assert snapshot(running) == before
