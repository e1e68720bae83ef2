"""The shape of every kind kubenet-lab models, and the checks between fields of one object.

The field tables follow the Kubernetes API (core/v1, apps/v1) and kind's Cluster config (ConfigMaps,
Secrets, volumes and what refers to them: manifests.configs). Fields real manifests carry that do
not change what the lab does (resources, ...) are accepted and ignored, so that real bundles load;
anything else is an unknown field, with a hint.
"""
from __future__ import annotations

import os

import json
import re
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from . import security
from ..model.objects import DNS_POLICIES, PROTOCOLS, TAINT_EFFECTS, ClusterConfig, LabelSelector, MatchExpression
from .fields import (IGNORE, At, Bool, Checked, Either, Ignore, Int, Invalid, ListOf, MapOf, Noted, Obj, OneOf, Str,
                     Type, describe)
from .values import (address_range, cidr, cluster_ip, dns1035_label, dns_label, dns_search, dns_subdomain, env_name,
                     external_name,
                     field_path, iana_svc_name, ip_cidr, ip_text, ipv4_text, label_key, label_value, port_range,
                     qualified_name)
from . import configs, discovery, netpol

CLUSTER_API = "kubenet-lab.dev/v1alpha1"
PORT = Int(1, 65535)
LABELS = MapOf(label_key, label_value)
PROTOCOL = OneOf(*PROTOCOLS)


def _ignored(*names: str) -> dict[str, Type]:
    return {n: IGNORE for n in names}


class NotModelledUnless(Type):
    """A field accepted as it is, with a warning when it asks for what the lab does not do
    (any value but `inert`, which changes nothing)."""

    def __init__(self, inert: Any, warning: str):
        self.inert, self.warning = inert, Ignore(warning)

    def convert(self, value: Any, at: At) -> Any:
        return (IGNORE if value == self.inert else self.warning).convert(value, at)


MIN_READY = NotModelledUnless(0, "not modelled: a pod counts as available as soon as it is ready (minReadySeconds "
                                 "does not delay a rollout or the controller's status)")


# ------------------------------------------------------------------------------------- metadata

ANNOTATIONS = MapOf(label_key, str)  # any string value
_META_IGNORED = _ignored("uid", "resourceVersion", "generation", "creationTimestamp",
                         "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences", "finalizers",
                         "managedFields", "selfLink", "clusterName")


def _name_given(meta: Checked) -> None:
    if "name" not in meta:
        hint = " (generateName is not supported: give each object a name)" if "generateName" in meta else ""
        meta.here.child("name").error("required field is missing" + hint)


def metadata(name: Type, namespaced: bool, required: bool = True) -> Obj:
    fields = {"name": name, "generateName": Str(), "labels": LABELS, "annotations": ANNOTATIONS, **_META_IGNORED,
              "namespace": Str(dns_label) if namespaced else IGNORE}
    return Obj(fields, post=_name_given if required else None)


TEMPLATE_METADATA = Obj({"labels": LABELS, "annotations": ANNOTATIONS, **_META_IGNORED,
                         **_ignored("name", "generateName", "namespace")})

# ------------------------------------------------------------------------------------- pods


def _unique(items: list[Checked], field: str, key: Any) -> None:
    """Reports every item whose `key(item)` (a value to show, or None) an earlier item has."""
    first: dict[Any, Checked] = {}
    for item in items:
        k = key(item)
        if k is None:
            continue
        if k in first:
            item.at(field).error(f"{k} is already used by {first[k].here.path}")
        else:
            first[k] = item


def _name(item: Checked) -> str | None:
    return describe(item["name"]) if "name" in item else None


def _check_container(c: Checked) -> None:
    _unique(c.get("ports", []), "name", _name)
    configs.check_mount_paths(c)


CONTAINER_PORT = Obj({"containerPort": PORT, "name": Str(iana_svc_name), "protocol": PROTOCOL,
                      "hostPort": Int(0, 65535), "hostIP": Str(ip_text)}, required=("containerPort",))


def _check_host_ports(spec: Checked) -> None:
    """The API server's checks of hostPort: no two containers' ports take the same hostIP,
    protocol and hostPort; with hostNetwork a port is its node's (hostPort defaults to the
    containerPort, and may not differ from it)."""
    seen: set[str] = set()
    for container in spec["containers"]:
        for port in container.get("ports", []):
            host_port = port.get("hostPort") or (port["containerPort"] if spec.get("hostNetwork") else 0)
            if spec.get("hostNetwork") and host_port != port["containerPort"]:
                port.at("containerPort").error(f"Invalid value: {port['containerPort']}: must match `hostPort` "
                                               "when `hostNetwork` is true")
            key = f"{port.get('hostIP', '')}/{port.get('protocol', 'TCP')}/{host_port}"
            if host_port and key in seen:
                port.at("hostPort").error(f'Duplicate value: "{key}"')
            seen.add(key)

def _check_env_var(var: Checked) -> None:
    if "value" in var and "valueFrom" in var:
        var.at("valueFrom").error("may not be given together with value")


_UNSET = "ignored: kubenet-lab has no {}; the variable is left unset"
_VALUE_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef")


def _one_value_source(source: Checked) -> None:
    """As the API server: a valueFrom names one source (one the lab ignores counts too)."""
    given = [k for k in _VALUE_SOURCES if k in source.ats]
    if len(given) > 1:
        source.here.error('Invalid value: "": may not have more than one field specified at a time')
    elif not given:
        source.here.error('Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, '
                          '`configMapKeyRef` or `secretKeyRef`')


ENV_VAR = Obj({
    "name": Str(env_name), "value": Str(),
    "valueFrom": Obj({
        "fieldRef": Obj({"fieldPath": Str(field_path), "apiVersion": IGNORE}, required=("fieldPath",)),
        "configMapKeyRef": configs.KEY_SELECTOR,
        "secretKeyRef": configs.KEY_SELECTOR,
        "resourceFieldRef": Ignore(warning=_UNSET.format("resource limits")),
        "fileKeyRef": Ignore(warning=_UNSET.format("volumes")),
    }, post=_one_value_source),
}, required=("name",), post=_check_env_var)

# A probe's shape (core/v1 Probe). The supervisor runs it (runtime.probes); its port also tells
# an emulated container where to listen. A zero timing field means its default, as the API
# server's defaulting has it.
PROBE_PORT = Either(PORT, Str(iana_svc_name))
PROBE_FIELDS = {
    "exec": Obj({"command": ListOf(Str())}),
    "httpGet": Obj({"port": PROBE_PORT, "path": Str(), "host": Str(), "scheme": OneOf("HTTP", "HTTPS"),
                    "httpHeaders": ListOf(Obj({"name": Str(), "value": Str()}, required=("name", "value")))},
                   required=("port",)),
    "tcpSocket": Obj({"port": PROBE_PORT, "host": Str()}, required=("port",)),
    "grpc": Obj({"port": PORT, "service": Str()}, required=("port",)),
    **{k: Int(0) for k in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                           "failureThreshold")},
    "terminationGracePeriodSeconds": Int(1),
}
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def _probe_handler(probe: Checked, name: str = "") -> None:
    """A probe names exactly one way to probe, as the API server requires; a liveness or
    startup probe succeeds once (successThreshold 1), and only they may have a grace period."""
    given = [k for k in PROBE_HANDLERS if k in probe]
    if not given:
        probe.here.error("Required value: must specify a handler type (one of exec, httpGet, tcpSocket, grpc)")
    elif len(given) > 1:
        probe.at(given[1]).error("Forbidden: may not specify more than 1 handler type")
    if name in ("livenessProbe", "startupProbe") and probe.get("successThreshold", 1) not in (0, 1):
        probe.at("successThreshold").error(f"Invalid value: {probe['successThreshold']}: must be 1")
    if name == "readinessProbe" and "terminationGracePeriodSeconds" in probe:
        probe.at("terminationGracePeriodSeconds").error(
            f"Invalid value: {probe['terminationGracePeriodSeconds']}: must not be set for readinessProbes")
    if "grpc" in probe:
        probe.at("grpc").warn("not run: kubenet-lab has no gRPC health client, so this probe always passes")


def _probe(name: str) -> Obj:
    return Obj(PROBE_FIELDS, post=lambda probe: _probe_handler(probe, name))


def _one_handler(handler: Checked) -> None:
    """A lifecycle handler names exactly one action, as the API server requires."""
    given = [k for k in ("exec", "httpGet", "tcpSocket", "sleep") if k in handler]
    if not given:
        handler.here.error("must specify a handler type (exec, httpGet, sleep)")
    elif len(given) > 1:
        handler.at(given[1]).error("may not specify more than 1 handler type")


# lifecycle.preStop runs (see the README): exec in the container, httpGet against it, sleep;
# tcpSocket is accepted as the API server accepts it, and, as in kubelet, never run.
LIFECYCLE_HANDLER = Obj({
    "exec": Obj({"command": ListOf(Str())}),
    "httpGet": Obj({"port": PROBE_PORT, "path": Str(), "host": Str(), "scheme": OneOf("HTTP", "HTTPS"),
                    "httpHeaders": IGNORE}, required=("port",)),
    "tcpSocket": Obj({"port": PROBE_PORT, "host": Str()}, required=("port",)),
    "sleep": Obj({"seconds": Int(0)}, required=("seconds",)),
}, post=_one_handler)
LIFECYCLE = Obj({"preStop": LIFECYCLE_HANDLER,
                 "postStart": Ignore(warning="ignored: kubenet-lab does not run postStart hooks"),
                 "stopSignal": IGNORE})


def _container_fields(restart_policy: Type) -> dict[str, Type]:
    return {
        "name": Str(dns_label), "image": Str(), "command": ListOf(Str()), "args": ListOf(Str()),
        "ports": ListOf(CONTAINER_PORT), "env": ListOf(ENV_VAR), "envFrom": ListOf(configs.ENV_FROM),
        "volumeMounts": ListOf(configs.VOLUME_MOUNT),
        **{probe: _probe(probe) for probe in PROBES},
        "lifecycle": LIFECYCLE, "restartPolicy": restart_policy,
        # restartPolicyRules: an alpha field (ContainerRestartRules), which an API server without
        # that feature gate drops, as the lab does.
        "workingDir": Ignore(warning="ignored: a process the lab runs starts in / (the image's filesystem, "
                                     "where this directory would be, is not here)"),
        **_ignored("resources", "resizePolicy", "restartPolicyRules", "volumeDevices",
                   "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy",
                   "stdin", "stdinOnce", "tty"),
        "securityContext": security.CONTAINER,
    }


def _check_regular_container(c: Checked) -> None:
    _check_container(c)
    if "restartPolicy" in c:
        c.at("restartPolicy").error("may not be set for non-init containers (the pod's spec.restartPolicy "
                                    "applies to them)")


def _check_init_container(c: Checked) -> None:
    """As the API server: only a sidecar (restartPolicy Always) may have a lifecycle or probes."""
    _check_container(c)
    if c.get("restartPolicy") != "Always":
        for key in ("lifecycle", *PROBES):
            if key in c:
                c.at(key).error("may not be set for init containers without restartPolicy=Always")


CONTAINER = Obj(_container_fields(OneOf("Always", "OnFailure", "Never")), required=("name",),
                post=_check_regular_container)
INIT_CONTAINER = Obj(_container_fields(OneOf("Always")), required=("name",), post=_check_init_container)


# The API server's limits on spec.dnsConfig (k8s.io/kubernetes pkg/apis/core/validation).
MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCHES = 32
MAX_DNS_SEARCH_CHARS = 2048


def _check_dns_config(config: Checked) -> None:
    if len(config.get("nameservers", [])) > MAX_DNS_NAMESERVERS:
        config.at("nameservers").error(f"must not have more than {MAX_DNS_NAMESERVERS} nameservers")
    searches = config.get("searches", [])
    if len(searches) > MAX_DNS_SEARCHES:
        config.at("searches").error(f"must not have more than {MAX_DNS_SEARCHES} search paths")
    elif len(" ".join(searches)) > MAX_DNS_SEARCH_CHARS:
        config.at("searches").error(f"must not have more than {MAX_DNS_SEARCH_CHARS} characters (including spaces) "
                                    f"in the search list")


DNS_CONFIG = Obj({
    "nameservers": ListOf(Str(ip_text)), "searches": ListOf(Str(dns_search)),
    "options": ListOf(Obj({"name": Str(), "value": Str()}, required=("name",))),
}, post=_check_dns_config)
HOST_ALIAS = Obj({"ip": Str(ip_text), "hostnames": ListOf(Str(dns_subdomain))}, required=("ip",))


# ------------------------------------------------------------------------------------- scheduling

def _check_node_requirement(e: Checked) -> None:
    values, op = e.get("values", []), e["operator"]
    if op in ("In", "NotIn") and not values:
        e.at("values").error(f"must be specified when `operator` is '{op}'")
    if op in ("Exists", "DoesNotExist") and values:
        e.at("values").error(f"may not be specified when `operator` is '{op}'")
    if op in ("Gt", "Lt"):
        if len(values) != 1:
            e.at("values").error(f"must be specified single value when `operator` is '{op}'")
        elif not values[0].lstrip("-").isdigit():
            e.at("values").error(f"must be an integer for operator '{op}', got {values[0]!r}")


NODE_REQUIREMENT = Obj({"key": Str(label_key), "operator": OneOf("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"),
                        "values": ListOf(Str())}, required=("key", "operator"), post=_check_node_requirement)
NODE_SELECTOR_TERM = Obj({"matchExpressions": ListOf(NODE_REQUIREMENT), "matchFields": ListOf(NODE_REQUIREMENT)})
WEIGHT = Int(1, 100)
NODE_AFFINITY = Obj({
    "requiredDuringSchedulingIgnoredDuringExecution": Obj(
        {"nodeSelectorTerms": ListOf(NODE_SELECTOR_TERM, at_least=1, what="nodeSelectorTerm")},
        required=("nodeSelectorTerms",)),
    "preferredDuringSchedulingIgnoredDuringExecution": ListOf(Obj(
        {"weight": WEIGHT, "preference": NODE_SELECTOR_TERM}, required=("weight", "preference"))),
})
POD_AFFINITY_TERM = Obj({"labelSelector": Obj({"matchLabels": LABELS, "matchExpressions": ListOf(Obj(
                            {"key": Str(label_key), "operator": OneOf("In", "NotIn", "Exists", "DoesNotExist"),
                             "values": ListOf(Str(label_value))}, required=("key", "operator")))}),
                         "namespaceSelector": Obj({"matchLabels": LABELS, "matchExpressions": IGNORE}),
                         "namespaces": ListOf(Str(dns_label)), "topologyKey": Str(label_key),
                         **_ignored("matchLabelKeys", "mismatchLabelKeys")}, required=("topologyKey",))
POD_AFFINITY = Obj({
    "requiredDuringSchedulingIgnoredDuringExecution": ListOf(POD_AFFINITY_TERM),
    "preferredDuringSchedulingIgnoredDuringExecution": ListOf(Obj(
        {"weight": WEIGHT, "podAffinityTerm": POD_AFFINITY_TERM}, required=("weight", "podAffinityTerm"))),
})
AFFINITY = Obj({"nodeAffinity": NODE_AFFINITY, "podAffinity": POD_AFFINITY, "podAntiAffinity": POD_AFFINITY})


def _check_toleration(t: Checked) -> None:
    if t.get("operator") == "Exists" and t.get("value"):
        t.at("value").error("value must be empty when `operator` is 'Exists'")
    if not t.get("key") and t.get("operator", "Equal") != "Exists":
        t.at("operator").error("operator must be Exists when `key` is empty, which means \"match all values and "
                               "all keys\"")


TOLERATION = Obj({"key": Str(label_key), "operator": OneOf("Equal", "Exists"), "value": Str(label_value),
                  "effect": OneOf(*TAINT_EFFECTS), "tolerationSeconds": Int()}, post=_check_toleration)
TAINT = Obj({"key": Str(label_key), "value": Str(label_value), "effect": OneOf(*TAINT_EFFECTS), "timeAdded": IGNORE},
            required=("key", "effect"))


def _check_pod_spec(spec: Checked, claims: bool = False) -> None:
    """`claims`: a StatefulSet's template, whose mounts may name its volumeClaimTemplates too
    (checked by the StatefulSet's own check)."""
    _unique(spec.get("initContainers", []) + spec["containers"], "name", _name)
    if not claims:
        configs.check_volume_refs(spec)
    _check_host_ports(spec)
    if spec.get("hostNetwork") and spec.get("hostAliases"):
        spec.at("hostAliases").warn("ignored for a hostNetwork pod: its /etc/hosts is its node's, which is this "
                                    "machine's own, and kubenet-lab does not add to it")
    if spec.get("dnsPolicy") == "None":
        if "dnsConfig" not in spec:
            spec.at("dnsConfig").error("required when dnsPolicy is None (give nameservers, searches and options)")
        elif not spec["dnsConfig"].get("nameservers"):
            spec["dnsConfig"].at("nameservers").error("must provide at least one DNS nameserver when DNS policy "
                                                      "is None")


POD_SPEC = Obj({
    "containers": ListOf(CONTAINER, at_least=1, what="container"),
    "nodeName": Noted("nodeName", Str(dns_subdomain)), "hostNetwork": Bool(),
    "hostname": Str(dns_label), "subdomain": Str(dns_label), "enableServiceLinks": Bool(),
    "dnsPolicy": OneOf(*DNS_POLICIES), "dnsConfig": DNS_CONFIG, "hostAliases": ListOf(HOST_ALIAS),
    "topologySpreadConstraints": Ignore(warning="ignored: kubenet-lab spreads pods over the nodes by their pod "
                                                "count, not by topology spread constraints"),
    "setHostnameAsFQDN": Bool(), "nodeSelector": LABELS, "affinity": AFFINITY, "tolerations": ListOf(TOLERATION),
    "initContainers": ListOf(INIT_CONTAINER), "terminationGracePeriodSeconds": Int(0),
    "ephemeralContainers": Ignore(warning="ignored: kubenet-lab does not run ephemeral containers"),
    "restartPolicy": OneOf("Always", "OnFailure", "Never"),
    "schedulingGates": ListOf(Obj({"name": Str(label_key)}, required=("name",))),
    "activeDeadlineSeconds": Ignore(warning="ignored: kubenet-lab does not end a pod at its deadline yet (a "
                                            "cluster would fail it with reason DeadlineExceeded)"),
    "readinessGates": Ignore(warning="ignored: nothing in the lab sets these conditions, so the pod is ready "
                                     "without them (a cluster without their controller keeps it not ready)"),
    "schedulerName": Ignore(warning="ignored: kubenet-lab places every pod as the default scheduler would"),
    **_ignored("serviceAccountName", "serviceAccount",
               "automountServiceAccountToken", "imagePullSecrets",
               "priorityClassName", "priority",
               "runtimeClassName", "preemptionPolicy", "overhead",
               "os", "hostPID", "hostIPC", "hostUsers",
               "shareProcessNamespace", "resourceClaims", "resources"),
    "volumes": ListOf(configs.VOLUME),
    "securityContext": security.POD,
}, required=("containers",), post=_check_pod_spec)

POD_TEMPLATE = Obj({"metadata": TEMPLATE_METADATA, "spec": POD_SPEC}, required=("spec",))
CLAIMING_POD_TEMPLATE = Obj({"metadata": TEMPLATE_METADATA,
                             "spec": Obj(POD_SPEC.fields, required=POD_SPEC.required,
                                         post=lambda spec: _check_pod_spec(spec, claims=True))}, required=("spec",))

# ------------------------------------------------------------------------------------- workloads


def _check_expression(e: Checked) -> None:
    values = e.get("values", [])
    if e["operator"] in ("In", "NotIn") and not values:
        e.at("values").error(f"required (non-empty) for operator {e['operator']}")
    if e["operator"] in ("Exists", "DoesNotExist") and values:
        e.at("values").error(f"must be empty for operator {e['operator']}")


MATCH_EXPRESSION = Obj({"key": Str(label_key), "operator": OneOf("In", "NotIn", "Exists", "DoesNotExist"),
                        "values": ListOf(Str(label_value))}, required=("key", "operator"), post=_check_expression)
SELECTOR = Obj({"matchLabels": LABELS, "matchExpressions": ListOf(MATCH_EXPRESSION)})


def to_selector(checked: dict) -> LabelSelector:
    return LabelSelector(
        match_labels=dict(checked.get("matchLabels", {})),
        match_expressions=tuple(MatchExpression(e["key"], e["operator"], tuple(e.get("values", ())))
                                for e in checked.get("matchExpressions", ())))


def template_labels(spec: Checked) -> dict[str, str]:
    return dict(spec["template"].get("metadata", {}).get("labels", {}))


def _labels_at(spec: Checked) -> At:
    template = spec["template"]
    meta = template.get("metadata")
    return meta.at("labels") if meta is not None else template.at("metadata")


def _mismatch(spec: Checked, selector: LabelSelector) -> str:
    """The API server's words for a controller whose selector does not select its own pods."""
    labels = json.dumps(template_labels(spec), separators=(",", ":"), sort_keys=True)
    return (f"Invalid value: {labels}: `selector` does not match template `labels` "
            f"(spec.selector: {selector.show()})")


def _check_selector(spec: Checked) -> None:
    """apps/v1: a required, non-empty selector that matches the template's labels."""
    selector = to_selector(spec["selector"])
    if selector.empty:
        spec.at("selector").error("must not be empty (give matchLabels or matchExpressions)")
    elif not selector.matches(template_labels(spec)):
        _labels_at(spec).error(_mismatch(spec, selector))


def _check_rc_selector(spec: Checked) -> None:
    """ReplicationController: a plain map, defaulting to the template's labels."""
    labels = template_labels(spec)
    selector = LabelSelector(match_labels=spec.get("selector", {}))
    if selector.empty and not labels:
        spec.at("selector").error("required (or give spec.template.metadata.labels, its default)")
    elif not selector.matches(labels):
        _labels_at(spec).error(_mismatch(spec, selector))


_APPS_COMMON = {"replicas": Int(0), "selector": SELECTOR, "template": POD_TEMPLATE, "minReadySeconds": MIN_READY}
def _percent(text: str) -> str:
    if not re.fullmatch(r"[0-9]+%", text):
        raise Invalid(f"Invalid value: {text!r}: a valid percent string must be a numeric string followed by an "
                      f"ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")
    return text


def _check_strategy(strategy: Checked) -> None:
    """As the API server validates a Deployment's strategy."""
    kind = strategy.get("type", "RollingUpdate")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate" and rolling is not None:
        strategy.at("rollingUpdate").error("Forbidden: may not be specified when strategy `type` is 'Recreate'")
        return
    if rolling is None:
        return

    def zero(v: Any) -> bool:
        return v == 0 or v == "0%"
    if zero(rolling.get("maxSurge", "25%")) and zero(rolling.get("maxUnavailable", "25%")):
        rolling.at("maxUnavailable").error(f"Invalid value: {rolling.get('maxUnavailable')!r}: may not be 0 when "
                                           f"`maxSurge` is 0")
    unavailable = rolling.get("maxUnavailable")
    if isinstance(unavailable, str) and int(unavailable[:-1]) > 100:
        rolling.at("maxUnavailable").error(f"Invalid value: {unavailable!r}: must not be greater than 100%")


_INT_OR_PERCENT = Either(Int(0), Str(_percent))
STRATEGY = Obj({"type": OneOf("RollingUpdate", "Recreate"),
                "rollingUpdate": Obj({"maxSurge": _INT_OR_PERCENT, "maxUnavailable": _INT_OR_PERCENT})},
               post=_check_strategy)
DEPLOYMENT_SPEC = Obj({**_APPS_COMMON, "strategy": STRATEGY,
                       "paused": NotModelledUnless(False, "not modelled: a paused Deployment still rolls out a "
                                                          "changed template"),
                       "revisionHistoryLimit": NotModelledUnless(10, "not modelled: 10 old ReplicaSets are kept "
                                                                     "for rollout undo, whatever the limit"),
                       **_ignored("progressDeadlineSeconds")},
                      required=("selector", "template"), post=_check_selector)
REPLICASET_SPEC = Obj(_APPS_COMMON, required=("selector", "template"), post=_check_selector)
RC_SPEC = Obj({**_APPS_COMMON, "selector": LABELS}, required=("template",), post=_check_rc_selector)


def _check_job(spec: Checked) -> None:
    """batch/v1: the template's restartPolicy must be OnFailure or Never; a selector, when given
    (manualSelector), must match the template's labels."""
    policy = spec["template"]["spec"].get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        where = spec["template"]["spec"]
        place = where.at("restartPolicy") if "restartPolicy" in where else where.here.child("restartPolicy")
        place.error(f"Unsupported value: {policy or 'Always'!r}: supported values: \"OnFailure\", \"Never\"")
    if "selector" in spec:
        _check_selector(spec)


def _check_statefulset(spec: Checked) -> None:
    """Its template's mounts may name a volume or a claim template (the controller adds a volume
    of that name to each pod)."""
    _check_selector(spec)
    configs.check_volume_refs(spec["template"]["spec"], [c["metadata"]["name"] for c in
                                                         spec.get("volumeClaimTemplates", ())])


STATEFULSET_SPEC = Obj({
    **_APPS_COMMON, "serviceName": Str(dns_label), "podManagementPolicy": OneOf("OrderedReady", "Parallel"),
    "ordinals": Obj({"start": Int(0)}),
    "template": CLAIMING_POD_TEMPLATE, "volumeClaimTemplates": ListOf(configs.CLAIM_TEMPLATE),
    **_ignored("updateStrategy", "revisionHistoryLimit", "persistentVolumeClaimRetentionPolicy"),
}, required=("selector", "template"), post=_check_statefulset)
DAEMONSET_SPEC = Obj({"selector": SELECTOR, "template": POD_TEMPLATE, "minReadySeconds": MIN_READY,
                      **_ignored("updateStrategy", "revisionHistoryLimit")},
                     required=("selector", "template"), post=_check_selector)
JOB_SPEC = Obj({
    "template": POD_TEMPLATE, "completions": Int(0), "parallelism": Int(0), "backoffLimit": Int(0),
    "completionMode": OneOf("NonIndexed", "Indexed"), "selector": SELECTOR, "manualSelector": Bool(),
    **_ignored("activeDeadlineSeconds", "ttlSecondsAfterFinished", "suspend", "podFailurePolicy",
               "backoffLimitPerIndex", "maxFailedIndexes", "podReplacementPolicy", "successPolicy", "managedBy"),
}, required=("template",), post=_check_job)

# ------------------------------------------------------------------------------------- services


def _check_service(spec: Checked) -> None:
    kind = spec.get("type", "ClusterIP")
    if kind == "ExternalName":  # an alias: no address, no selector's endpoints, no rules
        if "externalName" not in spec:
            spec.here.child("externalName").error("Required value: an ExternalName service needs the name it "
                                                  "stands for (a DNS-1123 subdomain)")
        if spec.get("clusterIP") not in (None, ""):
            spec.at("clusterIP").error("must be empty for an ExternalName service")
        return
    ports: list[Checked] = spec.get("ports", [])
    headless = spec.get("clusterIP") == "None"
    if headless and kind != "ClusterIP":
        spec.at("clusterIP").error(f"cannot be None (headless) for a {kind} service")
    if not ports and not headless:
        spec.at("ports").error("at least one port is required (only a headless service may have none)")
    for port in ports:
        if "nodePort" in port and kind == "ClusterIP":
            port.at("nodePort").error("only NodePort and LoadBalancer services have a nodePort")
        if len(ports) > 1 and "name" not in port:
            port.here.child("name").error("required when a service has more than one port")
    _unique(ports, "name", _name)
    _unique(ports, "port", lambda p: f"{p['port']}/{p.get('protocol', 'TCP')}")
    _unique(ports, "nodePort", lambda p: f"{p['nodePort']}/{p.get('protocol', 'TCP')}" if "nodePort" in p else None)
    _check_ip_families(spec)
    _check_load_balancer_fields(spec, kind)
    if spec.get("trafficDistribution") == "PreferSameNode" and not headless:
        spec.at("trafficDistribution").warn(
            "PreferSameNode is not modelled yet: on a cluster (Kubernetes 1.33+) each node's kube-proxy would "
            "prefer the ready endpoints on its own node; here every node uses every ready endpoint")


_SINGLE_STACK = "kubenet-lab is a single-stack IPv4 cluster"


def _check_ip_families(spec: Checked) -> None:
    """What the API server of a single-stack IPv4 cluster refuses (its IP family defaulting in
    pkg/registry/core/service/storage): two families for SingleStack, and, except for a headless
    service without a selector, RequireDualStack and the IPv6 family."""
    families: list[str] = spec.get("ipFamilies", [])
    family_at = [spec.at("ipFamilies").item(i) for i in range(len(families))]
    first: dict[str, int] = {}
    for i, family in enumerate(families):
        if family in first:
            family_at[i].error(f"{family!r} is already used by {family_at[first[family]].path}")
        first.setdefault(family, i)
    if len(first) < len(families):
        return
    headless = (spec.get("clusterIP") or next(iter(spec.get("clusterIPs", [])), None)) == "None"
    bare_headless = headless and not spec.get("selector")
    policy = spec.get("ipFamilyPolicy") or ("RequireDualStack" if bare_headless else "SingleStack")
    policy_at = spec.at("ipFamilyPolicy")
    if policy == "SingleStack" and len(families) == 2:
        policy_at.error(f'Invalid value: "{policy}": must be \'RequireDualStack\' or \'PreferDualStack\' when '
                        "multiple IP families are specified")
        return
    if bare_headless:
        return  # no cluster IP to allocate: any family will do, as the API server allows
    if policy == "RequireDualStack":
        policy_at.error('Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services '
                        f"({_SINGLE_STACK}: SingleStack and PreferDualStack get one IPv4 cluster IP)")
    for i, family in enumerate(families):
        if family != "IPv4":
            family_at[i].error(f'Invalid value: "{family}": not configured on this cluster ({_SINGLE_STACK})')


def _check_load_balancer_fields(spec: Checked, kind: str) -> None:
    """The LoadBalancer-only fields, as the API server checks them, and what the lab does not
    model of them yet."""
    if kind != "LoadBalancer":
        for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass", "loadBalancerSourceRanges"):
            if key in spec:
                spec.at(key).error("may only be used when `type` is 'LoadBalancer'")
    if "healthCheckNodePort" in spec and (kind != "LoadBalancer"
                                          or spec.get("externalTrafficPolicy", "Cluster") != "Local"):
        spec.at("healthCheckNodePort").error(
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'")
    if kind != "LoadBalancer":
        return
    if "loadBalancerClass" in spec:
        spec.at("loadBalancerClass").warn(
            f"{spec['loadBalancerClass']!r}: no load balancer of this class runs in kubenet-lab (its own serves "
            "Services without a class, as a cloud provider's default one), so this Service gets no external "
            "address: EXTERNAL-IP stays <pending>; its cluster IP and NodePorts work")


SERVICE_PORT = Obj({
    "name": Str(dns_label), "protocol": PROTOCOL, "port": PORT, "targetPort": Either(PORT, Str(iana_svc_name)),
    # The range is the Cluster config's (networking.serviceNodePortRange), checked when planned.
    "nodePort": PORT, "appProtocol": Str(qualified_name),
}, required=("port",))

TRAFFIC_POLICY = OneOf("Cluster", "Local")
SERVICE_SPEC = Obj({
    "type": OneOf("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
    "selector": LABELS, "clusterIP": Str(cluster_ip), "clusterIPs": ListOf(Str(cluster_ip)),
    "ports": ListOf(SERVICE_PORT),
    "sessionAffinity": OneOf("None", "ClientIP"),
    "sessionAffinityConfig": Obj({"clientIP": Obj({"timeoutSeconds": Int(1, 86400)})}),
    "externalTrafficPolicy": TRAFFIC_POLICY, "internalTrafficPolicy": TRAFFIC_POLICY,
    "externalIPs": ListOf(Str(ipv4_text)), "loadBalancerIP": Str(ipv4_text), "externalName": Str(external_name),
    "ipFamilies": ListOf(OneOf("IPv4", "IPv6")),
    "ipFamilyPolicy": OneOf("SingleStack", "PreferDualStack", "RequireDualStack"),
    "publishNotReadyAddresses": Bool(), "allocateLoadBalancerNodePorts": Bool(),
    "loadBalancerClass": Str(qualified_name), "loadBalancerSourceRanges": ListOf(Str(ip_cidr)),
    "healthCheckNodePort": PORT,
    "trafficDistribution": OneOf("PreferClose", "PreferSameZone", "PreferSameNode"),
}, post=_check_service)

# ------------------------------------------------------------------------------------- nodes, cluster


def _check_node_spec(spec: Checked) -> None:
    first = spec.get("podCIDRs", [None])[0]
    if "podCIDR" in spec and first is not None and first != spec["podCIDR"]:
        spec.at("podCIDRs").error(f"must start with spec.podCIDR ({spec['podCIDR']}), got {first}")
    for key, nets in (("podCIDR", [spec.get("podCIDR")]), ("podCIDRs", spec.get("podCIDRs", []))):
        for net in nets:
            if net is not None and net.prefixlen > 30:
                spec.at(key).error(f"{net} is too small to hold pods (use /30 or larger)")


NODE_SPEC = Obj({"podCIDR": Str(cidr), "podCIDRs": ListOf(Str(cidr)), "taints": ListOf(TAINT),
                 "unschedulable": Bool(), **_ignored("providerID", "externalID", "configSource")},
                post=_check_node_spec)

_SUBNETS = (("podSubnet", "pod_subnet"), ("serviceSubnet", "service_subnet"), ("nodeSubnet", "node_subnet"))


def subnets(networking: dict) -> dict[str, Any]:
    defaults = ClusterConfig()
    return {key: networking.get(key, getattr(defaults, attr)) for key, attr in _SUBNETS}


def cni_config_path(net: Checked) -> str | None:
    """networking.cniConfig as an absolute path: relative to the directory of the manifest that
    gives it (the working directory for standard input)."""
    if "cniConfig" not in net:
        return None
    where = net.at("cniConfig").file
    base = os.path.dirname(os.path.abspath(where)) if os.path.isfile(where) else os.getcwd()
    return os.path.normpath(os.path.join(base, net["cniConfig"]))


def _check_cni_config(net: Checked) -> None:
    """cniConfig only with wiring cni, and a readable file; what it holds is checked before `up`
    changes anything (dataplane/wiring/cni.py)."""
    if "cniConfig" not in net:
        return
    if net.get("wiring") != "cni":
        net.at("cniConfig").error("a CNI configuration is only used with networking.wiring: cni")
        return
    path = cni_config_path(net)
    assert path is not None
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        net.at("cniConfig").error(f"cannot read the CNI configuration {path}: {e.strerror or e}")


def _check_networking(net: Checked) -> None:
    _check_cni_config(net)
    nets = subnets(net)
    for a, b in combinations(nets, 2):
        if nets[a].overlaps(nets[b]):
            place = b if b in net else a
            other = a if place == b else b
            net.at(place).error(f"{nets[place]} overlaps networking.{other} {nets[other]}")
    service = nets["serviceSubnet"]
    if service.prefixlen > 28:
        net.at("serviceSubnet").error(f"{service} is too small: cluster DNS takes its tenth address "
                                      "(use /28 or larger)")
    if "loadBalancerPool" in net:
        first, last = net["loadBalancerPool"]
        node = nets["nodeSubnet"]
        if not (node.network_address < first and last < node.broadcast_address):
            net.at("loadBalancerPool").error(f"{first}-{last} must lie inside networking.nodeSubnet {node} "
                                             "(without its first and last address): the load balancer "
                                             "answers on the nodes' network")
    if "serviceNodePortRange" in net:
        ports = net["serviceNodePortRange"]
        first, last = EPHEMERAL_PORTS
        if ports.first <= last and first <= ports.last:
            net.at("serviceNodePortRange").warn(
                f"{ports} overlaps the nodes' ephemeral port range {first}-{last} (the kernel's default "
                "net.ipv4.ip_local_port_range), which kube-apiserver's --service-node-port-range must not: a "
                "node's own outgoing connections may take a port that a NodePort then shadows")


# The ports a node's outgoing connections take (net.ipv4.ip_local_port_range's default).
EPHEMERAL_PORTS = (32768, 60999)

NETWORKING = Obj({
    "podSubnet": Str(cidr), "serviceSubnet": Str(cidr), "nodeSubnet": Str(cidr),
    "serviceNodePortRange": Str(port_range),
    "kubeProxyMode": OneOf("iptables", "nftables", "userspace", refused={
        "ipvs": "ipvs is not supported: this kernel has no IPVS (ip_vs), so kubenet-lab cannot program it; "
                "use iptables, nftables or userspace"}),
    "nftablesBalancing": OneOf("vmap", "rules"),
    # how nodes reach each other's pods (dataplane/backends)
    "backend": OneOf("host-gw", "vxlan", "l2", refused={
        "ipvlan": "ipvlan is not available: this kernel is built without the ipvlan driver; use host-gw, vxlan "
                  "or l2",
        "openvswitch": "Open vSwitch is not available: this kernel is built without its datapath (openvswitch); "
                       "use host-gw, vxlan or l2",
        "ovs": "Open vSwitch is not available: this kernel is built without its datapath (openvswitch); "
               "use host-gw, vxlan or l2"}),
    "dnsDomain": Str(dns_subdomain), "loadBalancerPool": Str(address_range),
    # what wires each pod into its node (dataplane/wiring); cniConfig: a conflist file for cni
    "wiring": OneOf("netlink", "cni"), "cniConfig": Str(),
    "ipFamily": OneOf("ipv4", refused={f: "only ipv4 is supported" for f in ("ipv6", "dual")}),
}, post=_check_networking)

# A Service's status as a cloud controller writes it: its load-balancer addresses are honoured
# (the lab's balancer answers on them); the rest of a status is the API server's and ignored.
SERVICE_STATUS = Obj({
    "loadBalancer": Obj({"ingress": ListOf(Obj({
        "ip": Str(ipv4_text), "hostname": Str(dns_subdomain), "ipMode": OneOf("VIP", "Proxy"), "ports": IGNORE}))}),
    "conditions": IGNORE,
})

# ------------------------------------------------------------------------------------- kinds


def _object(meta: Obj, spec: Obj | None, spec_required: bool = True, status: Type = IGNORE) -> Obj:
    fields: dict[str, Type] = {"apiVersion": IGNORE, "kind": IGNORE, "metadata": meta, "status": status}
    if spec is not None:
        fields["spec"] = spec
    required = ("metadata", "spec") if spec_required and spec is not None else ("metadata",)
    return Obj(fields, required=required)


@dataclass(frozen=True)
class Kind:
    name: str
    api_version: str
    schema: Obj
    namespaced: bool = True


_NAMESPACED = metadata(Str(dns_label), namespaced=True)
_CLUSTER_SCOPED = metadata(Str(dns_label), namespaced=False)

KINDS = {k.name: k for k in (
    Kind("Cluster", CLUSTER_API, Obj({"apiVersion": IGNORE, "kind": IGNORE, "networking": NETWORKING,
                                      "allowHostPath": Bool(),
                                      "metadata": metadata(Str(dns_label), False, required=False)}),
         namespaced=False),
    # A Node is named as the API server allows (a DNS subdomain: ip-10-0-1-23.ec2.internal).
    Kind("Node", "v1", _object(metadata(Str(dns_subdomain), namespaced=False), NODE_SPEC, spec_required=False),
         namespaced=False),
    Kind("Namespace", "v1", _object(_CLUSTER_SCOPED, Obj(_ignored("finalizers")), spec_required=False),
         namespaced=False),
    Kind("Pod", "v1", _object(_NAMESPACED, POD_SPEC)),
    Kind("Deployment", "apps/v1", _object(_NAMESPACED, DEPLOYMENT_SPEC)),
    Kind("ReplicaSet", "apps/v1", _object(_NAMESPACED, REPLICASET_SPEC)),
    Kind("ReplicationController", "v1", _object(_NAMESPACED, RC_SPEC)),
    Kind("StatefulSet", "apps/v1", _object(_NAMESPACED, STATEFULSET_SPEC)),
    Kind("DaemonSet", "apps/v1", _object(_NAMESPACED, DAEMONSET_SPEC)),
    Kind("Job", "batch/v1", _object(_NAMESPACED, JOB_SPEC)),
    Kind("Service", "v1", _object(metadata(Str(dns1035_label), namespaced=True), SERVICE_SPEC,
                                  status=SERVICE_STATUS)),
    Kind("ConfigMap", "v1", configs.config_map(metadata(Str(dns_subdomain), namespaced=True))),
    Kind("Secret", "v1", configs.secret(metadata(Str(dns_subdomain), namespaced=True))),
    Kind("EndpointSlice", "discovery.k8s.io/v1",
         discovery.endpoint_slice(metadata(Str(dns_subdomain), namespaced=True))),
    Kind("Endpoints", "v1", discovery.endpoints(metadata(Str(dns_subdomain), namespaced=True))),
    Kind("NetworkPolicy", "networking.k8s.io/v1", netpol.network_policy(metadata(Str(dns_subdomain), namespaced=True))),
)}

# Kinds of the Kubernetes API (and common add-ons) that real bundles carry and the lab skips:
# never "did you mean" another kind for these (ServiceAccount is not a misspelt Service).
OTHER_KINDS = frozenset((
    "APIService", "Binding", "CSIDriver", "CSINode", "CSIStorageCapacity", "CertificateSigningRequest",
    "ClusterRole", "ClusterRoleBinding", "ComponentStatus", "ControllerRevision", "CronJob",
    "CustomResourceDefinition", "DaemonSet", "Event", "FlowSchema",
    "HorizontalPodAutoscaler", "Ingress", "IngressClass", "Job", "Lease", "LimitRange",
    "MutatingWebhookConfiguration", "PersistentVolume", "PersistentVolumeClaim",
    "PodDisruptionBudget", "PodTemplate", "PriorityClass", "PriorityLevelConfiguration", "ResourceQuota",
    "Role", "RoleBinding", "RuntimeClass", "ServiceAccount", "StatefulSet", "StorageClass",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration",
    "VolumeAttachment", "Certificate", "Issuer", "ClusterIssuer", "ServiceMonitor", "PodMonitor",
    "Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute", "TCPRoute", "UDPRoute", "TLSRoute", "ReferenceGrant",
))
