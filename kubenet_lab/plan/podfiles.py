"""The files and names kubelet gives a pod: resolv.conf, hosts and its hostname (pure text from
the plan), as kubelet's pkg/kubelet/network/dns and kubelet_pods.go make them and containerd
writes them.

resolv.conf by spec.dnsPolicy:
- ClusterFirst (the default): the cluster DNS, the search path `<ns>.svc.<zone> svc.<zone>
  <zone>` followed by the node's own search domains, `options ndots:5`; for a hostNetwork pod
  it means Default;
- ClusterFirstWithHostNet: the same, for hostNetwork pods too;
- Default: the node's resolv.conf (the lab's nodes have this machine's: `Plan.node_dns`);
- None: nothing but spec.dnsConfig.
spec.dnsConfig is then added: nameservers and searches appended without duplicates, options
merged by name (the pod's win); at most 3 nameservers and 32 search domains are kept, as kubelet
trims them.

hosts: kubelet's managed file, the pod's line `<ip> <hostname>.<subdomain>.<ns>.svc.<zone>
<hostname>` when it has a subdomain (so `hostname -f` gives the FQDN), and spec.hostAliases.

The hostname: spec.hostname or the pod's name, the FQDN with setHostnameAsFQDN; an FQDN longer
than the kernel's 64 characters is kubelet's sandbox error (sandbox_error), the pod never starts.
"""
from __future__ import annotations

from typing import Iterable

from . import ipam
from ..model.objects import DnsConfig, Plan, PlannedPod

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_HOSTNAME = 63
MAX_FQDN_HOSTNAME = 64
CLUSTER_DNS_OPTIONS = (("ndots", "5"),)


def parse_resolv_conf(text: str) -> DnsConfig:
    """A resolv.conf as kubelet reads the node's: nameservers, the last search line (without
    trailing dots), options (a later one of the same name wins)."""
    servers: list[str] = []
    searches: list[str] = []
    options: dict[str, str | None] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] == "search":
            searches = [w.removesuffix(".") for w in words[1:] if w != "."]
        elif words[0] == "options":
            for opt in words[1:]:
                name, _, value = opt.partition(":")
                options.pop(name, None)
                options[name] = value or None
    return DnsConfig(tuple(servers), tuple(searches), tuple(options.items()))


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _merge_options(base: Iterable[tuple[str, str | None]],
                   extra: Iterable[tuple[str, str | None]]) -> tuple[tuple[str, str | None], ...]:
    merged = dict(base)
    merged.update(extra)
    return tuple(merged.items())


def pod_dns(plan: Plan, pod: PlannedPod) -> DnsConfig | None:
    """What the pod's resolv.conf holds; None: the node's file as it is (a host-network pod
    with the node's DNS and nothing added)."""
    policy = pod.dns_policy
    cluster = policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not pod.host_network)
    if pod.host_network and not cluster and pod.dns_config is None:
        return None
    zone = plan.cluster.dns_domain
    if policy == "None":
        dns = DnsConfig()
    elif cluster:
        searches = (f"{pod.namespace}.svc.{zone}", f"svc.{zone}", zone, *plan.node_dns.searches)
        dns = DnsConfig((str(ipam.dns_service_ip(plan.cluster.service_subnet)),), _unique(searches),
                        CLUSTER_DNS_OPTIONS)
    else:
        dns = plan.node_dns
    if pod.dns_config is not None:
        extra = pod.dns_config
        dns = DnsConfig(_unique(dns.nameservers + extra.nameservers),
                        _unique(dns.searches + tuple(s.removesuffix(".") for s in extra.searches)),
                        _merge_options(dns.options, extra.options))
    return DnsConfig(dns.nameservers[:MAX_NAMESERVERS], dns.searches[:MAX_SEARCHES], dns.options)


def resolv_conf_text(dns: DnsConfig) -> str:
    """containerd's rendering: search, nameservers, options."""
    out = ""
    if dns.searches:
        out += f"search {' '.join(dns.searches)}\n"
    out += "".join(f"nameserver {server}\n" for server in dns.nameservers)
    if dns.options:
        out += "options " + " ".join(name if value is None else f"{name}:{value}" for name, value in dns.options) + "\n"
    return out


def resolv_conf(plan: Plan, pod: PlannedPod) -> str:
    dns = pod_dns(plan, pod)
    return resolv_conf_text(dns if dns is not None else plan.node_dns)


def pod_domain(plan: Plan, pod: PlannedPod) -> str | None:
    """`<subdomain>.<ns>.svc.<zone>` for a pod with spec.subdomain."""
    return f"{pod.subdomain}.{pod.namespace}.svc.{plan.cluster.dns_domain}" if pod.subdomain else None


def _short_hostname(pod: PlannedPod) -> str:
    """kubelet's GeneratePodHostNameAndDomain: spec.hostname, else the pod's name cut to 63
    characters (without a final '-' or '.')."""
    return pod.hostname or pod.name[:MAX_HOSTNAME].rstrip("-.")


def pod_hostname(plan: Plan, pod: PlannedPod) -> str:
    """The pod's hostname: spec.hostname, else its name cut to 63 characters (without a final
    '-' or '.'), the FQDN with setHostnameAsFQDN; a hostNetwork pod has its node's."""
    if pod.host_network:
        return pod.node
    name = _short_hostname(pod)
    domain = pod_domain(plan, pod)
    if pod.set_hostname_as_fqdn and domain and len(f"{name}.{domain}") <= MAX_FQDN_HOSTNAME:
        return f"{name}.{domain}"
    return name


def sandbox_error(plan: Plan, pod: PlannedPod) -> str | None:
    """Why kubelet cannot make the pod's sandbox, in its words, or None: setHostnameAsFQDN with
    an FQDN longer than the kernel's nodename holds (util.GetNodenameForKernel). The pod then
    stays ContainerCreating, kubelet retrying (FailedCreatePodSandBox) for ever."""
    return fqdn_error(pod, plan.cluster.dns_domain)


def fqdn_error(pod: PlannedPod, dns_domain: str) -> str | None:
    """sandbox_error, for planning (the cluster domain given): such a pod gets no address from
    the CNI plugin, so it is no Service's endpoint."""
    if pod.host_network or not pod.set_hostname_as_fqdn or not pod.subdomain:
        return None
    fqdn = f"{_short_hostname(pod)}.{pod.subdomain}.{pod.namespace}.svc.{dns_domain}"
    if len(fqdn) <= MAX_FQDN_HOSTNAME:
        return None
    return (f"failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long "
            f"({MAX_FQDN_HOSTNAME} characters is the max, {len(fqdn)} characters requested)")


def sandbox_warnings(plan: Plan, previous: Plan | None) -> tuple[str, ...]:
    """What `up` and `apply` say of pods whose sandbox kubelet cannot make (new since `previous`)."""
    before = {p.key for p in previous.pods if sandbox_error(previous, p)} if previous is not None else set()
    return tuple(f"pod {pod.key} is ContainerCreating (FailedCreatePodSandBox): {error} (kubelet retries; "
                 "it never starts)" for pod in plan.pods
                 if pod.key not in before and (error := sandbox_error(plan, pod)))


def hosts(plan: Plan, pod: PlannedPod) -> str:
    name = _short_hostname(pod)
    domain = pod_domain(plan, pod)
    own = f"{pod.ip}\t{name}.{domain}\t{name}\n" if domain else f"{pod.ip}\t{name}\n"
    text = ("# Kubernetes-managed hosts file.\n"
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\n"
            "fe00::0\tip6-mcastprefix\n"
            "fe00::1\tip6-allnodes\n"
            "fe00::2\tip6-allrouters\n"
            f"{own}")
    if pod.host_aliases:
        text += "\n# Entries added by HostAliases.\n"
        text += "".join(f"{a.ip}\t{chr(9).join(a.hostnames)}\n" for a in pod.host_aliases)
    return text


def pod_files(plan: Plan, pod: PlannedPod) -> dict[str, str]:
    """What each process of the pod sees over the host's files (target -> content); a
    hostNetwork pod sees its node's (this machine's) hosts and hostname, and its resolv.conf too
    unless its dnsPolicy or dnsConfig says otherwise."""
    files = {}
    dns = pod_dns(plan, pod)
    if dns is not None:
        files["/etc/resolv.conf"] = resolv_conf_text(dns)
    if not pod.host_network:
        files["/etc/hosts"] = hosts(plan, pod)
        files["/etc/hostname"] = pod_hostname(plan, pod) + "\n"  # as containerd writes it
    return files
