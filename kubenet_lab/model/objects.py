"""The data every layer shares: the validated model of the manifests and the desired-state plan.

Plain frozen dataclasses, no behaviour beyond small helpers. `manifests` produces a `Model`;
`plan` turns a `Model` (plus the allocations of the previous run) into a `Plan`; `proxy`,
`fabric`, `runtime` and `supervisor` consume the `Plan`. Nothing here touches the kernel or the file system.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Iterable, Mapping

PROTOCOLS = ("TCP", "UDP", "SCTP")
# With no Node objects the lab has these two nodes.
DEFAULT_NODES = ("node1", "node2")
# kubectl's names of the kinds in its messages and `-o name` (`deployment.apps/web created`).
RESOURCE_NAMES = {"Pod": "pod", "Service": "service", "Deployment": "deployment.apps",
                  "ReplicaSet": "replicaset.apps", "StatefulSet": "statefulset.apps", "DaemonSet": "daemonset.apps",
                  "Job": "job.batch", "ReplicationController": "replicationcontroller", "Node": "node",
                  "Namespace": "namespace", "Cluster": "cluster.kind.x-k8s.io",
                  "EndpointSlice": "endpointslice.discovery.k8s.io", "Endpoints": "endpoints",
                  "NetworkPolicy": "networkpolicy.networking.k8s.io"}


@dataclass(frozen=True)
class Origin:
    """Where an object came from, for error messages: `file:line`, and the line of each of its
    fields (path -> line, e.g. "spec.ports[0].nodePort"), so that a problem found after
    validation (a taken clusterIP, a full podCIDR) still points at the field."""

    file: str
    line: int
    fields: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def at(self, path: str) -> str:
        """`file:line: path`, the line being the field's own when known (else the nearest
        enclosing field's, else the object's)."""
        probe = path
        while probe and probe not in self.fields:
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
        return f"{self.file}:{self.fields.get(probe, self.line)}: {path}"


def at(origin: Origin | None, path: str) -> str:
    """The prefix of a message about field `path` of an object: `file:line: path`."""
    return origin.at(path) if origin else path


# --------------------------------------------------------------------------------------------
# The validated model: what the manifests say, checked and typed, nothing derived yet.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortRange:
    """A range of ports, both ends included, written `first-last` as kube-apiserver's
    --service-node-port-range is (net.PortRange)."""

    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    @property
    def size(self) -> int:
        return self.last - self.first + 1


# kube-apiserver's default --service-node-port-range.
NODEPORT_RANGE = PortRange(30000, 32767)


@dataclass(frozen=True)
class ClusterConfig:
    pod_subnet: IPv4Network = IPv4Network("10.244.0.0/16")
    service_subnet: IPv4Network = IPv4Network("10.96.0.0/16")
    node_subnet: IPv4Network = IPv4Network("172.18.0.0/24")
    kube_proxy_mode: str = "iptables"
    # networking.backend: how nodes reach each other's pods (dataplane/backends): host-gw, vxlan, l2
    backend: str = "host-gw"
    # networking.wiring: what wires each pod into its node (dataplane/wiring): "netlink", the lab's
    # own veths, or "cni", the reference CNI plugins run as a container runtime runs them
    wiring: str = "netlink"
    # networking.cniConfig: a user's own conflist (its absolute path) for wiring cni; None: the lab's
    cni_config: str | None = None
    # nftables mode's choice among endpoints: "vmap", kube-proxy's own (one anonymous verdict map
    # per service), or "rules", a cascade of plain rules that loads faster at thousands of services.
    nftables_balancing: str = "vmap"
    dns_domain: str = "cluster.local"
    # LoadBalancer address pool (first, last), inclusive; None: the default range of node_subnet.
    lb_pool: tuple[IPv4Address, IPv4Address] | None = None
    # networking.serviceNodePortRange: where NodePorts (and healthCheckNodePorts) come from.
    node_port_range: PortRange = NODEPORT_RANGE
    # hostPath volumes give a pod the host's own files: refused unless the Cluster config allows them.
    allow_host_path: bool = False
    origin: Origin | None = None
    # The networking keys no Cluster config set and the manifests gave (manifests.subnets): a
    # dump's podCIDRs give podSubnet, its clusterIPs serviceSubnet.
    derived: tuple[str, ...] = ()


TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
NODE_ROLE_PREFIX = "node-role.kubernetes.io/"


def node_roles(labels: Mapping[str, str]) -> list[str]:
    """A node's roles as kubectl finds them in its labels (printers.findNodeRoles: `get nodes`
    ROLES, describe node's Roles): the <role> of each node-role.kubernetes.io/<role> label and
    the value of kubernetes.io/role, sorted."""
    roles = {k[len(NODE_ROLE_PREFIX):] for k in labels if k.startswith(NODE_ROLE_PREFIX)}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    return sorted(roles - {""})


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str  # one of TAINT_EFFECTS
    value: str = ""


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    pod_cidr: IPv4Network | None = None
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    origin: Origin | None = None


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str | None = None
    protocol: str = "TCP"
    # hostPort: the node's port the CNI portmap plugin forwards to this one (proxy.portmap);
    # None: none. hostIP: the node address it is restricted to (None or 0.0.0.0: every one).
    host_port: int | None = None
    host_ip: str | None = None


@dataclass(frozen=True)
class EnvVar:
    """A container's environment variable: a value (in which `$(NAME)` refers to a variable
    defined before it) or, with `field_path`, a field of its pod (valueFrom.fieldRef), or with
    `key_ref` a key of a ConfigMap or Secret (valueFrom.configMapKeyRef/secretKeyRef)."""
    name: str
    value: str = ""
    field_path: str | None = None
    key_ref: KeyRef | None = None


@dataclass(frozen=True)
class KeyRef:
    """valueFrom.configMapKeyRef (kind "ConfigMap") or secretKeyRef (kind "Secret"): key `key`
    of the object `name` in the pod's namespace."""
    kind: str
    name: str
    key: str
    optional: bool = False


RESTART_POLICIES = ("Always", "OnFailure", "Never")
DEFAULT_GRACE_SECONDS = 30  # spec.terminationGracePeriodSeconds when not given


@dataclass(frozen=True)
class Hook:
    """A lifecycle handler (lifecycle.preStop): exactly one of `command` (exec, run in the
    container), an HTTP GET (`http_port`, a number or a port name, with path, host and scheme),
    `sleep_seconds`, or `tcp` (tcpSocket, which kubelet accepts and never runs)."""

    command: tuple[str, ...] | None = None
    http_port: int | str | None = None
    http_path: str = "/"
    http_host: str | None = None
    http_scheme: str = "HTTP"
    sleep_seconds: int | None = None
    tcp: bool = False


# What kubelet takes when a probe leaves a timing field out (core/v1 Probe's defaults).
PROBE_DEFAULTS = {"initial_delay": 0, "period": 10, "timeout": 1, "success_threshold": 1, "failure_threshold": 3}


@dataclass(frozen=True)
class Probe:
    """A liveness, readiness or startup probe (core/v1 Probe): one `handler`, "exec" (run
    `command` in the container), "httpGet" (GET scheme://host:port/path, `host` the pod IP when
    None), "tcpSocket" (connect to host:port) or "grpc" (not run here); `port` a number, or
    the name of a port the container does not declare (kubelet reports it when it probes).
    Timing as kubelet reads it, with its defaults; `grace` the probe's own
    terminationGracePeriodSeconds (None: the pod's)."""

    handler: str
    port: int | str | None = None
    path: str = ""
    host: str | None = None
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    grace: int | None = None


# Linux's capabilities, by number (capability.h; names without CAP_).
LINUX_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE")
# The capabilities containerd and Docker give a container by default (names without CAP_).
DEFAULT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                        "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")


@dataclass(frozen=True)
class SecurityContext:
    """A securityContext as written (pod-level fields are the defaults of each container's; see
    plan.security for the effective one). None: not given. Capabilities upper-case, no CAP_."""

    privileged: bool | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    allow_privilege_escalation: bool | None = None
    read_only_root_filesystem: bool | None = None
    add: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    # Pod level only.
    supplemental_groups: tuple[int, ...] = ()
    fs_group: int | None = None


@dataclass(frozen=True)
class VolumeMount:
    """A container's volumeMounts entry."""

    name: str
    path: str
    read_only: bool = False
    sub_path: str = ""


@dataclass(frozen=True)
class KeyToPath:
    """An `items` entry of a configMap/secret volume (key -> path, mode)."""

    key: str
    path: str
    mode: int | None = None


@dataclass(frozen=True)
class DownwardFile:
    """An `items` entry of a downwardAPI volume: `path` holds the pod field `field_path`
    (metadata.labels, metadata.annotations, metadata.name, metadata.namespace, metadata.uid)."""

    path: str
    field_path: str
    mode: int | None = None


@dataclass(frozen=True)
class Volume:
    """A pod's volume as written: kind one of VOLUME_KINDS; `source` the ConfigMap's or
    Secret's name (or hostPath's path); `items`/`default_mode`/`optional` as the API has them."""

    name: str
    kind: str
    source: str = ""
    medium: str = ""
    items: tuple[KeyToPath, ...] = ()
    downward: tuple[DownwardFile, ...] = ()
    default_mode: int | None = None
    optional: bool = False


VOLUME_KINDS = ("emptyDir", "configMap", "secret", "downwardAPI", "hostPath")


@dataclass(frozen=True)
class EnvFrom:
    """An envFrom entry: every key of ConfigMap or Secret `name` (kind "ConfigMap"/"Secret"),
    `prefix` prepended."""

    kind: str
    name: str
    prefix: str = ""
    optional: bool = False


@dataclass(frozen=True)
class ConfigMap:
    """A ConfigMap, or a Secret (`kind`; `type` a Secret's type), as the API server stores it:
    a ConfigMap's `data` (text) and `binary_data` (base64); a Secret's `data` base64, its
    stringData already merged in and encoded."""

    namespace: str
    name: str
    kind: str = "ConfigMap"
    data: Mapping[str, str] = field(default_factory=dict)
    binary_data: Mapping[str, str] = field(default_factory=dict)
    type: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    immutable: bool = False
    origin: Origin | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Container:
    name: str
    image: str = ""
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    ports: tuple[ContainerPort, ...] = ()
    env: tuple[EnvVar, ...] = ()
    # The numeric ports its liveness/readiness/startup probes connect to: where it listens.
    probe_ports: tuple[int, ...] = ()
    # An init container's own restartPolicy: "Always" makes it a sidecar (None otherwise).
    restart_policy: str | None = None
    pre_stop: Hook | None = None
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None
    security: SecurityContext | None = None
    mounts: tuple[VolumeMount, ...] = ()
    env_from: tuple[EnvFrom, ...] = ()


@dataclass(frozen=True)
class MatchExpression:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[MatchExpression, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for k, v in self.match_labels.items():
            if labels.get(k) != v:
                return False
        for e in self.match_expressions:
            present = e.key in labels
            if e.operator == "In" and not (present and labels[e.key] in e.values):
                return False
            if e.operator == "NotIn" and present and labels[e.key] in e.values:
                return False
            if e.operator == "Exists" and not present:
                return False
            if e.operator == "DoesNotExist" and present:
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def show(self) -> str:
        """As kubectl prints a selector: `app=web,tier in (a,b)`."""
        parts = [f"{k}={v}" for k, v in self.match_labels.items()]
        for e in self.match_expressions:
            words = {"In": "in", "NotIn": "notin"}
            if e.operator in words:
                parts.append(f"{e.key} {words[e.operator]} ({','.join(e.values)})")
            else:
                parts.append(e.key if e.operator == "Exists" else f"!{e.key}")
        return ",".join(parts)


@dataclass(frozen=True)
class DnsConfig:
    """spec.dnsConfig: added to (or, with dnsPolicy None, making all of) the pod's resolv.conf.
    `options`: (name, value or None), as written."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class HostAlias:
    """spec.hostAliases[]: one line added to the pod's /etc/hosts."""

    ip: str
    hostnames: tuple[str, ...] = ()


DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")


@dataclass(frozen=True)
class Toleration:
    """A pod's toleration: key "" with Exists tolerates every taint; effect "" every effect."""
    key: str = ""
    operator: str = "Equal"  # or Exists
    value: str = ""
    effect: str = ""


@dataclass(frozen=True)
class NodeSelectorTerm:
    """One term of a node affinity: all its requirements on the node's labels (operators In,
    NotIn, Exists, DoesNotExist, Gt, Lt) and fields (metadata.name) hold."""
    match_expressions: tuple[MatchExpression, ...] = ()
    match_fields: tuple[MatchExpression, ...] = ()


@dataclass(frozen=True)
class PodAffinityTerm:
    """Pods matching `selector` in `namespaces` (empty: the pod's own; with `all_namespaces`, an
    empty namespaceSelector, every one) on nodes sharing the value of node label `topology_key`."""
    selector: LabelSelector
    topology_key: str
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False


@dataclass(frozen=True)
class Affinity:
    """spec.affinity. `node_required` None: no required node affinity."""
    node_required: tuple[NodeSelectorTerm, ...] | None = None
    node_preferred: tuple[tuple[int, NodeSelectorTerm], ...] = ()
    pod_required: tuple[PodAffinityTerm, ...] = ()
    pod_preferred: tuple[tuple[int, PodAffinityTerm], ...] = ()
    anti_required: tuple[PodAffinityTerm, ...] = ()
    anti_preferred: tuple[tuple[int, PodAffinityTerm], ...] = ()


@dataclass(frozen=True)
class PodSpec:
    """A pod's spec, shared by Pod objects and workload templates."""

    containers: tuple[Container, ...] = ()
    node_name: str | None = None
    host_network: bool = False
    init_containers: tuple[Container, ...] = ()
    restart_policy: str = "Always"  # one of RESTART_POLICIES
    termination_grace_period: int = DEFAULT_GRACE_SECONDS
    hostname: str | None = None
    subdomain: str | None = None
    enable_service_links: bool = True
    dns_policy: str = "ClusterFirst"
    dns_config: DnsConfig | None = None
    host_aliases: tuple[HostAlias, ...] = ()
    set_hostname_as_fqdn: bool = False
    node_selector: Mapping[str, str] = field(default_factory=dict)
    affinity: Affinity | None = None
    tolerations: tuple[Toleration, ...] = ()
    scheduling_gates: tuple[str, ...] = ()
    security: SecurityContext | None = None
    volumes: tuple[Volume, ...] = ()


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    spec: PodSpec = field(default_factory=PodSpec)
    # "ReplicaSet/web-7d4b9c" for pods a workload made; None for Pod objects.
    owner: str | None = None
    origin: Origin | None = None
    # "ns/name" of the pod its controller creates it after (see PlannedPod.created_after).
    created_after: str | None = None
    # metadata.annotations (a controller's pods: its template's), for downwardAPI volumes.
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Workload:
    """A Deployment, ReplicaSet, ReplicationController, StatefulSet, DaemonSet or Job."""

    kind: str
    namespace: str
    name: str
    replicas: int
    selector: LabelSelector
    template_labels: Mapping[str, str]
    template: PodSpec
    # The template as the manifest wrote it (plain data), for the pod-template-hash.
    template_raw: Mapping[str, Any] = field(default_factory=dict)
    origin: Origin | None = None
    # StatefulSet: its governing Service (the pods' subdomain), first ordinal, pod management.
    service_name: str | None = None
    ordinal_start: int = 0
    pod_management: str = "OrderedReady"
    # Job: completions (None: the work-queue kind, done when one pod succeeds), parallelism,
    # backoffLimit, completionMode.
    completions: int | None = None
    parallelism: int = 1
    backoff_limit: int = 6
    completion_mode: str = "NonIndexed"
    labels: Mapping[str, str] = field(default_factory=dict)  # the object's own metadata.labels
    # Deployment: how a changed template replaces the pods (spec.strategy, the API's defaults).
    strategy: str = "RollingUpdate"
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServicePort:
    port: int
    protocol: str = "TCP"
    name: str | None = None
    target_port: int | str | None = None  # None: same as port
    node_port: int | None = None
    app_protocol: str | None = None  # informational (kube-proxy ignores it), shown as written


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: str = "ClusterIP"
    selector: Mapping[str, str] | None = None
    cluster_ip: str | None = None  # as written: None (allocate), "None" (headless) or an address
    ports: tuple[ServicePort, ...] = ()
    session_affinity: str = "None"  # or "ClientIP"
    affinity_timeout: int = 10800
    external_traffic_policy: str = "Cluster"
    internal_traffic_policy: str = "Cluster"
    external_ips: tuple[str, ...] = ()
    load_balancer_ip: str | None = None
    origin: Origin | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # As written (checked against the single-stack IPv4 cluster); the planner defaults them as
    # the API server does.
    ip_families: tuple[str, ...] = ()
    ip_family_policy: str | None = None
    publish_not_ready_addresses: bool = False  # not-ready pods are (ready) endpoints all the same
    allocate_load_balancer_node_ports: bool = True  # False: a LoadBalancer gets no NodePort of its own
    load_balancer_class: str | None = None  # set: the lab's (default) load balancer leaves it alone
    health_check_node_port: int | None = None  # reserved as a NodePort; every node answers health checks on it
    load_balancer_source_ranges: tuple[str, ...] = ()  # as written; kube-proxy and the balancer enforce them
    traffic_distribution: str | None = None  # no zones: every endpoint is as close as any other
    external_name: str | None = None  # type ExternalName: the name its DNS name is an alias (CNAME) of
    # status.loadBalancer.ingress[].ip as written (a cloud controller's): the balancer's addresses
    load_balancer_ingress: tuple[str, ...] = ()
    # those of them with ipMode Proxy: the balancer proxies them, kube-proxy leaves them alone
    load_balancer_ingress_proxied: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# EndpointSlices (discovery.k8s.io/v1) and legacy Endpoints (v1), as written: what a Service
# without a selector sends its traffic to (plan.endpointslices).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
MIRRORING_CONTROLLER = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"


@dataclass(frozen=True)
class ObjectRef:
    """An endpoint's targetRef, as written (kind Pod for a pod)."""

    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""


@dataclass(frozen=True)
class SliceEndpoint:
    """One endpoint of an EndpointSlice: its conditions as written (None: not given; kube-proxy
    takes a nil ready or serving as true, a nil terminating as false)."""

    addresses: tuple[str, ...]
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None
    node_name: str | None = None
    hostname: str | None = None
    target_ref: ObjectRef | None = None

    @property
    def is_ready(self) -> bool:
        return self.ready is None or self.ready


@dataclass(frozen=True)
class SlicePort:
    """A port of an EndpointSlice (name defaulted to "", protocol to TCP, as the API server
    defaults them); `port` None: all ports, which kube-proxy skips."""

    name: str = ""
    protocol: str = "TCP"
    port: int | None = None
    app_protocol: str | None = None


@dataclass(frozen=True)
class EndpointSlice:
    namespace: str
    name: str
    address_type: str = "IPv4"
    endpoints: tuple[SliceEndpoint, ...] = ()
    ports: tuple[SlicePort, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    origin: Origin | None = None
    # "" for a written slice; the kind of what a controller made it for: "Service" (the
    # EndpointSlice controller's), "Endpoints" (the mirroring controller's).
    owner: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def kind(self) -> str:
        return "EndpointSlice"

    @property
    def service(self) -> str | None:
        """The Service it belongs to (its kubernetes.io/service-name label), if any."""
        return self.labels.get(SERVICE_NAME_LABEL)

    @property
    def managed_by(self) -> str | None:
        return self.labels.get(MANAGED_BY_LABEL)


@dataclass(frozen=True)
class EndpointAddress:
    ip: str
    hostname: str | None = None
    node_name: str | None = None
    target_ref: ObjectRef | None = None


@dataclass(frozen=True)
class EndpointSubset:
    addresses: tuple[EndpointAddress, ...] = ()
    not_ready_addresses: tuple[EndpointAddress, ...] = ()
    ports: tuple[SlicePort, ...] = ()


@dataclass(frozen=True)
class Endpoints:
    """A legacy v1 Endpoints object as written (for a Service without a selector: what the
    EndpointSliceMirroring controller mirrors into EndpointSlices)."""

    namespace: str
    name: str
    subsets: tuple[EndpointSubset, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    origin: Origin | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def kind(self) -> str:
        return "Endpoints"


# Every namespace carries this label, its own name as its value (the API server sets it).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Namespace:
    """A v1 Namespace, declared or implied by an object in it: `labels` as written, with
    NAMESPACE_NAME_LABEL set to its name as the API server sets it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    origin: Origin | None = None

    @property
    def key(self) -> str:
        return self.name

    @property
    def kind(self) -> str:
        return "Namespace"


@dataclass(frozen=True)
class IPBlock:
    """A NetworkPolicy peer's ipBlock: `cidr` and the `except_` ranges inside it, as written
    (either family; the lab's addresses are IPv4)."""

    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyPeer:
    """One entry of a rule's from/to. Selectors: None when not written (an empty one selects
    everything). podSelector and namespaceSelector in one peer: both must match (AND)."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    """A rule's ports entry: `port` a number, a container port's name, or None (every port of
    `protocol`); `end_port` the last of a numeric range."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True)
class PolicyRule:
    """An ingress or egress rule. Empty `ports`: every port; empty `peers` (from/to missing or
    empty): every source or destination."""

    ports: tuple[PolicyPort, ...] = ()
    peers: tuple[PolicyPeer, ...] = ()


@dataclass(frozen=True)
class NetworkPolicy:
    """A networking.k8s.io/v1 NetworkPolicy, defaulted as the API server stores it:
    `policy_types` always given (Ingress, and Egress when egress rules exist, if not written)."""

    namespace: str
    name: str
    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    policy_types: tuple[str, ...] = ("Ingress",)
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    origin: Origin | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def kind(self) -> str:
        return "NetworkPolicy"


@dataclass(frozen=True)
class Model:
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    nodes: tuple[Node, ...] = ()
    namespaces: tuple[str, ...] = ()
    pods: tuple[Pod, ...] = ()
    workloads: tuple[Workload, ...] = ()
    services: tuple[Service, ...] = ()
    config_maps: tuple[ConfigMap, ...] = ()  # ConfigMaps and Secrets
    endpoint_slices: tuple[EndpointSlice, ...] = ()  # as written
    endpoints: tuple[Endpoints, ...] = ()  # legacy v1 Endpoints, as written
    warnings: tuple[str, ...] = ()
    namespace_objects: tuple[Namespace, ...] = ()  # the Namespace objects written, with their labels
    network_policies: tuple[NetworkPolicy, ...] = ()


def runs_selected(selector: Mapping[str, str] | None, namespace: str, pods: Iterable[Pod],
                  workloads: Iterable[Workload]) -> bool:
    """Whether the manifests run anything a Service's `selector` selects in `namespace`: a Pod, or a
    workload whose pod template it selects (however many replicas it asks for)."""
    if not selector:
        return False
    match = LabelSelector(dict(selector)).matches
    return (any(p.namespace == namespace and match(p.labels) for p in pods)
            or any(w.namespace == namespace and match(w.template_labels) for w in workloads))


# --------------------------------------------------------------------------------------------
# What a container runs (resolved from image/command/args by plan.containers).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunExec:
    """A real process: argv run in the pod's namespaces, with the container's `env` (pod fields
    resolved, `$(NAME)` references left for start time) on top of the service variables of the
    pod's namespace when `service_links` (spec.enableServiceLinks, true by default)."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    service_links: bool = True


@dataclass(frozen=True)
class RunNetexec:
    """agnhost netexec: HTTP and UDP servers (-1 disables one)."""

    http_port: int = 8080
    udp_port: int = 8081
    delay_shutdown: int = 0  # seconds it keeps serving after SIGTERM (/readyz 503 meanwhile)


@dataclass(frozen=True)
class RunServeHostname:
    """agnhost serve-hostname: answers the hostname over http, tcp or udp."""

    port: int = 9376
    http: bool = True
    tcp: bool = False
    udp: bool = False


@dataclass(frozen=True)
class RunHttp:
    """The built-in HTTP server for an image the lab does not run, on every TCP port its pod
    makes known (declared, targeted by a Service, probed, or the image's own), and a hostname
    answer on each such UDP port. `text`: what every path answers (hashicorp/http-echo's -text)
    instead of the pod's name. `tls_ports`: those of `ports` that speak HTTPS (HTTP/1.1 over TLS,
    with the lab's self-signed certificate), as an nginx serving 443 would; the others are plain.
    `redis_ports`: those of `ports` where a redis image listens, which speak Redis's protocol
    (servers.redis) instead; `replica_of`: (host, port) of the master when that redis is a
    replica. `proxy_to`: the upstream (`http://hello`) every HTTP request is passed to, as an
    nginx image configured with `proxy_pass` does (servers.proxy), instead of being answered."""

    ports: tuple[int, ...]
    udp_ports: tuple[int, ...] = ()
    text: str | None = None
    tls_ports: tuple[int, ...] = ()
    redis_ports: tuple[int, ...] = ()
    replica_of: tuple[str, int] | None = None
    proxy_to: str | None = None
    # Where the image serves its files from (nginx's /usr/share/nginx/html): when a volume of
    # the pod is mounted there (or above), its files are what the server answers, as nginx does.
    docroot: str | None = None


@dataclass(frozen=True)
class RunDns:
    """The cluster DNS server (the kube-dns pod)."""

    port: int = 53


@dataclass(frozen=True)
class RunNothing:
    """Nothing runs: the namespace alone is the pod, as the pause container is. `completes`: a
    container of a run-to-completion pod (a Job's) whose image has nothing to serve here: it
    ends at once with exit code 0, as an emulated init container does."""

    completes: bool = False


RunSpec = RunExec | RunNetexec | RunServeHostname | RunHttp | RunDns | RunNothing


# --------------------------------------------------------------------------------------------
# The plan: the desired state, fully resolved (addresses, names, placement, endpoints).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedNode:
    name: str
    index: int
    ip: IPv4Address  # on the underlay
    pod_cidr: IPv4Network
    gateway: IPv4Address  # first address of pod_cidr, on cbr0
    netns: str
    underlay_veth: str  # the node's eth0 peer, in the underlay namespace
    labels: Mapping[str, str] = field(default_factory=dict)
    # (destination, gateway on eth0): the service subnet and the external clients via the
    # underlay's router; the routes between nodes are the backend's (dataplane/backends)
    routes: tuple[tuple[IPv4Network, IPv4Address], ...] = ()
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False


@dataclass(frozen=True)
class Confinement:
    """What a container's processes may do (see plan.security): uid/gid/groups; capabilities
    (upper-case, no CAP_: the bounding set, and for uid 0 the effective one); no_new_privs;
    privileged (every capability, nothing masked); read_only_root (no writable /tmp, /run, ...);
    `refused`: why kubelet would not start it (runAsNonRoot and a root user), else None."""

    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    no_new_privs: bool = False
    privileged: bool = False
    read_only_root: bool = False
    refused: str | None = None


@dataclass(frozen=True)
class VolumeFile:
    """A file of a configMap, secret or downwardAPI volume: its path under the volume, its
    content (text, or base64 when `binary`), its mode."""

    path: str
    text: str
    mode: int = 0o644
    binary: bool = False


@dataclass(frozen=True)
class PlannedVolume:
    """A pod volume as kubelet sets it up: kind "emptyDir" (a directory the pod's containers
    share, gone with the pod), "configMap", "secret", "downwardAPI" (`files`, mounted
    read-only), "hostPath" (`host_path`, allowed by the Cluster config). `error`: why kubelet
    could not set it up (a missing ConfigMap or key: the pod stays ContainerCreating)."""

    name: str
    kind: str
    medium: str = ""
    files: tuple[VolumeFile, ...] = ()
    host_path: str | None = None
    error: str | None = None
    # The ConfigMap's or Secret's name (configMap, secret), and whether it may be missing.
    source: str = ""
    optional: bool = False


@dataclass(frozen=True)
class PlannedMount:
    """Where a container sees a volume (`sub_path`: one entry of it)."""

    volume: str
    path: str
    read_only: bool = False
    sub_path: str = ""


@dataclass(frozen=True)
class PlannedContainer:
    name: str
    image: str
    run: RunSpec
    ports: tuple[ContainerPort, ...] = ()
    # Why `run` is the built-in server rather than what the manifest asks to run (a program that
    # lives inside the image), said as a warning at `up`; None when it runs as asked.
    note: str | None = None
    # An init container with restartPolicy Always (a native sidecar): it keeps running beside
    # the pod's containers. A plain init container runs to completion; one whose `run` is not
    # RunExec (nothing of it runs here) completes at once with exit code 0.
    sidecar: bool = False
    pre_stop: Hook | None = None
    # Its own variables (pod fields resolved) and whether it gets its namespace's service
    # variables, whatever it runs: a real process starts with them, `exec` into it sees them.
    env: tuple[tuple[str, str], ...] = ()
    service_links: bool = True
    # What kubelet probes it with (see Probe); run by the supervisor.
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None
    confinement: Confinement = field(default_factory=Confinement)
    mounts: tuple[PlannedMount, ...] = ()
    # Why kubelet could not make its environment (a missing ConfigMap/Secret or key): the
    # container waits with reason CreateContainerConfigError and this message. None: it can start.
    config_error: str | None = None
    # kubelet's InvalidEnvironmentVariableNames messages: envFrom keys that are no variable names.
    env_skipped: tuple[str, ...] = ()
    # Where each of `env` comes from, for describe: "" its own value (or pod field), "envFrom",
    # or kubectl's words for a ConfigMap's or Secret's key (its value is not shown); empty: all
    # its own. `env_from`: its envFrom sources.
    env_sources: tuple[str, ...] = ()
    env_from: tuple[EnvFrom, ...] = ()


@dataclass(frozen=True)
class PlannedPod:
    namespace: str
    name: str
    node: str
    ip: IPv4Address  # the pod IP (the node's IP for hostNetwork pods)
    netns: str  # the pod's own namespace, or its node's for hostNetwork pods
    host_veth: str | None  # None for hostNetwork pods
    labels: Mapping[str, str] = field(default_factory=dict)
    containers: tuple[PlannedContainer, ...] = ()
    host_network: bool = False
    owner: str | None = None
    uid: str = ""
    # spec.hostname / spec.subdomain: a headless service named like the subdomain gives the pod
    # the DNS name <hostname>.<subdomain>.<namespace>.svc.<zone>.
    hostname: str | None = None
    subdomain: str | None = None
    # What kubelet writes into the pod's resolv.conf and hosts (see plan.podfiles).
    dns_policy: str = "ClusterFirst"
    dns_config: DnsConfig | None = None
    host_aliases: tuple[HostAlias, ...] = ()
    set_hostname_as_fqdn: bool = False
    # The lifecycle kubelet gives it: init containers (in order) before `containers`, the
    # restart policy of its containers, and the seconds it has to stop (preStop, then SIGTERM).
    init_containers: tuple[PlannedContainer, ...] = ()
    restart_policy: str = "Always"
    termination_grace_period: int = DEFAULT_GRACE_SECONDS
    # "ns/name" of the pod its controller waits for before it creates this one: a StatefulSet's
    # previous ordinal under podManagementPolicy OrderedReady. Its containers start once that pod
    # and every one before it are Running and Ready (see plan.ordering); until then it does not
    # exist as far as `get` and the endpoints are concerned. None: it starts at once.
    created_after: str | None = None
    volumes: tuple[PlannedVolume, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PlannedWorkload:
    """A controller as `get deploy|rs|rc|sts|ds|jobs` shows it; its pods name it as their owner
    (`kind/name`). `replicas`: the pods it wants (a DaemonSet: the nodes its pods fit; a Job:
    its completions). A Deployment's ReplicaSet is one of these too, owned by the Deployment."""

    kind: str
    namespace: str
    name: str
    replicas: int
    selector: LabelSelector
    containers: tuple[tuple[str, str], ...] = ()  # (name, image)
    owner: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    completions: int | None = None
    parallelism: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    # A Deployment's ReplicaSet: its revision; a Deployment: the name of its current ReplicaSet.
    revision: int = 0
    current_set: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class PendingPod:
    """A pod no node can take (the scheduler's FailedScheduling): it has no node, address or
    namespace, and waits. `containers`: (name, image)."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    owner: str | None = None
    containers: tuple[tuple[str, str], ...] = ()
    message: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def reason(self) -> str:
        """The PodScheduled condition's reason: SchedulingGated or Unschedulable."""
        return "SchedulingGated" if self.message.startswith("Scheduling is blocked") else "Unschedulable"


@dataclass(frozen=True)
class Endpoint:
    ip: IPv4Address
    port: int
    pod: str  # "namespace/name"; "" for an address of a written EndpointSlice that names no pod
    node: str  # "" when unknown (a written slice's endpoint without nodeName)
    ready: bool = True
    # A written slice's other conditions, as kube-proxy reads them (a nil serving is true): when
    # a Service has no ready endpoint, kube-proxy uses those that are serving and terminating.
    serving: bool = True
    terminating: bool = False
    # The endpoint's hostname as its slice gives it (a written slice's endpoints[].hostname, or
    # the pod's spec.hostname when its spec.subdomain names the Service, as the controllers set
    # it): the cluster DNS names it <hostname>.<svc>.<ns>.svc.<zone>; None: its dashed address.
    hostname: str | None = None


@dataclass(frozen=True)
class PlannedServicePort:
    name: str | None
    protocol: str
    port: int
    target_port: int | str
    node_port: int | None
    endpoints: tuple[Endpoint, ...] = ()
    app_protocol: str | None = None


@dataclass(frozen=True)
class PlannedService:
    namespace: str
    name: str
    type: str
    cluster_ip: IPv4Address | None  # None: headless
    ports: tuple[PlannedServicePort, ...] = ()
    selector: Mapping[str, str] | None = None
    session_affinity: str = "None"
    affinity_timeout: int = 10800
    external_traffic_policy: str = "Cluster"
    internal_traffic_policy: str = "Cluster"
    external_ips: tuple[IPv4Address, ...] = ()
    load_balancer_ips: tuple[IPv4Address, ...] = ()
    # Those of load_balancer_ips whose status.loadBalancer.ingress[].ipMode is Proxy: kube-proxy
    # writes no rule for them (the traffic reaches the nodes from the balancer, addressed to
    # them), and the lab's balancer proxies them: the backend sees the balancer's address.
    proxied_lb_ips: tuple[IPv4Address, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # As the API server defaults them (see Service).
    ip_families: tuple[str, ...] = ("IPv4",)
    ip_family_policy: str = "SingleStack"
    publish_not_ready_addresses: bool = False
    allocate_load_balancer_node_ports: bool = True
    load_balancer_class: str | None = None
    health_check_node_port: int | None = None
    load_balancer_source_ranges: tuple[str, ...] = ()
    traffic_distribution: str | None = None
    # A headless Service without ports (a StatefulSet's governing one): the endpoints controller
    # lists the pods it selects all the same, in one portless subset (port 0 here), with their
    # readiness; what its DNS name answers. Empty for every other Service (see `ports`).
    external_name: str | None = None  # type ExternalName: no address, no rules; its DNS name is a CNAME
    addresses: tuple[Endpoint, ...] = ()
    # A Service with a selector whose endpoints are the EndpointSlice controller's slices written
    # in the manifests (a real cluster's, exported), the lab running nothing it selects
    # (plan.endpointslices.exported): those slices stand, and the lab makes none of its own.
    exported_slices: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ipv4_source_ranges(self) -> tuple[IPv4Network, ...]:
        """loadBalancerSourceRanges as kube-proxy's IPv4 proxier reads them: spaces trimmed, each
        the network of its CIDR; an IPv6 range is the other family's (this cluster is single-stack)."""
        out = []
        for text in self.load_balancer_source_ranges:
            try:
                out.append(IPv4Network(text.strip(), strict=False))
            except ValueError:
                continue
        return tuple(out)

    @property
    def headless(self) -> bool:
        return self.cluster_ip is None and self.type != "ExternalName"


@dataclass(frozen=True)
class Allocations:
    """What must survive from one `up` to the next: addresses and ports in use."""

    pod_ips: Mapping[str, str] = field(default_factory=dict)  # "ns/name" -> ip
    last_reserved: Mapping[str, str] = field(default_factory=dict)  # node -> last pod ip handed out
    cluster_ips: Mapping[str, str] = field(default_factory=dict)  # "ns/name" -> ip
    node_ports: Mapping[str, int] = field(default_factory=dict)  # "ns/name:port/PROTO" -> port
    lb_ips: Mapping[str, str] = field(default_factory=dict)  # "ns/name" -> ip
    # When each Service, controller and pod was first made (epoch seconds; a pod made anew: then), keyed
    # "Kind/ns/name": its creationTimestamp, kept while it exists, as the API server keeps it.
    created: Mapping[str, float] = field(default_factory=dict)
    # The indices the pods of each ReplicaSet and ReplicationController are named from ("ns/Kind/name"
    # -> indices, see plan.replicas), and the next index each has never used.
    replicas: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    replica_next: Mapping[str, int] = field(default_factory=dict)
    # Each Deployment's ReplicaSets ("ns/name"): their size now, the Deployment version whose
    # template makes their pods, and their revision (see plan.rollout).
    rs_sizes: Mapping[str, int] = field(default_factory=dict)
    rs_templates: Mapping[str, Workload] = field(default_factory=dict)
    rs_revisions: Mapping[str, int] = field(default_factory=dict)
    # The labels of a controller's pod changed by `label` ("ns/name" -> its labels), while it
    # runs: it is no object of the lab, so they are kept here (its template's otherwise).
    pod_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """What a controller, the scheduler, the kubelet side or kube-proxy's side did, as a
    Kubernetes Event says it: about `kind/name` in `namespace` (empty for a Node), `reason` and
    `message` worded as Kubernetes words them, `type` Normal or Warning, from `source` (the
    component: default-scheduler, kubelet, replicaset-controller, ...) on `host` (a node)."""

    namespace: str
    kind: str
    name: str
    reason: str
    message: str
    type: str = "Normal"
    source: str = ""
    host: str = ""


@dataclass(frozen=True)
class Plan:
    lab: str
    cluster: ClusterConfig
    nodes: tuple[PlannedNode, ...]
    pods: tuple[PlannedPod, ...]
    services: tuple[PlannedService, ...]
    allocations: Allocations
    underlay_netns: str
    underlay_bridge: str = "br0"
    namespaces: tuple[str, ...] = ("default",)
    # The nodes' own resolv.conf (the lab's nodes have this machine's), as kubelet reads it: what
    # dnsPolicy Default gives a pod, and the search domains ClusterFirst adds after the cluster's.
    node_dns: DnsConfig = field(default_factory=DnsConfig)
    pending: tuple[PendingPod, ...] = ()
    workloads: tuple[PlannedWorkload, ...] = ()
    config_maps: tuple[ConfigMap, ...] = ()  # ConfigMaps and Secrets, as the model has them
    # The EndpointSlices written in the manifests and those the mirroring controller makes of
    # written Endpoints (plan.endpointslices); the EndpointSlice controller's own are derived
    # from the services' endpoints when shown. And the legacy Endpoints written.
    endpoint_slices: tuple[EndpointSlice, ...] = ()
    endpoints: tuple[Endpoints, ...] = ()
    # Every namespace of `namespaces` with its labels (NAMESPACE_NAME_LABEL on each), and the
    # NetworkPolicies as the API server stores them (plan.policies).
    namespace_objects: tuple[Namespace, ...] = ()
    network_policies: tuple[NetworkPolicy, ...] = ()

    def node(self, name: str) -> PlannedNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def pod(self, key: str) -> PlannedPod:
        for p in self.pods:
            if p.key == key:
                return p
        raise KeyError(key)
