"""Names of everything the lab creates: namespaces, interfaces, generated pod names.

Every name is a pure function of its inputs, so the same manifests give the same names on every
run and on every machine. Lab names, Kubernetes namespaces and object names are DNS-1123 labels
(checked by the manifest validation), which contain no dot: the dots below make the namespace
names unambiguous, and `<lab>.` is a prefix no other lab shares.
"""
from __future__ import annotations

import functools
import json
import re

from ..errors import InputError
from . import defaults

# The ownership mark: the IFLA_IFALIAS of every link the lab creates (and of `lo` in every
# namespace it creates), so that `down` can tell its own objects from anything else's.
MARK_PREFIX = "kubenet-lab:"

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_LABEL = 63

# Kubernetes' alphabet for generated names (k8s.io/apimachinery/pkg/util/rand): no vowels, no
# digits that look like letters, so generated names never spell words.
ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
GENERATED_SUFFIX = 5
MAX_GENERATED_BASE = MAX_LABEL - GENERATED_SUFFIX


def is_dns1123_label(name: str) -> bool:
    return len(name) <= MAX_LABEL and bool(DNS1123_LABEL.match(name))


MAX_LAB = 20  # the lab name leads every namespace and interface alias it makes


def is_lab_name(lab: str) -> bool:
    return is_dns1123_label(lab) and len(lab) <= MAX_LAB


def check_lab_name(lab: str) -> None:
    if not is_lab_name(lab):
        raise InputError(f"--lab: {lab!r} is not a valid lab name: expected lower-case letters, digits and '-', "
                         f"at most {MAX_LAB} characters, starting and ending with a letter or digit")


def mark(lab: str) -> str:
    return MARK_PREFIX + lab


def lab_prefix(lab: str) -> str:
    return lab + "."


def node_netns(lab: str, node: str) -> str:
    return f"{lab}.node.{node}"


def pod_netns(lab: str, namespace: str, pod: str) -> str:
    return f"{lab}.pod.{namespace}.{pod}"


def underlay_netns(lab: str) -> str:
    return f"{lab}.underlay"


def external_netns(lab: str) -> str:
    return f"{lab}.external"


def external2_netns(lab: str) -> str:
    """The second client outside the cluster: another source address, for loadBalancerSourceRanges."""
    return f"{lab}.external2"


def lb_netns(lab: str) -> str:
    return f"{lab}.lb"


def _hex8(*parts: str) -> str:
    import hashlib  # here: the verbs that only read a lab (get, logs, exec) need no hash (OpenSSL's, 2 ms)

    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


def pod_host_veth(lab: str, namespace: str, pod: str, attempt: int = 0) -> str:
    """The node side of a pod's veth: `veth` + 8 hex characters, like the CNI bridge plugin."""
    parts = [lab, namespace, pod] + ([str(attempt)] if attempt else [])
    return "veth" + _hex8(*parts)


def node_underlay_veth(lab: str, node: str) -> str:
    """The underlay side of a node's eth0 (lives in the underlay namespace)."""
    return "veth" + _hex8(lab, "node", node)


def outside_underlay_veth(lab: str, role: str) -> str:
    """The underlay side of the external client's or the load balancer's eth0, hashed from an
    input no node name can produce."""
    return "veth" + _hex8(lab, "outside", role)


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(s: str) -> str:
    """k8s.io/apimachinery rand.SafeEncodeString: each byte mapped into ALPHANUMS."""
    return "".join(ALPHANUMS[b % len(ALPHANUMS)] for b in s.encode())


def pod_template_hash(template: object) -> str:
    """The `pod-template-hash` label: fnv32a of the template, encoded as Kubernetes encodes it.

    Kubernetes hashes its Go structure as the API server stored it; we hash the canonical JSON of
    the template with the API server's defaults filled in (plan.defaults), so that a default
    written out or left out is the same template (the exact value differs from a real cluster's)."""
    canonical = json.dumps(defaults.pod_template(template), sort_keys=True, separators=(",", ":"), default=str)
    return _template_hash(canonical)


@functools.lru_cache(maxsize=1024)
def _template_hash(canonical: str) -> str:
    """fnv32a a byte at a time in Python: 1-2 ms a template, asked several times a change."""
    return safe_encode(str(fnv32a(canonical.encode())))


def generated_suffix(owner: str, index: int) -> str:
    """The 5 characters Kubernetes draws at random for a generated name; here derived from the
    owner and the replica index, so the same manifests give the same pod names."""
    import hashlib

    digest = hashlib.sha256(f"{owner}#{index}".encode()).digest()
    return "".join(ALPHANUMS[b % len(ALPHANUMS)] for b in digest[:GENERATED_SUFFIX])


def generate_name(base: str, owner: str, index: int) -> str:
    """`<base>-<5 chars>`, the base cut to keep the name a DNS label, as generateName does."""
    return f"{base}-"[:MAX_GENERATED_BASE] + generated_suffix(owner, index)
