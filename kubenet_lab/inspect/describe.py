"""What `describe` prints, as kubectl's describers lay it out (k8s.io/kubectl/pkg/describe,
v1.31, the version the lab's nodes report), from kubectl-style API objects (the dicts `get -o
json` prints), the lab's events, and the network view (inspect/netview.py). Pure: no clock, no
kernel; ages come already written.

kubectl writes each line with tab-separated cells through Go's text/tabwriter (minwidth 0,
padding 2, spaces): `tabwriter` below does the same, so columns line up exactly as kubectl's do,
trailing blanks included (`Initialized \tTrue \n` keeps its space).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Mapping, Sequence

from ..model.objects import PlannedContainer, Probe, node_roles

NONE = "<none>"


# ------------------------------------------------------------------------------------------
# Go's text/tabwriter, as kubectl's tabbedString sets it up
# ------------------------------------------------------------------------------------------


def tabwriter(text: str, padding: int = 2) -> str:
    """Align tab-terminated cells into columns, as Go's tabwriter does: a column block is a run
    of consecutive lines that have a cell in that column (a cell is text ended by a tab; a
    line's last cell is not aligned); each block is as wide as its widest cell plus `padding`."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def write(rows: list[list[str]], widths: list[int]) -> None:
        for cells in rows:
            parts = []
            for j, cell in enumerate(cells):
                parts.append(cell.ljust(widths[j]) if j < len(widths) else cell)
            out.append("".join(parts))

    def fmt(line0: int, line1: int, widths: list[int]) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(lines[line0:this], widths)
            line0 = this
            width = 0
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            fmt(line0, this, widths + [width])
            line0 = this
        write(lines[line0:line1], widths)

    fmt(0, len(lines), [])
    return "\n".join(out)


class Writer:
    """kubectl's PrefixWriter: two spaces per level; `flush` ends a tabwriter block (kubectl
    flushes before the events table, so it is aligned on its own)."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.buf: list[str] = []

    def w(self, level: int, text: str) -> None:
        self.buf.append("  " * level + text)

    def flush(self) -> None:
        if self.buf:
            self.done.append(tabwriter("".join(self.buf)))
            self.buf = []

    def text(self) -> str:
        self.flush()
        return "".join(self.done)


# ------------------------------------------------------------------------------------------
# kubectl's small printers
# ------------------------------------------------------------------------------------------


def rfc1123z(iso: str | None) -> str:
    """An API timestamp (2026-11-29T14:58:41Z) as kubectl prints it (time.RFC1123Z), in this
    machine's time zone."""
    if not iso:
        return ""
    when = datetime.fromisoformat(iso)  # the Z is UTC (not strptime: its import costs `describe` a millisecond)
    return when.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


def labels_multiline(out: Writer, title: str, labels: Mapping[str, str] | None, indent: str = "") -> None:
    out.w(0, f"{indent}{title}:\t")
    if not labels:
        out.w(0, f"{NONE}\n")
        return
    for i, key in enumerate(sorted(labels)):
        out.w(0, ("" if i == 0 else f"{indent}\t") + f"{key}={labels[key]}\n")


MAX_ANNOTATION_LEN = 140
SKIPPED_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration"}


def annotations_multiline(out: Writer, title: str, annotations: Mapping[str, str] | None) -> None:
    out.w(0, f"{title}:\t")
    keys = sorted(k for k in (annotations or {}) if k not in SKIPPED_ANNOTATIONS)
    if not keys:
        out.w(0, f"{NONE}\n")
        return
    for i, key in enumerate(keys):
        if i:
            out.w(0, "\t")
        value = annotations[key].removesuffix("\n")
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            out.w(0, f"{key}:\n")
            for s in value.split("\n"):
                s = s if len(s) <= MAX_ANNOTATION_LEN - 2 else s[:MAX_ANNOTATION_LEN - 2] + "..."
                out.w(0, f"\t  {s}\n")
        else:
            out.w(0, f"{key}: {value}\n")


def tolerations_multiline(out: Writer, title: str, tolerations: Sequence[Mapping], indent: str = "") -> None:
    out.w(0, f"{indent}{title}:\t")
    if not tolerations:
        out.w(0, f"{NONE}\n")
        return
    for i, t in enumerate(sorted(tolerations, key=lambda t: t.get("key", ""))):
        text = t.get("key", "")
        if t.get("value"):
            text += f"={t['value']}"
        if t.get("effect"):
            text += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists" if (t.get("key") or t.get("effect")) else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        out.w(0, ("" if i == 0 else f"{indent}\t") + text + "\n")


def format_selector(selector: Mapping | None) -> str:
    """metav1.FormatLabelSelector: matchLabels as k=v, expressions as `k in (a,b)`, sorted."""
    if not selector:
        return NONE
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for e in selector.get("matchExpressions") or []:
        op, values = e["operator"], ",".join(sorted(e.get("values") or []))
        parts.append({"In": f"{e['key']} in ({values})", "NotIn": f"{e['key']} notin ({values})",
                      "Exists": e["key"], "DoesNotExist": f"!{e['key']}"}.get(op, e["key"]))
    return ",".join(sorted(parts)) or NONE


def describe_probe(probe: Probe) -> str:
    """kubectl 1.31's DescribeProbe: `http-get http://:8080/healthz delay=0s timeout=1s
    period=10s #success=1 #failure=3`."""
    attrs = (f"delay={probe.initial_delay}s timeout={probe.timeout}s period={probe.period}s "
             f"#success={probe.success_threshold} #failure={probe.failure_threshold}")
    if probe.handler == "exec":
        return f"exec [{' '.join(probe.command)}] {attrs}"
    if probe.handler == "httpGet":
        host = probe.host or ""
        port = "" if probe.port is None else str(probe.port)
        hostport = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        return f"http-get {probe.scheme.lower()}://{hostport}{probe.path} {attrs}"
    if probe.handler == "tcpSocket":
        return f"tcp-socket {probe.host or ''}:{probe.port} {attrs}"
    if probe.handler == "grpc":
        return f"grpc <pod>:{probe.port}  {attrs}"
    return f"unknown {attrs}"


# ------------------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    """One aggregated event as `describe` shows it; `age` is kubectl's Age column, already
    written (`5s`, or `2s (x3 over 40s)` for a repeated one)."""

    type: str
    reason: str
    age: str
    source: str
    message: str


def events_section(out: Writer, events: Sequence[EventRow]) -> None:
    if not events:
        out.w(0, f"Events:\t{NONE}\n")
        return
    out.flush()
    out.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    out.w(1, "----\t------\t----\t----\t-------\n")
    for e in events:
        out.w(1, f"{e.type}\t{e.reason}\t{e.age}\t{e.source}\t{e.message.strip()}\n")


def event_age(count: int, first_age: str, last_age: str) -> str:
    return f"{last_age} (x{count} over {first_age})" if count > 1 else first_age


# ------------------------------------------------------------------------------------------
# Containers
# ------------------------------------------------------------------------------------------


def _ports(ports: Iterable[Mapping], field: str) -> str:
    return ", ".join(f"{p.get(field, 0)}/{p.get('protocol', 'TCP')}" + (f" ({p['name']})" if p.get("name") else "")
                     for p in ports)


def _state(out: Writer, title: str, state: Mapping) -> None:
    if "running" in state:
        out.w(2, f"{title}:\tRunning\n")
        out.w(3, f"Started:\t{rfc1123z(state['running'].get('startedAt'))}\n")
    elif "terminated" in state:
        t = state["terminated"]
        out.w(2, f"{title}:\tTerminated\n")
        if t.get("reason"):
            out.w(3, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            out.w(3, f"Message:\t{t['message']}\n")
        out.w(3, f"Exit Code:\t{t.get('exitCode', 0)}\n")
        out.w(3, f"Started:\t{rfc1123z(t.get('startedAt'))}\n")
        out.w(3, f"Finished:\t{rfc1123z(t.get('finishedAt'))}\n")
    else:
        out.w(2, f"{title}:\tWaiting\n")
        reason = (state.get("waiting") or {}).get("reason")
        if reason:
            out.w(3, f"Reason:\t{reason}\n")


def containers_section(out: Writer, title: str, specs: Sequence[Mapping], statuses: Sequence[Mapping] | None,
                       planned: Mapping[str, PlannedContainer], space: str = "") -> None:
    """kubectl's describeContainers over the spec's containers, their statuses (None in a pod
    template) and what the lab planned for each (its command, probes and variables)."""
    out.w(0, f"{space}{title}:{' ' + NONE if not specs else ''}\n")
    by_name = {s["name"]: s for s in statuses or ()}
    for spec in specs:
        status = by_name.get(spec["name"])
        c = planned.get(spec["name"])
        out.w(1, f"{' ' if space else ''}{spec['name']}:\n")
        if status is not None and status.get("containerID"):
            out.w(2, f"Container ID:\t{status['containerID']}\n")
        out.w(2, f"Image:\t{spec.get('image', '')}\n")
        ports = spec.get("ports") or []
        text = _ports(ports, "containerPort")
        out.w(2, f"Ports:\t{text}\n" if "," in text else f"Port:\t{text or NONE}\n")
        text = _ports(ports, "hostPort")
        out.w(2, f"Host Ports:\t{text}\n" if "," in text else f"Host Port:\t{text or NONE}\n")
        for key, label in (("command", "Command"), ("args", "Args")):
            if spec.get(key):
                out.w(2, f"{label}:\n")
                for arg in spec[key]:
                    for s in str(arg).split("\n"):
                        out.w(3, f"{s}\n")
        if status is not None:
            _state(out, "State", status.get("state") or {})
            last = status.get("lastState") or {}
            if "terminated" in last:
                _state(out, "Last State", last)
            out.w(2, f"Ready:\t{'True' if status.get('ready') else 'False'}\n")
            out.w(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
        if c is not None:
            for probe, label in ((c.liveness_probe, "Liveness"), (c.readiness_probe, "Readiness"),
                                 (c.startup_probe, "Startup")):
                if probe is not None:
                    out.w(2, f"{label}:\t{describe_probe(probe)}\n")
        _environment(out, c)
        _mounts(out, c)


def _environment(out: Writer, c: PlannedContainer | None) -> None:
    """kubectl's Environment Variables from (envFrom) and Environment (its own variables; one a
    ConfigMap's or Secret's key sets is named, never shown)."""
    if c is not None and c.env_from:
        out.w(2, "Environment Variables from:\n")
        for e in c.env_from:
            prefix = f" with prefix '{e.prefix}'" if e.prefix else ""
            out.w(3, f"{e.name}\t{e.kind}{prefix}\tOptional: {'true' if e.optional else 'false'}\n")
    env = list(c.env) if c is not None else []
    sources = list(c.env_sources) if c is not None and len(c.env_sources) == len(env) else [""] * len(env)
    own = [(name, value, source) for (name, value), source in zip(env, sources) if source != "envFrom"]
    out.w(2, f"Environment:{chr(9) + NONE if not own else ''}\n")
    for name, value, source in own:
        lines = (source or value).split("\n")
        out.w(3, f"{name}:\t{lines[0]}\n")
        for s in lines[1:]:
            out.w(3, f"\t{s}\n")


def _mounts(out: Writer, c: PlannedContainer | None) -> None:
    """kubectl's Mounts: each mountPath from its volume (ro or rw, and a subPath), by path."""
    mounts = sorted(c.mounts, key=lambda m: m.path) if c is not None else []
    out.w(2, f"Mounts:{chr(9) + NONE if not mounts else ''}\n")
    for m in mounts:
        flags = ["ro" if m.read_only else "rw"] + ([f'path="{m.sub_path}"'] if m.sub_path else [])
        out.w(3, f"{m.path} from {m.volume} ({','.join(flags)})\n")


def volumes_section(out: Writer, volumes: Sequence[Mapping]) -> None:
    """kubectl's describeVolumes for the volume types the lab has (its SizeLimit, which the lab
    does not enforce, is shown unset; a downwardAPI volume's items are not listed)."""
    if not volumes:
        out.w(0, f"Volumes:\t{NONE}\n")
        return
    out.w(0, "Volumes:\n")
    for v in volumes:
        out.w(1, f"{v['name']}:\n")
        if "configMap" in v:
            out.w(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n")
            out.w(2, f"Name:\t{v['configMap']['name']}\n")
            out.w(2, f"Optional:\t{'true' if v['configMap'].get('optional') else 'false'}\n")
        elif "secret" in v:
            out.w(2, "Type:\tSecret (a volume populated by a Secret)\n")
            out.w(2, f"SecretName:\t{v['secret']['secretName']}\n")
            out.w(2, f"Optional:\t{'true' if v['secret'].get('optional') else 'false'}\n")
        elif "hostPath" in v:
            out.w(2, "Type:\tHostPath (bare host directory volume)\n")
            out.w(2, f"Path:\t{v['hostPath']['path']}\n")
            out.w(2, f"HostPathType:\t{v['hostPath'].get('type') or NONE}\n")
        elif "downwardAPI" in v:
            out.w(2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n")
        else:
            out.w(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n")
            out.w(2, f"Medium:\t{(v.get('emptyDir') or {}).get('medium', '')}\n")
            out.w(2, "SizeLimit:\t<unset>\n")


# ------------------------------------------------------------------------------------------
# The describers
# ------------------------------------------------------------------------------------------


def describe_pod(pod: Mapping, planned: Mapping[str, PlannedContainer], events: Sequence[EventRow],
                 network: str = "") -> str:
    """kubectl describe pod, then the lab's network view of it (`network`, already formatted)."""
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    out = Writer()
    out.w(0, f"Name:\t{meta['name']}\n")
    out.w(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    out.w(0, f"Priority:\t{spec.get('priority', 0)}\n")
    out.w(0, f"Service Account:\t{spec.get('serviceAccountName', 'default')}\n")
    node = spec.get("nodeName")
    out.w(0, f"Node:\t{node}/{status.get('hostIP', '')}\n" if node else f"Node:\t{NONE}\n")
    if status.get("startTime"):
        out.w(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    labels_multiline(out, "Labels", meta.get("labels"))
    annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, f"Status:\t{status.get('phase', 'Pending')}\n")
    for key, label in (("reason", "Reason"), ("message", "Message")):
        if status.get(key):
            out.w(0, f"{label}:\t{status[key]}\n")
    out.w(0, f"IP:\t{status.get('podIP', '')}\n")
    ips = status.get("podIPs") or []
    if ips:
        out.w(0, "IPs:\n")
        for ip in ips:
            out.w(1, f"IP:\t{ip['ip']}\n")
    else:
        out.w(0, f"IPs:\t{NONE}\n")
    owner = next((o for o in meta.get("ownerReferences") or () if o.get("controller")), None)
    if owner:
        out.w(0, f"Controlled By:\t{owner['kind']}/{owner['name']}\n")
    if spec.get("initContainers"):
        containers_section(out, "Init Containers", spec["initContainers"], status.get("initContainerStatuses", []),
                           planned)
    containers_section(out, "Containers", spec.get("containers", []), status.get("containerStatuses", []), planned)
    if status.get("conditions"):
        out.w(0, "Conditions:\n  Type\tStatus\n")
        for c in status["conditions"]:
            out.w(1, f"{c['type']} \t{c['status']} \n")
    volumes_section(out, spec.get("volumes") or [])
    out.w(0, f"QoS Class:\t{status.get('qosClass', 'BestEffort')}\n")
    labels_multiline(out, "Node-Selectors", spec.get("nodeSelector"))
    tolerations_multiline(out, "Tolerations", spec.get("tolerations") or [])
    events_section(out, events)
    return out.text() + network


def _endpoints_for(endpoints: Mapping | None, port_name: str | None, limit: int = 3) -> str:
    """kubectl's formatEndpointSlices for one port: ready ip:port, the first three, `+ N more...`."""
    found = []
    for subset in (endpoints or {}).get("subsets") or []:
        ports = subset.get("ports")
        addrs = [a["ip"] for a in subset.get("addresses") or []]
        if not ports:
            found += addrs
            continue
        for p in ports:
            if p.get("name") == port_name or (port_name is None and not p.get("name")):
                found += [f"{ip}:{p['port']}" for ip in addrs]
    if not found:
        return NONE if not (endpoints or {}).get("subsets") else ""
    shown = ",".join(found[:limit])
    return shown + (f" + {len(found) - limit} more..." if len(found) > limit else "")


def describe_service(svc: Mapping, endpoints: Mapping | None, events: Sequence[EventRow], network: str = "") -> str:
    meta, spec, status = svc["metadata"], svc.get("spec", {}), svc.get("status", {})
    out = Writer()
    out.w(0, f"Name:\t{meta['name']}\n")
    out.w(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    labels_multiline(out, "Labels", meta.get("labels"))
    annotations_multiline(out, "Annotations", meta.get("annotations"))
    selector = spec.get("selector") or {}
    out.w(0, f"Selector:\t{','.join(f'{k}={v}' for k, v in sorted(selector.items()))}\n")
    out.w(0, f"Type:\t{spec.get('type', 'ClusterIP')}\n")
    if spec.get("ipFamilyPolicy"):
        out.w(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    out.w(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or NONE}\n")
    out.w(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    out.w(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or NONE}\n")
    if spec.get("type") == "ExternalName":
        out.w(0, f"External Name:\t{spec.get('externalName', '')}\n")
    if spec.get("externalIPs"):
        out.w(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        out.w(0, f"LoadBalancer Ingress:\t{', '.join(i.get('ip') or i.get('hostname', '') for i in ingress)}\n")
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        proto = p.get("protocol", "TCP")
        out.w(0, f"Port:\t{name}\t{p['port']}/{proto}\n")
        out.w(0, f"TargetPort:\t{p.get('targetPort', p['port'])}/{proto}\n")
        if p.get("appProtocol"):
            out.w(0, f"AppProtocol:\t{p['appProtocol']}\n")
        if p.get("nodePort"):
            out.w(0, f"NodePort:\t{name}\t{p['nodePort']}/{proto}\n")
        out.w(0, f"Endpoints:\t{_endpoints_for(endpoints, p.get('name'))}\n")
    out.w(0, f"Session Affinity:\t{spec.get('sessionAffinity', 'None')}\n")
    if spec.get("externalTrafficPolicy"):
        out.w(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        out.w(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    if spec.get("healthCheckNodePort"):
        out.w(0, f"HealthCheck NodePort:\t{spec['healthCheckNodePort']}\n")
    if spec.get("loadBalancerSourceRanges"):
        out.w(0, f"LoadBalancer Source Ranges:\t{','.join(spec['loadBalancerSourceRanges'])}\n")
    if spec.get("trafficDistribution"):
        out.w(0, f"Traffic Distribution:\t{spec['trafficDistribution']}\n")
    events_section(out, events)
    return out.text() + network


def describe_node(node: Mapping, pods: Sequence[tuple[str, str, str]], events: Sequence[EventRow],
                  network: str = "") -> str:
    """kubectl describe node; `pods` the non-terminated pods on it as (namespace, name, age).
    The lab models no resources, so the pods table has kubectl's Namespace, Name and Age only,
    and there is no Capacity, Allocatable or Allocated resources."""
    meta, spec, status = node["metadata"], node.get("spec", {}), node.get("status", {})
    labels = meta.get("labels") or {}
    roles = node_roles(labels)
    out = Writer()
    out.w(0, f"Name:\t{meta['name']}\n")
    out.w(0, f"Roles:\t{','.join(roles) or NONE}\n")
    labels_multiline(out, "Labels", labels)
    annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    taints = spec.get("taints") or []
    out.w(0, "Taints:\t")
    if not taints:
        out.w(0, f"{NONE}\n")
    for i, t in enumerate(sorted(taints, key=lambda t: f"{t['effect']},{t['key']}")):
        value = f"={t['value']}" if t.get("value") else ""
        out.w(0, ("" if i == 0 else "\t") + f"{t['key']}{value}:{t['effect']}\n")
    out.w(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}\n")
    conditions = status.get("conditions") or []
    if conditions:
        out.w(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n")
        out.w(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in conditions:
            out.w(1, f"{c['type']} \t{c['status']} \t{rfc1123z(c.get('lastHeartbeatTime'))} \t"
                     f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t{c.get('message', '')}\n")
    out.w(0, "Addresses:\n")
    for a in status.get("addresses") or []:
        out.w(1, f"{a['type']}:\t{a['address']}\n")
    info = status.get("nodeInfo") or {}
    out.w(0, "System Info:\n")
    for key, label in (("machineID", "Machine ID"), ("systemUUID", "System UUID"), ("bootID", "Boot ID"),
                       ("kernelVersion", "Kernel Version"), ("osImage", "OS Image"),
                       ("operatingSystem", "Operating System"), ("architecture", "Architecture"),
                       ("containerRuntimeVersion", "Container Runtime Version"),
                       ("kubeletVersion", "Kubelet Version")):
        out.w(0, f"  {label}:\t{info.get(key, '')}\n")
    if spec.get("podCIDR"):
        out.w(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if spec.get("podCIDRs"):
        out.w(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}\n")
    out.w(0, f"Non-terminated Pods:\t({len(pods)} in total)\n")
    out.w(1, "Namespace\tName\tAge\n")
    out.w(1, "---------\t----\t---\n")
    for namespace, name, age in pods:
        out.w(1, f"{namespace}\t{name}\t{age}\n")
    events_section(out, events)
    return out.text() + network


def _pod_template(out: Writer, template: Mapping, planned: Mapping[str, PlannedContainer]) -> None:
    out.w(0, "Pod Template:\n")
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    labels_multiline(out, "  Labels", meta.get("labels"))
    if spec.get("initContainers"):
        containers_section(out, "Init Containers", spec["initContainers"], None, planned, "  ")
    containers_section(out, "Containers", spec.get("containers") or [], None, planned, "  ")
    out.w(0, f"  Volumes:\t{NONE}\n")
    labels_multiline(out, "  Node-Selectors", spec.get("nodeSelector"))
    tolerations_multiline(out, "  Tolerations", spec.get("tolerations") or [])


def describe_deployment(d: Mapping, old_sets: Sequence[tuple[str, int, int]], new_sets: Sequence[tuple[str, int, int]],
                        planned: Mapping[str, PlannedContainer], events: Sequence[EventRow],
                        strategy: tuple[str, str, str] = ("RollingUpdate", "25%", "25%")) -> str:
    """kubectl describe deployment; the ReplicaSets as (name, replicas created, desired);
    `strategy` (type, maxUnavailable, maxSurge)."""
    meta, spec, status = d["metadata"], d.get("spec", {}), d.get("status", {})
    out = Writer()
    out.w(0, f"Name:\t{meta['name']}\n")
    out.w(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    out.w(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    labels_multiline(out, "Labels", meta.get("labels"))
    annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    total, available = status.get("replicas", 0), status.get("availableReplicas", 0)
    out.w(0, f"Replicas:\t{spec.get('replicas', 1)} desired | {status.get('updatedReplicas', 0)} updated | "
             f"{total} total | {available} available | {max(0, total - available)} unavailable\n")
    kind, unavailable, surge = strategy
    out.w(0, f"StrategyType:\t{kind}\n")
    out.w(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}\n")
    if kind == "RollingUpdate":
        out.w(0, f"RollingUpdateStrategy:\t{unavailable} max unavailable, {surge} max surge\n")
    _pod_template(out, spec.get("template") or {}, planned)
    conditions = status.get("conditions") or []
    if conditions:
        out.w(0, "Conditions:\n  Type\tStatus\tReason\n")
        out.w(1, "----\t------\t------\n")
        for c in conditions:
            out.w(1, f"{c['type']} \t{c['status']}\t{c.get('reason', '')}\n")

    def sets(items: Sequence[tuple[str, int, int]]) -> str:
        return ", ".join(f"{n} ({have}/{want} replicas created)" for n, have, want in items) or NONE
    if old_sets or new_sets:
        out.w(0, f"OldReplicaSets:\t{sets(old_sets)}\n")
        out.w(0, f"NewReplicaSet:\t{sets(new_sets)}\n")
    events_section(out, events)
    return out.text()


def describe_replicaset(rs: Mapping, phases: tuple[int, int, int, int], planned: Mapping[str, PlannedContainer],
                        events: Sequence[EventRow]) -> str:
    """kubectl describe replicaset (a replicationcontroller's is the same but for Controlled By,
    which an RC has none of); `phases` its pods Running, Waiting, Succeeded, Failed."""
    meta, spec, status = rs["metadata"], rs.get("spec", {}), rs.get("status", {})
    out = Writer()
    out.w(0, f"Name:\t{meta['name']}\n")
    out.w(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    out.w(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    labels_multiline(out, "Labels", meta.get("labels"))
    annotations_multiline(out, "Annotations", meta.get("annotations"))
    owner = next((o for o in meta.get("ownerReferences") or () if o.get("controller")), None)
    if owner:
        out.w(0, f"Controlled By:\t{owner['kind']}/{owner['name']}\n")
    current = status.get("replicas", status.get("currentNumberScheduled", status.get("active", 0)))
    desired = spec.get("replicas", status.get("desiredNumberScheduled", spec.get("completions", 1)))
    out.w(0, f"Replicas:\t{current} current / {desired} desired\n")
    running, waiting, succeeded, failed = phases
    out.w(0, f"Pods Status:\t{running} Running / {waiting} Waiting / {succeeded} Succeeded / {failed} Failed\n")
    _pod_template(out, spec.get("template") or {}, planned)
    events_section(out, events)
    return out.text()


def _head(out: Writer, meta: Mapping, namespace: bool = True) -> None:
    out.w(0, f"Name:\t{meta['name']}\n")
    if namespace:
        out.w(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")


def describe_statefulset(sts: Mapping, phases: tuple[int, int, int, int], planned: Mapping[str, PlannedContainer],
                         events: Sequence[EventRow]) -> str:
    meta, spec, status = sts["metadata"], sts.get("spec", {}), sts.get("status", {})
    out = Writer()
    _head(out, meta)
    out.w(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    out.w(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    labels_multiline(out, "Labels", meta.get("labels"))
    annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, f"Replicas:\t{spec.get('replicas', 1)} desired | {status.get('replicas', 0)} total\n")
    out.w(0, f"Update Strategy:\t{(spec.get('updateStrategy') or {}).get('type', 'RollingUpdate')}\n")
    out.w(0, "Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed\n".format(*phases))
    _pod_template(out, spec.get("template") or {}, planned)
    out.w(0, f"Volume Claims:\t{NONE}\n")
    events_section(out, events)
    return out.text()


def describe_daemonset(ds: Mapping, phases: tuple[int, int, int, int], planned: Mapping[str, PlannedContainer],
                       events: Sequence[EventRow]) -> str:
    """kubectl 1.31's DaemonSet layout: no Namespace line, and its node counts without a tab."""
    meta, spec, status = ds["metadata"], ds.get("spec", {}), ds.get("status", {})
    out = Writer()
    _head(out, meta, namespace=False)
    out.w(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    out.w(0, f"Node-Selector:\t{','.join(f'{k}={v}' for k, v in sorted(node_selector.items())) or NONE}\n")
    labels_multiline(out, "Labels", meta.get("labels"))
    annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, f"Desired Number of Nodes Scheduled: {status.get('desiredNumberScheduled', 0)}\n")
    out.w(0, f"Current Number of Nodes Scheduled: {status.get('currentNumberScheduled', 0)}\n")
    out.w(0, f"Number of Nodes Scheduled with Up-to-date Pods: {status.get('updatedNumberScheduled', 0)}\n")
    out.w(0, f"Number of Nodes Scheduled with Available Pods: {status.get('numberAvailable', 0)}\n")
    out.w(0, f"Number of Nodes Misscheduled: {status.get('numberMisscheduled', 0)}\n")
    out.w(0, "Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed\n".format(*phases))
    _pod_template(out, spec.get("template") or {}, planned)
    events_section(out, events)
    return out.text()


def describe_job(job: Mapping, planned: Mapping[str, PlannedContainer], events: Sequence[EventRow],
                 duration: str | None = None) -> str:
    """kubectl 1.31's Job layout; `duration` kubectl's Duration (written by the caller)."""
    meta, spec, status = job["metadata"], job.get("spec", {}), job.get("status", {})
    out = Writer()
    _head(out, meta)
    out.w(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    labels_multiline(out, "Labels", meta.get("labels"))
    annotations_multiline(out, "Annotations", meta.get("annotations"))
    owner = next((o for o in meta.get("ownerReferences") or () if o.get("controller")), None)
    if owner:
        out.w(0, f"Controlled By:\t{owner['kind']}/{owner['name']}\n")
    if spec.get("parallelism") is not None:
        out.w(0, f"Parallelism:\t{spec['parallelism']}\n")
    completions = spec.get("completions")
    out.w(0, f"Completions:\t{'<unset>' if completions is None else completions}\n")
    for key, label in (("completionMode", "Completion Mode"), ("suspend", "Suspend"),
                       ("backoffLimit", "Backoff Limit")):
        if spec.get(key) is not None:
            value = spec[key]
            out.w(0, f"{label}:\t{str(value).lower() if isinstance(value, bool) else value}\n")
    if status.get("startTime"):
        out.w(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    if status.get("completionTime"):
        out.w(0, f"Completed At:\t{rfc1123z(status['completionTime'])}\n")
    if status.get("startTime") and status.get("completionTime") and duration:
        out.w(0, f"Duration:\t{duration}\n")
    active, succeeded, failed = status.get("active", 0), status.get("succeeded", 0), status.get("failed", 0)
    if status.get("ready") is None:
        out.w(0, f"Pods Statuses:\t{active} Active / {succeeded} Succeeded / {failed} Failed\n")
    else:
        out.w(0, f"Pods Statuses:\t{active} Active ({status['ready']} Ready) / {succeeded} Succeeded / "
                 f"{failed} Failed\n")
    _pod_template(out, spec.get("template") or {}, planned)
    events_section(out, events)
    return out.text()


def describe_endpoints(ep: Mapping, events: Sequence[EventRow]) -> str:
    """kubectl describe endpoints: each subset's ready and not-ready addresses and its ports."""
    meta = ep["metadata"]
    out = Writer()
    _head(out, meta)
    labels_multiline(out, "Labels", meta.get("labels"))
    annotations_multiline(out, "Annotations", meta.get("annotations"))
    out.w(0, "Subsets:\n")
    for subset in ep.get("subsets") or []:
        for key, label in (("addresses", "Addresses"), ("notReadyAddresses", "NotReadyAddresses")):
            out.w(1, f"{label}:\t{','.join(a['ip'] for a in subset.get(key) or []) or NONE}\n")
        if subset.get("ports"):
            out.w(1, "Ports:\n")
            out.w(2, "Name\tPort\tProtocol\n")
            out.w(2, "----\t----\t--------\n")
            for p in subset["ports"]:
                out.w(2, f"{p.get('name') or '<unset>'}\t{p['port']}\t{p.get('protocol', 'TCP')}\n")
        out.w(0, "\n")
    events_section(out, events)
    return out.text()
