"""Validated documents -> the typed `Model`, and the checks that span several objects.

Documents arrive one by one (`Builder.document`); checks that need the whole input (duplicates,
nodeNames, podCIDRs against each other and the podSubnet) run in `Builder.model` once everything
is read. An object with any problem is reported but not built, so one mistake gives one message.
"""
from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from ..model.objects import (DEFAULT_GRACE_SECONDS, DEFAULT_NODES, Affinity, ClusterConfig, ConfigMap, Container,
                          ContainerPort, DnsConfig, DownwardFile, EndpointAddress, Endpoints, EndpointSlice,
                          EndpointSubset, EnvFrom, EnvVar, Hook, HostAlias, KeyRef, KeyToPath,
                          LabelSelector, MANAGED_BY_LABEL, MatchExpression, Model, NAMESPACE_NAME_LABEL, Namespace,
                          NetworkPolicy, Node, NodeSelectorTerm, ObjectRef,
                          Origin, Pod, PodAffinityTerm, PodSpec, PROBE_DEFAULTS, Probe, SERVICE_NAME_LABEL,
                          SKIP_MIRROR_LABEL, SLICE_CONTROLLER, Service, ServicePort, SliceEndpoint, SlicePort, Taint,
                          Toleration, Volume, VolumeMount, Workload, runs_selected)
from .configs import SECRET_DEFAULT_TYPE, merged_secret_data, volume_kind
from .netpol import to_policy
from .security import security_context
from .fields import At, Checked, LMap, Sink, describe, did_you_mean, field_lines, plain
from .schema import (CLUSTER_API, KINDS, OTHER_KINDS, PROBES, Kind, cni_config_path, subnets, template_labels,
                     to_selector)
from .subnets import SERVICE_PREFIX_LIMIT, anchored, derive

IMPLIED_NAMESPACES = ("default", "kube-system")
KUBERNETES, KUBE_DNS = "default/kubernetes", "kube-system/kube-dns"  # at the first and tenth service address
PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
ZONE_LABEL = "topology.kubernetes.io/zone"


def _field_at(raw: Any, at: At, *keys: str) -> At:
    """Where `keys` (a path into the raw document) was written, as far as it exists."""
    for key in keys:
        if not isinstance(raw, LMap) or key not in raw:
            return at.child(key)
        at, raw = at.child(key, raw.lines[key]), raw[key]
    return at


def _raw_name(raw: LMap) -> tuple[str | None, str]:
    meta = raw.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name, namespace = meta.get("name"), meta.get("namespace")
    return (name if isinstance(name, str) else None,
            namespace if isinstance(namespace, str) else "default")


def _origin(raw: LMap, at: At) -> Origin:
    """The object's place, with the line of each of its fields for the planner's messages."""
    return Origin(at.file, at.line, field_lines(raw))


class Builder:
    def __init__(self, sink: Sink):
        self.sink = sink
        self.cluster: ClusterConfig | None = None
        self.cluster_seen: At | None = None
        self.nodes: list[Node] = []
        self.node_names: list[str] = []
        self.namespaces: list[str] = []
        self.namespace_objects: list[Namespace] = []
        self.network_policies: list[NetworkPolicy] = []
        self.pods: list[Pod] = []
        self.workloads: list[Workload] = []
        self.services: list[Service] = []
        self.config_maps: list[ConfigMap] = []  # and Secrets
        self.endpoint_slices: list[tuple[EndpointSlice, At]] = []
        self.endpoints: list[tuple[Endpoints, At]] = []
        self.seen: dict[tuple[str, str, str], Origin] = {}
        self.pod_cidrs: list[tuple[At, IPv4Network, str]] = []
        self.cluster_ips: list[tuple[At, IPv4Network]] = []  # each Service's, as a /32
        self.networking_set: set[str] = set()  # the Cluster config's networking keys
        self.fixed_ips: dict[str, tuple[At, IPv4Address]] = {}  # Service key -> its written clusterIP
        self.pod_subnet_derived = False
        self.zone_preferring: list[At] = []  # trafficDistribution of services that prefer their zone
        self.zone_hinted: list[At] = []  # the first endpoints[].hints of each EndpointSlice that has some

    # ----------------------------------------------------------------------------- dispatch

    def document(self, raw: Any, at: At) -> None:
        if raw is None:
            return
        if not isinstance(raw, dict):
            at.error(f"expected a Kubernetes object (a map with apiVersion and kind), got {describe(raw)}")
            return
        kind = raw.get("kind")
        kind_at = _field_at(raw, at, "kind")
        if kind is None or not isinstance(kind, str):
            kind_at.error("required field is missing" if kind is None else
                          f"expected a string, got {describe(kind)}")
            self._api_version(raw, at, None, None)
            return
        if kind == "List":
            self._list(raw, at)
            return
        spec = KINDS.get(kind)
        if spec is None:
            name, _ = _raw_name(raw)
            # A kind of the Kubernetes API is skipped as it is; a hint is for what looks like a typo
            hint = "" if kind in OTHER_KINDS else did_you_mean(kind, KINDS)
            at.warn(f"skipping {kind}{'/' + name if name else ''} (kind not modelled by kubenet-lab){hint}")
            return
        before = self.sink.count
        self._api_version(raw, at, spec.name, spec.api_version)
        self._remember(raw, at, spec)
        checked = spec.schema.convert(raw, at)
        if self.sink.count == before:
            add = {"Cluster": self._add_cluster, "Node": self._add_node, "Namespace": self._add_namespace,
                   "Pod": self._add_pod, "Service": self._add_service, "ConfigMap": self._add_config_map,
                   "Secret": self._add_config_map, "EndpointSlice": self._add_endpoint_slice,
                   "Endpoints": self._add_endpoints,
                   "NetworkPolicy": self._add_network_policy}.get(kind, self._add_workload)
            add(raw, checked, at)

    def _api_version(self, raw: dict, at: At, kind: str | None, expected: str | None) -> None:
        version = raw.get("apiVersion")
        version_at = _field_at(raw, at, "apiVersion")
        if version is None:
            version_at.error("required field is missing" + (f" (expected {expected!r})" if expected else ""))
        elif not isinstance(version, str):
            version_at.error(f"expected a string, got {describe(version)}")
        elif expected and version != expected:
            version_at.error(f"expected {expected!r} for a {kind}, got {version!r}")

    def _list(self, raw: LMap, at: At) -> None:
        """`kind: List` (what `kubectl get -o yaml` writes): each item is a document of its own."""
        self._api_version(raw, at, "List", "v1")
        items = raw.get("items")
        items_at = _field_at(raw, at, "items")
        unknown = [k for k in raw if k not in ("apiVersion", "kind", "items", "metadata")]
        for key in unknown:
            _field_at(raw, at, key).error(f"unknown field{did_you_mean(str(key), ('items', 'metadata'))}")
        if items is None:
            return
        if not isinstance(items, list):
            items_at.error(f"expected a list, got {describe(items)}")
            return
        for i, item in enumerate(items):
            self.document(item, items_at.item(i, items.lines[i]))

    def _remember(self, raw: LMap, at: At, kind: Kind) -> None:
        """Duplicates are found from the raw names, so that a broken first copy still counts."""
        if kind.name == "Cluster":
            if self.cluster_seen is not None:
                _field_at(raw, at, "kind").error(
                    f"only one Cluster object is allowed (the first is at {self.cluster_seen.origin})")
            self.cluster_seen = self.cluster_seen or at
            return
        name, namespace = _raw_name(raw)
        if name is None:
            return
        if kind.name == "Node":
            self.node_names.append(name)
        key = (kind.name, namespace if kind.namespaced else "", name)
        shown = f"{namespace}/{name}" if kind.namespaced else name
        if key in self.seen:
            _field_at(raw, at, "metadata", "name").error(
                f"duplicate {kind.name} {shown} (first defined at {self.seen[key]})")
        else:
            self.seen[key] = at.origin

    # ----------------------------------------------------------------------------- kinds

    def _add_cluster(self, raw: LMap, doc: Checked, at: At) -> None:
        net = doc.get("networking", {})
        self.networking_set = {key for key in ("podSubnet", "serviceSubnet") if key in net}
        nets = subnets(net)
        defaults = ClusterConfig()
        self.cluster = ClusterConfig(
            pod_subnet=nets["podSubnet"], service_subnet=nets["serviceSubnet"], node_subnet=nets["nodeSubnet"],
            kube_proxy_mode=net.get("kubeProxyMode", defaults.kube_proxy_mode),
            nftables_balancing=net.get("nftablesBalancing", defaults.nftables_balancing),
            backend=net.get("backend", defaults.backend),
            wiring=net.get("wiring", defaults.wiring), cni_config=cni_config_path(net),
            dns_domain=net.get("dnsDomain", defaults.dns_domain), lb_pool=net.get("loadBalancerPool"),
            node_port_range=net.get("serviceNodePortRange", defaults.node_port_range),
            allow_host_path=doc.get("allowHostPath", False), origin=_origin(raw, at))

    def _add_node(self, raw: LMap, doc: Checked, at: At) -> None:
        spec = doc.get("spec", {})
        pod_cidr = spec.get("podCIDR") or next(iter(spec.get("podCIDRs", [])), None)
        name = doc["metadata"]["name"]
        if pod_cidr is not None:
            place = spec.at("podCIDR") if "podCIDR" in spec else spec.at("podCIDRs")
            self.pod_cidrs.append((place, pod_cidr, name))
        self.nodes.append(Node(name=name, labels=doc["metadata"].get("labels", {}), pod_cidr=pod_cidr,
                               taints=tuple(Taint(t["key"], t["effect"], t.get("value", ""))
                                            for t in spec.get("taints", ())),
                               unschedulable=spec.get("unschedulable", False), origin=_origin(raw, at)))

    def _add_namespace(self, raw: LMap, doc: Checked, at: At) -> None:
        name = doc["metadata"]["name"]
        if name not in IMPLIED_NAMESPACES:
            self.namespaces.append(name)
        labels = {**doc["metadata"].get("labels", {}), NAMESPACE_NAME_LABEL: name}  # the API server sets it
        self.namespace_objects.append(Namespace(name, labels, _origin(raw, at)))

    def _add_network_policy(self, raw: LMap, doc: Checked, at: At) -> None:
        self.network_policies.append(to_policy(doc, _origin(raw, at)))

    def _add_pod(self, raw: LMap, doc: Checked, at: At) -> None:
        meta = doc["metadata"]
        self.pods.append(Pod(namespace=meta.get("namespace", "default"), name=meta["name"],
                             labels=meta.get("labels", {}), spec=self._pod_spec(doc["spec"]), origin=_origin(raw, at),
                             annotations=dict(meta.get("annotations", {}))))

    def _add_config_map(self, raw: LMap, doc: Checked, at: At) -> None:
        """A ConfigMap or a Secret, its data as the API server stores it (a Secret's stringData
        encoded into its data; its type Opaque unless given)."""
        meta, kind = doc["metadata"], raw["kind"]
        secret = kind == "Secret"
        self.config_maps.append(ConfigMap(
            namespace=meta.get("namespace", "default"), name=meta["name"], kind=kind,
            data=(merged_secret_data(doc.get("data", {}), doc.get("stringData", {})) if secret
                  else dict(doc.get("data", {}))),
            binary_data={} if secret else dict(doc.get("binaryData", {})),
            type=doc.get("type") or SECRET_DEFAULT_TYPE if secret else "", labels=dict(meta.get("labels", {})),
            immutable=doc.get("immutable", False), origin=_origin(raw, at)))

    def _add_workload(self, raw: LMap, doc: Checked, at: At) -> None:
        meta, spec, kind = doc["metadata"], doc["spec"], raw["kind"]
        labels = template_labels(spec)
        if kind == "ReplicationController":
            selector = LabelSelector(match_labels=dict(spec.get("selector") or labels))
        elif kind == "Job" and "selector" not in spec:
            selector = LabelSelector(match_labels={"batch.kubernetes.io/job-name": meta["name"]})
        else:
            selector = to_selector(spec["selector"])
        # Job: .spec.completions and .spec.parallelism default to 1; completions unset with
        # parallelism set is the work-queue pattern.
        parallelism = spec.get("parallelism", 1)
        completions = spec.get("completions", None if "parallelism" in spec else 1)
        self.workloads.append(Workload(
            kind=kind, namespace=meta.get("namespace", "default"), name=meta["name"],
            replicas=spec.get("replicas", 1), selector=selector, template_labels=labels,
            template=self._pod_spec(spec["template"]["spec"], _claims(spec)),
            template_raw=plain(raw["spec"]["template"]),
            origin=_origin(raw, at), service_name=spec.get("serviceName"),
            ordinal_start=spec.get("ordinals", {}).get("start", 0),
            pod_management=spec.get("podManagementPolicy", "OrderedReady"),
            completions=completions, parallelism=parallelism, backoff_limit=spec.get("backoffLimit", 6),
            completion_mode=spec.get("completionMode", "NonIndexed"), labels=dict(meta.get("labels", {})),
            strategy=spec.get("strategy", {}).get("type", "RollingUpdate"),
            max_surge=spec.get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", "25%"),
            max_unavailable=spec.get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable", "25%")))

    def _add_service(self, raw: LMap, doc: Checked, at: At) -> None:
        meta, spec = doc["metadata"], doc["spec"]
        kind = spec.get("type", "ClusterIP")
        cluster_ip = spec.get("clusterIP", next(iter(spec.get("clusterIPs", [])), None)) or None
        if cluster_ip not in (None, "None") and kind != "ExternalName":
            place = spec.at("clusterIP") if "clusterIP" in spec else spec.at("clusterIPs").item(0)
            self.cluster_ips.append((place, IPv4Network(cluster_ip)))
            self.fixed_ips[f"{meta.get('namespace', 'default')}/{meta['name']}"] = (place, IPv4Address(cluster_ip))
        timeout = spec.get("sessionAffinityConfig", {}).get("clientIP", {}).get("timeoutSeconds", 10800)
        self.services.append(Service(
            namespace=meta.get("namespace", "default"), name=meta["name"], type=kind,
            selector=spec.get("selector") or None, cluster_ip=cluster_ip,
            ports=tuple(ServicePort(port=p["port"], protocol=p.get("protocol", "TCP"), name=p.get("name"),
                                    target_port=p.get("targetPort"), node_port=p.get("nodePort"),
                                    app_protocol=p.get("appProtocol"))
                        for p in spec.get("ports", [])),
            external_name=spec.get("externalName") if kind == "ExternalName" else None,
            session_affinity=spec.get("sessionAffinity", "None"), affinity_timeout=timeout,
            external_traffic_policy=spec.get("externalTrafficPolicy", "Cluster"),
            internal_traffic_policy=spec.get("internalTrafficPolicy", "Cluster"),
            external_ips=tuple(spec.get("externalIPs", ())), load_balancer_ip=spec.get("loadBalancerIP"),
            origin=_origin(raw, at), labels=dict(meta.get("labels", {})),
            annotations=dict(meta.get("annotations", {})),
            ip_families=tuple(spec.get("ipFamilies", ())), ip_family_policy=spec.get("ipFamilyPolicy"),
            publish_not_ready_addresses=spec.get("publishNotReadyAddresses", False),
            allocate_load_balancer_node_ports=spec.get("allocateLoadBalancerNodePorts", True),
            load_balancer_class=spec.get("loadBalancerClass"), health_check_node_port=spec.get("healthCheckNodePort"),
            load_balancer_source_ranges=tuple(spec.get("loadBalancerSourceRanges", ())),
            traffic_distribution=spec.get("trafficDistribution"),
            load_balancer_ingress=self._ingress(doc, kind),
            load_balancer_ingress_proxied=tuple(ip for ip, mode in self._ingress_modes(doc, kind) if mode == "Proxy")))
        if spec.get("trafficDistribution") in ("PreferClose", "PreferSameZone") and cluster_ip != "None":
            self.zone_preferring.append(spec.at("trafficDistribution"))
        if PROXY_NAME_LABEL in meta.get("labels", {}):
            # kube-proxy watches Services without this label only (another proxy serves the rest)
            _field_at(raw, at, "metadata", "labels", PROXY_NAME_LABEL).warn(
                "not modelled: on a cluster kube-proxy writes no rules for a Service with this label (the proxy "
                f"it names, {meta['labels'][PROXY_NAME_LABEL]!r}, serves it); here kube-proxy's rules serve it")

    @staticmethod
    def _ingress(doc: Checked, kind: str) -> tuple[str, ...]:
        """status.loadBalancer.ingress[].ip of a LoadBalancer Service, as a cloud controller wrote
        it; a hostname alone (an AWS balancer's) has no address the lab's balancer could answer on."""
        status = doc.get("status") or {}
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        if kind != "LoadBalancer":
            if ingress:
                status.at("loadBalancer").warn(f"ignored: only a LoadBalancer Service has load-balancer "
                                               f"addresses (this one is {kind})")
            return ()
        for i, entry in enumerate(ingress):
            if "ip" not in entry:
                status["loadBalancer"].at("ingress").item(i).warn(
                    "a hostname without an ip: the lab's balancer answers on addresses only, so nothing answers "
                    "on this one")
        return tuple(entry["ip"] for entry in ingress if "ip" in entry)

    @staticmethod
    def _ingress_modes(doc: Checked, kind: str) -> list[tuple[str, str]]:
        """(ip, ipMode) of each status.loadBalancer.ingress[] with an ip (ipMode defaults to VIP,
        as the API server defaults it)."""
        if kind != "LoadBalancer":
            return []
        ingress = ((doc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return [(entry["ip"], entry.get("ipMode", "VIP")) for entry in ingress if "ip" in entry]

    def _add_endpoint_slice(self, raw: LMap, doc: Checked, at: At) -> None:
        meta = doc["metadata"]
        labels = dict(meta.get("labels", {}))
        if SERVICE_NAME_LABEL not in labels:
            _field_at(raw, at, "metadata").warn(
                f"no {SERVICE_NAME_LABEL} label: this EndpointSlice belongs to no Service (kube-proxy finds a "
                "Service's slices by that label), so no traffic goes to its endpoints")
        hinted = [e.at("hints") for e in doc.get("endpoints") or () if (e.get("hints") or {}).get("forZones")]
        self.zone_hinted += hinted[:1]
        self.endpoint_slices.append((EndpointSlice(
            namespace=meta.get("namespace", "default"), name=meta["name"], address_type=doc["addressType"],
            endpoints=tuple(SliceEndpoint(
                addresses=tuple(e["addresses"]), ready=e.get("conditions", {}).get("ready"),
                serving=e.get("conditions", {}).get("serving"),
                terminating=e.get("conditions", {}).get("terminating"), node_name=e.get("nodeName"),
                hostname=e.get("hostname"), target_ref=_object_ref(e.get("targetRef")))
                for e in doc.get("endpoints", ())),
            ports=tuple(SlicePort(name=p.get("name", ""), protocol=p.get("protocol", "TCP"), port=p.get("port"),
                                  app_protocol=p.get("appProtocol")) for p in doc.get("ports", ())),
            labels=labels, annotations=dict(meta.get("annotations", {})), origin=_origin(raw, at)), at))

    def _add_endpoints(self, raw: LMap, doc: Checked, at: At) -> None:
        meta = doc["metadata"]

        def address(a: Checked) -> EndpointAddress:
            return EndpointAddress(ip=a["ip"], hostname=a.get("hostname"), node_name=a.get("nodeName"),
                                   target_ref=_object_ref(a.get("targetRef")))
        self.endpoints.append((Endpoints(
            namespace=meta.get("namespace", "default"), name=meta["name"],
            subsets=tuple(EndpointSubset(
                addresses=tuple(address(a) for a in ss.get("addresses", ())),
                not_ready_addresses=tuple(address(a) for a in ss.get("notReadyAddresses", ())),
                ports=tuple(SlicePort(name=p.get("name", ""), protocol=p.get("protocol", "TCP"), port=p["port"],
                                      app_protocol=p.get("appProtocol")) for p in ss.get("ports", ())))
                for ss in doc.get("subsets", ())),
            labels=dict(meta.get("labels", {})), annotations=dict(meta.get("annotations", {})),
            origin=_origin(raw, at)), at))

    @staticmethod
    def _pod_spec(spec: Checked, claims: tuple[Volume, ...] = ()) -> PodSpec:
        return PodSpec(
            security=security_context(spec.get("securityContext")),
            containers=tuple(_container(c) for c in spec["containers"]), node_name=spec.get("nodeName"),
            init_containers=tuple(_container(c) for c in spec.get("initContainers", ())),
            restart_policy=spec.get("restartPolicy", "Always"),
            termination_grace_period=spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS),
            host_network=spec.get("hostNetwork", False), hostname=spec.get("hostname"),
            subdomain=spec.get("subdomain"), enable_service_links=spec.get("enableServiceLinks", True),
            dns_policy=spec.get("dnsPolicy", "ClusterFirst"),
            dns_config=DnsConfig(
                nameservers=tuple(spec["dnsConfig"].get("nameservers", ())),
                searches=tuple(spec["dnsConfig"].get("searches", ())),
                options=tuple((o["name"], o.get("value")) for o in spec["dnsConfig"].get("options", ())),
            ) if "dnsConfig" in spec else None,
            host_aliases=tuple(HostAlias(a["ip"], tuple(a.get("hostnames", ()))) for a in spec.get("hostAliases", ())),
            set_hostname_as_fqdn=spec.get("setHostnameAsFQDN", False),
            node_selector=dict(spec.get("nodeSelector", {})),
            affinity=_affinity(spec["affinity"]) if "affinity" in spec else None,
            tolerations=tuple(Toleration(t.get("key", ""), t.get("operator", "Equal"), t.get("value", ""),
                                         t.get("effect", "")) for t in spec.get("tolerations", ())),
            scheduling_gates=tuple(g["name"] for g in spec.get("schedulingGates", ())),
            volumes=tuple(_volume(v) for v in spec.get("volumes", ())) + claims)

    # ----------------------------------------------------------------------------- the whole input

    def model(self) -> Model:
        self._check_node_refs()
        self._derive_subnets()
        self._check_pod_cidrs()
        self._check_zones()
        self._check_host_paths()
        self._check_endpoint_owners()
        return Model(cluster=self.cluster or ClusterConfig(), nodes=tuple(self.nodes),
                     namespaces=tuple(dict.fromkeys(self.namespaces)), pods=tuple(self.pods),
                     workloads=tuple(self.workloads), services=tuple(self.services),
                     config_maps=tuple(self.config_maps),
                     endpoint_slices=tuple(s for s, _ in self.endpoint_slices),
                     endpoints=tuple(e for e, _ in self.endpoints),
                     namespace_objects=tuple(self.namespace_objects), network_policies=tuple(self.network_policies))

    def _check_endpoint_owners(self) -> None:
        """What becomes of written EndpointSlices and Endpoints, said where the lab and a cluster
        would do something the writer may not expect: a Service with a selector has its slices
        and Endpoints made by the controllers, which replace what is written under their name."""
        services = {s.key: s for s in self.services}
        for sl, at in self.endpoint_slices:
            svc = services.get(f"{sl.namespace}/{sl.service}") if sl.service else None
            if sl.service and svc is None:
                at.warn(f"EndpointSlice/{sl.name}: no Service {sl.namespace}/{sl.service} "
                        f"(its {SERVICE_NAME_LABEL} label): no traffic goes to its endpoints")
            elif svc is not None and svc.selector and sl.managed_by == SLICE_CONTROLLER and \
                    not runs_selected(svc.selector, svc.namespace, self.pods, self.workloads):
                # A real cluster's, exported (plan.endpointslices.exported): it stands for the pods
                # the manifests do not have; but the lab's own DNS runs behind kube-dns.
                if svc.key == "kube-system/kube-dns":
                    at.warn(f"EndpointSlice/{sl.name}: ignored: the lab runs its cluster DNS behind Service "
                            f"{svc.key} (the manifests run nothing it selects), and makes its slices from that pod")
            elif svc is not None and svc.selector and sl.managed_by == SLICE_CONTROLLER:
                at.warn(f"EndpointSlice/{sl.name}: ignored: Service {svc.key} has a selector, so the EndpointSlice "
                        f"controller owns the slices labelled {MANAGED_BY_LABEL}={SLICE_CONTROLLER} and deletes "
                        "one it did not make; the lab makes that Service's slices from the pods it selects")
            elif svc is not None and svc.selector:
                at.warn(f"EndpointSlice/{sl.name}: Service {svc.key} has a selector: kube-proxy uses this "
                        "slice's endpoints as well as those the EndpointSlice controller makes from its pods")
        for ep, at in self.endpoints:
            svc = services.get(ep.key)
            if svc is not None and svc.selector:
                at.warn(f"Endpoints/{ep.name}: ignored: Service {svc.key} has a selector, so the endpoints "
                        "controller writes its Endpoints from the pods it selects (this object would be "
                        "overwritten), and kube-proxy reads EndpointSlices only")
            elif svc is None:
                at.warn(f"Endpoints/{ep.name}: no Service {ep.key}: the EndpointSliceMirroring controller mirrors "
                        "the Endpoints of a Service only, so no traffic goes to these addresses")
            elif ep.labels.get(SKIP_MIRROR_LABEL) == "true":
                at.warn(f"Endpoints/{ep.name}: labelled {SKIP_MIRROR_LABEL}=true: not mirrored into "
                        "EndpointSlices, so kube-proxy sends no traffic to these addresses")

    def _check_host_paths(self) -> None:
        """A hostPath volume gives a pod this machine's own files: refused unless the Cluster
        config says allowHostPath: true."""
        if self.cluster is not None and self.cluster.allow_host_path:
            return
        for at, source in self.sink.notes.get("hostPath", ()):
            at.error(f"{source['path']!r}: a hostPath volume would give the pod this machine's own files; "
                     f"kubenet-lab refuses it unless the Cluster config (apiVersion: {CLUSTER_API}, kind: Cluster) "
                     f"says allowHostPath: true (or use an emptyDir)")

    def _check_node_refs(self) -> None:
        declared = list(dict.fromkeys(self.node_names))
        known = declared or list(DEFAULT_NODES)
        for at, name in self.sink.notes.get("nodeName", ()):
            if name in known:
                continue
            if not declared:
                why = " (with no Node objects the lab has node1 and node2)"
            else:
                shown = ", ".join(declared[:10]) + (", ..." if len(declared) > 10 else "")
                why = did_you_mean(name, declared) or f" (the nodes are {shown})"
            at.error(f"no Node named {name!r}{why}")

    def _check_zones(self) -> None:
        """trafficDistribution PreferClose (PreferSameZone) changes nothing while no node has a zone:
        the EndpointSlice controller gives no hints and kube-proxy uses every endpoint, as here.
        With zone labels it would route by zone, which the lab does not model yet."""
        zoned = [n.name for n in self.nodes if n.labels.get(ZONE_LABEL)]
        for at in self.zone_preferring if zoned else ():
            at.warn(f"not modelled yet: the nodes have {ZONE_LABEL} labels, so on a cluster kube-proxy would "
                    "prefer the ready endpoints of its own zone; here every node uses every ready endpoint")
        for at in self.zone_hinted if zoned else ():
            at.warn(f"not modelled yet: the nodes have {ZONE_LABEL} labels, so on a cluster kube-proxy would use "
                    "only the endpoints hinted for its node's zone (topology-aware routing, when every ready "
                    "endpoint has a hint); here every node uses every ready endpoint")

    def _derive_subnets(self) -> None:
        """podSubnet and serviceSubnet that no Cluster config sets, from the Nodes' podCIDRs and the
        Services' clusterIPs (manifests.subnets); what they cannot hold is reported where it is
        written. Without any, the defaults."""
        if self.cluster is None and self.cluster_seen is not None:
            return  # a Cluster object with problems of its own: nothing to derive against
        cluster = self.cluster or ClusterConfig()
        given = self.networking_set
        hint = ("; or set networking.{} in the Cluster config (apiVersion: " + CLUSTER_API + ", kind: Cluster)")

        def named(key: str, net: IPv4Network, derived_from: str) -> tuple[str, IPv4Network]:
            how = ("" if key in given else f" (derived from the {derived_from})" if key in derived else
                   " (the default)")
            return f"networking.{key} {net}{how}", net

        derived: list[str] = []
        service = cluster.service_subnet
        if "serviceSubnet" not in given and self.cluster_ips:
            avoid = [named("nodeSubnet", cluster.node_subnet, "")]
            if "podSubnet" in given:
                avoid.insert(0, named("podSubnet", cluster.pod_subnet, ""))
            values = [n for _, n in self.cluster_ips]
            net, refused = derive(values, "clusterIPs", avoid, limit=SERVICE_PREFIX_LIMIT)
            for r in refused:
                self.cluster_ips[r.index][0].error(r.why + hint.format("serviceSubnet"))
            if net is not None and not refused and KUBERNETES in self.fixed_ips:
                net = anchored(net, values, self.fixed_ips[KUBERNETES][1])
            if net is not None:
                service = net
                derived.append("serviceSubnet")
        if "serviceSubnet" in derived and KUBE_DNS in self.fixed_ips:
            at, ip = self.fixed_ips[KUBE_DNS]
            if ip != service.network_address + 10:
                at.warn(f"{ip} is not the tenth address of the service subnet {service} derived from the clusterIPs "
                        f"(kubeadm's clusterDNS): the lab's pods are told the cluster DNS is at "
                        f"{service.network_address + 10}, where nothing answers; set networking.serviceSubnet in the "
                        f"Cluster config (apiVersion: {CLUSTER_API}, kind: Cluster) to the cluster's")
        pod = cluster.pod_subnet
        if "podSubnet" not in given and self.pod_cidrs:
            avoid = [named("serviceSubnet", service, "Services' clusterIPs"),
                     named("nodeSubnet", cluster.node_subnet, "")]
            net, refused = derive([n for _, n, _ in self.pod_cidrs], "podCIDRs", avoid)
            for r in refused:
                self.pod_cidrs[r.index][0].error(r.why + hint.format("podSubnet"))
            self.pod_subnet_derived = True
            if net is not None:
                pod = net
                derived.append("podSubnet")
        if derived:
            self.cluster = dataclasses.replace(cluster, pod_subnet=pod, service_subnet=service,
                                               derived=tuple(derived))

    def _check_pod_cidrs(self) -> None:
        # A Cluster object with problems of its own has no podSubnet to compare against, and a
        # derived one holds every podCIDR it could (what it could not is reported).
        broken = self.cluster is None and self.cluster_seen is not None
        pod_subnet = None if broken or self.pod_subnet_derived else (self.cluster or ClusterConfig()).pod_subnet
        earlier: list[tuple[IPv4Network, str]] = []
        for at, net, node in self.pod_cidrs:
            if pod_subnet is not None and not net.subnet_of(pod_subnet):
                at.error(f"{net} is outside networking.podSubnet {pod_subnet}")
            for other, other_node in earlier:
                if net.overlaps(other):
                    at.error(f"{net} overlaps the podCIDR of node {other_node} ({other})")
            earlier.append((net, node))


def _object_ref(ref: Checked | None) -> ObjectRef | None:
    if ref is None:
        return None
    return ObjectRef(kind=ref.get("kind", ""), namespace=ref.get("namespace", ""), name=ref.get("name", ""),
                     uid=ref.get("uid", ""))


def _env_var(v: Checked) -> EnvVar:
    source = v.get("valueFrom", {})
    for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
        if key in source:
            ref = source[key]
            return EnvVar(name=v["name"], key_ref=KeyRef(kind, ref["name"], ref["key"], ref.get("optional", False)))
    return EnvVar(name=v["name"], value=v.get("value", ""),
                  field_path=source["fieldRef"]["fieldPath"] if "fieldRef" in source else None)


def _env_from(e: Checked) -> EnvFrom:
    kind, ref = ("ConfigMap", e["configMapRef"]) if "configMapRef" in e else ("Secret", e["secretRef"])
    return EnvFrom(kind=kind, name=ref["name"], prefix=e.get("prefix", ""), optional=ref.get("optional", False))


def _claims(spec: Checked) -> tuple[Volume, ...]:
    """A StatefulSet's volumeClaimTemplates: each pod's claim, an empty directory here (warned)."""
    return tuple(Volume(c["metadata"]["name"], "emptyDir") for c in spec.get("volumeClaimTemplates", ()))


def _volume(v: Checked) -> Volume:
    kind, source = volume_kind(v)
    items = tuple(KeyToPath(i["key"], i["path"], i.get("mode")) for i in source.get("items", ())
                  if "key" in i) if kind in ("configMap", "secret") else ()
    downward = tuple(DownwardFile(i["path"], i["fieldRef"]["fieldPath"], i.get("mode"))
                     for i in source.get("items", ()) if "fieldRef" in i) if kind == "downwardAPI" else ()
    return Volume(name=v["name"], kind=kind,
                  source=source.get("name") or source.get("secretName") or source.get("path") or "",
                  medium=source.get("medium", "") if kind == "emptyDir" else "", items=items, downward=downward,
                  default_mode=source.get("defaultMode"), optional=source.get("optional", False))


def _container(c: Checked) -> Container:
    return Container(
        name=c["name"], image=c.get("image", ""),
        command=tuple(c["command"]) if "command" in c else None,
        args=tuple(c["args"]) if "args" in c else None,
        ports=tuple(ContainerPort(container_port=p["containerPort"], name=p.get("name"),
                                  protocol=p.get("protocol", "TCP"), host_port=p.get("hostPort") or None,
                                  host_ip=p.get("hostIP")) for p in c.get("ports", [])),
        # A valueFrom of a kind the lab cannot resolve was warned about: the variable stays unset.
        env=tuple(_env_var(v) for v in c.get("env", [])
                  if {"fieldRef", "configMapKeyRef", "secretKeyRef"} & set(v.get("valueFrom", {"fieldRef": None}))),
        env_from=tuple(_env_from(e) for e in c.get("envFrom", ())),
        mounts=tuple(VolumeMount(m["name"], m["mountPath"], m.get("readOnly", False), m.get("subPath", ""))
                     for m in c.get("volumeMounts", ())),
        probe_ports=_probe_ports(c), restart_policy=c.get("restartPolicy"),
        pre_stop=_hook(c["lifecycle"]["preStop"]) if "preStop" in c.get("lifecycle", {}) else None,
        readiness_probe=_probe(c, "readinessProbe"), liveness_probe=_probe(c, "livenessProbe"),
        startup_probe=_probe(c, "startupProbe"),
        security=security_context(c.get("securityContext")))


def _probe(c: Checked, key: str) -> Probe | None:
    """The container's probe `key` (its one handler checked by the schema), timing defaulted as
    the API server defaults it (a zero is the default too), a port name resolved against the
    container's ports (an unknown one kept: kubelet reports it when it probes)."""
    p = c.get(key)
    if p is None:
        return None
    timing = {name: p.get(field) or PROBE_DEFAULTS[name] for name, field in (
        ("initial_delay", "initialDelaySeconds"), ("period", "periodSeconds"), ("timeout", "timeoutSeconds"),
        ("success_threshold", "successThreshold"), ("failure_threshold", "failureThreshold"))}
    kind = next(k for k in ("exec", "httpGet", "tcpSocket", "grpc") if k in p)
    handler = p[kind]
    port = handler.get("port")
    if isinstance(port, str):
        port = next((cp["containerPort"] for cp in c.get("ports", []) if cp.get("name") == port), port)
    return Probe(handler=kind, port=port, path=handler.get("path", ""), host=handler.get("host") or None,
                 scheme=handler.get("scheme", "HTTP"),
                 headers=tuple((h["name"], h["value"]) for h in handler.get("httpHeaders", ())),
                 command=tuple(handler.get("command", ())), grace=p.get("terminationGracePeriodSeconds"), **timing)


def _hook(h: Checked) -> Hook:
    """A lifecycle handler (its one action checked by the schema)."""
    if "exec" in h:
        return Hook(command=tuple(h["exec"].get("command", ())))
    if "httpGet" in h:
        get = h["httpGet"]
        return Hook(http_port=get["port"], http_path=get.get("path") or "/", http_host=get.get("host") or None,
                    http_scheme=get.get("scheme", "HTTP"))
    if "sleep" in h:
        return Hook(sleep_seconds=h["sleep"]["seconds"])
    return Hook(tcp=True)


def _requirements(items) -> tuple[MatchExpression, ...]:
    return tuple(MatchExpression(e["key"], e["operator"], tuple(e.get("values", ()))) for e in items)


def _term(t: Checked) -> NodeSelectorTerm:
    return NodeSelectorTerm(_requirements(t.get("matchExpressions", ())), _requirements(t.get("matchFields", ())))


def _pod_term(t: Checked) -> PodAffinityTerm:
    ns_selector = t.get("namespaceSelector")
    return PodAffinityTerm(to_selector(t.get("labelSelector", {})), t["topologyKey"], tuple(t.get("namespaces", ())),
                           all_namespaces=ns_selector is not None and not ns_selector.get("matchLabels"))


def _affinity(a: Checked) -> Affinity:
    node, pod, anti = a.get("nodeAffinity", {}), a.get("podAffinity", {}), a.get("podAntiAffinity", {})
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    return Affinity(
        node_required=tuple(_term(t) for t in node[required]["nodeSelectorTerms"]) if required in node else None,
        node_preferred=tuple((p["weight"], _term(p["preference"])) for p in node.get(preferred, ())),
        pod_required=tuple(_pod_term(t) for t in pod.get(required, ())),
        pod_preferred=tuple((p["weight"], _pod_term(p["podAffinityTerm"])) for p in pod.get(preferred, ())),
        anti_required=tuple(_pod_term(t) for t in anti.get(required, ())),
        anti_preferred=tuple((p["weight"], _pod_term(p["podAffinityTerm"])) for p in anti.get(preferred, ())))


def _probe_ports(c: Checked) -> tuple[int, ...]:
    """The numeric TCP ports the container's probes connect to (a named one is a declared port)."""
    ports = []
    for probe in PROBES:
        for action in ("httpGet", "tcpSocket", "grpc"):
            port = c.get(probe, {}).get(action, {}).get("port")
            if isinstance(port, int) and port not in ports:
                ports.append(port)
    return tuple(ports)
