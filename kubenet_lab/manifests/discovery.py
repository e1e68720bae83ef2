"""The shape of EndpointSlices (discovery.k8s.io/v1) and legacy Endpoints (v1), with the API
server's checks and words (k8s.io/kubernetes pkg/apis/discovery/validation ValidateEndpointSlice,
pkg/apis/core/validation ValidateEndpoints and ValidateEndpointIP). Part of the schema
(manifests.schema uses these tables).

This lab is a single-stack IPv4 cluster: an EndpointSlice of addressType IPv6 or FQDN, which the
API server would take, is refused with the reason (kube-proxy of an IPv4 cluster never reads them).
"""
from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, ip_address

from .fields import IGNORE, Bool, Checked, Int, Invalid, ListOf, Obj, OneOf, Str
from .values import dns_label, dns_subdomain, qualified_name
from ..model.objects import PROTOCOLS

MAX_SLICE_ENDPOINTS = 1000  # maxEndpoints
MAX_SLICE_ADDRESSES = 100  # maxAddresses
MAX_SLICE_PORTS = 20000  # maxPorts
_LINK_LOCAL_MULTICAST = IPv4Network("224.0.0.0/24")
_SINGLE_STACK = "kubenet-lab is a single-stack IPv4 cluster: its kube-proxy reads IPv4 slices only"


def endpoint_ip(s: str) -> str:
    """An endpoint's IPv4 address, as ValidateEndpointIP words what it refuses."""
    try:
        addr = ip_address(s)
    except ValueError:
        raise Invalid(f'Invalid value: "{s}": must be a valid IP address') from None
    if not isinstance(addr, IPv4Address):
        raise Invalid(f'Invalid value: "{s}": must be an IPv4 address ({_SINGLE_STACK})')
    if addr.is_unspecified:
        raise Invalid(f'Invalid value: "{s}": may not be unspecified (0.0.0.0, ::)')
    if addr.is_loopback:
        raise Invalid(f'Invalid value: "{s}": may not be in the loopback range (127.0.0.0/8, ::1/128)')
    if addr.is_link_local:
        raise Invalid(f'Invalid value: "{s}": may not be in the link-local range (169.254.0.0/16, fe80::/10)')
    if addr in _LINK_LOCAL_MULTICAST:
        raise Invalid(f'Invalid value: "{s}": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)')
    return s


def _slice_port_name(s: str) -> str:
    return s if s == "" else dns_label(s)


def _unique_names(ports: list[Checked]) -> None:
    seen: set[str] = set()
    for p in ports:
        name = p.get("name", "")
        if name in seen:
            p.at("name").error(f'Duplicate value: "{name}"')
        seen.add(name)


TARGET_REF = Obj({"kind": Str(), "namespace": Str(dns_label), "name": Str(), "uid": Str(),
                  "apiVersion": IGNORE, "resourceVersion": IGNORE, "fieldPath": IGNORE})

CONDITIONS = Obj({"ready": Bool(), "serving": Bool(), "terminating": Bool()})
# Topology hints, as the EndpointSlice controller writes them (forNodes: Kubernetes 1.33+, for
# trafficDistribution PreferSameNode); the manifests warn when they would matter (nodes with zones).
HINTS = Obj({"forZones": ListOf(Obj({"name": Str()})), "forNodes": ListOf(Obj({"name": Str()}))})


def _check_slice_endpoint(e: Checked) -> None:
    addresses = e.get("addresses", [])
    if not addresses:
        e.here.child("addresses").error("Required value: must contain at least 1 address")
    elif len(addresses) > MAX_SLICE_ADDRESSES:
        e.at("addresses").error(f"Too many: {len(addresses)}: must have at most {MAX_SLICE_ADDRESSES} items")


SLICE_ENDPOINT = Obj({
    "addresses": ListOf(Str(endpoint_ip)), "conditions": CONDITIONS, "hostname": Str(dns_label),
    "nodeName": Str(dns_subdomain), "targetRef": TARGET_REF, "zone": Str(), "hints": HINTS,
    "deprecatedTopology": IGNORE,
}, post=_check_slice_endpoint)

SLICE_PORT = Obj({"name": Str(_slice_port_name), "protocol": OneOf(*PROTOCOLS), "port": Int(1, 65535),
                  "appProtocol": Str(qualified_name)})


def _check_slice(doc: Checked) -> None:
    endpoints = doc.get("endpoints", [])
    if len(endpoints) > MAX_SLICE_ENDPOINTS:
        doc.at("endpoints").error(f"Too many: {len(endpoints)}: must have at most {MAX_SLICE_ENDPOINTS} items")
    ports = doc.get("ports", [])
    if len(ports) > MAX_SLICE_PORTS:
        doc.at("ports").error(f"Too many: {len(ports)}: must have at most {MAX_SLICE_PORTS} items")
    _unique_names(ports)


def endpoint_slice(meta: Obj) -> Obj:
    return Obj({
        "apiVersion": IGNORE, "kind": IGNORE, "metadata": meta,
        "addressType": OneOf("IPv4", refused={
            "IPv6": f"IPv6 is not supported: {_SINGLE_STACK}",
            "FQDN": "FQDN is not supported: kube-proxy ignores FQDN slices (it programs addresses only), "
                    "so a Service's traffic would go nowhere"}),
        "endpoints": ListOf(SLICE_ENDPOINT), "ports": ListOf(SLICE_PORT),
    }, required=("metadata", "addressType"), post=_check_slice)


ENDPOINT_ADDRESS = Obj({"ip": Str(endpoint_ip), "hostname": Str(dns_label), "nodeName": Str(dns_subdomain),
                        "targetRef": TARGET_REF}, required=("ip",))

ENDPOINT_PORT = Obj({"name": Str(_slice_port_name), "port": Int(1, 65535), "protocol": OneOf(*PROTOCOLS),
                     "appProtocol": Str(qualified_name)}, required=("port",))


def _check_subset(subset: Checked) -> None:
    ports: list[Checked] = subset.get("ports", [])
    if not subset.get("addresses") and not subset.get("notReadyAddresses"):
        subset.here.error("Required value: must specify `addresses` or `notReadyAddresses`")
    for p in ports:
        if len(ports) > 1 and not p.get("name"):
            p.here.child("name").error("Required value")
    _unique_names(ports)


ENDPOINT_SUBSET = Obj({"addresses": ListOf(ENDPOINT_ADDRESS), "notReadyAddresses": ListOf(ENDPOINT_ADDRESS),
                       "ports": ListOf(ENDPOINT_PORT)}, post=_check_subset)


def endpoints(meta: Obj) -> Obj:
    return Obj({"apiVersion": IGNORE, "kind": IGNORE, "metadata": meta, "subsets": ListOf(ENDPOINT_SUBSET)},
               required=("metadata",))
