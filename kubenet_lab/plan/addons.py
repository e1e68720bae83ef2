"""What every cluster has without a manifest asking for it: the cluster DNS (kube-dns) and the
`kubernetes` service.

Like kubeadm and kind, the lab runs a DNS deployment in kube-system behind the Service
`kube-dns` at the tenth address of the service CIDR, and has the Service `default/kubernetes`
at the first (443/TCP, named https, as the API server's). The lab has no API server: that
service has no endpoints, so a connection to it is refused at once, but it resolves
(`nslookup kubernetes.default`, the classic first DNS check, works), it is listed, and every
container gets its KUBERNETES_SERVICE_* variables. Manifests that bring their own
kube-system/kube-dns or default/kubernetes Service keep theirs. A kube-dns Service that selects
nothing the manifests run (a dump of a real cluster has the Service, not its pods) gets the lab's
DNS deployment behind it, labelled as its selector asks: the lab's DNS answers at its address.
"""
from __future__ import annotations

import dataclasses

from ..model.objects import (Container, ContainerPort, LabelSelector, Model, PodSpec, Service, ServicePort, Toleration,
                             Workload, runs_selected)

DNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.3"
DNS_LABELS = {"k8s-app": "kube-dns"}


def cluster_dns(labels: dict[str, str] | None = None) -> tuple[Workload, Service]:
    """The DNS deployment and its Service; `labels`: the pods' (those the Service selects)."""
    labels = dict(labels or DNS_LABELS)
    container = Container(name="coredns", image=DNS_IMAGE, args=("-conf", "/etc/coredns/Corefile"),
                          ports=(ContainerPort(53, "dns", "UDP"), ContainerPort(53, "dns-tcp", "TCP")))
    # kubeadm's coredns tolerations: it may run on control-plane nodes and critical-addon nodes
    template = PodSpec(containers=(container,), tolerations=(
        Toleration("CriticalAddonsOnly", "Exists"),
        Toleration("node-role.kubernetes.io/control-plane", effect="NoSchedule")))
    workload = Workload(kind="Deployment", namespace="kube-system", name="coredns", replicas=1,
                        selector=LabelSelector(dict(labels)), template_labels=dict(labels),
                        template=template, template_raw={"image": DNS_IMAGE, "labels": labels})
    service = Service(namespace="kube-system", name="kube-dns", selector=dict(labels),
                      ports=(ServicePort(53, "UDP", "dns", "dns"), ServicePort(53, "TCP", "dns-tcp", "dns-tcp")))
    return workload, service


def kubernetes_service() -> Service:
    return Service(namespace="default", name="kubernetes", selector=None,
                   ports=(ServicePort(443, "TCP", "https", 6443),))


def with_addons(model: Model) -> Model:
    have = {s.key: s for s in model.services}
    dns = have.get("kube-system/kube-dns")
    if dns is None:
        workload, service = cluster_dns()
        model = dataclasses.replace(model, workloads=model.workloads + (workload,),
                                    services=model.services + (service,))
    elif dns.selector and not runs_selected(dns.selector, dns.namespace, model.pods, model.workloads) \
            and not any(w.key == "kube-system/coredns" for w in model.workloads):
        workload, _ = cluster_dns(dict(dns.selector))
        model = dataclasses.replace(model, workloads=model.workloads + (workload,))
    if "default/kubernetes" not in have:
        model = dataclasses.replace(model, services=model.services + (kubernetes_service(),))
    return model
