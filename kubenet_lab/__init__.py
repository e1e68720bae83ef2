"""kubenet-lab: real Kubernetes pod networks from ordinary manifests, in network namespaces."""

__version__ = "0.1.0"
