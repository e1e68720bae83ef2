"""`graph`: the lab's network as a picture, from its plan: the underlay bridge, every node (its
eth0 on the underlay, its bridge cbr0 and pod CIDR), every pod (address, eth0 and the veth at
the node's end), the Services (ClusterIP, ports) with their endpoints, the load balancer and the
external client. Pure text: Graphviz dot and Mermaid; the html page wraps an svg that Graphviz
drew (app/graph.py runs `dot -Tsvg`) with a legend.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from ..model.objects import Plan
from ..plan import ipam

COLORS = {  # kind -> (fill, border); the legend says what each is
    "underlay": ("#e8e8e8", "#555555"),
    "node": ("#f4f4f4", "#777777"),
    "bridge": ("#fff2cc", "#b58900"),
    "eth": ("#ffffff", "#777777"),
    "pod": ("#dae8fc", "#1f5fa8"),
    "service": ("#ffe6cc", "#d46b08"),
    "lb": ("#e1d5e7", "#7b4b94"),
    "external": ("#d5e8d4", "#2e7d32"),
}
LEGEND = (
    ("underlay", "underlay bridge (br0): the network the nodes share"),
    ("node", "node: a network namespace (its eth0 on the underlay)"),
    ("bridge", "cbr0: the node's bridge, gateway of its pod CIDR"),
    ("pod", "pod: its address; the edge is its eth0 and the veth at the node's end"),
    ("service", "Service: ClusterIP and ports; dashed edges to its endpoints"),
    ("lb", "load balancer: LoadBalancer ingress addresses"),
    ("external", "external client, outside the cluster"),
)


@dataclass(frozen=True)
class Vertex:
    id: str
    label: tuple[str, ...]  # lines
    kind: str


@dataclass(frozen=True)
class Edge:
    a: str
    b: str
    label: str = ""
    dashed: bool = False
    directed: bool = False


@dataclass
class Cluster:
    id: str
    label: str
    kind: str
    vertices: list[Vertex] = field(default_factory=list)


@dataclass
class Picture:
    title: str
    clusters: list[Cluster]
    loose: list[Vertex]
    edges: list[Edge]


def _id(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9]", "_", p) for p in parts)


def picture(plan: Plan) -> Picture:
    """What the graph shows, as vertices, clusters and edges."""
    subnet = plan.cluster.node_subnet
    under = Cluster("cluster_underlay", f"underlay {subnet} ({plan.underlay_netns})", "underlay",
                    [Vertex("underlay", (plan.underlay_bridge, str(subnet)), "underlay")])
    lb_ips = [str(ip) for s in plan.services for ip in s.load_balancer_ips]
    loose = [Vertex("external", ("external client", str(ipam.external_client_ip(subnet))), "external"),
             Vertex("external2", ("external client 2", str(ipam.second_client_ip(subnet))), "external"),
             Vertex("lb", ("load balancer", str(ipam.load_balancer_ip(subnet)),
                           *([f"ingress {', '.join(lb_ips)}"] if lb_ips else [])), "lb")]
    edges = [Edge("external", "underlay", "eth0"), Edge("external2", "underlay", "eth0"),
             Edge("lb", "underlay", "eth0")]
    clusters = [under]
    pod_ids: dict[str, str] = {}
    for node in plan.nodes:
        c = Cluster(_id("cluster_node", node.name), f"node {node.name} ({node.netns})", "node")
        eth0, cbr0 = _id("node", node.name, "eth0"), _id("node", node.name, "cbr0")
        c.vertices += [Vertex(eth0, ("eth0", f"{node.ip}"), "eth"),
                       Vertex(cbr0, ("cbr0", f"{node.gateway}/{node.pod_cidr.prefixlen}", f"pods {node.pod_cidr}"),
                                "bridge")]
        edges += [Edge(eth0, "underlay", f"eth0 - {node.underlay_veth}"), Edge(cbr0, eth0, "routes")]
        for pod in sorted((p for p in plan.pods if p.node == node.name), key=lambda p: (p.namespace, p.name)):
            pid = _id("pod", pod.namespace, pod.name)
            pod_ids[pod.key] = pid
            name = pod.name if pod.namespace == "default" else f"{pod.namespace}/{pod.name}"
            if pod.host_network:
                c.vertices.append(Vertex(pid, (name, f"{pod.ip} (hostNetwork)"), "pod"))
                edges.append(Edge(pid, eth0, "host network"))
            else:
                c.vertices.append(Vertex(pid, (name, str(pod.ip)), "pod"))
                edges.append(Edge(pid, cbr0, f"eth0 - {pod.host_veth}"))
        clusters.append(c)
    if plan.pending:  # no node takes them: no address, no namespace
        waiting = Cluster("cluster_pending", "Pending (no node takes them)", "node")
        for pod in sorted(plan.pending, key=lambda p: (p.namespace, p.name)):
            name = pod.name if pod.namespace == "default" else f"{pod.namespace}/{pod.name}"
            waiting.vertices.append(Vertex(_id("pending", pod.namespace, pod.name), (name, pod.reason), "pod"))
        clusters.append(waiting)
    svcs = Cluster("cluster_services", "Services", "service")
    for s in sorted(plan.services, key=lambda s: (s.namespace, s.name)):
        sid = _id("svc", s.namespace, s.name)
        name = s.name if s.namespace == "default" else f"{s.namespace}/{s.name}"
        ports = ", ".join(f"{p.port}{':' + str(p.node_port) if p.node_port else ''}/{p.protocol}" for p in s.ports)
        svcs.vertices.append(Vertex(sid, (f"svc {name}", f"{s.type} {s.cluster_ip or 'None (headless)'}",
                                          *([ports] if ports else [])), "service"))
        targets: dict[str, set[str]] = {}
        for p in s.ports:
            for e in p.endpoints:
                if e.ready and e.pod in pod_ids:
                    targets.setdefault(e.pod, set()).add(str(e.port))
        for e in s.addresses:
            if e.ready and e.pod in pod_ids:
                targets.setdefault(e.pod, set())
        for pod, ports_ in sorted(targets.items()):
            edges.append(Edge(sid, pod_ids[pod], ",".join(sorted(ports_, key=int)), dashed=True, directed=True))
        for ip in s.load_balancer_ips:
            edges.append(Edge("lb", sid, str(ip), directed=True))
    if svcs.vertices:
        clusters.append(svcs)
    return Picture(f"kubenet-lab {plan.lab}", clusters, loose, edges)


# ------------------------------------------------------------------------------------------
# Graphviz
# ------------------------------------------------------------------------------------------


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_vertex(v: Vertex) -> str:
    fill, border = COLORS[v.kind]
    shape = {"service": "ellipse", "underlay": "box3d", "bridge": "box"}.get(v.kind, "box")
    label = "\\n".join(l.replace("\\", "\\\\").replace('"', '\\"') for l in v.label)
    return (f'{v.id} [label="{label}", shape={shape}, style="filled,rounded", fillcolor="{fill}", '
            f'color="{border}"];')


def to_dot(p: Picture) -> str:
    out = [f"graph {_dot_str(p.title)} {{",
           '  graph [fontname="Helvetica", fontsize=11, compound=true, newrank=true, label=' + _dot_str(p.title)
           + ', labelloc=t];',
           '  node [fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9, color="#666666"];']
    for c in p.clusters:
        fill, border = COLORS[c.kind]
        out.append(f"  subgraph {c.id} {{")
        out.append(f'    label={_dot_str(c.label)}; style="filled,rounded"; fillcolor="{fill}"; color="{border}";')
        out += [f"    {_dot_vertex(v)}" for v in c.vertices]
        out.append("  }")
    out += [f"  {_dot_vertex(v)}" for v in p.loose]
    for e in p.edges:
        attrs = []
        if e.label:
            attrs.append(f"label={_dot_str(e.label)}")
        if e.dashed:
            attrs.append("style=dashed")
        if e.directed:
            attrs.append("dir=forward")
        out.append(f"  {e.a} -- {e.b}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------
# Mermaid
# ------------------------------------------------------------------------------------------


def _mm(text: str) -> str:
    return html.escape(text, quote=True).replace("&quot;", "#quot;").replace("&#x27;", "'")


def _mm_vertex(v: Vertex) -> str:
    label = "<br/>".join(_mm(l) for l in v.label)
    return f'{v.id}(["{label}"])' if v.kind == "service" else f'{v.id}["{label}"]'


def to_mermaid(p: Picture) -> str:
    out = ["flowchart TB"]
    for c in p.clusters:
        out.append(f'  subgraph {c.id}["{_mm(c.label)}"]')
        out += [f"    {_mm_vertex(v)}" for v in c.vertices]
        out.append("  end")
    out += [f"  {_mm_vertex(v)}" for v in p.loose]
    for e in p.edges:
        arrow = ("-.->" if e.directed else "-.-") if e.dashed else ("-->" if e.directed else "---")
        out.append(f"  {e.a} {arrow}" + (f'|"{_mm(e.label)}"|' if e.label else "") + f" {e.b}")
    kinds = {v.kind for c in p.clusters for v in c.vertices} | {v.kind for v in p.loose}
    for kind in sorted(kinds):
        fill, border = COLORS[kind]
        out.append(f"  classDef {kind} fill:{fill},stroke:{border}")
        ids = [v.id for c in p.clusters for v in c.vertices if v.kind == kind] + \
              [v.id for v in p.loose if v.kind == kind]
        out.append(f"  class {','.join(ids)} {kind}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------
# A page for a browser
# ------------------------------------------------------------------------------------------


def inline_svg(svg: str) -> str:
    """Graphviz's svg without its XML prolog and doctype, to sit inside an html page."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def to_html(plan: Plan, svg: str) -> str:
    """One self-contained page: the picture, a legend, and the pods and Services as tables."""
    e = html.escape
    legend = "".join(f'<li><span class="swatch" style="background:{COLORS[k][0]};border-color:{COLORS[k][1]}">'
                     f"</span>{e(text)}</li>" for k, text in LEGEND)
    pods = "".join(f"<tr><td>{e(p.namespace)}</td><td>{e(p.name)}</td><td>{e(str(p.ip))}</td><td>{e(p.node)}</td>"
                   f"<td>{e(p.host_veth or 'host network')}</td></tr>"
                   for p in sorted(plan.pods, key=lambda p: (p.namespace, p.name)))
    services = "".join(
        f"<tr><td>{e(s.namespace)}</td><td>{e(s.name)}</td><td>{e(s.type)}</td>"
        f"<td>{e(str(s.cluster_ip or 'None'))}</td>"
        f"<td>{e(', '.join(str(ip) for ip in s.load_balancer_ips + s.external_ips) or '-')}</td>"
        f"<td>{e(', '.join(sorted({f'{x.ip}:{x.port}' for p in s.ports for x in p.endpoints if x.ready})) or '-')}"
        f"</td></tr>" for s in sorted(plan.services, key=lambda s: (s.namespace, s.name)))
    title = e(f"kubenet-lab {plan.lab}: the pod network")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; }}
.graph svg {{ max-width: 100%; height: auto; }}
ul.legend {{ list-style: none; padding: 0; columns: 2; }}
ul.legend li {{ margin: 0.2em 0; }}
.swatch {{ display: inline-block; width: 1.2em; height: 0.9em; border: 1px solid; margin-right: 0.5em;
          vertical-align: middle; border-radius: 3px; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }}
th {{ background: #f0f0f0; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{len(plan.nodes)} nodes, {len(plan.pods)} pods, {len(plan.services)} services; kube-proxy mode
{e(plan.cluster.kube_proxy_mode)}; pod subnet {e(str(plan.cluster.pod_subnet))}, service subnet
{e(str(plan.cluster.service_subnet))}, underlay {e(str(plan.cluster.node_subnet))}.</p>
<div class="graph">
{inline_svg(svg)}
</div>
<h2>Legend</h2>
<ul class="legend">{legend}</ul>
<h2>Pods</h2>
<table id="pods"><tr><th>Namespace</th><th>Name</th><th>IP</th><th>Node</th><th>Veth (node end)</th></tr>{pods}</table>
<h2>Services</h2>
<table id="services"><tr><th>Namespace</th><th>Name</th><th>Type</th><th>Cluster IP</th><th>External</th>
<th>Ready endpoints</th></tr>{services}</table>
</body>
</html>
"""
