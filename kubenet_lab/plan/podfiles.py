"""The files kubelet writes for a pod: resolv.conf and hosts (pure text from the plan)."""
from __future__ import annotations

from . import ipam
from .model import Plan, PlannedPod


def resolv_conf(plan: Plan, pod: PlannedPod) -> str:
    zone = plan.cluster.dns_domain
    dns = ipam.dns_service_ip(plan.cluster.service_subnet)
    return (f"search {pod.namespace}.svc.{zone} svc.{zone} {zone}\n"
            f"nameserver {dns}\n"
            f"options ndots:5\n")


def hosts(plan: Plan, pod: PlannedPod) -> str:
    return ("# Kubernetes-managed hosts file (kubenet-lab).\n"
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\n"
            "fe00::0\tip6-mcastprefix\n"
            "fe00::1\tip6-allnodes\n"
            "fe00::2\tip6-allrouters\n"
            f"{pod.ip}\t{pod.name}\n")


def pod_files(plan: Plan, pod: PlannedPod) -> dict[str, str]:
    """What each process of the pod sees over the host's files (target -> content); a
    hostNetwork pod sees its node's, as with Kubernetes' default dnsPolicy."""
    if pod.host_network:
        return {}
    return {"/etc/resolv.conf": resolv_conf(plan, pod), "/etc/hosts": hosts(plan, pod)}
