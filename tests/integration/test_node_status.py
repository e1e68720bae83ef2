"""A node's status comes from the lab, not a constant: a node whose network namespace is deleted
by hand (`ip netns delete LAB.node.node1`) has nothing posting for it, and `get nodes` shows it
as kubectl shows a node whose kubelet stopped posting its status (the node lifecycle
controller's Ready Unknown, NodeStatusUnknown, and its unreachable taints); `down` still
removes everything the lab made."""
from __future__ import annotations

import json
import os
import subprocess

from kubenet_lab import output
from kubenet_lab.fabric import state
from kubenet_lab.plan import naming

from .conftest import MANIFESTS, Lab, lab_namespaces, lab_processes, new_lab_name, torn_down

STOPPED = {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
           "message": "Kubelet stopped posting node status."}


def _table(lab: Lab, *args: str) -> dict[str, list[str]]:
    lines = lab("get", "nodes", *args).stdout.splitlines()
    assert lines[0].split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_a_node_whose_namespace_was_deleted_by_hand_is_not_ready_and_down_still_cleans_up(host_before):
    lab = Lab(new_lab_name("nr"))
    with torn_down(lab.name):
        lab("up", str(MANIFESTS / "lab.yaml"))
        before = _table(lab)
        assert {name: row[1] for name, row in before.items()} == {"node1": "Ready", "node2": "Ready"}
        assert {row[4] for row in before.values()} == {output.KUBELET_VERSION}
        ready = json.loads(lab("get", "node", "node1", "-o", "json").stdout)
        assert ready["status"]["conditions"][0]["status"] == "True"
        assert ready["status"]["conditions"][0]["reason"] == "KubeletReady"
        assert "taints" not in ready["spec"]

        subprocess.run(["ip", "netns", "delete", naming.node_netns(lab.name, "node1")], check=True)

        after = _table(lab, "-o", "wide")
        assert (after["node1"][1], after["node2"][1]) == ("NotReady", "Ready")
        assert after["node1"][4] == after["node2"][4] == output.KUBELET_VERSION
        assert after["node1"][5] == "172.18.0.2"  # INTERNAL-IP: the Node object is still there
        gone = json.loads(lab("get", "node", "node1", "-o", "json").stdout)
        assert gone["status"]["conditions"] == [STOPPED]
        assert gone["status"]["nodeInfo"]["kubeletVersion"] == output.KUBELET_VERSION
        assert gone["spec"]["taints"] == [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                                          {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]
        assert lab("get", "nodes", "-o", "jsonpath={.items[*].status.conditions[0].status}").stdout == "Unknown True"
        described = lab("describe", "node", "node1").stdout
        assert "NodeStatusUnknown" in described and "Kubelet stopped posting node status." in described
        assert "node.kubernetes.io/unreachable:NoExecute" in described

        lab("down")
        assert lab_namespaces(lab.name) == []
        assert lab_processes(lab.name) == []
        assert not os.path.exists(state.state_dir(lab.name))


def test_a_pool_covering_a_node_is_refused_and_nothing_is_made(tmp_path):
    name = new_lab_name("nr")
    bad = tmp_path / "cluster.yaml"
    bad.write_text("apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\n"
                   "networking:\n  loadBalancerPool: 172.18.0.2-172.18.0.9\n")
    with torn_down(name):
        proc = Lab(name)("up", str(bad), check=False)
        assert proc.returncode == 2, proc.stderr
        assert (f"{bad}:4: networking.loadBalancerPool: 172.18.0.2-172.18.0.9 covers 172.18.0.2 (node node1) and "
                "172.18.0.3 (node node2)") in proc.stderr
        assert lab_namespaces(name) == [] and lab_processes(name) == []
        assert not os.path.exists(state.state_dir(name))
