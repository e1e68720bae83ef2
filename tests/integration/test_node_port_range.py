"""networking.serviceNodePortRange on a real lab: a Cluster config with a small range
(30100-30110) gives its Services NodePorts from it, reachable from outside the cluster on every
node; `up` again keeps them; a nodePort outside the range is refused in the API server's words
and changes nothing."""
from __future__ import annotations

import json

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down, wait_for

MANIFEST = MANIFESTS / "nodeport-range.yaml"

# `python3 -c CLIENT IP PORT`: agnhost serve-hostname's answer over TCP (it writes its hostname
# and closes), or the error's name.
CLIENT = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print(s.recv(512).decode().strip())
except OSError as e:
    print(type(e).__name__)
"""


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("npr"))
    with torn_down(lab.name):
        lab("up", str(MANIFEST))
        lab.node_ips = {n["metadata"]["name"]: n["status"]["addresses"][0]["address"]
                        for n in json.loads(lab("get", "nodes", "-o", "json").stdout)["items"]}
        yield lab


def node_ports(lab: Lab) -> dict[str, int]:
    items = json.loads(lab("get", "svc", "-o", "json").stdout)["items"]
    return {s["metadata"]["name"]: p["nodePort"] for s in items for p in s["spec"]["ports"] if "nodePort" in p}


def ask(lab: Lab, node: str, port: int) -> str:
    return lab.exec("external", "python3", "-c", CLIENT, lab.node_ips[node], str(port)).stdout.strip()


def test_node_ports_come_from_the_configured_range(lab):
    # 11 ports: no lower band; the written 30110 is web-fixed's, the others the lowest free ones
    assert node_ports(lab) == {"web-fixed": 30110, "web-auto": 30100, "web-auto2": 30101}
    row = next(l for l in lab("get", "svc", "web-auto").stdout.splitlines() if l.startswith("web-auto"))
    assert "80:30100/TCP" in row.split()


def test_an_allocated_node_port_answers_from_outside_on_every_node(lab):
    # the pod sits on node2: node1 forwards, node2 delivers locally
    for node in ("node1", "node2"):
        for port in (30100, 30110):
            assert wait_for(lambda node=node, port=port: ask(lab, node, port) == "web",
                            f"external -> {node}:{port}", timeout=20)
    assert ask(lab, "node1", 30099) == "ConnectionRefusedError"  # below the range: no NodePort there


def test_up_again_keeps_the_ports_and_an_out_of_range_node_port_is_refused(lab, tmp_path):
    before = node_ports(lab)
    lab("up", str(MANIFEST))
    assert node_ports(lab) == before
    bad = tmp_path / "outside.yaml"
    bad.write_text(MANIFEST.read_text() + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web-low}\nspec:\n"
                   "  type: NodePort\n  selector: {app: web}\n"
                   "  ports: [{port: 80, targetPort: 8080, nodePort: 30099}]\n")
    lines = MANIFEST.read_text().count("\n")
    result = lab("up", str(bad), check=False)
    assert result.returncode == 2, result.stderr
    assert (f"{bad}:{lines + 8}: spec.ports[0].nodePort: Invalid value: 30099: provided port is not in the valid "
            "range. The range of valid ports is 30100-30110") in result.stderr
    assert node_ports(lab) == before
    assert ask(lab, "node1", 30100) == "web"


def test_apply_allocates_from_the_running_labs_range(lab, tmp_path):
    late = tmp_path / "late.yaml"
    late.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: late}\nspec:\n  type: NodePort\n"
                    "  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n")
    lab("apply", "-f", str(late))
    assert node_ports(lab)["late"] == 30102  # the Cluster object the lab holds still says 30100-30110
    assert wait_for(lambda: ask(lab, "node2", 30102) == "web", "external -> node2:30102", timeout=20)
    late.write_text(late.read_text().replace("targetPort: 8080}", "targetPort: 8080, nodePort: 30000}")
                    .replace("name: late}", "name: late-low}"))
    result = lab("apply", "-f", str(late), check=False)
    assert result.returncode == 2, result.stderr
    assert (f"{late}:7: spec.ports[0].nodePort: Invalid value: 30000: provided port is not in the valid range. "
            "The range of valid ports is 30100-30110") in result.stderr
    assert "late-low" not in node_ports(lab)
