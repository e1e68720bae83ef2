"""What every cluster has without a manifest asking for it: the cluster DNS (kube-dns).

Like kubeadm and kind, the lab runs a DNS deployment in kube-system behind the Service
`kube-dns` at the tenth address of the service CIDR. Manifests that bring their own
kube-system/kube-dns Service keep theirs.
"""
from __future__ import annotations

import dataclasses

from .model import Container, ContainerPort, LabelSelector, Model, PodSpec, Service, ServicePort, Workload

DNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.3"
DNS_LABELS = {"k8s-app": "kube-dns"}


def cluster_dns() -> tuple[Workload, Service]:
    container = Container(name="coredns", image=DNS_IMAGE, args=("-conf", "/etc/coredns/Corefile"),
                          ports=(ContainerPort(53, "dns", "UDP"), ContainerPort(53, "dns-tcp", "TCP")))
    template = PodSpec(containers=(container,))
    workload = Workload(kind="Deployment", namespace="kube-system", name="coredns", replicas=1,
                        selector=LabelSelector(dict(DNS_LABELS)), template_labels=dict(DNS_LABELS),
                        template=template, template_raw={"image": DNS_IMAGE, "labels": DNS_LABELS})
    service = Service(namespace="kube-system", name="kube-dns", selector=dict(DNS_LABELS),
                      ports=(ServicePort(53, "UDP", "dns", "dns"), ServicePort(53, "TCP", "dns-tcp", "dns-tcp")))
    return workload, service


def with_addons(model: Model) -> Model:
    if any(s.namespace == "kube-system" and s.name == "kube-dns" for s in model.services):
        return model
    workload, service = cluster_dns()
    return dataclasses.replace(model, workloads=model.workloads + (workload,), services=model.services + (service,))
