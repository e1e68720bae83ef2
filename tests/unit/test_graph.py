"""`graph` as text, from the example lab's plan: Graphviz dot and Mermaid name every node, pod
(address, veth), Service and endpoint, the load balancer and the external client; the html page
is self-contained. No root, no lab (Graphviz, where installed, checks the dot text parses)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import kubenet_lab
from kubenet_lab.cli import main
from kubenet_lab.inspect import graph
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan

EXAMPLES = Path(kubenet_lab.__file__).parent / "examples"


@pytest.fixture(scope="module")
def plan():
    return make_plan(load_model([str(EXAMPLES)]), "demo", None)


def test_dot_names_every_part_of_the_network(plan):
    dot = graph.to_dot(graph.picture(plan))
    assert dot.startswith('graph "kubenet-lab demo" {')
    for node in plan.nodes:
        assert f"subgraph cluster_node_{node.name} {{" in dot
        assert f'label="eth0\\n{node.ip}"' in dot
        assert f'label="cbr0\\n{node.gateway}/24\\npods {node.pod_cidr}"' in dot
        assert f'-- underlay [label="eth0 - {node.underlay_veth}"]' in dot
    for pod in plan.pods:
        pid = "pod_" + re.sub(r"[^A-Za-z0-9]", "_", pod.namespace) + "_" + re.sub(r"[^A-Za-z0-9]", "_", pod.name)
        assert f"\\n{pod.ip}\"" in dot and pod.name in dot
        assert f'{pid} -- node_{pod.node}_cbr0 [label="eth0 - {pod.host_veth}"];' in dot
    web = next(s for s in plan.services if s.name == "web")
    for e in web.ports[0].endpoints:
        pid = "pod_default_" + e.pod.split("/")[1].replace("-", "_")
        assert f'svc_default_web -- {pid} [label="8080,8081", style=dashed, dir=forward];' in dot
    lb_ip = next(s for s in plan.services if s.name == "web-public").load_balancer_ips[0]
    assert f'lb -- svc_default_web_public [label="{lb_ip}", dir=forward];' in dot
    assert 'external [label="external client\\n172.18.0.254"' in dot
    assert 'lb [label="load balancer\\n172.18.0.253\\ningress 172.18.0.192"' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed (setup.sh installs it)")
def test_graphviz_reads_the_dot_text(plan):
    dot = graph.to_dot(graph.picture(plan))
    proc = subprocess.run(["dot", "-Tcanon"], input=dot, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not proc.stderr


def test_mermaid_has_subgraphs_vertices_edges_and_classes(plan):
    mm = graph.to_mermaid(graph.picture(plan)).splitlines()
    assert mm[0] == "flowchart TB"
    assert mm.count("  end") == len(plan.nodes) + 2  # the underlay, each node, the Services
    for pod in plan.pods:
        assert any(line.strip().startswith("pod_") and f"{pod.name}<br/>{pod.ip}" in line for line in mm)
        assert any(f'---|"eth0 - {pod.host_veth}"|' in line for line in mm)
    assert '  lb -->|"172.18.0.192"| svc_default_web_public' in mm
    assert any(line.startswith("  svc_default_web -.->|") for line in mm)
    assert "  classDef pod fill:#dae8fc,stroke:#1f5fa8" in mm
    vertex_ids = {m.group(1) for line in mm for m in [re.match(r"\s+(\w+)[\[(]", line)] if m}
    edge_ends = {w for line in mm if re.match(r"  \w+ (---|-->|-\.->|-\.-)", line)
                 for w in (line.split()[0], line.split()[-1])}
    assert edge_ends <= vertex_ids  # no edge to a vertex that is not drawn


def test_mermaid_escapes_quotes_and_markup():
    assert graph._mm('a "b" <c>') == "a #quot;b#quot; &lt;c&gt;"


def test_html_is_one_page_with_the_svg_inline_a_legend_and_every_pod(plan):
    svg = '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg"><g/></svg>\n'
    page = graph.to_html(plan, svg)
    assert page.startswith("<!DOCTYPE html>") and "<?xml" not in page
    assert '<svg xmlns="http://www.w3.org/2000/svg"><g/></svg>' in page
    assert "<h2>Legend</h2>" in page and "src=" not in page and "href=" not in page  # nothing to fetch
    for pod in plan.pods:
        assert f"<td>{pod.name}</td><td>{pod.ip}</td><td>{pod.node}</td><td>{pod.host_veth}</td>" in page


def test_graph_refuses_an_unknown_format(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBENET_LAB_STATE_ROOT", str(tmp_path))
    out = CliRunner().invoke(main, ["--lab", "unit", "graph", "-o", "png"])
    assert out.exit_code == 2
    assert 'unable to match a printer suitable for the output format "png"' in out.output


def test_a_pod_no_node_takes_is_drawn_apart_without_an_address():
    import io
    import textwrap
    extra = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: picky}
        spec:
          nodeSelector: {disktype: ssd}
          containers: [{name: c, image: nginx}]
        """)
    plan = make_plan(load_model([str(EXAMPLES), "-"], io.StringIO(extra)), "demo", None)
    assert [p.name for p in plan.pending] == ["picky"]
    dot = graph.to_dot(graph.picture(plan))
    assert 'subgraph cluster_pending {' in dot
    assert 'pending_default_picky [label="picky\\nUnschedulable"' in dot
    assert "pending_default_picky --" not in dot and "-- pending_default_picky" not in dot
    assert 'pending_default_picky["picky<br/>Unschedulable"]' in graph.to_mermaid(graph.picture(plan))
