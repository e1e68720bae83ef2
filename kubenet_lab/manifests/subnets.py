"""The lab's pod and service subnets when the Cluster config does not set them, derived from what
the manifests write, as a dump of a real cluster (`kubectl get nodes,svc,endpointslices -A -o
yaml`) carries them: the Nodes' podCIDRs and the Services' clusterIPs.

A derived subnet is the smallest network holding everything written, but never smaller than a
/16, the usual size (kubeadm's and kind's pod subnet, kind's service subnet: the nets a cluster
was most likely made with, and room for what the lab allocates itself). A service subnet may not
be larger than a /12, the largest kube-apiserver takes for --service-cluster-ip-range; and when
the `kubernetes` Service's address is written, the service subnet is the largest net (up to a
/16) whose first address that is, as kube-apiserver gives it the first address of its range (a
GKE cluster's 34.118.224.0/20 gives 34.118.224.0/19, not 34.118.0.0/16), so that the tenth, the
cluster DNS's, is the cluster's too. Values are taken in the order written; one that would make
the subnet overlap another network of the lab (or, for Services, exceed a /12) is reported where
it is written, against the subnet the values before it give.
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Iterable, Sequence

USUAL_PREFIX = 16  # a derived subnet is at least this large
SERVICE_PREFIX_LIMIT = 12  # kube-apiserver: "for 32-bit addresses, the mask must be >= 12"


def covering(nets: Iterable[IPv4Network], floor: int = USUAL_PREFIX) -> IPv4Network:
    """The smallest network holding every one of `nets`, and at least a /`floor`."""
    nets = list(nets)
    first = min(int(n.network_address) for n in nets)
    last = max(int(n.broadcast_address) for n in nets)
    prefix = min(floor, 32 - (first ^ last).bit_length())
    return IPv4Network((first, prefix), strict=False)


@dataclass(frozen=True)
class Refused:
    """Value `index` of the input cannot be held with the ones before it; `why` says what."""
    index: int
    why: str


def derive(values: Sequence[IPv4Network], what: str, avoid: Sequence[tuple[str, IPv4Network]],
           limit: int = 0) -> tuple[IPv4Network | None, list[Refused]]:
    """The subnet holding `values` (the podCIDRs or clusterIPs, as networks), none if there are
    none, with the values it cannot hold: those that would make it overlap a network of `avoid`
    ((how a message names it, with its address, and the net)) or be larger than a /`limit`. `what` names the
    values in a message ("podCIDRs")."""
    derived: IPv4Network | None = None
    refused: list[Refused] = []
    for i, value in enumerate(values):
        candidate = covering([value] if derived is None else [derived, value])
        problem = ""
        if limit and candidate.prefixlen < limit:
            problem = f"is larger than a /{limit}, the largest service subnet kube-apiserver takes"
        clash = next(((name, net) for name, net in avoid if candidate.overlaps(net)), None)
        if not problem and clash is not None:
            problem = f"would overlap {clash[0]}"
        if not problem:
            derived = candidate
        elif derived is None:
            shown = value if value.prefixlen < 32 else value.network_address
            refused.append(Refused(i, f"{shown} overlaps {clash[0]}" if clash else f"{shown} {problem}"))
        else:
            shown = value if value.prefixlen < 32 else value.network_address
            refused.append(Refused(i, f"{shown} is outside the subnet {derived} derived from the {what} before it, "
                                      f"and a subnet holding it too ({candidate}) {problem}"))
    return derived, refused


def anchored(derived: IPv4Network, values: Sequence[IPv4Network], first: IPv4Address,
             floor: int = USUAL_PREFIX) -> IPv4Network:
    """`derived`, or, when `first` is not its first address, the largest net (up to a /`floor`)
    whose first address `first` is and that holds every value; `derived` when there is none."""
    if derived.network_address + 1 == first:
        return derived
    base = int(first) - 1
    for prefix in range(floor, 33):
        if base % (1 << (32 - prefix)) == 0:
            net = IPv4Network((base, prefix))
            return net if all(v.subnet_of(net) for v in values) else derived
    return derived
