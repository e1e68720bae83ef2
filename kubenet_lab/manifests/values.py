"""Parsers for the string values manifests carry: names, label keys and values, addresses.

Each takes the string as written and returns it (or its parsed form), or raises `Invalid` with a
message that says what was expected. Names end up in namespace paths, interface names and DNS
records, so they follow Kubernetes' own rules (k8s.io/apimachinery/pkg/util/validation).
"""
from __future__ import annotations

import re
from ipaddress import AddressValueError, IPv4Address, IPv4Network, ip_address, ip_network

from ..model.objects import PortRange
from ..plan.containers import FIELD_PATHS, LABEL_FIELD
from .fields import Invalid

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_IANA = re.compile(r"[-a-z0-9]+")


# The API server's own wording (k8s.io/apimachinery/pkg/util/validation), after `Invalid value: "x": `.
DNS1123_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                 "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_LABEL = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                 "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                 "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
DNS1123_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                     "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                     "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def _quoted(s: str) -> str:
    """A value as the API server quotes it in `Invalid value: "..."`."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _name(s: str, pattern: re.Pattern, limit: int, rule: str) -> str:
    problems = []
    if len(s) > limit:
        problems.append(f"must be no more than {limit} characters")
    if not pattern.fullmatch(s):
        problems.append(rule)
    if problems:
        raise Invalid(f"Invalid value: {_quoted(s)}: " + ", ".join(problems))
    return s


def dns_label(s: str) -> str:
    return _name(s, _LABEL, 63, DNS1123_LABEL)


def dns1035_label(s: str) -> str:
    """Service names: a DNS label that starts with a letter, as Kubernetes requires."""
    return _name(s, _LABEL_1035, 63, DNS1035_LABEL)


def dns_subdomain(s: str) -> str:
    return _name(s, _SUBDOMAIN, 253, DNS1123_SUBDOMAIN)


def iana_svc_name(s: str) -> str:
    """Container port names (IANA_SVC_NAME), the names targetPort refers to."""
    if (len(s) > 15 or not _IANA.fullmatch(s) or s.startswith("-") or s.endswith("-") or "--" in s
            or not re.search("[a-z]", s)):
        raise Invalid(f"{s!r} is not a valid port name (at most 15 lowercase letters, digits and single "
                      "'-' between them, with at least one letter)")
    return s


def label_key(s: str) -> str:
    prefix, slash, name = s.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)):
        raise Invalid(f"{s!r} is not a valid label key: the prefix before '/' must be a DNS subdomain "
                      "such as 'app.kubernetes.io'")
    if not name or len(name) > 63 or not _QUALIFIED.fullmatch(name):
        raise Invalid(f"{s!r} is not a valid label key (at most 63 letters, digits, '-', '_' or '.', "
                      "starting and ending with a letter or digit, with an optional 'prefix/')")
    return s


def qualified_name(s: str) -> str:
    """appProtocol, loadBalancerClass: a qualified name, the form of a label key."""
    try:
        return label_key(s)
    except Invalid:
        raise Invalid(f"{s!r} is not a qualified name (at most 63 letters, digits, '-', '_' or '.', starting "
                      "and ending with a letter or digit, with an optional DNS-subdomain 'prefix/', such as "
                      "'http' or 'kubernetes.io/h2c')") from None


def label_value(s: str) -> str:
    if s and (len(s) > 63 or not _QUALIFIED.fullmatch(s)):
        raise Invalid(f"{s!r} is not a valid label value (empty, or at most 63 letters, digits, '-', '_' "
                      "or '.', starting and ending with a letter or digit)")
    return s


def ipv4(s: str) -> IPv4Address:
    try:
        return IPv4Address(s)
    except AddressValueError:
        raise Invalid(f"expected an IPv4 address like 10.96.0.10, got {s!r}") from None


def ip_text(s: str) -> str:
    """An IPv4 or IPv6 address, kept as written (nameservers, hostAliases)."""
    try:
        ip_address(s)
    except ValueError:
        raise Invalid(f"must be a valid IP address, got {s!r}") from None
    return s


def dns_search(s: str) -> str:
    """A resolv.conf search domain: a DNS subdomain, with an optional final dot."""
    dns_subdomain(s.removesuffix("."))
    return s


def external_name(s: str) -> str:
    """A Service's spec.externalName: a DNS-1123 subdomain; a final dot is allowed, as the API
    server allows it (a fully qualified name)."""
    dns_subdomain(s.removesuffix("."))
    return s


def ipv4_text(s: str) -> str:
    """An address kept as written in the model (the planner parses it)."""
    ipv4(s)
    return s


def cidr(s: str) -> IPv4Network:
    address, slash, _ = s.partition("/")
    try:
        if not slash:
            raise ValueError
        net = IPv4Network(s, strict=False)
    except ValueError:
        raise Invalid(f"expected an IPv4 CIDR like 10.244.0.0/16, got {s!r}") from None
    if net.network_address != IPv4Address(address):
        raise Invalid(f"{s!r} has host bits set (did you mean {net}?)")
    return net


def ip_cidr(s: str) -> str:
    """An IPv4 or IPv6 range as a Service's loadBalancerSourceRanges holds it (host bits allowed,
    as the API server allows them there), kept as written."""
    try:
        if "/" not in s:
            raise ValueError
        ip_network(s.strip(), strict=False)
    except ValueError:
        raise Invalid(f"expected an IP range (CIDR) like 10.240.0.0/24, got {s!r}") from None
    return s


def cluster_ip(s: str) -> str:
    """`None` makes a headless service, "" (or no field) asks for an address."""
    if s not in ("None", ""):
        try:
            IPv4Address(s)
        except AddressValueError:
            raise Invalid(f"expected an IPv4 address, \"None\" (headless) or \"\", got {s!r}") from None
    return s


def address_range(s: str) -> tuple[IPv4Address, IPv4Address]:
    """A pool written `first-last` or as a CIDR (all its addresses), as MetalLB writes pools."""
    if "/" in s:
        net = cidr(s.strip())
        return net.network_address, net.broadcast_address
    first, dash, last = s.partition("-")
    try:
        if not dash:
            raise AddressValueError
        low, high = IPv4Address(first.strip()), IPv4Address(last.strip())
    except AddressValueError:
        raise Invalid(f"expected an address range like 172.18.0.200-172.18.0.250 or a CIDR, got {s!r}") from None
    if low > high:
        raise Invalid(f"the range {s!r} ends before it starts")
    return low, high


_PORT_RANGE = re.compile(r"(\d+)(?:([-+])(\d+))?")


def port_range(s: str) -> PortRange:
    """A range of ports as kube-apiserver's --service-node-port-range takes it (net.PortRange):
    `first-last`, both included (also `port` alone and `first+count`), within 1-65535."""
    m = _PORT_RANGE.fullmatch(s.strip())
    if not m:
        raise Invalid(f"expected a port range FIRST-LAST, both included, like 30000-32767, got {s!r}")
    low = int(m[1])
    high = low if m[2] is None else (int(m[3]) if m[2] == "-" else low + int(m[3]))
    if low > 65535 or high > 65535:
        raise Invalid(f"the port range cannot be greater than 65535: {s}")
    if high < low:
        raise Invalid(f"end port cannot be less than start port: {s}")
    if low < 1:
        raise Invalid(f"the port range must start at 1 or above (port 0 is no port): {s}")
    return PortRange(low, high)


def env_name(s: str) -> str:
    """An environment variable's name: printable ASCII without '=' or spaces, as Kubernetes allows."""
    if not s or "=" in s or not all(32 < ord(ch) < 127 for ch in s):
        raise Invalid(f"{s!r} is not a valid environment variable name (printable ASCII characters "
                      "other than '=' and space, e.g. 'MY_VAR')")
    return s


_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
CONFIG_KEY = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
              "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")


def config_key(s: str) -> str:
    """A key of a ConfigMap's or Secret's data (IsConfigMapKey: a file name in a volume)."""
    problems = []
    if len(s) > 253:
        problems.append("must be no more than 253 characters")
    if not _CONFIG_KEY.fullmatch(s):
        problems.append(CONFIG_KEY)
    if s == ".":
        problems.append("must not be '.'")
    elif s == "..":
        problems.append("must not be '..'")
    elif s.startswith(".."):
        problems.append("must not start with '..'")
    if problems:
        raise Invalid(f"Invalid value: {_quoted(s)}: " + ", ".join(problems))
    return s


def local_path(s: str) -> str:
    """A path inside a volume (subPath, an item's path): relative, without '..' (the API
    server's validateLocalDescendingPath)."""
    if s.startswith("/"):
        raise Invalid(f"Invalid value: {_quoted(s)}: must be a relative path")
    if ".." in s.split("/"):
        raise Invalid(f"Invalid value: {_quoted(s)}: must not contain '..'")
    return s


def field_path(s: str) -> str:
    if s in FIELD_PATHS or LABEL_FIELD.fullmatch(s):
        return s
    raise Invalid(f"unsupported fieldPath {s!r}: expected one of {', '.join(FIELD_PATHS)} or "
                  "metadata.labels['KEY']")
