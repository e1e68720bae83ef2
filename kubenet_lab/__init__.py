"""kubenet-lab: real Kubernetes pod networks from ordinary manifests, in network namespaces."""

__version__ = "0.1.0"

# The Kubernetes release the lab emulates, in one place: the kubelet version its nodes report
# (`get nodes` VERSION, status.nodeInfo.kubeletVersion, describe node's Kubelet Version:
# output.KUBELET_VERSION), the User-Agent of kubelet's probes and lifecycle hooks (kube-probe/1.31,
# kube-lifecycle/1.31: runtime/probes.py, runtime/containers.py), `kubenet-lab --version`, and the
# kubectl and kube-proxy whose output and rule layout the lab follows.
KUBERNETES_VERSION = "1.31.0"
KUBERNETES_MINOR = KUBERNETES_VERSION.rsplit(".", 1)[0]
